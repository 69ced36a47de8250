//! A backup directory streamed out as one bundle (see [`crate::bundle`]).

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::BundleError;
use super::ustar::{self, Kind};
use crate::cancel::CancelFlag;
use crate::format::manifest::{self, AnyManifest, ArtifactRole, MANIFEST_CAP, SUMS_FILE};
use crate::format::signing::{MANIFEST_SIGNATURE, MAX_SIGNATURE_BYTES, SUMS_SIGNATURE};
use crate::root::catalog::{self, BackupEntry};
use crate::util::fsutil::{self, DIR_MODE, FILE_MODE};

/// What [`Coffer::export`](crate::Coffer::export) wrote.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ExportReport {
    /// The backup's name (the bundle's directory).
    pub name: String,
    /// The files in the bundle, in order.
    pub files: Vec<String>,
    /// Bytes of the bundle.
    pub bytes: u64,
}

/// One file to put in the bundle, opened before the first byte is written (a prune that
/// removes the backup meanwhile cannot cut the stream short).
struct Source {
    file: String,
    content: Content,
    mtime: u64,
}

enum Content {
    /// A small metadata file, read whole.
    Small(Vec<u8>),
    /// An artifact: its open file, size, and the SHA-256 the manifest records (none for a
    /// legacy backup).
    Artifact {
        handle: File,
        size: u64,
        sha256: Option<String>,
    },
}

/// Streams the backup `entry` into `out` as a bundle. Refuses an incomplete or unreadable
/// backup before writing anything; calls `announce` with the bundle's exact length
/// ([`super::bundle_len`]) once every file is open, before the first byte; checks every
/// artifact's size and SHA-256 against the manifest while streaming and stops before the end
/// marker on a mismatch. `cancel` is checked between chunks.
pub fn export(
    entry: &BackupEntry,
    out: &mut dyn Write,
    announce: &mut dyn FnMut(u64),
    cancel: &CancelFlag,
) -> Result<ExportReport, BundleError> {
    let name = entry.name.clone();
    let refuse = |reason: String| BundleError::NotExportable {
        name: name.clone(),
        reason,
    };
    if !entry.status.is_usable() {
        let reason = match &entry.status {
            catalog::EntryStatus::Incomplete(r) => format!("it is incomplete: {r}"),
            catalog::EntryStatus::Unreadable(r) => format!("it is unreadable: {r}"),
            _ => unreachable!("usable statuses are exported"),
        };
        return Err(refuse(reason));
    }
    if crate::format::names::parse_name(&name).is_none() {
        return Err(refuse(
            "its directory is not named like a backup (auto-…, manual-… or YYYY-MM-DD-HHMMSS), so an import could not name it".into(),
        ));
    }
    let sources = open_sources(&entry.path).map_err(refuse)?;
    let length = super::bundle_len(&name, sources.iter().map(|s| (s.file.as_str(), s.size())));
    announce(length);
    let out_err = |e| BundleError::io("write the bundle to", "the output", e);
    let dir_mtime = std::fs::metadata(&entry.path)
        .ok()
        .and_then(|m| m.modified().ok())
        .map_or(0, seconds);
    ustar::write_header(out, &format!("{name}/"), Kind::Dir, 0, DIR_MODE, dir_mtime)
        .map_err(out_err)?;
    let mut report = ExportReport {
        name: name.clone(),
        files: Vec::new(),
        bytes: length,
    };
    for source in sources {
        let path = format!("{name}/{}", source.file);
        match source.content {
            Content::Small(bytes) => {
                let size = bytes.len() as u64;
                ustar::write_header(out, &path, Kind::File, size, FILE_MODE, source.mtime)
                    .and_then(|()| out.write_all(&bytes))
                    .and_then(|()| ustar::write_padding(out, size))
                    .map_err(out_err)?;
            }
            Content::Artifact {
                handle,
                size,
                sha256,
            } => {
                ustar::write_header(out, &path, Kind::File, size, FILE_MODE, source.mtime)
                    .map_err(out_err)?;
                let actual = copy_hashed(handle, size, out, cancel, &name, &source.file)?;
                if let Some(want) = sha256
                    && !actual.eq_ignore_ascii_case(&want)
                {
                    return Err(BundleError::SourceDamaged {
                        name,
                        detail: format!(
                            "{}: sha256 is {actual}, the manifest says {want}",
                            source.file
                        ),
                    });
                }
                ustar::write_padding(out, size).map_err(out_err)?;
            }
        }
        report.files.push(source.file);
    }
    ustar::write_end(out)
        .and_then(|()| out.flush())
        .map_err(out_err)?;
    Ok(report)
}

/// The files of the backup in bundle order, all opened (or read, when small): the
/// manifest and its signature when present, the artifacts, `SHA256SUMS` and its
/// signature when present. Sizes are
/// checked against the manifest here, before anything is written.
fn open_sources(dir: &Path) -> Result<Vec<Source>, String> {
    let read_small = |file: &str, cap: u64| -> Result<Option<Source>, String> {
        let path = dir.join(file);
        match fsutil::read_bounded(&path, cap) {
            Ok(bytes) => Ok(Some(Source {
                file: file.to_string(),
                mtime: mtime_of(&path),
                content: Content::Small(bytes),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(format!("{file} {e}")),
        }
    };
    let manifest_source = read_small(manifest::MANIFEST_FILE, MANIFEST_CAP)?
        .ok_or_else(|| "it has no manifest.json".to_string())?;
    let Content::Small(manifest_bytes) = &manifest_source.content else {
        unreachable!("the manifest is read whole")
    };
    // The manifest streamed is the one checked against: parsed from the bytes written.
    let manifest =
        manifest::parse_bytes(manifest_bytes, "manifest.json").map_err(|e| e.to_string())?;
    let artifacts: Vec<(String, Option<(u64, String)>)> = match &manifest {
        AnyManifest::Coffer(m) => m
            .artifacts
            .iter()
            .map(|a| (a.file.clone(), Some((a.size, a.sha256.clone()))))
            .collect(),
        AnyManifest::Legacy(_) => [ArtifactRole::Database, ArtifactRole::Workspace]
            .into_iter()
            .filter_map(|role| catalog::legacy_artifact(dir, role))
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), None))
            .collect(),
    };
    let mut sources = vec![manifest_source];
    // The manifest's signature right after it: a reader can judge the manifest, which
    // holds every artifact's size and hash, before any data arrives.
    sources.extend(read_small(MANIFEST_SIGNATURE, MAX_SIGNATURE_BYTES)?);
    for (file, expected) in artifacts {
        let path = dir.join(&file);
        let handle = fsutil::open_regular(&path).map_err(|e| format!("{file} {e}"))?;
        let size = handle.metadata().map_err(|e| format!("{file}: {e}"))?.len();
        if let Some((want, _)) = &expected
            && *want != size
        {
            return Err(format!(
                "{file} is {size} bytes, the manifest says {want} (damaged)"
            ));
        }
        sources.push(Source {
            file,
            mtime: mtime_of(&path),
            content: Content::Artifact {
                handle,
                size,
                sha256: expected.map(|(_, sha)| sha),
            },
        });
    }
    sources.extend(read_small(SUMS_FILE, crate::format::sums::SUMS_CAP)?);
    sources.extend(read_small(SUMS_SIGNATURE, MAX_SIGNATURE_BYTES)?);
    Ok(sources)
}

impl Source {
    /// Bytes of data it puts in the bundle.
    fn size(&self) -> u64 {
        match &self.content {
            Content::Small(bytes) => bytes.len() as u64,
            Content::Artifact { size, .. } => *size,
        }
    }
}

/// Copies exactly `size` bytes of `file` to `out`, hashing them; a file that is shorter
/// now than when opened is damage.
fn copy_hashed(
    file: File,
    size: u64,
    out: &mut dyn Write,
    cancel: &CancelFlag,
    name: &str,
    artifact: &str,
) -> Result<String, BundleError> {
    let mut reader = file.take(size);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        if let Some(signal) = cancel.signal() {
            return Err(BundleError::Interrupted {
                operation: "export",
                signal,
            });
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BundleError::io("read", artifact, e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| BundleError::io("write the bundle to", "the output", e))?;
        done += n as u64;
    }
    if done != size {
        return Err(BundleError::SourceDamaged {
            name: name.to_string(),
            detail: format!("{artifact} shrank to {done} bytes while it was exported"),
        });
    }
    Ok(hex::encode(hasher.finalize()))
}

fn mtime_of(path: &Path) -> u64 {
    std::fs::symlink_metadata(path)
        .ok()
        .and_then(|m| m.modified().ok())
        .map_or(0, seconds)
}

fn seconds(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// A shell-script-era backup (its artifacts' content is not checked on export), with
    /// files of sizes below, at and above a block boundary.
    #[test]
    fn the_announced_length_is_the_length_written() {
        for (dump, extra) in [
            (&b""[..], 0usize),
            (&[b'x'; 512][..], 511),
            (&[b'y'; 4000][..], 1),
        ] {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("2025-06-01-030000");
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(
                dir.join(manifest::MANIFEST_FILE),
                format!(
                    "{{\"timestamp\": \"2025-06-01T03:00:00Z\", \"alembic_head\": \"9f1c8d2a3b4e\", \"db_size\": \"1 MB\", \"workspace_path\": \"/srv/ws{}\"}}",
                    "w".repeat(extra)
                ),
            )
            .unwrap();
            std::fs::write(dir.join("postgres.sql.gz"), gzip(dump)).unwrap();
            std::fs::write(dir.join("workspace.tar.gz"), gzip(&vec![0u8; 10 * 1024])).unwrap();
            let entry = BackupEntry::read(&dir);
            let mut announced = None;
            let mut out = Vec::new();
            let report = export(
                &entry,
                &mut out,
                &mut |n| announced = Some(n),
                &CancelFlag::new(),
            )
            .unwrap();
            assert_eq!(announced, Some(out.len() as u64));
            assert_eq!(report.bytes, out.len() as u64);
            let sizes: Vec<(String, u64)> = report
                .files
                .iter()
                .map(|f| (f.clone(), std::fs::metadata(dir.join(f)).unwrap().len()))
                .collect();
            let computed =
                super::super::bundle_len(&report.name, sizes.iter().map(|(f, s)| (f.as_str(), *s)));
            assert_eq!(computed, out.len() as u64);
        }
    }
}
