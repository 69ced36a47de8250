//! `coffer verify`.

use std::process::ExitCode;

use anyhow::Context;
use coffer_core::catalog::{self, BackupEntry};
use coffer_core::drill::{self, DrillReport};
use coffer_core::restore::{Event, RestoreSettings};
use coffer_core::verify::{self, Outcome, VerifyReport};

use crate::exit;

/// Arguments of `coffer verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Checks, one line each: the manifest; its signature and that of SHA256SUMS (with signing.trusted_public_keys: signed by a trusted key for this backup, else the check fails; without: not checked); SHA256SUMS against the manifest; each artifact's stored \
size and sha256; its size and sha256 after decrypting and decompressing to the end; the dump's \
completeness and row counts; the tar listing against the manifest. Legacy shell-script backups \
get every check that is possible and the report says what could not be checked.

With --restore-test the backup is also restored into a throw-away database (on the configured \
server) and a new temporary directory in the backup root, compared with its manifest (Alembic head, \
every table's row count, workspace file count and sizes), and both are removed again.

Exit codes: 0 every check passed, 5 a check failed (the backup is damaged or the restore test \
found a difference), 1 the check could not run, 2 bad configuration; a restore test that could \
not restore exits as `coffer restore` would.")]
pub struct Args {
    /// The backup: a name in the backup root or a directory path [default: the newest]
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
    let config = cli.load_config()?;
    let root = config.backup_dir();
    let identities = super::load_identities(&config, args.identity.as_deref())?;
    let signatures = super::signature_policy(&config, args.allow_unsigned)?;
    let entries: Vec<BackupEntry> = if args.all {
        catalog::list(&root)?
    } else {
        let resolved = catalog::resolve_at(&root, args.name.as_deref(), chrono::Utc::now())?;
        super::print_warnings(&resolved.warnings);
        vec![resolved.entry]
    };
    if entries.is_empty() {
        crate::output::errln!("no backups in {}", root.display());
    }
    let mut reports = Vec::new();
    let mut drills = Vec::new();
    let mut failed = 0;
    for entry in &entries {
        let report = verify::verify_signed(entry, identities.as_ref(), &signatures);
        if !args.json {
            print_report(&report);
        }
        let mut passed = report.passed();
        if args.restore_test && passed {
            let drill = restore_test(&config, entry, identities.as_ref(), &signatures, args.json)?;
            passed = drill.passed();
            drills.push(drill);
        }
        if !passed {
            failed += 1;
        }
        reports.push(report);
    }
    if args.json {
        let value = if args.restore_test {
            serde_json::json!({ "verify": reports, "restore_test": drills })
        } else {
            serde_json::to_value(&reports)?
        };
        crate::output::outln!("{}", serde_json::to_string_pretty(&value)?);
    }
    if failed > 0 {
        crate::output::errln!(
            "error: {failed} of {} backup(s) failed verification: do not restore from them; use another backup and check the storage",
            reports.len()
        );
        let unsigned = reports
            .iter()
            .flat_map(|r| &r.checks)
            .any(|c| c.detail == coffer_core::signing::UNSIGNED_REFUSED);
        if unsigned {
            crate::output::errln!("  hint: {}", super::ALLOW_UNSIGNED_HINT);
        }
        return Ok(ExitCode::from(exit::VERIFY_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one line per check.
pub fn print_report(report: &VerifyReport) {
    crate::output::outln!("{} ({})", report.name, report.path.display());
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
        crate::output::outln!("  {mark} {}: {note}{}", c.subject, c.detail);
    }
    crate::output::outln!(
        "  {}",
        if report.passed() {
            "OK"
        } else {
            "FAILED: the backup is damaged"
        }
    );
}

/// Runs the restore drill for one backup and prints its findings.
fn restore_test(
    config: &coffer_core::config::Config,
    entry: &BackupEntry,
    identities: Option<&coffer_core::crypto::Identities>,
    signatures: &coffer_core::signing::SignaturePolicy,
    json: bool,
) -> anyhow::Result<DrillReport> {
    let mut settings = RestoreSettings::from_config(config)?;
    settings.signatures = signatures.clone();
    let say = |line: String| {
        if json {
            crate::output::errln!("{line}");
        } else {
            crate::output::outln!("{line}");
        }
    };
    say(format!("  restore test of {}:", entry.name));
    let events = |e: Event| match e {
        Event::Done(t) => say(format!("  ✓ {t}")),
        Event::Note(t) => say(format!("  note: {t}")),
    };
    let cancel = super::cancel_on_signals().context("cannot install signal handlers")?;
    let report = drill::run(
        &settings,
        entry,
        identities,
        &coffer_core::progress::Silent,
        &events,
        &cancel,
    )
    .map_err(coffer_core::Error::from)?;
    for c in &report.checks {
        say(format!(
            "  {} {}: {}",
            if c.passed { "✓" } else { "✗" },
            c.subject,
            c.detail
        ));
    }
    say(format!(
        "  {}",
        if report.passed() {
            "restore test OK"
        } else {
            "restore test FAILED"
        }
    ));
    Ok(report)
}
