//! `spectrain predict`: a directory of FITS spectra in, a catalog out, one row
//! per input file, whatever happened to it.
//!
//! Files are handled in chunks: read and preprocessed in parallel with the
//! model's own recipe, inferred in batches by every member, and appended to
//! `CATALOG.partial` (flushed per chunk), so memory stays flat however many
//! files there are and `--resume` continues after the last complete row. The
//! finished catalog is renamed (CSV) or converted (FITS) into place.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use crate::catalog::{csv_to_fits, CatalogError};
use crate::ensemble::{Ensemble, EnsembleError, Task};
use crate::fits::find_spectra;
use crate::model::BackendChoice;
use crate::prepare::{process_file, FileOutcome};
use crate::preprocess::{ConfigError, Preprocessor};

/// Files read and preprocessed together before inference.
const CHUNK: usize = 2048;

#[derive(Debug, Clone)]
pub struct PredictOptions {
    pub model: PathBuf,
    pub spectra: PathBuf,
    pub out: PathBuf,
    pub batch: usize,
    pub backend: BackendChoice,
    /// `(k, n)`: this run handles shard k of n (1-based).
    pub shard: Option<(usize, usize)>,
    pub members_out: bool,
    pub resume: bool,
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Ensemble(#[from] EnsembleError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Backend(#[from] crate::model::backend::BackendError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{path}: cannot list spectra: {source}")]
    Walk {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} exists from an interrupted run: pass --resume to continue it, or delete it")]
    PartialExists(PathBuf),
    #[error("{path}: cannot resume: {reason}")]
    Resume { path: PathBuf, reason: String },
    #[error("{0}: this model reads catalog features, not spectra; use predict --table")]
    TableModel(PathBuf),
    #[error("invalid shard '{0}': expected K/N with 1 <= K <= N")]
    Shard(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Parses `K/N`.
pub fn parse_shard(s: &str) -> Result<(usize, usize), PredictError> {
    let bad = || PredictError::Shard(s.to_string());
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// FNV-1a of a relative path: the same shard on every machine and listing order.
fn shard_of(relative: &str, n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in relative.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % n as u64) as usize
}

#[derive(Debug, Clone, Default)]
pub struct PredictSummary {
    pub files: usize,
    pub resumed: usize,
    pub ok: usize,
    pub rejected: BTreeMap<String, usize>,
    pub seconds: f64,
}

/// The prediction columns of a catalog: `<label>, <label>_std` per label, or
/// `class` then `p_<class>, p_<class>_std` per class.
pub fn prediction_columns(spec: &crate::ensemble::EnsembleSpec) -> Vec<String> {
    let mut c = Vec::new();
    match spec.task {
        Task::Regress => {
            for l in &spec.label_names {
                c.push(l.clone());
                c.push(format!("{l}_std"));
            }
        }
        Task::Classify => {
            c.push("class".into());
            for k in &spec.classes {
                c.push(format!("p_{k}"));
                c.push(format!("p_{k}_std"));
            }
        }
    }
    c
}

/// The cells of [`prediction_columns`] for input `i`, and whether a predicted
/// label lies outside the training label range.
pub fn prediction_cells(
    spec: &crate::ensemble::EnsembleSpec,
    preds: &crate::ensemble::Predictions,
    i: usize,
) -> (Vec<String>, bool) {
    let mut row = Vec::new();
    let mut out_of_range = false;
    match spec.task {
        Task::Regress => {
            for (j, range) in spec.domain.label_ranges.iter().enumerate() {
                let mean = preds.mean(i, j);
                out_of_range |= mean < range[0] || mean > range[1];
                row.push(format!("{mean}"));
                row.push(format!("{}", preds.std(i, j)));
            }
        }
        Task::Classify => {
            let best = (0..preds.outputs)
                .max_by(|a, b| preds.mean(i, *a).total_cmp(&preds.mean(i, *b)))
                .unwrap_or(0);
            row.push(spec.classes[best].clone());
            for o in 0..preds.outputs {
                row.push(format!("{}", preds.mean(i, o)));
                row.push(format!("{}", preds.std(i, o)));
            }
        }
    }
    (row, out_of_range)
}

/// The catalog's column names for a model.
pub fn columns(ensemble: &Ensemble, members_out: bool) -> Vec<String> {
    let spec = &ensemble.spec;
    let mut c: Vec<String> = ["file", "obsid", "ra", "dec", "snrg", "status", "reason"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    c.extend(prediction_columns(spec));
    c.extend(["outside_fraction", "flag_range", "flag_snr", "flag_domain"].map(String::from));
    if members_out {
        let names: Vec<String> = match spec.task {
            Task::Regress => spec.label_names.clone(),
            Task::Classify => spec.classes.iter().map(|k| format!("p_{k}")).collect(),
        };
        for m in 0..ensemble.members.len() {
            for n in &names {
                c.push(format!("{n}_m{m:02}"));
            }
        }
    }
    c
}

fn fmt_opt(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or(String::new(), |x| format!("{x}"))
}

/// `CATALOG.csv` -> `CATALOG.csv.partial`.
pub fn partial_path(out: &Path) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    out.with_file_name(name)
}

fn is_fits(path: &Path) -> bool {
    let n = path.to_string_lossy().to_ascii_lowercase();
    n.ends_with(".fits") || n.ends_with(".fit")
}

/// Reads the rows of an interrupted run's partial catalog, drops a torn last
/// line, rewrites the file with complete rows only, and returns their files.
fn recover_partial(path: &Path, header: &[String]) -> Result<HashSet<String>, PredictError> {
    let resume_err = |reason: String| PredictError::Resume {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path)?;
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(complete.as_bytes());
    let found: Vec<String> = reader
        .headers()
        .map_err(|e| resume_err(e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    if found != header {
        return Err(resume_err(
            "its columns differ from this run's (another model or --members-out?)".into(),
        ));
    }
    let mut done = HashSet::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| resume_err(e.to_string()))?;
        if rec.len() != header.len() {
            return Err(resume_err("a row has the wrong number of fields".into()));
        }
        done.insert(rec[0].to_string());
    }
    std::fs::write(path, complete)?;
    Ok(done)
}

pub fn predict(opts: &PredictOptions) -> Result<PredictSummary, PredictError> {
    let start = Instant::now();
    let compute = opts.backend.resolve()?;
    tracing::info!("backend {} ({})", compute.backend, compute.reason);
    let ensemble = Ensemble::load(&opts.model, &compute.device)?;
    let spec = &ensemble.spec;
    if spec.features.is_some() {
        return Err(PredictError::TableModel(opts.model.clone()));
    }
    // The model's own recipe: training and inference cannot drift apart.
    let pre = Preprocessor::new(spec.preprocess.clone())?;
    let header = columns(&ensemble, opts.members_out);

    let mut files: Vec<(PathBuf, String)> = find_spectra(&opts.spectra)
        .map_err(|source| PredictError::Walk {
            path: opts.spectra.clone(),
            source,
        })?
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&opts.spectra)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            (p, rel)
        })
        .collect();
    if let Some((k, n)) = opts.shard {
        files.retain(|(_, rel)| shard_of(rel, n) == k - 1);
    }

    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let partial = partial_path(&opts.out);
    let done = if partial.exists() {
        if !opts.resume {
            return Err(PredictError::PartialExists(partial));
        }
        recover_partial(&partial, &header)?
    } else {
        let mut w = csv::Writer::from_path(&partial).map_err(std::io::Error::other)?;
        w.write_record(&header).map_err(std::io::Error::other)?;
        w.flush()?;
        HashSet::new()
    };
    let mut summary = PredictSummary {
        files: files.len(),
        resumed: done.len(),
        ..Default::default()
    };
    let todo: Vec<&(PathBuf, String)> = files
        .iter()
        .filter(|(_, rel)| !done.contains(rel))
        .collect();
    tracing::info!(
        "{} spectra{}, {} already in {}",
        files.len(),
        opts.shard
            .map_or(String::new(), |(k, n)| format!(" in shard {k}/{n}")),
        done.len(),
        partial.display()
    );

    let file = std::fs::OpenOptions::new().append(true).open(&partial)?;
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(std::io::BufWriter::new(file));
    let bar = crate::progress::bar(todo.len() as u64, "predict", opts.progress);
    for chunk in todo.chunks(CHUNK) {
        let outcomes: Vec<FileOutcome> = chunk
            .par_iter()
            .map(|(path, _)| {
                let o = process_file(path, &pre);
                bar.inc(1);
                o
            })
            .collect();
        let inputs: Vec<f32> = outcomes
            .iter()
            .filter_map(|o| match o {
                FileOutcome::Kept { input, .. } => Some(input.as_slice()),
                FileOutcome::Rejected { .. } => None,
            })
            .flatten()
            .copied()
            .collect();
        let preds = ensemble.predict(&inputs, opts.batch);
        let mut k = 0;
        for ((path, rel), outcome) in chunk.iter().zip(&outcomes) {
            let row = match outcome {
                FileOutcome::Rejected {
                    reason,
                    detail,
                    meta,
                } => {
                    *summary.rejected.entry(reason.to_string()).or_insert(0) += 1;
                    let mut row = vec![rel.clone()];
                    row.extend(identity(meta.as_deref()));
                    row.push("rejected".into());
                    let prefix = format!("{}: ", path.display());
                    row.push(format!(
                        "{reason}: {}",
                        detail.strip_prefix(&prefix).unwrap_or(detail)
                    ));
                    row.resize(header.len(), String::new());
                    row
                }
                FileOutcome::Kept { spectrum, input } => {
                    summary.ok += 1;
                    let i = k;
                    k += 1;
                    kept_row(&ensemble, &preds, i, rel, spectrum, input, opts.members_out)
                }
            };
            writer.write_record(&row).map_err(std::io::Error::other)?;
        }
        writer.flush()?;
        writer.get_ref().get_ref().sync_data()?;
    }
    bar.finish_and_clear();
    drop(writer);

    if is_fits(&opts.out) {
        csv_to_fits(&partial, &opts.out)?;
        std::fs::remove_file(&partial)?;
    } else {
        std::fs::rename(&partial, &opts.out)?;
    }
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// obsid, ra, dec, snrg of a spectrum, empty where unknown.
fn identity(meta: Option<&crate::spectrum::SpectrumMeta>) -> [String; 4] {
    match meta {
        Some(m) => [
            m.obsid.map_or(String::new(), |o| o.to_string()),
            fmt_opt(m.ra),
            fmt_opt(m.dec),
            fmt_opt(m.snrg),
        ],
        None => Default::default(),
    }
}

/// The catalog row of a spectrum that was predicted.
fn kept_row(
    ensemble: &Ensemble,
    preds: &crate::ensemble::Predictions,
    i: usize,
    rel: &str,
    spectrum: &crate::spectrum::Spectrum,
    input: &[f32],
    members_out: bool,
) -> Vec<String> {
    let spec = &ensemble.spec;
    let m = &spectrum.meta;
    let mut row = vec![rel.to_string()];
    row.extend(identity(Some(m)));
    row.extend(["ok".to_string(), String::new()]);
    let outputs = preds.outputs;
    let (cells, out_of_range) = prediction_cells(spec, preds, i);
    row.extend(cells);
    let low_snr = match (spec.domain.snrg_range, m.snrg) {
        (Some([lo, _]), Some(s)) => s < lo,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let outside = spec
        .domain
        .input_envelope
        .as_ref()
        .map(|e| (e.outside_fraction(input), e.max_outside_fraction));
    row.push(outside.map_or(String::new(), |(f, _)| format!("{f}")));
    row.push(u8::from(out_of_range).to_string());
    row.push(u8::from(low_snr).to_string());
    row.push(outside.map_or(String::new(), |(f, max)| u8::from(f > max).to_string()));
    if members_out {
        for member in &preds.members {
            for o in 0..outputs {
                row.push(format!("{}", member[i * outputs + o]));
            }
        }
    }
    row
}

/// `spectrain merge`: shard catalogs joined into one, sorted by file, with
/// every duplicated file and (given the spectra directory) every missing one reported.
#[derive(Debug, Clone, Default)]
pub struct MergeReport {
    pub rows: usize,
    pub duplicates: Vec<String>,
    pub missing: Vec<String>,
}

pub fn merge(
    shards: &[PathBuf],
    out: &Path,
    spectra: Option<&Path>,
) -> Result<MergeReport, PredictError> {
    let mut header: Option<Vec<String>> = None;
    // Keyed by path so the order is a single run's (find_spectra sorts paths).
    let mut rows: BTreeMap<PathBuf, csv::StringRecord> = BTreeMap::new();
    let mut report = MergeReport::default();
    for shard in shards {
        let err = |reason: String| PredictError::Resume {
            path: shard.clone(),
            reason,
        };
        let mut r = csv::Reader::from_path(shard).map_err(|e| err(e.to_string()))?;
        let h: Vec<String> = r
            .headers()
            .map_err(|e| err(e.to_string()))?
            .iter()
            .map(str::to_string)
            .collect();
        match &header {
            None => header = Some(h),
            Some(prev) if *prev != h => {
                return Err(err("its columns differ from the first shard's".into()))
            }
            _ => {}
        }
        for rec in r.records() {
            let rec = rec.map_err(|e| err(e.to_string()))?;
            let key = PathBuf::from(&rec[0]);
            if rows.insert(key, rec.clone()).is_some() {
                report.duplicates.push(rec[0].to_string());
            }
        }
    }
    if let Some(dir) = spectra {
        for p in find_spectra(dir).map_err(|source| PredictError::Walk {
            path: dir.to_path_buf(),
            source,
        })? {
            let rel = p.strip_prefix(dir).unwrap_or(&p).to_path_buf();
            if !rows.contains_key(&rel) {
                report.missing.push(rel.display().to_string());
            }
        }
    }
    report.rows = rows.len();
    let header = header.unwrap_or_default();
    let write_csv = |path: &Path| -> std::io::Result<()> {
        let mut w = csv::Writer::from_path(path)?;
        w.write_record(&header)?;
        for rec in rows.values() {
            w.write_record(rec)?;
        }
        w.flush()
    };
    if is_fits(out) {
        let tmp_csv = partial_path(out);
        write_csv(&tmp_csv)?;
        csv_to_fits(&tmp_csv, out)?;
        std::fs::remove_file(&tmp_csv)?;
    } else {
        crate::atomic::write_atomically(out, write_csv)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_files() {
        let names: Vec<String> = (0..1000).map(|i| format!("d/spec-{i}.fits.gz")).collect();
        let mut counts = [0usize; 4];
        for n in &names {
            counts[shard_of(n, 4)] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), 1000);
        assert!(
            counts.iter().all(|&c| (200..300).contains(&c)),
            "{counts:?}"
        );
        assert!(parse_shard("2/4").is_ok());
        assert!(
            parse_shard("0/4").is_err() && parse_shard("5/4").is_err() && parse_shard("x").is_err()
        );
    }
}
