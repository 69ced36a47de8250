//! The one way a restore keeps a journal in the backup root: a JSON file (0600, fsynced)
//! held under an exclusive lock while the run that wrote it is alive, and read back by the
//! next run only when nobody holds it, only as a regular file of the current user, mode
//! 0600, bounded. [`super::leftovers`] (what a bare-host restore creates) and
//! [`super::db_swap`] (a database restored beside the target and swapped in) each keep one.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::util::fsutil;

use super::RestoreError;

/// Largest journal read: a few names and identities take a few KiB.
const JOURNAL_CAP: u64 = 1 << 20;

/// A live run's journal: locked while it lives; removed by [`JournalFile::close`]; left in
/// place when the process dies.
#[derive(Debug)]
pub(super) struct JournalFile {
    file: File,
    path: PathBuf,
}

impl JournalFile {
    /// Creates the journal `path` (its directory created 0700 if missing), locks it and
    /// writes `entries`. Fails when the file exists: an earlier run's journal is settled
    /// first.
    pub(super) fn create(path: &Path, entries: &impl Serialize) -> io::Result<JournalFile> {
        if let Some(dir) = path.parent() {
            fsutil::create_private_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(fsutil::FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let mut journal = JournalFile {
            file,
            path: path.to_path_buf(),
        };
        let written = journal
            .file
            .lock()
            .and_then(|()| journal.write(entries))
            .and_then(|()| journal.path.parent().map_or(Ok(()), fsutil::sync_dir));
        match written {
            Ok(()) => Ok(journal),
            Err(e) => {
                journal.close();
                Err(e)
            }
        }
    }

    /// Replaces the journal's content with `entries`, durably.
    pub(super) fn write(&mut self, entries: &impl Serialize) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(entries).map_err(io::Error::other)?;
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(&text)?;
        self.file.sync_all()
    }

    /// The journal's path, for messages.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The run finished (or undid what it did): the journal goes.
    pub(super) fn close(self) {
        remove(&self.path);
    }
}

/// Removes the journal `path` durably (best effort: a journal left behind is settled again).
pub(super) fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let _ = fsutil::sync_dir(dir);
    }
}

/// Why a journal left by an earlier run cannot be acted on.
#[derive(Debug)]
pub(super) enum Unusable {
    /// A running process holds it.
    Locked,
    /// It cannot be opened or locked.
    Io(io::Error),
    /// It is not a journal coffer wrote (type, owner, mode, size or content).
    Untrusted(String),
}

impl Unusable {
    /// The refusal of a restore that found the journal `path` unusable: `doing` is what
    /// the run that wrote it was doing ("swapping a database in"), `check` what the
    /// operator should look at before removing a journal coffer cannot read.
    pub(super) fn refusal(self, path: &Path, doing: &str, check: &str) -> RestoreError {
        let shown = path.display();
        let problem = match self {
            Unusable::Locked => {
                format!("another restore is {doing} now ({shown} is locked): wait for it to finish")
            }
            Unusable::Io(e) => format!(
                "cannot read {shown} (the journal of an earlier restore that was {doing}): {e}; check it and remove it"
            ),
            Unusable::Untrusted(e) => format!(
                "{shown} is not a journal coffer can read ({e}): an earlier restore was killed while it was {doing}; {check}, then remove the file"
            ),
        };
        RestoreError::Refused {
            problems: vec![problem],
            hints: Vec::new(),
        }
    }
}

/// An earlier run's journal at `path`, locked by this process until the returned file is
/// dropped: `Ok(None)` when there is none.
pub(super) fn open_left<T: DeserializeOwned>(path: &Path) -> Result<Option<(File, T)>, Unusable> {
    let mut file = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Unusable::Io(e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(Unusable::Locked),
        Err(std::fs::TryLockError::Error(e)) => return Err(Unusable::Io(e)),
    }
    let entries = read_entries(&mut file).map_err(Unusable::Untrusted)?;
    Ok(Some((file, entries)))
}

fn read_entries<T: DeserializeOwned>(file: &mut File) -> Result<T, String> {
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err("owned by another user".into());
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "mode {:o}: coffer writes it 0600, so it was not written by coffer alone",
            meta.mode() & 0o7777
        ));
    }
    let mut text = Vec::new();
    file.take(JOURNAL_CAP + 1)
        .read_to_end(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > JOURNAL_CAP {
        return Err(format!("larger than {JOURNAL_CAP} bytes"));
    }
    serde_json::from_slice(&text).map_err(|e| e.to_string())
}
