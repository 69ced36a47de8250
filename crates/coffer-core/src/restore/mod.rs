//! Restoring a backup, all or nothing.
//!
//! [`prepare`] runs the pre-flight checks and changes nothing. [`execute`] streams the
//! database artifact into one `psql` transaction and the workspace artifact into a staging
//! directory beside the workspace, and only when both streams are complete and match the
//! manifest swaps the workspace in by rename and sends `COMMIT`.
//!
//! Any failure before the commit (SQL error, corrupt, truncated or untrustworthy input,
//! hash or metadata mismatch, SIGINT/SIGTERM) leaves the database as it was (the
//! transaction is never committed; psql is stopped, or if coffer is killed, sees
//! end-of-input, and the server rolls back) and the workspace as it was (the staging
//! directory is removed; after SIGKILL, the next restore's
//! [`crate::workspace::swap::recover`] puts the previous tree back).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{AlembicConfig, Config, HooksConfig};
use crate::format::manifest::{AnyManifest, Artifact};
use crate::format::signing::SignaturePolicy;
use crate::hint::{Hint, Problems};
use crate::postgres::alembic::HeadRelation;
use crate::postgres::{Database, PgError, Session};
use crate::remote::stream::RemoteObject;
use crate::report::hooks::HookError;
use crate::stream::archive::ExtractStats;
use crate::stream::artifact::{ArtifactError, ArtifactReader};
use crate::stream::crypto::Identities;

mod apply;
mod created;
mod database;
mod db_swap;
mod failure;
mod flat;
mod head;
mod journal_file;
mod leftovers;
mod parallel;
mod parents;
mod post_data;
mod preflight;
mod psql_session;
mod recover;
mod roles;
mod sessions;
mod workspace;

pub use apply::execute;
pub use flat::{prepare_flat, still_empty};
pub use leftovers::recover as recover_leftovers;
pub use parallel::PhaseTimings;
pub use preflight::{prepare, prepare_announced, prepare_streamed};
pub use recover::{recover_database_swap, recover_interrupted};

/// Why a restore did not happen or did not finish. Every variant except
/// [`RestoreError::Inconsistent`] and [`RestoreError::AfterRestore`] means the database and
/// the workspace are as they were before.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Pre-flight checks failed: nothing was changed.
    #[error("restore refused, nothing was changed: {}{}", first(.problems), rest(.problems))]
    Refused {
        /// Each problem, with what to do about it in configuration and data terms.
        problems: Vec<String>,
        /// The caller's choices that would also resolve one of them (shown by the front
        /// end in its own terms; see [`crate::Error::hints`]).
        hints: Vec<Hint>,
    },
    /// The backup is damaged (found before or during the restore): nothing was changed.
    #[error(
        "backup {backup} failed verification during the restore, nothing was changed: {reason}; restore another backup"
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

/// Every step [`prepare`] and [`execute`] take, each spelled out (the drill turns off what
/// an operator's restore does). Embedders use [`crate::RestoreOptions`], whose default is
/// the complete restore.
#[derive(Debug, Clone)]
#[cfg_attr(test, derive(Default))]
pub struct RestoreSteps {
    /// Restore the database.
    pub database: bool,
    /// Restore the workspace.
    pub workspace: bool,
    /// Restore into this database instead of the configured one.
    pub target_db: Option<String>,
    /// Create the target database when it does not exist.
    pub create_target_db: bool,
    /// Create the missing roles the dump needs from the backup's roles file, if it has one.
    pub create_roles: bool,
    /// Restore the workspace here instead of the configured path.
    pub target_dir: Option<PathBuf>,
    /// The code's head(s) given for this restore, overriding the configured sources.
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
    /// Sessions for the database (see [`crate::RestoreOptions::jobs`]); 0 and 1 are one
    /// transaction.
    pub jobs: usize,
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
    /// inside it (see [`crate::workspace::boundaries`]).
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
    /// Streamed from the remote instead of read from `path` (which then only names it).
    pub remote: Option<RemoteObject>,
}

impl Source {
    /// Opens the artifact for applying: a coffer artifact is proven against its manifest
    /// record (size and SHA-256) before a byte of it is decoded, so nothing altered ever
    /// reaches psql or the extractor. A legacy artifact has no record to prove it by: it
    /// gets only the dump gate and the end-of-stream checks.
    ///
    /// A remote artifact is read once, as it arrives: it cannot be proven before it is
    /// decoded, so it relies on the other half of the guarantee, nothing commits before
    /// [`ArtifactReader::finish`] matched both hashes (see docs/ARCHITECTURE.md).
    fn open(&self, identities: Option<&Identities>) -> Result<ArtifactReader, ArtifactError> {
        if let Some(remote) = &self.remote {
            let stream = remote.open();
            let failure = stream.failure();
            let mut reader = ArtifactReader::from_stream(
                Box::new(stream),
                &self.path,
                self.encrypted,
                identities,
                failure,
            )?;
            // Like a local artifact's (`open_proven`): the index is checked as it is read.
            if let Some(pieces) = self.expected.as_ref().and_then(|a| a.pieces.clone()) {
                reader.check_pieces(pieces);
            }
            return Ok(reader);
        }
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
#[non_exhaustive]
pub struct DatabaseTarget {
    /// The database that will be replaced.
    pub name: String,
    /// The server's version, or `None` when the database is still to be created.
    pub server_version: Option<String>,
    /// Whether the database does not exist yet and will be created.
    pub create: bool,
    /// Roles the dump needs that do not exist and will be created from the backup's roles
    /// file (a failed restore drops them again).
    pub create_roles: Vec<String>,
    /// The statements that create them, regenerated by coffer.
    #[serde(skip)]
    roles_sql: String,
    #[serde(skip)]
    runner: Database,
    #[serde(skip)]
    source: Source,
    /// The backup's manifest: the dump's head and tables must match it before COMMIT.
    #[serde(skip)]
    manifest: Option<AnyManifest>,
    /// Sessions that restore it: 1 is one transaction on the target; more restore into a
    /// new database that is swapped into place.
    pub jobs: usize,
}

/// The workspace side of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceTarget {
    /// The directory that will be replaced.
    pub path: PathBuf,
    /// Whether it exists now.
    pub exists: bool,
    /// Its parent directories that do not exist and will be created, outermost first (a
    /// failed restore removes them again).
    pub create_parents: Vec<PathBuf>,
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
    pub source: Option<HeadSource>,
    /// How they relate (`None` when not compared).
    pub relation: Option<HeadRelation>,
}

/// Where the code's expected Alembic head(s) came from. Shown (and serialized) as text.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadSource {
    /// Given by the caller for this restore ([`RestoreSteps::expect_heads`]).
    Given,
    /// Printed by `alembic.expected_head_command` (this command line).
    Command(String),
    /// The heads of the revision graph in `alembic.versions_dir`.
    VersionsDir,
}

impl std::fmt::Display for HeadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadSource::Given => f.write_str("the heads given for this restore"),
            HeadSource::Command(cmd) => write!(f, "`{cmd}`"),
            HeadSource::VersionsDir => f.write_str("alembic.versions_dir"),
        }
    }
}

impl Serialize for HeadSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What pre-flight found: shown to the operator before confirming, then executed.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
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
    /// The caller's choices that would settle a note (e.g. giving the code's head), for
    /// the front end to word; reported as [`crate::Event::Hint`] after the notes.
    #[serde(skip)]
    pub hints: Vec<Hint>,
}

impl RestoreError {
    /// A refusal for `problems` (with their hints).
    pub(crate) fn refused(problems: Problems) -> RestoreError {
        RestoreError::Refused {
            problems: problems.list,
            hints: problems.hints,
        }
    }
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
    /// Where the time went, when several sessions restored it (`--jobs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<parallel::PhaseTimings>,
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

/// The workspace directory a restore with these options would replace, as configured (or
/// given with `--target-dir`).
pub fn workspace_target<'a>(
    settings: &'a RestoreSettings,
    options: &'a RestoreSteps,
) -> Option<&'a Path> {
    if !options.workspace {
        return None;
    }
    options
        .target_dir
        .as_deref()
        .or(settings.workspace.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(list: &[&str]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn first_is_the_first_problem_or_nothing() {
        assert_eq!(first(&[]), "");
        assert_eq!(first(&problems(&["a", "b"])), "a");
    }

    #[test]
    fn rest_puts_each_further_problem_on_its_own_line() {
        assert_eq!(rest(&[]), "");
        assert_eq!(rest(&problems(&["a"])), "");
        assert_eq!(rest(&problems(&["a", "b", "c"])), "\nb\nc");
    }

    #[test]
    fn a_refusal_lists_every_problem() {
        let err = RestoreError::Refused {
            problems: problems(&["no room", "no roles"]),
            hints: vec![Hint::TargetDir],
        };
        assert_eq!(
            err.to_string(),
            "restore refused, nothing was changed: no room\nno roles"
        );
        let empty = RestoreError::Refused {
            problems: vec![],
            hints: vec![],
        };
        assert_eq!(empty.to_string(), "restore refused, nothing was changed: ");
    }

    #[test]
    fn after_restore_problems_follow_the_completion() {
        let err = RestoreError::AfterRestore {
            problems: problems(&["hooks.after_restore failed", "head differs"]),
            report: Box::new(RestoreReport {
                backup: "b1".into(),
                database: None,
                workspace: None,
                alembic_head: None,
                application_restarted: Some(false),
                duration_seconds: 1.0,
            }),
        };
        assert_eq!(
            err.to_string(),
            "restore completed, but: hooks.after_restore failed\nhead differs"
        );
    }

    fn settings(workspace: Option<&str>) -> RestoreSettings {
        RestoreSettings {
            database: Database::default(),
            workspace: workspace.map(PathBuf::from),
            hooks: HooksConfig::default(),
            alembic: AlembicConfig::default(),
            backup_root: "/var/backups/coffer".into(),
            metrics_file: None,
            signatures: SignaturePolicy::default(),
        }
    }

    fn options(workspace: bool, target_dir: Option<&str>) -> RestoreSteps {
        RestoreSteps {
            workspace,
            target_dir: target_dir.map(PathBuf::from),
            ..RestoreSteps::default()
        }
    }

    #[test]
    fn workspace_target_is_the_configured_path() {
        let settings = settings(Some("/srv/ws"));
        assert_eq!(
            workspace_target(&settings, &options(true, None)),
            Some(Path::new("/srv/ws"))
        );
    }

    #[test]
    fn workspace_target_prefers_target_dir() {
        assert_eq!(
            workspace_target(
                &settings(Some("/srv/ws")),
                &options(true, Some("/tmp/drill"))
            ),
            Some(Path::new("/tmp/drill"))
        );
        assert_eq!(
            workspace_target(&settings(None), &options(true, Some("/tmp/drill"))),
            Some(Path::new("/tmp/drill"))
        );
    }

    #[test]
    fn workspace_target_is_none_without_a_path_or_a_workspace_restore() {
        assert_eq!(
            workspace_target(&settings(None), &options(true, None)),
            None
        );
        assert_eq!(
            workspace_target(&settings(Some("/srv/ws")), &options(false, Some("/tmp/d"))),
            None
        );
    }
}
