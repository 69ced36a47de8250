//! `coffer import`.

use std::path::PathBuf;
use std::process::ExitCode;

use coffer_core::{BundleInput, ImportOptions, RunContext};

use crate::output::{self, Lines, Reporter};

/// Arguments of `coffer import`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads a bundle written by `coffer export` or `coffer backup --output` (or a .tar.gz of a \
shell-script backup directory, `tar -czf B.tar.gz -C ROOT YYYY-MM-DD-HHMMSS`) into the backup \
root (created if missing). The members are written into a staging directory \
(.coffer-staging-import-NAME), each checked as it arrives: one backup directory, plain file \
names (no `..`, no absolute path), regular files only, no duplicates, the manifest first, \
every artifact's size and SHA-256 as the manifest says. The backup is then verified as `coffer \
verify` does and renamed into place. A damaged, truncated or unsafe bundle, or one whose \
backup name exists in the root already, leaves nothing behind.

Exit codes: 0 imported, 1 failed (e.g. the name exists), 2 bad configuration, 3 locked, \
5 the bundle is damaged, truncated or unsafe, or its signature is bad or missing while \
signing.trusted_public_keys is set, 130/143 interrupted.")]
pub struct Args {
    /// The bundle file; `-` for standard input
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// age identity file for checking encrypted content [default: encryption.identity_file
    /// or $COFFER_AGE_IDENTITY_FILE]
    #[arg(long, value_name = "PATH")]
    identity: Option<PathBuf>,

    /// Accept a backup without signatures although signing.trusted_public_keys is set (a
    /// bad signature is still refused)
    #[arg(long)]
    allow_unsigned: bool,

    /// Print a machine-readable summary (JSON) on stdout
    #[arg(long)]
    pub(crate) json: bool,

    /// No progress lines on stderr
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `coffer import`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let coffer = cli.coffer()?;
    let options = ImportOptions::default()
        .identity(args.identity.clone())
        .allow_unsigned(args.allow_unsigned);
    let reporter = Reporter::new(args.quiet, Lines::Hidden);
    let report = super::signals::cancellable(|cancel| {
        let ctx = RunContext::new(&reporter).with_cancel(cancel.clone());
        if args.file.as_os_str() == "-" {
            let mut input = crate::input::BundleStdin::open(cancel)?;
            Ok(coffer.import(BundleInput::Stream(&mut input), &options, &ctx)?)
        } else {
            Ok(coffer.import(BundleInput::File(args.file.clone()), &options, &ctx)?)
        }
    })?;
    if args.json {
        output::print_json(&report)?;
    } else {
        for n in &report.not_checked {
            output::outln!("note: not checked: {n}");
        }
        output::outln!(
            "imported {}{} ({}), verified: {}",
            report.name,
            if report.legacy { " (legacy)" } else { "" },
            output::bytes(report.bytes),
            report.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
