//! `restore`: pre-flight, then the database and the workspace restored all or nothing
//! (see `crate::restore`), under the root's lock, recorded in the run log.
//!
//! Two steps, so a front end can show the plan and ask before anything changes:
//! [`Coffer::prepare_restore`] checks and plans, [`PreparedRestore::execute`] restores.
//! [`Coffer::restore`] does both.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::BackupRef;
use super::pull::ForRestore;
use crate::check::{self, flat::FlatDump};
use crate::coffer::{Coffer, finished};
use crate::context::RunContext;
use crate::error::Error;
use crate::remote::stream::Streamable;
use crate::restore::{self, Plan, RestoreError, RestoreReport, RestoreSettings};
use crate::root::catalog::BackupEntry;
use crate::root::lock::RootLock;
use crate::root::runlog::{Operation, RunRecord};
use crate::stream::artifact::ArtifactError;
use crate::stream::crypto::Identities;
use crate::warning::Warning;

/// What to restore and where. The default restores the database and the workspace into
/// their configured places, with the Alembic head check and the restore hooks.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Restore the database. Default: yes.
    pub database: bool,
    /// Restore the workspace. Default: yes.
    pub workspace: bool,
    /// Restore into this database (created if missing) instead of the configured one.
    pub target_db: Option<String>,
    /// Restore the workspace into this directory instead of `workspace.path`.
    pub target_dir: Option<PathBuf>,
    /// The Alembic head(s) the code expects, overriding `alembic.expected_head_command` and
    /// `alembic.versions_dir`.
    pub expect_heads: Option<Vec<String>>,
    /// Restore even when the backup's Alembic head differs from the code's. Default: no.
    pub allow_head_mismatch: bool,
    /// End other sessions connected to the target database instead of refusing. Default: no.
    pub terminate_connections: bool,
    /// Keep the previous workspace beside the restored one. Default: no.
    pub keep_old: bool,
    /// Run `hooks.before_restore` / `hooks.after_restore`. Default: yes.
    pub run_hooks: bool,
    /// The age identity file, instead of `encryption.identity_file`.
    pub identity: Option<PathBuf>,
    /// Restore a backup without signatures although trusted keys are configured (a bad
    /// signature is still refused). Default: no.
    pub allow_unsigned: bool,
    /// Disaster recovery: stream the backup from the remote straight into the restore
    /// (nothing is written to the root; a legacy backup is pulled into the root first),
    /// unless it is complete in the root already. Default: no.
    pub from_remote: bool,
    /// Sessions restoring the database: more than 1 restores a backup whose dump has a piece
    /// index into a new database with that many sessions and swaps it into place (fewer
    /// when the dump has fewer data pieces or the server fewer free connections; one
    /// transaction on the target as before when the role may not create databases or the
    /// backup is streamed from the remote). Default: 1, one transaction.
    pub jobs: usize,
}

impl Default for RestoreOptions {
    fn default() -> RestoreOptions {
        RestoreOptions {
            database: true,
            workspace: true,
            target_db: None,
            target_dir: None,
            expect_heads: None,
            allow_head_mismatch: false,
            terminate_connections: false,
            keep_old: false,
            run_hooks: true,
            identity: None,
            allow_unsigned: false,
            from_remote: false,
            jobs: 1,
        }
    }
}

impl RestoreOptions {
    /// Whether to restore the database.
    pub fn database(mut self, database: bool) -> RestoreOptions {
        self.database = database;
        self
    }

    /// Whether to restore the workspace.
    pub fn workspace(mut self, workspace: bool) -> RestoreOptions {
        self.workspace = workspace;
        self
    }

    /// Sets the database to restore into.
    pub fn target_db(mut self, name: Option<String>) -> RestoreOptions {
        self.target_db = name;
        self
    }

    /// Sets the directory to restore the workspace into.
    pub fn target_dir(mut self, dir: Option<PathBuf>) -> RestoreOptions {
        self.target_dir = dir;
        self
    }

    /// Sets the Alembic head(s) the code expects.
    pub fn expect_heads(mut self, heads: Option<Vec<String>>) -> RestoreOptions {
        self.expect_heads = heads;
        self
    }

    /// Whether to restore despite a head mismatch.
    pub fn allow_head_mismatch(mut self, allow: bool) -> RestoreOptions {
        self.allow_head_mismatch = allow;
        self
    }

    /// Whether to end other sessions on the target database.
    pub fn terminate_connections(mut self, terminate: bool) -> RestoreOptions {
        self.terminate_connections = terminate;
        self
    }

    /// Sets the sessions restoring the database (see [`RestoreOptions::jobs`]).
    pub fn jobs(mut self, jobs: usize) -> RestoreOptions {
        self.jobs = jobs.max(1);
        self
    }

    /// Whether to keep the previous workspace.
    pub fn keep_old(mut self, keep: bool) -> RestoreOptions {
        self.keep_old = keep;
        self
    }

    /// Whether to run the restore hooks.
    pub fn run_hooks(mut self, run: bool) -> RestoreOptions {
        self.run_hooks = run;
        self
    }

    /// Sets the age identity file.
    pub fn identity(mut self, identity: Option<PathBuf>) -> RestoreOptions {
        self.identity = identity;
        self
    }

    /// Whether to accept an unsigned backup.
    pub fn allow_unsigned(mut self, allow: bool) -> RestoreOptions {
        self.allow_unsigned = allow;
        self
    }

    /// Whether to restore from the remote (streamed).
    pub fn from_remote(mut self, from_remote: bool) -> RestoreOptions {
        self.from_remote = from_remote;
        self
    }

    /// The steps [`crate::restore`] takes for these options.
    pub(super) fn steps(&self) -> restore::RestoreSteps {
        restore::RestoreSteps {
            database: self.database,
            workspace: self.workspace,
            target_db: self.target_db.clone(),
            create_target_db: self.target_db.is_some(),
            create_roles: true,
            target_dir: self.target_dir.clone(),
            expect_heads: self.expect_heads.clone(),
            check_code_head: true,
            allow_head_mismatch: self.allow_head_mismatch,
            terminate_connections: self.terminate_connections,
            keep_old: self.keep_old,
            run_hooks: self.run_hooks,
            jobs: self.jobs,
        }
    }
}

/// A completed restore.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    /// What pre-flight found and planned.
    pub plan: Plan,
    /// What the restore did.
    pub report: RestoreReport,
    /// What failed around it without failing it (run log, metrics, hooks), also reported
    /// as [`Event::Warning`](crate::Event::Warning)s.
    #[serde(skip)]
    pub warnings: Vec<Warning>,
}

/// A restore that passed pre-flight and changed nothing yet; it holds the root's lock.
/// Dropped without [`execute`](Self::execute), nothing happens and nothing is recorded.
pub struct PreparedRestore<'c> {
    coffer: &'c Coffer,
    started: DateTime<Utc>,
    entry: BackupEntry,
    settings: RestoreSettings,
    identities: Option<Identities>,
    steps: restore::RestoreSteps,
    plan: Plan,
    lock: Option<RootLock>,
    /// A flat dump without `DROP`s into an existing database: it must still be empty.
    require_empty: bool,
    /// A streamed backup's manifest, `SHA256SUMS` and signatures, removed when dropped.
    _metadata: Option<tempfile::TempDir>,
}

/// The backup only: the settings and the plan hold the database's credentials.
impl std::fmt::Debug for PreparedRestore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedRestore")
            .field("backup", &self.entry.name)
            .finish_non_exhaustive()
    }
}

impl Coffer {
    /// Pre-flight and restore in one go (see [`Coffer::prepare_restore`] and
    /// [`PreparedRestore::execute`]).
    pub fn restore(
        &self,
        backup: &BackupRef,
        options: &RestoreOptions,
        ctx: &RunContext<'_>,
    ) -> Result<RestoreOutcome, Error> {
        self.prepare_restore(backup, options, ctx)?.execute(ctx)
    }

    /// Finds the backup, takes the root's lock when the backup lies in the root, finishes
    /// or undoes a swap a killed earlier restore left behind, and runs the pre-flight
    /// checks; changes nothing else. Reports each passed check as [`Event::Done`](crate::Event::Done) and each
    /// note as [`Event::Note`](crate::Event::Note). A refusal is recorded in the run log as a failed restore.
    pub fn prepare_restore(
        &self,
        backup: &BackupRef,
        options: &RestoreOptions,
        ctx: &RunContext<'_>,
    ) -> Result<PreparedRestore<'_>, Error> {
        let started = Utc::now();
        let mut found = None;
        let result = self.preflight(backup, options, started, &mut found, ctx);
        if result.is_err() {
            let record = restore_record(started, found.as_ref());
            self.after_run(&finished(record, &result), ctx);
        }
        result
    }

    fn preflight(
        &self,
        backup: &BackupRef,
        options: &RestoreOptions,
        started: DateTime<Utc>,
        found: &mut Option<BackupEntry>,
        ctx: &RunContext<'_>,
    ) -> Result<PreparedRestore<'_>, Error> {
        if !options.from_remote
            && let Some(given) = backup.name()
            && let Some(detected) = check::flat::detect(given)
        {
            return self.preflight_flat(given, detected, options, started, found, ctx);
        }
        let mut settings = RestoreSettings::from_config(self.config())?;
        settings.signatures = self.signature_policy(options.allow_unsigned)?;
        let identities = self.identities(options.identity.as_deref())?;
        let (entry, metadata, origin) = if options.from_remote {
            match self.stream_for_restore(backup, identities.as_ref(), &settings.signatures, ctx)? {
                ForRestore::Local(backup) => (self.resolve(&backup, ctx)?.0, None, None),
                ForRestore::Stream {
                    streamable,
                    remote,
                    runtime,
                } => {
                    let Streamable { dir, entry, .. } = *streamable;
                    (entry, Some(dir), Some((remote, runtime)))
                }
            }
        } else {
            (self.resolve(backup, ctx)?.0, None, None)
        };
        *found = Some(entry.clone());
        // Keep prune and other runs away from a backup being restored from the root.
        let lock = lock_if_in_root(self.root(), &entry)?;
        let steps = options.steps();
        // First: whether a killed restore's database swap committed decides what becomes of
        // its workspace swap.
        for note in restore::recover_database_swap(&settings, &steps)? {
            ctx.note(&note);
        }
        if let Some(r) = restore::recover_interrupted(&settings, &steps)? {
            ctx.note(&r.to_string());
        }
        // After the swap's recovery: a killed restore's staging copy may sit in parent
        // directories it created.
        if let Some(note) = restore::recover_leftovers(&settings.backup_root, &settings.database)? {
            ctx.note(&note);
        }
        let mut plan = restore::prepare_streamed(
            &settings,
            &entry,
            &steps,
            identities.as_ref(),
            origin.as_ref().map(|(r, h)| (r, h)),
        )?;
        if let Some((remote, _)) = &origin {
            plan.backup_path =
                format!("{}/{}", remote.url().trim_end_matches('/'), entry.name).into();
            plan.notes.push(format!(
                "streamed from {}: nothing is written to the backup root; only the workspace's staging copy needs room on this host",
                remote.url()
            ));
        }
        for check in &plan.checks {
            ctx.done(check);
        }
        for note in &plan.notes {
            ctx.note(note);
        }
        for hint in &plan.hints {
            ctx.emit(crate::Event::Hint(*hint));
        }
        Ok(PreparedRestore {
            coffer: self,
            started,
            entry,
            settings,
            identities,
            steps,
            plan,
            lock,
            require_empty: false,
            _metadata: metadata,
        })
    }

    /// Pre-flight for a flat dump file (see [`crate::restore::prepare_flat`]): read to its
    /// end first, so a damaged, cut or refused dump changes nothing.
    fn preflight_flat(
        &self,
        given: &str,
        detected: Result<FlatDump, String>,
        options: &RestoreOptions,
        started: DateTime<Utc>,
        found: &mut Option<BackupEntry>,
        ctx: &RunContext<'_>,
    ) -> Result<PreparedRestore<'_>, Error> {
        let damaged = |backup: &str, reason: String| RestoreError::Damaged {
            backup: backup.to_string(),
            reason,
        };
        let flat = detected.map_err(|why| damaged(given, why))?;
        *found = Some(flat.entry());
        let settings = RestoreSettings::from_config(self.config())?;
        let steps = restore::RestoreSteps {
            workspace: false,
            create_target_db: true,
            ..options.steps()
        };
        for note in restore::recover_database_swap(&settings, &steps)? {
            ctx.note(&note);
        }
        if let Some(note) = restore::recover_leftovers(&settings.backup_root, &settings.database)? {
            ctx.note(&note);
        }
        ctx.progress().step(&format!(
            "reading {} to its end ({}the dump's trailer, what psql may run)",
            flat.path.display(),
            if flat.gzip { "gzip integrity, " } else { "" }
        ));
        let scan = check::flat::scan(&flat).map_err(|e| match e {
            ArtifactError::Damaged { .. } => damaged(&flat.name, e.to_string()),
            other => RestoreError::Refused {
                problems: vec![other.to_string()],
                hints: Vec::new(),
            },
        })?;
        let plan = restore::prepare_flat(
            &settings,
            &flat,
            &scan,
            &restore::RestoreSteps {
                workspace: options.workspace,
                ..steps.clone()
            },
        )?;
        for check in &plan.checks {
            ctx.done(check);
        }
        for note in &plan.notes {
            ctx.note(note);
        }
        for hint in &plan.hints {
            ctx.emit(crate::Event::Hint(*hint));
        }
        let require_empty = !scan.facts.drops && plan.database.as_ref().is_some_and(|d| !d.create);
        Ok(PreparedRestore {
            coffer: self,
            started,
            entry: flat.entry(),
            settings,
            identities: None,
            steps,
            plan,
            lock: None,
            require_empty,
            _metadata: None,
        })
    }
}

impl PreparedRestore<'_> {
    /// What pre-flight found and what will be replaced.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Restores as planned, reporting each step as [`Event::Done`](crate::Event::Done) or [`Event::Note`](crate::Event::Note); then
    /// records the run in the run log, rewrites the metrics file and runs the hooks.
    pub fn execute(self, ctx: &RunContext<'_>) -> Result<RestoreOutcome, Error> {
        let result = restore::still_empty(&self.plan, self.require_empty)
            .and_then(|()| {
                restore::execute(
                    &self.settings,
                    &self.plan,
                    &self.steps,
                    self.identities.as_ref(),
                    ctx,
                )
            })
            .map_err(Error::from);
        drop(self.lock);
        let record = finished(restore_record(self.started, Some(&self.entry)), &result);
        let warnings = self.coffer.after_run(&record, ctx);
        Ok(RestoreOutcome {
            plan: self.plan,
            report: result?,
            warnings,
        })
    }
}

/// The run-log record of a restore of `entry` (`None`: failed before one was found).
pub(super) fn restore_record(started: DateTime<Utc>, entry: Option<&BackupEntry>) -> RunRecord {
    let record = RunRecord::new(Operation::Restore, started);
    match entry {
        Some(e) => record.with_backup(e.name.clone(), e.kind),
        None => record,
    }
}

/// The root's lock, when `entry` lies in the root.
fn lock_if_in_root(root: &Path, entry: &BackupEntry) -> Result<Option<RootLock>, Error> {
    let inside = match (entry.path.canonicalize(), root.canonicalize()) {
        (Ok(p), Ok(r)) => p.starts_with(r),
        _ => false,
    };
    Ok(if inside {
        Some(RootLock::acquire(root, "restore")?)
    } else {
        None
    })
}
