//! psql lexes each line of its input in the client encoding the server last reported. In a
//! client-only encoding (SJIS, BIG5, GBK, …) a multi-byte character swallows the quote after
//! it, so a dump that switches the encoding at run time, through a function no text names,
//! could make psql see a meta-command where coffer's scanner reads a string. psql 15.18 runs
//! backticks in the argument of `\unrestrict` even in restricted mode, so that is a shell.
//! coffer sets the dump's encoding again after every statement and COPY section: the
//! payload stays a string, whether psql is confined (host psql) or not (`database.exec`).

use std::time::Duration;

use crate::adversarial::dump::{legacy_backup, read_dump};
use crate::harness::*;

/// A function that switches the session to SJIS without naming `client_encoding`.
const FLIP: &str = "CREATE OR REPLACE FUNCTION public.flip(int) RETURNS boolean LANGUAGE sql \
    AS $$ SELECT set_config('client' || '_encoding', 'SJIS', false) IS NOT NULL $$;\n";

/// In UTF-8 a string then a second string; in SJIS the byte 0x81 of `Á` swallows the first
/// string's closing quote, so psql sees `\unrestrict` with a backtick command at the top level.
fn smuggled(marker: &std::path::Path) -> String {
    format!(
        "SELECT 'Á' || '\\unrestrict `touch {}`';\n",
        marker.display()
    )
}

/// Puts `text` right after the line of the dump that starts with `anchor`.
fn after_line(dump: &str, anchor: &str, text: &str) -> String {
    let start = dump.find(anchor).expect("anchor in the dump");
    let at = start + dump[start..].find('\n').unwrap() + 1;
    format!("{}{text}{}", &dump[..at], &dump[at..])
}

#[test]
fn a_client_encoding_switched_at_run_time_never_lets_psql_run_a_command() {
    let case = Case::new();
    std::fs::remove_file(case.workspace.join("run/app.fifo")).unwrap();
    std::fs::remove_file(case.workspace.join("run/app.sock")).unwrap();
    let marker = case.dir.path().join("pwned");
    let dump = read_dump(&case.backup_ok(&[]));
    let smuggle = smuggled(&marker);
    let variants = [
        (
            "a statement switches the encoding",
            after_line(
                &dump,
                "SET client_min_messages",
                &format!("{FLIP}SELECT public.flip(1);\n{smuggle}"),
            ),
        ),
        (
            "a CHECK run by a COPY switches the encoding",
            after_line(
                &dump,
                "SET client_min_messages",
                &format!(
                    "{FLIP}CREATE TABLE IF NOT EXISTS public.flipper (v int CHECK (public.flip(v)));\n\
                     COPY public.flipper (v) FROM stdin;\n1\n\\.\n{smuggle}"
                ),
            ),
        ),
        (
            "psql starts in the encoding of its environment",
            after_line(&dump, "\\restrict ", &smuggle),
        ),
    ];
    // psql in a "container" (unconfined, and its environment chooses SJIS), and on the host.
    let container = case.dir.path().join("container-psql.sh");
    std::fs::write(
        &container,
        "#!/bin/sh\nexport PGCLIENTENCODING=SJIS\nexec \"$@\"\n",
    )
    .unwrap();
    make_executable(&container);
    let url = cluster().url(&case.db);
    let configs = [
        (
            "database.exec",
            format!("url = \"{url}\"\nexec = [\"{}\"]\n", container.display()),
        ),
        ("host psql", format!("url = \"{url}\"\n")),
    ];
    let mut n = 0;
    for (config, database) in &configs {
        case.write_config(database, "");
        for (what, text) in &variants {
            n += 1;
            let name = format!("2025-06-{n:02}-030000");
            legacy_backup(&case, &name, text, HEAD);
            let out = run_bounded(&case, &["restore", &name, "--yes"], Duration::from_secs(60));
            assert!(!marker.exists(), "{config}, {what}: the payload ran");
            assert_success(&out);
        }
    }
}
