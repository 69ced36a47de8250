//! `import`: a bundle (or a `.tar.gz` of a shell-script backup) read into the backup root,
//! verified, all or nothing (see `Coffer::import`).

use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::BackupRef;
use super::restore::{PreparedRestore, RestoreOptions, restore_record};
use crate::bundle::{self, Arrived, BundleError, ImportReport};
use crate::coffer::{Coffer, finished};
use crate::context::RunContext;
use crate::error::Error;
use crate::format::manifest::AnyManifest;
use crate::restore::{self, RestoreError, RestoreSettings};
use crate::root::catalog::{BackupEntry, EntryStatus};
use crate::stream::crypto::Identities;

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
    /// Disaster recovery from one file: reads the bundle into the root as
    /// [`Coffer::import`] does (verified, all or nothing; a backup of that name already in
    /// the root is refused), then runs [`Coffer::prepare_restore`] on it. The imported
    /// backup stays in the root, as one pulled by `from_remote` does. The identity and
    /// `allow_unsigned` of `options` apply to both steps.
    ///
    /// The manifest comes first in a bundle, so the pre-flight runs on it before any of the
    /// data is read (see `restore::prepare_announced`): the manifest's signature,
    /// the database, roles and sessions, the workspace target and its room, the Alembic
    /// head. A refusal there reads nothing more of the input and imports nothing (it is
    /// recorded in the run log as a failed restore). What needs the data (the identity, the
    /// roles file, `SHA256SUMS` and its signature) is checked once it has arrived, by the
    /// complete pre-flight.
    pub fn prepare_restore_from_bundle(
        &self,
        input: BundleInput<'_>,
        options: &RestoreOptions,
        ctx: &RunContext<'_>,
    ) -> Result<PreparedRestore<'_>, Error> {
        let started = Utc::now();
        let identities = self.identities(options.identity.as_deref())?;
        let signatures = self.signature_policy(options.allow_unsigned)?;
        let mut settings = RestoreSettings::from_config(self.config())?;
        settings.signatures = signatures.clone();
        let steps = options.steps();
        let mut refused_entry = None;
        let mut before_data = |arrived: Arrived<'_>| -> Result<(), BundleError> {
            let (name, staging) = match arrived {
                Arrived::Manifest { name, staging } => (name, staging),
                Arrived::EncryptedStart { file, bytes } => {
                    return identity_opens(identities.as_ref(), file, bytes);
                }
            };
            let entry = announced_entry(name, staging);
            // A shell-script manifest lists no artifacts: what the backup holds is known only
            // once its files are there, so its pre-flight waits for the complete one.
            if !matches!(entry.manifest, Some(AnyManifest::Coffer(_))) {
                return Ok(());
            }
            match restore::prepare_announced(&settings, &entry, &steps) {
                Ok(plan) => {
                    ctx.done(&format!(
                        "pre-flight on the manifest of {name} passed before its data ({} checks); reading the data",
                        plan.checks.len()
                    ));
                    Ok(())
                }
                Err(e) => {
                    refused_entry = Some(entry);
                    Err(BundleError::RefusedBeforeData(Box::new(e.into())))
                }
            }
        };
        let checked = (identities.as_ref(), &signatures);
        let imported = match input {
            BundleInput::File(path) => {
                let mut file = std::fs::File::open(&path).map_err(|e| BundleError::Io {
                    op: "open",
                    path: path.clone(),
                    source: e,
                })?;
                let origin = path.display().to_string();
                bundle::import_checked(
                    &mut file,
                    &origin,
                    self.root(),
                    checked,
                    &mut before_data,
                    ctx,
                )
            }
            BundleInput::Stream(input) => bundle::import_checked(
                input,
                "standard input",
                self.root(),
                checked,
                &mut before_data,
                ctx,
            ),
        };
        match imported {
            Ok(report) => self.prepare_restore(&BackupRef::Named(report.name), options, ctx),
            Err(BundleError::RefusedBeforeData(refusal)) => {
                let result: Result<PreparedRestore<'_>, Error> = Err(*refusal);
                let record = restore_record(started, refused_entry.as_ref());
                self.after_run(&finished(record, &result), ctx);
                result
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether `identities` open the encrypted artifact `file` that starts with `bytes` (its
/// age header): a refusal before the rest of it is read. Bytes that are not an age header
/// pass: the import's hash checks report the damage.
fn identity_opens(
    identities: Option<&Identities>,
    file: &str,
    bytes: &[u8],
) -> Result<(), BundleError> {
    let Some(identities) = identities else {
        // Said by the complete pre-flight, which names how to give one.
        return Ok(());
    };
    if age::Decryptor::new(bytes).is_err() {
        return Ok(());
    }
    match identities.decrypt(bytes, file) {
        Ok(_) => Ok(()),
        Err(e) => Err(BundleError::RefusedBeforeData(Box::new(
            RestoreError::Refused {
                problems: vec![e.to_string()],
                hints: Vec::new(),
            }
            .into(),
        ))),
    }
}

/// The backup of which only the manifest has arrived in `staging`, taken for complete (a
/// coffer one) as its manifest says: the import checks that the data matches.
fn announced_entry(name: &str, staging: &Path) -> BackupEntry {
    let mut entry = BackupEntry::read(staging);
    entry.name = name.to_string();
    if matches!(entry.manifest, Some(AnyManifest::Coffer(_))) {
        entry.status = EntryStatus::Complete;
    }
    entry
}
