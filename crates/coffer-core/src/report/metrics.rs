//! The Prometheus textfile: the health of a backup root for node_exporter's textfile
//! collector (`--collector.textfile.directory`), rewritten after every run.
//!
//! [`render`] is pure; [`write()`] replaces the file atomically (a temporary file in the same
//! directory, fsynced, renamed over it), so the collector never reads half a file. The file
//! is 0644: node_exporter usually runs as another user, and it holds no secrets.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `coffer_last_success_timestamp_seconds` | gauge | end of the last successful backup (0: never) |
//! | `coffer_last_attempt_timestamp_seconds` | gauge | end of the last backup attempt (0: none logged) |
//! | `coffer_last_run_success` | gauge | 1 if the last backup attempt succeeded, else 0 |
//! | `coffer_consecutive_failures` | gauge | failed backup attempts since the last success |
//! | `coffer_last_backup_artifact_bytes{artifact}` | gauge | size on disk of each artifact of the last successful backup |
//! | `coffer_last_run_duration_seconds` | gauge | wall time of the last backup attempt |
//! | `coffer_backups{kind}` | gauge | backups in the root, per kind (`auto`, `manual`, `legacy`) |
//! | `coffer_backups_size_bytes` | gauge | bytes of all backups in the root |
//! | `coffer_last_sync_timestamp_seconds` | gauge | end of the last successful sync to the remote (0: never; only once a sync was recorded) |
//! | `coffer_last_sync_success` | gauge | 1 if the last sync succeeded, else 0 (only once a sync was recorded) |
//!
//! An alert for the runbook's "auto-backup failed 3 days in a row":
//! `coffer_consecutive_failures >= 3 or time() - coffer_last_success_timestamp_seconds > 26 * 3600`.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::format::names::BackupKind;
use crate::root::runlog::Status;

/// Why the metrics file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Writing the temporary file or renaming it failed.
    #[error("cannot write metrics file {path}: {source}; check metrics_file / --metrics-file")]
    Write {
        /// The metrics file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Renders the metrics of `status` in the Prometheus text exposition format.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {}", number(*value));
        }
    };
    let ts = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0)
    };
    let success = status.last_success.as_ref();
    let attempt = status.last_attempt.as_ref();
    gauge(
        "coffer_last_success_timestamp_seconds",
        "Unix time the last successful backup finished (0: never).",
        &[("", ts(success.map(|s| s.at)))],
    );
    gauge(
        "coffer_last_attempt_timestamp_seconds",
        "Unix time the last backup attempt ended (0: none recorded).",
        &[("", ts(attempt.map(|a| a.ended)))],
    );
    let last_ok = attempt.map_or(success.is_some(), |a| a.is_success());
    gauge(
        "coffer_last_run_success",
        "1 if the last backup attempt succeeded, 0 if it failed.",
        &[("", if last_ok { 1.0 } else { 0.0 })],
    );
    gauge(
        "coffer_consecutive_failures",
        "Failed backup attempts since the last successful backup.",
        &[("", status.consecutive_failures.into())],
    );
    let artifacts: Vec<(String, f64)> = success
        .map(|s| {
            s.artifacts
                .iter()
                .map(|(role, bytes)| (format!("{{artifact=\"{}\"}}", escape(role)), *bytes as f64))
                .collect()
        })
        .unwrap_or_default();
    let artifacts: Vec<(&str, f64)> = artifacts.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    gauge(
        "coffer_last_backup_artifact_bytes",
        "Size on disk of each artifact of the last successful backup.",
        &artifacts,
    );
    gauge(
        "coffer_last_run_duration_seconds",
        "Wall time of the last backup attempt.",
        &[("", attempt.map_or(0.0, |a| a.duration_seconds))],
    );
    let kinds: Vec<(String, f64)> = [BackupKind::Auto, BackupKind::Manual, BackupKind::Legacy]
        .iter()
        .map(|k| {
            let n = status.backups.by_kind.get(k).copied().unwrap_or(0);
            (format!("{{kind=\"{k}\"}}"), n as f64)
        })
        .collect();
    let kinds: Vec<(&str, f64)> = kinds.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    gauge(
        "coffer_backups",
        "Backups in the backup root, per kind.",
        &kinds,
    );
    gauge(
        "coffer_backups_size_bytes",
        "Bytes of all backups in the backup root.",
        &[("", status.backups.total_bytes as f64)],
    );
    // Only once a sync was ever recorded, so hosts without a remote get no sync series.
    if let Some(sync) = &status.last_sync {
        gauge(
            "coffer_last_sync_timestamp_seconds",
            "Unix time the last successful sync to the remote ended (0: never).",
            &[("", ts(status.last_sync_success))],
        );
        gauge(
            "coffer_last_sync_success",
            "1 if the last sync to the remote succeeded, 0 if it failed.",
            &[("", if sync.is_success() { 1.0 } else { 0.0 })],
        );
    }
    out
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Replaces `path` with `text` atomically: writes `.NAME.tmp-RANDOM` beside it (a name the
/// textfile collector ignores, as it reads only `*.prom`), fsyncs, renames, fsyncs the
/// directory. The file is 0644. Nothing planted in the directory is followed.
pub fn write(path: &Path, text: &str) -> Result<(), MetricsError> {
    let err = |source| MetricsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // A fresh random name created exclusively (O_EXCL): a symlink planted in the metrics
    // directory under a predictable name can neither redirect nor truncate anything.
    let result = (|| {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.tmp-", name.to_string_lossy()))
            .tempfile_in(dir)?;
        // The collector must be able to read it (tempfile creates 0600).
        tmp.as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        tmp.write_all(text.as_bytes())?;
        tmp.as_file().sync_all()?;
        // rename(2) replaces whatever is at `path`, a symlink included, without following it.
        tmp.persist(path).map_err(|e| e.error)?;
        fs::File::open(dir)?.sync_all()
    })();
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::runlog::{BackupStats, Operation, RunRecord, summarize};
    use chrono::{TimeDelta, TimeZone, Utc};

    #[test]
    fn renders_every_metric_with_help_and_type() {
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 3, 0, 0).unwrap();
        let ok = RunRecord::new(Operation::Backup, t)
            .with_backup("auto-20261120T030000Z", Some(BackupKind::Auto))
            .with_artifact("database", 1234)
            .with_artifact("workspace", 5678)
            .succeeded(t + TimeDelta::milliseconds(61_500));
        let failed = RunRecord::new(Operation::Backup, t + TimeDelta::hours(1))
            .failed(t + TimeDelta::hours(1) + TimeDelta::seconds(2), "boom");
        let mut stats = BackupStats {
            count: 3,
            total_bytes: 99,
            ..BackupStats::default()
        };
        stats.by_kind.insert(BackupKind::Auto, 2);
        stats.by_kind.insert(BackupKind::Manual, 1);
        let status = summarize(&[ok, failed], &stats, t + TimeDelta::hours(2));
        let text = render(&status);
        let expected = "\
# HELP coffer_last_success_timestamp_seconds Unix time the last successful backup finished (0: never).
# TYPE coffer_last_success_timestamp_seconds gauge
coffer_last_success_timestamp_seconds 1795143661.5
# HELP coffer_last_attempt_timestamp_seconds Unix time the last backup attempt ended (0: none recorded).
# TYPE coffer_last_attempt_timestamp_seconds gauge
coffer_last_attempt_timestamp_seconds 1795147202
# HELP coffer_last_run_success 1 if the last backup attempt succeeded, 0 if it failed.
# TYPE coffer_last_run_success gauge
coffer_last_run_success 0
# HELP coffer_consecutive_failures Failed backup attempts since the last successful backup.
# TYPE coffer_consecutive_failures gauge
coffer_consecutive_failures 1
# HELP coffer_last_backup_artifact_bytes Size on disk of each artifact of the last successful backup.
# TYPE coffer_last_backup_artifact_bytes gauge
coffer_last_backup_artifact_bytes{artifact=\"database\"} 1234
coffer_last_backup_artifact_bytes{artifact=\"workspace\"} 5678
# HELP coffer_last_run_duration_seconds Wall time of the last backup attempt.
# TYPE coffer_last_run_duration_seconds gauge
coffer_last_run_duration_seconds 2
# HELP coffer_backups Backups in the backup root, per kind.
# TYPE coffer_backups gauge
coffer_backups{kind=\"auto\"} 2
coffer_backups{kind=\"manual\"} 1
coffer_backups{kind=\"legacy\"} 0
# HELP coffer_backups_size_bytes Bytes of all backups in the backup root.
# TYPE coffer_backups_size_bytes gauge
coffer_backups_size_bytes 99
";
        assert_eq!(text, expected);

        let never = render(&summarize(&[], &BackupStats::default(), t));
        assert!(
            never.contains("\ncoffer_last_success_timestamp_seconds 0\n"),
            "{never}"
        );
        assert!(never.contains("\ncoffer_last_run_success 0\n"), "{never}");
    }

    #[test]
    fn write_replaces_atomically_with_mode_0644() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.prom");
        write(&path, "a 1\n").unwrap();
        write(&path, "a 2\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "a 2\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["coffer.prom"]);
        let e = write(&dir.path().join("missing/coffer.prom"), "x").unwrap_err();
        assert!(
            e.to_string().starts_with("cannot write metrics file"),
            "{e}"
        );
    }

    #[test]
    fn planted_symlinks_are_never_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "secret\n").unwrap();
        std::fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        let path = dir.path().join("coffer.prom");
        // The old predictable temporary name, and the metrics file itself, point at it.
        let old_tmp = dir
            .path()
            .join(format!(".coffer.prom.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &old_tmp).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write(&path, "coffer_up 1\n").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "secret\n");
        let mode = fs::metadata(&victim).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the victim's mode changed");
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(
            meta.file_type().is_file(),
            "the link was replaced by a file"
        );
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert_eq!(fs::read_to_string(&path).unwrap(), "coffer_up 1\n");
    }
}
