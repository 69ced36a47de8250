//! Pieces gated alone: the session state, continued COPY blocks, merged facts, and that a
//! piece is never a way around the gate.

use super::*;

const SESSION: &str = "SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n\
    SET standard_conforming_strings = on;\nSELECT pg_catalog.set_config('search_path', '', false);\n";

/// A pre-data piece: pg_dump's header, its session statements, a table.
fn pre_data() -> String {
    format!("{HEADER}{SESSION}\nCREATE TABLE public.t (x text);\n\n--\n-- Data\n--\n\n")
}

/// The scanner that ran the pre-data piece, and what it let through.
fn pre_scanner() -> (DumpScanner, Vec<u8>) {
    let mut s = DumpScanner::new();
    let mut out = Vec::new();
    s.feed_filtered(pre_data().as_bytes(), &mut out);
    assert_eq!(s.problem(), None);
    (s, out)
}

fn state() -> SessionState {
    pre_scanner().0.session_state()
}

/// Gates `piece` alone (in chunks split at `at`): the output and how the piece ended.
fn gate_piece(
    state: &SessionState,
    continued: Option<(&str, &[u8])>,
    piece: &[u8],
    at: usize,
    ends_in_copy: bool,
) -> (String, Result<DumpFacts, String>) {
    let mut s = DumpScanner::resume(state, continued);
    let mut out = Vec::new();
    let at = at.min(piece.len());
    s.feed_filtered(&piece[..at], &mut out);
    s.feed_filtered(&piece[at..], &mut out);
    let end = s.finish_piece(ends_in_copy, &mut out);
    (String::from_utf8_lossy(&out).into_owned(), end)
}

#[test]
fn the_session_state_is_the_header_and_replays_first() {
    let st = state();
    let shown = format!("{st:?}");
    assert!(shown.contains("SET statement_timeout = 0;\\nSET client_encoding = 'UTF8';"));
    assert!(!shown.contains("CREATE TABLE"), "{shown}");
    assert!(
        !shown.contains("abc"),
        "the restrict key is not printed: {shown}"
    );
    let (out, facts) = gate_piece(
        &st,
        None,
        b"COPY public.t (x) FROM stdin;\na\n\\.\n",
        0,
        false,
    );
    let facts = facts.unwrap();
    assert_eq!(facts.tables, tables(&[("public.t", 1)]));
    assert!(!facts.complete);
    // coffer's pin, then the header as the gate passes it, the encoding again, the piece.
    let want = "SET client_encoding = 'utf8';\n\
        SET statement_timeout = 0; SET client_encoding = 'utf8';\n\
        SET client_encoding = 'UTF8'; SET client_encoding = 'utf8';\n\
        SET standard_conforming_strings = on; SET client_encoding = 'utf8';\n\
        SELECT pg_catalog.set_config('search_path', '', false); SET client_encoding = 'utf8';\n\
        SET client_encoding = 'utf8';\n\
        COPY public.t (x) FROM stdin;\na\n\\.\nSET client_encoding = 'utf8';\n";
    assert_eq!(out, want);
}

/// A dump declaring another encoding after its header: later pieces resync to that one.
#[test]
fn the_declared_encoding_carries_over() {
    let mut s = DumpScanner::new();
    let mut out = Vec::new();
    s.feed_filtered(
        format!(
            "{HEADER}{SESSION}CREATE TABLE public.t (x text);\nSET client_encoding = 'LATIN1';\n"
        )
        .as_bytes(),
        &mut out,
    );
    let (out, end) = gate_piece(&s.session_state(), None, b"SELECT 1;\n", 0, false);
    end.unwrap();
    assert!(
        out.ends_with(
            "SET client_encoding = 'latin1';\nSELECT 1; SET client_encoding = 'latin1';\n"
        ),
        "{out}"
    );
}

#[test]
fn a_piece_cut_at_a_row_continues_with_the_published_copy_statement() {
    let st = state();
    let first = b"COPY public.t (x) FROM stdin;\na\nb\n";
    let rest = b"c\n\\.\n\nCOPY public.\"U\" (x) FROM stdin;\nd\n\\.\n";
    for at in 0..first.len() {
        let mut s = DumpScanner::resume(&st, None);
        let mut out = Vec::new();
        s.feed_filtered(&first[..at], &mut out);
        s.feed_filtered(&first[at..], &mut out);
        let published = s.take_copy_statements();
        assert_eq!(
            published,
            vec![(
                "public.t".to_string(),
                b"COPY public.t (x) FROM stdin;\n".to_vec()
            )]
        );
        let facts = s.finish_piece(true, &mut out).unwrap();
        assert_eq!(facts.tables, tables(&[("public.t", 2)]));
        assert!(
            String::from_utf8_lossy(&out).ends_with("a\nb\n\\.\nSET client_encoding = 'utf8';\n")
        );
    }
    for at in 0..rest.len() {
        let mut s =
            DumpScanner::resume(&st, Some(("public.t", b"COPY public.t (x) FROM stdin;\n")));
        let mut out = Vec::new();
        s.feed_filtered(&rest[..at], &mut out);
        s.feed_filtered(&rest[at..], &mut out);
        // The continued statement is published again (for a third piece), then the new one.
        let published: Vec<String> = s
            .take_copy_statements()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(published, ["public.t", "public.\"U\""]);
        let facts = s.finish_piece(false, &mut out).unwrap();
        assert_eq!(
            facts.tables,
            tables(&[("public.t", 1), ("public.\"U\"", 1)])
        );
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.contains("SET client_encoding = 'utf8';\nCOPY public.t (x) FROM stdin;\nc\n\\.\n"),
            "{out}"
        );
    }
}

#[test]
fn facts_of_pieces_merge_into_the_whole_dumps() {
    let body = "CREATE TABLE public.t (x text);\nALTER TABLE public.t OWNER TO app;\n\
        COPY public.alembic_version (version_num) FROM stdin;\nabc1\n\\.\n\
        COPY public.t (x) FROM stdin;\na\nb\nc\n\\.\n\
        CREATE INDEX i ON public.t (x);\nALTER TABLE public.t OWNER TO \"Other\";\n";
    let whole = dump(&format!("{SESSION}{body}"));
    let facts = scan(whole.as_bytes());
    assert!(facts.complete, "{facts:?}");
    let cut = |needle: &str| whole.find(needle).unwrap();
    let (a, b, c) = (
        cut("COPY public.alembic"),
        cut("b\nc\n"),
        cut("CREATE INDEX"),
    );
    let bytes = whole.as_bytes();
    let mut pre = DumpScanner::new();
    let mut out = Vec::new();
    pre.feed_filtered(&bytes[..a], &mut out);
    let st = pre.session_state();
    let pre_facts = pre.finish_piece(false, &mut out).unwrap();
    let mut one = DumpScanner::resume(&st, None);
    one.feed_filtered(&bytes[a..b], &mut out);
    let (table, copy) = one.take_copy_statements().pop().unwrap();
    let one_facts = one.finish_piece(true, &mut out).unwrap();
    let (_, two) = gate_piece(&st, Some((&table, &copy)), &bytes[b..c], 1, false);
    let (_, post) = gate_piece(&st, None, &bytes[c..], 3, false);
    let post = post.unwrap();
    assert!(
        post.complete,
        "the trailer's \\unrestrict is the dump's own: {post:?}"
    );
    let merged = DumpFacts::merge(vec![pre_facts, one_facts, two.unwrap(), post]);
    assert_eq!(merged, facts);
    // Without the post-data piece the dump is not complete.
    let (_, two) = gate_piece(&st, Some((&table, &copy)), &bytes[b..c], 0, false);
    assert!(!DumpFacts::merge(vec![two.unwrap()]).complete);
}

/// Every input the whole-dump gate refuses is refused as a piece read alone, whatever
/// the chunking, and nothing from the refused byte on is let through.
#[test]
fn a_piece_is_never_a_way_around_the_gate() {
    let st = state();
    let mut cases = refused_bodies();
    cases.extend([
        (
            "a meta-command in COPY's wake",
            "COPY public.t (x) FROM stdin;\na\n\\.\n\\! id\n",
            "(\\!)",
        ),
        (
            "COMMIT in a data piece",
            "COPY public.t (x) FROM stdin;\na\n\\.\nCOMMIT;\n",
            "transaction-control",
        ),
        ("ROLLBACK", "ROLLBACK;\nSELECT 1;\n", "transaction-control"),
        ("BEGIN WORK", "BEGIN WORK;\n", "transaction-control"),
        (
            "a restrict line of its own",
            "\\restrict abc\nSELECT 1;\n",
            "second",
        ),
        (
            "unrestrict twice",
            "\\unrestrict abc\n\\unrestrict abc\n",
            "another key",
        ),
    ]);
    for (name, body, needle) in cases {
        for at in [0, 1, body.len() / 2, body.len()] {
            let (out, end) = gate_piece(&st, None, body.as_bytes(), at, false);
            let problem = end.expect_err(name);
            assert!(problem.contains(needle), "{name} @{at}: {problem}");
            let piece_part = out
                .split("SET client_encoding = 'utf8';\n")
                .last()
                .unwrap_or("");
            for bad in [
                "\\!",
                "\\o",
                "\\g",
                "\\set",
                "\\i ",
                "PROGRAM",
                "/etc/passwd",
                "COMMIT",
                "ROLLBACK",
                "\\restrict",
                "\\unrestrict",
            ] {
                assert!(!piece_part.contains(bad), "{name} @{at}: sent {out:?}");
            }
        }
    }
}

/// pg_dump's large-object `BEGIN;` is dropped as in a whole dump; a piece that ends before
/// its `COMMIT;` is cut, and the `COMMIT;` alone is refused.
#[test]
fn a_large_object_section_must_close_in_its_piece() {
    let st = state();
    let (out, end) = gate_piece(
        &st,
        None,
        b"BEGIN;\nSELECT pg_catalog.lo_open(1, 131072);\nCOMMIT;\n",
        2,
        false,
    );
    end.unwrap();
    assert!(!out.contains("BEGIN") && !out.contains("COMMIT"), "{out}");
    let (_, end) = gate_piece(&st, None, b"BEGIN;\nSELECT 1;\n", 2, false);
    assert!(end.unwrap_err().contains("large-object section"));
    let (_, end) = gate_piece(&st, None, b"SELECT 1;\nCOMMIT;\n", 2, false);
    assert!(end.unwrap_err().contains("transaction-control"));
}

#[test]
fn a_piece_that_ends_inside_something_is_cut() {
    let st = state();
    let cases: &[(&str, &str, bool, &str)] = &[
        (
            "a string",
            "SELECT 'abc\n",
            false,
            "the piece ends inside a quoted string opened on line 1",
        ),
        ("a statement", "SELECT 1", false, "unterminated statement"),
        (
            "a dollar quote",
            "CREATE FUNCTION f() AS $$ x",
            false,
            "dollar-quoted",
        ),
        ("a comment", "/* x", false, "comment"),
        (
            "COPY data",
            "COPY public.t (x) FROM stdin;\na\n",
            false,
            "COPY data",
        ),
        (
            "a row",
            "COPY public.t (x) FROM stdin;\na\nb",
            true,
            "inside a row",
        ),
        ("not COPY data", "SELECT 1;\n", true, "outside COPY data"),
        (
            "a string, said to end in COPY",
            "SELECT 'a\n",
            true,
            "inside a quoted string",
        ),
    ];
    for (name, piece, ends_in_copy, needle) in cases {
        let (_, end) = gate_piece(&st, None, piece.as_bytes(), 3, *ends_in_copy);
        let e = end.expect_err(name);
        assert!(e.contains(needle), "{name}: {e}");
    }
}

/// The COPY statement a continuing piece is given is input too: only pg_dump's exact
/// `COPY <the piece's table> (…) FROM stdin;` and a newline opens its rows.
#[test]
fn a_forged_continued_copy_is_refused_before_a_byte_passes() {
    let st = state();
    let forged: &[(&str, &str)] = &[
        ("program", "COPY public.t (x) FROM PROGRAM 'id';\n"),
        ("a file", "COPY public.t (x) FROM '/etc/passwd';\n"),
        ("another table", "COPY public.u (x) FROM stdin;\n"),
        (
            "a statement before",
            "SELECT 1; COPY public.t (x) FROM stdin;\n",
        ),
        (
            "a statement after",
            "COPY public.t (x) FROM stdin;\nSELECT 1;\n",
        ),
        ("a meta-command", "\\! id\nCOPY public.t (x) FROM stdin;\n"),
        ("without its newline", "COPY public.t (x) FROM stdin;"),
        ("csv", "COPY public.t (x) FROM stdin WITH (FORMAT csv);\n"),
        ("to stdout", "COPY public.t (x) TO stdout;\n"),
        ("empty", ""),
        (
            "a comment inside",
            "COPY public.t /* c */ (x) FROM stdin;\n",
        ),
    ];
    for (name, copy) in forged {
        let (out, end) = gate_piece(
            &st,
            Some(("public.t", copy.as_bytes())),
            b"a\n\\.\n",
            1,
            false,
        );
        let e = end.expect_err(name);
        assert!(
            e.contains("continues the data of public.t") || e.contains("not trustworthy"),
            "{name}: {e}"
        );
        assert_eq!(out, "", "{name}: nothing reaches psql");
    }
    let (_, end) = gate_piece(
        &st,
        Some(("public.t", b"COPY public.t (x) FROM stdin;\n")),
        b"a\n\\.\n",
        1,
        false,
    );
    assert_eq!(end.unwrap().tables, tables(&[("public.t", 1)]));
}

/// The real pg_dump fixture cut at every COPY boundary and at row ends: the pieces gated
/// alone merge into the whole dump's facts.
#[test]
fn the_real_fixture_cut_into_pieces_gives_the_whole_facts() {
    let whole = scan(FIXTURE);
    assert!(whole.complete);
    let text = std::str::from_utf8(FIXTURE).unwrap();
    let first_copy = text.find("\nCOPY ").unwrap() + 1;
    // The post-data piece starts after the last COPY block.
    let post = text.rfind("\\.\n").unwrap() + 3;
    // Cut after each block's end, and inside the items block after its third row.
    let mut cuts = vec![0, first_copy];
    let mut at = first_copy;
    while let Some(end) = text[at..post].find("\\.\n") {
        at += end + 3;
        cuts.push(at);
    }
    cuts.pop();
    let items = text.find("COPY app.items").unwrap();
    let row3 = items + text[items..].match_indices('\n').nth(3).unwrap().0 + 1;
    cuts.push(row3);
    cuts.push(post);
    cuts.push(FIXTURE.len());
    cuts.sort();
    cuts.dedup();
    let mut pre = DumpScanner::new();
    let mut out = Vec::new();
    pre.feed_filtered(&FIXTURE[..cuts[1]], &mut out);
    let st = pre.session_state();
    let mut facts = vec![pre.finish_piece(false, &mut out).unwrap()];
    let mut continued: Option<(String, Vec<u8>)> = None;
    for w in cuts[1..].windows(2) {
        let ends_in_copy = w[1] == row3;
        let mut s = DumpScanner::resume(
            &st,
            continued.as_ref().map(|(t, c)| (t.as_str(), c.as_slice())),
        );
        let mut out = Vec::new();
        s.feed_filtered(&FIXTURE[w[0]..w[1]], &mut out);
        continued = s.take_copy_statements().pop().filter(|_| ends_in_copy);
        facts.push(
            s.finish_piece(ends_in_copy, &mut out)
                .unwrap_or_else(|e| panic!("{w:?}: {e}")),
        );
    }
    assert!(facts.len() >= 5, "{}", facts.len());
    assert_eq!(DumpFacts::merge(facts), whole);
    // And as the backup cuts it, with pieces of every size.
    for max in [1, 40, 300, 100_000] {
        let (count, merged) = cut_and_gate(FIXTURE, max, 13).unwrap();
        assert_eq!(merged, Ok(scan(FIXTURE)), "max {max}");
        assert!(count >= 3, "max {max}: {count} pieces");
        if max == 1 {
            assert!(count > 20, "rows cut one by one: {count}");
        }
    }
}

/// Cuts `dump` as the backup does (the real scanner's marks, the real planner, pieces of at
/// most `max` bytes), gates every piece alone and merges their facts: the number of pieces
/// and the merged facts (or the first piece's error); `None` when the dump got no index.
fn cut_and_gate(dump: &[u8], max: u64, chunk: usize) -> Option<(usize, Result<DumpFacts, String>)> {
    let limits = crate::stream::piece_plan::PieceLimits {
        min: 1,
        max,
        pieces: 1000,
    };
    let text = std::str::from_utf8(dump).unwrap();
    let planned = crate::stream::piece_plan::tests::cut(text, chunk, limits)?;
    let pieces: Vec<(&[u8], bool, bool)> = planned
        .iter()
        .map(|(p, text)| (text.as_bytes(), p.starts_in_copy, p.ends_in_copy))
        .collect();
    let gated = super::super::resume::gate_pieces(&pieces, chunk);
    Some((
        pieces.len(),
        gated.map(|g| DumpFacts::merge(g.into_iter().map(|(_, f)| f).collect())),
    ))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Generated dumps with decoys (text that looks like COPY, rows, meta-commands, the
    /// trailer) cut at every size: each piece passes alone and the merged facts are the
    /// whole dump's.
    #[test]
    fn any_cut_of_a_generated_dump_gates_to_the_whole_facts(
        tables in prop::collection::vec(
            prop::collection::vec("[a-z\\\\\t\"';]{0,8}", 0..12),
            1..5,
        ),
        decoys in prop::collection::vec(
            prop_oneof![
                Just("SELECT 'COPY public.x (a) FROM stdin;\n\\.\n';\n"),
                Just("CREATE FUNCTION public.g() RETURNS void LANGUAGE sql AS $$ SELECT '\\! id' $$;\n"),
                Just("-- PostgreSQL database dump complete\n"),
                Just("/* \\.\nCOPY t FROM stdin; */\n"),
                Just("SET search_path = public;\n"),
            ],
            0..4,
        ),
        max in 1u64..200,
        chunk in 1usize..97,
    ) {
        let mut body = String::from(SESSION);
        body.push_str("CREATE TABLE public.t0 (x text);\n");
        for (i, rows) in tables.iter().enumerate() {
            if let Some(d) = decoys.get(i) {
                body.push_str(d);
            }
            body.push_str(&format!("COPY public.t{i} (x) FROM stdin;\n"));
            for r in rows {
                body.push_str(&r.replace('\\', "\\\\").replace('\t', "\\t"));
                body.push('\n');
            }
            body.push_str("\\.\n");
        }
        body.push_str("CREATE INDEX i ON public.t0 (x);\n");
        let d = dump(&body);
        let whole = scan(d.as_bytes());
        prop_assert!(whole.complete, "{:?}", whole);
        let (count, merged) = cut_and_gate(d.as_bytes(), max, chunk).expect("an index");
        prop_assert!(count >= 2 + tables.len().min(1), "{} pieces", count);
        prop_assert_eq!(merged, Ok(whole));
    }
}

#[test]
fn session_changes_are_read_per_setting() {
    use super::super::resume::{SessionChange::*, session_change};
    let cases: &[(&str, Option<super::super::resume::SessionChange>)] = &[
        (
            "SET statement_timeout = 0",
            Some(Set(b"statement_timeout".to_vec())),
        ),
        (
            "SET SESSION AUTHORIZATION 'x'",
            Some(Set(b"authorization".to_vec())),
        ),
        (
            "set local Search_Path TO a, b",
            Some(Set(b"search_path".to_vec())),
        ),
        (
            "SET default_tablespace = ''",
            Some(Set(b"default_tablespace".to_vec())),
        ),
        (
            "SELECT pg_catalog.set_config('search_path', '', false)",
            Some(Set(b"search_path".to_vec())),
        ),
        ("RESET search_path", Some(Reset(b"search_path".to_vec()))),
        ("RESET ALL", Some(ResetAll)),
        ("SELECT set_config('search_path', '', false)", None),
        (
            "SELECT pg_catalog.set_config('search_path', '', true)",
            None,
        ),
        ("CREATE TABLE public.set (x int)", None),
        ("SETTLE", None),
    ];
    for (stmt, want) in cases {
        assert_eq!(&session_change(stmt.as_bytes()), want, "{stmt}");
    }
}

/// Settings made after the header (pg_dump writes `SET default_tablespace` only when it
/// changes) reach later pieces: the last per setting, in the order they last came.
#[test]
fn later_settings_carry_over_and_reset_undoes_them() {
    let mut s = DumpScanner::new();
    let mut out = Vec::new();
    s.feed_filtered(
        format!(
            "{HEADER}{SESSION}SET default_tablespace = '';\nCREATE TABLE public.t (x text);\n\
             SET default_tablespace = fast;\nSET work_mem = '1MB';\nRESET work_mem;\n\
             SET statement_timeout = 5;\n"
        )
        .as_bytes(),
        &mut out,
    );
    let (out, end) = gate_piece(&s.session_state(), None, b"SELECT 1;\n", 0, false);
    end.unwrap();
    let statements: Vec<&str> = out
        .split('\n')
        .map(|l| l.trim_end_matches(" SET client_encoding = 'utf8';"))
        .filter(|l| !l.is_empty() && *l != "SET client_encoding = 'utf8';")
        .collect();
    assert_eq!(
        statements,
        [
            "SET client_encoding = 'UTF8';",
            "SET standard_conforming_strings = on;",
            "SELECT pg_catalog.set_config('search_path', '', false);",
            "SET default_tablespace = fast;",
            "SET statement_timeout = 5;",
            "SELECT 1;",
        ]
    );
}

/// More settings than a piece is given: the piece is refused (a whole-dump restore still
/// works), never run with part of its session.
#[test]
fn too_many_settings_refuse_the_pieces() {
    let mut s = DumpScanner::new();
    let mut out = Vec::new();
    let mut pre = String::from(HEADER);
    for i in 0..100 {
        pre.push_str(&format!("SET app.s{i} = 1;\n"));
    }
    s.feed_filtered(pre.as_bytes(), &mut out);
    assert_eq!(s.problem(), None);
    let (out, end) = gate_piece(&s.session_state(), None, b"SELECT 1;\n", 0, false);
    assert!(end.unwrap_err().contains("more session settings"));
    assert_eq!(out, "");
}
