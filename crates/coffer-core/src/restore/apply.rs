//! Execution: the hooks around the restore, the two streams side by side, then the
//! workspace swap and the database commit, in that order, and the live head read back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::context::RunContext;
use crate::postgres::Database;
use crate::report::hooks::{self, Stage};
use crate::stream::archive::ExtractStats;
use crate::stream::crypto::Identities;
use crate::stream::dump_scan::DumpFacts;
use crate::util::units;
use crate::workspace::swap::Swap;

use super::created::Created;
use super::database::{PendingCommit, stream_database};
use super::db_swap::Swapped;
use super::failure::StreamFailure;
use super::parallel::{ParallelPending, PhaseTimings, stream_database_parallel};
use super::workspace::extract_workspace;
use super::{
    DatabaseRestored, DatabaseTarget, Plan, RestoreError, RestoreReport, RestoreSettings,
    RestoreSteps, WorkspaceRestored, WorkspaceTarget,
};

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

/// Executes a plan, all or nothing (see [the module docs](super)):
///
/// 1. runs `hooks.before_restore` (stop the application) and checks that no other session
///    is connected to the target database;
/// 2. proves each coffer artifact's size and SHA-256 against the manifest before a byte of
///    it is decoded ([`ArtifactReader::open_proven`](crate::stream::artifact::ArtifactReader::open_proven);
///    legacy artifacts have no record), then streams, concurrently, the database artifact
///    into `psql` inside one transaction (`-X`, `ON_ERROR_STOP`, psql's restricted mode with
///    a random `\restrict` key, `BEGIN` … no `COMMIT` yet), through the [`crate::stream::dump_scan`]
///    gate (no psql meta-command and no transaction control ever reaches psql; the dump's
///    own `\restrict` lines and pg_dump's large-object `BEGIN;`/`COMMIT;` are dropped), and
///    the workspace artifact into a staging directory beside the workspace;
/// 3. only when both streams ended with their hashes matching the manifest, the dump
///    complete at the top level and its head and tables equal to the manifest's, swaps the
///    workspace in by rename and sends `COMMIT`; a failed commit swaps the previous
///    workspace back;
/// 4. runs `hooks.after_restore` whatever happened, so the application comes back, and
///    reads the live `alembic_version` to compare it with the backup's head.
pub fn execute(
    settings: &RestoreSettings,
    plan: &Plan,
    options: &RestoreSteps,
    identities: Option<&Identities>,
    ctx: &RunContext<'_>,
) -> Result<RestoreReport, RestoreError> {
    let started = Instant::now();
    let hooks_on = options.run_hooks;
    if hooks_on && !settings.hooks.before_restore.is_empty() {
        if let Err(e) = hooks::run_until_failure(
            Stage::BeforeRestore,
            &settings.hooks.before_restore,
            &hook_env(plan, None),
            settings.hooks.timeout,
        ) {
            let err = Err(RestoreError::BeforeHook(e));
            run_after_hooks(settings, plan, &err, ctx);
            return err;
        }
        ctx.done("application stopped (hooks.before_restore)");
    }
    let mut result = apply(
        plan,
        options,
        identities,
        (&settings.backup_root, ctx),
        started,
    );
    let restarted = if hooks_on {
        run_after_hooks(settings, plan, &result, ctx)
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
            match check_live_head(&db.runner, report, ctx) {
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
    ctx: &RunContext<'_>,
) -> Option<bool> {
    if settings.hooks.after_restore.is_empty() {
        return None;
    }
    let failures = hooks::run_all(
        Stage::AfterRestore,
        &settings.hooks.after_restore,
        &hook_env(plan, Some(result)),
        settings.hooks.timeout,
    );
    for f in &failures {
        ctx.note(&f.to_string());
    }
    if failures.is_empty() {
        ctx.done("application restarted (hooks.after_restore)");
    }
    Some(failures.is_empty())
}

/// Compares the live `alembic_version` with the head the dump carried.
fn check_live_head(
    db: &Database,
    report: &mut RestoreReport,
    ctx: &RunContext<'_>,
) -> Result<(), String> {
    let expected = report.alembic_head.take();
    let live = db
        .alembic_heads()
        .map_err(|e| format!("cannot read alembic_version after the restore: {e}"))?;
    report.alembic_head = live.clone();
    match (expected, live) {
        (None, None) => {
            ctx.note("the backup has no alembic_version table");
            Ok(())
        }
        (Some(e), Some(l)) if e == l => {
            ctx.done(&format!("alembic head matches manifest ({})", l.join(",")));
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
    options: &RestoreSteps,
    identities: Option<&Identities>,
    (root, ctx): (&std::path::Path, &RunContext<'_>),
    started: Instant,
) -> Result<RestoreReport, RestoreError> {
    end_other_sessions(plan, options, ctx)?;
    let created = Created::make(plan, root, ctx)?;
    let swap = match &plan.workspace {
        Some(ws) => match Swap::begin(&ws.path, &plan.backup) {
            Ok(s) => Some(s),
            Err(e) => {
                created.undo(ctx);
                return Err(rolled_back("workspace", e.to_string()));
            }
        },
        None => None,
    };

    let cancel = ctx.cancel();
    let (db_result, ws_result) = stream_both(plan, swap.as_ref(), identities, (root, ctx));
    let (streamed, failure) = gather(db_result, ws_result, ctx);
    if let Some(f) = failure {
        return Err(fail(
            f.into_error(cancel, &plan.backup),
            streamed.pending,
            swap,
            created,
            ctx,
        ));
    }
    if let Some(signal) = cancel.signal() {
        return Err(fail(
            RestoreError::Interrupted { signal },
            streamed.pending,
            swap,
            created,
            ctx,
        ));
    }

    let mut pending = streamed.pending;
    if let Some(DatabasePending::Parallel(p)) = pending.as_mut() {
        // Journaled before the swap, so the next run settles a kill after it rightly.
        let journaled = match &plan.workspace {
            Some(ws) => p.swap.set_workspace(&ws.path),
            None => Ok(()),
        }
        .and_then(|()| p.swap.set_keep_old(options.keep_old));
        if let Err(e) = journaled {
            return Err(fail(e, pending, swap, created, ctx));
        }
    }
    let mut timings = pending.as_ref().and_then(DatabasePending::timings);
    let swap_started = Instant::now();
    let (swap, db_swapped) =
        swap_in_and_commit(pending, swap, created, options.terminate_connections, ctx)?;
    if let Some(t) = timings.as_mut() {
        t.swap = swap_started.elapsed().as_secs_f64();
    }
    let mut report = RestoreReport {
        backup: plan.backup.clone(),
        database: None,
        workspace: None,
        alembic_head: None,
        application_restarted: None,
        duration_seconds: 0.0,
    };
    if let (Some(db), Some((facts, sql_bytes))) = (&plan.database, streamed.db_facts) {
        report.database = Some(database_restored(db, &facts, sql_bytes, timings, ctx));
        report.alembic_head = facts.alembic_heads;
    }
    if let (Some(ws), Some(stats), Some(sw)) = (&plan.workspace, streamed.ws_stats, swap) {
        report.workspace = Some(workspace_restored(ws, stats, sw, options.keep_old, ctx));
    }
    if let Some(swapped) = db_swapped {
        finish_database_swap(swapped, options.keep_old, ctx);
    }
    report.duration_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A failure of step `what` (e.g. `database`) that left nothing changed.
pub(super) fn rolled_back(what: &str, reason: String) -> RestoreError {
    RestoreError::RolledBack {
        what: what.into(),
        reason,
    }
}

/// Sessions may have come back after the before-hooks; the restore needs them gone.
fn end_other_sessions(
    plan: &Plan,
    options: &RestoreSteps,
    ctx: &RunContext<'_>,
) -> Result<(), RestoreError> {
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
                ctx.done(&format!("terminated {n} other session(s)"));
            } else {
                let list = found
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(RestoreError::Refused {
                    problems: vec![format!(
                        "{} other session(s) are connected to {}: {list}; stop the application or configure hooks.before_restore",
                        found.len(),
                        db.name
                    )],
                    hints: vec![crate::Hint::TerminateConnections],
                });
            }
        }
    }
    Ok(())
}

/// The database with the whole dump applied, waiting for the commit: one transaction on
/// the target, or a new database restored by several sessions, waiting to be swapped in.
/// Dropped, either is undone (rolled back, or the new database dropped).
enum DatabasePending {
    Transaction(PendingCommit),
    Parallel(Box<ParallelPending>),
}

impl DatabasePending {
    fn confinement(&self) -> &crate::postgres::sandbox_exec::Confinement {
        match self {
            DatabasePending::Transaction(p) => &p.confinement,
            DatabasePending::Parallel(p) => &p.confinement,
        }
    }

    fn timings(&self) -> Option<PhaseTimings> {
        match self {
            DatabasePending::Transaction(_) => None,
            DatabasePending::Parallel(p) => Some(p.timings.clone()),
        }
    }
}

/// What the database stream yields: the database waiting for the commit, the dump's facts
/// and the bytes of SQL applied.
type DatabaseStream = Result<(DatabasePending, (DumpFacts, u64)), StreamFailure>;

/// Runs the database and workspace streams concurrently.
fn stream_both(
    plan: &Plan,
    swap: Option<&Swap>,
    identities: Option<&Identities>,
    (root, ctx): (&std::path::Path, &RunContext<'_>),
) -> (
    Option<DatabaseStream>,
    Option<Result<ExtractStats, StreamFailure>>,
) {
    let (progress, cancel) = (ctx.progress(), ctx.cancel());
    // Either stream failing stops the other at its next chunk.
    let abort = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let db_handle = plan.database.as_ref().map(|db| {
            let abort = abort.clone();
            s.spawn(move || {
                let r = if db.jobs > 1 {
                    stream_database_parallel(
                        db,
                        db.jobs,
                        identities,
                        progress,
                        cancel,
                        &abort,
                        (&plan.backup, root),
                    )
                    .map(|(p, f)| (DatabasePending::Parallel(Box::new(p)), f))
                } else {
                    stream_database(db, identities, progress, cancel, &abort, &plan.backup)
                        .map(|(p, f)| (DatabasePending::Transaction(p), f))
                };
                if r.is_err() {
                    abort.store(true, Ordering::SeqCst);
                }
                r
            })
        });
        let ws_handle = plan.workspace.as_ref().zip(swap).map(|(ws, sw)| {
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
    })
}

/// What the streams left for the commit.
struct Streamed {
    /// The database waiting for the commit.
    pending: Option<DatabasePending>,
    /// The dump's facts and the bytes of SQL applied.
    db_facts: Option<(DumpFacts, u64)>,
    /// What was extracted into staging.
    ws_stats: Option<ExtractStats>,
}

/// Takes what each stream produced, and the failure to report if either failed.
fn gather(
    db_result: Option<DatabaseStream>,
    ws_result: Option<Result<ExtractStats, StreamFailure>>,
    ctx: &RunContext<'_>,
) -> (Streamed, Option<StreamFailure>) {
    // The first real failure wins over "stopped because the other one failed".
    let (mut pending, mut db_facts, mut ws_stats, mut failure) = (None, None, None, None);
    match db_result {
        Some(Ok((p, facts))) => {
            if let Some(note) = p.confinement().note() {
                ctx.note(&note);
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
    let streamed = Streamed {
        pending,
        db_facts,
        ws_stats,
    };
    (streamed, failure)
}

/// Puts everything back as it was before the restore, and says what went wrong.
fn fail(
    err: RestoreError,
    pending: Option<DatabasePending>,
    swap: Option<Swap>,
    created: Created<'_>,
    ctx: &RunContext<'_>,
) -> RestoreError {
    // Dropped first: psql ends without COMMIT, so the database is as it was (and a
    // database coffer created is no longer in use when it is dropped below).
    drop(pending);
    let undo = swap.map(Swap::abandon).transpose();
    created.undo(ctx);
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
}

/// Both streams verified: swaps the workspace in, then commits the database (sends
/// `COMMIT`, or renames the new database into place); a failed commit swaps the previous
/// workspace back. Returns the workspace swap and the database swap, still to be finished.
fn swap_in_and_commit(
    pending: Option<DatabasePending>,
    mut swap: Option<Swap>,
    created: Created<'_>,
    terminate: bool,
    ctx: &RunContext<'_>,
) -> Result<(Option<Swap>, Option<Swapped>), RestoreError> {
    if let Some(sw) = swap.as_mut()
        && let Err(e) = sw.swap_in()
    {
        if e.left_inconsistent() {
            drop(pending);
            created.undo(ctx);
            return Err(RestoreError::Inconsistent(format!(
                "the database transaction was rolled back, but {e}"
            )));
        }
        return Err(fail(
            rolled_back("workspace", e.to_string()),
            pending,
            swap,
            created,
            ctx,
        ));
    }
    let committed = match pending {
        None => Ok(None),
        Some(DatabasePending::Transaction(p)) => p
            .commit()
            .map(|()| None)
            .map_err(|e| rolled_back("database commit", e.to_string())),
        Some(DatabasePending::Parallel(p)) => p.swap.swap(terminate).map(Some),
    };
    let db_swapped = match committed {
        Ok(s) => s,
        Err(err) => return Err(put_back(err, swap, created, ctx)),
    };
    created.keep();
    Ok((swap, db_swapped))
}

/// The database was not committed: the previous workspace is put back.
fn put_back(
    err: RestoreError,
    swap: Option<Swap>,
    created: Created<'_>,
    ctx: &RunContext<'_>,
) -> RestoreError {
    let undone = swap.map(Swap::swap_back).transpose();
    created.undo(ctx);
    match undone {
        Ok(_) => err,
        Err(se) => RestoreError::Inconsistent(format!(
            "the database was not committed ({err}), but the previous workspace could not be put back: {se}"
        )),
    }
}

/// Drops (or keeps, renamed) the database the swap replaced. The restore is committed
/// either way: a failure is a note.
fn finish_database_swap(swapped: Swapped, keep_old: bool, ctx: &RunContext<'_>) {
    match swapped.finish(keep_old) {
        Ok(Some(kept)) => ctx.note(&format!("previous database kept as {kept}")),
        Ok(None) => {}
        Err(e) => ctx.note(&format!(
            "the previous database could not be cleaned up ({e}); the next restore finishes it, or drop it by hand"
        )),
    }
}

/// Reports the committed database.
fn database_restored(
    db: &DatabaseTarget,
    facts: &DumpFacts,
    sql_bytes: u64,
    phases: Option<PhaseTimings>,
    ctx: &RunContext<'_>,
) -> DatabaseRestored {
    let rows = facts.tables.values().sum();
    ctx.done(&format!(
        "database restored into {} ({} tables, {rows} rows)",
        db.name,
        facts.tables.len()
    ));
    if let Some(t) = &phases {
        ctx.done(&format!(
            "{} sessions: new database {:.1}s, proof {:.1}s, schema {:.1}s, data {:.1}s, indexes after the data {:.1}s, rest of the dump {:.1}s, swap {:.1}s",
            t.jobs, t.create, t.prove, t.pre_data, t.data, t.indexes, t.post_data, t.swap
        ));
    }
    DatabaseRestored {
        name: db.name.clone(),
        tables: facts.tables.clone(),
        rows,
        sql_bytes,
        phases,
    }
}

/// Finishes the committed workspace swap (`keep_old`: the previous tree is kept, renamed)
/// and reports it.
fn workspace_restored(
    ws: &WorkspaceTarget,
    stats: ExtractStats,
    sw: Swap,
    keep_old: bool,
    ctx: &RunContext<'_>,
) -> WorkspaceRestored {
    // The restore is committed either way; a cleanup that failed is finished by the next
    // restore (the journal says committed), so it is a note, not an inconsistency.
    let kept = sw.commit(keep_old).unwrap_or_else(|e| {
        ctx.note(&format!(
            "the previous workspace could not be cleaned up ({e}); the next restore finishes it, or remove it by hand"
        ));
        None
    });
    ctx.done(&format!(
        "workspace restored to {} ({} files, {} directories, {} symlinks, {})",
        ws.path.display(),
        stats.files,
        stats.directories,
        stats.symlinks,
        units::bytes(stats.file_bytes)
    ));
    if let Some(k) = &kept {
        ctx.note(&format!("previous workspace kept at {}", k.display()));
    }
    WorkspaceRestored {
        path: ws.path.clone(),
        stats,
        previous_kept_at: kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::{HeadCheck, Source};

    fn plan() -> Plan {
        Plan {
            backup: "b1".into(),
            backup_path: "/var/backups/coffer/b1".into(),
            created: None,
            database: None,
            workspace: None,
            head: HeadCheck {
                backup: None,
                expected: None,
                source: None,
                relation: None,
            },
            sessions: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
            hints: Vec::new(),
        }
    }

    fn value<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn before_hooks_get_the_backup_and_no_outcome() {
        let env = hook_env(&plan(), None);
        assert_eq!(
            env,
            [
                ("COFFER_OPERATION".to_string(), "restore".to_string()),
                ("COFFER_BACKUP_NAME".into(), "b1".into()),
                ("COFFER_BACKUP_PATH".into(), "/var/backups/coffer/b1".into()),
            ]
        );
    }

    #[test]
    fn after_hooks_get_the_outcome_and_the_first_line_of_the_error() {
        let failed: Result<RestoreReport, RestoreError> = Err(RestoreError::Refused {
            problems: vec!["first problem".into(), "second problem".into()],
            hints: Vec::new(),
        });
        let env = hook_env(&plan(), Some(&failed));
        assert_eq!(value(&env, "COFFER_OUTCOME"), Some("failure"));
        assert_eq!(
            value(&env, "COFFER_ERROR"),
            Some("restore refused, nothing was changed: first problem")
        );

        let report = RestoreReport {
            backup: "b1".into(),
            database: None,
            workspace: None,
            alembic_head: None,
            application_restarted: None,
            duration_seconds: 0.0,
        };
        let env = hook_env(&plan(), Some(&Ok(report)));
        assert_eq!(value(&env, "COFFER_OUTCOME"), Some("success"));
        assert_eq!(value(&env, "COFFER_ERROR"), Some(""));
    }

    #[test]
    fn hooks_get_the_workspace_being_replaced() {
        let mut plan = plan();
        plan.workspace = Some(WorkspaceTarget {
            path: "/srv/app/workspace".into(),
            exists: true,
            create_parents: Vec::new(),
            source: Source {
                path: "/var/backups/coffer/b1/workspace.tar.gz".into(),
                encrypted: false,
                expected: None,
                remote: None,
            },
        });
        let env = hook_env(&plan, None);
        assert_eq!(value(&env, "COFFER_WORKSPACE"), Some("/srv/app/workspace"));
        assert_eq!(value(&env, "COFFER_DATABASE"), None);
    }
}
