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
//!
//! Only what coffer made is acted on. The parent directory must be writable by the user
//! running coffer alone ([`check_parent`]): otherwise another user could plant a journal or
//! swap the staging directory for a symlink between extraction and rename. A journal is
//! trusted only as a regular file (no symlink) owned by the current user with mode 0600,
//! read bounded; it names no path that is used: every path is derived from the target, the
//! kept name must be one coffer derives, and the staging and previous trees must be the
//! directories (device and inode, owner) the journal recorded. Anything else is refused
//! ([`SwapError::Untrusted`]) and left untouched for the operator to inspect. Trees are
//! removed without crossing into another mount ([`crate::workspace::mounts`]).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::util::fsutil;

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
    /// A journal or leftover beside the target is not provably coffer's own (wrong owner,
    /// mode or type, a symlink, unreadable, or not what the journal recorded): nothing was
    /// touched.
    #[error(
        "{path} is not a restore leftover coffer can trust ({reason}): inspect it and remove it by hand; coffer did not touch it"
    )]
    Untrusted {
        /// The file or directory.
        path: PathBuf,
        /// Why it is not trusted.
        reason: String,
    },
    /// The target's parent directory, where the staging directory and journal live, can be
    /// written by another user.
    #[error(
        "the workspace's parent directory {parent} {reason}: coffer stages and swaps the workspace there, so another user could substitute what is restored; make it writable only by the user running coffer (chmod go-w, owned by that user) or restore elsewhere"
    )]
    SharedParent {
        /// The parent directory.
        parent: PathBuf,
        /// Why, e.g. `is writable by other users (mode 1777)`.
        reason: String,
    },
    /// Removing a tree left directories on other mounts alone (and the directories holding
    /// them).
    #[error(
        "{path} was not removed completely: {} on another filesystem or mount (left untouched): {}; unmount and remove by hand",
        if .mounts.len() == 1 { "a directory is" } else { "directories are" },
        .mounts.iter().map(|m| m.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    OtherMounts {
        /// The tree being removed.
        path: PathBuf,
        /// The mount points left alone.
        mounts: Vec<PathBuf>,
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
    /// Device and inode of the staging directory (the restored tree keeps them when it is
    /// renamed into place).
    staging_id: (u64, u64),
    /// Device and inode of the previous tree, when there was one.
    previous_id: Option<(u64, u64)>,
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

/// The phase an interrupted swap of `target` reached, from its journal; `None` without one
/// (or with one that is not trusted: [`recover`] refuses it).
pub fn interrupted_phase(target: &Path) -> Option<Phase> {
    let (_, _, journal_path) = helper_paths(target).ok()?;
    read_journal(&journal_path).ok().flatten().map(|j| j.phase)
}

/// A journal is a few hundred bytes; anything larger is not ours and is not read.
const JOURNAL_MAX: u64 = 64 << 10;

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn untrusted(path: &Path, reason: impl Into<String>) -> SwapError {
    SwapError::Untrusted {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The journal at `path`, if there is one and it is coffer's: a regular file owned by the
/// current user, mode 0600, at most [`JOURNAL_MAX`] bytes, valid JSON of the current format.
fn read_journal(path: &Path) -> Result<Option<Journal>, SwapError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("inspect", path)(e)),
    };
    if !meta.file_type().is_file() {
        return Err(untrusted(
            path,
            format!("it is {}", fsutil::kind_of(meta.file_type())),
        ));
    }
    if meta.uid() != euid() {
        return Err(untrusted(
            path,
            format!(
                "it is owned by uid {}, not by the user running coffer",
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o7777 != 0o600 {
        return Err(untrusted(
            path,
            format!("its mode is {:o}, coffer writes 600", meta.mode() & 0o7777),
        ));
    }
    let bytes =
        fsutil::read_bounded(path, JOURNAL_MAX).map_err(|e| untrusted(path, e.to_string()))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| untrusted(path, format!("it is not a journal coffer wrote: {e}")))
}

/// Device and inode of the directory at `path`, or `None` if nothing is there. It must be
/// a real directory (no symlink) and either be `expected` (recorded by coffer's journal:
/// the previous workspace and the restored tree may belong to another user) or, with
/// nothing recorded, be owned by the current user. Anything else is refused.
fn own_dir(path: &Path, expected: Option<(u64, u64)>) -> Result<Option<(u64, u64)>, SwapError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("inspect", path)(e)),
    };
    if !meta.is_dir() {
        return Err(untrusted(
            path,
            format!(
                "it is {}, not a directory",
                fsutil::kind_of(meta.file_type())
            ),
        ));
    }
    let id = (meta.dev(), meta.ino());
    match expected {
        Some(e) if e != id => Err(untrusted(
            path,
            "it is not the directory the restore journal recorded",
        )),
        None if meta.uid() != euid() => Err(untrusted(
            path,
            format!(
                "it is owned by uid {}, not by the user running coffer",
                meta.uid()
            ),
        )),
        _ => Ok(Some(id)),
    }
}

/// Refuses a target whose parent directory another user can write to (group or other
/// write bit, or another owner): the staging directory, the journal and the previous tree
/// live there between steps, and such a user could replace them.
pub fn check_parent(target: &Path) -> Result<(), SwapError> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let meta = fs::metadata(parent).map_err(io_err("inspect", parent))?;
    let reason = parent_unsafe_reason(meta.uid(), meta.permissions().mode(), euid());
    match reason {
        Some(reason) => Err(SwapError::SharedParent {
            parent: parent.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Why a directory with owner `uid` and `mode` is not private to `euid`. Pure.
fn parent_unsafe_reason(uid: u32, mode: u32, euid: u32) -> Option<String> {
    crate::util::fsutil::unsafe_dir_reason(uid, mode, euid, false)
}

/// Where the previous tree of `target` is kept after a restore at `now`:
/// `<target>.before-restore-<YYYYmmddTHHMMSSZ>` beside it.
pub fn kept_name(target: &Path, now: DateTime<Utc>) -> PathBuf {
    let stamp = now.format(KEPT_STAMP);
    let name = target
        .file_name()
        .map_or_else(|| "workspace".into(), |n| n.to_string_lossy().into_owned());
    target.with_file_name(format!("{name}.before-restore-{stamp}"))
}

const KEPT_STAMP: &str = "%Y%m%dT%H%M%SZ";

/// Whether `kept` is a name coffer derives for keeping `target`'s previous tree:
/// `<target>.before-restore-<YYYYmmddTHHMMSSZ>` beside it.
pub fn is_kept_name(target: &Path, kept: &Path) -> bool {
    let (Some(name), Some(kept_file)) = (target.file_name(), kept.file_name()) else {
        return false;
    };
    if kept.parent() != target.parent() {
        return false;
    }
    let prefix = format!("{}.before-restore-", name.to_string_lossy());
    kept_file
        .to_str()
        .and_then(|k| k.strip_prefix(&prefix))
        .is_some_and(|stamp| {
            chrono::NaiveDateTime::parse_from_str(stamp, KEPT_STAMP).is_ok() && stamp.len() == 16
        })
}

mod recovery;
pub use recovery::{mark_committed, recover};

impl Swap {
    /// Starts a swap of `target`: records the journal and creates the empty staging
    /// directory (mode 0700; the restored tree's own root mode is applied by extraction).
    /// Call [`recover`] first so no earlier swap is pending.
    pub fn begin(target: &Path, backup: &str) -> Result<Swap, SwapError> {
        let (staging, previous, journal_path) = helper_paths(target)?;
        check_parent(target)?;
        for leftover in [&staging, &previous, &journal_path] {
            if fs::symlink_metadata(leftover).is_ok() {
                return Err(untrusted(leftover, "it is left from an earlier restore"));
            }
        }
        let previous_id = match fs::symlink_metadata(target) {
            Ok(m) if m.is_dir() => Some((m.dev(), m.ino())),
            Ok(_) => {
                return Err(SwapError::Target {
                    path: target.to_path_buf(),
                    reason: "it exists and is not a directory".into(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("inspect", target)(e)),
        };
        fsutil::create_private_dir(&staging)
            .map_err(io_err("create the staging directory", &staging))?;
        let staging_id = match fs::symlink_metadata(&staging) {
            Ok(m) => (m.dev(), m.ino()),
            Err(e) => {
                let _ = fs::remove_dir(&staging);
                return Err(io_err("inspect", &staging)(e));
            }
        };
        let swap = Swap {
            target: target.to_path_buf(),
            staging,
            previous,
            journal_path,
            journal: Journal {
                phase: Phase::Staging,
                had_previous: previous_id.is_some(),
                keep_previous_as: None,
                backup: backup.to_string(),
                started: Utc::now(),
                staging_id,
                previous_id,
            },
        };
        if let Err(e) = swap.write_journal() {
            let _ = fs::remove_dir(&swap.staging);
            return Err(e);
        }
        Ok(swap)
    }

    /// The staging directory to extract into.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Gives up before the swap: removes the staging directory and the journal.
    pub fn abandon(self) -> Result<(), SwapError> {
        remove_tree(&self.staging)?;
        remove_file(&self.journal_path)
    }

    /// Moves the previous tree aside and the staging tree into place.
    pub fn swap_in(&mut self) -> Result<(), SwapError> {
        // The parent is private (checked in begin), so this only catches what a process of
        // the same user did; it is cheap and keeps the rename from installing anything else.
        own_dir(&self.staging, Some(self.journal.staging_id))?;
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

    /// Marks the restore as done and removes the previous tree, or, with `keep_previous`,
    /// renames it to [`kept_name`] beside the target. Returns where the previous tree was
    /// kept.
    pub fn commit(mut self, keep_previous: bool) -> Result<Option<PathBuf>, SwapError> {
        let keep_as = keep_previous.then(|| kept_name(&self.target, Utc::now()));
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

/// Removes a tree coffer made, never crossing into another mount (see
/// [`crate::workspace::mounts::remove_tree_within_mount`]).
fn remove_tree(path: &Path) -> Result<(), SwapError> {
    let left =
        crate::workspace::mounts::remove_tree_within_mount(path).map_err(io_err("remove", path))?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(SwapError::OtherMounts {
            path: path.to_path_buf(),
            mounts: left,
        })
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
        let kept = swap.commit(true).unwrap().unwrap();
        assert!(is_kept_name(&target, &kept), "{}", kept.display());
        assert_eq!(marker(&kept), "old");
        assert!(leftovers(tmp.path()).is_empty());
        assert_eq!(
            kept_name(&target, "2026-12-02T08:00:00Z".parse().unwrap()),
            tmp.path().join("ws.before-restore-20261202T080000Z")
        );
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

    /// A swap whose restore committed elsewhere (the database swap) is finished, not put
    /// back, once marked; one that never swapped in cannot be marked.
    #[test]
    fn a_swap_marked_committed_is_finished_by_recover() {
        for keep in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let target = tmp.path().join("ws");
            assert!(!mark_committed(&target, keep).unwrap());
            tree(&target, "old");
            let mut swap = Swap::begin(&target, "b1").unwrap();
            tree(swap.staging(), "new");
            assert!(mark_committed(&target, keep).is_err(), "staging");
            swap.swap_in().unwrap();
            std::mem::forget(swap);
            assert!(mark_committed(&target, keep).unwrap());
            assert_eq!(
                recover(&target).unwrap(),
                Some(Recovery::FinishedCleanup {
                    backup: "b1".into()
                })
            );
            assert_eq!(marker(&target), "new");
            let kept: Vec<PathBuf> = fs::read_dir(tmp.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| is_kept_name(&target, p))
                .collect();
            assert_eq!(kept.len(), usize::from(keep), "{kept:?}");
            assert!(kept.iter().all(|k| marker(k) == "old"));
            assert!(leftovers(tmp.path()).is_empty());
        }
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

    /// What a planted or damaged journal or leftover looks like; every variant is refused
    /// by `recover` and nothing beside the target is touched.
    #[test]
    fn untrusted_journals_and_leftovers_are_refused_and_left_alone() {
        use std::os::unix::fs::{chown, symlink};
        type Plant = fn(&Path, &Path, &Path);
        let variants: Vec<(&str, Plant)> = vec![
            ("keep_previous_as elsewhere", |target, dir, journal| {
                fs::create_dir(dir.join(".ws.coffer-old")).unwrap();
                let v = serde_json::json!({"phase": "committed", "had_previous": true,
                    "keep_previous_as": dir.join("victim"), "backup": "b",
                    "started": "2026-12-02T08:00:00Z", "staging_id": [0, 0],
                    "previous_id": [fs::metadata(dir.join(".ws.coffer-old")).unwrap().dev(),
                                    fs::metadata(dir.join(".ws.coffer-old")).unwrap().ino()]});
                fsutil::create_private(journal)
                    .unwrap()
                    .write_all(v.to_string().as_bytes())
                    .unwrap();
                let _ = target;
            }),
            ("journal owned by another user", |target, _, journal| {
                let v = serde_json::json!({"phase": "swapped", "had_previous": false,
                    "keep_previous_as": null, "backup": "b", "started": "2026-12-02T08:00:00Z",
                    "staging_id": [fs::metadata(target).unwrap().dev(), fs::metadata(target).unwrap().ino()],
                    "previous_id": null});
                fsutil::create_private(journal)
                    .unwrap()
                    .write_all(v.to_string().as_bytes())
                    .unwrap();
                chown(journal, Some(65534), Some(65534)).unwrap();
            }),
            ("journal readable by others", |_, _, journal| {
                fs::write(journal, "{}").unwrap();
                fs::set_permissions(journal, fs::Permissions::from_mode(0o644)).unwrap();
            }),
            ("journal is a symlink", |_, dir, journal| {
                fs::write(dir.join("elsewhere.json"), "{}").unwrap();
                symlink(dir.join("elsewhere.json"), journal).unwrap();
            }),
            ("journal is a fifo", |_, _, journal| {
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    journal,
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from_raw_mode(0o600),
                    0,
                )
                .unwrap();
            }),
            (
                "swapped, no previous, journal of the old format",
                |_, _, journal| {
                    let v = serde_json::json!({"phase": "swapped", "had_previous": false,
                    "keep_previous_as": null, "backup": "b", "started": "2026-12-02T08:00:00Z"});
                    fsutil::create_private(journal)
                        .unwrap()
                        .write_all(v.to_string().as_bytes())
                        .unwrap();
                },
            ),
            (
                "swapped, no previous, target is not the restored tree",
                |_, dir, journal| {
                    fs::create_dir(dir.join("other")).unwrap();
                    let m = fs::metadata(dir.join("other")).unwrap();
                    let v = serde_json::json!({"phase": "swapped", "had_previous": false,
                    "keep_previous_as": null, "backup": "b", "started": "2026-12-02T08:00:00Z",
                    "staging_id": [m.dev(), m.ino()], "previous_id": null});
                    fsutil::create_private(journal)
                        .unwrap()
                        .write_all(v.to_string().as_bytes())
                        .unwrap();
                },
            ),
            ("previous leftover is a symlink, no journal", |_, dir, _| {
                symlink(dir.join("victim"), dir.join(".ws.coffer-old")).unwrap();
            }),
            ("staging leftover owned by another user", |_, dir, _| {
                fs::create_dir(dir.join(".ws.coffer-new")).unwrap();
                chown(dir.join(".ws.coffer-new"), Some(65534), None).unwrap();
            }),
            (
                "staging leftover is a symlink to the victim's directory",
                |_, dir, _| {
                    fs::create_dir(dir.join("victim-dir")).unwrap();
                    fs::write(dir.join("victim-dir/f"), "v").unwrap();
                    symlink(dir.join("victim-dir"), dir.join(".ws.coffer-new")).unwrap();
                },
            ),
        ];
        for (what, plant) in variants {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            let target = dir.join("ws");
            tree(&target, "current");
            fs::write(dir.join("victim"), "victim").unwrap();
            let (_, _, journal) = helper_paths(&target).unwrap();
            plant(&target, dir, &journal);
            let before = listing(dir);
            let err = recover(&target).expect_err(what);
            assert!(matches!(err, SwapError::Untrusted { .. }), "{what}: {err}");
            assert!(
                err.to_string().contains("inspect it and remove it by hand"),
                "{what}: {err}"
            );
            assert_eq!(marker(&target), "current", "{what}");
            assert_eq!(
                fs::read_to_string(dir.join("victim")).unwrap(),
                "victim",
                "{what}"
            );
            assert_eq!(listing(dir), before, "{what}");
            // A new restore does not start over it either.
            assert!(Swap::begin(&target, "b2").is_err(), "{what}");
            assert_eq!(listing(dir), before, "{what}");
        }
    }

    /// Every name below `dir` with its type and size, to show nothing changed.
    fn listing(dir: &Path) -> Vec<(PathBuf, String, u64)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    stack.push(p.clone());
                }
                out.push((p, fsutil::kind_of(m.file_type()).to_string(), m.len()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn parent_writable_by_others_is_refused() {
        let cases = [
            (0, 0o700, 0, None),
            (0, 0o755, 0, None),
            (0, 0o1777, 0, Some("all users")),
            (0, 0o770, 0, Some("its group")),
            (0, 0o777, 0, Some("its group and all users")),
            (1000, 0o700, 0, Some("owned by uid 1000")),
            (1000, 0o755, 1000, None),
        ];
        for (uid, mode, euid, want) in cases {
            let got = parent_unsafe_reason(uid, mode, euid);
            match want {
                None => assert_eq!(got, None, "{uid} {mode:o}"),
                Some(w) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(w)),
                    "{uid} {mode:o}: {got:?}"
                ),
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        let target = shared.join("ws");
        tree(&target, "old");
        let err = Swap::begin(&target, "b").unwrap_err();
        assert!(matches!(err, SwapError::SharedParent { .. }), "{err}");
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        assert_eq!(leftovers(&shared), Vec::<String>::new());
    }

    #[test]
    fn kept_names_are_only_the_derived_ones() {
        let t = Path::new("/srv/app/ws");
        let cases = [
            ("/srv/app/ws.before-restore-20261202T080000Z", true),
            ("/srv/app/ws.before-restore-20261302T080000Z", false),
            ("/srv/app/ws.before-restore-20261202T080000Z/x", false),
            ("/srv/other/ws.before-restore-20261202T080000Z", false),
            ("/srv/app/other.before-restore-20261202T080000Z", false),
            ("/etc/ld.so.preload", false),
            ("/srv/app/ws.before-restore-", false),
            ("/srv/app/ws.before-restore-20261202T080000Z0", false),
        ];
        for (kept, want) in cases {
            assert_eq!(is_kept_name(t, Path::new(kept)), want, "{kept}");
        }
    }
}
