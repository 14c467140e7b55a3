//! `spectrain prepare`: FITS spectra and a label catalog into an HDF5 dataset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

use spectrain::dataset::JoinKey;
use spectrain::prepare::{prepare, PrepareOptions};

use super::args::{ForceArg, RecipeArgs};

#[derive(Args)]
#[command(mut_arg("force", |a| a.help("Replace an existing dataset")))]
pub struct PrepareArgs {
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
    #[command(flatten)]
    force: ForceArg,
}

pub fn run(a: PrepareArgs, progress: bool) -> Result<ExitCode> {
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
        force: a.force.force,
        progress,
    };
    let s = prepare(&opts)?;
    println!(
        "prepare: {} files in {:.2} s ({:.0} spectra/s)",
        s.files,
        s.seconds,
        s.spectra_per_second()
    );
    print_kept_and_rejected(
        s.kept,
        &opts.out,
        s.files - s.kept,
        &s.rejects_path,
        &s.rejected,
    );
    Ok(ExitCode::SUCCESS)
}

/// The tally `prepare` and `prepare-table` print: what was kept, what was
/// rejected, and how often each reason.
pub(super) fn print_kept_and_rejected<R: std::fmt::Display>(
    kept: usize,
    out: &Path,
    rejected: usize,
    rejects_path: &Path,
    reasons: &BTreeMap<R, usize>,
) {
    println!("  kept     {kept:>7} -> {}", out.display());
    println!("  rejected {rejected:>7} -> {}", rejects_path.display());
    for (reason, n) in reasons {
        println!("    {reason:<18} {n:>7}");
    }
}
