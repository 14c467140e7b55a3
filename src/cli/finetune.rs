//! `spectrain finetune`: every member of a trained ensemble retrained briefly on a small new set.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use spectrain::train::finetune::{finetune, AnchorFrom, FinetuneOptions, Freeze};

use super::args::{at_least, fraction, positive, BackendArg, ForceArg, ResumeArg};

#[derive(Args)]
#[command(mut_arg("resume", |a| a.help("Continue a killed run (members already fine-tuned are kept)")))]
#[command(mut_arg("force", |a| a.help("Replace an existing MODEL_DIR")))]
pub struct FinetuneArgs {
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
    #[arg(long, default_value_t = FinetuneOptions::DEFAULT_STEPS, value_parser = at_least::<1>())]
    steps: usize,
    /// Adam learning rate [default: the parent's].
    #[arg(long, value_parser = positive)]
    lr: Option<f64>,
    /// Batch size [default: the parent's, at most half the new training part].
    #[arg(long, value_parser = at_least::<2>())]
    batch: Option<usize>,
    /// Fraction of the new set held out to report before/after scores.
    #[arg(long, default_value_t = FinetuneOptions::DEFAULT_VAL_FRACTION, value_parser = fraction)]
    val_fraction: f64,
    #[arg(long, default_value_t = FinetuneOptions::DEFAULT_SEED)]
    seed: u64,
    /// The parent's training dataset: anchor rows away from the new set come from it.
    #[arg(long, value_name = "BASE_DATA.h5")]
    anchor: Option<PathBuf>,
    /// Anchor rows added to each member's training set, one from each of as
    /// many strata of the parent's domain outside the new set's. The default
    /// kept the parent's validation MAE within 5% in the StelNet example
    /// (README); 30 let it double.
    #[arg(long, default_value_t = FinetuneOptions::DEFAULT_ANCHOR_COUNT, requires = "anchor")]
    anchor_count: usize,
    /// Which parent rows may be anchors: `outside` the new set's domain (a new
    /// set on another label scale), or `everywhere` (the same label scale,
    /// extending the domain: the parent's stars beside the new ones keep
    /// their labels).
    #[arg(long, value_enum, default_value = "outside", requires = "anchor")]
    anchor_from: AnchorFrom,
    /// What keeps the parent's values: `norm` (batch-norm statistics and
    /// affine parameters), `features` (everything but the head), `none`.
    #[arg(long, value_enum, default_value_t = FinetuneOptions::DEFAULT_FREEZE)]
    freeze: Freeze,
    /// L2-SP: add ALPHA * sum (w - w_parent)^2 over the trained weights to the loss (0: off).
    #[arg(long, value_name = "ALPHA", default_value_t = FinetuneOptions::DEFAULT_L2SP)]
    l2sp: f64,
    /// A labelled dataset to score before and after (repeatable): real stars
    /// outside the new set's domain.
    #[arg(long, value_name = "DATA.h5")]
    check: Vec<PathBuf>,
    /// Do not gate: the fine-tuned members answer everywhere. By default a
    /// star unlike the new set (beyond its domain radius r, by distance to
    /// the k-th nearest new row in standardised inputs) gets the parent's
    /// prediction, blended linearly to the fine-tuned one inside r.
    #[arg(long)]
    no_gate: bool,
    /// The gate's blend zone: the fine-tuned weight falls from 1 at r to 0 at r * (1 + W).
    #[arg(long, value_name = "W", default_value_t = FinetuneOptions::DEFAULT_GATE_WIDTH, value_parser = positive)]
    gate_width: f64,
    #[command(flatten)]
    backend: BackendArg,
    #[command(flatten)]
    resume: ResumeArg,
    #[command(flatten)]
    force: ForceArg,
}

pub fn run(a: FinetuneArgs, progress: bool) -> Result<ExitCode> {
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
        anchor_from: a.anchor_from,
        freeze: a.freeze,
        l2sp: a.l2sp,
        gate: !a.no_gate,
        gate_width: a.gate_width,
        check: a.check,
        backend: a.backend.backend,
        resume: a.resume.resume,
        force: a.force.force,
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
