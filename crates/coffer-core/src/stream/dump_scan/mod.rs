//! Facts read from a plain-format `pg_dump` stream as it passes, and the gate every dump
//! goes through before psql sees it.
//!
//! The backup pipeline feeds every byte of the dump through a [`DumpScanner`] (via
//! [`crate::stream::piece_writer::PieceWriter`]) on its way to the compressor, so the
//! manifest can record row counts, the Alembic head and the server and `pg_dump` versions
//! without a second pass (and the dump can be cut into pieces where its lexical state says
//! a COPY block begins or ends, see `marks.rs`); `verify` and `restore` scan the same way
//! and compare.
//!
//! The scanner follows SQL's lexical structure the way psql does (see `lexer.rs`):
//! comments, '…' and E'…' strings, "…" identifiers, dollar quotes, statement ends. Only a
//! top-level `COPY <table> (<columns>) FROM stdin;` opens a data section, whose rows are
//! counted up to the `\.` line; only a top-level `-- PostgreSQL database dump complete`
//! line followed by nothing but comments, blank lines and pg_dump's `\unrestrict` line
//! makes the dump complete. Text inside a function body or a comment that looks like a
//! COPY, a revision or the trailer is just text.
//!
//! It also refuses what must never reach psql ([`DumpFacts::problem`]): any psql
//! meta-command (a backslash at the top level, even mid-line) other than pg_dump's own
//! whole-line `\restrict KEY` / `\unrestrict KEY`, any COPY other than pg_dump's `FROM
//! stdin` form (so no server-side `COPY … TO/FROM PROGRAM` or file), any top-level
//! transaction-control statement (`COMMIT`, `ROLLBACK`, `END`, `ABORT`, `BEGIN …`, `START
//! TRANSACTION`, `SAVEPOINT`, `RELEASE`, `PREPARE TRANSACTION`, `COMMIT`/`ROLLBACK
//! PREPARED`: the dump runs inside coffer's single transaction and must not end it), NUL
//! bytes, and changes of `standard_conforming_strings` it cannot follow.
//! The one exception is pg_dump's own large-object section: in plain format it brackets
//! the large-object data with a standalone `BEGIN;` … `COMMIT;` pair (`StartRestoreLOs` /
//! `EndRestoreLOs`); exactly those two statements, in that order, are accepted and dropped,
//! so the data stays inside coffer's transaction.
//! [`DumpScanner::feed_filtered`] passes on the bytes psql may run (the dump's own
//! `\restrict` lines and that `BEGIN;`/`COMMIT;` pair removed; a statement starting with
//! `COPY` or a transaction-control word only once judged, since psql would run it at
//! end-of-input) and nothing from the first refused byte on.
//!
//! It also keeps psql reading the dump the way the scanner does. psql lexes each input line
//! in the client encoding it last heard from the server, and in a client-only encoding
//! (SJIS, BIG5, GBK, …) a multi-byte character can swallow the quote or backslash that
//! follows it: a function the dump defines could switch the encoding at run time (no text
//! names it) and make psql see a meta-command inside what the scanner reads as a string. So
//! the filtered stream starts by setting `client_encoding` to UTF-8 and sets it back to the
//! dump's own declared encoding right after every statement psql runs (on the same line,
//! after its `;`) and on a line of its own after every COPY data section: every line psql
//! lexes starts in the encoding the scanner assumes.
//!
//! Chunks may split the stream anywhere (mid-line, mid-UTF-8); memory stays bounded:
//! at most [`LINE_CAP`] bytes of a statement (plus its last few) and of an Alembic
//! data row are kept, and a few bytes of any other row.

mod facts;
mod gate;
mod lexer;
mod marks;
mod resume;
mod statement;
#[cfg(test)]
mod tests;
mod words;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use crate::format::manifest::{AlembicHead, AnyManifest};
use lexer::Lex;
pub use marks::Mark;
pub use resume::SessionState;
#[cfg(test)]
pub(crate) use resume::gate_pieces;

/// Most bytes of one statement (or Alembic data row) the scanner keeps. Longer ones (big
/// function bodies, wide COPY headers) are still followed to their end.
pub const LINE_CAP: usize = 64 * 1024;

/// Bytes kept from the end of an over-long statement: enough for `) FROM stdin`, so a COPY
/// header with a very long column list is still recognised.
const TAIL_CAP: usize = 32;

/// The schema whose `alembic_version` table holds the Alembic head: Alembic's default
/// (`version_table_schema` unset) with the default `search_path`. Tables of that name in
/// other schemas are ordinary tables (the live-database query follows the same rule).
pub const ALEMBIC_SCHEMA: &str = "public";

/// The table whose rows are Alembic's current revisions.
pub const ALEMBIC_TABLE: &str = "alembic_version";

/// What a plain-format dump says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpFacts {
    /// Data rows per table, keyed by the qualified name exactly as the COPY statement writes
    /// it: `schema.table`, each part quoted by pg_dump only when SQL needs it
    /// (`public.notes`, `public."My Table"`, `public."user"`). Kept quoted because that is
    /// unambiguous and can be pasted into SQL; [`split_table_name`] gives the bare parts for
    /// display. A table whose COPY section is empty counts 0.
    pub tables: BTreeMap<String, u64>,
    /// The revisions in `public.alembic_version` ([`ALEMBIC_SCHEMA`]), sorted: `None` when
    /// the dump has no data section for that table, `Some(vec![])` when it is empty. NULLs
    /// are skipped.
    pub alembic_heads: Option<Vec<String>>,
    /// The revisions of the `alembic_version` tables of every schema, merged and sorted: the
    /// rule manifests were written by before the head was read from `public` alone. Only used
    /// to accept such manifests ([`DumpFacts::check_against`]).
    #[serde(default)]
    pub alembic_heads_any_schema: Option<Vec<String>>,
    /// Roles named by `ALTER … OWNER TO role;` statements, unquoted (`"App Owner"` →
    /// `App Owner`).
    pub owners: BTreeSet<String>,
    /// Whether the dump holds a top-level `DROP` statement, as `pg_dump --clean` writes
    /// before each object: without one, the dump creates its objects over whatever is there.
    #[serde(default)]
    pub drops: bool,
    /// The `pg_dump` version from the header, e.g. `15.14 (Debian 15.14-0+deb12u1)`.
    pub dumped_by: Option<String>,
    /// The server version from the header, e.g. `15.14 (Debian 15.14-0+deb12u1)`.
    pub dumped_from: Option<String>,
    /// Whether the stream ends, at the top level, with pg_dump's `dump complete` trailer
    /// (then only comments, blank lines and the `\unrestrict` line matching its `\restrict`).
    pub complete: bool,
    /// When not complete (and no [`DumpFacts::problem`]): how it was cut, e.g. `the dump ends
    /// inside a dollar-quoted string (e.g. a function body) opened on line 12: it was cut
    /// short`.
    #[serde(default)]
    pub cut: Option<String>,
    /// Why the dump must not be given to psql (a meta-command, a COPY from elsewhere, …);
    /// scanning stopped there.
    #[serde(default)]
    pub problem: Option<String>,
}

impl DumpFacts {
    /// Why the dump cannot be trusted or used, if so: the problem, else how it was cut.
    pub fn unusable(&self) -> Option<String> {
        if let Some(p) = &self.problem {
            return Some(p.clone());
        }
        (!self.complete).then(|| {
            self.cut.clone().unwrap_or_else(|| {
                "the dump ends without pg_dump's \"dump complete\" trailer: it was cut short".into()
            })
        })
    }

    /// Whether the head and table list equal what `manifest` records, with what differs.
    /// A coffer manifest records both; a legacy one only a head (`None` there: nothing to
    /// compare).
    pub fn check_against(&self, manifest: &AnyManifest) -> Result<(), String> {
        let scanned = AlembicHead::from_heads(self.alembic_heads.clone());
        let any_schema = AlembicHead::from_heads(self.alembic_heads_any_schema.clone());
        let recorded = manifest.alembic_head();
        let mut differences = Vec::new();
        // A manifest written before the `public`-only rule recorded every schema's revisions:
        // that value is derived from the dump as well, so it proves the head just the same.
        let head_differs = match manifest {
            AnyManifest::Coffer(_) => {
                recorded != scanned.as_ref() && recorded != any_schema.as_ref()
            }
            AnyManifest::Legacy(_) => recorded.is_some_and(|r| {
                let mut r = r.heads();
                r.sort();
                Some(&r) != self.alembic_heads.as_ref()
                    && Some(&r) != self.alembic_heads_any_schema.as_ref()
            }),
        };
        if head_differs {
            differences.push(format!(
                "the manifest's alembic_head is {}, the dump's {} table holds {}",
                recorded.map_or("null".into(), ToString::to_string),
                qualified_alembic_table(),
                scanned.map_or("no data".into(), |h| h.to_string()),
            ));
        }
        if let AnyManifest::Coffer(m) = manifest
            && m.database.tables != self.tables
        {
            let differing: Vec<String> = m
                .database
                .tables
                .keys()
                .chain(self.tables.keys())
                .filter(|t| m.database.tables.get(*t) != self.tables.get(*t))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .take(5)
                .map(|t| {
                    let count =
                        |n: Option<&u64>| n.map_or("no table".into(), |n| format!("{n} rows"));
                    format!(
                        "{t}: manifest {}, dump {}",
                        count(m.database.tables.get(t)),
                        count(self.tables.get(t))
                    )
                })
                .collect();
            differences.push(format!(
                "the manifest's table list differs from the dump ({})",
                differing.join("; ")
            ));
        }
        if differences.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}: the manifest does not describe this dump (it was altered, or belongs to another dump)",
                differences.join("; ")
            ))
        }
    }
}

fn qualified_alembic_table() -> String {
    format!("{ALEMBIC_SCHEMA}.{ALEMBIC_TABLE}")
}

/// Where psql must be told the dump's client encoding again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resync {
    No,
    /// Right after the `;` of the statement psql is about to run, on the same line.
    Inline,
    /// On a line of its own: first of all, and after the `\.` line that ends a COPY section.
    OwnLine,
}

/// The COPY section the scanner is inside.
#[derive(Debug)]
struct CopySection {
    table: String,
    /// `public.alembic_version`.
    alembic: bool,
    /// An `alembic_version` table of any schema.
    any_alembic: bool,
    rows: u64,
}

/// Collects `DumpFacts` from a dump fed to it in chunks of any size (see the module docs).
#[derive(Debug)]
pub struct DumpScanner {
    lex: Lex,
    /// Current line number (1-based) and whether the next byte is the first of its line.
    line: u64,
    col0: bool,
    /// The current statement: started, its first line, its start, its last bytes.
    stmt_started: bool,
    stmt_line: u64,
    stmt: Vec<u8>,
    stmt_overflow: bool,
    stmt_tail: Vec<u8>,
    /// psql's statement-end rules: parentheses and `BEGIN … END` in function bodies.
    paren_depth: u32,
    begin_depth: u32,
    /// The last word was a function's `BEGIN` (only blanks since), and whether the body is
    /// a SQL-standard `BEGIN ATOMIC` one: the only kind whose `;` psql may swallow.
    after_begin: bool,
    atomic_body: bool,
    /// In a function statement, the last word was `as` or the last byte a `.`: a `begin`,
    /// `case` or `end` there is a name to the server but a block word to psql.
    label_next: bool,
    /// The previous top-level byte was a `:` not paired into `::`, and whether the word
    /// being read started right after one (psql's `:variable`, which it does not count as
    /// a word).
    after_colon: bool,
    prev_colon: bool,
    var_word: bool,
    /// The last content byte of the current plain string literal was a backslash.
    str_backslash: bool,
    identifier_count: usize,
    identifiers: [u8; 4],
    /// The unquoted word being read (its first 16 bytes) or a number.
    in_word: bool,
    word: Vec<u8>,
    word_len_total: usize,
    in_number: bool,
    number_e: bool,
    /// `standard_conforming_strings` as the dump left it (psql follows the server's).
    std_strings: bool,
    /// Where the current string, identifier, comment or dollar quote opened.
    open_line: u64,
    /// The tag of the current dollar quote.
    tag: Vec<u8>,
    /// The current `--` comment and whether it started a line.
    dash_col0: bool,
    comment: Vec<u8>,
    comment_overflow: bool,
    comment_col0: bool,
    /// The current meta-command line.
    meta: Vec<u8>,
    meta_overflow: bool,
    meta_line: u64,
    meta_col0: bool,
    meta_in_stmt: bool,
    /// The dump's own `\restrict` key, and whether its `\unrestrict` came.
    restrict_key: Option<Vec<u8>>,
    unrestricted: bool,
    /// Whether a `\restrict` line may still come (never in a piece read alone).
    restrict_allowed: bool,
    /// The session settings made so far (see `resume.rs`): per setting, the order and bytes
    /// of its last `SET` (or pg_dump's `set_config`) statement; and whether there were more
    /// than are kept.
    session: BTreeMap<Vec<u8>, (u64, Vec<u8>)>,
    session_seq: u64,
    session_overflow: bool,
    /// A piece read alone ([`DumpScanner::resume`]): the COPY statements judged and not yet
    /// taken, the last one per table, and what its filtered output starts with.
    copy_log: Option<Vec<(String, Vec<u8>)>>,
    last_copies: BTreeMap<String, Vec<u8>>,
    prefix: Vec<u8>,
    /// The current COPY data row (its first bytes).
    row: Vec<u8>,
    row_overflow: bool,
    copy: Option<CopySection>,
    alembic: Option<BTreeSet<String>>,
    alembic_any: Option<BTreeSet<String>>,
    trailer_seen: bool,
    /// A statement that may be a COPY is being held back from psql (see `lexer.rs`), its
    /// bytes so far (when filtering) and their count.
    holding: bool,
    held: Vec<u8>,
    held_len: usize,
    /// The held statement was judged to be dropped (pg_dump's large-object `BEGIN;` or
    /// `COMMIT;`, which would end coffer's transaction), not given to psql.
    drop_held: bool,
    /// Between pg_dump's large-object `BEGIN;` and its `COMMIT;`.
    in_lo_section: bool,
    /// The client encoding the dump declared (normalised: `utf8`, `latin1`), and where psql
    /// must be told it again: after the statement that just ended, or after a COPY section.
    client_encoding: Vec<u8>,
    resync: Resync,
    /// The filtered stream has started with coffer's own `client_encoding` line.
    pinned: bool,
    problem: Option<String>,
    /// Index in the current chunk of the byte that was refused.
    problem_at: Option<usize>,
    facts: DumpFacts,
    /// Bytes of the stream before the current chunk, and after it.
    chunk_base: u64,
    consumed: u64,
    /// Where the statement being held (see `holding`) started.
    hold_start: u64,
    /// COPY data rows seen.
    rows_total: u64,
    /// Cut marks found and not yet taken (`None`: not wanted), and the offset after which
    /// the next row end is wanted as one.
    marks: Option<Vec<Mark>>,
    row_mark_after: Option<u64>,
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
            lex: Lex::Top,
            line: 1,
            col0: true,
            stmt_started: false,
            stmt_line: 1,
            // Allocated once at the cap so a statement never makes it grow.
            stmt: Vec::with_capacity(LINE_CAP),
            stmt_overflow: false,
            stmt_tail: Vec::with_capacity(2 * TAIL_CAP),
            paren_depth: 0,
            begin_depth: 0,
            after_begin: false,
            atomic_body: false,
            label_next: false,
            after_colon: false,
            prev_colon: false,
            var_word: false,
            str_backslash: false,
            identifier_count: 0,
            identifiers: [0; 4],
            in_word: false,
            word: Vec::with_capacity(16),
            word_len_total: 0,
            in_number: false,
            number_e: false,
            std_strings: true,
            open_line: 1,
            tag: Vec::new(),
            dash_col0: false,
            comment: Vec::new(),
            comment_overflow: false,
            comment_col0: false,
            meta: Vec::new(),
            meta_overflow: false,
            meta_line: 0,
            meta_col0: false,
            meta_in_stmt: false,
            restrict_key: None,
            unrestricted: false,
            restrict_allowed: true,
            session: BTreeMap::new(),
            session_seq: 0,
            session_overflow: false,
            copy_log: None,
            last_copies: BTreeMap::new(),
            prefix: Vec::new(),
            row: Vec::with_capacity(LINE_CAP),
            row_overflow: false,
            copy: None,
            alembic: None,
            alembic_any: None,
            trailer_seen: false,
            holding: false,
            held: Vec::new(),
            held_len: 0,
            drop_held: false,
            in_lo_section: false,
            client_encoding: b"utf8".to_vec(),
            resync: Resync::No,
            pinned: false,
            problem: None,
            problem_at: None,
            facts: DumpFacts::default(),
            chunk_base: 0,
            consumed: 0,
            hold_start: 0,
            rows_total: 0,
            marks: None,
            row_mark_after: None,
        }
    }

    /// Scans the next bytes of the dump.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.run(chunk, None);
    }

    /// Scans the next bytes and appends to `out` those psql may be given: all of them but
    /// the dump's own `\restrict`/`\unrestrict` lines, and none from a refused byte on
    /// (then [`DumpScanner::problem`] says why, and later chunks are ignored); plus coffer's
    /// own `SET client_encoding` statements that keep psql's reading equal to the scanner's
    /// (see the module docs).
    pub fn feed_filtered(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.run(chunk, Some(out));
    }

    /// The reason the dump must not reach psql, as soon as it is known.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// Ends the scan and returns the facts.
    pub fn finish(self) -> DumpFacts {
        self.finish_at_end().0
    }

    /// Ends the scan: the facts, and how the stream was cut when it ends inside something
    /// (a statement, string, comment, COPY data, the large-object section).
    fn finish_at_end(mut self) -> (DumpFacts, Option<String>) {
        if self.problem.is_none() {
            match self.lex {
                Lex::Meta => self.end_meta(),
                Lex::Dash | Lex::Slash => {
                    self.stmt_started = true;
                    self.lex = Lex::Top;
                }
                Lex::LineComment => {
                    self.end_comment();
                    self.lex = Lex::Top;
                }
                // A last data row without its newline still counts.
                Lex::CopyData if !self.row.is_empty() || self.row_overflow => self.end_row(),
                _ => {}
            }
        }
        if let Some(copy) = self.copy.take() {
            // Cut inside a COPY section: keep the rows seen; `complete` stays false.
            *self.facts.tables.entry(copy.table).or_insert(0) += copy.rows;
        }
        self.facts.alembic_heads = self.alembic.take().map(|set| set.into_iter().collect());
        self.facts.alembic_heads_any_schema =
            self.alembic_any.take().map(|set| set.into_iter().collect());
        let inside = self.lex.describe();
        self.facts.complete = self.problem.is_none()
            && inside.is_none()
            && !self.stmt_started
            && self.trailer_seen
            && !self.in_lo_section
            && (self.restrict_key.is_none() || self.unrestricted);
        let cut_inside = if let Some(what) = inside {
            Some(format!(
                "the dump ends inside {what} opened on line {}: it was cut short",
                if matches!(self.lex, Lex::CopyData | Lex::CopyPending) {
                    self.stmt_line
                } else {
                    self.open_line
                }
            ))
        } else if self.stmt_started {
            Some(format!(
                "the dump ends inside an unterminated statement starting on line {}: it was cut short",
                self.stmt_line
            ))
        } else if self.in_lo_section {
            Some("the dump ends inside its large-object section (a `BEGIN;` without its `COMMIT;`): it was cut short".into())
        } else {
            None
        };
        if !self.facts.complete && self.problem.is_none() {
            self.facts.cut = Some(if let Some(cut) = &cut_inside {
                cut.clone()
            } else if self.trailer_seen {
                "the dump ends after its \"dump complete\" trailer but without the \\unrestrict line that closes its \\restrict: it was cut short".into()
            } else {
                "the dump ends without pg_dump's \"dump complete\" trailer: it was cut short".into()
            });
        }
        self.facts.problem = self.problem.take();
        (self.facts, cut_inside)
    }

    fn close_copy(&mut self, copy: CopySection) {
        *self.facts.tables.entry(copy.table).or_insert(0) += copy.rows;
    }

    /// Capacity of the buffers, to check that they stay bounded.
    #[cfg(test)]
    fn buffer_capacity(&self) -> usize {
        self.stmt.capacity() + self.stmt_tail.capacity() + self.row.capacity()
    }
}

/// A writer that scans everything the inner writer accepts (the backup scans through
/// [`crate::stream::piece_writer::PieceWriter`], which also cuts the dump into pieces).
#[cfg(test)]
pub struct ScanningWriter<W> {
    inner: W,
    scanner: DumpScanner,
}

#[cfg(test)]
impl<W: io::Write> ScanningWriter<W> {
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

#[cfg(test)]
impl<W: io::Write> io::Write for ScanningWriter<W> {
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
    let (schema, rest) = statement::identifier(name.as_bytes())?;
    let rest = rest.strip_prefix(b".")?;
    let (table, rest) = statement::identifier(rest)?;
    rest.is_empty().then_some((schema, table))
}

/// The rest of a header line as text.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}
