//! File paths as text, faithfully: catalogs, reject lists and datasets name
//! every input file, and Unix file names are bytes that need not be UTF-8.
//!
//! The text form is the path's UTF-8 with every byte that is not part of valid
//! UTF-8 written as `%XX` (two upper-case hex digits), and `%` itself as `%25`,
//! so the form is unique and reversible ([`path_from_text`]). Ordinary names
//! (every LAMOST file name) read exactly as they are.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The reversible text form of a path.
pub fn path_text(path: &Path) -> String {
    let mut out = String::new();
    let mut rest = path.as_os_str().as_bytes();
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_escaped(&mut out, s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                push_escaped(&mut out, std::str::from_utf8(good).expect("valid prefix"));
                let n = e.error_len().unwrap_or(bad.len());
                for b in &bad[..n] {
                    out.push_str(&format!("%{b:02X}"));
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if c == '%' {
            out.push_str("%25");
        } else {
            out.push(c);
        }
    }
}

/// The path a [`path_text`] string stands for.
pub fn path_from_text(text: &str) -> PathBuf {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = &b[i + 1..i + 3];
            if hex.iter().all(u8::is_ascii_hexdigit) {
                let v = u8::from_str_radix(std::str::from_utf8(hex).expect("ascii"), 16)
                    .expect("hex digits");
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_utf8_stay_distinct_and_reversible() {
        let names: Vec<PathBuf> = [
            &b"spec-\xff.fits"[..],
            b"spec-\xfe.fits",
            b"spec-\xc3.fits",
            b"spec-%FF.fits",
            b"d\xe9j\xe0/spec-1.fits.gz",
            "spec-59522-GACII052N48B2_sp01-129.fits.gz".as_bytes(),
            "étoile.fits".as_bytes(),
        ]
        .iter()
        .map(|b| PathBuf::from(OsString::from_vec(b.to_vec())))
        .collect();
        let texts: Vec<String> = names.iter().map(|p| path_text(p)).collect();
        let mut unique = texts.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), texts.len(), "{texts:?}");
        for (p, t) in names.iter().zip(&texts) {
            assert_eq!(&path_from_text(t), p, "{t}");
        }
        assert_eq!(texts[0], "spec-%FF.fits");
        assert_eq!(texts[3], "spec-%25FF.fits");
        assert_eq!(texts[5], "spec-59522-GACII052N48B2_sp01-129.fits.gz");
        assert_eq!(texts[6], "étoile.fits");
    }
}
