//! Places where the dump may be cut into independently decodable pieces, reported as the
//! scanner's lexical state finds them (never from what a line merely looks like): the start
//! of a real `COPY … FROM stdin` statement, the end of its data (after the `\.` line), a
//! data row's end when asked for one, and the end of any other top-level statement.

use super::DumpScanner;
use super::lexer::Lex;

/// A place in the dump, at an absolute byte offset of the plain stream, with the number of
/// COPY data rows before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// A `COPY <table> … FROM stdin;` statement starts at `at` (its first byte).
    CopyStart {
        /// Offset of the statement's first byte.
        at: u64,
        /// Rows before it.
        rows: u64,
        /// The table, quoted as the statement writes it.
        table: String,
    },
    /// The data of the open COPY block continues after the row that ends at `at` (after its
    /// newline); reported once per request ([`DumpScanner::mark_row_end_after`]).
    RowEnd {
        /// Offset right after the row's newline.
        at: u64,
        /// Rows up to and including it.
        rows: u64,
    },
    /// The COPY block's `\.` line ends at `at` (after its newline).
    CopyEnd {
        /// Offset right after the `\.` line.
        at: u64,
        /// Rows up to the end of the block.
        rows: u64,
    },
    /// A top-level statement other than a COPY ended (at its `;`).
    Statement {
        /// Offset right after the statement's `;`.
        end: u64,
    },
}

impl DumpScanner {
    /// A scanner that also reports [`Mark`]s (see [`DumpScanner::take_marks`]).
    pub fn with_marks() -> Self {
        let mut s = DumpScanner::new();
        s.marks = Some(Vec::new());
        s
    }

    /// The marks found since the last call, in stream order.
    pub fn take_marks(&mut self) -> Vec<Mark> {
        self.marks.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Asks for one [`Mark::RowEnd`] at the first data row ending at or after `at` (or
    /// cancels the request with `None`).
    pub fn mark_row_end_after(&mut self, at: Option<u64>) {
        self.row_mark_after = at;
    }

    /// Where the statement being read starts, while it may still turn out to be a COPY
    /// (it is held back from psql until judged, and so may still become a cut).
    pub fn undecided_from(&self) -> Option<u64> {
        self.holding.then_some(self.hold_start)
    }

    /// COPY data rows seen so far.
    pub fn rows_seen(&self) -> u64 {
        self.rows_total
    }

    /// A COPY data line ended at `at` (after its newline): the block's end, or a row end
    /// someone asked for.
    pub(super) fn row_line_ended(&mut self, at: u64) {
        let Some(marks) = self.marks.as_mut() else {
            return;
        };
        if self.lex == Lex::Top {
            marks.push(Mark::CopyEnd {
                at,
                rows: self.rows_total,
            });
        } else if self.row_mark_after.is_some_and(|t| at >= t) {
            self.row_mark_after = None;
            marks.push(Mark::RowEnd {
                at,
                rows: self.rows_total,
            });
        }
    }

    /// A real `COPY … FROM stdin` statement was judged: it started where it was first held.
    pub(super) fn copy_started(&mut self, table: &str) {
        if let Some(marks) = self.marks.as_mut() {
            marks.push(Mark::CopyStart {
                at: self.hold_start,
                rows: self.rows_total,
                table: table.to_string(),
            });
        }
    }

    /// A top-level statement ended with the `;` at `at` in the current chunk; `copy`: it
    /// opened a COPY block.
    pub(super) fn statement_ended(&mut self, at: usize, copy: bool) {
        let end = self.chunk_base + at as u64 + 1;
        if let Some(marks) = self.marks.as_mut()
            && !copy
        {
            marks.push(Mark::Statement { end });
        }
    }
}
