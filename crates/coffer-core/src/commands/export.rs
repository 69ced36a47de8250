//! `export`: a backup of the root as one bundle (see `Coffer::export`), to a new file or
//! a stream.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::BackupRef;
use crate::bundle::{self, BundleError, ExportReport};
use crate::coffer::Coffer;
use crate::context::RunContext;
use crate::error::Error;
use crate::util::fsutil;

/// Where a bundle goes.
#[non_exhaustive]
pub enum BundleOutput<'a> {
    /// A new file (mode 0600), written under a hidden temporary name beside it and renamed
    /// when complete; an existing file is never replaced.
    File(PathBuf),
    /// A stream, e.g. standard output (the caller refuses a terminal).
    Stream(&'a mut dyn Write),
}

impl std::fmt::Debug for BundleOutput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleOutput::File(p) => f.debug_tuple("File").field(p).finish(),
            BundleOutput::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl Coffer {
    /// Streams `backup` as one bundle into `output`: `NAME/manifest.json` first, then the
    /// artifacts (each checked against the manifest's size and SHA-256 on the way), then
    /// `SHA256SUMS` and the signatures. An incomplete or unreadable backup is refused before
    /// anything is written; a damaged one stops the stream before its end marker (and a
    /// file output is removed), so no partial bundle can be imported.
    pub fn export(
        &self,
        backup: &BackupRef,
        output: BundleOutput<'_>,
        ctx: &RunContext<'_>,
    ) -> Result<ExportReport, Error> {
        self.export_announcing(backup, output, &mut |_| {}, ctx)
    }

    /// [`Coffer::export`], calling `announce` with the bundle's exact length in bytes once
    /// the backup's files are open and before the first byte is written (an HTTP
    /// `Content-Length`, a progress total). Not called when the backup is refused up front.
    pub fn export_announcing(
        &self,
        backup: &BackupRef,
        output: BundleOutput<'_>,
        announce: &mut dyn FnMut(u64),
        ctx: &RunContext<'_>,
    ) -> Result<ExportReport, Error> {
        let (entry, _) = self.resolve(backup, ctx)?;
        Ok(write_bundle(output, |out| {
            bundle::export(&entry, out, announce, ctx.cancel())
        })?)
    }
}

/// Runs `write` on `output`; for a file, on a hidden temporary file beside it (0600) that
/// is fsynced and renamed to its name only when `write` succeeded, never replacing a file.
pub(crate) fn write_bundle<T>(
    output: BundleOutput<'_>,
    write: impl FnOnce(&mut dyn Write) -> Result<T, BundleError>,
) -> Result<T, BundleError> {
    let path = match output {
        BundleOutput::Stream(out) => return write(out),
        BundleOutput::File(path) => path,
    };
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(BundleError::OutputExists { path });
    }
    let dir = output_dir(&path);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // tempfile creates the file with mode 0600 and removes it when dropped (on any error).
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".coffer-partial")
        .tempfile_in(&dir)
        .map_err(|e| BundleError::Io {
            op: "create a temporary file in",
            path: dir.clone(),
            source: e,
        })?;
    let mut out = BufWriter::with_capacity(1 << 20, temp);
    let value = write(&mut out)?;
    let temp = out.into_inner().map_err(|e| BundleError::Io {
        op: "write",
        path: path.clone(),
        source: e.into_error(),
    })?;
    temp.as_file().sync_all().map_err(|e| BundleError::Io {
        op: "sync",
        path: path.clone(),
        source: e,
    })?;
    temp.persist_noclobber(&path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            BundleError::OutputExists { path: path.clone() }
        } else {
            BundleError::Io {
                op: "rename the finished bundle to",
                path: path.clone(),
                source: e.error,
            }
        }
    })?;
    fsutil::sync_dir(&dir).map_err(|e| BundleError::Io {
        op: "sync",
        path: dir,
        source: e,
    })?;
    Ok(value)
}

/// The directory an output file is created in.
pub(crate) fn output_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
