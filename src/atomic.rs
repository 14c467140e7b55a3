//! Writing outputs atomically: into a temporary file beside the target, renamed
//! over it only once complete, so a killed run never leaves a half-written file.

use std::path::{Path, PathBuf};

/// The temporary path used while `target` is being written.
pub fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Runs `write` on a temporary path, then renames it to `target`. On error the
/// temporary file is removed and `target` is left as it was.
pub fn write_atomically<E>(
    target: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<std::io::Error>,
{
    let tmp = temp_path(target);
    match write(&tmp) {
        Ok(()) => {
            std::fs::rename(&tmp, target).inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })?;
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.csv");
        std::fs::write(&target, "old").unwrap();
        let r: Result<(), std::io::Error> = write_atomically(&target, |tmp| {
            std::fs::write(tmp, "half")?;
            Err(std::io::Error::other("killed"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
