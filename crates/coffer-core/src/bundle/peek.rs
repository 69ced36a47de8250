//! The first bytes of an artifact shown to the caller before the rest of it is read (see
//! [`super::import::Arrived::EncryptedStart`]): an encrypted artifact's age header lets a
//! restore try its identity before consuming the upload.

use std::io::{self, Write};

use super::BundleError;

/// The check of an artifact's first bytes.
pub(super) type Check<'a> = &'a mut dyn FnMut(&[u8]) -> Result<(), BundleError>;

/// Bytes held back for the check: an age header with a few recipients is well under this.
pub(super) const PEEK_BYTES: usize = 64 << 10;

/// Passes everything to `inner`, except that the first [`PEEK_BYTES`] (or the whole
/// artifact, if shorter) are held until `check` accepted them. A refusal stops the copy with
/// an I/O error; [`PeekWriter::refusal`] then gives the check's error.
pub(super) struct PeekWriter<'a, W: Write> {
    inner: W,
    /// `Some` until the check ran (never, without a check).
    held: Option<Vec<u8>>,
    check: Option<Check<'a>>,
    refusal: Option<BundleError>,
}

impl<'a, W: Write> PeekWriter<'a, W> {
    /// `check` is `None`: nothing is held.
    pub(super) fn new(inner: W, check: Option<Check<'a>>) -> PeekWriter<'a, W> {
        PeekWriter {
            inner,
            held: check.is_some().then(Vec::new),
            check,
            refusal: None,
        }
    }

    /// The check's error, once it refused.
    pub(super) fn refusal(&mut self) -> Option<BundleError> {
        self.refusal.take()
    }

    /// Checks and passes on what is still held (an artifact shorter than [`PEEK_BYTES`]),
    /// then gives back the inner writer.
    pub(super) fn finish(mut self) -> Result<W, Result<io::Error, BundleError>> {
        if let (Some(held), Some(check)) = (self.held.take(), self.check.as_mut()) {
            check(&held).map_err(Err)?;
            self.inner.write_all(&held).map_err(Ok)?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for PeekWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(held) = self.held.as_mut() else {
            return self.inner.write(buf);
        };
        held.extend_from_slice(buf);
        if held.len() >= PEEK_BYTES
            && let (Some(held), Some(check)) = (self.held.take(), self.check.as_mut())
        {
            if let Err(e) = check(&held) {
                self.refusal = Some(e);
                return Err(io::Error::other("refused by the check of its first bytes"));
            }
            self.inner.write_all(&held)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(_: &[u8]) -> Result<(), BundleError> {
        Err(BundleError::Damaged {
            origin: "test".into(),
            detail: "refused".into(),
        })
    }

    #[test]
    fn held_bytes_pass_only_once_checked() {
        // Long enough: checked once PEEK_BYTES are in, then everything passes.
        let mut seen = 0;
        let mut count = |b: &[u8]| {
            seen = b.len();
            Ok(())
        };
        let mut w = PeekWriter::new(Vec::new(), Some(&mut count));
        w.write_all(&vec![1u8; PEEK_BYTES + 10]).unwrap();
        w.write_all(b"tail").unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len(), PEEK_BYTES + 14);
        assert_eq!(seen, PEEK_BYTES + 10);

        // Short: checked at the end.
        let mut calls = 0;
        let mut once = |_: &[u8]| {
            calls += 1;
            Ok(())
        };
        let mut w = PeekWriter::new(Vec::new(), Some(&mut once));
        w.write_all(b"short").unwrap();
        assert_eq!(w.finish().unwrap(), b"short");
        assert_eq!(calls, 1);

        // Refused: nothing reaches the inner writer, and the refusal is given back.
        let mut no = refuse;
        let mut w = PeekWriter::new(Vec::new(), Some(&mut no));
        assert!(w.write_all(&vec![0u8; PEEK_BYTES]).is_err());
        assert!(matches!(w.refusal(), Some(BundleError::Damaged { .. })));
        assert!(w.inner.is_empty());
        let mut no = refuse;
        let mut w = PeekWriter::new(Vec::new(), Some(&mut no));
        w.write_all(b"short").unwrap();
        assert!(matches!(w.finish(), Err(Err(BundleError::Damaged { .. }))));

        // No check: nothing held.
        let mut w = PeekWriter::new(Vec::new(), None);
        w.write_all(b"x").unwrap();
        assert_eq!(w.inner, b"x");
    }
}
