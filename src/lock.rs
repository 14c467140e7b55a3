//! Advisory locks that keep two runs from writing the same output at once.
//!
//! A lock is an `flock(2)` on a small sidecar file that also names its holder
//! (process id, host, command line, start time), so a refused run can say who
//! holds it. The kernel releases the lock when the holder exits, however it
//! exits (`kill -9` included), so a stale lock file never blocks a rerun.
//!
//! Shared locks let cooperating runs overlap (for example the member tasks of
//! one ensemble, each of which also takes an exclusive lock on its own
//! member), while an exclusive lock on the same file keeps every other run out.
//! On network file systems `flock` works where the file system supports it
//! (NFSv4, Lustre mounted with `-o flock`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Whether other holders may share the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// No other holder at all.
    Exclusive,
    /// Other shared holders allowed; no exclusive one.
    Shared,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path} is in use by another run ({holder}); wait for it to finish or stop it first")]
    Held { path: PathBuf, holder: String },
    #[error("{path}: cannot lock: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    file: File,
    mode: LockMode,
}

/// Who this process is, for the lock file.
fn holder_description() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".into());
    let args: Vec<String> = std::env::args().collect();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "pid {} on {host}, started at unix time {started}: {}",
        std::process::id(),
        args.join(" ")
    )
}

impl FileLock {
    /// Takes the lock on `path` (created if absent) without waiting; fails with
    /// [`LockError::Held`], naming the holder, when another run has it.
    pub fn acquire(path: &Path, mode: LockMode) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let op = match mode {
            LockMode::Exclusive => libc::LOCK_EX,
            LockMode::Shared => libc::LOCK_SH,
        } | libc::LOCK_NB;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        if unsafe { libc::flock(file.as_raw_fd(), op) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    holder: if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder.lines().collect::<Vec<_>>().join("; ")
                    },
                });
            }
            return Err(io(err));
        }
        // Record ourselves. Shared holders append a line each; an exclusive
        // holder replaces whatever a finished run left behind.
        let me = holder_description();
        match mode {
            LockMode::Exclusive => {
                file.set_len(0).map_err(io)?;
                file.seek(SeekFrom::Start(0)).map_err(io)?;
            }
            LockMode::Shared => {
                file.seek(SeekFrom::End(0)).map_err(io)?;
            }
        }
        writeln!(file, "{me}").map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            mode,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Releases an exclusive lock and removes its file (the output it guarded
    /// is complete). Shared locks just release: other holders may remain.
    pub fn release_and_remove(self) {
        if self.mode == LockMode::Exclusive {
            let _ = std::fs::remove_file(&self.path);
        }
        drop(self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let a = FileLock::acquire(&p, LockMode::Exclusive).unwrap();
        // flock is per open file description: a second open in the same process conflicts too.
        let err = FileLock::acquire(&p, LockMode::Exclusive).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(FileLock::acquire(&p, LockMode::Shared).is_err());
        a.release_and_remove();
        assert!(!p.exists());
        FileLock::acquire(&p, LockMode::Exclusive).unwrap();
    }

    #[test]
    fn shared_holders_coexist_but_keep_exclusive_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.lock");
        let a = FileLock::acquire(&p, LockMode::Shared).unwrap();
        let b = FileLock::acquire(&p, LockMode::Shared).unwrap();
        assert!(FileLock::acquire(&p, LockMode::Exclusive).is_err());
        drop(a);
        assert!(FileLock::acquire(&p, LockMode::Exclusive).is_err());
        drop(b);
        FileLock::acquire(&p, LockMode::Exclusive).unwrap();
    }
}
