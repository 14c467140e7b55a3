//! Catalog-feature tables (METHOD section 8): numeric CSV columns in, a dataset
//! (`spectrain prepare-table`) or a catalog of predictions (`predict --table`)
//! out.
//!
//! Missing values are explicit, never silently dropped. A cell is *missing*
//! when it is empty or reads `nan`, `NA`, `null` or `-` (any case). Then:
//! - a missing **label** rejects the row (`missing-label`), listed with its
//!   reason in `<out>.rejects.csv`;
//! - a missing **feature** is kept as NaN and, at training and prediction,
//!   replaced by the training mean of that feature (0 after standardisation);
//!   predictions say which features were imputed. With `--missing reject`
//!   such rows are rejected instead (`missing-feature`);
//! - a row with every feature missing is rejected (`no-features`);
//! - a cell that is not a number, or is infinite, rejects the row
//!   (`not-a-number`), naming the column and the text.

pub mod predict;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::atomic::write_atomically;
use crate::dataset::{Dataset, DatasetError, Sample};

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

/// One cell read as a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    Value(f64),
    Missing,
    /// Text that is not a finite number.
    Bad,
}

pub fn parse_cell(text: &str) -> Cell {
    let t = text.trim();
    if t.is_empty() || ["nan", "na", "null", "-", "none"].contains(&t.to_ascii_lowercase().as_str())
    {
        return Cell::Missing;
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Cell::Value(v),
        _ => Cell::Bad,
    }
}

/// A CSV reader that skips `#` comment lines and trims fields.
pub fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>, TableError> {
    csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|source| TableError::Csv {
            path: path.to_path_buf(),
            source,
        })
}

/// Index of each of `names` in `header`, or an error naming the first absent one.
pub fn column_indices(
    path: &Path,
    header: &csv::StringRecord,
    names: &[String],
    role: &'static str,
) -> Result<Vec<usize>, TableError> {
    names
        .iter()
        .map(|n| {
            header
                .iter()
                .position(|h| h == n)
                .ok_or_else(|| TableError::MissingColumn {
                    path: path.to_path_buf(),
                    column: n.clone(),
                    role,
                    available: header.iter().collect::<Vec<_>>().join(","),
                })
        })
        .collect()
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
    record: &csv::StringRecord,
    idx: &[usize],
    names: &[String],
    missing: MissingFeatures,
) -> RowFeatures {
    let mut values = Vec::with_capacity(idx.len());
    let mut absent = Vec::new();
    for (k, &c) in idx.iter().enumerate() {
        let text = record.get(c).unwrap_or("");
        match parse_cell(text) {
            Cell::Value(v) => values.push(v as f32),
            Cell::Missing => {
                values.push(f32::NAN);
                absent.push(k);
            }
            Cell::Bad => {
                return RowFeatures::Rejected {
                    reason: "not-a-number",
                    detail: format!("{}: '{text}'", names[k]),
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

/// `DATA.h5` -> `DATA.rejects.csv`.
pub fn rejects_path(out: &Path) -> PathBuf {
    out.with_extension("rejects.csv")
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
    let mut r = reader(&opts.table)?;
    let csv_err = |source| TableError::Csv {
        path: opts.table.clone(),
        source,
    };
    let header = r.headers().map_err(csv_err)?.clone();
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
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(csv_err)?;
        summary.rows += 1;
        let row_no = (i + 1).to_string();
        let id = id_idx
            .and_then(|c| rec.get(c))
            .filter(|s| !s.is_empty())
            .map_or(row_no.clone(), str::to_string);
        let mut reject = |reason: &str, detail: String| {
            *summary.rejected.entry(reason.to_string()).or_insert(0) += 1;
            rejects.push([row_no.clone(), id.clone(), reason.to_string(), detail]);
        };
        let mut labels = Vec::with_capacity(lidx.len());
        let mut bad_label = None;
        for (k, &c) in lidx.iter().enumerate() {
            let text = rec.get(c).unwrap_or("");
            match parse_cell(text) {
                Cell::Value(v) => labels.push(v as f32),
                Cell::Missing => {
                    bad_label = Some(("missing-label", opts.labels[k].clone()));
                    break;
                }
                Cell::Bad => {
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
    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
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
