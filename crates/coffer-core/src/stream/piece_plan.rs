//! Where the dump is cut into pieces: a pure decision over the scanner's [`Mark`]s.
//!
//! - The pre-data piece ends where the first `COPY` statement starts.
//! - Data pieces follow. A piece ends after a `COPY` block's `\.` line once it holds at
//!   least [`PieceLimits::min`] bytes (so runs of small tables share a piece), and inside a
//!   block at the first row end past [`PieceLimits::max`] bytes (so a large table is cut
//!   into several pieces at row boundaries). A piece that starts inside a block ends with
//!   it, whatever its size.
//! - The post-data piece starts after the last block of the data section: the end of the
//!   block followed by a statement that is not a `COPY` (sequence values, indexes,
//!   constraints…). Nothing after that is cut, so every statement of the post-data section
//!   stays in that one piece, in order.
//!
//! A restore can therefore run the pre-data piece first, the data pieces in any order, and
//! the post-data piece last. A dump whose shape does not fit (a `COPY` at its very start)
//! gets no index ([`PiecePlanner::abandoned`]).

use crate::format::pieces::PieceKind;
use crate::stream::dump_scan::Mark;

/// Piece sizes, in bytes of SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceLimits {
    /// A data piece ends after a COPY block only once it holds this much.
    pub min: u64,
    /// A data piece ends at the first row end past this much.
    pub max: u64,
    /// Most pieces (at least 3): once only room for the last data piece and the post-data
    /// piece is left, data pieces are no longer cut, so the rest of the data section shares
    /// the last one and the manifest stays far below its size cap.
    pub pieces: usize,
}

impl Default for PieceLimits {
    /// 4 MiB and 64 MiB: a few gzip members per GiB of dump (about 20 bytes and a cold
    /// start of the compressor each), pieces large enough that a session's `COPY` start-up
    /// vanishes, and small enough that several sessions share a large table. At most 1000
    /// pieces (64 GiB of 64 MiB pieces; about 350 KB of manifest).
    fn default() -> Self {
        PieceLimits {
            min: 4 << 20,
            max: 64 << 20,
            pieces: 1000,
        }
    }
}

/// A piece whose end is decided: it spans from the previous piece's end to `end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPiece {
    /// Pre-data, data or post-data.
    pub kind: PieceKind,
    /// See [`crate::format::pieces::Piece::table`].
    pub table: Option<String>,
    /// Starts inside a COPY block (after a row end).
    pub starts_in_copy: bool,
    /// Ends inside a COPY block (after a row end).
    pub ends_in_copy: bool,
    /// Offset in the SQL where it starts.
    pub start: u64,
    /// Offset in the SQL where it ends.
    pub end: u64,
    /// COPY data rows in it.
    pub rows: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Pre,
    Data,
    Post,
}

/// Decides cuts one [`Mark`] at a time (see the module docs).
#[derive(Debug)]
pub struct PiecePlanner {
    limits: PieceLimits,
    section: Section,
    /// The piece being filled, with the rows before it.
    open: PlannedPiece,
    rows_before: u64,
    /// The table whose COPY block is open.
    copy: Option<String>,
    /// A COPY block ended here (with these rows before it): the next mark says whether the
    /// piece ends here.
    block_end: Option<(u64, u64)>,
    /// Pieces ended so far.
    done: usize,
    abandoned: bool,
}

impl PiecePlanner {
    /// A planner at the start of the dump.
    pub fn new(limits: PieceLimits) -> Self {
        PiecePlanner {
            limits,
            section: Section::Pre,
            open: PlannedPiece {
                kind: PieceKind::PreData,
                table: None,
                starts_in_copy: false,
                ends_in_copy: false,
                start: 0,
                end: 0,
                rows: 0,
            },
            rows_before: 0,
            copy: None,
            block_end: None,
            done: 0,
            abandoned: false,
        }
    }

    /// Gives up the index: the caller met something it cannot cut around.
    pub fn abandon(&mut self) {
        self.abandoned = true;
    }

    /// The next mark; returns the piece that ends with it, if one does.
    pub fn mark(&mut self, mark: Mark) -> Option<PlannedPiece> {
        if self.abandoned {
            return None;
        }
        match (self.section, mark) {
            (Section::Pre, Mark::CopyStart { at, rows, table }) => {
                if at == 0 {
                    self.abandoned = true;
                    return None;
                }
                self.section = Section::Data;
                self.copy = Some(table.clone());
                Some(self.cut(at, rows, PieceKind::Data, Some(table), false))
            }
            (Section::Data, Mark::CopyStart { table, .. }) => {
                self.copy = Some(table.clone());
                let (end, rows) = self.block_end.take()?;
                // A piece that starts inside a block names that block's table, so it ends
                // with that block: were it cut inside the next one, the piece continuing
                // there would follow a piece naming another table (an invalid index).
                if (end - self.open.start >= self.limits.min || self.open.starts_in_copy)
                    && self.may_cut_data()
                {
                    Some(self.cut(end, rows, PieceKind::Data, Some(table), false))
                } else {
                    // A small piece so far: this table joins it (a piece that starts inside a
                    // block keeps naming that block's table; past the piece limit it is not
                    // cut again).
                    if !self.open.starts_in_copy {
                        self.open.table = Some(table);
                    }
                    None
                }
            }
            (Section::Data, Mark::RowEnd { at, rows }) => {
                let table = self.copy.clone()?;
                (at - self.open.start >= self.limits.max && self.may_cut_data()).then(|| {
                    self.open.ends_in_copy = true;
                    self.cut(at, rows, PieceKind::Data, Some(table), true)
                })
            }
            (Section::Data, Mark::CopyEnd { at, rows }) => {
                self.copy = None;
                self.block_end = Some((at, rows));
                None
            }
            (Section::Data, Mark::Statement { .. }) => {
                let (end, rows) = self.block_end.take()?;
                self.section = Section::Post;
                Some(self.cut(end, rows, PieceKind::PostData, None, false))
            }
            _ => None,
        }
    }

    /// Where the next [`Mark::RowEnd`] is wanted: inside a COPY block of the data section,
    /// once the piece reaches the maximum.
    pub fn row_end_wanted_after(&self) -> Option<u64> {
        (!self.abandoned
            && self.section == Section::Data
            && self.copy.is_some()
            && self.may_cut_data())
        .then(|| self.open.start.saturating_add(self.limits.max))
    }

    /// Whether one more data piece leaves room for the open one and the post-data piece.
    fn may_cut_data(&self) -> bool {
        self.done + 3 <= self.limits.pieces
    }

    /// The first offset that may still become a cut, given where the scanner's undecided
    /// statement starts: bytes before it can be compressed now.
    pub fn keep_from(&self, undecided: Option<u64>) -> Option<u64> {
        if self.abandoned {
            return None;
        }
        match self.section {
            Section::Pre => undecided,
            Section::Data => self.block_end.map(|(at, _)| at),
            Section::Post => None,
        }
    }

    /// Ends the last piece at `end` (the dump's length), with `rows` in the whole dump.
    pub fn finish(mut self, end: u64, rows: u64) -> Option<PlannedPiece> {
        if self.abandoned || end <= self.open.start {
            return None;
        }
        self.open.end = end;
        self.open.rows = rows - self.rows_before;
        Some(self.open)
    }

    /// Ends the open piece at `at` and opens the next one.
    fn cut(
        &mut self,
        at: u64,
        rows: u64,
        kind: PieceKind,
        table: Option<String>,
        starts_in_copy: bool,
    ) -> PlannedPiece {
        let next = PlannedPiece {
            kind,
            table,
            starts_in_copy,
            ends_in_copy: false,
            start: at,
            end: at,
            rows: 0,
        };
        self.done += 1;
        let mut done = std::mem::replace(&mut self.open, next);
        done.end = at;
        done.rows = rows - self.rows_before;
        self.rows_before = rows;
        done
    }
}

#[cfg(test)]
pub(crate) mod tests;
