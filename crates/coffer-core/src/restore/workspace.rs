//! The workspace stream: the archive extracted into the staging directory that
//! [`crate::workspace::swap`] later swaps in for the directory the workspace really is.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cancel::CancelFlag;
use crate::format::manifest::ArtifactRole;
use crate::progress::Progress;
use crate::stream::archive::{self, ExtractStats};
use crate::stream::artifact::ArtifactReader;
use crate::stream::crypto::Identities;

use super::WorkspaceTarget;
use super::failure::{StreamFailure, artifact_failure};

/// The directory actually swapped for `target`: its real path, so a workspace that is a
/// symlink (or lies below one) has the directory it points to replaced and the link kept.
pub(super) fn swap_path(target: &Path) -> PathBuf {
    crate::workspace::boundaries::real_path(target).unwrap_or_else(|_| target.to_path_buf())
}

/// Extracts the workspace archive into the staging directory and checks its hashes.
pub(super) fn extract_workspace(
    ws: &WorkspaceTarget,
    staging: &Path,
    identities: Option<&Identities>,
    progress: &dyn Progress,
    cancel: &CancelFlag,
    abort: &AtomicBool,
) -> Result<ExtractStats, StreamFailure> {
    let reader = ws.source.open(identities).map_err(artifact_failure)?;
    progress.start(ArtifactRole::Workspace, &ws.source.file_name());
    let mut guarded = Guarded {
        inner: reader,
        cancel,
        abort,
        progress,
    };
    let extracted = archive::extract_tar(&mut guarded, staging);
    let reader = guarded.inner;
    if cancel.signal().is_some() || abort.load(Ordering::SeqCst) {
        return Err(StreamFailure::Aborted);
    }
    let stats = match extracted {
        Ok(stats) => stats,
        Err(archive::ArchiveError::ReadTar { source, .. }) => {
            // A decoder error surfaces through the tar reader: report it as damage.
            return Err(artifact_failure(reader.damaged(source)));
        }
        Err(e @ archive::ArchiveError::UnsafeEntry { .. }) => {
            return Err(StreamFailure::Damaged(format!(
                "{e} in {}",
                ws.source.path.display()
            )));
        }
        Err(e) => {
            return Err(StreamFailure::Failed {
                what: "workspace",
                reason: e.to_string(),
            });
        }
    };
    let checked = reader.finish().and_then(|d| match &ws.source.expected {
        Some(a) => d.check(a, &ws.source.path),
        None => Ok(()),
    });
    checked.map_err(artifact_failure)?;
    progress.finish(
        ArtifactRole::Workspace,
        &format!("{} files extracted to staging", stats.files),
    );
    Ok(stats)
}

/// Stops a stream when cancelled or when the other stream failed, and reports progress.
struct Guarded<'a> {
    inner: ArtifactReader,
    cancel: &'a CancelFlag,
    abort: &'a AtomicBool,
    progress: &'a dyn Progress,
}

impl Read for Guarded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.abort.load(Ordering::SeqCst) {
            return Err(crate::cancel::cancelled_error());
        }
        self.cancel.check()?;
        let n = self.inner.read(buf)?;
        self.progress.advance(ArtifactRole::Workspace, n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_path_of_a_plain_directory_is_its_absolute_path() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(swap_path(&real.join("ws")), real.join("ws"));
    }

    #[test]
    fn swap_path_follows_a_symlinked_workspace_to_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("data")).unwrap();
        std::os::unix::fs::symlink(real.join("data"), real.join("ws")).unwrap();
        assert_eq!(swap_path(&real.join("ws")), real.join("data"));
    }

    #[test]
    fn swap_path_follows_a_symlink_above_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("srv")).unwrap();
        std::os::unix::fs::symlink("srv", real.join("app")).unwrap();
        assert_eq!(
            swap_path(&real.join("app/workspace")),
            real.join("srv/workspace")
        );
    }

    #[test]
    fn swap_path_keeps_a_path_it_cannot_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        // A symlink loop cannot be resolved: the configured path is used as given.
        std::os::unix::fs::symlink("loop", real.join("loop")).unwrap();
        let target = real.join("loop/ws");
        assert_eq!(swap_path(&target), target);
    }
}
