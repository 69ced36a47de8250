//! [`RemoteError`]: why a remote operation failed, in texts that name the remote and the
//! object but never a credential.

use std::path::PathBuf;

use crate::cancel::CancelFlag;
use crate::root::lock::LockError;

/// Why a remote operation failed. Texts name the remote (URL without secrets), the
/// operation and the object, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// No `remote.url` is configured.
    #[error(
        "no remote configured: set remote.url (or COFFER_REMOTE_URL) to s3://bucket/prefix, gs://…, az://… or file:///path"
    )]
    NotConfigured,
    /// The remote settings cannot be used to build a client.
    #[error("invalid remote settings for {remote}: {reason}")]
    Config {
        /// The remote.
        remote: String,
        /// Why.
        reason: String,
    },
    /// The remote cannot be reached or refuses us: network, credentials, permissions, or
    /// a bucket that does not exist.
    #[error("remote {remote} is unavailable: {operation} {object}: {problem}; {hint}")]
    Unavailable {
        /// The remote.
        remote: String,
        /// What was being done, e.g. `upload`.
        operation: &'static str,
        /// The object or prefix.
        object: String,
        /// What went wrong, in a few words.
        problem: String,
        /// What to check.
        hint: String,
    },
    /// Another failure of the object store.
    #[error("remote {remote}: {operation} {object} failed: {reason}")]
    Store {
        /// The remote.
        remote: String,
        /// What was being done.
        operation: &'static str,
        /// The object.
        object: String,
        /// The store's error (scrubbed).
        reason: String,
    },
    /// A local file or directory could not be read or written.
    #[error("cannot {operation} {path}: {source}")]
    Local {
        /// What was being done, e.g. `read`.
        operation: &'static str,
        /// The local path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// What was read or written does not match the manifest or what was sent.
    #[error("{object} on remote {remote} does not match: {what} is {actual}, expected {expected}")]
    Mismatch {
        /// The remote.
        remote: String,
        /// The object.
        object: String,
        /// Which value, e.g. `sha256`.
        what: &'static str,
        /// The value expected.
        expected: String,
        /// The value found.
        actual: String,
    },
    /// A pulled backup failed verification; nothing was put into the backup root.
    #[error(
        "backup {name} pulled from {remote} is damaged: {detail}; nothing was put into the backup root"
    )]
    Damaged {
        /// The backup.
        name: String,
        /// The remote.
        remote: String,
        /// The failed checks.
        detail: String,
    },
    /// A local backup's artifact does not match its own manifest: it is not uploaded.
    #[error(
        "local backup {path} is damaged: {detail}; it was not uploaded (run `coffer verify` on it)"
    )]
    LocalDamaged {
        /// The backup directory.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
    /// No backup of that name on the remote.
    #[error("no backup named `{name}` on remote {remote}; `coffer list --remote` shows them")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The remote.
        remote: String,
    },
    /// `--latest` found no complete backup on the remote.
    #[error("no complete backup on remote {remote}; run `coffer sync` where the backups are")]
    NoneComplete {
        /// The remote.
        remote: String,
    },
    /// The named remote backup is not complete.
    #[error(
        "backup {name} on remote {remote} is not complete ({reason}); run `coffer sync` on the host that has it, or pull another one"
    )]
    Incomplete {
        /// The backup.
        name: String,
        /// The remote.
        remote: String,
        /// What is missing.
        reason: String,
    },
    /// The backup already exists locally but is not usable.
    #[error(
        "{path} already exists and is not a complete backup ({reason}); move it away to pull this backup again"
    )]
    LocalExists {
        /// The local directory.
        path: PathBuf,
        /// Its status.
        reason: String,
    },
    /// A signal (or the embedding program, through the [`CancelFlag`]) asked the operation
    /// to stop; it stopped between two objects or chunks.
    #[error("{operation} interrupted by signal {signal}; {outcome}")]
    Interrupted {
        /// `sync`, `pull` or `remote retention`.
        operation: &'static str,
        /// The signal number, as the [`CancelFlag`] recorded it.
        signal: usize,
        /// What was left behind, and what to do next.
        outcome: &'static str,
    },
    /// The backup root's lock is held.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The backup root could not be listed.
    #[error(transparent)]
    Catalog(#[from] crate::root::catalog::CatalogError),
}

impl RemoteError {
    /// Whether this is the remote being unreachable, refusing our credentials, or missing.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, RemoteError::Unavailable { .. })
    }

    /// Whether this says that backup data is damaged (a hash or size mismatch).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            RemoteError::Damaged { .. }
                | RemoteError::LocalDamaged { .. }
                | RemoteError::Mismatch { .. }
        )
    }
}

/// What a stopped sync leaves: the manifest goes up last and is deleted first.
pub(crate) const SYNC_STOPPED: &str = "no remote backup was left looking complete (manifest.json is uploaded last and deleted first); the next sync resumes";
/// What a stopped pull leaves: its staging directory is removed.
pub(crate) const PULL_STOPPED: &str =
    "the staging directory was removed and nothing was put into the backup root";

/// `Err(RemoteError::Interrupted)` once `cancel` is set: called between objects and parts.
pub(crate) fn check_cancel(
    cancel: &CancelFlag,
    operation: &'static str,
    outcome: &'static str,
) -> Result<(), RemoteError> {
    match cancel.signal() {
        None => Ok(()),
        Some(signal) => Err(RemoteError::Interrupted {
            operation,
            signal,
            outcome,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_flag_stops_with_its_signal() {
        let cancel = CancelFlag::new();
        assert!(check_cancel(&cancel, "sync", SYNC_STOPPED).is_ok());
        cancel.cancel(15);
        let e = check_cancel(&cancel, "pull", PULL_STOPPED).unwrap_err();
        assert!(
            matches!(
                e,
                RemoteError::Interrupted {
                    operation: "pull",
                    signal: 15,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().starts_with("pull interrupted by signal 15; "),
            "{e}"
        );
    }
}
