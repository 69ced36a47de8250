//! The optional piece index of a database artifact (`artifacts[].pieces` in the manifest):
//! where each independently decodable gzip member (zstd frame) of the dump starts, what it
//! holds and the hash of its plain bytes, so a restore can read pieces in parallel.
//!
//! The index is input like any other: [`check`] runs on every parse and refuses an index
//! that is not a gap-free, overlap-free cover of the artifact in the order pre-data, data,
//! post-data. A structurally valid index with wrong hashes is caught when the pieces are
//! read ([`PieceChecker`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::format::manifest::{Artifact, ArtifactRole};

/// Most pieces one artifact may list (a 64 MiB piece each is 6 TiB of dump; the manifest's
/// own size cap bounds it first).
pub const MAX_PIECES: usize = 100_000;

/// What a piece of the dump holds, in the order they occur.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PieceKind {
    /// Everything before the first `COPY` block: the session settings, the `\restrict` line,
    /// the schema (types, functions, tables). Always the first piece.
    PreData,
    /// `COPY … FROM stdin` data: one table's block or part of it (cut at a row end), with
    /// the small tables around it.
    Data,
    /// Everything after the last `COPY` block of the data section: sequence values, large
    /// objects, indexes, constraints, triggers, grants, the trailer. At most one, last.
    PostData,
}

/// One piece: a byte range of the artifact's compressed stream that decodes on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Piece {
    /// Pre-data, data or post-data.
    pub kind: PieceKind,
    /// Data pieces: the table the piece is for, quoted as the dump's `COPY` writes it (the
    /// table whose block continues into the piece when it starts inside one, else the last
    /// table whose block starts in it). `null` for the other kinds.
    #[serde(default)]
    pub table: Option<String>,
    /// The piece starts inside a `COPY` block, at a row boundary: its first bytes are rows
    /// of `table`, whose `COPY` statement is in an earlier piece.
    #[serde(default)]
    pub starts_in_copy: bool,
    /// The piece ends inside a `COPY` block, at a row boundary (its `\.` is in a later piece).
    #[serde(default)]
    pub ends_in_copy: bool,
    /// Where the piece starts in the compressed stream: the file offset, or for an
    /// age-encrypted artifact the offset in age's plaintext (the compressed stream).
    pub offset: u64,
    /// Compressed length in bytes (one or more whole gzip members or zstd frames).
    pub length: u64,
    /// Bytes of SQL the piece decodes to.
    pub uncompressed_size: u64,
    /// `COPY` data rows in the piece.
    pub rows: u64,
    /// SHA-256 of the bytes the piece decodes to.
    pub sha256: String,
}

/// Whether `pieces` is a valid index of `artifact`: only on a database artifact, at least
/// one and at most [`MAX_PIECES`] pieces, contiguous from offset 0, every piece non-empty
/// on both sides, the lengths adding up to the artifact's size (when it is not encrypted:
/// age's plaintext length is not recorded) and the plain sizes to its uncompressed size,
/// kinds in order (one pre-data first, data, at most one post-data last), a table exactly
/// on data pieces, `starts_in_copy` exactly after `ends_in_copy`, well-formed hashes. The
/// rows are information for a restore's scheduling, not checked here (the table list is
/// checked against the dump itself).
pub fn check(artifact: &Artifact, pieces: &[Piece]) -> Result<(), String> {
    if artifact.role != ArtifactRole::Database {
        return Err(format!(
            "only the database artifact may have pieces, not the {} artifact",
            artifact.role.as_str()
        ));
    }
    if pieces.is_empty() || pieces.len() > MAX_PIECES {
        return Err(format!(
            "{} pieces listed: between 1 and {MAX_PIECES} must be",
            pieces.len()
        ));
    }
    let mut offset = 0u64;
    let mut plain = 0u64;
    let mut previous: Option<&Piece> = None;
    for (i, p) in pieces.iter().enumerate() {
        let bad = |what: String| format!("pieces[{i}]: {what}");
        if p.offset != offset {
            return Err(bad(format!(
                "starts at {} but the previous piece ends at {offset} (pieces must be contiguous)",
                p.offset
            )));
        }
        if p.length == 0 || p.uncompressed_size == 0 {
            return Err(bad("is empty".into()));
        }
        if p.sha256.len() != 64
            || !p
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("sha256 is not 64 lower-case hex digits".into()));
        }
        let order_ok = matches!(
            (previous.map(|q| q.kind), p.kind),
            (None, PieceKind::PreData)
                | (
                    Some(PieceKind::PreData | PieceKind::Data),
                    PieceKind::Data | PieceKind::PostData
                )
        );
        if !order_ok {
            return Err(bad(format!(
                "a {} piece cannot come {} (the order is one pre-data, data, at most one post-data)",
                kind_name(p.kind),
                previous.map_or("first".into(), |q| format!(
                    "after a {} piece",
                    kind_name(q.kind)
                ))
            )));
        }
        if (p.kind == PieceKind::Data) != p.table.is_some() {
            return Err(bad("a table is named exactly on data pieces".into()));
        }
        let continued = previous.is_some_and(|q| q.ends_in_copy);
        if p.starts_in_copy != continued
            || (p.kind != PieceKind::Data && (p.starts_in_copy || p.ends_in_copy))
        {
            return Err(bad(
                "starts_in_copy must follow a piece that ends_in_copy, on data pieces only".into(),
            ));
        }
        if continued && previous.and_then(|q| q.table.as_ref()) != p.table.as_ref() {
            return Err(bad(
                "continues a COPY block of another table than the previous piece's".into(),
            ));
        }
        offset = offset
            .checked_add(p.length)
            .ok_or_else(|| bad("ends beyond 2^64".into()))?;
        plain = plain
            .checked_add(p.uncompressed_size)
            .ok_or_else(|| bad("ends beyond 2^64".into()))?;
        previous = Some(p);
    }
    if previous.is_some_and(|p| p.ends_in_copy) {
        return Err("the last piece ends inside a COPY block".into());
    }
    if artifact.encryption.is_none() && offset != artifact.size {
        return Err(format!(
            "the pieces cover {offset} bytes but the artifact has {}",
            artifact.size
        ));
    }
    if plain != artifact.uncompressed_size {
        return Err(format!(
            "the pieces decode to {plain} bytes but the artifact to {}",
            artifact.uncompressed_size
        ));
    }
    Ok(())
}

fn kind_name(kind: PieceKind) -> &'static str {
    match kind {
        PieceKind::PreData => "pre-data",
        PieceKind::Data => "data",
        PieceKind::PostData => "post-data",
    }
}

/// Checks the plain bytes of an artifact against its pieces as they stream past (one pass,
/// alongside the whole-file hash): each piece's size and SHA-256 in turn.
pub struct PieceChecker {
    pieces: Vec<Piece>,
    /// The piece being read, and its bytes so far.
    index: usize,
    read: u64,
    hasher: Sha256,
    /// CRC-32 of the piece being read, and of every piece read (what a gzip member's
    /// trailer holds, see [`check_members`]).
    crc: flate2::Crc,
    crcs: Vec<u32>,
    failed: Option<String>,
}

impl PieceChecker {
    /// A checker for `pieces` (already [`check`]ed), before the first byte.
    pub fn new(pieces: Vec<Piece>) -> Self {
        PieceChecker {
            pieces,
            index: 0,
            read: 0,
            hasher: Sha256::new(),
            crc: flate2::Crc::new(),
            crcs: Vec::new(),
            failed: None,
        }
    }

    /// The next plain bytes of the artifact.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.failed.is_none() {
            let Some(piece) = self.pieces.get(self.index) else {
                self.failed = Some("the artifact decodes to more bytes than its pieces".into());
                return;
            };
            let room = (piece.uncompressed_size - self.read).min(bytes.len() as u64) as usize;
            self.hasher.update(&bytes[..room]);
            self.crc.update(&bytes[..room]);
            self.read += room as u64;
            bytes = &bytes[room..];
            if self.read == piece.uncompressed_size {
                let sha = hex::encode(std::mem::take(&mut self.hasher).finalize());
                if sha != piece.sha256 {
                    self.failed = Some(format!(
                        "piece {} (bytes {} of the SQL) has SHA-256 {sha}, the manifest says {}",
                        self.index,
                        self.pieces[..self.index]
                            .iter()
                            .map(|p| p.uncompressed_size)
                            .sum::<u64>(),
                        piece.sha256
                    ));
                }
                self.crcs
                    .push(std::mem::replace(&mut self.crc, flate2::Crc::new()).sum());
                self.index += 1;
                self.read = 0;
            }
        }
    }

    /// At the end of the artifact: every piece read whole and matching (with each piece's
    /// CRC-32), or what differs.
    pub fn finish(self) -> Result<Vec<u32>, String> {
        if let Some(f) = self.failed {
            return Err(f);
        }
        if self.index != self.pieces.len() {
            return Err(format!(
                "the artifact ends inside piece {} of {}",
                self.index,
                self.pieces.len()
            ));
        }
        Ok(self.crcs)
    }
}

/// Checks the compressed side of an index against the stored file (not encrypted): each
/// piece starts with a gzip member's header (zstd: a frame's magic number), and for gzip
/// ends with the trailer of a member holding exactly that piece (its CRC-32 from `crcs`,
/// see [`PieceChecker::finish`], and its size), for zstd where a frame ends (its block
/// headers walked). So an offset or length moved to anywhere else is caught with small
/// reads, without decoding the file again.
pub fn check_members<F: std::io::Read + std::io::Seek>(
    file: &mut F,
    pieces: &[Piece],
    compression: crate::format::manifest::Compression,
    crcs: &[u32],
) -> Result<(), String> {
    use crate::format::manifest::Compression;
    use std::io::SeekFrom;
    let mut read_at = |at: u64, buf: &mut [u8]| {
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.read_exact(buf))
            .map_err(|e| format!("cannot read the artifact at byte {at}: {e}"))
    };
    for (i, (p, crc)) in pieces.iter().zip(crcs).enumerate() {
        let mut head = [0u8; 4];
        read_at(p.offset, &mut head)?;
        let starts = match compression {
            Compression::Gzip => head[..3] == [0x1f, 0x8b, 8],
            Compression::Zstd => head == [0x28, 0xb5, 0x2f, 0xfd],
        };
        if !starts {
            return Err(format!(
                "piece {i} does not start a {compression} {} at byte {}",
                if compression == Compression::Gzip {
                    "member"
                } else {
                    "frame"
                },
                p.offset
            ));
        }
        if compression == Compression::Zstd {
            let end = p.offset + p.length;
            let mut at = p.offset;
            while at < end {
                at = zstd_frame_end(&mut read_at, at)?;
            }
            if at != end {
                return Err(format!(
                    "piece {i} (bytes {}–{end} of the stream) does not end where a zstd frame ends",
                    p.offset
                ));
            }
        }
        if compression == Compression::Gzip {
            // The smallest gzip member (empty) is 20 bytes: header, an empty block, trailer.
            if p.length < 20 {
                return Err(format!(
                    "piece {i} is {} bytes long, shorter than any gzip member",
                    p.length
                ));
            }
            let mut trailer = [0u8; 8];
            read_at(p.offset + p.length - 8, &mut trailer)?;
            let want_crc = crc.to_le_bytes();
            let want_size = (p.uncompressed_size as u32).to_le_bytes();
            if trailer[..4] != want_crc || trailer[4..] != want_size {
                return Err(format!(
                    "piece {i} (bytes {}–{} of the file) does not end with the trailer of a gzip member holding it",
                    p.offset,
                    p.offset + p.length
                ));
            }
        }
    }
    Ok(())
}

/// Where the zstd frame starting at `at` ends, from its header and block headers (RFC 8878
/// §3.1.1), without decoding it: so a piece boundary moved inside a frame, onto bytes that
/// happen to look like a frame's magic number, is caught as a gzip one is by its trailer.
fn zstd_frame_end(
    read_at: &mut impl FnMut(u64, &mut [u8]) -> Result<(), String>,
    at: u64,
) -> Result<u64, String> {
    let mut head = [0u8; 5];
    read_at(at, &mut head)?;
    if head[..4] != [0x28, 0xb5, 0x2f, 0xfd] {
        return Err(format!("no zstd frame starts at byte {at}"));
    }
    let descriptor = head[4];
    let single_segment = descriptor & 0x20 != 0;
    let content_size = match descriptor >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let dictionary = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let window = usize::from(!single_segment);
    let checksum = if descriptor & 0x04 != 0 { 4 } else { 0 };
    let mut next = at + 5 + (window + dictionary + content_size) as u64;
    loop {
        let mut block = [0u8; 3];
        read_at(next, &mut block)?;
        let header = u32::from_le_bytes([block[0], block[1], block[2], 0]);
        let size = match (header >> 1) & 3 {
            0 | 2 => u64::from(header >> 3),
            1 => 1,
            _ => return Err(format!("a reserved zstd block type at byte {next}")),
        };
        next += 3 + size;
        if header & 1 == 1 {
            return Ok(next + checksum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::Compression;

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn piece(kind: PieceKind, offset: u64, length: u64, plain: &[u8], rows: u64) -> Piece {
        Piece {
            kind,
            table: (kind == PieceKind::Data).then(|| "public.t".into()),
            starts_in_copy: false,
            ends_in_copy: false,
            offset,
            length,
            uncompressed_size: plain.len() as u64,
            rows,
            sha256: sha(plain),
        }
    }

    /// A valid index: pre-data, two data pieces (a table cut in two), post-data.
    fn sample() -> (Artifact, Vec<Piece>) {
        let mut pieces = vec![
            piece(PieceKind::PreData, 0, 10, b"CREATE", 0),
            piece(PieceKind::Data, 10, 20, b"COPY 1\n", 1),
            piece(PieceKind::Data, 30, 5, b"2\n\\.\n", 1),
            piece(PieceKind::PostData, 35, 7, b"INDEX", 0),
        ];
        pieces[1].ends_in_copy = true;
        pieces[2].starts_in_copy = true;
        let artifact = Artifact {
            role: ArtifactRole::Database,
            file: "postgres.sql.gz".into(),
            size: 42,
            sha256: "ab".repeat(32),
            uncompressed_size: 6 + 7 + 5 + 5,
            uncompressed_sha256: "cd".repeat(32),
            compression: Compression::Gzip,
            encryption: None,
            pieces: None,
        };
        (artifact, pieces)
    }

    #[test]
    fn a_valid_index_passes() {
        let (a, p) = sample();
        check(&a, &p).unwrap();
        check(&a, &p[..1]).unwrap_err();
    }

    #[test]
    fn forged_indexes_say_what_is_wrong() {
        type Forge = fn(&mut Artifact, &mut Vec<Piece>);
        let cases: &[(&str, Forge, &str)] = &[
            ("gap", |_, p| p[2].offset += 1, "contiguous"),
            ("overlap", |_, p| p[1].length += 1, "contiguous"),
            ("not from 0", |_, p| p[0].offset = 1, "contiguous"),
            ("past the end", |_, p| p[3].length += 1, "cover 43 bytes"),
            ("short of the end", |_, p| p[3].length -= 1, "cover 41"),
            (
                "plain sizes",
                |_, p| p[3].uncompressed_size += 1,
                "decode to",
            ),
            ("empty", |_, p| p[3].uncompressed_size = 0, "is empty"),
            (
                "zero length",
                |_, p| {
                    p[2].length = 0;
                    p[3].offset = 30;
                    p[3].length = 12;
                },
                "is empty",
            ),
            ("bad hash", |_, p| p[1].sha256 = "AB".repeat(32), "hex"),
            (
                "short hash",
                |_, p| {
                    p[1].sha256.pop();
                },
                "hex",
            ),
            ("data first", |_, p| p[0].kind = PieceKind::Data, "first"),
            (
                "post-data twice",
                |_, p| {
                    p[1].ends_in_copy = false;
                    p[2].kind = PieceKind::PostData;
                    p[2].table = None;
                    p[2].starts_in_copy = false;
                },
                "after a post-data",
            ),
            (
                "pre-data again",
                |_, p| p[3].kind = PieceKind::PreData,
                "pre-data piece",
            ),
            ("no table", |_, p| p[1].table = None, "table"),
            (
                "table on post",
                |_, p| p[3].table = Some("x".into()),
                "table",
            ),
            (
                "lost continuation",
                |_, p| p[2].starts_in_copy = false,
                "starts_in_copy",
            ),
            (
                "other table",
                |_, p| p[2].table = Some("public.u".into()),
                "another table",
            ),
            (
                "workspace",
                |a, _| a.role = ArtifactRole::Workspace,
                "only the database",
            ),
            ("none", |_, p| p.clear(), "0 pieces"),
            (
                "ends in copy",
                |_, p| {
                    p.truncate(3);
                    p[2].ends_in_copy = true;
                },
                "ends inside",
            ),
            ("overflow", |_, p| p[1].length = u64::MAX - 5, "2^64"),
        ];
        for (name, forge, want) in cases {
            let (mut a, mut p) = sample();
            forge(&mut a, &mut p);
            let e = check(&a, &p).expect_err(name);
            assert!(e.contains(want), "{name}: {e}");
        }
    }

    #[test]
    fn encrypted_artifacts_skip_only_the_compressed_total() {
        let (mut a, mut p) = sample();
        a.encryption = Some(crate::format::manifest::Encryption::Age);
        a.size = 1000;
        check(&a, &p).unwrap();
        p[3].uncompressed_size += 1;
        check(&a, &p).unwrap_err();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever an index says, checking it (and its members against a file) ends in a
        /// verdict, never a panic.
        #[test]
        fn any_index_gets_a_verdict(
            raw in proptest::collection::vec(
                (0u8..3, proptest::prelude::any::<u64>(), 0u64..40, 0u64..40, proptest::prelude::any::<bool>()),
                0..6,
            ),
            file_len in 0usize..64,
        ) {
            let (mut a, _) = sample();
            let mut offset = 0u64;
            let n = raw.len();
            let pieces: Vec<Piece> = raw
                .iter()
                .enumerate()
                .map(|(i, &(k, jitter, length, size, flag))| {
                    // Mostly well-ordered, so the member check is reached too.
                    let kind = match (i, k) {
                        (0, 0 | 1) => PieceKind::PreData,
                        (_, 2) if i + 1 == n => PieceKind::PostData,
                        (_, 0) if flag => PieceKind::PreData,
                        _ => PieceKind::Data,
                    };
                    let p = Piece {
                        kind,
                        table: (kind == PieceKind::Data).then(|| "public.t".into()),
                        starts_in_copy: false,
                        ends_in_copy: false,
                        offset: if jitter % 7 == 0 { jitter } else { offset },
                        length,
                        uncompressed_size: size,
                        rows: jitter,
                        sha256: "ab".repeat(32),
                    };
                    offset = offset.wrapping_add(length);
                    p
                })
                .collect();
            a.size = offset;
            a.uncompressed_size = pieces.iter().map(|p| p.uncompressed_size).fold(0, u64::wrapping_add);
            // gzip's magic every 3 bytes: most pieces pass the header test.
            let file: Vec<u8> = (0..file_len).map(|i| [0x1f, 0x8b, 8][i % 3]).collect();
            if check(&a, &pieces).is_ok() {

                let crcs = vec![0u32; pieces.len()];
                for c in [crate::format::manifest::Compression::Gzip, crate::format::manifest::Compression::Zstd] {
                    let _ = check_members(&mut std::io::Cursor::new(&file), &pieces, c, &crcs);
                }
            }
        }
    }

    /// Review finding: a zstd piece boundary moved inside a frame, onto bytes that look like
    /// a frame's magic number (incompressible data is stored raw), passed the member check.
    #[test]
    fn a_zstd_boundary_moved_onto_a_lookalike_magic_inside_a_frame_is_caught() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut first: Vec<u8> = (0..300_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        first[150_000..150_004].copy_from_slice(&[0x28, 0xb5, 0x2f, 0xfd]);
        let second = b"CREATE INDEX i ON t (a);\n".repeat(100);
        let mut file = zstd::encode_all(&first[..], 3).unwrap();
        let first_len = file.len() as u64;
        file.extend(zstd::encode_all(&second[..], 3).unwrap());
        let mut pieces = vec![
            piece(PieceKind::PreData, 0, first_len, &first, 0),
            piece(
                PieceKind::PostData,
                first_len,
                file.len() as u64 - first_len,
                &second,
                0,
            ),
        ];
        let zstd = Compression::Zstd;
        let mut f = std::io::Cursor::new(&file);
        check_members(&mut f, &pieces, zstd, &[0, 0]).unwrap();
        let inside = file
            .windows(4)
            .skip(4)
            .position(|w| w == [0x28, 0xb5, 0x2f, 0xfd])
            .expect("the lookalike is stored raw") as u64
            + 4;
        assert!(inside < first_len);
        pieces[0].length = inside;
        pieces[1].offset = inside;
        pieces[1].length = file.len() as u64 - inside;
        let e = check_members(&mut f, &pieces, zstd, &[0, 0]).unwrap_err();
        assert!(e.contains("piece 0"), "{e}");
        // Two whole frames in one piece are still one piece of whole frames.
        let merged = Piece {
            length: file.len() as u64,
            ..pieces[0].clone()
        };
        check_members(&mut f, &[merged], zstd, &[0]).unwrap();
    }

    #[test]
    fn the_checker_follows_pieces_across_any_chunking() {
        let (_, pieces) = sample();
        let plain = b"CREATECOPY 1\n2\n\\.\nINDEX";
        for chunk in 1..plain.len() + 1 {
            let mut c = PieceChecker::new(pieces.clone());
            plain.chunks(chunk).for_each(|b| c.update(b));
            let crcs = c.finish().unwrap();
            assert_eq!(crcs.len(), pieces.len());
            let mut crc = flate2::Crc::new();
            crc.update(b"CREATE");
            assert_eq!(crcs[0], crc.sum());
        }
        let mut c = PieceChecker::new(pieces.clone());
        c.update(b"CREATECOPY 2\n2\n\\.\nINDEX");
        assert!(c.finish().unwrap_err().contains("piece 1"));
        let mut c = PieceChecker::new(pieces.clone());
        c.update(&plain[..10]);
        assert!(c.finish().unwrap_err().contains("ends inside piece 1"));
        let mut c = PieceChecker::new(pieces.clone());
        c.update(b"CREATECOPY 1\n2\n\\.\nINDEXX");
        assert!(c.finish().unwrap_err().contains("more bytes"));
    }
}
