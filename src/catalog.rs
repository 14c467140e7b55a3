//! The output catalog of `predict`: one row per input file, as CSV (streamed)
//! or a FITS binary table with units (astropy and TOPCAT read both).

use std::path::Path;

use fitsio::tables::{ColumnDataType, ColumnDescription};

use crate::atomic::write_atomically;

/// Physical unit of a label, by its usual name; empty when unknown.
pub fn unit_of(column: &str) -> &'static str {
    let base = column
        .trim_end_matches("_std")
        .trim_end_matches("_spread")
        .split("_m")
        .next()
        .unwrap_or(column);
    match base.to_ascii_lowercase().as_str() {
        "teff" => "K",
        "logg" | "feh" | "mh" | "alpha_fe" | "afe" => "dex",
        "mass" => "solMass",
        "age" => "Gyr",
        "ra" | "dec" => "deg",
        _ => "",
    }
}

/// How a catalog column is stored in FITS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Integer,
    Real,
}

/// Kind of each standard column; label columns are real.
pub fn kind_of(column: &str) -> ColumnKind {
    match column {
        "file" | "status" | "reason" | "class" => ColumnKind::Text,
        "obsid" => ColumnKind::Integer,
        c if c.starts_with("flag_") => ColumnKind::Integer,
        _ => ColumnKind::Real,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{path}: {reason}")]
    Csv { path: String, reason: String },
    #[error("{path}: FITS: {reason}")]
    Fits { path: String, reason: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Converts a finished CSV catalog into a FITS binary table `CATALOG` at `out`
/// (gzip-compressed with `gzip`, for `.fits.gz`), atomically. Empty cells
/// become NaN (reals), -1 (integers) or "" (text).
pub fn csv_to_fits(csv_path: &Path, out: &Path, gzip: bool) -> Result<(), CatalogError> {
    if !gzip {
        return write_atomically(out, |tmp| write_fits(csv_path, tmp, out));
    }
    let plain = crate::atomic::temp_path(out).with_extension("fits");
    let result = write_fits(csv_path, &plain, out).and_then(|()| {
        write_atomically(out, |tmp| -> Result<(), CatalogError> {
            let mut input = std::fs::File::open(&plain)?;
            let mut enc = flate2::write::GzEncoder::new(
                std::fs::File::create(tmp)?,
                flate2::Compression::default(),
            );
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?.sync_all()?;
            Ok(())
        })
    });
    let _ = std::fs::remove_file(&plain);
    result
}

/// Writes the FITS table for `csv_path` at `target` (errors name `out`).
fn write_fits(csv_path: &Path, target: &Path, out: &Path) -> Result<(), CatalogError> {
    let csv_err = |reason: String| CatalogError::Csv {
        path: csv_path.display().to_string(),
        reason,
    };
    let mut reader = csv::Reader::from_path(csv_path).map_err(|e| csv_err(e.to_string()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_err(e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut columns: Vec<Vec<String>> = vec![Vec::new(); header.len()];
    for rec in reader.records() {
        let rec = rec.map_err(|e| csv_err(e.to_string()))?;
        for (c, v) in rec.iter().enumerate().take(header.len()) {
            columns[c].push(v.to_string());
        }
    }
    let fits_err = |e: fitsio::errors::Error| CatalogError::Fits {
        path: out.display().to_string(),
        reason: e.to_string(),
    };
    {
        let mut f = fitsio::FitsFile::create(target).open().map_err(fits_err)?;
        let descriptions = header
            .iter()
            .zip(&columns)
            .map(|(name, values)| {
                let t = match kind_of(name) {
                    ColumnKind::Text => {
                        let width = values.iter().map(|v| v.len()).max().unwrap_or(1).max(1);
                        return ColumnDescription::new(name)
                            .with_type(ColumnDataType::String)
                            .that_repeats(width)
                            .create();
                    }
                    ColumnKind::Integer => ColumnDataType::LongLong,
                    ColumnKind::Real => ColumnDataType::Double,
                };
                ColumnDescription::new(name).with_type(t).create()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(fits_err)?;
        let hdu = f.create_table("CATALOG", &descriptions).map_err(fits_err)?;
        for (c, (name, values)) in header.iter().zip(&columns).enumerate() {
            match kind_of(name) {
                ColumnKind::Text => {
                    hdu.write_col(&mut f, name.as_str(), values)
                        .map_err(fits_err)?;
                }
                ColumnKind::Integer => {
                    let v: Vec<i64> = values.iter().map(|s| s.parse().unwrap_or(-1)).collect();
                    hdu.write_col(&mut f, name.as_str(), &v).map_err(fits_err)?;
                }
                ColumnKind::Real => {
                    let v: Vec<f64> = values
                        .iter()
                        .map(|s| s.parse().unwrap_or(f64::NAN))
                        .collect();
                    hdu.write_col(&mut f, name.as_str(), &v).map_err(fits_err)?;
                }
            }
            let unit = unit_of(name);
            if !unit.is_empty() {
                hdu.write_key(&mut f, &format!("TUNIT{}", c + 1), unit)
                    .map_err(fits_err)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_label_names() {
        assert_eq!(unit_of("teff"), "K");
        assert_eq!(unit_of("teff_std"), "K");
        assert_eq!(unit_of("feh_spread"), "dex");
        assert_eq!(unit_of("logg_m03"), "dex");
        assert_eq!(unit_of("age"), "Gyr");
        assert_eq!(unit_of("snrg"), "");
    }
}
