use super::*;

use proptest::prelude::*;

const FIXTURE: &[u8] = include_bytes!("../../tests/data/pg_dump_15_plain.sql");
const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/corpus/dump_scan"
);

fn scan(dump: &[u8]) -> DumpFacts {
    let mut scanner = DumpScanner::new();
    scanner.feed(dump);
    scanner.finish()
}

fn scan_in_chunks(dump: &[u8], sizes: &[usize]) -> DumpFacts {
    let mut scanner = DumpScanner::new();
    let mut rest = dump;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        scanner.feed(chunk);
        rest = tail;
    }
    scanner.finish()
}

/// What psql would be given, fed in two chunks split at `at`.
fn filtered_with_encoding(dump: &[u8], at: usize) -> (Vec<u8>, DumpFacts) {
    let mut scanner = DumpScanner::new();
    let mut out = Vec::new();
    scanner.feed_filtered(&dump[..at], &mut out);
    scanner.feed_filtered(&dump[at..], &mut out);
    (out, scanner.finish())
}

/// What psql would be given of the dump itself: without coffer's `client_encoding` lines.
fn filtered(dump: &[u8], at: usize) -> (Vec<u8>, DumpFacts) {
    let (out, facts) = filtered_with_encoding(dump, at);
    let text = String::from_utf8_lossy(&out)
        .replace(" SET client_encoding = 'utf8';", "")
        .replace("SET client_encoding = 'utf8';\n", "");
    (text.into_bytes(), facts)
}

fn tables(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|&(t, n)| (t.to_owned(), n)).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn heads(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

const HEADER: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\n\
    -- Dumped from database version 15.14\n-- Dumped by pg_dump version 15.14 (Debian 15.14-1)\n\n";
const TRAILER_LINES: &str = "--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n";

fn base() -> DumpFacts {
    DumpFacts {
        dumped_from: Some("15.14".into()),
        dumped_by: Some("15.14 (Debian 15.14-1)".into()),
        complete: true,
        ..DumpFacts::default()
    }
}

fn dump(body: &str) -> String {
    format!("{HEADER}{body}{TRAILER_LINES}")
}

#[test]
fn small_dumps() {
    let cases: Vec<(&str, &str, DumpFacts)> = vec![
        ("no data at all", "", base()),
        (
            "empty table counts 0",
            "COPY public.t (x) FROM stdin;\n\\.\n",
            DumpFacts {
                tables: tables(&[("public.t", 0)]),
                ..base()
            },
        ),
        (
            "rows with escapes are one line each",
            "COPY public.t (a, b) FROM stdin;\n1\tx\\ny\n2\t\\\\.\n3\t\\N\n\\.\n",
            DumpFacts {
                tables: tables(&[("public.t", 3)]),
                ..base()
            },
        ),
        (
            "table with no columns",
            "COPY public.t  FROM stdin;\n\n\n\\.\n",
            DumpFacts {
                tables: tables(&[("public.t", 2)]),
                ..base()
            },
        ),
        (
            "quoted names keep pg_dump's quoting, newlines included",
            "COPY public.\"My \"\"T\"\"\" (\"A b\") FROM stdin;\nx\n\\.\n\
             COPY \"Sch.ema\".\"UPPER\" (x) FROM stdin;\n1\n2\n\\.\n\
             COPY public.\"new\nline\" (\"c\n;\") FROM stdin;\n1\n\\.\n",
            DumpFacts {
                tables: tables(&[
                    ("public.\"My \"\"T\"\"\"", 1),
                    ("\"Sch.ema\".\"UPPER\"", 2),
                    ("public.\"new\nline\"", 1),
                ]),
                ..base()
            },
        ),
        (
            "one alembic head",
            "COPY public.alembic_version (version_num) FROM stdin;\n3f2a9c1b7d4e\n\\.\n",
            DumpFacts {
                tables: tables(&[("public.alembic_version", 1)]),
                alembic_heads: heads(&["3f2a9c1b7d4e"]),
                alembic_heads_any_schema: heads(&["3f2a9c1b7d4e"]),
                ..base()
            },
        ),
        (
            "several heads, sorted, NULL skipped, escapes undone",
            "COPY public.alembic_version (version_num) FROM stdin;\nzz9\nab\\\\c\n\\N\n0a1\textra\n\\.\n",
            DumpFacts {
                tables: tables(&[("public.alembic_version", 4)]),
                alembic_heads: heads(&["0a1", "ab\\c", "zz9"]),
                alembic_heads_any_schema: heads(&["0a1", "ab\\c", "zz9"]),
                ..base()
            },
        ),
        (
            "alembic_version of another schema is an ordinary table",
            "COPY app.alembic_version (version_num) FROM stdin;\nc0ffee\n\\.\n",
            DumpFacts {
                tables: tables(&[("app.alembic_version", 1)]),
                alembic_heads_any_schema: heads(&["c0ffee"]),
                ..base()
            },
        ),
        (
            "empty alembic table",
            "COPY public.alembic_version (version_num) FROM stdin;\n\\.\n",
            DumpFacts {
                tables: tables(&[("public.alembic_version", 0)]),
                alembic_heads: heads(&[]),
                alembic_heads_any_schema: heads(&[]),
                ..base()
            },
        ),
        (
            "similar names are not alembic's",
            "COPY public.alembic_versions (v) FROM stdin;\nx\n\\.\n\
             COPY public.\"Alembic_version\" (v) FROM stdin;\ny\n\\.\n",
            DumpFacts {
                tables: tables(&[
                    ("public.alembic_versions", 1),
                    ("public.\"Alembic_version\"", 1),
                ]),
                ..base()
            },
        ),
        (
            "owners, quoted and bare",
            "ALTER TABLE public.t OWNER TO app;\n\
             ALTER SCHEMA app OWNER TO \"App Owner\";\n\
             ALTER FUNCTION public.f(integer) OWNER TO app;\n\
             ALTER TABLE public.\"x OWNER TO y\" OWNER TO \"a OWNER TO b\";\n\
             ALTER TABLE public.t ALTER COLUMN id SET DEFAULT 1;\n\
             ALTER TABLE public.t OWNER TO two words;\n",
            DumpFacts {
                owners: set(&["App Owner", "a OWNER TO b", "app"]),
                ..base()
            },
        ),
        (
            "SQL-looking data rows are data",
            "COPY public.t (x) FROM stdin;\nALTER TABLE t OWNER TO evil;\n\
             -- PostgreSQL database dump complete\nCOPY public.u (x) FROM stdin;\n\\! id\n\\.\n",
            DumpFacts {
                tables: tables(&[("public.t", 4)]),
                ..base()
            },
        ),
        (
            "a row starting with \\. is not the terminator; \\.\\r is",
            "COPY public.t (x) FROM stdin;\n\\.x\n\\.\r\nCOPY public.u (x) FROM stdin;\n\\.\n",
            DumpFacts {
                tables: tables(&[("public.t", 1), ("public.u", 0)]),
                ..base()
            },
        ),
        (
            "fake COPY, rows, heads and trailer inside a function body",
            "CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $_$\n\
             COPY public.alembic_version (version_num) FROM stdin;\nfakehead\n\\.\n\
             COPY public.ghost (x) FROM stdin;\n1\n\\.\n\
             -- PostgreSQL database dump complete\n\\! touch /tmp/x\nSELECT '$$' $_$;\n",
            base(),
        ),
        (
            "the same in comments, strings and identifiers",
            "/* COPY public.ghost (x) FROM stdin;\n1\n\\.\n/* nested */ \\! id */\n\
             -- COPY public.ghost (x) FROM stdin; \\! id\n\
             SELECT 'COPY public.ghost (x) FROM stdin;\n\\! id\n''\n', E'\\\\ \\! id',\n\
             \"COPY public.ghost (x) FROM stdin;\n\\! id\" FROM x;\n\
             COMMENT ON TABLE t IS $$\n-- PostgreSQL database dump complete\n$$;\n",
            base(),
        ),
        (
            "bit and hex strings, array slices and casts are ordinary text",
            "CREATE TABLE t (b bit(3) DEFAULT B'101', x bytea DEFAULT X'00', n text DEFAULT N'x');\n\
             SELECT a[1:2], a[1 : n], 'x'::text, $1::int FROM t;\n",
            base(),
        ),
        (
            "tagged quotes: other tags, $1 and x$$ do not close or open",
            "CREATE FUNCTION f(int) RETURNS int AS $body$ SELECT $1 + $$ $a$ $bod$ $body $body$;\n\
             SELECT x$$ FROM t$$;\nSELECT $1, $2;\n",
            base(),
        ),
        (
            "semicolons inside parentheses and BEGIN ATOMIC bodies",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT 1;\n SELECT CASE WHEN true THEN 1 END;\nEND;\n\
             SELECT (1;\nCOPY public.ghost (x) FROM stdin;\n);\n",
            base(),
        ),
    ];
    for (name, body, want) in cases {
        let d = dump(body);
        assert_eq!(scan(d.as_bytes()), want, "{name}");
    }
}

/// Each refused dump: the meta-command (or other content) psql must never see.
fn refused_bodies() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        // Readings that depend on what the server does, not on the text (adversarial review).
        (
            "standard_conforming_strings off",
            "SET standard_conforming_strings = off;\nSELECT 'a\\' \\! id';\n",
            "standard_conforming_strings off",
        ),
        (
            "a backslash before a quote (an escape if the server turns the setting off)",
            "DO $$ BEGIN PERFORM 1; END $$;\nSELECT 'a\\' ;\n\\! id\n-- ';\n",
            "backslash right before a quote",
        ),
        (
            "an E string continued on the next line",
            "SELECT E'x'\n'\\' '; COPY t (a) FROM stdin; SELECT ' -- '\n;\n",
            "backslash right before a quote",
        ),
        (
            "a bit string ending in a backslash",
            "SELECT B'\\'\n\\unrestrict `id`\n-- ';\n",
            "backslash right before a quote",
        ),
        (
            "a client-only encoding",
            "SET client_encoding = 'SJIS';\nSELECT E'\\x81\\x5c';\n",
            "client_encoding",
        ),
        (
            "SET NAMES",
            "SET NAMES 'big5';\nSELECT 1;\n",
            "client_encoding",
        ),
        (
            "client_encoding through set_config",
            "SELECT pg_catalog.set_config('client_encoding', 'GBK', false);\n",
            "client_encoding",
        ),
        (
            "client_encoding in a function body",
            "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ SELECT set_config('client_encoding', 'SJIS', false) $$;\n",
            "client_encoding",
        ),
        (
            "a swallowed `;` after a BEGIN that is not BEGIN ATOMIC",
            "CREATE TEMP TABLE rce_t (a text);\nCREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql SET search_path = begin AS 'select 1'; COPY rce_t (a) FROM stdin; SELECT 1 AS end;\n",
            "`begin`",
        ),
        (
            "`begin, atomic` is not BEGIN ATOMIC",
            "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql SET search_path = begin, atomic AS 'select 1'; SELECT 1 AS end;\n",
            "`begin`",
        ),
        // psql and coffer must tokenize alike: these read as one token to psql (so the
        // string after them is a plain one, and no word is counted) and as two to coffer.
        (
            "a parameter run into a word: `$1e'`",
            "SELECT $1e'\\' \\unrestrict `touch /tmp/x` ';\n",
            "followed directly by a letter",
        ),
        (
            "a psql variable before a quote: `:e'`",
            "SELECT :e'\\' \\unrestrict `touch /tmp/x` ';\n",
            "backslash right before a quote",
        ),
        (
            "a number run into a word: `1e5e'`",
            "SELECT 1e5e'\\' \\unrestrict `touch /tmp/x` ';\n",
            "followed directly by a letter",
        ),
        (
            "an E'' string with an escaped quote",
            "SELECT E'\\' \\unrestrict `touch /tmp/x` ';\n",
            "backslash right before a quote",
        ),
        (
            "a string prefix psql does not count as a word: `CREATE N'x' FUNCTION begin;`",
            "CREATE N'x' FUNCTION begin;\nCOPY public.t (x) FROM stdin;\n\\unrestrict `touch /tmp/x`\n\\.\n",
            "`begin`",
        ),
        ("U& strings", "SELECT U&'\\0041';\n", "U&"),
        // psql counts block words to find the end of a BEGIN ATOMIC body, the server
        // parses it: a name spelled like one makes psql send what follows the body (a
        // COPY, a COMMIT) in the same query.
        (
            "a column alias `begin` inside a BEGIN ATOMIC body",
            "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS begin; END; COPY public.sink FROM STDIN; SELECT 1 AS end;\nSELECT $x$\n\\.\n\\unrestrict `touch /tmp/x`\n$x$;\n",
            "`begin`",
        ),
        (
            "a hidden COMMIT after a BEGIN ATOMIC body",
            "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS begin; END; COMMIT; SELECT 1 AS end;\n",
            "`begin`",
        ),
        (
            "a qualified column `t.end` inside a BEGIN ATOMIC body",
            "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT t.end FROM t; SELECT CASE WHEN true THEN 1 END; END; COMMIT; BEGIN;\n",
            "`end`",
        ),
        (
            "a function named begin inside a BEGIN ATOMIC body",
            "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT begin(1); END; COMMIT; SELECT 1 AS end;\n",
            "`begin`",
        ),
        ("shell", "\\! touch /tmp/x\n", "(\\!)"),
        ("shell mid-line", "SELECT 1; \\! touch /tmp/x\n", "(\\!)"),
        (
            "shell after a comment ended by CR",
            "SELECT 1; -- x\r\\! id\n",
            "(\\!)",
        ),
        (
            "shell after x$$ (an identifier)",
            "SELECT 1 AS x$$ \\! id\n;\n",
            "(\\!)",
        ),
        ("output to a pipe", "\\o |sh\nSELECT 1;\n", "(\\o)"),
        ("output to a file", "\\out /etc/passwd\n", "(\\out)"),
        ("query output to a pipe", "SELECT 'id' \\g |sh\n", "(\\g)"),
        ("gx to a file", "SELECT 1 \\gx /tmp/f\n", "(\\gx)"),
        ("gexec", "SELECT 'DROP TABLE t' \\gexec\n", "(\\gexec)"),
        ("write buffer", "SELECT 1 \\w /tmp/f\n", "(\\w)"),
        (
            "client copy from program",
            "\\copy t from program 'id'\n",
            "(\\copy)",
        ),
        ("backticks", "\\set x `id`\n", "(\\set)"),
        ("include", "\\i /etc/passwd\n", "(\\i)"),
        ("include relative", "\\ir x.sql\n", "(\\ir)"),
        ("include long", "\\include x.sql\n", "(\\include)"),
        ("editor", "\\e\n", "(\\e)"),
        ("edit function", "\\ef f\n", "(\\ef)"),
        ("history to file", "\\s /tmp/h\n", "(\\s)"),
        (
            "large object import",
            "\\lo_import /etc/shadow\n",
            "(\\lo_import)",
        ),
        (
            "large object export",
            "\\lo_export 1 /tmp/x\n",
            "(\\lo_export)",
        ),
        ("setenv", "\\setenv PAGER id\n", "(\\setenv)"),
        ("cd", "\\cd /\n", "(\\cd)"),
        (
            "unrestrict with another key",
            "\\unrestrict zzz\n\\! id\n",
            "another key",
        ),
        ("second restrict", "\\restrict other\n", "second"),
        (
            "restrict mid-line",
            "SELECT 1; \\restrict abc\n",
            "not on a line of its own",
        ),
        (
            "unset ON_ERROR_STOP",
            "\\set ON_ERROR_STOP off\n",
            "(\\set)",
        ),
        ("semicolon escape", "SELECT 1\\; SELECT 2;\n", "(\\;)"),
        (
            "copy from program",
            "COPY public.t (x) FROM PROGRAM 'id';\n",
            "COPY statement",
        ),
        (
            "copy from a file",
            "copy public.t from '/etc/passwd';\n",
            "COPY statement",
        ),
        (
            "copy with options",
            "COPY public.t (x) FROM stdin WITH (FORMAT csv);\n1\n\\.\n",
            "COPY statement",
        ),
        (
            "text after copy",
            "COPY public.t (x) FROM stdin; \\! id\n\\.\n",
            "text after",
        ),
        ("NUL byte", "SELECT 1;\0\\! id\n", "NUL"),
        (
            "std strings changed by function",
            "SELECT set_config('standard_conforming_strings', 'off', false);\n",
            "standard_conforming_strings",
        ),
    ]
}

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
fn cut_dumps_are_incomplete() {
    let cases: &[(&str, &str)] = &[
        ("", "without pg_dump's"),
        ("-- Dumped by pg_dump version 16.2", "without pg_dump's"),
        ("COPY public.t (x) FROM stdin;\n1\n2", "inside COPY data"),
        (
            "SELECT $$ x\n-- PostgreSQL database dump complete\n",
            "dollar-quoted",
        ),
        (
            "SELECT ' x\n-- PostgreSQL database dump complete\n",
            "quoted string",
        ),
        (
            "SELECT \" x\n-- PostgreSQL database dump complete\n",
            "quoted identifier",
        ),
        ("/* x\n-- PostgreSQL database dump complete\n", "comment"),
        (
            "SELECT 1\n-- PostgreSQL database dump complete\n",
            "unterminated statement",
        ),
        (
            "\\restrict k\n-- PostgreSQL database dump complete\n",
            "\\unrestrict",
        ),
        (
            "-- PostgreSQL database dump complete\nSELECT 1;\n",
            "without pg_dump's",
        ),
    ];
    for (d, needle) in cases {
        let facts = scan(d.as_bytes());
        assert!(!facts.complete, "{d:?}");
        assert!(facts.problem.is_none(), "{d:?}");
        let cut = facts.cut.clone().unwrap_or_default();
        assert!(
            cut.contains(needle) && cut.contains("cut short"),
            "{d:?}: {cut}"
        );
    }
    let counted = scan(b"COPY public.alembic_version (v) FROM stdin;\nabc");
    assert_eq!(counted.tables, tables(&[("public.alembic_version", 1)]));
    assert_eq!(counted.alembic_heads, heads(&["abc"]));
    // A trailer with CRLF, at the very end: complete.
    assert!(scan(b"-- PostgreSQL database dump complete\r\n").complete);
}

fn fixture_facts() -> DumpFacts {
    DumpFacts {
        tables: tables(&[
            ("app.alembic_version", 2),
            ("app.items", 20),
            ("public.\"My Table \"\"q\"\"\"", 2),
            ("public.\"UPPER\"", 1),
            ("public.empty_one", 0),
            ("public.notes", 5),
            ("public.\"user\"", 2),
        ]),
        alembic_heads: None,
        alembic_heads_any_schema: heads(&["c0ffee123abc", "merge_b2"]),
        owners: set(&["App Owner", "appuser", "postgres"]),
        dumped_by: Some("15.18 (Debian 15.18-0+deb12u1)".into()),
        dumped_from: Some("15.18 (Debian 15.18-0+deb12u1)".into()),
        complete: true,
        cut: None,
        problem: None,
    }
}

#[test]
fn real_pg_dump_15_output() {
    assert_eq!(scan(FIXTURE), fixture_facts());
    assert_eq!(scan_reader(FIXTURE).unwrap(), fixture_facts());
    let (out, _) = filtered(FIXTURE, FIXTURE.len() / 2);
    let want: Vec<&[u8]> = FIXTURE
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.starts_with(b"\\restrict ") && !l.starts_with(b"\\unrestrict "))
        .collect();
    assert_eq!(
        FIXTURE.split_inclusive(|&b| b == b'\n').count(),
        want.len() + 2
    );
    assert_eq!(out, want.concat(), "only the two lines go");
}

/// A real-looking dump with dollar-quoted bodies holding fake content.
fn dollar_dump() -> String {
    dump(
        "CREATE FUNCTION public.f() RETURNS trigger\n    LANGUAGE plpgsql\n    AS $$\nBEGIN\n\
         -- PostgreSQL database dump complete\nRETURN NEW; -- ;\nEND;\n$$;\n\n\
         COPY public.t (x) FROM stdin;\n1\n2\n\\.\n\n",
    )
}

/// Every prefix of `d` that still lacks significant content is incomplete.
fn assert_every_cut_detected(d: &[u8], step: usize) {
    let last_significant = d.iter().rposition(|&b| !b.is_ascii_whitespace()).unwrap();
    let mut points: Vec<usize> = d
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    points.extend((0..d.len()).step_by(step));
    for cut in points.into_iter().filter(|&c| c <= last_significant) {
        let facts = scan(&d[..cut]);
        assert!(
            !facts.complete,
            "cut at {cut} of {} taken for complete: {:?}",
            d.len(),
            String::from_utf8_lossy(&d[cut.saturating_sub(60)..cut])
        );
        assert!(facts.unusable().is_some(), "cut at {cut}");
    }
}

#[test]
fn every_truncation_point_is_detected() {
    assert_every_cut_detected(FIXTURE, 7);
    assert_every_cut_detected(dollar_dump().as_bytes(), 1);
}

#[test]
fn chunk_splits_at_every_byte() {
    let mut samples: Vec<Vec<u8>> = vec![FIXTURE.to_vec(), dollar_dump().into_bytes()];
    samples.push(
        dump("SELECT E'\\'', $a$x$b$a$, \"q\"\"\n\", 1e$$ $$, x$$, $1;\n/* /* */ */ SELECT 1;\n")
            .into_bytes(),
    );
    for (_, body, _) in refused_bodies() {
        samples.push(dump(body).into_bytes());
    }
    for sample in &samples {
        let whole = scan(sample);
        for at in 0..=sample.len() {
            let mut scanner = DumpScanner::new();
            scanner.feed(&sample[..at]);
            scanner.feed(&sample[at..]);
            assert_eq!(scanner.finish(), whole, "split at {at}");
        }
        assert_eq!(scan_in_chunks(sample, &[1]), whole);
    }
}

#[test]
fn split_table_name_table() {
    let cases: &[(&str, Option<(&str, &str)>)] = &[
        ("public.notes", Some(("public", "notes"))),
        ("app.\"My \"\"T\"\"\"", Some(("app", "My \"T\""))),
        ("\"a.b\".\"c.d\"", Some(("a.b", "c.d"))),
        ("public.\"user\"", Some(("public", "user"))),
        ("public.\"a\nb\"", Some(("public", "a\nb"))),
        ("notes", None),
        ("a.b.c", None),
        ("public.\"open", None),
        ("public.", None),
    ];
    for (name, want) in cases {
        let want = want.map(|(s, t)| (s.to_owned(), t.to_owned()));
        assert_eq!(split_table_name(name), want, "{name}");
    }
}

/// A writer that accepts at most 7 bytes per call, like a pipe under pressure.
struct Trickle(Vec<u8>);

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(7);
        self.0.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn writer_scans_only_accepted_bytes() {
    let mut w = ScanningWriter::new(Trickle(Vec::new()));
    w.write_all(FIXTURE).unwrap();
    w.flush().unwrap();
    let (inner, facts) = w.finish();
    assert_eq!(inner.0, FIXTURE);
    assert_eq!(facts, scan(FIXTURE));
}

#[test]
fn huge_statements_and_rows_keep_memory_bounded() {
    const HUGE: usize = 10 * 1024 * 1024;
    let big = "x".repeat(HUGE);
    let long_columns: Vec<String> = (0..2000)
        .map(|i| format!("\"a rather long column name {i:04}\""))
        .collect();
    // A COPY header longer than the cap: recognised by its kept start and tail.
    assert!(long_columns.join(", ").len() > LINE_CAP);
    let d = format!(
        "{HEADER}\
         COPY public.blobs (id, data) FROM stdin;\n1\t\\\\x{big}\n2\t\\\\x\n\\.\n\
         COPY public.alembic_version (version_num, junk) FROM stdin;\nabc\t{big}\n\\.\n\
         CREATE FUNCTION f() AS $$ {big} $$;\n\
         SELECT '{big}';\n\
         COPY public.wide ({}) FROM stdin;\n{}\n\\.\n\
         {TRAILER_LINES}",
        long_columns.join(", "),
        vec!["1"; 2000].join("\t"),
    );
    let mut scanner = DumpScanner::new();
    let start = scanner.buffer_capacity();
    for chunk in d.as_bytes().chunks(64 * 1024) {
        scanner.feed(chunk);
        assert_eq!(scanner.buffer_capacity(), start);
    }
    assert!(start <= 2 * LINE_CAP + 2 * TAIL_CAP);
    let facts = scanner.finish();
    assert_eq!(
        facts.tables,
        tables(&[
            ("public.alembic_version", 1),
            ("public.blobs", 2),
            ("public.wide", 1)
        ])
    );
    assert_eq!(facts.alembic_heads, heads(&["abc"]));
    assert!(facts.complete, "{facts:?}");
}

#[test]
fn manifest_comparison() {
    use crate::manifest::{LegacyManifest, Manifest};
    let facts = DumpFacts {
        tables: tables(&[("public.alembic_version", 1), ("public.t", 3)]),
        alembic_heads: heads(&["abc"]),
        alembic_heads_any_schema: heads(&["abc"]),
        ..base()
    };
    let coffer = |head: Option<AlembicHead>, t: BTreeMap<String, u64>| {
        let now = chrono::Utc::now();
        AnyManifest::Coffer(Box::new(Manifest {
            format: crate::manifest::FORMAT,
            name: "auto-20261123T030000Z".into(),
            kind: crate::names::BackupKind::Auto,
            label: None,
            created_at: now,
            completed_at: now,
            coffer_version: "0.1.0".into(),
            hostname: "db1".into(),
            timestamp: String::new(),
            alembic_head: head,
            db_size: 0,
            workspace_path: None,
            database: crate::manifest::DatabaseFacts {
                tables: t,
                ..Default::default()
            },
            workspace: None,
            artifacts: Vec::new(),
        }))
    };
    let legacy = |head: Option<AlembicHead>| {
        AnyManifest::Legacy(LegacyManifest {
            timestamp: None,
            timestamp_raw: None,
            alembic_head: head,
            db_size: None,
            workspace_path: None,
        })
    };
    let single = |h: &str| Some(AlembicHead::Single(h.into()));
    assert!(
        facts
            .check_against(&coffer(single("abc"), facts.tables.clone()))
            .is_ok()
    );
    let err = facts
        .check_against(&coffer(single("abd"), facts.tables.clone()))
        .unwrap_err();
    assert!(
        err.contains("alembic_head is abd") && err.contains("holds abc"),
        "{err}"
    );
    assert!(
        facts
            .check_against(&coffer(None, facts.tables.clone()))
            .is_err()
    );
    let err = facts
        .check_against(&coffer(
            single("abc"),
            tables(&[("public.alembic_version", 1), ("public.t", 4)]),
        ))
        .unwrap_err();
    assert!(
        err.contains("public.t: manifest 4 rows, dump 3 rows"),
        "{err}"
    );
    let err = facts
        .check_against(&coffer(
            single("abc"),
            tables(&[("public.alembic_version", 1)]),
        ))
        .unwrap_err();
    assert!(
        err.contains("public.t: manifest no table, dump 3 rows"),
        "{err}"
    );
    assert!(facts.check_against(&legacy(single("abc"))).is_ok());
    assert!(facts.check_against(&legacy(None)).is_ok());
    assert!(facts.check_against(&legacy(single("zzz"))).is_err());
    let two = DumpFacts {
        alembic_heads: heads(&["a", "b"]),
        alembic_heads_any_schema: heads(&["a", "b"]),
        ..facts.clone()
    };
    assert!(
        two.check_against(&legacy(Some(AlembicHead::Multiple(vec![
            "b".into(),
            "a".into()
        ]))))
        .is_ok()
    );
    // Manifests written before the public-only rule merged every schema's revisions.
    let other_schema = DumpFacts {
        tables: tables(&[("app.alembic_version", 1)]),
        alembic_heads: None,
        alembic_heads_any_schema: heads(&["old1"]),
        ..base()
    };
    let t = other_schema.tables.clone();
    assert!(
        other_schema
            .check_against(&coffer(single("old1"), t.clone()))
            .is_ok()
    );
    assert!(other_schema.check_against(&coffer(None, t.clone())).is_ok());
    assert!(
        other_schema
            .check_against(&coffer(single("old2"), t))
            .is_err()
    );
    assert!(other_schema.check_against(&legacy(single("old1"))).is_ok());
}

#[test]
fn corpus_replays() {
    let mut files: Vec<_> = std::fs::read_dir(CORPUS)
        .unwrap_or_else(|e| panic!("{CORPUS}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus is in {CORPUS}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let facts = scan(&bytes);
        // The expected verdict is the name's second-to-last part: NAME.{ok,cut,refused}.sql
        let verdict = name.rsplit('.').nth(1).unwrap_or("");
        match verdict {
            "ok" => assert!(
                facts.complete && facts.problem.is_none(),
                "{name}: {facts:?}"
            ),
            "cut" => assert!(!facts.complete && facts.cut.is_some(), "{name}: {facts:?}"),
            "refused" => assert!(facts.problem.is_some(), "{name}: {facts:?}"),
            other => panic!("{name}: unknown verdict {other:?}"),
        }
        for size in [1, 2, 3, 5, 64] {
            assert_eq!(
                scan_in_chunks(&bytes, &[size]),
                facts,
                "{name} in chunks of {size}"
            );
        }
    }
}

/// Escapes a value the way COPY text format does.
fn copy_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Text that would fool a line-based scanner: fake COPY sections, rows, heads, the
/// trailer, meta-commands.
fn decoy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("COPY public.alembic_version (version_num) FROM stdin;\n".to_string()),
            Just("COPY public.ghost (x) FROM stdin;\n".to_string()),
            Just("fake0head\n".to_string()),
            Just("\\.\n".to_string()),
            Just("-- PostgreSQL database dump complete\n".to_string()),
            Just("\\! touch /tmp/pwned\n".to_string()),
            Just("; $x$ $$ ' \" /* */ -- \n".to_string()),
            "[a-zA-Z0-9 _;()\\n]{0,12}",
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

/// One statement hiding a decoy in a form psql treats as text, and the dollar tag used.
fn hiding_statement() -> impl Strategy<Value = String> {
    (decoy(), 0..6usize, "[a-z_]{0,3}").prop_map(|(text, form, tag)| match form {
        0 => {
            // A tag that does not occur in the text.
            let tag = format!("{tag}é");
            format!(
                "CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS ${tag}${text}${tag}$;\n"
            )
        }
        1 => format!("SELECT {};\n", quote_literal(&text)),
        2 => format!("SELECT 1 AS {};\n", quote_ident(&text)),
        3 => format!("/* {} */\n", text.replace("*/", "* /").replace("/*", "/ *")),
        4 => format!(
            "{}\n",
            text.lines()
                .map(|l| format!("-- {}", l.replace('\r', " ")))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        _ => format!("COMMENT ON TABLE t IS {};\n", quote_literal(&text)),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chunk_splits_do_not_matter(sizes in prop::collection::vec(1usize..300, 1..50)) {
        prop_assert_eq!(scan_in_chunks(FIXTURE, &sizes), scan(FIXTURE));
    }

    #[test]
    fn generated_dumps_give_the_intended_facts(
        data in prop::collection::btree_map(
            "[a-zA-Z _\".é\n;$\\\\]{1,12}",
            prop::collection::vec(prop::collection::vec(any::<String>(), 1..3), 0..6),
            0..5,
        ),
        revs in prop::collection::btree_set("[0-9a-f]{12}", 0..3),
        decoys in prop::collection::vec(hiding_statement(), 0..6),
        sizes in prop::collection::vec(1usize..64, 1..20),
    ) {
        let mut d = String::from(HEADER);
        let mut want = DumpFacts {
            alembic_heads: Some(revs.iter().cloned().collect()),
            alembic_heads_any_schema: Some(revs.iter().cloned().collect()),
            ..base()
        };
        let mut decoys = decoys.into_iter();
        d.push_str(&decoys.next().unwrap_or_default());
        d.push_str("COPY public.alembic_version (version_num) FROM stdin;\n");
        for rev in &revs {
            d.push_str(&format!("{rev}\n"));
        }
        d.push_str("\\.\n");
        want.tables.insert("public.alembic_version".into(), revs.len() as u64);
        for (name, rows) in &data {
            d.push_str(&decoys.next().unwrap_or_default());
            let table = format!("app.{}", quote_ident(name));
            d.push_str(&format!("COPY {table} (a, {}) FROM stdin;\n", quote_ident(name)));
            for row in rows {
                let fields: Vec<String> = row.iter().map(|v| copy_escape(v)).collect();
                d.push_str(&fields.join("\t"));
                d.push('\n');
            }
            d.push_str("\\.\n");
            want.tables.insert(table, rows.len() as u64);
        }
        for rest in decoys {
            d.push_str(&rest);
        }
        d.push_str(TRAILER_LINES);
        let whole = scan(d.as_bytes());
        prop_assert_eq!(&whole, &want);
        prop_assert_eq!(scan_in_chunks(d.as_bytes(), &sizes), want);
        // Cut anywhere before the end: never complete.
        let cut = d.len() - TRAILER_LINES.len() + 10;
        for at in (0..cut).step_by(17) {
            prop_assert!(!scan(&d.as_bytes()[..at]).complete, "cut at {}", at);
        }
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
