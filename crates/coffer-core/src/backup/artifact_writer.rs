//! One artifact's writer chain: progress and cancel tap, hashes, compression, optional age
//! encryption, and the fsynced file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{BackupError, BackupSettings, IO_BUFFER};
use crate::cancel::CancelFlag;
use crate::format::manifest::{self, Artifact, ArtifactRole, Compression, Encryption};
use crate::format::pieces::Piece;
use crate::progress::Progress;
use crate::stream::digest::HashingWriter;
use crate::stream::parallel_gzip::ParallelGzipWriter;
use crate::stream::piece_writer::CutWrite;
use crate::util::fsutil;

/// The writer chain of one artifact, outermost (first to receive bytes) first:
/// progress/cancel tap → hash of the plain stream → gzip → age (optional) → hash of the
/// stored bytes → buffered file.
type FileSink = HashingWriter<BufWriter<File>>;

/// What every artifact stream reports to and is stopped by.
pub(super) struct Taps<'a> {
    /// Receives byte counts.
    pub(super) progress: &'a dyn Progress,
    /// Set by a signal.
    pub(super) cancel: &'a CancelFlag,
    /// Set by whichever artifact fails first.
    pub(super) abort: &'a AtomicBool,
}

impl Taps<'_> {
    /// The error for a stream that was stopped, if it was: a signal, or the other artifact.
    pub(super) fn stopped(&self) -> Option<BackupError> {
        match self.cancel.signal() {
            Some(signal) => Some(BackupError::Interrupted { signal }),
            None => self
                .abort
                .load(Ordering::SeqCst)
                .then_some(BackupError::Aborted),
        }
    }
}

/// One artifact being written into the staging directory.
pub(super) struct ArtifactWriter<'a> {
    inner: HashingWriter<Compressor<Counting<MaybeEncrypted<FileSink>>>>,
    compression: Compression,
    role: ArtifactRole,
    taps: &'a Taps<'a>,
    /// The artifact file in the staging directory.
    pub(super) path: PathBuf,
    encryption: Option<Encryption>,
    file: String,
}

impl<'a> ArtifactWriter<'a> {
    /// Creates the artifact file for `role` and the writer chain in front of it.
    pub(super) fn create(
        settings: &BackupSettings,
        staging: &Path,
        role: ArtifactRole,
        encryption: Option<Encryption>,
        taps: &'a Taps<'a>,
    ) -> Result<Self, BackupError> {
        let file = manifest::artifact_file_name(role, settings.compression, encryption);
        let path = staging.join(&file);
        let f = fsutil::create_private(&path).map_err(|e| BackupError::io("create", &path, e))?;
        let sink = HashingWriter::new(BufWriter::with_capacity(IO_BUFFER, f));
        let enc = match &settings.recipients {
            Some(r) => MaybeEncrypted::Age(
                r.encrypt(sink)
                    .map_err(|e| BackupError::io("start encrypting", &path, e))?,
            ),
            None => MaybeEncrypted::Plain(sink),
        };
        let compressor = Compressor::new(
            settings.compression,
            settings.level,
            Counting {
                inner: enc,
                count: 0,
            },
        )
        .map_err(|e| BackupError::io("start compressing", &path, e))?;
        taps.progress.start(role, &file);
        Ok(ArtifactWriter {
            inner: HashingWriter::new(compressor),
            compression: settings.compression,
            role,
            taps,
            path,
            encryption,
            file,
        })
    }

    /// Flushes every stage, fsyncs the file and returns the artifact record.
    pub(super) fn finish(self) -> Result<Artifact, BackupError> {
        self.finish_with_pieces(None)
    }

    /// Like [`ArtifactWriter::finish`], recording the piece index of a dump written through
    /// a [`crate::stream::piece_writer::PieceWriter`] (its last length is set here).
    pub(super) fn finish_with_pieces(
        self,
        mut pieces: Option<Vec<Piece>>,
    ) -> Result<Artifact, BackupError> {
        let path = self.path;
        let io = |e| BackupError::io("write", &path, e);
        let (compressor, plain) = self.inner.finish();
        let counted = compressor.finish().map_err(io)?;
        if let Some(pieces) = pieces.as_mut() {
            crate::stream::piece_writer::complete_index(pieces, counted.count);
        }
        let sink = counted.inner.finish().map_err(io)?;
        let (buffered, stored) = sink.finish();
        let file = buffered.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        let mut artifact = Artifact {
            role: self.role,
            file: self.file,
            size: stored.size,
            sha256: stored.sha256,
            uncompressed_size: plain.size,
            uncompressed_sha256: plain.sha256,
            compression: self.compression,
            encryption: self.encryption,
            pieces,
        };
        // Every parse checks the index and refuses the whole manifest when it does not fit:
        // a backup without an index rather than one nobody can read.
        if let Some(pieces) = &artifact.pieces
            && crate::format::pieces::check(&artifact, pieces).is_err()
        {
            artifact.pieces = None;
        }
        Ok(artifact)
    }
}

impl CutWrite for ArtifactWriter<'_> {
    fn cut(&mut self) -> io::Result<u64> {
        let compressor = self.inner.get_mut();
        compressor.cut()?;
        Ok(compressor.get_ref().count)
    }
}

/// Counts the bytes the compressor writes: the offsets of the piece index (for an
/// encrypted artifact, offsets in age's plaintext).
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Input per libzstd worker job (its minimum is 512 KiB).
const ZSTD_JOB_SIZE: u32 = 1 << 20;

/// The compression stage: gzip (one member, what `gunzip` reads, compressed block-parallel
/// on every core) or zstd (multi-threaded frames, what `zstd -d` reads).
enum Compressor<W: Write> {
    Gzip(ParallelGzipWriter<W>),
    /// `None` only after a failed cut (the writer went down with the old frame).
    Zstd(Option<zstd::stream::write::Encoder<'static, W>>, u32),
}

impl<W: Write> Compressor<W> {
    fn new(compression: Compression, level: u32, inner: W) -> io::Result<Self> {
        Ok(match compression {
            Compression::Gzip => Compressor::Gzip(ParallelGzipWriter::new(inner, level)),
            Compression::Zstd => Compressor::Zstd(Some(zstd_encoder(inner, level)?), level),
        })
    }

    /// Ends the gzip member or zstd frame (see [`CutWrite::cut`]).
    fn cut(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.end_member(),
            Compressor::Zstd(slot, level) => {
                zstd_of(slot)?;
                // A frame ends only with its encoder: finish it, start the next on the
                // same writer (libzstd's workers start again with it).
                let w = slot.take().expect("checked").finish()?;
                *slot = Some(zstd_encoder(w, *level)?);
                Ok(())
            }
        }
    }

    /// The writer below.
    fn get_ref(&self) -> &W {
        match self {
            Compressor::Gzip(e) => e.get_ref(),
            Compressor::Zstd(e, _) => e.as_ref().expect("a zstd frame is open").get_ref(),
        }
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(mut e, _) => {
                zstd_of(&mut e)?;
                e.take().expect("checked").finish()
            }
        }
    }
}

/// The open zstd encoder, or the error of the cut that lost it.
fn zstd_of<'a, W: Write>(
    slot: &'a mut Option<zstd::stream::write::Encoder<'static, W>>,
) -> io::Result<&'a mut zstd::stream::write::Encoder<'static, W>> {
    slot.as_mut()
        .ok_or_else(|| io::Error::other("the zstd encoder failed at a frame boundary"))
}

/// A multi-threaded zstd encoder writing one frame with a checksum.
fn zstd_encoder<W: Write>(
    inner: W,
    level: u32,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut e = zstd::stream::write::Encoder::new(inner, level as i32)?;
    // zstd's own worker threads keep a core busy per artifact even when the other
    // artifact has finished.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    e.multithread(workers)?;
    // libzstd's default job is 4 windows (8 MiB at level 3), buffered several times per
    // worker and per artifact: 170 MiB resident. 1 MiB jobs keep both cores as busy at a
    // fraction of the memory.
    e.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
    e.include_checksum(true)?;
    Ok(e)
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e, _) => zstd_of(e)?.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e, _) => zstd_of(e)?.flush(),
        }
    }
}

impl Write for ArtifactWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.taps.stopped().is_some() {
            return Err(crate::cancel::cancelled_error());
        }
        let n = self.inner.write(buf)?;
        self.taps.progress.advance(self.role, n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Either the age stream or the plain sink, so one chain type serves both.
enum MaybeEncrypted<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> MaybeEncrypted<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            MaybeEncrypted::Plain(w) => Ok(w),
            MaybeEncrypted::Age(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for MaybeEncrypted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MaybeEncrypted::Plain(w) => w.write(buf),
            MaybeEncrypted::Age(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            MaybeEncrypted::Plain(w) => w.write_all(buf),
            MaybeEncrypted::Age(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeEncrypted::Plain(w) => w.flush(),
            MaybeEncrypted::Age(w) => w.flush(),
        }
    }
}
