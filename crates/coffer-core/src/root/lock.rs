//! The backup root's lock: one backup, prune, sync or restore at a time.
//!
//! An advisory `flock` on `<root>/.coffer.lock`. The kernel drops it when the holder dies, so
//! a lock left by a killed process never blocks the next run; the file's text (pid, start
//! time, operation) only names the holder in the error message.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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
    /// The backup root does not let this user create or write the lock file (read-only
    /// filesystem, permissions): nothing to do with another run.
    #[error(
        "the backup root {root} is not writable ({source}): make it writable for the user running coffer, or set backup_dir to a writable directory"
    )]
    NotWritable {
        /// The backup root.
        root: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Something other than coffer's plain lock file is in its place (a symlink, fifo,
    /// directory, device, or a file with other hard links): coffer neither follows nor
    /// truncates it.
    #[error(
        "{path} is {what}, not coffer's lock file: coffer never follows or truncates it; remove it (coffer creates a plain file)"
    )]
    NotAFile {
        /// The lock file's path.
        path: PathBuf,
        /// What is there.
        what: &'static str,
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
        let not_a_file = |what| LockError::NotAFile {
            path: path.clone(),
            what,
        };
        // O_NOFOLLOW: a symlink in its place is refused, never followed; O_NONBLOCK: a fifo
        // cannot block the open (it is refused below).
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(crate::util::fsutil::FILE_MODE)
            .custom_flags(flags.bits() as i32)
            .open(&path);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) => {
                return Err(match std::fs::symlink_metadata(&path) {
                    Ok(m) if !m.file_type().is_file() => not_a_file(describe(&m)),
                    _ if is_not_writable(&e) => LockError::NotWritable {
                        root: root.to_path_buf(),
                        source: e,
                    },
                    _ => io(e),
                });
            }
        };
        let meta = file.metadata().map_err(io)?;
        if !meta.file_type().is_file() {
            return Err(not_a_file(describe(&meta)));
        }
        if meta.nlink() > 1 {
            // A hard link to some other file: truncating it would destroy that file.
            return Err(not_a_file("a file with other hard links"));
        }
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
        Ok(RootLock { file })
    }
}

/// Who holds the lock on `root` right now: `Some(holder)` (the lock file's text) while
/// another run holds it. Probes with a shared lock on a read-only descriptor, released at
/// once; nothing is created or written. A run that tries to take the lock in that very
/// instant finds it held, as it would with any other run.
pub fn holder(root: &Path) -> Option<String> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(root.join(LOCK_FILE))
        .ok()?;
    if !file.metadata().ok()?.file_type().is_file() {
        return None;
    }
    match file.try_lock_shared() {
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let text = text.trim();
            Some(if text.is_empty() {
                "holder unknown".into()
            } else {
                text.to_string()
            })
        }
        Ok(()) | Err(std::fs::TryLockError::Error(_)) => None,
    }
}

impl LockError {
    /// Whether another coffer run holds the lock (as opposed to the lock being unusable).
    pub fn is_held(&self) -> bool {
        matches!(self, LockError::Held { .. })
    }
}

/// Read-only filesystem or no permission: the root itself is the problem.
fn is_not_writable(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied
        || e.kind() == std::io::ErrorKind::ReadOnlyFilesystem
        || e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error())
}

fn describe(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
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
    fn special_files_in_place_of_the_lock_are_refused_and_never_followed() {
        let outer = tempfile::tempdir().unwrap();
        let victim = outer.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        type Make = fn(&Path, &Path);
        let cases: &[(&str, Make, &str)] = &[
            (
                "symlink",
                |l, v| std::os::unix::fs::symlink(v, l).unwrap(),
                "a symbolic link",
            ),
            (
                "dangling",
                |l, _| std::os::unix::fs::symlink("/nonexistent/x", l).unwrap(),
                "a symbolic link",
            ),
            (
                "devzero",
                |l, _| std::os::unix::fs::symlink("/dev/zero", l).unwrap(),
                "a symbolic link",
            ),
            (
                "hardlink",
                |l, v| std::fs::hard_link(v, l).unwrap(),
                "other hard links",
            ),
            ("dir", |l, _| std::fs::create_dir(l).unwrap(), "a directory"),
            (
                "fifo",
                |l, _| {
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        l,
                        rustix::fs::FileType::Fifo,
                        rustix::fs::Mode::from(0o600),
                        0,
                    )
                    .unwrap()
                },
                "a fifo",
            ),
        ];
        for (name, make, what) in cases {
            let root = outer.path().join(name);
            std::fs::create_dir(&root).unwrap();
            make(&root.join(LOCK_FILE), &victim);
            let e = RootLock::acquire(&root, "backup").unwrap_err();
            assert!(!e.is_held(), "{name}: {e}");
            let text = e.to_string();
            assert!(
                text.contains(what) && text.contains("remove it"),
                "{name}: {text}"
            );
            assert_eq!(
                std::fs::read_to_string(&victim).unwrap(),
                "precious",
                "{name}"
            );
            assert!(!Path::new("/nonexistent/x").exists());
        }
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
