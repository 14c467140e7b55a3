//! `spectrain evaluate`: a trained ensemble scored on a labelled dataset.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use spectrain::evaluate::{evaluate_model, EvaluateOptions};

use super::args::{at_least, BackendArg};

#[derive(Args)]
pub struct EvaluateArgs {
    /// Model directory written by `spectrain train`.
    #[arg(long, value_name = "MODEL_DIR")]
    model: PathBuf,
    /// Labelled dataset written by `spectrain prepare` with the same recipe.
    #[arg(long, value_name = "TEST.h5")]
    data: PathBuf,
    /// Directory for report.json and report.md.
    #[arg(long, value_name = "REPORT_DIR")]
    out: PathBuf,
    #[command(flatten)]
    backend: BackendArg,
    #[arg(long, default_value_t = 256, value_parser = at_least::<1>())]
    batch: usize,
}

pub fn run(a: EvaluateArgs) -> Result<ExitCode> {
    let opts = EvaluateOptions {
        model: a.model,
        data: a.data,
        out: a.out,
        backend: a.backend.backend,
        batch: a.batch,
    };
    let r = evaluate_model(&opts)?;
    print!("{}", r.markdown());
    println!("\nwritten: {}/report.json, report.md", opts.out.display());
    Ok(ExitCode::SUCCESS)
}
