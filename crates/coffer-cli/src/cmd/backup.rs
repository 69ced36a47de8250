//! `coffer backup`.

use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use coffer_core::backup::{self, BackupReport, BackupRequest, BackupSettings};
use coffer_core::config::Config;
use coffer_core::manifest::ArtifactRole;
use coffer_core::names::BackupKind;
use coffer_core::notify::Reporting;
use coffer_core::prune;
use coffer_core::runlog::{Operation, RunRecord};

use crate::exit;
use crate::output;

/// Arguments of `coffer backup`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "After the attempt, successful or not, it is appended to the run log \
(coffer-runs.jsonl in the backup root), the metrics file is rewritten and hooks.on_success or \
hooks.on_failure run. After a success the root is pruned (see `coffer prune`) unless --no-prune; \
a failed prune is a warning and does not change the exit code. After a failure nothing is pruned.

With --sync or remote.sync_after_backup, a successful backup is then copied to the remote \
(`coffer sync`, remote retention included). A failed sync is recorded in the run log (so \
`coffer status` and the metrics show it) and printed as a warning; the backup itself stays \
successful and the exit code is not changed.

Exit codes: 0 success, 1 failed, 2 bad configuration, 3 locked, \
4 --strict and files changed, 130/143 interrupted. On any failure no backup directory is left."
)]
pub struct Args {
    /// Who made the backup: `auto` (the nightly timer; pruned by retention) or `manual`
    /// (never pruned automatically)
    #[arg(long, default_value = "manual", value_parser = parse_kind)]
    kind: BackupKind,

    /// Free text stored in the manifest, e.g. pre-upgrade-1.4
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,

    /// Exit with code 4 when files changed while they were archived (the backup is kept)
    #[arg(long)]
    strict: bool,

    /// Print a machine-readable summary (JSON) on stdout at the end
    #[arg(long)]
    pub(crate) json: bool,

    /// No progress output on stderr
    #[arg(long, short)]
    quiet: bool,

    /// Do not prune old backups after a successful backup
    #[arg(long)]
    no_prune: bool,

    /// After a successful backup, sync the backup root to the remote (as
    /// remote.sync_after_backup does)
    #[arg(long)]
    sync: bool,
}

fn parse_kind(s: &str) -> Result<BackupKind, String> {
    match s.parse()? {
        BackupKind::Legacy => Err("legacy backups are only read, not written".into()),
        k => Ok(k),
    }
}

/// Runs `coffer backup`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let config = cli.load_config()?;
    let reporting = Reporting::from_config(&config);
    let started = Utc::now();
    let result = run_with_config(&config, args.kind, args.label.clone(), args.quiet);
    let record = RunRecord::new(Operation::Backup, started).with_kind(args.kind);
    let record = match &result {
        Ok(report) => record.with_backup_report(report).succeeded(Utc::now()),
        Err(e) => record.failed(Utc::now(), &format!("{e:#}")),
    };
    let mut warnings = reporting.record(&record);
    if record.is_success() && !args.no_prune {
        warnings.extend(prune_after_backup(&config, &reporting, args.quiet));
    }
    if record.is_success() && (args.sync || config.remote.sync_after_backup) {
        warnings.extend(sync_after_backup(&config, &reporting, args.quiet));
    }
    warnings.extend(reporting.write_metrics(Utc::now()).err());
    warnings.extend(reporting.run_hooks(&record));
    super::print_warnings(&warnings);
    let report = result?;
    print_report(&report, args.json)?;
    if args.strict && !report.changed_files().is_empty() {
        crate::output::errln!(
            "error: {} file(s) changed while being archived (--strict); the backup is complete but \
             may be inconsistent for those files: rerun when the workspace is quiet",
            report.changed_files().len()
        );
        return Ok(ExitCode::from(exit::CHANGED_FILES));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prunes after a successful backup and logs it as a `prune` run (without hooks: the
/// backup's hooks report the run). Returns warnings; a failed prune never fails the backup.
fn prune_after_backup(config: &Config, reporting: &Reporting, quiet: bool) -> Vec<String> {
    let started = Utc::now();
    let record = RunRecord::new(Operation::Prune, started);
    let (record, mut warnings) =
        match prune::run(&reporting.root, &config.retention, started, false) {
            Ok(report) => {
                if !quiet {
                    for name in &report.deleted {
                        crate::output::errln!("pruned {name}");
                    }
                }
                let record = record.with_detail(report.summary());
                match report.error() {
                    None => (record.succeeded(Utc::now()), Vec::new()),
                    Some(e) => {
                        let text = e.to_string();
                        (
                            record.failed(Utc::now(), &text),
                            vec![format!("prune: {text}")],
                        )
                    }
                }
            }
            Err(e) => {
                let text = e.to_string();
                (
                    record.failed(Utc::now(), &text),
                    vec![format!("prune: {text}")],
                )
            }
        };
    warnings.extend(reporting.record(&record));
    warnings
}

/// Syncs after a successful backup and logs it as a `sync` run (the backup's hooks report
/// the run). Returns warnings; a failed sync never fails the backup.
fn sync_after_backup(config: &Config, reporting: &Reporting, quiet: bool) -> Vec<String> {
    let started = Utc::now();
    let result = super::sync::sync_with_config(config, false, true, quiet);
    let record = super::sync::record_for(started, &result);
    let mut warnings = Vec::new();
    match &result {
        Ok(report) => {
            if !quiet {
                crate::output::errln!("synced to {}: {}", report.remote, report.summary());
            }
        }
        Err(e) => warnings.push(format!(
            "sync failed (the backup itself succeeded and is kept): {e:#}"
        )),
    }
    warnings.extend(reporting.record(&record));
    warnings
}

/// Runs a backup with a given configuration (shared with `coffer demo`).
pub fn run_with_config(
    config: &Config,
    kind: BackupKind,
    label: Option<String>,
    quiet: bool,
) -> anyhow::Result<BackupReport> {
    let settings = BackupSettings::from_config(config).map_err(coffer_core::Error::from)?;
    if settings.workspace.is_none() && !quiet {
        crate::output::errln!(
            "note: no workspace configured (workspace.path / WORKSPACE_HOST_PATH): backing up the database only"
        );
    }
    let cancel = super::cancel_on_signals().context("cannot install signal handlers")?;
    let progress = output::reporter(quiet);
    let request = BackupRequest { kind, label };
    Ok(backup::run(&settings, &request, progress.as_ref(), &cancel)
        .map_err(coffer_core::Error::from)?)
}

/// Prints the result: a few lines for people, or JSON.
pub fn print_report(report: &BackupReport, json: bool) -> anyhow::Result<()> {
    let m = &report.manifest;
    if json {
        crate::output::outln!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    if let Some(a) = m.artifact(ArtifactRole::Database) {
        let head = m
            .alembic_head
            .as_ref()
            .map_or("none (no alembic_version table)".to_string(), |h| {
                h.to_string()
            });
        crate::output::outln!(
            "✓ database  {:<24} {:>10}  {} tables, alembic head {head}",
            a.file,
            output::bytes(a.size),
            m.database.tables.len()
        );
    }
    if let (Some(a), Some(w)) = (m.artifact(ArtifactRole::Workspace), &m.workspace) {
        crate::output::outln!(
            "✓ workspace {:<24} {:>10}  {} files, {} directories, {} symlinks",
            a.file,
            output::bytes(a.size),
            w.files,
            w.directories,
            w.symlinks
        );
        for s in &w.skipped {
            crate::output::outln!("  skipped: {}", crate::output::shown(&s.to_string()));
        }
        for c in &w.changed {
            crate::output::outln!(
                "  changed while archived: {}",
                crate::output::shown(&c.to_string())
            );
        }
    }
    crate::output::outln!(
        "backup {} complete in {:.1}s: {}",
        m.name,
        report.duration_seconds,
        report.path.display()
    );
    Ok(())
}
