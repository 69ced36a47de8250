//! The off-host copy: backups mirrored to an object store (S3, GCS, Azure Blob Storage or a
//! local path) through the `object_store` crate.
//!
//! # Layout
//!
//! The remote mirrors a backup root: `<prefix>/<backup name>/<file>`, the same files as the
//! local directory (artifacts, `SHA256SUMS`, `manifest.json`). `manifest.json` is always
//! uploaded last and deleted first, so a remote backup is **complete** exactly when its
//! manifest exists and every artifact the manifest lists exists with the recorded size.
//! Legacy shell-script backups (no hashes) are mirrored too: every file of the directory,
//! manifest last; they are complete when `postgres.sql.gz` (or `.gz.age`) is there.
//!
//! # Synchronous API
//!
//! The rest of coffer is synchronous (threads, not tasks): [`Remote`] owns a small tokio
//! runtime and every public method blocks on it.
//!
//! # Credentials
//!
//! Credentials are read from the environment by each store's builder (see
//! [`store`]); they are never stored in the configuration and never appear in errors: the
//! remote is named by its URL without user information or query, and error texts are
//! scrubbed of the values of the credential variables.
//!
//! # What is coffer's
//!
//! A folder under the prefix is one of coffer's backups only when [`classify`] says so: named
//! like a backup, and holding nothing but its manifest's artifacts and the reserved names.
//! Everything else is *unknown*: listed, never pulled as a backup, never deleted. Deleting a
//! backup deletes only the objects coffer wrote, manifest first, after listing the folder
//! again; a folder found holding anything else is left whole.
//!
//! Modules: `location` parses `remote.url` (a leaf, so [`crate::config`] can validate it
//! without depending on the rest); [`classify`] decides what a folder is; [`store`] builds
//! the store from `[remote]`; [`sync`] uploads and applies remote retention; [`pull`]
//! downloads a backup into the backup root through a staging directory.

pub mod classify;
pub(crate) mod location;
pub mod pull;
pub mod store;
pub mod sync;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

/// The most objects a remote listing reads (a backup is at most six objects).
pub const MAX_LISTED_OBJECTS: usize = 100_000;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use crate::catalog::EntryStatus;
use crate::config::RemoteConfig;
use crate::lock::LockError;
use crate::manifest::{self, AnyManifest};
use crate::names::{self, BackupKind};

pub use location::RemoteUrl;

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
    /// The backup root's lock is held.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The backup root could not be listed.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
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

/// A connection to the configured remote.
pub struct Remote {
    runtime: tokio::runtime::Runtime,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    display: String,
    kind: location::StoreKind,
    settings: UploadSettings,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.display)
            .finish_non_exhaustive()
    }
}

/// How uploads are cut and paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadSettings {
    /// Configured part size, if any.
    pub part_size: Option<u64>,
    /// Most parts per upload.
    pub max_parts: u32,
    /// Parts in flight per file.
    pub concurrency: usize,
}

/// One MiB.
const MIB: u64 = 1 << 20;
/// The smallest part size chosen automatically.
pub const MIN_AUTO_PART_SIZE: u64 = 8 * MIB;
/// Bytes fetched by one ranged `GET` when downloading: each request stays short (well inside
/// `remote.timeout`) however large the artifact, and a retry repeats only one range.
pub const DOWNLOAD_CHUNK: u64 = 32 * MIB;

/// The part size for a file of `size` bytes: the configured one (or 8 MiB), raised when
/// needed so that the file fits in `max_parts - 1` parts, rounded up to a whole MiB.
pub fn part_size_for(size: u64, configured: Option<u64>, max_parts: u32) -> u64 {
    let slots = u64::from(max_parts.max(2) - 1);
    let needed = size.div_ceil(slots).div_ceil(MIB) * MIB;
    configured.unwrap_or(MIN_AUTO_PART_SIZE).max(needed)
}

/// A backup as found on the remote.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteBackup {
    /// The backup's name (its directory under the prefix).
    pub name: String,
    /// Auto, manual or legacy, from the name or the manifest.
    pub kind: Option<BackupKind>,
    /// When it was made, from the name or the manifest.
    pub created: Option<DateTime<Utc>>,
    /// Complete (or legacy), incomplete or unreadable, and why.
    pub status: EntryStatus,
    /// The objects below it: file name → size in bytes.
    pub objects: BTreeMap<String, u64>,
    /// The manifest, when it exists and parsed.
    #[serde(skip)]
    pub manifest: Option<AnyManifest>,
    /// `None` when the folder is one of coffer's backups; otherwise why coffer does not take
    /// it for its own (it is then listed as unknown and never deleted).
    pub unknown: Option<String>,
}

/// Everything under the remote prefix, sorted into coffer's backups and unknown folders.
#[derive(Debug, Clone)]
pub struct RemoteCatalog {
    /// coffer's backups (complete or not), newest first.
    pub backups: Vec<RemoteBackup>,
    /// Folders coffer does not know (their `unknown` says why), by name: never deleted.
    pub unknown: Vec<RemoteBackup>,
}

impl RemoteBackup {
    /// Total bytes of its objects.
    pub fn size_bytes(&self) -> u64 {
        self.objects.values().sum()
    }

    /// The Alembic head recorded in the manifest, as text.
    pub fn alembic_head(&self) -> Option<String> {
        self.manifest
            .as_ref()
            .and_then(AnyManifest::alembic_head)
            .map(ToString::to_string)
    }

    /// Whether it is dated in the future of `now`, by its name or its manifest.
    pub fn is_future(&self, now: DateTime<Utc>) -> bool {
        let manifest_time = self.manifest.as_ref().and_then(AnyManifest::created_at);
        self.created
            .into_iter()
            .chain(manifest_time)
            .any(|t| names::is_future(t, now))
    }

    /// Whether remote retention may delete it: one of coffer's backups, and complete.
    pub fn is_deletable(&self) -> bool {
        self.unknown.is_none() && self.status.is_usable()
    }
}

impl Remote {
    /// Connects to the remote `[remote]` describes (nothing is sent until the first call).
    /// A `file://` directory must exist.
    pub fn from_config(config: &RemoteConfig) -> Result<Remote, RemoteError> {
        Remote::open(config, false)
    }

    /// Like [`Remote::from_config`], creating a missing `file://` directory when `create`
    /// (what `coffer sync` does).
    pub fn open(config: &RemoteConfig, create: bool) -> Result<Remote, RemoteError> {
        let url = config.url.as_deref().ok_or(RemoteError::NotConfigured)?;
        let parsed = RemoteUrl::parse(url).map_err(|reason| RemoteError::Config {
            remote: location::display_url(url),
            reason,
        })?;
        let display = parsed.display();
        let store = store::build(&parsed, config, create)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("coffer-remote")
            .enable_all()
            .build()
            .map_err(|source| RemoteError::Local {
                operation: "start the I/O runtime for",
                path: PathBuf::from(&display),
                source,
            })?;
        Ok(Remote {
            runtime,
            store,
            prefix: parsed.prefix.clone(),
            display,
            kind: parsed.kind,
            settings: UploadSettings {
                part_size: config.part_size.map(|p| p.0),
                max_parts: config.max_parts,
                concurrency: config.concurrency,
            },
        })
    }

    /// The remote's URL, without user information or query (safe to print).
    pub fn url(&self) -> &str {
        &self.display
    }

    /// The upload settings in force.
    pub fn upload_settings(&self) -> UploadSettings {
        self.settings
    }

    /// The object path of `file` in backup `name`.
    fn object(&self, name: &str, file: &str) -> ObjectPath {
        let mut p = self.prefix.clone();
        for part in [name, file] {
            p = p.join(part);
        }
        p
    }

    /// Maps an object store error to a [`RemoteError`], classifying what operators must fix.
    fn error(&self, operation: &'static str, object: &str, e: object_store::Error) -> RemoteError {
        store::classify(&self.display, self.kind, operation, object, e)
    }

    /// Lists coffer's backups on the remote, newest first (reading every manifest); unknown
    /// folders are left out (see [`Remote::scan`]).
    pub fn list(&self) -> Result<Vec<RemoteBackup>, RemoteError> {
        self.scan().map(|c| c.backups)
    }

    /// Lists every folder under the prefix, sorted into coffer's backups and unknown ones.
    pub fn scan(&self) -> Result<RemoteCatalog, RemoteError> {
        self.runtime.block_on(self.scan_async())
    }

    pub(crate) async fn scan_async(&self) -> Result<RemoteCatalog, RemoteError> {
        let (unknown, backups) = self
            .list_async()
            .await?
            .into_iter()
            .partition(|b| b.unknown.is_some());
        Ok(RemoteCatalog { backups, unknown })
    }

    /// The objects below `prefix`, by their path below it, at most [`MAX_LISTED_OBJECTS`].
    async fn list_objects(
        &self,
        prefix: &ObjectPath,
    ) -> Result<BTreeMap<String, u64>, RemoteError> {
        let prefix_text = prefix.to_string();
        // Bounded: a bucket holding millions of objects is refused, not held in memory.
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(prefix))
            .take(MAX_LISTED_OBJECTS + 1)
            .try_collect()
            .await
            .map_err(|e| self.error("list", &format!("{prefix_text}/"), e))?;
        if metas.len() > MAX_LISTED_OBJECTS {
            return Err(RemoteError::Store {
                remote: self.display.clone(),
                operation: "list",
                object: format!("{prefix_text}/"),
                reason: format!(
                    "more than {MAX_LISTED_OBJECTS} objects under the prefix; coffer lists at most that many: point remote.url at a prefix holding only coffer's backups"
                ),
            });
        }
        let depth = prefix.parts().count();
        Ok(metas
            .into_iter()
            .map(|meta| {
                let parts: Vec<String> = meta
                    .location
                    .parts()
                    .skip(depth)
                    .map(|p| p.as_ref().to_string())
                    .collect();
                (parts.join("/"), meta.size)
            })
            .collect())
    }

    /// Every folder under the prefix with its objects and classification, newest first.
    async fn list_async(&self) -> Result<Vec<RemoteBackup>, RemoteError> {
        let mut groups: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (path, size) in self.list_objects(&self.prefix).await? {
            // An object right under the prefix is no folder: not listed, never touched.
            if let Some((name, file)) = path.split_once('/') {
                groups
                    .entry(name.to_string())
                    .or_default()
                    .insert(file.to_string(), size);
            }
        }
        let mut out = Vec::new();
        for (name, objects) in groups {
            let parsed = names::parse_name(&name);
            // A folder not named like a backup is unknown whatever it holds: its manifest
            // is not even read.
            let (manifest, status) = if parsed.is_none() {
                (None, EntryStatus::Incomplete("not a backup".into()))
            } else if objects.contains_key(manifest::MANIFEST_FILE) {
                match self.read_manifest_async(&name).await {
                    Ok(m) => {
                        let status = classify::remote_status(&objects, &m);
                        (Some(m), status)
                    }
                    Err(e @ RemoteError::Unavailable { .. }) => return Err(e),
                    Err(e) => (None, EntryStatus::Unreadable(e.to_string())),
                }
            } else {
                (None, EntryStatus::Incomplete("no manifest.json".into()))
            };
            let unknown = classify::unknown_reason(&name, &objects, manifest.as_ref());
            let kind = parsed.map(|p| p.kind).or(match &manifest {
                Some(AnyManifest::Coffer(m)) => Some(m.kind),
                Some(AnyManifest::Legacy(_)) => Some(BackupKind::Legacy),
                None => None,
            });
            let created = parsed
                .map(|p| p.time)
                .or_else(|| manifest.as_ref().and_then(AnyManifest::created_at));
            out.push(RemoteBackup {
                name,
                kind,
                created,
                status,
                objects,
                manifest,
                unknown,
            });
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.name.cmp(&a.name)));
        Ok(out)
    }

    /// Reads and parses a remote backup's manifest.
    async fn read_manifest_async(&self, name: &str) -> Result<AnyManifest, RemoteError> {
        let path = self.object(name, manifest::MANIFEST_FILE);
        let too_large = || RemoteError::Store {
            remote: self.display.clone(),
            operation: "download",
            object: path.to_string(),
            reason: format!(
                "larger than {} bytes, more than any manifest coffer writes",
                manifest::MANIFEST_CAP
            ),
        };
        // Read in chunks and stop past the cap, whatever size the listing claimed.
        let mut stream = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.error("download", path.as_ref(), e))?
            .into_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| self.error("download", path.as_ref(), e))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > manifest::MANIFEST_CAP {
                return Err(too_large());
            }
        }
        manifest::parse_bytes(&bytes, &format!("{}/{path}", self.display)).map_err(|e| {
            RemoteError::Store {
                remote: self.display.clone(),
                operation: "parse",
                object: path.to_string(),
                reason: e.to_string(),
            }
        })
    }

    /// Deletes a complete remote backup of coffer's: the folder is listed again first, and
    /// when it now holds anything coffer did not write, nothing is deleted (`Ok(Err(why))`).
    /// Otherwise its objects go manifest first (so it stops looking complete at once, as an
    /// upload writes it last), then the artifacts, `SHA256SUMS` and the signatures; an
    /// interruption leaves a folder without a manifest, never a complete-looking one.
    async fn delete_backup_async(
        &self,
        backup: &RemoteBackup,
    ) -> Result<Result<(), String>, RemoteError> {
        let Some(manifest) = backup.manifest.as_ref().filter(|_| backup.is_deletable()) else {
            return Ok(Err(backup
                .unknown
                .clone()
                .unwrap_or_else(|| "not a complete backup".into())));
        };
        let folder = self.prefix.clone().join(backup.name.as_str());
        let objects = self.list_objects(&folder).await?;
        let order = match classify::deletion_order(&backup.name, &objects, manifest) {
            Ok(order) => order,
            Err(why) => return Ok(Err(why)),
        };
        for file in order {
            self.delete_object(&backup.name, &file).await?;
        }
        Ok(Ok(()))
    }

    /// Fetches `[start, min(start + DOWNLOAD_CHUNK, size))` of an object.
    pub(crate) async fn get_chunk(
        &self,
        path: &ObjectPath,
        start: u64,
        size: u64,
    ) -> Result<impl AsRef<[u8]> + use<>, RemoteError> {
        let end = (start + DOWNLOAD_CHUNK).min(size);
        let bytes = self
            .store
            .get_range(path, start..end)
            .await
            .map_err(|e| self.error("download", path.as_ref(), e))?;
        if bytes.len() as u64 != end - start {
            return Err(RemoteError::Mismatch {
                remote: self.display.clone(),
                object: path.to_string(),
                what: "size of a downloaded range",
                expected: (end - start).to_string(),
                actual: bytes.len().to_string(),
            });
        }
        Ok(bytes)
    }

    async fn delete_object(&self, name: &str, file: &str) -> Result<(), RemoteError> {
        let path = self.object(name, file);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", path.as_ref(), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_fits_every_object_within_max_parts() {
        const GIB: u64 = 1 << 30;
        assert_eq!(part_size_for(10 * MIB, None, 10_000), 8 * MIB);
        assert_eq!(part_size_for(0, Some(5 * MIB), 10_000), 5 * MIB);
        for (size, max_parts) in [
            (100 * GIB, 10_000),
            (150 * GIB, 10_000),
            (100 * GIB, 1_000),
            (5 * 1024 * GIB, 10_000),
            (49 * GIB, 10_000),
        ] {
            for configured in [None, Some(5 * MIB), Some(64 * MIB)] {
                let part = part_size_for(size, configured, max_parts);
                assert_eq!(part % MIB, 0);
                assert!(part >= configured.unwrap_or(MIN_AUTO_PART_SIZE));
                let parts = size.div_ceil(part);
                assert!(
                    parts < u64::from(max_parts),
                    "{size} in {parts} parts of {part}"
                );
            }
        }
        // 100 GiB at the S3 limit: 11 MiB parts, not the 5 MiB that caps objects at 49 GiB.
        assert_eq!(part_size_for(100 * GIB, None, 10_000), 11 * MIB);
    }
}
