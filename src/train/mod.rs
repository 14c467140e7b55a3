//! `spectrain train`: an ensemble of DenseNets on an HDF5 dataset
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
//!
//! Here: the run (options, plan, model directory, provenance, scoring the
//! ensemble). One member's loop, checkpoint and resume are in [`member`], the
//! losses in [`loss`], the curve CSVs in [`curves`]; splits, bootstrap
//! resamples and row gathering are the data's ([`crate::dataset::sampling`]).

mod curves;
mod defaults;
pub mod finetune;
mod loss;
mod member;

use member::{Keep, MemberPlan, Run, Schedule};

pub use curves::EpochRecord;
pub use defaults::default_training;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomically;
use crate::dataset::sampling::{bootstrap, derive_seed, gather, Split};
use crate::dataset::{select_targets, Dataset, DatasetError, Targets};
use crate::ensemble::{
    EnsembleSpec, FeatureScaler, Standardiser, Task, TrainConfig, TrainingDomain,
};
use crate::evaluate::{evaluate, Evaluation};
use crate::lock::{FileLock, LockMode};
use crate::model::{BackendChoice, ComputeDevice, DenseNetConfig, MlpConfig, ModelConfig};
use curves::read_curves;

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
    /// How many members trained at once (`train --parallel-members`), each in
    /// its own process; absent where unknown (`--finish` after member tasks
    /// run elsewhere) and in models written before it was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members_at_once: Option<usize>,
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
            members_at_once: None,
            parent: None,
        })
    }
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
            domain: TrainingDomain::fit(
                &targets.values,
                l,
                &data.snrg,
                // Spectra get an input envelope; catalog features do not.
                features
                    .is_none()
                    .then(|| (&data.inputs[..], data.input_len())),
                &split.train,
            ),
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
    provenance.members_at_once = Some(1);
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

/// Whether member `m` is trained: its weights, checksum and report are written.
fn member_on_disk(files: &crate::model_dir::ModelDir, m: usize) -> bool {
    files.member_weights(m).exists()
        && files.member_report(m).exists()
        && files.member_checksum(m).exists()
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
    finish(opts, Instant::now(), None, None)
}

/// The finishing step, for a run that started at `start` (`started_unix`,
/// when it is not now) with `at_once` members at a time, when known.
fn finish(
    opts: &TrainOptions,
    start: Instant,
    started_unix: Option<u64>,
    at_once: Option<usize>,
) -> Result<TrainReport, TrainError> {
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
    let files = crate::model_dir::ModelDir::new(out);
    let missing: Vec<String> = (0..members)
        .filter(|&m| !member_on_disk(&files, m))
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
    provenance.started_unix = started_unix.unwrap_or(provenance.started_unix);
    provenance.members_at_once = at_once;
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

// A whole run whose members train at once, each in its own process
// (`train --parallel-members N`; burn's RNG is process-wide, so threads of one
// process could not train reproducibly): the caller prepares the directory
// here, runs `train --member K` tasks, then finishes here. The tasks' locks
// and checks are the job array's; this adds the whole run's `--force` and
// `--resume` handling and its provenance.

/// A model directory prepared for member tasks by [`prepare_members`].
#[derive(Debug)]
pub struct PreparedMembers {
    /// The device the members will train on, as the tasks will open it.
    pub compute: ComputeDevice,
    /// Members of the run.
    pub members: usize,
    /// Members not yet trained (all of them, unless resuming).
    pub pending: Vec<usize>,
    start: Instant,
    started_unix: u64,
    /// Held shared while the tasks run, so no whole run starts over them.
    lock: FileLock,
}

/// Opens `opts.out` as a whole `train` would (new, `force` replaced, or
/// `resume` continued, with the same refusals) and writes `spec.json` and an
/// unfinished `provenance.json`, for member tasks to train into.
pub fn prepare_members(opts: &TrainOptions) -> Result<PreparedMembers, TrainError> {
    let start = Instant::now();
    crate::outputs::check_not_over_inputs(&opts.out, &[("dataset", &opts.data)])?;
    let planned = Planned::new(opts)?;
    let lock = open_model_dir(&opts.out, &planned.spec, opts.resume, opts.force)?;
    let provenance = Provenance::new("train", &planned.compute, &opts.data)?;
    write_json(&opts.out.join("provenance.json"), &provenance)?;
    let files = crate::model_dir::ModelDir::new(&opts.out);
    let members = planned.spec.training.members;
    let pending = (0..members)
        .filter(|&m| !member_on_disk(&files, m))
        .collect();
    // Exclusive to shared, which the member tasks take too. A run started in
    // the instant between could take it (takers try once, without waiting);
    // none can later.
    drop(lock);
    let lock = FileLock::acquire(&run_lock_path(&opts.out), LockMode::Shared)?;
    Ok(PreparedMembers {
        compute: planned.compute,
        members,
        pending,
        start,
        started_unix: provenance.started_unix,
        lock,
    })
}

impl PreparedMembers {
    /// Once every member task has finished: scores the ensemble and writes
    /// `metrics.json`, `curves.png` and `provenance.json` (recording
    /// `at_once`, and the wall time since [`prepare_members`]), as the end of
    /// a whole `train` does.
    pub fn finish(self, opts: &TrainOptions, at_once: usize) -> Result<TrainReport, TrainError> {
        drop(self.lock);
        finish(opts, self.start, Some(self.started_unix), Some(at_once))
    }
}
