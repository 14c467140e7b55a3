//! Catalog-feature tables (METHOD section 8): numeric CSV columns in, a dataset
//! (`spectrain prepare-table`) or a catalog of predictions (`predict --table`)
//! out.
//!
//! Missing values are explicit, never silently dropped. Cells are read by the
//! one CSV rule of [`crate::csvio`] (missing: empty, `nan`, `na`, `n/a`,
//! `null`, `none`, `-`; otherwise a number finite in f32). Then:
//! - a missing **label** rejects the row (`missing-label`), listed with its
//!   reason in `<out>.rejects.csv`;
//! - a missing **feature** is kept as NaN and, at training and prediction,
//!   replaced by the training mean of that feature (0 after standardisation);
//!   predictions say which features were imputed. With `--missing reject`
//!   such rows are rejected instead (`missing-feature`);
//! - a row with every feature missing is rejected (`no-features`);
//! - a cell that is not a number finite in f32 (`abc`, `inf`, `1e39`) rejects
//!   the row (`not-a-number`), naming the column and the text.

pub mod predict;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::atomic::write_atomically;
use crate::dataset::{rejects_path, Dataset, DatasetError, Sample};

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: no column '{column}' ({role}); the table has: {available}")]
    MissingColumn {
        path: PathBuf,
        column: String,
        role: &'static str,
        available: String,
    },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Output(#[from] crate::outputs::OutputError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// What to do with a row whose feature is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MissingFeatures {
    /// Keep the row; the feature is imputed with its training mean.
    Impute,
    /// Reject the row (`missing-feature`).
    Reject,
}

pub use crate::csvio::{parse_cell, Cell};

/// A CSV reader with the one rule of [`crate::csvio`].
pub fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>, TableError> {
    crate::csvio::reader(path).map_err(|source| TableError::Csv {
        path: path.to_path_buf(),
        source,
    })
}

/// The header of a table opened with [`reader`].
pub fn header(
    path: &Path,
    r: &mut csv::Reader<std::fs::File>,
) -> Result<crate::csvio::Header, TableError> {
    crate::csvio::Header::read(r).map_err(|source| TableError::Csv {
        path: path.to_path_buf(),
        source,
    })
}

/// Index of each of `names` in `header`, or an error naming the first absent one.
pub fn column_indices(
    path: &Path,
    header: &crate::csvio::Header,
    names: &[String],
    role: &'static str,
) -> Result<Vec<usize>, TableError> {
    names
        .iter()
        .map(|n| {
            header.find(n).ok_or_else(|| TableError::MissingColumn {
                path: path.to_path_buf(),
                column: n.clone(),
                role,
                available: header.list(),
            })
        })
        .collect()
}

/// A row's id: its `id` column, or its 1-based row number when there is none
/// (or the cell is empty).
pub fn row_id(record: &csv::ByteRecord, id_idx: Option<usize>, row_no: &str) -> String {
    id_idx
        .map(|c| crate::csvio::cell_text(record, c))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| row_no.to_string())
}

/// How a row's features read: values (NaN where missing), or why it is rejected.
pub enum RowFeatures {
    Kept {
        values: Vec<f32>,
        missing: Vec<usize>,
    },
    Rejected {
        reason: &'static str,
        detail: String,
    },
}

pub fn read_features(
    record: &csv::ByteRecord,
    idx: &[usize],
    names: &[String],
    missing: MissingFeatures,
) -> RowFeatures {
    let mut values = Vec::with_capacity(idx.len());
    let mut absent = Vec::new();
    for (k, &c) in idx.iter().enumerate() {
        match parse_cell(record.get(c).unwrap_or(b"")) {
            Cell::Value(v) => values.push(v as f32),
            Cell::Missing => {
                values.push(f32::NAN);
                absent.push(k);
            }
            Cell::Bad => {
                return RowFeatures::Rejected {
                    reason: "not-a-number",
                    detail: format!("{}: '{}'", names[k], crate::csvio::cell_text(record, c)),
                }
            }
        }
    }
    if !idx.is_empty() && absent.len() == idx.len() {
        return RowFeatures::Rejected {
            reason: "no-features",
            detail: "every feature is missing".into(),
        };
    }
    if missing == MissingFeatures::Reject && !absent.is_empty() {
        return RowFeatures::Rejected {
            reason: "missing-feature",
            detail: absent
                .iter()
                .map(|&k| names[k].as_str())
                .collect::<Vec<_>>()
                .join(","),
        };
    }
    RowFeatures::Kept {
        values,
        missing: absent,
    }
}

#[derive(Debug, Clone)]
pub struct PrepareTableOptions {
    pub table: PathBuf,
    pub out: PathBuf,
    pub features: Vec<String>,
    pub labels: Vec<String>,
    /// Column naming each row (default: its 1-based row number).
    pub id: Option<String>,
    pub missing: MissingFeatures,
    /// Replace an existing dataset at `out`.
    pub force: bool,
}

#[derive(Debug, Clone, Default)]
pub struct PrepareTableSummary {
    pub rows: usize,
    pub kept: usize,
    /// Kept rows with at least one imputed feature.
    pub imputed_rows: usize,
    /// Missing values per feature among kept rows.
    pub missing_per_feature: Vec<(String, usize)>,
    pub rejected: BTreeMap<String, usize>,
    pub rejects_path: PathBuf,
    pub seconds: f64,
}

/// `spectrain prepare-table`: numeric CSV columns into a catalog-feature dataset.
pub fn prepare_table(opts: &PrepareTableOptions) -> Result<PrepareTableSummary, TableError> {
    let start = Instant::now();
    if opts.features.is_empty() || opts.labels.is_empty() {
        return Err(TableError::Config(
            "--features and --labels each need at least one column".into(),
        ));
    }
    if let Some(both) = opts.features.iter().find(|f| opts.labels.contains(f)) {
        return Err(TableError::Config(format!(
            "column '{both}' is both a feature and a label"
        )));
    }
    crate::outputs::require_hdf5(&opts.out)?;
    crate::outputs::check_not_over_inputs(&opts.out, &[("table", &opts.table)])?;
    crate::outputs::check_file(&opts.out, opts.force)?;
    let mut r = reader(&opts.table)?;
    let csv_err = |source| TableError::Csv {
        path: opts.table.clone(),
        source,
    };
    let header = header(&opts.table, &mut r)?;
    let fidx = column_indices(&opts.table, &header, &opts.features, "feature")?;
    let lidx = column_indices(&opts.table, &header, &opts.labels, "label")?;
    let id_idx = match &opts.id {
        Some(c) => Some(column_indices(&opts.table, &header, std::slice::from_ref(c), "id")?[0]),
        None => None,
    };
    let mut data = Dataset::table(opts.labels.clone(), opts.features.clone());
    let mut summary = PrepareTableSummary {
        missing_per_feature: opts.features.iter().map(|f| (f.clone(), 0)).collect(),
        rejects_path: rejects_path(&opts.out),
        ..Default::default()
    };
    let mut rejects: Vec<[String; 4]> = Vec::new();
    for (i, rec) in r.byte_records().enumerate() {
        let rec = rec.map_err(csv_err)?;
        summary.rows += 1;
        let row_no = (i + 1).to_string();
        let id = row_id(&rec, id_idx, &row_no);
        let mut reject = |reason: &str, detail: String| {
            *summary.rejected.entry(reason.to_string()).or_insert(0) += 1;
            rejects.push([row_no.clone(), id.clone(), reason.to_string(), detail]);
        };
        let mut labels = Vec::with_capacity(lidx.len());
        let mut bad_label = None;
        for (k, &c) in lidx.iter().enumerate() {
            match parse_cell(rec.get(c).unwrap_or(b"")) {
                Cell::Value(v) => labels.push(v as f32),
                Cell::Missing => {
                    bad_label = Some(("missing-label", opts.labels[k].clone()));
                    break;
                }
                Cell::Bad => {
                    let text = crate::csvio::cell_text(&rec, c);
                    bad_label = Some(("not-a-number", format!("{}: '{text}'", opts.labels[k])));
                    break;
                }
            }
        }
        if let Some((reason, detail)) = bad_label {
            reject(reason, detail);
            continue;
        }
        match read_features(&rec, &fidx, &opts.features, opts.missing) {
            RowFeatures::Rejected { reason, detail } => reject(reason, detail),
            RowFeatures::Kept { values, missing } => {
                summary.kept += 1;
                summary.imputed_rows += usize::from(!missing.is_empty());
                for k in missing {
                    summary.missing_per_feature[k].1 += 1;
                }
                data.push(Sample {
                    id: id.clone(),
                    file: id,
                    input: values,
                    labels,
                    snrg: f64::NAN,
                    ra: f64::NAN,
                    dec: f64::NAN,
                    z: f64::NAN,
                });
            }
        }
    }
    write_atomically(&summary.rejects_path, |tmp| -> std::io::Result<()> {
        let mut w = csv::Writer::from_path(tmp)?;
        w.write_record(["row", "id", "reason", "detail"])?;
        for r in &rejects {
            w.write_record(r)?;
        }
        w.flush()
    })?;
    if data.is_empty() {
        return Err(TableError::Config(format!(
            "{}: no usable rows ({} read; the reasons are in {})",
            opts.table.display(),
            summary.rows,
            summary.rejects_path.display()
        )));
    }
    data.write(&opts.out)?;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}
