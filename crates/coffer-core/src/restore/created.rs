//! What a restore creates on a bare host (the missing roles, the database, the workspace's
//! parent directories) and removing exactly that again when the restore fails. Each is
//! journaled before and after it is created (see [`super::leftovers`]), so that what a
//! killed restore created is recognised by the next one.

use std::path::Path;

use crate::context::RunContext;
use crate::postgres::Database;

use super::apply::rolled_back;
use super::leftovers::Journal;
use super::parents::CreatedDirs;
use super::{DatabaseTarget, Plan, RestoreError};

/// Creates the target database when the plan says so, and returns it: a failed restore
/// drops it again ([`drop_created`]).
fn create_database<'p>(
    plan: &'p Plan,
    ctx: &RunContext<'_>,
) -> Result<Option<&'p DatabaseTarget>, RestoreError> {
    let Some(db) = plan.database.as_ref().filter(|d| d.create) else {
        return Ok(None);
    };
    let maintenance = db.runner.with_dbname("postgres");
    maintenance
        .create_database(&db.name)
        .map_err(|e| rolled_back("create database", e.to_string()))?;
    ctx.done(&format!("database {} created", db.name));
    Ok(Some(db))
}

/// What this restore created on a bare host: the database and the workspace's parent
/// directories. A failed restore removes them again ([`Created::undo`]).
pub(super) struct Created<'p> {
    roles: Option<&'p DatabaseTarget>,
    database: Option<&'p DatabaseTarget>,
    dirs: CreatedDirs,
    /// Present when anything is to be created; left behind only by a killed process.
    journal: Option<Journal>,
}

impl Created<'_> {
    /// The restore succeeded: what it created stays, and its journal goes.
    pub(super) fn keep(self) {
        if let Some(journal) = self.journal {
            journal.close();
        }
    }

    /// Drops the database and the roles and removes the directories this restore created,
    /// and says so; then removes the journal (what could not be removed was reported).
    pub(super) fn undo(mut self, ctx: &RunContext<'_>) {
        // Closed last: a process killed while undoing leaves the journal for the next run.
        let journal = self.journal.take();
        self.undo_creations(ctx);
        if let Some(journal) = journal {
            journal.close();
        }
    }

    fn undo_creations(self, ctx: &RunContext<'_>) {
        drop_created(self.database, ctx);
        if let Some(db) = self.roles {
            match roles_runner(db).drop_roles(&db.create_roles) {
                Ok(()) => ctx.note(&format!(
                    "roles {}, which this restore had created, were dropped again",
                    db.create_roles.join(", ")
                )),
                Err(e) => ctx.note(&format!(
                    "roles {} were created by this restore and could not be dropped again ({}): drop them by hand",
                    db.create_roles.join(", "),
                    e.to_string().lines().next().unwrap_or_default()
                )),
            }
        }
        if self.dirs.is_empty() {
            return;
        }
        let all: Vec<String> = self.dirs.paths().map(|p| p.display().to_string()).collect();
        match self.dirs.remove() {
            Ok(()) => ctx.note(&format!(
                "removed the directories this restore had created: {}",
                all.join(", ")
            )),
            Err(left) => ctx.note(&format!(
                "directories this restore had created were left because they are not empty or were replaced: {left}"
            )),
        }
    }
}

/// Where roles are created: the target database, or the maintenance one while the target
/// does not exist yet.
fn roles_runner(db: &DatabaseTarget) -> Database {
    if db.create {
        db.runner.with_dbname("postgres")
    } else {
        db.runner.clone()
    }
}

/// Creates the missing roles the plan lists, from statements coffer wrote, in one
/// transaction, and returns the target they belong to: a failed restore drops them again.
fn create_roles<'p>(
    plan: &'p Plan,
    ctx: &RunContext<'_>,
) -> Result<Option<&'p DatabaseTarget>, RestoreError> {
    let Some(db) = plan
        .database
        .as_ref()
        .filter(|d| !d.create_roles.is_empty())
    else {
        return Ok(None);
    };
    roles_runner(db)
        .run_script(&db.roles_sql)
        .map_err(|e| rolled_back("create roles", e.to_string()))?;
    ctx.done(&format!("roles created: {}", db.create_roles.join(", ")));
    Ok(Some(db))
}

/// Drops the database [`create_database`] created, if it did: it is coffer's (created
/// empty by this run, nothing committed into it), so nothing of anyone else's goes with it.
fn drop_created(created: Option<&DatabaseTarget>, ctx: &RunContext<'_>) {
    if let Some(db) = created {
        match db.runner.with_dbname("postgres").drop_database(&db.name) {
            Ok(()) => ctx.note(&format!(
                "database {}, which this restore had created, was dropped again",
                db.name
            )),
            Err(e) => ctx.note(&format!(
                "database {} was created by this restore and could not be dropped again ({}): it is empty; drop it by hand (DROP DATABASE {})",
                db.name,
                e.to_string().lines().next().unwrap_or_default(),
                crate::postgres::quote_ident(&db.name)
            )),
        }
    }
}

impl<'p> Created<'p> {
    /// Creates, in this order, the missing roles, the database and the workspace's parent
    /// directories the plan lists, journaled in `root`; whatever fails undoes what was
    /// created before it.
    pub(super) fn make(
        plan: &'p Plan,
        root: &Path,
        ctx: &RunContext<'_>,
    ) -> Result<Created<'p>, RestoreError> {
        let roles = plan
            .database
            .as_ref()
            .map(|d| d.create_roles.clone())
            .unwrap_or_default();
        let database = plan
            .database
            .as_ref()
            .filter(|d| d.create)
            .map(|d| d.name.as_str());
        let dirs = plan
            .workspace
            .as_ref()
            .map(|w| w.create_parents.clone())
            .unwrap_or_default();
        let journal = if roles.is_empty() && database.is_none() && dirs.is_empty() {
            None
        } else {
            Some(
                Journal::begin(root, &plan.backup, &roles, database, &dirs)
                    .map_err(|e| rolled_back("journal", e))?,
            )
        };
        let mut created = Created {
            roles: None,
            database: None,
            dirs: CreatedDirs::default(),
            journal,
        };
        let step = |created: &mut Created<'p>| -> Result<(), RestoreError> {
            created.roles = create_roles(plan, ctx)?;
            if let (Some(db), Some(j)) = (created.roles, created.journal.as_mut()) {
                j.roles_created(&roles_runner(db))
                    .map_err(|e| rolled_back("journal", e))?;
            }
            created.database = create_database(plan, ctx)?;
            if let (Some(db), Some(j)) = (created.database, created.journal.as_mut()) {
                j.database_created(&db.runner.with_dbname("postgres"))
                    .map_err(|e| rolled_back("journal", e))?;
            }
            Ok(())
        };
        if let Err(e) = step(&mut created) {
            created.undo(ctx);
            return Err(e);
        }
        if let Some(ws) = plan
            .workspace
            .as_ref()
            .filter(|w| !w.create_parents.is_empty())
        {
            match CreatedDirs::create(&ws.create_parents) {
                Ok(dirs) => {
                    for dir in dirs.paths() {
                        ctx.done(&format!("created directory {}", dir.display()));
                    }
                    let recorded = created
                        .journal
                        .as_mut()
                        .map_or(Ok(()), |j| j.dirs_created(dirs.identities()));
                    created.dirs = dirs;
                    if let Err(e) = recorded {
                        created.undo(ctx);
                        return Err(rolled_back("journal", e));
                    }
                }
                Err(e) => {
                    created.undo(ctx);
                    return Err(rolled_back("workspace", e));
                }
            }
        }
        Ok(created)
    }
}
