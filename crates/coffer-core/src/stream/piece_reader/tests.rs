use std::io::Write;

use sha2::{Digest, Sha256};

use super::*;
use crate::format::manifest::{ArtifactRole, Compression, Encryption};
use crate::format::pieces::PieceKind;
use crate::stream::crypto::Recipients;

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Each part compressed on its own (one gzip member, one zstd frame), as the piece writer
/// cuts: pre-data, data of `public.t` (the middle ones), post-data.
fn compressed(compression: Compression, parts: &[Vec<u8>]) -> (Vec<u8>, Vec<Piece>) {
    let mut stream = Vec::new();
    let mut pieces = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let member = match compression {
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                e.write_all(part).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(&part[..], 3).unwrap(),
        };
        let kind = match i {
            0 => PieceKind::PreData,
            _ if i + 1 == parts.len() => PieceKind::PostData,
            _ => PieceKind::Data,
        };
        pieces.push(Piece {
            kind,
            table: (kind == PieceKind::Data).then(|| "public.t".into()),
            starts_in_copy: false,
            ends_in_copy: false,
            offset: stream.len() as u64,
            length: member.len() as u64,
            uncompressed_size: part.len() as u64,
            rows: 0,
            sha256: sha(part),
        });
        stream.extend(member);
    }
    (stream, pieces)
}

struct Fixture {
    dir: tempfile::TempDir,
    path: PathBuf,
    artifact: Artifact,
    parts: Vec<Vec<u8>>,
    ids: Option<Identities>,
}

fn parts() -> Vec<Vec<u8>> {
    vec![
        b"CREATE TABLE public.t (a int, b text);\n".repeat(50),
        // Large enough for several decoder buffers and age chunks.
        (0..40_000u32)
            .flat_map(|i| format!("{i}\trow {}\n", i * 7919 % 1000).into_bytes())
            .collect(),
        b"COPY public.t (a, b) FROM stdin;\n1\tx\n\\.\n".to_vec(),
        b"CREATE INDEX i ON public.t (a);\n".to_vec(),
    ]
}

fn fixture(compression: Compression, encrypted: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let parts = parts();
    let (stream, pieces) = compressed(compression, &parts);
    let mut ids = None;
    let stored = if encrypted {
        let key = dir.path().join("key");
        let public = crate::stream::crypto::keygen(&key).unwrap();
        let recipients = Recipients::load(&[public], None).unwrap();
        let mut w = recipients.encrypt(Vec::new()).unwrap();
        w.write_all(&stream).unwrap();
        ids = Some(Identities::load(&key).unwrap());
        w.finish().unwrap()
    } else {
        stream
    };
    let name = match (compression, encrypted) {
        (Compression::Gzip, false) => "postgres.sql.gz",
        (Compression::Gzip, true) => "postgres.sql.gz.age",
        (Compression::Zstd, false) => "postgres.sql.zst",
        (Compression::Zstd, true) => "postgres.sql.zst.age",
    };
    let path = dir.path().join(name);
    std::fs::write(&path, &stored).unwrap();
    let plain = parts.concat();
    let artifact = Artifact {
        role: ArtifactRole::Database,
        file: name.into(),
        size: stored.len() as u64,
        sha256: sha(&stored),
        uncompressed_size: plain.len() as u64,
        uncompressed_sha256: sha(&plain),
        compression,
        encryption: encrypted.then_some(Encryption::Age),
        pieces: Some(pieces),
    };
    crate::format::pieces::check(&artifact, artifact.pieces.as_ref().unwrap()).unwrap();
    Fixture {
        dir,
        path,
        artifact,
        parts,
        ids,
    }
}

impl Fixture {
    fn pieces(&self) -> &[Piece] {
        self.artifact.pieces.as_deref().unwrap()
    }

    /// Reads `piece` to its end and finishes it.
    fn read(&self, piece: &Piece) -> Result<Vec<u8>, ArtifactError> {
        let mut r = PieceReader::open(&self.path, &self.artifact, piece, self.ids.as_ref())?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| r.damaged(e))?;
        assert_eq!(r.plain_bytes(), out.len() as u64);
        r.finish()?;
        Ok(out)
    }
}

#[test]
fn every_piece_reads_alone_in_any_order_gzip_zstd_and_age() {
    for compression in [Compression::Gzip, Compression::Zstd] {
        for encrypted in [false, true] {
            let f = fixture(compression, encrypted);
            for i in (0..f.pieces().len()).rev() {
                let got = f.read(&f.pieces()[i]).unwrap();
                assert_eq!(
                    got, f.parts[i],
                    "{compression} encrypted {encrypted} piece {i}"
                );
            }
            // Read partly and finished: the rest is read and checked.
            let p = &f.pieces()[1];
            let mut r = PieceReader::open(&f.path, &f.artifact, p, f.ids.as_ref()).unwrap();
            let mut head = [0u8; 10];
            r.read_exact(&mut head).unwrap();
            r.finish().unwrap();
        }
    }
    let f = fixture(Compression::Gzip, true);
    assert!(matches!(
        PieceReader::open(&f.path, &f.artifact, &f.pieces()[1], None),
        Err(ArtifactError::NoIdentity { .. })
    ));
    drop(f.dir);
}

/// Plain bytes that differ from the piece's record: the sha256, or the size either way.
#[test]
fn a_piece_whose_bytes_differ_from_its_record_is_refused_naming_it() {
    for encrypted in [false, true] {
        let f = fixture(Compression::Gzip, encrypted);
        let mut forged = f.pieces()[1].clone();
        forged.sha256 = sha(b"other");
        let e = f.read(&forged).unwrap_err();
        assert!(matches!(e, ArtifactError::Mismatch { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("piece sha256"), "{text}");
        assert!(text.contains("piece 1 (data of public.t)"), "{text}");

        let mut longer = f.pieces()[1].clone();
        longer.uncompressed_size += 1;
        let e = f.read(&longer).unwrap_err();
        assert!(e.to_string().contains("piece size"), "{e}");

        // Shorter: reading stops at the recorded size instead of streaming on.
        let mut shorter = f.pieces()[1].clone();
        shorter.uncompressed_size -= 1;
        let e = f.read(&shorter).unwrap_err();
        assert!(matches!(e, ArtifactError::Damaged { .. }), "{e}");
        assert!(e.to_string().contains("more bytes than"), "{e}");
    }
}

/// An offset or length that does not frame whole members (frames) is damage: a member cut
/// short, a range running into the next member or starting inside one, a range past the
/// end of the file.
#[test]
fn a_range_that_cuts_a_member_is_damage_naming_the_file_and_piece() {
    for compression in [Compression::Gzip, Compression::Zstd] {
        for encrypted in [false, true] {
            let f = fixture(compression, encrypted);
            let p = &f.pieces()[1];
            let next = &f.pieces()[2];
            let forgeries: Vec<(&str, Piece)> = vec![
                (
                    "cut short",
                    Piece {
                        length: p.length - 1,
                        ..p.clone()
                    },
                ),
                (
                    "half",
                    Piece {
                        length: p.length / 2,
                        ..p.clone()
                    },
                ),
                (
                    "into the next member",
                    Piece {
                        length: p.length + 3,
                        ..p.clone()
                    },
                ),
                (
                    "starting inside",
                    Piece {
                        offset: p.offset + 1,
                        length: p.length - 1,
                        ..p.clone()
                    },
                ),
                (
                    "two members",
                    Piece {
                        length: p.length + next.length,
                        ..p.clone()
                    },
                ),
                (
                    "past the end",
                    Piece {
                        offset: p.offset + 10_000_000,
                        ..p.clone()
                    },
                ),
            ];
            for (what, forged) in forgeries {
                let e = f.read(&forged).expect_err(what);
                let text = e.to_string();
                assert!(
                    matches!(
                        e,
                        ArtifactError::Damaged { .. } | ArtifactError::Mismatch { .. }
                    ),
                    "{compression} {encrypted} {what}: {text}"
                );
                assert!(
                    text.contains(&f.path.display().to_string()),
                    "{what}: {text}"
                );
                assert!(text.contains("piece"), "{what}: {text}");
            }
        }
    }
}

#[test]
fn a_flipped_byte_in_the_file_is_damage() {
    for compression in [Compression::Gzip, Compression::Zstd] {
        let f = fixture(compression, false);
        let p = f.pieces()[1].clone();
        let mut bytes = std::fs::read(&f.path).unwrap();
        bytes[(p.offset + p.length / 2) as usize] ^= 0x20;
        std::fs::write(&f.path, &bytes).unwrap();
        let e = f.read(&p).unwrap_err();
        assert!(
            matches!(
                e,
                ArtifactError::Damaged { .. } | ArtifactError::Mismatch { .. }
            ),
            "{compression}: {e}"
        );
        // The other pieces are untouched.
        assert_eq!(f.read(&f.pieces()[0]).unwrap(), f.parts[0]);
    }
}
