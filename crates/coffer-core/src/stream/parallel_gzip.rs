//! Block-parallel gzip compression, the way pigz does it: the input is cut into blocks that
//! worker threads deflate independently, and the results are written in order as one
//! standard gzip member (`gunzip`, `zcat` and every gzip reader see an ordinary file).
//!
//! Why: a backup compresses two artifacts at once, but they rarely take equally long. With
//! one deflate stream per artifact, the longer one ends up running alone on one core. Here
//! both artifacts feed one shared pool with a worker per core, so every core stays busy
//! until the last block.
//!
//! Each block is primed with the last 32 KiB of the block before it (deflate's whole
//! window), so matches across block boundaries are still found and the output stays within
//! a fraction of a percent of a single-stream gzip at the same level. Blocks other than the
//! last end with a sync flush (an empty stored block), which byte-aligns them so they can be
//! concatenated. The CRC-32 is computed per block by the workers and combined in order.
//!
//! Memory is bounded: at most two blocks per core of one writer are queued or being
//! compressed at a time, and writing waits for the oldest to finish.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, OnceLock};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Bytes of input per block. Large enough that the per-block costs (priming the window, the
/// 5-byte flush marker, a job hand-off) vanish; small enough that a few in flight per
/// writer stay well within the memory budget.
pub const BLOCK_SIZE: usize = 1 << 20;

/// Deflate's window: the most a match can reach back, and so all the priming a block needs.
const WINDOW: usize = 32 * 1024;

/// A gzip writer that compresses blocks on the shared worker pool and writes one gzip
/// member to the inner writer, in order. Call [`finish`](Self::finish) to write the last
/// block and the trailer; dropping it without that leaves a truncated stream.
pub struct ParallelGzipWriter<W: Write> {
    inner: W,
    level: Compression,
    /// Input collected for the next block.
    block: Vec<u8>,
    /// The last [`WINDOW`] bytes of the previous block: the next block's dictionary.
    window: Vec<u8>,
    /// Results of submitted blocks, oldest first.
    pending: VecDeque<Receiver<io::Result<Deflated>>>,
    in_flight: usize,
    crc: Crc,
    header_written: bool,
    /// A member was ended ([`ParallelGzipWriter::end_member`]) and the output is complete
    /// up to there.
    member_ended: bool,
}

/// One deflated block and the CRC of its input.
struct Deflated {
    data: Vec<u8>,
    crc: Crc,
}

impl<W: Write> ParallelGzipWriter<W> {
    /// A writer compressing at `level` (1–9) into `inner`.
    pub fn new(inner: W, level: u32) -> ParallelGzipWriter<W> {
        // Two blocks per worker keep every worker fed while the oldest result is written.
        let in_flight = 2 * pool().workers;
        ParallelGzipWriter {
            inner,
            level: Compression::new(level),
            block: Vec::with_capacity(BLOCK_SIZE),
            window: Vec::new(),
            pending: VecDeque::with_capacity(in_flight),
            in_flight,
            crc: Crc::new(),
            header_written: false,
            member_ended: false,
        }
    }

    /// Compresses what is left, writes the gzip trailer and returns the inner writer (not
    /// flushed: the caller owns what comes after).
    pub fn finish(mut self) -> io::Result<W> {
        // An empty input is one empty member; after an ended member, nothing more is.
        if !self.member_ended {
            self.close_member()?;
        } else {
            self.end_member()?;
        }
        Ok(self.inner)
    }

    /// Ends the current gzip member (when anything was written since the last one ended), so
    /// that the next byte written starts a new member that decodes on its own: the output
    /// stays one valid gzip file (`gunzip` reads all members in turn), and a reader can start
    /// at the new member's first byte.
    pub fn end_member(&mut self) -> io::Result<()> {
        if self.header_written || !self.block.is_empty() || !self.pending.is_empty() {
            self.close_member()?;
        }
        Ok(())
    }

    /// The inner writer (what has been written to it so far).
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Compresses what is left of the member and writes its trailer; the next block starts a
    /// new member, with no dictionary.
    fn close_member(&mut self) -> io::Result<()> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.inner.write_all(&trailer)?;
        self.crc = Crc::new();
        self.header_written = false;
        self.window.clear();
        self.member_ended = true;
        Ok(())
    }

    /// Hands the collected block to the pool. `last` ends the deflate stream.
    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.pending.len() >= self.in_flight {
            self.write_oldest()?;
        }
        let input = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK_SIZE));
        let dictionary = std::mem::take(&mut self.window);
        if !last {
            self.window = input[input.len().saturating_sub(WINDOW)..].to_vec();
        }
        let level = self.level;
        let (reply, result) = mpsc::sync_channel(1);
        pool().run(Box::new(move || {
            let deflated = deflate_block(level, &dictionary, &input, last);
            // The writer may be gone (dropped after an error); nobody wants the result then.
            let _ = reply.send(deflated);
        }));
        self.pending.push_back(result);
        Ok(())
    }

    /// Waits for the oldest block and writes it.
    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(result) = self.pending.pop_front() else {
            return Ok(());
        };
        let block = result
            .recv()
            .map_err(|_| io::Error::other("a gzip worker thread stopped unexpectedly"))??;
        self.write_block(block)
    }

    /// Writes finished blocks without waiting, so output flows while input arrives.
    fn write_ready(&mut self) -> io::Result<()> {
        while let Some(result) = self.pending.front() {
            match result.try_recv() {
                Ok(block) => {
                    self.pending.pop_front();
                    self.write_block(block?)?;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return self.write_oldest(),
            }
        }
        Ok(())
    }

    /// Writes the next block in order (after the header, the first time).
    fn write_block(&mut self, block: Deflated) -> io::Result<()> {
        if !self.header_written {
            self.write_header()?;
        }
        self.inner.write_all(&block.data)?;
        self.crc.combine(&block.crc);
        Ok(())
    }

    fn write_header(&mut self) -> io::Result<()> {
        // RFC 1952: magic, deflate, no flags, no mtime, XFL as gzip sets it, OS = Unix.
        let xfl = match self.level.level() {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        self.inner
            .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3])?;
        self.header_written = true;
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK_SIZE - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK_SIZE {
            self.submit(false)?;
            self.write_ready()?;
        }
        Ok(n)
    }

    /// Compresses everything written so far and flushes the inner writer, like a zlib sync
    /// flush: what has been written can then be decompressed from the output.
    fn flush(&mut self) -> io::Result<()> {
        if !self.block.is_empty() {
            self.submit(false)?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.inner.flush()
    }
}

/// Raw-deflates one block, primed with `dictionary`; a sync flush ends every block but the
/// last, which ends the stream.
fn deflate_block(
    level: Compression,
    dictionary: &[u8],
    input: &[u8],
    last: bool,
) -> io::Result<Deflated> {
    thread_local! {
        // One deflate state per worker, reused across blocks: allocating its window and
        // hash tables per block would cost more than priming them.
        static DEFLATE: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
    }
    let mut crc = Crc::new();
    crc.update(input);
    let data = DEFLATE.with_borrow_mut(|state| {
        let compress = match state {
            Some((l, c)) if *l == level.level() => {
                c.reset();
                c
            }
            _ => &mut state.insert((level.level(), Compress::new(level, false))).1,
        };
        if !dictionary.is_empty() {
            compress
                .set_dictionary(dictionary)
                .map_err(io::Error::other)?;
        }
        let flush = if last {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        // Incompressible input grows by a few bytes per 16 KiB stored block.
        let mut out = Vec::with_capacity(input.len() + input.len() / 64 + 1024);
        let start = compress.total_in();
        loop {
            let consumed = (compress.total_in() - start) as usize;
            let status = compress
                .compress_vec(&input[consumed..], &mut out, flush)
                .map_err(io::Error::other)?;
            let consumed = (compress.total_in() - start) as usize;
            // Done when the stream ended, or (sync flush) all input is in and the flush
            // fitted: zlib's rule is that output space left over means the flush completed.
            let done = match status {
                Status::StreamEnd => true,
                _ => !last && consumed == input.len() && out.len() < out.capacity(),
            };
            if done {
                return Ok::<_, io::Error>(out);
            }
            out.reserve(64 * 1024);
        }
    })?;
    Ok(Deflated { data, crc })
}

type Job = Box<dyn FnOnce() + Send>;

/// The process-wide compression workers, one per core, shared by every writer.
struct Pool {
    jobs: Mutex<mpsc::Sender<Job>>,
    workers: usize,
}

impl Pool {
    fn run(&self, job: Job) {
        // The workers live as long as the process, so the channel never closes.
        let _ = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job);
    }
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = std::sync::Arc::new(Mutex::new(queue));
        for i in 0..workers {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("coffer-gzip-{i}"))
                .spawn(move || {
                    loop {
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("cannot start a gzip worker thread");
        }
        Pool {
            jobs: Mutex::new(jobs),
            workers,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn compress(data: &[u8], level: u32, chunk: usize) -> Vec<u8> {
        let mut w = ParallelGzipWriter::new(Vec::new(), level);
        for piece in data.chunks(chunk.max(1)) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    /// Decodes with a single-member decoder: anything after the first member would be lost,
    /// so equality also proves the output is one member.
    fn gunzip_one_member(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn text(len: usize) -> Vec<u8> {
        let words = [
            "INSERT",
            "public.documents",
            "portal",
            "alembic",
            "uuid",
            "{\"rev\": 3}",
            "lorem",
            "ipsum",
            "\n",
            "\t",
        ];
        let mut out = Vec::with_capacity(len + 32);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
            out.extend_from_slice(format!(" {} ", x % 1000).as_bytes());
        }
        out.truncate(len);
        out
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn round_trips_sizes_around_block_boundaries() {
        let cases = [
            0,
            1,
            WINDOW - 1,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            3 * BLOCK_SIZE + 12_345,
        ];
        for len in cases {
            let data = text(len);
            for chunk in [7, 4096, BLOCK_SIZE + 3] {
                let gz = compress(&data, 6, chunk);
                assert_eq!(gunzip_one_member(&gz), data, "len {len}, chunk {chunk}");
            }
        }
    }

    #[test]
    fn incompressible_and_mixed_data_round_trip_at_every_level() {
        let mut data = noise(2 * BLOCK_SIZE + 77);
        data.extend(text(BLOCK_SIZE + 5));
        for level in 1..=9 {
            let gz = compress(&data, level, 65_536);
            assert_eq!(gunzip_one_member(&gz), data, "level {level}");
        }
    }

    #[test]
    fn header_and_trailer_are_standard() {
        let data = text(3 * BLOCK_SIZE + 1);
        let gz = compress(&data, 6, 1 << 16);
        assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0]);
        let n = gz.len();
        let mut crc = Crc::new();
        crc.update(&data);
        assert_eq!(gz[n - 8..n - 4], crc.sum().to_le_bytes());
        assert_eq!(gz[n - 4..], (data.len() as u32).to_le_bytes());
    }

    #[test]
    fn output_is_within_half_a_percent_of_single_stream_gzip() {
        let data = text(6 * BLOCK_SIZE);
        let parallel = compress(&data, 6, 1 << 16).len() as f64;
        let mut single = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len() as f64;
        assert!(
            (parallel - single).abs() / single < 0.005,
            "parallel {parallel} vs single-stream {single}"
        );
    }

    #[test]
    fn flush_makes_everything_written_so_far_readable() {
        let data = text(BLOCK_SIZE + 100);
        let mut w = ParallelGzipWriter::new(Vec::new(), 6);
        w.write_all(&data).unwrap();
        w.flush().unwrap();
        let partial = w.inner.clone();
        let mut d = flate2::write::DeflateDecoder::new(Vec::new());
        d.write_all(&partial[10..]).unwrap();
        d.flush().unwrap();
        assert_eq!(d.get_ref(), &data);
        let gz = w.finish().unwrap();
        assert_eq!(gunzip_one_member(&gz), data);
    }

    #[test]
    fn ended_members_decode_alone_and_together() {
        let data = text(3 * BLOCK_SIZE + 500);
        let cuts = [
            0,
            10,
            BLOCK_SIZE - 3,
            BLOCK_SIZE - 3,
            2 * BLOCK_SIZE + 7,
            data.len(),
        ];
        let mut w = ParallelGzipWriter::new(Vec::new(), 6);
        let mut offsets = vec![0];
        for pair in cuts.windows(2) {
            w.write_all(&data[pair[0]..pair[1]]).unwrap();
            w.end_member().unwrap();
            offsets.push(w.get_ref().len());
        }
        let gz = w.finish().unwrap();
        assert_eq!(
            gz.len(),
            *offsets.last().unwrap(),
            "nothing after the last member"
        );
        let mut all = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, data);
        for (i, pair) in cuts.windows(2).enumerate() {
            let member = &gz[offsets[i]..offsets[i + 1]];
            assert_eq!(member.is_empty(), pair[0] == pair[1], "no empty member");
            if !member.is_empty() {
                assert_eq!(gunzip_one_member(member), &data[pair[0]..pair[1]]);
            }
        }
    }

    #[test]
    fn writers_on_several_threads_share_the_pool() {
        let outputs: Vec<(Vec<u8>, Vec<u8>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    s.spawn(move || {
                        let data = text(2 * BLOCK_SIZE + i * 1000);
                        let gz = compress(&data, 6, 10_000);
                        (data, gz)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (data, gz) in outputs {
            assert_eq!(gunzip_one_member(&gz), data);
        }
    }
}
