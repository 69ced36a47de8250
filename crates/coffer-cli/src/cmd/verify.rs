//! `coffer verify`.

use std::process::ExitCode;

use coffer_core::catalog::{self, BackupEntry};
use coffer_core::verify::{self, Outcome, VerifyReport};

use crate::exit;

/// Arguments of `coffer verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Checks, one line each: the manifest; SHA256SUMS against the manifest; each artifact's stored \
size and sha256; its size and sha256 after decrypting and decompressing to the end; the dump's \
completeness and row counts; the tar listing against the manifest. Legacy shell-script backups \
get every check that is possible and the report says what could not be checked.

Exit codes: 0 every check passed, 5 a check failed (the backup is damaged), 1 the check could \
not run, 2 bad configuration.")]
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

    /// Print the reports as JSON
    #[arg(long)]
    json: bool,
}

/// Runs `coffer verify`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let config = cli.load_config()?;
    let root = config.backup_dir();
    let identities = super::load_identities(&config, args.identity.as_deref())?;
    let entries: Vec<BackupEntry> = if args.all {
        catalog::list(&root)?
    } else {
        vec![catalog::resolve(&root, args.name.as_deref())?]
    };
    if entries.is_empty() {
        eprintln!("no backups in {}", root.display());
    }
    let mut reports = Vec::new();
    for entry in &entries {
        let report = verify::verify(entry, identities.as_ref());
        if !args.json {
            print_report(&report);
        }
        reports.push(report);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    let failed = reports.iter().filter(|r| !r.passed()).count();
    if failed > 0 {
        eprintln!(
            "error: {failed} of {} backup(s) failed verification: do not restore from them; use another backup and check the storage",
            reports.len()
        );
        return Ok(ExitCode::from(exit::VERIFY_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one line per check.
pub fn print_report(report: &VerifyReport) {
    println!("{} ({})", report.name, report.path.display());
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
        println!("  {mark} {}: {note}{}", c.subject, c.detail);
    }
    println!(
        "  {}",
        if report.passed() {
            "OK"
        } else {
            "FAILED: the backup is damaged"
        }
    );
}
