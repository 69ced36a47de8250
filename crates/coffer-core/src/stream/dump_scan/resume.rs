//! The gate for a piece of the dump read alone (a parallel restore runs each piece in its
//! own psql session): the session state the dump set up before the piece, replayed first,
//! then the piece through the same gate as a whole dump.
//!
//! A piece lacks what earlier pieces established: the session settings (pg_dump's header
//! `SET …;` and `SELECT pg_catalog.set_config(…);`, and the later ones such as `SET
//! default_tablespace`, which pg_dump writes only when the value changes, so a post-data
//! `CREATE INDEX` relies on one made in pre-data), the client encoding the gate resyncs to, the
//! `\restrict` key whose `\unrestrict` the trailer carries, and, for a piece that starts
//! inside a COPY block, the `COPY … FROM stdin;` statement that opened it. The first three
//! come from the scanner that ran the pre-data piece ([`DumpScanner::session_state`]); the
//! statement from the piece before ([`DumpScanner::take_copy_statements`]).
//!
//! Nothing here widens the gate: a resumed scanner refuses all a whole-dump scanner
//! refuses, and more: any `\restrict` line (a piece never holds pg_dump's header), and a
//! continued COPY statement that is not exactly pg_dump's `COPY <table> (…) FROM stdin;`
//! of the piece's own table.

use std::collections::BTreeMap;

use super::lexer::Lex;
use super::statement::{copy_from_stdin, is_space};
use super::{DumpFacts, DumpScanner, Resync};

/// Most bytes of session statements kept (pg_dump writes about 500), and most settings.
const SESSION_CAP: usize = 64 * 1024;
const SESSION_SETTINGS: usize = 64;

/// What a top-level statement does to the session settings a later piece must replay.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SessionChange {
    /// `SET [SESSION|LOCAL] name …` or pg_dump's `SELECT pg_catalog.set_config('name', …)`:
    /// the setting's name, lower-cased.
    Set(Vec<u8>),
    /// `RESET name`.
    Reset(Vec<u8>),
    /// `RESET ALL`.
    ResetAll,
}

/// Reads a statement (comments blanked, without its `;`) as a change of a session setting.
pub(super) fn session_change(stmt: &[u8]) -> Option<SessionChange> {
    if let Some(rest) = stmt.strip_prefix(b"SELECT pg_catalog.set_config('") {
        // Session-wide only (`…, false)`), as pg_dump writes it and the post-data planner
        // reads it.
        let end = rest.iter().position(|&b| b == b'\'')?;
        return stmt
            .ends_with(b", false)")
            .then(|| SessionChange::Set(rest[..end].to_ascii_lowercase()));
    }
    let lower = stmt.to_ascii_lowercase();
    let words: Vec<&[u8]> = lower
        .split(|&b| is_space(b) || b == b'=')
        .filter(|w| !w.is_empty())
        .take(3)
        .collect();
    match words.as_slice() {
        [b"reset", b"all"] => Some(SessionChange::ResetAll),
        [b"reset", name] => Some(SessionChange::Reset(name.to_vec())),
        [b"set", b"session" | b"local", name, ..] | [b"set", name, ..] => {
            Some(SessionChange::Set(name.to_vec()))
        }
        _ => None,
    }
}

/// The session state the dump established before a point, taken from the scanner that ran
/// the pre-data piece: the session statements (the top-level `SET …;` and
/// `SELECT pg_catalog.set_config(…);` statements, pg_dump's header ones and any later, the
/// last one per setting, in the order they last came, as they passed the gate, minus what a
/// `RESET` undid), the client encoding, standard_conforming_strings, the
/// dump's `\restrict` key (so the post-data piece's closing `\unrestrict KEY` is accepted and
/// dropped as in a whole dump), and the COPY statements seen so far per table.
#[derive(Clone)]
pub struct SessionState {
    /// Each statement as the gate read it (comments blanked), with its `;` and a newline.
    statements: Vec<u8>,
    /// More settings were made than are kept: a piece cannot be given the session.
    overflow: bool,
    client_encoding: Vec<u8>,
    std_strings: bool,
    restrict_key: Option<Vec<u8>>,
    copies: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The restrict key is the dump's own secret-ish nonce: not printed.
        f.debug_struct("SessionState")
            .field("statements", &String::from_utf8_lossy(&self.statements))
            .field(
                "client_encoding",
                &String::from_utf8_lossy(&self.client_encoding),
            )
            .field("std_strings", &self.std_strings)
            .field("restrict_key", &self.restrict_key.is_some())
            .field("copies", &self.copies.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SessionState {
    /// The last COPY statement seen for `table` (quoted as the dump writes it), if any.
    pub fn copy_statement(&self, table: &str) -> Option<&[u8]> {
        self.copies.get(table).map(Vec::as_slice)
    }
}

impl DumpScanner {
    /// The state after what was fed so far (call on the pre-data scanner after its piece).
    pub fn session_state(&self) -> SessionState {
        let mut settings: Vec<&(u64, Vec<u8>)> = self.session.values().collect();
        settings.sort();
        SessionState {
            statements: settings.into_iter().flat_map(|(_, s)| s.clone()).collect(),
            overflow: self.session_overflow,
            client_encoding: self.client_encoding.clone(),
            std_strings: self.std_strings,
            restrict_key: self.restrict_key.clone(),
            copies: self.last_copies.clone(),
        }
    }

    /// A gate for a later piece: the filtered output starts with the session statements
    /// (and coffer's client_encoding pin, as the whole-dump gate emits it), then, when
    /// `continued_copy` is given (a piece with starts_in_copy), that COPY statement, so the
    /// piece's first bytes are read as that block's rows.
    ///
    /// `continued_copy` is `(table, statement)`: the piece's table (as the index names it)
    /// and the statement the piece before published for it
    /// ([`DumpScanner::take_copy_statements`]). Unless the statement is exactly pg_dump's
    /// `COPY <table> (…) FROM stdin;` and a newline, of that table, and passes the gate, the
    /// scanner starts refused ([`DumpScanner::problem`]) and lets nothing through.
    pub fn resume(state: &SessionState, continued_copy: Option<(&str, &[u8])>) -> DumpScanner {
        let mut s = DumpScanner::new();
        s.restrict_allowed = false;
        s.restrict_key = state.restrict_key.clone();
        s.copy_log = Some(Vec::new());
        let mut prefix = Vec::new();
        // Through the gate again: the same output (inline resyncs included) and state.
        s.feed_filtered(&state.statements, &mut prefix);
        if state.overflow {
            s.refuse(
                None,
                format!(
                    "the dump makes more session settings (SET …) before this piece than coffer carries over to a piece read alone (at most {SESSION_SETTINGS}, {} KiB): it must be restored in one session",
                    SESSION_CAP >> 10
                ),
            );
        }
        if s.problem.is_none() && (s.lex != Lex::Top || s.stmt_started) {
            s.refuse(
                None,
                "the session statements handed to a piece do not end at the top level".into(),
            );
        }
        // The encoding the dump declared last (possibly after its header).
        s.client_encoding = state.client_encoding.clone();
        s.std_strings = state.std_strings;
        prefix.extend_from_slice(&s.encoding_statement(Resync::OwnLine));
        if let Some((table, statement)) = continued_copy
            && s.problem.is_none()
        {
            s.continue_copy(table, statement, &mut prefix);
        }
        // Line numbers in messages count the piece's own lines.
        s.line = 1;
        s.col0 = true;
        s.consumed = 0;
        s.prefix = prefix;
        s
    }

    /// Opens the COPY block a piece continues, refusing any other statement.
    fn continue_copy(&mut self, table: &str, statement: &[u8], out: &mut Vec<u8>) {
        let shaped = statement
            .strip_suffix(b";\n")
            .and_then(|head| copy_from_stdin(head, None));
        if shaped.as_deref() == Some(table) {
            self.feed_filtered(statement, out);
        }
        let opened = self.lex == Lex::CopyData
            && self.copy.as_ref().is_some_and(|c| c.table == table)
            && self.problem.is_none();
        if !opened {
            let shown = super::statement::shown(statement);
            self.refuse(
                None,
                format!(
                    "the COPY statement given for a piece that continues the data of {table} is not pg_dump's `COPY {table} (columns) FROM stdin;` ({shown}): the piece is not trustworthy"
                ),
            );
        }
    }

    /// COPY statements (table as the dump quotes it, the statement's exact bytes through its
    /// `;` and newline) that completed since the last call: a piece that ends_in_copy
    /// publishes its last one for the pieces that continue it. Kept only by a scanner made
    /// by [`DumpScanner::resume`], of what went through [`DumpScanner::feed_filtered`]
    /// (the statement that [`DumpScanner::resume`] continues included, so a chain of
    /// pieces can pass it on).
    pub fn take_copy_statements(&mut self) -> Vec<(String, Vec<u8>)> {
        self.copy_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Ends a piece: with `ends_in_copy`, appends `\.\n` to `out` (the block is closed here;
    /// the rows went through); then Ok(facts) when the stream stands at the top level (not in
    /// a statement, string, comment, COPY block), else Err(how it was cut). The facts hold
    /// this piece's rows per table, heads, owners, drops; `complete` only for the post-data
    /// piece that ends with the trailer.
    ///
    /// A refused piece gives Err(the reason). Without `ends_in_copy`, a piece that ends
    /// inside COPY data is cut; with it, one that does not end at a row's end is.
    pub fn finish_piece(
        mut self,
        ends_in_copy: bool,
        out: &mut Vec<u8>,
    ) -> Result<DumpFacts, String> {
        if ends_in_copy && self.problem.is_none() {
            let at_row_end =
                self.lex == Lex::CopyData && self.col0 && self.row.is_empty() && !self.row_overflow;
            if !at_row_end {
                return Err(format!(
                    "the piece should end inside COPY data at the end of a row, but ends {}",
                    match self.lex.describe() {
                        Some("COPY data") => "inside a row".to_string(),
                        Some(what) => format!("inside {what}"),
                        None => "outside COPY data".to_string(),
                    }
                ));
            }
            self.feed_filtered(b"\\.\n", out);
        }
        // A piece with no bytes still starts its session as any other (a refused one
        // lets nothing through).
        if self.problem.is_none() {
            out.append(&mut self.prefix);
        }
        let (facts, cut) = self.finish_at_end();
        if let Some(problem) = facts.problem {
            return Err(problem);
        }
        if let Some(cut) = cut {
            return Err(cut.replacen("the dump ends", "the piece ends", 1));
        }
        Ok(facts)
    }

    /// A top-level statement ended: a session setting is kept (the last per setting), a
    /// `RESET` forgets it.
    pub(super) fn session_statement(&mut self, stmt: &[u8], overflow: bool) {
        if self.problem.is_some() {
            return;
        }
        let Some(change) = session_change(stmt) else {
            return;
        };
        match change {
            SessionChange::Set(name) => {
                let mut statement = Vec::with_capacity(stmt.len() + 2);
                statement.extend_from_slice(stmt);
                statement.extend_from_slice(b";\n");
                self.session_seq += 1;
                self.session.insert(name, (self.session_seq, statement));
            }
            SessionChange::Reset(name) => {
                self.session.remove(&name);
            }
            SessionChange::ResetAll => self.session.clear(),
        }
        let kept: usize = self.session.values().map(|(_, s)| s.len()).sum();
        if overflow || kept > SESSION_CAP || self.session.len() > SESSION_SETTINGS {
            self.session_overflow = true;
        }
    }

    /// A held statement was judged and passes (`rest`: its bytes in the current chunk after
    /// the held ones): a COPY that opened a block is logged for the pieces that continue it.
    pub(super) fn log_copy(&mut self, rest: &[u8]) {
        let Some(log) = self.copy_log.as_mut() else {
            return;
        };
        let Some(copy) = self.copy.as_ref().filter(|_| self.lex == Lex::CopyPending) else {
            return;
        };
        let mut statement = Vec::with_capacity(self.held.len() + rest.len() + 1);
        statement.extend_from_slice(&self.held);
        statement.extend_from_slice(rest);
        statement.push(b'\n');
        self.last_copies
            .insert(copy.table.clone(), statement.clone());
        log.push((copy.table.clone(), statement));
    }
}

/// Test support: gates `pieces` (each piece's plain bytes, `starts_in_copy`,
/// `ends_in_copy`), each alone, in dump order, as a parallel restore does (the first with a
/// new scanner, the others resumed from its state and given the COPY statement the piece
/// before published), fed in `chunk`-byte chunks: what each lets through and its facts, or
/// the first piece's error.
#[cfg(test)]
pub(crate) fn gate_pieces(
    pieces: &[(&[u8], bool, bool)],
    chunk: usize,
) -> Result<Vec<(Vec<u8>, DumpFacts)>, String> {
    let mut state: Option<SessionState> = None;
    let mut continued: Option<(String, Vec<u8>)> = None;
    let mut gated = Vec::new();
    for &(bytes, starts_in_copy, ends_in_copy) in pieces {
        let mut s = match &state {
            None => DumpScanner::new(),
            Some(st) => DumpScanner::resume(
                st,
                continued
                    .as_ref()
                    .filter(|_| starts_in_copy)
                    .map(|(t, c)| (t.as_str(), c.as_slice())),
            ),
        };
        let mut out = Vec::new();
        for part in bytes.chunks(chunk.max(1)) {
            s.feed_filtered(part, &mut out);
        }
        if state.is_none() {
            state = Some(s.session_state());
        }
        if let Some(last) = s.take_copy_statements().pop() {
            continued = Some(last);
        }
        let facts = s.finish_piece(ends_in_copy, &mut out)?;
        gated.push((out, facts));
    }
    Ok(gated)
}

impl DumpFacts {
    /// Merges the facts of the pieces, in dump order, into the facts of the whole dump
    /// (rows per table added, heads/owners united, header from the first, `complete` from
    /// the last), so `check_against(manifest)` and the report work as for one stream.
    /// The first piece's problem, if any, is the merged one.
    pub fn merge(pieces: Vec<DumpFacts>) -> DumpFacts {
        let mut merged = DumpFacts::default();
        let last = pieces.len().saturating_sub(1);
        for (i, piece) in pieces.into_iter().enumerate() {
            for (table, rows) in piece.tables {
                *merged.tables.entry(table).or_insert(0) += rows;
            }
            merged.alembic_heads = union(merged.alembic_heads.take(), piece.alembic_heads);
            merged.alembic_heads_any_schema = union(
                merged.alembic_heads_any_schema.take(),
                piece.alembic_heads_any_schema,
            );
            merged.owners.extend(piece.owners);
            merged.drops |= piece.drops;
            if i == 0 {
                merged.dumped_by = piece.dumped_by;
                merged.dumped_from = piece.dumped_from;
            }
            if merged.problem.is_none() {
                merged.problem = piece.problem;
            }
            if i == last {
                merged.complete = piece.complete;
                merged.cut = piece.cut;
            }
        }
        if merged.problem.is_some() {
            merged.complete = false;
        }
        merged
    }
}

/// The sorted union of two lists of revisions; `None` only when both are.
fn union(a: Option<Vec<String>>, b: Option<Vec<String>>) -> Option<Vec<String>> {
    match (a, b) {
        (None, None) => None,
        (a, b) => {
            let mut all: Vec<String> = a.into_iter().chain(b).flatten().collect();
            all.sort();
            all.dedup();
            Some(all)
        }
    }
}
