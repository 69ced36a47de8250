//! `restore --jobs N`: the dump restored by several sessions into a new database that is
//! swapped into place gives exactly the database one transaction gives, and any failure
//! before the swap leaves the target as it was and nothing behind.

mod crafted;
mod kill;

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::harness::*;
use crate::pieces::without_restrict;

/// How long a test waits for a restore to reach a phase.
const WAIT: Duration = Duration::from_secs(120);

/// The pieces tests' large tables (one cut at row boundaries), without the table whose name
/// holds a newline, which the row fingerprints here cannot name.
pub(crate) fn add_large_tables(case: &Case) {
    crate::pieces::add_large_tables(case);
    cluster()
        .psql(
            &case.db,
            "DO $$ DECLARE t text; BEGIN \
               FOR t IN SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
                 WHERE strpos(tablename, chr(10)) > 0 LOOP EXECUTE 'DROP TABLE ' || t; END LOOP; END $$",
        )
        .unwrap();
}

/// Objects a parallel restore must rebuild like a single one: keys (built ahead and
/// attached `USING INDEX`), a deferrable unique key (not rewritten), an expression and a
/// partial index, a foreign key, a trigger, a sequence's value, grants, and the database's own settings and grants that a plain dump lacks.
pub(crate) fn add_objects(case: &Case) {
    let db = &case.db;
    cluster()
        .psql(
            db,
            &format!(
                r#"
DO $$ BEGIN CREATE ROLE coffer_par_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
ALTER TABLE public.big ADD PRIMARY KEY (id);
ALTER TABLE public.mid ADD CONSTRAINT mid_id_key UNIQUE (id);
ALTER TABLE public.mid ADD CONSTRAINT mid_payload_key UNIQUE (payload) DEFERRABLE;
CREATE INDEX big_payload_idx ON public.big (payload);
CREATE INDEX big_upper_idx ON public.big (upper(payload)) WHERE id % 10 = 0;
ALTER TABLE public.mid ADD CONSTRAINT mid_big_fk FOREIGN KEY (id) REFERENCES public.big (id);
CREATE SEQUENCE public.counter;
SELECT setval('public.counter', 4242);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NEW; END $f$;
CREATE TRIGGER big_touch BEFORE UPDATE ON public.big FOR EACH ROW EXECUTE FUNCTION public.touch();
GRANT SELECT ON public.big TO coffer_par_reader;
ALTER DATABASE {db} SET work_mem = '7MB';
ALTER ROLE coffer_par_reader IN DATABASE {db} SET statement_timeout = '42s';
GRANT CONNECT, TEMPORARY ON DATABASE {db} TO coffer_par_reader;
"#
            ),
        )
        .unwrap();
}

/// What [`fingerprint`] compares.
pub(crate) type Fingerprint = (std::collections::BTreeMap<String, String>, String, String);

/// Everything that must be equal after a restore: every table's rows, the schema as
/// `pg_dump -s` writes it, sequences' values, and the database's owner, encoding, locale,
/// settings and grants.
pub(crate) fn fingerprint(db: &str) -> Fingerprint {
    let c = cluster();
    let env: Vec<String> = c.env(db).iter().map(|(k, v)| format!("{k}={v}")).collect();
    let schema = without_restrict(&sh(&format!(
        "env {} pg_dump --schema-only --no-password",
        env.join(" ")
    )));
    let database = c
        .psql(
            "postgres",
            &format!(
                "SELECT d.datdba::regrole, d.encoding, d.datcollate, d.datctype, d.datconnlimit, \
                   d.datacl, \
                   (SELECT string_agg(coalesce(s.setrole::regrole::text, '-') || ':' || s.setconfig::text, ';' ORDER BY s.setrole) \
                      FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) \
                 FROM pg_database d WHERE d.datname = '{db}'"
            ),
        )
        .unwrap();
    let sequences = c
        .psql(
            db,
            "SELECT string_agg(schemaname || '.' || sequencename || '=' || coalesce(last_value::text, '-'), ',' ORDER BY sequencename) FROM pg_sequences",
        )
        .unwrap();
    (
        table_fingerprints(db),
        schema,
        format!("{database}\n{sequences}"),
    )
}

/// Databases whose name starts with the case's: the target and any leftover.
pub(crate) fn databases_like(case: &Case) -> Vec<String> {
    cluster()
        .psql(
            "postgres",
            &format!(
                "SELECT datname FROM pg_database WHERE starts_with(datname, '{}') ORDER BY 1",
                case.db
            ),
        )
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Two tables above the 4 MiB piece minimum (so each is a data piece of its own), with
/// primary keys and one more index: the post-data builds three indexes.
fn add_keyed_tables(case: &Case) {
    cluster()
        .psql(
            &case.db,
            "CREATE TABLE public.kill_a AS \
               SELECT g AS id, repeat(md5(g::text), 2) AS payload FROM generate_series(1, 90000) g; \
             CREATE TABLE public.kill_b AS \
               SELECT g AS id, repeat(md5((g * 3)::text), 2) AS payload FROM generate_series(1, 90000) g; \
             ALTER TABLE public.kill_a ADD PRIMARY KEY (id); \
             CREATE INDEX kill_a_payload_idx ON public.kill_a (payload); \
             ALTER TABLE public.kill_b ADD PRIMARY KEY (id);",
        )
        .unwrap();
}

/// Changes the database and the workspace after the backup, so that the previous and the
/// restored state differ on both sides and a mix of them shows.
fn damage_both(case: &Case) {
    cluster()
        .psql(
            &case.db,
            "DELETE FROM public.kill_a WHERE id % 3 = 0; \
             UPDATE public.kill_b SET payload = 'x' WHERE id < 50",
        )
        .unwrap();
    std::fs::write(
        case.workspace.join("uploads/after-the-backup.txt"),
        b"new\n",
    )
    .unwrap();
}

fn damage(case: &Case) {
    cluster()
        .psql(
            &case.db,
            "DELETE FROM public.mid WHERE id % 3 = 0; UPDATE public.big SET payload = 'x' WHERE id < 50; \
             DROP TABLE IF EXISTS public.attachments",
        )
        .unwrap();
}

fn name_of(backup: &std::path::Path) -> String {
    backup.file_name().unwrap().to_string_lossy().into_owned()
}

/// `<target>__coffer_new`, the database a parallel restore fills.
fn new_name(case: &Case) -> String {
    format!("{}__coffer_new", case.db)
}

/// A `coffer restore NAME --yes --jobs 2` (plus `extra`) running in the background. Its
/// output is captured when `capture` (read with [`Running::output`]), else discarded: the
/// psql sessions of a killed run may outlive it, and must not hold a pipe the test reads.
/// Dropped (a failed assertion), it is killed, so a test leaves no restore running.
struct Running(Option<Child>);

impl Running {
    fn start(case: &Case, name: &str, extra: &[&str], capture: bool) -> Running {
        let output = || {
            if capture {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        let child = case
            .coffer()
            .args(["restore", name, "--yes", "--jobs", "2"])
            .args(extra)
            .stdout(output())
            .stderr(output())
            .spawn()
            .unwrap();
        Running(Some(child))
    }

    /// Waits (within [`RUN_LIMIT`]) for the restore to end.
    fn output(mut self) -> Output {
        wait_within(self.0.take().unwrap(), RUN_LIMIT, "restore --jobs 2")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn jobs_1_and_4_restore_the_same_database() {
    let case = Case::new();
    add_large_tables(&case);
    add_objects(&case);
    let before = fingerprint(&case.db);
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    let data_pieces = manifest(&backup)["artifacts"][0]["pieces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "data")
        .count();
    assert!(data_pieces >= 3, "{data_pieces} data pieces");

    damage(&case);
    let out = case.run(&["restore", &name, "--yes", "--jobs", "1"]);
    assert_success(&out);
    assert!(!stdout(&out).contains("sessions into"), "{}", stdout(&out));
    assert_eq!(fingerprint(&case.db), before, "after --jobs 1");

    damage(&case);
    let out = case.run(&["restore", &name, "--yes", "--jobs", "4", "--json"]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let phases = &v["report"]["database"]["phases"];
    assert_eq!(phases["jobs"], data_pieces.min(4), "{v}");
    for phase in ["pre_data", "data", "indexes", "post_data", "swap"] {
        assert!(phases[phase].as_f64().is_some(), "{phase}: {v}");
    }
    assert_eq!(fingerprint(&case.db), before, "after --jobs 4");
    assert_eq!(databases_like(&case), vec![case.db.clone()]);

    // The plan says how, and --keep-old keeps the replaced database.
    let out = case.run(&["restore", &name, "--yes", "--jobs", "2", "--keep-old"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "database restored by 2 sessions into {}__coffer_new, then swapped into place",
            case.db
        )),
        "{text}"
    );
    let kept = databases_like(&case);
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept[1].starts_with(&format!("{}__coffer_old", case.db)),
        "{kept:?}"
    );
    assert!(
        text.contains(&format!("previous database kept as {}", kept[1])),
        "{text}"
    );
    assert_eq!(table_fingerprints(&kept[1]), before.0);
    cluster()
        .psql("postgres", &format!("DROP DATABASE \"{}\"", kept[1]))
        .unwrap();

    // The restore drill takes the same path.
    let out = case.run(&["verify", &name, "--restore-test", "--jobs", "2"]);
    assert_success(&out);
}

/// A piece whose bytes differ from its recorded SHA-256 (the manifest edited, the file
/// intact, so only the piece check can catch it) fails the restore before the swap: the
/// target is unchanged and the new database gone.
#[test]
fn a_piece_that_fails_its_hash_changes_nothing() {
    let case = Case::new();
    add_large_tables(&case);
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    damage(&case);
    let before = Before::take(&case);
    let mut m = manifest(&backup);
    let pieces = m["artifacts"][0]["pieces"].as_array_mut().unwrap();
    let last_data = pieces.iter().rposition(|p| p["kind"] == "data").unwrap();
    pieces[last_data]["sha256"] = serde_json::Value::from("0".repeat(64));
    std::fs::write(
        backup.join("manifest.json"),
        serde_json::to_string_pretty(&m).unwrap(),
    )
    .unwrap();
    write_sums_from_manifest(&backup);
    let out = case.run(&["restore", &name, "--yes", "--jobs", "2"]);
    assert_exit(&out, 5);
    assert!(error_line(&out).contains("restore"), "{}", stderr(&out));
    before.assert_unchanged(&case, "damaged piece");
    assert_eq!(databases_like(&case), vec![case.db.clone()]);
}

/// A session of the application that connects during the restore: the swap refuses it
/// (nothing changed, the new database dropped), or with --terminate-connections ends it.
#[test]
fn a_session_opened_during_the_restore_is_refused_or_terminated_at_the_swap() {
    let case = Case::new();
    add_large_tables(&case);
    let before_tables = table_fingerprints(&case.db);
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    damage(&case);

    for terminate in [false, true] {
        let before = Before::take(&case);
        let mut extra = vec!["--no-hooks"];
        if terminate {
            extra.push("--terminate-connections");
        }
        let running = Running::start(&case, &name, &extra, true);
        let new = new_name(&case);
        wait_until("the new database", WAIT, || {
            databases_like(&case).contains(&new)
        });
        // The application comes back while the data loads.
        let mut app = Command::new("psql")
            .args(["-X", "-q", "-c", "SELECT pg_sleep(300)"])
            .envs(cluster().env(&case.db))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = running.output();
        let app_status = app.try_wait().unwrap();
        let _ = app.kill();
        let _ = app.wait();
        if terminate {
            assert_success(&out);
            assert!(
                app_status.is_some(),
                "the application session was not ended"
            );
            assert_eq!(table_fingerprints(&case.db), before_tables);
        } else {
            // Refused at the swap: nothing was changed, as a pre-flight refusal.
            assert_exit(&out, 6);
            assert!(
                error_line(&out).contains(&format!("other session(s) connected to {}", case.db)),
                "{}",
                stderr(&out)
            );
            before.assert_unchanged(&case, "session at the swap");
        }
        assert_eq!(databases_like(&case), vec![case.db.clone()]);
        damage(&case);
    }
}
