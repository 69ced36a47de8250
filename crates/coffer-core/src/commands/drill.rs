//! `drill`: a real restore of a backup into a throw-away database and directory, checked
//! against its manifest, then removed (see `crate::check::drill`).

use std::path::PathBuf;

use super::BackupRef;
use crate::check::drill::{self, DrillReport};
use crate::coffer::Coffer;
use crate::context::RunContext;
use crate::error::Error;
use crate::format::signing::SignaturePolicy;
use crate::progress::Event;
use crate::restore::RestoreSettings;
use crate::root::catalog::BackupEntry;
use crate::stream::crypto::Identities;

/// How to drill.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// The age identity file, instead of `encryption.identity_file`.
    pub identity: Option<PathBuf>,
    /// Accept a backup without signatures although trusted keys are configured (a bad
    /// signature is still refused). Default: no.
    pub allow_unsigned: bool,
    /// Sessions restoring the database, as [`crate::RestoreOptions::jobs`]. Default: 1.
    pub jobs: usize,
}

impl DrillOptions {
    /// Sets the age identity file.
    pub fn identity(mut self, identity: Option<PathBuf>) -> DrillOptions {
        self.identity = identity;
        self
    }

    /// Whether to accept an unsigned backup.
    pub fn allow_unsigned(mut self, allow: bool) -> DrillOptions {
        self.allow_unsigned = allow;
        self
    }

    /// Sets the sessions restoring the database.
    pub fn jobs(mut self, jobs: usize) -> DrillOptions {
        self.jobs = jobs.max(1);
        self
    }
}

impl Coffer {
    /// Restores `backup` into a throw-away database on the configured server (the role
    /// needs `CREATEDB`) and a new directory in the root, compares both with the manifest,
    /// and removes them.
    pub fn drill(
        &self,
        backup: &BackupRef,
        options: &DrillOptions,
        ctx: &RunContext<'_>,
    ) -> Result<DrillReport, Error> {
        let identities = self.identities(options.identity.as_deref())?;
        let signatures = self.signature_policy(options.allow_unsigned)?;
        let (entry, _) = self.resolve(backup, ctx)?;
        self.drill_entry(&entry, identities.as_ref(), &signatures, options.jobs, ctx)
    }

    /// The drill of one backup found already.
    pub(crate) fn drill_entry(
        &self,
        entry: &BackupEntry,
        identities: Option<&Identities>,
        signatures: &SignaturePolicy,
        jobs: usize,
        ctx: &RunContext<'_>,
    ) -> Result<DrillReport, Error> {
        let mut settings = RestoreSettings::from_config(self.config())?;
        settings.signatures = signatures.clone();
        ctx.emit(Event::DrillStarted(&entry.name));
        let report = drill::run(&settings, entry, identities, jobs, ctx)?;
        ctx.emit(Event::Drilled(&report));
        Ok(report)
    }
}
