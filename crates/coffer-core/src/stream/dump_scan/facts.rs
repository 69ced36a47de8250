//! What the lexer's units mean: a finished top-level statement (a COPY that opens data,
//! an `ALTER … OWNER TO`, a `standard_conforming_strings` change), a COPY data row, a `--`
//! comment at the start of a line (header, trailer), a meta-command line (pg_dump's own
//! `\restrict` pair, or a refusal).

use super::lexer::Lex;
use super::statement::{
    self, StdStrings, Transaction, copy_from_stdin, first_word, is_space, owner_of,
    std_strings_change,
};
use super::{CopySection, DumpScanner, LINE_CAP};

const DUMPED_FROM: &[u8] = b"-- Dumped from database version ";
const DUMPED_BY: &[u8] = b"-- Dumped by pg_dump version ";
const TRAILER: &[u8] = b"-- PostgreSQL database dump complete";

/// Longest Alembic revision id accepted, and most heads.
const MAX_REVISION_LEN: usize = 255;
const MAX_HEADS: usize = 64;

impl DumpScanner {
    /// A `;` at the top level (at `at` in the chunk) ends the statement.
    pub(super) fn end_statement(&mut self, at: usize) {
        let started = self.stmt_started;
        self.stmt_started = false;
        self.paren_depth = 0;
        self.begin_depth = 0;
        self.after_begin = false;
        self.atomic_body = false;
        self.identifier_count = 0;
        self.in_word = false;
        self.in_number = false;
        let stmt = std::mem::take(&mut self.stmt);
        let overflow = std::mem::take(&mut self.stmt_overflow);
        if started {
            self.statement(&stmt, overflow, at);
            self.session_statement(&stmt, overflow);
            self.statement_ended(at, self.lex == Lex::CopyPending);
            // Whatever psql just ran may have switched the client encoding (a function can,
            // unseen): it is set back before psql lexes another byte of the dump.
            if self.problem.is_none() && !self.drop_held && self.lex == Lex::Top {
                self.resync = super::Resync::Inline;
            }
        }
        // Judged: a COPY that passed is released with its `;` (a refused one never is).
        self.holding = false;
        self.stmt = stmt;
        self.stmt.clear();
        self.stmt_tail.clear();
    }

    fn statement(&mut self, stmt: &[u8], overflow: bool, at: usize) {
        let mut lower = [0u8; 8];
        let first = first_word(stmt);
        let n = if first.len() <= lower.len() {
            first.len()
        } else {
            0
        };
        lower[..n].copy_from_slice(&first[..n]);
        lower[..n].make_ascii_lowercase();
        let word = &lower[..n];
        match statement::transaction_control(stmt, overflow) {
            Transaction::Untouched => {}
            Transaction::LoBegin if !self.in_lo_section => {
                self.in_lo_section = true;
                self.drop_held = true;
                return;
            }
            Transaction::LoCommit if self.in_lo_section => {
                self.in_lo_section = false;
                self.drop_held = true;
                return;
            }
            _ => {
                self.refuse(
                    Some(at),
                    format!(
                        "the dump holds a transaction-control statement on line {} ({}): it could end coffer's single transaction and commit part of the restore; pg_dump only writes a `BEGIN;` … `COMMIT;` pair around large objects; the backup is not trustworthy",
                        self.stmt_line,
                        statement::shown(stmt)
                    ),
                );
                return;
            }
        }
        match word {
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
            b"drop" => self.facts.drops = true,
            b"alter" if !overflow => {
                if let Some(role) = owner_of(stmt) {
                    self.facts.owners.insert(role);
                }
            }
            _ => {}
        }
        let mentions = !overflow
            && stmt
                .windows(27)
                .any(|w| w.eq_ignore_ascii_case(b"standard_conforming_strings"));
        let change = if matches!(word, b"set" | b"reset") {
            std_strings_change(stmt)
        } else {
            StdStrings::Untouched
        };
        self.check_client_encoding(word, stmt, at);
        match change {
            StdStrings::On => self.std_strings = true,
            // Followed by coffer but not by a psql whose server flips it back (or forth) in
            // a way the text does not show: pg_dump only ever writes `on`.
            StdStrings::Off => self.refuse(
                Some(at),
                format!(
                    "the dump turns standard_conforming_strings off on line {}: pg_dump only writes `SET standard_conforming_strings = on;`, and with it off psql and coffer could read its strings differently; the backup is not trustworthy",
                    self.stmt_line
                ),
            ),
            StdStrings::Untouched
                if mentions && !matches!(word, b"create" | b"comment" | b"copy") =>
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

    /// psql reads strings byte by byte in the client encoding, and in SJIS, BIG5, GBK,
    /// GB18030, UHC and JOHAB a character's second byte may be a backslash or a quote: a
    /// dump that switches to one of them (or mentions the setting anywhere else) could hide
    /// a meta-command from coffer. pg_dump writes the database's own (server) encoding.
    fn check_client_encoding(&mut self, word: &[u8], stmt: &[u8], at: usize) {
        let Some(value) = statement::client_encoding_value(word, stmt) else {
            return;
        };
        let ok = match value {
            statement::EncodingSetting::To(name) => {
                // `DEFAULT` is whatever the session started with: not a declared encoding.
                let ok = !name.is_empty()
                    && name != b"default"
                    && !statement::is_client_only_encoding(&name);
                if ok {
                    self.client_encoding = name;
                }
                ok
            }
            // A function body may run later (`SELECT f()`): only a comment is inert.
            statement::EncodingSetting::Elsewhere => word == b"comment",
        };
        if !ok {
            self.refuse(
                Some(at),
                format!(
                    "the dump changes client_encoding on line {} ({}): pg_dump only sets the database's own encoding, and in a client-only encoding (SJIS, BIG5, GBK, GB18030, UHC, JOHAB) psql and coffer could read its strings differently; the backup is not trustworthy",
                    self.stmt_line,
                    statement::shown(stmt)
                ),
            );
        }
    }

    fn open_copy(&mut self, table: String) {
        let parts = super::split_table_name(&table);
        let any_alembic = parts
            .as_ref()
            .is_some_and(|(_, name)| name == super::ALEMBIC_TABLE);
        let alembic =
            any_alembic && parts.is_some_and(|(schema, _)| schema == super::ALEMBIC_SCHEMA);
        if alembic {
            self.alembic.get_or_insert_default();
        }
        if any_alembic {
            self.alembic_any.get_or_insert_default();
        }
        self.facts.tables.entry(table.clone()).or_insert(0);
        self.copy_started(&table);
        self.copy = Some(CopySection {
            table,
            alembic,
            any_alembic,
            rows: 0,
        });
        self.lex = Lex::CopyPending;
    }

    /// Appends part of a COPY data row: two bytes tell `\.` from a row, unless the values
    /// are needed (Alembic's table).
    pub(super) fn push_row(&mut self, part: &[u8]) {
        let cap = match &self.copy {
            Some(copy) if copy.any_alembic => LINE_CAP,
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
            // A trigger or CHECK run by the COPY may have switched the client encoding.
            self.resync = super::Resync::OwnLine;
        } else if let Some(copy) = self.copy.as_mut() {
            copy.rows += 1;
            self.rows_total += 1;
            if copy.any_alembic
                && let Some(rev) = statement::first_column(&row)
            {
                // Revision ids are short (Alembic's column is varchar(32)) and few: a dump
                // with thousands of 64 KiB "heads" is not one to keep in memory or print.
                let known = self.alembic_any.as_ref().map_or(0, |s| s.len());
                if rev.len() > MAX_REVISION_LEN || known >= MAX_HEADS {
                    let line = self.line;
                    self.refuse(
                        None,
                        format!(
                            "the dump's alembic_version data on line {line} is not a list of revision ids (at most {MAX_HEADS} of at most {MAX_REVISION_LEN} bytes); the backup is not trustworthy"
                        ),
                    );
                    self.row = row;
                    self.row.clear();
                    self.row_overflow = false;
                    return;
                }
                if copy.alembic {
                    self.alembic.get_or_insert_default().insert(rev.clone());
                }
                self.alembic_any.get_or_insert_default().insert(rev);
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
                && self.restrict_allowed
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
