//! Restoring a flat dump file ([`crate::check::flat`]): the database only, all or nothing,
//! through the same gate and confined psql transaction as a backup's dump ([`super::execute`]).
//!
//! The file has been read to its end first ([`crate::check::flat::scan`]): a broken gzip
//! stream, a dump without its completion trailer or one the gate refuses is refused before
//! anything is changed, and the restore then proves the file is still the one read (its
//! size and SHA-256, before a byte reaches psql; both hashes again before `COMMIT`).
//!
//! A dump made without `pg_dump --clean` creates its objects without dropping them first:
//! in a database that holds objects it would fail on the first one that exists, or mix
//! itself into what is there. Such a dump goes only into an empty database or one coffer
//! creates (dropped again if the restore fails); a database that is not empty is refused
//! up front. A dump with `DROP` statements replaces what it names, as a backup's dump does.

use crate::check::flat::{FlatDump, FlatScan};
use crate::hint::{Hint, Problems};
use crate::postgres::{Database, PgError};
use crate::util::units;

use super::head::check_head;
use super::{DatabaseTarget, HeadCheck, Plan, RestoreError, RestoreSettings, RestoreSteps, Source};

/// Objects a dump could collide with, in schemas other than the system's (`pg_*`,
/// `information_schema`), plus the database-wide ones pg_dump writes. The `public` schema
/// and `plpgsql`, which every new database has, do not count.
const USER_OBJECTS: &str = "\
WITH ns AS (SELECT oid FROM pg_namespace \
            WHERE nspname !~ '^pg_' AND nspname <> 'information_schema') \
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace IN (SELECT oid FROM ns)) \
     + (SELECT count(*) FROM pg_proc WHERE pronamespace IN (SELECT oid FROM ns)) \
     + (SELECT count(*) FROM pg_type WHERE typnamespace IN (SELECT oid FROM ns)) \
     + (SELECT count(*) FROM pg_collation WHERE collnamespace IN (SELECT oid FROM ns)) \
     + (SELECT count(*) FROM pg_operator WHERE oprnamespace IN (SELECT oid FROM ns)) \
     + (SELECT count(*) FROM pg_ts_config WHERE cfgnamespace IN (SELECT oid FROM ns)) \
     + (SELECT count(*) FROM pg_ts_dict WHERE dictnamespace IN (SELECT oid FROM ns)) \
     + (SELECT count(*) FROM pg_conversion WHERE connamespace IN (SELECT oid FROM ns)) \
     + (SELECT count(*) FROM pg_namespace WHERE oid IN (SELECT oid FROM ns) AND nspname <> 'public') \
     + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') \
     + (SELECT count(*) FROM pg_largeobject_metadata) \
     + (SELECT count(*) FROM pg_event_trigger) \
     + (SELECT count(*) FROM pg_publication) \
     + (SELECT count(*) FROM pg_foreign_data_wrapper) \
     + (SELECT count(*) FROM pg_foreign_server)";

/// How many objects the database `db` holds that a dump could collide with.
pub(super) fn user_objects(db: &Database) -> Result<u64, PgError> {
    let out = db.query(USER_OBJECTS)?;
    out.trim().parse().map_err(|_| {
        PgError::Unsupported(format!(
            "unexpected answer counting the database's objects: {out:?}"
        ))
    })
}

/// The refusal of a database that is not empty, for a dump without `DROP`s.
fn not_empty(name: &str, objects: u64) -> String {
    format!(
        "the database {name} is not empty ({objects} objects) and the dump has no DROP statements \
         (it was made without pg_dump --clean): restoring it there would fail on the first object \
         that exists, or mix it into what is there; restore it into a new database, or empty this one first"
    )
}

/// Pre-flight for a flat dump already read to its end (`scan`); changes nothing. The
/// database is the one `steps.target_db` names, else the configured one; a missing one
/// is created.
pub fn prepare_flat(
    settings: &RestoreSettings,
    flat: &FlatDump,
    scan: &FlatScan,
    steps: &RestoreSteps,
) -> Result<Plan, RestoreError> {
    if let Some(reason) = scan.facts.unusable() {
        return Err(RestoreError::Damaged {
            backup: flat.name.clone(),
            reason: format!("{reason} (in {})", flat.path.display()),
        });
    }
    let mut problems = Problems::default();
    let mut plan = Plan {
        backup: flat.name.clone(),
        backup_path: flat.path.clone(),
        created: None,
        database: None,
        workspace: None,
        head: HeadCheck {
            backup: scan.facts.alembic_heads.clone(),
            expected: None,
            source: None,
            relation: None,
        },
        sessions: Vec::new(),
        checks: vec![scan.summary(flat)],
        notes: Vec::new(),
        hints: Vec::new(),
    };
    if !steps.database {
        problems.push_hinted(
            format!(
                "{} is a database dump: it holds no workspace to restore",
                flat.name
            ),
            [Hint::DatabaseOnly],
        );
        return Err(RestoreError::refused(problems));
    }
    if steps.workspace {
        plan.notes
            .push("a flat dump holds only the database: the workspace is left as it is".into());
    }
    let runner = match &steps.target_db {
        Some(name) => settings.database.with_dbname(name),
        None => settings.database.clone(),
    };
    let maintenance = settings.database.with_dbname("postgres");
    let mut target = DatabaseTarget {
        name: runner.configured_dbname().unwrap_or_default(),
        server_version: None,
        create: false,
        create_roles: Vec::new(),
        roles_sql: String::new(),
        runner: runner.clone(),
        source: Source {
            path: flat.path.clone(),
            encrypted: false,
            expected: Some(scan.record(flat)),
            remote: None,
        },
        manifest: None,
        jobs: 1,
    };
    match runner.server_info() {
        Ok(info) => {
            plan.checks.push(format!(
                "database {} reachable (PostgreSQL {}, {})",
                info.database,
                info.version,
                units::bytes(info.size_bytes)
            ));
            target.name = info.database;
            target.server_version = Some(info.version);
            match user_objects(&runner) {
                Ok(0) => plan
                    .checks
                    .push(format!("database {} is empty", target.name)),
                Ok(n) if scan.facts.drops => plan.notes.push(format!(
                    "database {} holds {n} objects: the dump drops and recreates each object it holds (it was made with pg_dump --clean); other objects stay",
                    target.name
                )),
                Ok(n) => problems.push_hinted(not_empty(&target.name, n), [Hint::TargetDb]),
                Err(e) => problems.push(format!(
                    "cannot check whether database {} is empty: {e}",
                    target.name
                )),
            }
        }
        Err(e) => {
            let missing = !target.name.is_empty()
                && matches!(maintenance.database_exists(&target.name), Ok(false));
            if !missing {
                problems.push(format!(
                    "cannot reach the target database: {}",
                    e.to_string().trim_end()
                ));
                return Err(RestoreError::refused(problems));
            }
            plan.checks.push(format!(
                "database {} does not exist: it will be created (and dropped again if the restore fails)",
                target.name
            ));
            target.create = true;
        }
    }
    let owners: Vec<String> = scan.facts.owners.iter().cloned().collect();
    let probe = if target.create { &maintenance } else { &runner };
    match probe.missing_roles(&owners) {
        Ok(missing) if missing.is_empty() => {
            if !owners.is_empty() {
                plan.checks
                    .push(format!("roles exist: {}", owners.join(", ")));
            }
        }
        Ok(missing) => problems.push(format!(
            "roles named by the dump's OWNER TO do not exist: {}; create them first (CREATE ROLE name LOGIN)",
            missing.join(", ")
        )),
        Err(e) => problems.push(format!("cannot check roles: {e}")),
    }
    if !target.create {
        check_sessions(settings, steps, &target, &mut plan, &mut problems);
    }
    plan.database = Some(target);
    if steps.check_code_head {
        check_head(settings, steps, &mut plan, &mut problems);
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(RestoreError::refused(problems))
    }
}

/// Other sessions on the target: refused, unless they are to be ended or the
/// before-restore hooks should end them (as for a backup's restore).
fn check_sessions(
    settings: &RestoreSettings,
    steps: &RestoreSteps,
    target: &DatabaseTarget,
    plan: &mut Plan,
    problems: &mut Problems,
) {
    let found = match target.runner.other_sessions() {
        Ok(found) if found.is_empty() => {
            plan.checks.push("no other sessions connected".into());
            return;
        }
        Ok(found) => found,
        Err(e) => return problems.push(format!("cannot list sessions: {e}")),
    };
    super::sessions::judge_sessions(
        &found,
        &target.name,
        steps.terminate_connections,
        steps.run_hooks && !settings.hooks.before_restore.is_empty(),
        &mut plan.notes,
        problems,
    );
    plan.sessions = found;
}

/// Right before the restore: a database that was empty at pre-flight must still be (a dump
/// without `DROP`s must not be mixed into objects created since). Nothing to check for a
/// database coffer creates, or when `required` is false.
pub fn still_empty(plan: &Plan, required: bool) -> Result<(), RestoreError> {
    let Some(db) = plan.database.as_ref().filter(|d| required && !d.create) else {
        return Ok(());
    };
    let problem = match user_objects(&db.runner) {
        Ok(0) => return Ok(()),
        Ok(n) => not_empty(&db.name, n),
        Err(e) => format!(
            "cannot check whether database {} is still empty: {e}",
            db.name
        ),
    };
    Err(RestoreError::Refused {
        problems: vec![problem],
        hints: vec![Hint::TargetDb],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::TempCluster;

    #[test]
    fn a_new_database_is_empty_and_any_object_makes_it_not() {
        let cluster = TempCluster::start().unwrap_or_else(|e| panic!("{e}"));
        for (i, sql) in [
            "CREATE TABLE t (x int)",
            "CREATE SCHEMA s",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE TYPE e AS ENUM ('a')",
            "CREATE SEQUENCE q",
            "SELECT lo_create(0)",
        ]
        .into_iter()
        .enumerate()
        {
            let name = format!("d{i}");
            cluster.create_database(&name).unwrap();
            let db = cluster.database(&name);
            assert_eq!(user_objects(&db).unwrap(), 0, "a new database");
            cluster.psql(&name, sql).unwrap();
            assert!(user_objects(&db).unwrap() > 0, "{sql}");
        }
    }
}
