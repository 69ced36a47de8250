//! The workspace's missing parent directories on a bare host: which ones a restore creates,
//! whether it may, creating them, and removing exactly those again when the restore fails.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of a parent directory coffer creates: the application, often another user, must be
/// able to reach the restored workspace through it; nobody else may list or write it. The
/// workspace itself gets the mode its archive records.
pub(super) const PARENT_MODE: u32 = 0o711;

/// The directories above a workspace that do not exist, outermost first, and the nearest
/// ancestor that does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MissingParents {
    /// The nearest existing ancestor of the workspace.
    pub(super) existing: PathBuf,
    /// The directories to create, outermost first (empty: the parent exists).
    pub(super) missing: Vec<PathBuf>,
}

/// Splits `target` (a real path, see [`crate::workspace::boundaries::real_path`]) into its nearest
/// existing ancestor and the parents below it that are missing. `Err` says why coffer will
/// not create them: an ancestor is not a directory, or `configured` passes through a symlink
/// that points nowhere (coffer does not create directories where a dangling link points).
pub(super) fn missing_parents(configured: &Path, target: &Path) -> Result<MissingParents, String> {
    let mut missing = Vec::new();
    let mut dir = target.parent();
    let existing = loop {
        let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) else {
            break PathBuf::from("/");
        };
        match fs::symlink_metadata(d) {
            Ok(m) if m.is_dir() => break d.to_path_buf(),
            Ok(_) => {
                return Err(format!(
                    "{} is not a directory, so the workspace {} cannot be created below it",
                    d.display(),
                    target.display()
                ));
            }
            // Below a file (ENOTDIR): the file is found and refused further up.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                missing.push(d.to_path_buf())
            }
            Err(e) => return Err(format!("cannot inspect {}: {e}", d.display())),
        }
        dir = d.parent();
    };
    missing.reverse();
    if !missing.is_empty()
        && let Some(link) = dangling_link(configured)
    {
        return Err(format!(
            "{} is a symlink to {}, which does not exist: coffer does not create directories where a dangling symlink points; create that directory, or fix the link, or restore into another directory",
            link.display(),
            fs::read_link(&link).unwrap_or_default().display()
        ));
    }
    Ok(MissingParents { existing, missing })
}

/// The first symlink on the way to `path` (itself included) whose target does not exist.
fn dangling_link(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    absolute
        .ancestors()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find_map(|p| {
            let is_link = fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
            (is_link && fs::metadata(p).is_err()).then(|| p.to_path_buf())
        })
}

/// Why directories must not be created in `dir` (owned by `uid`, `mode`), for a process
/// running as `euid`: someone other than coffer and root could plant a directory or a
/// symlink where coffer is about to create one. Pure.
pub(super) fn unsafe_ancestor_reason(uid: u32, mode: u32, euid: u32) -> Option<String> {
    crate::util::fsutil::unsafe_dir_reason(uid, mode, euid, true)
}

/// Why `dir`, an ancestor of the directory coffer creates in, is unsafe: someone other than
/// coffer and root could rename what is below it and put a symlink there, redirecting the
/// creation. A sticky directory (`/tmp`) is safe: others cannot rename what is not theirs,
/// and what is below it is checked in turn. Pure.
pub(super) fn unsafe_path_reason(uid: u32, mode: u32, euid: u32) -> Option<String> {
    if mode & 0o1000 != 0 && (uid == euid || uid == 0) {
        None
    } else {
        unsafe_ancestor_reason(uid, mode, euid)
    }
}

/// Checks that coffer may safely create directories in `dir`: it and every directory
/// above it are coffer's or root's and nobody else can write to them (or, above `dir`,
/// are sticky), and none of them is a symlink now.
pub(super) fn check_ancestor(dir: &Path) -> Result<(), String> {
    let euid = rustix::process::geteuid().as_raw();
    for (i, d) in dir.ancestors().enumerate() {
        let meta =
            fs::symlink_metadata(d).map_err(|e| format!("cannot inspect {}: {e}", d.display()))?;
        let reason = if !meta.is_dir() {
            Some("is not a directory (it was replaced since the path was resolved)".to_string())
        } else if i == 0 {
            unsafe_ancestor_reason(meta.uid(), meta.mode(), euid)
        } else {
            unsafe_path_reason(meta.uid(), meta.mode(), euid)
        };
        if let Some(reason) = reason {
            let place = if i == 0 {
                format!("in {}, which", d.display())
            } else {
                format!("in {}, below {}, which", dir.display(), d.display())
            };
            return Err(format!(
                "the workspace's parent directories would be created {place} {reason}: another user could put something of theirs in their place; create them by hand, or restore into another directory"
            ));
        }
    }
    Ok(())
}

/// The directories a restore created, innermost last, each with the identity it had when
/// created (so only that very directory is ever removed).
#[derive(Debug, Default)]
pub(super) struct CreatedDirs {
    dirs: Vec<(PathBuf, (u64, u64))>,
}

impl CreatedDirs {
    /// Creates `missing` (outermost first) with [`PARENT_MODE`]. Fails if any of them
    /// appeared since the plan was made (it is not coffer's); what was created is removed.
    pub(super) fn create(missing: &[PathBuf]) -> Result<CreatedDirs, String> {
        let mut created = CreatedDirs::default();
        for dir in missing {
            let made = fs::DirBuilder::new()
                .mode(PARENT_MODE)
                .create(dir)
                .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(PARENT_MODE)))
                .and_then(|()| fs::symlink_metadata(dir));
            match made {
                Ok(m) if m.is_dir() => created.dirs.push((dir.clone(), (m.dev(), m.ino()))),
                Ok(_) => {
                    let _ = created.remove();
                    return Err(format!(
                        "{} is not the directory coffer created",
                        dir.display()
                    ));
                }
                Err(e) => {
                    let _ = created.remove();
                    let why = if e.kind() == io::ErrorKind::AlreadyExists {
                        "it appeared after the pre-flight checks".to_string()
                    } else {
                        e.to_string()
                    };
                    return Err(format!("cannot create {}: {why}", dir.display()));
                }
            }
        }
        Ok(created)
    }

    /// The directories created, outermost first.
    pub(super) fn paths(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(p, _)| p.as_path())
    }

    /// The directories created with their identities (device, inode), outermost first.
    pub(super) fn identities(&self) -> impl Iterator<Item = (PathBuf, (u64, u64))> + '_ {
        self.dirs.iter().cloned()
    }

    /// Whether nothing was created.
    pub(super) fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Removes the created directories, innermost first: only empty ones, and only while
    /// each is still the directory coffer created. `Err` names what was left.
    pub(super) fn remove(self) -> Result<(), String> {
        let mut left = Vec::new();
        for (dir, id) in self.dirs.iter().rev() {
            let same =
                fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && (m.dev(), m.ino()) == *id);
            if !same || fs::remove_dir(dir).is_err() {
                left.push(dir.display().to_string());
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(left.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().canonicalize().unwrap()
    }

    #[test]
    fn an_existing_parent_leaves_nothing_to_create() {
        let dir = tempfile::tempdir().unwrap();
        let target = real(&dir).join("ws");
        let found = missing_parents(&target, &target).unwrap();
        assert_eq!(found.existing, real(&dir));
        assert!(found.missing.is_empty());
    }

    #[test]
    fn missing_parents_are_listed_outermost_first() {
        let dir = tempfile::tempdir().unwrap();
        let target = real(&dir).join("srv/app/ws");
        let found = missing_parents(&target, &target).unwrap();
        assert_eq!(found.existing, real(&dir));
        assert_eq!(
            found.missing,
            [real(&dir).join("srv"), real(&dir).join("srv/app")]
        );
    }

    #[test]
    fn a_file_on_the_way_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(real(&dir).join("srv"), b"x").unwrap();
        let target = real(&dir).join("srv/app/ws");
        let err = missing_parents(&target, &target).unwrap_err();
        assert!(err.contains("is not a directory"), "{err}");
    }

    #[test]
    fn a_dangling_symlink_on_the_way_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = real(&dir);
        std::os::unix::fs::symlink(base.join("nowhere/deep"), base.join("app")).unwrap();
        let configured = base.join("app/ws");
        let target = crate::workspace::boundaries::real_path(&configured).unwrap();
        assert_eq!(target, base.join("nowhere/deep/ws"));
        let err = missing_parents(&configured, &target).unwrap_err();
        assert!(err.contains("dangling symlink"), "{err}");
        assert!(
            err.starts_with(&format!("{} is a symlink to", base.join("app").display())),
            "{err}"
        );
    }

    #[test]
    fn a_symlink_to_an_existing_directory_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let base = real(&dir);
        std::fs::create_dir(base.join("data")).unwrap();
        std::os::unix::fs::symlink(base.join("data"), base.join("app")).unwrap();
        let configured = base.join("app/srv/ws");
        let target = crate::workspace::boundaries::real_path(&configured).unwrap();
        let found = missing_parents(&configured, &target).unwrap();
        assert_eq!(found.missing, [base.join("data/srv")]);
    }

    #[test]
    fn ancestors_must_be_coffers_or_roots_and_not_shared() {
        assert_eq!(unsafe_ancestor_reason(1000, 0o40755, 1000), None);
        assert_eq!(unsafe_ancestor_reason(0, 0o40755, 1000), None);
        assert!(
            unsafe_ancestor_reason(1001, 0o40755, 1000)
                .unwrap()
                .contains("uid 1001")
        );
        assert!(
            unsafe_ancestor_reason(0, 0o41777, 0)
                .unwrap()
                .contains("all users")
        );
        assert!(
            unsafe_ancestor_reason(0, 0o40775, 0)
                .unwrap()
                .contains("its group")
        );
    }

    #[test]
    fn every_directory_above_is_checked_too() {
        let dir = tempfile::tempdir().unwrap();
        let base = real(&dir);
        check_ancestor(&base).unwrap();
        // Someone else may write to a directory above: they could rename `mine` away and
        // put a symlink in its place between the check and the creation.
        let shared = base.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::create_dir(shared.join("mine")).unwrap();
        let err = check_ancestor(&shared.join("mine")).unwrap_err();
        assert!(
            err.contains(&format!(
                "below {}, which is writable by its group and all users",
                shared.display()
            )),
            "{err}"
        );
        // Sticky (as /tmp is): others cannot rename what is not theirs.
        std::fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        check_ancestor(&shared.join("mine")).unwrap();
        assert_eq!(unsafe_path_reason(0, 0o41777, 1000), None);
        assert!(unsafe_path_reason(1001, 0o41777, 1000).is_some());
        assert!(unsafe_path_reason(0, 0o40777, 1000).is_some());
    }

    #[test]
    fn created_directories_are_removed_again_and_only_they() {
        let dir = tempfile::tempdir().unwrap();
        let base = real(&dir);
        let missing = [base.join("a"), base.join("a/b")];
        let created = CreatedDirs::create(&missing).unwrap();
        let mode = std::fs::metadata(base.join("a/b")).unwrap().mode() & 0o7777;
        assert_eq!(mode, PARENT_MODE);
        assert_eq!(created.paths().count(), 2);
        created.remove().unwrap();
        assert!(!base.join("a").exists());
        assert!(base.exists());
    }

    #[test]
    fn a_directory_with_something_in_it_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let base = real(&dir);
        let created = CreatedDirs::create(&[base.join("a"), base.join("a/b")]).unwrap();
        std::fs::write(base.join("a/other"), b"not coffer's").unwrap();
        let err = created.remove().unwrap_err();
        assert_eq!(err, base.join("a").display().to_string());
        assert!(base.join("a/other").exists());
        assert!(!base.join("a/b").exists());
    }

    #[test]
    fn a_directory_that_appeared_meanwhile_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let base = real(&dir);
        std::fs::create_dir(base.join("a")).unwrap();
        let err = CreatedDirs::create(&[base.join("a"), base.join("a/b")]).unwrap_err();
        assert!(
            err.contains("appeared after the pre-flight checks"),
            "{err}"
        );
        assert!(base.join("a").exists(), "not coffer's, so not removed");
    }
}
