//! `spectrain baseline`: the non-deep comparisons of the papers (random forest,
//! gradient-boosted trees, ridge regression) fitted on the same dataset, split
//! and labels as `train`, and scored with the same report as `evaluate`, so a
//! DenseNet-versus-trees table can be made on any data.
//!
//! The models come from maintained crates: smartcore 0.7 (random forest,
//! ridge) and forust-ml 0.8 (histogram gradient boosting). One model per label.
//! Catalog features get the same treatment as in `train` (standardised with
//! the training split, missing values imputed with the training mean).

use std::path::PathBuf;
use std::time::Instant;

use forust_ml::objective::ObjectiveType;
use forust_ml::{GradientBooster, Matrix};
use rayon::prelude::*;
use serde::Serialize;
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linalg::traits::cholesky::CholeskyDecomposable;
use smartcore::linear::ridge_regression::{
    RidgeRegression, RidgeRegressionParameters, RidgeRegressionSolverName,
};

use crate::dataset::sampling::{gather, Split};
use crate::dataset::Targets;
use crate::dataset::{select_targets, Dataset, DatasetError};
use crate::ensemble::{FeatureScaler, Predictions, Task};
use crate::evaluate::EvaluationReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Random forest (smartcore): `--trees` trees, F/3 features tried per split.
    Rf,
    /// Gradient-boosted trees (forust-ml): squared loss, depth 6, learning rate 0.1.
    Gbdt,
    /// Ridge regression on standardised inputs, alpha chosen on an inner split.
    Linear,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rf => "rf",
            Self::Gbdt => "gbdt",
            Self::Linear => "linear",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BaselineOptions {
    pub data: PathBuf,
    /// Score on this dataset instead of the validation split of `data`.
    pub test: Option<PathBuf>,
    pub out: PathBuf,
    pub method: Method,
    pub columns: Option<Vec<String>>,
    pub val_fraction: f64,
    pub seed: u64,
    /// Random forest size.
    pub trees: usize,
    /// Boosting rounds.
    pub rounds: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{0}")]
    Config(String),
    #[error("{method:?} on label {label}: {reason}")]
    Fit {
        method: Method,
        label: String,
        reason: String,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A fitted model of one label.
enum Fitted {
    Forest(Vec<RandomForestRegressor<f32, f32, DenseMatrix<f32>, Vec<f32>>>),
    Boosted(Box<GradientBooster>),
    Linear(Ridge),
}

/// A fitted ridge regression, in the original input units: `y = w . x + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ridge {
    pub w: Vec<f64>,
    pub b: f64,
}

impl Ridge {
    /// Ridge regression of `y` on row-major `x` (`n` rows, `f` inputs), the
    /// inputs standardised (population std) and alpha in those units, with an
    /// intercept: what scikit-learn's `StandardScaler` + `Ridge(alpha)` fits.
    pub fn fit(x: &[f32], n: usize, f: usize, y: &[f32], alpha: f64) -> Result<Self, String> {
        RidgeSolver::new(x, n, f).solve(y, alpha)
    }

    pub fn predict(&self, x: &[f32]) -> Vec<f32> {
        x.chunks_exact(self.w.len().max(1))
            .map(|r| {
                (self.b
                    + r.iter()
                        .zip(&self.w)
                        .map(|(&v, w)| v as f64 * w)
                        .sum::<f64>()) as f32
            })
            .collect()
    }
}

/// Forests are fitted as this many sub-forests in parallel (fixed, so the
/// result does not depend on the number of cores).
const FOREST_PARTS: usize = 4;

fn col_major_f64(x: &[f32], n: usize, f: usize) -> Vec<f64> {
    let mut c = vec![0f64; n * f];
    for i in 0..n {
        for j in 0..f {
            c[j * n + i] = x[i * f + j] as f64;
        }
    }
    c
}

fn fit_forest(
    x: &[f32],
    n: usize,
    f: usize,
    y: &[f32],
    trees: usize,
    seed: u64,
) -> Result<Fitted, String> {
    let per = trees.div_ceil(FOREST_PARTS).max(1);
    let parts = (0..FOREST_PARTS)
        .into_par_iter()
        .map(|k| {
            let xm = DenseMatrix::new(n, f, x.to_vec(), false).map_err(|e| e.to_string())?;
            let params = RandomForestRegressorParameters::default()
                .with_n_trees(per)
                .with_m((f / 3).max(1))
                .with_min_samples_leaf(1)
                .with_seed(seed.wrapping_add(k as u64 * 1_000_003));
            RandomForestRegressor::fit(&xm, &y.to_vec(), params).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Fitted::Forest(parts))
}

fn fit_boosted(
    x: &[f32],
    n: usize,
    f: usize,
    y: &[f32],
    rounds: usize,
    seed: u64,
) -> Result<Fitted, String> {
    let xc = col_major_f64(x, n, f);
    let yd: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    let mut model = GradientBooster::default()
        .set_objective_type(ObjectiveType::SquaredLoss)
        .set_iterations(rounds)
        .set_max_depth(6)
        .set_learning_rate(0.1)
        .set_nbins(64)
        .set_subsample(0.8)
        .set_colsample_bytree(if f > 64 { 0.3 } else { 1.0 })
        .set_seed(seed)
        .set_parallel(true);
    model
        .fit_unweighted(&Matrix::new(&xc, n, f), &yd, None)
        .map_err(|e| e.to_string())?;
    Ok(Fitted::Boosted(Box::new(model)))
}

/// Ridge regression with standardised inputs, prepared once for a matrix so
/// that several labels and alphas reuse the work: smartcore's solver when there
/// are more rows than inputs; otherwise (spectra: 4096 pixels) the same problem
/// in dual form, (Z Z^T + alpha I) a = y - mean(y), w = Z^T a, with the Gram
/// matrix Z Z^T computed once and smartcore's Cholesky per solve.
struct RidgeSolver {
    n: usize,
    f: usize,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    kind: RidgeKind,
}

enum RidgeKind {
    Primal(Vec<f32>),
    Dual { z: Vec<f64>, gram: Vec<f64> },
}

impl RidgeSolver {
    fn new(x: &[f32], n: usize, f: usize) -> Self {
        let (mut mean, mut sq) = (vec![0f64; f], vec![0f64; f]);
        for row in x.chunks_exact(f) {
            for j in 0..f {
                let v = row[j] as f64;
                mean[j] += v;
                sq[j] += v * v;
            }
        }
        let inv_std: Vec<f64> = (0..f)
            .map(|j| {
                mean[j] /= n as f64;
                let var = sq[j] / n as f64 - mean[j] * mean[j];
                if var > 1e-12 {
                    1.0 / var.sqrt()
                } else {
                    0.0 // a constant input carries no information
                }
            })
            .collect();
        let kind = if n > f && !inv_std.contains(&0.0) {
            RidgeKind::Primal(x.to_vec())
        } else {
            let z: Vec<f64> = (0..n * f)
                .map(|k| (x[k] as f64 - mean[k % f]) * inv_std[k % f])
                .collect();
            // The upper triangle in parallel, then mirrored.
            let upper: Vec<Vec<f64>> = (0..n)
                .into_par_iter()
                .map(|i| {
                    let zi = &z[i * f..(i + 1) * f];
                    (i..n)
                        .map(|j| {
                            zi.iter()
                                .zip(&z[j * f..(j + 1) * f])
                                .map(|(a, b)| a * b)
                                .sum()
                        })
                        .collect()
                })
                .collect();
            let mut gram = vec![0f64; n * n];
            for (i, row) in upper.iter().enumerate() {
                for (k, v) in row.iter().enumerate() {
                    gram[i * n + i + k] = *v;
                    gram[(i + k) * n + i] = *v;
                }
            }
            RidgeKind::Dual { z, gram }
        };
        Self {
            n,
            f,
            mean,
            inv_std,
            kind,
        }
    }

    fn solve(&self, y: &[f32], alpha: f64) -> Result<Ridge, String> {
        let (n, f) = (self.n, self.f);
        match &self.kind {
            RidgeKind::Primal(x) => {
                let xm = DenseMatrix::new(n, f, x.clone(), false).map_err(|e| e.to_string())?;
                let params = RidgeRegressionParameters::default()
                    .with_alpha(alpha as f32)
                    .with_normalize(true)
                    .with_solver(RidgeRegressionSolverName::Cholesky);
                let m: RidgeRegression<f32, f32, DenseMatrix<f32>, Vec<f32>> =
                    RidgeRegression::fit(&xm, &y.to_vec(), params).map_err(|e| e.to_string())?;
                let coef = m.coefficients();
                Ok(Ridge {
                    w: (0..f).map(|j| *coef.get((j, 0)) as f64).collect(),
                    b: *m.intercept() as f64,
                })
            }
            RidgeKind::Dual { z, gram } => {
                let ybar = y.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
                let mut k = gram.clone();
                for i in 0..n {
                    k[i * n + i] += alpha;
                }
                let km = DenseMatrix::new(n, n, k, false).map_err(|e| e.to_string())?;
                let rhs =
                    DenseMatrix::new(n, 1, y.iter().map(|&v| v as f64 - ybar).collect(), false)
                        .map_err(|e| e.to_string())?;
                let a = km.cholesky_solve_mut(rhs).map_err(|e| e.to_string())?;
                let mut w = vec![0f64; f];
                for (i, zi) in z.chunks_exact(f).enumerate() {
                    let ai = *a.get((i, 0));
                    for (wj, zij) in w.iter_mut().zip(zi) {
                        *wj += ai * zij;
                    }
                }
                for (wj, s) in w.iter_mut().zip(&self.inv_std) {
                    *wj *= s;
                }
                let b = ybar - w.iter().zip(&self.mean).map(|(w, m)| w * m).sum::<f64>();
                Ok(Ridge { w, b })
            }
        }
    }
}

impl Fitted {
    fn predict(&self, x: &[f32], n: usize, f: usize) -> Result<Vec<f32>, String> {
        Ok(match self {
            Self::Forest(parts) => {
                let xm = DenseMatrix::new(n, f, x.to_vec(), false).map_err(|e| e.to_string())?;
                let mut acc = vec![0f32; n];
                for p in parts {
                    for (a, v) in acc
                        .iter_mut()
                        .zip(p.predict(&xm).map_err(|e| e.to_string())?)
                    {
                        *a += v;
                    }
                }
                acc.into_iter().map(|a| a / parts.len() as f32).collect()
            }
            Self::Boosted(m) => m
                .predict(&Matrix::new(&col_major_f64(x, n, f), n, f), true)
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            Self::Linear(r) => r.predict(x),
        })
    }
}

/// Alphas tried for ridge regression.
const ALPHAS: [f64; 8] = [1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5];

/// Ridge per label, alpha the best of [`ALPHAS`] on an 80/20 split of the
/// training rows (by MAE), then refitted on all of them. `ys[j]` is label j.
fn fit_ridge_labels(
    x: &[f32],
    f: usize,
    ys: &[Vec<f32>],
    seed: u64,
) -> Result<Vec<(Ridge, f64)>, String> {
    let n = ys.first().map_or(0, Vec::len);
    let inner = Split::new(n, 0.2, seed);
    let xv = gather(x, f, &inner.val);
    let inner_solver = RidgeSolver::new(&gather(x, f, &inner.train), inner.train.len(), f);
    let solver = RidgeSolver::new(x, n, f);
    ys.iter()
        .map(|y| {
            let yt: Vec<f32> = inner.train.iter().map(|&r| y[r]).collect();
            let mut best = (f64::INFINITY, 1.0);
            for alpha in ALPHAS {
                let p = inner_solver.solve(&yt, alpha)?.predict(&xv);
                let mae = inner
                    .val
                    .iter()
                    .zip(&p)
                    .map(|(&r, p)| (p - y[r]).abs() as f64)
                    .sum::<f64>()
                    / inner.val.len().max(1) as f64;
                if mae < best.0 {
                    best = (mae, alpha);
                }
            }
            Ok((solver.solve(y, best.1)?, best.1))
        })
        .collect()
}

/// The baselines' inputs: pixels as they are, or catalog features standardised
/// with the training rows' statistics and missing values imputed with their
/// mean, as `train` does. `baseline` and `cv` both prepare inputs through here.
pub struct ModelInputs {
    scaler: Option<FeatureScaler>,
}

impl ModelInputs {
    /// Fitted on `train_rows` of `data`.
    pub fn fit(data: &Dataset, train_rows: &[usize]) -> Self {
        Self {
            scaler: data
                .features
                .as_ref()
                .map(|names| FeatureScaler::fit(names, &data.inputs, train_rows)),
        }
    }

    /// Row-major raw inputs made model-ready.
    pub fn prepare(&self, raw: &[f32]) -> Vec<f32> {
        let mut x = raw.to_vec();
        if let Some(s) = &self.scaler {
            s.transform(&mut x);
        }
        x
    }

    /// Rows `rows` of `data`, model-ready.
    pub fn rows(&self, data: &Dataset, rows: &[usize]) -> Vec<f32> {
        self.prepare(&gather(&data.inputs, data.input_len(), rows))
    }
}

/// Sizes and seed of the tree and ridge fits.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Random forest size.
    pub trees: usize,
    /// Boosting rounds.
    pub rounds: usize,
    pub seed: u64,
}

impl Default for Budget {
    /// The sizes `spectrain baseline` and `spectrain cv` use unless told.
    fn default() -> Self {
        Self {
            trees: 200,
            rounds: 300,
            seed: 42,
        }
    }
}

/// Fits `method` per label on model-ready inputs `x_train` (the dataset rows
/// `train_rows`, labels from `targets`) and predicts `x_test` (`n_test` rows
/// of `f` inputs): row-major `[n_test, L]` predictions, and ridge's alpha per
/// label (empty for trees). `baseline` and `cv` both fit through here.
#[allow(clippy::too_many_arguments)]
pub fn fit_predict(
    method: Method,
    targets: &Targets,
    train_rows: &[usize],
    x_train: &[f32],
    x_test: &[f32],
    n_test: usize,
    f: usize,
    budget: &Budget,
) -> Result<(Vec<f32>, Vec<f64>), BaselineError> {
    let l = targets.names.len();
    let n_train = train_rows.len();
    let mut pred = vec![0f32; n_test * l];
    let ys: Vec<Vec<f32>> = (0..l)
        .map(|j| {
            train_rows
                .iter()
                .map(|&r| targets.values[r * l + j])
                .collect()
        })
        .collect();
    // Ridge shares its matrix work across labels.
    let ridges = match method {
        Method::Linear => {
            fit_ridge_labels(x_train, f, &ys, budget.seed).map_err(|reason| BaselineError::Fit {
                method,
                label: targets.names.join(","),
                reason,
            })?
        }
        _ => Vec::new(),
    };
    let alphas: Vec<f64> = ridges.iter().map(|(_, a)| *a).collect();
    let mut ridges = ridges.into_iter().map(|(r, _)| r);
    for (j, name) in targets.names.iter().enumerate() {
        let y = &ys[j];
        let fit_err = |reason: String| BaselineError::Fit {
            method,
            label: name.clone(),
            reason,
        };
        tracing::info!(
            "{:?}: fitting {name} on {n_train} rows x {f} inputs",
            method
        );
        let model = match method {
            Method::Rf => fit_forest(x_train, n_train, f, y, budget.trees, budget.seed),
            Method::Gbdt => fit_boosted(x_train, n_train, f, y, budget.rounds, budget.seed),
            Method::Linear => Ok(Fitted::Linear(ridges.next().expect("one ridge per label"))),
        }
        .map_err(fit_err)?;
        let p = model.predict(x_test, n_test, f).map_err(fit_err)?;
        for (i, v) in p.into_iter().enumerate() {
            pred[i * l + j] = v;
        }
    }
    Ok((pred, alphas))
}

/// What was fitted, in `baseline.json`.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineInfo {
    pub method: Method,
    pub implementation: &'static str,
    pub train_rows: usize,
    pub scored_on: String,
    pub scored_rows: usize,
    /// Ridge: the alpha chosen per label.
    pub alpha: Vec<f64>,
    pub seconds: f64,
}

pub fn baseline(opts: &BaselineOptions) -> Result<(EvaluationReport, BaselineInfo), BaselineError> {
    let start = Instant::now();
    crate::outputs::check_dir(&opts.out).map_err(|e| BaselineError::Config(e.to_string()))?;
    let mut inputs: Vec<(&str, &std::path::Path)> = vec![("dataset", &opts.data)];
    if let Some(t) = &opts.test {
        inputs.push(("test dataset", t));
    }
    crate::outputs::check_not_over_inputs(&opts.out, &inputs)
        .map_err(|e| BaselineError::Config(e.to_string()))?;
    let data = Dataset::read(&opts.data)?;
    // A fit needs a few training rows and at least one scored row.
    let needed = if opts.test.is_some() { 2 } else { 3 };
    if data.len() < needed {
        return Err(BaselineError::Config(format!(
            "{} has {} rows: a baseline needs at least {needed}",
            opts.data.display(),
            data.len()
        )));
    }
    let targets = select_targets(&data, opts.columns.as_deref(), Task::Regress)
        .map_err(|e| BaselineError::Config(e.to_string()))?;
    let split = Split::new(data.len(), opts.val_fraction, opts.seed);
    let f = data.input_len();
    let inputs = ModelInputs::fit(&data, &split.train);
    let x_train = inputs.rows(&data, &split.train);
    // The scored set: the validation split, or another dataset.
    let test_data = match &opts.test {
        Some(path) => {
            let t = Dataset::read(path)?;
            if t.is_empty() {
                return Err(BaselineError::Config(format!(
                    "{}: the test dataset has no rows",
                    path.display()
                )));
            }
            if t.features != data.features || t.preprocess != data.preprocess {
                return Err(BaselineError::Config(format!(
                    "{}: prepared differently from {} (recipe or features)",
                    path.display(),
                    opts.data.display()
                )));
            }
            Some(t)
        }
        None => None,
    };
    let (scored, scored_rows, test_targets) = match &test_data {
        Some(t) => {
            let tt = select_targets(t, Some(&targets.names), Task::Regress)
                .map_err(|e| BaselineError::Config(e.to_string()))?;
            (t, (0..t.len()).collect::<Vec<_>>(), tt)
        }
        None => (
            &data,
            split.val.clone(),
            select_targets(&data, Some(&targets.names), Task::Regress)
                .map_err(|e| BaselineError::Config(e.to_string()))?,
        ),
    };
    let x_test = inputs.rows(scored, &scored_rows);
    let (n_train, n_test) = (split.train.len(), scored_rows.len());
    let (pred, alphas) = fit_predict(
        opts.method,
        &targets,
        &split.train,
        &x_train,
        &x_test,
        n_test,
        f,
        &Budget {
            trees: opts.trees,
            rounds: opts.rounds,
            seed: opts.seed,
        },
    )?;
    let l = targets.names.len();
    let preds = Predictions {
        outputs: l,
        members: vec![pred],
        sigma: None,
    };
    let implementation = match opts.method {
        Method::Rf => "smartcore 0.7 RandomForestRegressor (F/3 inputs per split)",
        Method::Gbdt => "forust-ml 0.8 GradientBooster (squared loss, depth 6, lr 0.1, 64 bins)",
        Method::Linear => "ridge on standardised inputs (smartcore 0.7 Cholesky)",
    };
    let scored_on = match &opts.test {
        Some(p) => p.display().to_string(),
        None => format!("validation split of {}", opts.data.display()),
    };
    let report = crate::evaluate::write_report(
        &opts.out,
        format!("baseline {}: {implementation}", opts.method.name()),
        scored_on.clone(),
        scored,
        &scored_rows,
        &test_targets,
        &preds,
    )?;
    let info = BaselineInfo {
        method: opts.method,
        implementation,
        train_rows: n_train,
        scored_on,
        scored_rows: n_test,
        alpha: alphas,
        seconds: start.elapsed().as_secs_f64(),
    };
    crate::atomic::write_atomically(&opts.out.join("baseline.json"), |tmp| {
        std::fs::write(tmp, serde_json::to_string_pretty(&info).expect("json"))
    })?;
    Ok((report, info))
}
