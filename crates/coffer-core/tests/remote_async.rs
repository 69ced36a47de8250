//! coffer's remote API embedded in an async program: a `Remote` over an in-memory object
//! store, driven from inside a tokio runtime (where a library that blocked on a runtime of
//! its own would panic), with its futures spawned as a web backend or a worker would.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use coffer_core::BackupKind;
use coffer_core::CancelFlag;
use coffer_core::EntryStatus;
use coffer_core::SignaturePolicy;
use coffer_core::internals::pull::{self, Which};
use coffer_core::internals::sync::{self, SyncAction, SyncOptions};
use coffer_core::manifest::{
    self, AlembicHead, Artifact, ArtifactRole, Compression, DatabaseFacts, Manifest, WorkspaceFacts,
};
use coffer_core::{Event, Progress, RunContext};
use coffer_core::{Remote, RemoteError, UploadSettings};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};

const NAME: &str = "manual-20260101T000000Z";
const PREFIX: &str = "offsite/portal";
/// Multipart part size (an in-memory store has no 5 MiB minimum): the workspace artifact
/// takes three parts.
const PART: u64 = 1 << 20;
/// Incompressible workspace content, larger than two parts.
const WORKSPACE_BYTES: usize = (5 << 20) / 2;
/// The number of SIGINT, as the CLI's handler records it.
const SIGINT: usize = 2;

/// The real pg_dump output the dump scanner's own tests read.
fn dump() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pg_dump_15_plain.sql"
    ))
    .unwrap()
}

fn gzip(plain: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(plain).unwrap();
    enc.finish().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Bytes that do not compress: a SHA-256 counter stream.
fn noise(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut block = [0u8; 32];
    while out.len() < len {
        block = Sha256::digest(block).into();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

/// A tar holding one regular file of `content`.
fn tar_of(content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "uploads/data.bin", content)
        .unwrap();
    builder.into_inner().unwrap()
}

fn artifact(role: ArtifactRole, file: &str, plain: &[u8], stored: &[u8]) -> Artifact {
    Artifact {
        role,
        file: file.into(),
        size: stored.len() as u64,
        sha256: sha256(stored),
        uncompressed_size: plain.len() as u64,
        uncompressed_sha256: sha256(plain),
        compression: Compression::Gzip,
        encryption: None,
        pieces: None,
    }
}

/// Lays out a complete coffer backup `name` in `root` as `coffer backup` writes it: the
/// gzipped dump and workspace tar, `manifest.json` describing them (the dump's tables and
/// head as the dump scanner reads them) and `SHA256SUMS`.
fn write_backup(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let sql = dump();
    let facts = coffer_core::internals::scan_reader(&sql[..]).unwrap();
    let sql_gz = gzip(&sql);
    let content = noise(WORKSPACE_BYTES);
    let tar = tar_of(&content);
    let tar_gz = gzip(&tar);
    let created: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let manifest = Manifest {
        format: manifest::FORMAT,
        name: name.into(),
        kind: BackupKind::Manual,
        label: None,
        created_at: created,
        completed_at: created,
        coffer_version: "0.1.0".into(),
        hostname: "test".into(),
        timestamp: "2026-01-01T00:00:00Z".into(),
        alembic_head: AlembicHead::from_heads(facts.alembic_heads.clone()),
        db_size: sql.len() as u64,
        workspace_path: Some("/srv/ws".into()),
        database: DatabaseFacts {
            name: "app".into(),
            server_version: "15".into(),
            pg_dump_version: "15.18".into(),
            size_bytes: sql.len() as u64,
            tables: facts.tables.clone(),
            owners: facts.owners.iter().cloned().collect(),
        },
        workspace: Some(WorkspaceFacts {
            path: "/srv/ws".into(),
            files: 1,
            file_bytes: content.len() as u64,
            ..WorkspaceFacts::default()
        }),
        artifacts: vec![
            artifact(ArtifactRole::Database, "postgres.sql.gz", &sql, &sql_gz),
            artifact(ArtifactRole::Workspace, "workspace.tar.gz", &tar, &tar_gz),
        ],
    };
    std::fs::write(dir.join("postgres.sql.gz"), &sql_gz).unwrap();
    std::fs::write(dir.join("workspace.tar.gz"), &tar_gz).unwrap();
    std::fs::write(dir.join(manifest::SUMS_FILE), manifest.sha256sums()).unwrap();
    std::fs::write(dir.join(manifest::MANIFEST_FILE), manifest.to_json()).unwrap();
    dir
}

/// Every file below `dir` with its content.
fn files_below(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The object names below the backup's folder in `store`.
async fn remote_files(store: &InMemory) -> Vec<String> {
    let folder = ObjectPath::from(format!("{PREFIX}/{NAME}"));
    let mut names: Vec<String> =
        futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&folder)))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.location.filename().unwrap().to_string())
            .collect();
    names.sort();
    names
}

fn remote_over(store: Arc<InMemory>) -> Remote {
    Remote::with_store(store, ObjectPath::from(PREFIX), "memory://offsite/portal")
        .with_upload_settings(UploadSettings {
            part_size: Some(PART),
            ..UploadSettings::default()
        })
}

fn options() -> SyncOptions {
    SyncOptions {
        verify: true,
        retention: None,
        now: Utc::now(),
    }
}

/// Keeps the transfer lines the remote reports, and stops the run (as SIGINT would) at the
/// first line holding `stop_at`.
struct Watch {
    lines: Mutex<Vec<String>>,
    stop_at: Option<&'static str>,
    cancel: CancelFlag,
}

impl Watch {
    fn new(stop_at: Option<&'static str>) -> Watch {
        Watch {
            lines: Mutex::new(Vec::new()),
            stop_at,
            cancel: CancelFlag::new(),
        }
    }

    fn ctx(&self) -> RunContext<'_> {
        RunContext::new(self).with_cancel(self.cancel.clone())
    }
}

impl Progress for Watch {
    fn event(&self, event: &Event<'_>) {
        if let Event::Transfer(line) = event {
            if self.stop_at.is_some_and(|s| line.contains(s)) {
                self.cancel.cancel(SIGINT);
            }
            self.lines.lock().unwrap().push(line.to_string());
        }
    }
}

#[tokio::test]
async fn sync_list_and_pull_run_inside_an_async_program() {
    let local = tempfile::tempdir().unwrap();
    let original = write_backup(local.path(), NAME);
    let store = Arc::new(InMemory::new());
    let remote = remote_over(store.clone());
    let root = local.path().to_path_buf();
    let elsewhere = tempfile::tempdir().unwrap();
    let pulled_root = elsewhere.path().join("root");
    let target = pulled_root.clone();
    // Spawned: the futures are `Send + 'static` once their inputs are owned, as a web
    // backend or a task-queue worker needs.
    let (report, listing, pulled, lines) = tokio::spawn(async move {
        let watch = Watch::new(None);
        let report = sync::run(&remote, &root, &options(), &watch.ctx())
            .await
            .unwrap();
        let listing = remote.list().await.unwrap();
        let pulled = pull::run(
            &remote,
            &target,
            &Which::Latest,
            None,
            &SignaturePolicy::default(),
            &RunContext::default(),
        )
        .await
        .unwrap();
        (report, listing, pulled, watch.lines.into_inner().unwrap())
    })
    .await
    .unwrap();

    assert_eq!(report.remote, "memory://offsite/portal");
    assert_eq!(report.backups.len(), 1);
    assert_eq!(report.backups[0].action, SyncAction::Uploaded);
    assert!(report.backups[0].verified);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("workspace.tar.gz") && l.contains("3 part(s)")),
        "the workspace went up as a multipart upload: {lines:?}"
    );
    assert_eq!(
        remote_files(&store).await,
        [
            "SHA256SUMS",
            "manifest.json",
            "postgres.sql.gz",
            "workspace.tar.gz"
        ]
    );
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].name, NAME);
    assert_eq!(listing[0].status, EntryStatus::Complete);
    assert!(pulled.downloaded, "{pulled:?}");
    assert!(pulled.not_checked.is_empty(), "{:?}", pulled.not_checked);
    assert_eq!(pulled.path, pulled_root.join(NAME));
    assert_eq!(files_below(&pulled.path), files_below(&original));
}

#[tokio::test]
async fn a_stop_mid_upload_aborts_it_and_the_next_sync_completes_the_backup() {
    let local = tempfile::tempdir().unwrap();
    write_backup(local.path(), NAME);
    let store = Arc::new(InMemory::new());
    let remote = remote_over(store.clone());
    // The signal arrives as the multipart upload of the workspace starts.
    let watch = Watch::new(Some("part(s)"));
    let err = sync::run(&remote, local.path(), &options(), &watch.ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RemoteError::Interrupted {
                operation: "sync",
                signal: SIGINT,
                ..
            }
        ),
        "{err}"
    );
    let left = remote_files(&store).await;
    assert!(
        !left
            .iter()
            .any(|f| f == "manifest.json" || f == "workspace.tar.gz"),
        "{left:?}"
    );
    let listing = remote.list().await.unwrap();
    assert!(listing.iter().all(|b| b.status != EntryStatus::Complete));

    let report = sync::run(&remote, local.path(), &options(), &RunContext::default())
        .await
        .unwrap();
    assert_eq!(report.backups[0].action, SyncAction::Uploaded);
    assert_eq!(
        remote.list().await.unwrap()[0].status,
        EntryStatus::Complete
    );
}

#[tokio::test]
async fn a_stop_mid_pull_leaves_nothing_in_the_backup_root() {
    let local = tempfile::tempdir().unwrap();
    write_backup(local.path(), NAME);
    let remote = remote_over(Arc::new(InMemory::new()));
    sync::run(&remote, local.path(), &options(), &RunContext::default())
        .await
        .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let root = elsewhere.path().join("root");
    // The signal arrives once the first artifact is being downloaded.
    let watch = Watch::new(Some("downloading"));
    let err = pull::run(
        &remote,
        &root,
        &Which::Name(NAME.into()),
        None,
        &SignaturePolicy::default(),
        &watch.ctx(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            RemoteError::Interrupted {
                operation: "pull",
                signal: SIGINT,
                ..
            }
        ),
        "{err}"
    );
    assert!(!root.join(NAME).exists());
    assert!(!pull::staging_dir(&root, NAME).exists());
}
