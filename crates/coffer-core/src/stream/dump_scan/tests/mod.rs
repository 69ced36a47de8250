//! The dump scanner's tests: helpers and shared cases here; facts read from dumps, the
//! gate (what psql may be given) and generated dumps in the files below.

use super::*;

use proptest::prelude::*;

const FIXTURE: &[u8] = include_bytes!("../../../../tests/data/pg_dump_15_plain.sql");
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

mod facts;
mod gate;
mod properties;
mod resume;
