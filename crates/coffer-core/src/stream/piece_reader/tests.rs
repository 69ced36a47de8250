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

/// The whole path of a parallel restore, with real components: a real `pg_dump` cut by the
/// piece writer (small pieces, so a table is cut at row ends), every piece read alone by
/// [`PieceReader`] and gated alone by [`DumpScanner::resume`], each piece's output applied
/// in its own restricted psql session (the data pieces in REVERSE order, to show they are
/// independent): the same database as the whole dump through the whole-dump gate, and the
/// pieces' facts merge into the whole dump's.
mod real_dump {
    use std::io::{Read, Write};

    use super::*;
    use crate::sandbox::TempCluster;
    use crate::stream::dump_scan::{DumpFacts, DumpScanner};
    use crate::stream::parallel_gzip::ParallelGzipWriter;
    use crate::stream::piece_plan::PieceLimits;
    use crate::stream::piece_writer::tests::Gz;
    use crate::stream::piece_writer::{PieceWriter, complete_index};

    const SCHEMA: &str = "
        CREATE TABLE public.big (id int PRIMARY KEY, body text);
        INSERT INTO public.big SELECT i, repeat(md5(i::text), 3) || E'\\ttab\\\\back''q' FROM generate_series(1, 20000) i;
        CREATE TABLE public.\"My Table\" (x text);
        INSERT INTO public.\"My Table\" VALUES ('quote''s'), (E'new\\nline'), (NULL);
        CREATE TABLE public.alembic_version (version_num varchar(32) PRIMARY KEY);
        INSERT INTO public.alembic_version VALUES ('abc123');
        CREATE TABLE public.child (id int REFERENCES public.big (id));
        INSERT INTO public.child SELECT i FROM generate_series(1, 100) i;
        CREATE SEQUENCE public.s;
        SELECT setval('public.s', 42);
        CREATE FUNCTION public.f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;
        CREATE INDEX big_body ON public.big (body);
    ";

    fn dump(cluster: &TempCluster, db: &str) -> Vec<u8> {
        let mut pg_dump = cluster.database(db).spawn_pg_dump().unwrap();
        let mut out = Vec::new();
        pg_dump
            .child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        pg_dump.wait("").unwrap();
        out
    }

    /// Applies `sql` in one restricted psql session, in one transaction.
    fn apply(cluster: &TempCluster, db: &str, sql: &[u8]) {
        let (mut psql, _) = cluster.database(db).spawn_psql_script().unwrap();
        let mut stdout = psql.child.stdout.take().unwrap();
        let drain = std::thread::spawn(move || io::copy(&mut stdout, &mut io::sink()));
        let mut stdin = psql.child.stdin.take().unwrap();
        stdin
            .write_all(b"\\restrict pieceGateTestKey1\nBEGIN;\n")
            .unwrap();
        stdin.write_all(sql).unwrap();
        stdin.write_all(b"COMMIT;\n").unwrap();
        drop(stdin);
        let waited = psql.wait("");
        drain.join().unwrap().unwrap();
        if let Err(e) = waited {
            panic!(
                "psql refused a piece: {e}\n{}",
                String::from_utf8_lossy(sql)
            );
        }
    }

    /// A database's content as sorted lines of its dump (row order is the load order, which
    /// differs), without the dump's random `\restrict` key.
    fn content(cluster: &TempCluster, db: &str) -> Vec<String> {
        let text = String::from_utf8(dump(cluster, db)).unwrap();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .map(String::from)
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn pieces_read_and_gated_alone_restore_the_same_database() {
        let cluster = TempCluster::start().unwrap_or_else(|e| panic!("{e}"));
        for db in ["src", "whole", "pieces"] {
            cluster.create_database(db).unwrap();
        }
        cluster.psql("src", SCHEMA).unwrap();
        let sql = dump(&cluster, "src");

        let limits = PieceLimits {
            min: 1,
            max: 64 * 1024,
            pieces: 1000,
        };
        let mut w = PieceWriter::with_limits(Gz(ParallelGzipWriter::new(Vec::new(), 6)), limits);
        for part in sql.chunks(10_000) {
            w.write_all(part).unwrap();
        }
        let (gz, whole_facts, index) = w.finish().unwrap();
        assert!(whole_facts.complete, "{whole_facts:?}");
        let gz = gz.0.finish().unwrap();
        let mut pieces = index.expect("the dump got an index");
        complete_index(&mut pieces, gz.len() as u64);
        assert!(
            pieces.iter().filter(|p| p.starts_in_copy).count() >= 3,
            "the big table is cut at rows: {}",
            pieces.len()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postgres.sql.gz");
        std::fs::write(&path, &gz).unwrap();
        let artifact = Artifact {
            role: ArtifactRole::Database,
            file: "postgres.sql.gz".into(),
            size: gz.len() as u64,
            sha256: sha(&gz),
            uncompressed_size: sql.len() as u64,
            uncompressed_sha256: sha(&sql),
            compression: Compression::Gzip,
            encryption: None,
            pieces: Some(pieces.clone()),
        };
        crate::format::pieces::check(&artifact, &pieces).unwrap();

        // Read every piece alone, then gate each alone, in dump order (a continuing piece
        // needs the COPY statement its predecessor publishes).
        let mut plain = Vec::new();
        for p in &pieces {
            let mut reader = PieceReader::open(&path, &artifact, p, None).unwrap();
            let mut bytes = Vec::new();
            reader
                .read_to_end(&mut bytes)
                .map_err(|e| reader.damaged(e))
                .unwrap();
            reader.finish().unwrap();
            plain.push((bytes, p.starts_in_copy, p.ends_in_copy));
        }
        let plain: Vec<(&[u8], bool, bool)> = plain
            .iter()
            .map(|(b, s, e)| (b.as_slice(), *s, *e))
            .collect();
        let (mut outputs, facts): (Vec<Vec<u8>>, Vec<DumpFacts>) =
            crate::stream::dump_scan::gate_pieces(&plain, 8192)
                .unwrap()
                .into_iter()
                .unzip();
        assert_eq!(DumpFacts::merge(facts), whole_facts);

        // The whole dump through the whole-dump gate, in one session.
        let mut whole = DumpScanner::new();
        let mut out = Vec::new();
        whole.feed_filtered(&sql, &mut out);
        assert!(whole.finish().complete);
        apply(&cluster, "whole", &out);

        // Pre-data, the data pieces last to first, post-data: one session each.
        let post = outputs.pop().unwrap();
        let pre = outputs.remove(0);
        apply(&cluster, "pieces", &pre);
        for out in outputs.iter().rev() {
            apply(&cluster, "pieces", out);
        }
        apply(&cluster, "pieces", &post);

        let want = content(&cluster, "whole");
        assert!(
            want.iter().any(|l| l.contains("abc123")),
            "the data is there"
        );
        assert!(want.iter().any(|l| l.contains("setval('public.s', 42")));
        assert_eq!(content(&cluster, "pieces"), want);
        assert_eq!(
            cluster
                .psql("pieces", "SELECT count(*) FROM public.big")
                .unwrap(),
            "20000"
        );
    }
}

/// A restore reads and gates pieces on several threads at once.
#[test]
fn readers_and_gates_move_between_threads() {
    fn send<T: Send>() {}
    fn shared<T: Send + Sync>() {}
    send::<PieceReader>();
    send::<crate::stream::dump_scan::DumpScanner>();
    shared::<crate::stream::dump_scan::SessionState>();
}

#[test]
fn an_age_piece_is_fetched_up_to_the_end_of_the_chunk_holding_its_last_byte() {
    let chunk = AGE_CHUNK + AGE_TAG;
    for (plain_end, chunks) in [
        (0, 1),
        (1, 1),
        (AGE_CHUNK, 1),
        (AGE_CHUNK + 1, 2),
        (5 * AGE_CHUNK, 5),
    ] {
        assert_eq!(
            age_ciphertext_end(100, plain_end),
            100 + chunks * chunk,
            "{plain_end}"
        );
    }
}

#[test]
fn a_remote_age_piece_that_starts_on_a_chunk_boundary_reads_alone() {
    // A stored (level 0) gzip member is its data plus a fixed overhead: sized to 64 KiB, so
    // the second piece starts exactly on age's second chunk.
    let stored_member = |len: usize| {
        let data: Vec<u8> = (0..len as u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(0));
        e.write_all(&data).unwrap();
        (data, e.finish().unwrap())
    };
    let overhead = stored_member(60_000).1.len() - 60_000;
    let (first, mut stream) = stored_member(AGE_CHUNK as usize - overhead);
    assert_eq!(stream.len() as u64, AGE_CHUNK);
    let mut f = fixture(Compression::Gzip, true);
    let (rest, mut pieces) = compressed(Compression::Gzip, &f.parts[1..]);
    let mut head = f.pieces()[0].clone();
    head.offset = 0;
    head.length = AGE_CHUNK;
    head.uncompressed_size = first.len() as u64;
    head.sha256 = sha(&first);
    for p in &mut pieces {
        p.offset += AGE_CHUNK;
    }
    pieces[0].kind = PieceKind::Data;
    pieces[0].table = Some("public.t".into());
    pieces.insert(0, head);
    stream.extend(rest);
    // A last piece over a chunk long, so the piece read does not end in the last chunk.
    let last = pieces.last_mut().unwrap();
    last.kind = PieceKind::Data;
    last.table = Some("public.t".into());
    let (tail, member) = stored_member(2 * AGE_CHUNK as usize);
    pieces.push(Piece {
        kind: PieceKind::PostData,
        table: None,
        offset: stream.len() as u64,
        length: member.len() as u64,
        uncompressed_size: tail.len() as u64,
        sha256: sha(&tail),
        ..pieces[0].clone()
    });
    stream.extend(member);
    let public = crate::stream::crypto::keygen(&f.dir.path().join("key2")).unwrap();
    let recipients = Recipients::load(&[public], None).unwrap();
    let mut w = recipients.encrypt(Vec::new()).unwrap();
    w.write_all(&stream).unwrap();
    let stored = w.finish().unwrap();
    f.ids = Some(Identities::load(&f.dir.path().join("key2")).unwrap());
    f.artifact.pieces = Some(pieces);

    let (_dir, _runtime, object) =
        crate::remote::ranged::test_support::file_object("postgres.sql.gz.age", &stored);
    let piece = f.pieces()[1].clone();
    assert_eq!(piece.offset, AGE_CHUNK);
    let mut r = PieceReader::open_from(
        PieceSource::Remote(&object),
        &f.artifact,
        &piece,
        f.ids.as_ref(),
    )
    .unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    r.finish().unwrap();
    assert_eq!(out, f.parts[1]);
}
