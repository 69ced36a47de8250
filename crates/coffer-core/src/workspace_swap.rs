//! Replacing a directory all at once: the new tree is built in a staging directory beside
//! the target (same filesystem), swapped in by two renames, and the previous tree is kept
//! until the caller says the whole restore succeeded.
//!
//! A small journal beside the target records how far a swap got, so a run killed at any
//! point (SIGKILL, power loss) is undone by [`recover`] on the next run: the previous tree
//! is put back unless the restore had been committed.
//!
//! For a target `/srv/app/workspace` the helpers are, in `/srv/app`:
//! `.workspace.coffer-new` (staging), `.workspace.coffer-old` (the previous tree during the
//! swap) and `.workspace.coffer-restore.json` (the journal).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fsutil;

/// Why a swap step failed.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// A filesystem operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done, e.g. `rename the previous workspace aside`.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A rename of the swap failed and the previous tree could not be put back: the target
    /// is missing or holds the new tree while the previous one is at `previous`.
    #[error(
        "the previous workspace could not be put back to {target} ({source}); it is at {previous}: move it back by hand"
    )]
    NotPutBack {
        /// The directory being replaced.
        target: PathBuf,
        /// Where the previous tree is.
        previous: PathBuf,
        /// Why the rename back failed.
        source: io::Error,
    },
    /// The target cannot be swapped (not a directory, no parent).
    #[error("cannot restore into {path}: {reason}")]
    Target {
        /// The target directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl SwapError {
    /// Whether the target was left without its previous tree (as opposed to a step that
    /// failed before changing it).
    pub fn left_inconsistent(&self) -> bool {
        matches!(self, SwapError::NotPutBack { .. })
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SwapError + 'a {
    move |source| SwapError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// How far a swap got, as recorded in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The new tree is being written to the staging directory; the target is untouched.
    Staging,
    /// The renames are under way or done; the restore is not committed yet.
    Swapped,
    /// The restore succeeded; only the cleanup of the previous tree is left.
    Committed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    phase: Phase,
    /// Whether the target existed (and so was, or is being, moved to the old path).
    had_previous: bool,
    /// Where the previous tree is to be kept after the commit (`--keep-old`), if anywhere.
    keep_previous_as: Option<PathBuf>,
    /// What was being restored, for messages.
    backup: String,
    started: DateTime<Utc>,
}

/// The paths of one swap.
#[derive(Debug, Clone)]
pub struct Swap {
    target: PathBuf,
    staging: PathBuf,
    previous: PathBuf,
    journal_path: PathBuf,
    journal: Journal,
}

/// What [`recover`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// A restore had been interrupted before the swap: its staging directory was removed.
    RemovedStaging {
        /// The backup that was being restored.
        backup: String,
    },
    /// A restore had been interrupted after the swap: the previous tree was put back.
    PutBack {
        /// The backup that was being restored.
        backup: String,
    },
    /// A committed restore had been interrupted during cleanup: the cleanup was finished.
    FinishedCleanup {
        /// The backup that was restored.
        backup: String,
    },
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recovery::RemovedStaging { backup } => write!(
                f,
                "an interrupted restore of {backup} had not touched the workspace; its staging directory was removed"
            ),
            Recovery::PutBack { backup } => write!(
                f,
                "an interrupted restore of {backup} had swapped the workspace; the previous workspace was put back"
            ),
            Recovery::FinishedCleanup { backup } => write!(
                f,
                "a restore of {backup} had completed but not cleaned up; the cleanup was finished"
            ),
        }
    }
}

fn helper_paths(target: &Path) -> Result<(PathBuf, PathBuf, PathBuf), SwapError> {
    let bad = |reason: &str| SwapError::Target {
        path: target.to_path_buf(),
        reason: reason.into(),
    };
    let parent = target
        .parent()
        .ok_or_else(|| bad("it has no parent directory"))?;
    let name = target
        .file_name()
        .ok_or_else(|| bad("it has no file name"))?
        .to_string_lossy();
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    Ok((
        parent.join(format!(".{name}.coffer-new")),
        parent.join(format!(".{name}.coffer-old")),
        parent.join(format!(".{name}.coffer-restore.json")),
    ))
}

/// The phase an interrupted swap of `target` reached, from its journal; `None` without one.
pub fn interrupted_phase(target: &Path) -> Option<Phase> {
    let (_, _, journal_path) = helper_paths(target).ok()?;
    let meta = fs::symlink_metadata(&journal_path).ok()?;
    if !meta.is_file() || meta.len() > JOURNAL_MAX {
        return None;
    }
    let journal: Journal = serde_json::from_slice(&fs::read(&journal_path).ok()?).ok()?;
    Some(journal.phase)
}

/// A journal is a few hundred bytes; anything larger is not ours and is not read.
const JOURNAL_MAX: u64 = 64 << 10;

/// Undoes or finishes a swap of `target` that a killed run left behind. `None` when there
/// was nothing to do.
pub fn recover(target: &Path) -> Result<Option<Recovery>, SwapError> {
    let (staging, previous, journal_path) = helper_paths(target)?;
    let journal: Option<Journal> = fs::symlink_metadata(&journal_path)
        .ok()
        .filter(|m| m.is_file() && m.len() <= JOURNAL_MAX)
        .and_then(|_| fs::read(&journal_path).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(journal) = journal else {
        // Without a journal the swap never started: at most a staging directory is left.
        let had_staging = staging.exists();
        remove_tree(&staging)?;
        remove_file(&journal_path)?;
        return Ok(had_staging.then(|| Recovery::RemovedStaging {
            backup: "a backup".into(),
        }));
    };
    let backup = journal.backup.clone();
    let outcome = match journal.phase {
        Phase::Staging => {
            remove_tree(&staging)?;
            Recovery::RemovedStaging { backup }
        }
        Phase::Swapped => {
            remove_tree(&staging)?;
            if journal.had_previous {
                if previous.exists() {
                    // The target, if present, is the restored tree: the previous one wins.
                    remove_tree(target)?;
                    fs::rename(&previous, target)
                        .map_err(io_err("put the previous workspace back to", target))?;
                }
                // else: killed before the first rename, the target is still the previous tree.
            } else {
                remove_tree(target)?;
            }
            Recovery::PutBack { backup }
        }
        Phase::Committed => {
            finish_previous(&previous, journal.keep_previous_as.as_deref())?;
            remove_tree(&staging)?;
            Recovery::FinishedCleanup { backup }
        }
    };
    sync_parent(target);
    remove_file(&journal_path)?;
    Ok(Some(outcome))
}

impl Swap {
    /// Starts a swap of `target`: records the journal and creates the empty staging
    /// directory (mode 0700; the restored tree's own root mode is applied by extraction).
    /// Call [`recover`] first so no earlier swap is pending.
    pub fn begin(target: &Path, backup: &str) -> Result<Swap, SwapError> {
        let (staging, previous, journal_path) = helper_paths(target)?;
        let had_previous = match fs::symlink_metadata(target) {
            Ok(m) if m.is_dir() => true,
            Ok(_) => {
                return Err(SwapError::Target {
                    path: target.to_path_buf(),
                    reason: "it exists and is not a directory".into(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err("inspect", target)(e)),
        };
        let swap = Swap {
            target: target.to_path_buf(),
            staging,
            previous,
            journal_path,
            journal: Journal {
                phase: Phase::Staging,
                had_previous,
                keep_previous_as: None,
                backup: backup.to_string(),
                started: Utc::now(),
            },
        };
        swap.write_journal()?;
        fsutil::create_private_dir(&swap.staging)
            .map_err(io_err("create the staging directory", &swap.staging))?;
        Ok(swap)
    }

    /// The staging directory to extract into.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// The directory being replaced.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Gives up before the swap: removes the staging directory and the journal.
    pub fn abandon(self) -> Result<(), SwapError> {
        remove_tree(&self.staging)?;
        remove_file(&self.journal_path)
    }

    /// Moves the previous tree aside and the staging tree into place.
    pub fn swap_in(&mut self) -> Result<(), SwapError> {
        self.journal.phase = Phase::Swapped;
        self.write_journal()?;
        if self.journal.had_previous {
            fs::rename(&self.target, &self.previous).map_err(io_err(
                "move the previous workspace aside from",
                &self.target,
            ))?;
        }
        if let Err(source) = fs::rename(&self.staging, &self.target) {
            if self.journal.had_previous
                && let Err(back) = fs::rename(&self.previous, &self.target)
            {
                return Err(SwapError::NotPutBack {
                    target: self.target.clone(),
                    previous: self.previous.clone(),
                    source: back,
                });
            }
            return Err(SwapError::Io {
                op: "move the restored workspace into",
                path: self.target.clone(),
                source,
            });
        }
        sync_parent(&self.target);
        Ok(())
    }

    /// Undoes [`Swap::swap_in`] (the restore failed after it): the restored tree is removed
    /// and the previous one put back.
    pub fn swap_back(self) -> Result<(), SwapError> {
        remove_tree(&self.target)?;
        if self.journal.had_previous {
            fs::rename(&self.previous, &self.target)
                .map_err(io_err("put the previous workspace back to", &self.target))?;
        }
        sync_parent(&self.target);
        remove_file(&self.journal_path)
    }

    /// Marks the restore as done and removes the previous tree, or, with `keep_as`, renames
    /// it there. Returns where the previous tree was kept.
    pub fn commit(mut self, keep_as: Option<PathBuf>) -> Result<Option<PathBuf>, SwapError> {
        self.journal.phase = Phase::Committed;
        self.journal.keep_previous_as = keep_as.clone().filter(|_| self.journal.had_previous);
        self.write_journal()?;
        let kept = finish_previous(&self.previous, self.journal.keep_previous_as.as_deref())?;
        sync_parent(&self.target);
        remove_file(&self.journal_path)?;
        Ok(kept)
    }

    fn write_journal(&self) -> Result<(), SwapError> {
        let tmp = self.journal_path.with_extension("json.tmp");
        let _ = fs::remove_file(&tmp);
        let write = || -> io::Result<()> {
            let mut f = fsutil::create_private(&tmp)?;
            f.write_all(&serde_json::to_vec(&self.journal).expect("journal serializes"))?;
            f.sync_all()?;
            fs::rename(&tmp, &self.journal_path)?;
            Ok(())
        };
        write().map_err(io_err("write the restore journal", &self.journal_path))?;
        sync_parent(&self.journal_path);
        Ok(())
    }
}

/// Removes the previous tree or moves it to `keep_as`; returns where it was kept.
fn finish_previous(previous: &Path, keep_as: Option<&Path>) -> Result<Option<PathBuf>, SwapError> {
    if !previous.exists() {
        return Ok(keep_as.filter(|p| p.exists()).map(Path::to_path_buf));
    }
    match keep_as {
        Some(dest) => {
            fs::rename(previous, dest).map_err(io_err("keep the previous workspace as", dest))?;
            Ok(Some(dest.to_path_buf()))
        }
        None => {
            remove_tree(previous)?;
            Ok(None)
        }
    }
}

fn remove_tree(path: &Path) -> Result<(), SwapError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err("remove", path)),
        Ok(_) => fs::remove_file(path).map_err(io_err("remove", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("inspect", path)(e)),
    }
}

fn remove_file(path: &Path) -> Result<(), SwapError> {
    // Nothing there, nothing to do: unlink() of a missing name fails with EROFS on a
    // read-only filesystem, which must not look like a failed recovery.
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Best effort: the renames are done either way, the fsync only makes them durable sooner.
fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let _ = fsutil::sync_dir(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path, marker: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("marker"), marker).unwrap();
    }

    fn marker(dir: &Path) -> String {
        fs::read_to_string(dir.join("marker")).unwrap()
    }

    fn leftovers(parent: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn swap_commit_and_keep() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("ws");
        tree(&target, "old");
        let mut swap = Swap::begin(&target, "b1").unwrap();
        tree(swap.staging(), "new");
        swap.swap_in().unwrap();
        assert_eq!(marker(&target), "new");
        let kept = tmp.path().join("ws.before-restore");
        assert_eq!(swap.commit(Some(kept.clone())).unwrap(), Some(kept.clone()));
        assert_eq!(marker(&kept), "old");
        assert!(leftovers(tmp.path()).is_empty());
    }

    #[test]
    fn swap_back_restores_previous_and_fresh_target_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("ws");
        tree(&target, "old");
        let mut swap = Swap::begin(&target, "b1").unwrap();
        tree(swap.staging(), "new");
        swap.swap_in().unwrap();
        swap.swap_back().unwrap();
        assert_eq!(marker(&target), "old");
        assert!(leftovers(tmp.path()).is_empty());

        let fresh = tmp.path().join("fresh");
        let mut swap = Swap::begin(&fresh, "b1").unwrap();
        tree(swap.staging(), "new");
        swap.swap_in().unwrap();
        swap.swap_back().unwrap();
        assert!(!fresh.exists());
    }

    /// A run killed at each point is undone (or finished) by the next run's `recover`.
    #[test]
    fn recovery_after_a_kill_at_every_step() {
        for step in 0..5 {
            let tmp = tempfile::tempdir().unwrap();
            let target = tmp.path().join("ws");
            tree(&target, "old");
            let (_, previous, _) = helper_paths(&target).unwrap();
            let mut swap = Swap::begin(&target, "b1").unwrap();
            tree(swap.staging(), "new");
            let expect = match step {
                0 => "old", // killed while staging
                1 => {
                    // killed after the journal said swapped, before any rename
                    swap.journal.phase = Phase::Swapped;
                    swap.write_journal().unwrap();
                    "old"
                }
                2 => {
                    // killed between the two renames
                    swap.journal.phase = Phase::Swapped;
                    swap.write_journal().unwrap();
                    fs::rename(&target, &previous).unwrap();
                    "old"
                }
                3 => {
                    swap.swap_in().unwrap();
                    "old"
                }
                _ => {
                    swap.swap_in().unwrap();
                    swap.journal.phase = Phase::Committed;
                    swap.write_journal().unwrap();
                    "new"
                }
            };
            std::mem::forget(swap);
            assert!(recover(&target).unwrap().is_some(), "step {step}");
            assert_eq!(marker(&target), expect, "step {step}");
            assert!(
                leftovers(tmp.path()).is_empty(),
                "step {step}: {:?}",
                leftovers(tmp.path())
            );
            assert_eq!(recover(&target).unwrap(), None);
        }
    }

    #[test]
    fn target_that_is_a_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("ws");
        fs::write(&target, "x").unwrap();
        assert!(matches!(
            Swap::begin(&target, "b"),
            Err(SwapError::Target { .. })
        ));
    }
}
