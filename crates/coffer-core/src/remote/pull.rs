//! `coffer pull`: a remote backup downloaded into the backup root, all or nothing.
//!
//! The files are streamed into `<root>/.coffer-staging-pull-<name>` (a staging name, so
//! listings ignore it and prune removes it once abandoned) as 0600 files, hashed while they
//! are written and compared with the remote manifest's sizes and SHA-256; then the manifest
//! is written and the whole staging directory is verified as `coffer verify` would (with
//! the identity, encrypted artifacts are decrypted and decompressed to the end). Only then
//! is it renamed into place. On any failure the staging directory is removed and nothing
//! appears in the root.
//!
//! Cancellation: the [`CancelFlag`] is checked before every ranged request and before the
//! copy is put in place; a stop fails with [`RemoteError::Interrupted`] after removing the
//! staging directory. Writing, hashing and verifying run on tokio's blocking pool.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::{PULL_STOPPED, check_cancel};
use super::{Remote, RemoteBackup, RemoteError, off_executor};
use crate::cancel::CancelFlag;
use crate::check::verify::{self, Outcome};
use crate::context::RunContext;
use crate::format::manifest::{self, AnyManifest};
use crate::format::names::STAGING_PREFIX;
use crate::format::signing::{self, SignaturePolicy};
use crate::root::catalog::{BackupEntry, EntryStatus};
use crate::root::lock::RootLock;
use crate::stream::crypto::Identities;
use crate::util::fsutil;

/// What [`run`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    /// The backup's name.
    pub name: String,
    /// Where it is now.
    pub path: PathBuf,
    /// `false` when a complete copy was already in the backup root (nothing downloaded).
    pub downloaded: bool,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Checks that could not be made (e.g. encrypted content without an identity).
    pub not_checked: Vec<String>,
}

/// Which remote backup to pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// The one with this name.
    Name(String),
    /// The newest complete one.
    Latest,
}

/// The staging directory a pull of `name` writes into.
pub fn staging_dir(root: &Path, name: &str) -> PathBuf {
    root.join(format!("{STAGING_PREFIX}pull-{name}"))
}

/// Pulls a remote backup into `root` (created if missing), holding the root's lock.
/// `identities` lets verification check encrypted content; `signatures` says which
/// signatures the copy needs before it is put in place. Each step is reported to `ctx` as a
/// transfer event; once its cancel flag is set the pull stops at the next chunk with
/// [`RemoteError::Interrupted`], leaving nothing in the root.
pub async fn run(
    remote: &Remote,
    root: &Path,
    which: &Which,
    identities: Option<&Identities>,
    signatures: &SignaturePolicy,
    ctx: &RunContext<'_>,
) -> Result<PullReport, RemoteError> {
    fsutil::create_private_dir_all(root).map_err(|source| RemoteError::Local {
        operation: "create the backup root",
        path: root.to_path_buf(),
        source,
    })?;
    let _lock = RootLock::acquire(root, "pull")?;
    let listing = remote.list().await?;
    let backup = choose(remote, &listing, which)?;
    if *which == Which::Latest {
        let future: Vec<&str> = listing
            .iter()
            .filter(|b| b.status.is_usable() && b.is_future(chrono::Utc::now()))
            .map(|b| b.name.as_str())
            .collect();
        if !future.is_empty() {
            ctx.transfer(&format!(
                "warning: passed over {} backup(s) dated in the future (clock skew?): {}; using {}",
                future.len(),
                future.join(", "),
                backup.name
            ));
        }
    }
    let target = root.join(&backup.name);
    if target.exists() {
        let local = BackupEntry::read(&target);
        return match local.status {
            EntryStatus::Complete | EntryStatus::Legacy => {
                ctx.transfer(&format!(
                    "{}: already in {} (complete); nothing downloaded",
                    backup.name,
                    root.display()
                ));
                Ok(PullReport {
                    name: backup.name.clone(),
                    path: target,
                    downloaded: false,
                    bytes: 0,
                    not_checked: Vec::new(),
                })
            }
            EntryStatus::Incomplete(reason) | EntryStatus::Unreadable(reason) => {
                Err(RemoteError::LocalExists {
                    path: target,
                    reason,
                })
            }
        };
    }
    let staging = staging_dir(root, &backup.name);
    let result = download_and_check(remote, backup, &staging, identities, signatures, ctx)
        .await
        // The last chance to stop: after this the copy is in place.
        .and_then(|report| check_cancel(ctx.cancel(), "pull", PULL_STOPPED).map(|()| report));
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let local_err = |operation, source| RemoteError::Local {
        operation,
        path: target.clone(),
        source,
    };
    if let Err(e) = fsutil::publish_staging(&staging, &target) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(local_err("rename the pulled backup to", e));
    }
    fsutil::sync_dir(root).map_err(|e| local_err("sync", e))?;
    Ok(PullReport {
        path: target,
        ..report
    })
}

/// The backup `which` names in `listing`, checked usable.
pub(super) fn choose<'a>(
    remote: &Remote,
    listing: &'a [RemoteBackup],
    which: &Which,
) -> Result<&'a RemoteBackup, RemoteError> {
    match which {
        // A backup dated in the future (clock skew) is never the latest silently.
        Which::Latest => listing
            .iter()
            .find(|b| b.status.is_usable() && !b.is_future(chrono::Utc::now()))
            .ok_or_else(|| RemoteError::NoneComplete {
                remote: remote.display.clone(),
            }),
        Which::Name(name) => {
            let b =
                listing
                    .iter()
                    .find(|b| b.name == *name)
                    .ok_or_else(|| RemoteError::NotFound {
                        name: name.clone(),
                        remote: remote.display.clone(),
                    })?;
            if let Some(AnyManifest::Coffer(m)) = &b.manifest {
                // The manifest is uploaded last and deleted first: an artifact of another
                // size next to it was changed on the remote, not left half-way by a sync.
                for a in &m.artifacts {
                    if let Some(&found) = b.objects.get(&a.file)
                        && found != a.size
                    {
                        return Err(RemoteError::Damaged {
                            name: name.clone(),
                            remote: remote.display.clone(),
                            detail: format!(
                                "{}: size is {found}, the manifest says {}",
                                remote.object(name, &a.file),
                                a.size
                            ),
                        });
                    }
                }
            }
            match &b.status {
                EntryStatus::Complete | EntryStatus::Legacy => Ok(b),
                EntryStatus::Incomplete(r) | EntryStatus::Unreadable(r) => {
                    Err(RemoteError::Incomplete {
                        name: name.clone(),
                        remote: remote.display.clone(),
                        reason: r.clone(),
                    })
                }
            }
        }
    }
}

async fn download_and_check(
    remote: &Remote,
    backup: &RemoteBackup,
    staging: &Path,
    identities: Option<&Identities>,
    signatures: &SignaturePolicy,
    ctx: &RunContext<'_>,
) -> Result<PullReport, RemoteError> {
    let local_err = |operation, path: &Path, source| RemoteError::Local {
        operation,
        path: path.to_path_buf(),
        source,
    };
    if std::fs::symlink_metadata(staging).is_ok() {
        // Left by a pull that was killed (we hold the lock, so nobody is writing it): only
        // removed when it carries coffer's marker, anything else is not ours to delete.
        if !std::fs::symlink_metadata(staging).is_ok_and(|m| m.is_dir())
            || !fsutil::has_staging_marker(staging)
        {
            return Err(local_err(
                "use (it exists and is not a staging directory coffer marked; move it away)",
                staging,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        std::fs::remove_dir_all(staging).map_err(|e| local_err("remove", staging, e))?;
    }
    fsutil::create_staging_dir(staging).map_err(|e| local_err("create", staging, e))?;
    let expected: Vec<(String, Option<(u64, String)>)> = match &backup.manifest {
        Some(AnyManifest::Coffer(m)) => {
            let mut v: Vec<_> = m
                .artifacts
                .iter()
                .map(|a| (a.file.clone(), Some((a.size, a.sha256.clone()))))
                .collect();
            if let Some(&size) = backup.objects.get(manifest::SUMS_FILE) {
                // Bounded like every metadata read: a giant object is not downloaded.
                if size > crate::format::sums::SUMS_CAP {
                    return Err(RemoteError::Damaged {
                        name: backup.name.clone(),
                        remote: remote.url().to_string(),
                        detail: format!(
                            "{} is {size} bytes, more than the {} coffer reads",
                            manifest::SUMS_FILE,
                            crate::format::sums::SUMS_CAP
                        ),
                    });
                }
                v.push((manifest::SUMS_FILE.to_string(), None));
            }
            for (_, sig) in signing::SIGNED_FILES {
                if backup.objects.contains_key(sig) {
                    v.push((sig.to_string(), None));
                }
            }
            v
        }
        _ => {
            let mut v = Vec::new();
            for (f, &size) in &backup.objects {
                if f.as_str() == manifest::MANIFEST_FILE {
                    continue;
                }
                crate::format::names::check_artifact_file_name(f).map_err(|reason| {
                    RemoteError::Damaged {
                        name: backup.name.clone(),
                        remote: remote.url().to_string(),
                        detail: format!("object {reason}"),
                    }
                })?;
                v.push((f.clone(), Some((size, String::new()))));
            }
            v
        }
    };
    // A signature is a few hundred bytes: one listed as larger is not downloaded at all.
    for (_, sig) in signing::SIGNED_FILES {
        if let Some(&size) = backup.objects.get(sig)
            && size > signing::MAX_SIGNATURE_BYTES
        {
            return Err(RemoteError::Damaged {
                name: backup.name.clone(),
                remote: remote.display.clone(),
                detail: format!(
                    "bad signature: {} is {size} bytes, more than a signature can be",
                    remote.object(&backup.name, sig)
                ),
            });
        }
    }
    let mut bytes = 0u64;
    async {
        for (file, expect) in &expected {
            ctx.transfer(&format!("{}: downloading {file}", backup.name));
            let dest = staging.join(file);
            let listed = backup.objects.get(file).copied().unwrap_or(0);
            let (size, sha) =
                download(remote, &backup.name, file, listed, &dest, ctx.cancel()).await?;
            if let Some((want_size, want_sha)) = expect {
                let object = remote.object(&backup.name, file).to_string();
                let mismatch = |what, expected: String, actual: String| RemoteError::Mismatch {
                    remote: remote.display.clone(),
                    object: object.clone(),
                    what,
                    expected,
                    actual,
                };
                if size != *want_size {
                    return Err(mismatch("size", want_size.to_string(), size.to_string()));
                }
                if !want_sha.is_empty() && sha != *want_sha {
                    return Err(mismatch("sha256", want_sha.clone(), sha));
                }
            }
            bytes += size;
        }
        let manifest_size = backup
            .objects
            .get(manifest::MANIFEST_FILE)
            .copied()
            .unwrap_or(0);
        download(
            remote,
            &backup.name,
            manifest::MANIFEST_FILE,
            manifest_size,
            &staging.join(manifest::MANIFEST_FILE),
            ctx.cancel(),
        )
        .await?;
        Ok::<_, RemoteError>(())
    }
    .await
    .map_err(|e| match e {
        RemoteError::Mismatch {
            object,
            what,
            expected,
            actual,
            ..
        } => RemoteError::Damaged {
            name: backup.name.clone(),
            remote: remote.display.clone(),
            detail: format!("{object}: {what} is {actual}, the manifest says {expected}"),
        },
        other => other,
    })?;
    fsutil::sync_dir(staging).map_err(|e| local_err("sync", staging, e))?;
    ctx.transfer(&format!("{}: verifying the downloaded copy", backup.name));
    let mut entry = BackupEntry::read(staging);
    entry.name = backup.name.clone();
    // Decrypting and decompressing every artifact to the end: minutes for a large backup.
    let (identities, signatures) = (identities.cloned(), signatures.clone());
    let report =
        off_executor(move || verify::verify_signed(&entry, identities.as_ref(), &signatures)).await;
    let failed = report.failures();
    if !failed.is_empty() {
        return Err(RemoteError::Damaged {
            name: backup.name.clone(),
            remote: remote.display.clone(),
            detail: failed.join("; "),
        });
    }
    let not_checked = report
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::NotChecked)
        .map(|c| format!("{}: {}", c.subject, c.detail))
        .collect();
    Ok(PullReport {
        name: backup.name.clone(),
        path: staging.to_path_buf(),
        downloaded: true,
        bytes,
        not_checked,
    })
}

/// Streams one object of `size` bytes (as listed) into a new 0600 file, in ranged requests,
/// fsynced; returns the size and SHA-256 written. `cancel` is checked before each request.
async fn download(
    remote: &Remote,
    name: &str,
    file: &str,
    size: u64,
    dest: &Path,
    cancel: &CancelFlag,
) -> Result<(u64, String), RemoteError> {
    let object = remote.object(name, file);
    let local_err = |source| RemoteError::Local {
        operation: "write",
        path: dest.to_path_buf(),
        source,
    };
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(fsutil::FILE_MODE)
        .open(dest)
        .map_err(local_err)?;
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    while done < size {
        check_cancel(cancel, "pull", PULL_STOPPED)?;
        let chunk = remote.get_chunk(&object, done, size).await?;
        done += chunk.as_ref().len() as u64;
        // Writing and hashing a whole chunk (tens of MiB) runs on the blocking pool.
        (out, hasher) = off_executor(move || {
            hasher.update(chunk.as_ref());
            out.write_all(chunk.as_ref()).map(|()| (out, hasher))
        })
        .await
        .map_err(local_err)?;
    }
    off_executor(move || out.sync_all())
        .await
        .map_err(local_err)?;
    Ok((done, hex::encode(hasher.finalize())))
}
