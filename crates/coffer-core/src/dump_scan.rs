//! Facts read from a plain-format `pg_dump` stream as it passes.
//!
//! The backup pipeline feeds every byte of the dump through a [`DumpScanner`] (usually via
//! [`ScanningWriter`]) on its way to gzip, so the manifest can record row counts, the Alembic
//! head and the server and `pg_dump` versions without a second pass or a parse of the SQL.
//!
//! The scanner works line by line on the text `pg_dump` writes; it does not parse SQL. It
//! recognises, at the start of a line:
//! - `COPY schema.table (cols) FROM stdin;`: the data rows that follow, one per line (the COPY
//!   text format escapes newlines inside values), up to a line that is exactly `\.`;
//! - `ALTER … OWNER TO role;`: the roles that must exist for the restore to set owners;
//! - the `-- Dumped from database version …` / `-- Dumped by pg_dump version …` header and the
//!   `-- PostgreSQL database dump complete` trailer.
//!
//! Everything else, including the `\restrict` / `\unrestrict` lines of pg_dump ≥ 15.14, is
//! ignored. Chunks may split the stream anywhere (mid-line, mid-UTF-8); memory stays bounded
//! because at most [`LINE_CAP`] bytes of a line are kept, and only the first two bytes of a
//! data row whose content is not needed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Most bytes of one line the scanner keeps. Longer lines (big COPY rows, long function
/// bodies) are still followed to their newline, but only this prefix is looked at.
pub const LINE_CAP: usize = 64 * 1024;

/// Bytes kept from the end of an over-long SQL line: enough for ` FROM stdin;`, so a COPY
/// header with a very long column list is still recognised.
const TAIL_CAP: usize = 32;

/// The table whose rows are Alembic's current revisions.
const ALEMBIC_TABLE: &str = "alembic_version";

const COPY_PREFIX: &[u8] = b"COPY ";
const COPY_SUFFIX: &[u8] = b" FROM stdin;";
const DUMPED_FROM: &[u8] = b"-- Dumped from database version ";
const DUMPED_BY: &[u8] = b"-- Dumped by pg_dump version ";
const TRAILER: &[u8] = b"-- PostgreSQL database dump complete";

/// What a plain-format dump says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpFacts {
    /// Data rows per table, keyed by the qualified name exactly as the COPY line writes it:
    /// `schema.table`, each part quoted by pg_dump only when SQL needs it (`public.notes`,
    /// `public."My Table"`, `public."user"`). Kept quoted because that is unambiguous and can
    /// be pasted into SQL; [`split_table_name`] gives the bare parts for display. A table
    /// whose COPY section is empty counts 0.
    pub tables: BTreeMap<String, u64>,
    /// The revisions in `alembic_version`, sorted: `None` when the dump has no data for a
    /// table of that (bare) name in any schema, `Some(vec![])` when the table is empty. NULLs
    /// are skipped; if several schemas have such a table their revisions are merged.
    pub alembic_heads: Option<Vec<String>>,
    /// Roles named by `ALTER … OWNER TO role;` statements, unquoted (`"App Owner"` →
    /// `App Owner`).
    pub owners: BTreeSet<String>,
    /// The `pg_dump` version from the header, e.g. `15.14 (Debian 15.14-0+deb12u1)`.
    pub dumped_by: Option<String>,
    /// The server version from the header, e.g. `15.14 (Debian 15.14-0+deb12u1)`.
    pub dumped_from: Option<String>,
    /// Whether the `-- PostgreSQL database dump complete` trailer was seen: false means
    /// pg_dump stopped early or the stream was cut.
    pub complete: bool,
}

/// The COPY section the scanner is inside.
#[derive(Debug)]
struct CopySection {
    table: String,
    alembic: bool,
    rows: u64,
}

/// Collects [`DumpFacts`] from a dump fed to it in chunks of any size.
#[derive(Debug)]
pub struct DumpScanner {
    /// The start of the current line, at most [`DumpScanner::cap`] bytes.
    line: Vec<u8>,
    /// The current line was longer than the cap.
    overflow: bool,
    /// The last bytes of an over-long SQL line (beyond `line`), at most [`TAIL_CAP`].
    tail: Vec<u8>,
    copy: Option<CopySection>,
    alembic: Option<BTreeSet<String>>,
    facts: DumpFacts,
}

impl Default for DumpScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl DumpScanner {
    /// A scanner at the start of a dump.
    pub fn new() -> Self {
        DumpScanner {
            // Allocated once at the cap so a line never makes it grow (or double past it).
            line: Vec::with_capacity(LINE_CAP),
            overflow: false,
            tail: Vec::with_capacity(2 * TAIL_CAP),
            copy: None,
            alembic: None,
            facts: DumpFacts::default(),
        }
    }

    /// Scans the next bytes of the dump.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(i) = chunk.iter().position(|&b| b == b'\n') {
            self.take(&chunk[..i]);
            self.end_line();
            chunk = &chunk[i + 1..];
        }
        self.take(chunk);
    }

    /// Ends the scan (a last line without a newline still counts) and returns the facts.
    pub fn finish(mut self) -> DumpFacts {
        if !self.line.is_empty() || self.overflow {
            self.end_line();
        }
        if let Some(copy) = self.copy.take() {
            // Cut inside a COPY section: keep the rows seen; `complete` stays false.
            self.close_copy(copy);
        }
        self.facts.alembic_heads = self.alembic.map(|set| set.into_iter().collect());
        self.facts
    }

    /// How much of a line is kept: inside a COPY section whose values are not needed, two
    /// bytes are enough to tell the `\.` terminator from a row.
    fn cap(&self) -> usize {
        match &self.copy {
            Some(copy) if !copy.alembic => 2,
            _ => LINE_CAP,
        }
    }

    /// Appends part of the current line (no newline in it).
    fn take(&mut self, part: &[u8]) {
        let room = self.cap().saturating_sub(self.line.len());
        if part.len() <= room {
            self.line.extend_from_slice(part);
            return;
        }
        self.line.extend_from_slice(&part[..room]);
        self.overflow = true;
        if self.copy.is_none() {
            let rest = &part[room..];
            if rest.len() >= TAIL_CAP {
                self.tail.clear();
                self.tail.extend_from_slice(&rest[rest.len() - TAIL_CAP..]);
            } else {
                self.tail.extend_from_slice(rest);
                let excess = self.tail.len().saturating_sub(TAIL_CAP);
                self.tail.drain(..excess);
            }
        }
    }

    /// Handles the line gathered so far and starts the next.
    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        match self.copy.take() {
            Some(copy) => self.copy_line(copy, &line),
            None => self.sql_line(&line),
        }
        self.line = line;
        self.line.clear();
        self.overflow = false;
        self.tail.clear();
    }

    fn copy_line(&mut self, mut copy: CopySection, line: &[u8]) {
        if line == b"\\." && !self.overflow {
            self.close_copy(copy);
            return;
        }
        copy.rows += 1;
        if copy.alembic
            && let Some(rev) = first_column(line)
        {
            self.alembic.get_or_insert_default().insert(rev);
        }
        self.copy = Some(copy);
    }

    fn close_copy(&mut self, copy: CopySection) {
        *self.facts.tables.entry(copy.table).or_insert(0) += copy.rows;
    }

    fn sql_line(&mut self, line: &[u8]) {
        if self.overflow {
            // Only a COPY header is worth recognising in a line this long (a table with
            // hundreds of long column names); its end is in `tail`.
            let mut end = line[line.len().saturating_sub(TAIL_CAP)..].to_vec();
            end.extend_from_slice(&self.tail);
            if line.starts_with(COPY_PREFIX) && end.ends_with(COPY_SUFFIX) {
                self.open_copy(&line[COPY_PREFIX.len()..]);
            }
            return;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(COPY_PREFIX) {
            if line.ends_with(COPY_SUFFIX) {
                self.open_copy(rest);
            }
        } else if line.starts_with(b"ALTER ") {
            if let Some(role) = owner_of(line) {
                self.facts.owners.insert(role);
            }
        } else if let Some(rest) = line.strip_prefix(DUMPED_FROM) {
            self.facts.dumped_from.get_or_insert_with(|| text(rest));
        } else if let Some(rest) = line.strip_prefix(DUMPED_BY) {
            self.facts.dumped_by.get_or_insert_with(|| text(rest));
        } else if line == TRAILER {
            self.facts.complete = true;
        }
    }

    /// Starts a COPY section from the header after `COPY `.
    fn open_copy(&mut self, header: &[u8]) {
        let Some(len) = qualified_name_len(header) else {
            return;
        };
        let table = String::from_utf8_lossy(&header[..len]).into_owned();
        let alembic = split_table_name(&table).is_some_and(|(_, name)| name == ALEMBIC_TABLE);
        if alembic {
            self.alembic.get_or_insert_default();
        }
        self.facts.tables.entry(table.clone()).or_insert(0);
        self.copy = Some(CopySection {
            table,
            alembic,
            rows: 0,
        });
    }

    /// Capacity of the line buffer, to check that it stays bounded.
    #[cfg(test)]
    fn buffer_capacity(&self) -> usize {
        self.line.capacity() + self.tail.capacity()
    }
}

/// A writer that scans everything the inner writer accepts, e.g. between `pg_dump`'s
/// output and the compressor.
pub struct ScanningWriter<W> {
    inner: W,
    scanner: DumpScanner,
}

impl<W: Write> ScanningWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        ScanningWriter {
            inner,
            scanner: DumpScanner::new(),
        }
    }

    /// Returns the inner writer and the facts of everything written.
    pub fn finish(self) -> (W, DumpFacts) {
        (self.inner, self.scanner.finish())
    }
}

impl<W: Write> Write for ScanningWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Only what was accepted: the caller writes the rest again.
        self.scanner.feed(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Scans a whole dump from a reader.
pub fn scan_reader<R: Read>(mut reader: R) -> io::Result<DumpFacts> {
    let mut scanner = DumpScanner::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(scanner.finish()),
            Ok(n) => scanner.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Splits a qualified name as pg_dump writes it (`schema.table`, parts quoted when needed)
/// into its bare schema and table names: `public."My ""T"""` → (`public`, `My "T"`).
/// `None` when it is not exactly two well-formed parts.
pub fn split_table_name(name: &str) -> Option<(String, String)> {
    let (schema, rest) = identifier(name.as_bytes())?;
    let rest = rest.strip_prefix(b".")?;
    let (table, rest) = identifier(rest)?;
    rest.is_empty().then_some((schema, table))
}

/// Parses one SQL identifier at the start of `s`, quoted (`"a ""b"""`) or bare (up to `.`,
/// whitespace, `(`, `;` or `"`); returns it unquoted and the rest.
fn identifier(s: &[u8]) -> Option<(String, &[u8])> {
    if let Some(mut rest) = s.strip_prefix(b"\"") {
        let mut out = Vec::new();
        loop {
            let i = rest.iter().position(|&b| b == b'"')?;
            out.extend_from_slice(&rest[..i]);
            if rest.get(i + 1) == Some(&b'"') {
                out.push(b'"');
                rest = &rest[i + 2..];
            } else {
                return Some((String::from_utf8_lossy(&out).into_owned(), &rest[i + 1..]));
            }
        }
    }
    let end = s
        .iter()
        .position(|&b| matches!(b, b'.' | b'(' | b';' | b'"') || b.is_ascii_whitespace())
        .unwrap_or(s.len());
    (end > 0).then(|| (String::from_utf8_lossy(&s[..end]).into_owned(), &s[end..]))
}

/// Length of the qualified name at the start of a COPY header, if it is followed by a space.
fn qualified_name_len(header: &[u8]) -> Option<usize> {
    let mut rest = header;
    loop {
        rest = identifier(rest)?.1;
        match rest.first() {
            Some(b'.') => rest = &rest[1..],
            Some(b' ') => return Some(header.len() - rest.len()),
            _ => return None,
        }
    }
}

/// The role of an `ALTER … OWNER TO role;` line. ` OWNER TO ` may also occur inside a quoted
/// name, so the last occurrence followed by exactly one identifier and `;` wins.
fn owner_of(line: &[u8]) -> Option<String> {
    const KEY: &[u8] = b" OWNER TO ";
    let body = line.strip_suffix(b";")?;
    let mut end = body.len();
    while let Some(i) = body[..end].windows(KEY.len()).rposition(|w| w == KEY) {
        if let Some((role, rest)) = identifier(&body[i + KEY.len()..])
            && rest.is_empty()
        {
            return Some(role);
        }
        end = i;
    }
    None
}

/// The first column of a COPY text row, unescaped; `None` for NULL (`\N`).
fn first_column(row: &[u8]) -> Option<String> {
    let field = &row[..row.iter().position(|&b| b == b'\t').unwrap_or(row.len())];
    if field == b"\\N" {
        return None;
    }
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        // The escapes COPY writes for text; octal and hex forms are only read, never written,
        // by pg_dump, and revision ids never need them.
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'b') => out.push(0x08),
            Some(b'f') => out.push(0x0c),
            Some(b'v') => out.push(0x0b),
            Some(&other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The rest of a header line as text.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    const FIXTURE: &[u8] = include_bytes!("../tests/data/pg_dump_15_plain.sql");

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
    const TRAILER_LINES: &str =
        "--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n";

    #[test]
    fn small_dumps() {
        struct Case {
            name: &'static str,
            body: &'static str,
            want: DumpFacts,
        }
        let base = DumpFacts {
            dumped_from: Some("15.14".into()),
            dumped_by: Some("15.14 (Debian 15.14-1)".into()),
            complete: true,
            ..DumpFacts::default()
        };
        let cases = [
            Case {
                name: "no data at all",
                body: "",
                want: base.clone(),
            },
            Case {
                name: "empty table counts 0",
                body: "COPY public.t (x) FROM stdin;\n\\.\n",
                want: DumpFacts {
                    tables: tables(&[("public.t", 0)]),
                    ..base.clone()
                },
            },
            Case {
                name: "rows with escapes are one line each",
                body: "COPY public.t (a, b) FROM stdin;\n1\tx\\ny\n2\t\\\\.\n3\t\\N\n\\.\n",
                want: DumpFacts {
                    tables: tables(&[("public.t", 3)]),
                    ..base.clone()
                },
            },
            Case {
                name: "table with no columns",
                body: "COPY public.t  FROM stdin;\n\n\n\\.\n",
                want: DumpFacts {
                    tables: tables(&[("public.t", 2)]),
                    ..base.clone()
                },
            },
            Case {
                name: "quoted names keep pg_dump's quoting",
                body: "COPY public.\"My \"\"T\"\"\" (\"A b\") FROM stdin;\nx\n\\.\n\
                       COPY \"Sch.ema\".\"UPPER\" (x) FROM stdin;\n1\n2\n\\.\n",
                want: DumpFacts {
                    tables: tables(&[("public.\"My \"\"T\"\"\"", 1), ("\"Sch.ema\".\"UPPER\"", 2)]),
                    ..base.clone()
                },
            },
            Case {
                name: "one alembic head",
                body: "COPY public.alembic_version (version_num) FROM stdin;\n3f2a9c1b7d4e\n\\.\n",
                want: DumpFacts {
                    tables: tables(&[("public.alembic_version", 1)]),
                    alembic_heads: heads(&["3f2a9c1b7d4e"]),
                    ..base.clone()
                },
            },
            Case {
                name: "several heads, sorted, NULL skipped, escapes undone",
                body: "COPY public.alembic_version (version_num) FROM stdin;\n\
                       zz9\nab\\\\c\n\\N\n0a1\textra\n\\.\n",
                want: DumpFacts {
                    tables: tables(&[("public.alembic_version", 4)]),
                    alembic_heads: heads(&["0a1", "ab\\c", "zz9"]),
                    ..base.clone()
                },
            },
            Case {
                name: "alembic table in another schema",
                body: "COPY app.alembic_version (version_num) FROM stdin;\nc0ffee\n\\.\n",
                want: DumpFacts {
                    tables: tables(&[("app.alembic_version", 1)]),
                    alembic_heads: heads(&["c0ffee"]),
                    ..base.clone()
                },
            },
            Case {
                name: "empty alembic table",
                body: "COPY public.alembic_version (version_num) FROM stdin;\n\\.\n",
                want: DumpFacts {
                    tables: tables(&[("public.alembic_version", 0)]),
                    alembic_heads: heads(&[]),
                    ..base.clone()
                },
            },
            Case {
                name: "similar names are not alembic's",
                body: "COPY public.alembic_versions (v) FROM stdin;\nx\n\\.\n\
                       COPY public.\"Alembic_version\" (v) FROM stdin;\ny\n\\.\n",
                want: DumpFacts {
                    tables: tables(&[
                        ("public.alembic_versions", 1),
                        ("public.\"Alembic_version\"", 1),
                    ]),
                    ..base.clone()
                },
            },
            Case {
                name: "owners, quoted and bare",
                body: "ALTER TABLE public.t OWNER TO app;\n\
                       ALTER SCHEMA app OWNER TO \"App Owner\";\n\
                       ALTER FUNCTION public.f(integer) OWNER TO app;\n\
                       ALTER TABLE public.\"x OWNER TO y\" OWNER TO \"a OWNER TO b\";\n\
                       ALTER TABLE public.t ALTER COLUMN id SET DEFAULT 1;\n\
                       ALTER TABLE public.t OWNER TO broken\n",
                want: DumpFacts {
                    owners: set(&["App Owner", "a OWNER TO b", "app"]),
                    ..base.clone()
                },
            },
            Case {
                name: "SQL-looking data rows are data",
                body: "COPY public.t (x) FROM stdin;\n\
                       ALTER TABLE t OWNER TO evil;\n\
                       -- PostgreSQL database dump complete\n\
                       COPY public.u (x) FROM stdin;\n\
                       \\.\n",
                want: DumpFacts {
                    tables: tables(&[("public.t", 3)]),
                    ..base.clone()
                },
            },
            Case {
                name: "a row starting with \\. is not the terminator",
                body: "COPY public.t (x) FROM stdin;\n\\.x\n\\.\n",
                want: DumpFacts {
                    tables: tables(&[("public.t", 1)]),
                    ..base.clone()
                },
            },
        ];
        for case in cases {
            let dump = format!("{HEADER}{}{TRAILER_LINES}", case.body);
            assert_eq!(scan(dump.as_bytes()), case.want, "{}", case.name);
        }
    }

    #[test]
    fn cut_dumps_are_incomplete() {
        let cases: &[(&str, DumpFacts)] = &[
            ("", DumpFacts::default()),
            (
                "-- Dumped by pg_dump version 16.2",
                DumpFacts {
                    dumped_by: Some("16.2".into()),
                    ..DumpFacts::default()
                },
            ),
            (
                "COPY public.t (x) FROM stdin;\n1\n2",
                DumpFacts {
                    tables: tables(&[("public.t", 2)]),
                    ..DumpFacts::default()
                },
            ),
            (
                "COPY public.alembic_version (v) FROM stdin;\nabc",
                DumpFacts {
                    tables: tables(&[("public.alembic_version", 1)]),
                    alembic_heads: heads(&["abc"]),
                    ..DumpFacts::default()
                },
            ),
            (
                "-- PostgreSQL database dump complete\r\n",
                DumpFacts {
                    complete: true,
                    ..DumpFacts::default()
                },
            ),
        ];
        for (dump, want) in cases {
            assert_eq!(&scan(dump.as_bytes()), want, "{dump:?}");
        }
    }

    #[test]
    fn real_pg_dump_15_output() {
        let want = DumpFacts {
            tables: tables(&[
                ("app.alembic_version", 2),
                ("app.items", 20),
                ("public.\"My Table \"\"q\"\"\"", 2),
                ("public.\"UPPER\"", 1),
                ("public.empty_one", 0),
                ("public.notes", 5),
                ("public.\"user\"", 2),
            ]),
            alembic_heads: heads(&["c0ffee123abc", "merge_b2"]),
            owners: set(&["App Owner", "appuser", "postgres"]),
            dumped_by: Some("15.18 (Debian 15.18-0+deb12u1)".into()),
            dumped_from: Some("15.18 (Debian 15.18-0+deb12u1)".into()),
            complete: true,
        };
        assert_eq!(scan(FIXTURE), want);
        assert_eq!(scan_reader(FIXTURE).unwrap(), want);
        // Cut before the trailer: everything but `complete`.
        let cut = &FIXTURE[..FIXTURE.len() - 200];
        assert_eq!(
            scan(cut),
            DumpFacts {
                complete: false,
                ..want
            }
        );
    }

    #[test]
    fn split_table_name_table() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("public.notes", Some(("public", "notes"))),
            ("app.\"My \"\"T\"\"\"", Some(("app", "My \"T\""))),
            ("\"a.b\".\"c.d\"", Some(("a.b", "c.d"))),
            ("public.\"user\"", Some(("public", "user"))),
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
    fn huge_lines_keep_memory_bounded() {
        const HUGE: usize = 10 * 1024 * 1024;
        let big = "x".repeat(HUGE);
        let long_columns: Vec<String> = (0..2000)
            .map(|i| format!("\"a rather long column name {i:04}\""))
            .collect();
        // A COPY header longer than the cap: recognised by its kept start and tail.
        assert!(long_columns.join(", ").len() > LINE_CAP);
        let dump = format!(
            "{HEADER}\
             COPY public.blobs (id, data) FROM stdin;\n1\t\\\\x{big}\n2\t\\\\x\n\\.\n\
             COPY public.alembic_version (version_num, junk) FROM stdin;\nabc\t{big}\n\\.\n\
             CREATE FUNCTION f() AS $$ {big} $$;\n\
             COPY public.wide ({}) FROM stdin;\n{}\n\\.\n\
             {TRAILER_LINES}",
            long_columns.join(", "),
            vec!["1"; 2000].join("\t"),
        );
        let mut scanner = DumpScanner::new();
        let start = scanner.buffer_capacity();
        for chunk in dump.as_bytes().chunks(64 * 1024) {
            scanner.feed(chunk);
            assert_eq!(scanner.buffer_capacity(), start);
        }
        assert!(start <= LINE_CAP + 2 * TAIL_CAP);
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
        assert!(facts.complete);
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

    proptest! {
        #[test]
        fn chunk_splits_do_not_matter(sizes in proptest::collection::vec(1usize..300, 1..50)) {
            prop_assert_eq!(scan_in_chunks(FIXTURE, &sizes), scan(FIXTURE));
        }

        #[test]
        fn counts_rows_of_any_content(
            data in proptest::collection::btree_map(
                "[a-zA-Z _\".é]{1,12}",
                proptest::collection::vec(proptest::collection::vec(any::<String>(), 1..3), 0..6),
                0..5,
            ),
            revs in proptest::collection::btree_set("[0-9a-f]{12}", 0..3),
            sizes in proptest::collection::vec(1usize..64, 1..20),
        ) {
            let mut dump = String::from(HEADER);
            let mut want = DumpFacts {
                dumped_from: Some("15.14".into()),
                dumped_by: Some("15.14 (Debian 15.14-1)".into()),
                complete: true,
                alembic_heads: Some(revs.iter().cloned().collect()),
                ..DumpFacts::default()
            };
            dump.push_str("COPY public.alembic_version (version_num) FROM stdin;\n");
            for rev in &revs {
                dump.push_str(&format!("{rev}\n"));
            }
            dump.push_str("\\.\n");
            want.tables.insert("public.alembic_version".into(), revs.len() as u64);
            for (name, rows) in &data {
                let table = format!("app.{}", quote_ident(name));
                dump.push_str(&format!("COPY {table} (a, b) FROM stdin;\n"));
                for row in rows {
                    let fields: Vec<String> = row.iter().map(|v| copy_escape(v)).collect();
                    dump.push_str(&fields.join("\t"));
                    dump.push('\n');
                }
                dump.push_str("\\.\n");
                want.tables.insert(table, rows.len() as u64);
            }
            dump.push_str(TRAILER_LINES);
            prop_assert_eq!(scan_in_chunks(dump.as_bytes(), &sizes), want);
        }
    }
}
