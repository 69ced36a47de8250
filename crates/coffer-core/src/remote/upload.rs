//! Uploading one local backup: its files (resumed where the remote already has them with the
//! local size), hashed on the way and compared with the manifest before an upload is
//! completed, sizes read back, optionally everything read back and hashed, and
//! `manifest.json` last.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::error::{SYNC_STOPPED, check_cancel};
use super::sync::SyncedBackup;
use super::{Remote, RemoteBackup, RemoteError, off_executor, part_size_for};
use crate::context::RunContext;
use crate::format::manifest::{self, AnyManifest};
use crate::root::catalog::BackupEntry;
use crate::util::units;

/// Read size when streaming a file to the remote.
const READ_CHUNK: usize = 1 << 20;
/// Files of one backup uploaded at the same time.
const FILES_IN_PARALLEL: usize = 2;

/// A file to upload and what it must hash to.
struct FileJob {
    name: String,
    local: PathBuf,
    expected: Option<(u64, String)>,
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
            for (_, sig) in crate::format::signing::SIGNED_FILES {
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

/// Uploads `entry` (whose remote copy, if any, is `existing`), recording what was sent in
/// `item`; with `verify` every file is read back and hashed before the manifest goes up.
/// `ctx`'s cancel flag is checked before every file, chunk read and read-back: a stop aborts the
/// multipart upload in progress and never uploads the manifest.
pub(crate) async fn upload_backup(
    remote: &Remote,
    entry: &BackupEntry,
    existing: Option<&RemoteBackup>,
    verify: bool,
    ctx: &RunContext<'_>,
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
    // The futures are made up front: a closure handing out borrowed jobs inside the stream
    // would make the whole sync future lose `Send` (a higher-ranked lifetime rustc cannot
    // prove for it).
    let uploads: Vec<_> = jobs
        .iter()
        .map(|job| upload_or_resume(remote, entry, job, objects, ctx))
        .collect();
    let results: Vec<(String, u64, bool)> = futures::stream::iter(uploads)
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
            check_cancel(ctx.cancel(), "sync", SYNC_STOPPED)?;
            verify_remote_file(remote, entry, job).await?;
        }
        item.verified = true;
    }
    // Last: the manifest, which makes the remote backup complete.
    check_cancel(ctx.cancel(), "sync", SYNC_STOPPED)?;
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

/// Uploads one file unless the remote already has it with the local size; returns its name,
/// the bytes sent and whether it was already there.
async fn upload_or_resume(
    remote: &Remote,
    entry: &BackupEntry,
    job: &FileJob,
    objects: &BTreeMap<String, u64>,
    ctx: &RunContext<'_>,
) -> Result<(String, u64, bool), RemoteError> {
    check_cancel(ctx.cancel(), "sync", SYNC_STOPPED)?;
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
    let sent = upload_file(remote, entry, job, &dest, local_size, ctx).await?;
    Ok((job.name.clone(), sent, false))
}

/// Streams one file to `dest`, hashing it; completes the upload only when the hash matches
/// the manifest. Returns the bytes sent.
async fn upload_file(
    remote: &Remote,
    entry: &BackupEntry,
    job: &FileJob,
    dest: &ObjectPath,
    size: u64,
    ctx: &RunContext<'_>,
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
    ctx.transfer(&format!(
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
            check_cancel(ctx.cancel(), "sync", SYNC_STOPPED)?;
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
            // A legacy artifact may be gigabytes: hashed on the blocking pool.
            let local = job.local.clone();
            let d = off_executor(move || {
                std::fs::File::open(&local).and_then(crate::stream::digest::digest_reader)
            })
            .await
            .map_err(|source| RemoteError::Local {
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
            done += chunk.as_ref().len() as u64;
            // A whole chunk takes tens of milliseconds to hash: not on the executor.
            hasher = off_executor(move || {
                hasher.update(chunk.as_ref());
                hasher
            })
            .await;
        }
        Ok((done, hex::encode(hasher.finalize())))
    }
}
