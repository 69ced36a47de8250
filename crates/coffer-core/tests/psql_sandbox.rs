//! The psql that replays a dump ([`Database::spawn_psql_script`]) is confined with Landlock:
//! fed meta-commands directly (as if the dump scanner and psql's restricted mode had both been
//! fooled), it runs no program and writes no file, while plain SQL still works.
//!
//! Every payload is also run through an unconfined psql with the same arguments, which must
//! have the effect: so the confined run proves the confinement, not a payload that never
//! worked. Needs Landlock (Linux ≥ 5.13 with the LSM enabled) and PostgreSQL (server and
//! client) installed.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;

use coffer_core::internals::Confinement;
use coffer_core::internals::{Database, PgError};
use coffer_core::sandbox::TempCluster;

/// What a payload does when it works.
enum Effect {
    /// Creates this file (name inside the scratch directory).
    Creates(&'static str),
    /// Changes this pre-existing file's content (`keep\n`).
    Changes(&'static str),
}

/// Payloads: `{d}` is the scratch directory.
const PAYLOADS: &[(&str, &str, Effect)] = &[
    ("shell escape", "\\! touch {d}/m1\n", Effect::Creates("m1")),
    (
        "output to a pipe",
        "\\o |touch {d}/m2\nSELECT 1;\n",
        Effect::Creates("m2"),
    ),
    (
        "backticks in \\unrestrict (psql 15.18 expands them before checking the key)",
        "\\restrict k\n\\unrestrict `touch {d}/m3`\n",
        Effect::Creates("m3"),
    ),
    (
        "output to a file",
        "\\o {d}/m4\nSELECT 1;\n",
        Effect::Creates("m4"),
    ),
    (
        "\\copy to a file",
        "\\copy (select 1) to '{d}/m5'\n",
        Effect::Creates("m5"),
    ),
    (
        "backticks in \\set",
        "\\set x `touch {d}/m6`\n",
        Effect::Creates("m6"),
    ),
    (
        "\\lo_export",
        "SELECT lo_from_bytea(0, 'x') AS oid \\gset\n\\lo_export :oid '{d}/m7'\n",
        Effect::Creates("m7"),
    ),
    ("\\w", "SELECT 1\n\\w {d}/m8\n\\r\n", Effect::Creates("m8")),
    (
        "\\g to a pipe",
        "SELECT 1 \\g |touch {d}/m9\n",
        Effect::Creates("m9"),
    ),
    (
        "\\g to a file",
        "SELECT 1 \\g {d}/m10\n",
        Effect::Creates("m10"),
    ),
    (
        "\\copy to a program",
        "\\copy (select 1) to program 'touch {d}/m11'\n",
        Effect::Creates("m11"),
    ),
    (
        "overwriting an existing file",
        "\\o {d}/existing\nSELECT 1;\n",
        Effect::Changes("existing"),
    ),
    (
        "appending to an existing file through a shell",
        "\\! echo x >> {d}/existing\n",
        Effect::Changes("existing"),
    ),
];

fn cluster() -> TempCluster {
    TempCluster::start().unwrap_or_else(|e| {
        panic!("{e} (these tests need PostgreSQL: apt-get install postgresql postgresql-client)")
    })
}

/// Whether the payload had its effect in `dir`.
fn happened(effect: &Effect, dir: &Path) -> bool {
    match effect {
        Effect::Creates(name) => dir.join(name).symlink_metadata().is_ok(),
        Effect::Changes(name) => std::fs::read(dir.join(name)).unwrap() != b"keep\n",
    }
}

fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("existing"), "keep\n").unwrap();
    dir
}

/// Feeds `script` to the confined psql; returns whether it exited 0, and its output.
fn run_confined(db: &Database, script: &str) -> (bool, String, String) {
    let (mut psql, confinement) = db.spawn_psql_script().expect("spawn psql");
    assert!(
        matches!(confinement, Confinement::Landlock { .. }),
        "psql was not confined ({confinement:?}): this test needs Landlock (Linux >= 5.13 \
         booted with landlock in lsm=)"
    );
    let mut stdin = psql.child.stdin.take().unwrap();
    let mut stdout = psql.child.stdout.take().unwrap();
    let writer = {
        let script = script.to_string();
        std::thread::spawn(move || {
            let _ = stdin.write_all(script.as_bytes());
        })
    };
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    writer.join().unwrap();
    // Read after the exit: until then psql's last words may still be in the pipe.
    match psql.wait("") {
        Ok(()) => (true, out, String::new()),
        Err(PgError::Failed { stderr, .. }) => (false, out, stderr),
        Err(e) => (false, out, e.to_string()),
    }
}

/// The same script through psql with the same arguments, unconfined.
fn run_unconfined(db: &Database, script: &str) {
    let mut cmd = db.command("psql");
    cmd.args([
        "-X",
        "-q",
        "-t",
        "-A",
        "--no-password",
        "-v",
        "ON_ERROR_STOP=1",
    ]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn psql");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap();
}

#[test]
fn confined_psql_runs_no_program_and_writes_no_file() {
    let cluster = cluster();
    let db = cluster.database("postgres");
    let mut failures = Vec::new();
    for (what, payload, effect) in PAYLOADS {
        let confined = scratch();
        let d = confined.path().display().to_string();
        let script = payload.replace("{d}", &d);
        let (_, _, stderr) = run_confined(&db, &script);
        if happened(effect, confined.path()) {
            failures.push(format!(
                "{what}: the confined psql did it ({script:?}; {stderr})"
            ));
        }

        let control = scratch();
        let d = control.path().display().to_string();
        let script = payload.replace("{d}", &d);
        run_unconfined(&db, &script);
        assert!(
            happened(effect, control.path()),
            "{what}: the payload {script:?} has no effect even unconfined: the test proves nothing"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn confined_psql_still_runs_sql_and_reads_its_settings() {
    let cluster = cluster();
    let db = cluster.database("postgres");
    let (ok, out, stderr) = run_confined(
        &db,
        "SELECT 42;\nCREATE TEMP TABLE t (n int);\nINSERT INTO t VALUES (7);\nSELECT n FROM t;\n",
    );
    assert!(ok, "psql failed: {stderr}");
    assert_eq!(out, "42\n7\n");
}

#[test]
fn a_refused_command_stops_psql_with_an_error() {
    let cluster = cluster();
    let db = cluster.database("postgres");
    let dir = scratch();
    let (ok, out, stderr) = run_confined(
        &db,
        &format!("SELECT 1;\n\\o {}/m\nSELECT 2;\n", dir.path().display()),
    );
    assert!(!ok, "psql went on after a refused \\o: {out}");
    assert_eq!(out, "1\n", "nothing after the refused command ran");
    assert!(
        stderr.contains("Permission denied"),
        "psql says why: {stderr}"
    );
}
