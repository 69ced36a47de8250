//! Streaming restore, remote side: a remote backup's small files (manifest, `SHA256SUMS`,
//! signatures) fetched into a private temporary directory outside the backup root and checked
//! as a pull checks them, and each artifact read as a blocking [`Read`] fed by ranged `GET`s
//! through a channel bounded in bytes (so the restore threads never wait on the executor and
//! at most [`STREAM_WINDOW`] bytes are held in memory per artifact).
//!
//! Nothing is written to the backup root. A failed transfer (after `object_store`'s own
//! retries of each ranged request, bounded by `remote.timeout` and `remote.retry_timeout`)
//! is recorded in a [`TransferFailure`], so the restore reports it as the remote's failure
//! (rolled back), not as a damaged backup.

use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::error::check_cancel;
use super::pull::{Which, choose};
use super::{Remote, RemoteError};
use crate::context::RunContext;
use crate::format::manifest::{self, AnyManifest};
use crate::format::signing;
use crate::root::catalog::{BackupEntry, EntryStatus};
use crate::util::fsutil;

/// Bytes asked for by one ranged `GET` while streaming (its body is passed on as it arrives,
/// not held whole): large enough to keep requests few.
pub const STREAM_CHUNK: u64 = 8 << 20;
/// Bytes of one artifact held in memory ahead of the reader: the download overlaps the apply
/// by this much, and it bounds what a stream holds (two artifacts are streamed at once, so
/// twice this stays well inside the memory bound).
pub const STREAM_WINDOW: usize = 4 << 20;
/// Bytes read to check that the identity opens an encrypted artifact (its age header).
pub const HEADER_PROBE: u64 = 64 << 10;

/// Why a transfer stopped, shared between an [`ObjectReader`] and whoever decodes it.
pub type TransferFailure = Arc<Mutex<Option<String>>>;

/// A remote backup ready to be streamed: its small files in `dir`, checked.
pub struct Streamable {
    /// The private directory holding `NAME/manifest.json`, `SHA256SUMS` and signatures;
    /// removed when dropped.
    pub dir: tempfile::TempDir,
    /// The backup, read from `dir` with the remote's status.
    pub entry: BackupEntry,
}

/// What [`fetch_metadata`] found.
pub enum Fetched {
    /// A complete copy of this backup is in the root already: restore that one.
    InRoot(String),
    /// A legacy (shell-script) backup has no hashes to hold a stream to: pull it instead.
    Legacy(String),
    /// Stream it.
    Stream(Box<Streamable>),
}

/// Finds the backup on the remote and fetches its manifest, `SHA256SUMS` and signatures
/// into a fresh private temporary directory (never into `root`), checking their sizes and
/// that `SHA256SUMS` agrees with the manifest. The signature policy is applied by the
/// restore's pre-flight to that directory, as for a local backup.
pub async fn fetch_metadata(
    remote: &Remote,
    root: &Path,
    which: &Which,
    ctx: &RunContext<'_>,
) -> Result<Fetched, RemoteError> {
    let listing = remote.list().await?;
    let backup = choose(remote, &listing, which)?;
    let local = root.join(&backup.name);
    if local.is_dir() && BackupEntry::read(&local).status.is_usable() {
        return Ok(Fetched::InRoot(backup.name.clone()));
    }
    let Some(AnyManifest::Coffer(m)) = &backup.manifest else {
        return Ok(Fetched::Legacy(backup.name.clone()));
    };
    let damaged = |detail: String| RemoteError::Damaged {
        name: backup.name.clone(),
        remote: remote.display.clone(),
        detail,
    };
    let mut small = vec![(manifest::MANIFEST_FILE, manifest::MANIFEST_CAP)];
    if backup.objects.contains_key(manifest::SUMS_FILE) {
        small.push((manifest::SUMS_FILE, crate::format::sums::SUMS_CAP));
    }
    for (_, sig) in signing::SIGNED_FILES {
        if backup.objects.contains_key(sig) {
            small.push((sig, signing::MAX_SIGNATURE_BYTES));
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("coffer-stream-")
        .tempdir()
        .map_err(|source| RemoteError::Local {
            operation: "create a temporary directory in",
            path: std::env::temp_dir(),
            source,
        })?;
    let meta = dir.path().join(&backup.name);
    fsutil::create_private_dir_all(&meta).map_err(|source| RemoteError::Local {
        operation: "create",
        path: meta.clone(),
        source,
    })?;
    for (file, cap) in small {
        check_cancel(ctx.cancel(), "restore", "nothing was changed")?;
        let size = backup.objects.get(file).copied().unwrap_or(0);
        if size > cap {
            return Err(damaged(format!(
                "{} is {size} bytes, more than the {cap} coffer reads",
                remote.object(&backup.name, file)
            )));
        }
        let object = remote.object(&backup.name, file);
        let bytes = if size == 0 {
            Vec::new()
        } else {
            remote.get_range(&object, 0, size).await?.as_ref().to_vec()
        };
        write_private(&meta.join(file), &bytes)?;
    }
    let mut entry = BackupEntry::read(&meta);
    entry.name = backup.name.clone();
    entry.status = backup.status.clone();
    entry.size_bytes = backup.size_bytes();
    // The manifest read now must be the one listed (not replaced in between), and every
    // artifact it names must be there at its recorded size.
    let Some(AnyManifest::Coffer(read)) = &entry.manifest else {
        return Err(damaged("manifest.json changed while it was read".into()));
    };
    if read.artifacts != m.artifacts {
        return Err(damaged("manifest.json changed while it was read".into()));
    }
    for a in &read.artifacts {
        match backup.objects.get(&a.file) {
            Some(&size) if size == a.size => {}
            found => {
                return Err(damaged(format!(
                    "{}: size is {}, the manifest says {}",
                    remote.object(&backup.name, &a.file),
                    found.map_or("missing".into(), |s| s.to_string()),
                    a.size
                )));
            }
        }
    }
    if backup.objects.contains_key(manifest::SUMS_FILE) {
        let sums = crate::format::sums::read(&meta).map_err(|e| damaged(e.to_string()))?;
        let expected: std::collections::BTreeMap<String, String> = read
            .artifacts
            .iter()
            .map(|a| (a.file.clone(), a.sha256.clone()))
            .collect();
        if sums != expected {
            return Err(damaged(format!(
                "{} disagrees with manifest.json: one of them was altered",
                manifest::SUMS_FILE
            )));
        }
    } else {
        return Err(damaged(format!("{} is missing", manifest::SUMS_FILE)));
    }
    ctx.transfer(&format!(
        "{}: streaming from {} (nothing is written to the backup root)",
        backup.name, remote.display
    ));
    if !matches!(entry.status, EntryStatus::Complete) {
        return Err(RemoteError::Incomplete {
            name: backup.name.clone(),
            remote: remote.display.clone(),
            reason: "not complete".into(),
        });
    }
    Ok(Fetched::Stream(Box::new(Streamable { dir, entry })))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), RemoteError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(fsutil::FILE_MODE)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|source| RemoteError::Local {
            operation: "write",
            path: path.to_path_buf(),
            source,
        })
}

/// One artifact of a remote backup, to be read as a stream.
#[derive(Clone)]
pub struct RemoteObject {
    remote: Arc<Remote>,
    runtime: Handle,
    name: String,
    file: String,
    size: u64,
}

impl std::fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteObject")
            .field("remote", &self.remote.display)
            .field("name", &self.name)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl RemoteObject {
    /// `file` of backup `name` on `remote`, `size` bytes as listed, fetched on `runtime`.
    pub fn new(remote: Arc<Remote>, runtime: Handle, name: &str, file: &str, size: u64) -> Self {
        RemoteObject {
            remote,
            runtime,
            name: name.to_string(),
            file: file.to_string(),
            size,
        }
    }

    /// The size as listed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How messages name it: the remote's URL and the object's path.
    pub fn display_path(&self) -> PathBuf {
        PathBuf::from(format!(
            "{}/{}",
            self.remote.display.trim_end_matches('/'),
            self.object_suffix()
        ))
    }

    fn object_suffix(&self) -> String {
        format!("{}/{}", self.name, self.file)
    }

    /// Starts reading the whole object.
    pub fn open(&self) -> ObjectReader {
        self.open_prefix(self.size)
    }

    /// Starts reading its first bytes only, enough for an age header.
    pub fn open_header(&self) -> ObjectReader {
        self.open_prefix(self.size.min(HEADER_PROBE))
    }

    fn open_prefix(&self, size: u64) -> ObjectReader {
        self.open_range(0, size, STREAM_WINDOW)
    }

    /// Starts reading bytes `[start, end)` only (`end` capped at the listed size), with
    /// ranged `GET`s of at most [`STREAM_CHUNK`] and at most `window` bytes (at least 1)
    /// held ahead of the reader, as [`RemoteObject::open`] does for the whole object with
    /// [`STREAM_WINDOW`].
    pub fn open_range(&self, start: u64, end: u64, window: usize) -> ObjectReader {
        let end = end.min(self.size);
        let start = start.min(end);
        let (tx, rx) = mpsc::unbounded_channel();
        // A semaphore's permits fit in u32, and each part sent takes at most `window`.
        let window = window.clamp(1, u32::MAX as usize);
        let window = (Arc::new(Semaphore::new(window)), window);
        let remote = self.remote.clone();
        let object = remote.object(&self.name, &self.file);
        let task = self.runtime.spawn(async move {
            let mut start = start;
            while start < end {
                let end = (start + STREAM_CHUNK).min(end);
                match fetch_range(&remote, &object, start..end, &window, &tx).await {
                    Ok(true) => start = end,
                    // The reader was dropped (the restore stopped): stop fetching.
                    Ok(false) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        ObjectReader {
            rx,
            piece: Bytes::new(),
            permit: None,
            received: 0,
            size: end - start,
            failure: Arc::new(Mutex::new(None)),
            task: task.abort_handle(),
        }
    }
}

/// A piece of the body and its share of the window, given back when the piece is consumed.
type Piece = (Bytes, OwnedSemaphorePermit);

/// Fetches `range` of `object` with one ranged `GET` and passes its body on as it arrives,
/// never more than the window's size (its second half) ahead of the reader. `Ok(false)`:
/// the reader is gone.
async fn fetch_range(
    remote: &Remote,
    object: &ObjectPath,
    range: std::ops::Range<u64>,
    (window, size): &(Arc<Semaphore>, usize),
    tx: &mpsc::UnboundedSender<Result<Piece, RemoteError>>,
) -> Result<bool, RemoteError> {
    let expected = range.end - range.start;
    let mut body = remote
        .get_range_stream(object, range.start, range.end)
        .await?;
    let mut got = 0u64;
    while let Some(next) = body.next().await {
        let mut piece = next.map_err(|e| remote.error("download", object.as_ref(), e))?;
        got += piece.len() as u64;
        if got > expected {
            break;
        }
        while !piece.is_empty() {
            let part = piece.split_to(piece.len().min(*size));
            let permit = window
                .clone()
                .acquire_many_owned(part.len() as u32)
                .await
                .expect("the window is never closed");
            if tx.send(Ok((part, permit))).is_err() {
                return Ok(false);
            }
        }
    }
    if got != expected {
        return Err(RemoteError::Mismatch {
            remote: remote.display.clone(),
            object: object.to_string(),
            what: "size of a downloaded range",
            expected: expected.to_string(),
            actual: if got > expected {
                format!("more than {expected}")
            } else {
                got.to_string()
            },
        });
    }
    Ok(true)
}

/// A blocking reader over ranged `GET`s made on the runtime. Must not be read from an
/// executor thread (it blocks on the channel).
pub struct ObjectReader {
    rx: mpsc::UnboundedReceiver<Result<Piece, RemoteError>>,
    piece: Bytes,
    permit: Option<OwnedSemaphorePermit>,
    received: u64,
    size: u64,
    failure: TransferFailure,
    task: tokio::task::AbortHandle,
}

impl ObjectReader {
    /// Where a transfer failure is recorded, for the decoder above to tell it from damage.
    pub fn failure(&self) -> TransferFailure {
        self.failure.clone()
    }

    fn fail(&self, reason: String) -> io::Error {
        *self.failure.lock().expect("failure lock") = Some(reason.clone());
        io::Error::other(reason)
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.piece.is_empty() {
                let n = buf.len().min(self.piece.len());
                buf[..n].copy_from_slice(&self.piece[..n]);
                self.piece.advance(n);
                return Ok(n);
            }
            // The piece is consumed: its bytes no longer count against the window.
            self.permit = None;
            if self.received >= self.size {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok((piece, permit))) => {
                    self.received += piece.len() as u64;
                    (self.piece, self.permit) = (piece, Some(permit));
                }
                Some(Err(e)) => return Err(self.fail(e.to_string())),
                None => {
                    return Err(self.fail(format!(
                        "the download stopped after {} of {} bytes",
                        self.received, self.size
                    )));
                }
            }
        }
    }
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}
