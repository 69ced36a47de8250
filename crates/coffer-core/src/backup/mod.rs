//! The backup pipeline: `pg_dump` and the workspace tar, concurrently, each streamed in one
//! pass through hash → gzip → (age) → hash → file, into a hidden staging directory that is
//! renamed into place only once everything is written and fsynced.
//!
//! A failure at any point (pg_dump exiting non-zero or killed, disk full, an unreadable file,
//! a signal) removes the staging directory: a directory named like a backup is always a
//! complete one.
//!
//! Modules: `write` fills the staging directory (both artifacts at once, then the manifest);
//! `artifact_writer` is one artifact's writer chain; `sources` streams pg_dump and the
//! workspace into those writers.

mod artifact_writer;
mod sources;
mod write;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use write::write_backup;

use crate::cancel::CancelFlag;
use crate::config::Config;
use crate::format::manifest::{Compression, Manifest};
use crate::format::names::{self, BackupKind};
use crate::postgres::{ClientVersion, Database, PgError, ServerInfo};
use crate::progress::Progress;
use crate::root::lock::{LockError, RootLock};
use crate::stream::archive;
use crate::stream::crypto::{CryptoError, Recipients};
use crate::util::fsutil;

/// Buffer size for reading pg_dump's output and writing artifact files: large enough that
/// per-call overhead vanishes, small enough to keep memory flat.
const IO_BUFFER: usize = 1 << 20;

/// Why a backup failed. Whatever the variant, no complete-looking backup was left behind.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The workspace directory is missing or not a directory.
    #[error(
        "workspace {path} is not a readable directory ({reason}): check workspace.path / WORKSPACE_HOST_PATH"
    )]
    Workspace {
        /// The configured workspace.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Recipients could not be loaded.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The backup root and the workspace overlap (see [`crate::workspace::boundaries`]).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The database could not be reached or dumped.
    #[error(transparent)]
    Postgres(#[from] PgError),
    /// pg_dump is older than the server.
    #[error(
        "pg_dump {pg_dump} is older than the server ({server}) and cannot dump it correctly: install the PostgreSQL {major} client (Debian: apt-get install postgresql-client-{major})"
    )]
    PgDumpTooOld {
        /// pg_dump's version.
        pg_dump: String,
        /// The server's version.
        server: String,
        /// The server's major version.
        major: u32,
    },
    /// The dump ended without pg_dump's completion trailer.
    #[error(
        "pg_dump exited successfully but its output ended early (no \"dump complete\" trailer): the dump is not trustworthy; check the server log"
    )]
    DumpTruncated,
    /// pg_dump's output holds what `restore` would refuse to give psql (a psql
    /// meta-command, a COPY other than `FROM stdin`, …): the backup could never be restored.
    #[error(
        "pg_dump's output could never be restored: {0}; the partial backup was removed (report this with the pg_dump version)"
    )]
    DumpRefused(String),
    /// `pg_dumpall --roles-only` wrote something a restore would refuse to read
    /// (`database.include_roles`).
    #[error(
        "the cluster's roles (database.include_roles) could never be restored: {0}; the partial backup was removed (set database.include_roles = false to back up without them)"
    )]
    RolesRefused(String),
    /// Another coffer run holds the backup root.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The workspace could not be archived.
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    /// A filesystem operation failed.
    #[error("cannot {op} {path}: {source}{hint}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
        /// What to do, derived from the error (e.g. free space).
        hint: String,
    },
    /// This artifact stopped because the other one failed; never the error reported.
    #[error("stopped because the other artifact failed")]
    Aborted,
    /// The signing key cannot be used, or signing failed.
    #[error(transparent)]
    Signing(#[from] crate::format::signing::SigningError),
    /// A signal asked the backup to stop.
    #[error("backup interrupted by signal {signal}; the partial backup was removed")]
    Interrupted {
        /// The signal number.
        signal: usize,
    },
}

impl BackupError {
    fn io(op: &'static str, path: &Path, source: io::Error) -> BackupError {
        let hint = match source.raw_os_error() {
            Some(28) => {
                ": free space in the backup root (or prune old backups) and run again".into()
            }
            Some(13) => ": check the permissions of the backup root".into(),
            _ => String::new(),
        };
        BackupError::Io {
            op,
            path: path.to_path_buf(),
            source,
            hint,
        }
    }
}

/// Everything a backup needs, resolved from the configuration.
pub struct BackupSettings {
    /// The backup root.
    pub root: PathBuf,
    /// How to run pg_dump.
    pub database: Database,
    /// The workspace to archive; `None` backs up only the database.
    pub workspace: Option<PathBuf>,
    /// Glob patterns excluded from the workspace.
    pub exclude: Vec<String>,
    /// Recipients when encryption is configured.
    pub recipients: Option<Recipients>,
    /// gzip (default) or zstd.
    pub compression: Compression,
    /// Compression level for that algorithm.
    pub level: u32,
    /// The key `manifest.json` and `SHA256SUMS` are signed with (`signing.secret_key_file`).
    pub signing_key: Option<crate::format::signing::SigningKey>,
    /// Also store the cluster's roles (`database.include_roles`).
    pub include_roles: bool,
}

impl BackupSettings {
    /// Resolves settings from a configuration. Loads and validates the recipients and the
    /// signing key now, so a bad key stops the backup before it starts.
    pub fn from_config(config: &Config) -> Result<BackupSettings, BackupError> {
        let recipients = if config.encryption.enabled() {
            Some(Recipients::load(
                &config.encryption.recipients,
                config.encryption.recipients_file.as_deref(),
            )?)
        } else {
            None
        };
        Ok(BackupSettings {
            root: config.backup_dir(),
            database: Database::from_config(&config.database)?,
            workspace: config.workspace.path.clone(),
            exclude: config.workspace.exclude.clone(),
            recipients,
            compression: config.compression.algorithm,
            level: config.compression.effective_level(),
            signing_key: config
                .signing
                .secret_key_file
                .as_deref()
                .map(crate::format::signing::SigningKey::load)
                .transpose()?,
            include_roles: config.database.include_roles,
        })
    }
}

/// What the caller asks for.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Auto (timer) or manual.
    pub kind: BackupKind,
    /// Free text stored in the manifest.
    pub label: Option<String>,
}

/// A finished backup.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BackupReport {
    /// Where it is.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Wall time.
    pub duration_seconds: f64,
}

impl BackupReport {
    /// Files that changed or vanished while archived (the archive is still well-formed).
    pub fn changed_files(&self) -> &[String] {
        self.manifest
            .workspace
            .as_ref()
            .map(|w| w.changed.as_slice())
            .unwrap_or(&[])
    }
}

/// Runs a backup. `cancel` is checked between chunks; `progress` receives byte counts.
pub fn run(
    settings: &BackupSettings,
    request: &BackupRequest,
    progress: &dyn Progress,
    cancel: &CancelFlag,
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    // Pre-flight: everything that can be checked before a byte is written.
    check_boundaries(settings)?;
    if let Some(ws) = &settings.workspace {
        match fs::metadata(ws) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(BackupError::Workspace {
                    path: ws.clone(),
                    reason: "not a directory".into(),
                });
            }
            Err(e) => {
                return Err(BackupError::Workspace {
                    path: ws.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    progress.step("checking the database connection and pg_dump version");
    let server = settings.database.server_info()?;
    let pg_dump = settings.database.client_version("pg_dump")?;
    check_pg_dump_version(&pg_dump, &server)?;

    fsutil::create_private_dir_all(&settings.root)
        .map_err(|e| BackupError::io("create backup root", &settings.root, e))?;
    let _lock = RootLock::acquire(&settings.root, "backup")?;

    let (name, created_at) = free_name(&settings.root, request.kind);
    let staging = settings
        .root
        .join(format!("{}{name}", names::STAGING_PREFIX));
    fsutil::create_staging_dir(&staging)
        .map_err(|e| BackupError::io("create staging directory", &staging, e))?;

    progress.step(if settings.workspace.is_some() {
        "dumping the database and archiving the workspace"
    } else {
        "dumping the database"
    });
    let result = write_backup(
        settings, request, &name, created_at, &staging, &server, &pg_dump, progress, cancel,
    );
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let final_path = settings.root.join(&name);
    progress.step("renaming the backup into place");
    let publish = fsutil::publish_staging(&staging, &final_path)
        .and_then(|()| fsutil::sync_dir(&settings.root));
    if let Err(e) = publish {
        let _ = fs::remove_dir_all(&staging);
        return Err(BackupError::io(
            "rename staging directory to",
            &final_path,
            e,
        ));
    }
    Ok(BackupReport {
        path: final_path,
        manifest,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

/// The backup root must neither be inside the workspace (it would archive itself, staging
/// directory included) nor contain it. The CLI checks the whole configuration earlier;
/// this guards every caller of [`run`].
fn check_boundaries(settings: &BackupSettings) -> Result<(), BackupError> {
    use crate::config::ConfigError;
    if settings
        .root
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .all(u8::is_ascii_whitespace)
    {
        return Err(ConfigError::Refused(
            "backup_dir is empty: set it to the absolute path of the backup root".into(),
        )
        .into());
    }
    crate::workspace::boundaries::check_config_paths(
        &settings.root,
        settings.workspace.as_deref(),
        None,
        &[],
    )
    .map_err(|e| ConfigError::Refused(e).into())
}

/// Refuses a pg_dump older than the server's major version: it would fail or dump wrongly.
pub fn check_pg_dump_version(
    pg_dump: &ClientVersion,
    server: &ServerInfo,
) -> Result<(), BackupError> {
    if pg_dump.major < server.major() {
        return Err(BackupError::PgDumpTooOld {
            pg_dump: pg_dump.short(),
            server: server.version.clone(),
            major: server.major(),
        });
    }
    Ok(())
}

/// A name not yet taken in `root`: names have one-second resolution, so a second backup in
/// the same second waits for the next one.
fn free_name(root: &Path, kind: BackupKind) -> (String, DateTime<Utc>) {
    loop {
        let now = Utc::now().trunc_subsecs(0);
        let name = names::format_name(kind, now);
        let staging = root.join(format!("{}{name}", names::STAGING_PREFIX));
        if !root.join(&name).exists() && !staging.exists() {
            return (name, now);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
