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
//! [`Coffer::verify`], [`Coffer::drill`], [`Coffer::prune`], [`Coffer::sync`],
//! [`Coffer::pull`], [`Coffer::export`], [`Coffer::import`], [`Coffer::list`], [`Coffer::list_remote`] and [`Coffer::status`]. Each takes an options struct whose `Default` is the safe, complete
//! behaviour and a [`RunContext`] (a [`Progress`] receiving typed [`progress::Event`]s, and
//! the cancellation flag), and fails with an [`Error`] whose [`ErrorKind`] a front end maps
//! to exit codes or statuses.
//!
//! Modules, one per concern:
//! - [`coffer`] and [`commands`]: the handle and its operations.
//! - [`context`], [`progress`] and [`cancel`]: reporting from, and stopping, long operations.
//! - [`warning`]: what failed around an operation without changing its outcome.
//! - [`error`]: the one error type of every operation, with its [`ErrorKind`].
//! - [`config`]: the TOML configuration, environment overrides and validation.
//! - [`names`]: backup directory names (`auto-…`, `manual-…`, legacy `YYYY-MM-DD-HHMMSS`).
//! - [`manifest`]: `manifest.json`, the coffer schema and the legacy shell-script one.
//! - [`digest`]: readers and writers that count and hash what passes through them.
//! - [`crypto`]: age recipients, identities, encryption and decryption streams, key generation.
//! - [`postgres`]: where the database is, and running `pg_dump` / `psql` against it.
//! - [`dump_scan`]: facts read from a plain-format dump as it streams (row counts, Alembic head).
//! - [`alembic`]: the backup's Alembic heads against the ones the code expects.
//! - [`archive`]: the workspace as a tar stream, and safe extraction of one.
//! - [`parallel_gzip`]: gzip compressed block-parallel on every core, as one standard member.
//! - [`artifact`]: reading an artifact back (age → gunzip) with both digests checked.
//! - [`backup`]: the backup pipeline that ties the above together atomically.
//! - [`bundle`]: one-file bundles: a backup directory as one tar, exported and imported.
//! - [`boundaries`]: coffer's own files are never inside what it archives or replaces.
//! - [`restore`]: pre-flight checks, then database and workspace restored all or nothing.
//! - [`drill`]: the restore drill into a throw-away database and directory.
//! - [`workspace_swap`]: replacing the workspace by rename, undone after a crash.
//! - [`mounts`]: what is mounted below a directory; removing a tree within one mount.
//! - [`catalog`]: the backups found in a backup root.
//! - [`verify`]: checking a backup end to end without restoring it.
//! - [`signing`]: minisign signatures of the manifest and `SHA256SUMS`, made and checked.
//! - [`retention`]: which backups to keep.
//! - [`remote`]: the off-host copy on an object store: sync, pull, remote retention.
//! - [`prune`]: deleting what retention does not keep, and abandoned staging directories.
//! - [`runlog`]: the run log of every attempt, and the status computed from it.
//! - [`metrics`]: that status as a Prometheus textfile.
//! - [`notify`]: what follows every run: run log, metrics, `on_success`/`on_failure` hooks.
//! - [`systemd`]: the nightly timer's unit files.
//! - [`lock`]: the backup root's lock.
//! - [`hooks`]: operator commands run around restores and after runs.
//! - [`sandbox`]: throw-away PostgreSQL clusters for the demo, tests and benchmarks.
//! - [`units`]: human-readable sizes for messages.
//! - [`redact`]: passwords and keys masked in every text coffer shows or stores.

#![deny(missing_docs)]

pub mod alembic;
pub mod archive;
pub mod artifact;
pub mod backup;
pub mod boundaries;
pub mod bundle;
pub mod cancel;
pub mod catalog;
pub mod coffer;
pub mod commands;
pub mod config;
pub mod context;
pub mod crypto;
pub mod digest;
pub mod drill;
pub mod dump_scan;
pub mod error;
pub mod hooks;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod mounts;
pub mod names;
pub mod notify;
pub mod parallel_gzip;
pub mod postgres;
pub mod progress;
pub mod prune;
pub mod redact;
pub mod remote;
pub mod restore;
pub mod retention;
pub mod runlog;
pub mod sandbox;
pub mod sandbox_exec;
pub mod signing;
pub mod sums;
pub mod systemd;
pub mod units;
pub mod verify;
pub mod warning;
pub mod workspace_swap;

pub mod fsutil;
pub(crate) mod psql_watch;
#[cfg(test)]
mod test_corpus;

pub use coffer::Coffer;
pub use commands::backup::{BackupOptions, BackupOutcome, BundleBackupOutcome};
pub use commands::drill::DrillOptions;
pub use commands::export::BundleOutput;
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
pub use error::{Error, ErrorKind};
pub use progress::{Event, Progress};
pub use warning::Warning;

/// The version of coffer that wrote a backup, recorded in its manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
