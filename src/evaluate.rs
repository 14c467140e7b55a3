//! Scoring predictions against known labels (METHOD section 6): overall, in
//! SNR bins, per member and for the ensemble. Used by `train` (validation split)
//! and `spectrain evaluate` (any labelled dataset).

use serde::{Deserialize, Serialize};

use crate::dataset::targets::TargetsError;
use crate::dataset::Dataset;
// The label selection lives in `dataset::targets`; re-exported while
// `train` still imports it from here.
pub use crate::dataset::targets::{select_targets, Targets};
use crate::ensemble::Task;
use crate::metrics::{cell, ClassificationMetrics, LabelMetrics, RegressionMetrics, SNR_BINS};

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Targets(#[from] TargetsError),
}

/// Validation metrics, overall and in SNR bins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    /// Each label's name and metrics.
    pub labels: Vec<(String, LabelMetrics)>,
    /// Each non-empty SNR bin's name and its labels' metrics.
    pub snr_bins: Vec<(String, Vec<(String, LabelMetrics)>)>,
}

/// Predicted and true values of label `j` over `rows` (`pred` is `[rows, l]`).
pub fn label_columns(
    pred: &[f32],
    values: &[f32],
    rows: &[usize],
    l: usize,
    j: usize,
) -> (Vec<f64>, Vec<f64>) {
    let p = (0..rows.len()).map(|i| pred[i * l + j] as f64).collect();
    let y = rows.iter().map(|&r| values[r * l + j] as f64).collect();
    (p, y)
}

pub fn classes_of(
    probs: &[f32],
    values: &[f32],
    rows: &[usize],
    outputs: usize,
) -> (Vec<usize>, Vec<usize>) {
    let predicted = probs
        .chunks(outputs)
        .map(|p| {
            p.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(k, _)| k)
        })
        .collect();
    let truth = rows.iter().map(|&r| values[r] as usize).collect();
    (predicted, truth)
}

/// Metrics of the member mean of `preds` (each `[rows, outputs]`) over `rows`.
pub fn evaluate(
    targets: &Targets,
    data: &Dataset,
    rows: &[usize],
    preds: &[Vec<f32>],
    outputs: usize,
) -> Evaluation {
    let mean: Vec<f32> = (0..preds[0].len())
        .map(|k| (preds.iter().map(|p| p[k] as f64).sum::<f64>() / preds.len() as f64) as f32)
        .collect();
    let metrics_of = |subset: &[usize]| -> Vec<(String, LabelMetrics)> {
        let sub_pred: Vec<f32> = subset
            .iter()
            .flat_map(|&i| mean[i * outputs..(i + 1) * outputs].to_vec())
            .collect();
        let sub_rows: Vec<usize> = subset.iter().map(|&i| rows[i]).collect();
        match targets.task {
            Task::Regress => {
                let l = targets.names.len();
                (0..l)
                    .map(|j| {
                        let (p, y) = label_columns(&sub_pred, &targets.values, &sub_rows, l, j);
                        let m = RegressionMetrics::compute(&p, &y);
                        (targets.names[j].clone(), LabelMetrics::Regression(m))
                    })
                    .collect()
            }
            Task::Classify => {
                let (p, t) = classes_of(&sub_pred, &targets.values, &sub_rows, outputs);
                vec![(
                    targets.names[0].clone(),
                    LabelMetrics::Classification(ClassificationMetrics::compute(&p, &t)),
                )]
            }
        }
    };
    let all: Vec<usize> = (0..rows.len()).collect();
    let snr_bins = SNR_BINS
        .iter()
        .filter_map(|(lo, hi, name)| {
            let subset: Vec<usize> = all
                .iter()
                .copied()
                .filter(|&i| {
                    let s = data.snrg[rows[i]];
                    s >= *lo && s < *hi
                })
                .collect();
            (!subset.is_empty()).then(|| (name.to_string(), metrics_of(&subset)))
        })
        .collect();
    Evaluation {
        labels: metrics_of(&all),
        snr_bins,
    }
}

/// `spectrain evaluate`: a trained ensemble scored on a labelled dataset.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    pub model: std::path::PathBuf,
    pub data: std::path::PathBuf,
    pub out: std::path::PathBuf,
    pub backend: crate::model::BackendChoice,
    pub batch: usize,
}

/// `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationReport {
    pub model: String,
    pub data: String,
    pub spectra: usize,
    pub task: Task,
    pub label_names: Vec<String>,
    pub ensemble: Evaluation,
    pub members: Vec<Evaluation>,
    /// Mean over spectra of the member spread, per label (regression).
    pub mean_member_std: Vec<f64>,
    /// Mean member MAE per label (regression): what a single network achieves.
    pub mean_member_mae: Vec<f64>,
    /// How often the reported uncertainties cover the errors, per label (regression).
    pub coverage: Vec<Coverage>,
}

/// Fractions of a label's errors within 1 and 2 of the reported sigma (the
/// calibrated one where the model has a calibration) and of the raw member
/// spread. A Gaussian gives 0.683 and 0.954.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub label: String,
    /// Whether the reported sigma is calibrated (`calibration.json`) or the raw spread.
    pub calibrated: bool,
    pub sigma_1: f64,
    pub sigma_2: f64,
    /// Mean reported sigma, in label units.
    pub mean_sigma: f64,
    pub spread_1: f64,
    pub spread_2: f64,
}

impl Coverage {
    /// Coverage of label `j` of `preds` over rows whose truth is row-major `[n, L]` in `truth`.
    pub fn compute(
        label: &str,
        j: usize,
        l: usize,
        truth: &[f64],
        preds: &crate::ensemble::Predictions,
    ) -> Self {
        let n = preds.len();
        let keep: Vec<usize> = (0..n).filter(|&i| truth[i * l + j].is_finite()).collect();
        let err: Vec<f64> = keep
            .iter()
            .map(|&i| (preds.mean(i, j) - truth[i * l + j]).abs())
            .collect();
        let sigma: Vec<f64> = keep.iter().map(|&i| preds.sigma(i, j)).collect();
        let spread: Vec<f64> = keep.iter().map(|&i| preds.std(i, j)).collect();
        let [sigma_1, sigma_2] = crate::ensemble::calibration::coverage(&err, &sigma);
        let [spread_1, spread_2] = crate::ensemble::calibration::coverage(&err, &spread);
        Self {
            label: label.to_string(),
            calibrated: preds.sigma.is_some(),
            sigma_1,
            sigma_2,
            mean_sigma: sigma.iter().sum::<f64>() / sigma.len().max(1) as f64,
            spread_1,
            spread_2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvaluateRunError {
    #[error(transparent)]
    Targets(#[from] EvaluateError),
    #[error(transparent)]
    Dataset(#[from] crate::dataset::DatasetError),
    #[error(transparent)]
    Ensemble(#[from] crate::ensemble::EnsembleError),
    #[error(transparent)]
    Backend(#[from] crate::model::backend::BackendError),
    #[error("{data}: preprocessed with a different recipe than the model's training data; re-run prepare with the model's settings")]
    RecipeMismatch { data: std::path::PathBuf },
    #[error("{data}: its inputs are {have}, but the model reads {want}")]
    FeatureMismatch {
        data: std::path::PathBuf,
        have: String,
        want: String,
    },
    #[error(transparent)]
    Output(#[from] crate::outputs::OutputError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub fn evaluate_model(opts: &EvaluateOptions) -> Result<EvaluationReport, EvaluateRunError> {
    crate::outputs::check_dir(&opts.out)?;
    crate::outputs::check_not_over_inputs(
        &opts.out,
        &[("model directory", &opts.model), ("dataset", &opts.data)],
    )?;
    let compute = opts.backend.open()?;
    let ensemble = crate::ensemble::Ensemble::load(&opts.model, &compute.device)?;
    let data = Dataset::read(&opts.data)?;
    if data.is_empty() {
        return Err(EvaluateError::Config(format!(
            "{}: the dataset has no rows",
            opts.data.display()
        ))
        .into());
    }
    if data.preprocess != ensemble.spec.preprocess {
        return Err(EvaluateRunError::RecipeMismatch {
            data: opts.data.clone(),
        });
    }
    let model_features = ensemble.spec.features.as_ref().map(|f| &f.names);
    if data.features.as_ref() != model_features {
        return Err(EvaluateRunError::FeatureMismatch {
            data: opts.data.clone(),
            have: data
                .features
                .as_ref()
                .map_or("spectra".into(), |f| f.join(",")),
            want: model_features.map_or("spectra".into(), |f| f.join(",")),
        });
    }
    let spec = &ensemble.spec;
    let targets =
        select_targets(&data, Some(&spec.label_names), spec.task).map_err(EvaluateError::from)?;
    let rows: Vec<usize> = (0..data.len()).collect();
    let preds = ensemble.predict(&data.inputs, opts.batch);
    Ok(write_report(
        &opts.out,
        opts.model.display().to_string(),
        opts.data.display().to_string(),
        &data,
        &rows,
        &targets,
        &preds,
    )?)
}

/// Scores `preds` (one per row of `rows`) against `targets` and writes
/// `report.json`, `report.md` and, for regression, the plots into `out`.
/// The reported sigma is the predictions' own ([`crate::ensemble::Predictions::sigma`]).
pub fn write_report(
    out: &std::path::Path,
    model: String,
    data_name: String,
    data: &Dataset,
    rows: &[usize],
    targets: &Targets,
    preds: &crate::ensemble::Predictions,
) -> std::io::Result<EvaluationReport> {
    let outputs = preds.outputs;
    let members: Vec<Evaluation> = preds
        .members
        .iter()
        .map(|p| evaluate(targets, data, rows, std::slice::from_ref(p), outputs))
        .collect();
    let l = targets.names.len();
    let n = rows.len();
    let regress = targets.task == Task::Regress;
    let mean_member_std = if regress {
        (0..l)
            .map(|j| (0..n).map(|i| preds.std(i, j)).sum::<f64>() / n.max(1) as f64)
            .collect()
    } else {
        Vec::new()
    };
    let mean_member_mae = if regress {
        (0..l)
            .map(|j| {
                members
                    .iter()
                    .map(|m| m.labels[j].1.regression().map_or(f64::NAN, |r| r.mae))
                    .sum::<f64>()
                    / members.len() as f64
            })
            .collect()
    } else {
        Vec::new()
    };
    let coverage = if regress {
        let truth: Vec<f64> = rows
            .iter()
            .flat_map(|&r| (0..l).map(move |j| targets.values[r * l + j] as f64))
            .collect();
        targets
            .names
            .iter()
            .enumerate()
            .map(|(j, name)| Coverage::compute(name, j, l, &truth, preds))
            .collect()
    } else {
        Vec::new()
    };
    let report = EvaluationReport {
        model,
        data: data_name,
        spectra: n,
        task: targets.task,
        label_names: targets.names.clone(),
        ensemble: evaluate(targets, data, rows, &preds.members, outputs),
        members,
        mean_member_std,
        mean_member_mae,
        coverage,
    };
    std::fs::create_dir_all(out)?;
    crate::atomic::write_atomically(&out.join("report.json"), |tmp| {
        std::fs::write(tmp, serde_json::to_string_pretty(&report).expect("json"))
    })?;
    crate::atomic::write_atomically(&out.join("report.md"), |tmp| {
        std::fs::write(tmp, report.markdown())
    })?;
    if regress {
        draw_plots(out, targets, data, rows, preds);
    }
    Ok(report)
}

impl EvaluationReport {
    /// A short human-readable report.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# Evaluation\n\nModel `{}` on `{}` ({} spectra).\n\n",
            self.model, self.data, self.spectra
        );
        match self.task {
            Task::Regress => {
                s.push_str("| label | MAE (ensemble) | MAE (mean member) | bias | sigma | M2 % | Pearson r | mean member std |\n|---|---|---|---|---|---|---|---|\n");
                for (j, (name, m)) in self.ensemble.labels.iter().enumerate() {
                    let Some(m) = m.regression() else { continue };
                    s.push_str(&format!(
                        "| {name} | {} | {:.4} | {} | {} | {} | {} | {:.4} |\n",
                        cell(m.mae),
                        self.mean_member_mae[j],
                        cell(m.bias),
                        cell(m.sigma),
                        cell(m.mape),
                        cell(m.pearson_r),
                        self.mean_member_std[j]
                    ));
                }
                s.push_str(
                    "\n## Uncertainties\n\nFraction of errors within 1 and 2 of the reported sigma (a Gaussian: 0.683, 0.954) and of the raw member spread.\n\n| label | reported sigma | within 1 sigma | within 2 sigma | within 1 spread | within 2 spreads | mean sigma |\n|---|---|---|---|---|---|---|\n",
                );
                for c in &self.coverage {
                    s.push_str(&format!(
                        "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.4} |\n",
                        c.label,
                        if c.calibrated {
                            "calibrated"
                        } else {
                            "member spread"
                        },
                        c.sigma_1,
                        c.sigma_2,
                        c.spread_1,
                        c.spread_2,
                        c.mean_sigma
                    ));
                }
                s.push_str("\n## Ensemble MAE by SNR(g)\n\n| SNR | n | ");
                s.push_str(&self.label_names.join(" | "));
                s.push_str(" |\n|---|---|");
                s.push_str(&"---|".repeat(self.label_names.len()));
                s.push('\n');
                for (bin, labels) in &self.ensemble.snr_bins {
                    let n = labels.first().map_or(0, |(_, m)| m.n());
                    s.push_str(&format!("| {bin} | {n} |"));
                    for (_, m) in labels {
                        s.push_str(&format!(" {} |", cell(m.regression().map(|r| r.mae))));
                    }
                    s.push('\n');
                }
            }
            Task::Classify => {
                s.push_str(
                    "| label | accuracy | contamination | completeness |\n|---|---|---|---|\n",
                );
                for (name, m) in &self.ensemble.labels {
                    let Some(m) = m.classification() else {
                        continue;
                    };
                    s.push_str(&format!(
                        "| {name} | {} | {} | {} |\n",
                        cell(m.accuracy),
                        cell(m.contamination),
                        cell(m.completeness)
                    ));
                }
            }
        }
        s
    }
}

/// Per label: predicted vs true, residual histogram, fractional uncertainty
/// histogram and error vs SNR. Failures are logged, not fatal.
fn draw_plots(
    out: &std::path::Path,
    targets: &Targets,
    data: &Dataset,
    rows: &[usize],
    preds: &crate::ensemble::Predictions,
) {
    let l = targets.names.len();
    let snrg: Vec<f64> = rows.iter().map(|&r| data.snrg[r]).collect();
    for (j, name) in targets.names.iter().enumerate() {
        let truth: Vec<f64> = rows
            .iter()
            .map(|&r| targets.values[r * l + j] as f64)
            .collect();
        let mean: Vec<f64> = (0..rows.len()).map(|i| preds.mean(i, j)).collect();
        let std: Vec<f64> = (0..rows.len()).map(|i| preds.std(i, j)).collect();
        let residual: Vec<f64> = mean.iter().zip(&truth).map(|(p, t)| p - t).collect();
        let fractional: Vec<f64> = std
            .iter()
            .zip(&mean)
            .map(|(s, m)| s / m.abs())
            .filter(|v| v.is_finite())
            .collect();
        let results = [
            crate::plot::predicted_vs_true(
                &out.join(format!("pred_vs_true_{name}.png")),
                name,
                &truth,
                &mean,
            ),
            crate::plot::histogram(
                &out.join(format!("residuals_{name}.png")),
                &format!("{name}: predicted - true"),
                &format!("residual {name}"),
                &residual,
                40,
            ),
            crate::plot::histogram(
                &out.join(format!("uncertainty_{name}.png")),
                &format!("{name}: member spread / |ensemble mean|"),
                "fractional uncertainty",
                &fractional,
                40,
            ),
            crate::plot::error_vs_snr(
                &out.join(format!("error_vs_snr_{name}.png")),
                name,
                &snrg,
                &residual.iter().map(|r| r.abs()).collect::<Vec<_>>(),
            ),
            crate::plot::calibration(
                &out.join(format!("calibration_{name}.png")),
                name,
                &residual.iter().map(|r| r.abs()).collect::<Vec<_>>(),
                &(0..rows.len())
                    .map(|i| preds.sigma(i, j))
                    .collect::<Vec<_>>(),
                &std,
            ),
        ];
        for r in results {
            if let Err(e) = r {
                tracing::warn!("{e}");
            }
        }
    }
}
