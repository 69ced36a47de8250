//! The gate between a dump and psql: which bytes psql may be given. Everything passes
//! except the dump's own whole-line `\restrict`/`\unrestrict` and large-object
//! `BEGIN;`/`COMMIT;` (dropped), a meta-command
//! line and a statement that may be a COPY (held until judged), and anything from the
//! first refused byte on (never). coffer adds its own `SET client_encoding` statements
//! (see the module docs of `dump_scan`).

use super::lexer::Lex;
use super::{DumpScanner, Resync};

/// Longest statement starting with `COPY` held back from psql until judged (pg_dump's
/// longest, 1600 quoted 63-byte column names, is about 110 KB).
const HOLD_CAP: usize = 1 << 20;

impl DumpScanner {
    /// Scans `chunk`; with `out`, appends the bytes psql may be given (everything but the
    /// dump's own `\restrict`/`\unrestrict` lines, and nothing from the first refused byte on).
    pub(super) fn run(&mut self, chunk: &[u8], mut out: Option<&mut Vec<u8>>) {
        if self.problem.is_some() {
            return;
        }
        self.chunk_base = self.consumed;
        self.consumed += chunk.len() as u64;
        if let Some(out) = out.as_deref_mut()
            && !std::mem::replace(&mut self.pinned, true)
        {
            // psql starts in whatever encoding its environment chose.
            out.extend_from_slice(&self.encoding_statement(Resync::OwnLine));
        }
        if let Some(out) = out.as_deref_mut() {
            // A piece read alone: the session the dump set up before it (see `resume.rs`).
            out.append(&mut self.prefix);
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
            let was_holding = self.holding;
            let next = self.advance(chunk, i);
            if self.holding {
                self.held_len += next - i;
                if self.held_len > HOLD_CAP {
                    self.refuse(
                        Some(i),
                        format!(
                            "the dump holds a COPY statement longer than {} MiB on line {}: pg_dump never writes one; the backup is not trustworthy",
                            HOLD_CAP >> 20,
                            self.stmt_line
                        ),
                    );
                }
            }
            if self.problem.is_some() {
                // Stop before the offending byte; a held line or statement is never emitted.
                if let Some(out) = out.as_deref_mut()
                    && !was_meta
                    && !was_holding
                    && !self.holding
                {
                    let stop = self.problem_at.unwrap_or(i).max(emit_from).min(chunk.len());
                    out.extend_from_slice(&chunk[emit_from..stop]);
                }
                self.held.clear();
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
            match (was_holding, self.holding) {
                (false, true) => {
                    // A statement that may be a COPY starts at `i`: held until judged.
                    self.hold_start = self.chunk_base + i as u64;
                    if let Some(out) = out.as_deref_mut() {
                        out.extend_from_slice(&chunk[emit_from..i]);
                    }
                    emit_from = i;
                }
                (true, false) if std::mem::take(&mut self.drop_held) => {
                    // pg_dump's large-object `BEGIN;`/`COMMIT;`: judged, and never sent.
                    self.held.clear();
                    emit_from = next;
                }
                (true, false) => {
                    if let Some(out) = out.as_deref_mut() {
                        self.log_copy(&chunk[emit_from..next]);
                        out.append(&mut self.held);
                        out.extend_from_slice(&chunk[emit_from..next]);
                    }
                    self.held.clear();
                    emit_from = next;
                }
                _ => {}
            }
            let resync = std::mem::replace(&mut self.resync, Resync::No);
            if resync != Resync::No {
                if let Some(out) = out.as_deref_mut() {
                    out.extend_from_slice(&chunk[emit_from..next]);
                    out.extend_from_slice(&self.encoding_statement(resync));
                }
                emit_from = next;
            }
            i = next;
        }
        if let Some(out) = out
            && self.lex != Lex::Meta
        {
            let rest = &chunk[emit_from.min(chunk.len())..];
            if self.holding {
                self.held.extend_from_slice(rest);
            } else {
                out.extend_from_slice(rest);
            }
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

    /// coffer's statement that sets the dump's declared client encoding again: inline after
    /// a `;`, or as a line of its own.
    pub(super) fn encoding_statement(&self, at: Resync) -> Vec<u8> {
        let mut sql = Vec::with_capacity(48);
        if at == Resync::Inline {
            sql.push(b' ');
        }
        sql.extend_from_slice(b"SET client_encoding = '");
        // Letters and digits only (normalised when the dump declared it).
        sql.extend_from_slice(&self.client_encoding);
        sql.extend_from_slice(b"';");
        if at == Resync::OwnLine {
            sql.push(b'\n');
        }
        sql
    }
}
