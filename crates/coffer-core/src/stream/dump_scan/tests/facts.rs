//! Facts read from dumps: tables, rows, heads, completeness, bounds.

use super::*;
use std::io::Write;

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
        (
            "a top-level DROP (pg_dump --clean) is seen, one in a body or a string is text",
            "DROP TABLE IF EXISTS public.t;\n",
            DumpFacts {
                drops: true,
                ..base()
            },
        ),
        (
            "DROP inside a function body or a string is not a DROP",
            "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ DROP TABLE t; $$;\nSELECT 'DROP TABLE t;';\n",
            base(),
        ),
    ];
    for (name, body, want) in cases {
        let d = dump(body);
        assert_eq!(scan(d.as_bytes()), want, "{name}");
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
        drops: true,
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
    use crate::format::manifest::{LegacyManifest, Manifest};
    let facts = DumpFacts {
        tables: tables(&[("public.alembic_version", 1), ("public.t", 3)]),
        alembic_heads: heads(&["abc"]),
        alembic_heads_any_schema: heads(&["abc"]),
        ..base()
    };
    let coffer = |head: Option<AlembicHead>, t: BTreeMap<String, u64>| {
        let now = chrono::Utc::now();
        AnyManifest::Coffer(Box::new(Manifest {
            format: crate::format::manifest::FORMAT,
            name: "auto-20261123T030000Z".into(),
            kind: crate::format::names::BackupKind::Auto,
            label: None,
            created_at: now,
            completed_at: now,
            coffer_version: "0.1.0".into(),
            hostname: "db1".into(),
            timestamp: String::new(),
            alembic_head: head,
            db_size: 0,
            workspace_path: None,
            database: crate::format::manifest::DatabaseFacts {
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
