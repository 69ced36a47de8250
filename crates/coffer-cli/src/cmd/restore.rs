//! `coffer restore`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use coffer_core::RestorePlan as Plan;
use coffer_core::config::ConfigError;
use coffer_core::{BackupRef, BundleInput, ErrorKind, RestoreOptions, RunContext};

use crate::output::{self, Lines, Reporter};

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

With --jobs N (default: the number of cores) a backup whose dump has a piece index (coffer 0.2 \
and later) is restored by N sessions into a new database TARGET__coffer_new (created like the \
target: owner, encoding, locale, settings, grants): the schema first, then the tables' data in \
N sessions (largest first), each table's indexes built as soon as its data is in, then the \
rest of the dump in order; each piece checked against its SHA-256. Then the workspace and the database are swapped \
in together (the target renamed to TARGET__coffer_old and the new one into its place in one \
transaction) and the old database dropped (kept with --keep-old). Any failure before the swap \
drops the new database and changes nothing. It needs CREATEDB and room for one more copy of the \
database; otherwise, or for a small dump, the restore runs in one transaction (the plan says \
why). --jobs 1 always does. With --from-remote the sessions fetch their pieces with ranged reads \
while the whole object is downloaded once more alongside to check its hash before the swap.

Exit codes: 0 restored; 5 the backup failed verification or its signature is bad or missing (nothing changed); 6 refused by \
pre-flight or confirmation (nothing changed); 7 failed and rolled back (nothing changed); \
8 restored, but the head check or hooks.after_restore failed afterwards; 9 failed and the \
previous state could not be fully put back (read the message); 1 other failure before any \
change; 2 bad configuration; 3 locked; 12 --from-remote: the remote is unreachable, refuses \
the credentials or permissions, or the bucket does not exist; 130/143 interrupted and rolled \
back.

Disaster recovery on a fresh host: with only the binary, a configuration holding [remote], \
[database] and [workspace], the remote's credentials in the environment and the age identity, \
`coffer restore --from-remote --latest --yes` streams the newest complete remote backup \
straight into the restore (nothing is written to the backup root; the host needs room only for \
the workspace's staging copy; nothing commits before every artifact's size and both hashes \
matched the manifest). From one file (a bundle of `coffer \
export` or `coffer backup --output`, or a .tar.gz of a shell-script backup directory): \
`coffer restore --from-file FILE --yes` (or `--from-file -` reading standard input) runs the \
pre-flight on the bundle's manifest before any data arrives (and tries the identity on the \
first encrypted artifact's header), so a refusal reads no more of an upload; then imports it \
into the backup root as `coffer import` does, runs the complete pre-flight and restores it; \
the imported backup stays there.

A restore killed with SIGKILL cannot undo what it created on a bare host: the next restore \
finds its journal (.coffer-restore-created.json in the backup root), removes what is provably \
that run's and unused since, and names what it left.

A flat dump file, FILE.sql.gz or FILE.sql (plain `pg_dump DB | gzip` output of an older cron \
script), restores the database only: the file is first read to its end (every gzip member and \
nothing after them, pg_dump's `dump complete` trailer, no psql meta-command), then applied in one \
transaction as a backup's dump is. A missing target database is created (and dropped again if \
the restore fails); a dump made without --clean is refused for a database that is not empty \
(restore it into a new one with --target-db NAME).")]
pub struct Args {
    /// The backup: a name in the backup root, a directory path (legacy
    /// YYYY-MM-DD-HHMMSS ones too), or a flat pg_dump file FILE.sql.gz or FILE.sql
    /// (database only)
    #[arg(value_name = "NAME|PATH", required_unless_present_any = ["latest", "from_file"])]
    name: Option<String>,

    /// Restore the newest usable backup in the backup root (with --from-remote: the newest
    /// complete backup on the remote)
    #[arg(long, conflicts_with = "name")]
    latest: bool,

    /// Disaster recovery: stream the backup from the remote (remote.url) straight into the
    /// restore, with every check of a local restore and nothing written to the backup root
    /// (a backup already complete there is restored from there; a shell-script one is pulled
    /// into it first)
    #[arg(long)]
    from_remote: bool,

    /// Disaster recovery from one file: import the bundle FILE (`-`: standard input; see
    /// `coffer import`) into the backup root, verified, then restore it
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "latest", "from_remote"])]
    from_file: Option<PathBuf>,

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

    /// Keep the previous workspace as WORKSPACE.before-restore-TIME (and, with --jobs, the
    /// previous database as TARGET__coffer_old_TIME) after success
    #[arg(long)]
    keep_old: bool,

    /// Sessions restoring the database: more than 1 restores into a new database and swaps
    /// it into place (see below) [default: the number of cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: Option<u16>,

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
struct NotConfirmed(String);

/// A refusal for want of confirmation: a library error of kind `Refused`, so that its exit
/// code comes from the one mapping of kinds.
fn not_confirmed(text: &str) -> anyhow::Error {
    coffer_core::Error::new(ErrorKind::Refused, NotConfirmed(text.into())).into()
}

/// Runs `coffer restore`. The core records the attempt in the run log (metrics and
/// `hooks.on_success` / `hooks.on_failure` follow), unless it was never confirmed.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let coffer = cli.coffer()?;
    if let Some(name) = args
        .name
        .as_ref()
        .filter(|n| args.from_remote && n.contains('/'))
    {
        return Err(coffer_core::Error::from(ConfigError::Invalid {
            path: "command line".into(),
            key: "NAME".into(),
            reason: format!(
                "--from-remote takes a backup name (see `coffer list --remote`), not the path `{name}`"
            ),
        })
        .into());
    }
    let backup = match &args.name {
        Some(name) => BackupRef::Named(name.clone()),
        None => BackupRef::Latest,
    };
    let options = RestoreOptions::default()
        .database(!args.workspace_only)
        .workspace(!args.db_only)
        .target_db(args.target_db.clone())
        .target_dir(args.target_dir.clone())
        .expect_heads((!args.expect_head.is_empty()).then(|| args.expect_head.clone()))
        .allow_head_mismatch(args.allow_head_mismatch)
        .terminate_connections(args.terminate_connections)
        .keep_old(args.keep_old)
        .jobs(args.jobs.map_or_else(super::cores, usize::from))
        .run_hooks(!args.no_hooks)
        .identity(args.identity.clone())
        .allow_unsigned(args.allow_unsigned)
        .from_remote(args.from_remote);
    let lines = if args.json {
        Lines::Stderr
    } else {
        Lines::Stdout
    };
    let reporter = Reporter::new(args.quiet, lines);
    // Until confirmed, a signal ends coffer at once (nothing has changed), except while a
    // backup is read from the remote: that stops cleanly.
    let ctx = RunContext::new(&reporter);
    let runtime;
    let prepared = if let Some(file) = &args.from_file {
        // The import stops cleanly on a signal (nothing is left in the root).
        super::signals::cancellable(|cancel| {
            let ctx = ctx.clone().with_cancel(cancel.clone());
            if file.as_os_str() == "-" {
                let mut input = crate::input::BundleStdin::open(cancel)?;
                Ok(coffer.prepare_restore_from_bundle(
                    BundleInput::Stream(&mut input),
                    &options,
                    &ctx,
                )?)
            } else {
                Ok(coffer.prepare_restore_from_bundle(
                    BundleInput::File(file.clone()),
                    &options,
                    &ctx,
                )?)
            }
        })?
    } else if args.from_remote {
        runtime = super::runtime::start()?;
        let ctx = ctx.clone().with_runtime(runtime.handle().clone());
        super::signals::cancellable(|cancel| {
            let ctx = ctx.with_cancel(cancel.clone());
            Ok(coffer.prepare_restore(&backup, &options, &ctx)?)
        })?
    } else {
        coffer.prepare_restore(&backup, &options, &ctx)?
    };
    confirm(prepared.plan(), args.yes)?;
    let cancel = super::cancel_on_signals().context("cannot install signal handlers")?;
    let outcome = prepared.execute(&ctx.with_cancel(cancel))?;
    if args.json {
        output::print_json_sorted(&outcome)?;
    } else {
        output::outln!(
            "restore of {} complete in {:.1}s",
            outcome.report.backup,
            outcome.report.duration_seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What will be replaced, then `restore` typed at a terminal; `--yes` otherwise.
fn confirm(plan: &Plan, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(not_confirmed(
            "restore refused, nothing was changed: stdin is not a terminal, so the restore cannot be confirmed; pass --yes to restore without confirmation",
        ));
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
        if !db.create_roles.is_empty() {
            writeln!(
                err,
                "  roles      {} (to be created)",
                db.create_roles.join(", ")
            )?;
        }
    }
    if let Some(ws) = &plan.workspace {
        writeln!(
            err,
            "  workspace  {}{}",
            ws.path.display(),
            if ws.exists {
                ""
            } else if !ws.create_parents.is_empty() {
                " (does not exist yet, nor its parent directories)"
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
        return Err(not_confirmed(
            "restore refused, nothing was changed: not confirmed (the answer was not `restore`)",
        ));
    }
    Ok(())
}
