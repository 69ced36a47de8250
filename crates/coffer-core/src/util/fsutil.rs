//! Small filesystem helpers shared by the modules that write backups and restores, and the
//! one way coffer reads its small metadata files: bounded, regular files only, no symlinks.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Mode of every file coffer writes into a backup.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory coffer creates for a backup.
pub const DIR_MODE: u32 = 0o700;

/// Creates a new file with mode 0600, failing if it exists.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Creates one directory with mode 0700 (parents must exist), failing if it exists.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(DIR_MODE).create(path)
}

/// Creates a directory and its missing parents with mode 0700.
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .mode(DIR_MODE)
        .recursive(true)
        .create(path)
}

/// fsyncs a directory so that entries created or renamed in it are durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// The name of the marker file coffer writes into every staging directory it creates, so
/// that prune can tell an abandoned staging directory of coffer's from anything else.
pub const STAGING_MARKER: &str = ".coffer-staging-marker";

/// The content of [`STAGING_MARKER`]: prune deletes a staging directory only when its marker
/// holds exactly this.
pub const STAGING_MARKER_TEXT: &str =
    "coffer staging directory: coffer deletes it when abandoned for a day\n";

/// Creates a staging directory (mode 0700, failing if it exists) and writes coffer's marker
/// into it. The marker is what lets a later prune delete it when it is abandoned.
pub fn create_staging_dir(path: &Path) -> io::Result<()> {
    create_private_dir(path)?;
    mark_staging(path)
}

/// Writes coffer's staging marker into `dir` (which coffer owns: a staging directory it
/// created, or a backup prune is about to delete).
pub fn mark_staging(dir: &Path) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(no_follow_flags())
        .mode(FILE_MODE)
        .open(dir.join(STAGING_MARKER))?;
    f.write_all(STAGING_MARKER_TEXT.as_bytes())
}

/// Whether `dir` holds coffer's staging marker (a regular file with the exact text).
pub fn has_staging_marker(dir: &Path) -> bool {
    read_bounded(&dir.join(STAGING_MARKER), 4096)
        .is_ok_and(|bytes| bytes == STAGING_MARKER_TEXT.as_bytes())
}

fn no_follow_flags() -> i32 {
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC)
        .bits() as i32
}

/// Why a bounded read of a metadata file failed.
#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    /// The file could not be opened or read (missing, permission denied, a symlink: coffer
    /// never follows one in place of a metadata file).
    #[error("{}", describe_open_error(.0))]
    Io(#[source] io::Error),
    /// It is not a regular file (a directory, fifo, socket or device).
    #[error("is not a regular file but {kind}")]
    NotRegular {
        /// What it is, e.g. `a fifo`.
        kind: &'static str,
    },
    /// It is larger than the cap.
    #[error("is larger than {cap} bytes ({size} bytes or more)")]
    TooLarge {
        /// The cap.
        cap: u64,
        /// The size seen (at least).
        size: u64,
    },
}

impl BoundedReadError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, BoundedReadError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

fn describe_open_error(e: &io::Error) -> String {
    // ELOOP from O_NOFOLLOW: the final component is a symbolic link.
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        "is a symbolic link (coffer does not follow links in place of its files)".to_string()
    } else {
        e.to_string()
    }
}

/// What a file type is, in words.
pub fn kind_of(t: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Opens an existing regular file for reading without following a symlink in its place and
/// without blocking on a fifo; anything but a regular file is refused after `fstat`.
pub fn open_regular(path: &Path) -> Result<File, BoundedReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(no_follow_flags())
        .open(path)
        .map_err(BoundedReadError::Io)?;
    let meta = file.metadata().map_err(BoundedReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(BoundedReadError::NotRegular {
            kind: kind_of(meta.file_type()),
        });
    }
    Ok(file)
}

/// Reads a small metadata file (manifest, checksum list, marker) whole: it must be a
/// regular file (no symlink followed, a fifo does not block) of at most `cap` bytes. At
/// most `cap + 1` bytes are ever read, so a file that grows while being read is refused
/// too, and memory stays bounded whatever sits at `path`.
pub fn read_bounded(path: &Path, cap: u64) -> Result<Vec<u8>, BoundedReadError> {
    let file = open_regular(path)?;
    let size = file.metadata().map_err(BoundedReadError::Io)?.len();
    if size > cap {
        return Err(BoundedReadError::TooLarge { cap, size });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(BoundedReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(BoundedReadError::TooLarge {
            cap,
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Reads at most the last `window` bytes of a regular file (for logs that may legitimately
/// grow). Returns the bytes and whether the file was longer than `window`; when it was, the
/// first (partial) line of the window is dropped so only whole lines are returned.
pub fn read_tail(path: &Path, window: u64) -> Result<(Vec<u8>, bool), BoundedReadError> {
    let mut file = open_regular(path)?;
    let size = file.metadata().map_err(BoundedReadError::Io)?.len();
    let cut = size > window;
    if cut {
        file.seek(SeekFrom::Start(size - window))
            .map_err(BoundedReadError::Io)?;
    }
    let mut bytes = Vec::with_capacity(size.min(window) as usize);
    file.take(window)
        .read_to_end(&mut bytes)
        .map_err(BoundedReadError::Io)?;
    if cut {
        let first_line_end = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        bytes.drain(..first_line_end);
    }
    Ok((bytes, cut))
}

/// Publishes a finished staging directory as `target`: removes coffer's marker (a backup
/// holds only its own files), then renames.
pub fn publish_staging(staging: &Path, target: &Path) -> io::Result<()> {
    match fs::remove_file(staging.join(STAGING_MARKER)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::rename(staging, target)
}

/// Why a directory owned by `uid` with `mode` is unsafe to create or rename entries in, for a
/// process running as `euid`: someone else could plant a directory or symlink where coffer is
/// about to put one. `root_may_own`: a directory owned by root is safe too. Pure.
pub fn unsafe_dir_reason(uid: u32, mode: u32, euid: u32, root_may_own: bool) -> Option<String> {
    if uid != euid && !(root_may_own && uid == 0) {
        Some(if root_may_own {
            format!("is owned by uid {uid}, neither root nor the user running coffer (uid {euid})")
        } else {
            format!("is owned by uid {uid}, not by the user running coffer (uid {euid})")
        })
    } else if mode & 0o022 != 0 {
        Some(format!(
            "is writable by {} (mode {:o})",
            match mode & 0o022 {
                0o020 => "its group",
                0o002 => "all users",
                _ => "its group and all users",
            },
            mode & 0o7777
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::time::{Duration, Instant};

    fn fifo(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    #[test]
    fn bounded_reads_refuse_what_is_not_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_bounded(&p, 10).unwrap(), b"0123456789");
        let e = read_bounded(&p, 9).unwrap_err();
        assert!(
            matches!(e, BoundedReadError::TooLarge { cap: 9, .. }),
            "{e}"
        );
        let link = dir.path().join("link");
        symlink(&p, &link).unwrap();
        assert!(
            read_bounded(&link, 100)
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
        let zero = dir.path().join("zero");
        symlink("/dev/zero", &zero).unwrap();
        assert!(read_bounded(&zero, 100).is_err());
        let f = dir.path().join("fifo");
        fifo(&f);
        let started = Instant::now();
        let e = read_bounded(&f, 100).unwrap_err().to_string();
        assert!(e.contains("a fifo"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            read_bounded(dir.path(), 100)
                .unwrap_err()
                .to_string()
                .contains("a directory")
        );
        assert!(
            read_bounded(&dir.path().join("none"), 1)
                .unwrap_err()
                .is_not_found()
        );
        assert!(read_tail(&f, 100).is_err());
    }

    #[test]
    fn tail_reads_whole_lines_of_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        fs::write(&p, b"first line\nsecond\nthird\n").unwrap();
        assert_eq!(
            read_tail(&p, 100).unwrap(),
            (b"first line\nsecond\nthird\n".to_vec(), false)
        );
        assert_eq!(read_tail(&p, 10).unwrap(), (b"third\n".to_vec(), true));
        assert_eq!(read_tail(&p, 3).unwrap(), (Vec::new(), true));
    }

    #[test]
    fn staging_marker_round_trip_and_publish_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join(".coffer-staging-auto-20261202T080000Z");
        create_staging_dir(&staging).unwrap();
        assert!(has_staging_marker(&staging));
        fs::write(staging.join(STAGING_MARKER), "forged").unwrap();
        assert!(!has_staging_marker(&staging));
        fs::remove_file(staging.join(STAGING_MARKER)).unwrap();
        symlink("/dev/zero", staging.join(STAGING_MARKER)).unwrap();
        assert!(!has_staging_marker(&staging));
        fs::remove_file(staging.join(STAGING_MARKER)).unwrap();
        mark_staging(&staging).unwrap();
        let target = dir.path().join("auto-20261202T080000Z");
        publish_staging(&staging, &target).unwrap();
        assert!(!target.join(STAGING_MARKER).exists() && !staging.exists());
    }
}
