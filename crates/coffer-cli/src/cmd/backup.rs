//! `coffer backup`.

use std::process::ExitCode;

use anyhow::Context;
use coffer_core::BackupKind;
use coffer_core::{BackupOptions, RunContext};

use crate::exit;
use crate::output::{self, Lines, Reporter};

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
    let coffer = cli.coffer()?;
    let lines = if args.quiet {
        Lines::Hidden
    } else {
        Lines::Stderr
    };
    let reporter = Reporter::new(args.quiet, lines);
    let cancel = super::cancel_on_signals().context("cannot install signal handlers")?;
    let mut ctx = RunContext::new(&reporter).with_cancel(cancel);
    // Only a backup that syncs when done reaches the remote.
    let runtime = (args.sync || coffer.config().remote.sync_after_backup)
        .then(super::runtime::start)
        .transpose()?;
    if let Some(runtime) = &runtime {
        ctx = ctx.with_runtime(runtime.handle().clone());
    }
    let options = BackupOptions::default()
        .kind(args.kind)
        .label(args.label.clone())
        .prune(!args.no_prune)
        .sync(args.sync);
    let report = coffer.backup(&options, &ctx)?.report;
    output::print_backup(&report, args.json)?;
    if args.strict && !report.changed_files().is_empty() {
        output::errln!(
            "error: {} file(s) changed while being archived (--strict); the backup is complete but \
             may be inconsistent for those files: rerun when the workspace is quiet",
            report.changed_files().len()
        );
        return Ok(ExitCode::from(exit::CHANGED_FILES));
    }
    Ok(ExitCode::SUCCESS)
}
