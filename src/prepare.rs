//! `spectrain prepare`: a directory of FITS spectra plus a label catalog in, an
//! HDF5 [`Dataset`] and a reject list out. Every input file ends up in exactly
//! one of the two.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use crate::atomic::write_atomically;
use crate::dataset::{
    rejects_path, Dataset, DatasetError, JoinKey, LabelError, LabelLookup, LabelTable, Sample,
};
use crate::fits::find_spectra;
use crate::ingest::{process_file, FileOutcome};
use crate::preprocess::{ConfigError, PreprocessConfig, Preprocessor};

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub spectra: PathBuf,
    pub labels: PathBuf,
    pub out: PathBuf,
    pub join: JoinKey,
    pub columns: Vec<String>,
    pub config: PreprocessConfig,
    /// Replace an existing dataset at `out`.
    pub force: bool,
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Labels(#[from] LabelError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: cannot list spectra: {source}")]
    Walk {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no .fits, .fit or .fits.gz files found")]
    NoFiles { path: PathBuf },
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Output(#[from] crate::outputs::OutputError),
    #[error(
        "no spectrum could be used: {files} files, all rejected ({reasons}); see {rejects}{hint}"
    )]
    NothingKept {
        files: usize,
        reasons: String,
        rejects: PathBuf,
        hint: &'static str,
    },
    #[error("{path}: cannot write reject list: {source}")]
    Rejects {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why one input file is not in the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub file: String,
    /// A stable short code (e.g. `zero-flux`, `unreadable`, `no-label`).
    pub reason: &'static str,
    /// A sentence for a person.
    pub detail: String,
}

/// Counts for the end-of-run summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrepareSummary {
    pub files: usize,
    pub kept: usize,
    pub rejected: BTreeMap<&'static str, usize>,
    pub seconds: f64,
    pub rejects_path: PathBuf,
}

impl PrepareSummary {
    pub fn spectra_per_second(&self) -> f64 {
        self.files as f64 / self.seconds.max(1e-9)
    }
}

pub fn prepare(opts: &PrepareOptions) -> Result<PrepareSummary, PrepareError> {
    let start = Instant::now();
    let pre = Preprocessor::new(opts.config.clone())?;
    // Where the results go is checked before any file is read.
    let rejects_path = rejects_path(&opts.out);
    crate::outputs::require_hdf5(&opts.out)?;
    crate::outputs::check_not_over_inputs(&opts.out, &[("label catalog", &opts.labels)])?;
    crate::outputs::check_not_over_inputs(&rejects_path, &[("label catalog", &opts.labels)])?;
    crate::outputs::check_file(&opts.out, opts.force)?;
    crate::outputs::check_file(&rejects_path, true)?;
    // Fail on a bad catalog before touching thousands of files.
    let labels = LabelTable::read(&opts.labels, opts.join, &opts.columns)?;
    if labels.duplicate_keys > 0 {
        tracing::warn!(
            "{}: {} label rows repeat a join key; the first row of each is used",
            opts.labels.display(),
            labels.duplicate_keys
        );
    }
    let files = find_spectra(&opts.spectra).map_err(|source| PrepareError::Walk {
        path: opts.spectra.clone(),
        source,
    })?;
    if files.is_empty() {
        return Err(PrepareError::NoFiles {
            path: opts.spectra.clone(),
        });
    }
    tracing::info!(
        "{} spectra under {}, {} label rows",
        files.len(),
        opts.spectra.display(),
        labels.len()
    );

    let bar = crate::progress::bar(files.len() as u64, "prepare", opts.progress);
    let outcomes: Vec<FileOutcome> = files
        .par_iter()
        .map(|path| {
            let outcome = process_file(path, &pre);
            bar.inc(1);
            outcome
        })
        .collect();
    bar.finish_and_clear();

    let mut dataset = Dataset::new(opts.columns.clone(), opts.config.clone());
    let mut rejects = Vec::new();
    for (path, outcome) in files.iter().zip(outcomes) {
        let file = crate::pathtext::path_text(path);
        match outcome {
            FileOutcome::Rejected { reason, detail, .. } => rejects.push(Reject {
                file,
                reason,
                detail,
            }),
            FileOutcome::Kept { spectrum, input } => match labels.lookup(&spectrum.meta) {
                LabelLookup::Found(values) => {
                    let m = &spectrum.meta;
                    let nan = f64::NAN;
                    dataset.push(Sample {
                        id: LabelTable::spectrum_id(m),
                        file,
                        input,
                        labels: values,
                        snrg: m.snrg.unwrap_or(nan),
                        ra: m.ra.unwrap_or(nan),
                        dec: m.dec.unwrap_or(nan),
                        z: m.z.unwrap_or(nan),
                    })
                }
                LabelLookup::NoRow(why) => rejects.push(Reject {
                    detail: format!("{file}: {why}"),
                    file,
                    reason: "no-label",
                }),
                LabelLookup::Missing(column) => rejects.push(Reject {
                    detail: format!("{file}: label '{column}' is empty or NaN in the catalog"),
                    file,
                    reason: "missing-label",
                }),
                LabelLookup::Bad(column, text) => rejects.push(Reject {
                    detail: format!(
                        "{file}: label '{column}' is '{text}', not a number finite in 32 bits"
                    ),
                    file,
                    reason: "not-a-number",
                }),
            },
        }
    }

    write_rejects(&rejects_path, &rejects).map_err(|source| PrepareError::Rejects {
        path: rejects_path.clone(),
        source,
    })?;
    let mut rejected = BTreeMap::new();
    for r in &rejects {
        *rejected.entry(r.reason).or_insert(0) += 1;
    }
    if dataset.is_empty() {
        // Every spectrum that could be read found no label row: the join is wrong.
        let only_no_label = rejected.contains_key("no-label")
            && !rejected.contains_key("missing-label")
            && !rejected.contains_key("not-a-number");
        return Err(PrepareError::NothingKept {
            files: files.len(),
            reasons: rejected
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            rejects: rejects_path,
            hint: match (only_no_label, opts.join) {
                (true, JoinKey::Obsid) => "; no OBSID matched the catalog's obsid column: if the catalog names files, use --id file",
                (true, JoinKey::File) => "; no file name matched the catalog's file column",
                _ => "",
            },
        });
    }
    dataset.write(&opts.out)?;
    Ok(PrepareSummary {
        files: files.len(),
        kept: dataset.len(),
        rejected,
        seconds: start.elapsed().as_secs_f64(),
        rejects_path,
    })
}

/// `file,reason,detail`, one row per rejected input, written atomically.
pub fn write_rejects(path: &Path, rejects: &[Reject]) -> std::io::Result<()> {
    write_atomically(path, |tmp| {
        let mut w = csv::Writer::from_writer(std::io::BufWriter::new(std::fs::File::create(tmp)?));
        w.write_record(["file", "reason", "detail"])?;
        for r in rejects {
            w.write_record([r.file.as_str(), r.reason, r.detail.as_str()])?;
        }
        let mut inner = w.into_inner().map_err(|e| e.into_error())?;
        inner.flush()?;
        inner.get_ref().sync_all()
    })
}
