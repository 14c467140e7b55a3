//! What several subcommands share: value parsers, flag groups flattened into
//! their argument structs, and the reading of TOML settings files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use spectrain::baseline::Budget;
use spectrain::model::BackendChoice;
use spectrain::preprocess::{ContinuumFit, Denoise, InputOrder, Normalisation};
use spectrain::PreprocessConfig;

/// `usize` of at least `MIN`, checked by clap.
pub fn at_least<const MIN: u64>() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(MIN..)
}

/// A positive, finite number.
pub fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a positive number, got '{s}'")),
    }
}

/// Zero or a positive, finite number.
pub fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected zero or a positive number, got '{s}'")),
    }
}

/// A number strictly between 0 and 1.
pub fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!(
            "expected a number between 0 and 1 (exclusive), got '{s}'"
        )),
    }
}

/// A probability in [0, 1).
pub fn dropout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a number in [0, 1), got '{s}'")),
    }
}

/// A settings file in TOML, with the path in its errors.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

// The flag groups below carry no doc comments on purpose: a command that
// flattens one gives the flag its own help where the wording depends on what
// the command writes, with `#[command(mut_arg("force", |a| a.help("...")))]`.

/// `--backend`: where the network runs.
#[derive(Args)]
pub struct BackendArg {
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
}

/// `--force`: replace an existing output.
#[derive(Args)]
pub struct ForceArg {
    #[arg(long)]
    pub force: bool,
}

/// `--resume`: continue a killed run; only beside [`ForceArg`], which it excludes.
#[derive(Args)]
pub struct ResumeArg {
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
}

/// `--trees` and `--rounds`: the sizes of the tree baselines.
#[derive(Args)]
pub struct BudgetArgs {
    /// Trees of the random forest.
    #[arg(long, default_value_t = Budget::default().trees, value_parser = at_least::<1>())]
    pub trees: usize,
    /// Boosting rounds.
    #[arg(long, default_value_t = Budget::default().rounds, value_parser = at_least::<1>())]
    pub rounds: usize,
}

impl BudgetArgs {
    /// The library's budget with these sizes and `seed`.
    pub fn budget(&self, seed: u64) -> Budget {
        Budget {
            trees: self.trees,
            rounds: self.rounds,
            seed,
        }
    }
}

/// Preprocessing settings; a TOML file first, then these flags on top.
#[derive(Args, Clone)]
pub struct RecipeArgs {
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
    pub fn config(&self) -> Result<PreprocessConfig> {
        let mut c = match &self.preprocess {
            Some(path) => read_toml(path)?,
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
