//! `coffer restore`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use coffer_core::Error;
use coffer_core::catalog::{self, BackupEntry};
use coffer_core::config::Config;
use coffer_core::lock::RootLock;
use coffer_core::notify::Reporting;
use coffer_core::restore::{self, Event, Plan, RestoreOptions, RestoreSettings};
use coffer_core::runlog::{Operation, RunRecord};

use crate::output;

/// Arguments of `coffer restore`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Pre-flight, before anything is changed: with signing.trusted_public_keys, the backup's signatures verify against a trusted key (an unsigned one only with --allow-unsigned); the backup is complete and its files have their \
recorded sizes; the identity opens encrypted artifacts; the database is reachable; the roles \
the dump assigns ownership to exist; no other session is connected; there is room for the \
staging copy of the workspace; the backup's Alembic head is the code's (--expect-head, \
alembic.expected_head_command or alembic.versions_dir).

Then hooks.before_restore runs, the database is restored in ONE transaction and the workspace \
is extracted into a staging directory beside it, concurrently. Only when both streams ended with \
matching hashes is the workspace swapped in by rename and the transaction committed; any failure \
or signal before that leaves both exactly as they were. hooks.after_restore runs in every case.

Exit codes: 0 restored; 5 the backup failed verification or its signature is bad or missing (nothing changed); 6 refused by \
pre-flight or confirmation (nothing changed); 7 failed and rolled back (nothing changed); \
8 restored, but the head check or hooks.after_restore failed afterwards; 9 failed and the \
previous state could not be fully put back (read the message); 1 other failure before any \
change; 2 bad configuration; 3 locked; 12 --from-remote: the remote is unreachable, refuses \
the credentials or permissions, or the bucket does not exist; 130/143 interrupted and rolled \
back.

Disaster recovery on a fresh host: with only the binary, a configuration holding [remote], \
[database] and [workspace], the remote's credentials in the environment and the age identity, \
`coffer restore --from-remote --latest --yes` pulls the newest complete remote backup into the \
backup root (verified, all or nothing) and restores it.")]
pub struct Args {
    /// The backup: a name in the backup root or a directory path (legacy
    /// YYYY-MM-DD-HHMMSS ones too)
    #[arg(value_name = "NAME|PATH", required_unless_present = "latest")]
    name: Option<String>,

    /// Restore the newest usable backup in the backup root (with --from-remote: the newest
    /// complete backup on the remote)
    #[arg(long, conflicts_with = "name")]
    latest: bool,

    /// Disaster recovery: pull the backup from the remote (remote.url) into the backup root
    /// first, verified, unless it is already complete there; then restore it with every
    /// check of a local restore
    #[arg(long)]
    from_remote: bool,

    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    yes: bool,

    /// Restore only the database
    #[arg(long, conflicts_with = "workspace_only")]
    db_only: bool,

    /// Restore only the workspace
    #[arg(long)]
    workspace_only: bool,

    /// Restore into this database instead of the configured one (created if missing)
    #[arg(long, value_name = "NAME")]
    target_db: Option<String>,

    /// Restore the workspace into this directory instead of workspace.path
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,

    /// The Alembic head the code expects (repeat or comma-separate for several heads);
    /// overrides alembic.expected_head_command and the heads of alembic.versions_dir
    #[arg(long, value_name = "REV", value_delimiter = ',')]
    expect_head: Vec<String>,

    /// Restore even when the backup's Alembic head differs from the code's
    #[arg(long)]
    allow_head_mismatch: bool,

    /// End other sessions connected to the target database instead of refusing
    #[arg(long)]
    terminate_connections: bool,

    /// Keep the previous workspace as <workspace>.before-restore-<time> after success
    #[arg(long)]
    keep_old: bool,

    /// Do not run hooks.before_restore / hooks.after_restore
    #[arg(long)]
    no_hooks: bool,

    /// age identity file [default: encryption.identity_file or $COFFER_AGE_IDENTITY_FILE]
    #[arg(long, value_name = "PATH")]
    identity: Option<PathBuf>,

    /// Restore a backup without signatures although signing.trusted_public_keys is set (a
    /// bad signature is still refused)
    #[arg(long)]
    allow_unsigned: bool,

    /// Print the plan and the result as JSON on stdout (steps go to stderr)
    #[arg(long)]
    pub(crate) json: bool,

    /// No progress output
    #[arg(long, short)]
    quiet: bool,
}

/// The operator did not confirm (or could not, without a terminal): nothing happened.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotConfirmed(String);

/// Runs `coffer restore` and records the attempt in the run log (metrics and
/// `hooks.on_success` / `hooks.on_failure` follow), unless it was never confirmed.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let config = cli.load_config()?;
    let reporting = Reporting::from_config(&config);
    let started = Utc::now();
    let mut backup = None;
    let result = restore(&config, args, &mut backup);
    if result
        .as_ref()
        .err()
        .is_none_or(|e| e.downcast_ref::<NotConfirmed>().is_none())
    {
        let mut record = RunRecord::new(Operation::Restore, started);
        if let Some(entry) = &backup {
            record = record.with_backup(entry.name.clone(), entry.kind);
        }
        let record = match &result {
            Ok(()) => record.succeeded(Utc::now()),
            Err(e) => record.failed(Utc::now(), &format!("{e:#}")),
        };
        super::print_warnings(&reporting.after_run(&record, Utc::now()));
    }
    result.map(|()| ExitCode::SUCCESS)
}

fn restore(config: &Config, args: &Args, backup: &mut Option<BackupEntry>) -> anyhow::Result<()> {
    let root = config.backup_dir();
    let mut settings = RestoreSettings::from_config(config)?;
    settings.signatures = super::signature_policy(config, args.allow_unsigned)?;
    let identities = super::load_identities(config, args.identity.as_deref())?;
    let name = if args.from_remote {
        Some(pull_first(
            config,
            args,
            identities.as_ref(),
            &settings.signatures,
        )?)
    } else {
        args.name.clone()
    };
    // The pull's lock is released here; restore takes its own below.
    let resolved = catalog::resolve_at(&root, name.as_deref(), Utc::now())?;
    super::print_warnings(&resolved.warnings);
    let entry = resolved.entry;
    *backup = Some(entry.clone());
    // Keep prune and other runs away from a backup being restored from the root.
    let _lock = lock_if_in_root(&root, &entry)?;
    let options = RestoreOptions {
        database: !args.workspace_only,
        workspace: !args.db_only,
        target_db: args.target_db.clone(),
        create_target_db: args.target_db.is_some(),
        target_dir: args.target_dir.clone(),
        expect_heads: (!args.expect_head.is_empty()).then(|| args.expect_head.clone()),
        check_code_head: true,
        allow_head_mismatch: args.allow_head_mismatch,
        terminate_connections: args.terminate_connections,
        keep_old: args.keep_old,
        run_hooks: !args.no_hooks,
    };
    let say = |line: String| {
        if args.json {
            crate::output::errln!("{line}");
        } else {
            crate::output::outln!("{line}");
        }
    };
    if let Some(r) = restore::recover_interrupted(&settings, &options).map_err(Error::from)? {
        say(format!("note: {r}"));
    }
    let plan =
        restore::prepare(&settings, &entry, &options, identities.as_ref()).map_err(Error::from)?;
    for c in &plan.checks {
        say(format!("✓ {c}"));
    }
    for n in &plan.notes {
        say(format!("note: {n}"));
    }
    confirm(&plan, args.yes)?;
    let cancel = super::cancel_on_signals().context("cannot install signal handlers")?;
    let progress = output::reporter(args.quiet);
    let events = |e: Event| match e {
        Event::Done(t) => say(format!("✓ {t}")),
        Event::Note(t) => say(format!("note: {t}")),
    };
    let result = restore::execute(
        &settings,
        &plan,
        &options,
        identities.as_ref(),
        progress.as_ref(),
        &events,
        &cancel,
    );
    let report = result.map_err(Error::from)?;
    if args.json {
        crate::output::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "plan": plan, "report": report }))?
        );
    } else {
        crate::output::outln!(
            "restore of {} complete in {:.1}s",
            report.backup,
            report.duration_seconds
        );
    }
    Ok(())
}

/// `--from-remote`: the backup's name in the root after pulling it (or finding it complete
/// there already).
fn pull_first(
    config: &coffer_core::config::Config,
    args: &Args,
    identities: Option<&coffer_core::crypto::Identities>,
    signatures: &coffer_core::signing::SignaturePolicy,
) -> anyhow::Result<String> {
    use coffer_core::remote::pull::Which;
    if let Some(name) = &args.name {
        if name.contains('/') {
            return Err(coffer_core::Error::from(
                coffer_core::config::ConfigError::Invalid {
                    path: "command line".into(),
                    key: "NAME".into(),
                    reason: format!(
                        "--from-remote takes a backup name (see `coffer list --remote`), not the path `{name}`"
                    ),
                },
            )
            .into());
        }
        let local = config.backup_dir().join(name);
        if local.is_dir() && BackupEntry::read(&local).status.is_usable() {
            if !args.quiet {
                crate::output::errln!(
                    "note: {name} is already complete in the backup root; not pulling it"
                );
            }
            return Ok(name.clone());
        }
    }
    let which = match &args.name {
        Some(n) => Which::Name(n.clone()),
        None => Which::Latest,
    };
    let report = super::pull::pull_with_config(config, &which, identities, signatures, args.quiet)?;
    if !args.quiet {
        crate::output::errln!(
            "✓ pulled {} from the remote and verified it: {}",
            report.name,
            report.path.display()
        );
    }
    Ok(report.name)
}

fn lock_if_in_root(
    root: &std::path::Path,
    entry: &BackupEntry,
) -> anyhow::Result<Option<RootLock>> {
    let inside = match (entry.path.canonicalize(), root.canonicalize()) {
        (Ok(p), Ok(r)) => p.starts_with(r),
        _ => false,
    };
    Ok(if inside {
        Some(RootLock::acquire(root, "restore").map_err(coffer_core::Error::from)?)
    } else {
        None
    })
}

/// What will be replaced, then `restore` typed at a terminal; `--yes` otherwise.
fn confirm(plan: &Plan, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(NotConfirmed(
            "restore refused, nothing was changed: stdin is not a terminal, so the restore cannot be confirmed; pass --yes to restore without confirmation"
                .into(),
        )
        .into());
    }
    let mut err = std::io::stderr();
    writeln!(err, "\nThis restore REPLACES:")?;
    if let Some(db) = &plan.database {
        writeln!(
            err,
            "  database   {}{}",
            db.name,
            if db.create { " (to be created)" } else { "" }
        )?;
    }
    if let Some(ws) = &plan.workspace {
        writeln!(
            err,
            "  workspace  {}{}",
            ws.path.display(),
            if ws.exists {
                ""
            } else {
                " (does not exist yet)"
            }
        )?;
    }
    writeln!(
        err,
        "with backup {} ({})",
        plan.backup,
        plan.backup_path.display()
    )?;
    writeln!(
        err,
        "  created    {}",
        plan.created.map_or("unknown".into(), |t| t
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string())
    )?;
    writeln!(
        err,
        "  alembic    {}",
        plan.head
            .backup
            .as_ref()
            .map_or("not recorded".into(), |h| h.join(","))
    )?;
    write!(err, "Type `restore` to continue: ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "restore" {
        return Err(NotConfirmed(
            "restore refused, nothing was changed: not confirmed (the answer was not `restore`)"
                .into(),
        )
        .into());
    }
    Ok(())
}
