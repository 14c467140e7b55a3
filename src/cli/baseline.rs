//! `spectrain baseline`: tree and linear models on a dataset, scored like `evaluate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use spectrain::baseline::{baseline, BaselineOptions, Method};
use spectrain::ensemble::TrainConfig;

use super::args::{fraction, BudgetArgs};

#[derive(Args)]
pub struct BaselineArgs {
    /// Dataset written by `prepare` or `prepare-table`.
    #[arg(long, value_name = "DATA.h5")]
    data: PathBuf,
    #[arg(long, value_enum)]
    method: Method,
    /// Directory for report.json, report.md, baseline.json and plots.
    #[arg(long, value_name = "REPORT_DIR")]
    out: PathBuf,
    /// Score on this dataset (same recipe) instead of DATA's validation split.
    #[arg(long, value_name = "TEST.h5")]
    test: Option<PathBuf>,
    /// Label columns (default: every label of the dataset).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    // The split's defaults are train's, so the same flags give the same split.
    /// Validation fraction of the split: the same split as `train` with the same seed.
    #[arg(long, default_value_t = TrainConfig::default().val_fraction, value_parser = fraction)]
    val_fraction: f64,
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    #[command(flatten)]
    budget: BudgetArgs,
}

pub fn run(a: BaselineArgs) -> Result<ExitCode> {
    let opts = BaselineOptions {
        data: a.data,
        test: a.test,
        out: a.out,
        method: a.method,
        columns: a.columns,
        val_fraction: a.val_fraction,
        seed: a.seed,
        trees: a.budget.trees,
        rounds: a.budget.rounds,
    };
    let (r, info) = baseline(&opts)?;
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
