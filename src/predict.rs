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
use crate::csvio::fmt_float;
use crate::ensemble::{Ensemble, EnsembleError, Task};
use crate::fits::find_spectra;
use crate::ingest::{process_file, FileOutcome};
use crate::model::BackendChoice;
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
    /// Replace an existing catalog (or discard an interrupted run's partial file).
    pub force: bool,
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
    #[error("{0} exists from an interrupted run: pass --resume to continue it, or --force to start over")]
    PartialExists(PathBuf),
    #[error("{0}: no .fits, .fit or .fits.gz files found")]
    NoFiles(PathBuf),
    #[error("--out {out} lies inside the spectra directory {spectra} and has a FITS name: a later run would read the catalog as a spectrum")]
    OutInsideSpectra { out: PathBuf, spectra: PathBuf },
    #[error(transparent)]
    Output(#[from] crate::outputs::OutputError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error("{path}: {reason}")]
    Mismatch { path: PathBuf, reason: String },
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
    /// Files in the whole catalog (this shard), resumed rows included.
    pub files: usize,
    /// Rows already in the catalog from an earlier, interrupted run.
    pub resumed: usize,
    /// Counts over the whole catalog.
    pub ok: usize,
    /// Spectra whose network outputs were not finite (`status=failed`).
    pub failed: usize,
    pub rejected: BTreeMap<String, usize>,
    pub seconds: f64,
    /// `--resume` found the catalog already complete: nothing was done.
    pub already_complete: bool,
}

/// What made a catalog: written beside it as `CATALOG.json` (and beside the
/// partial file while it runs), so `--resume` and `merge` never mix catalogs
/// of different models, spectra, shards or columns.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CatalogIdentity {
    pub spectrain_version: String,
    /// The model directory as given (informational).
    pub model: String,
    pub model_spec_sha256: String,
    pub weights_sha256: Vec<String>,
    /// SHA-256 of `calibration.json`, which turns spreads into `_std`; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_sha256: Option<String>,
    /// SHA-256 of a fine-tuned model's `gate.json` (which records its rows' and its parent's checksums).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_sha256: Option<String>,
    /// The spectra directory, absolute.
    pub spectra: String,
    /// `[k, n]` for `--shard k/n`.
    pub shard: Option<[usize; 2]>,
    pub columns: Vec<String>,
}

impl CatalogIdentity {
    /// What differs from `other` (ignoring the version, the model path and,
    /// with `ignore_shard`, the shard), or `None`.
    pub fn differences(&self, other: &Self, ignore_shard: bool) -> Option<String> {
        let mut d = Vec::new();
        if self.model_spec_sha256 != other.model_spec_sha256 {
            d.push(format!(
                "model spec SHA-256 {} vs {}",
                other.model_spec_sha256, self.model_spec_sha256
            ));
        }
        if self.weights_sha256 != other.weights_sha256 {
            d.push("member weights (SHA-256) differ".to_string());
        }
        if self.calibration_sha256 != other.calibration_sha256 {
            d.push("the model's calibration.json differs".to_string());
        }
        if self.gate_sha256 != other.gate_sha256 {
            d.push("the model's gate.json (fine-tuning domain and parent) differs".to_string());
        }
        if self.spectra != other.spectra {
            d.push(format!(
                "spectra directory {} vs {}",
                other.spectra, self.spectra
            ));
        }
        if !ignore_shard && self.shard != other.shard {
            let f = |s: Option<[usize; 2]>| s.map_or("none".into(), |[k, n]| format!("{k}/{n}"));
            d.push(format!("shard {} vs {}", f(other.shard), f(self.shard)));
        }
        if self.columns != other.columns {
            d.push("catalog columns differ (another model or --members-out?)".into());
        }
        (!d.is_empty()).then(|| d.join("; "))
    }

    fn read(path: &Path) -> Result<Self, PredictError> {
        let text = std::fs::read_to_string(path).map_err(|e| PredictError::Mismatch {
            path: path.to_path_buf(),
            reason: format!(
                "cannot read the catalog's identity ({e}); catalogs written before spectrain 0.2 have none: predict again"
            ),
        })?;
        serde_json::from_str(&text).map_err(|e| PredictError::Mismatch {
            path: path.to_path_buf(),
            reason: format!("not a catalog identity: {e}"),
        })
    }
}

/// `path` with `suffix` appended to its file name (`c.csv` -> `c.csv.json`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// `CATALOG.csv` -> `CATALOG.csv.json`.
pub fn identity_path(catalog: &Path) -> PathBuf {
    with_suffix(catalog, ".json")
}

/// The prediction columns of a catalog: `<label>, <label>_std, <label>_spread`
/// per label (the reported 1-sigma uncertainty, calibrated where the model has
/// `calibration.json`, and the raw member spread), or `class` then
/// `p_<class>, p_<class>_std` per class.
pub fn prediction_columns(spec: &crate::ensemble::EnsembleSpec) -> Vec<String> {
    let mut c = Vec::new();
    match spec.task {
        Task::Regress => {
            for l in &spec.label_names {
                c.push(l.clone());
                c.push(format!("{l}_std"));
                c.push(format!("{l}_spread"));
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
                row.push(fmt_float(mean));
                row.push(fmt_float(preds.sigma(i, j)));
                row.push(fmt_float(preds.std(i, j)));
            }
        }
        Task::Classify => {
            let best = (0..preds.outputs)
                .max_by(|a, b| preds.mean(i, *a).total_cmp(&preds.mean(i, *b)))
                .unwrap_or(0);
            row.push(spec.classes[best].clone());
            for o in 0..preds.outputs {
                row.push(fmt_float(preds.mean(i, o)));
                row.push(fmt_float(preds.std(i, o)));
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
    v.filter(|x| x.is_finite()).map_or(String::new(), fmt_float)
}

/// Whether every member's every output for input `i` is finite.
pub fn outputs_finite(preds: &crate::ensemble::Predictions, i: usize) -> bool {
    let o = preds.outputs;
    preds
        .members
        .iter()
        .all(|m| m[i * o..(i + 1) * o].iter().all(|v| v.is_finite()))
}

/// The reason written for a spectrum whose network outputs are not finite.
pub const NON_FINITE: &str = "non-finite-output: the network returned NaN or infinite values (broken weights, or an input far outside the training data)";

/// `CATALOG.csv` -> `CATALOG.csv.partial`.
pub fn partial_path(out: &Path) -> PathBuf {
    with_suffix(out, ".partial")
}

/// Writes the finished CSV `csv` as `out` in the format its name asks for.
fn publish(csv: &Path, out: &Path) -> Result<(), PredictError> {
    match crate::outputs::catalog_format(out)? {
        crate::outputs::CatalogFormat::Csv => std::fs::rename(csv, out)?,
        crate::outputs::CatalogFormat::Fits { gzip } => {
            csv_to_fits(csv, out, gzip)?;
            std::fs::remove_file(csv)?;
        }
    }
    Ok(())
}

/// Counts a catalog row's status into `summary`.
fn count_row(summary: &mut PredictSummary, status: &str, reason: &str) {
    match status {
        "ok" => summary.ok += 1,
        "failed" => summary.failed += 1,
        _ => {
            let code = reason.split(':').next().unwrap_or("").to_string();
            *summary.rejected.entry(code).or_insert(0) += 1;
        }
    }
}

/// Reads the rows of an interrupted run's partial catalog, drops a torn last
/// line, rewrites the file with complete rows only, counts them into
/// `summary` and returns their files.
fn recover_partial(
    path: &Path,
    header: &[String],
    summary: &mut PredictSummary,
) -> Result<HashSet<String>, PredictError> {
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
        count_row(summary, &rec[5], &rec[6]);
        done.insert(rec[0].to_string());
    }
    summary.resumed = done.len();
    std::fs::write(path, complete)?;
    Ok(done)
}

/// The identity of the catalog this run would write.
fn identity_of(
    opts: &PredictOptions,
    ensemble: &Ensemble,
    header: &[String],
) -> Result<CatalogIdentity, PredictError> {
    let files = crate::model_dir::ModelDir::new(&opts.model);
    let weights = (0..ensemble.members.len())
        .map(|m| crate::model_dir::sha256_file(&files.member_weights(m)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CatalogIdentity {
        spectrain_version: env!("CARGO_PKG_VERSION").into(),
        model: opts.model.display().to_string(),
        model_spec_sha256: crate::model_dir::sha256_file(&files.spec())?,
        weights_sha256: weights,
        calibration_sha256: match files.calibration() {
            path if path.exists() => Some(crate::model_dir::sha256_file(&path)?),
            _ => None,
        },
        gate_sha256: match files.gate() {
            path if path.exists() => Some(crate::model_dir::sha256_file(&path)?),
            _ => None,
        },
        spectra: crate::pathtext::path_text(&crate::outputs::resolve(&opts.spectra)),
        shard: opts.shard.map(|(k, n)| [k, n]),
        columns: header.to_vec(),
    })
}

fn write_identity(path: &Path, id: &CatalogIdentity) -> std::io::Result<()> {
    crate::atomic::write_atomically(path, |tmp| {
        std::fs::write(tmp, serde_json::to_string_pretty(id).expect("json"))
    })
}

/// Checks the output before any work: format, directory, existing files, and
/// that it is not an input.
fn check_output(opts: &PredictOptions) -> Result<(), PredictError> {
    if opts.out.is_dir() {
        return Err(crate::outputs::OutputError::IsDirectory(opts.out.clone()).into());
    }
    let format = crate::outputs::catalog_format(&opts.out)?;
    let inside =
        crate::outputs::resolve(&opts.out).starts_with(crate::outputs::resolve(&opts.spectra));
    if inside && format != crate::outputs::CatalogFormat::Csv {
        return Err(PredictError::OutInsideSpectra {
            out: opts.out.clone(),
            spectra: opts.spectra.clone(),
        });
    }
    crate::outputs::check_not_over_inputs(&opts.out, &[("model directory", &opts.model)])?;
    crate::outputs::create_parent(&opts.out)?;
    Ok(())
}

pub fn predict(opts: &PredictOptions) -> Result<PredictSummary, PredictError> {
    let start = Instant::now();
    check_output(opts)?;
    let compute = opts.backend.open()?;
    let ensemble = Ensemble::load(&opts.model, &compute.device)?;
    let spec = &ensemble.spec;
    if spec.features.is_some() {
        return Err(PredictError::TableModel(opts.model.clone()));
    }
    // The model's own recipe: training and inference cannot drift apart.
    let pre = Preprocessor::new(spec.preprocess.clone())?;
    let header = columns(&ensemble, opts.members_out);
    let run_id = identity_of(opts, &ensemble, &header)?;

    let all = find_spectra(&opts.spectra).map_err(|source| PredictError::Walk {
        path: opts.spectra.clone(),
        source,
    })?;
    if all.is_empty() {
        return Err(PredictError::NoFiles(opts.spectra.clone()));
    }
    let mut files: Vec<(PathBuf, String)> = all
        .into_iter()
        .map(|p| {
            let rel = crate::pathtext::path_text(p.strip_prefix(&opts.spectra).unwrap_or(&p));
            (p, rel)
        })
        .collect();
    if let Some((k, n)) = opts.shard {
        files.retain(|(_, rel)| shard_of(rel, n) == k - 1);
    }

    // One run at a time writes this catalog.
    let partial = partial_path(&opts.out);
    let lock = crate::lock::FileLock::acquire(
        &with_suffix(&partial, ".lock"),
        crate::lock::LockMode::Exclusive,
    )?;
    let partial_id = identity_path(&partial);
    let out_id = identity_path(&opts.out);

    let mut summary = PredictSummary {
        files: files.len(),
        ..Default::default()
    };
    if opts.out.exists() && !partial.exists() && !opts.force {
        if !opts.resume {
            return Err(crate::outputs::OutputError::Exists(opts.out.clone()).into());
        }
        // A finished catalog resumed: nothing to do, if it is this run's.
        let saved = CatalogIdentity::read(&out_id)?;
        if let Some(d) = run_id.differences(&saved, false) {
            return Err(PredictError::Mismatch {
                path: opts.out.clone(),
                reason: format!("the finished catalog was made differently: {d}"),
            });
        }
        summary.already_complete = true;
        summary.resumed = files.len();
        summary.seconds = start.elapsed().as_secs_f64();
        lock.release_and_remove();
        return Ok(summary);
    }
    let done = if partial.exists() && !opts.force {
        if !opts.resume {
            return Err(PredictError::PartialExists(partial));
        }
        let saved = CatalogIdentity::read(&partial_id)?;
        if let Some(d) = run_id.differences(&saved, false) {
            return Err(PredictError::Resume {
                path: partial.clone(),
                reason: format!("it was started differently: {d}"),
            });
        }
        recover_partial(&partial, &header, &mut summary)?
    } else {
        write_identity(&partial_id, &run_id)?;
        let mut w = csv::Writer::from_path(&partial).map_err(std::io::Error::other)?;
        w.write_record(&header).map_err(std::io::Error::other)?;
        w.flush()?;
        HashSet::new()
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
    let decode = |chunk: &[&(PathBuf, String)]| -> Vec<FileOutcome> {
        chunk
            .par_iter()
            .map(|(path, _)| {
                let o = process_file(path, &pre);
                bar.inc(1);
                o
            })
            .collect()
    };
    // On a GPU the next chunk is read and preprocessed on the CPU threads while
    // the device infers the current one; on the CPU backend both would share
    // the same cores, so the steps take turns.
    let overlap = compute.backend == "wgpu";
    let chunks: Vec<&[&(PathBuf, String)]> = todo.chunks(CHUNK).collect();
    std::thread::scope(|scope| -> Result<(), PredictError> {
        let mut outcomes = chunks.first().map(|c| decode(c));
        for (c, chunk) in chunks.iter().enumerate() {
            let next = chunks.get(c + 1).copied();
            let ahead = next
                .filter(|_| overlap)
                .map(|n| scope.spawn(move || decode(n)));
            let current = outcomes.take().expect("decoded chunk");
            write_chunk(
                &ensemble,
                opts,
                &header,
                chunk,
                &current,
                &mut writer,
                &mut summary,
            )?;
            outcomes = match (ahead, next) {
                (Some(handle), _) => Some(handle.join().expect("decoding thread")),
                (None, Some(n)) => Some(decode(n)),
                (None, None) => None,
            };
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    drop(writer);

    // The identity first, then the catalog: a kill in between leaves the
    // partial file and its identity, which --resume finishes.
    write_identity(&out_id, &run_id)?;
    publish(&partial, &opts.out)?;
    let _ = std::fs::remove_file(&partial_id);
    lock.release_and_remove();
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Infers one decoded chunk with every member and appends its rows, flushed
/// and synced, to the partial catalog.
fn write_chunk(
    ensemble: &Ensemble,
    opts: &PredictOptions,
    header: &[String],
    chunk: &[&(PathBuf, String)],
    outcomes: &[FileOutcome],
    writer: &mut csv::Writer<std::io::BufWriter<std::fs::File>>,
    summary: &mut PredictSummary,
) -> Result<(), PredictError> {
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
    for ((path, rel), outcome) in chunk.iter().zip(outcomes) {
        let row = match outcome {
            FileOutcome::Rejected {
                reason,
                detail,
                meta,
            } => {
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
                let i = k;
                k += 1;
                if outputs_finite(&preds, i) {
                    kept_row(ensemble, &preds, i, rel, spectrum, input, opts.members_out)
                } else {
                    let mut row = vec![rel.clone()];
                    row.extend(identity(Some(&spectrum.meta)));
                    row.push("failed".into());
                    row.push(NON_FINITE.into());
                    row.resize(header.len(), String::new());
                    row
                }
            }
        };
        count_row(summary, &row[5], &row[6]);
        writer.write_record(&row).map_err(std::io::Error::other)?;
    }
    writer.flush()?;
    writer.get_ref().get_ref().sync_data()?;
    Ok(())
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
    row.push(outside.map_or(String::new(), |(f, _)| fmt_float(f)));
    row.push(u8::from(out_of_range).to_string());
    row.push(u8::from(low_snr).to_string());
    row.push(outside.map_or(String::new(), |(f, max)| u8::from(f > max).to_string()));
    if members_out {
        for member in &preds.members {
            for o in 0..outputs {
                row.push(fmt_float(member[i * outputs + o] as f64));
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
    force: bool,
) -> Result<MergeReport, PredictError> {
    crate::outputs::catalog_format(out)?;
    let inputs: Vec<(&str, &Path)> = shards.iter().map(|p| ("shard", p.as_path())).collect();
    crate::outputs::check_not_over_inputs(out, &inputs)?;
    crate::outputs::check_file(out, force)?;
    // Every shard must come from the same model, spectra and columns, and be a
    // different K of the same N.
    let mut first: Option<(PathBuf, CatalogIdentity)> = None;
    let mut seen_shards = HashSet::new();
    for shard in shards {
        let id = CatalogIdentity::read(&identity_path(shard))?;
        if let Some(k) = id.shard {
            if !seen_shards.insert(k) {
                return Err(PredictError::Mismatch {
                    path: shard.clone(),
                    reason: format!("shard {}/{} is given twice", k[0], k[1]),
                });
            }
        }
        match &first {
            None => first = Some((shard.clone(), id)),
            Some((p, f)) => {
                let mut d = f.differences(&id, true);
                if f.shard.map(|s| s[1]) != id.shard.map(|s| s[1]) {
                    let n = |s: Option<[usize; 2]>| {
                        s.map_or("unsharded".into(), |s| format!("of {}", s[1]))
                    };
                    d = Some(format!(
                        "{}shard {} vs {}",
                        d.map_or(String::new(), |d| format!("{d}; ")),
                        n(id.shard),
                        n(f.shard)
                    ));
                }
                if let Some(d) = d {
                    return Err(PredictError::Mismatch {
                        path: shard.clone(),
                        reason: format!("made differently from {}: {d}", p.display()),
                    });
                }
            }
        }
    }
    let (_, first) = first.ok_or_else(|| PredictError::Mismatch {
        path: out.to_path_buf(),
        reason: "no shard catalogs given".into(),
    })?;
    if let Some(dir) = spectra {
        let given = crate::pathtext::path_text(&crate::outputs::resolve(dir));
        if given != first.spectra {
            return Err(PredictError::Mismatch {
                path: dir.to_path_buf(),
                reason: format!("the shards were predicted over {}", first.spectra),
            });
        }
    }
    let mut header: Option<Vec<String>> = None;
    // Keyed by the file's text so the order is a single run's (find_spectra sorts paths).
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
            let key = crate::pathtext::path_from_text(&rec[0]);
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
                report.missing.push(crate::pathtext::path_text(&rel));
            }
        }
    }
    report.rows = rows.len();
    let header = header.unwrap_or_default();
    let tmp_csv = partial_path(out);
    let write_csv = |path: &Path| -> std::io::Result<()> {
        let mut w = csv::Writer::from_path(path)?;
        w.write_record(&header)?;
        for rec in rows.values() {
            w.write_record(rec)?;
        }
        w.flush()
    };
    write_csv(&tmp_csv)?;
    let merged = CatalogIdentity {
        shard: None,
        ..first
    };
    write_identity(&identity_path(out), &merged)?;
    publish(&tmp_csv, out)?;
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
