//! The `spectrain` command line: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use spectrain::dataset::JoinKey;
use spectrain::inspect::inspect;
use spectrain::prepare::{prepare, PrepareOptions};
use spectrain::preprocess::{ContinuumFit, Denoise, InputOrder, Normalisation};
use spectrain::{PreprocessConfig, Preprocessor};

#[derive(Parser)]
#[command(
    name = "spectrain",
    version,
    about = "Train deep networks on LAMOST spectra and run them over surveys"
)]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(short = 'j', long, global = true, env = "SPECTRAIN_THREADS")]
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
    /// Show a file's layout, metadata and what preprocessing would do to it.
    Inspect(InspectArgs),
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
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPECTRAIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
