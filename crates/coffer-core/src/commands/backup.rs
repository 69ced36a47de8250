//! `backup`: the whole job. The backup itself, its run-log record, the prune and the sync
//! after a success, the metrics file and the `on_success` / `on_failure` hooks.

use std::path::PathBuf;

use chrono::Utc;

use super::export::{BundleOutput, output_dir, write_bundle};
use crate::backup::{self, BackupReport, BackupRequest, BackupSettings};
use crate::bundle::{self, BundleError, ExportReport};
use crate::coffer::{Coffer, finished, warn_all};
use crate::config::ConfigError;
use crate::context::RunContext;
use crate::error::Error;
use crate::format::names::BackupKind;
use crate::progress::Event;
use crate::root::catalog::BackupEntry;
use crate::root::runlog::{Operation, RunRecord};
use crate::warning::Warning;

/// What to back up and what follows.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Who made the backup: `Auto` (the nightly timer; pruned by retention) or `Manual`
    /// (never pruned automatically). Default: `Manual`.
    pub kind: BackupKind,
    /// Free text stored in the manifest.
    pub label: Option<String>,
    /// Prune the root after a successful backup. Default: yes.
    pub prune: bool,
    /// Sync the root to the remote after a successful backup, as `remote.sync_after_backup`
    /// does. Default: no (the configuration decides).
    pub sync: bool,
    /// For [`Coffer::backup_to_bundle`]: the directory the backup is staged in (in a private
    /// 0700 directory removed afterwards) before it is streamed. Default: the output file's
    /// directory; a stream output needs it set.
    pub scratch_dir: Option<PathBuf>,
}

impl Default for BackupOptions {
    fn default() -> BackupOptions {
        BackupOptions {
            kind: BackupKind::Manual,
            label: None,
            prune: true,
            sync: false,
            scratch_dir: None,
        }
    }
}

impl BackupOptions {
    /// Sets who made the backup.
    pub fn kind(mut self, kind: BackupKind) -> BackupOptions {
        self.kind = kind;
        self
    }

    /// Sets the label stored in the manifest.
    pub fn label(mut self, label: Option<String>) -> BackupOptions {
        self.label = label;
        self
    }

    /// Whether to prune after a successful backup.
    pub fn prune(mut self, prune: bool) -> BackupOptions {
        self.prune = prune;
        self
    }

    /// Whether to sync after a successful backup (also when not configured).
    pub fn sync(mut self, sync: bool) -> BackupOptions {
        self.sync = sync;
        self
    }

    /// Sets where [`Coffer::backup_to_bundle`] stages the backup.
    pub fn scratch_dir(mut self, dir: Option<PathBuf>) -> BackupOptions {
        self.scratch_dir = dir;
        self
    }
}

/// A backup written as one bundle.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct BundleBackupOutcome {
    /// The backup made; its `path` is the output file (`-` for a stream).
    pub report: BackupReport,
    /// What the bundle holds.
    pub bundle: ExportReport,
    /// What failed after it without failing it (run log, metrics, hooks), also reported as
    /// [`Event::Warning`]s.
    pub warnings: Vec<Warning>,
}

/// A successful backup and what went wrong around it.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// The backup made.
    pub report: BackupReport,
    /// What failed after it without failing it (run log, prune, sync, metrics, hooks), also
    /// reported as [`Event::Warning`]s.
    pub warnings: Vec<Warning>,
}

impl Coffer {
    /// Makes a backup, then records the attempt in the run log; after a success prunes the
    /// root (unless disabled) and syncs it to the remote (when asked or configured); then
    /// rewrites the metrics file and runs the hooks. Whatever fails after the backup is a
    /// warning: the backup's outcome stands.
    pub fn backup(
        &self,
        options: &BackupOptions,
        ctx: &RunContext<'_>,
    ) -> Result<BackupOutcome, Error> {
        let started = Utc::now();
        let result = self.write_backup(options, ctx);
        let record = RunRecord::new(Operation::Backup, started).with_kind(options.kind);
        let record = match &result {
            Ok(report) => finished(record.with_backup_report(report), &result),
            Err(_) => finished(record, &result),
        };
        let reporting = self.reporting();
        let mut warnings = reporting.record(&record);
        if record.is_success() && options.prune {
            ctx.emit(Event::Step("pruning the backup root"));
            warnings.extend(self.prune_after_backup(ctx));
        }
        if record.is_success() && (options.sync || self.config().remote.sync_after_backup) {
            ctx.emit(Event::Step("syncing the backup root to the remote"));
            warnings.extend(self.sync_after_backup(ctx));
        }
        warnings.extend(
            reporting
                .write_metrics(Utc::now())
                .err()
                .map(Warning::Metrics),
        );
        if reporting.has_hooks(&record) {
            ctx.emit(Event::Step(if record.is_success() {
                "running the on_success hooks"
            } else {
                "running the on_failure hooks"
            }));
        }
        warnings.extend(reporting.run_hooks(&record));
        warn_all(ctx, &warnings);
        Ok(BackupOutcome {
            report: result?,
            warnings,
        })
    }

    /// Makes a backup and writes it as one bundle to `output` instead of a directory in the
    /// root (encrypted and signed as configured): it is staged in a private directory inside
    /// `options.scratch_dir` (or beside the output file), then streamed with the manifest
    /// first, then the staging copy is removed. No backup is written to the root: no prune,
    /// no sync, retention does not apply. Like every run it is recorded in the run log (as
    /// operation `bundle`, which status and metrics do not count as a backup of the root),
    /// then the metrics file is rewritten and `hooks.on_success` / `hooks.on_failure` run.
    pub fn backup_to_bundle(
        &self,
        options: &BackupOptions,
        output: BundleOutput<'_>,
        ctx: &RunContext<'_>,
    ) -> Result<BundleBackupOutcome, Error> {
        let started = Utc::now();
        let destination = match &output {
            BundleOutput::File(path) => path.display().to_string(),
            _ => "a stream".to_string(),
        };
        let result = self.write_bundle_backup(options, output, ctx);
        let record = RunRecord::new(Operation::Bundle, started).with_kind(options.kind);
        let record = match &result {
            Ok((report, bundle)) => finished(
                record.with_backup_report(report).with_detail(format!(
                    "{} bytes written as one bundle to {destination}",
                    bundle.bytes
                )),
                &result,
            ),
            Err(_) => finished(
                record.with_detail(format!("bundle to {destination}")),
                &result,
            ),
        };
        let warnings = self.after_run(&record, ctx);
        let (report, bundle) = result?;
        Ok(BundleBackupOutcome {
            report,
            bundle,
            warnings,
        })
    }

    /// The backup of [`Coffer::backup_to_bundle`], without its record.
    fn write_bundle_backup(
        &self,
        options: &BackupOptions,
        output: BundleOutput<'_>,
        ctx: &RunContext<'_>,
    ) -> Result<(BackupReport, ExportReport), Error> {
        let scratch_parent = match (&options.scratch_dir, &output) {
            (Some(dir), _) => dir.clone(),
            (None, BundleOutput::File(path)) => output_dir(path),
            (None, _) => {
                return Err(ConfigError::Refused(
                    "a backup written to a stream needs a scratch directory to stage it in (BackupOptions::scratch_dir)".into(),
                )
                .into());
            }
        };
        let shown = match &output {
            BundleOutput::File(path) => {
                if std::fs::symlink_metadata(path).is_ok() {
                    return Err(BundleError::OutputExists { path: path.clone() }.into());
                }
                path.clone()
            }
            _ => PathBuf::from("-"),
        };
        // The manifest is known only at the end but comes first in a bundle: the whole
        // backup is staged on disk (tempfile makes the directory 0700 and removes it).
        let scratch = tempfile::Builder::new()
            .prefix(".coffer-bundle-")
            .tempdir_in(&scratch_parent)
            .map_err(|e| BundleError::Io {
                op: "create a staging directory in",
                path: scratch_parent.clone(),
                source: e,
            })?;
        let mut settings = BackupSettings::from_config(self.config())?;
        settings.root = scratch.path().to_path_buf();
        let request = BackupRequest {
            kind: options.kind,
            label: options.label.clone(),
        };
        let mut report = backup::run(&settings, &request, ctx.progress(), ctx.cancel())?;
        let entry = BackupEntry::read(&report.path);
        ctx.emit(Event::Step("writing the bundle"));
        let bundle = write_bundle(output, |out| {
            bundle::export(&entry, out, &mut |_| {}, ctx.cancel())
        })?;
        report.path = shown;
        Ok((report, bundle))
    }

    /// The backup itself.
    fn write_backup(
        &self,
        options: &BackupOptions,
        ctx: &RunContext<'_>,
    ) -> Result<BackupReport, Error> {
        let settings = BackupSettings::from_config(self.config())?;
        if settings.workspace.is_none() {
            ctx.emit(Event::Note(
                "no workspace configured (workspace.path / WORKSPACE_HOST_PATH): backing up the database only",
            ));
        }
        let request = BackupRequest {
            kind: options.kind,
            label: options.label.clone(),
        };
        Ok(backup::run(
            &settings,
            &request,
            ctx.progress(),
            ctx.cancel(),
        )?)
    }
}
