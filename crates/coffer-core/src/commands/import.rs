//! `import`: a bundle (or a `.tar.gz` of a shell-script backup) read into the backup root,
//! verified, all or nothing (see `Coffer::import`).

use std::io::Read;
use std::path::PathBuf;

use super::BackupRef;
use super::restore::{PreparedRestore, RestoreOptions};
use crate::bundle::{self, BundleError, ImportReport};
use crate::coffer::Coffer;
use crate::context::RunContext;
use crate::error::Error;

/// Where a bundle comes from.
#[non_exhaustive]
pub enum BundleInput<'a> {
    /// A file.
    File(PathBuf),
    /// A stream, e.g. standard input (an upload piped in).
    Stream(&'a mut dyn Read),
}

impl std::fmt::Debug for BundleInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleInput::File(p) => f.debug_tuple("File").field(p).finish(),
            BundleInput::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// How to import.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The age identity file, instead of `encryption.identity_file`; without any, the
    /// content of encrypted artifacts is not checked (their stored hashes are).
    pub identity: Option<PathBuf>,
    /// Accept a backup without signatures although trusted keys are configured (a bad
    /// signature is still refused). Default: no.
    pub allow_unsigned: bool,
}

impl ImportOptions {
    /// Sets the age identity file.
    pub fn identity(mut self, identity: Option<PathBuf>) -> ImportOptions {
        self.identity = identity;
        self
    }

    /// Whether to accept an unsigned backup.
    pub fn allow_unsigned(mut self, allow: bool) -> ImportOptions {
        self.allow_unsigned = allow;
        self
    }
}

impl Coffer {
    /// Reads a bundle into the root (created if missing): every member checked as it
    /// arrives, the whole backup verified as [`Coffer::verify`] would, then renamed into
    /// place. A damaged, truncated, unsafe or colliding bundle leaves nothing behind.
    /// Reports steps as [`crate::Event::Transfer`]; once the context's flag is set, stops at
    /// the next chunk.
    pub fn import(
        &self,
        input: BundleInput<'_>,
        options: &ImportOptions,
        ctx: &RunContext<'_>,
    ) -> Result<ImportReport, Error> {
        let identities = self.identities(options.identity.as_deref())?;
        let signatures = self.signature_policy(options.allow_unsigned)?;
        let report = match input {
            BundleInput::File(path) => {
                let mut file = std::fs::File::open(&path).map_err(|e| BundleError::Io {
                    op: "open",
                    path: path.clone(),
                    source: e,
                })?;
                let origin = path.display().to_string();
                bundle::import(
                    &mut file,
                    &origin,
                    self.root(),
                    identities.as_ref(),
                    &signatures,
                    ctx,
                )
            }
            BundleInput::Stream(input) => bundle::import(
                input,
                "standard input",
                self.root(),
                identities.as_ref(),
                &signatures,
                ctx,
            ),
        };
        Ok(report?)
    }
}

impl Coffer {
    /// Disaster recovery from one file: imports the bundle into the root as
    /// [`Coffer::import`] does (verified, all or nothing; a backup of that name already in
    /// the root is refused), then runs [`Coffer::prepare_restore`] on it. The imported
    /// backup stays in the root, as one pulled by `from_remote` does. The identity and
    /// `allow_unsigned` of `options` apply to both steps.
    pub fn prepare_restore_from_bundle(
        &self,
        input: BundleInput<'_>,
        options: &RestoreOptions,
        ctx: &RunContext<'_>,
    ) -> Result<PreparedRestore<'_>, Error> {
        let import = ImportOptions::default()
            .identity(options.identity.clone())
            .allow_unsigned(options.allow_unsigned);
        let report = self.import(input, &import, ctx)?;
        self.prepare_restore(&BackupRef::Named(report.name), options, ctx)
    }
}
