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
//! After a sync in which every upload succeeded, `super::retention::apply` deletes the
//! remote backups the rules do not keep.
//!
//! Cancellation: the context's [`CancelFlag`](crate::cancel::CancelFlag) is checked between backups, files and chunks read; a
//! stop aborts the multipart upload in progress and fails with
//! [`RemoteError::Interrupted`], leaving no remote backup that looks complete.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::{SYNC_STOPPED, check_cancel};
use super::{Remote, RemoteBackup, RemoteError, retention, upload};
use crate::context::RunContext;
use crate::format::names::BackupKind;
use crate::root::catalog::{self, BackupEntry};
use crate::root::lock::RootLock;
use crate::root::retention::RetentionPolicy;
use crate::util::units;

pub use super::retention::UnknownFolder;

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

/// Syncs the backup root `root` to `remote`, holding the root's lock throughout (prune must
/// not delete a backup being uploaded). Each step is reported to `ctx` as a transfer event;
/// once its cancel flag is set the sync stops at the next file or chunk with
/// [`RemoteError::Interrupted`].
pub async fn run(
    remote: &Remote,
    root: &Path,
    options: &SyncOptions,
    ctx: &RunContext<'_>,
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
        if let crate::root::catalog::EntryStatus::Incomplete(r)
        | crate::root::catalog::EntryStatus::Unreadable(r) = &e.status
        {
            ctx.transfer(&format!(
                "{}: not uploaded, the backup is damaged or invalid: {r}",
                e.name
            ));
        }
    }
    let remote_list = remote.folders().await?;
    let by_name: BTreeMap<&str, &RemoteBackup> =
        remote_list.iter().map(|b| (b.name.as_str(), b)).collect();
    let wanted = retention::wanted(
        options.retention.as_ref(),
        options.now,
        &local,
        &remote_list,
    );
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
                ctx.transfer(&format!(
                    "{}: not uploaded (the remote retention rules would delete it)",
                    entry.name
                ));
            } else {
                check_cancel(ctx.cancel(), "sync", SYNC_STOPPED)?;
                ctx.transfer(&format!("{}: uploading", entry.name));
                upload::upload_backup(remote, entry, existing, options.verify, ctx, &mut item)
                    .await?;
                item.action = SyncAction::Uploaded;
                report.uploaded_bytes += item.uploaded_bytes;
                ctx.transfer(&format!(
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
        let outcome = retention::apply(remote, policy, options.now, ctx).await?;
        report.deleted = outcome.deleted;
        report.unknown = outcome.left;
        latest = outcome.listing;
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
        ctx.transfer(&format!(
            "note: {:?} on the remote is unknown — left alone: {}",
            u.name, u.reason
        ));
    }
    report.duration_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
