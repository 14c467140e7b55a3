//! Reading LAMOST low-resolution FITS files of every data-release layout into a [`Spectrum`].
//!
//! Layouts (METHOD section 2): the DR8+ `COADD` binary table, the DR2-DR7 5 x N
//! primary image (f32 or f64), and the DR1 image without a wavelength row. Files
//! may be gzip-compressed; cfitsio decompresses them in memory. Medium-resolution
//! files and anything else are refused with a [`FitsError`] naming the file.

mod discover;
mod memory;

pub use discover::find_spectra;

use std::path::{Path, PathBuf};

use fitsio::hdu::{FitsHdu, HduInfo};
use fitsio::images::ImageType;
use fitsio::FitsFile;

use crate::spectrum::{Layout, Spectrum, SpectrumMeta};

/// Why a file could not be read as a low-resolution spectrum.
#[derive(Debug, thiserror::Error)]
pub enum FitsError {
    #[error("{path}: empty file (0 bytes)")]
    Empty { path: PathBuf },
    #[error("{path}: cannot be read as FITS: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: medium-resolution spectrum (has a {hdu} table); only low-resolution files are supported")]
    MediumResolution { path: PathBuf, hdu: String },
    #[error("{path}: not a LAMOST low-resolution layout: {reason}")]
    WrongLayout { path: PathBuf, reason: String },
}

impl FitsError {
    /// A short stable code for catalogs and reject lists.
    pub fn code(&self) -> &'static str {
        match self {
            FitsError::Empty { .. } => "empty-file",
            FitsError::Unreadable { .. } => "unreadable",
            FitsError::MediumResolution { .. } => "medium-resolution",
            FitsError::WrongLayout { .. } => "wrong-layout",
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            FitsError::Empty { path }
            | FitsError::Unreadable { path, .. }
            | FitsError::MediumResolution { path, .. }
            | FitsError::WrongLayout { path, .. } => path,
        }
    }
}

/// Rows of the image layouts, in file order.
const IMAGE_ROWS: usize = 5;
/// A plausible optical wavelength range in Angstrom, used to tell a DR2-DR7
/// wavelength row from DR1's continuum-normalised flux row.
const WAVELENGTH_SANITY: (f64, f64) = (1_000.0, 30_000.0);

/// Reads one LAMOST low-resolution spectrum, whatever its data release.
pub fn read_spectrum(path: &Path) -> Result<Spectrum, FitsError> {
    let unreadable = |reason: String| FitsError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let wrong = |reason: String| FitsError::WrongLayout {
        path: path.to_path_buf(),
        reason,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| unreadable(e.to_string()))?
        .len();
    if size == 0 {
        return Err(FitsError::Empty {
            path: path.to_path_buf(),
        });
    }
    let bytes =
        memory::read_bytes(path).map_err(|e| unreadable(format!("read/gunzip failed: {e}")))?;
    let available = bytes.len();
    let mut handle = memory::MemoryFits::open(bytes).map_err(|e| unreadable(fits_message(&e)))?;
    let file = handle.file();
    let primary = file
        .primary_hdu()
        .map_err(|e| unreadable(fits_message(&e)))?;

    let mut spectrum = match &primary.info {
        HduInfo::ImageInfo { shape, .. } if shape.is_empty() => {
            read_coadd_table(file, &primary, available).map_err(|e| match e {
                TableError::Fits(m) | TableError::Truncated(m) => unreadable(m),
                TableError::Medium(hdu) => FitsError::MediumResolution {
                    path: path.to_path_buf(),
                    hdu,
                },
                TableError::Layout(m) => wrong(m),
            })?
        }
        HduInfo::ImageInfo { shape, image_type } => {
            if shape.len() != 2 || shape[0] != IMAGE_ROWS || shape[1] < 2 {
                return Err(wrong(format!(
                    "primary image has shape {shape:?}, expected [5, N] (flux, ivar, wavelength, andmask, ormask)"
                )));
            }
            let mut image =
                read_image(file, &primary, shape[1], available).map_err(|e| match e {
                    TableError::Fits(m) | TableError::Truncated(m) => unreadable(m),
                    TableError::Layout(m) | TableError::Medium(m) => wrong(m),
                })?;
            image.meta.bitpix = Some(bitpix(*image_type));
            image
        }
        _ => return Err(wrong("primary HDU is not an image".into())),
    };
    spectrum.meta.file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(spectrum)
}

enum TableError {
    Fits(String),
    Truncated(String),
    Medium(String),
    Layout(String),
}

impl From<fitsio::errors::Error> for TableError {
    fn from(e: fitsio::errors::Error) -> Self {
        TableError::Fits(fits_message(&e))
    }
}

fn bitpix(t: ImageType) -> i32 {
    match t {
        ImageType::UnsignedByte => 8,
        ImageType::Byte => 10,
        ImageType::Short => 16,
        ImageType::UnsignedShort => 20,
        ImageType::Long => 32,
        ImageType::UnsignedLong => 40,
        ImageType::LongLong => 64,
        ImageType::Float => -32,
        ImageType::Double => -64,
    }
}

/// DR8+: the spectrum is row 0 of the `COADD` table; header keys may sit in either HDU.
fn read_coadd_table(
    file: &mut FitsFile,
    primary: &FitsHdu,
    available: usize,
) -> Result<Spectrum, TableError> {
    let table = match file.hdu("COADD") {
        Ok(hdu) => hdu,
        Err(_) => {
            for medium in ["COADD_B", "COADD_R"] {
                if file.hdu(medium).is_ok() {
                    return Err(TableError::Medium(medium.to_string()));
                }
            }
            return Err(TableError::Layout(
                "empty primary HDU and no COADD table".into(),
            ));
        }
    };
    let HduInfo::TableInfo {
        column_descriptions,
        num_rows,
    } = &table.info
    else {
        return Err(TableError::Layout("COADD HDU is not a table".into()));
    };
    if *num_rows < 1 {
        return Err(TableError::Layout("COADD table has no rows".into()));
    }
    let has = |name: &str| column_descriptions.iter().any(|c| c.name == name);
    for required in ["FLUX", "WAVELENGTH"] {
        if !has(required) {
            return Err(TableError::Layout(format!(
                "COADD table has no {required} column"
            )));
        }
    }
    let row_bytes: u64 = table.read_key::<i64>(file, "NAXIS1")?.max(0) as u64;
    let pcount: u64 = table.read_key::<i64>(file, "PCOUNT").unwrap_or(0).max(0) as u64;
    memory::ensure_data_present(file, available, row_bytes * *num_rows as u64 + pcount)
        .map_err(TableError::Truncated)?;
    let column = |file: &mut FitsFile, name: &str| -> Result<Vec<f64>, TableError> {
        Ok(table.read_col_range::<f64>(file, name, &(0..1))?)
    };
    let flux = column(file, "FLUX")?;
    let n = flux.len();
    let wavelength = column(file, "WAVELENGTH")?;
    // Optional columns default to "no information": ivar 1 (unweighted), masks clear.
    let optional =
        |file: &mut FitsFile, name: &str, default: f64| -> Result<Vec<f64>, TableError> {
            if has(name) {
                column(file, name)
            } else {
                Ok(vec![default; n])
            }
        };
    let ivar = optional(file, "IVAR", 1.0)?;
    let and_mask = optional(file, "ANDMASK", 0.0)?;
    let or_mask = optional(file, "ORMASK", 0.0)?;
    for (name, len) in [
        ("WAVELENGTH", wavelength.len()),
        ("IVAR", ivar.len()),
        ("ANDMASK", and_mask.len()),
        ("ORMASK", or_mask.len()),
    ] {
        if len != n {
            return Err(TableError::Layout(format!(
                "COADD column {name} has {len} values but FLUX has {n}"
            )));
        }
    }
    let meta = read_meta(file, &[primary, &table]);
    Ok(Spectrum {
        layout: Layout::CoaddTable,
        wavelength,
        flux,
        ivar,
        and_mask: to_mask(&and_mask),
        or_mask: to_mask(&or_mask),
        meta,
    })
}

/// DR1-DR7: a 5 x N image. Row 2 is the wavelength unless it is DR1's normalised flux.
fn read_image(
    file: &mut FitsFile,
    primary: &FitsHdu,
    n: usize,
    available: usize,
) -> Result<Spectrum, TableError> {
    let data: Vec<f64> = primary.read_image(file)?;
    let sample_bytes = primary.read_key::<i64>(file, "BITPIX")?.unsigned_abs() / 8;
    memory::ensure_data_present(file, available, sample_bytes * (IMAGE_ROWS * n) as u64)
        .map_err(TableError::Truncated)?;
    if data.len() != IMAGE_ROWS * n {
        return Err(TableError::Layout(format!(
            "image holds {} values, expected 5 x {n}",
            data.len()
        )));
    }
    let row = |r: usize| data[r * n..(r + 1) * n].to_vec();
    let meta = read_meta(file, &[primary]);
    let third = row(2);
    let (layout, wavelength) = if looks_like_wavelengths(&third) {
        (Layout::Image, third)
    } else {
        let c0 = key_f64(file, &[primary], "COEFF0");
        let c1 = key_f64(file, &[primary], "COEFF1");
        match (c0, c1) {
            (Some(c0), Some(c1)) => (
                Layout::ImageNoWavelength,
                (0..n).map(|i| 10f64.powf(c0 + c1 * i as f64)).collect(),
            ),
            _ => {
                return Err(TableError::Layout(
                    "image row 2 is not a wavelength row and COEFF0/COEFF1 are missing".into(),
                ))
            }
        }
    };
    Ok(Spectrum {
        layout,
        wavelength,
        flux: row(0),
        ivar: row(1),
        and_mask: to_mask(&row(3)),
        or_mask: to_mask(&row(4)),
        meta,
    })
}

/// True for a finite, strictly increasing row within optical wavelengths.
fn looks_like_wavelengths(row: &[f64]) -> bool {
    let (lo, hi) = WAVELENGTH_SANITY;
    row.iter().all(|w| w.is_finite() && *w > lo && *w < hi) && row.windows(2).all(|p| p[1] > p[0])
}

/// Masks may be stored as floats (DR8+); NaN or negative values count as "all bits set".
fn to_mask(values: &[f64]) -> Vec<u32> {
    values
        .iter()
        .map(|&v| {
            if v.is_finite() && v >= 0.0 && v <= u32::MAX as f64 {
                v as u32
            } else {
                u32::MAX
            }
        })
        .collect()
}

fn read_meta(file: &mut FitsFile, hdus: &[&FitsHdu]) -> SpectrumMeta {
    SpectrumMeta {
        file_name: String::new(),
        obsid: key_i64(file, hdus, "OBSID"),
        designation: key_string(file, hdus, "DESIG"),
        ra: key_f64(file, hdus, "RA"),
        dec: key_f64(file, hdus, "DEC"),
        z: key_f64(file, hdus, "Z"),
        snrg: key_f64(file, hdus, "SNRG").or_else(|| key_f64(file, hdus, "SN_G")),
        class: key_string(file, hdus, "CLASS"),
        subclass: key_string(file, hdus, "SUBCLASS"),
        data_release: key_string(file, hdus, "DATA_V"),
        bitpix: None,
    }
}

/// The first HDU (in the order given) holding the key wins, as astropy's merged header does.
fn first_key<T>(
    file: &mut FitsFile,
    hdus: &[&FitsHdu],
    mut read: impl FnMut(&FitsHdu, &mut FitsFile) -> Option<T>,
) -> Option<T> {
    hdus.iter().find_map(|hdu| read(hdu, file))
}

fn key_f64(file: &mut FitsFile, hdus: &[&FitsHdu], name: &str) -> Option<f64> {
    first_key(file, hdus, |hdu, f| hdu.read_key::<f64>(f, name).ok())
}

fn key_i64(file: &mut FitsFile, hdus: &[&FitsHdu], name: &str) -> Option<i64> {
    first_key(file, hdus, |hdu, f| {
        hdu.read_key::<i64>(f, name).ok().or_else(|| {
            // Some writers store integers as strings.
            hdu.read_key::<String>(f, name)
                .ok()
                .and_then(|s| s.trim().parse().ok())
        })
    })
}

fn key_string(file: &mut FitsFile, hdus: &[&FitsHdu], name: &str) -> Option<String> {
    first_key(file, hdus, |hdu, f| {
        hdu.read_key::<String>(f, name)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
}

fn fits_message(e: &fitsio::errors::Error) -> String {
    match e {
        fitsio::errors::Error::Fits(fe) => format!("cfitsio status {}: {}", fe.status, fe.message),
        other => other.to_string(),
    }
}
