//! `spectrain train`: an ensemble, whole or one member at a time, or several
//! members at once in processes of their own ([`super::parallel`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};

use spectrain::ensemble::{Loss, LrSchedule, Task, TrainConfig};
use spectrain::metrics::{cell, LabelMetrics};
use spectrain::model::{Arch, DenseNetConfig, MlpConfig, ModelConfig};
use spectrain::train::{
    default_training, finish_members, train, train_member, TrainOptions, TrainReport,
};

use super::args::{at_least, dropout, fraction, non_negative, positive, read_toml, BackendArg};
use super::args::{ForceArg, ResumeArg};
use super::parallel::{self, ParallelMembers};

/// `train`: the recipe ([`TrainArgs`], which `cv` shares) and how to run it.
#[derive(Args)]
pub struct TrainCommand {
    #[command(flatten)]
    pub(super) recipe: TrainArgs,
    /// Members trained at once, each in a process of its own: a number, or
    /// auto (1 on the CPU, up to 4 on a GPU adapter); on the CPU the model is
    /// the same bit for bit.
    #[arg(
        long,
        value_name = "N|auto",
        default_value = "auto",
        value_parser = parallel::parse,
        conflicts_with_all = ["member", "finish"]
    )]
    pub(super) parallel_members: ParallelMembers,
}

#[derive(Args)]
#[command(mut_arg("resume", |a| a.help("Continue a killed run in MODEL_DIR from its last completed epoch")))]
#[command(mut_arg("force", |a| a.help("Replace an existing MODEL_DIR (only a spectrain model directory)")))]
pub struct TrainArgs {
    /// Dataset written by `spectrain prepare`.
    #[arg(long, value_name = "DATA.h5")]
    pub(super) data: PathBuf,
    /// Model directory to create (refused if it exists, unless --resume or --force;
    /// shared by the tasks of --member and --finish).
    #[arg(long, value_name = "MODEL_DIR")]
    pub(super) out: PathBuf,
    /// Label columns to learn (default: every label in the dataset).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Regression of the labels, or classification of one integer label.
    #[arg(long, value_enum)]
    task: Option<Task>,
    /// Network: DenseNet-BC (spectra) or MLP (catalog features; also runs on spectra).
    #[arg(long, value_enum)]
    arch: Option<Arch>,
    /// MLP hidden widths, e.g. 128,128,64 (the depth is their number).
    #[arg(long, value_delimiter = ',', value_parser = at_least::<1>())]
    hidden: Option<Vec<usize>>,
    /// MLP dropout after each hidden layer [default: 0.1].
    #[arg(long, value_parser = dropout)]
    dropout: Option<f64>,
    /// Regression loss [default: huber for densenet, mae for mlp].
    #[arg(long, value_enum)]
    loss: Option<Loss>,
    /// Bootstrap ensemble size [default: 5].
    #[arg(long, value_parser = at_least::<1>())]
    members: Option<usize>,
    /// Epochs per member [default: 200 densenet, 100 mlp].
    #[arg(long, value_parser = at_least::<1>())]
    epochs: Option<usize>,
    /// Batch size [default: 32].
    #[arg(long, value_parser = at_least::<2>())]
    batch: Option<usize>,
    /// Peak Adam learning rate [default: 1e-3 regression, 5e-4 classification].
    #[arg(long, value_parser = positive)]
    lr: Option<f64>,
    /// Learning-rate schedule: constant, or warm-up then cosine decay [default: cosine].
    #[arg(long, value_enum)]
    lr_schedule: Option<LrSchedule>,
    /// Epochs of linear learning-rate warm-up (cosine schedule) [default: 5].
    #[arg(long)]
    warmup_epochs: Option<usize>,
    /// Decoupled weight decay (AdamW; 0 = Adam) [default: 0].
    #[arg(long, value_parser = non_negative)]
    weight_decay: Option<f64>,
    /// Noise augmentation: Gaussian noise of K / SNR(g) per pixel, fresh at every step [default: 0, off].
    #[arg(long, value_name = "K", value_parser = non_negative)]
    augment_noise: Option<f64>,
    /// Validation fraction of the fixed-seed split [default: 0.2].
    #[arg(long, value_parser = fraction)]
    val_fraction: Option<f64>,
    /// Seed of the split, bootstrap resamples, initialisation and batch order [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Model and training settings as TOML (see models/densenet-bc.toml); flags override it.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArg,
    #[command(flatten)]
    pub(super) resume: ResumeArg,
    #[command(flatten)]
    pub(super) force: ForceArg,
    /// Train only member K (0-based) into MODEL_DIR, beside other member tasks
    /// of the same run (a job array: scripts/slurm/train-array.sh).
    #[arg(long, value_name = "K", conflicts_with_all = ["force", "finish"])]
    pub(super) member: Option<usize>,
    /// After every --member task: score the ensemble and write metrics.json,
    /// curves.png and provenance.json, as a whole run does.
    #[arg(long, conflicts_with_all = ["force", "resume"])]
    pub(super) finish: bool,
}

/// `--config` file: `[model]` (DenseNet), `[mlp]` and `[training]` tables, all optional.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct TrainFile {
    model: DenseNetConfig,
    mlp: MlpConfig,
    training: TrainConfig,
}

impl TrainArgs {
    /// The library's options: the `--config` file, or without one the
    /// library's defaults for the task and network, then the flags on top.
    pub(super) fn options(&self, progress: bool) -> Result<TrainOptions> {
        let arch = self.arch.unwrap_or(Arch::Densenet);
        let file: TrainFile = match &self.config {
            Some(path) => read_toml(path)?,
            None => TrainFile::default(),
        };
        // A file's [training] table fills its gaps from `TrainConfig::default()`,
        // whatever the task and network.
        let mut t = match self.config {
            Some(_) => file.training,
            None => default_training(self.task.unwrap_or(Task::Regress), arch),
        };
        t.task = self.task.unwrap_or(t.task);
        t.members = self.members.unwrap_or(t.members);
        t.epochs = self.epochs.unwrap_or(t.epochs);
        t.batch = self.batch.unwrap_or(t.batch);
        t.lr = self.lr.unwrap_or(t.lr);
        t.lr_schedule = self.lr_schedule.unwrap_or(t.lr_schedule);
        t.warmup_epochs = self.warmup_epochs.unwrap_or(t.warmup_epochs);
        t.weight_decay = self.weight_decay.unwrap_or(t.weight_decay);
        t.augment_noise = self.augment_noise.unwrap_or(t.augment_noise);
        t.val_fraction = self.val_fraction.unwrap_or(t.val_fraction);
        t.seed = self.seed.unwrap_or(t.seed);
        t.loss = self.loss.unwrap_or(t.loss);
        let model = match arch {
            Arch::Densenet => {
                if self.hidden.is_some() || self.dropout.is_some() {
                    bail!("--hidden and --dropout apply to --arch mlp");
                }
                ModelConfig::Densenet(file.model)
            }
            Arch::Mlp => {
                let mut m = file.mlp;
                m.hidden = self.hidden.clone().unwrap_or(m.hidden);
                m.dropout = self.dropout.unwrap_or(m.dropout);
                m.check()
                    .map_err(|e| anyhow::anyhow!("invalid MLP settings: {e}"))?;
                ModelConfig::Mlp(m)
            }
        };
        t.check()
            .map_err(|e| anyhow::anyhow!("invalid training settings: {e}"))?;
        Ok(TrainOptions {
            data: self.data.clone(),
            out: self.out.clone(),
            columns: self.columns.clone(),
            training: t,
            model,
            backend: self.backend.backend,
            resume: self.resume.resume,
            force: self.force.force,
            progress,
        })
    }

    /// The arguments after `train` of member task `member` of this run: every
    /// recipe setting as given, so the task derives the same spec, then
    /// `--member K`, and `--resume` when `resume`; never `--force` (the caller
    /// has prepared the directory).
    pub(super) fn member_task_args(&self, member: usize, resume: bool) -> Vec<OsString> {
        // No `..`: a new field does not compile until it is passed on here.
        let TrainArgs {
            data,
            out,
            columns,
            task,
            arch,
            hidden,
            dropout,
            loss,
            members,
            epochs,
            batch,
            lr,
            lr_schedule,
            warmup_epochs,
            weight_decay,
            augment_noise,
            val_fraction,
            seed,
            config,
            backend,
            resume: _,
            force: _,
            member: _,
            finish: _,
        } = self;
        let mut a = Vec::new();
        path_flag(&mut a, "data", data);
        path_flag(&mut a, "out", out);
        if let Some(config) = config {
            path_flag(&mut a, "config", config);
        }
        let list = |v: &[String]| v.join(",");
        flag(&mut a, "columns", columns.as_deref().map(list));
        flag(&mut a, "task", task.as_ref().map(name));
        flag(&mut a, "arch", arch.as_ref().map(name));
        flag(
            &mut a,
            "hidden",
            hidden
                .as_ref()
                .map(|h| h.iter().map(usize::to_string).collect::<Vec<_>>().join(",")),
        );
        // Display of an f64 is the shortest text that parses back to it.
        flag(&mut a, "dropout", dropout.map(|v| v.to_string()));
        flag(&mut a, "loss", loss.as_ref().map(name));
        flag(&mut a, "members", members.map(|v| v.to_string()));
        flag(&mut a, "epochs", epochs.map(|v| v.to_string()));
        flag(&mut a, "batch", batch.map(|v| v.to_string()));
        flag(&mut a, "lr", lr.map(|v| v.to_string()));
        flag(&mut a, "lr-schedule", lr_schedule.as_ref().map(name));
        flag(
            &mut a,
            "warmup-epochs",
            warmup_epochs.map(|v| v.to_string()),
        );
        flag(&mut a, "weight-decay", weight_decay.map(|v| v.to_string()));
        flag(
            &mut a,
            "augment-noise",
            augment_noise.map(|v| v.to_string()),
        );
        flag(&mut a, "val-fraction", val_fraction.map(|v| v.to_string()));
        flag(&mut a, "seed", seed.map(|v| v.to_string()));
        flag(&mut a, "backend", Some(name(&backend.backend)));
        flag(&mut a, "member", Some(member.to_string()));
        if resume {
            a.push("--resume".into());
        }
        a
    }
}

/// The command-line spelling of a value of a clap `ValueEnum`.
fn name<E: ValueEnum>(v: &E) -> String {
    v.to_possible_value()
        .expect("no value is hidden")
        .get_name()
        .to_string()
}

/// `--NAME=VALUE` (one argument, so a value starting with `-` stays a value).
fn flag(args: &mut Vec<OsString>, name: &str, value: Option<String>) {
    if let Some(v) = value {
        args.push(format!("--{name}={v}").into());
    }
}

/// `--NAME=PATH`, the path as the OS gave it (not necessarily UTF-8).
fn path_flag(args: &mut Vec<OsString>, name: &str, path: &Path) {
    let mut a = OsString::from(format!("--{name}="));
    a.push(path);
    args.push(a);
}

pub fn run(c: TrainCommand, progress: bool) -> Result<ExitCode> {
    let a = c.recipe;
    if let Some(config) = &a.config {
        spectrain::outputs::check_not_over_inputs(&a.out, &[("config file", config)])?;
    }
    let (member, finish) = (a.member, a.finish);
    let opts = a.options(progress)?;
    if let Some(k) = member {
        let m = train_member(&opts, k)?;
        println!(
            "train: member {:>2}: best epoch {:>4}, score {:.4} -> {}",
            m.member,
            m.best_epoch,
            m.best_score,
            opts.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let r = if finish {
        finish_members(&opts)?
    } else {
        match parallel::members_at_once(c.parallel_members, &opts) {
            1 => train(&opts)?,
            n => parallel::train_members(&a, &opts, n)?,
        }
    };
    print_report(&r, &opts);
    Ok(ExitCode::SUCCESS)
}

/// The summary of a whole run (or its finishing step) on stdout.
fn print_report(r: &TrainReport, opts: &TrainOptions) {
    println!(
        "train: {} members on {} training rows ({} validation) in {:.1} s -> {}",
        r.members.len(),
        r.train_rows,
        r.val_rows,
        r.seconds,
        opts.out.display()
    );
    println!("  selection score: {}", r.selection_score);
    for m in &r.members {
        println!(
            "  member {:>2}: best epoch {:>4}, score {:.4}",
            m.member, m.best_epoch, m.best_score
        );
    }
    println!("  ensemble on the validation split:");
    for (label, m) in &r.ensemble.labels {
        match m {
            LabelMetrics::Regression(m) => println!(
                "    {label:<8} MAE {}  bias {}  sigma {}  M2 {}%  r {}",
                cell(m.mae),
                cell(m.bias),
                cell(m.sigma),
                cell(m.mape),
                cell(m.pearson_r)
            ),
            LabelMetrics::Classification(m) => println!(
                "    {label:<8} accuracy {}  contamination {}  completeness {}",
                cell(m.accuracy),
                cell(m.contamination),
                cell(m.completeness)
            ),
        }
    }
}
