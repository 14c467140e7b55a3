//! Finding spectrum files under a directory.

use std::path::{Path, PathBuf};

/// File name endings recognised as FITS spectra.
pub const FITS_SUFFIXES: [&str; 4] = [".fits", ".fit", ".fits.gz", ".fit.gz"];

pub fn is_fits_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    FITS_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// All FITS files under `dir`, recursively, following symbolic links, sorted by
/// path so that every run sees the same order. Unreadable directories are an error.
pub fn find_spectra(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen_dirs = std::collections::HashSet::new();
    while let Some(d) = stack.pop() {
        // Guard against symlink loops.
        if let Ok(canonical) = d.canonicalize() {
            if !seen_dirs.insert(canonical) {
                continue;
            }
        }
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                // A dangling symlink is still an input the user gave us: keep it so it is reported.
                Err(_) => {
                    if is_fits_name(&entry.file_name().to_string_lossy()) {
                        found.push(path);
                    }
                    continue;
                }
            };
            if meta.is_dir() {
                stack.push(path);
            } else if is_fits_name(&entry.file_name().to_string_lossy()) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}
