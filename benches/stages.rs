//! Throughput of each stage on in-memory data (criterion), so a regression in one stage
//! shows up on its own: sha256, the dump scanner, gzip (single-stream and block-parallel)
//! and zstd both ways, age both ways, and tar build/extract of a small tree.
//! Run: `cargo bench -p coffer-core --bench stages` (add `-- gzip` to run one group).
//!
//! Data: 16 MiB of SQL-like text (what pg_dump emits); the tree is 512 files of 8 KiB.

use std::hint::black_box;
use std::io::{Read, Write};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use coffer_core::internals::DumpScanner;
use coffer_core::internals::HashingWriter;
use coffer_core::internals::ParallelGzipWriter;
use coffer_core::internals::archive::{self, ArchiveOptions};

const SIZE: usize = 16 << 20;

fn sql_like() -> Vec<u8> {
    let mut out = Vec::with_capacity(SIZE + 256);
    out.extend_from_slice(b"COPY public.documents (id, title, body) FROM stdin;\n");
    let mut i = 0u64;
    while out.len() < SIZE {
        writeln!(
            out,
            "{i}\tDocument {i}\tLorem ipsum dolor sit amet {} consectetur {}\t{{\"rev\": {}}}",
            i * 7919 % 10007,
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40,
            i % 13
        )
        .unwrap();
        i += 1;
    }
    out.extend_from_slice(b"\\.\n");
    out
}

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn text_stages(c: &mut Criterion) {
    let data = sql_like();
    let n = data.len() as u64;

    let mut g = c.benchmark_group("hash_scan");
    g.throughput(Throughput::Bytes(n)).sample_size(10);
    g.bench_function("sha256", |b| {
        b.iter(|| {
            let mut w = HashingWriter::new(std::io::sink());
            w.write_all(&data).unwrap();
            black_box(w.finish())
        })
    });
    g.bench_function("dump_scan", |b| {
        b.iter(|| {
            let mut s = DumpScanner::new();
            for chunk in data.chunks(1 << 20) {
                s.feed(chunk);
            }
            black_box(s.finish())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("gzip");
    g.throughput(Throughput::Bytes(n)).sample_size(10);
    for level in [1, 6] {
        g.bench_function(format!("compress_{level}"), |b| {
            b.iter(|| black_box(gzip(&data, level)))
        });
    }
    // What `coffer backup` runs: the same level, block-parallel on every core.
    g.bench_function("compress_6_parallel", |b| {
        b.iter(|| {
            let mut w = ParallelGzipWriter::new(Vec::with_capacity(data.len() / 3), 6);
            w.write_all(&data).unwrap();
            black_box(w.finish().unwrap())
        })
    });
    let gz = gzip(&data, 6);
    g.bench_function("decompress", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(data.len());
            flate2::read::MultiGzDecoder::new(&gz[..])
                .read_to_end(&mut out)
                .unwrap();
            black_box(out)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("zstd");
    g.throughput(Throughput::Bytes(n)).sample_size(10);
    g.bench_function("compress_3", |b| {
        b.iter(|| black_box(zstd::bulk::compress(&data, 3).unwrap()))
    });
    let zst = zstd::bulk::compress(&data, 3).unwrap();
    g.bench_function("decompress", |b| {
        b.iter(|| black_box(zstd::stream::decode_all(&zst[..]).unwrap()))
    });
    g.finish();

    let key = age::x25519::Identity::generate();
    let recipient = key.to_public();
    let encrypt = |data: &[u8]| {
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .unwrap();
        let mut w = enc
            .wrap_output(Vec::with_capacity(data.len() + 4096))
            .unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    };
    let mut g = c.benchmark_group("age");
    g.throughput(Throughput::Bytes(n)).sample_size(10);
    g.bench_function("encrypt", |b| b.iter(|| black_box(encrypt(&data))));
    let sealed = encrypt(&data);
    g.bench_function("decrypt", |b| {
        b.iter(|| {
            let dec = age::Decryptor::new(&sealed[..]).unwrap();
            let mut r = dec
                .decrypt(std::iter::once(&key as &dyn age::Identity))
                .unwrap();
            let mut out = Vec::with_capacity(data.len());
            r.read_to_end(&mut out).unwrap();
            black_box(out)
        })
    });
    g.finish();
}

fn tar_stages(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let mut bytes = 0u64;
    for d in 0..16 {
        let dir = tree.join(format!("dir{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..32 {
            let content: Vec<u8> = (0..8192u32).map(|i| (i * 31 + f * 7 + d) as u8).collect();
            bytes += content.len() as u64;
            std::fs::write(dir.join(format!("file{f:02}.bin")), content).unwrap();
        }
    }
    let build = || {
        archive::write_workspace_tar(&tree, &ArchiveOptions::default(), Vec::new())
            .unwrap()
            .0
    };
    let tarball = build();
    let mut g = c.benchmark_group("tar");
    g.throughput(Throughput::Bytes(bytes)).sample_size(10);
    g.bench_function("build_512_files", |b| b.iter(|| black_box(build())));
    let mut n = 0;
    g.bench_function("extract_512_files", |b| {
        b.iter(|| {
            n += 1;
            let dest = tmp.path().join(format!("x{n}"));
            std::fs::create_dir(&dest).unwrap();
            black_box(archive::extract_tar(&tarball[..], &dest).unwrap());
            std::fs::remove_dir_all(&dest).unwrap();
        })
    });
    g.finish();
}

criterion_group!(stages, text_stages, tar_stages);
criterion_main!(stages);
