//! `manifest.json`: what a backup holds, and the hashes that prove it.
//!
//! The schema is documented in `docs/MANIFEST.md`. Format 1 keeps the four keys the
//! shell-script manifest had (`timestamp`, `alembic_head`, `db_size`, `workspace_path`) at
//! the top level, so tools written for it keep working. Legacy manifests (only those keys)
//! are read as [`LegacyManifest`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::format::names::BackupKind;
pub use crate::format::pieces::{Piece, PieceKind};

/// The manifest format this version of coffer writes.
pub const FORMAT: u32 = 1;

/// File name of the manifest inside a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// File name of the checksum list inside a backup directory.
pub const SUMS_FILE: &str = "SHA256SUMS";

/// The largest `manifest.json` coffer reads (a real one is a few KiB).
pub const MANIFEST_CAP: u64 = 1 << 20;

/// The Alembic revision(s) recorded in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AlembicHead {
    /// One head (the usual case): a string in JSON.
    Single(String),
    /// Several heads (branches not merged), or none in an empty `alembic_version`: a list.
    Multiple(Vec<String>),
}

impl AlembicHead {
    /// Builds the JSON shape from the heads read from the dump: `None` stays `None`
    /// (no `alembic_version` table), one head is a string, anything else a list.
    pub fn from_heads(heads: Option<Vec<String>>) -> Option<AlembicHead> {
        let mut heads = heads?;
        if heads.len() == 1 {
            heads.pop().map(AlembicHead::Single)
        } else {
            Some(AlembicHead::Multiple(heads))
        }
    }

    /// The heads as a list.
    pub fn heads(&self) -> Vec<String> {
        match self {
            AlembicHead::Single(h) => vec![h.clone()],
            AlembicHead::Multiple(v) => v.clone(),
        }
    }
}

impl fmt::Display for AlembicHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlembicHead::Single(h) => f.write_str(h),
            AlembicHead::Multiple(v) if v.is_empty() => f.write_str("(empty)"),
            AlembicHead::Multiple(v) => f.write_str(&v.join(",")),
        }
    }
}

/// Which part of the backup an artifact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactRole {
    /// The plain-format `pg_dump` output.
    Database,
    /// The workspace tar.
    Workspace,
    /// The cluster's roles and memberships (`pg_dumpall --roles-only`), written only with
    /// `database.include_roles = true`: file `roles.sql.gz` (`.zst`, `.age` as the others),
    /// listed in `artifacts` and `SHA256SUMS` like them. Restore never runs it: it reads
    /// it with the strict parser of `postgres/roles.rs` and creates only missing roles.
    Roles,
}

impl ArtifactRole {
    /// The artifact's base file name before compression and encryption suffixes.
    pub fn base_name(self) -> &'static str {
        match self {
            ArtifactRole::Database => "postgres.sql",
            ArtifactRole::Workspace => "workspace.tar",
            ArtifactRole::Roles => "roles.sql",
        }
    }

    /// `database`, `workspace` or `roles`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactRole::Database => "database",
            ArtifactRole::Workspace => "workspace",
            ArtifactRole::Roles => "roles",
        }
    }
}

/// Compression of an artifact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (RFC 1952), what `gunzip` reads: the default and the shell scripts' format.
    #[default]
    Gzip,
    /// Zstandard (RFC 8878), what `zstd -d` reads.
    Zstd,
}

impl Compression {
    /// File suffix, e.g. `.gz`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }

    /// The compression an artifact file name says (`….zst` or `….zst.age`: zstd; anything
    /// else, as the shell scripts wrote: gzip).
    pub fn of_file_name(name: &str) -> Compression {
        let name = name.strip_suffix(".age").unwrap_or(name);
        if name.ends_with(".zst") {
            Compression::Zstd
        } else {
            Compression::Gzip
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// Encryption of an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// The age format (age-encryption.org/v1), what `age -d` reads.
    Age,
}

/// The file name of an artifact: `postgres.sql.gz`, `workspace.tar.gz.age`, …
pub fn artifact_file_name(
    role: ArtifactRole,
    compression: Compression,
    encryption: Option<Encryption>,
) -> String {
    let mut name = format!("{}{}", role.base_name(), compression.suffix());
    if encryption.is_some() {
        name.push_str(".age");
    }
    name
}

/// One artifact file and its hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Database, workspace or roles.
    pub role: ArtifactRole,
    /// File name inside the backup directory.
    pub file: String,
    /// Size of the file as stored, in bytes.
    pub size: u64,
    /// SHA-256 of the file as stored (what `sha256sum` prints).
    pub sha256: String,
    /// Size after decrypting and decompressing (the plain SQL or tar), in bytes.
    pub uncompressed_size: u64,
    /// SHA-256 after decrypting and decompressing.
    pub uncompressed_sha256: String,
    /// How it is compressed.
    pub compression: Compression,
    /// How it is encrypted; `null` when it is not.
    pub encryption: Option<Encryption>,
    /// The database artifact's piece index (docs/MANIFEST.md, "The piece index"); absent in
    /// backups made before it existed, and for the other artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pieces: Option<Vec<Piece>>,
}

/// Facts about the database at the time of the dump.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFacts {
    /// `current_database()`.
    pub name: String,
    /// The server's version (`server_version`).
    pub server_version: String,
    /// `pg_dump --version`'s number, e.g. `15.18`.
    pub pg_dump_version: String,
    /// `pg_database_size()` before the dump, in bytes.
    pub size_bytes: u64,
    /// Data rows per table (`schema.table`), counted in the dump's COPY sections.
    pub tables: BTreeMap<String, u64>,
    /// Roles named by `OWNER TO` in the dump: they must exist where it is restored.
    pub owners: Vec<String>,
}

/// Facts about the workspace at the time of the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceFacts {
    /// The workspace directory on the host that was archived.
    pub path: String,
    /// Regular files (hard links counted once).
    pub files: u64,
    /// Directories.
    pub directories: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Extra names of hard-linked files.
    pub hardlinks: u64,
    /// Bytes of regular file content.
    pub file_bytes: u64,
    /// Sockets, fifos and devices that were not archived.
    pub skipped: Vec<String>,
    /// Files that changed or vanished while being archived.
    pub changed: Vec<String>,
}

/// A format-1 coffer manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`] for what this version writes.
    pub format: u32,
    /// The backup's directory name.
    pub name: String,
    /// Auto or manual.
    pub kind: BackupKind,
    /// Free text given with `--label`.
    pub label: Option<String>,
    /// When the backup started (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// When it was complete (RFC 3339, UTC).
    pub completed_at: DateTime<Utc>,
    /// The coffer version that wrote it.
    pub coffer_version: String,
    /// The host it was made on.
    pub hostname: String,
    /// Legacy key: same instant as `created_at`.
    pub timestamp: String,
    /// Legacy key: the Alembic head(s) read from the dump; `null` without `alembic_version`.
    pub alembic_head: Option<AlembicHead>,
    /// Legacy key: database size in bytes.
    pub db_size: u64,
    /// Legacy key: the workspace directory that was archived (`null` when none was).
    pub workspace_path: Option<String>,
    /// Database facts.
    pub database: DatabaseFacts,
    /// Workspace facts (`null` when no workspace was archived).
    pub workspace: Option<WorkspaceFacts>,
    /// The artifact files.
    pub artifacts: Vec<Artifact>,
}

impl Manifest {
    /// The artifact holding `role`, if any.
    pub fn artifact(&self, role: ArtifactRole) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.role == role)
    }

    /// The manifest as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifest serializes");
        s.push('\n');
        s
    }

    /// The `SHA256SUMS` text for the artifacts (`<hex>  <file>` lines, `sha256sum -c` format).
    pub fn sha256sums(&self) -> String {
        self.artifacts
            .iter()
            .map(|a| format!("{}  {}\n", a.sha256, a.file))
            .collect()
    }
}

/// A manifest written by the shell scripts: four keys, no hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyManifest {
    /// `timestamp`, parsed when it is in a known format.
    pub timestamp: Option<DateTime<Utc>>,
    /// `timestamp` as written.
    pub timestamp_raw: Option<String>,
    /// `alembic_head`.
    pub alembic_head: Option<AlembicHead>,
    /// `db_size`: bytes, or the text written (e.g. `12 MB` from `pg_size_pretty`).
    pub db_size: Option<String>,
    /// `workspace_path`.
    pub workspace_path: Option<String>,
}

/// A manifest of either generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyManifest {
    /// Written by coffer.
    Coffer(Box<Manifest>),
    /// Written by the shell scripts.
    Legacy(LegacyManifest),
}

impl AnyManifest {
    /// The Alembic head recorded, if any.
    pub fn alembic_head(&self) -> Option<&AlembicHead> {
        match self {
            AnyManifest::Coffer(m) => m.alembic_head.as_ref(),
            AnyManifest::Legacy(l) => l.alembic_head.as_ref(),
        }
    }

    /// When the backup was made, if known.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        match self {
            AnyManifest::Coffer(m) => Some(m.created_at),
            AnyManifest::Legacy(l) => l.timestamp,
        }
    }
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read: missing, unreadable, a symlink, not a regular file, or
    /// larger than [`MANIFEST_CAP`].
    #[error("cannot read manifest {path}: it {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: crate::util::fsutil::BoundedReadError,
    },
    /// The file is not valid JSON or does not follow the schema.
    #[error("invalid manifest {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Parses manifest JSON of either generation; `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<AnyManifest, ManifestError> {
    let invalid = |reason: String| ManifestError::Invalid {
        path: origin.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("not a JSON object".into()))?;
    match obj.get("format") {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(FORMAT)) => {
            let m: Manifest = serde_path_to_error::deserialize(value)
                .map_err(|e| invalid(format!("key `{}`: {}", e.path(), e.inner())))?;
            check_artifact_names(&m).map_err(invalid)?;
            check_piece_indexes(&m).map_err(invalid)?;
            Ok(AnyManifest::Coffer(Box::new(m)))
        }
        Some(other) => Err(invalid(format!(
            "format {other} is not supported by coffer {} (it reads format {FORMAT}); upgrade coffer",
            crate::VERSION
        ))),
        None => {
            let known = ["timestamp", "alembic_head", "db_size", "workspace_path"];
            if !known.iter().any(|k| obj.contains_key(*k)) {
                return Err(invalid(
                    "neither a coffer manifest (no `format`) nor a legacy one (none of timestamp, alembic_head, db_size, workspace_path)".into(),
                ));
            }
            let text_of = |k: &str| match obj.get(k) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            };
            let alembic_head = match obj.get("alembic_head") {
                Some(serde_json::Value::String(s)) if s.is_empty() || s == "None" => None,
                Some(v @ (serde_json::Value::String(_) | serde_json::Value::Array(_))) => {
                    serde_json::from_value(v.clone())
                        .map_err(|e| invalid(format!("key `alembic_head`: {e}")))?
                }
                Some(serde_json::Value::Null) | None => None,
                Some(other) => {
                    return Err(invalid(format!(
                        "key `alembic_head`: expected a string, got {other}"
                    )));
                }
            };
            let timestamp_raw = text_of("timestamp");
            Ok(AnyManifest::Legacy(LegacyManifest {
                timestamp: timestamp_raw.as_deref().and_then(parse_legacy_time),
                timestamp_raw,
                alembic_head,
                db_size: text_of("db_size"),
                workspace_path: text_of("workspace_path"),
            }))
        }
    }
}

/// Every artifact must be a plain file name inside the backup directory, and no two
/// artifacts may share one: otherwise the manifest could make coffer read, verify or upload
/// a file outside the backup.
fn check_artifact_names(m: &Manifest) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, a) in m.artifacts.iter().enumerate() {
        crate::format::names::check_artifact_file_name(&a.file)
            .map_err(|e| format!("key `artifacts[{i}].file`: {e}"))?;
        if !seen.insert(a.file.as_str()) {
            return Err(format!(
                "key `artifacts[{i}].file`: {:?} is listed twice",
                a.file
            ));
        }
    }
    Ok(())
}

/// A piece index must describe its artifact exactly (see [`crate::format::pieces::check`]):
/// a forged one makes the manifest invalid rather than steer a restore.
fn check_piece_indexes(m: &Manifest) -> Result<(), String> {
    for (i, a) in m.artifacts.iter().enumerate() {
        if let Some(pieces) = &a.pieces {
            crate::format::pieces::check(a, pieces)
                .map_err(|e| format!("key `artifacts[{i}].pieces`: {e}"))?;
        }
    }
    Ok(())
}

/// Reads and parses `dir/manifest.json`: a regular file (a symlink is not followed, a fifo
/// or device is refused) of at most [`MANIFEST_CAP`] bytes, in UTF-8.
pub fn read(dir: &Path) -> Result<AnyManifest, ManifestError> {
    let path = dir.join(MANIFEST_FILE);
    let origin = path.display().to_string();
    let bytes = crate::util::fsutil::read_bounded(&path, MANIFEST_CAP).map_err(|source| {
        ManifestError::Read {
            path: origin.clone(),
            source,
        }
    })?;
    parse_bytes(&bytes, &origin)
}

/// Parses manifest bytes (which must be UTF-8); `origin` names the file in errors.
pub fn parse_bytes(bytes: &[u8], origin: &str) -> Result<AnyManifest, ManifestError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ManifestError::Invalid {
        path: origin.to_string(),
        reason: format!("not UTF-8 text: {e}"),
    })?;
    parse(text, origin)
}

/// Parses the time formats the shell scripts are known to have written.
pub fn parse_legacy_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for pattern in [
        "%Y-%m-%d-%H%M%S",
        "%Y%m%dT%H%M%SZ",
        "%Y%m%d_%H%M%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, pattern) {
            return Some(t.and_utc());
        }
    }
    s.parse::<i64>()
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let t = DateTime::parse_from_rfc3339("2026-11-23T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Manifest {
            format: FORMAT,
            name: "auto-20261123T030000Z".into(),
            kind: BackupKind::Auto,
            label: None,
            created_at: t,
            completed_at: t,
            coffer_version: "0.1.0".into(),
            hostname: "db1".into(),
            timestamp: t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            alembic_head: Some(AlembicHead::Single("9f1c8d2a3b4e".into())),
            db_size: 1234,
            workspace_path: Some("/srv/ws".into()),
            database: DatabaseFacts::default(),
            workspace: None,
            artifacts: vec![Artifact {
                role: ArtifactRole::Database,
                file: "postgres.sql.gz".into(),
                size: 10,
                sha256: "ab".repeat(32),
                uncompressed_size: 20,
                uncompressed_sha256: "cd".repeat(32),
                compression: Compression::Gzip,
                encryption: None,
                pieces: None,
            }],
        }
    }

    #[test]
    fn coffer_manifest_round_trips_and_keeps_legacy_keys() {
        let m = sample();
        let json = m.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for k in ["timestamp", "alembic_head", "db_size", "workspace_path"] {
            assert!(v.get(k).is_some(), "legacy key {k} missing");
        }
        assert_eq!(v["alembic_head"], "9f1c8d2a3b4e");
        assert_eq!(
            parse(&json, "m").unwrap(),
            AnyManifest::Coffer(Box::new(m.clone()))
        );
        assert_eq!(
            m.sha256sums(),
            format!("{}  postgres.sql.gz\n", "ab".repeat(32))
        );
    }

    #[test]
    fn heads_shapes() {
        assert_eq!(AlembicHead::from_heads(None), None);
        assert_eq!(
            AlembicHead::from_heads(Some(vec!["a".into()])),
            Some(AlembicHead::Single("a".into()))
        );
        let two = AlembicHead::from_heads(Some(vec!["a".into(), "b".into()])).unwrap();
        assert_eq!(serde_json::to_string(&two).unwrap(), r#"["a","b"]"#);
    }

    #[test]
    fn legacy_manifests_parse() {
        let cases = [
            (
                r#"{"timestamp":"2025-01-31-041500","alembic_head":"abc123","db_size":"12 MB","workspace_path":"/srv/ws"}"#,
                Some("2025-01-31T04:15:00Z"),
                Some("abc123"),
            ),
            (
                r#"{"timestamp":"2025-01-31T04:15:00+00:00","alembic_head":null,"db_size":1234,"workspace_path":"/srv/ws"}"#,
                Some("2025-01-31T04:15:00Z"),
                None,
            ),
            (r#"{"timestamp":"whenever","alembic_head":""}"#, None, None),
        ];
        for (json, ts, head) in cases {
            let AnyManifest::Legacy(l) = parse(json, "m").unwrap() else {
                panic!("{json}")
            };
            assert_eq!(
                l.timestamp
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                ts.map(String::from),
                "{json}"
            );
            assert_eq!(
                l.alembic_head.map(|h| h.to_string()),
                head.map(String::from)
            );
        }
    }

    #[test]
    fn bad_manifests_say_why() {
        let cases = [
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            ("{}", "neither a coffer manifest"),
            (r#"{"format": 99}"#, "format 99 is not supported"),
            (r#"{"format": 1, "name": "x"}"#, "missing field"),
        ];
        for (json, want) in cases {
            let e = parse(json, "/b/manifest.json").unwrap_err().to_string();
            assert!(
                e.contains("/b/manifest.json") && e.contains(want),
                "{json}: {e}"
            );
        }
    }

    #[test]
    fn artifact_names_must_be_plain() {
        for file in [
            "../x",
            "/etc/passwd",
            "a/b",
            "..",
            "",
            "x\ny",
            "manifest.json",
            "SHA256SUMS",
        ] {
            let mut m = sample();
            m.artifacts[0].file = file.into();
            let e = parse(&m.to_json(), "/b/manifest.json")
                .unwrap_err()
                .to_string();
            assert!(e.contains("artifacts[0].file"), "{file:?}: {e}");
        }
        let mut m = sample();
        m.artifacts.push(m.artifacts[0].clone());
        let e = parse(&m.to_json(), "m").unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn read_is_bounded_and_refuses_special_files() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let cases: [(&str, &dyn Fn()); 4] = [
            ("symbolic link", &|| symlink("/dev/zero", &path).unwrap()),
            ("symbolic link", &|| {
                symlink("/etc/hostname", &path).unwrap()
            }),
            ("a fifo", &|| {
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &path,
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from_raw_mode(0o600),
                    0,
                )
                .unwrap()
            }),
            ("larger than", &|| {
                let f = std::fs::File::create(&path).unwrap();
                f.set_len(MANIFEST_CAP + 1).unwrap();
            }),
        ];
        for (want, make) in cases {
            make();
            let started = std::time::Instant::now();
            let e = read(dir.path()).unwrap_err().to_string();
            assert!(
                e.contains(want) && e.contains("manifest.json"),
                "{want}: {e}"
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
            std::fs::remove_file(&path).unwrap();
        }
        std::fs::create_dir(&path).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
    }

    #[test]
    fn corpus_replays() {
        crate::test_corpus::replay("manifest", |bytes| {
            if let Ok(AnyManifest::Coffer(m)) = parse_bytes(bytes, "corpus") {
                check_artifact_names(&m).unwrap();
            }
        });
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let _ = parse_bytes(&bytes, "p");
        }

        #[test]
        fn coffer_manifests_round_trip_and_only_plain_names_pass(
            file in "\\PC{0,20}",
            size in proptest::prelude::any::<u64>(),
            label in proptest::option::of("\\PC{0,20}"),
        ) {
            let mut m = sample();
            m.artifacts[0].file = file.clone();
            m.artifacts[0].size = size;
            m.label = label;
            let plain = crate::format::names::check_artifact_file_name(&file).is_ok();
            match parse(&m.to_json(), "p") {
                Ok(parsed) => {
                    proptest::prop_assert!(plain, "{file:?} accepted");
                    proptest::prop_assert_eq!(parsed, AnyManifest::Coffer(Box::new(m)));
                }
                Err(_) => proptest::prop_assert!(!plain, "{file:?} refused"),
            }
        }

        #[test]
        fn legacy_manifests_keep_their_keys(
            ts in "\\PC{0,30}",
            head in "[0-9a-f]{1,12}",
            size in "\\PC{0,10}",
            ws in "\\PC{0,30}",
        ) {
            let json = serde_json::json!({
                "timestamp": ts, "alembic_head": head, "db_size": size, "workspace_path": ws,
            });
            let AnyManifest::Legacy(l) = parse(&json.to_string(), "p").unwrap() else {
                panic!("not legacy");
            };
            proptest::prop_assert_eq!(l.timestamp_raw.as_deref(), Some(ts.as_str()));
            proptest::prop_assert_eq!(l.alembic_head, Some(AlembicHead::Single(head)));
            proptest::prop_assert_eq!(l.db_size.as_deref(), Some(size.as_str()));
            proptest::prop_assert_eq!(l.workspace_path.as_deref(), Some(ws.as_str()));
        }
    }
}
