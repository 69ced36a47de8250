//! psql and coffer's scanner must split a dump into the same tokens and statements, and the
//! server must run each statement psql sends as the one coffer judged. Dumps where they
//! would not (found by review): tokens psql reads as one piece (`$1e`, `:e`, `1e5e`, `N'x'`),
//! and block words that are names (`AS begin`) which make psql send what follows a BEGIN
//! ATOMIC body (a COPY, a COMMIT) in the same query. Each is refused before psql sees it.

use std::time::Duration;

use crate::adversarial::dump::{forge_dump, inject, read_dump};
use crate::harness::*;

/// Lines the gate reads as one string literal (an `E'…'` one, or a function body) and psql
/// reads as a meta-command whose backticks it runs even in restricted mode.
fn payloads(marker: &str) -> Vec<(&'static str, String)> {
    let unrestrict = format!("\\unrestrict `touch {marker}`");
    vec![
        // psql 15 lexes `$1e` as one token ({param_junk}); the gate sees `$1`, then `e'`.
        ("param junk", format!("SELECT $1e'\\' {unrestrict} ';")),
        // `:e` is a psql variable reference (unset: kept as is), not `:` and `e'`.
        ("variable", format!("SELECT :e'\\' {unrestrict} ';")),
        // `1e5e` is one token ({real_junk}).
        ("real junk", format!("SELECT 1e5e'\\' {unrestrict} ';")),
        // The server ends a BEGIN ATOMIC body at its END; psql's BEGIN/END counting (which
        // the gate mirrors) counts the column label `begin` too, so psql sends the COPY
        // after the body in the same query, then reads the next lines as COPY data.
        // psql does not count `N'…'` (nor `B'`, `X'`, `U&'`, `:var`, junk) as a word, so for
        // it this is CREATE FUNCTION … BEGIN and its `;` does not end the statement; the gate
        // counts `N`, sees a statement end, then a COPY whose data lines it does not lex.
        (
            "word counting",
            format!(
                "CREATE N'x' FUNCTION begin;\nCOPY public.t (x) FROM stdin;\n{unrestrict}\n\\."
            ),
        ),
        (
            "server-side split of a BEGIN ATOMIC query",
            format!(
                "CREATE TABLE public.sink (v text);\n\
                 CREATE FUNCTION public.f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS begin; END; \
                 COPY public.sink FROM STDIN; SELECT 1 AS end;\n\
                 SELECT $x$\n\\.\n{unrestrict}\n$x$;"
            ),
        ),
    ]
}

#[test]
fn dumps_psql_would_tokenize_differently_are_refused() {
    let case = Case::new();
    let marker = case.dir.path().join("pwned");
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let original = read_dump(&backup);
    let plain_exec = case.dir.path().join("container-psql.sh");
    std::fs::write(&plain_exec, "#!/bin/sh\nexec \"$@\"\n").unwrap();
    make_executable(&plain_exec);
    let url = cluster().url(&case.db);
    let configs = [
        (
            "database.exec",
            format!("url = \"{url}\"\nexec = [\"{}\"]\n", plain_exec.display()),
        ),
        ("host psql", format!("url = \"{url}\"\n")),
    ];
    let mut ran = Vec::new();
    for (config, database) in &configs {
        case.write_config(database, "");
        for (what, payload) in payloads(&marker.display().to_string()) {
            forge_dump(&backup, &inject(&original, &payload, false));
            let verify = case.run(&["verify", &name]);
            assert_exit(&verify, 5);
            let said = format!("{}{}", stdout(&verify), stderr(&verify));
            assert!(said.contains("not trustworthy"), "{config}, {what}: {said}");
            let out = run_bounded(&case, &["restore", &name, "--yes"], Duration::from_secs(60));
            assert_exit(&out, 5);
            if std::fs::remove_file(&marker).is_ok() {
                ran.push(format!("{config}: {what}"));
            }
        }
    }
    assert!(ran.is_empty(), "psql ran the payload: {ran:#?}");
}

#[test]
fn a_commit_hidden_after_a_begin_atomic_body_is_refused() {
    let case = Case::new();
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let original = read_dump(&backup);
    // The live database moves on after the backup.
    cluster()
        .psql(&case.db, "DELETE FROM reporting.daily_totals")
        .unwrap();
    let before = Before::take(&case);
    // Late in the dump: a COMMIT the server runs, then a statement that fails.
    let hidden = "CREATE FUNCTION public.g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS begin; END; \
                  COMMIT; SELECT 1 AS end;\nSELECT 1/0;";
    forge_dump(&backup, &inject(&original, hidden, true));
    let out = run_bounded(&case, &["restore", &name, "--yes"], Duration::from_secs(60));
    assert_exit(&out, 5);
    assert!(error_line(&out).contains("`begin`"), "{}", error_line(&out));
    before.assert_state_unchanged(&case, "a refused dump with a hidden COMMIT");
}
