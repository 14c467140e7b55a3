//! The `spectrain` command line: parsing, and one module per subcommand that
//! turns its arguments into the library's options, calls the library, and
//! prints the summary. Policy (defaults, checks) lives in the library.
//!
//! Adding a subcommand `foo`:
//! 1. `src/cli/foo.rs` with `pub struct FooArgs` (`#[derive(Args)]`) and
//!    `pub fn run(a: FooArgs, ...) -> Result<ExitCode>`; flatten the shared
//!    groups of [`args`] ([`args::BackendArg`], [`args::ForceArg`],
//!    [`args::ResumeArg`], [`args::RecipeArgs`]) instead of declaring those
//!    flags again, and give `--force`/`--resume` the command's wording with
//!    `#[command(mut_arg("force", |a| a.help("...")))]`.
//! 2. Here: `mod foo;`, a documented `Foo(foo::FooArgs)` variant of
//!    [`Command`] (its doc comment is the command's help line), and its arm in
//!    [`run`].
//! 3. A test that runs the binary (`tests/common::spectrain()`), and the README.
//!
//! A flag shared by several commands goes into a group in [`args`] (or a new
//! one there), flattened with `#[command(flatten)]` into each command's args.
//! A command that takes another's whole recipe flattens its args struct, as
//! `cv` does with [`train::TrainArgs`] (so a new training setting, one
//! `Option` field and one line in `TrainArgs::options`, reaches both).

mod args;
mod baseline;
mod bench;
mod cv;
mod evaluate;
mod finetune;
mod inspect;
mod merge;
mod parallel;
mod predict;
mod prepare;
mod prepare_table;
mod train;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use args::at_least;

#[derive(Parser)]
#[command(
    name = "spectrain",
    version,
    about = "Train deep networks on LAMOST spectra and run them over surveys"
)]
pub struct Cli {
    /// Worker threads (default: all cores).
    #[arg(short = 'j', long, global = true, env = "SPECTRAIN_THREADS", value_parser = at_least::<1>())]
    pub threads: Option<usize>,
    /// Only warnings and errors; no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Preprocess a directory of FITS spectra with a label catalog into an HDF5 dataset.
    Prepare(prepare::PrepareArgs),
    /// Turn numeric CSV columns (catalog features and labels) into an HDF5 dataset.
    PrepareTable(prepare_table::PrepareTableArgs),
    /// Show a file's layout, metadata and what preprocessing would do to it.
    Inspect(inspect::InspectArgs),
    /// Train a bootstrap ensemble (DenseNet on spectra, or MLP on catalog features).
    Train(train::TrainCommand),
    /// Retrain every member of a trained ensemble briefly on a small new dataset (transfer learning).
    Finetune(finetune::FinetuneArgs),
    /// Score a trained ensemble on a labelled dataset (METHOD section 6 metrics).
    Evaluate(evaluate::EvaluateArgs),
    /// Fit a random forest, boosted trees or ridge regression on a dataset, scored like evaluate.
    Baseline(baseline::BaselineArgs),
    /// K-fold cross-validation of a training recipe, the tree baselines scored on the same folds.
    Cv(cv::CvArgs),
    /// Predict labels for every FITS file under a directory, or every row of a CSV table.
    Predict(predict::PredictArgs),
    /// Join shard catalogs of `predict --shard` into one, reporting missing and duplicated files.
    Merge(merge::MergeArgs),
    /// Measure training and inference throughput of the network on a backend.
    Bench(bench::BenchArgs),
}

/// Runs the parsed command; the exit status on success (a command may
/// report a partial result with a non-zero status), an error otherwise.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let progress = !cli.quiet;
    match cli.command {
        Command::Prepare(a) => prepare::run(a, progress),
        Command::PrepareTable(a) => prepare_table::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Train(a) => train::run(a, progress),
        Command::Finetune(a) => finetune::run(a, progress),
        Command::Evaluate(a) => evaluate::run(a),
        Command::Baseline(a) => baseline::run(a),
        Command::Cv(a) => cv::run(a, progress),
        Command::Predict(a) => predict::run(a, progress),
        Command::Merge(a) => merge::run(a),
        Command::Bench(a) => bench::run(a),
    }
}
