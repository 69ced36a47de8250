//! `coffer verify`.

use std::process::ExitCode;

use anyhow::Context;
use coffer_core::CancelFlag;
use coffer_core::DrillReport;
use coffer_core::{
    BackupRef, Event, Progress, RunContext, Selection, VerifyOptions, VerifyOutcome,
};
use coffer_core::{CheckOutcome as Outcome, VerifyReport};

use crate::exit;
use crate::output::{self, Lines};

/// Arguments of `coffer verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Checks, one line each: the manifest; its signature and that of SHA256SUMS (with signing.trusted_public_keys: signed by a trusted key for this backup, else the check fails; without: not checked); SHA256SUMS against the manifest; each artifact's stored \
size and sha256; its size and sha256 after decrypting and decompressing to the end; the dump's \
completeness and row counts; the tar listing against the manifest. Legacy shell-script backups \
get every check that is possible and the report says what could not be checked. A flat dump \
file (FILE.sql.gz or FILE.sql, plain pg_dump output) gets its gzip integrity (every member, \
nothing after them), pg_dump's `dump complete` trailer, the checks of what psql may run, and its \
tables, rows and Alembic head.

With --restore-test the backup is also restored into a throw-away database (on the configured \
server) and a new temporary directory in the backup root, compared with its manifest (Alembic head, \
every table's row count, workspace file count and sizes), and both are removed again; with \
--jobs N (default: the number of cores) by N sessions, as `coffer restore --jobs` restores.

Exit codes: 0 every check passed, 5 a check failed (the backup is damaged or the restore test \
found a difference), 1 the check could not run, 2 bad configuration; a restore test that could \
not restore exits as `coffer restore` would.")]
pub struct Args {
    /// The backup: a name in the backup root, a directory path, or a flat pg_dump file
    /// FILE.sql.gz or FILE.sql [default: the newest]
    #[arg(value_name = "NAME|PATH", conflicts_with_all = ["latest", "all"])]
    name: Option<String>,

    /// Verify the newest usable backup (the default)
    #[arg(long)]
    latest: bool,

    /// Verify every backup in the backup root
    #[arg(long)]
    all: bool,

    /// age identity file for encrypted backups [default: encryption.identity_file or
    /// $COFFER_AGE_IDENTITY_FILE]; without one only stored hashes of encrypted artifacts
    /// are checked
    #[arg(long, value_name = "PATH")]
    identity: Option<std::path::PathBuf>,

    /// After the checks, restore the backup into a throw-away database on the same server
    /// and a temporary directory, compare the Alembic head, every table's row count and the
    /// workspace's file count and sizes with the manifest, then drop both (the database
    /// role needs CREATEDB)
    #[arg(long)]
    restore_test: bool,

    /// Sessions the restore test restores the database with (see `coffer restore --jobs`)
    /// [default: the number of cores]
    #[arg(long, value_name = "N", requires = "restore_test", value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: Option<u16>,

    /// Accept backups without signatures although signing.trusted_public_keys is set (a
    /// bad signature still fails)
    #[arg(long)]
    allow_unsigned: bool,

    /// Print the reports as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `coffer verify`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let coffer = cli.coffer()?;
    let selection = match (&args.name, args.all) {
        (_, true) => Selection::All,
        (Some(name), false) => Selection::One(BackupRef::Named(name.clone())),
        (None, false) => Selection::One(BackupRef::Latest),
    };
    let options = VerifyOptions::default()
        .identity(args.identity.clone())
        .allow_unsigned(args.allow_unsigned)
        .restore_test(args.restore_test)
        .jobs(args.jobs.map_or_else(super::cores, usize::from));
    // Only the restore test changes anything, so only it stops cleanly on a signal.
    let cancel = if args.restore_test {
        super::cancel_on_signals().context("cannot install signal handlers")?
    } else {
        CancelFlag::new()
    };
    let shown = Shown { json: args.json };
    let outcome = coffer.verify(
        &selection,
        &options,
        &RunContext::new(&shown).with_cancel(cancel),
    )?;
    if outcome.reports.is_empty() {
        output::errln!("no backups in {}", coffer.root().display());
    }
    if args.json {
        output::print_json_sorted(&outcome)?;
    }
    let failed = outcome.failures();
    if failed > 0 {
        output::errln!(
            "error: {failed} of {} backup(s) failed verification: do not restore from them; use another backup and check the storage",
            outcome.reports.len()
        );
        print_hints(&outcome);
        return Ok(ExitCode::from(exit::VERIFY_FAILED));
    }
    print_hints(&outcome);
    Ok(ExitCode::SUCCESS)
}

/// The advice for the hints of the checks (an identity for encrypted artifacts, accepting
/// an unsigned backup), once each, on stderr.
fn print_hints(outcome: &VerifyOutcome) {
    let hints = outcome
        .reports
        .iter()
        .flat_map(|r| &r.checks)
        .filter_map(|c| c.hint.as_ref());
    for line in output::hint_lines(hints) {
        output::errln!("  {line}");
    }
}

/// What verify shows as it goes: each backup's checks (not with `--json`), and the restore
/// test's lines (on stderr with `--json`).
struct Shown {
    json: bool,
}

impl Shown {
    fn say(&self, text: std::fmt::Arguments<'_>) {
        let lines = if self.json {
            Lines::Stderr
        } else {
            Lines::Stdout
        };
        lines.say(text);
    }
}

impl Progress for Shown {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::Verified(report) if !self.json => print_report(report),
            Event::DrillStarted(name) => self.say(format_args!("  restore test of {name}:")),
            Event::Done(text) => self.say(format_args!("  ✓ {text}")),
            Event::Note(text) => self.say(format_args!("  note: {text}")),
            Event::Drilled(report) => self.drilled(report),
            Event::Warning(w) => output::print_warning(w),
            _ => {}
        }
    }
}

impl Shown {
    /// The restore test's findings.
    fn drilled(&self, report: &DrillReport) {
        for c in &report.checks {
            self.say(format_args!(
                "  {} {}: {}",
                if c.passed { "✓" } else { "✗" },
                c.subject,
                c.detail
            ));
        }
        self.say(format_args!(
            "  {}",
            if report.passed() {
                "restore test OK"
            } else {
                "restore test FAILED"
            }
        ));
    }
}

/// Prints one line per check.
fn print_report(report: &VerifyReport) {
    output::outln!("{} ({})", report.name, report.path.display());
    for c in &report.checks {
        let mark = match c.outcome {
            Outcome::Pass => "✓",
            Outcome::Fail => "✗",
            Outcome::NotChecked => "–",
        };
        let note = if c.outcome == Outcome::NotChecked {
            "not checked: "
        } else {
            ""
        };
        output::outln!("  {mark} {}: {note}{}", c.subject, c.detail);
    }
    output::outln!(
        "  {}",
        if report.passed() {
            "OK"
        } else {
            "FAILED: the backup is damaged"
        }
    );
}
