//! What a backup is, from what can be seen of it without reading its artifacts: its name,
//! its manifest and the sizes of its files. One pure function, [`describe`], for the local
//! backup root ([`crate::root::catalog`]) and the remote listing ([`crate::remote`]), so both
//! call the same folder the same thing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::format::manifest::{AlembicHead, AnyManifest, ArtifactRole};
use crate::format::names::{self, BackupKind};
use crate::format::signing::SIGNED_FILES;

/// Whether a backup can be used.
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

/// What became of a backup's `manifest.json`.
#[derive(Debug, Clone, Copy)]
pub enum ManifestState<'a> {
    /// Read and parsed.
    Parsed(&'a AnyManifest),
    /// There is none.
    Missing,
    /// It exists but cannot be read or parsed; the text says why.
    Unreadable(&'a str),
    /// Not read, because the folder is not named like a backup (a remote folder coffer
    /// does not know is judged by its name alone).
    NotRead,
}

/// Where the file sizes come from, which decides what a size proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// The regular files of a local backup directory: a symlink, device or directory in an
    /// artifact's place is left out of the map, so it counts as missing. A size other than
    /// the manifest's is not judged here: verify and restore prove every artifact's size
    /// and hash before using it and report it as damage.
    Directory,
    /// The objects of a remote folder, as listed. An artifact of another size than its
    /// manifest records makes the backup incomplete: the listing is all there is to go by
    /// before a download.
    Listing,
}

/// A backup as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// Auto, manual or legacy: from the name, else the manifest.
    pub kind: Option<BackupKind>,
    /// When it was made: from the name, else the manifest.
    pub created: Option<DateTime<Utc>>,
    /// Usable or not, and why.
    pub status: EntryStatus,
    /// The Alembic head its manifest records.
    pub alembic_head: Option<AlembicHead>,
    /// The label given when it was made (coffer manifests only).
    pub label: Option<String>,
    /// Whether both signature files (of the manifest and of `SHA256SUMS`) are there; they
    /// are checked by verify, restore and pull, not here.
    pub signed: bool,
}

/// Describes the backup named `name` from its manifest and `files` (file name → size in
/// bytes, as `source` says where they come from). Pure: reads nothing.
///
/// A coffer manifest is complete when every artifact it lists is among `files` (with the
/// recorded size, for a [`Files::Listing`]) and one of them is the database's; a
/// shell-script manifest is usable when the dump (`postgres.sql.gz`, or `.gz.age`) is there.
pub fn describe(
    name: &str,
    manifest: ManifestState<'_>,
    files: &BTreeMap<String, u64>,
    source: Files,
) -> Description {
    let parsed = match manifest {
        ManifestState::Parsed(m) => Some(m),
        _ => None,
    };
    let status = match manifest {
        ManifestState::Parsed(m) => status_of(m, files, source),
        ManifestState::Missing => EntryStatus::Incomplete("no manifest.json".into()),
        ManifestState::Unreadable(why) => EntryStatus::Unreadable(why.to_string()),
        ManifestState::NotRead => EntryStatus::Incomplete("not a backup".into()),
    };
    let from_name = names::parse_name(name);
    Description {
        kind: from_name.map(|p| p.kind).or(match parsed {
            Some(AnyManifest::Coffer(m)) => Some(m.kind),
            Some(AnyManifest::Legacy(_)) => Some(BackupKind::Legacy),
            None => None,
        }),
        created: from_name
            .map(|p| p.time)
            .or_else(|| parsed.and_then(AnyManifest::created_at)),
        status,
        alembic_head: parsed.and_then(AnyManifest::alembic_head).cloned(),
        label: match parsed {
            Some(AnyManifest::Coffer(m)) => m.label.clone(),
            _ => None,
        },
        signed: SIGNED_FILES.iter().all(|(_, sig)| files.contains_key(*sig)),
    }
}

fn status_of(m: &AnyManifest, files: &BTreeMap<String, u64>, source: Files) -> EntryStatus {
    match m {
        AnyManifest::Coffer(m) => {
            let problems: Vec<String> = match source {
                Files::Directory => {
                    let missing: Vec<&str> = m
                        .artifacts
                        .iter()
                        .filter(|a| !files.contains_key(&a.file))
                        .map(|a| a.file.as_str())
                        .collect();
                    if missing.is_empty() {
                        Vec::new()
                    } else {
                        vec![format!(
                            "missing (or not a regular file) {}",
                            missing.join(", ")
                        )]
                    }
                }
                Files::Listing => m
                    .artifacts
                    .iter()
                    .filter_map(|a| match files.get(&a.file) {
                        None => Some(format!("missing {}", a.file)),
                        Some(&s) if s != a.size => {
                            Some(format!("{} is {s} bytes, manifest says {}", a.file, a.size))
                        }
                        Some(_) => None,
                    })
                    .collect(),
            };
            if !problems.is_empty() {
                EntryStatus::Incomplete(problems.join(", "))
            } else if m.artifact(ArtifactRole::Database).is_none() {
                EntryStatus::Incomplete("manifest lists no database artifact".into())
            } else {
                EntryStatus::Complete
            }
        }
        AnyManifest::Legacy(_) => {
            if legacy_dump_names().any(|f| files.contains_key(&f)) {
                EntryStatus::Legacy
            } else {
                EntryStatus::Incomplete("missing postgres.sql.gz".into())
            }
        }
    }
}

/// The names a shell-script backup's dump has: `postgres.sql.gz`, or `.gz.age` when the
/// script encrypted.
fn legacy_dump_names() -> impl Iterator<Item = String> {
    [".gz", ".gz.age"]
        .into_iter()
        .map(|suffix| format!("{}{suffix}", ArtifactRole::Database.base_name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest;

    const LEGACY: &str = r#"{"timestamp":"2020-01-01-000000","alembic_head":"abc123"}"#;

    fn legacy() -> AnyManifest {
        manifest::parse_bytes(LEGACY.as_bytes(), "test").unwrap()
    }

    /// The real format's valid manifest (one database artifact), with a label and a
    /// workspace artifact added.
    fn coffer() -> AnyManifest {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/corpus/manifest/coffer-valid"
        ))
        .unwrap();
        let mut any = manifest::parse_bytes(text.as_bytes(), "test").unwrap();
        let AnyManifest::Coffer(m) = &mut any else {
            unreachable!("a coffer manifest")
        };
        m.label = Some("before the upgrade".into());
        let mut workspace = m.artifacts[0].clone();
        workspace.role = ArtifactRole::Workspace;
        workspace.file = "workspace.tar.gz".into();
        workspace.size = 30;
        m.artifacts.push(workspace);
        any
    }

    /// The same with the workspace artifact only.
    fn coffer_without_database() -> AnyManifest {
        let mut any = coffer();
        if let AnyManifest::Coffer(m) = &mut any {
            m.artifacts.retain(|a| a.role != ArtifactRole::Database);
        }
        any
    }

    /// The artifacts of `m` with their recorded sizes, plus `extra`.
    fn files_of(m: &AnyManifest, extra: &[&str]) -> BTreeMap<String, u64> {
        let mut files: BTreeMap<String, u64> = match m {
            AnyManifest::Coffer(m) => m
                .artifacts
                .iter()
                .map(|a| (a.file.clone(), a.size))
                .collect(),
            AnyManifest::Legacy(_) => BTreeMap::new(),
        };
        files.extend(extra.iter().map(|f| (f.to_string(), 1)));
        files
    }

    fn without(mut files: BTreeMap<String, u64>, file: &str) -> BTreeMap<String, u64> {
        files.remove(file);
        files
    }

    fn resized(mut files: BTreeMap<String, u64>, file: &str) -> BTreeMap<String, u64> {
        *files.get_mut(file).unwrap() += 1;
        files
    }

    #[test]
    fn statuses_table() {
        let coffer = coffer();
        let no_db = coffer_without_database();
        let legacy = legacy();
        let (db, ws) = match &coffer {
            AnyManifest::Coffer(m) => (
                m.artifact(ArtifactRole::Database).unwrap().file.clone(),
                m.artifact(ArtifactRole::Workspace).unwrap().file.clone(),
            ),
            AnyManifest::Legacy(_) => unreachable!(),
        };
        let all = files_of(&coffer, &["manifest.json", "SHA256SUMS"]);
        let incomplete = |r: &str| EntryStatus::Incomplete(r.to_string());
        use Files::{Directory, Listing};
        use ManifestState::{Missing, NotRead, Parsed, Unreadable};
        // (manifest, files, source, expected status)
        let table: Vec<(ManifestState<'_>, BTreeMap<String, u64>, Files, EntryStatus)> = vec![
            (
                Parsed(&coffer),
                all.clone(),
                Directory,
                EntryStatus::Complete,
            ),
            (Parsed(&coffer), all.clone(), Listing, EntryStatus::Complete),
            // A missing artifact (locally: also a symlink or device, left out of the map).
            (
                Parsed(&coffer),
                without(all.clone(), &db),
                Directory,
                incomplete(&format!("missing (or not a regular file) {db}")),
            ),
            (
                Parsed(&coffer),
                without(without(all.clone(), &db), &ws),
                Directory,
                incomplete(&format!("missing (or not a regular file) {db}, {ws}")),
            ),
            (
                Parsed(&coffer),
                without(all.clone(), &ws),
                Listing,
                incomplete(&format!("missing {ws}")),
            ),
            // Another size than recorded: judged from a listing only (locally, verify and
            // restore find it with the hashes).
            (
                Parsed(&coffer),
                resized(all.clone(), &db),
                Directory,
                EntryStatus::Complete,
            ),
            (
                Parsed(&coffer),
                resized(without(all.clone(), &ws), &db),
                Listing,
                incomplete(&format!(
                    "{db} is {} bytes, manifest says {}, missing {ws}",
                    all[&db] + 1,
                    all[&db]
                )),
            ),
            (
                Parsed(&no_db),
                files_of(&no_db, &[]),
                Listing,
                incomplete("manifest lists no database artifact"),
            ),
            // Shell-script backups: usable with the dump, plain or encrypted.
            (
                Parsed(&legacy),
                files_of(&legacy, &["manifest.json", "postgres.sql.gz"]),
                Directory,
                EntryStatus::Legacy,
            ),
            (
                Parsed(&legacy),
                files_of(&legacy, &["postgres.sql.gz.age"]),
                Listing,
                EntryStatus::Legacy,
            ),
            (
                Parsed(&legacy),
                files_of(
                    &legacy,
                    &["manifest.json", "workspace.tar.gz", "postgres.sql"],
                ),
                Listing,
                incomplete("missing postgres.sql.gz"),
            ),
            (
                Missing,
                all.clone(),
                Directory,
                incomplete("no manifest.json"),
            ),
            (
                Unreadable("manifest.json: not JSON"),
                all.clone(),
                Listing,
                EntryStatus::Unreadable("manifest.json: not JSON".into()),
            ),
            (NotRead, all.clone(), Listing, incomplete("not a backup")),
        ];
        for (i, (manifest, files, source, want)) in table.into_iter().enumerate() {
            let got = describe("auto-20200101T000000Z", manifest, &files, source);
            assert_eq!(
                got.status, want,
                "row {i}: {manifest:?} {files:?} {source:?}"
            );
        }
    }

    #[test]
    fn kind_time_head_label_and_signatures() {
        let coffer = coffer();
        let legacy = legacy();
        let m = match &coffer {
            AnyManifest::Coffer(m) => m,
            AnyManifest::Legacy(_) => unreachable!(),
        };
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let signed = files_of(
            &coffer,
            &["manifest.json.minisig", "SHA256SUMS.minisig", "SHA256SUMS"],
        );
        let half_signed = files_of(&coffer, &["manifest.json.minisig"]);
        // The name wins over the manifest for kind and time.
        let d = describe(
            "auto-20200102T030405Z",
            ManifestState::Parsed(&coffer),
            &signed,
            Files::Listing,
        );
        assert_eq!(d.kind, Some(BackupKind::Auto));
        assert_eq!(d.created, Some(at("2020-01-02T03:04:05Z")));
        assert_eq!(d.alembic_head, m.alembic_head);
        assert_eq!(d.label, m.label);
        assert!(d.signed);
        // A name that is not a backup's: both from the manifest.
        let d = describe(
            "copied-elsewhere",
            ManifestState::Parsed(&coffer),
            &half_signed,
            Files::Directory,
        );
        assert_eq!(d.kind, Some(m.kind));
        assert_eq!(d.created, Some(m.created_at));
        assert!(!d.signed, "one signature of two is not signed");
        // Legacy: kind legacy, time from the manifest, head as recorded, no label.
        let d = describe(
            "old",
            ManifestState::Parsed(&legacy),
            &BTreeMap::new(),
            Files::Directory,
        );
        assert_eq!(d.kind, Some(BackupKind::Legacy));
        assert_eq!(d.created, Some(at("2020-01-01T00:00:00Z")));
        assert_eq!(d.alembic_head.unwrap().to_string(), "abc123");
        assert_eq!(d.label, None);
        // Nothing known without a name or a manifest.
        let d = describe("x", ManifestState::Missing, &signed, Files::Directory);
        assert_eq!(
            (d.kind, d.created, d.alembic_head, d.label),
            (None, None, None, None)
        );
        assert!(d.signed);
        let d = describe(
            "2020-01-01-000000",
            ManifestState::Unreadable("bad"),
            &BTreeMap::new(),
            Files::Listing,
        );
        assert_eq!(d.kind, Some(BackupKind::Legacy));
        assert_eq!(d.created, Some(at("2020-01-01T00:00:00Z")));
    }
}
