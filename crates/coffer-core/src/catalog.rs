//! The backups found in a backup root.
//!
//! A listing never fails because one entry is damaged: an entry whose manifest is missing
//! or unreadable, or whose artifacts are gone, is reported with that status so the operator
//! sees it, and the rest are listed. Staging directories (backups in progress or killed)
//! are not backups and are left out.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::manifest::{self, AnyManifest, ArtifactRole};
use crate::names::{self, BackupKind};

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
            Err(manifest::ManifestError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
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
}

fn status_of(dir: &Path, m: &AnyManifest) -> EntryStatus {
    match m {
        AnyManifest::Coffer(m) => {
            let missing: Vec<&str> = m
                .artifacts
                .iter()
                .filter(|a| !dir.join(&a.file).is_file())
                .map(|a| a.file.as_str())
                .collect();
            if !missing.is_empty() {
                EntryStatus::Incomplete(format!("missing {}", missing.join(", ")))
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

/// The artifact file of a legacy backup for `role`, if present (`.gz`, or `.gz.age` when the
/// script encrypted).
pub fn legacy_artifact(dir: &Path, role: ArtifactRole) -> Option<PathBuf> {
    [".gz", ".gz.age"]
        .iter()
        .map(|suffix| dir.join(format!("{}{suffix}", role.base_name())))
        .find(|p| p.is_file())
}

fn dir_size(dir: &Path) -> u64 {
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

/// Lists the backups in `root`, newest first. Staging directories and plain files are left
/// out; directories that are neither named like a backup nor hold a manifest are ignored.
pub fn list(root: &Path) -> Result<Vec<BackupEntry>, CatalogError> {
    let rd = fs::read_dir(root).map_err(|source| CatalogError::ReadRoot {
        path: root.to_path_buf(),
        source,
    })?;
    let mut entries = Vec::new();
    for dirent in rd.filter_map(Result::ok) {
        let name = dirent.file_name().to_string_lossy().into_owned();
        if names::is_staging(&name) || name.starts_with('.') {
            continue;
        }
        let path = dirent.path();
        if !dirent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        if names::parse_name(&name).is_none() && !path.join(manifest::MANIFEST_FILE).exists() {
            continue;
        }
        entries.push(BackupEntry::read(&path));
    }
    sort_newest_first(&mut entries);
    Ok(entries)
}

fn sort_newest_first(entries: &mut [BackupEntry]) {
    entries.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.name.cmp(&a.name)));
}

/// Staging directories in `root` (backups or pulls in progress, or left by a killed run).
pub fn staging_dirs(root: &Path) -> Vec<PathBuf> {
    fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| names::is_staging(&e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Finds the backup a user named: a directory path (anywhere), a name in `root`, or the
/// newest usable backup when `name` is `None`.
pub fn resolve(root: &Path, name: Option<&str>) -> Result<BackupEntry, CatalogError> {
    match name {
        Some(n) => {
            // A name with a slash is a directory anywhere; a bare name lives in the root.
            let path = if n.contains('/') {
                PathBuf::from(n)
            } else {
                root.join(n)
            };
            if path.is_dir() {
                Ok(BackupEntry::read(&path))
            } else {
                Err(CatalogError::NotFound {
                    name: n.to_string(),
                    root: root.to_path_buf(),
                })
            }
        }
        None => list(root)?
            .into_iter()
            .find(|e| e.status.is_usable())
            .ok_or_else(|| CatalogError::NoneComplete {
                root: root.to_path_buf(),
            }),
    }
}
