//! `sync`: complete local backups copied to the remote, then remote retention; recorded in
//! the run log.

use chrono::{DateTime, Utc};

use crate::coffer::{Coffer, warn_all};
use crate::context::RunContext;
use crate::error::Error;
use crate::progress::Event;
use crate::remote::sync::{self, SyncOptions as Steps, SyncReport};
use crate::remote::{Remote, off_executor};
use crate::root::runlog::{Operation, RunRecord};
use crate::warning::Warning;

/// How to sync.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Read every uploaded file back and compare its SHA-256. Default: no.
    pub verify: bool,
    /// Apply remote retention (`remote.retention`, else `[retention]`) after the upload.
    /// Default: yes.
    pub retention: bool,
}

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            verify: false,
            retention: true,
        }
    }
}

impl SyncOptions {
    /// Whether to read uploads back.
    pub fn verify(mut self, verify: bool) -> SyncOptions {
        self.verify = verify;
        self
    }

    /// Whether to apply remote retention.
    pub fn retention(mut self, retention: bool) -> SyncOptions {
        self.retention = retention;
        self
    }
}

impl Coffer {
    /// Uploads every complete local backup missing or incomplete on the remote (manifest
    /// last), then applies remote retention; records the run, rewrites the metrics file
    /// and runs the hooks. Reports each step as [`Event::Transfer`]; stops at the next file
    /// or chunk once the context's flag is set.
    pub async fn sync(
        &self,
        options: &SyncOptions,
        ctx: &RunContext<'_>,
    ) -> Result<SyncReport, Error> {
        let started = Utc::now();
        let result = self.upload(options, ctx).await;
        let record = sync_record(started, &result);
        // Hooks are processes that may run for minutes: not on the executor.
        let reporting = self.reporting().clone();
        let warnings = off_executor(move || reporting.after_run(&record, Utc::now())).await;
        warn_all(ctx, &warnings);
        result
    }

    /// The sync after a successful backup: recorded as a `sync` run, without metrics or
    /// hooks (the backup's hooks report the run). A failure is a warning, never the backup's.
    pub(crate) fn sync_after_backup(&self, ctx: &RunContext<'_>) -> Vec<Warning> {
        let started = Utc::now();
        let result = ctx
            .block_on(self.upload(&SyncOptions::default(), ctx))
            .and_then(|r| r);
        let mut warnings = Vec::new();
        match &result {
            Ok(report) => ctx.emit(Event::Synced(report)),
            Err(e) => warnings.push(Warning::Sync(e.with_causes())),
        }
        warnings.extend(self.reporting().record(&sync_record(started, &result)));
        warnings
    }

    async fn upload(
        &self,
        options: &SyncOptions,
        ctx: &RunContext<'_>,
    ) -> Result<SyncReport, Error> {
        let config = self.config();
        let remote = Remote::open(&config.remote, true)?;
        let steps = Steps {
            verify: options.verify,
            retention: options
                .retention
                .then(|| config.remote.retention_or(&config.retention).clone()),
            now: Utc::now(),
        };
        Ok(sync::run(&remote, self.root(), &steps, ctx).await?)
    }
}

/// The run-log record of a sync.
fn sync_record(started: DateTime<Utc>, result: &Result<SyncReport, Error>) -> RunRecord {
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
        Err(e) => record.failed(Utc::now(), &format!("sync: {}", e.with_causes())),
    }
}
