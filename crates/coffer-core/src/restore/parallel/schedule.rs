//! In which order the data pieces are handed to the sessions: a pure decision over the
//! piece index.

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
}
