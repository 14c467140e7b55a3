//! `spectrain prepare-table`: numeric CSV columns into an HDF5 dataset.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use spectrain::table::{prepare_table, MissingFeatures, PrepareTableOptions};

use super::args::ForceArg;

#[derive(Args)]
#[command(mut_arg("force", |a| a.help("Replace an existing dataset")))]
pub struct PrepareTableArgs {
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
    #[command(flatten)]
    force: ForceArg,
}

pub fn run(a: PrepareTableArgs) -> Result<ExitCode> {
    let opts = PrepareTableOptions {
        table: a.table,
        out: a.out,
        features: a.features,
        labels: a.labels,
        id: a.id,
        missing: a.missing,
        force: a.force.force,
    };
    let s = prepare_table(&opts)?;
    println!("prepare-table: {} rows in {:.2} s", s.rows, s.seconds);
    super::prepare::print_kept_and_rejected(
        s.kept,
        &opts.out,
        s.rows - s.kept,
        &s.rejects_path,
        &s.rejected,
    );
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
