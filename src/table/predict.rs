//! `spectrain predict --table`: a catalog-feature model over a CSV, one output
//! row per input row, predicted or rejected with its reason.
//!
//! Rows are read and predicted in chunks and written to a temporary file that
//! is renamed into place when complete, so memory stays flat and a killed run
//! leaves no half-written catalog.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use super::{
    column_indices, header, read_features, reader, row_id, MissingFeatures, RowFeatures, TableError,
};
use crate::atomic::write_atomically;
use crate::ensemble::{Ensemble, EnsembleError};
use crate::model::BackendChoice;
use crate::predict::{prediction_cells, prediction_columns};

const CHUNK: usize = 65_536;

#[derive(Debug, Clone)]
pub struct PredictTableOptions {
    pub model: PathBuf,
    pub table: PathBuf,
    pub out: PathBuf,
    /// Column naming each row (default: its 1-based row number).
    pub id: Option<String>,
    pub batch: usize,
    pub backend: BackendChoice,
    /// Replace an existing output.
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PredictTableError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Ensemble(#[from] EnsembleError),
    #[error(transparent)]
    Backend(#[from] crate::model::backend::BackendError),
    #[error("{0}: this model reads spectra; use predict --spectra")]
    NotATableModel(PathBuf),
    #[error(transparent)]
    Output(#[from] crate::outputs::OutputError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Default)]
pub struct PredictTableSummary {
    pub rows: usize,
    pub ok: usize,
    /// Rows whose network outputs were not finite (`status=failed`).
    pub failed: usize,
    pub imputed: usize,
    pub rejected: BTreeMap<String, usize>,
    pub seconds: f64,
}

/// The output columns.
pub fn columns(ensemble: &Ensemble) -> Vec<String> {
    let spec = &ensemble.spec;
    let mut c: Vec<String> = ["row", "id", "status", "reason"].map(String::from).to_vec();
    c.extend(prediction_columns(spec));
    c.extend(["imputed", "outside_features", "flag_range", "flag_domain"].map(String::from));
    c
}

pub fn predict_table(opts: &PredictTableOptions) -> Result<PredictTableSummary, PredictTableError> {
    let start = Instant::now();
    crate::outputs::require_csv(&opts.out)?;
    crate::outputs::check_not_over_inputs(
        &opts.out,
        &[("table", &opts.table), ("model directory", &opts.model)],
    )?;
    crate::outputs::check_file(&opts.out, opts.force)?;
    let compute = opts.backend.open()?;
    let ensemble = Ensemble::load(&opts.model, &compute.device)?;
    let spec = &ensemble.spec;
    let scaler = spec
        .features
        .as_ref()
        .ok_or_else(|| PredictTableError::NotATableModel(opts.model.clone()))?;
    let mut r = reader(&opts.table)?;
    let header = header(&opts.table, &mut r)?;
    // Every feature the model was trained on must be there: an error naming it otherwise.
    let fidx = column_indices(&opts.table, &header, &scaler.names, "feature of the model")?;
    let id_idx = match &opts.id {
        Some(c) => Some(column_indices(&opts.table, &header, std::slice::from_ref(c), "id")?[0]),
        None => None,
    };
    let out_cols = columns(&ensemble);
    let mut summary = PredictTableSummary::default();
    write_atomically(&opts.out, |tmp| -> Result<(), PredictTableError> {
        let mut w = csv::Writer::from_path(tmp).map_err(std::io::Error::other)?;
        w.write_record(&out_cols).map_err(std::io::Error::other)?;
        let mut records = r.byte_records().enumerate().peekable();
        while records.peek().is_some() {
            let chunk: Vec<_> = records.by_ref().take(CHUNK).collect();
            let mut rows = Vec::with_capacity(chunk.len());
            let mut inputs = Vec::new();
            for (i, rec) in chunk {
                let rec = rec.map_err(|source| TableError::Csv {
                    path: opts.table.clone(),
                    source,
                })?;
                let row_no = (i + 1).to_string();
                let id = row_id(&rec, id_idx, &row_no);
                let f = read_features(&rec, &fidx, &scaler.names, MissingFeatures::Impute);
                if let RowFeatures::Kept { values, .. } = &f {
                    inputs.extend_from_slice(values);
                }
                rows.push((row_no, id, f));
            }
            let preds = ensemble.predict(&inputs, opts.batch);
            let mut k = 0;
            for (row_no, id, f) in rows {
                summary.rows += 1;
                let mut out = vec![row_no, id];
                match f {
                    RowFeatures::Rejected { reason, detail } => {
                        *summary.rejected.entry(reason.to_string()).or_insert(0) += 1;
                        out.push("rejected".into());
                        out.push(format!("{reason}: {detail}"));
                        out.resize(out_cols.len(), String::new());
                    }
                    RowFeatures::Kept { .. } if !crate::predict::outputs_finite(&preds, k) => {
                        summary.failed += 1;
                        out.push("failed".into());
                        out.push(crate::predict::NON_FINITE.into());
                        out.resize(out_cols.len(), String::new());
                        k += 1;
                    }
                    RowFeatures::Kept { values, missing } => {
                        summary.ok += 1;
                        summary.imputed += usize::from(!missing.is_empty());
                        out.push("ok".into());
                        out.push(String::new());
                        let (cells, out_of_range) = prediction_cells(spec, &preds, k);
                        out.extend(cells);
                        let imputed: Vec<&str> =
                            missing.iter().map(|&m| scaler.names[m].as_str()).collect();
                        let outside = scaler.outside(&values);
                        let domain = !imputed.is_empty() || !outside.is_empty();
                        out.push(imputed.join(";"));
                        out.push(outside.join(";"));
                        out.push(u8::from(out_of_range).to_string());
                        out.push(u8::from(domain).to_string());
                        k += 1;
                    }
                }
                w.write_record(&out).map_err(std::io::Error::other)?;
            }
        }
        w.flush()?;
        Ok(())
    })?;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}
