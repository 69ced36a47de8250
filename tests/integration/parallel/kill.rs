//! coffer killed (SIGKILL: nothing of its own cleanup runs, as on a power loss) at each
//! phase of `restore --jobs N`: while the sessions load the data, while they build the
//! indexes, and between the swap's two renames. The live database and workspace are then
//! both as they were or both restored, never a mix, and the next run settles what the
//! killed one left (`__coffer_new` / `__coffer_old`) and says so.
//!
//! The index builds and the swap are held at the chosen point by a lock a test session
//! takes, and the kill waits until PostgreSQL shows coffer's statement waiting for it: no
//! timing guesses.

use std::io::{BufRead, BufReader, Write};
use std::process::ChildStdin;
use std::sync::mpsc::{Receiver, channel};

use super::*;

/// The processes descending from `pid`, read from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The command name (in parentheses) may hold spaces: the fields follow the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((p, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for (p, ppid) in &parents {
            if *ppid == parent && !found.contains(p) {
                found.push(*p);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// Whether process `pid` still runs (a zombie has ended; whoever adopted it reaps it).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.split_whitespace().next() != Some("Z"))
    })
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    let _ =
        rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), signal);
}

impl Running {
    /// SIGKILLs coffer and returns the processes it had started (its psql sessions), which
    /// outlive it. Stopped first, so it cannot start one while they are listed.
    fn kill(mut self) -> Vec<u32> {
        let mut child = self.0.take().unwrap();
        signal(child.id(), rustix::process::Signal::STOP);
        let children = descendants(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        children
    }
}

/// Waits until every process in `pids` has ended.
fn wait_ended(pids: &[u32], what: &str) {
    wait_until(what, WAIT, || pids.iter().all(|p| !alive(*p)));
}

/// A psql session the test holds open: statements in, output lines (unaligned, tuples
/// only) out. Dropped, it is killed, and the server ends its transaction.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Session {
    fn open(db: &str) -> Session {
        let mut child = Command::new("psql")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .envs(cluster().env(db))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Session {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, sql: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(sql.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line psql printed; fails the test if none comes within [`WAIT`].
    fn line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("the test's psql session gave no answer ({e}): {what}"))
    }

    /// Ends the session (end of input) and waits for psql to exit.
    fn close(mut self) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + WAIT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the test's psql session did not end"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn query(db: &str, sql: &str) -> String {
    cluster().psql(db, sql).unwrap()
}

fn oid_of(database: &str) -> String {
    let oid = query(
        "postgres",
        &format!("SELECT oid FROM pg_database WHERE datname = '{database}'"),
    );
    assert!(!oid.is_empty(), "no database {database}");
    oid
}

/// What coffer printed, both streams.
fn said(out: &Output) -> String {
    format!("{}\n{}", stdout(out), stderr(out))
}

/// coffer killed while the sessions load the data: the target is untouched, and the next
/// restore removes the new database it left and says so.
#[test]
fn a_restore_killed_during_the_data_leaves_the_target_and_is_cleaned_up_next_time() {
    let case = Case::new();
    add_large_tables(&case);
    let before_tables = table_fingerprints(&case.db);
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    damage(&case);
    let before = Before::take(&case);
    let running = Running::start(&case, &name, &[], false);
    let new = new_name(&case);
    wait_until("a COPY into the new database", WAIT, || {
        cluster()
            .psql(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = '{new}' AND query LIKE 'COPY%'"
                ),
            )
            .is_ok_and(|n| n.trim() != "0")
    });
    let children = running.kill();
    // Each session reads end-of-input without COMMIT: its piece is rolled back.
    wait_ended(&children, "the killed restore's psql sessions to end");
    before.assert_state_unchanged(&case, "killed during COPY");

    let out = case.run(&["restore", &name, "--yes", "--jobs", "2"]);
    assert_success(&out);
    assert!(
        said(&out).contains(&format!("the partly restored {new} was dropped")),
        "the cleanup is not named:\n{}",
        said(&out)
    );
    assert_eq!(table_fingerprints(&case.db), before_tables);
    assert_eq!(databases_like(&case), vec![case.db.clone()]);
}

/// coffer killed while an index build waits: a test session holds `ROW EXCLUSIVE` on a
/// table of the new database (taken once the pre-data has created it), which the data's
/// COPY shares and the index build's `SHARE` lock waits for. The target and the workspace
/// are untouched; the next restore drops the new database, says so, and succeeds.
#[test]
fn a_restore_killed_during_the_index_builds_leaves_the_target_and_is_cleaned_up_next_time() {
    let case = Case::new();
    add_keyed_tables(&case);
    let restored = table_fingerprints(&case.db);
    let name = name_of(&case.backup_ok(&[]));
    damage_both(&case);
    let before = Before::take(&case);

    let running = Running::start(&case, &name, &[], false);
    let new = new_name(&case);
    wait_until("the new database", WAIT, || {
        databases_like(&case).contains(&new)
    });
    let mut holder = Session::open(&new);
    // Polled in the server (a fresh snapshot per statement), so the lock is taken within
    // ~10 ms of the pre-data's commit, long before the data of kill_a is loaded.
    holder.send(
        "DO $$ BEGIN \
           FOR i IN 1..6000 LOOP \
             IF EXISTS (SELECT 1 FROM pg_class WHERE relname = 'kill_a' AND relkind = 'r') THEN RETURN; END IF; \
             PERFORM pg_sleep(0.01); \
           END LOOP; \
           RAISE EXCEPTION 'the pre-data did not create kill_a within a minute'; \
         END $$; \
         BEGIN; LOCK TABLE public.kill_a IN ROW EXCLUSIVE MODE; SELECT 'locked';",
    );
    assert_eq!(holder.line("the lock on kill_a"), "locked");
    let waiting_build = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{new}' \
           AND wait_event_type = 'Lock' AND query ~ '^CREATE (UNIQUE )?INDEX .* ON public\\.kill_a '"
    );
    wait_until(
        "an index build on kill_a waiting for the lock",
        WAIT,
        || query("postgres", &waiting_build) != "0",
    );
    let children = running.kill();
    assert!(!children.is_empty(), "no psql session was running");
    holder.send("ROLLBACK;");
    holder.close();
    // Released, each build finishes; psql then reads end-of-input and ends.
    wait_ended(&children, "the killed restore's psql sessions to end");
    before.assert_state_unchanged(&case, "killed during the index builds");
    assert!(databases_like(&case).contains(&new));

    let out = case.run(&["restore", &name, "--yes", "--jobs", "2"]);
    assert_success(&out);
    assert!(
        said(&out).contains(&format!(
            "was killed before it swapped the restored database in: {} is as it was; the partly restored {new} was dropped",
            case.db
        )),
        "the cleanup is not named:\n{}",
        said(&out)
    );
    assert_eq!(table_fingerprints(&case.db), restored);
    assert_eq!(databases_like(&case), vec![case.db.clone()]);
}

/// What follows the kill in the test below.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Then {
    /// The swap's psql is left alone (it holds the whole script, COMMIT included).
    PsqlLeft,
    /// The swap's psql is killed too (its server session waits on, without a client).
    PsqlKilled,
    /// A recovery is tried while the swap still waits, then as with `PsqlLeft`.
    RecoveryWhileHeld,
}

/// coffer killed while the swap's second rename waits: in the swap's one transaction the
/// target is renamed to `__coffer_old` already, and renaming `__coffer_new` into place
/// waits for a test session's `COMMENT ON DATABASE` on it (a `SHARE UPDATE EXCLUSIVE` lock
/// on the database object, which the rename's `ACCESS EXCLUSIVE` waits for). Then the lock
/// is released. Once with the swap's psql left alone, which goes on and commits the whole
/// swap; once with it killed too, so the swap rolls back; once with a recovery tried while
/// the swap still waits, which must settle nothing and name the session. After the next
/// run's recovery (`restore` without `--yes`: it settles, then is refused for want of
/// confirmation), the database and the workspace are both restored or both as before,
/// never a mix, and neither helper database is left.
#[test]
fn a_restore_killed_between_the_two_renames_leaves_both_old_or_both_restored() {
    let case = Case::new();
    add_keyed_tables(&case);
    let restored = Before {
        tables: table_fingerprints(&case.db),
        workspace: archived_part(snapshot(&case.workspace)),
    };
    let name = name_of(&case.backup_ok(&[]));
    let new = new_name(&case);

    for then in [Then::PsqlLeft, Then::PsqlKilled, Then::RecoveryWhileHeld] {
        damage_both(&case);
        let before = Before::take(&case);
        let target_oid = oid_of(&case.db);
        let running = Running::start(&case, &name, &[], false);
        wait_until("the new database", WAIT, || {
            databases_like(&case).contains(&new)
        });
        let new_oid = oid_of(&new);
        // Taken as soon as the new database exists: nothing before the swap needs a lock
        // on its database object that this one conflicts with (sessions connecting take
        // ROW EXCLUSIVE), so the swap is sure to meet it.
        let mut holder = Session::open("postgres");
        holder.send(&format!(
            "BEGIN; COMMENT ON DATABASE \"{new}\" IS 'held by the test'; SELECT pg_backend_pid();"
        ));
        let holder_pid = holder.line("the comment's lock");
        let object_lock = |alias: &str, oid: &str| {
            format!(
                "{alias}locktype = 'object' AND {alias}classid = 'pg_database'::regclass AND {alias}objid = {oid}"
            )
        };
        assert_eq!(
            query(
                "postgres",
                &format!(
                    "SELECT mode FROM pg_locks WHERE {} AND pid = {holder_pid} AND granted",
                    object_lock("", &new_oid)
                )
            ),
            "ShareUpdateExclusiveLock"
        );
        // The swap's session: renamed the target (holds its lock), waits for the new one's.
        let second_rename_waits = format!(
            "SELECT count(*) FROM pg_locks w JOIN pg_locks h ON h.pid = w.pid \
             WHERE {} AND w.mode = 'AccessExclusiveLock' AND NOT w.granted \
               AND {} AND h.mode = 'AccessExclusiveLock' AND h.granted",
            object_lock("w.", &new_oid),
            object_lock("h.", &target_oid)
        );
        wait_until(
            "the swap's second rename waiting for the lock",
            WAIT,
            || query("postgres", &second_rename_waits) != "0",
        );
        let children = running.kill();
        assert!(!children.is_empty(), "no psql session was running");
        match then {
            Then::PsqlLeft => {}
            Then::PsqlKilled => {
                for pid in &children {
                    signal(*pid, rustix::process::Signal::KILL);
                }
            }
            Then::RecoveryWhileHeld => {
                // The swap's session still waits, and would commit under a recovery: the
                // next run names it and settles nothing (rather than wait on it).
                let swapping = query(
                    "postgres",
                    &format!(
                        "SELECT pid FROM pg_locks WHERE {} AND NOT granted",
                        object_lock("", &new_oid)
                    ),
                );
                // Bounded well below the swap's own 60 s lock timeout (the swap must still be
                // waiting when the lock is released): a recovery that waits on it fails here.
                let out = run_bounded(&case, &["restore", &name], Duration::from_secs(20));
                assert_exit(&out, 6);
                assert!(
                    error_line(&out).contains(&format!(
                        "session(s) {swapping} of the server hold or wait for a lock to rename or drop {}",
                        case.db
                    )),
                    "{}",
                    said(&out)
                );
                assert!(case.root.join(".coffer-restore-dbswap.json").exists());
                assert_eq!(query("postgres", &second_rename_waits), "1");
            }
        }
        holder.send("ROLLBACK;");
        holder.close();
        wait_ended(&children, "the killed restore's psql sessions to end");
        // The swap's server session ends too: committed, or rolled back once it finds its
        // client gone.
        let swap_locks = format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'object' AND classid = 'pg_database'::regclass \
               AND objid IN ({new_oid}, {target_oid}) AND mode = 'AccessExclusiveLock'"
        );
        wait_until("the swap's session to end", WAIT, || {
            query("postgres", &swap_locks) == "0"
        });

        let out = case.run(&["restore", &name]);
        assert!(!out.status.success(), "{}", said(&out));
        assert!(
            said(&out).contains("stdin is not a terminal"),
            "{}",
            said(&out)
        );
        let now = Before::take(&case);
        let both_old = now.tables == before.tables && now.workspace == before.workspace;
        let both_restored = now.tables == restored.tables && now.workspace == restored.workspace;
        assert!(
            both_old || both_restored,
            "a mix ({then:?}): database {}, workspace {}\n{}",
            if now.tables == restored.tables {
                "restored"
            } else if now.tables == before.tables {
                "as before"
            } else {
                "neither"
            },
            if now.workspace == restored.workspace {
                "restored"
            } else if now.workspace == before.workspace {
                "as before"
            } else {
                "neither"
            },
            said(&out)
        );
        let text = said(&out);
        if then == Then::PsqlKilled {
            // psql never sent COMMIT: the server rolled the renames back.
            assert!(both_old, "{text}");
            assert!(
                text.contains(&format!(
                    "was killed before it swapped the restored database in: {} is as it was; the partly restored {new} was dropped",
                    case.db
                )),
                "{text}"
            );
            before.assert_unchanged(&case, "killed between the renames, psql too");
        } else {
            // psql had the whole script: released, it renamed and committed.
            assert!(both_restored, "{text}");
            assert!(
                text.contains(
                    "was killed after it had swapped the restored database in: it is committed"
                ) && text.contains(&format!(
                    "the previous database ({}__coffer_old) was dropped",
                    case.db
                )),
                "{text}"
            );
        }
        assert_eq!(databases_like(&case), vec![case.db.clone()], "{text}");
    }
}

/// Never wait forever at the swap: a session that holds a lock on the target or on the new
/// database (`COMMENT ON DATABASE` in a transaction it leaves open) keeps the swap's rename
/// from ever getting its lock. The swap gives up after its lock timeout (60 s) instead of
/// waiting with the target refusing connections: rolled back (exit 7), the database and the
/// workspace as before, and the error names the session to end. A lock on the new database
/// also keeps it from being dropped: that drop gives up too, and the next run drops it and
/// says so.
#[test]
fn a_swap_that_cannot_get_its_lock_gives_up_and_changes_nothing() {
    let case = Case::new();
    add_keyed_tables(&case);
    let name = name_of(&case.backup_ok(&[]));
    let new = new_name(&case);
    for on_new in [false, true] {
        damage_both(&case);
        let before = Before::take(&case);
        let hold = |database: &str| {
            let mut holder = Session::open("postgres");
            holder.send(&format!(
                "BEGIN; COMMENT ON DATABASE \"{database}\" IS 'held by the test'; SELECT pg_backend_pid();"
            ));
            let pid = holder.line("the comment's lock");
            (holder, pid)
        };
        let started = std::time::Instant::now();
        let (out, (mut holder, holder_pid)) = if on_new {
            let running = Running::start(&case, &name, &[], true);
            wait_until("the new database", WAIT, || {
                databases_like(&case).contains(&new)
            });
            let held = hold(&new);
            (running.output(), held)
        } else {
            let held = hold(&case.db);
            (Running::start(&case, &name, &[], true).output(), held)
        };
        let took = started.elapsed();
        holder.send("ROLLBACK;");
        holder.close();

        let text = said(&out);
        assert_exit(&out, 7);
        assert!(
            took >= Duration::from_secs(60),
            "gave up after {took:?}, before the lock timeout:\n{text}"
        );
        let first = error_line(&out);
        assert!(
            first.contains(&format!(
                "database swap: a lock on database {} or {new} was not granted within 60 s, held by pid {holder_pid} ",
                case.db
            )) && first.contains("then run the restore again"),
            "{text}"
        );
        before.assert_unchanged(&case, "a swap that could not get its lock");
        if on_new {
            // Its drop gave up too: the next run (refused for want of confirmation) drops it.
            let out = case.run(&["restore", &name]);
            assert!(
                said(&out).contains(&format!("the partly restored {new} was dropped")),
                "the cleanup is not named:\n{}",
                said(&out)
            );
        }
        assert_eq!(databases_like(&case), vec![case.db.clone()], "{text}");
        assert!(!case.root.join(".coffer-restore-dbswap.json").exists());
    }
}
