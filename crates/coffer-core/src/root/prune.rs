//! Pruning a backup root: [`plan`] lists every backup with what [`retention::decide`] says
//! about it, plus the staging directories left by killed runs; [`execute`] deletes what the
//! plan says to delete, and nothing else.
//!
//! Prune deletes only what it positively knows is coffer's. On top of the retention rules
//! (the newest complete backup is always kept, manual backups never pruned):
//! - [`run`] holds the backup root's lock while planning and deleting, so a backup cannot
//!   be published in between and prune never sees a backup in progress;
//! - only complete backups coffer can identify ([`BackupEntry::unproven`]) are given to
//!   retention; everything else in the root — incomplete or unreadable backups, directories
//!   not named like backups, symlinks, files, staging-named directories without coffer's
//!   marker — is listed as unknown and left alone: it may hold data, and a person should
//!   look at it;
//! - at deletion time each entry is checked again to still be what it was judged to be;
//!   nothing is followed through a symlink;
//! - a backup is first marked and renamed to a hidden staging name, then removed, so an
//!   interrupted delete never leaves a directory that looks like a backup; the leftover
//!   carries the marker and is removed as a stale staging directory by a later prune;
//! - staging directories are removed only when they carry the marker coffer wrote when it
//!   created them and nothing in them changed for a day.
//!
//! Pruning after a failed backup does not happen at all: the caller does not call it (and
//! [`retention::decide`] with `last_run_succeeded = false` would keep everything anyway).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::format::names::{self, BackupKind};
use crate::root::catalog::{self, BackupEntry, CatalogError, UnknownEntry};
use crate::root::lock::{LockError, RootLock};
use crate::root::retention::{self, Candidate, RetentionPolicy};

/// Staging directories untouched for longer than this are abandoned.
pub const STALE_STAGING_AFTER: TimeDelta = TimeDelta::hours(24);

/// Why pruning could not start.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// Another coffer run holds the root.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The root could not be listed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// No complete backup of that name is in the root (unknown entries are never deleted).
    #[error(
        "no complete backup named {name:?} in the backup root; list the backups to see their names"
    )]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// Deleting it would leave the root without its newest complete backup.
    #[error(
        "refusing to delete {name}: it is the newest complete backup, the one a restore would use; make a newer backup first"
    )]
    Newest {
        /// The name asked for.
        name: String,
    },
    /// Some deletions failed (the others were done).
    #[error("cannot delete {path}: {reason}{more}; check the permissions of the backup root")]
    Delete {
        /// The first entry that could not be deleted.
        path: PathBuf,
        /// Why.
        reason: String,
        /// `" (and N more)"` when several failed.
        more: String,
    },
}

/// One backup and what to do with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneItem {
    /// Directory name.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Kind, when known.
    pub kind: Option<BackupKind>,
    /// When it was taken, when known.
    pub time: Option<DateTime<Utc>>,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// `false` to delete it.
    pub keep: bool,
    /// Why, as text (the retention rules' reasons, in order).
    pub reasons: Vec<String>,
}

/// A staging directory left by a backup or pull that did not finish.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StagingItem {
    /// Directory name (`.coffer-staging-…`).
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// The last time anything in it changed.
    pub modified: DateTime<Utc>,
    /// `false` to delete it (untouched for a day).
    pub keep: bool,
}

/// What a prune will do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrunePlan {
    /// The backup root.
    pub root: PathBuf,
    /// The time the decisions were made for.
    pub now: DateTime<Utc>,
    /// Every backup, newest first.
    pub backups: Vec<PruneItem>,
    /// Every staging directory.
    pub staging: Vec<StagingItem>,
    /// Everything in the root coffer does not positively know as its own: left alone.
    pub unknown: Vec<UnknownEntry>,
}

impl PrunePlan {
    /// The backups to delete.
    pub fn to_delete(&self) -> impl Iterator<Item = &PruneItem> {
        self.backups.iter().filter(|b| !b.keep)
    }

    /// The staging directories to delete.
    pub fn stale_staging(&self) -> impl Iterator<Item = &StagingItem> {
        self.staging.iter().filter(|s| !s.keep)
    }

    /// Bytes the deletions free.
    pub fn bytes_to_free(&self) -> u64 {
        self.to_delete().map(|b| b.size_bytes).sum()
    }
}

/// What `execute` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PruneReport {
    /// The plan carried out.
    pub plan: PrunePlan,
    /// Whether nothing was deleted on purpose (`--dry-run`).
    pub dry_run: bool,
    /// Names of the backups and staging directories deleted.
    pub deleted: Vec<String>,
    /// Bytes of the backups deleted.
    pub freed_bytes: u64,
    /// Entries that could not be deleted, with the error.
    pub failed: Vec<(String, String)>,
}

impl PruneReport {
    /// The deletions that failed, as one error; `None` when all succeeded.
    pub fn error(&self) -> Option<PruneError> {
        let (name, reason) = self.failed.first()?;
        let more = match self.failed.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Some(PruneError::Delete {
            path: self.plan.root.join(name),
            reason: reason.clone(),
            more,
        })
    }

    /// A one-line summary for logs and hooks.
    pub fn summary(&self) -> String {
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        let backups = self.plan.to_delete().count();
        let staging = self.plan.stale_staging().count();
        let mut s = format!(
            "{verb} {backups} backup(s) ({} bytes) and {staging} stale staging dir(s); kept {}",
            self.plan.bytes_to_free(),
            self.plan.backups.len() - backups
        );
        if !self.plan.unknown.is_empty() {
            s.push_str(&format!(
                "; left alone {} unknown entr{}",
                self.plan.unknown.len(),
                if self.plan.unknown.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            ));
        }
        if !self.failed.is_empty() {
            s.push_str(&format!("; {} deletion(s) failed", self.failed.len()));
        }
        s
    }
}

/// Decides what to delete in `root` at `now`, without changing anything.
pub fn plan(
    root: &Path,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Result<PrunePlan, PruneError> {
    let catalog = catalog::scan(root)?;
    let mut candidates = Vec::new();
    let mut known: Vec<&BackupEntry> = Vec::new();
    let mut unknown = catalog.unknown.clone();
    for e in &catalog.backups {
        match (e.unproven(), e.kind, e.created) {
            (None, Some(kind), Some(time)) => {
                candidates.push(Candidate {
                    name: e.name.clone(),
                    kind,
                    time,
                    complete: true,
                });
                known.push(e);
            }
            (why, _, _) => unknown.push(UnknownEntry {
                name: e.name.clone(),
                path: e.path.clone(),
                reason: why.unwrap_or_else(|| "kind or time unknown".into()),
            }),
        }
    }
    unknown.sort_by(|a, b| a.name.cmp(&b.name));
    let mut backups = Vec::new();
    for d in retention::decide(policy, &candidates, now, true) {
        let e = known
            .iter()
            .find(|e| e.name == d.name)
            .expect("every decision is about a listed entry");
        backups.push(PruneItem {
            name: d.name,
            path: e.path.clone(),
            kind: Some(d.kind),
            time: Some(d.time),
            size_bytes: e.size_bytes,
            keep: d.keep,
            reasons: d.reasons.iter().map(ToString::to_string).collect(),
        });
    }
    backups.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.name.cmp(&b.name)));

    let staging: Vec<StagingItem> = catalog
        .staging
        .into_iter()
        .map(|s| {
            let modified = last_change(&s.path);
            StagingItem {
                name: s.name,
                keep: !is_stale(modified, now),
                modified,
                path: s.path,
            }
        })
        .collect();
    Ok(PrunePlan {
        root: root.to_path_buf(),
        now,
        backups,
        staging,
        unknown,
    })
}

fn is_stale(modified: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    modified < now - STALE_STAGING_AFTER
}

/// The newest modification time of a directory and its direct entries (a directory being
/// written into changes at least one of them).
fn last_change(dir: &Path) -> DateTime<Utc> {
    let mtime = |p: &Path| fs::symlink_metadata(p).and_then(|m| m.modified()).ok();
    let mut newest = mtime(dir).unwrap_or(SystemTime::UNIX_EPOCH);
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            if let Some(t) = mtime(&e.path()) {
                newest = newest.max(t);
            }
        }
    }
    newest.into()
}

/// Deletes what `plan` marks for deletion. Never fails as a whole: failures are listed in
/// the report. Each entry is checked again just before it is deleted (still a real
/// directory, still a complete backup coffer identifies with the same name, kind and time,
/// or still a marked stale staging directory); one that changed is not deleted.
pub fn execute(plan: PrunePlan) -> PruneReport {
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    let mut freed_bytes = 0;
    for item in plan.to_delete() {
        match delete_backup(&plan.root, item) {
            Ok(()) => {
                deleted.push(item.name.clone());
                freed_bytes += item.size_bytes;
            }
            Err(e) => failed.push((item.name.clone(), e)),
        }
    }
    for item in plan.stale_staging() {
        match delete_staging(item, plan.now) {
            Ok(()) => deleted.push(item.name.clone()),
            Err(e) => failed.push((item.name.clone(), e)),
        }
    }
    let _ = crate::util::fsutil::sync_dir(&plan.root);
    PruneReport {
        plan,
        dry_run: false,
        deleted,
        freed_bytes,
        failed,
    }
}

fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir())
}

fn delete_backup(root: &Path, item: &PruneItem) -> Result<(), String> {
    if !is_real_dir(&item.path) {
        return Err("changed since it was planned: no longer a directory; left alone".into());
    }
    let now = BackupEntry::read(&item.path);
    if let Some(why) = now.unproven() {
        return Err(format!("changed since it was planned ({why}); left alone"));
    }
    if now.kind != item.kind || now.created != item.time {
        return Err("changed since it was planned (kind or time); left alone".into());
    }
    // Mark it, then hide it: an interrupted delete leaves a marked staging directory that a
    // later prune removes, never a half backup in view.
    crate::util::fsutil::mark_staging(&item.path).map_err(|e| e.to_string())?;
    let hidden = root.join(format!("{}prune-{}", names::STAGING_PREFIX, item.name));
    if let Err(e) = fs::rename(&item.path, &hidden) {
        let _ = fs::remove_file(item.path.join(crate::util::fsutil::STAGING_MARKER));
        return Err(e.to_string());
    }
    // remove_dir_all does not follow symlinks inside the directory.
    fs::remove_dir_all(&hidden).map_err(|e| e.to_string())
}

fn delete_staging(item: &StagingItem, now: DateTime<Utc>) -> Result<(), String> {
    if !is_real_dir(&item.path)
        || !names::is_staging_name(&item.name)
        || !crate::util::fsutil::has_staging_marker(&item.path)
    {
        return Err(
            "changed since it was planned: no longer a marked staging directory; left alone".into(),
        );
    }
    if !is_stale(last_change(&item.path), now) {
        return Err("changed since it was planned: written to again; left alone".into());
    }
    fs::remove_dir_all(&item.path).map_err(|e| e.to_string())
}

/// Prunes `root`: takes its lock (unless `dry_run`, which changes nothing), plans at `now`,
/// and deletes unless `dry_run`.
pub fn run(
    root: &Path,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PruneReport, PruneError> {
    if dry_run {
        let plan = plan(root, policy, now)?;
        return Ok(PruneReport {
            plan,
            dry_run: true,
            deleted: Vec::new(),
            freed_bytes: 0,
            failed: Vec::new(),
        });
    }
    // Name a missing root as such rather than as a lock-file error.
    if let Err(source) = fs::metadata(root) {
        return Err(CatalogError::ReadRoot {
            path: root.to_path_buf(),
            source,
        }
        .into());
    }
    let _lock = RootLock::acquire(root, "prune")?;
    let plan = plan(root, policy, now)?;
    Ok(execute(plan))
}

/// Deletes the one backup `name` of `root` under its lock, as a prune would (marked, hidden,
/// then removed), whatever retention says; refuses an entry coffer does not positively
/// know as a complete backup, and the newest complete backup.
pub fn delete_named(
    root: &Path,
    policy: &RetentionPolicy,
    name: &str,
    now: DateTime<Utc>,
) -> Result<PruneReport, PruneError> {
    if let Err(source) = fs::metadata(root) {
        return Err(CatalogError::ReadRoot {
            path: root.to_path_buf(),
            source,
        }
        .into());
    }
    let _lock = RootLock::acquire(root, "delete")?;
    let mut plan = plan(root, policy, now)?;
    let Some(pos) = plan.backups.iter().position(|b| b.name == name) else {
        return Err(PruneError::NotFound { name: name.into() });
    };
    if pos == 0 {
        return Err(PruneError::Newest { name: name.into() });
    }
    for (i, item) in plan.backups.iter_mut().enumerate() {
        item.keep = i != pos;
        if i == pos {
            item.reasons = vec!["deleted on request".into()];
        }
    }
    // Only this backup: staging directories are the next prune's business.
    for s in &mut plan.staging {
        s.keep = true;
    }
    Ok(execute(plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn write_backup(root: &Path, name: &str, complete: bool) {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("postgres.sql.gz"), b"x").unwrap();
        if complete {
            // A legacy-format manifest is enough for the catalog to call it usable.
            fs::write(dir.join("manifest.json"), b"{\"timestamp\":\"x\"}").unwrap();
        }
    }

    #[test]
    fn plans_and_deletes_exactly_the_expired_and_keeps_the_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in 1..=10 {
            write_backup(root, &format!("2026-11-{d:02}-030000"), true);
        }
        write_backup(root, "manual-20260101T000000Z", true);
        write_backup(root, "auto-20261005T030000Z", false);
        // Unreadable manifest: kept whatever its age.
        write_backup(root, "auto-20261001T030000Z", false);
        fs::write(root.join("auto-20261001T030000Z/manifest.json"), "{oops").unwrap();
        let staging = root.join(".coffer-staging-auto-20261110T030000Z");
        crate::util::fsutil::create_staging_dir(&staging).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 10, 12, 0, 0).unwrap();
        let written = now - TimeDelta::hours(9);
        fs::File::open(&staging)
            .unwrap()
            .set_modified(written.into())
            .unwrap();

        let policy = RetentionPolicy {
            keep_days: Some(3),
            ..RetentionPolicy::default()
        };
        let dry = run(root, &policy, now, true).unwrap();
        assert!(dry.deleted.is_empty());
        let doomed: Vec<&str> = dry.plan.to_delete().map(|b| b.name.as_str()).collect();
        assert_eq!(
            doomed,
            [
                "2026-11-07-030000",
                "2026-11-06-030000",
                "2026-11-05-030000",
                "2026-11-04-030000",
                "2026-11-03-030000",
                "2026-11-02-030000",
                "2026-11-01-030000",
            ]
        );
        let unreadable = dry
            .plan
            .unknown
            .iter()
            .find(|b| b.name == "auto-20261001T030000Z")
            .unwrap();
        assert!(
            unreadable.reason.starts_with("unreadable: "),
            "{unreadable:?}"
        );
        let unknown: Vec<&str> = dry.plan.unknown.iter().map(|u| u.name.as_str()).collect();
        // Unreadable manifest, no manifest (not known as a complete backup), a scripts'
        // manifest in a directory not named like the scripts': left alone.
        assert_eq!(
            unknown,
            [
                "auto-20261001T030000Z",
                "auto-20261005T030000Z",
                "manual-20260101T000000Z"
            ]
        );
        // The staging directory was written to 9 hours ago: not stale.
        assert_eq!(dry.plan.stale_staging().count(), 0);
        assert_eq!(fs::read_dir(root).unwrap().count(), 14);

        let report = run(root, &policy, now, false).unwrap();
        assert_eq!(report.deleted, doomed);
        assert!(report.error().is_none());
        let mut left: Vec<String> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".coffer.lock")
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".coffer-staging-auto-20261110T030000Z",
                "2026-11-08-030000",
                "2026-11-09-030000",
                "2026-11-10-030000",
                "auto-20261001T030000Z",
                "auto-20261005T030000Z",
                "manual-20260101T000000Z",
            ]
        );
        // A day later, the staging directory is stale; the newest backup stays.
        let later = run(root, &policy, now + TimeDelta::days(40), false).unwrap();
        assert_eq!(
            later.deleted,
            [
                "2026-11-09-030000",
                "2026-11-08-030000",
                ".coffer-staging-auto-20261110T030000Z"
            ]
        );
        assert!(root.join("2026-11-10-030000").is_dir());
    }

    #[test]
    fn a_held_lock_blocks_prune_but_not_dry_run() {
        let dir = tempfile::tempdir().unwrap();
        write_backup(dir.path(), "auto-20200101T000000Z", true);
        let _held = RootLock::acquire(dir.path(), "backup").unwrap();
        let now = Utc::now();
        let e = run(dir.path(), &RetentionPolicy::default(), now, false).unwrap_err();
        assert!(matches!(e, PruneError::Locked(_)), "{e}");
        run(dir.path(), &RetentionPolicy::default(), now, true).unwrap();
        let e = run(
            &dir.path().join("nope"),
            &RetentionPolicy::default(),
            now,
            false,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("cannot list backup root"), "{e}");
    }

    #[test]
    fn delete_named_removes_only_that_backup_and_never_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_backup(root, "2026-11-01-030000", true);
        write_backup(root, "2026-11-02-030000", true);
        write_backup(root, "2026-11-03-030000", false);
        fs::create_dir(root.join("mine")).unwrap();
        let now = Utc::now();
        let policy = RetentionPolicy::default();
        let e = delete_named(root, &policy, "2026-11-02-030000", now).unwrap_err();
        assert!(matches!(e, PruneError::Newest { .. }), "{e}");
        for other in ["2026-11-03-030000", "mine", "nope"] {
            let e = delete_named(root, &policy, other, now).unwrap_err();
            assert!(matches!(e, PruneError::NotFound { .. }), "{other}: {e}");
        }
        let report = delete_named(root, &policy, "2026-11-01-030000", now).unwrap();
        assert_eq!(report.deleted, vec!["2026-11-01-030000".to_string()]);
        let mut left: Vec<String> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        left.sort();
        assert_eq!(left, ["2026-11-02-030000", "2026-11-03-030000", "mine"]);
    }
}
