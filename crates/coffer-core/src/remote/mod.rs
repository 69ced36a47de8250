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
//! # Async API
//!
//! Every operation that talks to the store is an `async fn` ([`Remote::scan`],
//! [`Remote::list`], [`sync::run`], [`pull::run`], [`retention::apply`]) and runs on the
//! caller's tokio runtime: the library starts none, so it embeds in an async program (a web
//! backend, a task-queue worker) as well as in the `coffer` command, which builds one runtime
//! per command. Long disk and CPU work inside them (hashing large chunks, fsync, verifying a
//! pulled backup) runs on tokio's blocking pool, never on the executor. The futures are
//! `Send`, so they may be spawned. [`Remote::with_store`] takes any [`ObjectStore`] (an
//! in-memory one, a local directory, a client configured by the embedding program);
//! [`Remote::from_config`] builds one from `[remote]`.
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
//! the store from `[remote]`; [`sync`] uploads (one backup at a time, through the private
//! `upload`) and then applies [`retention`]; [`pull`] downloads a backup into the backup root
//! through a staging directory; [`error`] says what failed.

pub mod classify;
pub mod error;
pub(crate) mod location;
pub mod pull;
pub(crate) mod ranged;
pub mod retention;
pub mod store;
pub(crate) mod stream;
pub mod sync;
mod upload;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use crate::config::RemoteConfig;
use crate::format::describe::{self, Files, ManifestState};
use crate::format::manifest::{self, AlembicHead, AnyManifest};
use crate::format::names::{self, BackupKind};
use crate::root::catalog::EntryStatus;

pub use error::RemoteError;
pub use location::RemoteUrl;

/// The most objects a remote listing reads (a backup is at most six objects).
pub const MAX_LISTED_OBJECTS: usize = 100_000;

/// A connection to an object store holding backups under a prefix. Building one sends
/// nothing; every operation is `async` and runs on the caller's tokio runtime.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    display: String,
    /// `None` for a store given to [`Remote::with_store`].
    kind: Option<location::StoreKind>,
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

impl UploadSettings {
    /// The settings `[remote]` gives (`part_size`, `max_parts`, `concurrency`).
    pub fn from_config(config: &RemoteConfig) -> UploadSettings {
        UploadSettings {
            part_size: config.part_size.map(|p| p.0),
            max_parts: config.max_parts,
            concurrency: config.concurrency,
        }
    }
}

impl Default for UploadSettings {
    /// The defaults of `[remote]`: part size chosen per file, S3's part limit.
    fn default() -> UploadSettings {
        UploadSettings::from_config(&RemoteConfig::default())
    }
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
#[non_exhaustive]
pub struct RemoteBackup {
    /// The backup's name (its directory under the prefix).
    pub name: String,
    /// Auto, manual or legacy, from the name or the manifest.
    pub kind: Option<BackupKind>,
    /// When it was made, from the name or the manifest.
    pub created: Option<DateTime<Utc>>,
    /// Complete (or legacy), incomplete or unreadable, and why.
    pub status: EntryStatus,
    /// The Alembic head its manifest records.
    #[serde(skip)]
    pub alembic_head: Option<AlembicHead>,
    /// Whether both signature files are there (checked by a pull, not by a listing).
    #[serde(skip)]
    pub signed: bool,
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
        Ok(Remote {
            store: store::build(&parsed, config, create)?,
            prefix: parsed.prefix.clone(),
            display: parsed.display(),
            kind: Some(parsed.kind),
            settings: UploadSettings::from_config(config),
        })
    }

    /// A remote over a store the embedding program built (e.g.
    /// `object_store::memory::InMemory`, a `LocalFileSystem`, or an S3 client configured
    /// its own way), holding backups under `prefix`. `label` names the remote in messages
    /// and reports in place of a URL: it must not carry secrets. Uploads use the default
    /// [`UploadSettings`] until [`Remote::with_upload_settings`] says otherwise.
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        label: impl Into<String>,
    ) -> Remote {
        Remote {
            store,
            prefix,
            display: label.into(),
            kind: None,
            settings: UploadSettings::default(),
        }
    }

    /// The same remote with these upload settings.
    pub fn with_upload_settings(self, settings: UploadSettings) -> Remote {
        Remote { settings, ..self }
    }

    /// The remote's URL, without user information or query (safe to print), or the label
    /// given to [`Remote::with_store`].
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
    pub async fn list(&self) -> Result<Vec<RemoteBackup>, RemoteError> {
        Ok(self.scan().await?.backups)
    }

    /// Lists every folder under the prefix, sorted into coffer's backups and unknown ones.
    pub async fn scan(&self) -> Result<RemoteCatalog, RemoteError> {
        let (unknown, backups) = self
            .folders()
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
    async fn folders(&self) -> Result<Vec<RemoteBackup>, RemoteError> {
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
            // A folder not named like a backup is unknown whatever it holds: its manifest
            // is not even read.
            let is_backup = names::parse_name(&name).is_some();
            let (manifest, unreadable) = if !is_backup {
                (None, None)
            } else if objects.contains_key(manifest::MANIFEST_FILE) {
                match self.read_manifest(&name).await {
                    Ok(m) => (Some(m), None),
                    Err(e @ RemoteError::Unavailable { .. }) => return Err(e),
                    Err(e) => (None, Some(e.to_string())),
                }
            } else {
                (None, None)
            };
            let state = match (&manifest, &unreadable) {
                (Some(m), _) => ManifestState::Parsed(m),
                (None, Some(why)) => ManifestState::Unreadable(why),
                (None, None) if !is_backup => ManifestState::NotRead,
                (None, None) => ManifestState::Missing,
            };
            let d = describe::describe(&name, state, &objects, Files::Listing);
            let unknown = classify::unknown_reason(&name, &objects, manifest.as_ref());
            out.push(RemoteBackup {
                name,
                kind: d.kind,
                created: d.created,
                status: d.status,
                alembic_head: d.alembic_head,
                signed: d.signed,
                objects,
                manifest,
                unknown,
            });
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.name.cmp(&a.name)));
        Ok(out)
    }

    /// Reads and parses a remote backup's manifest.
    async fn read_manifest(&self, name: &str) -> Result<AnyManifest, RemoteError> {
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
    async fn delete_backup(
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
    ) -> Result<impl AsRef<[u8]> + Send + use<>, RemoteError> {
        self.get_range(path, start, (start + DOWNLOAD_CHUNK).min(size))
            .await
    }

    /// Fetches `[start, end)` of an object, exactly that many bytes (a retry of a transient
    /// error is `object_store`'s, per `remote.max_retries` and `remote.retry_timeout`).
    pub(crate) async fn get_range(
        &self,
        path: &ObjectPath,
        start: u64,
        end: u64,
    ) -> Result<impl AsRef<[u8]> + Send + use<>, RemoteError> {
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

    /// Starts fetching `[start, end)` of an object and yields its body as it arrives, in the
    /// pieces the HTTP client reads (nothing is buffered whole). A transient error, also one
    /// in the middle of the body, is retried by `object_store` (it resumes the same version
    /// of the object), per `remote.max_retries` and `remote.retry_timeout`; the caller
    /// checks the byte count.
    pub(crate) async fn get_range_stream(
        &self,
        path: &ObjectPath,
        start: u64,
        end: u64,
    ) -> Result<futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>, RemoteError>
    {
        let options = object_store::GetOptions::new().with_range(Some(start..end));
        let got = self
            .store
            .get_opts(path, options)
            .await
            .map_err(|e| self.error("download", path.as_ref(), e))?;
        Ok(got.into_stream())
    }

    async fn delete_object(&self, name: &str, file: &str) -> Result<(), RemoteError> {
        let path = self.object(name, file);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", path.as_ref(), e)),
        }
    }
}

/// Runs `work` (file I/O, hashing a large chunk, verifying a pulled backup) on tokio's
/// blocking pool so that the executor's threads stay free; a panic inside it is resumed here.
pub(crate) async fn off_executor<T, F>(work: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
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
