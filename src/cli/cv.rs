//! `spectrain cv`: K-fold cross-validation of a training recipe, with the
//! tree baselines scored on the same folds.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};

use spectrain::baseline::{Budget, Method};
use spectrain::cv::{cv, CvOptions};

use super::args::{at_least, BudgetArgs};
use super::train::TrainArgs;

#[derive(Args)]
#[command(mut_arg("trees", |a| a.help("Random forest size")))]
pub struct CvArgs {
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
    #[command(flatten)]
    budget: BudgetArgs,
}

pub fn run(a: CvArgs, progress: bool) -> Result<ExitCode> {
    if a.train.member.is_some() || a.train.finish || a.train.force.force {
        bail!("--member, --finish and --force do not apply to cv");
    }
    let baselines = a
        .baselines
        .iter()
        .filter(|b| b.as_str() != "none")
        .map(|b| Method::from_str(b, true).map_err(|e| anyhow::anyhow!("--baselines: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let resume = a.train.resume.resume;
    let opts = CvOptions {
        data: a.train.data.clone(),
        out: a.train.out.clone(),
        folds: a.folds,
        fold_seed: a.fold_seed,
        train: a.train.options(progress)?,
        baselines,
        budget: a.budget.budget(Budget::default().seed),
        resume,
    };
    let r = cv(&opts)?;
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
