//! `spectrain train`: a bootstrap ensemble of DenseNets on an HDF5 dataset
//! (METHOD section 5), written as a self-describing model directory.
//!
//! Model directory:
//! - `spec.json`: model, training and preprocessing config, labels, standardisation
//!   (written before training starts);
//! - `member-NN.bpk`: weights of each member's best epoch; `member-NN.csv`: its curves;
//! - `metrics.json`: validation metrics per member and for the ensemble;
//! - `curves.png`: loss and validation score per epoch for every member;
//! - `provenance.json`: version, git commit, backend, dataset path and SHA-256, wall time;
//! - `member-NN.work/` while a member trains: the last epoch's weights and
//!   optimizer state, so `--resume` continues where a killed run stopped.
//!
//! Reproducibility: a seed fixes the split, the bootstrap resamples, the batch
//! order, initialisation and dropout (the backend RNG is re-seeded every epoch).
//! burn's CPU backend keeps one RNG per process, so two trainings running at
//! once in the same process disturb each other's draws: train one ensemble per
//! process (as the CLI does) when results must be reproducible.

mod curves;
mod defaults;
pub mod finetune;
mod loss;
pub mod sampling;

pub use curves::EpochRecord;
pub use defaults::default_training;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomically;
use crate::dataset::{Dataset, DatasetError};
use crate::ensemble::{
    forward_all, to_label_units, EnsembleSpec, FeatureScaler, InputEnvelope, Standardiser, Task,
    TrainConfig, TrainingDomain,
};
use crate::evaluate::{classes_of, evaluate, label_columns, select_targets, Evaluation, Targets};
use crate::lock::{FileLock, LockMode};
use crate::metrics::{ClassificationMetrics, RegressionMetrics};
use crate::model::{BackendChoice, ComputeDevice, DenseNetConfig, MlpConfig, ModelConfig, Network};
use curves::{read_curves, write_curves};
use sampling::{bootstrap, derive_seed, Split, SplitMix64};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("invalid training setup: {0}")]
    Config(String),
    #[error("{0} already exists: pass --resume to continue it or --force to replace it")]
    Exists(PathBuf),
    #[error("{path}: cannot resume: {reason}")]
    Resume { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Record { path: PathBuf, reason: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Backend(#[from] crate::model::backend::BackendError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(transparent)]
    Output(#[from] crate::outputs::OutputError),
    #[error("member {member}, epoch {epoch}, step {step}: the {what} is {value} (training diverged); nothing was published. Lower the learning rate (it is {lr}) and start again with --force")]
    Diverged {
        member: usize,
        epoch: usize,
        step: usize,
        what: &'static str,
        value: f64,
        lr: f64,
    },
    #[error("member {member} has already started ({path} exists): pass --resume to continue it, or delete its files to start it over")]
    MemberExists { member: usize, path: PathBuf },
    #[error("{dir}: not every member is trained yet (missing: {missing}); run their tasks (train --member K) first")]
    MembersMissing { dir: PathBuf, missing: String },
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub data: PathBuf,
    pub out: PathBuf,
    /// Label columns to train on (default: every label of the dataset).
    pub columns: Option<Vec<String>>,
    pub training: TrainConfig,
    /// Architecture and widths; input size and `outputs` are set from the data.
    pub model: ModelConfig,
    pub backend: BackendChoice,
    pub resume: bool,
    pub force: bool,
    pub progress: bool,
}

/// The optimizer of a member: Adam (the paper), or AdamW when the recipe has
/// weight decay.
fn optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    if cfg.weight_decay > 0.0 {
        AdamWConfig::new()
            .with_weight_decay(cfg.weight_decay as f32)
            .init()
    } else {
        AdamConfig::new().init()
    }
}

/// A member's training state, saved after every epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct MemberState {
    /// Epochs completed.
    epochs_done: usize,
    best_score: Option<f64>,
    best_epoch: Option<usize>,
    curves: Vec<EpochRecord>,
}

/// What training produced, also written to `metrics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub task: Task,
    pub label_names: Vec<String>,
    pub train_rows: usize,
    pub val_rows: usize,
    /// `m2-percent` (all labels positive), `standardised-mae`, or `cross-entropy`.
    pub selection_score: &'static str,
    pub members: Vec<MemberReport>,
    pub ensemble: Evaluation,
    /// The uncertainty model fitted on the validation split (regression), also
    /// `calibration.json`.
    pub calibration: Option<crate::ensemble::Calibration>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberReport {
    pub member: usize,
    pub best_epoch: usize,
    pub best_score: f64,
    pub evaluation: Evaluation,
}

pub(crate) use crate::model_dir::sha256_file;

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    write_atomically(path, |tmp| {
        std::fs::write(
            tmp,
            serde_json::to_string_pretty(value).expect("serialisable"),
        )
    })
}

fn save_module(model: Network, path: &Path) -> Result<(), TrainError> {
    write_atomically(path, |tmp| {
        model.save(tmp).map_err(|reason| TrainError::Record {
            path: path.to_path_buf(),
            reason,
        })
    })
}

/// Which weights a member publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// The epoch with the best validation score (`train`).
    Best,
    /// The last step (`finetune`: its validation part is the held-out report set).
    Last,
}

/// How long members train and which weights they keep.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub epochs: usize,
    /// Stop after this many optimizer steps (the last epoch may be partial).
    pub max_steps: Option<usize>,
    pub keep: Keep,
}

/// Where member `m` starts and what it trains on.
#[derive(Debug, Clone)]
pub(crate) struct MemberPlan {
    pub seed: u64,
    /// Dataset rows of this member's training set (a bootstrap, possibly with anchors).
    pub rows: Vec<usize>,
    /// Initial weights (a parent member); fresh initialisation when `None`.
    pub init: Option<PathBuf>,
    /// Train only the head.
    pub freeze_features: bool,
}

/// Everything a member's training loop needs, fixed for the run.
pub(crate) struct Run<'a> {
    pub data: &'a Dataset,
    /// Model-ready inputs of every row (standardised and imputed for catalog features).
    pub inputs: &'a [f32],
    pub targets: &'a Targets,
    pub split: &'a Split,
    pub spec: &'a EnsembleSpec,
    pub compute: &'a ComputeDevice,
    pub out: &'a Path,
    pub schedule: Schedule,
    pub bar: crate::progress::Progress,
    /// Model-ready inputs of the validation split, gathered once for every epoch's validation.
    pub val_inputs: Vec<f32>,
}

impl Run<'_> {
    fn input_batch(&self, rows: &[usize], device: &Device) -> Tensor<2> {
        let per = self.data.input_len();
        let data = TensorData::new(gather(self.inputs, per, rows), [rows.len(), per]);
        Tensor::from_data(data, device)
    }

    /// Raw outputs (standardised values or logits) of `model` on the validation split.
    fn val_raw(&self, model: &Network) -> Vec<f32> {
        forward_all(
            model,
            &self.val_inputs,
            self.data.input_len(),
            256,
            &self.compute.device,
        )
    }

    fn label_units(&self, raw: Vec<f32>) -> Vec<f32> {
        to_label_units(
            self.targets.task,
            self.spec.standardiser.as_ref(),
            raw,
            self.spec.model.outputs(),
            &self.compute.device,
        )
    }

    /// The training loss of `pred` on dataset rows `rows` ([`loss::batch_loss`]).
    fn loss(&self, pred: Tensor<2>, rows: &[usize], device: &Device) -> Tensor<1> {
        loss::batch_loss(
            &self.spec.training,
            self.spec.standardiser.as_ref(),
            self.targets,
            pred,
            rows,
            device,
        )
    }

    /// Validation loss, selection score and per-label values of a model.
    fn validate(&self, model: &Network) -> (f64, f64, Vec<f64>) {
        let device = &self.compute.device;
        let raw = self.val_raw(model);
        let n = self.split.val.len();
        let outputs = self.spec.model.outputs();
        let loss = {
            let pred = Tensor::<2>::from_data(TensorData::new(raw.clone(), [n, outputs]), device);
            self.loss(pred, &self.split.val, device)
                .into_scalar::<f32>() as f64
        };
        let pred = self.label_units(raw);
        let l = self.targets.names.len();
        match self.targets.task {
            Task::Regress => {
                let s = self
                    .spec
                    .standardiser
                    .as_ref()
                    .expect("regression has a standardiser");
                let mut maes = Vec::new();
                let mut scores = Vec::new();
                let all_positive = selection_is_m2(self.targets, &self.split.train);
                for j in 0..l {
                    let (p, y) = label_columns(&pred, &self.targets.values, &self.split.val, l, j);
                    let m = RegressionMetrics::compute(&p, &y);
                    maes.push(m.mae);
                    scores.push(if all_positive {
                        m.mape.unwrap_or(f64::INFINITY)
                    } else {
                        m.mae / s.std[j]
                    });
                }
                let score = scores.iter().sum::<f64>() / scores.len() as f64;
                (loss, score, maes)
            }
            Task::Classify => {
                let (predicted, truth) =
                    classes_of(&pred, &self.targets.values, &self.split.val, outputs);
                let m = ClassificationMetrics::compute(&predicted, &truth);
                (loss, loss, vec![m.accuracy])
            }
        }
    }

    /// A member's starting network: its plan's initial weights (frozen features
    /// when asked), or a fresh seeded initialisation.
    fn initial(&self, plan: &MemberPlan, device: &Device) -> Result<Network, TrainError> {
        let model = match &plan.init {
            Some(path) => {
                self.spec
                    .model
                    .load(path, device)
                    .map_err(|reason| TrainError::Record {
                        path: path.clone(),
                        reason,
                    })?
            }
            None => self.spec.model.init(device),
        };
        Ok(if plan.freeze_features {
            model.freeze_features()
        } else {
            model
        })
    }

    /// Trains (or resumes) member `m` and returns its report.
    pub(crate) fn member(&self, m: usize, plan: &MemberPlan) -> Result<MemberReport, TrainError> {
        self.member_tuned(m, plan, &finetune::Tuning::default())
    }

    /// [`Run::member`] with fine-tuning's extras: frozen batch norms, L2-SP.
    pub(crate) fn member_tuned(
        &self,
        m: usize,
        plan: &MemberPlan,
        tuning: &finetune::Tuning,
    ) -> Result<MemberReport, TrainError> {
        let cfg = &self.spec.training;
        let epochs = self.schedule.epochs;
        let files = crate::model_dir::ModelDir::new(self.out);
        let final_path = files.member_weights(m);
        let report_path = files.member_report(m);
        if final_path.exists() && report_path.exists() && files.member_checksum(m).exists() {
            let report = read_member_report(&report_path)?;
            self.bar.inc(epochs as u64);
            tracing::info!("member {m}: already trained, skipped");
            return Ok(report);
        }
        let work = files.member_work(m);
        std::fs::create_dir_all(&work)?;
        let seed = plan.seed;
        let ad = self.compute.autodiff();
        let state_path = work.join("state.json");
        let (mut model, mut optim, mut state) = if state_path.exists() {
            let state: MemberState = serde_json::from_str(&std::fs::read_to_string(&state_path)?)
                .map_err(|e| TrainError::Resume {
                path: state_path.clone(),
                reason: e.to_string(),
            })?;
            let last = work.join(format!("last-e{:04}.bpk", state.epochs_done));
            let opt = work.join(format!("optim-e{:04}.bpk", state.epochs_done));
            let resume_err = |reason: String| TrainError::Resume {
                path: work.clone(),
                reason,
            };
            let resumed = MemberPlan {
                init: Some(last),
                ..plan.clone()
            };
            let model = self
                .initial(&resumed, &ad)
                .map_err(|e| resume_err(e.to_string()))?;
            let optim = optimizer(cfg)
                .load(&opt)
                .map_err(|e| resume_err(format!("{}: {e}", opt.display())))?;
            tracing::info!("member {m}: resuming after epoch {}", state.epochs_done);
            self.bar.inc(state.epochs_done as u64);
            (model, optim, state)
        } else {
            ad.seed(seed);
            (
                self.initial(plan, &ad)?,
                optimizer(cfg),
                MemberState::default(),
            )
        };
        if tuning.freeze_norm {
            // Every batch-norm field is named `norm` or `final_norm`.
            model = model.freeze_group(burn::module::ParamGroup::from_predicate("norm"));
        }
        let l2sp = match &plan.init {
            Some(_) if tuning.l2sp > 0.0 => Some(finetune::L2Sp::new(
                &self.initial(plan, &ad)?.no_grad(),
                tuning.l2sp,
            )),
            _ => None,
        };
        let batches_per_epoch = plan.rows.chunks(cfg.batch).filter(|c| c.len() >= 2).count();
        let mut steps = state.epochs_done * batches_per_epoch;
        let total_steps = self
            .schedule
            .max_steps
            .unwrap_or(epochs * batches_per_epoch);
        let lr_at = |step: usize| {
            cfg.lr_schedule.lr(
                cfg.lr,
                step,
                total_steps,
                cfg.warmup_epochs * batches_per_epoch,
            )
        };
        for epoch in state.epochs_done..epochs {
            let t0 = Instant::now();
            // Re-seeded each epoch so a resumed run draws the same dropout masks.
            ad.seed(derive_seed(seed, 1 + epoch as u64));
            let mut order = plan.rows.clone();
            SplitMix64::new(derive_seed(seed, 1_000_000 + epoch as u64)).shuffle(&mut order);
            let (mut loss_sum, mut batches) = (0.0, 0usize);
            for chunk in order.chunks(cfg.batch) {
                if chunk.len() < 2 {
                    continue; // batch norm needs two samples
                }
                if self.schedule.max_steps.is_some_and(|max| steps >= max) {
                    break;
                }
                let pred = model.forward(self.input_batch(chunk, &ad));
                let loss = self.loss(pred, chunk, &ad);
                let value = loss.clone().into_scalar::<f32>() as f64;
                // No non-finite step is tolerated: its gradients would turn every
                // weight into NaN, so stop before the optimizer applies them.
                if !value.is_finite() {
                    return Err(TrainError::Diverged {
                        member: m,
                        epoch: epoch + 1,
                        step: steps + 1,
                        what: "training loss",
                        value,
                        lr: lr_at(steps),
                    });
                }
                loss_sum += value;
                batches += 1;
                let lr = lr_at(steps);
                steps += 1;
                // The curve records the data loss; L2-SP joins only the gradient.
                let loss = match l2sp.as_ref().and_then(|s| s.penalty(&model)) {
                    Some(penalty) => loss + penalty,
                    None => loss,
                };
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
            }
            let valid = model.valid();
            let (val_loss, score, per_label) = self.validate(&valid);
            if !val_loss.is_finite() || !score.is_finite() {
                return Err(TrainError::Diverged {
                    member: m,
                    epoch: epoch + 1,
                    step: steps,
                    what: "validation loss",
                    value: if val_loss.is_finite() {
                        score
                    } else {
                        val_loss
                    },
                    lr: cfg.lr,
                });
            }
            let record = EpochRecord {
                epoch: epoch + 1,
                train_loss: loss_sum / batches.max(1) as f64,
                val_loss,
                val_score: score,
                val_per_label: per_label,
                seconds: t0.elapsed().as_secs_f64(),
            };
            self.bar.set_message(format!(
                "member {m} epoch {} loss {:.4} val {:.4}",
                epoch + 1,
                record.train_loss,
                score
            ));
            self.bar.inc(1);
            state.curves.push(record);
            let keep = match self.schedule.keep {
                Keep::Best => state.best_score.is_none_or(|b| score < b),
                Keep::Last => true,
            };
            if keep {
                state.best_score = Some(score);
                state.best_epoch = Some(epoch + 1);
                save_module(valid, &work.join("best.bpk"))?;
            }
            self.checkpoint(&work, &model, &optim, &mut state, epoch + 1)?;
        }
        // Publish the member: checksum, kept weights, curves, report; then drop
        // the work dir. A kill between steps leaves a state this function resumes.
        let kept = if work.join("best.bpk").exists() {
            work.join("best.bpk")
        } else {
            final_path.clone()
        };
        let evaluation = {
            let best = self
                .spec
                .model
                .load(&kept, &self.compute.device)
                .map_err(|reason| TrainError::Record {
                    path: kept.clone(),
                    reason,
                })?
                .valid();
            let pred = self.label_units(self.val_raw(&best));
            evaluate(
                self.targets,
                self.data,
                &self.split.val,
                &[pred],
                self.spec.model.outputs(),
            )
        };
        write_curves(&files.member_curves(m), &self.targets.names, &state.curves)?;
        files.write_checksum(m, &kept)?;
        if kept != final_path {
            std::fs::rename(&kept, &final_path)?;
        }
        let report = MemberReport {
            member: m,
            best_epoch: state.best_epoch.unwrap_or(0),
            best_score: state.best_score.unwrap_or(f64::NAN),
            evaluation,
        };
        write_json(&report_path, &report)?;
        std::fs::remove_dir_all(&work)?;
        // As written: a run that trained its members and one that found them on
        // disk (resumed, or trained by separate tasks) report the same numbers.
        read_member_report(&report_path)
    }

    /// Saves weights and optimizer state of epoch `done`, then the state that
    /// names them, then removes the previous epoch's files: a kill at any point
    /// leaves a consistent checkpoint.
    fn checkpoint(
        &self,
        work: &Path,
        model: &Network,
        optim: &ModuleOptimizer,
        state: &mut MemberState,
        done: usize,
    ) -> Result<(), TrainError> {
        save_module(model.clone(), &work.join(format!("last-e{done:04}.bpk")))?;
        let opt_path = work.join(format!("optim-e{done:04}.bpk"));
        write_atomically(&opt_path, |tmp| {
            optim.save(tmp).map_err(|e| TrainError::Record {
                path: opt_path.clone(),
                reason: e.to_string(),
            })
        })?;
        let previous = state.epochs_done;
        state.epochs_done = done;
        write_json(&work.join("state.json"), state)?;
        if previous > 0 {
            let _ = std::fs::remove_file(work.join(format!("last-e{previous:04}.bpk")));
            let _ = std::fs::remove_file(work.join(format!("optim-e{previous:04}.bpk")));
        }
        Ok(())
    }
}

/// A published member's `member-NN.json`.
fn read_member_report(path: &Path) -> Result<MemberReport, TrainError> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| TrainError::Resume {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Rows `rows` of row-major `inputs` with `per` values each.
pub(crate) fn gather(inputs: &[f32], per: usize, rows: &[usize]) -> Vec<f32> {
    let mut buf = Vec::with_capacity(rows.len() * per);
    for &r in rows {
        buf.extend_from_slice(&inputs[r * per..(r + 1) * per]);
    }
    buf
}

/// M2 selection when every label is strictly positive in the training split.
pub(crate) fn selection_is_m2(targets: &Targets, train: &[usize]) -> bool {
    let l = targets.names.len();
    train
        .iter()
        .all(|&r| (0..l).all(|j| targets.values[r * l + j] > 0.0))
}

/// `provenance.json`: where a model came from.
#[derive(Serialize)]
pub(crate) struct Provenance {
    pub spectrain_version: &'static str,
    pub git_commit: &'static str,
    pub command: &'static str,
    pub backend: String,
    pub backend_reason: String,
    pub device: String,
    /// The GPU a wgpu run used: vendor, device, driver, graphics API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<crate::model::backend::Adapter>,
    pub dataset: String,
    pub dataset_sha256: String,
    pub started_unix: u64,
    pub wall_seconds: f64,
    pub completed: bool,
    /// `finetune`: the parent model and how it was fine-tuned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<serde_json::Value>,
}

impl Provenance {
    pub(crate) fn new(
        command: &'static str,
        compute: &ComputeDevice,
        data: &Path,
    ) -> std::io::Result<Self> {
        Ok(Self {
            spectrain_version: env!("CARGO_PKG_VERSION"),
            git_commit: env!("SPECTRAIN_GIT_COMMIT"),
            command,
            backend: compute.backend.to_string(),
            backend_reason: compute.reason.clone(),
            device: format!("{:?}", compute.device),
            adapter: compute.adapter.clone(),
            dataset: data.display().to_string(),
            dataset_sha256: sha256_file(data)?,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            wall_seconds: 0.0,
            completed: false,
            parent: None,
        })
    }
}

/// Per label `[min, max]` of `rows` of row-major `[N, l]` values.
pub(crate) fn label_ranges(values: &[f32], l: usize, rows: &[usize]) -> Vec<[f64; 2]> {
    (0..l)
        .map(|j| {
            rows.iter()
                .fold([f64::INFINITY, f64::NEG_INFINITY], |[lo, hi], &r| {
                    let v = values[r * l + j] as f64;
                    [lo.min(v), hi.max(v)]
                })
        })
        .collect()
}

/// The network configuration fitted to a dataset: input size from the data,
/// outputs from the labels.
fn fit_model(
    model: &ModelConfig,
    data: &Dataset,
    outputs: usize,
) -> Result<ModelConfig, TrainError> {
    Ok(match model {
        ModelConfig::Densenet(c) => {
            if data.features.is_some() {
                return Err(TrainError::Config(
                    "this is a catalog-feature dataset (prepare-table): train it with --arch mlp"
                        .into(),
                ));
            }
            ModelConfig::Densenet(DenseNetConfig {
                in_channels: data.input_shape[0],
                length: data.input_shape[1],
                outputs,
                ..c.clone()
            })
        }
        ModelConfig::Mlp(c) => {
            c.check().map_err(TrainError::Config)?;
            ModelConfig::Mlp(MlpConfig {
                inputs: data.input_len(),
                outputs,
                ..c.clone()
            })
        }
    })
}

/// Opens the model directory for a run: new, replaced (`force`, only when it
/// is a spectrain model directory), or continued (`resume`, only when the
/// saved spec is this run's). Returns the directory's run lock, held until the
/// run ends, so a second run on the same directory is refused.
pub(crate) fn open_model_dir(
    out: &Path,
    spec: &EnsembleSpec,
    resume: bool,
    force: bool,
) -> Result<crate::lock::FileLock, TrainError> {
    use crate::lock::{FileLock, LockMode};
    let files = crate::model_dir::ModelDir::new(out);
    let spec_path = files.spec();
    crate::outputs::check_dir(out)?;
    if out.exists() && !resume {
        if !force {
            return Err(TrainError::Exists(out.to_path_buf()));
        }
        // Only a directory spectrain made may be replaced: its spec must parse.
        let is_model = std::fs::read_to_string(&spec_path)
            .ok()
            .and_then(|t| serde_json::from_str::<EnsembleSpec>(&t).ok())
            .is_some();
        if !is_model {
            return Err(crate::outputs::OutputError::NotModelDir(out.to_path_buf()).into());
        }
    }
    if resume && !spec_path.exists() {
        return Err(TrainError::Resume {
            path: out.to_path_buf(),
            reason: "no spec.json: nothing to resume (start a new run without --resume)".into(),
        });
    }
    std::fs::create_dir_all(out)?;
    let lock = FileLock::acquire(&files.train_lock(), LockMode::Exclusive)?;
    if resume {
        // Compared as text: what this run would write, byte for byte (parsing
        // floats back need not round-trip exactly).
        let text = std::fs::read_to_string(&spec_path)?;
        if text != serde_json::to_string_pretty(spec).expect("serialisable") {
            return Err(TrainError::Resume {
                path: spec_path,
                reason: "the saved spec differs from this run's data or settings".into(),
            });
        }
        return Ok(lock);
    }
    if force {
        clear_model_dir(out)?;
    }
    write_json(&spec_path, spec)?;
    Ok(lock)
}

/// Removes what spectrain wrote in a model directory (not the run lock, which
/// this run holds) and leaves anything else where it is, saying so.
fn clear_model_dir(out: &Path) -> Result<(), TrainError> {
    let mut kept = Vec::new();
    for entry in std::fs::read_dir(out)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "train.lock" {
            continue;
        }
        if !crate::model_dir::ModelDir::is_own_entry(&name) {
            kept.push(name);
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    if !kept.is_empty() {
        tracing::warn!(
            "--force replaced the model in {} but left what spectrain did not write there: {}",
            out.display(),
            kept.join(", ")
        );
    }
    Ok(())
}

/// Trains every member of `plans`, then scores the ensemble on the validation
/// split and writes `metrics.json` and `curves.png`.
pub(crate) fn run_members(
    run: &Run,
    plans: &[MemberPlan],
    started: Instant,
) -> Result<TrainReport, TrainError> {
    let members = plans
        .iter()
        .enumerate()
        .map(|(m, plan)| run.member(m, plan))
        .collect::<Result<Vec<_>, _>>()?;
    score_members(run, plans, members, started)
}

/// Scores the ensemble of trained `members` on the validation split and
/// writes `metrics.json` and `curves.png`.
pub(crate) fn score_members(
    run: &Run,
    plans: &[MemberPlan],
    members: Vec<MemberReport>,
    started: Instant,
) -> Result<TrainReport, TrainError> {
    run.bar.finish_and_clear();
    let ensemble = crate::ensemble::Ensemble::load(run.out, &run.compute.device).map_err(|e| {
        TrainError::Record {
            path: run.out.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    // The ensemble takes raw inputs (it standardises catalog features itself).
    let raw_val = gather(&run.data.inputs, run.data.input_len(), &run.split.val);
    let preds = ensemble.predict(&raw_val, 256);
    let targets = run.targets;
    // The uncertainty model, fitted on the validation split no member trained on.
    let calibration = (targets.task == Task::Regress).then(|| {
        let l = targets.names.len();
        let truth: Vec<f32> = run
            .split
            .val
            .iter()
            .flat_map(|&r| (0..l).map(move |j| targets.values[r * l + j]))
            .collect();
        crate::ensemble::Calibration::fit(
            &targets.names,
            &preds,
            &truth,
            &format!("validation split ({} rows)", run.split.val.len()),
        )
    });
    let files = crate::model_dir::ModelDir::new(run.out);
    match &calibration {
        Some(c) => write_json(&files.calibration(), c)?,
        None => {
            let _ = std::fs::remove_file(files.calibration());
        }
    }
    let report = TrainReport {
        task: targets.task,
        label_names: targets.names.clone(),
        train_rows: run.split.train.len(),
        val_rows: run.split.val.len(),
        selection_score: match (targets.task, run.schedule.keep) {
            (_, Keep::Last) => "last-step",
            (Task::Classify, _) => "cross-entropy",
            (Task::Regress, _) if selection_is_m2(targets, &run.split.train) => "m2-percent",
            (Task::Regress, _) => "standardised-mae",
        },
        members,
        ensemble: evaluate(
            targets,
            run.data,
            &run.split.val,
            &preds.members,
            run.spec.model.outputs(),
        ),
        calibration,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_json(&run.out.join("metrics.json"), &report)?;
    let curves = (0..plans.len())
        .map(|m| read_curves(&run.out.join(format!("member-{m:02}.csv"))))
        .collect::<Result<Vec<_>, _>>()?;
    if let Err(e) = crate::plot::training_curves(
        &run.out.join("curves.png"),
        &run.spec.training,
        report.selection_score,
        &curves,
    ) {
        // A missing picture is no reason to lose a trained model.
        tracing::warn!("{e}");
    }
    Ok(report)
}

/// What every task of one training run derives from its options alone: the
/// data, the split, the spec and each member's plan. Whole runs, member tasks
/// and the finishing step all start here, so they agree by construction.
struct Planned {
    data: Dataset,
    targets: Targets,
    split: Split,
    /// Model-ready inputs (catalog features standardised and imputed).
    inputs: Vec<f32>,
    spec: EnsembleSpec,
    compute: ComputeDevice,
    plans: Vec<MemberPlan>,
}

impl Planned {
    fn new(opts: &TrainOptions) -> Result<Self, TrainError> {
        opts.training.check().map_err(TrainError::Config)?;
        let data = Dataset::read(&opts.data)?;
        let targets = select_targets(&data, opts.columns.as_deref(), opts.training.task)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        if data.len() < 4 {
            return Err(TrainError::Config(format!(
                "{} has {} rows; at least 4 are needed",
                opts.data.display(),
                data.len()
            )));
        }
        let compute = opts.backend.open()?;

        let split = Split::new(data.len(), opts.training.val_fraction, opts.training.seed);
        let l = targets.names.len();
        let standardiser = (targets.task == Task::Regress)
            .then(|| Standardiser::fit(&targets.values, l, &split.train));
        let snr: Vec<f64> = split
            .train
            .iter()
            .map(|&r| data.snrg[r])
            .filter(|s| s.is_finite())
            .collect();
        let snrg_range = (!snr.is_empty()).then(|| {
            snr.iter()
                .fold([f64::INFINITY, f64::NEG_INFINITY], |[lo, hi], &v| {
                    [lo.min(v), hi.max(v)]
                })
        });
        let outputs = if targets.task == Task::Classify {
            targets.classes
        } else {
            l
        };
        let model = fit_model(&opts.model, &data, outputs)?;
        // Catalog features are standardised with the training split's statistics.
        let features = data
            .features
            .as_ref()
            .map(|names| FeatureScaler::fit(names, &data.inputs, &split.train));
        let mut inputs = data.inputs.clone();
        if let Some(f) = &features {
            let imputed: usize = f.transform(&mut inputs).iter().map(Vec::len).sum();
            if imputed > 0 {
                tracing::info!("{imputed} missing feature values imputed with their training mean");
            }
        }
        let spec = EnsembleSpec {
            spectrain_version: env!("CARGO_PKG_VERSION").into(),
            task: targets.task,
            label_names: targets.names.clone(),
            classes: (0..targets.classes).map(|k| format!("class_{k}")).collect(),
            model,
            training: opts.training.clone(),
            preprocess: data.preprocess.clone(),
            standardiser,
            domain: TrainingDomain {
                label_ranges: label_ranges(&targets.values, l, &split.train),
                snrg_range,
                input_envelope: features
                    .is_none()
                    .then(|| InputEnvelope::fit(&data.inputs, data.input_len(), &split.train)),
            },
            features,
        };
        let cfg = &spec.training;
        let plans: Vec<MemberPlan> = (0..cfg.members)
            .map(|m| {
                let seed = derive_seed(cfg.seed, 1000 + m as u64);
                MemberPlan {
                    seed,
                    rows: if cfg.bootstrap && cfg.members > 1 {
                        bootstrap(&split.train, seed)
                    } else {
                        split.train.clone()
                    },
                    init: None,
                    freeze_features: false,
                }
            })
            .collect();
        Ok(Self {
            data,
            targets,
            split,
            inputs,
            spec,
            compute,
            plans,
        })
    }

    fn run<'a>(&'a self, out: &'a Path, bar: crate::progress::Progress) -> Run<'a> {
        Run {
            data: &self.data,
            inputs: &self.inputs,
            targets: &self.targets,
            split: &self.split,
            spec: &self.spec,
            compute: &self.compute,
            out,
            schedule: Schedule {
                epochs: self.spec.training.epochs,
                max_steps: None,
                keep: Keep::Best,
            },
            bar,
            val_inputs: gather(&self.inputs, self.data.input_len(), &self.split.val),
        }
    }
}

pub fn train(opts: &TrainOptions) -> Result<TrainReport, TrainError> {
    let start = Instant::now();
    crate::outputs::check_not_over_inputs(&opts.out, &[("dataset", &opts.data)])?;
    let planned = Planned::new(opts)?;
    let spec = &planned.spec;
    let lock = open_model_dir(&opts.out, spec, opts.resume, opts.force)?;
    let mut provenance = Provenance::new("train", &planned.compute, &opts.data)?;
    write_json(&opts.out.join("provenance.json"), &provenance)?;

    let cfg = &spec.training;
    let bar = crate::progress::bar((cfg.members * cfg.epochs) as u64, "train", opts.progress);
    let run = planned.run(&opts.out, bar);
    let report = run_members(&run, &planned.plans, start)?;
    provenance.wall_seconds = start.elapsed().as_secs_f64();
    provenance.completed = true;
    write_json(&opts.out.join("provenance.json"), &provenance)?;
    lock.release_and_remove();
    Ok(report)
}

// Members as separate tasks (a Slurm job array): `train --member K` trains one
// member into a shared model directory, `train --finish` scores the ensemble.
// Every task derives the same spec and plans from the same options, so the
// directory they build together is the one a single `train` writes.
//
// Locks: a task holds `train.lock` shared (tasks overlap; a whole run or the
// finishing step, which hold it exclusively, are kept out) and its own
// `member-NN.lock` exclusively (one task per member).

/// The lock that a whole run and the finishing step hold exclusively.
fn run_lock_path(out: &Path) -> PathBuf {
    crate::model_dir::ModelDir::new(out).train_lock()
}

fn member_lock_path(out: &Path, member: usize) -> PathBuf {
    crate::model_dir::ModelDir::new(out).member_lock(member)
}

/// Writes `spec.json` if no task has yet, else checks the one on disk is this
/// task's, byte for byte. The file is linked into place whole (`link(2)` fails
/// when the name exists), so two tasks starting at once agree on one winner
/// and the loser compares against a complete file.
fn publish_spec(out: &Path, spec: &EnsembleSpec) -> Result<(), TrainError> {
    let path = out.join("spec.json");
    let text = serde_json::to_string_pretty(spec).expect("serialisable");
    if !path.exists() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let tmp = out.join(format!(
            ".spec.json.{}.{}.tmp",
            host.trim(),
            std::process::id()
        ));
        std::fs::write(&tmp, &text)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    }
    if std::fs::read_to_string(&path)? != text {
        return Err(TrainError::Resume {
            path,
            reason: "the spec on disk differs from this task's data or settings (every task of \
                     a run must be given the same data, config and flags)"
                .into(),
        });
    }
    Ok(())
}

/// `train --member K`: trains member `member` (0-based) of the run `opts`
/// describes into `opts.out`, beside other member tasks of the same run.
/// `--resume` continues (or skips) this member as it does for a whole run.
pub fn train_member(opts: &TrainOptions, member: usize) -> Result<MemberReport, TrainError> {
    if opts.force {
        return Err(TrainError::Config(
            "--force replaces a whole model directory and does not apply to --member".into(),
        ));
    }
    crate::outputs::check_not_over_inputs(&opts.out, &[("dataset", &opts.data)])?;
    let planned = Planned::new(opts)?;
    let members = planned.spec.training.members;
    if member >= members {
        return Err(TrainError::Config(format!(
            "--member {member}: this run has {members} members, numbered 0 to {}",
            members - 1
        )));
    }
    if opts.out.exists() && !opts.out.is_dir() {
        return Err(TrainError::Config(format!(
            "{} exists and is not a directory",
            opts.out.display()
        )));
    }
    std::fs::create_dir_all(&opts.out)?;
    let _run = FileLock::acquire(&run_lock_path(&opts.out), LockMode::Shared)?;
    let own = FileLock::acquire(&member_lock_path(&opts.out, member), LockMode::Exclusive)?;
    let result = member_task(opts, &planned, member);
    // A failed task leaves its checkpoint for --resume; only a kill leaves the lock file.
    own.release_and_remove();
    result
}

fn member_task(
    opts: &TrainOptions,
    planned: &Planned,
    member: usize,
) -> Result<MemberReport, TrainError> {
    publish_spec(&opts.out, &planned.spec)?;
    if !opts.resume {
        let files = crate::model_dir::ModelDir::new(&opts.out);
        let mine = [
            files.member_weights(member),
            files.member_checksum(member),
            files.member_work(member),
            files.member_curves(member),
            files.member_report(member),
        ];
        if let Some(path) = mine.into_iter().find(|p| p.exists()) {
            return Err(TrainError::MemberExists { member, path });
        }
    }
    let epochs = planned.spec.training.epochs;
    let bar = crate::progress::bar(epochs as u64, "train", opts.progress);
    let run = planned.run(&opts.out, bar);
    let report = run.member(member, &planned.plans[member])?;
    run.bar.finish_and_clear();
    Ok(report)
}

/// `train --finish`: once every member task of the run `opts` describes has
/// finished, scores the ensemble and writes `metrics.json`, `curves.png` and
/// `provenance.json`, as the end of a whole `train` does.
pub fn finish_members(opts: &TrainOptions) -> Result<TrainReport, TrainError> {
    let start = Instant::now();
    let planned = Planned::new(opts)?;
    let out = &opts.out;
    if !out.join("spec.json").exists() {
        return Err(TrainError::Config(format!(
            "{} has no spec.json: run the member tasks (train --member K) first",
            out.display()
        )));
    }
    let lock = FileLock::acquire(&run_lock_path(out), LockMode::Exclusive)?;
    publish_spec(out, &planned.spec)?;
    let members = planned.spec.training.members;
    let missing: Vec<String> = (0..members)
        .filter(|&m| {
            let files = crate::model_dir::ModelDir::new(out);
            !files.member_weights(m).exists()
                || !files.member_report(m).exists()
                || !files.member_checksum(m).exists()
        })
        .map(|m| m.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(TrainError::MembersMissing {
            dir: out.clone(),
            missing: missing.join(", "),
        });
    }
    // Lock files that killed tasks left: no task runs while we hold train.lock.
    for m in 0..members {
        let _ = std::fs::remove_file(member_lock_path(out, m));
    }
    let mut provenance = Provenance::new("train", &planned.compute, &opts.data)?;
    let bar = crate::progress::bar(0, "train", false);
    let run = planned.run(out, bar);
    // Every member is on disk, so this only loads them and scores the ensemble.
    let report = run_members(&run, &planned.plans, start)?;
    provenance.wall_seconds = start.elapsed().as_secs_f64();
    provenance.completed = true;
    write_json(&out.join("provenance.json"), &provenance)?;
    lock.release_and_remove();
    Ok(report)
}
