//! One-file bundles: a backup directory as one uncompressed POSIX tar, and back.
//!
//! A bundle holds exactly one backup directory: `NAME/` (mode 0700), then
//! `NAME/manifest.json` and, when the backup is signed, `NAME/manifest.json.minisig`; the
//! artifacts in the manifest's order; `NAME/SHA256SUMS` and, when signed,
//! `NAME/SHA256SUMS.minisig`; then the end-of-archive marker. `tar -xf` unpacks it into the
//! ordinary backup directory. The manifest (and its signature) come first so that a reader
//! knows what to expect (sizes and hashes) and can judge it before the data arrives: a
//! restore from a bundle runs its pre-flight there (see `Coffer::prepare_restore_from_bundle`).
//!
//! [`export()`] streams a backup of the root into a bundle (no temporary copy), checking each
//! artifact's size and SHA-256 against the manifest on the way; a mismatch stops the
//! stream before the end marker, so the partial bundle can never be imported.
//! [`import()`] reads a bundle (or a `.tar.gz` of a shell-script backup directory) into a
//! staging directory of the root, checking every member as it arrives and the whole backup
//! as `coffer verify` does before renaming it into place.

pub mod export;
pub mod import;
mod peek;
pub(crate) mod ustar;

use std::path::PathBuf;

use crate::root::lock::LockError;

pub use export::{ExportReport, export};
pub use import::{Arrived, ImportReport, import, import_checked};

/// Why an export or import failed. Whatever the variant, no bundle file and no backup
/// directory that looks complete was left behind.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The backup cannot be exported: incomplete, unreadable, or not a backup.
    #[error("cannot export backup {name}: {reason}")]
    NotExportable {
        /// The backup.
        name: String,
        /// Why.
        reason: String,
    },
    /// An artifact does not match its manifest while it is exported.
    #[error(
        "backup {name} is damaged: {detail}; the export stopped before the end of the bundle, so what was written cannot be imported; verify the backup to see the damage"
    )]
    SourceDamaged {
        /// The backup.
        name: String,
        /// What does not match.
        detail: String,
    },
    /// The bundle is damaged, truncated, or holds what a bundle must not.
    #[error("cannot import {origin}: {detail}; nothing was imported")]
    Damaged {
        /// The bundle file, or `standard input`.
        origin: String,
        /// Why.
        detail: String,
    },
    /// A backup of the bundle's name exists in the root already.
    #[error(
        "cannot import {origin}: a backup named {name} already exists in {root}; nothing was imported (remove or move that one first if it is not wanted)"
    )]
    Exists {
        /// The bundle file, or `standard input`.
        origin: String,
        /// The backup's name.
        name: String,
        /// The backup root.
        root: PathBuf,
    },
    /// The output file exists: a bundle never replaces a file.
    #[error("{path} exists; nothing was written: remove it or choose another output file")]
    OutputExists {
        /// The file.
        path: PathBuf,
    },
    /// Another coffer run holds the backup root.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// A filesystem or stream operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file, directory or stream.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The caller refused the backup on its manifest before any of its data was read (a
    /// restore's pre-flight, see `import::import_checked`): nothing was imported.
    #[error(transparent)]
    RefusedBeforeData(Box<crate::error::Error>),
    /// A signal asked the operation to stop.
    #[error("{operation} interrupted by signal {signal}; nothing partial was left behind")]
    Interrupted {
        /// `export` or `import`.
        operation: &'static str,
        /// The signal number.
        signal: usize,
    },
}

/// The exact length in bytes of the bundle of backup `name` holding `files` (file name and
/// size, in bundle order): the directory's header, each file's header (after a pax header
/// when its path is longer than 100 bytes or its size needs more than 11 octal digits), its
/// data padded to 512-byte blocks, then the two end blocks. `export` writes exactly this
/// many bytes and announces them before the first, so a server can send the length before
/// streaming.
pub fn bundle_len<'a>(name: &str, files: impl IntoIterator<Item = (&'a str, u64)>) -> u64 {
    let directory = ustar::header_len(&format!("{name}/"), 0);
    let members: u64 = files
        .into_iter()
        .map(|(file, size)| {
            ustar::header_len(&format!("{name}/{file}"), size) + ustar::padded(size)
        })
        .sum();
    directory + members + 2 * ustar::BLOCK
}

impl BundleError {
    fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> BundleError {
        BundleError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
