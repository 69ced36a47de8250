//! The gate: what is refused, and what psql is given.

use super::*;

#[test]
fn meta_commands_and_foreign_copies_are_refused() {
    for (name, body, needle) in refused_bodies() {
        let d = dump(body);
        let facts = scan(d.as_bytes());
        let problem = facts.problem.clone().unwrap_or_default();
        assert!(problem.contains(needle), "{name}: {problem:?}");
        assert!(problem.contains("not trustworthy"), "{name}: {problem:?}");
        assert!(!facts.complete, "{name}");
        assert_eq!(facts.unusable(), Some(problem.clone()), "{name}");
        // Whatever the chunking, psql never receives the refused bytes.
        for at in 0..=d.len() {
            let (out, split) = filtered(d.as_bytes(), at);
            assert_eq!(
                split.problem.as_deref(),
                Some(problem.as_str()),
                "{name} @{at}"
            );
            let sent = String::from_utf8_lossy(&out);
            for bad in [
                "\\!",
                "\\o",
                "\\g",
                "\\w",
                "\\s",
                "\\i",
                "\\e",
                "\\c",
                "\\l",
                "\\;",
                "\\set",
                "PROGRAM",
                "/etc/passwd",
                "FORMAT csv",
            ] {
                assert!(!sent.contains(bad), "{name} @{at}: sent {sent:?}");
            }
            assert!(!sent.contains("\\restrict"), "{name} @{at}: {sent:?}");
            assert!(out.len() < d.len(), "{name} @{at}");
        }
    }
}

#[test]
fn the_line_number_is_named() {
    let d = dump("SELECT 1;\nSELECT 2; \\! id\n");
    let problem = scan(d.as_bytes()).problem.unwrap();
    let line = d.lines().position(|l| l.contains("\\!")).unwrap() + 1;
    assert!(problem.contains(&format!("at line {line} ")), "{problem}");
    assert!(
        problem.starts_with("the dump holds a psql meta-command (\\!) at line"),
        "{problem}"
    );
}

#[test]
fn restrict_lines_are_not_passed_on() {
    let d = dump("SELECT 1;\nCOPY public.t (x) FROM stdin;\n\\restrict inside_data\n\\.\n");
    for at in 0..=d.len() {
        let (out, facts) = filtered(d.as_bytes(), at);
        assert!(
            facts.complete && facts.problem.is_none(),
            "@{at}: {facts:?}"
        );
        let want = d
            .replace("\\restrict abc\n", "")
            .replace("\\unrestrict abc\n", "");
        assert_eq!(String::from_utf8_lossy(&out), want, "@{at}");
    }
}

#[test]
fn copy_statements_are_held_until_judged_and_capped() {
    // A COPY header beyond the hold cap: refused, and none of it reaches psql.
    let wide = format!(
        "COPY public.t ({}x) FROM stdin;\n\\.\n",
        "a_column, ".repeat(120_000)
    );
    let d = dump(&wide);
    let mut scanner = DumpScanner::new();
    let mut out = Vec::new();
    for chunk in d.as_bytes().chunks(64 * 1024) {
        scanner.feed_filtered(chunk, &mut out);
    }
    let facts = scanner.finish();
    let problem = facts.problem.unwrap_or_default();
    assert!(problem.contains("longer than 1 MiB"), "{problem}");
    assert!(!String::from_utf8_lossy(&out).contains("COPY"));
    // A statement that only starts like one is not held: `copyright` is another word.
    let d = dump("SELECT 1 AS copyright;\ncopy_table_name;\n");
    let (out, _) = filtered(d.as_bytes(), d.len() / 2);
    assert!(String::from_utf8_lossy(&out).contains("copy_table_name;"));
}

/// pg_dump 15's plain output for one large object (`StartRestoreLOs`/`EndRestoreLOs` print
/// the standalone `BEGIN;`/`COMMIT;`).
const LO_SECTION: &str = "--\n-- Name: 16385; Type: BLOB; Schema: -; Owner: postgres\n--\n\n\
    SELECT pg_catalog.lo_create('16385');\n\n\nALTER LARGE OBJECT 16385 OWNER TO postgres;\n\n\
    --\n-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -\n--\n\nBEGIN;\n\n\
    SELECT pg_catalog.lo_open('16385', 131072);\nSELECT pg_catalog.lowrite(0, '\\x6869');\n\
    SELECT pg_catalog.lo_close(0);\n\nCOMMIT;\n\n";

/// Statements that would end, split or prepare coffer's transaction, and server-side COPY.
fn transaction_bodies() -> Vec<&'static str> {
    vec![
        "COMMIT; BEGIN;\nDROP TABLE public.t;\n",
        "COMMIT; CREATE ROLE evil SUPERUSER LOGIN; BEGIN;\n",
        "commit;\n",
        "Commit;\n",
        "COMMIT ;\n",
        "COMMIT\n;\n",
        "COMMIT/* a comment */;\n",
        "COMMIT -- a comment\n;\n",
        "  \tCOMMIT;\n",
        "SELECT 1; COMMIT;\n",
        "COMMIT WORK;\n",
        "COMMIT AND CHAIN;\n",
        "END;\n",
        "end transaction;\n",
        "ROLLBACK;\n",
        "rollback to savepoint a;\n",
        "ABORT;\n",
        "START TRANSACTION;\n",
        "BEGIN ISOLATION LEVEL SERIALIZABLE;\n",
        "begin;\n",
        "BEGIN WORK;\n",
        "SAVEPOINT a;\n",
        "RELEASE SAVEPOINT a;\n",
        "release a;\n",
        "PREPARE TRANSACTION 'x';\n",
        "COMMIT PREPARED 'x';\n",
        "ROLLBACK PREPARED 'x';\n",
        // pg_dump's pair, but out of order or nested.
        "BEGIN;\nBEGIN;\nCOMMIT;\n",
        "BEGIN;\nSELECT 1;\nCOMMIT;\nCOMMIT;\n",
        "SELECT 1;\nCOMMIT;\n",
    ]
}

#[test]
fn transaction_control_is_refused_and_never_sent() {
    for body in transaction_bodies() {
        let d = dump(body);
        let facts = scan(d.as_bytes());
        let problem = facts.problem.clone().unwrap_or_default();
        assert!(
            problem.contains("transaction-control statement")
                && problem.contains("not trustworthy"),
            "{body:?}: {problem:?}"
        );
        assert!(!facts.complete, "{body:?}");
        for at in 0..=d.len() {
            let (out, split) = filtered(d.as_bytes(), at);
            assert_eq!(
                split.problem.as_deref(),
                Some(problem.as_str()),
                "{body:?} @{at}"
            );
            let sent = String::from_utf8_lossy(&out).to_ascii_lowercase();
            for bad in [
                "commit",
                "rollback",
                "abort",
                "savepoint",
                "release",
                "transaction",
                "begin",
                "end;",
                "drop table",
                "evil",
            ] {
                assert!(!sent.contains(bad), "{body:?} @{at}: sent {sent:?}");
            }
        }
    }
}

#[test]
fn server_side_copy_is_refused_and_never_sent() {
    for body in [
        "COPY (SELECT 1) TO PROGRAM 'id > /tmp/pwned';\n",
        "copy public.t from program 'id';\n",
        "COPY public.t TO '/tmp/out';\n",
        "COPY public.t (x) FROM '/etc/passwd';\n",
        "Copy public.t to stdout;\n",
    ] {
        let d = dump(body);
        let problem = scan(d.as_bytes()).problem.unwrap_or_default();
        assert!(
            problem.contains("COPY statement coffer does not recognise"),
            "{body:?}: {problem}"
        );
        for at in 0..=d.len() {
            let (out, _) = filtered(d.as_bytes(), at);
            let sent = String::from_utf8_lossy(&out).to_ascii_lowercase();
            assert!(!sent.contains("copy"), "{body:?} @{at}: sent {sent:?}");
        }
    }
}

#[test]
fn large_object_brackets_are_dropped() {
    let d = dump(&format!("SELECT 1;\n{LO_SECTION}{LO_SECTION}SELECT 2;\n"));
    let want = d
        .replace("\\restrict abc\n", "")
        .replace("\\unrestrict abc\n", "")
        .replace("\nBEGIN;\n", "\n\n")
        .replace("\nCOMMIT;\n", "\n\n");
    assert!(want.contains("lowrite") && !want.contains("BEGIN") && !want.contains("COMMIT"));
    for at in 0..=d.len() {
        let (out, facts) = filtered(d.as_bytes(), at);
        assert!(
            facts.complete && facts.problem.is_none(),
            "@{at}: {facts:?}"
        );
        assert_eq!(String::from_utf8_lossy(&out), want, "@{at}");
    }
    assert_eq!(scan_in_chunks(d.as_bytes(), &[1]), scan(d.as_bytes()));
    // Cut inside the section: never complete.
    let cut = d.find("SELECT pg_catalog.lo_close").unwrap();
    let facts = scan(&d.as_bytes()[..cut]);
    assert!(!facts.complete && facts.problem.is_none());
    let unterminated = dump(&LO_SECTION.replace("COMMIT;\n", ""));
    let facts = scan(unterminated.as_bytes());
    assert!(!facts.complete, "{facts:?}");
    assert!(
        facts
            .cut
            .as_deref()
            .unwrap_or_default()
            .contains("large-object section"),
        "{facts:?}"
    );
}

#[test]
fn copy_escapes_are_decoded_as_the_server_does() {
    let cases: &[(&[u8], Option<&str>)] = &[
        (b"\\x62bbb1111\tx", Some("bbbb1111")),
        (b"\\142cd", Some("bcd")),
        (b"a\\1b", Some("a\u{1}b")),
        (b"\\xg", Some("xg")),
        (b"\\N", None),
        (b"9f1c8d2a3b4e", Some("9f1c8d2a3b4e")),
    ];
    for (row, want) in cases {
        assert_eq!(
            super::statement::first_column(row).as_deref(),
            *want,
            "{row:?}"
        );
    }
}

#[test]
fn alembic_rows_are_bounded() {
    let rows = |n: usize, len: usize| -> String {
        let mut body = String::from("COPY public.alembic_version (version_num) FROM stdin;\n");
        for i in 0..n {
            body.push_str(&format!("{i:0len$}\n"));
        }
        body.push_str("\\.\n");
        body
    };
    let fine = scan(dump(&rows(64, 32)).as_bytes());
    assert!(fine.problem.is_none() && fine.complete, "{fine:?}");
    for (what, body) in [("too many", rows(65, 32)), ("too long", rows(1, 256))] {
        let facts = scan(dump(&body).as_bytes());
        let problem = facts.problem.unwrap_or_default();
        assert!(problem.contains("alembic_version"), "{what}: {problem}");
        assert!(problem.len() < 400, "{what}: the message is bounded");
    }
}

#[test]
fn psql_is_told_the_declared_encoding_after_every_statement_and_copy_section() {
    let body = "SET client_encoding = 'LATIN1';\nSELECT 1; SELECT 'a;b'\n;\n\
        COPY public.t (x) FROM stdin;\n1\n\\.\n\
        CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n;\n";
    let d = dump(body);
    let want = format!(
        "SET client_encoding = 'utf8';\n{}SET client_encoding = 'LATIN1'; SET client_encoding = 'latin1';\n\
         SELECT 1; SET client_encoding = 'latin1'; SELECT 'a;b'\n; SET client_encoding = 'latin1';\n\
         COPY public.t (x) FROM stdin;\n1\n\\.\nSET client_encoding = 'latin1';\n\
         CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; SET client_encoding = 'latin1';\n;\n{}",
        HEADER.replace("\\restrict abc\n", ""),
        TRAILER_LINES.replace("\\unrestrict abc\n", "")
    );
    for at in 0..=d.len() {
        let (out, facts) = filtered_with_encoding(d.as_bytes(), at);
        assert!(
            facts.complete && facts.problem.is_none(),
            "@{at}: {facts:?}"
        );
        assert_eq!(String::from_utf8_lossy(&out), want, "@{at}");
    }
    // Only a declared encoding is ever set again: `DEFAULT` is the session's, not the dump's.
    for body in [
        "SET client_encoding = DEFAULT;\n",
        "SET client_encoding = '';\n",
    ] {
        let problem = scan(dump(body).as_bytes()).problem.unwrap_or_default();
        assert!(
            problem.contains("changes client_encoding"),
            "{body:?}: {problem}"
        );
    }
}
