//! Settling what a killed restore through a new database left, by the journal and OIDs
//! (see the parent module).

use super::*;

/// Whether a killed restore's database swap journal is in `root` (then [`recover`] must
/// settle it before the workspace's swap is recovered: it decides that swap's outcome).
pub(crate) fn journal_left(root: &Path) -> bool {
    std::fs::symlink_metadata(root.join(JOURNAL_FILE)).is_ok()
}

/// The runner the swap and its recovery use for `target`: the configured connection aimed
/// at the `postgres` database (`template1` when the target is `postgres` itself: a database
/// cannot be renamed through a connection to it). Each of its statements waits at most
/// [`SWAP_LOCK_TIMEOUT`] for a lock: a session holding one on either database (a
/// transaction left open after `COMMENT ON DATABASE`, a `GRANT` on it) fails the step
/// instead of holding the restore, with the target refusing connections, indefinitely.
pub(crate) fn admin_for(runner: &Database, target: &str) -> Database {
    runner
        .with_dbname(if target == "postgres" {
            "template1"
        } else {
            "postgres"
        })
        .with_lock_timeout(Some(SWAP_LOCK_TIMEOUT))
}

/// Settles what a killed restore through a new database left (call before pre-flight, and
/// before [`super::recover_interrupted`]: on `Err` do not settle the workspace either).
/// Judged by the journal in `root` and OIDs only (see the module docs), through `admin`
/// aimed at [`admin_for`] the journaled target; the workspace the
/// same restore swapped is the journaled one ([`DatabaseSwap::set_workspace`]), else
/// `workspace`. Returns what it did and left, for the
/// operator; a journal held by a running restore is refused and left alone.
pub(crate) fn recover(
    admin: &Database,
    root: &Path,
    workspace: Option<&Path>,
) -> Result<Vec<String>, RestoreError> {
    let path = root.join(JOURNAL_FILE);
    let (_locked, entries) = match open_left::<Entries>(&path) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => {
            return Err(e.refusal(
                &path,
                "swapping a database in",
                &format!("check the databases whose names end in {NEW_SUFFIX} and {OLD_SUFFIX}"),
            ));
        }
    };
    let retry = |what: String| {
        refused(format!(
            "a restore of {} killed earlier (process {}) left what coffer cannot settle yet: {what}; {} stays until a restore can",
            entries.backup,
            entries.pid,
            path.display()
        ))
    };
    let target = &entries.target;
    let admin = &admin_for(admin, target);
    let (new, old) = helper_names(target).map_err(|e| retry(e.to_string()))?;
    let oid_of = |name: &str| {
        admin
            .database_oid(name)
            .map_err(|e| retry(format!("cannot check database {name}: {}", first_line(&e))))
    };
    // A session still renaming or dropping these databases is most likely the killed run's
    // own swap (its psql outlives it) held by a lock: settling now would wait on it as long
    // as that lock is held, and race its commit.
    let oids: Vec<u32> = [entries.target_oid, entries.new_oid]
        .into_iter()
        .flatten()
        .collect();
    let busy = renaming_sessions(admin, &oids).map_err(|e| {
        retry(format!(
            "cannot check the server's locks: {}",
            first_line(&e)
        ))
    })?;
    if !busy.is_empty() {
        return Err(retry(format!(
            "session(s) {busy} of the server hold or wait for a lock to rename or drop {target} or {new}, most likely that restore's own swap (its psql outlives it) waiting for a lock another session holds: let it end (end what holds the lock), or end it (SELECT pg_terminate_backend(pid)), then run again"
        )));
    }
    let target_now = oid_of(target)?;
    let committed = entries.new_oid.is_some() && target_now == entries.new_oid;
    let mut notes = Vec::new();
    if committed {
        if let Some(ws) = entries.workspace.as_deref().or(workspace) {
            let ws = crate::restore::workspace::swap_path(ws);
            swap::mark_committed(&ws, entries.keep_old)
                .map_err(|e| retry(format!("the workspace swap of the same restore: {e}")))?;
        }
        if entries.allowed_connections {
            allow_connections(admin, target, true)
                .map_err(|e| retry(format!("cannot open {target} to connections: {e}")))?;
        }
        if let Some(oid) = entries.target_oid {
            let mut entries = entries.clone();
            if entries.keep_old && entries.kept_as.is_none() {
                entries.kept_as = Some(kept_name(target, Utc::now()));
            }
            match settle_old(admin, &entries, &old, oid).map_err(retry)? {
                Some(kept) => notes.push(format!("the previous database was kept as {kept}")),
                None => notes.push(format!("the previous database ({old}) was dropped")),
            }
        }
        notes.insert(
            0,
            format!(
                "a restore of {} into {target} was killed after it had swapped the restored database in: it is committed; finished its cleanup",
                entries.backup
            ),
        );
    } else {
        if entries.phase == Phase::Swapping
            && entries.allowed_connections
            && entries.target_oid.is_some()
            && target_now == entries.target_oid
        {
            allow_connections(admin, target, true)
                .map_err(|e| retry(format!("cannot open {target} to connections: {e}")))?;
        }
        if entries.target_oid.is_some() && oid_of(&old)? == entries.target_oid {
            notes.push(format!(
                "the database that was {target} before that restore is {old} now (renamed by it, then replaced by something else): rename it back by hand if it is wanted (ALTER DATABASE {} RENAME TO …)",
                quote_ident(&old)
            ));
        }
        let new_now = oid_of(&new)?;
        let dropped = match (entries.new_oid, new_now) {
            (Some(want), Some(found)) if want == found => {
                admin.drop_database(&new).map_err(|e| {
                    retry(format!("cannot drop database {new}: {}", first_line(&e)))
                })?;
                true
            }
            _ => false,
        };
        // "Not swapped" is final only once the new database cannot be renamed in any more
        // (dropped here, or gone). The killed run's psql outlives it holding the whole swap
        // script, and a lock can hold its renames until after the target's OID was read
        // above: if they committed since, the swap is committed and the journal stays for
        // the next run to finish it (putting the previous workspace back would mix them).
        if entries.new_oid.is_some() && oid_of(target)? == entries.new_oid {
            return Err(retry(format!(
                "its swap into {target} committed while this run was settling it (a session of that restore outlived it); run the restore again to finish it"
            )));
        }
        notes.push(format!(
            "a restore of {} into {target} was killed before it swapped the restored database in: {target} is as it was{}",
            entries.backup,
            if dropped {
                format!("; the partly restored {new} was dropped")
            } else {
                String::new()
            }
        ));
    }
    // What is not provably the killed restore's is named, never dropped.
    for name in [&new, &old] {
        if let Some(found) = oid_of(name)?
            && Some(found) != entries.new_oid
            && Some(found) != entries.target_oid
        {
            notes.push(format!(
                "left database {name}: it is not the one that restore created or renamed (another OID; its creation may never have been confirmed): check it and drop it by hand if unwanted (DROP DATABASE {})",
                quote_ident(name)
            ));
        }
    }
    remove(&path);
    Ok(notes)
}

/// The server sessions (other than `admin`'s own) that hold or wait for `ACCESS EXCLUSIVE`
/// on one of the databases `oids` (a rename or a drop under way), as `pid, pid`; empty
/// when none.
fn renaming_sessions(admin: &Database, oids: &[u32]) -> Result<String, PgError> {
    if oids.is_empty() {
        return Ok(String::new());
    }
    let list = oids
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    admin.query(&format!(
        "SELECT coalesce(string_agg(DISTINCT pid::text, ', '), '') FROM pg_locks \
         WHERE locktype = 'object' AND classid = 'pg_database'::regclass AND objid IN ({list}) \
           AND mode = 'AccessExclusiveLock' AND pid <> pg_backend_pid()"
    ))
}
