//! `coffer sync`: uploads every usable local backup that is missing or incomplete on the
//! remote, then applies the remote retention rules.
//!
//! Per backup: an incomplete remote copy first loses its manifest (if it has one), then each
//! file is uploaded unless the remote already has it with the local size (an interrupted
//! sync resumes there), two files at a time, each as a streaming multipart upload with
//! `concurrency` parts in flight (memory stays near `(concurrency + 1) × part size` per
//! file). The SHA-256 of what is sent is computed on the way and compared with the manifest
//! **before** the upload is completed, so a local artifact that changed or rotted never
//! becomes a remote object; after completion the object's size is read back (`HEAD`). Only
//! when every file is there is `manifest.json` written, last. Any failure aborts the
//! multipart upload and leaves the remote backup without a manifest: never complete.
//!
//! Retention: local backups that the remote rules would delete right away are not uploaded
//! (so a shorter remote policy does not upload and delete the same backup every night).
//! After a sync in which every upload succeeded, remote backups the rules do not keep are
//! deleted, manifest first — only complete ones, never manual ones, never the newest
//! complete one, never one dated in the future by its name or manifest
//! ([`crate::retention::decide`]'s rules, the same as local pruning), and only folders
//! [`super::classify`] knows as coffer's: every other folder is reported as unknown and left
//! alone, and a deletion removes only the objects coffer wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{Remote, RemoteBackup, RemoteError, part_size_for};
use crate::catalog::{self, BackupEntry};
use crate::lock::RootLock;
use crate::manifest::{self, AnyManifest};
use crate::names::BackupKind;
use crate::retention::{self, Candidate, RetentionPolicy};
use crate::units;

/// Read size when streaming a file to the remote.
const READ_CHUNK: usize = 1 << 20;
/// Files of one backup uploaded at the same time.
const FILES_IN_PARALLEL: usize = 2;

/// What `coffer sync` is asked to do.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Read back and hash every file uploaded by this run.
    pub verify: bool,
    /// The remote retention rules; `None` keeps everything on the remote.
    pub retention: Option<RetentionPolicy>,
    /// The time retention decides for.
    pub now: DateTime<Utc>,
}

/// What happened to one local backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncAction {
    /// Uploaded (or its upload completed) by this run.
    Uploaded,
    /// Already complete on the remote.
    AlreadyComplete,
    /// Not uploaded: the remote retention rules would delete it at once.
    OutsideRetention,
}

/// One local backup and what sync did with it.
#[derive(Debug, Clone, Serialize)]
pub struct SyncedBackup {
    /// The backup's name.
    pub name: String,
    /// Its kind, when known.
    pub kind: Option<BackupKind>,
    /// What was done.
    pub action: SyncAction,
    /// Bytes sent for it by this run.
    pub uploaded_bytes: u64,
    /// Files that were already on the remote with the right size (resumed uploads).
    pub resumed_files: Vec<String>,
    /// Whether the remote copy was read back and hashed (`--verify`).
    pub verified: bool,
}

/// A folder under the remote prefix that coffer does not know, and why.
#[derive(Debug, Clone, Serialize)]
pub struct UnknownFolder {
    /// Its name under the prefix.
    pub name: String,
    /// Why coffer does not take it for its own.
    pub reason: String,
}

/// What [`run`] did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// The remote (URL without secrets).
    pub remote: String,
    /// Every usable local backup, newest first.
    pub backups: Vec<SyncedBackup>,
    /// Remote backups deleted by the remote retention rules.
    pub deleted: Vec<String>,
    /// Folders on the remote that are not coffer's backups: left alone.
    pub unknown: Vec<UnknownFolder>,
    /// Bytes sent in all.
    pub uploaded_bytes: u64,
    /// Wall time in seconds.
    pub duration_seconds: f64,
}

impl SyncReport {
    /// A one-line summary for logs and the run log.
    pub fn summary(&self) -> String {
        let count = |a| self.backups.iter().filter(|b| b.action == a).count();
        format!(
            "{} uploaded ({}), {} already complete, {} outside remote retention, {} deleted from the remote{}",
            count(SyncAction::Uploaded),
            units::bytes(self.uploaded_bytes),
            count(SyncAction::AlreadyComplete),
            count(SyncAction::OutsideRetention),
            self.deleted.len(),
            if self.unknown.is_empty() {
                String::new()
            } else {
                format!(", {} unknown on the remote left alone", self.unknown.len())
            }
        )
    }

    /// The newest backup uploaded by this run, if any.
    pub fn newest_uploaded(&self) -> Option<&SyncedBackup> {
        self.backups
            .iter()
            .find(|b| b.action == SyncAction::Uploaded)
    }
}

/// A file to upload and what it must hash to.
struct FileJob {
    name: String,
    local: PathBuf,
    expected: Option<(u64, String)>,
}

/// Syncs the backup root `root` to `remote`, holding the root's lock throughout (prune must
/// not delete a backup being uploaded). `events` receives one line per step.
pub fn run(
    remote: &Remote,
    root: &Path,
    options: &SyncOptions,
    events: &dyn Fn(String),
) -> Result<SyncReport, RemoteError> {
    let started = Instant::now();
    if !root.is_dir() {
        return Err(catalog::CatalogError::ReadRoot {
            path: root.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
        }
        .into());
    }
    let _lock = RootLock::acquire(root, "sync")?;
    let (local, refused): (Vec<BackupEntry>, Vec<BackupEntry>) = catalog::list(root)?
        .into_iter()
        .partition(|e| e.status.is_usable());
    // A damaged or invalid backup (e.g. a manifest naming files outside the directory) is
    // never uploaded: say so rather than skip it silently.
    for e in &refused {
        if let crate::catalog::EntryStatus::Incomplete(r)
        | crate::catalog::EntryStatus::Unreadable(r) = &e.status
        {
            events(format!(
                "{}: not uploaded, the backup is damaged or invalid: {r}",
                e.name
            ));
        }
    }
    remote.runtime.block_on(async {
        let remote_list = remote.list_async().await?;
        let by_name: BTreeMap<&str, &RemoteBackup> =
            remote_list.iter().map(|b| (b.name.as_str(), b)).collect();
        let wanted = wanted_by_retention(options, &local, &remote_list);
        let mut report = SyncReport {
            remote: remote.display.clone(),
            backups: Vec::new(),
            deleted: Vec::new(),
            unknown: Vec::new(),
            uploaded_bytes: 0,
            duration_seconds: 0.0,
        };
        for entry in &local {
            let existing = by_name.get(entry.name.as_str()).copied();
            let complete = existing.is_some_and(|b| b.status.is_usable());
            let mut item = SyncedBackup {
                name: entry.name.clone(),
                kind: entry.kind,
                action: SyncAction::AlreadyComplete,
                uploaded_bytes: 0,
                resumed_files: Vec::new(),
                verified: false,
            };
            if !complete {
                if !wanted.contains(&entry.name) {
                    item.action = SyncAction::OutsideRetention;
                    events(format!(
                        "{}: not uploaded (the remote retention rules would delete it)",
                        entry.name
                    ));
                } else {
                    events(format!("{}: uploading", entry.name));
                    upload_backup(remote, entry, existing, options.verify, events, &mut item)
                        .await?;
                    item.action = SyncAction::Uploaded;
                    report.uploaded_bytes += item.uploaded_bytes;
                    events(format!(
                        "✓ {}: complete on the remote ({} sent{}{})",
                        entry.name,
                        units::bytes(item.uploaded_bytes),
                        if item.resumed_files.is_empty() {
                            String::new()
                        } else {
                            format!(", resumed: {} already there", item.resumed_files.join(", "))
                        },
                        if item.verified {
                            ", read back and verified"
                        } else {
                            ""
                        }
                    ));
                }
            }
            report.backups.push(item);
        }
        let mut latest = remote_list.clone();
        if let Some(policy) = &options.retention {
            latest = remote.list_async().await?;
            let remote_list = &latest;
            for doomed in remote_deletions(policy, remote_list, options.now) {
                match remote.delete_backup_async(doomed).await? {
                    Ok(()) => {
                        events(format!(
                            "{}: deleted from the remote (remote retention)",
                            doomed.name
                        ));
                        report.deleted.push(doomed.name.clone());
                    }
                    Err(reason) => report.unknown.push(UnknownFolder {
                        name: doomed.name.clone(),
                        reason,
                    }),
                }
            }
        }
        for folder in latest {
            if let Some(reason) = folder.unknown
                && !report.unknown.iter().any(|u| u.name == folder.name)
            {
                report.unknown.push(UnknownFolder {
                    name: folder.name,
                    reason,
                });
            }
        }
        report.unknown.sort_by(|a, b| a.name.cmp(&b.name));
        for u in &report.unknown {
            events(format!(
                "note: {:?} on the remote is unknown — left alone: {}",
                u.name, u.reason
            ));
        }
        report.duration_seconds = started.elapsed().as_secs_f64();
        Ok(report)
    })
}

/// Names of the local backups the remote should hold: those remote retention keeps when
/// they are added to the remote's complete backups. Everything without a policy.
fn wanted_by_retention(
    options: &SyncOptions,
    local: &[BackupEntry],
    remote: &[RemoteBackup],
) -> std::collections::BTreeSet<String> {
    let Some(policy) = &options.retention else {
        return local.iter().map(|e| e.name.clone()).collect();
    };
    let mut candidates: BTreeMap<String, Candidate> = BTreeMap::new();
    for b in remote.iter().filter(|b| b.is_deletable()) {
        if let (Some(kind), Some(time)) = (b.kind, b.created) {
            candidates.insert(
                b.name.clone(),
                Candidate {
                    name: b.name.clone(),
                    kind,
                    time,
                    complete: true,
                },
            );
        }
    }
    let mut unknown = std::collections::BTreeSet::new();
    for e in local {
        match (e.kind, e.created) {
            (Some(kind), Some(time)) => {
                candidates.insert(
                    e.name.clone(),
                    Candidate {
                        name: e.name.clone(),
                        kind,
                        time,
                        complete: true,
                    },
                );
            }
            // Kind or time unknown: retention cannot judge it, so it is uploaded.
            _ => {
                unknown.insert(e.name.clone());
            }
        }
    }
    let candidates: Vec<Candidate> = candidates.into_values().collect();
    let mut keep: std::collections::BTreeSet<String> =
        retention::decide(policy, &candidates, options.now, true)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.name)
            .collect();
    keep.extend(unknown);
    keep
}

/// The remote backups that retention deletes: complete ones of coffer's the rules do not
/// keep. Incomplete ones are left for the next sync to finish (or for a person to look at);
/// unknown folders are not even candidates (they neither count nor go), and one dated in the
/// future by its manifest is kept like one dated so by its name.
pub fn remote_deletions<'a>(
    policy: &RetentionPolicy,
    remote: &'a [RemoteBackup],
    now: DateTime<Utc>,
) -> Vec<&'a RemoteBackup> {
    let candidates: Vec<Candidate> = remote
        .iter()
        .filter(|b| b.unknown.is_none())
        .filter_map(|b| {
            Some(Candidate {
                name: b.name.clone(),
                kind: b.kind?,
                time: b.created?,
                complete: b.status.is_usable(),
            })
        })
        .collect();
    let doomed: std::collections::BTreeSet<String> =
        retention::decide(policy, &candidates, now, true)
            .into_iter()
            .filter(|d| !d.keep)
            .map(|d| d.name)
            .collect();
    remote
        .iter()
        .filter(|b| doomed.contains(&b.name) && b.is_deletable() && !b.is_future(now))
        .collect()
}

/// The files of a local backup to upload, manifest excluded (it goes last).
fn files_of(entry: &BackupEntry) -> Result<Vec<FileJob>, RemoteError> {
    let mut jobs = Vec::new();
    match &entry.manifest {
        Some(AnyManifest::Coffer(m)) => {
            for a in &m.artifacts {
                jobs.push(FileJob {
                    name: a.file.clone(),
                    local: entry.path.join(&a.file),
                    expected: Some((a.size, a.sha256.clone())),
                });
            }
            let sums = entry.path.join(manifest::SUMS_FILE);
            if sums.is_file() {
                jobs.push(FileJob {
                    name: manifest::SUMS_FILE.into(),
                    local: sums,
                    expected: None,
                });
            }
            // The signatures go up before the manifest, which marks the copy complete.
            for (_, sig) in crate::signing::SIGNED_FILES {
                let local = entry.path.join(sig);
                if local.symlink_metadata().is_ok_and(|m| m.is_file()) {
                    jobs.push(FileJob {
                        name: sig.into(),
                        local,
                        expected: None,
                    });
                }
            }
        }
        _ => {
            // Legacy: every regular file of the directory, as the script left it.
            let rd = std::fs::read_dir(&entry.path).map_err(|source| RemoteError::Local {
                operation: "read",
                path: entry.path.clone(),
                source,
            })?;
            for d in rd.filter_map(Result::ok) {
                let name = d.file_name().to_string_lossy().into_owned();
                if name != manifest::MANIFEST_FILE
                    && !name.starts_with('.')
                    && d.file_type().is_ok_and(|t| t.is_file())
                {
                    jobs.push(FileJob {
                        name,
                        local: d.path(),
                        expected: None,
                    });
                }
            }
            jobs.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }
    Ok(jobs)
}

async fn upload_backup(
    remote: &Remote,
    entry: &BackupEntry,
    existing: Option<&RemoteBackup>,
    verify: bool,
    events: &dyn Fn(String),
    item: &mut SyncedBackup,
) -> Result<(), RemoteError> {
    let empty = BTreeMap::new();
    let objects = existing.map_or(&empty, |b| &b.objects);
    // An incomplete copy must not keep a manifest while its artifacts are replaced.
    if objects.contains_key(manifest::MANIFEST_FILE) {
        remote
            .delete_object(&entry.name, manifest::MANIFEST_FILE)
            .await?;
    }
    let jobs = files_of(entry)?;
    let results: Vec<(String, u64, bool)> = futures::stream::iter(jobs.iter())
        .map(|job| async move {
            let local_size = std::fs::metadata(&job.local)
                .map_err(|source| RemoteError::Local {
                    operation: "read",
                    path: job.local.clone(),
                    source,
                })?
                .len();
            if objects.get(&job.name) == Some(&local_size) {
                return Ok((job.name.clone(), 0, true));
            }
            let dest = remote.object(&entry.name, &job.name);
            let sent = upload_file(remote, entry, job, &dest, local_size, events).await?;
            Ok::<_, RemoteError>((job.name.clone(), sent, false))
        })
        .buffer_unordered(FILES_IN_PARALLEL)
        .try_collect()
        .await?;
    for (name, sent, resumed) in results {
        item.uploaded_bytes += sent;
        if resumed {
            item.resumed_files.push(name);
        }
    }
    item.resumed_files.sort();
    if verify {
        for job in &jobs {
            verify_remote_file(remote, entry, job).await?;
        }
        item.verified = true;
    }
    // Last: the manifest, which makes the remote backup complete.
    let manifest_path = entry.path.join(manifest::MANIFEST_FILE);
    let bytes = tokio::fs::read(&manifest_path)
        .await
        .map_err(|source| RemoteError::Local {
            operation: "read",
            path: manifest_path.clone(),
            source,
        })?;
    let len = bytes.len() as u64;
    let dest = remote.object(&entry.name, manifest::MANIFEST_FILE);
    remote
        .store
        .put(&dest, PutPayload::from(bytes))
        .await
        .map_err(|e| remote.error("upload", dest.as_ref(), e))?;
    check_size(remote, &dest, len).await?;
    item.uploaded_bytes += len;
    Ok(())
}

/// Streams one file to `dest`, hashing it; completes the upload only when the hash matches
/// the manifest. Returns the bytes sent.
async fn upload_file(
    remote: &Remote,
    entry: &BackupEntry,
    job: &FileJob,
    dest: &ObjectPath,
    size: u64,
    events: &dyn Fn(String),
) -> Result<u64, RemoteError> {
    let local_err = |source| RemoteError::Local {
        operation: "read",
        path: job.local.clone(),
        source,
    };
    if let Some((expected_size, _)) = &job.expected
        && *expected_size != size
    {
        return Err(RemoteError::LocalDamaged {
            path: entry.path.clone(),
            detail: format!(
                "{} is {size} bytes, its manifest says {expected_size}",
                job.name
            ),
        });
    }
    let settings = remote.settings;
    let part = part_size_for(size, settings.part_size, settings.max_parts);
    let mut file = tokio::fs::File::open(&job.local).await.map_err(local_err)?;
    let mut hasher = Sha256::new();
    let check_hash = |hasher: Sha256| -> Result<(), RemoteError> {
        let actual = hex::encode(hasher.finalize());
        match &job.expected {
            Some((_, sha)) if *sha != actual => Err(RemoteError::LocalDamaged {
                path: entry.path.clone(),
                detail: format!("{} has sha256 {actual}, its manifest says {sha}", job.name),
            }),
            _ => Ok(()),
        }
    };
    if size < part {
        // One request: small files (SHA256SUMS, small artifacts).
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes).await.map_err(local_err)?;
        hasher.update(&bytes);
        check_hash(hasher)?;
        let sent = bytes.len() as u64;
        remote
            .store
            .put(dest, PutPayload::from(bytes))
            .await
            .map_err(|e| remote.error("upload", dest.as_ref(), e))?;
        check_size(remote, dest, sent).await?;
        return Ok(sent);
    }
    let parts = size.div_ceil(part);
    events(format!(
        "{}: {} ({}) in {parts} part(s) of {}",
        entry.name,
        job.name,
        units::bytes(size),
        units::bytes(part)
    ));
    let upload = remote
        .store
        .put_multipart(dest)
        .await
        .map_err(|e| remote.error("start multipart upload of", dest.as_ref(), e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part as usize);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut sent = 0u64;
    let outcome: Result<(), RemoteError> = async {
        loop {
            let n = file.read(&mut buf).await.map_err(local_err)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            writer
                .wait_for_capacity(settings.concurrency)
                .await
                .map_err(|e| remote.error("upload", dest.as_ref(), e))?;
            writer.write(&buf[..n]);
            sent += n as u64;
        }
        Ok(())
    }
    .await;
    let outcome = outcome.and_then(|()| {
        if sent != size {
            return Err(RemoteError::LocalDamaged {
                path: entry.path.clone(),
                detail: format!("{} changed size while being uploaded", job.name),
            });
        }
        check_hash(hasher)
    });
    if let Err(e) = outcome {
        // Never complete an upload that failed or does not match: abort it.
        let _ = writer.abort().await;
        return Err(e);
    }
    writer
        .finish()
        .await
        .map_err(|e| remote.error("complete multipart upload of", dest.as_ref(), e))?;
    check_size(remote, dest, size).await?;
    Ok(sent)
}

/// `HEAD`s an uploaded object and compares its size; a wrong one is deleted again.
async fn check_size(remote: &Remote, dest: &ObjectPath, expected: u64) -> Result<(), RemoteError> {
    let meta = remote
        .store
        .head(dest)
        .await
        .map_err(|e| remote.error("check the size of", dest.as_ref(), e))?;
    if meta.size != expected {
        let _ = remote.store.delete(dest).await;
        return Err(RemoteError::Mismatch {
            remote: remote.display.clone(),
            object: dest.to_string(),
            what: "size after upload",
            expected: expected.to_string(),
            actual: meta.size.to_string(),
        });
    }
    Ok(())
}

/// Reads a remote file back to the end and compares size and SHA-256 with the manifest (or,
/// for files without a recorded hash, with the local file).
async fn verify_remote_file(
    remote: &Remote,
    entry: &BackupEntry,
    job: &FileJob,
) -> Result<(), RemoteError> {
    let (size, sha) = match &job.expected {
        Some((size, sha)) => (*size, sha.clone()),
        None => {
            let file = std::fs::File::open(&job.local).map_err(|source| RemoteError::Local {
                operation: "read",
                path: job.local.clone(),
                source,
            })?;
            let d = crate::digest::digest_reader(file).map_err(|source| RemoteError::Local {
                operation: "read",
                path: job.local.clone(),
                source,
            })?;
            (d.size, d.sha256)
        }
    };
    let dest = remote.object(&entry.name, &job.name);
    let stored = remote
        .store
        .head(&dest)
        .await
        .map_err(|e| remote.error("check the size of", dest.as_ref(), e))?
        .size;
    let (got_size, got_sha) = remote.hash_object(&dest, stored).await?;
    if got_size != size || got_sha != sha {
        return Err(RemoteError::Mismatch {
            remote: remote.display.clone(),
            object: dest.to_string(),
            what: "read-back size and sha256",
            expected: format!("{size} bytes, {sha}"),
            actual: format!("{got_size} bytes, {got_sha}"),
        });
    }
    Ok(())
}

impl Remote {
    /// Downloads an object of `size` bytes in ranges and returns its size and SHA-256.
    pub(crate) async fn hash_object(
        &self,
        path: &ObjectPath,
        size: u64,
    ) -> Result<(u64, String), RemoteError> {
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        while done < size {
            let chunk = self.get_chunk(path, done, size).await?;
            hasher.update(chunk.as_ref());
            done += chunk.as_ref().len() as u64;
        }
        Ok((done, hex::encode(hasher.finalize())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::EntryStatus;

    /// A legacy-named remote folder with a scripts' manifest dated `stamp`.
    fn folder(name: &str, stamp: &str, status: EntryStatus, unknown: Option<&str>) -> RemoteBackup {
        let text = format!(r#"{{"timestamp":"{stamp}"}}"#);
        let manifest = manifest::parse_bytes(text.as_bytes(), "test").unwrap();
        let parsed = crate::names::parse_name(name);
        RemoteBackup {
            name: name.into(),
            kind: parsed.map(|p| p.kind),
            created: parsed.map(|p| p.time),
            status,
            objects: BTreeMap::new(),
            manifest: Some(manifest),
            unknown: unknown.map(Into::into),
        }
    }

    /// Every rule off: only the newest complete backup of coffer's is kept, and only
    /// complete backups of coffer's not dated in the future are deleted. Unknown folders
    /// neither go nor count (an unknown newer one does not displace the newest).
    #[test]
    fn remote_deletions_table() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T08:00:00Z")
            .unwrap()
            .to_utc();
        let policy = RetentionPolicy {
            keep_days: None,
            ..RetentionPolicy::default()
        };
        let foreign = Some("holds what coffer did not write: \"report.csv\"");
        let remote = vec![
            folder(
                "2026-12-01-120000",
                "2026-12-01-120000",
                EntryStatus::Legacy,
                foreign,
            ),
            folder(
                "2026-12-01-000000",
                "2026-12-01-000000",
                EntryStatus::Legacy,
                None,
            ),
            folder(
                "2020-01-04-000000",
                "2020-01-04-000000",
                EntryStatus::Incomplete("x".into()),
                None,
            ),
            folder(
                "2020-01-03-000000",
                "2099-01-01-000000",
                EntryStatus::Legacy,
                None,
            ),
            folder(
                "2020-01-02-000000",
                "2020-01-02-000000",
                EntryStatus::Legacy,
                foreign,
            ),
            folder(
                "2020-01-01-000000",
                "2020-01-01-000000",
                EntryStatus::Legacy,
                None,
            ),
            folder(
                "exports",
                "2020-01-01-000000",
                EntryStatus::Legacy,
                Some("folder not named like a backup"),
            ),
        ];
        let doomed: Vec<&str> = remote_deletions(&policy, &remote, now)
            .into_iter()
            .map(|b| b.name.as_str())
            .collect();
        assert_eq!(doomed, ["2020-01-01-000000"]);
    }
}
