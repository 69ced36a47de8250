//! Nothing coffer needs is inside what it archives or replaces.
//!
//! The backup root (with the lock and the run log in it) and the metrics file must never be
//! inside the workspace (a backup would archive them, a workspace restore would delete
//! them), the workspace must never be inside the backup root (prune and restores treat the
//! root as coffer's own), and a restore target must neither contain nor sit inside any of
//! them. coffer refuses such a configuration up front rather than excluding and preserving
//! paths: a rule that is checked before anything runs cannot be half-applied.
//!
//! Paths are compared as the kernel will use them: made absolute, with every symlink of the
//! part that exists resolved and `.`/`..` applied (see [`real_path`]).

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::format::names;

/// Most symlinks followed while resolving one path (the kernel's limit is 40).
const MAX_SYMLINKS: usize = 40;

/// `path` as the kernel resolves it: absolute (against the current directory), every
/// symlink resolved, `.` and `..` applied. Components that do not exist (yet) are kept
/// lexically, so a directory coffer is about to create compares correctly too.
pub fn real_path(path: &Path) -> io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    // Components still to walk, last first.
    let mut pending: Vec<OsString> = components(&absolute);
    let mut out = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == "." || name.is_empty() {
            continue;
        }
        if name == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&name);
        match fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links resolving {}",
                        path.display()
                    )));
                }
                let target = fs::read_link(&next)?;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                pending.extend(components(&target));
            }
            // Missing (or below a file): what the kernel would create, taken as written.
            _ => out = next,
        }
    }
    Ok(out)
}

/// The components of `path` in reverse order (the next one to walk last), as names.
fn components(path: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::CurDir => Some(".".into()),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    v.reverse();
    v
}

/// A path coffer relies on, with what it is for messages (`backup_dir`, `metrics_file`,
/// `the backup being restored`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// What it is, as the operator knows it.
    pub what: String,
    /// Its real path ([`real_path`]).
    pub path: PathBuf,
}

impl Place {
    /// Resolves `path` into a place called `what`.
    pub fn resolve(what: impl Into<String>, path: &Path) -> io::Result<Place> {
        Ok(Place {
            what: what.into(),
            path: real_path(path)?,
        })
    }

    fn shown(&self) -> String {
        format!("{} ({})", self.what, self.path.display())
    }
}

/// Resolves and checks the configured paths together ([`config_conflicts`]); `Err` holds
/// one line per problem. Without a workspace there is nothing to overlap.
/// `keys` are the configured key files (`signing.secret_key_file`, …) by setting name.
pub fn check_config_paths(
    root: &Path,
    workspace: Option<&Path>,
    metrics: Option<&Path>,
    keys: &[(&str, &Path)],
) -> Result<(), String> {
    let Some(ws) = workspace else {
        return Ok(());
    };
    let workspace = resolve("workspace.path", ws)?;
    let root = resolve("backup_dir", root)?;
    let metrics = metrics.map(|m| resolve("metrics_file", m)).transpose()?;
    let keys = keys
        .iter()
        .map(|(what, p)| resolve(what, p))
        .collect::<Result<Vec<_>, _>>()?;
    let problems = config_conflicts(&workspace, &root, metrics.as_ref(), &keys);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Resolves and checks a restore target ([`restore_target_conflicts`]): `target` is the
/// real directory to be replaced, `configured` how it was given; `backup` the name and
/// directory of the backup being restored. One line per problem.
pub fn check_restore_target(
    configured: &Path,
    target: &Path,
    root: &Path,
    backup: (&str, &Path),
    metrics: Option<&Path>,
) -> Vec<String> {
    let places = (|| -> Result<_, String> {
        let root = resolve("the backup root", root)?;
        let mut kept = vec![resolve(&format!("backup {}", backup.0), backup.1)?];
        if let Some(m) = metrics {
            kept.push(resolve("metrics_file", m)?);
        }
        Ok((root, kept))
    })();
    match places {
        Ok((root, kept)) => {
            let target = Place {
                what: format!("restore target {}", configured.display()),
                path: target.to_path_buf(),
            };
            restore_target_conflicts(&target, &root, &kept)
        }
        Err(e) => vec![e],
    }
}

fn resolve(what: &str, p: &Path) -> Result<Place, String> {
    Place::resolve(what, p).map_err(|e| format!("cannot resolve {what} {}: {e}", p.display()))
}

/// Whether `inner` is `outer` or below it (component-wise on real paths).
pub fn is_within(inner: &Path, outer: &Path) -> bool {
    inner.starts_with(outer)
}

/// Why the workspace (archived by backups, replaced by restores) and the backup root,
/// metrics file and key files cannot be configured together; empty when they can. Pure: the
/// places must already be resolved.
pub fn config_conflicts(
    workspace: &Place,
    root: &Place,
    metrics: Option<&Place>,
    keys: &[Place],
) -> Vec<String> {
    let mut problems = Vec::new();
    for key in keys {
        if is_within(&key.path, &workspace.path) {
            problems.push(format!(
                "{} is inside {}: backups would archive it (whoever reads a backup would get it) and a workspace restore would replace it; keep keys outside the workspace (e.g. in /etc/coffer)",
                key.shown(),
                workspace.shown()
            ));
        }
    }
    if is_within(&root.path, &workspace.path) {
        problems.push(format!(
            "{} is inside {}: backups would archive the backup root and a workspace restore would delete every backup; move the backup root outside the workspace (e.g. /var/backups/coffer)",
            root.shown(),
            workspace.shown()
        ));
    } else if is_within(&workspace.path, &root.path) {
        problems.push(format!(
            "{} is inside {}: the backup root holds only coffer's backups; move the workspace or the backup root so that neither contains the other",
            workspace.shown(),
            root.shown()
        ));
    }
    if let Some(m) = metrics
        && (is_within(&m.path, &workspace.path) || is_within(&workspace.path, &m.path))
    {
        problems.push(format!(
            "{} is inside {}: backups would archive it and a workspace restore would replace it; write it outside the workspace (e.g. /var/lib/node_exporter/coffer.prom)",
            m.shown(),
            workspace.shown()
        ));
    }
    problems
}

/// Why a restore may not replace `target`; empty when it may. `root` is the backup root;
/// `kept` are the other places a restore must leave alone (the backup being restored, the
/// metrics file). Pure: the places must already be resolved.
///
/// A target inside the backup root is allowed only inside a restore drill's own staging
/// directory (`<root>/.coffer-staging-restore-test-…`), which coffer created empty.
pub fn restore_target_conflicts(target: &Place, root: &Place, kept: &[Place]) -> Vec<String> {
    let mut problems = Vec::new();
    for place in std::iter::once(root).chain(kept) {
        if is_within(&place.path, &target.path) {
            problems.push(format!(
                "{} would be replaced by the restore of {}, which contains it; restore into a directory that holds none of coffer's files",
                place.shown(),
                target.shown()
            ));
        }
    }
    if problems.is_empty() && is_within(&target.path, &root.path) && !is_drill_dir(target, root) {
        problems.push(format!(
            "{} is inside {}: the backup root holds only coffer's backups; restore into a directory outside it",
            target.shown(),
            root.shown()
        ));
    }
    for place in kept {
        if problems.is_empty() && is_within(&target.path, &place.path) {
            problems.push(format!(
                "{} is inside {}; restore into a directory outside it",
                target.shown(),
                place.shown()
            ));
        }
    }
    problems
}

/// Whether `target` is below a restore drill's staging directory directly in `root`.
fn is_drill_dir(target: &Place, root: &Place) -> bool {
    let Ok(rel) = target.path.strip_prefix(&root.path) else {
        return false;
    };
    let mut parts = rel.components();
    let first = parts.next();
    parts.next().is_some()
        && first.is_some_and(|c| {
            c.as_os_str()
                .to_str()
                .is_some_and(|n| n.starts_with(&format!("{}restore-test-", names::STAGING_PREFIX)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::symlink;

    fn place(what: &str, p: &str) -> Place {
        Place {
            what: what.into(),
            path: PathBuf::from(p),
        }
    }

    #[test]
    fn real_path_resolves_symlinks_dotdot_and_missing_tails() {
        let tmp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        fs::create_dir_all(base.join("srv/ws")).unwrap();
        symlink(base.join("srv/ws"), base.join("link")).unwrap();
        symlink("srv/ws", base.join("rel-link")).unwrap();
        symlink(base.join("srv/ws/missing"), base.join("dangling")).unwrap();
        symlink("loop-b", base.join("loop-a")).unwrap();
        symlink("loop-a", base.join("loop-b")).unwrap();
        let ws = base.join("srv/ws");
        let cases: &[(&str, PathBuf)] = &[
            ("srv/ws", ws.clone()),
            ("srv/ws/", ws.clone()),
            ("srv/./ws//", ws.clone()),
            ("srv/x/../ws", ws.clone()),
            ("link", ws.clone()),
            ("link/backups", ws.join("backups")),
            ("rel-link/new/deeper", ws.join("new/deeper")),
            ("link/..", base.join("srv")),
            ("dangling/sub", ws.join("missing/sub")),
            ("srv/ws/missing/../backups", ws.join("backups")),
        ];
        for (rel, want) in cases {
            assert_eq!(&real_path(&base.join(rel)).unwrap(), want, "{rel}");
        }
        assert!(real_path(&base.join("loop-a/x")).is_err());
    }

    #[test]
    fn configuration_conflicts_both_directions() {
        let ws = place("workspace.path", "/srv/ws");
        let metrics = place("metrics_file", "/var/lib/node_exporter/coffer.prom");
        let table: &[(&str, Option<&str>, &str)] = &[
            ("/srv/ws/backups", None, "is inside workspace.path"),
            ("/srv/ws", None, "is inside workspace.path"),
            (
                "/srv",
                None,
                "workspace.path (/srv/ws) is inside backup_dir",
            ),
            ("/", None, "workspace.path (/srv/ws) is inside backup_dir"),
            ("/var/backups", Some("/srv/ws/coffer.prom"), "metrics_file"),
        ];
        for (root, m, want) in table {
            let m = m.map(|p| place("metrics_file", p));
            let got = config_conflicts(&ws, &place("backup_dir", root), m.as_ref(), &[]);
            assert_eq!(got.len(), 1, "{root}: {got:?}");
            assert!(got[0].contains(want), "{root}: {got:?}");
        }
        for root in ["/srv/ws2", "/srv/w", "/var/backups/srv/ws"] {
            assert!(
                config_conflicts(&ws, &place("backup_dir", root), Some(&metrics), &[]).is_empty(),
                "{root}"
            );
        }
    }

    #[test]
    fn restore_targets_never_hold_or_sit_in_what_coffer_keeps() {
        let root = place("backup_dir", "/var/backups/coffer");
        let kept = [
            place("backup", "/var/backups/coffer/auto-20260101T000000Z"),
            place("metrics_file", "/var/lib/ne/coffer.prom"),
        ];
        for target in [
            "/var/backups/coffer",
            "/var/backups",
            "/",
            "/var/backups/coffer/auto-20260101T000000Z",
            "/var/backups/coffer/restored",
            "/var/backups/coffer/.coffer-staging-restore-test-1",
            "/var/backups/coffer/.coffer-staging-x/workspace",
            "/var/lib/ne",
            "/var/lib/ne/coffer.prom/x",
        ] {
            let got = restore_target_conflicts(&place("--target-dir", target), &root, &kept);
            assert!(!got.is_empty(), "{target} must be refused");
        }
        for target in [
            "/srv/ws",
            "/var/backups/coffer2",
            "/var/backups/coffer/.coffer-staging-restore-test-7-2026/workspace",
        ] {
            let got = restore_target_conflicts(&place("--target-dir", target), &root, &kept);
            assert!(got.is_empty(), "{target}: {got:?}");
        }
    }

    fn abs_path() -> impl Strategy<Value = PathBuf> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "c"]), 0..5)
            .prop_map(|parts| PathBuf::from(format!("/{}", parts.join("/"))))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Accepted configurations never put one of root/workspace inside the other, and
        /// every overlapping one is refused.
        #[test]
        fn config_check_is_exactly_overlap(ws in abs_path(), root in abs_path()) {
            let got = config_conflicts(&place("workspace.path", ws.to_str().unwrap()), &place("backup_dir", root.to_str().unwrap()), None, &[]);
            let overlap = ws.starts_with(&root) || root.starts_with(&ws);
            prop_assert_eq!(!got.is_empty(), overlap);
        }

        /// An accepted restore target never contains the root or a kept place.
        #[test]
        fn accepted_targets_contain_nothing_kept(target in abs_path(), root in abs_path(), other in abs_path()) {
            let kept = [place("metrics_file", other.to_str().unwrap())];
            let got = restore_target_conflicts(&place("target", target.to_str().unwrap()), &place("backup_dir", root.to_str().unwrap()), &kept);
            if got.is_empty() {
                prop_assert!(!root.starts_with(&target) && !other.starts_with(&target));
                prop_assert!(!target.starts_with(&root) && !target.starts_with(&other));
            }
        }
    }
}
