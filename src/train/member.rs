//! One member's training: its loop over epochs and batches, validation after
//! each epoch, the checkpoint it leaves after every epoch (`member-NN.work/`:
//! weights, optimizer state, [`MemberState`]) and resuming from it, and
//! publishing the member's weights, curves and report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::curves::{write_curves, EpochRecord};
use super::{loss, selection_is_m2, write_json, MemberReport, TrainError};
use crate::atomic::write_atomically;
use crate::dataset::sampling::{derive_seed, gather, Split, SplitMix64};
use crate::dataset::{Dataset, Targets};
use crate::ensemble::{forward_all, to_label_units, EnsembleSpec, Task, TrainConfig};
use crate::evaluate::{classes_of, evaluate, label_columns};
use crate::metrics::{ClassificationMetrics, RegressionMetrics};
use crate::model::{ComputeDevice, Network};

/// A validation loss above this is divergence even while it stays finite. The
/// loss is on standardised targets (Huber) or class probabilities (cross
/// entropy): predicting the training mean scores below 1, and a Huber loss of
/// 1e6 is predictions a million standard deviations off. (How far weights blown
/// up by a far too high learning rate get before they overflow depends on the
/// kernels' float rounding: it must not decide whether such a model is
/// published.)
const DIVERGED_LOSS: f64 = 1e6;

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

impl MemberState {
    /// The checkpoint state `work/state.json` names, for `--resume`.
    fn read(path: &Path) -> Result<Self, TrainError> {
        serde_json::from_str(&std::fs::read_to_string(path)?).map_err(|e| TrainError::Resume {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
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

    /// A training batch: [`Run::input_batch`] plus, when the recipe asks for
    /// it, fresh Gaussian noise of `augment_noise / SNR(g)` per value, drawn
    /// from a stream seeded by the member seed and the step (so a resumed run
    /// draws the same noise).
    fn train_batch(&self, rows: &[usize], device: &Device, seed: u64, step: usize) -> Tensor<2> {
        let k = self.spec.training.augment_noise;
        if k == 0.0 {
            return self.input_batch(rows, device);
        }
        let per = self.data.input_len();
        let mut x = gather(self.inputs, per, rows);
        let mut rng = SplitMix64::new(derive_seed(seed, 2_000_000 + step as u64));
        for (row, &r) in x.chunks_exact_mut(per).zip(rows) {
            let snr = self.data.snrg[r];
            if snr.is_finite() && snr > 0.0 {
                let sigma = k / snr;
                for v in row {
                    *v += (sigma * rng.normal()) as f32;
                }
            }
        }
        Tensor::from_data(TensorData::new(x, [rows.len(), per]), device)
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
        self.member_tuned(m, plan, &super::finetune::Tuning::default())
    }

    /// [`Run::member`] with fine-tuning's extras: frozen batch norms, L2-SP.
    /// On the CPU backend the member trains on a thread of rayon's pool, where
    /// its kernels' parallel loops start without a wake-up and a context switch
    /// each (`crate::model::on_compute_pool`).
    pub(crate) fn member_tuned(
        &self,
        m: usize,
        plan: &MemberPlan,
        tuning: &super::finetune::Tuning,
    ) -> Result<MemberReport, TrainError> {
        crate::model::on_compute_pool(&self.compute.device, || {
            self.member_tuned_here(m, plan, tuning)
        })
    }

    fn member_tuned_here(
        &self,
        m: usize,
        plan: &MemberPlan,
        tuning: &super::finetune::Tuning,
    ) -> Result<MemberReport, TrainError> {
        let cfg = &self.spec.training;
        let epochs = self.schedule.epochs;
        let files = crate::model_dir::ModelDir::new(self.out);
        let final_path = files.member_weights(m);
        let report_path = files.member_report(m);
        if final_path.exists() && report_path.exists() && files.member_checksum(m).exists() {
            let report = read_member_report(&report_path)?;
            // A run killed between publishing the member and removing its
            // checkpoint leaves the checkpoint behind: it is no longer needed.
            let work = files.member_work(m);
            if work.exists() {
                std::fs::remove_dir_all(&work)?;
            }
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
            let state = MemberState::read(&state_path)?;
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
            Some(_) if tuning.l2sp > 0.0 => Some(super::finetune::L2Sp::new(
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
                let pred = model.forward(self.train_batch(chunk, &ad, seed, steps));
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
            if !val_loss.is_finite() || val_loss > DIVERGED_LOSS || !score.is_finite() {
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
