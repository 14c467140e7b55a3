//! The one rule for every CSV spectrain reads (label catalogs, feature tables,
//! shard catalogs) and how it writes numbers into CSV.
//!
//! Reading:
//! - lines starting with `#` are comments; fields are trimmed;
//! - header names match case-insensitively, ignoring surrounding spaces and a
//!   UTF-8 byte-order mark;
//! - rows are read as bytes, so a byte that is not UTF-8 (a Latin-1 `é`, say)
//!   matters only in a cell that is used, where it makes the cell unreadable;
//! - a cell is **missing** when it is empty or reads `nan`, `na`, `n/a`,
//!   `null`, `none` or `-` (any case);
//! - any other cell must be a number that is finite in 32-bit floating point
//!   (|x| <= 3.4028235e38), otherwise it is **bad** (`not-a-number`).
//!
//! Writing: [`fmt_float`] gives the shortest text that reads back to the same
//! value, with an exponent outside 1e-5..1e16 so every CSV reader parses it
//! as a number.

use std::fs::File;
use std::path::Path;

/// One cell read as a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    Value(f64),
    Missing,
    /// Text that is not a number finite in f32.
    Bad,
}

/// Tokens that mean "no value".
pub const MISSING_TOKENS: [&str; 7] = ["", "nan", "na", "n/a", "null", "none", "-"];

/// Reads a cell by the rule above.
pub fn parse_cell(bytes: &[u8]) -> Cell {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Cell::Bad;
    };
    let t = text.trim();
    if MISSING_TOKENS.iter().any(|m| t.eq_ignore_ascii_case(m)) {
        return Cell::Missing;
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v.abs() <= f32::MAX as f64 => Cell::Value(v),
        _ => Cell::Bad,
    }
}

/// A cell's text for messages and ids (invalid UTF-8 shown as U+FFFD).
pub fn cell_text(record: &csv::ByteRecord, idx: usize) -> String {
    String::from_utf8_lossy(record.get(idx).unwrap_or(b""))
        .trim()
        .to_string()
}

/// A CSV reader with the rule above.
pub fn reader(path: &Path) -> Result<csv::Reader<File>, csv::Error> {
    csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_path(path)
}

/// Column names of a CSV header, matched by the rule above.
#[derive(Debug, Clone)]
pub struct Header {
    names: Vec<String>,
}

impl Header {
    pub fn read(reader: &mut csv::Reader<File>) -> Result<Self, csv::Error> {
        let names = reader
            .byte_headers()?
            .iter()
            .map(|h| {
                String::from_utf8_lossy(h)
                    .trim_start_matches('\u{feff}')
                    .trim()
                    .to_string()
            })
            .collect();
        Ok(Self { names })
    }

    /// Index of column `name` (case-insensitive).
    pub fn find(&self, name: &str) -> Option<usize> {
        let name = name.trim();
        self.names.iter().position(|h| h.eq_ignore_ascii_case(name))
    }

    /// The column names, comma-separated, for messages.
    pub fn list(&self) -> String {
        self.names.join(",")
    }
}

/// The shortest text that parses back to `v`, with an exponent for very
/// large or small magnitudes (`-5.5e29`, not thirty digits); empty for NaN.
pub fn fmt_float(v: f64) -> String {
    if v.is_nan() {
        return String::new();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = v.abs();
    if a == 0.0 || (1e-5..1e16).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cell_rule() {
        for m in ["", "NaN", "NA", "n/a", "NULL", "None", "-", "  na "] {
            assert_eq!(parse_cell(m.as_bytes()), Cell::Missing, "{m:?}");
        }
        assert_eq!(parse_cell(b"3.5"), Cell::Value(3.5));
        assert_eq!(parse_cell(b"-1e30"), Cell::Value(-1e30));
        assert_eq!(parse_cell(b"3.4e38"), Cell::Value(3.4e38));
        for bad in [
            "abc", "inf", "-inf", "1e39", "1e300", "-1e300", "--", "n/a/",
        ] {
            assert_eq!(parse_cell(bad.as_bytes()), Cell::Bad, "{bad:?}");
        }
        assert_eq!(parse_cell(b"caf\xe9"), Cell::Bad);
    }

    #[test]
    fn floats_round_trip_and_use_exponents_when_long() {
        for v in [
            -5.5e29,
            1e300,
            1.5e-7,
            6589.17138534717,
            0.0,
            -0.25,
            1e16,
            123456789.0,
        ] {
            let s = fmt_float(v);
            assert_eq!(s.parse::<f64>().unwrap(), v, "{s}");
            assert!(s.len() < 24, "{s}");
        }
        assert_eq!(fmt_float(-5.5e29), "-5.5e29");
        assert_eq!(fmt_float(4500.25), "4500.25");
        assert_eq!(fmt_float(f64::NAN), "");
    }
}
