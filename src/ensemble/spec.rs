//! What a model directory says about itself: everything `predict` needs to
//! rebuild the ensemble and repeat the preprocessing, as plain JSON.

use serde::{Deserialize, Serialize};

use crate::model::DenseNetConfig;
use crate::preprocess::PreprocessConfig;

/// Regression of numeric labels, or classification of an integer label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    Regress,
    Classify,
}

/// Training settings (METHOD section 5). Defaults are the paper's regression setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub task: Task,
    /// Bootstrap ensemble size.
    pub members: usize,
    pub epochs: usize,
    pub batch: usize,
    /// Adam learning rate (the paper: 1.5e-4 regression, 5e-4 classification).
    pub lr: f64,
    /// Fraction of the dataset held out for validation (fixed-seed split).
    pub val_fraction: f64,
    pub seed: u64,
    /// Huber loss transition point, on standardised targets.
    pub huber_delta: f64,
    /// Resample the training split with replacement for each member.
    pub bootstrap: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            task: Task::Regress,
            members: 10,
            epochs: 450,
            batch: 64,
            lr: 1.5e-4,
            val_fraction: 0.2,
            seed: 42,
            huber_delta: 1.0,
            bootstrap: true,
        }
    }
}

impl TrainConfig {
    /// Every invalid field, named.
    pub fn check(&self) -> Result<(), String> {
        let mut bad = Vec::new();
        if self.members == 0 {
            bad.push("members must be at least 1".to_string());
        }
        if self.epochs == 0 {
            bad.push("epochs must be at least 1".to_string());
        }
        if self.batch < 2 {
            bad.push(format!(
                "batch must be at least 2 (batch norm), got {}",
                self.batch
            ));
        }
        if !(self.lr > 0.0) {
            bad.push(format!("lr must be positive, got {}", self.lr));
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            bad.push(format!(
                "val_fraction must be in (0, 1), got {}",
                self.val_fraction
            ));
        }
        if !(self.huber_delta > 0.0) {
            bad.push(format!(
                "huber_delta must be positive, got {}",
                self.huber_delta
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }
}

/// Per-label mean and standard deviation of the training split (never the validation split).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardiser {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardiser {
    /// Fits on `rows` of a row-major `[N, L]` label matrix. A constant label gets std 1.
    pub fn fit(labels: &[f32], n_labels: usize, rows: &[usize]) -> Self {
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0; n_labels];
        let mut std = vec![0.0; n_labels];
        for &r in rows {
            for (l, m) in mean.iter_mut().enumerate() {
                *m += labels[r * n_labels + l] as f64 / n;
            }
        }
        for &r in rows {
            for (l, s) in std.iter_mut().enumerate() {
                let d = labels[r * n_labels + l] as f64 - mean[l];
                *s += d * d / n;
            }
        }
        let std = std
            .into_iter()
            .map(|v| if v > 0.0 { v.sqrt() } else { 1.0 })
            .collect();
        Self { mean, std }
    }

    pub fn forward(&self, label: usize, value: f64) -> f64 {
        (value - self.mean[label]) / self.std[label]
    }

    pub fn inverse(&self, label: usize, value: f64) -> f64 {
        value * self.std[label] + self.mean[label]
    }
}

/// The range of the training data, for applicability flags at prediction time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingDomain {
    /// Per label `[min, max]` of the training split.
    pub label_ranges: Vec<[f64; 2]>,
    /// `[min, max]` SNR(g) of the training split (NaN-free values only).
    pub snrg_range: Option<[f64; 2]>,
    /// Per-pixel range of the training inputs, for the applicability flag.
    #[serde(default)]
    pub input_envelope: Option<InputEnvelope>,
}

/// The per-pixel `[lo, hi]` envelope of the training inputs. An input with many
/// pixels outside it looks like nothing the network was trained on (a cheap
/// applicability-domain test: different spectral types, artefacts, bad
/// calibration), even when its prediction looks ordinary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputEnvelope {
    pub lo: Vec<f32>,
    pub hi: Vec<f32>,
    /// Flag an input when more than this fraction of its pixels lie outside.
    pub max_outside_fraction: f64,
}

impl InputEnvelope {
    /// Default threshold: 5% of the pixels (205 of 4096).
    pub const DEFAULT_MAX_OUTSIDE: f64 = 0.05;

    /// The envelope of `rows` of row-major `inputs` with `len` values each.
    pub fn fit(inputs: &[f32], len: usize, rows: &[usize]) -> Self {
        let mut lo = vec![f32::INFINITY; len];
        let mut hi = vec![f32::NEG_INFINITY; len];
        for &r in rows {
            for (k, v) in inputs[r * len..(r + 1) * len].iter().enumerate() {
                lo[k] = lo[k].min(*v);
                hi[k] = hi[k].max(*v);
            }
        }
        Self {
            lo,
            hi,
            max_outside_fraction: Self::DEFAULT_MAX_OUTSIDE,
        }
    }

    /// Fraction of `x`'s pixels outside the envelope.
    pub fn outside_fraction(&self, x: &[f32]) -> f64 {
        let outside = x
            .iter()
            .zip(self.lo.iter().zip(&self.hi))
            .filter(|(v, (lo, hi))| **v < **lo || **v > **hi)
            .count();
        outside as f64 / x.len().max(1) as f64
    }
}

/// `spec.json` of a model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleSpec {
    pub spectrain_version: String,
    pub task: Task,
    pub label_names: Vec<String>,
    /// Class names for classification (`class_0`, ... unless given).
    pub classes: Vec<String>,
    pub model: DenseNetConfig,
    pub training: TrainConfig,
    pub preprocess: PreprocessConfig,
    /// Present for regression.
    pub standardiser: Option<Standardiser>,
    pub domain: TrainingDomain,
}

impl EnsembleSpec {
    pub fn member_file(member: usize) -> String {
        format!("member-{member:02}.bpk")
    }
}
