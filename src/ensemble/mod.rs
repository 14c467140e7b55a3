//! A bootstrap ensemble of networks: its self-describing spec, loading a model
//! directory, and predicting with every member (mean and spread).

pub mod calibration;
pub mod domain;
pub mod gate;
pub mod scaling;
pub mod spec;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};

pub use calibration::Calibration;
pub use domain::{InputEnvelope, TrainingDomain};
pub use gate::Gate;
pub use scaling::{FeatureScaler, Standardiser};
pub use spec::{EnsembleSpec, Loss, LrSchedule, Task, TrainConfig};

use crate::model::Network;

#[derive(Debug, thiserror::Error)]
pub enum EnsembleError {
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A loaded ensemble in inference mode.
pub struct Ensemble {
    pub spec: EnsembleSpec,
    pub members: Vec<Network>,
    /// The uncertainty model of a regression ensemble (`calibration.json`);
    /// `None` for classification and for models trained before it existed.
    pub calibration: Option<Calibration>,
    /// A fine-tuned model's domain gate and the parent it falls back to.
    pub gate: Option<Box<Gated>>,
    pub device: Device,
}

/// The gate of a fine-tuned ensemble ([`gate`]): its members answer where
/// `gate` gives weight 1, `parent`'s where it gives 0.
pub struct Gated {
    pub gate: Gate,
    pub parent: Ensemble,
}

/// Predictions for `n` spectra: member values `[members][n * outputs]` in label
/// units (regression) or class probabilities (classification).
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    pub outputs: usize,
    pub members: Vec<Vec<f32>>,
    /// The reported 1-sigma uncertainty of each value `[n * outputs]` where
    /// the model has one (`calibration.json`, blended by a gate); `None`: the
    /// member spread is reported.
    pub sigma: Option<Vec<f64>>,
}

impl Predictions {
    pub fn len(&self) -> usize {
        self.members
            .first()
            .map_or(0, |m| m.len() / self.outputs.max(1))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Member mean of output `o` for spectrum `i`.
    pub fn mean(&self, i: usize, o: usize) -> f64 {
        let k = i * self.outputs + o;
        self.members.iter().map(|m| m[k] as f64).sum::<f64>() / self.members.len() as f64
    }

    /// The reported 1-sigma uncertainty of label `o` for spectrum `i`: the
    /// calibrated sigma where the model has a calibration, else the spread.
    pub fn sigma(&self, i: usize, o: usize) -> f64 {
        match &self.sigma {
            Some(s) => s[i * self.outputs + o],
            None => self.std(i, o),
        }
    }

    /// Member standard deviation (divisor M) of output `o` for spectrum `i`.
    pub fn std(&self, i: usize, o: usize) -> f64 {
        let mean = self.mean(i, o);
        let k = i * self.outputs + o;
        let var = self
            .members
            .iter()
            .map(|m| (m[k] as f64 - mean).powi(2))
            .sum::<f64>()
            / self.members.len() as f64;
        var.sqrt()
    }
}

/// Runs `model` (in inference mode) over row-major model-ready inputs
/// `[n, per]` in batches; returns raw outputs `[n * outputs]` (standardised
/// values or logits).
///
/// Every batch has exactly `batch` rows (the last is padded with zeros and its
/// padding discarded): the CPU kernels' blocking, and so the order of their
/// float sums, follows the matrix shapes, so a spectrum's prediction would
/// otherwise depend on how many others share its batch, and a resumed or
/// sharded catalog would differ from a single run's in the last bits.
pub fn forward_all(
    model: &Network,
    inputs: &[f32],
    per: usize,
    batch: usize,
    device: &Device,
) -> Vec<f32> {
    let n = inputs.len() / per.max(1);
    let mut out = Vec::new();
    let batch = batch.max(1);
    for start in (0..n).step_by(batch) {
        let b = batch.min(n - start);
        let mut rows = inputs[start * per..(start + b) * per].to_vec();
        rows.resize(batch * per, 0.0);
        let x = Tensor::<2>::from_data(TensorData::new(rows, [batch, per]), device);
        let y = model
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 outputs");
        out.extend_from_slice(&y[..y.len() / batch * b]);
    }
    out
}

impl Ensemble {
    /// Loads `spec.json` and every member's weights from a model directory.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, EnsembleError> {
        let spec_path = dir.join("spec.json");
        let text = std::fs::read_to_string(&spec_path).map_err(|source| EnsembleError::Io {
            path: spec_path.clone(),
            source,
        })?;
        let spec: EnsembleSpec =
            serde_json::from_str(&text).map_err(|e| EnsembleError::Invalid {
                path: spec_path.clone(),
                reason: format!("not a spectrain model spec: {e}"),
            })?;
        spec.validate().map_err(|reason| EnsembleError::Invalid {
            path: spec_path.clone(),
            reason: format!("inconsistent spec: {reason}"),
        })?;
        let files = crate::model_dir::ModelDir::new(dir);
        let mut members = Vec::new();
        for m in 0..spec.training.members {
            let path = files.member_weights(m);
            if !path.exists() {
                return Err(EnsembleError::Invalid {
                    path,
                    reason: "member weights missing (training unfinished? use train --resume)"
                        .into(),
                });
            }
            files
                .verify_checksum(m)
                .map_err(|reason| EnsembleError::Invalid {
                    path: path.clone(),
                    reason,
                })?;
            let model = spec
                .model
                .load(&path, device)
                .map_err(|reason| EnsembleError::Invalid {
                    path: path.clone(),
                    reason,
                })?
                .valid();
            // The weights must produce what the spec says: one value per label or class.
            let probe = forward_all(
                &model,
                &vec![0.0; spec.input_len()],
                spec.input_len(),
                1,
                device,
            );
            if probe.len() != spec.model.outputs() {
                return Err(EnsembleError::Invalid {
                    path,
                    reason: format!(
                        "the weights give {} outputs but spec.json says {}",
                        probe.len(),
                        spec.model.outputs()
                    ),
                });
            }
            members.push(model);
        }
        let calibration = match (spec.task, files.calibration()) {
            (Task::Regress, path) if path.exists() => {
                let invalid = |reason: String| EnsembleError::Invalid {
                    path: path.clone(),
                    reason,
                };
                let text = std::fs::read_to_string(&path).map_err(|source| EnsembleError::Io {
                    path: path.clone(),
                    source,
                })?;
                let c: Calibration = serde_json::from_str(&text)
                    .map_err(|e| invalid(format!("not a spectrain calibration: {e}")))?;
                c.check(&spec.label_names).map_err(invalid)?;
                Some(c)
            }
            _ => None,
        };
        let gate = match gate::Gate::load(dir)
            .map_err(|(path, reason)| EnsembleError::Invalid { path, reason })?
        {
            Some(gate) => {
                let parent_dir = files.parent();
                let parent = Self::load(&parent_dir, device)?;
                let fits = parent.members.len() == members.len()
                    && parent.spec.label_names == spec.label_names
                    && parent.spec.task == spec.task
                    && parent.input_len() == spec.input_len()
                    && gate.per == spec.input_len();
                if !fits {
                    return Err(EnsembleError::Invalid {
                        path: parent_dir,
                        reason: "the gate's parent does not match this model (members, labels or inputs)"
                            .into(),
                    });
                }
                Some(Box::new(Gated { gate, parent }))
            }
            None => None,
        };
        Ok(Self {
            spec,
            members,
            calibration,
            gate,
            device: device.clone(),
        })
    }

    /// Values per input: 4096 pixels, or the number of catalog features.
    pub fn input_len(&self) -> usize {
        self.spec.input_len()
    }

    /// Predicts row-major inputs `[n, input_len]` (preprocessed spectra, or raw
    /// catalog features, which are standardised and imputed here) with every member.
    ///
    /// A gated model (fine-tuned) blends each member with its parent member
    /// by the gate's weight of the input, and its sigma likewise.
    pub fn predict(&self, inputs: &[f32], batch: usize) -> Predictions {
        let own = self.predict_own(inputs, batch);
        let (Some(gated), Some(weights)) = (&self.gate, self.gate_weights(inputs)) else {
            return own;
        };
        let parent = gated.parent.predict(inputs, batch);
        let outputs = own.outputs;
        let members = own
            .members
            .iter()
            .zip(&parent.members)
            .map(|(c, p)| {
                c.iter()
                    .zip(p)
                    .enumerate()
                    .map(|(k, (&c, &p))| blend(weights[k / outputs], c as f64, p as f64) as f32)
                    .collect()
            })
            .collect();
        let sigma = (0..weights.len() * outputs)
            .map(|k| {
                let (i, o) = (k / outputs, k % outputs);
                blend(weights[i], own.sigma(i, o), parent.sigma(i, o))
            })
            .collect();
        Predictions {
            outputs,
            members,
            sigma: (self.spec.task == Task::Regress).then_some(sigma),
        }
    }

    /// A gated model's weight of its own members for each row of `inputs`
    /// (raw, as [`Ensemble::predict`] takes them): 1 inside the new set's
    /// domain, 0 where the parent answers alone. `None` without a gate.
    pub fn gate_weights(&self, inputs: &[f32]) -> Option<Vec<f64>> {
        let gated = self.gate.as_ref()?;
        Some(gated.gate.weights(&self.model_ready(inputs)))
    }

    /// Model-ready inputs: catalog features standardised and imputed, spectra as they are.
    fn model_ready<'a>(&self, inputs: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
        match &self.spec.features {
            Some(scaler) => {
                let mut x = inputs.to_vec();
                scaler.transform(&mut x);
                std::borrow::Cow::Owned(x)
            }
            None => std::borrow::Cow::Borrowed(inputs),
        }
    }

    /// [`Ensemble::predict`] with this model's own members only (no gate).
    pub fn predict_own(&self, inputs: &[f32], batch: usize) -> Predictions {
        let inputs = self.model_ready(inputs);
        let inputs = &inputs[..];
        let per = self.input_len();
        let outputs = self.spec.model.outputs();
        let members = self
            .members
            .iter()
            .map(|model| {
                let raw = crate::model::on_compute_pool(&self.device, || {
                    forward_all(model, inputs, per, batch, &self.device)
                });
                to_label_units(
                    self.spec.task,
                    self.spec.standardiser.as_ref(),
                    raw,
                    outputs,
                    &self.device,
                )
            })
            .collect();
        let mut preds = Predictions {
            outputs,
            members,
            sigma: None,
        };
        if let Some(c) = &self.calibration {
            let n = preds.len();
            preds.sigma = Some(
                (0..n * outputs)
                    .map(|k| c.sigma(k % outputs, preds.std(k / outputs, k % outputs)))
                    .collect(),
            );
        }
        preds
    }
}

/// `w * child + (1 - w) * parent`, exactly `parent` at `w = 0` and `child` at `w = 1`.
fn blend(w: f64, child: f64, parent: f64) -> f64 {
    if w <= 0.0 {
        parent
    } else if w >= 1.0 {
        child
    } else {
        w * child + (1.0 - w) * parent
    }
}

/// Standardised outputs to label units (regression), or logits to class
/// probabilities (classification).
pub fn to_label_units(
    task: Task,
    standardiser: Option<&Standardiser>,
    raw: Vec<f32>,
    outputs: usize,
    device: &Device,
) -> Vec<f32> {
    match (task, standardiser) {
        (Task::Regress, Some(s)) => raw
            .chunks(outputs)
            .flat_map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(l, v)| s.inverse(l, *v as f64) as f32)
                    .collect::<Vec<_>>()
            })
            .collect(),
        _ => {
            let n = raw.len() / outputs.max(1);
            let t = Tensor::<2>::from_data(TensorData::new(raw, [n, outputs]), device);
            softmax(t, 1).into_data().try_to_vec::<f32>().expect("f32")
        }
    }
}
