//! Throughput of each backup stage on in-memory data, so a regression in one stage shows up
//! on its own. Run: `cargo bench -p coffer-core --bench stages`.
//!
//! Data: SQL-like text (what pg_dump emits), 64 MiB. Each stage is timed alone, best of 3.

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Instant;

use coffer_core::digest::HashingWriter;
use coffer_core::dump_scan::DumpScanner;

const SIZE: usize = 64 << 20;

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

fn measure(name: &str, bytes: usize, mut f: impl FnMut()) {
    let best = (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap();
    println!(
        "{name:<28} {:>8.1} MB/s  ({:.3} s for {} MB)",
        bytes as f64 / 1e6 / best.as_secs_f64(),
        best.as_secs_f64(),
        bytes / 1_000_000
    );
}

fn main() {
    let data = sql_like();
    let n = data.len();
    measure("sha256 (HashingWriter)", n, || {
        let mut w = HashingWriter::new(std::io::sink());
        w.write_all(&data).unwrap();
        black_box(w.finish());
    });
    measure("dump scan", n, || {
        let mut s = DumpScanner::new();
        for chunk in data.chunks(1 << 20) {
            s.feed(chunk);
        }
        black_box(s.finish());
    });
    let mut gz = Vec::new();
    measure("gzip -6 compress", n, || {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&data).unwrap();
        gz = e.finish().unwrap();
    });
    println!(
        "{:<28} {:>8.1} %",
        "gzip -6 ratio",
        100.0 * gz.len() as f64 / n as f64
    );
    measure("gzip decompress", n, || {
        let mut out = Vec::with_capacity(n);
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        black_box(out);
    });
    let key = age::x25519::Identity::generate();
    let recipient = key.to_public();
    let mut sealed = Vec::new();
    measure("age encrypt", n, || {
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .unwrap();
        let mut w = enc.wrap_output(Vec::with_capacity(n + 4096)).unwrap();
        w.write_all(&data).unwrap();
        sealed = w.finish().unwrap();
    });
    measure("age decrypt", n, || {
        let dec = age::Decryptor::new(&sealed[..]).unwrap();
        let mut r = dec
            .decrypt(std::iter::once(&key as &dyn age::Identity))
            .unwrap();
        let mut out = Vec::with_capacity(n);
        r.read_to_end(&mut out).unwrap();
        black_box(out);
    });
}
