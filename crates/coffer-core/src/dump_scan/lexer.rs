//! The lexical state machine behind [`DumpScanner`]: it follows the dump byte by byte the
//! way psql's own lexer (`psqlscan.l`) does, across chunks split anywhere.
//!
//! Mirrored from psql 15 (and checked against it): `--` comments end at `\n` or `\r`;
//! `/* */` comments nest; '…' strings (`''` escape; a backslash escape in E'…', or in '…'
//! when `standard_conforming_strings` is off); "…" identifiers (`""` escape, may hold
//! newlines); dollar quotes `$tag$…$tag$` (tag `[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*`,
//! `$1` is a parameter, and a `$` inside an identifier such as `x$$` is part of it); `;`
//! ends a statement only outside parentheses and outside the `BEGIN … END` of a
//! `CREATE [OR REPLACE] FUNCTION|PROCEDURE` body; a backslash anywhere else at the top
//! level is a psql meta-command (even mid-line). Inside comments, strings, identifiers and
//! dollar quotes a backslash is text. After `COPY … FROM stdin;` psql reads data lines up
//! to a line `\.` (or `\.\r`), where no meta-command is recognised.

use super::statement::{
    self, StdStrings, copy_from_stdin, first_word, is_ident_cont, is_ident_start, is_space,
    owner_of, std_strings_change,
};
use super::{CopySection, DumpScanner, LINE_CAP, TAIL_CAP};

/// Longest dollar-quote tag accepted (pg_dump writes `$$`, `$_$`, `$__$`…).
const TAG_CAP: usize = 256;
/// Longest meta-command line kept (pg_dump's `\restrict` line is 75 bytes).
const META_CAP: usize = 1024;
/// Longest part of a `--` comment kept (enough for the header and trailer lines).
const COMMENT_CAP: usize = 256;

const DUMPED_FROM: &[u8] = b"-- Dumped from database version ";
const DUMPED_BY: &[u8] = b"-- Dumped by pg_dump version ";
const TRAILER: &[u8] = b"-- PostgreSQL database dump complete";

/// Where the lexer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lex {
    /// Top level, between or inside statements.
    Top,
    /// A `-` at the top level: a comment if another follows.
    Dash,
    /// A `/` at the top level: a comment if `*` follows.
    Slash,
    /// Inside a `--` comment.
    LineComment,
    /// Inside `/* */` (depth 0 = outermost), after a `*` or a `/`.
    Block { depth: u32, star: bool, slash: bool },
    /// Inside '…'; `quote`: just saw a `'` (end, or `''`); `escape`: just saw a backslash
    /// in an extended string.
    Str {
        extended: bool,
        quote: bool,
        escape: bool,
    },
    /// Inside "…"; `quote`: just saw a `"`.
    Ident { quote: bool },
    /// After a `$` at the top level, collecting a possible tag in `tag`.
    DollarOpen,
    /// `$1`-style parameter digits.
    Param,
    /// Inside a dollar-quoted string; `matched` bytes of `$tag$` seen.
    Dollar { matched: usize },
    /// A line starting with (or holding) a backslash at the top level.
    Meta,
    /// After the `;` of `COPY … FROM stdin`, up to the end of that line.
    CopyPending,
    /// COPY data lines.
    CopyData,
}

impl Lex {
    /// What the stream ends inside, for the "cut short" message; `None` at the top level.
    pub(super) fn describe(&self) -> Option<&'static str> {
        Some(match self {
            Lex::Top | Lex::Dash | Lex::Slash | Lex::LineComment | Lex::Param => return None,
            Lex::Block { .. } => "a /* comment */",
            Lex::Str { quote: true, .. } | Lex::Ident { quote: true } => return None,
            Lex::Str { .. } => "a quoted string",
            Lex::Ident { .. } => "a quoted identifier",
            Lex::DollarOpen => return None,
            Lex::Dollar { .. } => "a dollar-quoted string (e.g. a function body)",
            Lex::Meta => "a psql meta-command line",
            Lex::CopyPending | Lex::CopyData => "COPY data",
        })
    }
}

impl DumpScanner {
    /// Scans `chunk`; with `out`, appends the bytes psql may be given (everything but the
    /// dump's own `\restrict`/`\unrestrict` lines, and nothing from the first refused byte on).
    pub(super) fn run(&mut self, chunk: &[u8], mut out: Option<&mut Vec<u8>>) {
        if self.problem.is_some() {
            return;
        }
        // A NUL byte: psql would drop the rest of its line, so its view and ours would part.
        let (chunk, nul) = match memchr::memchr(0, chunk) {
            Some(z) => (&chunk[..z], true),
            None => (chunk, false),
        };
        let mut emit_from = 0;
        let mut i = 0;
        while i < chunk.len() {
            let was_meta = self.lex == Lex::Meta;
            let next = self.advance(chunk, i);
            if self.problem.is_some() {
                // Stop before the offending byte (a held meta-command line was never emitted).
                if let Some(out) = out.as_deref_mut()
                    && !was_meta
                {
                    let stop = self.problem_at.unwrap_or(i).max(emit_from).min(chunk.len());
                    out.extend_from_slice(&chunk[emit_from..stop]);
                }
                return;
            }
            match (was_meta, self.lex == Lex::Meta) {
                (false, true) => {
                    // A meta-command line starts at `i`: hold it back.
                    if let Some(out) = out.as_deref_mut() {
                        out.extend_from_slice(&chunk[emit_from..i]);
                    }
                }
                (true, false) => emit_from = next, // an allowed line: dropped
                _ => {}
            }
            i = next;
        }
        if let Some(out) = out
            && self.lex != Lex::Meta
        {
            out.extend_from_slice(&chunk[emit_from.min(chunk.len())..]);
        }
        if nul {
            self.refuse(
                None,
                format!(
                    "the dump holds a NUL byte on line {}: pg_dump never writes one; the backup is not trustworthy",
                    self.line
                ),
            );
        }
    }

    /// Handles the bytes from `i` on (one, or a run the state can skip quickly) and returns
    /// the index of the next unhandled byte.
    fn advance(&mut self, chunk: &[u8], i: usize) -> usize {
        let rest = &chunk[i..];
        // Fast paths over the bulk of a dump: data rows and bodies.
        match self.lex {
            Lex::CopyData => {
                let end = memchr::memchr(b'\n', rest);
                let part = &rest[..end.unwrap_or(rest.len())];
                self.push_row(part);
                return match end {
                    Some(j) => {
                        self.end_row();
                        self.line += 1;
                        self.col0 = true;
                        i + j + 1
                    }
                    None => {
                        self.col0 = part.is_empty() && self.col0;
                        chunk.len()
                    }
                };
            }
            Lex::Dollar { matched: 0 } => {
                let j = memchr::memchr2(b'$', b'\n', rest).unwrap_or(rest.len());
                if j > 0 {
                    self.push_stmt(&rest[..j]);
                    self.col0 = false;
                    return i + j;
                }
            }
            Lex::Str {
                extended,
                quote: false,
                escape: false,
            } => {
                let j = if extended {
                    memchr::memchr3(b'\'', b'\\', b'\n', rest)
                } else {
                    memchr::memchr2(b'\'', b'\n', rest)
                }
                .unwrap_or(rest.len());
                if j > 0 {
                    self.push_stmt(&rest[..j]);
                    self.col0 = false;
                    return i + j;
                }
            }
            _ => {}
        }
        let b = chunk[i];
        if self.lex == Lex::Meta {
            if b == b'\n' {
                self.end_meta();
            } else if self.meta.len() < META_CAP {
                self.meta.push(b);
            } else {
                self.meta_overflow = true;
            }
        } else {
            while self.step(b, i) {}
        }
        if b == b'\n' {
            self.line += 1;
        }
        self.col0 = b == b'\n';
        i + 1
    }

    /// Handles byte `b` (at `at` in the chunk) in the current state; true when the same
    /// byte must be handled again in the new state.
    fn step(&mut self, b: u8, at: usize) -> bool {
        match self.lex.clone() {
            Lex::Top => self.top(b, at),
            Lex::Dash => {
                if b == b'-' {
                    self.lex = Lex::LineComment;
                    self.comment.clear();
                    self.comment.extend_from_slice(b"--");
                    self.comment_overflow = false;
                    self.comment_col0 = self.dash_col0;
                    self.blank_in_stmt();
                    false
                } else {
                    self.significant(b"-");
                    self.lex = Lex::Top;
                    true
                }
            }
            Lex::Slash => {
                if b == b'*' {
                    self.lex = Lex::Block {
                        depth: 0,
                        star: false,
                        slash: false,
                    };
                    self.open_line = self.line;
                    // A comment after the trailer is content the trailer must come after.
                    self.trailer_seen = false;
                    self.blank_in_stmt();
                    false
                } else {
                    self.significant(b"/");
                    self.lex = Lex::Top;
                    true
                }
            }
            Lex::LineComment => {
                if b == b'\n' || b == b'\r' {
                    self.end_comment();
                    self.lex = Lex::Top;
                    return true;
                }
                if self.comment.len() < COMMENT_CAP {
                    self.comment.push(b);
                } else {
                    self.comment_overflow = true;
                }
                false
            }
            Lex::Block { depth, star, slash } => {
                self.lex = if slash && b == b'*' {
                    Lex::Block {
                        depth: depth + 1,
                        star: false,
                        slash: false,
                    }
                } else if star && b == b'/' {
                    match depth.checked_sub(1) {
                        None => Lex::Top,
                        Some(d) => Lex::Block {
                            depth: d,
                            star: false,
                            slash: false,
                        },
                    }
                } else {
                    Lex::Block {
                        depth,
                        star: b == b'*',
                        slash: b == b'/',
                    }
                };
                false
            }
            Lex::Str {
                extended,
                quote,
                escape,
            } => {
                if quote {
                    if b == b'\'' {
                        self.push_stmt(b"'");
                        self.lex = Lex::Str {
                            extended,
                            quote: false,
                            escape: false,
                        };
                        return false;
                    }
                    self.lex = Lex::Top;
                    return true;
                }
                self.push_stmt(&[b]);
                self.lex = Lex::Str {
                    extended,
                    quote: !escape && b == b'\'',
                    escape: !escape && extended && b == b'\\',
                };
                false
            }
            Lex::Ident { quote } => {
                if quote && b != b'"' {
                    self.lex = Lex::Top;
                    return true;
                }
                self.push_stmt(&[b]);
                self.lex = Lex::Ident {
                    quote: !quote && b == b'"',
                };
                false
            }
            Lex::DollarOpen => {
                if b == b'$' {
                    self.push_stmt(b"$");
                    self.open_line = self.line;
                    self.lex = Lex::Dollar { matched: 0 };
                    false
                } else if self.tag.is_empty() && b.is_ascii_digit() {
                    self.push_stmt(&[b]);
                    self.lex = Lex::Param;
                    false
                } else if (self.tag.is_empty() && is_ident_start(b))
                    || (!self.tag.is_empty() && is_ident_cont(b) && b != b'$')
                {
                    if self.tag.len() >= TAG_CAP {
                        self.refuse(
                            Some(at),
                            format!(
                                "the dump holds a dollar-quote tag longer than {TAG_CAP} bytes on line {}: pg_dump never writes one; the backup is not trustworthy",
                                self.line
                            ),
                        );
                        return false;
                    }
                    self.tag.push(b);
                    self.push_stmt(&[b]);
                    false
                } else {
                    // `$abc` followed by something else: not a quote, just text.
                    self.lex = Lex::Top;
                    true
                }
            }
            Lex::Param => {
                if b.is_ascii_digit() {
                    self.push_stmt(&[b]);
                    false
                } else {
                    self.lex = Lex::Top;
                    true
                }
            }
            Lex::Dollar { matched } => {
                self.push_stmt(&[b]);
                // The delimiter is `$tag$`; `$` occurs in it only first and last.
                let want = if matched == 0 || matched == self.tag.len() + 1 {
                    b'$'
                } else {
                    self.tag[matched - 1]
                };
                self.lex = if b == want {
                    if matched == self.tag.len() + 1 {
                        Lex::Top
                    } else {
                        Lex::Dollar {
                            matched: matched + 1,
                        }
                    }
                } else if b == b'$' {
                    Lex::Dollar { matched: 1 }
                } else {
                    Lex::Dollar { matched: 0 }
                };
                false
            }
            Lex::Meta => unreachable!("meta lines are gathered in advance()"),
            Lex::CopyPending => {
                match b {
                    b'\n' => {
                        self.lex = Lex::CopyData;
                        self.row.clear();
                        self.row_overflow = false;
                    }
                    b' ' | b'\t' | b'\r' => {}
                    _ => self.refuse(
                        Some(at),
                        format!(
                            "the dump holds text after `COPY … FROM stdin;` on line {}: pg_dump never writes that; the backup is not trustworthy",
                            self.line
                        ),
                    ),
                }
                false
            }
            Lex::CopyData => unreachable!("COPY data is handled in advance()"),
        }
    }

    /// A byte at the top level.
    fn top(&mut self, b: u8, at: usize) -> bool {
        let e_prefix =
            self.in_word && self.word_len_total == 1 && matches!(self.word[0], b'e' | b'E');
        if self.in_word && !is_ident_cont(b) {
            if b == b'\'' && e_prefix {
                self.in_word = false; // `E'`: the start of an extended string, not a word
            } else {
                self.end_word();
            }
        }
        if self.in_number {
            if b.is_ascii_digit() || b == b'.' {
                self.significant(&[b]);
                return false;
            }
            if matches!(b, b'e' | b'E') && !self.number_e {
                self.number_e = true;
                self.significant(&[b]);
                return false;
            }
            self.in_number = false;
        }
        match b {
            b'-' => {
                self.dash_col0 = self.col0;
                self.lex = Lex::Dash;
            }
            b'/' => self.lex = Lex::Slash,
            b'\'' => {
                self.significant(b"'");
                self.open_line = self.line;
                self.lex = Lex::Str {
                    extended: e_prefix || !self.std_strings,
                    quote: false,
                    escape: false,
                };
            }
            b'"' => {
                self.significant(b"\"");
                self.open_line = self.line;
                self.lex = Lex::Ident { quote: false };
            }
            b'$' if self.in_word => {
                self.significant(b"$");
                self.word_push(b);
            }
            b'$' => {
                self.significant(b"$");
                self.tag.clear();
                self.lex = Lex::DollarOpen;
            }
            b'\\' => {
                self.meta.clear();
                self.meta_overflow = false;
                self.meta.push(b);
                self.meta_line = self.line;
                self.meta_col0 = self.col0;
                self.meta_in_stmt = self.stmt_started;
                self.lex = Lex::Meta;
            }
            b';' if self.paren_depth == 0 && self.begin_depth == 0 => {
                self.trailer_seen = false;
                self.end_statement(at);
            }
            b'(' => {
                self.paren_depth += 1;
                self.significant(b"(");
            }
            b')' => {
                self.paren_depth = self.paren_depth.saturating_sub(1);
                self.significant(b")");
            }
            _ if is_space(b) => {
                if self.stmt_started {
                    self.push_stmt(&[b]);
                }
            }
            _ if self.in_word => {
                self.significant(&[b]);
                self.word_push(b);
            }
            _ if is_ident_start(b) => {
                self.in_word = true;
                self.word.clear();
                self.word_len_total = 0;
                self.significant(&[b]);
                self.word_push(b);
            }
            _ if b.is_ascii_digit() => {
                self.in_number = true;
                self.number_e = false;
                self.significant(&[b]);
            }
            _ => self.significant(&[b]),
        }
        false
    }

    fn word_push(&mut self, b: u8) {
        if self.word.len() < 16 {
            self.word.push(b);
        }
        self.word_len_total += 1;
    }

    /// An unquoted word ended: psql's `BEGIN … END` tracking in function bodies.
    fn end_word(&mut self) {
        self.in_word = false;
        let word = if self.word_len_total == self.word.len() {
            self.word.to_ascii_lowercase()
        } else {
            Vec::new()
        };
        let slot = self.identifier_count;
        if slot == 0 {
            self.identifiers = [0; 4];
        }
        if matches!(
            word.as_slice(),
            b"create" | b"function" | b"procedure" | b"or" | b"replace"
        ) && slot < self.identifiers.len()
        {
            self.identifiers[slot] = word[0];
        }
        self.identifier_count += 1;
        let ids = self.identifiers;
        let in_function = ids[0] == b'c'
            && (ids[1] == b'f'
                || ids[1] == b'p'
                || (ids[1] == b'o' && ids[2] == b'r' && (ids[3] == b'f' || ids[3] == b'p')));
        if in_function && self.paren_depth == 0 {
            match word.as_slice() {
                b"begin" => self.begin_depth += 1,
                b"case" if self.begin_depth >= 1 => self.begin_depth += 1,
                b"end" => self.begin_depth = self.begin_depth.saturating_sub(1),
                _ => {}
            }
        }
    }

    /// Text that belongs to the statement and is not whitespace or a comment.
    fn significant(&mut self, bytes: &[u8]) {
        self.trailer_seen = false;
        self.push_stmt(bytes);
    }

    /// Stands in for a comment inside a statement.
    fn blank_in_stmt(&mut self) {
        if self.stmt_started {
            self.push_stmt(b" ");
        }
    }

    /// Appends to the current statement: its start is kept up to [`LINE_CAP`], then only
    /// the last [`TAIL_CAP`] bytes.
    fn push_stmt(&mut self, bytes: &[u8]) {
        if !self.stmt_started {
            self.stmt_started = true;
            self.stmt_line = self.line;
            self.trailer_seen = false;
        }
        let room = LINE_CAP.saturating_sub(self.stmt.len());
        if bytes.len() <= room {
            self.stmt.extend_from_slice(bytes);
            return;
        }
        self.stmt.extend_from_slice(&bytes[..room]);
        self.stmt_overflow = true;
        let rest = &bytes[room..];
        if rest.len() >= TAIL_CAP {
            self.stmt_tail.clear();
            self.stmt_tail
                .extend_from_slice(&rest[rest.len() - TAIL_CAP..]);
        } else {
            self.stmt_tail.extend_from_slice(rest);
            let excess = self.stmt_tail.len().saturating_sub(TAIL_CAP);
            self.stmt_tail.drain(..excess);
        }
    }

    /// A `;` at the top level (at `at` in the chunk) ends the statement.
    fn end_statement(&mut self, at: usize) {
        let started = self.stmt_started;
        self.stmt_started = false;
        self.paren_depth = 0;
        self.begin_depth = 0;
        self.identifier_count = 0;
        self.in_word = false;
        self.in_number = false;
        let stmt = std::mem::take(&mut self.stmt);
        let overflow = std::mem::take(&mut self.stmt_overflow);
        if started {
            self.statement(&stmt, overflow, at);
        }
        self.stmt = stmt;
        self.stmt.clear();
        self.stmt_tail.clear();
    }

    fn statement(&mut self, stmt: &[u8], overflow: bool, at: usize) {
        let word = first_word(stmt).to_ascii_lowercase();
        match word.as_slice() {
            b"copy" => {
                let tail = overflow.then_some(self.stmt_tail.as_slice());
                match copy_from_stdin(stmt, tail) {
                    Some(table) => self.open_copy(table),
                    None => self.refuse(
                        Some(at),
                        format!(
                            "the dump holds a COPY statement coffer does not recognise on line {} ({}): only pg_dump's `COPY table (columns) FROM stdin;` is accepted; the backup is not trustworthy",
                            self.stmt_line,
                            statement::shown(stmt)
                        ),
                    ),
                }
            }
            b"alter" if !overflow => {
                if let Some(role) = owner_of(stmt) {
                    self.facts.owners.insert(role);
                }
            }
            _ => {}
        }
        let mentions = !overflow
            && stmt
                .to_ascii_lowercase()
                .windows(27)
                .any(|w| w == b"standard_conforming_strings");
        match std_strings_change(stmt) {
            StdStrings::On => self.std_strings = true,
            StdStrings::Off => self.std_strings = false,
            StdStrings::Untouched
                if mentions && !matches!(word.as_slice(), b"create" | b"comment" | b"copy") =>
            {
                self.refuse(
                    Some(at),
                    format!(
                        "the dump changes standard_conforming_strings on line {} in a way coffer cannot follow: pg_dump only writes `SET standard_conforming_strings = on;`; the backup is not trustworthy",
                        self.stmt_line
                    ),
                );
            }
            StdStrings::Untouched => {}
        }
    }

    fn open_copy(&mut self, table: String) {
        let alembic = super::split_table_name(&table).is_some_and(|(schema, name)| {
            schema == super::ALEMBIC_SCHEMA && name == super::ALEMBIC_TABLE
        });
        if alembic {
            self.alembic.get_or_insert_default();
        }
        self.facts.tables.entry(table.clone()).or_insert(0);
        self.copy = Some(CopySection {
            table,
            alembic,
            rows: 0,
        });
        self.lex = Lex::CopyPending;
    }

    /// Appends part of a COPY data row: two bytes tell `\.` from a row, unless the values
    /// are needed (Alembic's table).
    fn push_row(&mut self, part: &[u8]) {
        let cap = match &self.copy {
            Some(copy) if copy.alembic => LINE_CAP,
            _ => 3,
        };
        let room = cap.saturating_sub(self.row.len());
        if part.len() > room {
            self.row_overflow = true;
        }
        self.row.extend_from_slice(&part[..part.len().min(room)]);
    }

    /// A COPY data line ended.
    pub(super) fn end_row(&mut self) {
        let row = std::mem::take(&mut self.row);
        let end = !self.row_overflow && (row == b"\\." || row == b"\\.\r");
        if end {
            if let Some(copy) = self.copy.take() {
                self.close_copy(copy);
            }
            self.lex = Lex::Top;
        } else if let Some(copy) = self.copy.as_mut() {
            copy.rows += 1;
            if copy.alembic
                && let Some(rev) = statement::first_column(&row)
            {
                self.alembic.get_or_insert_default().insert(rev);
            }
        }
        self.row = row;
        self.row.clear();
        self.row_overflow = false;
    }

    /// A `--` comment ended: the header lines and the trailer count only at the start of a
    /// line between statements.
    pub(super) fn end_comment(&mut self) {
        if self.stmt_started || self.comment_overflow || !self.comment_col0 {
            return;
        }
        let text = self.comment.as_slice();
        if let Some(rest) = text.strip_prefix(DUMPED_FROM) {
            self.facts
                .dumped_from
                .get_or_insert_with(|| super::text(rest));
        } else if let Some(rest) = text.strip_prefix(DUMPED_BY) {
            self.facts
                .dumped_by
                .get_or_insert_with(|| super::text(rest));
        } else if text == TRAILER {
            self.trailer_seen = true;
        }
    }

    /// A meta-command line ended: only pg_dump's own whole-line `\restrict KEY` (first) and
    /// `\unrestrict KEY` (same key) pass, and they are not given to psql.
    pub(super) fn end_meta(&mut self) {
        self.lex = Lex::Top;
        let line = self.meta_line;
        let text = std::mem::take(&mut self.meta);
        let trimmed = {
            let n = text.iter().rev().take_while(|&&b| is_space(b)).count();
            &text[..text.len() - n]
        };
        let whole_line = self.meta_col0 && !self.meta_in_stmt && !self.meta_overflow;
        let key_of = |cmd: &[u8]| -> Option<Vec<u8>> {
            let rest = trimmed.strip_prefix(cmd)?;
            let key = rest.strip_prefix(b" ")?.trim_ascii_start();
            (!key.is_empty() && key.iter().all(u8::is_ascii_alphanumeric)).then(|| key.to_vec())
        };
        if whole_line {
            if let Some(key) = key_of(b"\\restrict")
                && self.restrict_key.is_none()
            {
                self.restrict_key = Some(key);
                self.trailer_seen = false;
                self.meta = text;
                return;
            }
            if let Some(key) = key_of(b"\\unrestrict")
                && !self.unrestricted
                && self.restrict_key.as_ref() == Some(&key)
            {
                self.unrestricted = true;
                self.meta = text;
                return;
            }
        }
        let name_len = text[1..]
            .iter()
            .take_while(|&&b| !is_space(b) && b != b'\\')
            .count();
        let name = statement::shown(&text[..1 + name_len]);
        let why = if !whole_line && (name == "\\restrict" || name == "\\unrestrict") {
            format!("{name} not on a line of its own")
        } else if name == "\\unrestrict" {
            "\\unrestrict with another key than the dump's \\restrict".to_string()
        } else if name == "\\restrict" {
            "a second \\restrict".to_string()
        } else {
            name
        };
        self.meta = text;
        self.refuse(
            None,
            format!(
                "the dump holds a psql meta-command ({why}) at line {line} outside COPY data: coffer never runs commands from a backup; the backup is not trustworthy"
            ),
        );
    }

    /// Records the first reason not to trust the dump; scanning stops there.
    pub(super) fn refuse(&mut self, at: Option<usize>, message: String) {
        if self.problem.is_none() {
            self.problem = Some(message);
            self.problem_at = at;
        }
    }
}
