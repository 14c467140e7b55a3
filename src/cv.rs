//! `spectrain cv`: K-fold cross-validation of a training recipe, with the tree
//! baselines fitted and scored on exactly the same folds.
//!
//! The rows of a dataset are dealt into K folds by a fixed seed (independent
//! of the training seed, so two recipes are compared on the same folds). For
//! each fold the recipe trains a whole ensemble, as `spectrain train` would, on
//! the other K-1 folds (its own validation split, best-epoch selection and
//! uncertainty calibration come out of those), and predicts the held-out fold.
//! The trees fit every row of the other folds. Every row is so predicted once
//! by a model that never saw it: the out-of-fold predictions, scored per label
//! as MAE, bias, sigma and, for the ensemble, 1- and 2-sigma coverage.
//!
//! ```text
//! OUT/cv.md, cv.json         the report
//! OUT/oof.csv                every row: fold, truth, each model's prediction
//! OUT/fold-NN/train.h5       the fold's training rows
//! OUT/fold-NN/model/         the fold's ensemble (a normal model directory)
//! OUT/fold-NN/<model>.json   the fold's held-out predictions, per model
//! ```
//! A killed run continues with `--resume`: finished folds and models are
//! read back, an unfinished ensemble resumes from its last epoch.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::baseline::{Budget, Method};
use crate::dataset::sampling::SplitMix64;
use crate::dataset::{select_targets, Dataset, DatasetError, Targets};
use crate::ensemble::{Ensemble, Task, TrainConfig};
use crate::metrics::RegressionMetrics;
use crate::train::{TrainError, TrainOptions};

#[derive(Debug, thiserror::Error)]
pub enum CvError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("fold {fold}: {source}")]
    Train { fold: usize, source: TrainError },
    #[error("fold {fold}: {source}")]
    Baseline {
        fold: usize,
        source: crate::baseline::BaselineError,
    },
    #[error("fold {fold}: {source}")]
    Ensemble {
        fold: usize,
        source: crate::ensemble::EnsembleError,
    },
    #[error(transparent)]
    Output(#[from] crate::outputs::OutputError),
    #[error("{path}: {reason}")]
    Resume { path: PathBuf, reason: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// What `cv` runs.
#[derive(Debug, Clone)]
pub struct CvOptions {
    pub data: PathBuf,
    pub out: PathBuf,
    pub folds: usize,
    /// Seed of the fold assignment (the recipe's own seed is in `train`).
    pub fold_seed: u64,
    /// The recipe: everything but `data`, `out`, `resume` and `force`, which
    /// are set per fold.
    pub train: TrainOptions,
    /// Tree (or ridge) baselines scored on the same folds.
    pub baselines: Vec<Method>,
    pub budget: Budget,
    /// Continue a killed run in `out`.
    pub resume: bool,
}

/// Held-out predictions of one model on one fold, `fold-NN/<model>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FoldPredictions {
    /// Dataset rows of the fold.
    rows: Vec<usize>,
    /// Row-major `[rows, L]`.
    mean: Vec<f64>,
    /// Reported 1-sigma uncertainty (ensembles only).
    sigma: Option<Vec<f64>>,
    /// Raw member spread (ensembles only).
    spread: Option<Vec<f64>>,
}

/// Out-of-fold scores of one model on one label.
#[derive(Debug, Clone, Serialize)]
pub struct LabelScore {
    pub label: String,
    pub n: usize,
    pub mae: f64,
    pub bias: f64,
    pub sigma: f64,
    /// MAE of each fold: how much the score moves with the data.
    pub fold_mae: Vec<f64>,
    /// Fractions of errors within 1 and 2 reported sigma (ensembles).
    pub within_1_sigma: Option<f64>,
    pub within_2_sigma: Option<f64>,
    /// The same for the raw member spread (ensembles).
    pub within_1_spread: Option<f64>,
    pub within_2_spread: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelScore {
    /// `densenet` (or `mlp`), `rf`, `gbdt`, `linear`.
    pub model: String,
    pub labels: Vec<LabelScore>,
}

/// `cv.json`.
#[derive(Debug, Clone, Serialize)]
pub struct CvReport {
    pub data: String,
    pub rows: usize,
    pub folds: usize,
    pub fold_seed: u64,
    pub label_names: Vec<String>,
    /// The recipe the ensemble was trained with.
    pub recipe: TrainConfig,
    pub models: Vec<ModelScore>,
    pub seconds: f64,
}

/// Deals `0..n` into `k` folds of sizes differing by at most one.
pub fn fold_rows(n: usize, k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let mut folds = vec![Vec::new(); k];
    for (i, r) in order.into_iter().enumerate() {
        folds[i % k].push(r);
    }
    for f in &mut folds {
        f.sort_unstable();
    }
    folds
}

fn fold_dir(out: &Path, k: usize) -> PathBuf {
    out.join(format!("fold-{k:02}"))
}

fn read_fold(path: &Path) -> Result<Option<FoldPredictions>, CvError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| CvError::Resume {
            path: path.to_path_buf(),
            reason: format!("unreadable fold predictions ({e}); remove the file to redo them"),
        })
}

fn write_fold(path: &Path, p: &FoldPredictions) -> std::io::Result<()> {
    crate::atomic::write_atomically(path, |tmp| {
        std::fs::write(tmp, serde_json::to_string(p).expect("json"))
    })
}

/// The name of the recipe's network in the report.
fn ensemble_name(opts: &CvOptions) -> &'static str {
    match opts.train.model {
        crate::model::ModelConfig::Mlp(_) => "mlp",
        _ => "densenet",
    }
}

pub fn cv(opts: &CvOptions) -> Result<CvReport, CvError> {
    let start = Instant::now();
    if opts.folds < 2 {
        return Err(CvError::Config(format!(
            "--folds must be at least 2, got {}",
            opts.folds
        )));
    }
    if opts.train.training.task != Task::Regress {
        return Err(CvError::Config(
            "cv scores regression recipes (MAE, coverage); classification is not supported yet"
                .into(),
        ));
    }
    opts.train.training.check().map_err(CvError::Config)?;
    crate::outputs::check_dir(&opts.out)?;
    crate::outputs::check_not_over_inputs(&opts.out, &[("dataset", &opts.data)])?;
    let started_before = opts.out.join("cv.partial.json");
    if opts.out.exists() && std::fs::read_dir(&opts.out)?.next().is_some() {
        if !opts.resume {
            return Err(CvError::Config(format!(
                "{} exists and is not empty: continue it with --resume, or choose a new directory",
                opts.out.display()
            )));
        }
        if !started_before.exists() {
            return Err(CvError::Config(format!(
                "{}: not a cv run (no cv.partial.json); refusing to write into it",
                opts.out.display()
            )));
        }
    }
    let data = Dataset::read(&opts.data)?;
    let targets = select_targets(&data, opts.train.columns.as_deref(), Task::Regress)
        .map_err(|e| CvError::Config(e.to_string()))?;
    let n = data.len();
    if n < opts.folds * 5 {
        return Err(CvError::Config(format!(
            "{} has {n} rows: {} folds need at least {}",
            opts.data.display(),
            opts.folds,
            opts.folds * 5
        )));
    }
    std::fs::create_dir_all(&opts.out)?;
    // The run's identity: a resume must use the same data, folds and recipe.
    let identity = serde_json::json!({
        "data": crate::model_dir::sha256_file(&opts.data)?,
        "folds": opts.folds,
        "fold_seed": opts.fold_seed,
        "columns": targets.names,
        "training": opts.train.training,
        "model": opts.train.model,
        "baselines": opts.baselines,
        "trees": opts.budget.trees,
        "rounds": opts.budget.rounds,
    });
    if started_before.exists() {
        let before: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&started_before)?).unwrap_or_default();
        if before != identity {
            return Err(CvError::Resume {
                path: started_before,
                reason: "this run was started with other data, folds, recipe or baselines; \
                         use a new directory"
                    .into(),
            });
        }
    } else {
        crate::atomic::write_atomically(&started_before, |tmp| {
            std::fs::write(tmp, serde_json::to_string_pretty(&identity).expect("json"))
        })?;
    }

    let folds = fold_rows(n, opts.folds, opts.fold_seed);
    let name = ensemble_name(opts);
    let mut per_model: Vec<(String, Vec<FoldPredictions>)> = std::iter::once(name.to_string())
        .chain(opts.baselines.iter().map(|m| m.name().to_string()))
        .map(|m| (m, Vec::new()))
        .collect();
    for (k, test_rows) in folds.iter().enumerate() {
        let dir = fold_dir(&opts.out, k);
        std::fs::create_dir_all(&dir)?;
        let train_rows: Vec<usize> = (0..n)
            .filter(|r| test_rows.binary_search(r).is_err())
            .collect();
        tracing::info!(
            "fold {}/{}: {} training rows, {} held out",
            k + 1,
            opts.folds,
            train_rows.len(),
            test_rows.len()
        );
        let ensemble_path = dir.join(format!("{name}.json"));
        let p = match read_fold(&ensemble_path)? {
            Some(p) => p,
            None => {
                let p = fold_ensemble(opts, k, &dir, &data, &train_rows, test_rows)?;
                write_fold(&ensemble_path, &p)?;
                p
            }
        };
        per_model[0].1.push(p);
        for (i, method) in opts.baselines.iter().enumerate() {
            let path = dir.join(format!("{}.json", method.name()));
            let p = match read_fold(&path)? {
                Some(p) => p,
                None => {
                    let p = fold_baseline(
                        *method,
                        &opts.budget,
                        &data,
                        &targets,
                        &train_rows,
                        test_rows,
                    )
                    .map_err(|source| CvError::Baseline { fold: k, source })?;
                    write_fold(&path, &p)?;
                    p
                }
            };
            per_model[i + 1].1.push(p);
        }
    }

    let models: Vec<ModelScore> = per_model
        .iter()
        .map(|(m, preds)| score(m, preds, &targets))
        .collect();
    let report = CvReport {
        data: opts.data.display().to_string(),
        rows: n,
        folds: opts.folds,
        fold_seed: opts.fold_seed,
        label_names: targets.names.clone(),
        recipe: opts.train.training.clone(),
        models,
        seconds: start.elapsed().as_secs_f64(),
    };
    write_oof(&opts.out.join("oof.csv"), &data, &targets, &per_model)?;
    crate::atomic::write_atomically(&opts.out.join("cv.json"), |tmp| {
        std::fs::write(tmp, serde_json::to_string_pretty(&report).expect("json"))
    })?;
    crate::atomic::write_atomically(&opts.out.join("cv.md"), |tmp| {
        std::fs::write(tmp, report.markdown())
    })?;
    Ok(report)
}

/// Trains the recipe on `train_rows` (resuming a killed fold) and predicts `test_rows`.
fn fold_ensemble(
    opts: &CvOptions,
    k: usize,
    dir: &Path,
    data: &Dataset,
    train_rows: &[usize],
    test_rows: &[usize],
) -> Result<FoldPredictions, CvError> {
    let train_path = dir.join("train.h5");
    if !train_path.exists() {
        data.subset(train_rows).write(&train_path)?;
    }
    let model_dir = dir.join("model");
    let files = crate::model_dir::ModelDir::new(&model_dir);
    let finished = files.metrics().exists();
    if !finished {
        let resume = files.spec().exists();
        if model_dir.exists() && !resume {
            // Killed before the spec was written: nothing of value inside.
            std::fs::remove_dir_all(&model_dir)?;
        }
        let fold_opts = TrainOptions {
            data: train_path,
            out: model_dir.clone(),
            resume,
            force: false,
            ..opts.train.clone()
        };
        crate::train::train(&fold_opts).map_err(|source| CvError::Train { fold: k, source })?;
    }
    let compute = opts
        .train
        .backend
        .open()
        .map_err(|e| CvError::Config(e.to_string()))?;
    let ensemble = Ensemble::load(&model_dir, &compute.device)
        .map_err(|source| CvError::Ensemble { fold: k, source })?;
    let test = data.subset(test_rows);
    let preds = ensemble.predict(&test.inputs, 256);
    let l = ensemble.spec.label_names.len();
    let each = |f: &dyn Fn(usize, usize) -> f64| -> Vec<f64> {
        (0..test_rows.len())
            .flat_map(|i| (0..l).map(move |j| (i, j)))
            .map(|(i, j)| f(i, j))
            .collect()
    };
    Ok(FoldPredictions {
        rows: test_rows.to_vec(),
        mean: each(&|i, j| preds.mean(i, j)),
        sigma: Some(each(&|i, j| preds.sigma(i, j))),
        spread: Some(each(&|i, j| preds.std(i, j))),
    })
}

/// Fits a baseline on every training row of the fold and predicts the held-out rows.
fn fold_baseline(
    method: Method,
    budget: &Budget,
    data: &Dataset,
    targets: &Targets,
    train_rows: &[usize],
    test_rows: &[usize],
) -> Result<FoldPredictions, crate::baseline::BaselineError> {
    let inputs = crate::baseline::ModelInputs::fit(data, train_rows);
    let (pred, _) = crate::baseline::fit_predict(
        method,
        targets,
        train_rows,
        &inputs.rows(data, train_rows),
        &inputs.rows(data, test_rows),
        test_rows.len(),
        data.input_len(),
        budget,
    )?;
    Ok(FoldPredictions {
        rows: test_rows.to_vec(),
        mean: pred.into_iter().map(f64::from).collect(),
        sigma: None,
        spread: None,
    })
}

/// Out-of-fold scores of one model.
fn score(model: &str, folds: &[FoldPredictions], targets: &Targets) -> ModelScore {
    let l = targets.names.len();
    let labels = targets
        .names
        .iter()
        .enumerate()
        .map(|(j, label)| {
            let mut all = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut fold_mae = Vec::new();
            for f in folds {
                let (mut p, mut y) = (Vec::new(), Vec::new());
                for (i, &r) in f.rows.iter().enumerate() {
                    let truth = targets.values[r * l + j] as f64;
                    if !truth.is_finite() {
                        continue;
                    }
                    p.push(f.mean[i * l + j]);
                    y.push(truth);
                    if let (Some(s), Some(sp)) = (&f.sigma, &f.spread) {
                        all.2.push(s[i * l + j]);
                        all.3.push(sp[i * l + j]);
                    }
                }
                fold_mae.push(RegressionMetrics::compute(&p, &y).mae);
                all.0.extend(p);
                all.1.extend(y);
            }
            let m = RegressionMetrics::compute(&all.0, &all.1);
            let err: Vec<f64> = all
                .0
                .iter()
                .zip(&all.1)
                .map(|(p, y)| (p - y).abs())
                .collect();
            let has_sigma = !all.2.is_empty();
            let [s1, s2] = crate::ensemble::calibration::coverage(&err, &all.2);
            let [r1, r2] = crate::ensemble::calibration::coverage(&err, &all.3);
            LabelScore {
                label: label.clone(),
                n: m.n,
                mae: m.mae,
                bias: m.bias,
                sigma: m.sigma,
                fold_mae,
                within_1_sigma: has_sigma.then_some(s1),
                within_2_sigma: has_sigma.then_some(s2),
                within_1_spread: has_sigma.then_some(r1),
                within_2_spread: has_sigma.then_some(r2),
            }
        })
        .collect();
    ModelScore {
        model: model.to_string(),
        labels,
    }
}

/// `oof.csv`: one line per dataset row with its fold, truth and every model's
/// held-out prediction (the ensemble's with its sigma and spread).
fn write_oof(
    path: &Path,
    data: &Dataset,
    targets: &Targets,
    per_model: &[(String, Vec<FoldPredictions>)],
) -> std::io::Result<()> {
    use crate::csvio::fmt_float;
    let l = targets.names.len();
    let n = data.len();
    let mut header = vec![
        "id".to_string(),
        "file".into(),
        "fold".into(),
        "snrg".into(),
    ];
    for name in &targets.names {
        header.push(name.clone());
        for (m, folds) in per_model {
            header.push(format!("{name}_{m}"));
            if folds.first().is_some_and(|f| f.sigma.is_some()) {
                header.push(format!("{name}_{m}_std"));
                header.push(format!("{name}_{m}_spread"));
            }
        }
    }
    // Per row: (fold, model -> (fold index, position)).
    let mut where_ = vec![(0usize, 0usize); n];
    if let Some((_, folds)) = per_model.first() {
        for (k, f) in folds.iter().enumerate() {
            for (i, &r) in f.rows.iter().enumerate() {
                where_[r] = (k, i);
            }
        }
    }
    crate::atomic::write_atomically(path, |tmp| {
        let mut w = csv::Writer::from_path(tmp).map_err(std::io::Error::other)?;
        w.write_record(&header).map_err(std::io::Error::other)?;
        for (r, &(k, i)) in where_.iter().enumerate() {
            let mut row = vec![
                data.ids[r].clone(),
                data.files[r].clone(),
                k.to_string(),
                fmt_float(data.snrg[r]),
            ];
            for j in 0..l {
                row.push(fmt_float(targets.values[r * l + j] as f64));
                for (_, folds) in per_model {
                    let f = &folds[k];
                    row.push(fmt_float(f.mean[i * l + j]));
                    if let (Some(s), Some(sp)) = (&f.sigma, &f.spread) {
                        row.push(fmt_float(s[i * l + j]));
                        row.push(fmt_float(sp[i * l + j]));
                    }
                }
            }
            w.write_record(&row).map_err(std::io::Error::other)?;
        }
        w.flush()
    })
}

impl CvReport {
    pub fn markdown(&self) -> String {
        let t = &self.recipe;
        let mut s = format!(
            "# Cross-validation\n\n`{}`: {} rows, {} folds (fold seed {}). Every row is \
             predicted once, by models that never saw it.\n\nRecipe: {} members, {} epochs, \
             batch {}, lr {} ({:?}, {} warm-up epochs), weight decay {}, loss {:?}, seed {}{}.\n",
            self.data,
            self.rows,
            self.folds,
            self.fold_seed,
            t.members,
            t.epochs,
            t.batch,
            t.lr,
            t.lr_schedule,
            t.warmup_epochs,
            t.weight_decay,
            t.loss,
            t.seed,
            if t.augment_noise > 0.0 {
                format!(", noise augmentation {} / SNR(g)", t.augment_noise)
            } else {
                String::new()
            }
        );
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
        for (j, label) in self.label_names.iter().enumerate() {
            s.push_str(&format!(
                "\n## {label}\n\n| model | MAE | fold MAE (min-max) | bias | sigma | within 1 sigma | within 2 sigma | within 1 spread | within 2 spreads |\n|---|---|---|---|---|---|---|---|---|\n"
            ));
            for m in &self.models {
                let c = &m.labels[j];
                let (lo, hi) = c
                    .fold_mae
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                        (a.min(*v), b.max(*v))
                    });
                s.push_str(&format!(
                    "| {} | {:.4} | {:.4}-{:.4} | {:+.4} | {:.4} | {} | {} | {} | {} |\n",
                    m.model,
                    c.mae,
                    lo,
                    hi,
                    c.bias,
                    c.sigma,
                    opt(c.within_1_sigma),
                    opt(c.within_2_sigma),
                    opt(c.within_1_spread),
                    opt(c.within_2_spread)
                ));
            }
            let best_tree = self.models[1..]
                .iter()
                .map(|m| (m.labels[j].mae, &m.model))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((tree, name)) = best_tree {
                let ours = self.models[0].labels[j].mae;
                s.push_str(&format!(
                    "\n{}: MAE {:+.1}% against the best baseline ({name}).\n",
                    self.models[0].model,
                    100.0 * (ours / tree - 1.0)
                ));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_partition_the_rows_evenly_and_follow_the_seed() {
        let folds = fold_rows(23, 5, 7);
        let mut all: Vec<usize> = folds.concat();
        all.sort_unstable();
        assert_eq!(all, (0..23).collect::<Vec<_>>());
        let sizes: Vec<usize> = folds.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![5, 5, 5, 4, 4]);
        assert_eq!(folds, fold_rows(23, 5, 7));
        assert_ne!(folds, fold_rows(23, 5, 8));
    }
}
