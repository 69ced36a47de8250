//! The run log: one JSON line per backup, prune, sync, verify or restore attempt, appended
//! to `<backup root>/coffer-runs.jsonl`.
//!
//! It is what `coffer status` and the metrics file are computed from, so it must survive
//! what backups survive: every record is written with one `write` on a file opened with
//! `O_APPEND` (concurrent runs never interleave inside a line), the file is created 0600,
//! and [`read`] ignores lines that do not parse (a run killed mid-write leaves a torn last
//! line; the next append starts a fresh line after it).
//!
//! Writing the log must never fail a backup: callers report [`append`]'s error as a warning.
//!
//! ```
//! use coffer_core::runlog::{Operation, RunRecord};
//! let started = chrono::Utc::now();
//! let record = RunRecord::new(Operation::Restore, started)
//!     .with_backup("auto-20261120T030000Z", None)
//!     .failed(started, "psql failed (exit code 3)\ndetails");
//! assert_eq!(record.error.as_deref(), Some("psql failed (exit code 3)"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::names::BackupKind;

/// The most of an error's detail lines a record keeps.
const MAX_DETAIL: usize = 4096;

/// File name of the run log inside the backup root.
pub const RUN_LOG_FILE: &str = "coffer-runs.jsonl";

/// The run log of a backup root.
pub fn path(root: &Path) -> PathBuf {
    root.join(RUN_LOG_FILE)
}

/// What was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// `coffer backup`.
    Backup,
    /// `coffer prune`, alone or after a backup.
    Prune,
    /// Copying backups off the host.
    Sync,
    /// Checking a backup's artifacts.
    Verify,
    /// Restoring a backup.
    Restore,
}

impl Operation {
    /// The lower-case word used in the log, hook variables and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Prune => "prune",
            Operation::Sync => "sync",
            Operation::Verify => "verify",
            Operation::Restore => "restore",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It did what it was asked.
    Success,
    /// It failed; [`RunRecord::error`] says why.
    Failure,
}

impl Outcome {
    /// `success` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attempt, as one line of the run log.
///
/// Readers ignore fields they do not know, so later versions may add some.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// What was attempted.
    pub operation: Operation,
    /// How it ended.
    pub outcome: Outcome,
    /// When it started (UTC).
    pub started: DateTime<Utc>,
    /// When it ended (UTC).
    pub ended: DateTime<Utc>,
    /// Wall time in seconds.
    pub duration_seconds: f64,
    /// The backup made, pruned from, verified, synced or restored, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Its kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<BackupKind>,
    /// The first line of the error, for failures: what failed and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The error's further lines (e.g. the tail of pg_dump's stderr), at most 4 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<String>,
    /// Bytes on disk per artifact (`database`, `workspace`) of the backup made.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: BTreeMap<String, u64>,
    /// A short free-text summary (e.g. what a prune deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The process that ran it.
    #[serde(default)]
    pub pid: u32,
    /// The coffer version that ran it.
    #[serde(default)]
    pub coffer_version: String,
}

impl RunRecord {
    /// A record of `operation` started at `started`, provisionally successful and instant;
    /// finish it with [`succeeded`](Self::succeeded) or [`failed`](Self::failed).
    pub fn new(operation: Operation, started: DateTime<Utc>) -> RunRecord {
        RunRecord {
            operation,
            outcome: Outcome::Success,
            started,
            ended: started,
            duration_seconds: 0.0,
            backup: None,
            kind: None,
            error: None,
            error_detail: None,
            artifacts: BTreeMap::new(),
            detail: None,
            pid: std::process::id(),
            coffer_version: crate::VERSION.to_string(),
        }
    }

    /// Names the backup concerned.
    pub fn with_backup(mut self, name: impl Into<String>, kind: Option<BackupKind>) -> Self {
        self.backup = Some(name.into());
        self.kind = kind.or(self.kind);
        self
    }

    /// Names the backup a finished backup made and records its artifact sizes.
    pub fn with_backup_report(mut self, report: &crate::backup::BackupReport) -> Self {
        let m = &report.manifest;
        self.backup = Some(m.name.clone());
        self.kind = Some(m.kind);
        for a in &m.artifacts {
            self.artifacts.insert(a.role.as_str().to_string(), a.size);
        }
        self
    }

    /// Sets the kind (known before the backup has a name).
    pub fn with_kind(mut self, kind: BackupKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Records an artifact's size on disk; `role` is `database` or `workspace`.
    pub fn with_artifact(mut self, role: impl Into<String>, bytes: u64) -> Self {
        self.artifacts.insert(role.into(), bytes);
        self
    }

    /// Adds a short summary.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Ends the record successfully at `ended`.
    pub fn succeeded(self, ended: DateTime<Utc>) -> Self {
        self.finish(Outcome::Success, None, ended)
    }

    /// Ends the record as failed at `ended`: the first non-empty line of `error` becomes
    /// [`error`](Self::error), the other lines [`error_detail`](Self::error_detail).
    /// Secrets in `error` are masked before it is stored (the log feeds status and hooks).
    pub fn failed(mut self, ended: DateTime<Utc>, error: &str) -> Self {
        let error = crate::redact::redact(error);
        let mut lines = error.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = lines.next().unwrap_or("unknown error").to_string();
        let mut detail = lines.collect::<Vec<_>>().join("\n");
        if detail.len() > MAX_DETAIL {
            let mut cut = MAX_DETAIL;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
            detail.push('…');
        }
        self.error_detail = (!detail.is_empty()).then_some(detail);
        self.finish(Outcome::Failure, Some(first), ended)
    }

    /// The error's first line, and the first line of its detail when there is one: the
    /// short form shown by `coffer status`.
    pub fn error_summary(&self) -> Option<String> {
        let error = self.error.as_deref()?;
        Some(
            match self.error_detail.as_deref().and_then(|d| d.lines().next()) {
                Some(detail) => format!("{error} ({detail})"),
                None => error.to_string(),
            },
        )
    }

    fn finish(mut self, outcome: Outcome, error: Option<String>, ended: DateTime<Utc>) -> Self {
        self.outcome = outcome;
        self.error = error;
        self.ended = ended;
        self.duration_seconds = (ended - self.started)
            .to_std()
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self
    }

    /// Whether it succeeded.
    pub fn is_success(&self) -> bool {
        self.outcome == Outcome::Success
    }

    /// The record as one line of JSON, with its newline.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("a run record always serializes");
        line.push('\n');
        line
    }
}

/// Why the run log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RunLogError {
    /// Opening, writing or reading the file failed.
    #[error("cannot {op} run log {path}: {source}")]
    Io {
        /// `append to` or `read`.
        op: &'static str,
        /// The run log.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Appends one record to the run log in `root` (creating the root, 0700, and the log, 0600,
/// when missing). The line is written with a single `write` on an `O_APPEND` file.
pub fn append(root: &Path, record: &RunRecord) -> Result<(), RunLogError> {
    let path = path(root);
    let io = |source| RunLogError::Io {
        op: "append to",
        path: path.clone(),
        source,
    };
    crate::fsutil::create_private_dir_all(root).map_err(io)?;
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(crate::fsutil::FILE_MODE)
        .open(&path)
        .map_err(io)?;
    let mut line = record.to_line();
    // A torn last line (a run killed mid-write) must not swallow this record.
    let len = file.metadata().map_err(io)?.len();
    if len > 0 && !ends_with_newline(&path, len) {
        line.insert(0, '\n');
    }
    let bytes = line.as_bytes();
    let written = file.write(bytes).map_err(io)?;
    if written < bytes.len() {
        // Only on a full disk or a signal: finish the line rather than leave it torn.
        file.write_all(&bytes[written..]).map_err(io)?;
    }
    Ok(())
}

fn ends_with_newline(path: &Path, len: u64) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let mut last = [0u8; 1];
    std::fs::File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(len - 1))?;
            f.read_exact(&mut last)
        })
        .map(|()| last[0] == b'\n')
        .unwrap_or(true)
}

/// The records of a run log, oldest first, and how many lines could not be parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunLog {
    /// The records that parsed, in file order.
    pub records: Vec<RunRecord>,
    /// Lines that did not parse (a torn last line, or damage), ignored.
    pub bad_lines: usize,
}

/// Reads the run log in `root`. A missing log is an empty one.
pub fn read(root: &Path) -> Result<RunLog, RunLogError> {
    let path = path(root);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(parse(&String::from_utf8_lossy(&bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RunLog::default()),
        Err(source) => Err(RunLogError::Io {
            op: "read",
            path,
            source,
        }),
    }
}

/// Parses run log text, ignoring blank lines and counting those that do not parse.
pub fn parse(text: &str) -> RunLog {
    let mut log = RunLog::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(r) => log.records.push(r),
            Err(_) => log.bad_lines += 1,
        }
    }
    log
}

/// What the backup root holds, as [`summarize`] needs it (from [`crate::catalog::list`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BackupStats {
    /// Backups per kind (every entry, complete or not; unknown kinds are not counted).
    pub by_kind: BTreeMap<BackupKind, usize>,
    /// All backup entries.
    pub count: usize,
    /// Bytes of all backup entries.
    pub total_bytes: u64,
    /// The newest usable auto, manual or legacy backup: name, kind and time.
    pub newest_usable: Option<(String, BackupKind, DateTime<Utc>)>,
}

impl BackupStats {
    /// Computes the statistics of a listing.
    pub fn of(entries: &[crate::catalog::BackupEntry]) -> BackupStats {
        let mut stats = BackupStats {
            count: entries.len(),
            ..BackupStats::default()
        };
        for e in entries {
            stats.total_bytes += e.size_bytes;
            if let Some(kind) = e.kind {
                *stats.by_kind.entry(kind).or_default() += 1;
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
}

/// Summarizes a run log and a listing into a [`Status`]. Pure: the caller reads the clock.
///
/// - The last success is the newer of the last successful `backup` record and the newest
///   usable backup in the root (so a root migrated from the shell scripts, with no run log,
///   is not reported as never backed up).
/// - Consecutive failures are failed `backup` records that started after that success, of
///   any kind; failed prunes, syncs and restores are not backup failures (but the newest one
///   is still [`Status::last_failure`]).
pub fn summarize(records: &[RunRecord], backups: &BackupStats, now: DateTime<Utc>) -> Status {
    let mut by_time: Vec<&RunRecord> = records.iter().collect();
    by_time.sort_by_key(|r| r.ended);
    let backup_runs = || by_time.iter().filter(|r| r.operation == Operation::Backup);

    let from_log = backup_runs()
        .rfind(|r| r.is_success())
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
    let since = last_success.as_ref().map(|s| s.at);
    let consecutive_failures = backup_runs()
        .filter(|r| !r.is_success() && since.is_none_or(|at| r.started > at))
        .count() as u32;
    Status {
        now,
        last_success,
        last_attempt: backup_runs().next_back().map(|r| (*r).clone()),
        consecutive_failures,
        last_failure: by_time
            .iter()
            .rfind(|r| !r.is_success())
            .map(|r| (*r).clone()),
        last_sync: by_time
            .iter()
            .rfind(|r| r.operation == Operation::Sync)
            .map(|r| (*r).clone()),
        last_sync_success: by_time
            .iter()
            .rfind(|r| r.operation == Operation::Sync && r.is_success())
            .map(|r| r.ended),
        backups: backups.clone(),
        bad_log_lines: 0,
    }
}

/// Reads the run log and the listing of `root` and summarizes them at `now`.
pub fn status(root: &Path, now: DateTime<Utc>) -> Result<Status, StatusError> {
    let log = read(root)?;
    let entries = match crate::catalog::list(root) {
        Ok(entries) => entries,
        // A root that does not exist yet holds no backups; status then says so.
        Err(crate::catalog::CatalogError::ReadRoot { source, .. })
            if source.kind() == io::ErrorKind::NotFound =>
        {
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    let mut status = summarize(&log.records, &BackupStats::of(&entries), now);
    status.bad_log_lines = log.bad_lines;
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
    Catalog(#[from] crate::catalog::CatalogError),
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
        let too_old = self
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
        match &self.last_success {
            Some(s) => parts.push(format!(
                "last backup {} {} ago",
                s.backup.as_deref().unwrap_or("(unnamed)"),
                human_age(s.age_seconds)
            )),
            None => parts.push("no successful backup".to_string()),
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

/// The environment variables given to `hooks.on_success` / `hooks.on_failure` (and any
/// other hook run after an attempt) describing `record`:
/// `COFFER_OPERATION`, `COFFER_OUTCOME`, `COFFER_BACKUP_NAME`, `COFFER_BACKUP_KIND`,
/// `COFFER_BACKUP_PATH`, `COFFER_BACKUP_ROOT`, `COFFER_ERROR` (first line),
/// `COFFER_ERROR_DETAIL` (the other lines), `COFFER_DATABASE_BYTES`, `COFFER_WORKSPACE_BYTES`,
/// `COFFER_DURATION_SECONDS`, `COFFER_STARTED`, `COFFER_ENDED`, `COFFER_DETAIL`.
/// Variables without a value are set to the empty string, so a hook never sees one
/// inherited from its parent.
pub fn hook_env(record: &RunRecord, root: &Path) -> Vec<(String, String)> {
    let path = record
        .backup
        .as_ref()
        .map(|name| root.join(name).display().to_string())
        .unwrap_or_default();
    let bytes = |role: &str| {
        record
            .artifacts
            .get(role)
            .map(u64::to_string)
            .unwrap_or_default()
    };
    [
        ("COFFER_OPERATION", record.operation.to_string()),
        ("COFFER_OUTCOME", record.outcome.to_string()),
        (
            "COFFER_BACKUP_NAME",
            record.backup.clone().unwrap_or_default(),
        ),
        (
            "COFFER_BACKUP_KIND",
            record.kind.map(|k| k.to_string()).unwrap_or_default(),
        ),
        ("COFFER_BACKUP_PATH", path),
        ("COFFER_BACKUP_ROOT", root.display().to_string()),
        ("COFFER_ERROR", record.error.clone().unwrap_or_default()),
        (
            "COFFER_ERROR_DETAIL",
            record.error_detail.clone().unwrap_or_default(),
        ),
        ("COFFER_DATABASE_BYTES", bytes("database")),
        ("COFFER_WORKSPACE_BYTES", bytes("workspace")),
        (
            "COFFER_DURATION_SECONDS",
            format!("{:.1}", record.duration_seconds),
        ),
        ("COFFER_STARTED", record.started.to_rfc3339()),
        ("COFFER_ENDED", record.ended.to_rfc3339()),
        ("COFFER_DETAIL", record.detail.clone().unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    fn backup(d: u32, h: u32, ok: bool) -> RunRecord {
        let r = RunRecord::new(Operation::Backup, t(d, h)).with_kind(BackupKind::Auto);
        if ok {
            r.with_backup(format!("auto-202611{d:02}T{h:02}0000Z"), None)
                .with_artifact("database", 1000)
                .with_artifact("workspace", 2000)
                .succeeded(t(d, h) + TimeDelta::seconds(90))
        } else {
            r.failed(
                t(d, h) + TimeDelta::seconds(5),
                "pg_dump failed (exit code 1)\n  tail",
            )
        }
    }

    fn prune_failed(d: u32, h: u32) -> RunRecord {
        RunRecord::new(Operation::Prune, t(d, h)).failed(t(d, h), "cannot remove x: EACCES")
    }

    const LIMITS: Thresholds = Thresholds {
        max_age: std::time::Duration::from_secs(26 * 3600),
        max_failures: 3,
    };

    #[test]
    fn record_round_trips_and_keeps_the_first_error_line() {
        let r = backup(20, 3, false);
        assert_eq!(r.error.as_deref(), Some("pg_dump failed (exit code 1)"));
        assert_eq!(r.error_detail.as_deref(), Some("tail"));
        assert_eq!(
            r.error_summary().as_deref(),
            Some("pg_dump failed (exit code 1) (tail)")
        );
        assert_eq!(r.duration_seconds, 5.0);
        let line = r.to_line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["operation"], "backup");
        assert_eq!(v["outcome"], "failure");
        assert_eq!(v["started"], "2026-11-20T03:00:00Z");
        assert_eq!(parse(&line).records, [r]);
        // A restore record, as the restore command will write it.
        let r = RunRecord::new(Operation::Restore, t(21, 9))
            .with_backup("manual-20261120T100000Z", Some(BackupKind::Manual))
            .failed(t(21, 10), "alembic head mismatch");
        let v: serde_json::Value = serde_json::from_str(&r.to_line()).unwrap();
        assert_eq!(v["operation"], "restore");
        assert_eq!(v["backup"], "manual-20261120T100000Z");
        assert_eq!(v["duration_seconds"], 3600.0);
    }

    #[test]
    fn reader_ignores_torn_and_unknown_lines_and_append_starts_a_fresh_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        append(&root, &backup(19, 3, true)).unwrap();
        // A run killed mid-write.
        let mut f = OpenOptions::new().append(true).open(path(&root)).unwrap();
        f.write_all(b"{\"operation\":\"backup\",\"outc").unwrap();
        drop(f);
        append(&root, &backup(20, 3, false)).unwrap();
        // A field from a later version is ignored.
        let mut later = serde_json::to_value(backup(21, 3, true)).unwrap();
        later["new_field"] = serde_json::json!(1);
        let mut f = OpenOptions::new().append(true).open(path(&root)).unwrap();
        writeln!(f, "{later}").unwrap();
        drop(f);
        let log = read(&root).unwrap();
        assert_eq!(log.bad_lines, 1);
        assert_eq!(
            log.records,
            [
                backup(19, 3, true),
                backup(20, 3, false),
                backup(21, 3, true)
            ]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(&root)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read(&dir.path().join("none")).unwrap(), RunLog::default());
    }

    #[test]
    fn concurrent_appends_never_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::thread::scope(|s| {
            for i in 0..8 {
                let root = &root;
                s.spawn(move || {
                    for j in 0..50 {
                        let r = RunRecord::new(Operation::Sync, t(20, 3))
                            .with_detail(format!("{i}-{j}-{}", "x".repeat(500)));
                        append(root, &r).unwrap();
                    }
                });
            }
        });
        let log = read(&root).unwrap();
        assert_eq!((log.records.len(), log.bad_lines), (400, 0));
    }

    #[test]
    fn summary_table() {
        let none = BackupStats::default();
        let migrated = BackupStats {
            count: 3,
            newest_usable: Some(("2026-11-20-023000".into(), BackupKind::Legacy, t(20, 2))),
            ..BackupStats::default()
        };
        // (records, root, now, last success name, consecutive failures, alert)
        type Row = (
            Vec<RunRecord>,
            BackupStats,
            DateTime<Utc>,
            Option<&'static str>,
            u32,
            Option<Alert>,
        );
        let rows: Vec<Row> = vec![
            (
                vec![],
                none.clone(),
                t(20, 12),
                None,
                0,
                Some(Alert::TooOld),
            ),
            // No run log, but backups from the shell scripts: not paged at once.
            (
                vec![],
                migrated.clone(),
                t(20, 12),
                Some("2026-11-20-023000"),
                0,
                None,
            ),
            (
                vec![],
                migrated.clone(),
                t(21, 5),
                Some("2026-11-20-023000"),
                0,
                Some(Alert::TooOld),
            ),
            (
                vec![backup(20, 3, true)],
                none.clone(),
                t(20, 12),
                Some("auto-20261120T030000Z"),
                0,
                None,
            ),
            (
                vec![
                    backup(18, 3, true),
                    backup(19, 3, false),
                    backup(20, 3, false),
                ],
                none.clone(),
                t(20, 12),
                Some("auto-20261118T030000Z"),
                2,
                Some(Alert::TooOld),
            ),
            (
                vec![
                    backup(19, 23, true),
                    backup(20, 3, false),
                    prune_failed(20, 4),
                    backup(20, 5, false),
                    backup(20, 7, false),
                ],
                none.clone(),
                t(20, 12),
                Some("auto-20261119T230000Z"),
                3,
                Some(Alert::TooManyFailures),
            ),
            // A success resets the count; input order does not matter.
            (
                vec![
                    backup(20, 9, true),
                    backup(20, 3, false),
                    backup(20, 5, false),
                    backup(20, 7, false),
                ],
                none.clone(),
                t(20, 12),
                Some("auto-20261120T090000Z"),
                0,
                None,
            ),
            // Failures only: never succeeded is "too old" even with few failures.
            (
                vec![backup(20, 3, false)],
                none.clone(),
                t(20, 12),
                None,
                1,
                Some(Alert::TooOld),
            ),
            // A newer backup in the root than in the log (made by another tool) counts.
            (
                vec![backup(19, 3, true), backup(19, 5, false)],
                migrated.clone(),
                t(20, 12),
                Some("2026-11-20-023000"),
                0,
                None,
            ),
        ];
        for (i, (records, root, now, success, failures, alert)) in rows.into_iter().enumerate() {
            let s = summarize(&records, &root, now);
            assert_eq!(
                s.last_success.as_ref().and_then(|s| s.backup.as_deref()),
                success,
                "row {i}"
            );
            assert_eq!(s.consecutive_failures, failures, "row {i}");
            assert_eq!(s.check(&LIMITS), alert, "row {i}");
        }
    }

    #[test]
    fn headline_for_monitoring() {
        let ok = summarize(
            &[backup(20, 3, true)],
            &BackupStats {
                count: 4,
                ..Default::default()
            },
            t(20, 8),
        );
        assert_eq!(
            ok.headline(&LIMITS),
            "OK: last backup auto-20261120T030000Z 4h58m ago; 0 consecutive failure(s); 4 backup(s)"
        );
        assert_eq!(
            ok.last_success.as_ref().unwrap().artifacts["workspace"],
            2000
        );
        let records = [
            backup(19, 12, true),
            backup(20, 3, false),
            backup(20, 4, false),
            backup(20, 5, false),
        ];
        let bad = summarize(&records, &BackupStats::default(), t(20, 12));
        assert_eq!(
            bad.headline(&LIMITS),
            "CRITICAL: last backup auto-20261119T120000Z 23h58m ago; 3 consecutive failure(s) (limit 3); \
             last error (backup): pg_dump failed (exit code 1) (tail); 0 backup(s)"
        );
        let old = summarize(&records, &BackupStats::default(), t(21, 12));
        assert!(
            old.headline(&LIMITS).contains("1d23h ago (limit 1d2h)"),
            "{}",
            old.headline(&LIMITS)
        );
        let never = summarize(&[], &BackupStats::default(), t(20, 12));
        assert_eq!(
            never.headline(&LIMITS),
            "CRITICAL: no successful backup; 0 consecutive failure(s); 0 backup(s)"
        );
    }

    #[test]
    fn human_ages() {
        for (s, want) in [
            (5, "5s"),
            (60, "1m"),
            (3600, "1h"),
            (3660, "1h1m"),
            (86_400, "1d"),
            (93_600, "1d2h"),
            (-120, "in 2m"),
        ] {
            assert_eq!(human_age(s), want);
        }
    }

    #[test]
    fn hook_env_describes_the_run() {
        let env: BTreeMap<String, String> = hook_env(&backup(20, 3, true), Path::new("/b"))
            .into_iter()
            .collect();
        assert_eq!(env["COFFER_OPERATION"], "backup");
        assert_eq!(env["COFFER_OUTCOME"], "success");
        assert_eq!(env["COFFER_BACKUP_NAME"], "auto-20261120T030000Z");
        assert_eq!(env["COFFER_BACKUP_KIND"], "auto");
        assert_eq!(env["COFFER_BACKUP_PATH"], "/b/auto-20261120T030000Z");
        assert_eq!(env["COFFER_DATABASE_BYTES"], "1000");
        assert_eq!(env["COFFER_WORKSPACE_BYTES"], "2000");
        assert_eq!(env["COFFER_DURATION_SECONDS"], "90.0");
        assert_eq!(env["COFFER_ERROR"], "");
        let env: BTreeMap<String, String> = hook_env(&backup(20, 3, false), Path::new("/b"))
            .into_iter()
            .collect();
        assert_eq!(env["COFFER_OUTCOME"], "failure");
        assert_eq!(env["COFFER_ERROR"], "pg_dump failed (exit code 1)");
        assert_eq!(env["COFFER_BACKUP_PATH"], "");
    }
}
