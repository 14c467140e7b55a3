//! One observed low-resolution spectrum as read from a file, before any preprocessing.

use serde::{Deserialize, Serialize};

/// The on-disk layout a spectrum was read from (METHOD section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// DR8 and later: empty primary HDU and a one-row `COADD` binary table.
    CoaddTable,
    /// DR2-DR7 (and DR8 image files): a 5 x N primary image whose third row is the wavelength.
    Image,
    /// DR1: a 5 x N primary image without a wavelength row; wavelengths come from
    /// the `COEFF0`/`COEFF1` header keywords.
    ImageNoWavelength,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Layout::CoaddTable => "DR8+ COADD binary table",
            Layout::Image => "DR2-DR7 primary image (flux, ivar, wavelength, andmask, ormask)",
            Layout::ImageNoWavelength => {
                "DR1 primary image (flux, ivar, normalised flux, andmask, ormask), wavelength from COEFF0/COEFF1"
            }
        }
    }
}

/// Header metadata a user needs to identify a spectrum and judge its quality.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpectrumMeta {
    /// File name (no directory), the fallback join key when `OBSID` is absent.
    pub file_name: String,
    /// `OBSID`; absent in DR1 files.
    pub obsid: Option<i64>,
    pub designation: Option<String>,
    pub ra: Option<f64>,
    pub dec: Option<f64>,
    /// Redshift `Z`; stars have |z| < 1e-3.
    pub z: Option<f64>,
    /// Signal-to-noise in the g band: `SNRG`, or `SN_G` in DR1.
    pub snrg: Option<f64>,
    pub class: Option<String>,
    pub subclass: Option<String>,
    /// `DATA_V` (e.g. "LAMOST DR10"); `None` for DR1 files, which lack it.
    pub data_release: Option<String>,
    /// Sample bits per pixel of the image layouts (-32 or -64); `None` for tables.
    pub bitpix: Option<i32>,
}

/// Wavelength (vacuum, Angstrom), flux, inverse variance and masks, pixel for pixel.
///
/// Values are kept as f64 whatever the file stored, so that f32 and f64 files
/// preprocess through one code path.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrum {
    pub layout: Layout,
    pub wavelength: Vec<f64>,
    pub flux: Vec<f64>,
    pub ivar: Vec<f64>,
    pub and_mask: Vec<u32>,
    pub or_mask: Vec<u32>,
    pub meta: SpectrumMeta,
}

impl Spectrum {
    pub fn len(&self) -> usize {
        self.flux.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flux.is_empty()
    }

    /// Number of pixels flagged bad: zero inverse variance or a non-zero `ANDMASK`.
    pub fn bad_pixel_count(&self) -> usize {
        self.ivar
            .iter()
            .zip(&self.and_mask)
            .filter(|(&iv, &m)| !(iv > 0.0) || m != 0)
            .count()
    }

    /// Wavelength range covered, ignoring non-finite values.
    pub fn wavelength_range(&self) -> Option<(f64, f64)> {
        let mut finite = self.wavelength.iter().copied().filter(|w| w.is_finite());
        let first = finite.next()?;
        Some(finite.fold((first, first), |(lo, hi), w| (lo.min(w), hi.max(w))))
    }
}
