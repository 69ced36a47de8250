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
use crate::stream::artifact::{ArtifactError, decompress};
use crate::stream::crypto::Identities;
use crate::stream::digest::HashingReader;

/// Read buffer below the decoder: a piece is read front to back once.
const READ_BUFFER: usize = 256 * 1024;

/// The plain SQL of one piece of a local database artifact, decoded on its own, checked at
/// its end against the piece's uncompressed_size and sha256.
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
}

impl PieceReader {
    /// Opens piece `piece` of the artifact file `path` (compression from `artifact`
    /// (`Artifact::compression`), encrypted when `artifact.encryption.is_some()`: then seek
    /// in age's STREAM plaintext as check/pieces.rs does). Reads exactly `piece.length`
    /// compressed bytes from `piece.offset`; gzip: every member in that range (MultiGzDecoder
    /// over a Take), zstd: every frame; uncompressed artifacts have no pieces.
    pub fn open(
        path: &Path,
        artifact: &Artifact,
        piece: &Piece,
        identities: Option<&Identities>,
    ) -> Result<PieceReader, ArtifactError> {
        let index = artifact
            .pieces
            .as_ref()
            .and_then(|all| all.iter().position(|p| p.offset == piece.offset))
            .unwrap_or(0);
        let damaged = |source: io::Error| ArtifactError::Damaged {
            path: path.to_path_buf(),
            source: in_piece(index, piece, source),
        };
        let file =
            crate::util::fsutil::open_regular(path).map_err(|source| ArtifactError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        // The compressed stream, positioned at the piece.
        let compressed: Box<dyn Read + Send> = if artifact.encryption.is_some() {
            let ids = identities.ok_or_else(|| ArtifactError::NoIdentity {
                path: path.to_path_buf(),
            })?;
            let mut plain = ids.decrypt(
                BufReader::with_capacity(READ_BUFFER, file),
                &path.display().to_string(),
            )?;
            plain.seek(SeekFrom::Start(piece.offset)).map_err(damaged)?;
            Box::new(plain)
        } else {
            let mut file = file;
            file.seek(SeekFrom::Start(piece.offset)).map_err(damaged)?;
            Box::new(BufReader::with_capacity(READ_BUFFER, file))
        };
        let consumed = Arc::new(AtomicU64::new(0));
        let range = CountedRange {
            inner: compressed.take(piece.length),
            consumed: consumed.clone(),
        };
        let decoded = decompress(artifact.compression, Box::new(range)).map_err(damaged)?;
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
        })
    }

    /// Plain bytes read so far.
    #[cfg(test)]
    pub fn plain_bytes(&self) -> u64 {
        self.plain.size()
    }

    /// Wraps a read error from this reader as damage of the file, naming the piece.
    pub fn damaged(&self, source: io::Error) -> ArtifactError {
        ArtifactError::Damaged {
            path: self.path.clone(),
            source: in_piece(self.index, &self.piece, source),
        }
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
