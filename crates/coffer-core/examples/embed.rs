//! Embedding coffer-core: back up with a progress display of one's own, list the backups,
//! verify the newest.
//!
//! ```sh
//! cargo run -p coffer-core --example embed -- /etc/coffer/coffer.toml
//! ```
//!
//! Without an argument the configuration is found as the `coffer` command finds it
//! (`$COFFER_CONFIG`, else `/etc/coffer/coffer.toml`), with the same environment overrides.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use coffer_core::config::Config;
use coffer_core::{
    BackupOptions, BackupRef, Coffer, Event, Progress, RunContext, Selection, VerifyOptions,
};

/// Prints a line when a stream starts or ends and counts the bytes in between.
#[derive(Default)]
struct Counter {
    bytes: AtomicU64,
}

impl Progress for Counter {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::ArtifactStarted { role, file } => eprintln!("{}: writing {file}", role.as_str()),
            Event::ArtifactAdvanced { bytes, .. } => {
                self.bytes.fetch_add(*bytes, Ordering::Relaxed);
            }
            Event::ArtifactFinished { role, summary } => eprintln!("{}: {summary}", role.as_str()),
            Event::Warning(w) => eprintln!("warning: {w}"),
            Event::Verified(report) => eprintln!(
                "{}: {}",
                report.name,
                if report.passed() {
                    "verified"
                } else {
                    "DAMAGED"
                }
            ),
            _ => {}
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error ({:?}): {e}", e.kind());
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), coffer_core::Error> {
    let path = std::env::args_os().nth(1).map(PathBuf::from);
    let loaded = Config::load(path.as_deref(), &|k| std::env::var(k).ok())?;
    let coffer = Coffer::new(loaded.config)?;
    let counter = Counter::default();
    let ctx = RunContext::new(&counter);

    let outcome = coffer.backup(&BackupOptions::default(), &ctx)?;
    println!(
        "backup {} ({} bytes read)",
        outcome.report.path.display(),
        counter.bytes.load(Ordering::Relaxed)
    );

    for backup in coffer.list()?.backups {
        println!(
            "{:<28} {:>12} bytes  {:?}",
            backup.name, backup.size_bytes, backup.status
        );
    }

    let verified = coffer.verify(
        &Selection::One(BackupRef::Latest),
        &VerifyOptions::default(),
        &ctx,
    )?;
    println!("{} backup(s) failed verification", verified.failures());
    Ok(())
}
