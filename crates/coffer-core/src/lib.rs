//! # coffer-core
//!
//! The library behind the `coffer` command: streaming backups of one PostgreSQL database
//! plus one workspace directory into gzip (optionally age-encrypted) artifacts with a
//! verified manifest, and the checks and restores that read them back.
//!
//! Everything a backup writes can be read with standard tools (`gunzip`, `tar`, `age`,
//! `psql`, `sha256sum`): the layout is the one the shell-script era used, so there is no
//! lock-in during a disaster.
//!
//! Start at [`Coffer`]: the handle built once from a checked [`config::Config`], whose
//! methods are the operations (one module each in [`commands`]): [`Coffer::backup`] (the
//! whole job: backup, run log, prune, sync, metrics, hooks), [`Coffer::restore`],
//! [`Coffer::verify`], [`Coffer::drill`], [`Coffer::prune`], [`Coffer::delete`], [`Coffer::sync`],
//! [`Coffer::pull`], [`Coffer::export`], [`Coffer::import`], [`Coffer::list`], [`Coffer::list_remote`] and [`Coffer::status`]. Each takes an options struct whose `Default` is the safe, complete
//! behaviour and a [`RunContext`] (a [`Progress`] receiving typed [`progress::Event`]s, and
//! the cancellation flag), and fails with an [`Error`] whose [`ErrorKind`] a front end maps
//! to exit codes or statuses.
//!
//! The source is layered, from the bottom up (the configuration sits beside `format`):
//! - `util` and `format`: helpers, backup names, `manifest.json`, `SHA256SUMS`, signatures,
//!   and what a backup is from its name, manifest and file sizes (local or remote).
//! - `stream`: the one-pass readers and writers — hashing, block-parallel gzip, age, the
//!   workspace tar (written, listed, extracted), the dump scanner that gates what psql reads,
//!   and an artifact read back with both digests checked.
//! - `postgres`: where the database is, `pg_dump`/`psql` as child processes, psql's
//!   confinement, the Alembic heads.
//! - `root`: the backup root — catalog, lock, run log, retention, prune.
//! - `workspace`: what may be archived or replaced, mounts, the crash-safe swap.
//! - `backup`, `restore`, `check` (verify, drill), `bundle` (one-file export and import) and
//!   `remote`: the pipelines.
//! - `report`: metrics, notification hooks, operator hooks.
//! - [`config`], [`Coffer`] and [`commands`]: the configuration, the handle and one module
//!   per operation, on top, with [`Error`] and the [`Hint`]s a front end words as advice.
//!
//! The public face is this page: the handle, its options and reports, and the types they
//! carry, re-exported below. Everything else is internal and may change in any release.
//!
//! ## Cargo features
//!
//! - `sandbox` (off by default): the `sandbox` module, whose `TempCluster` runs a
//!   throw-away PostgreSQL cluster (`initdb` and `pg_ctl` in a temporary directory, stopped
//!   and removed on drop) for demos, tests and benchmarks. Backups and restores do not need
//!   it; the `coffer` command enables it for `coffer demo`.

#![deny(missing_docs)]

pub mod commands;
pub mod config;
mod hint;
pub mod progress;

mod backup;
mod bundle;
mod cancel;
mod check;
mod coffer;
mod context;
mod error;
mod format;
mod postgres;
mod remote;
mod report;
mod restore;
mod root;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod shared_read;
mod stream;
#[cfg(test)]
mod test_corpus;
mod util;
mod warning;
mod workspace;

pub use cancel::CancelFlag;
pub use coffer::Coffer;
pub use commands::backup::{BackupOptions, BackupOutcome, BundleBackupOutcome};
pub use commands::drill::DrillOptions;
pub use commands::export::BundleOutput;
pub use commands::health::HealthReport;
pub use commands::import::{BundleInput, ImportOptions};
pub use commands::list::{ListedBackup, Listing, RemoteListedBackup, RemoteListing, RemoteUnknown};
pub use commands::prune::PruneOptions;
pub use commands::pull::PullOptions;
pub use commands::restore::{PreparedRestore, RestoreOptions, RestoreOutcome};
pub use commands::status::{State, StatusReport};
pub use commands::sync::SyncOptions;
pub use commands::verify::{VerifyOptions, VerifyOutcome};
pub use commands::{BackupRef, Selection};
pub use context::RunContext;
pub use error::{Error, ErrorKind, Result};
pub use hint::Hint;
pub use progress::{Event, Progress};
pub use warning::Warning;

// What the operations' reports carry.
pub use backup::BackupReport;
pub use bundle::{BundleError, ExportReport, ImportReport, bundle_len};
pub use check::drill::DrillReport;
pub use check::verify::{Check, Outcome as CheckOutcome, VerifyReport};
pub use format::manifest;
pub use format::manifest::ArtifactRole;
pub use format::names::BackupKind;
pub use format::signing::{SignaturePolicy, UNSIGNED_REFUSED};
pub use remote::{Remote, RemoteError, UploadSettings};
pub use report::metrics;
pub use report::notify::UnitFailure;
pub use restore::PhaseTimings as RestorePhaseTimings;
pub use restore::Plan as RestorePlan;
pub use root::catalog::EntryStatus;
pub use root::prune::PruneReport;
pub use root::retention::RetentionPolicy;
pub use root::runlog::{
    Alert, BackupStats, LastSuccess, Operation as RunOperation, RunRecord, Status as RootStatus,
    SuccessSource, Thresholds,
};
pub use util::fsutil::{STAGING_MARKER, STAGING_MARKER_TEXT};

// Keys, made once by the operator.
pub use format::signing::{GeneratedKey, generate as generate_signing_key};
pub use stream::crypto::keygen as generate_age_identity;

/// coffer's wording for front ends: ages, sizes, truncation and redaction as the CLI shows
/// them, and the run log's reading limits its notes mention.
pub mod text {
    pub use crate::root::runlog::{
        LINE_CAP as RUN_LOG_LINE_CAP, READ_WINDOW as RUN_LOG_READ_WINDOW,
    };
    pub use crate::root::runlog::{human_age, truncate};
    pub use crate::util::redact::redact;
    pub use crate::util::units::bytes;
}

/// Not part of the API: building blocks re-exported for coffer's own benchmarks and tests.
/// Anything here may change or disappear in any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::postgres::sandbox_exec::Confinement;
    pub use crate::postgres::{Database, PgError};
    pub use crate::remote::{pull, sync};
    pub use crate::stream::archive;
    pub use crate::stream::digest::HashingWriter;
    pub use crate::stream::dump_scan::{DumpScanner, scan_reader};
    pub use crate::stream::parallel_gzip::ParallelGzipWriter;
}

/// The version of coffer that wrote a backup, recorded in its manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
