//! `prune`: deleting what retention does not keep, recorded in the run log.

use chrono::{DateTime, Utc};

use crate::coffer::Coffer;
use crate::context::RunContext;
use crate::error::Error;
use crate::progress::Event;
use crate::root::prune::{self, PruneError, PruneReport};
use crate::root::runlog::{Operation, RunRecord};
use crate::warning::Warning;

/// How to prune.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Only plan: delete nothing, take no lock, record nothing. Default: no.
    pub dry_run: bool,
}

impl PruneOptions {
    /// Whether to only plan.
    pub fn dry_run(mut self, dry_run: bool) -> PruneOptions {
        self.dry_run = dry_run;
        self
    }
}

impl Coffer {
    /// Deletes the backups the retention policy does not keep (manual ones never) and
    /// abandoned staging directories, under the root's lock; then records the run, rewrites
    /// the metrics file and runs the hooks.
    ///
    /// Deletions that failed do not make this an `Err`: the report lists them
    /// ([`PruneReport::error`]) and the run is recorded as failed.
    pub fn prune(
        &self,
        options: &PruneOptions,
        ctx: &RunContext<'_>,
    ) -> Result<PruneReport, Error> {
        let started = Utc::now();
        let result = prune::run(
            self.root(),
            &self.config().retention,
            started,
            options.dry_run,
        );
        if !options.dry_run {
            let (record, _) = prune_record(started, &result);
            self.after_run(&record, ctx);
        }
        Ok(result?)
    }

    /// Deletes the backup `name` (auto or manual), whatever retention says, under the
    /// root's lock; refuses the newest complete backup and anything coffer does not know as
    /// a complete backup. Recorded in the run log as a prune; then the metrics and hooks.
    pub fn delete(&self, name: &str, ctx: &RunContext<'_>) -> Result<PruneReport, Error> {
        let started = Utc::now();
        let result = prune::delete_named(self.root(), &self.config().retention, name, started);
        if let Ok(report) = &result {
            for deleted in &report.deleted {
                ctx.emit(Event::Pruned(deleted));
            }
        }
        let (record, _) = prune_record(started, &result);
        self.after_run(&record, ctx);
        let report = result?;
        match report.error() {
            Some(e) => Err(e.into()),
            None => Ok(report),
        }
    }

    /// The prune after a successful backup: recorded as a `prune` run, without metrics or
    /// hooks (the backup's hooks report the run). A failure is a warning, never the backup's.
    pub(crate) fn prune_after_backup(&self, ctx: &RunContext<'_>) -> Vec<Warning> {
        let started = Utc::now();
        let result = prune::run(self.root(), &self.config().retention, started, false);
        if let Ok(report) = &result {
            for name in &report.deleted {
                ctx.emit(Event::Pruned(name));
            }
        }
        let (record, error) = prune_record(started, &result);
        let mut warnings: Vec<Warning> = error.map(Warning::Prune).into_iter().collect();
        warnings.extend(self.reporting().record(&record));
        warnings
    }
}

/// The run-log record of a prune, and its error's text when it failed (a prune that ran
/// but could not delete everything failed too).
fn prune_record(
    started: DateTime<Utc>,
    result: &Result<PruneReport, PruneError>,
) -> (RunRecord, Option<String>) {
    let record = RunRecord::new(Operation::Prune, started);
    let (record, error) = match result {
        Ok(report) => (
            record.with_detail(report.summary()),
            report.error().map(|e| e.to_string()),
        ),
        Err(e) => (record, Some(e.to_string())),
    };
    match error {
        None => (record.succeeded(Utc::now()), None),
        Some(text) => (record.failed(Utc::now(), &text), Some(text)),
    }
}
