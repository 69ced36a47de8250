//! What a restore creates on a bare host (roles, the database, the workspace's parent
//! directories), journaled in the backup root, so that what a coffer killed with SIGKILL
//! left behind is recognised by the next restore.
//!
//! A restore that is about to create something writes `<root>/.coffer-restore-created.json`
//! (0600, fsynced) naming what it is about to create, and adds each thing's identity (a
//! role's or the database's OID, a directory's device and inode) once it exists; it holds an
//! exclusive lock on the file while it runs, and removes the file when it finished (restored,
//! or failed and undid its creations).
//!
//! A journal that is still there, unlocked, is a killed restore's. [`recover`] then removes
//! only what is provably that restore's and untouched since: a directory with the recorded
//! identity that is empty; the database with the recorded OID that holds no object and has no
//! session (dropped without `FORCE`); then, when the database question is settled, a role
//! with the recorded OID that nothing depends on (PostgreSQL's own `DROP ROLE` check). What is
//! not provably coffer's any more (it holds data, another object of that name, a creation
//! that was never confirmed) is left, and the operator is told what to check. What cannot be
//! judged now (the server unreachable, the database in use) keeps the journal and refuses the
//! restore, so nothing is created on top of it.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::postgres::{Database, quote_ident, quote_literal};

use super::RestoreError;
use super::flat::user_objects;
use super::journal_file::{JournalFile, open_left, remove};

/// The journal's file name in the backup root (coffer's hidden files are dot-files).
pub const JOURNAL_FILE: &str = ".coffer-restore-created.json";

/// What a restore is creating, as journaled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entries {
    /// The backup being restored, for the messages.
    backup: String,
    /// The process that wrote the journal.
    pid: u32,
    /// Roles to create; `oid` once created.
    roles: Vec<Named>,
    /// The database to create; `oid` once created.
    database: Option<Named>,
    /// Directories to create, outermost first; `id` (device, inode) once created.
    dirs: Vec<Dir>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Named {
    name: String,
    oid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Dir {
    path: PathBuf,
    id: Option<(u64, u64)>,
}

/// The journal of a running restore: locked while it lives; removed by [`Journal::close`];
/// left in place when the process dies.
pub(super) struct Journal {
    file: JournalFile,
    entries: Entries,
}

/// The journal's path in `root`.
pub fn journal_path(root: &Path) -> PathBuf {
    root.join(JOURNAL_FILE)
}

impl Journal {
    /// Creates the journal in `root` naming what the restore of `backup` is about to create.
    /// Refuses when one exists: [`recover`] settles a killed restore's first.
    pub(super) fn begin(
        root: &Path,
        backup: &str,
        roles: &[String],
        database: Option<&str>,
        dirs: &[PathBuf],
    ) -> Result<Journal, String> {
        let path = journal_path(root);
        let entries = Entries {
            backup: backup.to_string(),
            pid: std::process::id(),
            roles: roles
                .iter()
                .map(|name| Named {
                    name: name.clone(),
                    oid: None,
                })
                .collect(),
            database: database.map(|name| Named {
                name: name.to_string(),
                oid: None,
            }),
            dirs: dirs
                .iter()
                .map(|path| Dir {
                    path: path.clone(),
                    id: None,
                })
                .collect(),
        };
        let file = JournalFile::create(&path, &entries).map_err(|e| {
            format!(
                "cannot write the journal of what this restore creates, {}: {e}",
                path.display()
            )
        })?;
        Ok(Journal { file, entries })
    }

    /// Records the roles' OIDs once they were created (`runner`: where they were).
    pub(super) fn roles_created(&mut self, runner: &Database) -> Result<(), String> {
        let names: Vec<String> = self.entries.roles.iter().map(|r| r.name.clone()).collect();
        let oids = role_oids(runner, &names).map_err(|e| e.to_string())?;
        for role in &mut self.entries.roles {
            role.oid = oids.iter().find(|(n, _)| *n == role.name).map(|(_, o)| *o);
        }
        self.write().map_err(|e| self.failed(e))
    }

    /// Records the database's OID once it was created (`maintenance`: a runner on another
    /// database of that server).
    pub(super) fn database_created(&mut self, maintenance: &Database) -> Result<(), String> {
        let Some(db) = self.entries.database.as_mut() else {
            return Ok(());
        };
        db.oid = maintenance
            .database_oid(&db.name)
            .map_err(|e| e.to_string())?;
        self.write().map_err(|e| self.failed(e))
    }

    /// Records the directories' identities once they were created.
    pub(super) fn dirs_created(
        &mut self,
        created: impl Iterator<Item = (PathBuf, (u64, u64))>,
    ) -> Result<(), String> {
        for (path, id) in created {
            if let Some(d) = self.entries.dirs.iter_mut().find(|d| d.path == path) {
                d.id = Some(id);
            }
        }
        self.write().map_err(|e| self.failed(e))
    }

    /// The restore finished (or undid what it created): the journal goes.
    pub(super) fn close(self) {
        self.file.close();
    }

    fn failed(&self, e: io::Error) -> String {
        format!(
            "cannot update the journal {}: {e}",
            self.file.path().display()
        )
    }

    fn write(&mut self) -> io::Result<()> {
        self.file.write(&self.entries)
    }
}

/// The OIDs of the roles among `names` that exist.
fn role_oids(
    db: &Database,
    names: &[String],
) -> Result<Vec<(String, u32)>, crate::postgres::PgError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = names.iter().map(|n| quote_literal(n)).collect();
    let out = db.query(&format!(
        "SELECT oid, rolname FROM pg_roles WHERE rolname IN ({})",
        list.join(", ")
    ))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('|'))
        .filter_map(|(oid, name)| Some((name.to_string(), oid.parse().ok()?)))
        .collect())
}

/// What [`recover`] found and did, for the operator.
#[derive(Debug, Default)]
struct Settled {
    /// Removed: provably the killed restore's and untouched.
    removed: Vec<String>,
    /// Left in place, each with what the operator should check or do.
    left: Vec<String>,
    /// Cannot be judged now: the journal stays and the restore is refused.
    retry: Vec<String>,
}

/// Settles what a killed restore created, as its journal in `root` says (see the module
/// docs): `Ok(None)` when there is no journal; `Ok(Some(note))` saying what was removed and
/// what was left for the operator; a refusal when something cannot be judged now or the
/// journal is held by a running restore. `server` reaches the PostgreSQL server restored to.
pub fn recover(root: &Path, server: &Database) -> Result<Option<String>, RestoreError> {
    let path = journal_path(root);
    let refuse = |problem: String| RestoreError::Refused {
        problems: vec![problem],
        hints: Vec::new(),
    };
    let (_locked, entries) = match open_left::<Entries>(&path) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(e.refusal(
                &path,
                "creating a database, roles or directories on this host",
                "check the database, roles and directories it names",
            ));
        }
    };
    let settled = settle(&entries, server);
    if !settled.retry.is_empty() {
        return Err(refuse(format!(
            "a restore of {} killed earlier (process {}) left what coffer cannot settle yet: {}; {} stays until a restore can",
            entries.backup,
            entries.pid,
            settled.retry.join("; "),
            path.display()
        )));
    }
    remove(&path);
    let mut note = format!(
        "a restore of {} was killed earlier (process {}) after creating things on this host",
        entries.backup, entries.pid
    );
    if !settled.removed.is_empty() {
        note.push_str(&format!(
            "; removed what it had created and nobody used since: {}",
            settled.removed.join(", ")
        ));
    }
    if !settled.left.is_empty() {
        note.push_str(&format!(
            "; left in place (not provably coffer's any more): {}",
            settled.left.join("; ")
        ));
    }
    Ok(Some(note))
}

/// Judges and removes each journaled thing: directories, then the database, then the roles
/// (only once the database question is settled: the roles may own what is in it).
fn settle(entries: &Entries, server: &Database) -> Settled {
    let mut s = Settled::default();
    for dir in entries.dirs.iter().rev() {
        settle_dir(dir, &mut s);
    }
    let maintenance = server.with_dbname("postgres");
    let database_settled = match &entries.database {
        None => true,
        Some(db) => settle_database(db, &maintenance, &mut s),
    };
    if !entries.roles.is_empty() {
        if database_settled {
            settle_roles(&entries.roles, &maintenance, &mut s);
        } else {
            s.left.push(format!(
                "roles {} (created for that database; drop them by hand once it is gone, if nothing else uses them)",
                names(&entries.roles)
            ));
        }
    }
    s
}

fn names(list: &[Named]) -> String {
    list.iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn settle_dir(dir: &Dir, s: &mut Settled) {
    let shown = dir.path.display();
    let meta = std::fs::symlink_metadata(&dir.path);
    match (dir.id, meta) {
        (_, Err(_)) => {}
        (None, Ok(_)) => s.left.push(format!(
            "directory {shown} (its creation was never confirmed, so it may not be coffer's: remove it by hand if it is empty and unwanted)"
        )),
        (Some(id), Ok(m)) if m.is_dir() && (m.dev(), m.ino()) == id => {
            match std::fs::remove_dir(&dir.path) {
                Ok(()) => s.removed.push(format!("directory {shown}")),
                Err(_) => s.left.push(format!(
                    "directory {shown} (not empty: something was put there since)"
                )),
            }
        }
        (Some(_), Ok(_)) => s.left.push(format!(
            "{shown} (replaced since: not the directory coffer created)"
        )),
    }
}

/// Whether the database question is settled (removed, gone, or definitely not coffer's).
fn settle_database(db: &Named, maintenance: &Database, s: &mut Settled) -> bool {
    let name = &db.name;
    let drop_sql = format!("DROP DATABASE {}", quote_ident(name));
    let oid = match maintenance.database_oid(name) {
        Ok(oid) => oid,
        Err(e) => {
            s.retry.push(format!(
                "cannot check database {name}: {}",
                first_line(&e.to_string())
            ));
            return false;
        }
    };
    match (db.oid, oid) {
        (_, None) => true,
        (None, Some(_)) => {
            s.left.push(format!(
                "database {name} (its creation was never confirmed, so it may not be coffer's: check it and drop it by hand if it is empty and unwanted: {drop_sql})"
            ));
            false
        }
        (Some(want), Some(found)) if want != found => {
            s.left.push(format!(
                "database {name} (another database of that name was created since: not the one coffer created)"
            ));
            true
        }
        (Some(_), Some(_)) => {
            let target = maintenance.with_dbname(name);
            match (user_objects(&target), target.other_sessions()) {
                (Ok(0), Ok(sessions)) if sessions.is_empty() => {
                    // No FORCE: a session that connected since makes this fail, not vanish.
                    match maintenance.query(&drop_sql) {
                        Ok(_) => {
                            s.removed.push(format!("database {name} (empty)"));
                            true
                        }
                        Err(e) => {
                            s.retry.push(format!(
                                "cannot drop database {name}, which it created empty: {}",
                                first_line(&e.to_string())
                            ));
                            false
                        }
                    }
                }
                (Ok(0), Ok(sessions)) => {
                    s.retry.push(format!(
                        "database {name}, which it created, is empty but in use by {} session(s) (the killed restore's psql may still be ending): run the restore again once they ended",
                        sessions.len()
                    ));
                    false
                }
                (Ok(n), _) => {
                    s.left.push(format!(
                        "database {name} (it holds {n} objects now, put there since: check them; drop it by hand if unwanted: {drop_sql})"
                    ));
                    false
                }
                (Err(e), _) => {
                    s.retry.push(format!(
                        "cannot check database {name}: {}",
                        first_line(&e.to_string())
                    ));
                    false
                }
            }
        }
    }
}

fn settle_roles(roles: &[Named], maintenance: &Database, s: &mut Settled) {
    let all: Vec<String> = roles.iter().map(|r| r.name.clone()).collect();
    let found = match role_oids(maintenance, &all) {
        Ok(f) => f,
        Err(e) => {
            s.retry.push(format!(
                "cannot check roles {}: {}",
                all.join(", "),
                first_line(&e.to_string())
            ));
            return;
        }
    };
    for role in roles {
        let now = found.iter().find(|(n, _)| *n == role.name).map(|(_, o)| *o);
        let name = &role.name;
        match (role.oid, now) {
            (_, None) => {}
            (None, Some(_)) => s.left.push(format!(
                "role {name} (its creation was never confirmed, so it may not be coffer's: check it)"
            )),
            (Some(want), Some(found)) if want != found => s.left.push(format!(
                "role {name} (another role of that name was created since)"
            )),
            // PostgreSQL refuses to drop a role that owns anything or holds privileges in
            // any database: what refuses is what someone uses.
            (Some(_), Some(_)) => match maintenance.run_script(&format!(
                "DROP ROLE {};\n",
                quote_ident(name)
            )) {
                Ok(()) => s.removed.push(format!("role {name}")),
                Err(e) => s.left.push(format!(
                    "role {name} (something depends on it now: {}; drop it by hand if unwanted)",
                    first_line(&e.to_string())
                )),
            },
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_names_what_is_created_and_goes_when_closed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let ws = dir.path().join("srv");
        let mut journal = Journal::begin(
            &root,
            "auto-20261123T030000Z",
            &["app".into()],
            Some("portal"),
            std::slice::from_ref(&ws),
        )
        .unwrap();
        let path = journal_path(&root);
        let read =
            |p: &Path| -> Entries { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
        let e = read(&path);
        assert_eq!(e.backup, "auto-20261123T030000Z");
        assert_eq!(e.roles[0].oid, None);
        assert_eq!(e.database.as_ref().unwrap().oid, None);
        assert_eq!(e.dirs[0].id, None);
        std::fs::create_dir(&ws).unwrap();
        let m = std::fs::metadata(&ws).unwrap();
        journal
            .dirs_created([(ws.clone(), (m.dev(), m.ino()))].into_iter())
            .unwrap();
        assert_eq!(read(&path).dirs[0].id, Some((m.dev(), m.ino())));
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A second restore may not start one while it exists.
        assert!(Journal::begin(&root, "x", &[], Some("other"), &[]).is_err());
        journal.close();
        assert!(!path.exists());
    }

    #[test]
    fn only_the_recorded_empty_directory_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours");
        std::fs::create_dir(&ours).unwrap();
        let m = std::fs::metadata(&ours).unwrap();
        let id = Some((m.dev(), m.ino()));
        let used = dir.path().join("used");
        std::fs::create_dir(&used).unwrap();
        std::fs::write(used.join("file"), b"x").unwrap();
        let mu = std::fs::metadata(&used).unwrap();
        let unconfirmed = dir.path().join("unconfirmed");
        std::fs::create_dir(&unconfirmed).unwrap();
        let replaced = dir.path().join("replaced");
        std::fs::create_dir(&replaced).unwrap();
        let mut s = Settled::default();
        for d in [
            Dir {
                path: ours.clone(),
                id,
            },
            Dir {
                path: used.clone(),
                id: Some((mu.dev(), mu.ino())),
            },
            Dir {
                path: unconfirmed.clone(),
                id: None,
            },
            // Another directory's identity: not the one coffer created.
            Dir {
                path: replaced.clone(),
                id,
            },
            Dir {
                path: dir.path().join("gone"),
                id,
            },
        ] {
            settle_dir(&d, &mut s);
        }
        assert!(!ours.exists() && used.exists() && unconfirmed.exists() && replaced.exists());
        assert_eq!(s.removed.len(), 1, "{s:?}");
        assert_eq!(s.left.len(), 3, "{s:?}");
        assert!(s.retry.is_empty());
    }
}
