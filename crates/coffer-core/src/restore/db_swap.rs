//! A restore into a new database `<target>__coffer_new` and its swap into place, for the
//! restore that loads the dump in several sessions (one transaction cannot span them).
//!
//! [`DatabaseSwap::begin`] journals, then creates the new database like the target
//! ([`Database::create_database_like`]: owner, locale, settings, grants). The dump is
//! restored into it; [`DatabaseSwap::swap`] blocks connections to the target, ends (or
//! refuses) its sessions and renames `target` → `<target>__coffer_old` and the new one →
//! `target` in ONE transaction: that commit is the restore's commit. [`Swapped::finish`]
//! then drops (or keeps, dated) the old database and lets connections in again;
//! [`Swapped::undo`] renames back when the workspace could not follow.
//!
//! The journal `<root>/.coffer-restore-dbswap.json` (0600, fsynced, locked while the run
//! lives; see [`super::journal_file`]) records the target's OID and, once created, the new
//! database's OID. A killed run's journal is settled by [`recover`], judged by those OIDs
//! only: the target still has its own OID → the swap did not commit: the new database
//! goes; the target has the new OID → it committed: the old database goes (or is kept as
//! journaled) and the workspace swap of the same restore is marked committed
//! ([`swap::mark_committed`]), so its recovery finishes it rather than putting the
//! previous workspace back. A database whose OID is not the journaled one is never dropped.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::hint::Hint;
use crate::postgres::{
    Database, DatabaseProfile, MAX_NAME_BYTES, PgError, check_name, quote_ident, quote_literal,
};
use crate::util::units;
use crate::workspace::swap;

use super::RestoreError;
use super::apply::rolled_back;
use super::journal_file::{JournalFile, open_left, remove};

/// The journal's file name in the backup root.
pub(crate) const JOURNAL_FILE: &str = ".coffer-restore-dbswap.json";
const NEW_SUFFIX: &str = "__coffer_new";
const OLD_SUFFIX: &str = "__coffer_old";

/// How long ended sessions may take to go before the swap gives up.
const SESSIONS_GONE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// How long each statement of the swap, its cleanup and its recovery waits for a lock (on
/// the target, the new or the old database) before it fails: the swap rolled back, a
/// cleanup left to the next run.
const SWAP_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How far the swap got (for the messages; the OIDs decide what recovery does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    /// The new database is being created and filled; the target is untouched.
    Restoring,
    /// Connections to the target may be blocked; the renames are under way or done.
    Swapping,
}

/// What the journal records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entries {
    /// The backup being restored, for the messages.
    backup: String,
    /// The process that wrote the journal.
    pid: u32,
    /// The database restored to.
    target: String,
    /// Its OID when the restore began; `None`: it did not exist (bare host).
    target_oid: Option<u32>,
    /// The new database's OID, once created.
    new_oid: Option<u32>,
    /// Whether the target accepted connections before the swap blocked them.
    allowed_connections: bool,
    /// Keep the previous database after the swap.
    keep_old: bool,
    /// The name it is kept under, once chosen.
    kept_as: Option<String>,
    /// The workspace the same restore swaps, if any: its swap commits with this one.
    #[serde(default)]
    workspace: Option<PathBuf>,
    phase: Phase,
}

/// A restore into `<target>__coffer_new` and its swap into place. RAII: dropped without
/// [`DatabaseSwap::swap`], the new database is dropped (`WITH (FORCE)`) and the journal
/// removed.
#[derive(Debug)]
pub(crate) struct DatabaseSwap {
    admin: Database,
    // Read by `undo` only.
    #[cfg_attr(not(test), allow(dead_code))]
    new: String,
    old: String,
    entries: Entries,
    /// The target's `CONNECTION LIMIT`, given to the new database by the swap: the
    /// restore's sessions (more than one) are not held to it.
    connection_limit: i32,
    /// Whether this run created the new database (its OID may not be recorded yet).
    created: bool,
    journal: Option<JournalFile>,
}

/// `<target>__coffer_new` and `<target>__coffer_old`, refused when PostgreSQL would cut
/// them (it truncates names past 63 bytes silently). Pure.
fn helper_names(target: &str) -> Result<(String, String), String> {
    let new = format!("{target}{NEW_SUFFIX}");
    let old = format!("{target}{OLD_SUFFIX}");
    check_name(target).map_err(|e| e.to_string())?;
    if new.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the database name {target} is {} bytes: restoring it in several sessions needs the names {new} and {old}, which PostgreSQL would cut at {MAX_NAME_BYTES} bytes; restore it in one session, or into a database with a name of at most {} bytes",
            target.len(),
            MAX_NAME_BYTES - NEW_SUFFIX.len()
        ));
    }
    Ok((new, old))
}

/// Where the previous database is kept: `<target>__coffer_old_YYYYMMDDHHMM`, the target
/// part shortened (at a character boundary) to fit 63 bytes. Pure.
fn kept_name(target: &str, now: DateTime<Utc>) -> String {
    let suffix = format!("{OLD_SUFFIX}_{}", now.format("%Y%m%d%H%M"));
    let mut end = target.len().min(MAX_NAME_BYTES - suffix.len());
    while !target.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &target[..end])
}

fn refused(problem: String) -> RestoreError {
    RestoreError::Refused {
        problems: vec![problem],
        hints: Vec::new(),
    }
}

/// What PostgreSQL said (psql's error lines), else the whole error, on one line.
fn first_line(e: &PgError) -> String {
    match e {
        PgError::Failed { stderr, .. } if !stderr.trim().is_empty() => stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        _ => e.to_string().lines().collect::<Vec<_>>().join("; "),
    }
}

/// `ALTER DATABASE name ALLOW_CONNECTIONS allow`.
fn allow_connections(admin: &Database, name: &str, allow: bool) -> Result<(), PgError> {
    admin
        .query(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS {allow}",
            quote_ident(name)
        ))
        .map(drop)
}

/// Whether database `name` accepts connections (`None`: it does not exist).
fn accepts_connections(admin: &Database, name: &str) -> Result<Option<bool>, PgError> {
    let out = admin.query(&format!(
        "SELECT datallowconn FROM pg_database WHERE datname = {}",
        quote_literal(name)
    ))?;
    Ok(match out.trim() {
        "t" => Some(true),
        "f" => Some(false),
        _ => None,
    })
}

/// Drops database `name` `WITH (FORCE)` only if it has OID `oid`.
fn drop_if_oid(admin: &Database, name: &str, oid: u32) -> Result<bool, PgError> {
    if admin.database_oid(name)? != Some(oid) {
        return Ok(false);
    }
    admin.drop_database(name)?;
    Ok(true)
}

impl DatabaseSwap {
    /// Journals, then creates `<target>__coffer_new` like `target` (or plainly, with
    /// `create_target`, when the target does not exist: bare host). Refuses when the new or
    /// the old name exists without a journal saying it is coffer's ([`recover`] runs
    /// first), when `<target>__coffer_new` / `__coffer_old` would exceed 63 bytes, when the
    /// role may not create databases. `admin` is connected to another database of the
    /// server (a maintenance database).
    pub fn begin(
        admin: &Database,
        target: &str,
        create_target: bool,
        root: &Path,
        backup: &str,
    ) -> Result<DatabaseSwap, RestoreError> {
        let (new, old) = helper_names(target).map_err(refused)?;
        let check = |e: PgError| refused(format!("cannot check the database server: {e}"));
        if admin.configured_dbname().as_deref() == Some(target) {
            return Err(refused(format!(
                "cannot swap database {target} in through a connection to itself: connect to another database of the server (e.g. postgres) for the swap"
            )));
        }
        if !admin.may_create_databases().map_err(check)? {
            return Err(refused(format!(
                "the database role may not create databases, and restoring {target} in several sessions creates {new} beside it: grant it CREATEDB, or restore in one session"
            )));
        }
        for name in [&new, &old] {
            if admin.database_oid(name).map_err(check)?.is_some() {
                return Err(refused(format!(
                    "database {name} exists and no journal says it is left from a restore of coffer's: check what it holds and drop it by hand (DROP DATABASE {})",
                    quote_ident(name)
                )));
            }
        }
        let target_oid = admin.database_oid(target).map_err(check)?;
        let profile: Option<DatabaseProfile> = match target_oid {
            Some(_) => Some(admin.database_profile(target).map_err(check)?),
            None if create_target => None,
            None => {
                return Err(refused(format!(
                    "database {target} does not exist: create it, or let the restore create it"
                )));
            }
        };
        let entries = Entries {
            backup: backup.into(),
            pid: std::process::id(),
            target: target.into(),
            target_oid,
            new_oid: None,
            allowed_connections: profile.as_ref().is_none_or(|p| p.allow_connections),
            keep_old: false,
            kept_as: None,
            workspace: None,
            phase: Phase::Restoring,
        };
        let path = root.join(JOURNAL_FILE);
        let journal = JournalFile::create(&path, &entries).map_err(|e| {
            refused(format!(
                "cannot start the journal of the database swap, {}: {e}; if it exists, an earlier restore's is not settled yet",
                path.display()
            ))
        })?;
        let mut swap = DatabaseSwap {
            admin: admin.clone(),
            new,
            old,
            entries,
            connection_limit: profile.as_ref().map_or(-1, |p| p.connection_limit),
            created: false,
            journal: Some(journal),
        };
        let new = swap.new.clone();
        // create_database_like drops what it made when it fails; a plain CREATE that
        // succeeded is this run's to drop (Drop) even before its OID is read.
        let made = match &profile {
            Some(profile) => admin.create_database_like(
                &DatabaseProfile {
                    connection_limit: -1,
                    ..profile.clone()
                },
                &new,
            ),
            None => admin.create_database(&new).and_then(|()| {
                swap.created = true;
                admin
                    .database_oid(&new)?
                    .ok_or_else(|| PgError::Unsupported("it vanished".into()))
            }),
        };
        let oid = made.map_err(|e| {
            rolled_back(
                "database",
                format!("cannot create the database {}: {e}", swap.new),
            )
        })?;
        swap.created = true;
        swap.entries.new_oid = Some(oid);
        swap.write_journal()
            .map_err(|e| rolled_back("journal", e))?;
        Ok(swap)
    }

    /// The new database's name.
    pub fn new_name(&self) -> &str {
        &self.new
    }

    /// A runner connected to the new database.
    pub fn new_runner(&self) -> Database {
        // The restore's own statements wait for their locks as long as it takes.
        self.admin.with_dbname(&self.new).with_lock_timeout(None)
    }

    /// Records (before the swap) whether the previous database is to be kept, so that a
    /// run killed after the swap keeps it too.
    pub fn set_keep_old(&mut self, keep: bool) -> Result<(), RestoreError> {
        self.entries.keep_old = keep;
        self.write_journal().map_err(|e| rolled_back("journal", e))
    }

    /// Records (before the swap) the workspace this restore swaps too (the path its
    /// workspace swap uses), so that a run killed after the database swap has its workspace
    /// swap finished, whatever the next run restores.
    pub fn set_workspace(&mut self, workspace: &Path) -> Result<(), RestoreError> {
        self.entries.workspace = Some(workspace.to_path_buf());
        self.write_journal().map_err(|e| rolled_back("journal", e))
    }

    fn write_journal(&mut self) -> Result<(), String> {
        match self.journal.as_mut() {
            Some(j) => j
                .write(&self.entries)
                .map_err(|e| format!("cannot update the journal {}: {e}", j.path().display())),
            None => Ok(()),
        }
    }

    /// The swap; all coffer sessions to the new database must have ended. Blocks new
    /// connections to the target, ends its other sessions (terminated with `terminate`,
    /// else refused by name, connections allowed again), then in ONE transaction gives the
    /// new database the target's connection limit, renames the target to
    /// `<target>__coffer_old` and the new database to the target, which keeps
    /// refusing connections until [`Swapped::finish`]. Any failure leaves the target as it
    /// was (and drops the new database).
    pub fn swap(mut self, terminate: bool) -> Result<Swapped, RestoreError> {
        let target = self.entries.target.clone();
        let had_target = self.entries.target_oid.is_some();
        if had_target {
            self.entries.allowed_connections = accepts_connections(&self.admin, &target)
                .map_err(|e| rolled_back("database swap", e.to_string()))?
                .unwrap_or(true);
        }
        self.entries.phase = Phase::Swapping;
        self.write_journal()
            .map_err(|e| rolled_back("database swap", e))?;
        if had_target {
            allow_connections(&self.admin, &target, false)
                .map_err(|e| rolled_back("database swap", e.to_string()))?;
        }
        if let Err(e) = self.rename_in(terminate) {
            // An error may still have committed (the connection lost at COMMIT): the OIDs say.
            let committed = self.admin.database_oid(&target).ok().flatten() == self.entries.new_oid;
            if !committed {
                if had_target
                    && self.entries.allowed_connections
                    && let Err(back) = allow_connections(&self.admin, &target, true)
                {
                    return Err(RestoreError::Inconsistent(format!(
                        "{e}; and database {target} could not be opened to connections again ({}): run ALTER DATABASE {} ALLOW_CONNECTIONS true",
                        first_line(&back),
                        quote_ident(&target)
                    )));
                }
                return Err(e);
            }
        }
        Ok(Swapped {
            admin: self.admin.clone(),
            new: std::mem::take(&mut self.new),
            old: std::mem::take(&mut self.old),
            entries: self.entries.clone(),
            journal: self.journal.take(),
        })
    }

    /// Ends or refuses the target's sessions, then renames, in one transaction; retried
    /// when a session slipped in between (its connection had passed the check already).
    fn rename_in(&self, terminate: bool) -> Result<(), RestoreError> {
        let target = &self.entries.target;
        let had_target = self.entries.target_oid.is_some();
        // Never wait forever: `admin` waits at most SWAP_LOCK_TIMEOUT for each lock (see
        // admin_for), so a session holding one on either database fails the swap, rolled
        // back, instead of holding the restore (and the renamed target) indefinitely.
        let mut script = format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false;\n",
            quote_ident(&self.new)
        );
        if self.connection_limit != -1 {
            script.push_str(&format!(
                "ALTER DATABASE {} CONNECTION LIMIT {};\n",
                quote_ident(&self.new),
                self.connection_limit
            ));
        }
        if had_target {
            script.push_str(&format!(
                "ALTER DATABASE {} RENAME TO {};\n",
                quote_ident(target),
                quote_ident(&self.old)
            ));
        }
        script.push_str(&format!(
            "ALTER DATABASE {} RENAME TO {};\n",
            quote_ident(&self.new),
            quote_ident(target)
        ));
        let fail = |e: PgError| rolled_back("database swap", e.to_string());
        let mut attempt = 0;
        loop {
            if had_target {
                self.end_sessions(terminate)?;
            }
            match self.admin.run_script(&script) {
                Ok(()) => return Ok(()),
                Err(e) if terminate && attempt < 2 && e.to_string().contains("other users") => {
                    attempt += 1;
                }
                Err(e) if e.to_string().contains("lock timeout") => {
                    return Err(self.lock_not_granted(&e));
                }
                Err(e) => return Err(fail(e)),
            }
        }
    }

    /// The swap gave up waiting for a lock (rolled back): names the sessions that hold one
    /// on either database, so the operator can end them.
    fn lock_not_granted(&self, e: &PgError) -> RestoreError {
        let target = &self.entries.target;
        let holders = match self.admin.sessions_locking(&[target, &self.new]) {
            Ok(s) if s.is_empty() => "and no session holding one was found (it may have ended since, or be a prepared transaction: see pg_prepared_xacts)".into(),
            Ok(s) => format!(
                "held by {}; end its transaction (COMMIT or ROLLBACK, or SELECT pg_terminate_backend(pid))",
                s.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Err(check) => format!("cannot list who holds it: {}", first_line(&check)),
        };
        rolled_back(
            "database swap",
            format!(
                "a lock on database {target} or {} was not granted within {} s, {holders}, then run the restore again\n{e}",
                self.new,
                SWAP_LOCK_TIMEOUT.as_secs()
            ),
        )
    }

    fn end_sessions(&self, terminate: bool) -> Result<(), RestoreError> {
        let target = &self.entries.target;
        let fail = |e: PgError| rolled_back("database swap", e.to_string());
        let prepared = self
            .admin
            .query(&format!(
                "SELECT count(*) FROM pg_prepared_xacts WHERE database = {}",
                quote_literal(target)
            ))
            .map_err(fail)?;
        if prepared.trim() != "0" {
            return Err(refused(format!(
                "database {target} has {} prepared transaction(s) (pg_prepared_xacts), which keep it from being renamed: commit or roll them back",
                prepared.trim()
            )));
        }
        let sessions = self.admin.sessions_on(target).map_err(fail)?;
        if sessions.is_empty() {
            return Ok(());
        }
        let list = sessions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if !terminate {
            return Err(RestoreError::Refused {
                problems: vec![format!(
                    "{} other session(s) connected to {target}: {list}; stop the application or configure hooks.before_restore",
                    sessions.len()
                )],
                hints: vec![Hint::TerminateConnections],
            });
        }
        self.admin
            .query(&format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = {} AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                quote_literal(target)
            ))
            .map_err(fail)?;
        let deadline = std::time::Instant::now() + SESSIONS_GONE_WITHIN;
        while !self.admin.sessions_on(target).map_err(fail)?.is_empty() {
            if std::time::Instant::now() >= deadline {
                return Err(rolled_back(
                    "database swap",
                    format!(
                        "sessions connected to {target} did not end within {}s of being terminated: {list}",
                        SESSIONS_GONE_WITHIN.as_secs()
                    ),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for DatabaseSwap {
    fn drop(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        if !self.created {
            journal.close();
            return;
        }
        let dropped = match self.entries.new_oid {
            Some(oid) => drop_if_oid(&self.admin, &self.new, oid).map(drop),
            // Created by this run a moment ago, its OID not read yet.
            None => self.admin.drop_database(&self.new),
        };
        // Not dropped: the journal stays for the next run's recovery.
        if dropped.is_ok() {
            journal.close();
        }
    }
}

/// A database swapped into place whose restore is committed; [`Swapped::finish`] tidies
/// up, [`Swapped::undo`] puts the previous database back. Dropped without either, it
/// leaves the journal, and the next run's [`recover`] finishes it.
#[derive(Debug)]
pub(crate) struct Swapped {
    admin: Database,
    new: String,
    old: String,
    entries: Entries,
    journal: Option<JournalFile>,
}

impl Swapped {
    /// Opens the new target to connections as the old one was, drops `__coffer_old` (or
    /// keeps it, connections as before, as `<target>__coffer_old_YYYYMMDDHHMM`, with
    /// `keep_old`) and removes the journal. Returns the kept name if any. A failure here
    /// is reported, not a rollback: the journal stays for the next run.
    pub fn finish(mut self, keep_old: bool) -> Result<Option<String>, String> {
        let target = self.entries.target.clone();
        let mut problems = Vec::new();
        if self.entries.allowed_connections
            && let Err(e) = allow_connections(&self.admin, &target, true)
        {
            problems.push(format!(
                "database {target} still refuses connections ({}): run ALTER DATABASE {} ALLOW_CONNECTIONS true",
                first_line(&e),
                quote_ident(&target)
            ));
        }
        let mut kept = None;
        if let Some(oid) = self.entries.target_oid {
            self.entries.keep_old = keep_old;
            if keep_old {
                self.entries.kept_as = Some(kept_name(&target, Utc::now()));
            }
            if let Some(j) = self.journal.as_mut() {
                let _ = j.write(&self.entries);
            }
            match settle_old(&self.admin, &self.entries, &self.old, oid) {
                Ok(k) => kept = k,
                Err(e) => problems.push(e),
            }
        }
        let journal = self.journal.take();
        if problems.is_empty() {
            if let Some(j) = journal {
                j.close();
            }
            Ok(kept)
        } else {
            Err(problems.join("; "))
        }
    }

    /// Renames back in one transaction (the workspace swap failed after the database
    /// swap) and drops the new database. The restore swaps the workspace first, so it has
    /// no use for this yet; recovery settles the same state from the journal.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn undo(mut self) -> Result<(), RestoreError> {
        let target = &self.entries.target;
        let mut script = format!(
            "ALTER DATABASE {} RENAME TO {};\n",
            quote_ident(target),
            quote_ident(&self.new)
        );
        if self.entries.target_oid.is_some() {
            script.push_str(&format!(
                "ALTER DATABASE {old} RENAME TO {t};\nALTER DATABASE {t} ALLOW_CONNECTIONS {};\n",
                self.entries.allowed_connections,
                old = quote_ident(&self.old),
                t = quote_ident(target),
            ));
        }
        self.admin.run_script(&script).map_err(|e| {
            RestoreError::Inconsistent(format!(
                "the restored database is in place as {target} and the previous one is {}, and renaming them back failed: {e}",
                self.old
            ))
        })?;
        let journal = self.journal.take();
        let dropped = match self.entries.new_oid {
            Some(oid) => drop_if_oid(&self.admin, &self.new, oid).is_ok(),
            None => false,
        };
        if dropped && let Some(j) = journal {
            j.close();
        }
        Ok(())
    }
}

/// Drops the previous database `old` (OID `oid`), or with `keep_old` renames it to the
/// journaled kept name and opens it to connections as it was. Returns the kept name.
fn settle_old(
    admin: &Database,
    entries: &Entries,
    old: &str,
    oid: u32,
) -> Result<Option<String>, String> {
    let fail = |e: PgError| format!("database {old} ({}): {}", entries.target, first_line(&e));
    let kept_as = entries.kept_as.as_deref().filter(|_| entries.keep_old);
    if let Some(kept) = kept_as
        && admin.database_oid(kept).map_err(fail)? == Some(oid)
    {
        return Ok(Some(kept.to_string()));
    }
    if admin.database_oid(old).map_err(fail)? != Some(oid) {
        return Ok(None);
    }
    let Some(kept) = kept_as else {
        admin.drop_database(old).map_err(fail)?;
        return Ok(None);
    };
    if admin.database_oid(kept).map_err(fail)?.is_some() {
        return Err(format!(
            "the previous database stays as {old}: {kept} exists already; rename or drop it by hand"
        ));
    }
    let mut sql = format!(
        "ALTER DATABASE {} RENAME TO {};\n",
        quote_ident(old),
        quote_ident(kept)
    );
    if entries.allowed_connections {
        sql.push_str(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true;\n",
            quote_ident(kept)
        ));
    }
    admin.run_script(&sql).map_err(fail)?;
    Ok(Some(kept.to_string()))
}

mod room;
mod settle;

pub(crate) use room::check_room;
pub(crate) use settle::{admin_for, journal_left, recover};

#[cfg(test)]
mod tests;
