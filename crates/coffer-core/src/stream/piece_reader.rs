//! One piece of a database artifact read on its own (a parallel restore gives each session
//! one): seek to the piece's compressed offset (in the file, or in age's STREAM plaintext
//! for an encrypted artifact), decode exactly its range and hash the plain bytes, so
//! [`PieceReader::finish`] can hold them against the piece's size and SHA-256 before the
//! caller commits anything.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::format::manifest::Artifact;
use crate::format::pieces::Piece;
use crate::remote::ranged::RangedReader;
use crate::remote::stream::{HEADER_PROBE, RemoteObject, TransferFailure};
use crate::stream::artifact::{ArtifactError, decompress};
use crate::stream::crypto::Identities;
use crate::stream::digest::HashingReader;

/// Read buffer below the decoder: a piece is read front to back once.
const READ_BUFFER: usize = 256 * 1024;

/// Where a piece is read from: the artifact file, or the artifact on the remote (each
/// piece then fetched with its own ranged reads, see [`RangedReader`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum PieceSource<'a> {
    /// A local artifact file.
    File(&'a Path),
    /// An artifact of a remote backup.
    Remote(&'a RemoteObject),
}

/// The plain SQL of one piece of a database artifact, decoded on its own, checked at its
/// end against the piece's uncompressed_size and sha256.
///
/// Reading never yields more than the piece's `uncompressed_size` (a piece that decodes to
/// more fails the read), and at most a few buffers are held, whatever the piece's size.
pub struct PieceReader {
    plain: HashingReader<Box<dyn Read + Send>>,
    /// Compressed bytes the decoder took from the piece's range.
    consumed: Arc<AtomicU64>,
    piece: Piece,
    /// Where the piece stands in the artifact's index, for messages.
    index: usize,
    path: PathBuf,
    /// Set when a remote piece's transfer failed (see [`PieceReader::damaged`]).
    transfer: Option<TransferFailure>,
}

impl PieceReader {
    /// Opens piece `piece` of the artifact file `path` (see [`PieceReader::open_from`]).
    #[cfg(test)]
    pub fn open(
        path: &Path,
        artifact: &Artifact,
        piece: &Piece,
        identities: Option<&Identities>,
    ) -> Result<PieceReader, ArtifactError> {
        PieceReader::open_from(PieceSource::File(path), artifact, piece, identities)
    }

    /// Opens piece `piece` of the artifact at `source` (compression from `artifact`
    /// (`Artifact::compression`), encrypted when `artifact.encryption.is_some()`: then seek
    /// in age's STREAM plaintext as check/pieces.rs does). Reads exactly `piece.length`
    /// compressed bytes from `piece.offset`; gzip: every member in that range (MultiGzDecoder
    /// over a Take), zstd: every frame; uncompressed artifacts have no pieces. A remote
    /// piece is fetched with its own ranged reads: unencrypted exactly
    /// `[offset, offset + length)`; encrypted the age header and then only the ciphertext
    /// chunks that hold the piece's plaintext range.
    pub(crate) fn open_from(
        source: PieceSource<'_>,
        artifact: &Artifact,
        piece: &Piece,
        identities: Option<&Identities>,
    ) -> Result<PieceReader, ArtifactError> {
        let path = match source {
            PieceSource::File(path) => path.to_path_buf(),
            PieceSource::Remote(object) => object.display_path(),
        };
        let path = path.as_path();
        let index = artifact
            .pieces
            .as_ref()
            .and_then(|all| all.iter().position(|p| p.offset == piece.offset))
            .unwrap_or(0);
        let damaged = |source: io::Error| ArtifactError::Damaged {
            path: path.to_path_buf(),
            source: in_piece(index, piece, source),
        };
        let identities = || {
            identities.ok_or_else(|| ArtifactError::NoIdentity {
                path: path.to_path_buf(),
            })
        };
        let mut transfer = None;
        // The compressed stream, positioned at the piece.
        let compressed: Box<dyn Read + Send> = match source {
            PieceSource::File(_) => {
                let file = crate::util::fsutil::open_regular(path).map_err(|source| {
                    ArtifactError::Open {
                        path: path.to_path_buf(),
                        source,
                    }
                })?;
                if artifact.encryption.is_some() {
                    let mut plain = identities()?.decrypt(
                        BufReader::with_capacity(READ_BUFFER, file),
                        &path.display().to_string(),
                    )?;
                    plain.seek(SeekFrom::Start(piece.offset)).map_err(damaged)?;
                    Box::new(plain)
                } else {
                    let mut file = file;
                    file.seek(SeekFrom::Start(piece.offset)).map_err(damaged)?;
                    Box::new(BufReader::with_capacity(READ_BUFFER, file))
                }
            }
            PieceSource::Remote(object) => {
                let end = piece.offset.saturating_add(piece.length);
                if artifact.encryption.is_some() {
                    // First the header (read from offset 0), then the chunks of the piece.
                    let ranged = RangedReader::new(object.clone(), HEADER_PROBE);
                    let (control, failure) = (ranged.control(), ranged.failure());
                    transfer = Some(failure.clone());
                    let opened = identities()?.decrypt(ranged, &path.display().to_string());
                    let mut plain = opened.map_err(|e| transferred(path, &failure, e.into()))?;
                    // age does not read past its header: the payload starts here.
                    control.limit_to(age_ciphertext_end(control.position(), end));
                    // age checks a seek to a chunk's first byte against the stream's length,
                    // reading its last chunk, which lies past the limit: seek one byte
                    // before and read that byte instead.
                    let aligned = piece.offset > 0 && piece.offset.is_multiple_of(AGE_CHUNK);
                    let before = u64::from(aligned);
                    plain
                        .seek(SeekFrom::Start(piece.offset - before))
                        .and_then(|_| {
                            let mut skipped = [0u8; 1];
                            plain.read_exact(&mut skipped[..before as usize])
                        })
                        .map_err(|e| transferred(path, &failure, damaged(e)))?;
                    Box::new(plain)
                } else {
                    let mut ranged = RangedReader::new(object.clone(), end);
                    transfer = Some(ranged.failure());
                    ranged
                        .seek(SeekFrom::Start(piece.offset))
                        .map_err(damaged)?;
                    Box::new(ranged)
                }
            }
        };
        let consumed = Arc::new(AtomicU64::new(0));
        let range = CountedRange {
            inner: compressed.take(piece.length),
            consumed: consumed.clone(),
        };
        let decoded = decompress(artifact.compression, Box::new(range)).map_err(|e| {
            let e = damaged(e);
            match &transfer {
                Some(t) => transferred(path, t, e),
                None => e,
            }
        })?;
        let bounded: Box<dyn Read + Send> = Box::new(AtMost {
            inner: decoded,
            left: piece.uncompressed_size,
        });
        Ok(PieceReader {
            plain: HashingReader::new(bounded),
            consumed,
            piece: piece.clone(),
            index,
            path: path.to_path_buf(),
            transfer,
        })
    }

    /// Plain bytes read so far.
    #[cfg(test)]
    pub fn plain_bytes(&self) -> u64 {
        self.plain.size()
    }

    /// Wraps a read error from this reader as damage of the file, naming the piece; or,
    /// when the remote's transfer failed, as that failure.
    pub fn damaged(&self, source: io::Error) -> ArtifactError {
        let damaged = ArtifactError::Damaged {
            path: self.path.clone(),
            source: in_piece(self.index, &self.piece, source),
        };
        match &self.transfer {
            Some(t) => transferred(&self.path, t, damaged),
            None => damaged,
        }
    }

    /// Whether the remote's transfer of this piece failed (a read error is then not
    /// damage).
    pub fn transfer_failed(&self) -> bool {
        self.transfer
            .as_ref()
            .is_some_and(|t| t.lock().expect("transfer lock").is_some())
    }

    /// At the end: the decoder consumed exactly the range, the plain size and SHA-256 equal
    /// the piece's; else ArtifactError::Damaged/Mismatch naming the piece (index, table).
    /// What the caller left unread is read (and hashed) first.
    pub fn finish(mut self) -> Result<(), ArtifactError> {
        io::copy(&mut self.plain, &mut io::sink()).map_err(|e| self.damaged(e))?;
        let consumed = self.consumed.load(Ordering::Relaxed);
        if consumed != self.piece.length {
            return Err(self.damaged(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "its compressed data ends after {consumed} of its {} bytes",
                    self.piece.length
                ),
            )));
        }
        let named = describe(self.index, &self.piece);
        let mismatch = |what, expected: String, actual: String| ArtifactError::Mismatch {
            path: self.path.clone(),
            what,
            expected: format!("{expected} for {named}"),
            actual,
        };
        let (_, plain) = self.plain.finish();
        if plain.size != self.piece.uncompressed_size {
            return Err(mismatch(
                "piece size",
                self.piece.uncompressed_size.to_string(),
                plain.size.to_string(),
            ));
        }
        if plain.sha256 != self.piece.sha256 {
            return Err(mismatch(
                "piece sha256",
                self.piece.sha256.clone(),
                plain.sha256,
            ));
        }
        Ok(())
    }
}

impl Read for PieceReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.plain.read(buf)
    }
}

/// `err`, or the remote's transfer failure when one was recorded (a read that failed
/// because the download did is not damage).
fn transferred(path: &Path, failure: &TransferFailure, err: ArtifactError) -> ArtifactError {
    match failure.lock().expect("transfer lock").clone() {
        Some(reason) => ArtifactError::Transfer {
            path: path.to_path_buf(),
            reason,
        },
        None => err,
    }
}

/// Plaintext bytes in one chunk of age's STREAM, and the tag each chunk carries (the age
/// format: 64 KiB chunks sealed with ChaCha20-Poly1305).
const AGE_CHUNK: u64 = 64 << 10;
const AGE_TAG: u64 = 16;

/// Where the ciphertext that holds plaintext `[0, plain_end)` ends, for a payload
/// (after the header and nonce) starting at `payload`: the end of the chunk that holds the
/// last byte. The reader is capped at the object's size besides.
fn age_ciphertext_end(payload: u64, plain_end: u64) -> u64 {
    let chunks = plain_end.div_ceil(AGE_CHUNK).max(1);
    payload.saturating_add(chunks.saturating_mul(AGE_CHUNK + AGE_TAG))
}

/// `piece 3 (data of public.t)`, `piece 0 (pre-data)`.
fn describe(index: usize, piece: &Piece) -> String {
    match &piece.table {
        Some(table) => format!("piece {index} (data of {table})"),
        None => format!(
            "piece {index} ({})",
            serde_json::to_value(piece.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
    }
}

/// A read error, with the piece it happened in.
fn in_piece(index: usize, piece: &Piece, source: io::Error) -> io::Error {
    io::Error::new(
        source.kind(),
        format!(
            "{} at compressed offset {}: {source}",
            describe(index, piece),
            piece.offset
        ),
    )
}

/// The piece's compressed range, counting what the decoder takes of it.
struct CountedRange<R> {
    inner: io::Take<R>,
    consumed: Arc<AtomicU64>,
}

impl<R: Read> Read for CountedRange<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Fails a read past `left` more bytes: a piece that decodes to more than its index says
/// (a forged size, a compression bomb) is stopped there, not streamed on.
struct AtMost<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for AtMost<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte more than allowed tells "ends here" from "goes on".
        let want = buf
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "it decodes to more bytes than its uncompressed_size",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
