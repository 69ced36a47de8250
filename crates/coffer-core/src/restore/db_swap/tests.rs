use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::room::is_that_server;
use super::*;
use crate::sandbox::TempCluster;

#[test]
fn helper_names_fit_63_bytes_or_are_refused() {
    let (new, old) = helper_names("portal").unwrap();
    assert_eq!(
        (new.as_str(), old.as_str()),
        ("portal__coffer_new", "portal__coffer_old")
    );
    assert!(helper_names(&"a".repeat(51)).is_ok());
    let err = helper_names(&"a".repeat(52)).unwrap_err();
    assert!(err.contains("at most 51 bytes"), "{err}");
    assert!(helper_names("").is_err());
}

#[test]
fn kept_names_fit_63_bytes_at_a_character_boundary() {
    let now: DateTime<Utc> = "2026-12-03T11:05:00Z".parse().unwrap();
    let cases = [
        ("portal", "portal__coffer_old_202612031105".to_string()),
        (
            &*"a".repeat(51),
            format!("{}__coffer_old_202612031105", "a".repeat(38)),
        ),
        (
            &*"€".repeat(17),
            format!("{}__coffer_old_202612031105", "€".repeat(12)),
        ),
    ];
    for (target, want) in cases {
        let got = kept_name(target, now);
        assert_eq!(got, want, "{target}");
        assert!(got.len() <= MAX_NAME_BYTES, "{got}");
    }
}

#[test]
fn the_admin_runner_is_never_connected_to_the_target() {
    let runner = Database::default().with_dbname("portal");
    for (target, want) in [("portal", "postgres"), ("postgres", "template1")] {
        let admin = admin_for(&runner, target);
        assert_eq!(admin.configured_dbname().as_deref(), Some(want), "{target}");
    }
}

#[test]
fn the_pid_file_must_name_that_server() {
    let file = "4242\n/var/lib/pg/data\n1764759600\n5432\n";
    assert!(is_that_server(file, "/var/lib/pg/data", 1764759600));
    assert!(!is_that_server(file, "/var/lib/pg/other", 1764759600));
    assert!(is_that_server(file, "/var/lib/pg/data", 1764759601));
    assert!(!is_that_server(file, "/var/lib/pg/data", 1764759610));
    assert!(!is_that_server("", "/var/lib/pg/data", 0));
}

/// A psql session held open on a database until dropped.
struct Held(Child);

impl Held {
    fn on(cluster: &TempCluster, db: &str) -> Held {
        let child = Command::new("psql")
            .args(["-X", "-q"])
            .envs(cluster.env(db))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let held = Held(child);
        let admin = cluster.database("postgres");
        let deadline = Instant::now() + Duration::from_secs(10);
        while admin.sessions_on(db).unwrap().is_empty() {
            assert!(Instant::now() < deadline, "psql did not connect to {db}");
            std::thread::sleep(Duration::from_millis(50));
        }
        held
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Fixture {
    cluster: TempCluster,
    admin: Database,
    root: tempfile::TempDir,
}

const TARGET: &str = "app \"db\"\nit's";

impl Fixture {
    fn start() -> Fixture {
        let cluster = TempCluster::start().unwrap_or_else(|e| panic!("{e}"));
        let admin = cluster.database("postgres");
        Fixture {
            cluster,
            admin,
            root: tempfile::tempdir().unwrap(),
        }
    }

    /// (Re)creates the target holding row 1, with a grant a plain dump would not carry.
    fn target(&self) -> u32 {
        let _ = self.admin.drop_database(TARGET);
        self.admin.create_database(TARGET).unwrap();
        self.cluster
            .psql(TARGET, "CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
            .unwrap();
        self.admin
            .run_script(&format!(
                "REVOKE TEMPORARY ON DATABASE {t} FROM PUBLIC; ALTER DATABASE {t} CONNECTION LIMIT 3;",
                t = quote_ident(TARGET)
            ))
            .unwrap();
        self.oid(TARGET).unwrap()
    }

    fn begin(&self) -> DatabaseSwap {
        let swap = DatabaseSwap::begin(&self.admin, TARGET, false, self.root.path(), "b1").unwrap();
        swap.new_runner()
            .run_script("CREATE TABLE t (n int); INSERT INTO t VALUES (2);")
            .unwrap();
        swap
    }

    fn oid(&self, name: &str) -> Option<u32> {
        self.admin.database_oid(name).unwrap()
    }

    fn rows(&self, db: &str) -> String {
        self.cluster
            .psql(db, "SELECT string_agg(n::text, ',') FROM t")
            .unwrap()
    }

    fn allows(&self, name: &str) -> Option<bool> {
        accepts_connections(&self.admin, name).unwrap()
    }

    fn journal(&self) -> bool {
        self.root.path().join(JOURNAL_FILE).exists()
    }

    fn names(&self) -> Vec<String> {
        let out = self
            .cluster
            .psql(
                "postgres",
                "SELECT coalesce(json_agg(datname ORDER BY datname), '[]') FROM pg_database \
                 WHERE datname LIKE '%coffer%'",
            )
            .unwrap();
        serde_json::from_str(&out).unwrap()
    }
}

#[test]
fn swap_renames_together_refuses_or_ends_sessions_and_finishes_or_undoes() {
    let f = Fixture::start();
    let old_oid = f.target();
    let acl = || {
        f.admin
            .query(&format!(
                "SELECT datacl::text FROM pg_database WHERE datname = {}",
                quote_literal(TARGET)
            ))
            .unwrap()
    };
    let acl_before = acl();
    let limit = |name: &str| {
        f.admin
            .query(&format!(
                "SELECT datconnlimit FROM pg_database WHERE datname = {}",
                quote_literal(name)
            ))
            .unwrap()
    };

    // Another session on the target, not to be ended: refused, the target as it was and
    // open to connections, the new database dropped.
    let swap = f.begin();
    let new = swap.new_name().to_string();
    assert!(f.journal());
    let held = Held::on(&f.cluster, TARGET);
    let err = swap.swap(false).unwrap_err();
    assert!(
        matches!(&err, RestoreError::Refused { hints, .. } if hints == &[Hint::TerminateConnections]),
        "{err}"
    );
    assert!(err.to_string().contains("1 other session(s)"), "{err}");
    assert_eq!(f.oid(TARGET), Some(old_oid));
    assert_eq!(f.allows(TARGET), Some(true));
    assert_eq!(f.oid(&new), None);
    assert!(!f.journal());

    // A session on the new database makes the second rename fail: the first is undone
    // with it (one transaction).
    let swap = f.begin();
    let on_new = Held::on(&f.cluster, &new);
    assert!(swap.swap(true).is_err());
    drop(on_new);
    assert_eq!(f.oid(TARGET), Some(old_oid));
    assert_eq!(f.names(), Vec::<String>::new());
    assert_eq!(f.allows(TARGET), Some(true));
    assert!(!f.journal());

    // Ended: the swap goes through; the new target refuses connections until finish. The
    // restore's sessions were not held to the target's connection limit; the target is.
    let swap = f.begin();
    let new_oid = f.oid(&new).unwrap();
    assert_eq!(limit(&new), "-1");
    let swapped = swap.swap(true).unwrap();
    drop(held);
    assert_eq!(f.oid(TARGET), Some(new_oid));
    assert_eq!(f.oid(&format!("{TARGET}{OLD_SUFFIX}")), Some(old_oid));
    assert_eq!(f.allows(TARGET), Some(false));
    assert_eq!(swapped.finish(false).unwrap(), None);
    assert_eq!(f.allows(TARGET), Some(true));
    assert_eq!(f.rows(TARGET), "2");
    assert_eq!(acl(), acl_before);
    assert_eq!(limit(TARGET), "3");
    assert_eq!(f.names(), Vec::<String>::new());
    assert!(!f.journal());

    // Kept: under the dated name, open to connections.
    let old_oid = f.oid(TARGET).unwrap();
    let swapped = f.begin().swap(false).unwrap();
    let kept = swapped.finish(true).unwrap().unwrap();
    assert!(
        kept.starts_with(&format!("{TARGET}{OLD_SUFFIX}_")),
        "{kept}"
    );
    assert_eq!(f.oid(&kept), Some(old_oid));
    assert_eq!(f.allows(&kept), Some(true));
    assert_eq!(f.rows(&kept), "2");
    f.admin.drop_database(&kept).unwrap();

    // Undone: the previous database back in place, the new one gone.
    let old_oid = f.oid(TARGET).unwrap();
    let swapped = f.begin().swap(false).unwrap();
    swapped.undo().unwrap();
    assert_eq!(f.oid(TARGET), Some(old_oid));
    assert_eq!(f.allows(TARGET), Some(true));
    assert_eq!(f.names(), Vec::<String>::new());
    assert!(!f.journal());

    // Bare host: the target is created by the swap, and undone it is gone again.
    f.admin.drop_database(TARGET).unwrap();
    assert!(DatabaseSwap::begin(&f.admin, TARGET, false, f.root.path(), "b1").is_err());
    let swap = DatabaseSwap::begin(&f.admin, TARGET, true, f.root.path(), "b1").unwrap();
    let swapped = swap.swap(false).unwrap();
    assert!(f.oid(TARGET).is_some());
    swapped.undo().unwrap();
    assert_eq!(f.oid(TARGET), None);
    assert_eq!(f.names(), Vec::<String>::new());
    let swapped = DatabaseSwap::begin(&f.admin, TARGET, true, f.root.path(), "b1")
        .unwrap()
        .swap(false)
        .unwrap();
    assert_eq!(swapped.finish(true).unwrap(), None);
    assert_eq!(f.allows(TARGET), Some(true));
    assert!(!f.journal());
}

#[test]
fn begin_refuses_leftovers_long_names_and_roles_without_createdb() {
    let f = Fixture::start();
    f.target();
    let leftover = format!("{TARGET}{NEW_SUFFIX}");
    f.admin.create_database(&leftover).unwrap();
    let err = DatabaseSwap::begin(&f.admin, TARGET, false, f.root.path(), "b1").unwrap_err();
    assert!(err.to_string().contains("no journal says"), "{err}");
    f.admin.drop_database(&leftover).unwrap();

    let long = "l".repeat(52);
    f.admin.create_database(&long).unwrap();
    let err = DatabaseSwap::begin(&f.admin, &long, false, f.root.path(), "b1").unwrap_err();
    assert!(err.to_string().contains("63 bytes"), "{err}");

    f.admin.query("CREATE ROLE plain LOGIN").unwrap();
    let mut env = f.cluster.env("postgres");
    env.retain(|(k, _)| k != "PGUSER");
    env.push(("PGUSER".into(), "plain".into()));
    let plain = Database::from_env(env);
    let err = DatabaseSwap::begin(&plain, TARGET, false, f.root.path(), "b1").unwrap_err();
    assert!(err.to_string().contains("CREATEDB"), "{err}");
    // The free-space check cannot read the data directory as that role: a note.
    let note = check_room(&plain, TARGET, 0).unwrap().unwrap();
    assert!(note.contains("cannot check"), "{note}");
    // As superuser on this host it can.
    assert_eq!(check_room(&f.admin, TARGET, 0).unwrap(), None);
    let err = check_room(&f.admin, TARGET, u64::MAX / 4).unwrap_err();
    assert!(err.to_string().contains("not enough free space"), "{err}");
    assert!(!f.journal());
}

/// Where a killed restore stopped.
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// The new database created and filled, not swapped.
    AfterBegin,
    /// Connections to the target blocked, the renames not run.
    BeforeRenames,
    /// The renames committed, not finished.
    AfterSwap { keep: bool },
    /// Not swapped, and `__coffer_new` dropped and made again by someone else since.
    OtherNewDatabase,
    /// Finishing: connections allowed again and the old database dropped, the journal not
    /// removed yet.
    DuringFinish,
    /// Undoing: renamed back, the new database not dropped yet.
    DuringUndo,
}

/// Lets the journal go as a killed process would: the lock released, the file kept.
fn kill(journal: &mut Option<JournalFile>) {
    drop(journal.take());
}

#[test]
fn recover_settles_each_crash_point_by_oid_and_finishes_the_workspace_if_committed() {
    let f = Fixture::start();
    let new = format!("{TARGET}{NEW_SUFFIX}");
    let old = format!("{TARGET}{OLD_SUFFIX}");
    let cases = [
        Crash::AfterBegin,
        Crash::BeforeRenames,
        Crash::AfterSwap { keep: false },
        Crash::AfterSwap { keep: true },
        Crash::OtherNewDatabase,
        Crash::DuringFinish,
        Crash::DuringUndo,
    ];
    for crash in cases {
        let old_oid = f.target();
        let (_ws_dir, ws) = swapped_in_workspace();

        let mut db_swap = f.begin();
        let new_oid = f.oid(&new).unwrap();
        // Each arm lets its run die: the journal's lock released, its file kept (a swap
        // without its journal does nothing when dropped).
        let committed = match crash {
            Crash::AfterBegin | Crash::OtherNewDatabase => {
                kill(&mut db_swap.journal);
                false
            }
            Crash::BeforeRenames => {
                db_swap.entries.phase = Phase::Swapping;
                db_swap.write_journal().unwrap();
                allow_connections(&f.admin, TARGET, false).unwrap();
                kill(&mut db_swap.journal);
                false
            }
            Crash::AfterSwap { keep } => {
                db_swap.set_keep_old(keep).unwrap();
                // Journaled here, given to recover in the other cases.
                if keep {
                    db_swap.set_workspace(&ws).unwrap();
                }
                let mut swapped = db_swap.swap(false).unwrap();
                kill(&mut swapped.journal);
                true
            }
            Crash::DuringFinish => {
                let mut swapped = db_swap.swap(false).unwrap();
                allow_connections(&f.admin, TARGET, true).unwrap();
                f.admin.drop_database(&old).unwrap();
                kill(&mut swapped.journal);
                true
            }
            Crash::DuringUndo => {
                let mut swapped = db_swap.swap(false).unwrap();
                f.admin
                    .run_script(&format!(
                        "ALTER DATABASE {t} RENAME TO {n}; ALTER DATABASE {o} RENAME TO {t}; \
                         ALTER DATABASE {t} ALLOW_CONNECTIONS true;",
                        t = quote_ident(TARGET),
                        n = quote_ident(&new),
                        o = quote_ident(&old)
                    ))
                    .unwrap();
                kill(&mut swapped.journal);
                false
            }
        };
        if let Crash::OtherNewDatabase = crash {
            f.admin.drop_database(&new).unwrap();
            f.admin.create_database(&new).unwrap();
        }
        let given = match crash {
            Crash::AfterSwap { keep: true } => None,
            _ => Some(ws.as_path()),
        };
        assert!(journal_left(f.root.path()));
        let notes = recover(&f.admin, f.root.path(), given).unwrap();
        let text = notes.join("\n");
        assert!(!f.journal(), "{crash:?}");
        assert_eq!(f.allows(TARGET), Some(true), "{crash:?}");
        if committed {
            assert_eq!(f.oid(TARGET), Some(new_oid), "{crash:?}");
            assert_eq!(f.rows(TARGET), "2", "{crash:?}");
            assert_eq!(f.oid(&old), None, "{crash:?}");
            let kept: Vec<String> = f.names();
            match crash {
                Crash::AfterSwap { keep: true } => {
                    assert_eq!(kept.len(), 1, "{kept:?}");
                    assert_eq!(f.oid(&kept[0]), Some(old_oid));
                    f.admin.drop_database(&kept[0]).unwrap();
                }
                _ => assert_eq!(kept, Vec::<String>::new(), "{crash:?}"),
            }
            assert!(text.contains("it is committed"), "{text}");
        } else {
            assert_eq!(f.oid(TARGET), Some(old_oid), "{crash:?}");
            assert_eq!(f.rows(TARGET), "1", "{crash:?}");
            assert!(text.contains("is as it was"), "{text}");
        }
        match crash {
            Crash::OtherNewDatabase => {
                assert!(f.oid(&new).is_some_and(|o| o != new_oid));
                assert!(text.contains("left database"), "{text}");
                f.admin.drop_database(&new).unwrap();
            }
            _ => assert_eq!(f.oid(&new), None, "{crash:?}: {text}"),
        }
        // The workspace follows the database: finished when committed, else put back.
        swap::recover(&ws).unwrap();
        let marker = std::fs::read_to_string(ws.join("marker")).unwrap();
        assert_eq!(marker, if committed { "new" } else { "old" }, "{crash:?}");
        assert_eq!(
            recover(&f.admin, f.root.path(), Some(&ws)).unwrap(),
            Vec::<String>::new()
        );
    }
}

#[test]
fn recover_leaves_a_live_run_alone() {
    let f = Fixture::start();
    f.target();
    let swap = f.begin();
    let new_oid = f.oid(swap.new_name());
    let err = recover(&f.admin, f.root.path(), None).unwrap_err();
    assert!(err.to_string().contains("is locked"), "{err}");
    assert_eq!(f.oid(swap.new_name()), new_oid);
    assert!(f.journal());
    // A second restore cannot begin beside it either.
    assert!(DatabaseSwap::begin(&f.admin, TARGET, false, f.root.path(), "b2").is_err());
    drop(swap);
    assert_eq!(f.names(), Vec::<String>::new());
    assert!(!f.journal());
}

/// The swap of a killed restore may commit after the next run's recovery read the
/// target's OID: its psql outlives coffer with the whole script, and a lock (an
/// application's, a `COMMENT ON DATABASE`) can hold its second rename until then. Here
/// the renames commit right after recovery's first read of the target's OID (a
/// `database.exec` wrapper runs them before the next psql). Recovery must not settle that
/// as "not swapped" (which would put the previous workspace back beside the restored
/// database): it keeps the journal, and the next recovery finishes the committed swap,
/// workspace included.
#[test]
fn recover_does_not_settle_a_swap_that_commits_under_it() {
    let f = Fixture::start();
    let new = format!("{TARGET}{NEW_SUFFIX}");
    let old = format!("{TARGET}{OLD_SUFFIX}");
    let old_oid = f.target();
    let (_ws_dir, ws) = swapped_in_workspace();

    // Killed in the swap, its renames not committed yet.
    let mut db_swap = f.begin();
    let new_oid = f.oid(&new).unwrap();
    db_swap.set_workspace(&ws).unwrap();
    db_swap.entries.phase = Phase::Swapping;
    db_swap.write_journal().unwrap();
    allow_connections(&f.admin, TARGET, false).unwrap();
    kill(&mut db_swap.journal);

    let dir = tempfile::tempdir().unwrap();
    let renames = dir.path().join("renames.sql");
    std::fs::write(
        &renames,
        format!(
            "ALTER DATABASE {n} ALLOW_CONNECTIONS false;\nALTER DATABASE {t} RENAME TO {o};\nALTER DATABASE {n} RENAME TO {t};\n",
            t = quote_ident(TARGET),
            n = quote_ident(&new),
            o = quote_ident(&old)
        ),
    )
    .unwrap();
    let env: String = f
        .cluster
        .env("postgres")
        .iter()
        .map(|(k, v)| format!("{k}='{v}' "))
        .collect();
    // The renames commit before the psql that follows recovery's first read of an OID
    // (the target's).
    let (seen, done) = (dir.path().join("seen"), dir.path().join("done"));
    let wrapper = dir.path().join("late-commit.sh");
    let script = [
        "#!/bin/sh".to_string(),
        format!(
            "if [ -e '{}' ] && [ ! -e '{}' ]; then",
            seen.display(),
            done.display()
        ),
        format!("  touch '{}'", done.display()),
        format!(
            "  {env}psql -X -q -1 -v ON_ERROR_STOP=1 -f '{}' || exit 99",
            renames.display()
        ),
        "fi".to_string(),
        format!(
            "case \"$*\" in *'SELECT oid FROM pg_database'*) touch '{}';; esac",
            seen.display()
        ),
        "exec \"$@\"\n".to_string(),
    ];
    std::fs::write(&wrapper, script.join("\n")).unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let late = Database::from_config(&crate::config::DatabaseConfig {
        url: Some(f.cluster.url("postgres")),
        exec: Some(vec![wrapper.display().to_string()]),
        ..Default::default()
    })
    .unwrap();

    let err = recover(&late, f.root.path(), None).unwrap_err();
    assert!(err.to_string().contains("committed while"), "{err}");
    assert!(f.journal(), "the journal was removed");
    assert_eq!(f.oid(TARGET), Some(new_oid));
    assert_eq!(
        f.oid(&old),
        Some(old_oid),
        "the previous database was touched"
    );

    let notes = recover(&f.admin, f.root.path(), None).unwrap().join("\n");
    assert!(notes.contains("it is committed"), "{notes}");
    assert!(!f.journal());
    assert_eq!(f.rows(TARGET), "2");
    assert_eq!(f.allows(TARGET), Some(true));
    assert_eq!(f.names(), Vec::<String>::new());
    swap::recover(&ws).unwrap();
    assert_eq!(std::fs::read_to_string(ws.join("marker")).unwrap(), "new");
}

/// A session renaming the target (as a killed run's swap still waiting for a lock would be)
/// keeps recovery from settling anything: it names the session and keeps the journal, where
/// it would otherwise wait on it and race its commit. Once the session is gone, recovery
/// settles as usual.
#[test]
fn recover_refuses_while_a_session_renames_the_databases() {
    use std::io::Write;
    let f = Fixture::start();
    let old_oid = f.target();
    let mut db_swap = f.begin();
    db_swap.entries.phase = Phase::Swapping;
    db_swap.write_journal().unwrap();
    kill(&mut db_swap.journal);

    // Held open (killed when dropped), inside its transaction after the rename.
    let mut held = Held(
        Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .envs(f.cluster.env("postgres"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = held.0.stdin.take().unwrap();
    writeln!(
        stdin,
        "BEGIN; ALTER DATABASE {} RENAME TO coffer_test_elsewhere;",
        quote_ident(TARGET)
    )
    .unwrap();
    stdin.flush().unwrap();
    let locked = format!(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'object' AND objid = {old_oid} \
         AND mode = 'AccessExclusiveLock' AND granted"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.admin.query(&locked).unwrap() != "1" {
        assert!(
            Instant::now() < deadline,
            "the rename did not take its lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Bounded: a recovery that waits on the session fails the test instead of hanging it.
    let (admin, root) = (f.admin.clone(), f.root.path().to_path_buf());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(recover(&admin, &root, None));
    });
    let Ok(result) = rx.recv_timeout(Duration::from_secs(20)) else {
        drop(held);
        panic!("recovery waited on the session renaming the target");
    };
    let err = result.unwrap_err();
    assert!(
        err.to_string()
            .contains("hold or wait for a lock to rename or drop"),
        "{err}"
    );
    assert!(f.journal());
    assert_eq!(f.oid(TARGET), Some(old_oid));

    drop(stdin);
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.admin.query(&locked).unwrap() != "0" {
        assert!(
            Instant::now() < deadline,
            "the renaming session did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let notes = recover(&f.admin, f.root.path(), None).unwrap().join("\n");
    assert!(notes.contains("is as it was"), "{notes}");
    assert!(!f.journal());
    assert_eq!(f.oid(TARGET), Some(old_oid));
    assert_eq!(f.names(), Vec::<String>::new());
}

/// A workspace (`marker` = "old") whose staged copy ("new") is swapped in by a run that then
/// dies (its swap forgotten, not finished): what a killed restore leaves on disk.
fn swapped_in_workspace() -> (tempfile::TempDir, std::path::PathBuf) {
    let ws_dir = tempfile::tempdir().unwrap();
    let ws = ws_dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("marker"), "old").unwrap();
    let mut ws_swap = swap::Swap::begin(&ws, "b1").unwrap();
    std::fs::write(ws_swap.staging().join("marker"), "new").unwrap();
    ws_swap.swap_in().unwrap();
    std::mem::forget(ws_swap);
    (ws_dir, ws)
}
