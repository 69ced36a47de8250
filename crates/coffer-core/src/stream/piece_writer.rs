//! Writing a dump as pieces: the scanner finds the cut marks, the planner
//! ([`crate::stream::piece_plan`]) picks the cuts, and the compressor below ends a gzip
//! member (zstd frame) at each, so each piece decodes on its own while the file stays one
//! ordinary `.gz`/`.zst`. Records each piece's compressed offset, plain size, rows and
//! SHA-256 for the manifest's index.
//!
//! A cut can be decided only after the bytes it falls before were read (a `COPY` is known
//! at its `;`, the end of the data section at the next statement), so the bytes from the
//! first place that may still become a cut are held back from the compressor, at most
//! [`HOLD_CAP`]; a dump that would need more gets no index (it is written all the same).

use std::io::{self, Write};

use sha2::{Digest, Sha256};

use crate::format::pieces::Piece;
use crate::stream::dump_scan::{DumpFacts, DumpScanner};
use crate::stream::piece_plan::{PieceLimits, PiecePlanner, PlannedPiece};

/// Most bytes held back while a cut is undecided (pg_dump writes a few hundred bytes of
/// comments between a `COPY` block and the next statement).
pub const HOLD_CAP: usize = 4 << 20;

/// A compressing writer that can end its current gzip member or zstd frame.
pub trait CutWrite: Write {
    /// Ends the current member/frame (if anything was written since the last one), so what
    /// is written next decodes on its own; returns the length of the compressed stream so
    /// far, where the next member/frame will start.
    fn cut(&mut self) -> io::Result<u64>;
}

/// Scans a dump on its way to `inner`, cutting it into pieces (see the module docs).
pub struct PieceWriter<W: CutWrite> {
    inner: W,
    scanner: DumpScanner,
    planner: PiecePlanner,
    /// Bytes read but not yet given to `inner`, and the offset of the first of them.
    held: Vec<u8>,
    held_start: u64,
    /// Compressed offset and plain hash of the piece being written.
    piece_offset: u64,
    piece_hash: Sha256,
    pieces: Vec<Piece>,
}

impl<W: CutWrite> PieceWriter<W> {
    /// Wraps `inner` with the default piece sizes.
    pub fn new(inner: W) -> Self {
        Self::with_limits(inner, PieceLimits::default())
    }

    /// Wraps `inner`, cutting at `limits` (smaller ones make tests practical).
    pub fn with_limits(inner: W, limits: PieceLimits) -> Self {
        PieceWriter {
            inner,
            scanner: DumpScanner::with_marks(),
            planner: PiecePlanner::new(limits),
            held: Vec::new(),
            held_start: 0,
            piece_offset: 0,
            piece_hash: Sha256::new(),
            pieces: Vec::new(),
        }
    }

    /// Writes everything held, ends the last piece and returns the inner writer, the dump's
    /// facts and the index (`None` when the dump got none). The last piece's `length` is
    /// still 0: only the caller knows where the compressed stream ends
    /// ([`complete_index`]).
    pub fn finish(mut self) -> io::Result<(W, DumpFacts, Option<Vec<Piece>>)> {
        let end = self.held_start + self.held.len() as u64;
        self.release(end)?;
        let rows = self.scanner.rows_seen();
        let last = self.planner.finish(end, rows);
        let facts = self.scanner.finish();
        let index = match last {
            Some(last) => {
                let hash = std::mem::take(&mut self.piece_hash);
                self.pieces.push(record(&last, self.piece_offset, 0, hash));
                Some(self.pieces)
            }
            None => None,
        };
        Ok((self.inner, facts, index))
    }

    /// Gives `inner` the held bytes up to offset `to`, hashing them into the open piece.
    fn release(&mut self, to: u64) -> io::Result<()> {
        let n = (to - self.held_start) as usize;
        if n == 0 {
            return Ok(());
        }
        self.inner.write_all(&self.held[..n])?;
        self.piece_hash.update(&self.held[..n]);
        self.held.drain(..n);
        self.held_start = to;
        Ok(())
    }

    /// Ends `piece` (its bytes all released): the compressor cuts, the record is kept.
    fn close(&mut self, piece: &PlannedPiece) -> io::Result<()> {
        let offset = self.inner.cut()?;
        let hash = std::mem::take(&mut self.piece_hash);
        self.pieces.push(record(
            piece,
            self.piece_offset,
            offset - self.piece_offset,
            hash,
        ));
        self.piece_offset = offset;
        Ok(())
    }
}

fn record(p: &PlannedPiece, offset: u64, length: u64, hash: Sha256) -> Piece {
    Piece {
        kind: p.kind,
        table: p.table.clone(),
        starts_in_copy: p.starts_in_copy,
        ends_in_copy: p.ends_in_copy,
        offset,
        length,
        uncompressed_size: p.end - p.start,
        rows: p.rows,
        sha256: hex::encode(hash.finalize()),
    }
}

/// Sets the last piece's length from the compressed stream's final length.
pub fn complete_index(pieces: &mut [Piece], compressed_len: u64) {
    if let Some(last) = pieces.last_mut() {
        last.length = compressed_len - last.offset;
    }
}

impl<W: CutWrite> Write for PieceWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.scanner.feed(buf);
        self.held.extend_from_slice(buf);
        for mark in self.scanner.take_marks() {
            if let Some(piece) = self.planner.mark(mark) {
                if piece.end < self.held_start {
                    // Already compressed past it (cannot happen while the planner's
                    // `keep_from` holds): no index rather than a wrong one.
                    self.planner.abandon();
                    continue;
                }
                self.release(piece.end)?;
                self.close(&piece)?;
            }
        }
        self.scanner
            .mark_row_end_after(self.planner.row_end_wanted_after());
        let end = self.held_start + self.held.len() as u64;
        let keep = self
            .planner
            .keep_from(self.scanner.undecided_from())
            .map_or(end, |k| k.max(self.held_start));
        if end - keep > HOLD_CAP as u64 {
            // Undecided for too long: no index, and nothing held from now on.
            self.planner.abandon();
            self.release(end)?;
        } else {
            self.release(keep)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Read;

    /// A gzip writer with the cut, over a vector.
    pub(crate) struct Gz(pub(crate) crate::stream::parallel_gzip::ParallelGzipWriter<Vec<u8>>);

    impl Write for Gz {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl CutWrite for Gz {
        fn cut(&mut self) -> io::Result<u64> {
            self.0.end_member()?;
            Ok(self.0.get_ref().len() as u64)
        }
    }

    fn dump(tables: usize, rows: usize) -> String {
        let mut s = String::from("SET x = 1;\nCREATE TABLE public.t (a int);\n");
        for t in 0..tables {
            s.push_str(&format!("\n-- Data\nCOPY public.t{t} (a) FROM stdin;\n"));
            for r in 0..rows {
                s.push_str(&format!("{r}{}\n", "y".repeat(r % 50)));
            }
            s.push_str("\\.\n");
        }
        s.push_str("\nCREATE INDEX i ON public.t (a);\n-- PostgreSQL database dump complete\n");
        s
    }

    #[test]
    fn every_piece_decodes_alone_to_its_size_and_hash() {
        let d = dump(5, 2000);
        for chunk in [1000, 65_536] {
            let limits = PieceLimits {
                min: 20_000,
                max: 30_000,
                ..PieceLimits::default()
            };
            let mut w = PieceWriter::with_limits(Gz(ParallelGzip::new(Vec::new(), 6)), limits);
            for part in d.as_bytes().chunks(chunk) {
                w.write_all(part).unwrap();
            }
            let (gz, facts, index) = w.finish().unwrap();
            assert!(facts.complete);
            let gz = gz.0.finish().unwrap();
            let mut index = index.unwrap();
            complete_index(&mut index, gz.len() as u64);
            assert!(index.len() > 5, "{}", index.len());
            let mut all = Vec::new();
            flate2::read::MultiGzDecoder::new(&gz[..])
                .read_to_end(&mut all)
                .unwrap();
            assert_eq!(all, d.as_bytes());
            let mut rows = 0;
            for p in &index {
                let member = &gz[p.offset as usize..(p.offset + p.length) as usize];
                let mut plain = Vec::new();
                flate2::read::MultiGzDecoder::new(member)
                    .read_to_end(&mut plain)
                    .unwrap();
                assert_eq!(plain.len() as u64, p.uncompressed_size);
                assert_eq!(hex::encode(Sha256::digest(&plain)), p.sha256);
                rows += p.rows;
            }
            assert_eq!(rows, 5 * 2000);
            // The compressed side: members where the index says, and nowhere else.
            let mut checker = crate::format::pieces::PieceChecker::new(index.clone());
            checker.update(d.as_bytes());
            let crcs = checker.finish().unwrap();
            let gzip = crate::format::manifest::Compression::Gzip;
            let mut file = io::Cursor::new(&gz);
            crate::format::pieces::check_members(&mut file, &index, gzip, &crcs).unwrap();
            for shift in [1u64, 2, index[1].length] {
                let mut forged = index.clone();
                forged[0].length += shift;
                forged[1].offset += shift;
                forged[1].length -= shift;
                let e = crate::format::pieces::check_members(&mut file, &forged, gzip, &crcs);
                assert!(e.is_err(), "shift {shift}");
            }
        }
    }

    #[test]
    fn a_long_undecided_stretch_gives_up_the_index_but_not_the_dump() {
        let mut d = dump(2, 10);
        let comment = format!("-- {}\n", "z".repeat(HOLD_CAP + 200_000));
        d = d.replacen(
            "\n-- Data\nCOPY public.t1",
            &format!("\n{comment}COPY public.t1"),
            1,
        );
        let mut w = PieceWriter::new(Gz(ParallelGzip::new(Vec::new(), 1)));
        for part in d.as_bytes().chunks(1 << 16) {
            w.write_all(part).unwrap();
        }
        let (gz, facts, index) = w.finish().unwrap();
        assert!(facts.complete);
        assert_eq!(index, None);
        let gz = gz.0.finish().unwrap();
        let mut all = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, d.as_bytes());
    }

    use crate::stream::parallel_gzip::ParallelGzipWriter as ParallelGzip;
}
