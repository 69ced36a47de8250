//! Readers and writers that count and SHA-256 the bytes passing through them.
//!
//! They sit between the stages of a stream (tar → hash → gzip → age → hash → file) so a
//! single pass yields both the stored and the uncompressed size and digest.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// Byte count and SHA-256 of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDigest {
    /// Number of bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// A writer that hashes and counts everything written to the inner writer.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The inner writer, for stages that need to reach it (e.g. to flush or sync).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Returns the inner writer and the digest of everything written.
    pub fn finish(self) -> (W, StreamDigest) {
        let digest = StreamDigest {
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        };
        (self.inner, digest)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read from the inner reader.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Bytes read so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Returns the inner reader and the digest of everything read.
    pub fn finish(self) -> (R, StreamDigest) {
        let digest = StreamDigest {
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        };
        (self.inner, digest)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// SHA-256 and size of a whole reader, read to the end in one pass.
pub fn digest_reader(reader: impl Read) -> io::Result<StreamDigest> {
    let mut hashing = HashingReader::new(reader);
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(hashing.finish().1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn writer_and_reader_agree_with_known_digest() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"a").unwrap();
        w.write_all(b"bc").unwrap();
        let (out, d) = w.finish();
        assert_eq!(out, b"abc");
        assert_eq!(
            d,
            StreamDigest {
                size: 3,
                sha256: ABC.into()
            }
        );
        assert_eq!(digest_reader(&b"abc"[..]).unwrap().sha256, ABC);
    }
}
