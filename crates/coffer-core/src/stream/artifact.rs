//! Reading an artifact back in one pass: file → stored hash → (age) → gunzip or zstd →
//! plain hash.
//!
//! Verify, restore and the restore drill all read artifacts through [`ArtifactReader`], so
//! every byte a restore applies has been hashed on the way, and [`ArtifactReader::finish`]
//! compares both digests with the manifest before the caller commits anything.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::format::manifest::{Artifact, Compression};
use crate::format::pieces::{Piece, PieceChecker};
use crate::hint::Hint;
use crate::stream::crypto::{CryptoError, Identities};
use crate::stream::digest::{HashingReader, StreamDigest};

/// Read buffer for artifact files: large reads keep syscall overhead out of the profile.
const READ_BUFFER: usize = 1 << 20;

/// Why an artifact could not be read back, or did not match its manifest.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The file could not be opened: missing, unreadable, a symlink or not a regular file
    /// (coffer opens artifacts with `O_NOFOLLOW` and refuses fifos and devices).
    #[error("cannot open artifact {path}: it {source}")]
    Open {
        /// The artifact file.
        path: PathBuf,
        /// Why.
        source: crate::util::fsutil::BoundedReadError,
    },
    /// The file is encrypted and no identity was given.
    #[error(
        "artifact {path} is age-encrypted and no identity was given: set encryption.identity_file or COFFER_AGE_IDENTITY_FILE"
    )]
    NoIdentity {
        /// The artifact file.
        path: PathBuf,
    },
    /// The age header could not be decrypted (wrong key, not an age file).
    #[error(transparent)]
    Decrypt(#[from] CryptoError),
    /// Reading failed part-way: corrupt or truncated compression or encryption.
    #[error("artifact {path} is damaged or truncated: {source}")]
    Damaged {
        /// The artifact file.
        path: PathBuf,
        /// What the decoder said.
        source: io::Error,
    },
    /// Fetching the artifact from the remote failed part-way (after the store's retries):
    /// the remote's failure, not damage.
    #[error("downloading artifact {path} failed: {reason}")]
    Transfer {
        /// The artifact, as the remote names it.
        path: PathBuf,
        /// What the remote said.
        reason: String,
    },
    /// Size or SHA-256 differ from the manifest.
    #[error(
        "artifact {path} does not match its manifest: {what} is {actual}, expected {expected}; the backup is damaged, use another one"
    )]
    Mismatch {
        /// The artifact file.
        path: PathBuf,
        /// Which value, e.g. `stored sha256`.
        what: &'static str,
        /// The value in the manifest.
        expected: String,
        /// The value read.
        actual: String,
    },
}

impl ArtifactError {
    /// The caller's choice that would resolve this: an identity for this run when none
    /// was given or the given one cannot be loaded.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            ArtifactError::NoIdentity { .. }
            | ArtifactError::Decrypt(
                CryptoError::Identity { .. } | CryptoError::NoIdentity { .. },
            ) => Some(Hint::Identity),
            _ => None,
        }
    }
}

/// Both digests of an artifact read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactDigests {
    /// The file as stored.
    pub stored: StreamDigest,
    /// After decrypting and decompressing.
    pub plain: StreamDigest,
    /// Whether the plain bytes matched the piece index, when one was checked
    /// ([`ArtifactReader::check_pieces`]): each piece's CRC-32, or what differs.
    pub pieces: Option<Result<Vec<u32>, String>>,
}

impl ArtifactDigests {
    /// Compares with the manifest's record of the artifact; `path` names it in the error.
    pub fn check(&self, expected: &Artifact, path: &Path) -> Result<(), ArtifactError> {
        let mismatch = |what, expected: String, actual: String| ArtifactError::Mismatch {
            path: path.to_path_buf(),
            what,
            expected,
            actual,
        };
        if self.stored.size != expected.size {
            return Err(mismatch(
                "stored size",
                expected.size.to_string(),
                self.stored.size.to_string(),
            ));
        }
        if self.stored.sha256 != expected.sha256 {
            return Err(mismatch(
                "stored sha256",
                expected.sha256.clone(),
                self.stored.sha256.clone(),
            ));
        }
        if self.plain.size != expected.uncompressed_size {
            return Err(mismatch(
                "uncompressed size",
                expected.uncompressed_size.to_string(),
                self.plain.size.to_string(),
            ));
        }
        if self.plain.sha256 != expected.uncompressed_sha256 {
            return Err(mismatch(
                "uncompressed sha256",
                expected.uncompressed_sha256.clone(),
                self.plain.sha256.clone(),
            ));
        }
        if let Some(Err(e)) = &self.pieces {
            return Err(mismatch(
                "piece index",
                "the manifest's pieces".into(),
                e.clone(),
            ));
        }
        Ok(())
    }
}

/// The decrypted, decompressed content of an artifact file, hashed at both ends.
///
/// Read errors from the decoders (corrupt deflate data, a bad CRC, a truncated file, an
/// age chunk that fails authentication) come out of `read` as `io::Error`s;
/// [`ArtifactReader::damaged`] wraps one with the file's path.
pub struct ArtifactReader {
    plain: HashingReader<Box<dyn Read + Send>>,
    /// Checks the plain bytes against the piece index, when there is one.
    pieces: Option<PieceChecker>,
    stored: Arc<Mutex<(Sha256, u64)>>,
    path: PathBuf,
    /// Set by a streamed source whose transfer failed (see [`ArtifactReader::from_stream`]).
    transfer: Option<Arc<Mutex<Option<String>>>>,
}

impl ArtifactReader {
    /// Opens `path`; `encrypted` says whether it is an age file; the compression follows
    /// the file name (`.zst` is zstd, `.sql` uncompressed, anything else gzip, see
    /// [`Compression::of_file_name`]). An encrypted file needs `identities`, and its header
    /// is decrypted here, so a wrong key fails before any data is read.
    pub fn open(
        path: &Path,
        encrypted: bool,
        identities: Option<&Identities>,
    ) -> Result<ArtifactReader, ArtifactError> {
        let file =
            crate::util::fsutil::open_regular(path).map_err(|source| ArtifactError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        ArtifactReader::from_file(file, path, encrypted, identities)
    }

    /// Like [`ArtifactReader::open`], but first proves the file is the one `expected`
    /// records: it is read once through the same descriptor, its size and SHA-256 compared
    /// with the manifest, and only then rewound and decoded. So not one byte of a file that
    /// was swapped or altered (even at the same size) reaches a consumer such as psql; the
    /// checks of [`ArtifactReader::finish`] still run at the end (they also cover the plain
    /// hash). A local file's second read comes from the page cache.
    pub fn open_proven(
        path: &Path,
        expected: &Artifact,
        identities: Option<&Identities>,
    ) -> Result<ArtifactReader, ArtifactError> {
        let mut file =
            crate::util::fsutil::open_regular(path).map_err(|source| ArtifactError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        prove_stored(&mut file, expected, path)?;
        let damaged = |source| ArtifactError::Damaged {
            path: path.to_path_buf(),
            source,
        };
        file.seek(SeekFrom::Start(0)).map_err(damaged)?;
        let mut reader =
            ArtifactReader::from_file(file, path, expected.encryption.is_some(), identities)?;
        if let Some(pieces) = &expected.pieces {
            reader.check_pieces(pieces.clone());
        }
        Ok(reader)
    }

    /// Checks the plain bytes against `pieces` as they are read (each piece's size and
    /// SHA-256); the outcome is in [`ArtifactDigests::pieces`] and fails
    /// [`ArtifactDigests::check`].
    pub fn check_pieces(&mut self, pieces: Vec<Piece>) {
        self.pieces = Some(PieceChecker::new(pieces));
    }

    /// Builds the decoding chain over an open artifact file.
    fn from_file(
        file: File,
        path: &Path,
        encrypted: bool,
        identities: Option<&Identities>,
    ) -> Result<ArtifactReader, ArtifactError> {
        let inner = Box::new(BufReader::with_capacity(READ_BUFFER, file));
        ArtifactReader::decoding(inner, path, encrypted, identities, None)
    }

    /// The decoding chain over a stream read once (an artifact fetched from the remote):
    /// nothing proves it before it is decoded, so its consumer must not commit before
    /// [`ArtifactReader::finish`] and [`ArtifactDigests::check`] passed. `path` names it in
    /// messages; a read error while `transfer` holds a reason is reported as
    /// [`ArtifactError::Transfer`], not as damage.
    pub fn from_stream(
        stream: Box<dyn Read + Send>,
        path: &Path,
        encrypted: bool,
        identities: Option<&Identities>,
        transfer: Arc<Mutex<Option<String>>>,
    ) -> Result<ArtifactReader, ArtifactError> {
        ArtifactReader::decoding(stream, path, encrypted, identities, Some(transfer))
    }

    fn decoding(
        inner: Box<dyn Read + Send>,
        path: &Path,
        encrypted: bool,
        identities: Option<&Identities>,
        transfer: Option<Arc<Mutex<Option<String>>>>,
    ) -> Result<ArtifactReader, ArtifactError> {
        let stored = Arc::new(Mutex::new((Sha256::new(), 0u64)));
        let tap = StoredTap {
            inner,
            state: stored.clone(),
        };
        let transfer_failed = |e: CryptoError| match transfer
            .as_ref()
            .and_then(|t| t.lock().expect("transfer lock").clone())
        {
            Some(reason) => ArtifactError::Transfer {
                path: path.to_path_buf(),
                reason,
            },
            None => ArtifactError::Decrypt(e),
        };
        let compressed: Box<dyn Read + Send> = if encrypted {
            let ids = identities.ok_or_else(|| ArtifactError::NoIdentity {
                path: path.to_path_buf(),
            })?;
            Box::new(
                ids.decrypt(tap, &path.display().to_string())
                    .map_err(transfer_failed)?,
            )
        } else {
            Box::new(tap)
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let decompressed: Box<dyn Read + Send> = match decoding(&name) {
            None => compressed,
            Some(compression) => {
                decompress(compression, compressed).map_err(|e| ArtifactError::Damaged {
                    path: path.to_path_buf(),
                    source: e,
                })?
            }
        };
        Ok(ArtifactReader {
            plain: HashingReader::new(decompressed),
            pieces: None,
            stored,
            path: path.to_path_buf(),
            transfer,
        })
    }

    /// Opens the artifact a manifest entry describes, inside backup directory `dir`.
    #[cfg(test)]
    pub fn open_in(
        dir: &Path,
        artifact: &Artifact,
        identities: Option<&Identities>,
    ) -> Result<ArtifactReader, ArtifactError> {
        ArtifactReader::open(
            &dir.join(&artifact.file),
            artifact.encryption.is_some(),
            identities,
        )
    }

    /// Plain bytes read so far.
    pub fn plain_bytes(&self) -> u64 {
        self.plain.size()
    }

    /// Wraps a read error from this reader with the file's path.
    pub fn damaged(&self, source: io::Error) -> ArtifactError {
        if let Some(reason) = self
            .transfer
            .as_ref()
            .and_then(|t| t.lock().expect("transfer lock").clone())
        {
            return ArtifactError::Transfer {
                path: self.path.clone(),
                reason,
            };
        }
        ArtifactError::Damaged {
            path: self.path.clone(),
            source,
        }
    }

    /// Reads whatever the consumer left to the end (so both digests cover the whole file)
    /// and returns the digests.
    pub fn finish(mut self) -> Result<ArtifactDigests, ArtifactError> {
        io::copy(&mut self, &mut io::sink()).map_err(|e| self.damaged(e))?;
        let pieces = self.pieces.take().map(PieceChecker::finish);
        let (_, plain) = self.plain.finish();
        let (hasher, size) = std::mem::take(&mut *self.stored.lock().expect("digest lock"));
        Ok(ArtifactDigests {
            stored: StreamDigest {
                size,
                sha256: hex::encode(hasher.finalize()),
            },
            plain,
            pieces,
        })
    }
}

impl Read for ArtifactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.plain.read(buf)?;
        if let Some(pieces) = self.pieces.as_mut() {
            pieces.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The decoder of a compressed stream: every gzip member (pigz and concatenated gzip files
/// are valid gzip too; anything after the last member that is not another member fails the
/// read), every zstd frame.
pub(crate) fn decompress(
    compression: Compression,
    compressed: Box<dyn Read + Send>,
) -> io::Result<Box<dyn Read + Send>> {
    Ok(match compression {
        Compression::Gzip => Box::new(MultiGzDecoder::new(compressed)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(compressed)?),
    })
}

/// How a file is decoded, by its name: a `….sql` file (a flat `pg_dump` dump, see
/// `check::flat`; coffer never writes an uncompressed artifact) is read as it is, anything
/// else as [`Compression::of_file_name`] says.
fn decoding(name: &str) -> Option<Compression> {
    if name.ends_with(".sql") {
        None
    } else {
        Some(Compression::of_file_name(name))
    }
}

/// Reads `stored` (the artifact as stored, from where it stands) to its end and compares
/// its size and SHA-256 with `expected`; `path` names it in the error. A read error is
/// damage here: a caller reading from the remote tells a failed transfer apart itself.
pub(crate) fn prove_stored(
    stored: &mut dyn Read,
    expected: &Artifact,
    path: &Path,
) -> Result<(), ArtifactError> {
    let digest = prove(stored, expected.size).map_err(|source| ArtifactError::Damaged {
        path: path.to_path_buf(),
        source,
    })?;
    let mismatch = |what, expected: String, actual: String| ArtifactError::Mismatch {
        path: path.to_path_buf(),
        what,
        expected,
        actual,
    };
    if digest.size != expected.size {
        return Err(mismatch(
            "stored size",
            expected.size.to_string(),
            // Reading stopped one byte past the recorded size.
            if digest.size > expected.size {
                format!("more than {}", expected.size)
            } else {
                digest.size.to_string()
            },
        ));
    }
    if digest.sha256 != expected.sha256 {
        return Err(mismatch(
            "stored sha256",
            expected.sha256.clone(),
            digest.sha256,
        ));
    }
    Ok(())
}

/// Hashes `file` from where it stands, reading at most `size + 1` bytes (so a file that is
/// longer, or grows, is not read forever).
fn prove(file: &mut dyn Read, size: u64) -> io::Result<StreamDigest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; READ_BUFFER];
    let mut read = 0u64;
    let mut limited = file.take(size.saturating_add(1));
    loop {
        match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                read += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(StreamDigest {
        size: read,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Hashes the file bytes beneath the age decryptor, which does not give its reader back.
struct StoredTap<R> {
    inner: R,
    state: Arc<Mutex<(Sha256, u64)>>,
}

impl<R: Read> Read for StoredTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut state = self.state.lock().expect("digest lock");
        state.0.update(&buf[..n]);
        state.1 += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::{ArtifactRole, Compression, Encryption};
    use flate2::Compression as Level;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Level::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn record(file: &str, stored: &[u8], plain: &[u8], encrypted: bool) -> Artifact {
        Artifact {
            role: ArtifactRole::Database,
            file: file.into(),
            size: stored.len() as u64,
            sha256: sha(stored),
            uncompressed_size: plain.len() as u64,
            uncompressed_sha256: sha(plain),
            compression: Compression::Gzip,
            encryption: encrypted.then_some(Encryption::Age),
            pieces: None,
        }
    }

    fn read_all(
        dir: &Path,
        a: &Artifact,
        ids: Option<&Identities>,
    ) -> Result<Vec<u8>, ArtifactError> {
        let mut r = ArtifactReader::open_in(dir, a, ids)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| r.damaged(e))?;
        r.finish()?.check(a, &dir.join(&a.file))?;
        Ok(out)
    }

    #[test]
    fn round_trip_plain_and_multi_member() {
        let dir = tempfile::tempdir().unwrap();
        let plain = b"hello world\n".repeat(1000);
        // Two gzip members, as pigz or `cat a.gz b.gz` produce.
        let mut stored = gzip(&plain[..5000]);
        stored.extend(gzip(&plain[5000..]));
        std::fs::write(dir.path().join("x.gz"), &stored).unwrap();
        let a = record("x.gz", &stored, &plain, false);
        assert_eq!(read_all(dir.path(), &a, None).unwrap(), plain);
    }

    #[test]
    fn open_proven_refuses_before_decoding_a_byte() {
        let dir = tempfile::tempdir().unwrap();
        let plain = b"SELECT 1;\n".repeat(5000);
        let stored = gzip(&plain);
        let a = record("x.gz", &stored, &plain, false);
        let path = dir.path().join("x.gz");
        std::fs::write(&path, &stored).unwrap();
        let mut r = ArtifactReader::open_proven(&path, &a, None).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, plain, "rewound to the start after proving");
        r.finish().unwrap().check(&a, &path).unwrap();
        // Same size, other content (a valid gzip of other text): refused at open.
        let forged = gzip(&b"COMMIT; DROP TABLE t;\n".repeat(2273));
        let mut same_size = forged.clone();
        same_size.resize(stored.len(), 0);
        for (what, bytes) in [
            ("same size", same_size),
            ("longer", [stored.clone(), vec![0]].concat()),
            ("shorter", stored[..stored.len() - 1].to_vec()),
        ] {
            std::fs::write(&path, &bytes).unwrap();
            let err = ArtifactReader::open_proven(&path, &a, None)
                .err()
                .unwrap_or_else(|| panic!("{what}: opened"));
            assert!(
                matches!(err, ArtifactError::Mismatch { .. }),
                "{what}: {err}"
            );
            assert!(
                err.to_string().contains("does not match its manifest"),
                "{err}"
            );
        }
        // Not a regular file: refused without reading.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        assert!(matches!(
            ArtifactReader::open_proven(&path, &a, None),
            Err(ArtifactError::Open { .. })
        ));
    }

    #[test]
    fn flipped_and_truncated_bytes_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let plain: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let stored = gzip(&plain);
        let a = record("x.gz", &stored, &plain, false);
        for (i, damage) in [
            Box::new(|v: &mut Vec<u8>| {
                let mid = v.len() / 2;
                v[mid] ^= 0x40
            }) as Box<dyn Fn(&mut Vec<u8>)>,
            Box::new(|v: &mut Vec<u8>| v.truncate(v.len() / 2)),
            Box::new(|v: &mut Vec<u8>| v.truncate(v.len() - 3)),
            Box::new(|v: &mut Vec<u8>| v.push(0)),
        ]
        .iter()
        .enumerate()
        {
            let mut bad = stored.clone();
            damage(&mut bad);
            std::fs::write(dir.path().join("x.gz"), &bad).unwrap();
            let err = read_all(dir.path(), &a, None).expect_err(&format!("damage {i}"));
            assert!(
                matches!(
                    err,
                    ArtifactError::Damaged { .. } | ArtifactError::Mismatch { .. }
                ),
                "damage {i}: {err}"
            );
        }
    }

    #[test]
    fn encrypted_needs_the_right_identity() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        let public = crate::stream::crypto::keygen(&key).unwrap();
        let other = dir.path().join("other");
        crate::stream::crypto::keygen(&other).unwrap();
        let recipients = crate::stream::crypto::Recipients::load(&[public], None).unwrap();
        let plain = b"secret rows\n".repeat(100);
        let mut w = recipients.encrypt(Vec::new()).unwrap();
        w.write_all(&gzip(&plain)).unwrap();
        let stored = w.finish().unwrap();
        std::fs::write(dir.path().join("x.gz.age"), &stored).unwrap();
        let a = record("x.gz.age", &stored, &plain, true);

        let ids = Identities::load(&key).unwrap();
        assert_eq!(read_all(dir.path(), &a, Some(&ids)).unwrap(), plain);
        assert!(matches!(
            read_all(dir.path(), &a, None),
            Err(ArtifactError::NoIdentity { .. })
        ));
        let wrong = Identities::load(&other).unwrap();
        let err = read_all(dir.path(), &a, Some(&wrong)).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn a_sql_file_is_read_as_it_is_and_gzip_refuses_trailing_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let plain = b"SELECT 1;\n".repeat(100);
        let sql = dir.path().join("app.sql");
        std::fs::write(&sql, &plain).unwrap();
        let mut r = ArtifactReader::open(&sql, false, None).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, plain);
        let d = r.finish().unwrap();
        assert_eq!(d.stored, d.plain);

        let gz = dir.path().join("app.sql.gz");
        for tail in [&b"garbage"[..], &[0u8; 8][..]] {
            std::fs::write(&gz, [gzip(&plain), tail.to_vec()].concat()).unwrap();
            let mut r = ArtifactReader::open(&gz, false, None).unwrap();
            let mut out = Vec::new();
            assert!(
                r.read_to_end(&mut out).is_err(),
                "{tail:?} after the last member"
            );
        }
    }
}
