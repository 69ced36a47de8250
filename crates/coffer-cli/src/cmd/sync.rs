//! `coffer sync`.

use std::process::ExitCode;

use chrono::Utc;
use coffer_core::config::Config;
use coffer_core::notify::Reporting;
use coffer_core::remote::Remote;
use coffer_core::remote::sync::{self, SyncOptions, SyncReport};
use coffer_core::runlog::{Operation, RunRecord};

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
    let config = cli.load_config()?;
    let reporting = Reporting::from_config(&config);
    let started = Utc::now();
    let result = sync_with_config(&config, args.verify, !args.no_retention, args.quiet);
    let record = record_for(started, &result);
    super::print_warnings(&reporting.after_run(&record, Utc::now()));
    let report = result?;
    if args.json {
        crate::output::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::output::outln!(
            "sync to {} complete in {:.1}s: {}",
            report.remote,
            report.duration_seconds,
            report.summary()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Syncs the configured backup root to the configured remote.
pub fn sync_with_config(
    config: &Config,
    verify: bool,
    apply_retention: bool,
    quiet: bool,
) -> anyhow::Result<SyncReport> {
    let remote = Remote::open(&config.remote, true)?;
    let options = SyncOptions {
        verify,
        retention: apply_retention.then(|| config.remote.retention_or(&config.retention).clone()),
        now: Utc::now(),
    };
    let root = config.backup_dir();
    let events = |line: String| {
        if !quiet {
            crate::output::errln!("{line}");
        }
    };
    super::signals::cancellable(|cancel| {
        let synced =
            super::runtime::block_on(sync::run(&remote, &root, &options, cancel, &events))?;
        Ok(synced?)
    })
}

/// The run log record of a sync.
pub fn record_for(
    started: chrono::DateTime<Utc>,
    result: &anyhow::Result<SyncReport>,
) -> RunRecord {
    let record = RunRecord::new(Operation::Sync, started);
    match result {
        Ok(report) => {
            let record = match report.newest_uploaded() {
                Some(b) => record.with_backup(b.name.clone(), b.kind),
                None => record,
            };
            record
                .with_detail(format!("{}: {}", report.remote, report.summary()))
                .succeeded(Utc::now())
        }
        Err(e) => record.failed(Utc::now(), &format!("sync: {e:#}")),
    }
}
