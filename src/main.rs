//! The `spectrain` command line: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use spectrain::dataset::JoinKey;
use spectrain::ensemble::{Loss, LrSchedule, Task, TrainConfig};
use spectrain::inspect::inspect;
use spectrain::model::{Arch, BackendChoice, DenseNetConfig, MlpConfig, ModelConfig};
use spectrain::prepare::{prepare, PrepareOptions};
use spectrain::preprocess::{ContinuumFit, Denoise, InputOrder, Normalisation};
use spectrain::table::MissingFeatures;
use spectrain::train::finetune::{finetune, FinetuneOptions, Freeze};
use spectrain::train::{train, TrainOptions};
use spectrain::{PreprocessConfig, Preprocessor};

/// `usize` of at least `MIN`, checked by clap.
fn at_least<const MIN: u64>() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(MIN..)
}

/// A positive, finite number.
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a positive number, got '{s}'")),
    }
}

/// Zero or a positive, finite number.
fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected zero or a positive number, got '{s}'")),
    }
}

/// A number strictly between 0 and 1.
fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!(
            "expected a number between 0 and 1 (exclusive), got '{s}'"
        )),
    }
}

/// A probability in [0, 1).
fn dropout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a number in [0, 1), got '{s}'")),
    }
}

#[derive(Parser)]
#[command(
    name = "spectrain",
    version,
    about = "Train deep networks on LAMOST spectra and run them over surveys"
)]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(short = 'j', long, global = true, env = "SPECTRAIN_THREADS", value_parser = at_least::<1>())]
    threads: Option<usize>,
    /// Only warnings and errors; no progress bars.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Preprocess a directory of FITS spectra with a label catalog into an HDF5 dataset.
    Prepare(PrepareArgs),
    /// Turn numeric CSV columns (catalog features and labels) into an HDF5 dataset.
    PrepareTable(PrepareTableArgs),
    /// Show a file's layout, metadata and what preprocessing would do to it.
    Inspect(InspectArgs),
    /// Train a bootstrap ensemble (DenseNet on spectra, or MLP on catalog features).
    Train(TrainArgs),
    /// Retrain every member of a trained ensemble briefly on a small new dataset (transfer learning).
    Finetune(FinetuneArgs),
    /// Score a trained ensemble on a labelled dataset (METHOD section 6 metrics).
    Evaluate(EvaluateArgs),
    /// Fit a random forest, boosted trees or ridge regression on a dataset, scored like evaluate.
    Baseline(BaselineArgs),
    /// K-fold cross-validation of a training recipe, the tree baselines scored on the same folds.
    Cv(CvArgs),
    /// Predict labels for every FITS file under a directory, or every row of a CSV table.
    Predict(PredictArgs),
    /// Join shard catalogs of `predict --shard` into one, reporting missing and duplicated files.
    Merge(MergeArgs),
    /// Measure training and inference throughput of the network on a backend.
    Bench(BenchArgs),
}

#[derive(Args)]
struct PredictArgs {
    /// Model directory written by `spectrain train`.
    #[arg(long, value_name = "MODEL_DIR")]
    model: PathBuf,
    /// Directory searched recursively for .fits, .fit and .fits.gz files (spectrum models).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "table",
        conflicts_with = "table"
    )]
    spectra: Option<PathBuf>,
    /// CSV table with the model's feature columns (catalog-feature models).
    #[arg(long, value_name = "CSV")]
    table: Option<PathBuf>,
    /// With --table: the column naming each row [default: the row number].
    #[arg(long, value_name = "COLUMN", requires = "table")]
    id: Option<String>,
    /// Output catalog: `.csv`, or `.fits` for a FITS binary table with units
    /// (--table writes CSV).
    #[arg(long, value_name = "CATALOG")]
    out: PathBuf,
    /// Spectra per inference batch.
    #[arg(long, default_value_t = 256, value_parser = at_least::<1>())]
    batch: usize,
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    /// Handle only shard K of N (1-based), chosen by a hash of each file's path.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Also write every member's prediction.
    #[arg(long)]
    members_out: bool,
    /// Continue an interrupted run from its CATALOG.partial file (a finished
    /// catalog resumed is left as it is).
    #[arg(long, conflicts_with = "force")]
    resume: bool,
    /// Replace an existing catalog, or start an interrupted one over.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct PrepareTableArgs {
    /// CSV with a header row (lines starting with # are skipped).
    #[arg(long, value_name = "CSV")]
    table: PathBuf,
    /// Input columns, in order.
    #[arg(long, value_delimiter = ',', required = true)]
    features: Vec<String>,
    /// Label columns, in order (add `<label>_err` columns to use them in finetune's tension).
    #[arg(long, value_delimiter = ',', required = true)]
    labels: Vec<String>,
    /// Column naming each row [default: the row number].
    #[arg(long, value_name = "COLUMN")]
    id: Option<String>,
    /// A row with a missing feature: keep it (imputed with the training mean) or reject it.
    #[arg(long, value_enum, default_value = "impute")]
    missing: MissingFeatures,
    /// Output HDF5 dataset; rejected rows go to `<name>.rejects.csv`.
    #[arg(long, value_name = "DATA.h5")]
    out: PathBuf,
    /// Replace an existing dataset.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct BaselineArgs {
    /// Dataset written by `prepare` or `prepare-table`.
    #[arg(long, value_name = "DATA.h5")]
    data: PathBuf,
    #[arg(long, value_enum)]
    method: spectrain::baseline::Method,
    /// Directory for report.json, report.md, baseline.json and plots.
    #[arg(long, value_name = "REPORT_DIR")]
    out: PathBuf,
    /// Score on this dataset (same recipe) instead of DATA's validation split.
    #[arg(long, value_name = "TEST.h5")]
    test: Option<PathBuf>,
    /// Label columns (default: every label of the dataset).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Validation fraction of the split: the same split as `train` with the same seed.
    #[arg(long, default_value_t = 0.2, value_parser = fraction)]
    val_fraction: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Trees of the random forest.
    #[arg(long, default_value_t = 200, value_parser = at_least::<1>())]
    trees: usize,
    /// Boosting rounds.
    #[arg(long, default_value_t = 300, value_parser = at_least::<1>())]
    rounds: usize,
}

#[derive(Args)]
struct FinetuneArgs {
    /// The trained (parent) model directory.
    #[arg(long, value_name = "BASE_DIR")]
    model: PathBuf,
    /// The small new dataset, prepared with the parent's recipe (or features).
    #[arg(long, value_name = "NEW.h5")]
    data: PathBuf,
    /// The fine-tuned model directory to create.
    #[arg(long, value_name = "MODEL_DIR")]
    out: PathBuf,
    /// Optimizer steps per member.
    #[arg(long, default_value_t = 100, value_parser = at_least::<1>())]
    steps: usize,
    /// Adam learning rate [default: the parent's].
    #[arg(long, value_parser = positive)]
    lr: Option<f64>,
    /// Batch size [default: the parent's, at most half the new training part].
    #[arg(long, value_parser = at_least::<2>())]
    batch: Option<usize>,
    /// Fraction of the new set held out to report before/after scores.
    #[arg(long, default_value_t = 0.2, value_parser = fraction)]
    val_fraction: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The parent's training dataset: anchor rows away from the new set come from it.
    #[arg(long, value_name = "BASE_DATA.h5")]
    anchor: Option<PathBuf>,
    /// Anchor rows added to each member's training set, one from each of as
    /// many strata of the parent's domain outside the new set's. The default
    /// kept the parent's validation MAE within 5% in the StelNet example
    /// (README); 30 let it double.
    #[arg(long, default_value_t = 1000, requires = "anchor")]
    anchor_count: usize,
    /// What keeps the parent's values: `norm` (batch-norm statistics and
    /// affine parameters), `features` (everything but the head), `none`.
    #[arg(long, value_enum, default_value = "norm")]
    freeze: Freeze,
    /// L2-SP: add ALPHA * sum (w - w_parent)^2 over the trained weights to the loss (0: off).
    #[arg(long, value_name = "ALPHA", default_value_t = 0.1)]
    l2sp: f64,
    /// A labelled dataset to score before and after (repeatable): real stars
    /// outside the new set's domain.
    #[arg(long, value_name = "DATA.h5")]
    check: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    /// Continue a killed run (members already fine-tuned are kept).
    #[arg(long, conflicts_with = "force")]
    resume: bool,
    /// Replace an existing MODEL_DIR.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct MergeArgs {
    /// Shard catalogs (CSV) written by `predict --shard`.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Merged catalog (`.csv`, `.fits` or `.fits.gz`), sorted by file.
    #[arg(long, value_name = "CATALOG")]
    out: PathBuf,
    /// Replace an existing merged catalog.
    #[arg(long)]
    force: bool,
    /// The spectra directory the shards came from, to report files no shard has.
    #[arg(long, value_name = "DIR")]
    spectra: Option<PathBuf>,
}

#[derive(Args)]
struct EvaluateArgs {
    /// Model directory written by `spectrain train`.
    #[arg(long, value_name = "MODEL_DIR")]
    model: PathBuf,
    /// Labelled dataset written by `spectrain prepare` with the same recipe.
    #[arg(long, value_name = "TEST.h5")]
    data: PathBuf,
    /// Directory for report.json and report.md.
    #[arg(long, value_name = "REPORT_DIR")]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    #[arg(long, default_value_t = 256, value_parser = at_least::<1>())]
    batch: usize,
}

#[derive(Args)]
struct TrainArgs {
    /// Dataset written by `spectrain prepare`.
    #[arg(long, value_name = "DATA.h5")]
    data: PathBuf,
    /// Model directory to create (refused if it exists, unless --resume or --force;
    /// shared by the tasks of --member and --finish).
    #[arg(long, value_name = "MODEL_DIR")]
    out: PathBuf,
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
    /// Bootstrap ensemble size [default: 10].
    #[arg(long, value_parser = at_least::<1>())]
    members: Option<usize>,
    /// Epochs per member [default: 450].
    #[arg(long, value_parser = at_least::<1>())]
    epochs: Option<usize>,
    /// Batch size [default: 64].
    #[arg(long, value_parser = at_least::<2>())]
    batch: Option<usize>,
    /// Adam learning rate [default: 1.5e-4 regression, 5e-4 classification].
    #[arg(long, value_parser = positive)]
    lr: Option<f64>,
    /// Learning-rate schedule: constant, or warm-up then cosine decay [default: constant].
    #[arg(long, value_enum)]
    lr_schedule: Option<LrSchedule>,
    /// Epochs of linear learning-rate warm-up (cosine schedule) [default: 0].
    #[arg(long)]
    warmup_epochs: Option<usize>,
    /// Decoupled weight decay (AdamW; 0 = Adam) [default: 0].
    #[arg(long, value_parser = non_negative)]
    weight_decay: Option<f64>,
    /// Validation fraction of the fixed-seed split [default: 0.2].
    #[arg(long, value_parser = fraction)]
    val_fraction: Option<f64>,
    /// Seed of the split, bootstrap resamples, initialisation and batch order [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Model and training settings as TOML (see models/densenet-bc.toml); flags override it.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    /// Continue a killed run in MODEL_DIR from its last completed epoch.
    #[arg(long, conflicts_with = "force")]
    resume: bool,
    /// Replace an existing MODEL_DIR (only a spectrain model directory).
    #[arg(long)]
    force: bool,
    /// Train only member K (0-based) into MODEL_DIR, beside other member tasks
    /// of the same run (a job array: scripts/slurm/train-array.sh).
    #[arg(long, value_name = "K", conflicts_with_all = ["force", "finish"])]
    member: Option<usize>,
    /// After every --member task: score the ensemble and write metrics.json,
    /// curves.png and provenance.json, as a whole run does.
    #[arg(long, conflicts_with_all = ["force", "resume"])]
    finish: bool,
}

#[derive(Args)]
struct CvArgs {
    /// The recipe, as for `train`; --out is the cross-validation directory.
    #[command(flatten)]
    train: TrainArgs,
    /// Number of folds.
    #[arg(long, default_value_t = 5, value_parser = at_least::<2>())]
    folds: usize,
    /// Seed of the fold assignment (kept apart from --seed so recipes share folds).
    #[arg(long, default_value_t = 2026)]
    fold_seed: u64,
    /// Baselines fitted on the same folds (comma-separated; "none" for none).
    #[arg(long, value_delimiter = ',', default_value = "rf,gbdt")]
    baselines: Vec<String>,
    /// Random forest size.
    #[arg(long, default_value_t = 200, value_parser = at_least::<1>())]
    trees: usize,
    /// Boosting rounds.
    #[arg(long, default_value_t = 300, value_parser = at_least::<1>())]
    rounds: usize,
}

#[derive(Args)]
struct BenchArgs {
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    /// Outputs of the network (3: Teff, log g, [Fe/H]).
    #[arg(long, default_value_t = 3, value_parser = at_least::<1>())]
    outputs: usize,
    #[arg(long, default_value_t = 64, value_parser = at_least::<2>())]
    train_batch: usize,
    #[arg(long, default_value_t = 256, value_parser = at_least::<1>())]
    infer_batch: usize,
    /// Seconds to time each measurement.
    #[arg(long, default_value_t = 5.0, value_parser = positive)]
    seconds: f64,
    /// Also write the numbers as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
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
    fn options(self, progress: bool) -> Result<TrainOptions> {
        let file: TrainFile = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => TrainFile::default(),
        };
        let mut t = file.training;
        if let Some(task) = self.task {
            t.task = task;
            // The paper's classification learning rate, unless one is given.
            if task == Task::Classify && self.lr.is_none() && self.config.is_none() {
                t.lr = 5e-4;
            }
        }
        t.members = self.members.unwrap_or(t.members);
        t.epochs = self.epochs.unwrap_or(t.epochs);
        t.batch = self.batch.unwrap_or(t.batch);
        t.lr = self.lr.unwrap_or(t.lr);
        t.lr_schedule = self.lr_schedule.unwrap_or(t.lr_schedule);
        t.warmup_epochs = self.warmup_epochs.unwrap_or(t.warmup_epochs);
        t.weight_decay = self.weight_decay.unwrap_or(t.weight_decay);
        t.val_fraction = self.val_fraction.unwrap_or(t.val_fraction);
        t.seed = self.seed.unwrap_or(t.seed);
        let arch = self.arch.unwrap_or(Arch::Densenet);
        t.loss = match (self.loss, arch) {
            (Some(loss), _) => loss,
            // The catalog-feature MLP of METHOD section 8 trains on MAE.
            (None, Arch::Mlp) if self.config.is_none() => Loss::Mae,
            (None, _) => t.loss,
        };
        let model = match arch {
            Arch::Densenet => {
                if self.hidden.is_some() || self.dropout.is_some() {
                    bail!("--hidden and --dropout apply to --arch mlp");
                }
                ModelConfig::Densenet(file.model)
            }
            Arch::Mlp => {
                let mut m = file.mlp;
                m.hidden = self.hidden.unwrap_or(m.hidden);
                m.dropout = self.dropout.unwrap_or(m.dropout);
                m.check()
                    .map_err(|e| anyhow::anyhow!("invalid MLP settings: {e}"))?;
                ModelConfig::Mlp(m)
            }
        };
        t.check()
            .map_err(|e| anyhow::anyhow!("invalid training settings: {e}"))?;
        Ok(TrainOptions {
            data: self.data,
            out: self.out,
            columns: self.columns,
            training: t,
            model,
            backend: self.backend,
            resume: self.resume,
            force: self.force,
            progress,
        })
    }
}

/// Preprocessing settings; a TOML file first, then these flags on top.
#[derive(Args, Clone)]
struct RecipeArgs {
    /// Preprocessing recipe as TOML (see `models/preprocess.toml`); default: the published method.
    #[arg(long, value_name = "FILE.toml")]
    preprocess: Option<PathBuf>,
    /// Denoising: Haar wavelet (default), running median of width 3, or none.
    #[arg(long, value_enum)]
    denoise: Option<DenoiseArg>,
    /// Normalisation: min-max (default) or polynomial pseudo-continuum.
    #[arg(long, value_enum)]
    normalise: Option<NormaliseArg>,
    /// Reshape the 4096 pixels pixel-major (the transpose of the default band-major).
    #[arg(long)]
    pixel_major: bool,
    /// Drop pixels with ivar <= 0 or a non-zero ANDMASK before resampling.
    #[arg(long)]
    mask_bad_pixels: bool,
    /// Keep observed-frame wavelengths (no division by 1 + z).
    #[arg(long)]
    no_rest_frame: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum DenoiseArg {
    Haar,
    Median,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum NormaliseArg {
    Minmax,
    Continuum,
}

impl RecipeArgs {
    fn config(&self) -> Result<PreprocessConfig> {
        let mut c = match &self.preprocess {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => PreprocessConfig::default(),
        };
        match self.denoise {
            Some(DenoiseArg::Haar) => {
                c.denoise = Denoise::Haar {
                    fraction: 0.05,
                    levels: None,
                }
            }
            Some(DenoiseArg::Median) => c.denoise = Denoise::Median { width: 3 },
            Some(DenoiseArg::None) => c.denoise = Denoise::None,
            None => {}
        }
        match self.normalise {
            Some(NormaliseArg::Minmax) => c.normalisation = Normalisation::MinMax,
            Some(NormaliseArg::Continuum) => {
                c.normalisation = Normalisation::PseudoContinuum(ContinuumFit::default())
            }
            None => {}
        }
        if self.pixel_major {
            c.order = InputOrder::PixelMajor;
        }
        c.mask_bad_pixels |= self.mask_bad_pixels;
        c.rest_frame &= !self.no_rest_frame;
        c.check()?;
        Ok(c)
    }
}

#[derive(Args)]
struct PrepareArgs {
    /// Directory searched recursively for .fits, .fit and .fits.gz files.
    #[arg(long, value_name = "DIR")]
    spectra: PathBuf,
    /// Label catalog (CSV with a header; `obsid` and/or `file` columns to join on).
    #[arg(long, value_name = "CSV")]
    labels: PathBuf,
    /// Output HDF5 dataset; the reject list goes beside it as `<name>.rejects.csv`.
    #[arg(long, value_name = "DATA.h5")]
    out: PathBuf,
    /// How spectra are joined to label rows.
    #[arg(long = "id", value_enum, default_value = "obsid")]
    join: JoinKey,
    /// Label columns to keep, in order.
    #[arg(long, value_delimiter = ',', default_value = "teff,logg,feh")]
    columns: Vec<String>,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Replace an existing dataset.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct InspectArgs {
    /// FITS files to inspect.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    recipe: RecipeArgs,
}

fn main() -> ExitCode {
    // Behave like other Unix tools when the reader of stdout goes away (`| head`).
    #[cfg(unix)]
    // SAFETY: restoring the default SIGPIPE disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A bug must still end in one readable line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        let at = info
            .location()
            .map_or(String::new(), |l| format!(" at {}:{}", l.file(), l.line()));
        eprintln!("error: internal error (a bug in spectrain, please report it): {msg}{at}");
    }));
    let cli = Cli::parse();
    init_logging(cli.quiet);
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            tracing::warn!("could not set {n} threads: {e}");
        }
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: a message that
/// already quotes its source does not repeat it.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPECTRAIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    let progress = !cli.quiet;
    match cli.command {
        Command::Prepare(a) => {
            if a.columns.is_empty() || a.columns.iter().any(|c| c.is_empty()) {
                bail!("--columns needs at least one non-empty column name");
            }
            let opts = PrepareOptions {
                spectra: a.spectra,
                labels: a.labels,
                out: a.out,
                join: a.join,
                columns: a.columns,
                config: a.recipe.config()?,
                force: a.force,
                progress,
            };
            let s = prepare(&opts)?;
            println!(
                "prepare: {} files in {:.2} s ({:.0} spectra/s)",
                s.files,
                s.seconds,
                s.spectra_per_second()
            );
            println!("  kept     {:>7} -> {}", s.kept, opts.out.display());
            println!(
                "  rejected {:>7} -> {}",
                s.files - s.kept,
                s.rejects_path.display()
            );
            for (reason, n) in &s.rejected {
                println!("    {reason:<18} {n:>7}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::PrepareTable(a) => {
            let opts = spectrain::table::PrepareTableOptions {
                table: a.table,
                out: a.out,
                features: a.features,
                labels: a.labels,
                id: a.id,
                missing: a.missing,
                force: a.force,
            };
            let s = spectrain::table::prepare_table(&opts)?;
            println!("prepare-table: {} rows in {:.2} s", s.rows, s.seconds);
            println!("  kept     {:>7} -> {}", s.kept, opts.out.display());
            println!(
                "  rejected {:>7} -> {}",
                s.rows - s.kept,
                s.rejects_path.display()
            );
            for (reason, n) in &s.rejected {
                println!("    {reason:<18} {n:>7}");
            }
            if s.imputed_rows > 0 {
                println!(
                    "  {} kept rows have missing features (imputed with the training mean at train/predict):",
                    s.imputed_rows
                );
                for (f, n) in s.missing_per_feature.iter().filter(|(_, n)| *n > 0) {
                    println!("    {f:<18} {n:>7}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Finetune(a) => {
            let opts = FinetuneOptions {
                model: a.model,
                data: a.data,
                out: a.out,
                steps: a.steps,
                lr: a.lr,
                batch: a.batch,
                val_fraction: a.val_fraction,
                seed: a.seed,
                anchor: a.anchor,
                anchor_count: a.anchor_count,
                freeze: a.freeze,
                l2sp: a.l2sp,
                check: a.check,
                backend: a.backend,
                resume: a.resume,
                force: a.force,
                progress,
            };
            let r = finetune(&opts)?;
            print!("{}", r.markdown());
            println!(
                "\nwritten: {} (finetune.json, finetune.md, provenance.json names the parent)",
                opts.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Train(a) => {
            if let Some(config) = &a.config {
                spectrain::outputs::check_not_over_inputs(&a.out, &[("config file", config)])?;
            }
            let (member, finish) = (a.member, a.finish);
            let opts = a.options(progress)?;
            if let Some(k) = member {
                let m = spectrain::train::train_member(&opts, k)?;
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
                spectrain::train::finish_members(&opts)?
            } else {
                train(&opts)?
            };
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
                let f = |k: &str| m[k].as_f64().map_or("-".into(), |v| format!("{v:.4}"));
                match r.task {
                    Task::Regress => println!(
                        "    {label:<8} MAE {}  bias {}  sigma {}  M2 {}%  r {}",
                        f("mae"),
                        f("bias"),
                        f("sigma"),
                        f("mape"),
                        f("pearson_r")
                    ),
                    Task::Classify => println!(
                        "    {label:<8} accuracy {}  contamination {}  completeness {}",
                        f("accuracy"),
                        f("contamination"),
                        f("completeness")
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cv(a) => {
            if a.train.member.is_some() || a.train.finish || a.train.force {
                bail!("--member, --finish and --force do not apply to cv");
            }
            let baselines = a
                .baselines
                .iter()
                .filter(|b| b.as_str() != "none")
                .map(|b| {
                    spectrain::baseline::Method::from_str(b, true)
                        .map_err(|e| anyhow::anyhow!("--baselines: {e}"))
                })
                .collect::<Result<Vec<_>>>()?;
            let resume = a.train.resume;
            let opts = spectrain::cv::CvOptions {
                data: a.train.data.clone(),
                out: a.train.out.clone(),
                folds: a.folds,
                fold_seed: a.fold_seed,
                train: a.train.options(progress)?,
                baselines,
                budget: spectrain::baseline::Budget {
                    trees: a.trees,
                    rounds: a.rounds,
                    seed: 42,
                },
                resume,
            };
            let r = spectrain::cv::cv(&opts)?;
            print!("{}", r.markdown());
            println!(
                "\ncv: {} rows, {} folds in {:.1} s; written: {}/cv.md, cv.json, oof.csv",
                r.rows,
                r.folds,
                r.seconds,
                opts.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Baseline(a) => {
            let opts = spectrain::baseline::BaselineOptions {
                data: a.data,
                test: a.test,
                out: a.out,
                method: a.method,
                columns: a.columns,
                val_fraction: a.val_fraction,
                seed: a.seed,
                trees: a.trees,
                rounds: a.rounds,
            };
            let (r, info) = spectrain::baseline::baseline(&opts)?;
            print!("{}", r.markdown());
            println!(
                "\n{} rows trained, {} scored, {:.1} s; written: {}/report.json, report.md, baseline.json",
                info.train_rows,
                info.scored_rows,
                info.seconds,
                opts.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Evaluate(a) => {
            let opts = spectrain::evaluate::EvaluateOptions {
                model: a.model,
                data: a.data,
                out: a.out,
                backend: a.backend,
                batch: a.batch,
            };
            let r = spectrain::evaluate::evaluate_model(&opts)?;
            print!("{}", r.markdown());
            println!("\nwritten: {}/report.json, report.md", opts.out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Predict(a) => {
            if let Some(table) = a.table {
                if a.shard.is_some() || a.resume || a.members_out {
                    bail!("--shard, --resume and --members-out apply to --spectra");
                }
                let opts = spectrain::table::predict::PredictTableOptions {
                    model: a.model,
                    table,
                    out: a.out,
                    id: a.id,
                    batch: a.batch,
                    backend: a.backend,
                    force: a.force,
                };
                let s = spectrain::table::predict::predict_table(&opts)?;
                println!(
                    "predict: {} rows in {:.2} s -> {}",
                    s.rows,
                    s.seconds,
                    opts.out.display()
                );
                println!(
                    "  ok       {:>7} ({} with imputed features)",
                    s.ok, s.imputed
                );
                if s.failed > 0 {
                    println!("  failed   {:>7}  non-finite-output", s.failed);
                }
                for (reason, n) in &s.rejected {
                    println!("  rejected {n:>7}  {reason}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let opts = spectrain::predict::PredictOptions {
                shard: a
                    .shard
                    .as_deref()
                    .map(spectrain::predict::parse_shard)
                    .transpose()?,
                model: a.model,
                spectra: a.spectra.expect("clap requires --spectra or --table"),
                out: a.out,
                batch: a.batch,
                backend: a.backend,
                members_out: a.members_out,
                resume: a.resume,
                force: a.force,
                progress,
            };
            let s = spectrain::predict::predict(&opts)?;
            if s.already_complete {
                println!(
                    "predict: {} is already complete ({} files); nothing to do",
                    opts.out.display(),
                    s.files
                );
                return Ok(ExitCode::SUCCESS);
            }
            let new = s.files - s.resumed;
            println!(
                "predict: {} files ({} from the interrupted run, {} now) in {:.2} s ({:.0} spectra/s) -> {}",
                s.files,
                s.resumed,
                new,
                s.seconds,
                new as f64 / s.seconds.max(1e-9),
                opts.out.display()
            );
            println!("  ok       {:>7}", s.ok);
            if s.failed > 0 {
                println!("  failed   {:>7}  non-finite-output", s.failed);
            }
            for (reason, n) in &s.rejected {
                println!("  rejected {n:>7}  {reason}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Merge(a) => {
            let r = spectrain::predict::merge(&a.shards, &a.out, a.spectra.as_deref(), a.force)?;
            println!("merge: {} rows -> {}", r.rows, a.out.display());
            for f in &r.duplicates {
                println!("  duplicated: {f}");
            }
            for f in &r.missing {
                println!("  missing: {f}");
            }
            Ok(if r.duplicates.is_empty() && r.missing.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        Command::Bench(a) => {
            let compute = a.backend.resolve()?;
            tracing::info!("backend {} ({})", compute.backend, compute.reason);
            let t = spectrain::bench::measure(
                &compute,
                a.outputs,
                a.train_batch,
                a.infer_batch,
                std::time::Duration::from_secs_f64(a.seconds),
            );
            // Third field: spectra/s (scripts/bench.sh reads it); then what the timed
            // region used: cores (CPU time / wall time) and GFLOP/s from the config.
            println!(
                "spectrain-{} train_batch{} {:.1} spectra/s  cores {:.2}  GFLOP/s {:.1}",
                t.backend, t.train_batch, t.train_spectra_per_s, t.train_cores, t.train_gflops
            );
            println!(
                "spectrain-{} infer_batch{} {:.1} spectra/s  cores {:.2}  GFLOP/s {:.1}",
                t.backend, t.infer_batch, t.infer_spectra_per_s, t.infer_cores, t.infer_gflops
            );
            println!(
                "spectrain-{} forward_flops_per_spectrum {}",
                t.backend, t.forward_flops_per_spectrum
            );
            // On a GPU the first calls compile shaders and run autotune's tuning.
            println!(
                "spectrain-{} first_train_step {:.3} s  first_infer {:.3} s",
                t.backend, t.first_train_step_s, t.first_infer_s
            );
            if compute.backend == "cpu" {
                // The compute ceiling: the machine's GEMM rate on the convolutions' shapes.
                let (gemm, cores) = spectrain::bench::gemm_gflops(
                    std::time::Duration::from_secs_f64((a.seconds / 2.0).max(0.5)),
                );
                println!("cpu gemm_ceiling {gemm:.1} GFLOP/s  cores {cores:.2}");
            }
            if let Some(path) = a.json {
                std::fs::write(&path, serde_json::to_string_pretty(&t)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect(a) => {
            let pre = Preprocessor::new(a.recipe.config()?)?;
            let mut all_read = true;
            for path in &a.files {
                let report = inspect(path, &pre);
                all_read &= report.layout.is_some();
                if a.json {
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    print!("{}", report.to_text(&pre));
                }
            }
            // Non-zero when any file could not be read, so scripts can tell.
            Ok(if all_read {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}
