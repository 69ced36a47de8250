//! `list`: the backups in the root, or on the remote, described for people and programs.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::ser::SerializeSeq;

use crate::coffer::Coffer;
use crate::error::Error;
use crate::format::manifest::AlembicHead;
use crate::format::names::{self, BackupKind};
use crate::remote::{Remote, RemoteBackup};
use crate::root::catalog::{self, BackupEntry, EntryStatus, UnknownEntry};

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
        ListedBackup {
            alembic_head: entry.alembic_head,
            name: entry.name,
            path: entry.path,
            kind: entry.kind,
            created: entry.created,
            size_bytes: entry.size_bytes,
            label: entry.label,
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

    /// Whether the root holds a backup named `name`: a name coffer gives backups
    /// (`auto-…`, `manual-…`, or a shell-script `YYYY-MM-DD-HHMMSS`) that is a real
    /// directory of the root (not a symlink). For front ends that take names from callers
    /// they do not trust: anything else, a path or a flat dump's file name included, is
    /// never looked up.
    pub fn has_backup(&self, name: &str) -> bool {
        names::parse_name(name).is_some()
            && std::fs::symlink_metadata(self.root().join(name)).is_ok_and(|m| m.is_dir())
    }

    /// A number that changes whenever a listing or the status could: the modification
    /// times of the root directory (a backup renamed into place or removed, any run's
    /// staging) and of the run log (every run appends to it), and the run log's size. Two
    /// `stat` calls, for front ends that reuse a listing while this stays the same.
    pub fn root_generation(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        use std::os::unix::fs::MetadataExt;
        let stamp = |path: &std::path::Path| {
            std::fs::symlink_metadata(path)
                .ok()
                .map(|m| (m.mtime(), m.mtime_nsec(), m.size(), m.ino()))
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        stamp(self.root()).hash(&mut hasher);
        stamp(&self.root().join(names::RUN_LOG_FILE)).hash(&mut hasher);
        hasher.finish()
    }
}

/// One backup on the remote.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct RemoteListedBackup {
    /// Its folder name.
    pub name: String,
    /// Who made it, when known.
    pub kind: Option<BackupKind>,
    /// When it was made, when known.
    pub created: Option<DateTime<Utc>>,
    /// Bytes of its objects.
    pub size_bytes: u64,
    /// The Alembic head its manifest records.
    pub alembic_head: Option<AlembicHead>,
    /// Complete when the manifest exists and every artifact it lists has the recorded size.
    pub status: EntryStatus,
    /// Its objects: file name → size in bytes.
    pub objects: std::collections::BTreeMap<String, u64>,
    /// Whether both signature files are there (checked by a pull, not by a listing).
    pub signed: bool,
    /// Whether its name dates it in the future (clock skew?).
    #[serde(skip)]
    pub future_dated: bool,
}

/// A folder on the remote that is not one of coffer's backups: listed, never pulled or
/// deleted. Shown with the status `unknown` and the reason.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct RemoteUnknown {
    /// Its folder name.
    pub name: String,
    /// Bytes of its objects.
    pub size_bytes: u64,
    /// `{"status": "unknown", "reason": …}`.
    pub status: UnknownStatus,
    /// Its objects: file name → size in bytes.
    pub objects: std::collections::BTreeMap<String, u64>,
}

/// Why a remote folder is not coffer's.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct UnknownStatus {
    /// Always `unknown`.
    pub status: &'static str,
    /// What it is and why coffer does not take it for its own.
    pub reason: Option<String>,
}

/// What the remote holds.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct RemoteListing {
    /// The remote (URL without secrets).
    pub remote: String,
    /// coffer's backups (complete or not), newest first.
    pub backups: Vec<RemoteListedBackup>,
    /// Folders coffer does not know, by name.
    pub unknown: Vec<RemoteUnknown>,
}

/// One list: the backups, then the unknown folders.
impl Serialize for RemoteListing {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.backups.len() + self.unknown.len()))?;
        for b in &self.backups {
            seq.serialize_element(b)?;
        }
        for u in &self.unknown {
            seq.serialize_element(u)?;
        }
        seq.end()
    }
}

impl RemoteListedBackup {
    fn of(b: RemoteBackup, now: DateTime<Utc>) -> RemoteListedBackup {
        RemoteListedBackup {
            size_bytes: b.size_bytes(),
            alembic_head: b.alembic_head,
            signed: b.signed,
            future_dated: b.created.is_some_and(|t| names::is_future(t, now)),
            name: b.name,
            kind: b.kind,
            created: b.created,
            status: b.status,
            objects: b.objects,
        }
    }
}

impl RemoteUnknown {
    fn of(b: RemoteBackup) -> RemoteUnknown {
        RemoteUnknown {
            size_bytes: b.size_bytes(),
            name: b.name,
            status: UnknownStatus {
                status: "unknown",
                reason: b.unknown,
            },
            objects: b.objects,
        }
    }
}

impl Coffer {
    /// The backups on the remote (`remote.url`), newest first, and the folders coffer does
    /// not know. Complete means the manifest exists and every artifact it lists has the
    /// recorded size.
    pub async fn list_remote(&self) -> Result<RemoteListing, Error> {
        let remote = Remote::from_config(&self.config().remote)?;
        let scanned = remote.scan().await?;
        let now = Utc::now();
        Ok(RemoteListing {
            remote: remote.url().to_string(),
            backups: scanned
                .backups
                .into_iter()
                .map(|b| RemoteListedBackup::of(b, now))
                .collect(),
            unknown: scanned.unknown.into_iter().map(RemoteUnknown::of).collect(),
        })
    }
}
