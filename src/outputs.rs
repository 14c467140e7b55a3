//! Checks on where a command writes, made before it does any work: a run that
//! would fail at the end, overwrite something without being asked, or destroy
//! its own input is refused at the start, with nothing touched.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{0} is a directory; give a file name (for example {0}/catalog.csv)")]
    IsDirectory(PathBuf),
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0} exists: pass --force to replace it")]
    Exists(PathBuf),
    #[error("{path}: cannot tell the output format from the name; {expected}")]
    Format { path: PathBuf, expected: String },
    #[error("--out {out} {relation} the {role} {input}: choose another output")]
    Overlaps {
        out: PathBuf,
        relation: &'static str,
        role: String,
        input: PathBuf,
    },
    #[error("{0} exists and is not a spectrain model directory (it has no valid spec.json); --force replaces only model directories: choose another --out or remove it yourself")]
    NotModelDir(PathBuf),
    #[error("{path}: cannot create the output's directory: {reason}")]
    Parent { path: PathBuf, reason: String },
}

/// A catalog's format, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFormat {
    Csv,
    /// A FITS binary table; `gzip` for `.fits.gz`.
    Fits {
        gzip: bool,
    },
}

/// The catalog format a name asks for: `.csv`, `.fits`/`.fit`, or
/// `.fits.gz`/`.fit.gz`; anything else is refused.
pub fn catalog_format(path: &Path) -> Result<CatalogFormat, OutputError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".csv") {
        Ok(CatalogFormat::Csv)
    } else if name.ends_with(".fits") || name.ends_with(".fit") {
        Ok(CatalogFormat::Fits { gzip: false })
    } else if name.ends_with(".fits.gz") || name.ends_with(".fit.gz") {
        Ok(CatalogFormat::Fits { gzip: true })
    } else {
        Err(OutputError::Format {
            path: path.to_path_buf(),
            expected: "use .csv, .fits or .fits.gz".into(),
        })
    }
}

/// Only `.csv` (outputs that are CSV alone).
pub fn require_csv(path: &Path) -> Result<(), OutputError> {
    match catalog_format(path) {
        Ok(CatalogFormat::Csv) => Ok(()),
        _ => Err(OutputError::Format {
            path: path.to_path_buf(),
            expected: "this command writes CSV: use a .csv name".into(),
        }),
    }
}

/// Only `.h5`/`.hdf5`/`.hdf` (datasets).
pub fn require_hdf5(path: &Path) -> Result<(), OutputError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if [".h5", ".hdf5", ".hdf"].iter().any(|s| name.ends_with(s)) {
        Ok(())
    } else {
        Err(OutputError::Format {
            path: path.to_path_buf(),
            expected: "datasets are HDF5: use a .h5 name".into(),
        })
    }
}

/// A file output: not a directory, refused when it exists unless `force`,
/// and its directory created.
pub fn check_file(path: &Path, force: bool) -> Result<(), OutputError> {
    if path.is_dir() {
        return Err(OutputError::IsDirectory(path.to_path_buf()));
    }
    if path.exists() && !force {
        return Err(OutputError::Exists(path.to_path_buf()));
    }
    create_parent(path)
}

/// Creates the directory that will hold `path`.
pub fn create_parent(path: &Path) -> Result<(), OutputError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| OutputError::Parent {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// A directory output (reports): refused when it is an existing file.
pub fn check_dir(path: &Path) -> Result<(), OutputError> {
    if path.exists() && !path.is_dir() {
        return Err(OutputError::NotADirectory(path.to_path_buf()));
    }
    Ok(())
}

/// `path` made absolute and free of `.`/`..` and symbolic links as far as it
/// exists, so two spellings of one place compare equal.
pub fn resolve(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    // Canonicalise the longest existing prefix, then append the rest.
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return normalise(&out);
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return normalise(&abs),
        }
    }
}

fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Refuses an output that is, or (as a directory) contains, one of `inputs`
/// (`(role, path)`): writing it would destroy what the command reads.
pub fn check_not_over_inputs(out: &Path, inputs: &[(&str, &Path)]) -> Result<(), OutputError> {
    let o = resolve(out);
    for (role, input) in inputs {
        let i = resolve(input);
        let relation = if i == o {
            "is"
        } else if i.starts_with(&o) {
            "contains"
        } else {
            continue;
        };
        return Err(OutputError::Overlaps {
            out: out.to_path_buf(),
            relation,
            role: role.to_string(),
            input: input.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_extension() {
        assert_eq!(
            catalog_format(Path::new("a/b.CSV")).unwrap(),
            CatalogFormat::Csv
        );
        assert_eq!(
            catalog_format(Path::new("b.fits")).unwrap(),
            CatalogFormat::Fits { gzip: false }
        );
        assert_eq!(
            catalog_format(Path::new("b.fits.gz")).unwrap(),
            CatalogFormat::Fits { gzip: true }
        );
        assert!(catalog_format(Path::new("b.txt")).is_err());
        assert!(catalog_format(Path::new("b.csv.gz")).is_err());
        assert!(require_hdf5(Path::new("x.h5")).is_ok());
        assert!(require_hdf5(Path::new("x.csv")).is_err());
    }

    #[test]
    fn outputs_over_inputs_are_refused_however_spelt() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("X").join("my.h5");
        std::fs::create_dir_all(data.parent().unwrap()).unwrap();
        std::fs::write(&data, "x").unwrap();
        let out = dir.path().join("X");
        let e = check_not_over_inputs(&out, &[("dataset", &data)]).unwrap_err();
        assert!(e.to_string().contains("contains the dataset"), "{e}");
        let same = dir.path().join("X/./../X/my.h5");
        assert!(check_not_over_inputs(&same, &[("dataset", &data)]).is_err());
        let other = dir.path().join("Y");
        assert!(check_not_over_inputs(&other, &[("dataset", &data)]).is_ok());
        // A sibling whose name starts the same is not inside.
        let sibling = dir.path().join("X2");
        assert!(check_not_over_inputs(&sibling, &[("dataset", &data)]).is_ok());
    }
}
