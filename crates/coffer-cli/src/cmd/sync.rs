//! `coffer sync`.

use std::process::ExitCode;

use coffer_core::{RunContext, SyncOptions};

use crate::output::{self, Lines, Reporter};

/// Arguments of `coffer sync`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Uploads every complete local backup that is missing or incomplete on the remote ([remote] url): \
artifacts first as streaming multipart uploads (part size from the artifact size and \
remote.max_parts, or remote.part_size), hashed on the way and compared with the manifest before \
the upload is completed, sizes checked afterwards, and manifest.json LAST, so a remote backup is \
complete exactly when its manifest exists. An interrupted sync leaves no remote manifest and \
resumes where it stopped next time. Then remote retention (remote.retention, default: the \
[retention] rules) deletes complete remote backups it does not keep, never manual ones and never \
the newest complete one.

Credentials come from the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/…, \
GOOGLE_SERVICE_ACCOUNT, AZURE_STORAGE_ACCOUNT_NAME/AZURE_STORAGE_ACCOUNT_KEY) and never appear \
in messages. The run is appended to the run log, the metrics file is rewritten and \
hooks.on_success / hooks.on_failure run.

Exit codes: 0 synced, 1 failed, 2 bad configuration (no remote.url), 3 locked, 5 a local backup \
does not match its manifest or --verify found a remote copy that differs, 12 the remote is \
unreachable, refuses the credentials or permissions, or the bucket does not exist.")]
pub struct Args {
    /// Read every uploaded file back from the remote and compare its SHA-256
    #[arg(long)]
    verify: bool,

    /// Do not apply remote retention after the upload
    #[arg(long)]
    no_retention: bool,

    /// Print a machine-readable summary (JSON) on stdout
    #[arg(long)]
    pub(crate) json: bool,

    /// No progress lines on stderr
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `coffer sync`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let coffer = cli.coffer()?;
    let reporter = Reporter::new(args.quiet, Lines::Hidden);
    let options = SyncOptions::default()
        .verify(args.verify)
        .retention(!args.no_retention);
    let runtime = super::runtime::start()?;
    let report = super::signals::cancellable(|cancel| {
        let ctx = RunContext::new(&reporter).with_cancel(cancel.clone());
        Ok(runtime.block_on(coffer.sync(&options, &ctx))?)
    })?;
    if args.json {
        output::print_json(&report)?;
    } else {
        output::outln!(
            "sync to {} complete in {:.1}s: {}",
            report.remote,
            report.duration_seconds,
            report.summary()
        );
    }
    Ok(ExitCode::SUCCESS)
}
