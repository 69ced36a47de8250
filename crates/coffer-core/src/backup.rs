//! The backup pipeline: `pg_dump` and the workspace tar, concurrently, each streamed in one
//! pass through hash → gzip → (age) → hash → file, into a hidden staging directory that is
//! renamed into place only once everything is written and fsynced.
//!
//! A failure at any point (pg_dump exiting non-zero or killed, disk full, an unreadable file,
//! a signal) removes the staging directory: a directory named like a backup is always a
//! complete one.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use crate::archive::{self, ArchiveOptions, ArchiveStats};
use crate::cancel::CancelFlag;
use crate::config::Config;
use crate::crypto::{CryptoError, Recipients};
use crate::digest::HashingWriter;
use crate::dump_scan::{DumpFacts, ScanningWriter};
use crate::fsutil;
use crate::lock::{LockError, RootLock};
use crate::manifest::{
    self, AlembicHead, Artifact, ArtifactRole, Compression, DatabaseFacts, Encryption, Manifest,
    WorkspaceFacts,
};
use crate::names::{self, BackupKind};
use crate::parallel_gzip::ParallelGzipWriter;
use crate::postgres::{ClientVersion, Database, PgError, ServerInfo};
use crate::progress::Progress;

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
    /// The backup root and the workspace overlap (see [`crate::boundaries`]).
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
    Signing(#[from] crate::signing::SigningError),
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
    pub signing_key: Option<crate::signing::SigningKey>,
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
                .map(crate::signing::SigningKey::load)
                .transpose()?,
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
    crate::boundaries::check_config_paths(&settings.root, settings.workspace.as_deref(), None, &[])
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

#[allow(clippy::too_many_arguments)]
fn write_backup(
    settings: &BackupSettings,
    request: &BackupRequest,
    name: &str,
    created_at: DateTime<Utc>,
    staging: &Path,
    server: &ServerInfo,
    pg_dump: &ClientVersion,
    progress: &dyn Progress,
    cancel: &CancelFlag,
) -> Result<Manifest, BackupError> {
    let encryption = settings.recipients.as_ref().map(|_| Encryption::Age);
    let dump_pid = AtomicU32::new(0);
    // Set by whichever artifact fails first, so the other stops instead of running on.
    let abort = AtomicBool::new(false);
    let taps = Taps {
        progress,
        cancel,
        abort: &abort,
    };
    let stop_other_on_error = |failed: bool| {
        if failed {
            abort.store(true, Ordering::SeqCst);
        }
    };

    let (db, ws) = std::thread::scope(|scope| {
        let db = scope.spawn(|| {
            let r = dump_database(settings, staging, encryption, &dump_pid, &taps);
            stop_other_on_error(r.is_err());
            r
        });
        let ws = settings.workspace.as_ref().map(|root| {
            scope.spawn(|| {
                let r = archive_workspace(settings, root, staging, encryption, &taps);
                stop_other_on_error(r.is_err());
                r
            })
        });
        // pg_dump can block for a long time (waiting for a lock) without writing anything;
        // a signal must still stop it, so watch the flag here and kill it.
        while !db.is_finished() || ws.as_ref().is_some_and(|w| !w.is_finished()) {
            if cancel.signal().is_some() || abort.load(Ordering::SeqCst) {
                let pid = dump_pid.load(Ordering::SeqCst);
                if pid != 0 {
                    crate::postgres::kill_group(pid);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let db = db.join().expect("database thread panicked");
        let ws = ws.map(|w| w.join().expect("workspace thread panicked"));
        (db, ws)
    });
    if let Some(signal) = cancel.signal() {
        return Err(BackupError::Interrupted { signal });
    }
    // Report the error that caused the failure, not the other artifact's `Aborted`; when
    // both failed on their own, the database's (it carries pg_dump's stderr).
    let (db, ws) = match (db, ws.transpose()) {
        (Err(BackupError::Aborted), Err(e)) | (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
        (Ok(db), Ok(ws)) => (db, ws),
    };
    let (db_artifact, facts) = db;
    let (ws_artifact, stats) = match ws {
        Some((a, s)) => (Some(a), Some(s)),
        None => (None, None),
    };

    let completed_at = Utc::now();
    let mut artifacts = vec![db_artifact];
    artifacts.extend(ws_artifact);
    let workspace_path = settings.workspace.as_ref().map(|p| p.display().to_string());
    let manifest = Manifest {
        format: manifest::FORMAT,
        name: name.to_string(),
        kind: request.kind,
        label: request.label.clone(),
        created_at,
        completed_at,
        coffer_version: crate::VERSION.to_string(),
        hostname: hostname(),
        timestamp: created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        alembic_head: AlembicHead::from_heads(facts.alembic_heads.clone()),
        db_size: server.size_bytes,
        workspace_path: workspace_path.clone(),
        database: DatabaseFacts {
            name: server.database.clone(),
            server_version: server.version.clone(),
            pg_dump_version: pg_dump.short(),
            size_bytes: server.size_bytes,
            tables: facts.tables.clone(),
            owners: facts.owners.iter().cloned().collect(),
        },
        workspace: stats.map(|s| WorkspaceFacts {
            path: workspace_path.unwrap_or_default(),
            files: s.files,
            directories: s.directories,
            symlinks: s.symlinks,
            hardlinks: s.hardlinks,
            file_bytes: s.file_bytes,
            skipped: s
                .skipped
                .iter()
                .map(|e| format!("{} ({})", e.path, e.reason))
                .collect(),
            changed: s
                .changed
                .iter()
                .map(|e| format!("{} ({})", e.path, e.change))
                .collect(),
        }),
        artifacts,
    };
    for (file, text) in [
        (manifest::SUMS_FILE, manifest.sha256sums()),
        (manifest::MANIFEST_FILE, manifest.to_json()),
    ] {
        let path = staging.join(file);
        write_small_file(&path, text.as_bytes())?;
        // Signed from the bytes just written, before the rename publishes the backup: a
        // backup never looks complete without its signatures.
        if let Some(key) = &settings.signing_key {
            let signature = key.sign(name, file, text.as_bytes())?;
            let sig_path = staging.join(crate::signing::signature_name(file));
            write_small_file(&sig_path, signature.as_bytes())?;
        }
    }
    fsutil::sync_dir(staging).map_err(|e| BackupError::io("sync", staging, e))?;
    Ok(manifest)
}

fn write_small_file(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut f = fsutil::create_private(path).map_err(|e| BackupError::io("create", path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| BackupError::io("write", path, e))
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The writer chain of one artifact, outermost (first to receive bytes) first:
/// progress/cancel tap → hash of the plain stream → gzip → age (optional) → hash of the
/// stored bytes → buffered file.
type FileSink = HashingWriter<BufWriter<File>>;

/// What every artifact stream reports to and is stopped by.
struct Taps<'a> {
    progress: &'a dyn Progress,
    cancel: &'a CancelFlag,
    abort: &'a AtomicBool,
}

impl Taps<'_> {
    /// The error for a stream that was stopped, if it was: a signal, or the other artifact.
    fn stopped(&self) -> Option<BackupError> {
        match self.cancel.signal() {
            Some(signal) => Some(BackupError::Interrupted { signal }),
            None => self
                .abort
                .load(Ordering::SeqCst)
                .then_some(BackupError::Aborted),
        }
    }
}

struct ArtifactWriter<'a> {
    inner: HashingWriter<Compressor<MaybeEncrypted<FileSink>>>,
    compression: Compression,
    role: ArtifactRole,
    taps: &'a Taps<'a>,
    path: PathBuf,
    encryption: Option<Encryption>,
    file: String,
}

impl<'a> ArtifactWriter<'a> {
    fn create(
        settings: &BackupSettings,
        staging: &Path,
        role: ArtifactRole,
        encryption: Option<Encryption>,
        taps: &'a Taps<'a>,
    ) -> Result<Self, BackupError> {
        let file = manifest::artifact_file_name(role, settings.compression, encryption);
        let path = staging.join(&file);
        let f = fsutil::create_private(&path).map_err(|e| BackupError::io("create", &path, e))?;
        let sink = HashingWriter::new(BufWriter::with_capacity(IO_BUFFER, f));
        let enc = match &settings.recipients {
            Some(r) => MaybeEncrypted::Age(
                r.encrypt(sink)
                    .map_err(|e| BackupError::io("start encrypting", &path, e))?,
            ),
            None => MaybeEncrypted::Plain(sink),
        };
        let compressor = Compressor::new(settings.compression, settings.level, enc)
            .map_err(|e| BackupError::io("start compressing", &path, e))?;
        taps.progress.start(role, &file);
        Ok(ArtifactWriter {
            inner: HashingWriter::new(compressor),
            compression: settings.compression,
            role,
            taps,
            path,
            encryption,
            file,
        })
    }

    /// Flushes every stage, fsyncs the file and returns the artifact record.
    fn finish(self) -> Result<Artifact, BackupError> {
        let path = self.path;
        let io = |e| BackupError::io("write", &path, e);
        let (compressor, plain) = self.inner.finish();
        let enc = compressor.finish().map_err(io)?;
        let sink = enc.finish().map_err(io)?;
        let (buffered, stored) = sink.finish();
        let file = buffered.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok(Artifact {
            role: self.role,
            file: self.file,
            size: stored.size,
            sha256: stored.sha256,
            uncompressed_size: plain.size,
            uncompressed_sha256: plain.sha256,
            compression: self.compression,
            encryption: self.encryption,
        })
    }
}

/// Input per libzstd worker job (its minimum is 512 KiB).
const ZSTD_JOB_SIZE: u32 = 1 << 20;

/// The compression stage: gzip (one member, what `gunzip` reads, compressed block-parallel
/// on every core) or zstd (multi-threaded frames, what `zstd -d` reads).
enum Compressor<W: Write> {
    Gzip(ParallelGzipWriter<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    fn new(compression: Compression, level: u32, inner: W) -> io::Result<Self> {
        Ok(match compression {
            Compression::Gzip => Compressor::Gzip(ParallelGzipWriter::new(inner, level)),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(inner, level as i32)?;
                // zstd's own worker threads keep a core busy per artifact even when the
                // other artifact has finished.
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
                e.multithread(workers)?;
                // libzstd's default job is 4 windows (8 MiB at level 3), buffered several
                // times per worker and per artifact: 170 MiB resident. 1 MiB jobs keep both
                // cores as busy at a fraction of the memory.
                e.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                e.include_checksum(true)?;
                Compressor::Zstd(e)
            }
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
        }
    }
}

impl Write for ArtifactWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.taps.stopped().is_some() {
            return Err(crate::cancel::cancelled_error());
        }
        let n = self.inner.write(buf)?;
        self.taps.progress.advance(self.role, n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Either the age stream or the plain sink, so one chain type serves both.
enum MaybeEncrypted<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> MaybeEncrypted<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            MaybeEncrypted::Plain(w) => Ok(w),
            MaybeEncrypted::Age(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for MaybeEncrypted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MaybeEncrypted::Plain(w) => w.write(buf),
            MaybeEncrypted::Age(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            MaybeEncrypted::Plain(w) => w.write_all(buf),
            MaybeEncrypted::Age(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeEncrypted::Plain(w) => w.flush(),
            MaybeEncrypted::Age(w) => w.flush(),
        }
    }
}

fn dump_database(
    settings: &BackupSettings,
    staging: &Path,
    encryption: Option<Encryption>,
    dump_pid: &AtomicU32,
    taps: &Taps<'_>,
) -> Result<(Artifact, DumpFacts), BackupError> {
    let writer =
        ArtifactWriter::create(settings, staging, ArtifactRole::Database, encryption, taps)?;
    let path = writer.path.clone();
    let mut dump = settings.database.spawn_pg_dump()?;
    dump_pid.store(dump.child.id(), Ordering::SeqCst);
    let mut stdout = dump.child.stdout.take().expect("stdout is piped");
    let mut scanning = ScanningWriter::new(writer);
    let copied = copy_stream(&mut stdout, &mut scanning);
    drop(stdout);
    if let Err(e) = copied {
        // Our side failed (disk full, signal): stop pg_dump rather than let it block on a
        // full pipe, and report our error, which is the cause.
        dump.kill();
        dump_pid.store(0, Ordering::SeqCst);
        return Err(taps
            .stopped()
            .unwrap_or_else(|| BackupError::io("write", &path, e)));
    }
    if let Some(stopped) = taps.stopped() {
        dump.kill();
        dump_pid.store(0, Ordering::SeqCst);
        return Err(stopped);
    }
    let waited = dump.wait(
        "check the database settings and that the server is running; the partial backup was removed",
    );
    dump_pid.store(0, Ordering::SeqCst);
    waited?;
    let (writer, facts) = scanning.finish();
    if let Some(problem) = &facts.problem {
        return Err(BackupError::DumpRefused(problem.clone()));
    }
    if !facts.complete {
        return Err(BackupError::DumpTruncated);
    }
    let artifact = writer.finish()?;
    taps.progress.finish(
        ArtifactRole::Database,
        &format!(
            "{} tables, {} bytes stored",
            facts.tables.len(),
            artifact.size
        ),
    );
    Ok((artifact, facts))
}

fn copy_stream(input: &mut impl Read, output: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; IO_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        output.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// The identities (device, inode) of the backup root and of every directory in it (the
/// backups and staging directories, this run's included): the workspace walk must reach
/// none of them, whatever path (bind mount, alias) leads there.
fn backup_dir_ids(root: &Path) -> io::Result<Vec<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(root)?;
    let mut ids = vec![(meta.dev(), meta.ino())];
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        if let Ok(m) = fs::symlink_metadata(entry.path())
            && m.is_dir()
        {
            ids.push((m.dev(), m.ino()));
        }
    }
    Ok(ids)
}

fn archive_workspace(
    settings: &BackupSettings,
    root: &Path,
    staging: &Path,
    encryption: Option<Encryption>,
    taps: &Taps<'_>,
) -> Result<(Artifact, ArchiveStats), BackupError> {
    let writer =
        ArtifactWriter::create(settings, staging, ArtifactRole::Workspace, encryption, taps)?;
    let options = ArchiveOptions {
        exclude: settings.exclude.clone(),
        forbidden_dirs: backup_dir_ids(&settings.root)
            .map_err(|e| BackupError::io("list the backup root", &settings.root, e))?,
    };
    let (writer, stats) = archive::write_workspace_tar(root, &options, writer)
        .map_err(|e| taps.stopped().unwrap_or(BackupError::Archive(e)))?;
    let artifact = writer.finish()?;
    taps.progress.finish(
        ArtifactRole::Workspace,
        &format!("{} files, {} bytes stored", stats.files, artifact.size),
    );
    Ok((artifact, stats))
}
