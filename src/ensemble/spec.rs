//! What a model directory says about itself: everything `predict` needs to
//! rebuild the ensemble and repeat the preprocessing, as plain JSON.

use serde::{Deserialize, Serialize};

use crate::model::ModelConfig;
use crate::preprocess::PreprocessConfig;

/// Regression of numeric labels, or classification of an integer label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    Regress,
    Classify,
}

/// The regression loss, on standardised targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Huber with `huber_delta` (the DenseNet paper).
    Huber,
    /// Mean absolute error.
    Mae,
    /// Symmetric mean absolute percentage error, 2|p - y| / (|p| + |y|), in
    /// label units (the catalog-feature MLP of METHOD section 8).
    Smape,
}

/// The learning rate over a member's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// `lr` at every step (the paper).
    Constant,
    /// Linear warm-up from lr/100 over `warmup_epochs`, then a cosine decay
    /// towards zero at the last step (PyTorch's `LinearLR` then
    /// `CosineAnnealingLR`, stepped per batch).
    Cosine,
}

impl LrSchedule {
    /// The learning rate of optimizer step `step` (0-based) of `total` steps,
    /// `warmup` of them warming up.
    pub fn lr(self, peak: f64, step: usize, total: usize, warmup: usize) -> f64 {
        match self {
            Self::Constant => peak,
            Self::Cosine => {
                let total = total.max(1);
                let warmup = warmup.min(total.saturating_sub(1));
                if step < warmup {
                    // PyTorch's LinearLR(start_factor=0.01, total_iters=warmup).
                    peak * (0.01 + 0.99 * step as f64 / warmup as f64)
                } else {
                    // Then CosineAnnealingLR(T_max=total - warmup, eta_min=0).
                    let t = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                    peak * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
                }
            }
        }
    }
}

/// Training settings (METHOD section 5). Defaults are spectrain's recipe, chosen
/// by 5-fold cross-validation on LAMOST DR10 (`models/README.md`); the paper's
/// is `models/densenet-bc.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub task: Task,
    /// Bootstrap ensemble size.
    pub members: usize,
    pub epochs: usize,
    pub batch: usize,
    /// Peak Adam learning rate (the paper: 1.5e-4 constant for regression,
    /// 5e-4 for classification).
    pub lr: f64,
    /// How the learning rate moves over the run.
    pub lr_schedule: LrSchedule,
    /// Epochs of linear warm-up from lr/100 to `lr` (cosine schedule only).
    pub warmup_epochs: usize,
    /// Decoupled weight decay (AdamW); 0 trains with plain Adam, as the paper.
    pub weight_decay: f64,
    /// Fraction of the dataset held out for validation (fixed-seed split).
    pub val_fraction: f64,
    pub seed: u64,
    /// Huber loss transition point, on standardised targets.
    pub huber_delta: f64,
    /// Resample the training split with replacement for each member.
    pub bootstrap: bool,
    /// Regression loss (classification always uses cross-entropy).
    pub loss: Loss,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            task: Task::Regress,
            members: 5,
            epochs: 100,
            batch: 32,
            lr: 1e-3,
            lr_schedule: LrSchedule::Cosine,
            warmup_epochs: 5,
            weight_decay: 0.0,
            val_fraction: 0.2,
            seed: 42,
            huber_delta: 1.0,
            bootstrap: true,
            loss: Loss::Huber,
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
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            bad.push(format!(
                "weight_decay must be zero or positive, got {}",
                self.weight_decay
            ));
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

/// Standardisation of catalog features, fitted on the training split, with
/// the rule for missing values: a missing (empty or NaN) feature is replaced by
/// its training mean, i.e. 0 after standardisation, and reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureScaler {
    pub names: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Per feature `[min, max]` over the training split, for applicability flags.
    pub ranges: Vec<[f64; 2]>,
}

impl FeatureScaler {
    /// Fits on `rows` of row-major raw features `[N, names.len()]`, ignoring missing values.
    pub fn fit(names: &[String], inputs: &[f32], rows: &[usize]) -> Self {
        let f = names.len();
        let column = |k: usize| -> Vec<f64> {
            rows.iter()
                .map(|&r| inputs[r * f + k] as f64)
                .filter(|v| v.is_finite())
                .collect()
        };
        let (mut mean, mut std, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..f {
            let v = column(k);
            let n = v.len().max(1) as f64;
            let m = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
            mean.push(m);
            std.push(if var > 0.0 { var.sqrt() } else { 1.0 });
            ranges.push(
                v.iter()
                    .fold([f64::INFINITY, f64::NEG_INFINITY], |[lo, hi], &x| {
                        [lo.min(x), hi.max(x)]
                    }),
            );
        }
        Self {
            names: names.to_vec(),
            mean,
            std,
            ranges,
        }
    }

    /// Standardises row-major raw features in place; missing values become 0
    /// (the training mean). Returns, per row, the indices of imputed features.
    pub fn transform(&self, inputs: &mut [f32]) -> Vec<Vec<usize>> {
        let f = self.names.len();
        inputs
            .chunks_mut(f.max(1))
            .map(|row| {
                let mut missing = Vec::new();
                for (k, v) in row.iter_mut().enumerate() {
                    if v.is_finite() {
                        *v = ((*v as f64 - self.mean[k]) / self.std[k]) as f32;
                    } else {
                        *v = 0.0;
                        missing.push(k);
                    }
                }
                missing
            })
            .collect()
    }

    /// Names of the features of a raw row outside their training range.
    pub fn outside(&self, raw: &[f32]) -> Vec<&str> {
        raw.iter()
            .zip(&self.ranges)
            .zip(&self.names)
            .filter(|((v, [lo, hi]), _)| {
                v.is_finite() && ((**v as f64) < *lo || (**v as f64) > *hi)
            })
            .map(|(_, n)| n.as_str())
            .collect()
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
    pub model: ModelConfig,
    pub training: TrainConfig,
    pub preprocess: PreprocessConfig,
    /// Present for regression.
    pub standardiser: Option<Standardiser>,
    pub domain: TrainingDomain,
    /// Catalog-feature models: the input columns and their standardisation.
    #[serde(default)]
    pub features: Option<FeatureScaler>,
}

impl EnsembleSpec {
    pub fn member_file(member: usize) -> String {
        format!("member-{member:02}.bpk")
    }

    /// Values per input the network reads: pixels, or catalog features.
    pub fn input_len(&self) -> usize {
        match &self.features {
            Some(f) => f.names.len(),
            None => {
                let [b, w] = self.preprocess.input_shape();
                b * w
            }
        }
    }

    /// Checks the parts of the spec against each other (a hand-edited or
    /// truncated spec must not shift catalog columns); every problem named.
    pub fn validate(&self) -> Result<(), String> {
        let mut bad = Vec::new();
        let outputs = self.model.outputs();
        let labels = self.label_names.len();
        if labels == 0 {
            bad.push("label_names is empty".to_string());
        }
        match self.task {
            Task::Regress => {
                if labels != outputs {
                    bad.push(format!(
                        "{labels} label names for a network with {outputs} outputs"
                    ));
                }
                match &self.standardiser {
                    Some(s) if s.mean.len() != labels || s.std.len() != labels => {
                        bad.push(format!(
                            "the standardiser has {} means and {} stds for {labels} labels",
                            s.mean.len(),
                            s.std.len()
                        ))
                    }
                    Some(s) if s.std.iter().any(|v| !(*v > 0.0) || !v.is_finite()) => {
                        bad.push("a standardiser std is not positive and finite".into())
                    }
                    None => bad.push("a regression model without a standardiser".into()),
                    _ => {}
                }
                if self.domain.label_ranges.len() != labels {
                    bad.push(format!(
                        "{} label ranges for {labels} labels",
                        self.domain.label_ranges.len()
                    ));
                }
            }
            Task::Classify => {
                if self.classes.len() != outputs {
                    bad.push(format!(
                        "{} classes for a network with {outputs} outputs",
                        self.classes.len()
                    ));
                }
            }
        }
        let input_len = self.input_len();
        let network_inputs = match &self.model {
            crate::model::ModelConfig::Densenet(c) => c.in_channels * c.length,
            crate::model::ModelConfig::Mlp(c) => c.inputs,
        };
        if network_inputs != input_len {
            bad.push(format!(
                "the network reads {network_inputs} values but the inputs have {input_len}"
            ));
        }
        if let Some(f) = &self.features {
            let n = f.names.len();
            if f.mean.len() != n || f.std.len() != n || f.ranges.len() != n {
                bad.push("the feature scaler's lengths differ from its feature names".into());
            }
        }
        if let Some(e) = &self.domain.input_envelope {
            if e.lo.len() != input_len || e.hi.len() != input_len {
                bad.push(format!(
                    "the input envelope has {} values for inputs of {input_len}",
                    e.lo.len()
                ));
            }
        }
        if self.training.members == 0 {
            bad.push("training.members is 0".into());
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_scaler_uses_training_rows_only_and_imputes_the_training_mean() {
        let names = vec!["a".to_string(), "b".to_string()];
        // Row 2 is validation: its huge values must not move the statistics.
        let inputs = [1.0, 10.0, 3.0, f32::NAN, 1e6, 1e6, 5.0, 30.0];
        let s = FeatureScaler::fit(&names, &inputs, &[0, 1, 3]);
        assert_eq!(s.mean, vec![3.0, 20.0]);
        // Population std of (1, 3, 5) and of (10, 30): the NaN is ignored.
        assert!((s.std[0] - (8.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.std[1], 10.0);
        assert_eq!(s.ranges, vec![[1.0, 5.0], [10.0, 30.0]]);
        let mut x = [3.0, f32::NAN, 5.0, 40.0];
        let missing = s.transform(&mut x);
        assert_eq!(missing, vec![vec![1], vec![]]);
        assert_eq!(x[0], 0.0);
        assert_eq!(x[1], 0.0, "imputed with the training mean");
        assert_eq!(x[3], 2.0);
        assert_eq!(s.outside(&[5.0, 40.0]), vec!["b"]);
    }

    #[test]
    fn specs_written_before_the_mlp_still_load() {
        let shipped = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/dr10-teff-logg-feh/spec.json"
        );
        let spec: EnsembleSpec =
            serde_json::from_str(&std::fs::read_to_string(shipped).unwrap()).unwrap();
        assert!(matches!(spec.model, ModelConfig::Densenet(_)));
        assert_eq!(spec.training.loss, Loss::Huber);
        assert!(spec.features.is_none());
        // And what is written now reads back the same.
        let again: EnsembleSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
    }
}
