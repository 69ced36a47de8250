//! Reading a tar stream to its end: the listing, and the entry loop extraction shares.

use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tar::EntryType;

use super::{ArchiveError, BLOCK, BUF_SIZE, lossy_bytes};

/// What a tar stream holds, counted while reading it to the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TarListing {
    /// Regular-file entries (hard links not included).
    pub files: u64,
    /// Directory entries (`./` included).
    pub directories: u64,
    /// Symlink entries.
    pub symlinks: u64,
    /// Hard-link entries.
    pub hardlinks: u64,
    /// Bytes of file data.
    pub file_bytes: u64,
    /// All entries, of any type (GNU long-name and pax extension records not counted).
    pub entries: u64,
}

/// Reads a whole tar stream, data included, and counts its entries.
///
/// Fails on a truncated stream (an entry's data cut short, a partial header, or the
/// end-of-archive marker missing), on a header whose checksum does not match, and on
/// non-zero bytes after the end-of-archive marker; the input is read to its end, so a
/// hashing reader underneath sees every byte.
pub fn list_tar<R: Read>(input: R) -> Result<TarListing, ArchiveError> {
    let mut listing = TarListing::default();
    read_entries(input, |entry, path, buf| {
        listing.entries += 1;
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let size = entry.size();
                copy_entry_data(entry, size, buf, |_| Ok(()))
                    .map_err(|e| e.into_error(path, Path::new("")))?;
                listing.files += 1;
                listing.file_bytes += size;
            }
            EntryType::Directory => listing.directories += 1,
            EntryType::Symlink => listing.symlinks += 1,
            EntryType::Link => listing.hardlinks += 1,
            _ => {}
        }
        Ok(())
    })?;
    Ok(listing)
}

/// A reader that remembers whether it reached the end of its input.
pub(super) struct EofTracker<R> {
    inner: R,
    hit_eof: bool,
}

impl<R: Read> Read for EofTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit_eof = true;
        }
        Ok(n)
    }
}

/// Calls `on_entry` for every entry (with its raw path and a scratch buffer), then checks
/// that the archive ended with its end-of-archive marker and reads the input to its end.
pub(super) fn read_entries<R: Read>(
    input: R,
    mut on_entry: impl FnMut(
        &mut tar::Entry<'_, EofTracker<R>>,
        &[u8],
        &mut [u8],
    ) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(EofTracker {
        inner: input,
        hit_eof: false,
    });
    let mut buf = vec![0u8; BUF_SIZE];
    // The last entry's path, reused so that reading costs no allocation per entry.
    let mut last: Vec<u8> = Vec::new();
    let mut seen = false;
    let position = |last: &[u8], seen: bool| {
        if seen {
            format!("after entry `{}`", lossy_bytes(last))
        } else {
            "at the start".to_string()
        }
    };
    {
        let entries = archive.entries().map_err(|source| ArchiveError::ReadTar {
            position: position(&last, seen),
            source,
        })?;
        for entry in entries {
            let mut entry = entry.map_err(|source| ArchiveError::ReadTar {
                position: position(&last, seen),
                source,
            })?;
            last.clear();
            last.extend_from_slice(&entry.path_bytes());
            seen = true;
            on_entry(&mut entry, &last, &mut buf)?;
        }
    }
    let mut tracker = archive.into_inner();
    // The tar crate ends at the first zero block or, silently, at EOF on a block boundary:
    // the latter is a truncated archive.
    if tracker.hit_eof {
        return Err(ArchiveError::ReadTar {
            position: position(&last, seen),
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ends without the end-of-archive marker (truncated)",
            ),
        });
    }
    // The crate consumed one zero block; the format has two, and GNU tar pads the last
    // record with more zeros. Anything else after them is corruption.
    let mut trailing = 0u64;
    loop {
        let n = match tracker.inner.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ArchiveError::ReadTar {
                    position: "in the end-of-archive marker".into(),
                    source,
                });
            }
        };
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(ArchiveError::ReadTar {
                position: "after the end-of-archive marker".into(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "non-zero data after the end of the archive (corrupt)",
                ),
            });
        }
        trailing += n as u64;
    }
    if trailing < BLOCK as u64 {
        return Err(ArchiveError::ReadTar {
            position: "in the end-of-archive marker".into(),
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the second end-of-archive block is missing (truncated)",
            ),
        });
    }
    Ok(())
}

/// Why copying an entry's data failed: the archive side or the destination side.
pub(super) enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

impl CopyError {
    /// As an [`ArchiveError`] for `entry`: a read failure is the stream's, a write failure
    /// is creating `dest`.
    pub(super) fn into_error(self, entry: &[u8], dest: &Path) -> ArchiveError {
        match self {
            CopyError::Read(source) => ArchiveError::ReadTar {
                position: format!("in entry `{}`", lossy_bytes(entry)),
                source,
            },
            CopyError::Write(source) => ArchiveError::Extract {
                entry: lossy_bytes(entry),
                path: dest.to_path_buf(),
                source,
            },
        }
    }
}

/// Streams an entry's data through `buf` into `sink`, requiring exactly `expected` bytes.
pub(super) fn copy_entry_data(
    entry: &mut impl Read,
    expected: u64,
    buf: &mut [u8],
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<(), CopyError> {
    let mut total = 0u64;
    loop {
        let n = match entry.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        sink(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
    if total != expected {
        return Err(CopyError::Read(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the entry's data ends after {total} of {expected} bytes (truncated)"),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::stream::archive::test_support::{archive, write_file};
    use crate::stream::archive::{ArchiveError, extract_tar, list_tar};

    #[test]
    fn truncated_or_corrupt_archives_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        fs::create_dir(&root).unwrap();
        write_file(&root.join("f"), &[7; 1000], 0o644);
        let (tarball, _) = archive(&root, &[]);
        // ./ header, f header, 1000 bytes of data padded to 1024, two zero blocks.
        assert_eq!(tarball.len(), 512 + 512 + 1024 + 1024);
        assert_eq!(list_tar(&tarball[..]).unwrap().file_bytes, 1000);

        let check = |bad: &[u8], what: &str| {
            let err = list_tar(bad).unwrap_err();
            assert!(matches!(err, ArchiveError::ReadTar { .. }), "{what}: {err}");
            let dest = tempfile::tempdir().unwrap();
            let err = extract_tar(bad, dest.path()).unwrap_err();
            assert!(matches!(err, ArchiveError::ReadTar { .. }), "{what}: {err}");
            err.to_string()
        };
        let msg = check(&tarball[..1024 + 500], "cut in the data");
        assert!(
            msg.starts_with("cannot read tar stream in entry `f`"),
            "{msg}"
        );
        check(&tarball[..1024 + 1000], "cut in the padding");
        check(&tarball[..512 + 200], "cut in a header");
        let msg = check(&tarball[..2048], "no end-of-archive marker");
        assert!(msg.contains("without the end-of-archive marker"), "{msg}");
        check(&tarball[..2048 + 512], "one zero block");
        check(&tarball[..0], "empty");

        let mut flipped = tarball.clone();
        flipped[512 + 3] ^= 0x20;
        let msg = check(&flipped, "flipped header byte");
        assert!(msg.contains("checksum"), "{msg}");

        let mut trailing = tarball.clone();
        trailing.extend_from_slice(b"garbage");
        check(&trailing, "data after the end");

        // GNU tar's record padding after the marker is fine.
        let mut padded = tarball.clone();
        padded.resize(10_240, 0);
        assert_eq!(list_tar(&padded[..]).unwrap().files, 1);
    }
}
