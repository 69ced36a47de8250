//! The workspace as a tar stream, and safe extraction of one.
//!
//! # Layout written
//!
//! GNU tar format. The first entry is `./`, the workspace root itself (so `tar -xf` into an
//! empty directory also restores the root's mode, owner and mtime); every other entry is a
//! path relative to the root without a leading `./`, directories ending in `/`. Entries come
//! depth first, parents before children, siblings sorted by the bytes of their names, so the
//! same tree always gives the same entry order. Names of 100 bytes or more, and link targets
//! likewise, are written as GNU `././@LongLink` entries, byte for byte (non-UTF-8 names
//! included). Regular files, directories, symlinks (never followed, except the root) and hard
//! links are archived with mode, uid, gid and mtime (seconds); sockets, fifos and device
//! files are skipped and reported.
//!
//! # Reading
//!
//! [`list_tar`] and [`extract_tar`] read a stream to its end and insist on a complete archive:
//! every entry's data in full and the end-of-archive marker (two zero blocks), so a
//! truncated or corrupted stream is an error, never a short listing or a partial tree that
//! looks complete. [`extract_tar`] refuses anything that could write outside its destination.
//!
//! # Code
//!
//! `write` walks the workspace into the stream (with `excludes`, the compiled exclude
//! patterns); `list` reads a stream to its end, with the entry loop `extract` shares;
//! `extract` unpacks one into an empty staging directory.

mod excludes;
mod extract;
mod list;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
mod write;

use std::io;
use std::path::PathBuf;

pub use extract::{ExtractStats, extract_tar};
pub use list::{TarListing, list_tar};
pub use write::{ArchiveOptions, ArchiveStats, ChangedEntry, SkippedEntry, write_workspace_tar};

/// Size of the buffer file data is streamed through, in both directions.
const BUF_SIZE: usize = 256 * 1024;
/// A tar block.
const BLOCK: usize = 512;
/// Zeros to pad data to a block boundary.
const ZEROS: [u8; BLOCK] = [0; BLOCK];

/// Why archiving, listing or extracting failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An exclude pattern is not a valid glob.
    #[error("invalid exclude pattern `{pattern}`: {reason}")]
    InvalidExclude {
        /// The pattern as configured.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The walk reached the backup root or a backup (through a bind mount or another
    /// alias): archiving it would put the backups inside the backup.
    #[error(
        "workspace directory {path} is the backup root or a backup in it (a bind mount or another path to it): backups would archive the backups and a workspace restore would delete them; unmount it, or exclude it in workspace.exclude"
    )]
    ContainsBackups {
        /// The directory reached.
        path: PathBuf,
    },
    /// The workspace root is not a directory.
    #[error("cannot archive workspace {path}: {reason}")]
    Root {
        /// The root as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file, directory or symlink of the workspace could not be read.
    #[error("cannot read workspace {kind} {path}: {source}")]
    ReadWorkspace {
        /// `file`, `directory` or `symlink`.
        kind: &'static str,
        /// Absolute (or root-relative, as the root was given) path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The tar stream could not be written (the output failed, not the workspace).
    #[error("cannot write tar entry `{entry}`: {source}")]
    WriteTar {
        /// The entry being written (lossy UTF-8), or `end of archive`.
        entry: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The tar stream could not be read, or is truncated or corrupt.
    #[error("cannot read tar stream {position}: {source}")]
    ReadTar {
        /// Where: `at the start`, `in entry `a/b``, `after entry `a/b``.
        position: String,
        /// The I/O error (`UnexpectedEof` for truncation, `InvalidData` for corruption, or
        /// whatever the underlying reader reported, e.g. a decryption failure).
        source: io::Error,
    },
    /// Extraction refused an entry that could write outside the destination, is not plain
    /// data (devices, fifos), or conflicts with an earlier entry.
    #[error("refusing unsafe tar entry `{entry}`: {reason}")]
    UnsafeEntry {
        /// The entry's path as stored (lossy UTF-8).
        entry: String,
        /// Why, e.g. `absolute path` or `would be written through symlink `a/link``.
        reason: String,
    },
    /// The extraction destination is not an existing, empty, real directory.
    #[error("cannot extract into {path}: {reason}")]
    Destination {
        /// The destination as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Creating an entry (or setting its metadata) in the destination failed.
    #[error("cannot extract tar entry `{entry}` to {path}: {source}")]
    Extract {
        /// The entry's path as stored (lossy UTF-8).
        entry: String,
        /// The path being created.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Copies as much of `value` as fits into a header field, NUL-padding the rest.
fn set_field(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
    field[n..].fill(0);
}

/// Zero bytes that follow `len` bytes of data to reach a block boundary.
fn pad_len(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}

/// Bytes of a stored name or link target as text, for messages.
fn lossy_bytes(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
