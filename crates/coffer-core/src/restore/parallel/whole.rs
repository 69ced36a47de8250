//! The whole-file check of a parallel restore: the artifact's stored size and SHA-256
//! against the manifest. A local file is proven before the new database is created; a
//! remote artifact cannot be proven up front without a second download, so it is read once
//! more, sequentially, on its own thread while the sessions fetch their pieces, and must
//! have matched before the new database may be swapped in. Its mismatch or failed transfer
//! stops every session.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::cancel::CancelFlag;
use crate::format::manifest::Artifact;
use crate::remote::stream::{RemoteObject, TransferFailure};
use crate::stream::artifact::{ArtifactError, ArtifactReader, prove_stored};
use crate::stream::crypto::Identities;

use super::super::Source;
use super::super::failure::{StreamFailure, artifact_failure};

/// The whole-file check, done or under way. Dropped before [`WholeCheck::settle`], it stops
/// the read and waits for its thread.
pub(super) struct WholeCheck {
    /// Seconds the local proof took (the remote one times itself on its thread).
    proven_in: f64,
    /// The remote read: its thread and what stops it.
    remote: Option<(Checking, Arc<AtomicBool>)>,
}

/// The thread reading the remote artifact; it returns the seconds the check took.
type Checking = JoinHandle<Result<f64, StreamFailure>>;

impl WholeCheck {
    /// Proves a local artifact now (nothing is created when it does not match), or starts
    /// reading a remote one on its own thread; its failure sets `abort`.
    pub(super) fn start(
        source: &Source,
        artifact: &Artifact,
        identities: Option<&Identities>,
        (cancel, abort): (&CancelFlag, &Arc<AtomicBool>),
    ) -> Result<WholeCheck, StreamFailure> {
        let t = Instant::now();
        let Some(object) = &source.remote else {
            // The header is decrypted too, so a wrong key fails here, before anything runs.
            ArtifactReader::open_proven(&source.path, artifact, identities)
                .map_err(artifact_failure)?;
            return Ok(WholeCheck {
                proven_in: t.elapsed().as_secs_f64(),
                remote: None,
            });
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (object, artifact, path) = (object.clone(), artifact.clone(), source.path.clone());
        let (cancel, abort, stopped) = (cancel.clone(), abort.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("coffer-whole-check".into())
            .spawn(move || {
                let r = prove_remote(&object, &artifact, &path, &|| {
                    stopped.load(Ordering::SeqCst)
                        || abort.load(Ordering::SeqCst)
                        || cancel.signal().is_some()
                });
                if r.is_err() {
                    abort.store(true, Ordering::SeqCst);
                }
                r.map(|()| t.elapsed().as_secs_f64())
            })
            .map_err(|e| StreamFailure::Failed {
                what: "database",
                reason: format!("cannot start the thread that checks the whole artifact: {e}"),
            })?;
        Ok(WholeCheck {
            proven_in: 0.0,
            remote: Some((handle, stop)),
        })
    }

    /// What the restore reports once the sessions returned `applied`: with the sessions
    /// done, waits for the whole-file check, whose failure fails the restore (the new
    /// database is dropped with `applied`); with the sessions failed, their failure, unless
    /// they only stopped because the check failed. Returns the seconds the check took.
    pub(super) fn settle<T>(
        mut self,
        applied: Result<T, StreamFailure>,
    ) -> Result<(T, f64), StreamFailure> {
        let Some((handle, stop)) = self.remote.take() else {
            return applied.map(|v| (v, self.proven_in));
        };
        if applied.is_err() {
            stop.store(true, Ordering::SeqCst);
        }
        let checked = handle.join().unwrap_or_else(|_| {
            Err(StreamFailure::Failed {
                what: "database",
                reason: "the thread that checks the whole artifact panicked".into(),
            })
        });
        match (applied, checked) {
            (Ok(v), Ok(secs)) => Ok((v, secs)),
            (Err(StreamFailure::Aborted), Err(e)) if !matches!(e, StreamFailure::Aborted) => Err(e),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        }
    }
}

impl Drop for WholeCheck {
    fn drop(&mut self) {
        if let Some((handle, stop)) = self.remote.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = handle.join();
        }
    }
}

/// Reads the remote artifact once to its end and holds its size and SHA-256 against the
/// manifest; `stopped` ends the read early (as [`StreamFailure::Aborted`]).
fn prove_remote(
    object: &RemoteObject,
    artifact: &Artifact,
    path: &Path,
    stopped: &(dyn Fn() -> bool + Sync),
) -> Result<(), StreamFailure> {
    let stream = object.open();
    let failure = stream.failure();
    let mut reader = Stoppable {
        inner: stream,
        stopped,
    };
    match prove_stored(&mut reader, artifact, path) {
        Ok(()) => Ok(()),
        Err(_) if stopped() => Err(StreamFailure::Aborted),
        Err(e) => Err(artifact_failure(transfer_or(&failure, path, e))),
    }
}

/// `e`, or the transfer failure behind it.
fn transfer_or(failure: &TransferFailure, path: &Path, e: ArtifactError) -> ArtifactError {
    match failure.lock().expect("transfer lock").clone() {
        Some(reason) => ArtifactError::Transfer {
            path: PathBuf::from(path),
            reason,
        },
        None => e,
    }
}

/// A reader that fails its next read once `stopped` says so (each read of the remote
/// stream returns within the remote's timeouts, so the check stops soon).
struct Stoppable<'a, R> {
    inner: R,
    stopped: &'a (dyn Fn() -> bool + Sync),
}

impl<R: Read> Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if (self.stopped)() {
            return Err(io::Error::other("stopped"));
        }
        self.inner.read(buf)
    }
}
