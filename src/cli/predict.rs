//! `spectrain predict`: a catalog from FITS spectra or from a CSV table.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

use spectrain::predict::{parse_shard, predict, PredictOptions};
use spectrain::table::predict::{predict_table, PredictTableOptions};

use super::args::{at_least, BackendArg, ForceArg, ResumeArg};

#[derive(Args)]
#[command(mut_arg("resume", |a| a.help(
    "Continue an interrupted run from its CATALOG.partial file (a finished catalog resumed is left as it is)")))]
#[command(mut_arg("force", |a| a.help("Replace an existing catalog, or start an interrupted one over")))]
pub struct PredictArgs {
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
    #[command(flatten)]
    backend: BackendArg,
    /// Handle only shard K of N (1-based), chosen by a hash of each file's path.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Also write every member's prediction.
    #[arg(long)]
    members_out: bool,
    #[command(flatten)]
    resume: ResumeArg,
    #[command(flatten)]
    force: ForceArg,
}

pub fn run(mut a: PredictArgs, progress: bool) -> Result<ExitCode> {
    if let Some(table) = a.table.take() {
        return run_table(a, table);
    }
    let opts = PredictOptions {
        shard: a.shard.as_deref().map(parse_shard).transpose()?,
        model: a.model,
        spectra: a.spectra.expect("clap requires --spectra or --table"),
        out: a.out,
        batch: a.batch,
        backend: a.backend.backend,
        members_out: a.members_out,
        resume: a.resume.resume,
        force: a.force.force,
        progress,
    };
    let s = predict(&opts)?;
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

/// `--table`: one catalog row per table row, for catalog-feature models.
fn run_table(a: PredictArgs, table: PathBuf) -> Result<ExitCode> {
    if a.shard.is_some() || a.resume.resume || a.members_out {
        bail!("--shard, --resume and --members-out apply to --spectra");
    }
    let opts = PredictTableOptions {
        model: a.model,
        table,
        out: a.out,
        id: a.id,
        batch: a.batch,
        backend: a.backend.backend,
        force: a.force.force,
    };
    let s = predict_table(&opts)?;
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
    Ok(ExitCode::SUCCESS)
}
