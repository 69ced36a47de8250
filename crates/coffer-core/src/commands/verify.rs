//! `verify`: checking backups end to end without restoring them, optionally followed by
//! the restore drill.

use std::path::PathBuf;

use serde::Serialize;
use serde::ser::SerializeMap;

use super::Selection;
use crate::check::drill::DrillReport;
use crate::check::verify::{self, VerifyReport};
use crate::coffer::Coffer;
use crate::context::RunContext;
use crate::error::Error;
use crate::progress::Event;
use crate::root::catalog;

/// How to verify.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The age identity file, instead of `encryption.identity_file`; without any, only
    /// the stored hashes of encrypted artifacts are checked.
    pub identity: Option<PathBuf>,
    /// Accept backups without signatures although trusted keys are configured (a bad
    /// signature still fails). Default: no.
    pub allow_unsigned: bool,
    /// After the checks pass, also run the restore drill ([`Coffer::drill`]). Default: no.
    pub restore_test: bool,
    /// Sessions the restore drill restores the database with, as
    /// [`crate::RestoreOptions::jobs`]. Default: 1.
    pub jobs: usize,
}

impl VerifyOptions {
    /// Sets the age identity file.
    pub fn identity(mut self, identity: Option<PathBuf>) -> VerifyOptions {
        self.identity = identity;
        self
    }

    /// Whether to accept unsigned backups.
    pub fn allow_unsigned(mut self, allow: bool) -> VerifyOptions {
        self.allow_unsigned = allow;
        self
    }

    /// Whether to run the restore drill after the checks.
    pub fn restore_test(mut self, restore_test: bool) -> VerifyOptions {
        self.restore_test = restore_test;
        self
    }

    /// Sets the sessions of the restore drill.
    pub fn jobs(mut self, jobs: usize) -> VerifyOptions {
        self.jobs = jobs.max(1);
        self
    }
}

/// What verification found.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct VerifyOutcome {
    /// One report per backup, in the order verified.
    pub reports: Vec<VerifyReport>,
    /// The drills made (`restore_test`): one per backup whose checks passed.
    pub drills: Option<Vec<DrillReport>>,
}

impl VerifyOutcome {
    /// How many backups failed their checks or their drill.
    pub fn failures(&self) -> usize {
        let checks = self.reports.iter().filter(|r| !r.passed()).count();
        let drills = self.drills.iter().flatten().filter(|d| !d.passed()).count();
        checks + drills
    }
}

/// The reports as a list; with drills, `{"verify": [...], "restore_test": [...]}`.
impl Serialize for VerifyOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.drills {
            None => self.reports.serialize(serializer),
            Some(drills) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("verify", &self.reports)?;
                map.serialize_entry("restore_test", drills)?;
                map.end()
            }
        }
    }
}

impl Coffer {
    /// Verifies the selected backups: manifest, signatures, `SHA256SUMS`, each artifact's
    /// stored and decoded size and SHA-256, the dump's completeness and the tar listing.
    /// A flat dump file (`FILE.sql.gz` or `FILE.sql`, see [`BackupRef::Named`](super::BackupRef::Named)) gets its gzip
    /// integrity, its completion trailer and the dump gate's refusals checked.
    /// Reports each backup as [`Event::Verified`] when done, and each drill as
    /// [`Event::Drilled`]. A failed check is in the outcome, not an `Err`.
    pub fn verify(
        &self,
        selection: &Selection,
        options: &VerifyOptions,
        ctx: &RunContext<'_>,
    ) -> Result<VerifyOutcome, Error> {
        let identities = self.identities(options.identity.as_deref())?;
        let signatures = self.signature_policy(options.allow_unsigned)?;
        let entries = match selection {
            Selection::All => catalog::list(self.root())?,
            Selection::One(backup) => {
                if let Some(given) = backup.name()
                    && let Some(detected) = crate::check::flat::detect(given)
                {
                    return verify_flat(given, detected, options, ctx);
                }
                vec![self.resolve(backup, ctx)?.0]
            }
        };
        let mut outcome = VerifyOutcome {
            reports: Vec::new(),
            drills: options.restore_test.then(Vec::new),
        };
        for entry in &entries {
            let report = verify::verify_signed(entry, identities.as_ref(), &signatures);
            ctx.emit(Event::Verified(&report));
            if let Some(drills) = outcome.drills.as_mut().filter(|_| report.passed()) {
                drills.push(self.drill_entry(
                    entry,
                    identities.as_ref(),
                    &signatures,
                    options.jobs,
                    ctx,
                )?);
            }
            outcome.reports.push(report);
        }
        Ok(outcome)
    }
}

/// Verifies a flat dump file (see [`crate::check::flat`]); the restore drill covers backup
/// directories only.
fn verify_flat(
    given: &str,
    detected: Result<crate::check::flat::FlatDump, String>,
    options: &VerifyOptions,
    ctx: &RunContext<'_>,
) -> Result<VerifyOutcome, Error> {
    if options.restore_test {
        return Err(crate::restore::RestoreError::Refused {
            problems: vec![format!(
                "{given} is a flat dump file: the restore test covers backup directories; restore the dump into a new database to try it"
            )],
            hints: vec![crate::Hint::TargetDb],
        }
        .into());
    }
    let report = crate::check::flat::verify(given, detected);
    ctx.emit(Event::Verified(&report));
    Ok(VerifyOutcome {
        reports: vec![report],
        drills: None,
    })
}
