//! The backups found in a backup root.
//!
//! A listing never fails because one entry is damaged: an entry whose manifest is missing
//! or unreadable (a symlink, a fifo, a device or a giant file in its place), or whose
//! artifacts are gone, is reported with that status so the operator sees it, and the rest
//! are listed. Staging directories (backups in progress or killed) are not backups and are
//! left out. [`scan`] also sorts out what is not coffer's: every other entry of the root is
//! an [`UnknownEntry`], which nothing in coffer deletes.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::format::manifest::{self, AnyManifest, ArtifactRole};
use crate::format::names::{self, BackupKind};

/// Why the backup root could not be listed at all.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The root is missing or unreadable.
    #[error("cannot list backup root {path}: {source}; check backup_dir")]
    ReadRoot {
        /// The root.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No backup matched a name.
    #[error("no backup named `{name}` in {root}; `coffer list` shows the backups there")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The root searched.
        root: PathBuf,
    },
    /// `--latest` found no complete backup.
    #[error("no complete backup in {root}")]
    NoneComplete {
        /// The root searched.
        root: PathBuf,
    },
    /// `--latest` found only complete backups dated in the future.
    #[error(
        "no complete backup in {root} that is not dated in the future: {names} (clock skew?); check the clock, or name the backup explicitly if you trust it"
    )]
    OnlyFuture {
        /// The root searched.
        root: PathBuf,
        /// The future-dated backups.
        names: String,
    },
}

/// Whether an entry can be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "lowercase")]
pub enum EntryStatus {
    /// A coffer manifest whose artifacts are all present.
    Complete,
    /// A shell-script-era backup (no hashes to check, but restorable).
    Legacy,
    /// Something is missing; the reason says what.
    Incomplete(String),
    /// The manifest cannot be read or parsed.
    Unreadable(String),
}

impl EntryStatus {
    /// Whether the backup can be restored from.
    pub fn is_usable(&self) -> bool {
        matches!(self, EntryStatus::Complete | EntryStatus::Legacy)
    }
}

/// One backup directory.
#[derive(Debug, Clone)]
pub struct BackupEntry {
    /// Directory name.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Kind, from the name (or the manifest when the name is not a standard one).
    pub kind: Option<BackupKind>,
    /// When it was made: from the name, else the manifest.
    pub created: Option<DateTime<Utc>>,
    /// Usable or not, and why.
    pub status: EntryStatus,
    /// The manifest, when it parsed.
    pub manifest: Option<AnyManifest>,
    /// Total bytes of the files in the directory.
    pub size_bytes: u64,
}

impl BackupEntry {
    /// Reads one backup directory (which may be anywhere, not only in a root).
    pub fn read(path: &Path) -> BackupEntry {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let parsed = names::parse_name(&name);
        let size_bytes = dir_size(path);
        let (manifest, status) = match manifest::read(path) {
            Ok(m) => {
                let status = status_of(path, &m);
                (Some(m), status)
            }
            Err(manifest::ManifestError::Read { source, .. }) if source.is_not_found() => {
                (None, EntryStatus::Incomplete("no manifest.json".into()))
            }
            Err(e) => (None, EntryStatus::Unreadable(e.to_string())),
        };
        let kind = parsed.map(|p| p.kind).or(match &manifest {
            Some(AnyManifest::Coffer(m)) => Some(m.kind),
            Some(AnyManifest::Legacy(_)) => Some(BackupKind::Legacy),
            None => None,
        });
        let created = parsed
            .map(|p| p.time)
            .or_else(|| manifest.as_ref().and_then(AnyManifest::created_at));
        BackupEntry {
            name,
            path: path.to_path_buf(),
            kind,
            created,
            status,
            manifest,
            size_bytes,
        }
    }

    /// The Alembic head recorded in the manifest, as text.
    pub fn alembic_head(&self) -> Option<String> {
        self.manifest
            .as_ref()
            .and_then(AnyManifest::alembic_head)
            .map(ToString::to_string)
    }

    /// Whether the backup is dated in the future of `now` (beyond
    /// [`names::FUTURE_TOLERANCE`]): by its name, or by its manifest's time.
    pub fn is_future(&self, now: DateTime<Utc>) -> bool {
        let manifest_time = self.manifest.as_ref().and_then(AnyManifest::created_at);
        self.created
            .into_iter()
            .chain(manifest_time)
            .any(|t| names::is_future(t, now))
    }

    /// `None` when coffer positively knows this directory is one of its complete backups
    /// (which prune may then delete when retention says so); otherwise why not.
    ///
    /// Known means: a real directory named like a backup; a valid coffer manifest with every
    /// artifact present as a regular file, or a shell-script manifest
    /// in a `YYYY-MM-DD-HHMMSS` directory with its `postgres.sql.gz`; and nothing else in
    /// it but the files coffer or the scripts write.
    pub fn unproven(&self) -> Option<String> {
        let Some(parsed) = names::parse_name(&self.name) else {
            return Some("not named like a backup".into());
        };
        if !self.status.is_usable() {
            return Some(match &self.status {
                EntryStatus::Incomplete(r) => format!("incomplete: {r}"),
                EntryStatus::Unreadable(r) => format!("unreadable: {r}"),
                _ => unreachable!("usable statuses are handled above"),
            });
        }
        let Some(manifest) = &self.manifest else {
            return Some("no manifest".into());
        };
        let expected = match known_artifacts(parsed.kind, manifest) {
            Ok(expected) => expected,
            Err(why) => return Some(why),
        };
        let rd = match fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) => return Some(format!("cannot be read: {e}")),
        };
        let mut files = Vec::new();
        for dirent in rd {
            let Ok(dirent) = dirent else {
                return Some("cannot be read to the end".into());
            };
            let file = dirent.file_name().to_string_lossy().into_owned();
            let regular = dirent.file_type().is_ok_and(|t| t.is_file());
            // The staging marker may survive in a backup renamed from staging (local only).
            if !(regular && file == crate::util::fsutil::STAGING_MARKER) {
                files.push((file, regular));
            }
        }
        foreign_files(&expected, files)
    }
}

/// The artifact file names a backup of `kind` (from its name) with `manifest` may hold,
/// besides [`names::RESERVED_FILES`]; `Err` says why the pair is not one coffer or the
/// scripts write (a shell-script manifest in a directory not named `YYYY-MM-DD-HHMMSS`).
/// Shared by the local backup root and the remote, so both apply one rule.
pub fn known_artifacts(kind: BackupKind, manifest: &AnyManifest) -> Result<Vec<String>, String> {
    match manifest {
        AnyManifest::Coffer(m) => Ok(m.artifacts.iter().map(|a| a.file.clone()).collect()),
        AnyManifest::Legacy(_) => {
            if kind != BackupKind::Legacy {
                return Err(
                    "a shell-script manifest in a directory not named YYYY-MM-DD-HHMMSS".into(),
                );
            }
            Ok([ArtifactRole::Database, ArtifactRole::Workspace]
                .iter()
                .flat_map(|r| [".gz", ".gz.age"].map(|suffix| format!("{}{suffix}", r.base_name())))
                .collect())
        }
    }
}

/// Whether `file` is one coffer (or the scripts) write into a backup whose artifacts are
/// `expected`: an artifact or a reserved name (`manifest.json`, `SHA256SUMS`, signatures).
pub fn is_known_file(file: &str, expected: &[String]) -> bool {
    names::RESERVED_FILES.contains(&file) || expected.iter().any(|e| e == file)
}

/// `None` when every `(name, is a regular file)` of a backup is one coffer knows (see
/// [`is_known_file`]); otherwise a reason naming (up to five of) the others.
pub fn foreign_files(
    expected: &[String],
    files: impl IntoIterator<Item = (String, bool)>,
) -> Option<String> {
    let mut foreign: Vec<String> = files
        .into_iter()
        .filter(|(file, regular)| !*regular || !is_known_file(file, expected))
        .map(|(file, _)| file)
        .collect();
    if foreign.is_empty() {
        return None;
    }
    foreign.sort();
    let shown: Vec<String> = foreign.iter().take(5).map(|f| format!("{f:?}")).collect();
    Some(format!(
        "holds what coffer did not write: {}{}",
        shown.join(", "),
        if foreign.len() > 5 {
            format!(" (and {} more)", foreign.len() - 5)
        } else {
            String::new()
        }
    ))
}

/// Whether `path` is a regular file itself (a symlink, even to a regular file, is not).
fn is_regular(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

fn status_of(dir: &Path, m: &AnyManifest) -> EntryStatus {
    match m {
        AnyManifest::Coffer(m) => {
            let missing: Vec<&str> = m
                .artifacts
                .iter()
                .filter(|a| !is_regular(&dir.join(&a.file)))
                .map(|a| a.file.as_str())
                .collect();
            if !missing.is_empty() {
                EntryStatus::Incomplete(format!(
                    "missing (or not a regular file) {}",
                    missing.join(", ")
                ))
            } else if m.artifact(ArtifactRole::Database).is_none() {
                EntryStatus::Incomplete("manifest lists no database artifact".into())
            } else {
                EntryStatus::Complete
            }
        }
        AnyManifest::Legacy(_) => {
            if legacy_artifact(dir, ArtifactRole::Database).is_some() {
                EntryStatus::Legacy
            } else {
                EntryStatus::Incomplete("missing postgres.sql.gz".into())
            }
        }
    }
}

/// The artifact file of a legacy backup for `role`, if present as a regular file (`.gz`, or
/// `.gz.age` when the script encrypted).
pub fn legacy_artifact(dir: &Path, role: ArtifactRole) -> Option<PathBuf> {
    [".gz", ".gz.age"]
        .iter()
        .map(|suffix| dir.join(format!("{}{suffix}", role.base_name())))
        .find(|p| is_regular(p))
}

fn dir_size(dir: &Path) -> u64 {
    // DirEntry::metadata does not follow symlinks: a link to a device counts nothing.
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// An entry of the backup root that is not a backup or staging directory coffer knows:
/// listed so the operator sees it, never deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownEntry {
    /// Its name in the root.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// What it is and why coffer does not take it for its own.
    pub reason: String,
}

/// A staging directory of coffer's: named like one and holding coffer's marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingEntry {
    /// Its name in the root.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
}

/// Everything in a backup root, sorted into what coffer knows and what it does not.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Real directories named like backups (complete or not), newest first.
    pub backups: Vec<BackupEntry>,
    /// coffer's staging directories (named like one, with the marker).
    pub staging: Vec<StagingEntry>,
    /// Everything else except coffer's lock and run log, by name.
    pub unknown: Vec<UnknownEntry>,
}

/// Files coffer keeps in the root itself.
const ROOT_FILES: &[&str] = &[
    crate::root::lock::LOCK_FILE,
    crate::format::names::RUN_LOG_FILE,
];

/// Sorts every entry of `root` into backups, coffer's staging directories and unknown
/// entries. Nothing is followed: a symlink in the root is unknown, whatever it points to.
pub fn scan(root: &Path) -> Result<Catalog, CatalogError> {
    let rd = fs::read_dir(root).map_err(|source| CatalogError::ReadRoot {
        path: root.to_path_buf(),
        source,
    })?;
    let mut catalog = Catalog {
        backups: Vec::new(),
        staging: Vec::new(),
        unknown: Vec::new(),
    };
    for dirent in rd {
        let dirent = dirent.map_err(|source| CatalogError::ReadRoot {
            path: root.to_path_buf(),
            source,
        })?;
        let name = dirent.file_name().to_string_lossy().into_owned();
        let path = dirent.path();
        let file_type = dirent.file_type().ok();
        let is_dir = file_type.is_some_and(|t| t.is_dir());
        if ROOT_FILES.contains(&name.as_str()) && file_type.is_some_and(|t| t.is_file()) {
            continue;
        }
        let unknown = |reason: String| UnknownEntry {
            name: name.clone(),
            path: path.clone(),
            reason,
        };
        if !is_dir {
            let what = file_type.map_or("unreadable", crate::util::fsutil::kind_of);
            catalog
                .unknown
                .push(unknown(format!("{what}, not a backup directory")));
            continue;
        }
        if names::is_staging(&name) {
            if !names::is_staging_name(&name) {
                catalog.unknown.push(unknown(
                    "not a name coffer gives staging directories".into(),
                ));
            } else if !crate::util::fsutil::has_staging_marker(&path) {
                catalog.unknown.push(unknown(
                    "named like a staging directory but without coffer's marker".into(),
                ));
            } else {
                catalog.staging.push(StagingEntry { name, path });
            }
            continue;
        }
        if names::parse_name(&name).is_none() {
            let hint = if path.join(manifest::MANIFEST_FILE).exists() {
                " (it holds a manifest.json)"
            } else {
                ""
            };
            catalog
                .unknown
                .push(unknown(format!("directory not named like a backup{hint}")));
            continue;
        }
        catalog.backups.push(BackupEntry::read(&path));
    }
    sort_newest_first(&mut catalog.backups);
    catalog.staging.sort_by(|a, b| a.name.cmp(&b.name));
    catalog.unknown.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(catalog)
}

/// Lists the backups in `root`, newest first: the real directories named like backups
/// (see [`scan`] for everything else).
pub fn list(root: &Path) -> Result<Vec<BackupEntry>, CatalogError> {
    scan(root).map(|c| c.backups)
}

fn sort_newest_first(entries: &mut [BackupEntry]) {
    entries.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.name.cmp(&a.name)));
}

/// A backup found by [`resolve_at`], with what the operator should be told about the choice.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The backup.
    pub entry: BackupEntry,
    /// Warnings, e.g. the future-dated backups `--latest` passed over.
    pub warnings: Vec<String>,
}

/// Finds the backup a user named: a directory path (anywhere), a name in `root`, or, when
/// `name` is `None`, the newest usable backup that is not dated in the future of `now`
/// (future-dated ones are passed over with a warning naming them; when only future-dated
/// usable backups exist, it refuses rather than pick one silently).
pub fn resolve_at(
    root: &Path,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Resolved, CatalogError> {
    match name {
        Some(n) => {
            // A name with a slash is a directory anywhere (the user's choice, followed); a
            // bare name lives in the root and must be a real directory there.
            let found = if n.contains('/') {
                let path = PathBuf::from(n);
                path.is_dir().then_some(path)
            } else {
                let path = root.join(n);
                (!n.is_empty()
                    && n != "."
                    && n != ".."
                    && fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()))
                .then_some(path)
            };
            let path = found.ok_or_else(|| CatalogError::NotFound {
                name: n.to_string(),
                root: root.to_path_buf(),
            })?;
            Ok(Resolved {
                entry: BackupEntry::read(&path),
                warnings: Vec::new(),
            })
        }
        None => {
            let usable: Vec<BackupEntry> = list(root)?
                .into_iter()
                .filter(|e| e.status.is_usable())
                .collect();
            let (future, present): (Vec<BackupEntry>, Vec<BackupEntry>) =
                usable.into_iter().partition(|e| e.is_future(now));
            let future_names: Vec<String> = future.into_iter().map(|e| e.name).collect();
            let Some(entry) = present.into_iter().next() else {
                return Err(if future_names.is_empty() {
                    CatalogError::NoneComplete {
                        root: root.to_path_buf(),
                    }
                } else {
                    CatalogError::OnlyFuture {
                        root: root.to_path_buf(),
                        names: future_names.join(", "),
                    }
                });
            };
            let warnings = if future_names.is_empty() {
                Vec::new()
            } else {
                vec![format!(
                    "passed over {} backup(s) dated in the future (clock skew?): {}; using {}, the newest that is not; name one explicitly to use it",
                    future_names.len(),
                    future_names.join(", "),
                    entry.name
                )]
            };
            Ok(Resolved { entry, warnings })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::fsutil::{STAGING_MARKER, STAGING_MARKER_TEXT};
    use proptest::prelude::*;
    use std::os::unix::fs::symlink;

    const LEGACY: &str = r#"{"timestamp":"2020-01-01-030000","alembic_head":"abc"}"#;

    fn dir(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = root.join(name);
        fs::create_dir(&d).unwrap();
        for (f, content) in files {
            fs::write(d.join(f), content).unwrap();
        }
        d
    }

    /// What prune may delete, and what it must leave alone, by construction.
    #[test]
    fn classification_table() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let legacy = [("manifest.json", LEGACY), ("postgres.sql.gz", "x")];
        dir(root, "2020-01-01-030000", &legacy);
        dir(root, "2020-01-02-030000", &[("postgres.sql.gz", "x")]);
        dir(root, "2020-01-03-030000", &[("manifest.json", LEGACY)]);
        let foreign = dir(root, "2020-01-04-030000", &legacy);
        fs::write(foreign.join("report.csv"), "x").unwrap();
        let linked = dir(root, "2020-01-05-030000", &[("manifest.json", LEGACY)]);
        symlink("/etc/hostname", linked.join("postgres.sql.gz")).unwrap();
        dir(root, "auto-20200106T030000Z", &legacy);
        dir(root, "exports", &legacy);
        symlink(
            root.join("2020-01-01-030000"),
            root.join("2020-01-07-030000"),
        )
        .unwrap();
        fs::write(root.join("2020-01-08-030000"), "file").unwrap();
        dir(
            root,
            ".coffer-staging-auto-20200109T030000Z",
            &[(STAGING_MARKER, STAGING_MARKER_TEXT)],
        );
        dir(root, ".coffer-staging-auto-20200110T030000Z", &[]);
        dir(
            root,
            ".coffer-staging-auto-20200111T030000Z",
            &[(STAGING_MARKER, "forged")],
        );
        dir(
            root,
            ".coffer-staging-x",
            &[(STAGING_MARKER, STAGING_MARKER_TEXT)],
        );
        fs::write(root.join(crate::root::lock::LOCK_FILE), "").unwrap();
        fs::write(root.join(crate::format::names::RUN_LOG_FILE), "").unwrap();

        let c = scan(root).unwrap();
        let proven: Vec<(&str, Option<String>)> = c
            .backups
            .iter()
            .map(|b| (b.name.as_str(), b.unproven()))
            .collect();
        let deletable: Vec<&str> = proven
            .iter()
            .filter(|(_, why)| why.is_none())
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(deletable, ["2020-01-01-030000"], "{proven:#?}");
        let why = |name: &str| {
            proven
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap()
                .1
                .clone()
                .unwrap()
        };
        assert!(why("2020-01-02-030000").contains("no manifest.json"));
        assert!(why("2020-01-03-030000").contains("missing postgres.sql.gz"));
        assert!(why("2020-01-04-030000").contains("\"report.csv\""));
        assert!(why("2020-01-05-030000").contains("missing postgres.sql.gz"));
        assert!(why("auto-20200106T030000Z").contains("not named YYYY-MM-DD-HHMMSS"));
        let staging: Vec<&str> = c.staging.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(staging, [".coffer-staging-auto-20200109T030000Z"]);
        let unknown: Vec<&str> = c.unknown.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            unknown,
            [
                ".coffer-staging-auto-20200110T030000Z",
                ".coffer-staging-auto-20200111T030000Z",
                ".coffer-staging-x",
                "2020-01-07-030000",
                "2020-01-08-030000",
                "exports",
            ]
        );
        assert!(
            c.unknown[3].reason.contains("a symbolic link"),
            "{:?}",
            c.unknown[3]
        );
    }

    #[test]
    fn latest_passes_over_future_dated_backups() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let legacy = [("manifest.json", LEGACY), ("postgres.sql.gz", "x")];
        dir(root, "2099-12-31-235959", &legacy);
        let now = DateTime::parse_from_rfc3339("2026-12-02T08:00:00Z")
            .unwrap()
            .to_utc();
        let e = resolve_at(root, None, now).unwrap_err().to_string();
        assert!(
            e.contains("2099-12-31-235959") && e.contains("clock skew"),
            "{e}"
        );
        dir(root, "2026-12-01-030000", &legacy);
        // Within the tolerance: not future-dated.
        dir(root, "2026-12-02-080400", &legacy);
        let r = resolve_at(root, None, now).unwrap();
        assert_eq!(r.entry.name, "2026-12-02-080400");
        assert_eq!(r.warnings.len(), 1);
        assert!(
            r.warnings[0].contains("2099-12-31-235959"),
            "{:?}",
            r.warnings
        );
        // Named explicitly, it is the user's choice.
        let r = resolve_at(root, Some("2099-12-31-235959"), now).unwrap();
        assert!(r.warnings.is_empty() && r.entry.is_future(now));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A legacy-named directory is deletable exactly when it holds the scripts' manifest
        /// and a regular postgres.sql.gz, and nothing but the scripts' files.
        #[test]
        fn deletable_exactly_when_complete_and_nothing_foreign(
            manifest in any::<bool>(),
            dump in 0u8..3,
            workspace in any::<bool>(),
            sums in any::<bool>(),
            foreign in any::<bool>(),
            subdir in any::<bool>(),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let d = dir(tmp.path(), "2020-01-01-030000", &[]);
            if manifest {
                fs::write(d.join("manifest.json"), LEGACY).unwrap();
            }
            match dump {
                1 => fs::write(d.join("postgres.sql.gz"), "x").unwrap(),
                2 => symlink("/dev/zero", d.join("postgres.sql.gz")).unwrap(),
                _ => {}
            }
            if workspace {
                fs::write(d.join("workspace.tar.gz"), "x").unwrap();
            }
            if sums {
                fs::write(d.join("SHA256SUMS"), "").unwrap();
            }
            if foreign {
                fs::write(d.join("report.csv"), "x").unwrap();
            }
            if subdir {
                fs::create_dir(d.join("postgres.sql.gz.age")).unwrap();
            }
            let entry = BackupEntry::read(&d);
            let want = manifest && dump == 1 && !foreign && !subdir;
            prop_assert_eq!(entry.unproven().is_none(), want, "{:?}", entry.unproven());
        }
    }
}
