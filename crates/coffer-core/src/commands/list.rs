//! `list`: the backups in the root, described for people and programs.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::{self, BackupEntry, EntryStatus, UnknownEntry};
use crate::coffer::Coffer;
use crate::error::Error;
use crate::manifest::{AlembicHead, AnyManifest};
use crate::names::BackupKind;

/// One backup of a listing.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct ListedBackup {
    /// Its directory name.
    pub name: String,
    /// Its directory.
    pub path: PathBuf,
    /// Who made it, when known.
    pub kind: Option<BackupKind>,
    /// When it was made, when known.
    pub created: Option<DateTime<Utc>>,
    /// Bytes of its files.
    pub size_bytes: u64,
    /// The Alembic head its manifest records.
    pub alembic_head: Option<AlembicHead>,
    /// The label given when it was made.
    pub label: Option<String>,
    /// Whether it can be used, and why not.
    pub status: EntryStatus,
    /// Whether it is dated in the future (clock skew?).
    pub future_dated: bool,
}

impl ListedBackup {
    /// Describes `entry` as of `now`.
    fn of(entry: BackupEntry, now: DateTime<Utc>) -> ListedBackup {
        let future_dated = entry.is_future(now);
        let label = match &entry.manifest {
            Some(AnyManifest::Coffer(m)) => m.label.clone(),
            _ => None,
        };
        ListedBackup {
            alembic_head: entry
                .manifest
                .as_ref()
                .and_then(|m| m.alembic_head())
                .cloned(),
            name: entry.name,
            path: entry.path,
            kind: entry.kind,
            created: entry.created,
            size_bytes: entry.size_bytes,
            label,
            status: entry.status,
            future_dated,
        }
    }
}

/// What the backup root holds.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Listing {
    /// The backups (complete or not), newest first.
    pub backups: Vec<ListedBackup>,
    /// Entries coffer does not know: listed, never deleted.
    pub unknown: Vec<UnknownEntry>,
}

impl Coffer {
    /// The backups in the root, newest first, and the entries coffer does not know.
    pub fn list(&self) -> Result<Listing, Error> {
        let scanned = catalog::scan(self.root())?;
        let now = Utc::now();
        Ok(Listing {
            backups: scanned
                .backups
                .into_iter()
                .map(|e| ListedBackup::of(e, now))
                .collect(),
            unknown: scanned.unknown,
        })
    }
}
