//! The handle every operation runs on: [`Coffer`], built once from a checked configuration.
//!
//! It owns the configuration, the resolved backup root and the reporting that follows every
//! run (run log, metrics file, `on_success` / `on_failure` hooks). The operations are its
//! methods, one module each in [`crate::commands`].

use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::commands::BackupRef;
use crate::config::Config;
use crate::context::RunContext;
use crate::error::Error;
use crate::format::signing::SignaturePolicy;
use crate::progress::Event;
use crate::report::notify::Reporting;
use crate::root::catalog::{self, BackupEntry};
use crate::root::lock::{self, LockError};
use crate::root::runlog::RunRecord;
use crate::stream::crypto::Identities;
use crate::warning::Warning;

/// A backup root with its configuration: the handle every operation runs on.
///
/// ```no_run
/// use coffer_core::{BackupOptions, Coffer, RunContext};
/// use coffer_core::config::Config;
///
/// let loaded = Config::load(None, &|k| std::env::var(k).ok())?;
/// let coffer = Coffer::new(loaded.config)?;
/// let outcome = coffer.backup(&BackupOptions::default(), &RunContext::default())?;
/// println!("{}", outcome.report.path.display());
/// # Ok::<(), coffer_core::Error>(())
/// ```
pub struct Coffer {
    config: Config,
    root: PathBuf,
    reporting: Reporting,
}

/// The root only: the configuration may hold the database password.
impl std::fmt::Debug for Coffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coffer")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Coffer {
    /// Checks the configuration's paths (see [`Config::check_paths`]) and resolves the
    /// backup root. Apply every override (environment, flags) to `config` first.
    pub fn new(config: Config) -> Result<Coffer, Error> {
        config.check_paths()?;
        Ok(Coffer {
            root: config.backup_dir(),
            reporting: Reporting::from_config(&config),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The backup root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Fails with [`ErrorKind::Locked`](crate::ErrorKind::Locked) when another run (a
    /// command-line backup, prune, import, restore…) holds the root's lock right now; `Ok`
    /// when it is free or there is no lock file (the operation itself reports any other
    /// problem with it). For a front end that refuses at once rather than start work that
    /// would fail later; the probe writes nothing.
    pub fn check_root_free(&self) -> Result<(), Error> {
        match lock::holder(&self.root) {
            None => Ok(()),
            Some(holder) => Err(LockError::Held {
                root: self.root.clone(),
                holder,
            }
            .into()),
        }
    }

    /// Where runs are recorded and reported.
    pub(crate) fn reporting(&self) -> &Reporting {
        &self.reporting
    }

    /// The age identities to decrypt with: `path`, else `encryption.identity_file`.
    /// `None` when neither is set.
    pub(crate) fn identities(&self, path: Option<&Path>) -> Result<Option<Identities>, Error> {
        let path = path.or(self.config.encryption.identity_file.as_deref());
        Ok(path.map(Identities::load).transpose()?)
    }

    /// The signature policy of `[signing]`; `allow_unsigned` accepts a backup without
    /// signatures for this run. A trusted key that cannot be loaded is an error.
    pub(crate) fn signature_policy(&self, allow_unsigned: bool) -> Result<SignaturePolicy, Error> {
        Ok(SignaturePolicy::load(&self.config.signing)?.allowing_unsigned(allow_unsigned))
    }

    /// The backup `backup` names in the root; reports the backups passed over choosing it.
    pub(crate) fn resolve(
        &self,
        backup: &BackupRef,
        ctx: &RunContext<'_>,
    ) -> Result<(BackupEntry, Vec<Warning>), Error> {
        let resolved = catalog::resolve_at(&self.root, backup.name(), Utc::now())?;
        let warnings: Vec<Warning> = resolved
            .warnings
            .into_iter()
            .map(Warning::PassedOver)
            .collect();
        warn_all(ctx, &warnings);
        Ok((resolved.entry, warnings))
    }

    /// What follows every run: `record` appended to the run log, the metrics file
    /// rewritten, the outcome's hooks run. Reports and returns what failed of that.
    pub(crate) fn after_run(&self, record: &RunRecord, ctx: &RunContext<'_>) -> Vec<Warning> {
        let warnings = self.reporting.after_run(record, Utc::now());
        warn_all(ctx, &warnings);
        warnings
    }
}

/// `record` ended now, as `result` says: the error with its causes is what the run log
/// keeps and the hooks receive.
pub(crate) fn finished<T>(record: RunRecord, result: &Result<T, Error>) -> RunRecord {
    match result {
        Ok(_) => record.succeeded(Utc::now()),
        Err(e) => record.failed(Utc::now(), &e.with_causes()),
    }
}

/// Reports each warning.
pub(crate) fn warn_all(ctx: &RunContext<'_>, warnings: &[Warning]) {
    for w in warnings {
        ctx.emit(Event::Warning(w));
    }
}
