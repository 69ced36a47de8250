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
//! use coffer_core::{RunOperation as Operation, RunRecord};
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

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::format::names::BackupKind;

mod read;
mod status;
pub use crate::format::names::RUN_LOG_FILE;
pub use read::{LINE_CAP, READ_WINDOW, read};
#[cfg(test)]
pub use read::{RunLog, parse};
#[cfg(test)]
pub use status::summarize;
pub use status::{
    Alert, BackupStats, LastSuccess, Status, StatusError, SuccessSource, Thresholds, human_age,
    status,
};

/// The most of an error's first line, and of its detail lines, a record keeps.
const MAX_DETAIL: usize = 4096;

/// The most characters of an error [`RunRecord::error_summary`] returns.
pub const MAX_SUMMARY: usize = 500;

/// `text` cut to at most `max` characters, with `… (N more bytes)` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}… ({} more bytes)", &text[..cut], text.len() - cut),
    }
}

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
    /// `coffer backup --output`: a backup written as one bundle instead of into the root
    /// (not a backup of the root: status and metrics do not count it as one).
    Bundle,
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
            Operation::Bundle => "bundle",
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
        let error = crate::util::redact::redact(error);
        let mut lines = error.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = truncate(lines.next().unwrap_or("unknown error"), MAX_DETAIL);
        let detail = truncate(&lines.collect::<Vec<_>>().join("\n"), MAX_DETAIL);
        self.error_detail = (!detail.is_empty()).then_some(detail);
        self.finish(Outcome::Failure, Some(first), ended)
    }

    /// The error's first line, and the first line of its detail when there is one: the
    /// short form shown by `coffer status`, at most `MAX_SUMMARY` characters (a log
    /// written by anyone may hold a 50 MB error).
    pub fn error_summary(&self) -> Option<String> {
        let error = self.error.as_deref()?;
        let full = match self.error_detail.as_deref().and_then(|d| d.lines().next()) {
            Some(detail) => format!("{error} ({detail})"),
            None => error.to_string(),
        };
        Some(truncate(&full, MAX_SUMMARY))
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
    /// The file in the run log's place is not one coffer reads or appends to.
    #[error("cannot use run log {path}: it {source}; move it away (coffer starts a new one)")]
    Refused {
        /// The run log.
        path: PathBuf,
        /// Why: a symlink, not a regular file, …
        source: crate::util::fsutil::BoundedReadError,
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
    crate::util::fsutil::create_private_dir_all(root).map_err(io)?;
    // No symlink followed, no blocking on a fifo, and only a regular file appended to.
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(crate::util::fsutil::FILE_MODE)
        .custom_flags(flags.bits() as i32)
        .open(&path)
        .map_err(|e| RunLogError::Refused {
            path: path.clone(),
            source: crate::util::fsutil::BoundedReadError::Io(e),
        })?;
    let file_type = file.metadata().map_err(io)?.file_type();
    if !file_type.is_file() {
        return Err(RunLogError::Refused {
            path,
            source: crate::util::fsutil::BoundedReadError::NotRegular {
                kind: crate::util::fsutil::kind_of(file_type),
            },
        });
    }
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
    crate::util::fsutil::open_regular(path)
        .map_err(|e| io::Error::other(e.to_string()))
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(len - 1))?;
            f.read_exact(&mut last)
        })
        .map(|()| last[0] == b'\n')
        .unwrap_or(true)
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
    // A bundle's backup is not in the root: where it went is in the detail.
    let path = record
        .backup
        .as_ref()
        .filter(|_| record.operation != Operation::Bundle)
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
    use chrono::{TimeDelta, TimeZone};

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
        assert_eq!(parse(line.as_bytes()).records, [r]);
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
            // Log (append) order counts, not timestamps: failures appended after a success
            // follow it even when a clock put them earlier.
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
                3,
                Some(Alert::TooManyFailures),
            ),
            // A success resets the count.
            (
                vec![
                    backup(20, 3, false),
                    backup(20, 5, false),
                    backup(20, 7, false),
                    backup(20, 9, true),
                ],
                none.clone(),
                t(20, 12),
                Some("auto-20261120T090000Z"),
                0,
                None,
            ),
            // A success dated in the future (clock skew) is not a success: the failures
            // after it count, and status is not OK even with an older success in reach.
            (
                vec![
                    backup(20, 3, true),
                    backup(29, 3, true),
                    backup(20, 5, false),
                    backup(20, 7, false),
                ],
                none.clone(),
                t(20, 12),
                Some("auto-20261120T030000Z"),
                2,
                Some(Alert::TooOld),
            ),
            // A future success followed by a real one: the real one is the last success.
            (
                vec![
                    backup(29, 3, true),
                    backup(20, 5, false),
                    backup(20, 9, true),
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
