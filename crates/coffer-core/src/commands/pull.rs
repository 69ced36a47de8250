//! `pull`: a remote backup downloaded into the backup root, verified, all or nothing.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::runtime::Handle;

use super::BackupRef;
use crate::coffer::Coffer;
use crate::config::ConfigError;
use crate::context::RunContext;
use crate::error::Error;
use crate::format::signing::SignaturePolicy;
use crate::progress::Event;
use crate::remote::Remote;
use crate::remote::pull::{self, PullReport, Which};
use crate::remote::stream::{self, Fetched, Streamable};
use crate::root::catalog::BackupEntry;
use crate::stream::crypto::Identities;

/// How to pull.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The age identity file, instead of `encryption.identity_file`; without any, the
    /// content of encrypted artifacts is not checked.
    pub identity: Option<PathBuf>,
    /// Accept a backup without signatures although trusted keys are configured (a bad
    /// signature is still refused). Default: no.
    pub allow_unsigned: bool,
}

impl PullOptions {
    /// Sets the age identity file.
    pub fn identity(mut self, identity: Option<PathBuf>) -> PullOptions {
        self.identity = identity;
        self
    }

    /// Whether to accept an unsigned backup.
    pub fn allow_unsigned(mut self, allow: bool) -> PullOptions {
        self.allow_unsigned = allow;
        self
    }
}

impl Coffer {
    /// Downloads `backup` (a name on the remote, or its newest complete backup) into the
    /// root, verified as [`Coffer::verify`] would, unless it is complete there already.
    /// Reports each step as [`Event::Transfer`]; once the context's flag is set, stops at
    /// the next chunk leaving nothing in the root.
    pub async fn pull(
        &self,
        backup: &BackupRef,
        options: &PullOptions,
        ctx: &RunContext<'_>,
    ) -> Result<PullReport, Error> {
        let identities = self.identities(options.identity.as_deref())?;
        let signatures = self.signature_policy(options.allow_unsigned)?;
        self.download(backup, identities.as_ref(), &signatures, ctx)
            .await
    }

    /// Whether the named backup a restore from the remote asks for is complete in the root
    /// already ([`Event::FoundInRoot`]): then it is used as it is. A path is refused.
    fn complete_in_root(&self, backup: &BackupRef, ctx: &RunContext<'_>) -> Result<bool, Error> {
        let BackupRef::Named(name) = backup else {
            return Ok(false);
        };
        if name.contains('/') {
            return Err(ConfigError::Invalid {
                path: "restore options".into(),
                key: "backup".into(),
                reason: format!("a backup on the remote is named, not given by path: `{name}`"),
            }
            .into());
        }
        let local = self.root().join(name);
        if local.is_dir() && BackupEntry::read(&local).status.is_usable() {
            ctx.emit(Event::FoundInRoot(name));
            return Ok(true);
        }
        Ok(false)
    }

    /// The backup a restore from the remote uses: the one in the root when it is complete
    /// there already ([`Event::FoundInRoot`]), else the one pulled ([`Event::Pulled`]).
    pub(crate) fn pull_for_restore(
        &self,
        backup: &BackupRef,
        identities: Option<&Identities>,
        signatures: &SignaturePolicy,
        ctx: &RunContext<'_>,
    ) -> Result<BackupRef, Error> {
        if self.complete_in_root(backup, ctx)? {
            return Ok(backup.clone());
        }
        let report = ctx.block_on(self.download(backup, identities, signatures, ctx))??;
        ctx.emit(Event::Pulled(&report));
        Ok(BackupRef::Named(report.name))
    }

    /// The backup a streaming restore from the remote uses: the one in the root when it is
    /// complete there (named, or the remote's newest), a legacy backup pulled as before (it
    /// has no hashes to hold a stream to), otherwise a coffer backup streamed: its small
    /// files fetched into a private temporary directory, nothing written to the root.
    pub(crate) fn stream_for_restore(
        &self,
        backup: &BackupRef,
        identities: Option<&Identities>,
        signatures: &SignaturePolicy,
        ctx: &RunContext<'_>,
    ) -> Result<ForRestore, Error> {
        if self.complete_in_root(backup, ctx)? {
            return Ok(ForRestore::Local(backup.clone()));
        }
        let remote = Arc::new(Remote::from_config(&self.config().remote)?);
        let which = match backup {
            BackupRef::Named(name) => Which::Name(name.clone()),
            BackupRef::Latest => Which::Latest,
        };
        let fetched = ctx.block_on(stream::fetch_metadata(&remote, self.root(), &which, ctx))??;
        match fetched {
            Fetched::InRoot(name) => {
                ctx.emit(Event::FoundInRoot(&name));
                Ok(ForRestore::Local(BackupRef::Named(name)))
            }
            Fetched::Legacy(name) => Ok(ForRestore::Local(self.pull_for_restore(
                &BackupRef::Named(name),
                identities,
                signatures,
                ctx,
            )?)),
            Fetched::Stream(streamable) => {
                let runtime = ctx.runtime()?;
                // The restore threads wait on ranged reads the runtime's workers make: a
                // current-thread runtime would never run them while this thread waits.
                if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread {
                    return Err(crate::error::Error::new(
                        crate::error::ErrorKind::Failed,
                        "a restore streamed from the remote needs a multi-thread tokio runtime: give the RunContext one (with_runtime)",
                    ));
                }
                Ok(ForRestore::Stream {
                    streamable,
                    remote,
                    runtime,
                })
            }
        }
    }

    async fn download(
        &self,
        backup: &BackupRef,
        identities: Option<&Identities>,
        signatures: &SignaturePolicy,
        ctx: &RunContext<'_>,
    ) -> Result<PullReport, Error> {
        let remote = Remote::from_config(&self.config().remote)?;
        let which = match backup {
            BackupRef::Named(name) => Which::Name(name.clone()),
            BackupRef::Latest => Which::Latest,
        };
        Ok(pull::run(&remote, self.root(), &which, identities, signatures, ctx).await?)
    }
}

/// Where a restore from the remote reads the backup.
pub(crate) enum ForRestore {
    /// From the root (found there, or pulled into it).
    Local(BackupRef),
    /// Streamed from the remote.
    Stream {
        /// The backup's small files, checked, and its listing.
        streamable: Box<Streamable>,
        /// The remote.
        remote: Arc<Remote>,
        /// The runtime the ranged reads run on.
        runtime: Handle,
    },
}
