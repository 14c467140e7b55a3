//! `spectrain merge`: shard catalogs of `predict --shard` into one.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::args::ForceArg;

#[derive(Args)]
#[command(mut_arg("force", |a| a.help("Replace an existing merged catalog")))]
pub struct MergeArgs {
    /// Shard catalogs (CSV) written by `predict --shard`.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Merged catalog (`.csv`, `.fits` or `.fits.gz`), sorted by file.
    #[arg(long, value_name = "CATALOG")]
    out: PathBuf,
    #[command(flatten)]
    force: ForceArg,
    /// The spectra directory the shards came from, to report files no shard has.
    #[arg(long, value_name = "DIR")]
    spectra: Option<PathBuf>,
}

/// Exit status 3 when a file is missing from every shard or present in two.
pub fn run(a: MergeArgs) -> Result<ExitCode> {
    let r = spectrain::predict::merge(&a.shards, &a.out, a.spectra.as_deref(), a.force.force)?;
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
