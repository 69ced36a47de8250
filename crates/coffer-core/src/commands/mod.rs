//! The operations, one module each, as methods of [`crate::Coffer`]: each takes an options
//! struct whose `Default` is the safe, complete behaviour and a [`crate::RunContext`], and
//! returns a typed outcome or an [`crate::Error`].
//!
//! A new operation goes here: a module with its options, its outcome and an
//! `impl Coffer` block; the runs it makes are recorded through [`crate::Coffer`]'s
//! reporting, so `status`, the metrics file and the hooks see them.

pub mod backup;
pub mod drill;
pub mod export;
pub mod health;
pub mod import;
pub mod list;
pub mod prune;
pub mod pull;
pub mod restore;
pub mod status;
pub mod sync;
pub mod verify;

/// One backup of the root.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupRef {
    /// The newest usable backup that is not dated in the future (those are passed over
    /// with a warning).
    Latest,
    /// A backup by its name in the backup root, or, when the text holds a `/`, the
    /// backup directory at that path (legacy `YYYY-MM-DD-HHMMSS` ones too). A regular
    /// file named `….sql.gz` or `….sql` is a flat dump (plain `pg_dump` output, e.g. from
    /// `pg_dump DB | gzip` in an older cron script): restore and verify take its database
    /// only, after reading it to its end; its content must start with pg_dump's header.
    Named(String),
}

impl BackupRef {
    /// The name or path, `None` for the latest.
    pub(crate) fn name(&self) -> Option<&str> {
        match self {
            BackupRef::Latest => None,
            BackupRef::Named(n) => Some(n),
        }
    }
}

/// The backups of the root an operation covers.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// One backup.
    One(BackupRef),
    /// Every backup in the root, newest first.
    All,
}
