//! `coffer pull`.

use std::path::PathBuf;
use std::process::ExitCode;

use coffer_core::remote::Remote;
use coffer_core::remote::pull::{self, PullReport, Which};

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
    let config = cli.load_config()?;
    let identities = super::load_identities(&config, args.identity.as_deref())?;
    let which = match &args.name {
        Some(n) => Which::Name(n.clone()),
        None => Which::Latest,
    };
    let signatures = super::signature_policy(&config, args.allow_unsigned)?;
    let report = pull_with_config(
        &config,
        &which,
        identities.as_ref(),
        &signatures,
        args.quiet,
    )?;
    if args.json {
        crate::output::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for n in &report.not_checked {
            crate::output::outln!("note: not checked: {n}");
        }
        if report.downloaded {
            crate::output::outln!(
                "pulled {} ({}), verified: {}",
                report.name,
                crate::output::bytes(report.bytes),
                report.path.display()
            );
        } else {
            crate::output::outln!(
                "{} is already complete in the backup root: {}",
                report.name,
                report.path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Pulls a backup from the configured remote into the configured backup root.
pub fn pull_with_config(
    config: &coffer_core::config::Config,
    which: &Which,
    identities: Option<&coffer_core::crypto::Identities>,
    signatures: &coffer_core::signing::SignaturePolicy,
    quiet: bool,
) -> anyhow::Result<PullReport> {
    let remote = Remote::from_config(&config.remote)?;
    let root = config.backup_dir();
    let events = |line: String| {
        if !quiet {
            crate::output::errln!("{line}");
        }
    };
    super::signals::cancellable(|cancel| {
        let pulled = super::runtime::block_on(pull::run(
            &remote, &root, which, identities, signatures, cancel, &events,
        ))?;
        Ok(pulled?)
    })
}
