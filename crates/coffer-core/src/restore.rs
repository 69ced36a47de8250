//! Restoring a backup, all or nothing.
//!
//! [`prepare`] runs the pre-flight checks and changes nothing: the backup is usable, the
//! identity opens encrypted artifacts, the database is reachable, the roles the dump assigns
//! ownership to exist, the Alembic head fits the code, the workspace's filesystem has room
//! for a second copy. [`execute`] then:
//!
//! 1. runs `hooks.before_restore` (stop the application) and checks that no other session
//!    is connected to the target database;
//! 2. proves each coffer artifact's size and SHA-256 against the manifest before a byte of
//!    it is decoded ([`ArtifactReader::open_proven`]; legacy artifacts have no record),
//!    then streams, concurrently, the database artifact into `psql` inside one transaction
//!    (`-X`, `ON_ERROR_STOP`, psql's restricted mode with a random `\restrict` key, `BEGIN`
//!    … no `COMMIT` yet), through the [`crate::dump_scan`] gate (no psql meta-command and
//!    no transaction control ever reaches psql; the dump's own `\restrict` lines and
//!    pg_dump's large-object `BEGIN;`/`COMMIT;` are dropped), and the workspace artifact
//!    into a staging directory beside the workspace;
//! 3. only when both streams ended with their hashes matching the manifest, the dump
//!    complete at the top level and its head and tables equal to the manifest's, swaps the
//!    workspace in by rename and sends `COMMIT`;
//!    a failed commit swaps the previous workspace back;
//! 4. runs `hooks.after_restore` whatever happened, so the application comes back, and
//!    reads the live `alembic_version` to compare it with the backup's head.
//!
//! Any failure before the commit (SQL error, corrupt, truncated or untrustworthy input,
//! hash or metadata mismatch, SIGINT/SIGTERM) leaves the database as it was (the
//! transaction is never committed; psql is stopped, or if coffer is killed, sees
//! end-of-input, and the server rolls back) and the workspace as
//! it was (the staging directory is removed; after SIGKILL, the next restore's
//! [`workspace_swap::recover`] puts the previous tree back).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ChildStdin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::alembic::{self, HeadRelation, RevisionGraph};
use crate::archive::{self, ExtractStats};
use crate::artifact::{ArtifactError, ArtifactReader};
use crate::cancel::CancelFlag;
use crate::catalog::{self, BackupEntry, EntryStatus};
use crate::config::{AlembicConfig, Config, HooksConfig};
use crate::crypto::Identities;
use crate::dump_scan::{DumpFacts, DumpScanner};
use crate::hooks::{self, HookError, Stage};
use crate::manifest::{AnyManifest, Artifact, ArtifactRole};
use crate::postgres::{Database, PgError, RunningProgram, Session};
use crate::progress::Progress;
use crate::psql_watch;
use crate::sandbox_exec::Confinement;
use crate::signing::{SignaturePolicy, Verdict};
use crate::units;
use crate::workspace_swap::{self, Swap};

/// Chunk size for streaming the dump into psql.
const CHUNK: usize = 1 << 20;

/// Why a restore did not happen or did not finish. Every variant except
/// [`RestoreError::Inconsistent`] and [`RestoreError::AfterRestore`] means the database and
/// the workspace are as they were before.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Pre-flight checks failed: nothing was changed.
    #[error("restore refused, nothing was changed: {}{}", first(.problems), rest(.problems))]
    Refused {
        /// Each problem, with what to do about it.
        problems: Vec<String>,
    },
    /// The backup is damaged (found before or during the restore): nothing was changed.
    #[error(
        "backup {backup} failed verification during the restore, nothing was changed: {reason}; restore another backup (`coffer list`, `coffer verify --all`)"
    )]
    Damaged {
        /// The backup.
        backup: String,
        /// What was wrong.
        reason: String,
    },
    /// A `hooks.before_restore` command failed: nothing was restored.
    #[error("{0}; nothing was restored (hooks.after_restore ran)")]
    BeforeHook(HookError),
    /// The database or workspace step failed and was rolled back.
    #[error(
        "restore failed and was rolled back, the database and workspace are unchanged: {what}: {reason}"
    )]
    RolledBack {
        /// Which step, e.g. `database`.
        what: String,
        /// The cause, with what to check.
        reason: String,
    },
    /// Interrupted by a signal before the commit: rolled back.
    #[error(
        "restore interrupted by signal {signal} and rolled back; the database and workspace are unchanged"
    )]
    Interrupted {
        /// The signal number.
        signal: usize,
    },
    /// The previous state could not be fully put back: the operator must act.
    #[error("restore failed AND the previous state could not be fully put back: {0}")]
    Inconsistent(String),
    /// The restore was committed, but a check or hook afterwards failed.
    #[error("restore completed, but: {}{}", first(.problems), rest(.problems))]
    AfterRestore {
        /// What failed afterwards.
        problems: Vec<String>,
        /// What was restored.
        report: Box<RestoreReport>,
    },
}

fn first(problems: &[String]) -> &str {
    problems.first().map_or("", String::as_str)
}

fn rest(problems: &[String]) -> String {
    problems.iter().skip(1).map(|p| format!("\n{p}")).collect()
}

/// What to restore and where.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restore the database (false: `--workspace-only`).
    pub database: bool,
    /// Restore the workspace (false: `--db-only`).
    pub workspace: bool,
    /// Restore into this database instead of the configured one.
    pub target_db: Option<String>,
    /// Create the target database when it does not exist.
    pub create_target_db: bool,
    /// Restore the workspace here instead of the configured path.
    pub target_dir: Option<PathBuf>,
    /// The code's head(s) from `--expect-head`, overriding the configured sources.
    pub expect_heads: Option<Vec<String>>,
    /// Compare the backup's head with the code's (off for the restore drill).
    pub check_code_head: bool,
    /// Restore even when the heads differ.
    pub allow_head_mismatch: bool,
    /// End other sessions connected to the target database instead of refusing.
    pub terminate_connections: bool,
    /// Keep the previous workspace (renamed) after a successful restore.
    pub keep_old: bool,
    /// Run `hooks.before_restore` / `hooks.after_restore`.
    pub run_hooks: bool,
}

/// Where the database and the workspace are, from the configuration.
#[derive(Debug, Clone)]
pub struct RestoreSettings {
    /// How to run psql.
    pub database: Database,
    /// The workspace directory on the host, if configured.
    pub workspace: Option<PathBuf>,
    /// Restore hooks.
    pub hooks: HooksConfig,
    /// Where the code's expected head comes from.
    pub alembic: AlembicConfig,
    /// The backup root: a restore never replaces it, a directory containing it, or one
    /// inside it (see [`crate::boundaries`]).
    pub backup_root: PathBuf,
    /// The metrics file, equally never replaced.
    pub metrics_file: Option<PathBuf>,
    /// Which signatures a backup needs before it is restored.
    pub signatures: SignaturePolicy,
}

impl RestoreSettings {
    /// Takes what a restore needs from the configuration.
    pub fn from_config(config: &Config) -> Result<RestoreSettings, PgError> {
        Ok(RestoreSettings {
            database: Database::from_config(&config.database)?,
            workspace: config.workspace.path.clone(),
            hooks: config.hooks.clone(),
            alembic: config.alembic.clone(),
            backup_root: config.backup_dir(),
            metrics_file: config.metrics_file.clone(),
            // Keys that cannot be loaded refuse every backup rather than check none.
            signatures: SignaturePolicy::load_or_refuse_all(&config.signing),
        })
    }
}

/// One artifact to read.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// Whether it is age-encrypted.
    pub encrypted: bool,
    /// What the manifest says it is (`None` for legacy backups).
    pub expected: Option<Artifact>,
}

impl Source {
    /// Opens the artifact for applying: a coffer artifact is proven against its manifest
    /// record (size and SHA-256) before a byte of it is decoded, so nothing altered ever
    /// reaches psql or the extractor. A legacy artifact has no record to prove it by: it
    /// gets only the dump gate and the end-of-stream checks.
    fn open(&self, identities: Option<&Identities>) -> Result<ArtifactReader, ArtifactError> {
        match &self.expected {
            Some(expected) => ArtifactReader::open_proven(&self.path, expected, identities),
            None => ArtifactReader::open(&self.path, self.encrypted, identities),
        }
    }

    fn file_name(&self) -> String {
        self.path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }
}

/// The database side of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseTarget {
    /// The database that will be replaced.
    pub name: String,
    /// The server's version, or `None` when the database is still to be created.
    pub server_version: Option<String>,
    /// Whether the database does not exist yet and will be created.
    pub create: bool,
    #[serde(skip)]
    runner: Database,
    #[serde(skip)]
    source: Source,
    /// The backup's manifest: the dump's head and tables must match it before COMMIT.
    #[serde(skip)]
    manifest: Option<AnyManifest>,
}

/// The workspace side of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceTarget {
    /// The directory that will be replaced.
    pub path: PathBuf,
    /// Whether it exists now.
    pub exists: bool,
    #[serde(skip)]
    source: Source,
}

/// The Alembic comparison made before the restore.
#[derive(Debug, Clone, Serialize)]
pub struct HeadCheck {
    /// The backup's head(s) from its manifest (`None`: not recorded).
    pub backup: Option<Vec<String>>,
    /// The code's head(s), if a source was configured.
    pub expected: Option<Vec<String>>,
    /// Where `expected` came from.
    pub source: Option<String>,
    /// How they relate (`None` when not compared).
    pub relation: Option<HeadRelation>,
}

/// What pre-flight found: shown to the operator before confirming, then executed.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The backup's name.
    pub backup: String,
    /// Its directory.
    pub backup_path: PathBuf,
    /// When it was made.
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    /// The database to replace, if restoring it.
    pub database: Option<DatabaseTarget>,
    /// The workspace to replace, if restoring it.
    pub workspace: Option<WorkspaceTarget>,
    /// The Alembic comparison.
    pub head: HeadCheck,
    /// Other sessions connected to the target database now.
    pub sessions: Vec<Session>,
    /// Checks that passed, one line each.
    pub checks: Vec<String>,
    /// Things the operator should know that do not stop the restore.
    pub notes: Vec<String>,
}

/// What a completed restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The backup restored.
    pub backup: String,
    /// The database restored into, with the dump's table and row counts.
    pub database: Option<DatabaseRestored>,
    /// The workspace restored.
    pub workspace: Option<WorkspaceRestored>,
    /// The live Alembic head(s) read after the restore.
    pub alembic_head: Option<Vec<String>>,
    /// Whether `hooks.after_restore` ran and all succeeded (`None`: none configured).
    pub application_restarted: Option<bool>,
    /// Wall time in seconds.
    pub duration_seconds: f64,
}

/// The database side of a report.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseRestored {
    /// The database.
    pub name: String,
    /// Rows per table, as counted in the dump while it was applied.
    pub tables: std::collections::BTreeMap<String, u64>,
    /// Rows loaded.
    pub rows: u64,
    /// Bytes of SQL applied.
    pub sql_bytes: u64,
}

/// The workspace side of a report.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceRestored {
    /// The directory.
    pub path: PathBuf,
    /// What was extracted.
    pub stats: ExtractStats,
    /// Where the previous workspace was kept (`--keep-old`).
    pub previous_kept_at: Option<PathBuf>,
}

/// Something [`execute`] reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step completed (`database restored`, `application restarted`, …).
    Done(String),
    /// A note that does not stop the restore.
    Note(String),
}

/// The artifacts of a backup, whichever generation wrote it.
fn sources(entry: &BackupEntry) -> (Option<Source>, Option<Source>) {
    let find = |role: ArtifactRole| -> Option<Source> {
        match &entry.manifest {
            Some(AnyManifest::Coffer(m)) => m.artifact(role).map(|a| Source {
                path: entry.path.join(&a.file),
                encrypted: a.encryption.is_some(),
                expected: Some(a.clone()),
            }),
            _ => catalog::legacy_artifact(&entry.path, role).map(|path| Source {
                encrypted: path.extension().is_some_and(|e| e == "age"),
                path,
                expected: None,
            }),
        }
    };
    (find(ArtifactRole::Database), find(ArtifactRole::Workspace))
}

/// The workspace directory a restore with these options would replace, as configured (or
/// given with `--target-dir`).
pub fn workspace_target<'a>(
    settings: &'a RestoreSettings,
    options: &'a RestoreOptions,
) -> Option<&'a Path> {
    if !options.workspace {
        return None;
    }
    options
        .target_dir
        .as_deref()
        .or(settings.workspace.as_deref())
}

/// The directory actually swapped for `target`: its real path, so a workspace that is a
/// symlink (or lies below one) has the directory it points to replaced and the link kept.
fn swap_path(target: &Path) -> PathBuf {
    crate::boundaries::real_path(target).unwrap_or_else(|_| target.to_path_buf())
}

/// Undoes (or finishes) a workspace swap that a killed earlier restore left behind, so the
/// workspace is whole again before anything else is checked. Call it before [`prepare`]
/// to report what it did; `prepare` calls it too and reports it as a note.
pub fn recover_interrupted(
    settings: &RestoreSettings,
    options: &RestoreOptions,
) -> Result<Option<workspace_swap::Recovery>, RestoreError> {
    let Some(target) = workspace_target(settings, options) else {
        return Ok(None);
    };
    let target = swap_path(target);
    // Only a swap that had started renaming can leave the workspace half swapped; failing
    // to remove a staging leftover changes nothing.
    let half_swapped = workspace_swap::interrupted_phase(&target)
        .is_some_and(|p| p != workspace_swap::Phase::Staging);
    workspace_swap::recover(&target).map_err(|e| {
        if matches!(
            e,
            workspace_swap::SwapError::Untrusted { .. }
                | workspace_swap::SwapError::SharedParent { .. }
        ) {
            // Nothing was touched: what is there is not provably coffer's.
            RestoreError::Refused {
                problems: vec![e.to_string()],
            }
        } else if half_swapped {
            RestoreError::Inconsistent(format!(
                "{e}; an interrupted earlier restore left {} half swapped: resolve it by hand",
                target.display()
            ))
        } else if matches!(e, workspace_swap::SwapError::Target { .. }) {
            RestoreError::Refused {
                problems: vec![e.to_string()],
            }
        } else {
            RestoreError::Refused {
                problems: vec![format!(
                    "{e}; an interrupted earlier restore left files beside {}: remove them, or make the directory writable",
                    target.display()
                )],
            }
        }
    })
}

/// Runs the pre-flight checks; changes nothing except finishing or undoing a swap that a
/// killed earlier restore left half done (reported as a note).
pub fn prepare(
    settings: &RestoreSettings,
    entry: &BackupEntry,
    options: &RestoreOptions,
    identities: Option<&Identities>,
) -> Result<Plan, RestoreError> {
    let mut problems = Vec::new();
    let mut damaged = Vec::new();
    let mut plan = Plan {
        backup: entry.name.clone(),
        backup_path: entry.path.clone(),
        created: entry.created,
        database: None,
        workspace: None,
        head: HeadCheck {
            backup: entry
                .manifest
                .as_ref()
                .and_then(|m| m.alembic_head())
                .map(|h| h.heads()),
            expected: None,
            source: None,
            relation: None,
        },
        sessions: Vec::new(),
        checks: Vec::new(),
        notes: Vec::new(),
    };

    match &entry.status {
        EntryStatus::Complete => plan.checks.push(format!("backup {} is complete", entry.name)),
        EntryStatus::Legacy => plan.checks.push(format!(
            "backup {} is a legacy shell-script backup (no hashes: gzip and dump integrity are checked while restoring)",
            entry.name
        )),
        EntryStatus::Incomplete(r) | EntryStatus::Unreadable(r) => {
            return Err(RestoreError::Damaged {
                backup: entry.name.clone(),
                reason: r.clone(),
            });
        }
    }
    // Authenticity before anything else is read or run.
    let judgement = settings
        .signatures
        .judge(&entry.path, &entry.name, entry.manifest.as_ref());
    match judgement.verdict {
        Verdict::Verified => plan.checks.push(format!("signature: {}", judgement.detail)),
        // Said only when signatures are required: then an unsigned backup passing is news.
        Verdict::NotChecked if settings.signatures.enforced() => {
            plan.notes.push(format!("signature: {}", judgement.detail))
        }
        Verdict::NotChecked => {}
        Verdict::Refused => {
            return Err(RestoreError::Damaged {
                backup: entry.name.clone(),
                reason: judgement.detail,
            });
        }
    }
    let (db_source, ws_source) = sources(entry);

    // Artifacts: present, of the recorded size, and openable with the identity.
    for source in db_source.iter().chain(ws_source.iter()) {
        if let Some(a) = &source.expected {
            let len = std::fs::metadata(&source.path)
                .map(|m| m.len())
                .unwrap_or(0);
            if len != a.size {
                damaged.push(format!(
                    "{} is {len} bytes, the manifest says {}",
                    a.file, a.size
                ));
                continue;
            }
        }
        if source.encrypted {
            // Only the identity is checked here: the content is proven when it is applied.
            match ArtifactReader::open(&source.path, source.encrypted, identities) {
                Ok(_) => plan.checks.push(format!(
                    "identity {} opens {}",
                    identities.map_or_else(String::new, |i| i.path().display().to_string()),
                    source.file_name()
                )),
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    if !damaged.is_empty() {
        return Err(RestoreError::Damaged {
            backup: entry.name.clone(),
            reason: damaged.join("; "),
        });
    }

    if options.database {
        match db_source {
            Some(source) => {
                plan.database = check_database(
                    settings,
                    entry,
                    options,
                    source,
                    &mut plan.checks,
                    &mut plan.notes,
                    &mut plan.sessions,
                    &mut problems,
                );
            }
            None => problems.push(format!(
                "backup {} has no database artifact; use --workspace-only",
                entry.name
            )),
        }
    }
    if options.workspace {
        match (ws_source, workspace_target(settings, options)) {
            (None, _) if !options.database => problems.push(format!(
                "backup {} has no workspace artifact",
                entry.name
            )),
            (None, _) => plan
                .notes
                .push("the backup has no workspace archive: only the database is restored".into()),
            (Some(_), None) => problems.push(
                "no workspace path: set workspace.path (or WORKSPACE_HOST_PATH), pass --target-dir, or use --db-only"
                    .into(),
            ),
            (Some(source), Some(target)) => {
                plan.workspace = check_workspace(settings, entry, source, target, &mut plan.checks, &mut plan.notes, &mut problems);
            }
        }
    }
    if options.check_code_head {
        check_head(settings, options, &mut plan, &mut problems);
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(RestoreError::Refused { problems })
    }
}

#[allow(clippy::too_many_arguments)]
fn check_database(
    settings: &RestoreSettings,
    entry: &BackupEntry,
    options: &RestoreOptions,
    source: Source,
    checks: &mut Vec<String>,
    notes: &mut Vec<String>,
    sessions: &mut Vec<Session>,
    problems: &mut Vec<String>,
) -> Option<DatabaseTarget> {
    let runner = match &options.target_db {
        Some(name) => settings.database.with_dbname(name),
        None => settings.database.clone(),
    };
    let mut target = DatabaseTarget {
        name: options.target_db.clone().unwrap_or_default(),
        server_version: None,
        create: false,
        runner: runner.clone(),
        source,
        manifest: entry.manifest.clone(),
    };
    match runner.server_info() {
        Ok(info) => {
            checks.push(format!(
                "database {} reachable (PostgreSQL {}, {})",
                info.database,
                info.version,
                units::bytes(info.size_bytes)
            ));
            target.name = info.database;
            target.server_version = Some(info.version);
        }
        Err(e) => {
            // A missing --target-db is created, if allowed; anything else is a refusal.
            let maintenance = settings.database.with_dbname("postgres");
            let missing = options
                .target_db
                .as_deref()
                .is_some_and(|name| matches!(maintenance.database_exists(name), Ok(false)));
            if missing && options.create_target_db {
                checks.push(format!("database {} will be created", target.name));
                target.create = true;
            } else {
                problems.push(format!(
                    "cannot reach the target database: {}",
                    e.to_string().trim_end()
                ));
                return None;
            }
        }
    }
    let owners = match &entry.manifest {
        Some(AnyManifest::Coffer(m)) => Some(m.database.owners.clone()),
        _ => None,
    };
    let probe = if target.create {
        settings.database.with_dbname("postgres")
    } else {
        runner.clone()
    };
    match owners {
        Some(owners) => match probe.missing_roles(&owners) {
            Ok(missing) if missing.is_empty() => {
                if !owners.is_empty() {
                    checks.push(format!("roles exist: {}", owners.join(", ")));
                }
            }
            Ok(missing) => problems.push(format!(
                "roles named by the dump's OWNER TO do not exist: {}; create them first (CREATE ROLE name LOGIN)",
                missing.join(", ")
            )),
            Err(e) => problems.push(format!("cannot check roles: {e}")),
        },
        None => notes.push(
            "legacy backup: the roles it needs are not recorded; a missing one fails the restore, which is then rolled back"
                .into(),
        ),
    }
    if !target.create {
        match runner.other_sessions() {
            Ok(found) if found.is_empty() => checks.push("no other sessions connected".into()),
            Ok(found) => {
                let list = found
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                if options.terminate_connections {
                    notes.push(format!(
                        "{} other session(s) will be terminated: {list}",
                        found.len()
                    ));
                } else if options.run_hooks && !settings.hooks.before_restore.is_empty() {
                    notes.push(format!(
                        "{} other session(s) connected now; hooks.before_restore should end them: {list}",
                        found.len()
                    ));
                } else {
                    problems.push(format!(
                        "{} other session(s) connected to {}: {list}; stop the application (or configure hooks.before_restore) or pass --terminate-connections",
                        found.len(),
                        target.name
                    ));
                }
                *sessions = found;
            }
            Err(e) => problems.push(format!("cannot list sessions: {e}")),
        }
    }
    Some(target)
}

fn check_workspace(
    settings: &RestoreSettings,
    entry: &BackupEntry,
    source: Source,
    configured: &Path,
    checks: &mut Vec<String>,
    notes: &mut Vec<String>,
    problems: &mut Vec<String>,
) -> Option<WorkspaceTarget> {
    let real = swap_path(configured);
    if real != std::path::absolute(configured).unwrap_or_default() {
        notes.push(format!(
            "{} resolves to {}: that directory is replaced, symlinks on the way are kept",
            configured.display(),
            real.display()
        ));
    }
    let target = real.as_path();
    let conflicts = crate::boundaries::check_restore_target(
        configured,
        target,
        &settings.backup_root,
        (&entry.name, &entry.path),
        settings.metrics_file.as_deref(),
    );
    if !conflicts.is_empty() {
        problems.extend(conflicts);
        return None;
    }
    // coffer stages and swaps beside the target: another user able to write there could
    // substitute what is restored, or plant a journal.
    let parent_exists = target.parent().is_some_and(Path::is_dir);
    if parent_exists && let Err(e) = workspace_swap::check_parent(target) {
        problems.push(e.to_string());
        return None;
    }
    // The swap removes the previous tree: whatever is mounted below it would go with it.
    match crate::mounts::mounts_below_dir(target) {
        Ok(m) if m.is_empty() => {}
        Ok(m) => {
            problems.push(format!(
                "{} has {} mounted below it ({}): replacing it would delete the mounted data; unmount {}, or restore into another directory",
                target.display(),
                if m.len() == 1 { "a filesystem" } else { "filesystems" },
                m.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                if m.len() == 1 { "it" } else { "them" },
            ));
            return None;
        }
        Err(e) => {
            problems.push(format!(
                "{e}; coffer must know what is mounted below {} before replacing it",
                target.display()
            ));
            return None;
        }
    }
    // A swap a killed restore left behind is settled first, so what we check is real.
    match workspace_swap::recover(target) {
        Ok(Some(r)) => notes.push(r.to_string()),
        Ok(None) => {}
        Err(e) => {
            problems.push(format!("{e}; resolve it by hand before restoring"));
            return None;
        }
    }
    let exists = match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            problems.push(format!(
                "workspace {} exists and is not a directory",
                target.display()
            ));
            return None;
        }
        Err(_) => false,
    };
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        problems.push(format!(
            "the workspace's parent directory {} does not exist; create it first",
            parent.display()
        ));
        return None;
    }
    // The staging directory and journal are created beside the target: refuse now if the
    // parent does not allow that (read-only filesystem, permissions), not halfway through.
    if let Err(e) = rustix::fs::access(
        parent,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    ) {
        problems.push(format!(
            "cannot create the staging directory beside {} in {} ({}): make that directory writable for the user running coffer, or restore elsewhere",
            target.display(),
            parent.display(),
            std::io::Error::from(e)
        ));
        return None;
    }
    if exists && is_mount_point(target, parent) {
        problems.push(format!(
            "workspace {} is a mount point, so it cannot be swapped in by rename; restore into a directory inside it with --target-dir, or mount its parent instead",
            target.display()
        ));
        return None;
    }
    let facts = match &entry.manifest {
        Some(AnyManifest::Coffer(m)) => m.workspace.clone(),
        _ => None,
    };
    match (facts, rustix::fs::statvfs(parent)) {
        (Some(w), Ok(st)) => {
            let available = st.f_bavail.saturating_mul(st.f_frsize);
            // File data plus a block per entry for metadata.
            let needed = w.file_bytes + (w.files + w.directories + w.symlinks) * 4096;
            if available < needed {
                problems.push(format!(
                    "not enough space beside {} for the staging copy: {} free, about {} needed (the previous workspace is kept until the restore succeeds)",
                    target.display(),
                    units::bytes(available),
                    units::bytes(needed)
                ));
            } else {
                checks.push(format!(
                    "free space for the staging copy: {} free, about {} needed",
                    units::bytes(available),
                    units::bytes(needed)
                ));
            }
        }
        (None, _) => notes.push(
            "legacy backup: the workspace size is not recorded, so free space cannot be checked in advance".into(),
        ),
        (_, Err(e)) => notes.push(format!("cannot check free space in {}: {e}", parent.display())),
    }
    Some(WorkspaceTarget {
        path: target.to_path_buf(),
        exists,
        source,
    })
}

/// Whether `dir` is on another filesystem than its parent (renaming it would fail).
fn is_mount_point(dir: &Path, parent: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(dir), std::fs::metadata(parent)) {
        (Ok(d), Ok(p)) => d.dev() != p.dev(),
        _ => false,
    }
}

fn check_head(
    settings: &RestoreSettings,
    options: &RestoreOptions,
    plan: &mut Plan,
    problems: &mut Vec<String>,
) {
    let graph = match &settings.alembic.versions_dir {
        Some(dir) => match RevisionGraph::from_versions_dir(dir) {
            Ok(g) => Some(g),
            Err(e) => {
                problems.push(format!("cannot read alembic.versions_dir: {e}"));
                return;
            }
        },
        None => None,
    };
    let expected = if let Some(h) = &options.expect_heads {
        Some((h.clone(), "--expect-head".to_string()))
    } else if let Some(cmd) = &settings.alembic.expected_head_command {
        match hooks::capture(cmd) {
            Ok((status, out)) if status.success() => {
                let heads = alembic::parse_heads_output(&out);
                if heads.is_empty() {
                    problems.push(format!(
                        "alembic.expected_head_command `{}` printed no revision id",
                        cmd.join(" ")
                    ));
                    return;
                }
                Some((heads, format!("`{}`", cmd.join(" "))))
            }
            Ok((status, _)) => {
                problems.push(format!(
                    "alembic.expected_head_command `{}` failed ({}); fix it or pass --expect-head",
                    cmd.join(" "),
                    crate::postgres::describe_status(status)
                ));
                return;
            }
            Err(e) => {
                problems.push(format!(
                    "cannot run alembic.expected_head_command `{}`: {e}",
                    cmd.join(" ")
                ));
                return;
            }
        }
    } else {
        graph.as_ref().map(|g| {
            (
                g.heads().into_iter().collect(),
                "alembic.versions_dir".to_string(),
            )
        })
    };
    let Some((expected, source)) = expected else {
        plan.notes.push(
            "the code's Alembic head is not known (set alembic.versions_dir or alembic.expected_head_command, or pass --expect-head): compatibility not checked"
                .into(),
        );
        return;
    };
    let backup = plan.head.backup.clone().unwrap_or_default();
    let relation = alembic::compare_heads(&backup, &expected, graph.as_ref());
    plan.head.expected = Some(expected.clone());
    plan.head.source = Some(source.clone());
    plan.head.relation = Some(relation);
    let shown = |h: &[String]| {
        if h.is_empty() {
            "none".to_string()
        } else {
            h.join(",")
        }
    };
    if relation == HeadRelation::Same {
        plan.checks.push(format!(
            "alembic head {} is the code's head (from {source})",
            shown(&backup)
        ));
        return;
    }
    let advice = match (relation, graph.is_some()) {
        (HeadRelation::BackupOlder, _) => {
            "the backup is OLDER than the code: restore it, then run `alembic upgrade head`"
        }
        (HeadRelation::BackupNewer, _) => {
            "the backup is NEWER than the code: it was written by a later release; roll the code forward to that release first"
        }
        (_, true) => {
            "the backup and the code are on unrelated Alembic branches: this backup may belong to another application or branch"
        }
        _ => "set alembic.versions_dir to learn whether the backup is older or newer than the code",
    };
    let text = format!(
        "alembic head mismatch: the backup is at {}, the code (from {source}) expects {}; {advice}",
        shown(&backup),
        shown(&expected)
    );
    if options.allow_head_mismatch {
        plan.notes
            .push(format!("{text} (--allow-head-mismatch given)"));
    } else {
        problems.push(format!(
            "{text}; pass --allow-head-mismatch to restore anyway"
        ));
    }
}

/// The environment hooks get: `COFFER_OPERATION=restore`, the backup and the targets.
fn hook_env(
    plan: &Plan,
    outcome: Option<&Result<RestoreReport, RestoreError>>,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("COFFER_OPERATION".to_string(), "restore".to_string()),
        ("COFFER_BACKUP_NAME".into(), plan.backup.clone()),
        (
            "COFFER_BACKUP_PATH".into(),
            plan.backup_path.display().to_string(),
        ),
    ];
    if let Some(db) = &plan.database {
        env.push(("COFFER_DATABASE".into(), db.name.clone()));
    }
    if let Some(ws) = &plan.workspace {
        env.push(("COFFER_WORKSPACE".into(), ws.path.display().to_string()));
    }
    if let Some(result) = outcome {
        let (outcome, error) = match result {
            Ok(_) => ("success", String::new()),
            Err(e) => (
                "failure",
                e.to_string().lines().next().unwrap_or("").to_string(),
            ),
        };
        env.push(("COFFER_OUTCOME".into(), outcome.into()));
        env.push(("COFFER_ERROR".into(), error));
    }
    env
}

/// Executes a plan (see the module docs for the order of steps).
pub fn execute(
    settings: &RestoreSettings,
    plan: &Plan,
    options: &RestoreOptions,
    identities: Option<&Identities>,
    progress: &dyn Progress,
    events: &dyn Fn(Event),
    cancel: &CancelFlag,
) -> Result<RestoreReport, RestoreError> {
    let started = Instant::now();
    let hooks_on = options.run_hooks;
    if hooks_on && !settings.hooks.before_restore.is_empty() {
        if let Err(e) = hooks::run_until_failure(
            Stage::BeforeRestore,
            &settings.hooks.before_restore,
            &hook_env(plan, None),
        ) {
            let err = Err(RestoreError::BeforeHook(e));
            run_after_hooks(settings, plan, &err, events);
            return err;
        }
        events(Event::Done(
            "application stopped (hooks.before_restore)".into(),
        ));
    }
    let mut result = apply(plan, options, identities, progress, events, cancel, started);
    let restarted = if hooks_on {
        run_after_hooks(settings, plan, &result, events)
    } else {
        None
    };
    if let Ok(report) = &mut result {
        report.application_restarted = restarted;
        let mut problems = Vec::new();
        if restarted == Some(false) {
            problems.push("hooks.after_restore failed: start the application by hand".to_string());
        }
        if let Some(db) = &plan.database {
            match check_live_head(&db.runner, report, events) {
                Ok(()) => {}
                Err(p) => problems.push(p),
            }
        }
        report.duration_seconds = started.elapsed().as_secs_f64();
        if !problems.is_empty() {
            return Err(RestoreError::AfterRestore {
                problems,
                report: Box::new(report.clone()),
            });
        }
    }
    result
}

/// Runs the after-restore hooks; `Some(all succeeded)` when any are configured.
fn run_after_hooks(
    settings: &RestoreSettings,
    plan: &Plan,
    result: &Result<RestoreReport, RestoreError>,
    events: &dyn Fn(Event),
) -> Option<bool> {
    if settings.hooks.after_restore.is_empty() {
        return None;
    }
    let failures = hooks::run_all(
        Stage::AfterRestore,
        &settings.hooks.after_restore,
        &hook_env(plan, Some(result)),
    );
    for f in &failures {
        events(Event::Note(f.to_string()));
    }
    if failures.is_empty() {
        events(Event::Done(
            "application restarted (hooks.after_restore)".into(),
        ));
    }
    Some(failures.is_empty())
}

/// Compares the live `alembic_version` with the head the dump carried.
fn check_live_head(
    db: &Database,
    report: &mut RestoreReport,
    events: &dyn Fn(Event),
) -> Result<(), String> {
    let expected = report.alembic_head.take();
    let live = db
        .alembic_heads()
        .map_err(|e| format!("cannot read alembic_version after the restore: {e}"))?;
    report.alembic_head = live.clone();
    match (expected, live) {
        (None, None) => {
            events(Event::Note(
                "the backup has no alembic_version table".into(),
            ));
            Ok(())
        }
        (Some(e), Some(l)) if e == l => {
            events(Event::Done(format!(
                "alembic head matches manifest ({})",
                l.join(",")
            )));
            Ok(())
        }
        (e, l) => Err(format!(
            "the live alembic_version ({}) does not match the backup's head ({}): check the database",
            l.map_or("no table".into(), |v| v.join(",")),
            e.map_or("none".into(), |v| v.join(","))
        )),
    }
}

/// The destructive part: streams, then swaps and commits together.
fn apply(
    plan: &Plan,
    options: &RestoreOptions,
    identities: Option<&Identities>,
    progress: &dyn Progress,
    events: &dyn Fn(Event),
    cancel: &CancelFlag,
    started: Instant,
) -> Result<RestoreReport, RestoreError> {
    let rolled_back = |what: &str, reason: String| RestoreError::RolledBack {
        what: what.into(),
        reason,
    };
    // Sessions may have come back after the before-hooks; the restore needs them gone.
    if let Some(db) = plan.database.as_ref().filter(|d| !d.create) {
        let found = db
            .runner
            .other_sessions()
            .map_err(|e| rolled_back("database", e.to_string()))?;
        if !found.is_empty() {
            if options.terminate_connections {
                let n = db
                    .runner
                    .terminate_other_sessions()
                    .map_err(|e| rolled_back("database", e.to_string()))?;
                events(Event::Done(format!("terminated {n} other session(s)")));
            } else {
                let list = found
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(RestoreError::Refused {
                    problems: vec![format!(
                        "{} other session(s) are connected to {}: {list}; stop the application or pass --terminate-connections",
                        found.len(),
                        db.name
                    )],
                });
            }
        }
    }
    let mut created_db = false;
    if let Some(db) = plan.database.as_ref().filter(|d| d.create) {
        let maintenance = db.runner.with_dbname("postgres");
        maintenance
            .create_database(&db.name)
            .map_err(|e| rolled_back("create database", e.to_string()))?;
        created_db = true;
        events(Event::Done(format!("database {} created", db.name)));
    }
    let drop_created = || {
        if created_db && let Some(db) = &plan.database {
            let _ = db.runner.with_dbname("postgres").drop_database(&db.name);
        }
    };
    let mut swap = match &plan.workspace {
        Some(ws) => match Swap::begin(&ws.path, &plan.backup) {
            Ok(s) => Some(s),
            Err(e) => {
                drop_created();
                return Err(rolled_back("workspace", e.to_string()));
            }
        },
        None => None,
    };

    // Either stream failing stops the other at its next chunk.
    let abort = Arc::new(AtomicBool::new(false));
    let (db_result, ws_result) = std::thread::scope(|s| {
        let db_handle = plan.database.as_ref().map(|db| {
            let abort = abort.clone();
            s.spawn(move || {
                let r = stream_database(db, identities, progress, cancel, &abort, &plan.backup);
                if r.is_err() {
                    abort.store(true, Ordering::SeqCst);
                }
                r
            })
        });
        let ws_handle = plan.workspace.as_ref().zip(swap.as_ref()).map(|(ws, sw)| {
            let abort = abort.clone();
            let staging = sw.staging().to_path_buf();
            s.spawn(move || {
                let r = extract_workspace(ws, &staging, identities, progress, cancel, &abort);
                if r.is_err() {
                    abort.store(true, Ordering::SeqCst);
                }
                r
            })
        });
        (
            db_handle.map(|h| h.join().expect("database restore thread")),
            ws_handle.map(|h| h.join().expect("workspace restore thread")),
        )
    });

    let fail = |err: RestoreError, pending: Option<PendingCommit>, swap: Option<Swap>| {
        if let Some(p) = pending {
            p.rollback();
        }
        let undo = swap.map(Swap::abandon).transpose();
        drop_created();
        match (undo, err) {
            // The swap had been undone by swap_in itself, or never started: a staging
            // leftover changes nothing (the next restore removes it).
            (Err(e), RestoreError::RolledBack { what, reason }) => RestoreError::RolledBack {
                what,
                reason: format!(
                    "{reason} (and the staging directory could not be removed: {e}; the next restore removes it)"
                ),
            },
            (_, err) => err,
        }
    };
    // The first real failure wins over "stopped because the other one failed".
    let (mut pending, mut db_facts, mut ws_stats, mut failure) = (None, None, None, None);
    match db_result {
        Some(Ok((p, facts))) => {
            if let Some(note) = p.confinement.note() {
                events(Event::Note(note));
            }
            (pending, db_facts) = (Some(p), Some(facts))
        }
        Some(Err(e)) => failure = Some(e),
        None => {}
    }
    match ws_result {
        Some(Ok(stats)) => ws_stats = Some(stats),
        Some(Err(e))
            if failure
                .as_ref()
                .is_none_or(|f| matches!(f, StreamFailure::Aborted)) =>
        {
            failure = Some(e)
        }
        _ => {}
    }
    if let Some(f) = failure {
        return Err(fail(f.into_error(cancel, &plan.backup), pending, swap));
    }
    if let Some(signal) = cancel.signal() {
        return Err(fail(RestoreError::Interrupted { signal }, pending, swap));
    }

    // Both streams verified: swap the workspace in, then commit the database.
    if let Some(sw) = swap.as_mut()
        && let Err(e) = sw.swap_in()
    {
        if e.left_inconsistent() {
            if let Some(p) = pending {
                p.rollback();
            }
            drop_created();
            return Err(RestoreError::Inconsistent(format!(
                "the database transaction was rolled back, but {e}"
            )));
        }
        return Err(fail(rolled_back("workspace", e.to_string()), pending, swap));
    }
    if let Some(p) = pending
        && let Err(e) = p.commit()
    {
        let err = rolled_back("database commit", e.to_string());
        drop_created();
        return match swap.map(Swap::swap_back).transpose() {
            Ok(_) => Err(err),
            Err(se) => Err(RestoreError::Inconsistent(format!(
                "the database transaction was rolled back ({e}), but the previous workspace could not be put back: {se}"
            ))),
        };
    }
    let mut report = RestoreReport {
        backup: plan.backup.clone(),
        database: None,
        workspace: None,
        alembic_head: None,
        application_restarted: None,
        duration_seconds: 0.0,
    };
    if let (Some(db), Some((facts, sql_bytes))) = (&plan.database, db_facts) {
        let rows = facts.tables.values().sum();
        events(Event::Done(format!(
            "database restored into {} ({} tables, {rows} rows)",
            db.name,
            facts.tables.len()
        )));
        report.alembic_head = facts.alembic_heads.clone();
        report.database = Some(DatabaseRestored {
            name: db.name.clone(),
            tables: facts.tables.clone(),
            rows,
            sql_bytes,
        });
    }
    if let (Some(ws), Some(stats), Some(sw)) = (&plan.workspace, ws_stats, swap) {
        // The restore is committed either way; a cleanup that failed is finished by the next
        // restore (the journal says committed), so it is a note, not an inconsistency.
        let kept = sw.commit(options.keep_old).unwrap_or_else(|e| {
            events(Event::Note(format!(
                "the previous workspace could not be cleaned up ({e}); the next restore finishes it, or remove it by hand"
            )));
            None
        });
        events(Event::Done(format!(
            "workspace restored to {} ({} files, {} directories, {} symlinks, {})",
            ws.path.display(),
            stats.files,
            stats.directories,
            stats.symlinks,
            units::bytes(stats.file_bytes)
        )));
        if let Some(k) = &kept {
            events(Event::Note(format!(
                "previous workspace kept at {}",
                k.display()
            )));
        }
        report.workspace = Some(WorkspaceRestored {
            path: ws.path.clone(),
            stats,
            previous_kept_at: kept,
        });
    }
    report.duration_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Why a stream stopped.
#[derive(Debug)]
enum StreamFailure {
    /// The other stream failed, or a signal arrived.
    Aborted,
    /// The artifact is damaged, truncated, does not match the manifest, or holds an unsafe
    /// tar entry: the backup cannot be trusted.
    Damaged(String),
    /// The database or filesystem refused it.
    Failed { what: &'static str, reason: String },
}

impl StreamFailure {
    fn into_error(self, cancel: &CancelFlag, backup: &str) -> RestoreError {
        match self {
            StreamFailure::Aborted => match cancel.signal() {
                Some(signal) => RestoreError::Interrupted { signal },
                None => RestoreError::RolledBack {
                    what: "restore".into(),
                    reason: "stopped".into(),
                },
            },
            StreamFailure::Damaged(reason) => RestoreError::Damaged {
                backup: backup.to_string(),
                reason,
            },
            StreamFailure::Failed { what, reason } => RestoreError::RolledBack {
                what: what.into(),
                reason,
            },
        }
    }
}

fn artifact_failure(e: ArtifactError) -> StreamFailure {
    match e {
        ArtifactError::Damaged { .. } | ArtifactError::Mismatch { .. } => {
            StreamFailure::Damaged(e.to_string())
        }
        other => StreamFailure::Failed {
            what: "open artifact",
            reason: other.to_string(),
        },
    }
}

/// A database transaction with the whole dump applied, waiting for `COMMIT`.
struct PendingCommit {
    psql: RunningProgram,
    stdin: ChildStdin,
    /// How psql was confined (see [`crate::sandbox_exec`]).
    confinement: Confinement,
}

impl PendingCommit {
    fn commit(mut self) -> Result<(), PgError> {
        let sent = self
            .stdin
            .write_all(b"COMMIT;\n")
            .and_then(|_| self.stdin.flush());
        drop(self.stdin);
        let waited = self
            .psql
            .wait("the transaction was rolled back; check the error above and the server log");
        match (sent, waited) {
            (_, Err(e)) => Err(e),
            (Err(e), Ok(())) => Err(PgError::Unsupported(format!(
                "psql stopped reading before COMMIT: {e}"
            ))),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    /// Ends psql without `COMMIT`: the server rolls the transaction back.
    fn rollback(self) {
        let PendingCommit { psql, stdin, .. } = self;
        end_without_commit(psql, Some(stdin));
    }
}

/// Closes psql's input without `COMMIT` and waits for it to exit (killing it after a
/// while): either way the session ends and the server rolls back.
fn end_without_commit(mut psql: RunningProgram, stdin: Option<ChildStdin>) {
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match psql.child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if Instant::now() >= deadline => {
                psql.kill();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let _ = psql.wait("");
}

/// Streams the dump into psql inside a transaction and stops just before `COMMIT`.
fn stream_database(
    db: &DatabaseTarget,
    identities: Option<&Identities>,
    progress: &dyn Progress,
    cancel: &CancelFlag,
    abort: &AtomicBool,
    backup: &str,
) -> Result<(PendingCommit, (DumpFacts, u64)), StreamFailure> {
    let mut reader = db.source.open(identities).map_err(artifact_failure)?;
    let (mut psql, confinement) =
        db.runner
            .spawn_psql_script()
            .map_err(|e| StreamFailure::Failed {
                what: "database",
                reason: e.to_string(),
            })?;
    let mut stdin = psql.child.stdin.take().expect("psql stdin is piped");
    // Random, so no dump can print it early and pass for "everything applied".
    let marker = match restrict_key() {
        Ok(key) => format!("coffer-applied-{key}"),
        Err(e) => {
            abandon(psql, stdin);
            return Err(no_rng(e));
        }
    };
    let watch = psql_watch::Watch::spawn(
        psql.child.stdout.take().expect("psql stdout is piped"),
        marker.clone(),
    );
    let psql_failed = |psql: RunningProgram, stdin: Option<ChildStdin>| {
        drop(stdin);
        let reason =
            match psql.wait("the transaction was rolled back; fix the cause and restore again") {
                Err(e) => restrict_hint(e.to_string()),
                Ok(()) => "psql stopped reading its input".into(),
            };
        StreamFailure::Failed {
            what: "database",
            reason,
        }
    };
    // psql's restricted mode with a key only this process knows: whatever the dump holds,
    // psql refuses every meta-command (and stops: ON_ERROR_STOP). The scanner below also
    // refuses them before they are sent, with a clearer message.
    let opening = match restrict_key() {
        Ok(key) => format!("\\restrict {key}\n{}BEGIN;\n", psql_watch::pid_query()),
        Err(e) => {
            abandon(psql, stdin);
            return Err(no_rng(e));
        }
    };
    if stdin.write_all(opening.as_bytes()).is_err() {
        return Err(psql_failed(psql, Some(stdin)));
    }
    progress.start(ArtifactRole::Database, &db.source.file_name());
    let mut scanner = DumpScanner::new();
    let mut buf = vec![0u8; CHUNK];
    let mut allowed = Vec::with_capacity(CHUNK);
    // Mid-stream, psql may hold a statement without its `;` that end-of-input would make it
    // run: every stop before the whole dump is through the gate kills it instead.
    loop {
        if cancel.signal().is_some() || abort.load(Ordering::SeqCst) {
            abandon(psql, stdin);
            return Err(StreamFailure::Aborted);
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                abandon(psql, stdin);
                return Err(artifact_failure(reader.damaged(e)));
            }
        };
        allowed.clear();
        scanner.feed_filtered(&buf[..n], &mut allowed);
        if stdin.write_all(&allowed).is_err() {
            return Err(psql_failed(psql, Some(stdin)));
        }
        if let Some(problem) = scanner.problem() {
            // Nothing from the refused byte on was sent; psql must not see end-of-input
            // either (it would run a statement left without its `;`).
            let problem = problem.to_string();
            abandon(psql, stdin);
            return Err(StreamFailure::Damaged(format!(
                "{problem} (in {})",
                db.source.path.display()
            )));
        }
        progress.advance(ArtifactRole::Database, n as u64);
    }
    let sql_bytes = reader.plain_bytes();
    let checked = reader.finish().and_then(|d| match &db.source.expected {
        Some(a) => d.check(a, &db.source.path),
        None => Ok(()),
    });
    if let Err(e) = checked {
        abandon(psql, stdin);
        return Err(artifact_failure(e));
    }
    let facts = scanner.finish();
    // A cut dump may leave psql inside a string or a statement: it is killed, never sent
    // the end marker (which it might wait on forever) nor end-of-input.
    let unproven = facts.unusable().or_else(|| {
        db.manifest
            .as_ref()
            .and_then(|m| facts.check_against(m).err())
    });
    if let Some(reason) = unproven {
        abandon(psql, stdin);
        return Err(StreamFailure::Damaged(format!(
            "{reason} (in {} of {backup})",
            db.source.path.display()
        )));
    }
    // psql may still be working through the tail of the dump (index builds can take
    // minutes). Wait until it has applied everything, so the workspace swap and COMMIT
    // that follow are only milliseconds apart; but never for input it will not get.
    if stdin
        .write_all(format!("SELECT '{marker}';\n").as_bytes())
        .and_then(|_| stdin.flush())
        .is_err()
    {
        return Err(psql_failed(psql, Some(stdin)));
    }
    let mut backend = None;
    let mut next_check = Instant::now() + Duration::from_secs(5);
    let mut waiting_since: Option<Instant> = None;
    loop {
        match watch.next(Duration::from_millis(200)) {
            Ok(psql_watch::Signal::Applied) => break,
            Ok(psql_watch::Signal::Pid(pid)) => backend = Some(pid),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if cancel.signal().is_some() || abort.load(Ordering::SeqCst) {
                    abandon(psql, stdin);
                    return Err(StreamFailure::Aborted);
                }
                if let Some(pid) = backend
                    && Instant::now() >= next_check
                {
                    next_check = Instant::now() + Duration::from_secs(5);
                    // A failed look (the server busy, a permission) is no evidence: go on.
                    let state = psql_watch::session_state(&db.runner, pid)
                        .unwrap_or(psql_watch::Session::Other);
                    let stalled = match state {
                        psql_watch::Session::IdleTooLong => true,
                        psql_watch::Session::WaitingForClient => {
                            waiting_since.get_or_insert_with(Instant::now).elapsed()
                                >= psql_watch::COPY_STALL_AFTER
                        }
                        psql_watch::Session::Other => {
                            waiting_since = None;
                            false
                        }
                    };
                    if stalled {
                        abandon(psql, stdin);
                        return Err(StreamFailure::Damaged(format!(
                            "psql is still waiting for input after the whole dump of {backup} was sent: \
                             the dump ends inside a statement or string that coffer's scanner did not see as open; \
                             the transaction was rolled back (in {})",
                            db.source.path.display()
                        )));
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(psql_failed(psql, Some(stdin)));
            }
        }
    }
    progress.finish(
        ArtifactRole::Database,
        &format!(
            "{} of SQL applied, waiting to commit",
            units::bytes(sql_bytes)
        ),
    );
    Ok((
        PendingCommit {
            psql,
            stdin,
            confinement,
        },
        (facts, sql_bytes),
    ))
}

fn no_rng(e: io::Error) -> StreamFailure {
    StreamFailure::Failed {
        what: "database",
        reason: format!("cannot read the operating system's random number generator: {e}"),
    }
}

/// Stops psql at once without end-of-input: the session ends and the server rolls back.
fn abandon(psql: RunningProgram, stdin: ChildStdin) {
    psql.kill();
    drop(stdin);
}

/// A fresh key for psql's `\restrict`: 32 alphanumeric characters from the OS RNG.
fn restrict_key() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Adds what to do when psql predates `\restrict` (added in the August 2025 minor releases).
fn restrict_hint(reason: String) -> String {
    if reason.contains("invalid command \\restrict") {
        format!(
            "{reason}; this psql is too old to run a dump in restricted mode: install a psql from the August 2025 minor releases or later (15.14, 16.10, 17.6, 18.0, …)"
        )
    } else {
        reason
    }
}

/// Extracts the workspace archive into the staging directory and checks its hashes.
fn extract_workspace(
    ws: &WorkspaceTarget,
    staging: &Path,
    identities: Option<&Identities>,
    progress: &dyn Progress,
    cancel: &CancelFlag,
    abort: &AtomicBool,
) -> Result<ExtractStats, StreamFailure> {
    let reader = ws.source.open(identities).map_err(artifact_failure)?;
    progress.start(ArtifactRole::Workspace, &ws.source.file_name());
    let mut guarded = Guarded {
        inner: reader,
        cancel,
        abort,
        progress,
    };
    let extracted = archive::extract_tar(&mut guarded, staging);
    let reader = guarded.inner;
    if cancel.signal().is_some() || abort.load(Ordering::SeqCst) {
        return Err(StreamFailure::Aborted);
    }
    let stats = match extracted {
        Ok(stats) => stats,
        Err(archive::ArchiveError::ReadTar { source, .. }) => {
            // A decoder error surfaces through the tar reader: report it as damage.
            return Err(artifact_failure(reader.damaged(source)));
        }
        Err(e @ archive::ArchiveError::UnsafeEntry { .. }) => {
            return Err(StreamFailure::Damaged(format!(
                "{e} in {}",
                ws.source.path.display()
            )));
        }
        Err(e) => {
            return Err(StreamFailure::Failed {
                what: "workspace",
                reason: e.to_string(),
            });
        }
    };
    let checked = reader.finish().and_then(|d| match &ws.source.expected {
        Some(a) => d.check(a, &ws.source.path),
        None => Ok(()),
    });
    checked.map_err(artifact_failure)?;
    progress.finish(
        ArtifactRole::Workspace,
        &format!("{} files extracted to staging", stats.files),
    );
    Ok(stats)
}

/// Stops a stream when cancelled or when the other stream failed, and reports progress.
struct Guarded<'a> {
    inner: ArtifactReader,
    cancel: &'a CancelFlag,
    abort: &'a AtomicBool,
    progress: &'a dyn Progress,
}

impl Read for Guarded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.abort.load(Ordering::SeqCst) {
            return Err(crate::cancel::cancelled_error());
        }
        self.cancel.check()?;
        let n = self.inner.read(buf)?;
        self.progress.advance(ArtifactRole::Workspace, n as u64);
        Ok(n)
    }
}
