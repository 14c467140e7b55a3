//! Turning a [`Spectrum`] into a network input (METHOD section 3): rest frame,
//! resampling onto a [`WavelengthGrid`], quality cuts, normalisation, denoising
//! and the 64 x 64 reshape. The whole recipe is a plain-data [`PreprocessConfig`]
//! that is stored in every dataset and model, so training and inference agree.

pub mod continuum;
pub mod grid;
pub mod haar;
pub mod smooth;

use serde::{Deserialize, Serialize};

pub use continuum::ContinuumFit;
pub use grid::WavelengthGrid;
pub use haar::HaarDenoiser;

use crate::spectrum::Spectrum;

/// How flux is brought to a common scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Normalisation {
    /// `(F - min F) / (max F - min F)` (the published recipe).
    MinMax,
    /// Divide by an iteratively clipped polynomial pseudo-continuum (LASSO-MLPNet).
    PseudoContinuum(ContinuumFit),
}

/// How the normalised flux is denoised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Denoise {
    /// Haar soft-threshold: detail coefficients of each level shrunk by
    /// `fraction` times that level's largest; `levels` defaults to the maximum (12 for 4096).
    Haar {
        fraction: f64,
        #[serde(default)]
        levels: Option<usize>,
    },
    /// Running median of odd `width` (LASSO-MLPNet uses 3).
    Median {
        width: usize,
    },
    None,
}

/// Order of the 2-D network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputOrder {
    /// Channel c holds pixels `bands*c .. bands*c + bands - 1` (default).
    BandMajor,
    /// The transpose: channel c holds every `bands`-th pixel starting at c.
    PixelMajor,
}

/// The full preprocessing recipe. Defaults are the published DenseNet method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessConfig {
    /// Divide wavelengths by (1 + z) when z is finite and |z| < `max_rest_frame_z`.
    pub rest_frame: bool,
    pub max_rest_frame_z: f64,
    /// Drop pixels with ivar <= 0 or a non-zero ANDMASK before resampling. Off in
    /// the published recipe, which interpolates every finite pixel.
    pub mask_bad_pixels: bool,
    pub grid: WavelengthGrid,
    /// Reject a spectrum with at least this many zero-flux pixels on the grid.
    pub max_zero_pixels: usize,
    pub normalisation: Normalisation,
    /// Reject a spectrum whose normalised flux has a smaller standard deviation.
    pub min_std: f64,
    pub denoise: Denoise,
    /// Number of channels of the 2-D input; the grid length must be a multiple.
    pub bands: usize,
    pub order: InputOrder,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            rest_frame: true,
            max_rest_frame_z: 0.1,
            mask_bad_pixels: false,
            grid: WavelengthGrid::default(),
            max_zero_pixels: 100,
            normalisation: Normalisation::MinMax,
            min_std: 0.005,
            denoise: Denoise::Haar {
                fraction: 0.05,
                levels: None,
            },
            bands: 64,
            order: InputOrder::BandMajor,
        }
    }
}

/// A configuration field that cannot work, named as the user wrote it.
#[derive(Debug, thiserror::Error)]
#[error("invalid preprocessing config: {}", .problems.join("; "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl PreprocessConfig {
    /// Checks every field once; a [`Preprocessor`] trusts its config afterwards.
    pub fn check(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let g = &self.grid;
        if g.len < 2 {
            problems.push(format!("grid.len must be at least 2, got {}", g.len));
        }
        if !(g.step > 0.0) || !g.start.is_finite() {
            problems.push(format!(
                "grid.step must be positive and grid.start finite, got start {} step {}",
                g.start, g.step
            ));
        }
        if self.bands == 0 || g.len % self.bands != 0 {
            problems.push(format!(
                "bands ({}) must divide grid.len ({})",
                self.bands, g.len
            ));
        }
        if !(self.min_std >= 0.0) {
            problems.push(format!("min_std must be >= 0, got {}", self.min_std));
        }
        match self.denoise {
            Denoise::Haar { fraction, .. } if !(fraction >= 0.0) => {
                problems.push(format!("denoise.fraction must be >= 0, got {fraction}"))
            }
            Denoise::Median { width } if width % 2 == 0 => {
                problems.push(format!("denoise.width must be odd, got {width}"))
            }
            _ => {}
        }
        if let Normalisation::PseudoContinuum(fit) = &self.normalisation {
            if fit.degree > 15 {
                problems.push(format!(
                    "normalisation.degree must be at most 15, got {}",
                    fit.degree
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Shape of one network input: `[bands, grid.len / bands]`.
    pub fn input_shape(&self) -> [usize; 2] {
        [self.bands, self.grid.len / self.bands.max(1)]
    }
}

/// Why a readable spectrum was not turned into a network input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("no finite flux pixel{}", if *.masked { " left after masking bad pixels" } else { "" })]
    NoFiniteFlux { masked: bool },
    #[error("wavelengths are not strictly increasing")]
    BadWavelength,
    #[error("{zero} of {len} grid pixels have zero flux (limit {limit}): missing wavelength coverage or a gap")]
    ZeroFlux {
        zero: usize,
        len: usize,
        limit: usize,
    },
    #[error("flux is constant on the grid")]
    Flat,
    #[error("normalised flux standard deviation {std:.5} is below {limit}")]
    LowStd { std: f64, limit: f64 },
    #[error("pseudo-continuum fit failed (too few usable pixels)")]
    ContinuumFailed,
}

impl Rejection {
    /// A short stable code for catalogs and reject lists.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NoFiniteFlux { .. } => "no-finite-flux",
            Rejection::BadWavelength => "bad-wavelength",
            Rejection::ZeroFlux { .. } => "zero-flux",
            Rejection::Flat => "flat",
            Rejection::LowStd { .. } => "low-std",
            Rejection::ContinuumFailed => "continuum-fit-failed",
        }
    }
}

/// What happened to a spectrum on its way through the recipe, for `inspect`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// The redshift divided out, if the rest-frame shift applied.
    pub rest_frame_z: Option<f64>,
    /// Pixels used for resampling (finite, and unmasked when masking is on).
    pub pixels_used: usize,
    pub zero_pixels_on_grid: Option<usize>,
    pub normalised_std: Option<f64>,
}

/// Runs a checked [`PreprocessConfig`] on spectra; cheap to share across threads.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    config: PreprocessConfig,
    grid: Vec<f64>,
}

impl Preprocessor {
    pub fn new(config: PreprocessConfig) -> Result<Self, ConfigError> {
        config.check()?;
        let grid = config.grid.wavelengths();
        Ok(Self { config, grid })
    }

    pub fn config(&self) -> &PreprocessConfig {
        &self.config
    }

    /// The network input for `spectrum`, `grid.len` values in the configured order.
    pub fn run(&self, spectrum: &Spectrum) -> Result<Vec<f32>, Rejection> {
        self.run_traced(spectrum).1
    }

    /// As [`Preprocessor::run`], also reporting what each step saw.
    pub fn run_traced(&self, spectrum: &Spectrum) -> (Trace, Result<Vec<f32>, Rejection>) {
        let mut trace = Trace::default();
        let result = self.steps(spectrum, &mut trace);
        (trace, result)
    }

    fn steps(&self, s: &Spectrum, trace: &mut Trace) -> Result<Vec<f32>, Rejection> {
        let c = &self.config;
        // 1. Rest frame.
        let shift = match s.meta.z {
            Some(z) if c.rest_frame && z.is_finite() && z.abs() < c.max_rest_frame_z => {
                trace.rest_frame_z = Some(z);
                1.0 + z
            }
            _ => 1.0,
        };
        let mut xp = Vec::with_capacity(s.len());
        let mut fp = Vec::with_capacity(s.len());
        for i in 0..s.len() {
            let (w, f) = (s.wavelength[i], s.flux[i]);
            let good = w.is_finite()
                && f.is_finite()
                && (!c.mask_bad_pixels || (s.ivar[i] > 0.0 && s.and_mask[i] == 0));
            if good {
                xp.push(w / shift);
                fp.push(f);
            }
        }
        trace.pixels_used = xp.len();
        if xp.is_empty() {
            return Err(Rejection::NoFiniteFlux {
                masked: c.mask_bad_pixels,
            });
        }
        if xp.windows(2).any(|p| !(p[1] > p[0])) {
            return Err(Rejection::BadWavelength);
        }
        // 2. Resample.
        let mut flux = vec![0.0; self.grid.len()];
        grid::interp_into(&self.grid, &xp, &fp, &mut flux);
        // 3. Missing coverage.
        let zero = flux.iter().filter(|f| **f == 0.0).count();
        trace.zero_pixels_on_grid = Some(zero);
        if zero >= c.max_zero_pixels {
            return Err(Rejection::ZeroFlux {
                zero,
                len: flux.len(),
                limit: c.max_zero_pixels,
            });
        }
        // 4. Normalise.
        let flux = match &c.normalisation {
            Normalisation::MinMax => {
                let (lo, hi) = flux
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), f| {
                        (lo.min(*f), hi.max(*f))
                    });
                if !(hi > lo) {
                    return Err(Rejection::Flat);
                }
                let range = hi - lo;
                flux.iter().map(|f| (f - lo) / range).collect()
            }
            Normalisation::PseudoContinuum(fit) => fit
                .normalise(&self.grid, &flux)
                .ok_or(Rejection::ContinuumFailed)?,
        };
        // 5. Featureless spectra.
        let std = population_std(&flux);
        trace.normalised_std = Some(std);
        if !(std >= c.min_std) {
            return Err(Rejection::LowStd {
                std,
                limit: c.min_std,
            });
        }
        // 6. Denoise.
        let flux = match c.denoise {
            Denoise::Haar { fraction, levels } => HaarDenoiser { fraction, levels }.denoise(&flux),
            Denoise::Median { width } => smooth::median_filter(&flux, width),
            Denoise::None => flux,
        };
        // 7. Reshape.
        Ok(self.reshape(&flux))
    }

    fn reshape(&self, flux: &[f64]) -> Vec<f32> {
        let [bands, width] = self.config.input_shape();
        match self.config.order {
            InputOrder::BandMajor => flux.iter().map(|&f| f as f32).collect(),
            InputOrder::PixelMajor => {
                let mut out = vec![0f32; flux.len()];
                for b in 0..bands {
                    for p in 0..width {
                        out[p * bands + b] = flux[b * width + p] as f32;
                    }
                }
                out
            }
        }
    }
}

/// Standard deviation with divisor n, as `numpy.std`.
fn population_std(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_json_and_toml() {
        let c = PreprocessConfig {
            denoise: Denoise::Median { width: 3 },
            normalisation: Normalisation::PseudoContinuum(ContinuumFit::default()),
            ..Default::default()
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<PreprocessConfig>(&json).unwrap(), c);
        let toml_text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<PreprocessConfig>(&toml_text).unwrap(), c);
    }

    #[test]
    fn check_names_every_bad_field() {
        let c = PreprocessConfig {
            bands: 60,
            denoise: Denoise::Median { width: 4 },
            ..Default::default()
        };
        let err = c.check().unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.to_string().contains("bands"));
        assert!(err.to_string().contains("width"));
    }

    #[test]
    fn pixel_major_is_the_transpose() {
        let p = Preprocessor::new(PreprocessConfig {
            order: InputOrder::PixelMajor,
            ..Default::default()
        })
        .unwrap();
        let flux: Vec<f64> = (0..4096).map(|i| i as f64).collect();
        let out = p.reshape(&flux);
        // Pixel-major: row p holds pixel p of every band, so out[64] is band 0, pixel 1.
        assert_eq!(out[64], 1.0);
        assert_eq!(out[1], 64.0);
    }
}
