//! What `coffer status` and the metrics file show: the run log's records (in append order)
//! and the backup root's listing summarized into a [`Status`], and the thresholds that
//! make it an alert.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::{Operation, RunLogError, RunRecord, read};
use crate::format::names::BackupKind;

/// What the backup root holds, as `summarize` needs it (from `crate::root::catalog::list`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BackupStats {
    /// Backups per kind (every entry, complete or not; unknown kinds are not counted).
    pub by_kind: BTreeMap<BackupKind, usize>,
    /// All backup entries.
    pub count: usize,
    /// Bytes of all backup entries.
    pub total_bytes: u64,
    /// The newest usable auto, manual or legacy backup that is not dated in the future:
    /// name, kind and time.
    pub newest_usable: Option<(String, BackupKind, DateTime<Utc>)>,
    /// Backups dated in the future (clock skew), by name.
    #[serde(default)]
    pub future_dated: Vec<String>,
}

impl BackupStats {
    /// Computes the statistics of a listing at `now`: a backup dated in the future of `now`
    /// (clock skew) is counted but is never the newest usable one.
    pub fn of(entries: &[crate::root::catalog::BackupEntry], now: DateTime<Utc>) -> BackupStats {
        let mut stats = BackupStats {
            count: entries.len(),
            ..BackupStats::default()
        };
        for e in entries {
            stats.total_bytes += e.size_bytes;
            if let Some(kind) = e.kind {
                *stats.by_kind.entry(kind).or_default() += 1;
            }
            if e.is_future(now) {
                stats.future_dated.push(e.name.clone());
                continue;
            }
            if let (Some(kind), Some(time)) = (e.kind, e.created)
                && e.status.is_usable()
                && stats.newest_usable.as_ref().is_none_or(|n| time > n.2)
            {
                stats.newest_usable = Some((e.name.clone(), kind, time));
            }
        }
        stats
    }
}

/// Where the last success was learnt from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuccessSource {
    /// A successful backup record in the run log.
    RunLog,
    /// The newest usable backup in the root (no newer success in the log, e.g. a root
    /// migrated from the shell scripts).
    Backups,
}

/// The last successful backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LastSuccess {
    /// Its name, when known.
    pub backup: Option<String>,
    /// Its kind, when known.
    pub kind: Option<BackupKind>,
    /// When it finished (run log) or was taken (backup name).
    pub at: DateTime<Utc>,
    /// How long ago, in seconds, at the time of the summary.
    pub age_seconds: i64,
    /// Where this was learnt from.
    pub source: SuccessSource,
    /// Bytes per artifact, when the run log recorded them.
    pub artifacts: BTreeMap<String, u64>,
    /// How long the backup took, when the run log recorded it.
    pub duration_seconds: Option<f64>,
}

/// The health of a backup root: what `coffer status` shows and the metrics file holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// When the summary was made.
    pub now: DateTime<Utc>,
    /// The last successful backup, if any.
    pub last_success: Option<LastSuccess>,
    /// The last backup attempt recorded in the run log, successful or not.
    pub last_attempt: Option<RunRecord>,
    /// Failed backup attempts since the last successful backup.
    pub consecutive_failures: u32,
    /// The newest failed attempt of any operation, for its error.
    pub last_failure: Option<RunRecord>,
    /// The newest sync to the remote, successful or not (`None`: never synced).
    #[serde(default)]
    pub last_sync: Option<RunRecord>,
    /// When the newest successful sync ended, if any.
    #[serde(default)]
    pub last_sync_success: Option<DateTime<Utc>>,
    /// What the backup root holds.
    pub backups: BackupStats,
    /// Run log lines that did not parse.
    pub bad_log_lines: usize,
    /// Run log lines longer than [`super::LINE_CAP`], skipped.
    #[serde(default)]
    pub long_log_lines: usize,
    /// Whether the run log is longer than [`super::READ_WINDOW`] and only its end was read.
    #[serde(default)]
    pub log_truncated: bool,
    /// Whether the backup root does not exist.
    #[serde(default)]
    pub root_missing: bool,
    /// When the last successful backup in the run log (in append order) is dated in the
    /// future of `now`: its recorded end. It does not count as a success (clock skew).
    #[serde(default)]
    pub future_success: Option<DateTime<Utc>>,
}

/// Summarizes a run log and a listing into a [`Status`]. Pure: the caller reads the clock.
///
/// Records are taken in log (append) order, which is the order the runs happened; their
/// timestamps are only as good as the clock that wrote them.
/// - The last success is the newer of the last successful `backup` record not dated in the
///   future and the newest usable backup in the root not dated in the future (so a root
///   migrated from the shell scripts, with no run log, is not reported as never backed up).
/// - When the last successful `backup` record is dated in the future of `now`, it is
///   [`Status::future_success`] (clock skew) and [`Status::check`] does not report OK.
/// - Consecutive failures are the failed `backup` records after the last successful one in
///   log order (of any kind; and after the root's newer backup, when that is the last
///   success); failed prunes, syncs and restores are not backup failures (but the newest
///   one is still [`Status::last_failure`]).
pub fn summarize(records: &[RunRecord], backups: &BackupStats, now: DateTime<Utc>) -> Status {
    let backup_runs: Vec<&RunRecord> = records
        .iter()
        .filter(|r| r.operation == Operation::Backup)
        .collect();
    let last_ok = backup_runs.iter().rposition(|r| r.is_success());
    let future_success = last_ok
        .map(|i| backup_runs[i])
        .filter(|r| crate::format::names::is_future(r.ended, now))
        .map(|r| r.ended);

    let from_log = backup_runs
        .iter()
        .rfind(|r| r.is_success() && !crate::format::names::is_future(r.ended, now))
        .map(|r| LastSuccess {
            backup: r.backup.clone(),
            kind: r.kind,
            at: r.ended,
            age_seconds: 0,
            source: SuccessSource::RunLog,
            artifacts: r.artifacts.clone(),
            duration_seconds: Some(r.duration_seconds),
        });
    let from_root = backups
        .newest_usable
        .as_ref()
        .map(|(name, kind, time)| LastSuccess {
            backup: Some(name.clone()),
            kind: Some(*kind),
            at: *time,
            age_seconds: 0,
            source: SuccessSource::Backups,
            artifacts: BTreeMap::new(),
            duration_seconds: None,
        });
    // The log's record finishes after the backup's name time: prefer it unless the root
    // holds a backup newer than the logged one's start.
    let mut last_success = match (from_log, from_root) {
        (Some(log), Some(root)) => {
            let log_started =
                log.at - TimeDelta::seconds(log.duration_seconds.unwrap_or(0.0) as i64 + 1);
            if root.at > log_started && root.backup != log.backup {
                Some(root)
            } else {
                Some(log)
            }
        }
        (log, root) => log.or(root),
    };
    if let Some(s) = &mut last_success {
        s.age_seconds = (now - s.at).num_seconds();
    }
    let root_since = last_success
        .as_ref()
        .filter(|s| s.source == SuccessSource::Backups)
        .map(|s| s.at);
    let consecutive_failures = backup_runs
        .iter()
        .skip(last_ok.map_or(0, |i| i + 1))
        .filter(|r| !r.is_success() && root_since.is_none_or(|at| r.started > at))
        .count() as u32;
    Status {
        now,
        last_success,
        last_attempt: backup_runs.last().map(|r| (*r).clone()),
        consecutive_failures,
        last_failure: records.iter().rfind(|r| !r.is_success()).cloned(),
        last_sync: records
            .iter()
            .rfind(|r| r.operation == Operation::Sync)
            .cloned(),
        last_sync_success: records
            .iter()
            .rfind(|r| r.operation == Operation::Sync && r.is_success())
            .map(|r| r.ended),
        backups: backups.clone(),
        bad_log_lines: 0,
        long_log_lines: 0,
        log_truncated: false,
        root_missing: false,
        future_success,
    }
}

/// Reads the run log and the listing of `root` and summarizes them at `now`.
pub fn status(root: &Path, now: DateTime<Utc>) -> Result<Status, StatusError> {
    let log = read(root)?;
    let mut root_missing = false;
    let entries = match crate::root::catalog::list(root) {
        Ok(entries) => entries,
        // A root that does not exist holds no backups; status then says it is missing.
        Err(crate::root::catalog::CatalogError::ReadRoot { source, .. })
            if source.kind() == io::ErrorKind::NotFound =>
        {
            root_missing = true;
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    let mut status = summarize(&log.records, &BackupStats::of(&entries, now), now);
    status.bad_log_lines = log.bad_lines;
    status.long_log_lines = log.long_lines;
    status.log_truncated = log.truncated;
    status.root_missing = root_missing;
    Ok(status)
}

/// Why the status of a root could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The run log could not be read.
    #[error(transparent)]
    RunLog(#[from] RunLogError),
    /// The backup root could not be listed.
    #[error(transparent)]
    Catalog(#[from] crate::root::catalog::CatalogError),
}

/// Thresholds for [`Status::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// The last success must be at most this old.
    pub max_age: std::time::Duration,
    /// Alert at this many consecutive failures; `0` turns the rule off.
    pub max_failures: u32,
}

/// A threshold that [`Status::check`] found crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Alert {
    /// No successful backup within `max_age` (or none at all).
    TooOld,
    /// `max_failures` or more consecutive failed backups.
    TooManyFailures,
}

impl Status {
    /// The threshold crossed, if any. When both are, [`Alert::TooOld`] is returned: no
    /// recent backup is the graver fact (and implies the failures are not new).
    pub fn check(&self, thresholds: &Thresholds) -> Option<Alert> {
        let max_age = i64::try_from(thresholds.max_age.as_secs()).unwrap_or(i64::MAX);
        // A last success dated in the future proves nothing about the last day.
        let too_old = self.future_success.is_some()
            || self
                .last_success
                .as_ref()
                .is_none_or(|s| s.age_seconds > max_age);
        if too_old {
            Some(Alert::TooOld)
        } else if thresholds.max_failures > 0
            && self.consecutive_failures >= thresholds.max_failures
        {
            Some(Alert::TooManyFailures)
        } else {
            None
        }
    }

    /// One line for monitoring plugins (Nagios-style): `OK: …` or `CRITICAL: …`.
    pub fn headline(&self, thresholds: &Thresholds) -> String {
        let alert = self.check(thresholds);
        let mut parts = Vec::new();
        if let Some(at) = self.future_success {
            parts.push(format!(
                "last successful backup is dated in the future ({}; clock skew?)",
                at.format("%Y-%m-%d %H:%M:%SZ")
            ));
        }
        match &self.last_success {
            Some(s) => parts.push(format!(
                "last backup {} {} ago",
                s.backup.as_deref().unwrap_or("(unnamed)"),
                human_age(s.age_seconds)
            )),
            None => parts.push("no successful backup".to_string()),
        }
        if self.root_missing {
            parts.push("the backup root does not exist (check backup_dir)".to_string());
        }
        if alert == Some(Alert::TooOld) && self.last_success.is_some() {
            parts[0].push_str(&format!(
                " (limit {})",
                human_age(thresholds.max_age.as_secs() as i64)
            ));
        }
        let mut failures = format!("{} consecutive failure(s)", self.consecutive_failures);
        if alert == Some(Alert::TooManyFailures) {
            failures.push_str(&format!(" (limit {})", thresholds.max_failures));
        }
        parts.push(failures);
        if self.consecutive_failures > 0
            && let Some(f) = &self.last_failure
        {
            parts.push(format!(
                "last error ({}): {}",
                f.operation,
                f.error_summary().unwrap_or_else(|| "unknown".into())
            ));
        }
        parts.push(format!("{} backup(s)", self.backups.count));
        if !self.backups.future_dated.is_empty() {
            parts.push(format!(
                "{} dated in the future (clock skew?)",
                self.backups.future_dated.len()
            ));
        }
        let level = if alert.is_some() { "CRITICAL" } else { "OK" };
        format!("{level}: {}", parts.join("; "))
    }
}

/// `5h`, `2d3h`, `42m`, `17s`: an age for people.
pub fn human_age(seconds: i64) -> String {
    if seconds < 0 {
        return format!("in {}", human_age(-seconds));
    }
    let (d, h, m) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}
