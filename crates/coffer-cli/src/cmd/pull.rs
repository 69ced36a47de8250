//! `coffer pull`.

use std::path::PathBuf;
use std::process::ExitCode;

use coffer_core::{BackupRef, PullOptions, RunContext};

use crate::output::{self, Lines, Reporter};

/// Arguments of `coffer pull`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Downloads a remote backup into the backup root (created if missing): the files are streamed into \
a staging directory (.coffer-staging-pull-NAME) and hashed while written, compared with the \
remote manifest's sizes and SHA-256, then verified as `coffer verify` does (with the identity, \
encrypted artifacts are decrypted and decompressed to the end). Only then is the directory \
renamed into place; on any failure nothing appears in the backup root. A backup already \
complete in the root is not downloaded again.

Exit codes: 0 pulled (or already there), 1 failed, 2 bad configuration, 3 locked, 5 the remote \
copy is damaged or was tampered with, or its signature is bad, or missing while signing.trusted_public_keys is set (nothing was put in place), 12 the remote is unreachable, \
refuses the credentials or permissions, or the bucket does not exist.")]
pub struct Args {
    /// The backup's name on the remote (`coffer list --remote`)
    #[arg(value_name = "NAME", required_unless_present = "latest")]
    name: Option<String>,

    /// Pull the newest complete backup on the remote
    #[arg(long, conflicts_with = "name")]
    latest: bool,

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

/// Runs `coffer pull`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let coffer = cli.coffer()?;
    let backup = match &args.name {
        Some(n) => BackupRef::Named(n.clone()),
        None => BackupRef::Latest,
    };
    let options = PullOptions::default()
        .identity(args.identity.clone())
        .allow_unsigned(args.allow_unsigned);
    let reporter = Reporter::new(args.quiet, Lines::Hidden);
    let runtime = super::runtime::start()?;
    let report = super::signals::cancellable(|cancel| {
        let ctx = RunContext::new(&reporter).with_cancel(cancel.clone());
        Ok(runtime.block_on(coffer.pull(&backup, &options, &ctx))?)
    })?;
    if args.json {
        output::print_json(&report)?;
    } else {
        for n in &report.not_checked {
            output::outln!("note: not checked: {n}");
        }
        if report.downloaded {
            output::outln!(
                "pulled {} ({}), verified: {}",
                report.name,
                output::bytes(report.bytes),
                report.path.display()
            );
        } else {
            output::outln!(
                "{} is already complete in the backup root: {}",
                report.name,
                report.path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
