//! The backup root's lock: one backup, prune, sync or restore at a time.
//!
//! An advisory `flock` on `<root>/.coffer.lock`. The kernel drops it when the holder dies, so
//! a lock left by a killed process never blocks the next run; the file's text (pid, start
//! time, operation) only names the holder in the error message.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// File name of the lock inside the backup root.
pub const LOCK_FILE: &str = ".coffer.lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another coffer process holds it.
    #[error(
        "another coffer run holds the lock on {root} ({holder}): wait for it to finish, or stop that process"
    )]
    Held {
        /// The backup root.
        root: PathBuf,
        /// Who holds it, as written in the lock file.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A held lock; dropped, it is released.
#[derive(Debug)]
pub struct RootLock {
    file: File,
    path: PathBuf,
}

impl RootLock {
    /// Takes the lock on `root` for `operation` (e.g. `backup`), failing at once when held.
    /// `root` must exist.
    pub fn acquire(root: &Path, operation: &str) -> Result<RootLock, LockError> {
        let path = root.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(crate::fsutil::FILE_MODE)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    root: root.to_path_buf(),
                    holder: if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let info = format!(
            "pid {}, {operation} started {}",
            std::process::id(),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(info.as_bytes()).map_err(io)?;
        Ok(RootLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RootLock {
    fn drop(&mut self) {
        // Leave the file: removing it would race with a process that just opened it.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_named_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = RootLock::acquire(dir.path(), "backup").unwrap();
        let e = RootLock::acquire(dir.path(), "prune")
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains("backup started"), "{e}");
        drop(first);
        RootLock::acquire(dir.path(), "prune").unwrap();
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(LOCK_FILE),
            "pid 999999, backup started 2020-01-01T00:00:00Z",
        )
        .unwrap();
        RootLock::acquire(dir.path(), "backup").unwrap();
    }
}
