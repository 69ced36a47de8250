//! A remote artifact as a blocking `Read + Seek`, for reading one piece of it (a parallel
//! restore gives each session one): every read continues a bounded ranged stream
//! ([`RemoteObject::open_range`]) from the current position, and a seek elsewhere drops
//! that stream and starts the next read's at the new position. Nothing at or past the
//! reader's limit is fetched, so a piece costs its own bytes, not the rest of the object.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::stream::{ObjectReader, RemoteObject, TransferFailure};

/// What the owner of a [`RangedReader`] that was handed on (to age's decryptor) can still
/// see and set: the position and the limit.
#[derive(Debug, Clone)]
pub struct RangeControl {
    position: Arc<AtomicU64>,
    limit: Arc<AtomicU64>,
}

impl RangeControl {
    /// Where the reader stands in the object.
    pub fn position(&self) -> u64 {
        self.position.load(Ordering::SeqCst)
    }

    /// Fetches nothing at or past `end` from now on (reads there end the stream): the next
    /// range opened stops there. A range already open keeps its end.
    pub fn limit_to(&self, end: u64) {
        self.limit.store(end, Ordering::SeqCst);
    }
}

/// Bytes a piece's stream holds ahead of its reader: a parallel restore reads one piece per
/// session, so this times the sessions stays well inside the memory bound (16 sessions,
/// 16 MiB) while the download still runs ahead of the apply.
pub const PIECE_WINDOW: usize = 1 << 20;

/// `Read + Seek` over a remote object through ranged `GET`s, holding at most one bounded
/// stream ([`PIECE_WINDOW`] bytes ahead) at a time.
pub struct RangedReader {
    object: RemoteObject,
    control: RangeControl,
    /// The open stream and where it ends.
    current: Option<(ObjectReader, u64)>,
    /// The first transfer failure of any stream this reader opened.
    failure: TransferFailure,
}

impl RangedReader {
    /// A reader at offset 0 of `object`, which fetches nothing past `limit` (and never past
    /// the object's listed size) until [`RangeControl::limit_to`] says otherwise.
    pub fn new(object: RemoteObject, limit: u64) -> RangedReader {
        RangedReader {
            object,
            control: RangeControl {
                position: Arc::new(AtomicU64::new(0)),
                limit: Arc::new(AtomicU64::new(limit)),
            },
            current: None,
            failure: Arc::new(Mutex::new(None)),
        }
    }

    /// The handle to its position and limit.
    pub fn control(&self) -> RangeControl {
        self.control.clone()
    }

    /// Where a transfer failure is recorded, for the decoder above to tell it from damage.
    pub fn failure(&self) -> TransferFailure {
        self.failure.clone()
    }

    fn position(&self) -> u64 {
        self.control.position()
    }

    fn set_position(&mut self, at: u64) {
        self.control.position.store(at, Ordering::SeqCst);
    }
}

impl Read for RangedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let at = self.position();
        let open = matches!(&self.current, Some((_, stream_end)) if at < *stream_end);
        if !open {
            let end = self
                .control
                .limit
                .load(Ordering::SeqCst)
                .min(self.object.size());
            if at >= end {
                return Ok(0);
            }
            // The stream before is spent (or was dropped by a seek): its task has ended.
            self.current = Some((self.object.open_range(at, end, PIECE_WINDOW), end));
        }
        let (stream, _) = self.current.as_mut().expect("a stream was just opened");
        match stream.read(buf) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the download ended before its range did",
            )),
            Ok(n) => {
                self.set_position(at + n as u64);
                Ok(n)
            }
            Err(e) => {
                let reason = stream.failure().lock().expect("failure lock").clone();
                let mut failure = self.failure.lock().expect("failure lock");
                if failure.is_none() {
                    *failure = reason;
                }
                Err(e)
            }
        }
    }
}

impl Seek for RangedReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let at = self.position();
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => at.checked_add_signed(d),
            SeekFrom::End(d) => self.object.size().checked_add_signed(d),
        }
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the object",
            )
        })?;
        if target != at {
            // The stream ahead is for where the reader was: drop it (its task stops).
            self.current = None;
            self.set_position(target);
        }
        Ok(target)
    }
}

/// A remote object for the tests of the readers built on it.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use crate::config::RemoteConfig;
    use crate::remote::Remote;
    use crate::remote::stream::RemoteObject;

    /// A `file://` remote holding `bytes` as `b1/<name>`, and the runtime that fetches
    /// from it (both live as long as the object is read).
    pub(crate) fn file_object(
        name: &str,
        bytes: &[u8],
    ) -> (tempfile::TempDir, tokio::runtime::Runtime, RemoteObject) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("b1")).unwrap();
        std::fs::write(dir.path().join("b1").join(name), bytes).unwrap();
        let config = RemoteConfig {
            url: Some(format!("file://{}", dir.path().display())),
            ..RemoteConfig::default()
        };
        let remote = Arc::new(Remote::from_config(&config).unwrap());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let object = RemoteObject::new(
            remote,
            runtime.handle().clone(),
            "b1",
            name,
            bytes.len() as u64,
        );
        (dir, runtime, object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(bytes: &[u8]) -> (tempfile::TempDir, tokio::runtime::Runtime, RemoteObject) {
        super::test_support::file_object("postgres.sql.gz", bytes)
    }

    fn read_all(r: &mut RangedReader) -> Vec<u8> {
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn reads_only_up_to_its_limit_from_where_it_was_sought() {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (_dir, _rt, object) = object(&bytes);

        // A piece: exactly its range.
        let mut r = RangedReader::new(object.clone(), 200_000);
        assert_eq!(r.seek(SeekFrom::Start(1_000)).unwrap(), 1_000);
        assert_eq!(read_all(&mut r), &bytes[1_000..200_000]);
        assert_eq!(r.control().position(), 200_000);

        // Back and forth, as age seeks; the limit raised after a first read goes on there.
        let mut r = RangedReader::new(object.clone(), 10);
        let control = r.control();
        assert_eq!(read_all(&mut r), &bytes[..10]);
        control.limit_to(u64::MAX);
        assert_eq!(r.stream_position().unwrap(), 10);
        let mut some = vec![0; 5];
        r.read_exact(&mut some).unwrap();
        assert_eq!(some, &bytes[10..15]);
        assert_eq!(r.seek(SeekFrom::End(-4)).unwrap(), 299_996);
        assert_eq!(read_all(&mut r), &bytes[299_996..]);
        r.seek(SeekFrom::Start(123_456)).unwrap();
        r.read_exact(&mut some).unwrap();
        assert_eq!(some, &bytes[123_456..123_461]);
        assert!(r.seek(SeekFrom::Current(-200_000)).is_err());
        // Past the end: nothing, not an error.
        r.seek(SeekFrom::Start(400_000)).unwrap();
        assert!(read_all(&mut r).is_empty());
    }

    #[test]
    fn an_object_shorter_than_listed_is_a_transfer_failure() {
        let bytes = vec![7u8; 1000];
        let (dir, _rt, object) = object(&bytes);
        std::fs::write(dir.path().join("b1/postgres.sql.gz"), &bytes[..600]).unwrap();
        let mut r = RangedReader::new(object, u64::MAX);
        let failure = r.failure();
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
        assert!(
            failure.lock().unwrap().is_some(),
            "recorded as the remote's"
        );
    }
}
