//! Words at the top level: psql's `BEGIN … END` counting in function statements, and the
//! tokens psql reads as one piece that would make its word count differ from coffer's.

use super::DumpScanner;
use super::statement::is_transaction_word;

impl DumpScanner {
    pub(super) fn word_push(&mut self, b: u8) {
        if self.word.len() < 16 {
            self.word.push(b);
        }
        self.word_len_total += 1;
    }

    /// An unquoted word ended: psql's `BEGIN … END` tracking in function bodies.
    pub(super) fn end_word(&mut self) {
        self.in_word = false;
        // Lower-cased on the stack: this runs for every word of the dump.
        let mut lower = [0u8; 16];
        let n = if self.word_len_total == self.word.len() {
            self.word.len()
        } else {
            0
        };
        lower[..n].copy_from_slice(&self.word[..n]);
        lower[..n].make_ascii_lowercase();
        let word = &lower[..n];
        let slot = self.identifier_count;
        // Held until judged at its `;`: a COPY, and a transaction-control statement (which
        // must never reach psql unless it is pg_dump's own large-object `BEGIN;`/`COMMIT;`,
        // which is dropped).
        if slot == 0 && word != b"copy" && !is_transaction_word(word) {
            self.holding = false;
        }
        if std::mem::take(&mut self.var_word) {
            // psql's `:name` (left as it is when no such variable exists): not a word to it.
            self.label_next = false;
            return;
        }
        if slot == 0 {
            self.identifiers = [0; 4];
        }
        if matches!(
            word,
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
        let after_begin = std::mem::take(&mut self.after_begin);
        let label = std::mem::replace(&mut self.label_next, word == b"as");
        if in_function && self.paren_depth == 0 {
            // psql counts these words to find where a function's body ends, the server
            // parses it: they agree only when every `begin` opens a BEGIN ATOMIC body and no
            // `begin`, `case` or `end` is a name (`AS end`, `t.begin`). Otherwise psql could
            // send text after the body (a COPY, a COMMIT) in the same query.
            if after_begin && word != b"atomic" {
                self.refuse_block_word(b"begin");
            }
            if label && matches!(word, b"begin" | b"case" | b"end") {
                self.refuse_block_word(word);
            }
            match word {
                b"begin" => {
                    self.begin_depth += 1;
                    self.after_begin = true;
                }
                b"atomic" if after_begin => self.atomic_body = true,
                b"case" if self.begin_depth >= 1 => self.begin_depth += 1,
                b"end" => self.begin_depth = self.begin_depth.saturating_sub(1),
                _ => {}
            }
        }
    }

    /// Refuses a token psql reads as one piece and coffer as two (or not at all).
    pub(super) fn refuse_junk(&mut self, at: usize, what: &str) {
        self.refuse(
            Some(at),
            format!(
                "the dump has {what} followed directly by a letter on line {}: psql reads such text as one token and could count the statement's words differently from coffer; pg_dump never writes that; the backup is not trustworthy",
                self.line
            ),
        );
    }

    /// Refuses a `begin`, `case` or `end` psql would count differently from the server.
    pub(super) fn refuse_block_word(&mut self, word: &[u8]) {
        let line = self.line;
        self.refuse(
            None,
            format!(
                "the dump has `{}` on line {line} of a function statement where it does not open or close a BEGIN ATOMIC body or CASE: psql and the server would see the body end in different places; the backup is not trustworthy",
                String::from_utf8_lossy(word)
            ),
        );
    }
}
