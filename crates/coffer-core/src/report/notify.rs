//! What happens after every run (backup, prune, and later sync and restore): the run log
//! record, the metrics file, and the `hooks.on_success` / `hooks.on_failure` commands.
//!
//! None of it may change the run's outcome: each step that fails gives a warning for the
//! caller to print, and the next step still runs.

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::{Config, HooksConfig};
use crate::report::hooks::{self, Stage};
use crate::root::runlog::{self, Operation, Outcome, RunRecord};
use crate::warning::Warning;

/// Where a run's outcome goes.
#[derive(Debug, Clone)]
pub struct Reporting {
    /// The backup root, holding the run log.
    pub root: PathBuf,
    /// The Prometheus textfile to rewrite, if any.
    pub metrics_file: Option<PathBuf>,
    /// `hooks.on_success` and `hooks.on_failure`.
    pub hooks: HooksConfig,
}

impl Reporting {
    /// From a configuration (`backup_dir`, `metrics_file`, `[hooks]`).
    pub fn from_config(config: &Config) -> Reporting {
        Reporting {
            root: config.backup_dir(),
            metrics_file: config.metrics_file.clone(),
            hooks: config.hooks.clone(),
        }
    }

    /// Records `record` in the run log, rewrites the metrics file (from the whole log and
    /// the root's listing at `now`), then runs the hooks for its outcome with
    /// [`runlog::hook_env`]. Returns one warning per step that failed.
    pub fn after_run(&self, record: &RunRecord, now: DateTime<Utc>) -> Vec<Warning> {
        let mut warnings = self.record(record);
        warnings.extend(self.write_metrics(now).err().map(Warning::Metrics));
        warnings.extend(self.run_hooks(record));
        warnings
    }

    /// Appends `record` to the run log; the warning when that failed.
    pub fn record(&self, record: &RunRecord) -> Vec<Warning> {
        match runlog::append(&self.root, record) {
            Ok(()) => Vec::new(),
            Err(e) => vec![Warning::RunLog(e.to_string())],
        }
    }

    /// Whether [`Reporting::run_hooks`] has any command to run for `record`'s outcome.
    pub fn has_hooks(&self, record: &RunRecord) -> bool {
        !self.hooks_for(record).1.is_empty()
    }

    /// The stage and the commands of `record`'s outcome.
    fn hooks_for(&self, record: &RunRecord) -> (Stage, &[Vec<String>]) {
        match record.outcome {
            Outcome::Success => (Stage::OnSuccess, &self.hooks.on_success),
            Outcome::Failure => (Stage::OnFailure, &self.hooks.on_failure),
        }
    }

    /// Runs `hooks.on_success` or `hooks.on_failure`, as `record`'s outcome says, with
    /// [`runlog::hook_env`]; one warning per command that failed.
    pub fn run_hooks(&self, record: &RunRecord) -> Vec<Warning> {
        let (stage, list) = self.hooks_for(record);
        let env = runlog::hook_env(record, &self.root);
        hooks::run_all(stage, list, &env, self.hooks.timeout)
            .into_iter()
            .map(|e| Warning::Hook {
                error: e.to_string(),
                operation: record.operation,
            })
            .collect()
    }

    /// Rewrites the metrics file, if one is configured.
    pub fn write_metrics(&self, now: DateTime<Utc>) -> Result<(), String> {
        let Some(path) = &self.metrics_file else {
            return Ok(());
        };
        let status = runlog::status(&self.root, now).map_err(|e| e.to_string())?;
        crate::report::metrics::write(path, &crate::report::metrics::render(&status))
            .map_err(|e| e.to_string())
    }
}

/// How recent a failed backup record must be for [`unit_failed`] to take it as the one
/// systemd reports (coffer then already ran the failure hooks).
pub const RECORDED_FAILURE_WINDOW: TimeDelta = TimeDelta::minutes(15);

/// What `unit_failed` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitFailure {
    /// coffer recorded the failure itself (and ran the hooks): nothing more to do.
    AlreadyReported,
    /// coffer did not record it (killed, timed out, crashed): a failure record was
    /// appended and the hooks ran; the warnings of that.
    Reported(Vec<Warning>),
}

/// The systemd `OnFailure=` unit's job: when `unit` failed and the run log holds no failed
/// backup from the last [`RECORDED_FAILURE_WINDOW`], records a failure and runs
/// `hooks.on_failure`, so a backup that was killed or timed out is paged and counted too.
pub fn unit_failed(reporting: &Reporting, unit: &str, now: DateTime<Utc>) -> UnitFailure {
    let recent = runlog::read(&reporting.root)
        .map(|log| {
            log.records.iter().any(|r| {
                r.operation == Operation::Backup
                    && !r.is_success()
                    && r.ended <= now
                    && now - r.ended <= RECORDED_FAILURE_WINDOW
            })
        })
        .unwrap_or(false);
    if recent {
        return UnitFailure::AlreadyReported;
    }
    let record = RunRecord::new(Operation::Backup, now)
        .with_kind(crate::format::names::BackupKind::Auto)
        .failed(
            now,
            &format!(
                "systemd unit {unit} failed without coffer recording why (killed, timed out or crashed?): see journalctl -u {unit}"
            ),
        );
    UnitFailure::Reported(reporting.after_run(&record, now))
}

impl crate::Coffer {
    /// What systemd's `OnFailure=` unit runs: see `unit_failed`.
    pub fn unit_failed(&self, unit: &str, now: DateTime<Utc>) -> UnitFailure {
        unit_failed(self.reporting(), unit, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_run_logs_writes_metrics_and_runs_the_outcome_hooks() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("hook-out");
        let script = format!(
            "printf '%s %s %s' \"$COFFER_OPERATION\" \"$COFFER_OUTCOME\" \"$COFFER_ERROR\" >> {}",
            out.display()
        );
        let reporting = Reporting {
            root: dir.path().join("root"),
            metrics_file: Some(dir.path().join("coffer.prom")),
            hooks: HooksConfig {
                on_failure: vec![vec!["sh".into(), "-c".into(), script], vec!["false".into()]],
                ..HooksConfig::default()
            },
        };
        let now = Utc::now();
        let ok = RunRecord::new(Operation::Backup, now).succeeded(now);
        assert!(reporting.after_run(&ok, now).is_empty());
        assert!(!out.exists(), "on_failure ran after a success");
        let failed = RunRecord::new(Operation::Prune, now).failed(now, "disk on fire\nmore");
        let warnings = reporting.after_run(&failed, now);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0]
                .to_string()
                .starts_with("hooks.on_failure command `false` failed")
        );
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "prune failure disk on fire"
        );
        assert_eq!(runlog::read(&reporting.root).unwrap().records.len(), 2);
        let metrics = std::fs::read_to_string(dir.path().join("coffer.prom")).unwrap();
        assert!(
            metrics.contains("\ncoffer_last_run_success 1\n"),
            "{metrics}"
        );

        // An unwritable metrics file is a warning, and the hooks still run.
        let broken = Reporting {
            metrics_file: Some(dir.path().join("no/such/dir/coffer.prom")),
            ..reporting.clone()
        };
        let warnings = broken.after_run(&failed, now);
        assert!(
            warnings[0]
                .to_string()
                .starts_with("cannot write metrics file"),
            "{warnings:?}"
        );
        assert_eq!(warnings.len(), 2);
    }

    #[test]
    fn unit_failure_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let reporting = Reporting {
            root: dir.path().to_path_buf(),
            metrics_file: None,
            hooks: HooksConfig::default(),
        };
        let now = Utc::now();
        // Killed: nothing recorded, so the unit failure is.
        let got = unit_failed(&reporting, "coffer-backup.service", now);
        assert_eq!(got, UnitFailure::Reported(vec![]));
        let log = runlog::read(dir.path()).unwrap();
        assert_eq!(log.records.len(), 1);
        assert!(
            log.records[0]
                .error
                .as_ref()
                .unwrap()
                .contains("journalctl -u coffer-backup.service")
        );
        // coffer's own failure record is recent: not reported twice.
        assert_eq!(
            unit_failed(
                &reporting,
                "coffer-backup.service",
                now + TimeDelta::minutes(1)
            ),
            UnitFailure::AlreadyReported
        );
    }
}
