//! What a restore creates on a bare host (the missing roles, the database, the workspace's
//! parent directories) and removing exactly that again when the restore fails.

use crate::context::RunContext;
use crate::postgres::Database;

use super::apply::rolled_back;
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
}

impl Created<'_> {
    /// Drops the database and the roles and removes the directories this restore created,
    /// and says so.
    pub(super) fn undo(self, ctx: &RunContext<'_>) {
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
    /// directories the plan lists; whatever fails undoes what was created before it.
    pub(super) fn make(plan: &'p Plan, ctx: &RunContext<'_>) -> Result<Created<'p>, RestoreError> {
        let mut created = Created {
            roles: create_roles(plan, ctx)?,
            database: None,
            dirs: CreatedDirs::default(),
        };
        match create_database(plan, ctx) {
            Ok(db) => created.database = db,
            Err(e) => {
                created.undo(ctx);
                return Err(e);
            }
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
                    created.dirs = dirs;
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
