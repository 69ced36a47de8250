//! The dump: no command from a backup ever runs, the scanner follows SQL's lexical
//! structure, a cut dump never verifies or commits (and never hangs a restore), and the
//! manifest's head and tables are proven by the dump.
//!
//! Forged backups are made the way an attacker with write access to the backup root or the
//! bucket would: the dump is edited and the manifest's sizes and hashes and `SHA256SUMS` are
//! rewritten to match, so every integrity check passes.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The plain dump of a backup.
pub(super) fn read_dump(backup: &Path) -> String {
    sh(&format!("gunzip -c '{}/postgres.sql.gz'", backup.display()))
}

/// Writes `text` as the backup's gzipped dump and makes the manifest and `SHA256SUMS`
/// agree with it: a forgery every hash check passes.
pub(super) fn forge_dump(backup: &Path, text: &str) {
    let plain = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(plain.path(), text).unwrap();
    let gz = backup.join("postgres.sql.gz");
    sh(&format!(
        "gzip -nc '{}' > '{}'",
        plain.path().display(),
        gz.display()
    ));
    let stored = std::fs::read(&gz).unwrap();
    let mut m = manifest(backup);
    for a in m["artifacts"].as_array_mut().unwrap() {
        if a["role"] == "database" {
            a["size"] = stored.len().into();
            a["sha256"] = sha256_hex(&stored).into();
            a["uncompressed_size"] = text.len().into();
            a["uncompressed_sha256"] = sha256_hex(text.as_bytes()).into();
            // A new file has no piece index (as from a coffer before it): only the gate judges it.
            a.as_object_mut().unwrap().remove("pieces");
        }
    }
    write_manifest(backup, &m);
}

/// Writes a coffer manifest and the `SHA256SUMS` that agrees with it.
fn write_manifest(backup: &Path, m: &serde_json::Value) {
    std::fs::write(
        backup.join("manifest.json"),
        serde_json::to_string_pretty(m).unwrap(),
    )
    .unwrap();
    write_sums_from_manifest(backup);
}

/// A shell-script-era backup holding `dump` (and the case's workspace).
pub(super) fn legacy_backup(case: &Case, name: &str, dump: &str, head: &str) {
    let dir = case.root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let plain = case.dir.path().join(format!("{name}.sql"));
    std::fs::write(&plain, dump).unwrap();
    sh(&format!(
        "cd '{d}' && gzip -nc '{p}' > postgres.sql.gz && rm '{p}' && \
         tar -czf workspace.tar.gz --exclude=./run -C '{ws}' . && \
         printf '{{\"timestamp\": \"2025-06-01T03:00:00Z\", \"alembic_head\": \"{head}\", \"db_size\": 1, \"workspace_path\": \"{ws}\"}}' > manifest.json",
        d = dir.display(),
        p = plain.display(),
        ws = case.workspace.display()
    ));
}

/// No session of the case's database is left open inside a transaction.
pub(super) fn assert_no_open_transaction(case: &Case, context: &str) {
    let query = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND state LIKE 'idle in transaction%'",
        case.db
    );
    wait_until(
        &format!("{context}: the restore's session to end"),
        Duration::from_secs(15),
        || cluster().psql("postgres", &query).unwrap().trim() == "0",
    );
}

/// A database with odd identifiers and text that fools any line-based reading of a dump.
const ODD_SCHEMA: &str = r#"
CREATE SCHEMA "odd schema";
CREATE TABLE public."new
line" (id int, "col
;" text);
INSERT INTO public."new
line" SELECT g, E'x\ty\\z' FROM generate_series(1, 3) g;
CREATE TABLE "odd schema"."quote""d; COPY" (v text);
INSERT INTO "odd schema"."quote""d; COPY" VALUES
  (E'COPY public.alembic_version (version_num) FROM stdin;\nfakehead\n\\.'),
  ('-- PostgreSQL database dump complete'), (E'\\! touch /nonexistent'), (NULL);
CREATE TABLE public."ünï cødé ☃" (v int);
INSERT INTO public."ünï cødé ☃" SELECT generate_series(1, 5);
CREATE TABLE public."COPY public.ghost (x) FROM stdin;" (v int);
INSERT INTO public."COPY public.ghost (x) FROM stdin;" VALUES (1), (2);
CREATE TABLE public."$$" ("$1" int);
INSERT INTO public."$$" VALUES (7);
CREATE SCHEMA app;
CREATE TABLE app.alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO app.alembic_version VALUES ('notthehead01');
CREATE FUNCTION public.decoy() RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
-- a body pg_dump writes verbatim:
/*
COPY public.alembic_version (version_num) FROM stdin;
fakehead0000
\.
*/
-- PostgreSQL database dump complete
--
-- \! touch MARKER
RETURN 'x$$y' || $x$
\! touch MARKER
$x$;
END
$body$;
CREATE FUNCTION public.decoy_sql() RETURNS text LANGUAGE sql AS $_$ SELECT $$
COPY public.ghost2 (x) FROM stdin;
1
\.
$$::text $_$;
COMMENT ON TABLE public."new
line" IS 'line1
COPY public.ghost3 (x) FROM stdin;
1
\.
-- PostgreSQL database dump complete';
CREATE VIEW public.odd_view AS SELECT 'a;b' AS "x$$y", $$c'd$$ AS "e""f";
"#;

/// PostgreSQL's own count of every table, keyed as the manifest keys them.
fn postgres_counts(db: &str) -> serde_json::Value {
    let c = cluster();
    let tables = c
        .psql(
            db,
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        )
        .unwrap();
    let mut counts = serde_json::Map::new();
    // Names may hold newlines: ask for each one by OID order instead of splitting lines.
    let n: usize = c
        .psql(
            db,
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(n > 5, "{tables}");
    for i in 0..n {
        let name = c
            .psql(
                db,
                &format!(
                    "SELECT encode(convert_to(format('%I.%I', schemaname, tablename), 'UTF8'), 'hex') FROM pg_tables \
                     WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1 OFFSET {i} LIMIT 1"
                ),
            )
            .unwrap();
        let name = String::from_utf8(hex::decode(name.trim()).unwrap()).unwrap();
        let count: u64 = c
            .psql(db, &format!("SELECT count(*) FROM {name}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        counts.insert(name, count.into());
    }
    serde_json::Value::Object(counts)
}

#[test]
fn manifest_facts_equal_postgres_own_for_odd_schemas() {
    let case = Case::new();
    let marker = case.dir.path().join("pwned");
    cluster()
        .psql(
            &case.db,
            &ODD_SCHEMA.replace("MARKER", &marker.display().to_string()),
        )
        .unwrap();
    let backup = case.backup_ok(&[]);
    let m = manifest(&backup);
    assert_eq!(m["database"]["tables"], postgres_counts(&case.db));
    let live_head = cluster()
        .psql(&case.db, "SELECT version_num FROM public.alembic_version")
        .unwrap();
    assert_eq!(
        m["alembic_head"],
        live_head.trim(),
        "only public.alembic_version is the head"
    );
    assert_eq!(live_head.trim(), HEAD);

    let out = case.run(&["verify", &backup.file_name().unwrap().to_string_lossy()]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("(tables, rows and head as in the manifest)"),
        "{}",
        stdout(&out)
    );
    // It restores, bodies and all, and the head check after it agrees.
    let counts = postgres_counts(&case.db);
    cluster()
        .psql(
            &case.db,
            "DELETE FROM public.\"ünï cødé ☃\"; DELETE FROM app.alembic_version",
        )
        .unwrap();
    let out = case.run(&["restore", "--latest", "--yes"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("alembic head matches manifest ({HEAD})")),
        "{}",
        stdout(&out)
    );
    assert_eq!(postgres_counts(&case.db), counts);
    assert!(!marker.exists(), "text in a function body ran");
}

/// psql meta-commands of every family that runs a program or touches a file, on their own
/// line and mid-line. `MARKER` is a file the payload would create.
fn payloads(dump: &str) -> Vec<(&'static str, String)> {
    let key = dump
        .lines()
        .find_map(|l| l.strip_prefix("\\restrict "))
        .expect("pg_dump 15.14+ writes \\restrict");
    vec![
        ("shell", "\\! touch MARKER".to_string()),
        ("shell mid-line", "SELECT 1; \\! touch MARKER".to_string()),
        (
            "shell after a comment ended by CR",
            "SELECT 1; -- note\r\\! touch MARKER".to_string(),
        ),
        (
            "shell after an identifier with $$",
            "SELECT 1 AS x$$ \\! touch MARKER\n;".to_string(),
        ),
        ("output to a file", "\\o MARKER\nSELECT 1;".to_string()),
        (
            "output to a pipe",
            "\\o |touch MARKER\nSELECT 1;".to_string(),
        ),
        ("query to a pipe", "SELECT 1 \\g |touch MARKER".to_string()),
        (
            "query to a file, expanded",
            "SELECT 1 \\gx MARKER".to_string(),
        ),
        ("write the buffer", "SELECT 1 \\w MARKER".to_string()),
        (
            "client copy to a program",
            "\\copy (SELECT 1) TO PROGRAM 'touch MARKER'".to_string(),
        ),
        (
            "client copy to a file",
            "\\copy (SELECT 1) TO 'MARKER'".to_string(),
        ),
        ("backticks", "\\set x `touch MARKER`".to_string()),
        ("history to a file", "\\s MARKER".to_string()),
        ("gexec", "SELECT 'SELECT 1' \\gexec".to_string()),
        ("include", "\\i /etc/hostname".to_string()),
        ("setenv", "\\setenv PAGER 'touch MARKER'".to_string()),
        (
            "the dump's own unrestrict early",
            format!("\\unrestrict {key}\n\\! touch MARKER"),
        ),
        (
            "unrestrict with another key",
            "\\unrestrict abc123\n\\! touch MARKER".to_string(),
        ),
    ]
}

/// Puts `payload` into `dump`: early (after the first SET lines) or late (after all data).
pub(super) fn inject(dump: &str, payload: &str, late: bool) -> String {
    let anchor = if late {
        "\n--\n-- PostgreSQL database dump complete"
    } else {
        "\nSET client_min_messages = warning;\n"
    };
    let at = dump.find(anchor).expect("anchor in the dump") + if late { 1 } else { anchor.len() };
    format!("{}{payload}\n{}", &dump[..at], &dump[at..])
}

#[test]
fn forged_coffer_backups_with_meta_commands_never_run_them() {
    let case = Case::new();
    let marker = case.dir.path().join("pwned");
    let marker_text = marker.display().to_string();
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let original = read_dump(&backup);
    let before = Before::take(&case);
    for (i, (what, payload)) in payloads(&original).into_iter().enumerate() {
        let payload = payload.replace("MARKER", &marker_text);
        let late = i % 2 == 1;
        forge_dump(&backup, &inject(&original, &payload, late));
        let context = format!("{what} ({})", if late { "late" } else { "early" });

        let out = case.run(&["verify", &name]);
        assert_exit(&out, 5);
        let text = stdout(&out);
        assert!(
            text.contains("outside COPY data: coffer never runs commands from a backup"),
            "{context}: {text}"
        );

        let out = run_bounded(&case, &["restore", &name, "--yes"], Duration::from_secs(60));
        assert_exit(&out, 5);
        let err = error_line(&out);
        assert!(
            err.contains("nothing was changed") && err.contains("psql meta-command"),
            "{context}: {err}"
        );
        assert!(
            !marker.exists(),
            "{context}: the payload ran during restore"
        );
        before.assert_state_unchanged(&case, &context);
        assert_no_open_transaction(&case, &context);

        let out = case.run(&["verify", &name, "--restore-test"]);
        assert_exit(&out, 5);
        assert!(
            !marker.exists(),
            "{context}: the payload ran during the drill"
        );
    }
    // A COPY that is not pg_dump's `FROM stdin` form is refused the same way.
    for copy in [
        "COPY public.users (id) FROM PROGRAM 'touch MARKER';",
        "copy public.users from stdin;\n1\n\\.",
        "COPY public.users (id) FROM stdin WITH (FORMAT csv);\n1\n\\.",
    ] {
        forge_dump(
            &backup,
            &inject(&original, &copy.replace("MARKER", &marker_text), false),
        );
        let out = case.run(&["verify", &name]);
        assert_exit(&out, 5);
        assert!(
            stdout(&out).contains("COPY statement coffer does not recognise"),
            "{}",
            stdout(&out)
        );
        let out = run_bounded(&case, &["restore", &name, "--yes"], Duration::from_secs(60));
        assert_exit(&out, 5);
        before.assert_state_unchanged(&case, copy);
    }
    // The untouched dump still restores: the gate passes pg_dump's own output.
    forge_dump(&backup, &original);
    assert_success(&case.run(&["restore", &name, "--yes", "--db-only"]));
    assert_eq!(table_fingerprints(&case.db), before.tables);
}

#[test]
fn forged_legacy_backups_with_meta_commands_never_run_them() {
    let case = Case::new();
    std::fs::remove_file(case.workspace.join("run/app.fifo")).unwrap();
    std::fs::remove_file(case.workspace.join("run/app.sock")).unwrap();
    let marker = case.dir.path().join("pwned");
    let env: String = cluster()
        .env(&case.db)
        .iter()
        .map(|(k, v)| format!("{k}='{v}' "))
        .collect();
    let dump = sh(&format!("{env} pg_dump --clean --if-exists {}", case.db));
    let before = Before::take(&case);
    let all = payloads(&dump);
    for (i, (what, payload)) in all.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let name = format!("2025-06-0{}-030000", 1 + i / 3);
        let payload = payload.replace("MARKER", &marker.display().to_string());
        legacy_backup(&case, &name, &inject(&dump, &payload, i % 2 == 0), HEAD);
        let out = case.run(&["verify", &name]);
        assert_exit(&out, 5);
        let out = run_bounded(&case, &["restore", &name, "--yes"], Duration::from_secs(60));
        assert_exit(&out, 5);
        assert!(!marker.exists(), "{what}: the payload ran");
        before.assert_state_unchanged(&case, what);
        assert_no_open_transaction(&case, what);
    }
}

#[test]
fn cut_dumps_never_verify_never_commit_and_never_hang() {
    let case = Case::new();
    cluster()
        .psql(
            &case.db,
            "CREATE FUNCTION public.trick() RETURNS int LANGUAGE plpgsql AS $body$\nBEGIN\n\
             --\n-- PostgreSQL database dump complete\n--\nRETURN 1;\nEND\n$body$;",
        )
        .unwrap();
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let original = read_dump(&backup);
    let fake = original
        .find("-- PostgreSQL database dump complete\n--\nRETURN")
        .expect("the body is in the dump");
    let copy = original.find(" FROM stdin;\n").expect("a COPY section");
    let copy_row = copy + " FROM stdin;\n".len() + 3;
    let before = Before::take(&case);
    for (what, cut) in [
        (
            "right after a fake trailer in a function body",
            fake + "-- PostgreSQL database dump complete\n--\n".len(),
        ),
        ("inside a dollar-quoted body", fake - 3),
        ("inside COPY data", copy_row),
        ("inside the COPY statement", copy),
        (
            "before the real trailer",
            original
                .rfind("--\n-- PostgreSQL database dump complete")
                .unwrap(),
        ),
    ] {
        forge_dump(&backup, &original[..cut]);
        let out = case.run(&["verify", &name]);
        assert_exit(&out, 5);
        assert!(
            stdout(&out).contains("cut short"),
            "{what}: {}",
            stdout(&out)
        );

        let started = Instant::now();
        let out = run_bounded(&case, &["restore", &name, "--yes"], Duration::from_secs(60));
        assert_exit(&out, 5);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: took {:?}",
            started.elapsed()
        );
        assert!(
            error_line(&out).contains("cut short"),
            "{what}: {}",
            error_line(&out)
        );
        before.assert_state_unchanged(&case, what);
        assert_no_open_transaction(&case, what);
    }
    forge_dump(&backup, &original);
    before.assert_state_unchanged(&case, "setup");
    assert_success(&case.run(&["verify", &name]));
}

/// A change made to a manifest by whoever can write the backup root.
type ManifestEdit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn an_edited_manifest_head_or_table_list_is_refused() {
    let case = Case::new();
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let original = manifest(&backup);
    let first_table = original["database"]["tables"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let edits: Vec<(&str, ManifestEdit)> = vec![
        (
            "another head",
            Box::new(|m| m["alembic_head"] = "0123456789ab".into()),
        ),
        (
            "no head",
            Box::new(|m| m["alembic_head"] = serde_json::Value::Null),
        ),
        (
            "two heads",
            Box::new(|m| m["alembic_head"] = serde_json::json!([HEAD, "0123456789ab"])),
        ),
        (
            "a row count",
            Box::new({
                let t = first_table.clone();
                move |m| {
                    let n = m["database"]["tables"][&t].as_u64().unwrap();
                    m["database"]["tables"][&t] = (n + 1).into();
                }
            }),
        ),
        (
            "a table removed",
            Box::new({
                let t = first_table.clone();
                move |m| {
                    m["database"]["tables"].as_object_mut().unwrap().remove(&t);
                }
            }),
        ),
        (
            "a table added",
            Box::new(|m| m["database"]["tables"]["public.ghost"] = 3.into()),
        ),
    ];
    let before = Before::take(&case);
    for (what, edit) in edits {
        let mut m = original.clone();
        edit(&mut m);
        write_manifest(&backup, &m);
        let out = case.run(&["verify", &name]);
        assert_exit(&out, 5);
        assert!(
            stdout(&out).contains("the manifest does not describe this dump"),
            "{what}: {}",
            stdout(&out)
        );
        let out = run_bounded(&case, &["restore", &name, "--yes"], Duration::from_secs(60));
        assert_exit(&out, 5);
        assert!(
            error_line(&out).contains("the manifest does not describe this dump"),
            "{what}: {}",
            error_line(&out)
        );
        before.assert_state_unchanged(&case, what);
        assert_no_open_transaction(&case, what);
    }
    write_manifest(&backup, &original);
    assert_success(&case.run(&["verify", &name]));

    // A legacy manifest's head is what it records: it must be the dump's too.
    let dump = read_dump(&backup);
    legacy_backup(&case, "2025-06-01-030000", &dump, "0123456789ab");
    let out = case.run(&["verify", "2025-06-01-030000"]);
    assert_exit(&out, 5);
    assert!(
        stdout(&out).contains("alembic_head is 0123456789ab"),
        "{}",
        stdout(&out)
    );
    legacy_backup(&case, "2025-06-02-030000", &dump, HEAD);
    assert_success(&case.run(&["verify", "2025-06-02-030000"]));
}

#[test]
fn a_forged_remote_backup_is_refused_by_pull_and_restore_from_remote() {
    let case = Case::new();
    let offsite = case.dir.path().join("offsite");
    case.write_config(
        &case.db_section(),
        &format!("[remote]\nurl = \"file://{}\"\n", offsite.display()),
    );
    let marker = case.dir.path().join("pwned");
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    assert_success(&case.run(&["sync"]));
    // Whoever can write to the bucket rewrites the dump, the manifest and SHA256SUMS.
    let remote = offsite.join(&name);
    let dump = read_dump(&remote);
    let payload = format!("SELECT 1; \\! touch {}", marker.display());
    forge_dump(&remote, &inject(&dump, &payload, true));
    std::fs::remove_dir_all(&case.root).unwrap();
    let tables = table_fingerprints(&case.db);

    let out = case.run(&["pull", &name]);
    assert_exit(&out, 5);
    assert!(
        error_line(&out).contains("psql meta-command"),
        "{}",
        error_line(&out)
    );
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());
    let out = run_bounded(
        &case,
        &["restore", "--from-remote", &name, "--yes"],
        Duration::from_secs(60),
    );
    assert_exit(&out, 5);
    assert!(!marker.exists(), "the payload ran");
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_no_open_transaction(&case, "restore --from-remote");
}

#[test]
fn psql_gets_a_fresh_restrict_key_and_never_the_dumps_own_lines() {
    let case = Case::new();
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let dump = read_dump(&backup);
    let dump_key = dump
        .lines()
        .find_map(|l| l.strip_prefix("\\restrict "))
        .expect("pg_dump 15.14+ writes \\restrict")
        .to_string();
    // psql through a wrapper that records what it is given on its standard input.
    let wrapper = tee_psql(&case);
    let captures = case.dir.path().join("psql-input");
    case.write_config(
        &format!(
            "url = \"{}\"\nexec = [\"{}\"]\n",
            cluster().url(&case.db),
            wrapper.display()
        ),
        "",
    );
    let mut keys = Vec::new();
    for _ in 0..2 {
        for f in std::fs::read_dir(&captures).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
        let out = case.run(&["restore", &name, "--yes", "--db-only"]);
        assert_success(&out);
        let streams: Vec<String> = std::fs::read_dir(&captures)
            .unwrap()
            .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(streams.len(), 1, "one psql got the dump");
        let stream = &streams[0];
        let (first, rest) = stream.split_once('\n').unwrap();
        let key = first.strip_prefix("\\restrict ").expect(first);
        assert!(
            key.len() == 32 && key.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{key}"
        );
        assert!(
            rest.starts_with("SELECT 'coffer-pid:' || pg_backend_pid();\nBEGIN;\n"),
            "{rest:.80}"
        );
        assert!(rest.ends_with("COMMIT;\n"), "the stream ends with COMMIT");
        assert!(
            !rest.contains("\\restrict") && !rest.contains("\\unrestrict"),
            "the dump's own \\restrict lines reached psql"
        );
        assert!(!stream.contains(&dump_key), "the dump's key reached psql");
        assert!(
            !stdout(&out).contains(key) && !stderr(&out).contains(key),
            "the key was shown"
        );
        keys.push(key.to_string());
    }
    assert_ne!(keys[0], keys[1], "each restore draws a new key");
}

/// If psql and coffer's scanner ever disagree about where the dump's last statement ends,
/// psql swallows the end marker and waits for input with the transaction open. The restore
/// notices (the session idles in its transaction although everything was sent), rolls back
/// and says so, instead of waiting forever. Simulated by a psql wrapper that opens a dollar
/// quote the scanner never saw.
#[test]
fn a_psql_left_waiting_for_input_is_rolled_back_not_waited_on() {
    let case = Case::new();
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let before = Before::take(&case);
    let wrapper = case.dir.path().join("stall-psql.sh");
    std::fs::write(
        &wrapper,
        // Only the psql that reads the dump (queries come with -c).
        "#!/bin/sh\nprog=$1; shift\n\
         case \" $* \" in *\" -c \"*) exec \"$prog\" \"$@\";; esac\n\
         if [ \"$prog\" = psql ]; then\n\
         \x20 sed -u '/^BEGIN;$/a SELECT $stall$' | psql \"$@\"\n  exit $?\nfi\n\
         exec \"$prog\" \"$@\"\n",
    )
    .unwrap();
    make_executable(&wrapper);
    case.write_config(
        &format!(
            "url = \"{}\"\nexec = [\"{}\"]\n",
            cluster().url(&case.db),
            wrapper.display()
        ),
        "",
    );
    let started = Instant::now();
    let out = run_bounded(
        &case,
        &["restore", &name, "--yes"],
        Duration::from_secs(120),
    );
    assert_exit(&out, 5);
    assert!(
        error_line(&out).contains("still waiting for input"),
        "{}",
        stderr(&out)
    );
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "gave up before the stall bound: {:?}",
        started.elapsed()
    );
    before.assert_state_unchanged(&case, "stalled psql");
    assert_no_open_transaction(&case, "stalled psql");
}
