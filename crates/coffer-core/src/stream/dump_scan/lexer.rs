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

use super::statement::{is_ident_cont, is_ident_start, is_space};
use super::{DumpScanner, LINE_CAP, TAIL_CAP};

/// Longest dollar-quote tag accepted (pg_dump writes `$$`, `$_$`, `$__$`…).
const TAG_CAP: usize = 256;
/// Longest meta-command line kept (pg_dump's `\restrict` line is 75 bytes).
const META_CAP: usize = 1024;
/// Longest part of a `--` comment kept (enough for the header and trailer lines).
const COMMENT_CAP: usize = 256;

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
    /// Handles the bytes from `i` on (one, or a run the state can skip quickly) and returns
    /// the index of the next unhandled byte.
    pub(super) fn advance(&mut self, chunk: &[u8], i: usize) -> usize {
        let rest = &chunk[i..];
        // Only the byte right after a `:` can start psql's `:variable`.
        self.prev_colon = std::mem::take(&mut self.after_colon);
        // Fast paths over the bulk of a dump: data rows and bodies.
        match self.lex {
            Lex::CopyData => {
                let end = memchr::memchr(b'\n', rest);
                let part = &rest[..end.unwrap_or(rest.len())];
                self.push_row(part);
                return match end {
                    Some(j) => {
                        self.end_row();
                        self.row_line_ended(self.chunk_base + (i + j + 1) as u64);
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
            Lex::Top if self.in_word => {
                // The rest of an unquoted word.
                let j = rest
                    .iter()
                    .position(|&b| !is_ident_cont(b))
                    .unwrap_or(rest.len());
                if j > 0 {
                    self.significant(&rest[..j]);
                    let room = 16usize.saturating_sub(self.word.len()).min(j);
                    self.word.extend_from_slice(&rest[..room]);
                    self.word_len_total += j;
                    self.col0 = false;
                    return i + j;
                }
            }
            Lex::Top if !self.in_number => {
                // Blanks between tokens (newlines go the slow way: they are counted).
                let j = rest
                    .iter()
                    .position(|&b| b != b' ' && b != b'\t')
                    .unwrap_or(rest.len());
                if j > 0 {
                    if self.stmt_started {
                        self.push_stmt(&rest[..j]);
                    }
                    self.col0 = false;
                    return i + j;
                }
            }
            Lex::LineComment => {
                let j = memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
                if j > 0 {
                    let room = COMMENT_CAP.saturating_sub(self.comment.len()).min(j);
                    self.comment.extend_from_slice(&rest[..room]);
                    self.comment_overflow |= room < j;
                    self.col0 = false;
                    return i + j;
                }
            }
            Lex::Block {
                star: false,
                slash: false,
                ..
            } => {
                let j = memchr::memchr3(b'*', b'/', b'\n', rest).unwrap_or(rest.len());
                if j > 0 {
                    self.col0 = false;
                    return i + j;
                }
            }
            Lex::Ident { quote: false } => {
                let j = memchr::memchr2(b'"', b'\n', rest).unwrap_or(rest.len());
                if j > 0 {
                    self.push_stmt(&rest[..j]);
                    self.col0 = false;
                    return i + j;
                }
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
                    self.str_backslash = !extended && rest[j - 1] == b'\\';
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
                if b == b'\'' && extended && escape {
                    // psql may not read this string as E'…' (its tokens before the quote can
                    // differ: `$1e'`, `:e'`, `1e5e'`): there the quote would end it.
                    self.refuse(
                        Some(at),
                        format!(
                            "the dump has a string literal with a backslash right before a quote on line {}: psql could read where it ends differently from coffer; the backup is not trustworthy",
                            self.line
                        ),
                    );
                }
                if b == b'\'' && !extended && self.str_backslash {
                    // With standard_conforming_strings off (which the server can switch
                    // without the dump's text showing it) this quote would be escaped.
                    self.refuse(
                        Some(at),
                        format!(
                            "the dump has a string literal with a backslash right before a quote on line {}: psql could read where it ends differently from coffer; the backup is not trustworthy",
                            self.line
                        ),
                    );
                }
                self.str_backslash = !extended && b == b'\\';
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
                } else if is_ident_start(b) {
                    self.refuse_junk(at, "a parameter ($1)");
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
        let one_letter = (self.in_word && self.word_len_total == 1).then(|| self.word[0]);
        let e_prefix = !self.var_word && matches!(one_letter, Some(b'e' | b'E'));
        // psql reads `E'`, `N'`, `B'` and `X'` as one string token: no word.
        let string_prefix = !self.var_word
            && matches!(
                one_letter,
                Some(b'e' | b'E' | b'n' | b'N' | b'b' | b'B' | b'x' | b'X')
            );
        if self.in_word && !is_ident_cont(b) {
            if b == b'\'' && string_prefix {
                self.in_word = false;
                self.var_word = false;
                if self.identifier_count == 0 {
                    self.holding = false;
                }
            } else if b == b'&' && matches!(one_letter, Some(b'u' | b'U')) {
                // `U&'…'` / `U&"…"`: psql's own token kinds; pg_dump never writes them.
                self.refuse_junk(at, "U&");
                return false;
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
            if is_ident_start(b) {
                // psql takes `123abc` or `1e5e` as one junk token, coffer as a number and a
                // word: they would count the words of a statement differently.
                self.refuse_junk(at, "a number");
                return false;
            }
        }
        // `::` is a cast; a lone `:` before a name is psql's `:variable`.
        self.after_colon = b == b':' && !self.prev_colon;
        if b == b'.' {
            self.label_next = true;
        } else if !is_space(b) && !is_ident_start(b) && !matches!(b, b'-' | b'/') {
            self.label_next = false;
        }
        if !is_space(b) && !is_ident_start(b) && !matches!(b, b'-' | b'/') && self.after_begin {
            // A function's `begin` followed by anything but ATOMIC (`begin(`, `begin;`).
            self.after_begin = false;
            self.refuse_block_word(b"begin");
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
                self.str_backslash = false;
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
            b';' if self.paren_depth == 0 && !self.atomic_body => {
                // psql swallows this `;` (its BEGIN … END heuristic) and sends what follows
                // in the same query, which the server may split into statements coffer
                // never judged (a COPY FROM stdin among them). pg_dump writes that only in
                // SQL-standard `BEGIN ATOMIC` bodies.
                self.refuse(
                    Some(at),
                    format!(
                        "the dump has a `;` after a BEGIN that does not start a SQL-standard function body (BEGIN ATOMIC) on line {}: psql would send several statements as one; the backup is not trustworthy",
                        self.line
                    ),
                );
                self.significant(b";");
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
                // psql runs a statement at `;` or at end-of-input: one that may be a COPY
                // or transaction control (the kinds coffer must judge whole) is held back
                // until judged.
                if !self.stmt_started {
                    self.holding = true;
                    self.held_len = 0;
                }
                self.var_word = self.prev_colon;
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

    /// Text that belongs to the statement and is not whitespace or a comment.
    #[inline]
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
    #[inline]
    fn push_stmt(&mut self, bytes: &[u8]) {
        // One byte at a time is the common case at the top level.
        if let [b] = bytes
            && self.stmt_started
            && self.stmt.len() < LINE_CAP
        {
            self.stmt.push(*b);
            return;
        }
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
}
