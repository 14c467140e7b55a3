//! What a model directory says about itself: everything `predict` needs to
//! rebuild the ensemble and repeat the preprocessing, as plain JSON.

use serde::{Deserialize, Serialize};

use super::domain::TrainingDomain;
use super::scaling::{FeatureScaler, Standardiser};
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
    /// Resample the training split with replacement for each member (the
    /// paper); when false (the default) every member trains on the whole
    /// training split and members differ by their seed (initialisation,
    /// dropout, batch order), which cross-validated better.
    pub bootstrap: bool,
    /// Regression loss (classification always uses cross-entropy).
    pub loss: Loss,
    /// Training-time noise augmentation: each training spectrum gets fresh
    /// Gaussian noise of standard deviation `augment_noise / SNR(g)` per
    /// pixel of its preprocessed flux at every step (0: off; rows without an
    /// SNR get none).
    #[serde(skip_serializing_if = "is_zero")]
    pub augment_noise: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
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
            bootstrap: false,
            loss: Loss::Huber,
            augment_noise: 0.0,
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
        if !(self.augment_noise >= 0.0 && self.augment_noise.is_finite()) {
            bad.push(format!(
                "augment_noise must be 0 or positive, got {}",
                self.augment_noise
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
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
