//! `coffer backup`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use coffer_core::{BackupKind, BackupReport};
use coffer_core::{BackupOptions, BundleOutput, ErrorKind, RunContext};

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

With --output FILE (or - for standard output) the backup is written as one bundle (see `coffer \
export`) instead of a directory in the backup root, encrypted and signed as configured. It is \
staged in a private directory beside FILE (for -: in $TMPDIR, else /tmp), which needs room for \
the whole backup, and removed afterwards. No backup is written to the backup root: no prune, \
no sync, retention does not apply. The attempt is still appended to the run log, as operation \
`bundle` (which `coffer status` and the metrics do not count as a backup of the root; a failed \
one is the last failure), the metrics file is rewritten and hooks.on_success or \
hooks.on_failure run with COFFER_OPERATION=bundle (COFFER_BACKUP_PATH empty, COFFER_DETAIL \
saying where the bundle went).

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

    /// Write the backup as one bundle to FILE (0600; never replaces a file), or `-` for
    /// standard output, instead of a directory in the backup root
    #[arg(long, short, value_name = "FILE", conflicts_with_all = ["sync", "no_prune"])]
    output: Option<PathBuf>,
}

fn parse_kind(s: &str) -> Result<BackupKind, String> {
    match s.parse()? {
        BackupKind::Legacy => Err("legacy backups are only read, not written".into()),
        k => Ok(k),
    }
}

/// Runs `coffer backup`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    if let Some(output) = &args.output {
        return to_bundle(cli, args, output);
    }
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
    Ok(strict_exit(args, &report, "backup"))
}

/// `--strict`: exit 4 when files changed while archived; the result itself is complete.
fn strict_exit(args: &Args, report: &BackupReport, what: &str) -> ExitCode {
    if args.strict && !report.changed_files().is_empty() {
        output::errln!(
            "error: {} file(s) changed while being archived (--strict); the {what} is complete but \
             may be inconsistent for those files: rerun when the workspace is quiet",
            report.changed_files().len()
        );
        return ExitCode::from(exit::CHANGED_FILES);
    }
    ExitCode::SUCCESS
}

/// `coffer backup --output FILE|-`: the backup as one bundle, nothing in the root.
fn to_bundle(cli: &crate::Cli, args: &Args, output: &std::path::Path) -> anyhow::Result<ExitCode> {
    let usage = |m: &str| coffer_core::Error::new(ErrorKind::InvalidConfig, m.to_string());
    let stream = output.as_os_str() == "-";
    if stream && args.json {
        return Err(usage("--json needs --output FILE: standard output carries the bundle").into());
    }
    if stream && std::io::stdout().is_terminal() {
        return Err(usage(
            "refusing to write a bundle to a terminal: pass --output FILE, or redirect standard output",
        )
        .into());
    }
    let coffer = cli.coffer()?;
    let lines = if args.quiet {
        Lines::Hidden
    } else {
        Lines::Stderr
    };
    let reporter = Reporter::new(args.quiet, lines);
    let cancel = super::cancel_on_signals().context("cannot install signal handlers")?;
    let ctx = RunContext::new(&reporter).with_cancel(cancel);
    let options = BackupOptions::default()
        .kind(args.kind)
        .label(args.label.clone())
        .scratch_dir(stream.then(std::env::temp_dir));
    let outcome = if stream {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        let outcome = coffer.backup_to_bundle(&options, BundleOutput::Stream(&mut out), &ctx)?;
        out.flush()
            .context("cannot write the bundle to standard output")?;
        outcome
    } else {
        coffer.backup_to_bundle(&options, BundleOutput::File(output.to_path_buf()), &ctx)?
    };
    let report = &outcome.report;
    if stream {
        if !args.quiet {
            output::errln!(
                "backup {} complete in {:.1}s: written as a bundle ({}) to standard output",
                report.manifest.name,
                report.duration_seconds,
                output::bytes(outcome.bundle.bytes)
            );
        }
    } else {
        output::print_backup(report, args.json)?;
    }
    Ok(strict_exit(args, report, "bundle"))
}
