//! In which order the data pieces are handed to the sessions: a pure decision over the
//! piece index.

use std::collections::{HashMap, VecDeque};

use crate::format::pieces::{Piece, PieceKind};

/// The indexes (into the artifact's pieces) of the data pieces, largest first, so the long
/// ones start early and the small ones fill the end; except that a piece continuing a
/// `COPY` block never comes before the piece that starts that block (it needs that piece's
/// `COPY` statement, which a session publishes as soon as it has read it).
pub(crate) fn data_order(pieces: &[Piece]) -> Vec<usize> {
    let mut by_size: Vec<usize> = (0..pieces.len())
        .filter(|&i| pieces[i].kind == PieceKind::Data)
        .collect();
    // Stable: equal sizes keep the dump's order, so a block's head wins ties.
    by_size.sort_by(|&a, &b| {
        pieces[b]
            .uncompressed_size
            .cmp(&pieces[a].uncompressed_size)
    });
    let mut placed = vec![false; pieces.len()];
    let mut order = Vec::with_capacity(by_size.len());
    for i in by_size {
        if placed[i] {
            continue;
        }
        // The block's head and every piece between it and this one that is not placed yet,
        // in the dump's order (each of them is needed before the next).
        let head = block_head(pieces, i);
        for (j, done) in placed.iter_mut().enumerate().take(i + 1).skip(head) {
            if !*done {
                *done = true;
                order.push(j);
            }
        }
    }
    order
}

/// The piece whose `COPY` statement piece `i` continues (`i` itself when it starts none).
pub(crate) fn block_head(pieces: &[Piece], i: usize) -> usize {
    let mut head = i;
    while head > 0 && pieces[head].starts_in_copy {
        head -= 1;
    }
    head
}

/// What a session of the load phase does next ([`LoadQueue::next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    /// Load this data piece (index into the artifact's pieces).
    Data(usize),
    /// Build this index (index into the post-data plan's builds).
    Index(usize),
    /// Nothing can start now: wait until a running data piece commits.
    Wait,
    /// Everything is handed out.
    Done,
}

/// The load phase's work, handed out to the sessions: the data pieces in [`data_order`],
/// and each of the post-data's index builds as soon as its table's data is committed
/// (pgcopydb's order: the builds overlap the rest of the data, while the table's pages are
/// still cached). A ready build goes before the next data piece.
///
/// A table's data is known to be committed once the piece in which its `COPY` statement
/// was read committed, with every piece continuing that block; a table no piece has shown
/// yet waits for the end of the data. (Built too early, an index would only make the rest
/// of its table's `COPY` slower, never wrong.)
pub(crate) struct LoadQueue<'p> {
    pieces: &'p [Piece],
    data: VecDeque<usize>,
    /// Builds whose table is loaded, to hand out in this order.
    ready: VecDeque<usize>,
    /// Builds waiting for their table, by table, each list in the dump's order.
    waiting: HashMap<String, Vec<usize>>,
    committed: Vec<bool>,
    running: usize,
    /// The piece that starts each table's `COPY` block.
    heads: HashMap<String, usize>,
}

impl<'p> LoadQueue<'p> {
    /// The queue for `pieces`, with the tables of the index builds in the plan's order.
    pub(crate) fn new(pieces: &'p [Piece], build_tables: Vec<String>) -> Self {
        let mut waiting: HashMap<String, Vec<usize>> = HashMap::new();
        for (b, table) in build_tables.into_iter().enumerate() {
            waiting.entry(table).or_default().push(b);
        }
        let mut queue = LoadQueue {
            pieces,
            data: data_order(pieces).into(),
            ready: VecDeque::new(),
            waiting,
            committed: vec![false; pieces.len()],
            running: 0,
            heads: HashMap::new(),
        };
        if queue.data_done() {
            queue.release_all();
        }
        queue
    }

    /// The next task for a free session.
    pub(crate) fn next(&mut self) -> Task {
        if let Some(b) = self.ready.pop_front() {
            return Task::Index(b);
        }
        if let Some(i) = self.data.pop_front() {
            self.running += 1;
            return Task::Data(i);
        }
        if self.waiting.is_empty() {
            Task::Done
        } else {
            Task::Wait
        }
    }

    /// Data piece `i` committed; `tables` are those whose `COPY` statement was read in it
    /// (the block it continues, if any, included or not).
    pub(crate) fn committed(&mut self, i: usize, tables: &[String]) {
        self.committed[i] = true;
        self.running = self.running.saturating_sub(1);
        let continued = self.pieces[i]
            .table
            .as_ref()
            .filter(|_| self.pieces[i].starts_in_copy);
        for t in tables {
            // The block this piece continues started in an earlier piece.
            let head = if Some(t) == continued {
                block_head(self.pieces, i)
            } else {
                i
            };
            self.heads.entry(t.clone()).or_insert(head);
        }
        if self.data_done() {
            self.release_all();
            return;
        }
        // Only a table this piece held can have become loaded.
        let touched = tables.iter().chain(continued);
        let loaded: Vec<String> = touched
            .filter(|t| self.waiting.contains_key(*t) && self.loaded(t))
            .cloned()
            .collect();
        for t in loaded {
            if let Some(builds) = self.waiting.remove(&t) {
                self.ready.extend(builds);
            }
        }
    }

    /// Every data piece committed.
    pub(crate) fn data_done(&self) -> bool {
        self.data.is_empty() && self.running == 0
    }

    /// Every waiting build is ready (the data ended), in the dump's order.
    fn release_all(&mut self) {
        let mut rest: Vec<usize> = self.waiting.drain().flat_map(|(_, b)| b).collect();
        rest.sort_unstable();
        self.ready.extend(rest);
    }

    /// Whether `table`'s block is committed: the piece that starts it and every piece
    /// continuing it.
    fn loaded(&self, table: &str) -> bool {
        let Some(&head) = self.heads.get(table) else {
            return false;
        };
        let mut j = head;
        loop {
            if !self.committed[j] {
                return false;
            }
            let continues = self.pieces[j].ends_in_copy
                && self.pieces[j].table.as_deref() == Some(table)
                && self.pieces.get(j + 1).is_some_and(|p| p.starts_in_copy);
            if !continues {
                return true;
            }
            j += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(kind: PieceKind, size: u64, starts: bool, ends: bool) -> Piece {
        Piece {
            kind,
            table: (kind == PieceKind::Data).then(|| "public.t".to_string()),
            starts_in_copy: starts,
            ends_in_copy: ends,
            offset: 0,
            length: 1,
            uncompressed_size: size,
            rows: 0,
            sha256: "0".repeat(64),
        }
    }

    #[test]
    fn largest_first_and_a_block_head_before_its_continuations() {
        use PieceKind::*;
        // (kind, plain size, starts in a COPY block, ends in one) per piece, and the order.
        type Spec = (PieceKind, u64, bool, bool);
        let cases: &[(&[Spec], &[usize])] = &[
            (
                &[(PreData, 9, false, false), (PostData, 9, false, false)],
                &[],
            ),
            (
                &[
                    (PreData, 1, false, false),
                    (Data, 5, false, false),
                    (Data, 8, false, false),
                    (Data, 6, false, false),
                    (PostData, 1, false, false),
                ],
                &[2, 3, 1],
            ),
            // A large table cut in three: the head (smaller here) goes first.
            (
                &[
                    (PreData, 1, false, false),
                    (Data, 4, false, true),
                    (Data, 64, true, true),
                    (Data, 64, true, false),
                    (Data, 30, false, false),
                    (PostData, 1, false, false),
                ],
                &[1, 2, 3, 4],
            ),
            // The last continuation is the largest: its whole chain comes first, in order.
            (
                &[
                    (PreData, 1, false, false),
                    (Data, 10, false, false),
                    (Data, 5, false, true),
                    (Data, 6, true, true),
                    (Data, 70, true, false),
                ],
                &[2, 3, 4, 1],
            ),
        ];
        for (spec, want) in cases {
            let pieces: Vec<Piece> = spec.iter().map(|&(k, s, a, b)| piece(k, s, a, b)).collect();
            assert_eq!(data_order(&pieces), *want, "{spec:?}");
        }
    }

    #[test]
    fn every_data_piece_once_and_never_before_its_head() {
        // Every shape of 8 data pieces: each may start a block or continue the previous.
        for mask in 0u32..256 {
            for sizes in [[3u64, 9, 1, 7, 7, 2, 8, 5], [1, 1, 1, 1, 1, 1, 1, 1]] {
                let mut pieces = vec![piece(PieceKind::PreData, 1, false, false)];
                for (k, size) in sizes.iter().enumerate() {
                    let continues = k > 0 && mask & (1 << k) != 0;
                    if continues {
                        pieces.last_mut().unwrap().ends_in_copy = true;
                    }
                    pieces.push(piece(PieceKind::Data, *size, continues, false));
                }
                let order = data_order(&pieces);
                let mut seen = order.clone();
                seen.sort();
                assert_eq!(seen, (1..=8).collect::<Vec<_>>(), "{mask}");
                for (pos, &i) in order.iter().enumerate() {
                    if pieces[i].starts_in_copy {
                        assert!(order[..pos].contains(&(i - 1)), "{mask}: {order:?}");
                    }
                }
            }
        }
    }

    fn named(kind: PieceKind, table: &str, size: u64, starts: bool, ends: bool) -> Piece {
        Piece {
            table: (kind == PieceKind::Data).then(|| table.to_string()),
            ..piece(kind, size, starts, ends)
        }
    }

    #[test]
    fn an_index_waits_for_its_table_and_goes_before_more_data() {
        use PieceKind::*;
        let pieces = [
            named(PreData, "", 1, false, false),
            named(Data, "a", 8, false, false),
            named(Data, "b", 5, false, false),
            named(Data, "d", 3, false, false),
            named(PostData, "", 1, false, false),
        ];
        let mut q = LoadQueue::new(&pieces, vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(q.next(), Task::Data(1));
        assert_eq!(q.next(), Task::Data(2));
        q.committed(2, &["b".into()]);
        // b is loaded: its index goes before the next data piece.
        assert_eq!(q.next(), Task::Index(1));
        assert_eq!(q.next(), Task::Data(3));
        q.committed(3, &["d".into()]);
        // a is still loading, c was never seen: wait.
        assert_eq!(q.next(), Task::Wait);
        q.committed(1, &["a".into()]);
        assert!(q.data_done());
        assert_eq!(q.next(), Task::Index(0));
        assert_eq!(q.next(), Task::Index(2));
        assert_eq!(q.next(), Task::Done);
    }

    #[test]
    fn a_table_cut_in_pieces_is_loaded_when_its_last_piece_is() {
        use PieceKind::*;
        let pieces = [
            named(PreData, "", 1, false, false),
            named(Data, "t", 4, false, true),
            named(Data, "t", 64, true, true),
            named(Data, "t", 64, true, false),
            named(Data, "u", 30, false, false),
            named(PostData, "", 1, false, false),
        ];
        let mut q = LoadQueue::new(&pieces, vec!["t".into(), "u".into()]);
        assert_eq!(q.next(), Task::Data(1));
        assert_eq!(q.next(), Task::Data(2));
        q.committed(1, &["t".into()]);
        assert_eq!(q.next(), Task::Data(3));
        q.committed(2, &["t".into()]);
        assert_eq!(q.next(), Task::Data(4));
        q.committed(4, &["u".into()]);
        assert_eq!(q.next(), Task::Index(1));
        // t's last piece is still running.
        assert_eq!(q.next(), Task::Wait);
        q.committed(3, &["t".into()]);
        assert_eq!(q.next(), Task::Index(0));
        assert_eq!(q.next(), Task::Done);

        // A continuation that commits before the block's head makes nothing ready.
        let mut q = LoadQueue::new(&pieces, vec!["t".into(), "u".into()]);
        for want in [1, 2, 3, 4] {
            assert_eq!(q.next(), Task::Data(want));
        }
        q.committed(3, &["t".into()]);
        q.committed(2, &["t".into()]);
        assert_eq!(q.next(), Task::Wait);
        q.committed(1, &["t".into()]);
        assert_eq!(q.next(), Task::Index(0));
        assert_eq!(q.next(), Task::Wait);
    }

    #[test]
    fn every_task_once_and_no_index_before_its_table_is_loaded() {
        // Every shape of 6 data pieces (each may continue the previous one's block), tables
        // t0..t5 by block, two sessions committing in either order.
        for mask in 0u32..64 {
            for newest_first in [false, true] {
                let mut pieces = vec![named(PieceKind::PreData, "", 1, false, false)];
                let mut block = 0;
                for k in 0..6u64 {
                    let continues = k > 0 && mask & (1 << k) != 0;
                    if continues {
                        pieces.last_mut().unwrap().ends_in_copy = true;
                    } else {
                        block += 1;
                    }
                    let t = format!("t{block}");
                    pieces.push(named(
                        PieceKind::Data,
                        &t,
                        (k * 7) % 5 + 1,
                        continues,
                        false,
                    ));
                }
                let tables: Vec<String> = (0..=7).map(|b| format!("t{b}")).collect();
                let mut q = LoadQueue::new(&pieces, tables.clone());
                let (mut running, mut done, mut built) = (Vec::new(), vec![false; 7], Vec::new());
                loop {
                    let task = if running.len() < 2 {
                        q.next()
                    } else {
                        Task::Wait
                    };
                    match task {
                        Task::Data(i) => running.push(i),
                        Task::Index(b) => {
                            let t = &tables[b];
                            let all =
                                (1..7).all(|i| done[i] || pieces[i].table.as_ref() != Some(t));
                            assert!(all || q.data_done(), "{mask}: {t} built early");
                            built.push(b);
                        }
                        Task::Wait => {
                            assert!(!running.is_empty(), "{mask}: waits on nothing");
                            let i = if newest_first {
                                running.pop()
                            } else {
                                Some(running.remove(0))
                            };
                            let i = i.unwrap();
                            done[i] = true;
                            // As a session reports it: the block it continues included.
                            q.committed(i, &[pieces[i].table.clone().unwrap()]);
                        }
                        Task::Done => break,
                    }
                }
                assert!(running.is_empty() && done[1..].iter().all(|&d| d), "{mask}");
                built.sort();
                assert_eq!(built, (0..8).collect::<Vec<_>>(), "{mask}");
            }
        }
    }
}
