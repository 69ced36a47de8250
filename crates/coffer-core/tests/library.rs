//! coffer-core through its public API only, as an embedder uses it: backup → list → verify
//! → restore → prune → status against a real throw-away PostgreSQL cluster, and the remote
//! (a `file://` store) reached from the blocking methods through a runtime of the caller's.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use coffer_core::BackupKind;
use coffer_core::RetentionPolicy;
use coffer_core::Thresholds;
use coffer_core::config::{Config, DatabaseConfig, RemoteConfig, WorkspaceConfig};
use coffer_core::sandbox::TempCluster;
use coffer_core::{
    BackupOptions, BackupRef, Coffer, ErrorKind, Event, Progress, PruneOptions, RestoreOptions,
    RunContext, Selection, State, VerifyOptions,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");

/// Keeps the events an operation reports, as text.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Progress for Recorder {
    fn event(&self, event: &Event<'_>) {
        let line = match event {
            Event::ArtifactStarted { role, .. } => format!("started {}", role.as_str()),
            Event::ArtifactFinished { role, .. } => format!("finished {}", role.as_str()),
            Event::Done(text) => format!("done {text}"),
            Event::Warning(w) => format!("warning {w}"),
            Event::Verified(report) => format!("verified {}", report.name),
            _ => return,
        };
        self.0.lock().unwrap().push(line);
    }
}

/// A cluster with the fixture database `portal` loaded.
fn cluster_with_fixture() -> TempCluster {
    let cluster = TempCluster::start().unwrap();
    cluster.create_database("portal").unwrap();
    cluster
        .psql_file("portal", &Path::new(FIXTURES).join("portal.sql"))
        .unwrap();
    cluster
}

/// Backs up `portal` and a copy of the fixture workspace into `dir/backups`.
fn config_in(dir: &Path, cluster: &TempCluster) -> Config {
    let workspace = dir.join("workspace");
    if !workspace.exists() {
        std::fs::create_dir_all(dir).unwrap();
        copy_tree(&Path::new(FIXTURES).join("workspace"), &workspace);
    }
    Config {
        backup_dir: Some(dir.join("backups")),
        database: DatabaseConfig {
            url: Some(cluster.url("portal")),
            ..Default::default()
        },
        workspace: WorkspaceConfig {
            path: Some(workspace),
            exclude: vec!["cache/**".into()],
        },
        ..Default::default()
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

fn row_count(cluster: &TempCluster, db: &str, table: &str) -> String {
    cluster
        .psql(db, &format!("SELECT count(*) FROM {table}"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn backup_list_verify_restore_prune_through_the_public_api() {
    let cluster = cluster_with_fixture();
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("workspace");
    let root = dir.path().join("backups");
    let config = Config {
        retention: RetentionPolicy {
            keep_days: None,
            keep_last: Some(1),
            ..RetentionPolicy::default()
        },
        ..config_in(dir.path(), &cluster)
    };
    let coffer = Coffer::new(config).unwrap();
    assert_eq!(coffer.root(), root);
    let recorder = Recorder::default();
    let ctx = RunContext::new(&recorder);

    // Two backups, not pruned yet.
    let options = BackupOptions::default().kind(BackupKind::Auto).prune(false);
    let first = coffer.backup(&options, &ctx).unwrap();
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    let events = recorder.take();
    for expected in [
        "started database",
        "finished database",
        "finished workspace",
    ] {
        assert!(events.iter().any(|e| e == expected), "{events:?}");
    }
    let second = coffer.backup(&options, &ctx).unwrap();
    assert_ne!(first.report.path, second.report.path);

    // Listed newest first, both complete.
    let listing = coffer.list().unwrap();
    let names: Vec<&str> = listing.backups.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        [
            second.report.manifest.name.as_str(),
            first.report.manifest.name.as_str()
        ]
    );
    assert!(listing.backups.iter().all(|b| b.status.is_usable()));
    assert!(listing.unknown.is_empty());

    // Verified end to end, each reported as it is done.
    recorder.take();
    let verified = coffer
        .verify(&Selection::All, &VerifyOptions::default(), &ctx)
        .unwrap();
    assert_eq!(verified.failures(), 0);
    assert_eq!(verified.reports.len(), 2);
    assert_eq!(
        recorder.take(),
        [
            format!("verified {}", names[0]),
            format!("verified {}", names[1])
        ]
    );

    // Damage both sides, then restore the latest backup with the default options: the
    // database and the workspace come back.
    let before = row_count(&cluster, "portal", "audit_log");
    cluster.psql("portal", "DELETE FROM audit_log").unwrap();
    std::fs::write(workspace.join("stray.txt"), "not in the backup").unwrap();
    let restored = coffer
        .restore(&BackupRef::Latest, &RestoreOptions::default(), &ctx)
        .unwrap();
    assert_eq!(restored.report.backup, names[0]);
    assert!(restored.report.database.is_some() && restored.report.workspace.is_some());
    assert!(restored.warnings.is_empty(), "{:?}", restored.warnings);
    assert_eq!(row_count(&cluster, "portal", "audit_log"), before);
    assert!(!workspace.join("stray.txt").exists());
    assert!(
        recorder
            .take()
            .iter()
            .any(|e| e.starts_with("done database restored"))
    );

    // A backup that is not there is an error of its own kind, recorded as a failed restore.
    let missing = coffer
        .restore(
            &BackupRef::Named("auto-19990101T000000Z".into()),
            &RestoreOptions::default(),
            &ctx,
        )
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Failed);
    assert!(
        missing.to_string().contains("auto-19990101T000000Z"),
        "{missing}"
    );

    // Retention keeps the newest one.
    let pruned = coffer.prune(&PruneOptions::default(), &ctx).unwrap();
    assert_eq!(pruned.deleted, [names[1]]);
    assert_eq!(coffer.list().unwrap().backups.len(), 1);

    // The run log saw it all: the last run (the prune) succeeded, and so did a backup.
    let thresholds = Thresholds {
        max_age: std::time::Duration::from_secs(3600),
        max_failures: 3,
    };
    let status = coffer.status(&thresholds).unwrap();
    assert_eq!(status.state, State::Ok, "{}", status.headline);
    assert!(status.status.last_success.is_some());
}

#[test]
fn a_backup_syncs_and_a_fresh_root_restores_from_the_remote_on_the_callers_runtime() {
    let cluster = cluster_with_fixture();
    let dir = tempfile::tempdir().unwrap();
    let remote = RemoteConfig {
        url: Some(format!("file://{}", dir.path().join("offsite").display())),
        ..RemoteConfig::default()
    };
    let config = Config {
        remote: remote.clone(),
        ..config_in(&dir.path().join("host"), &cluster)
    };
    let coffer = Coffer::new(config).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The blocking backup waits for its sync on the runtime it is handed.
    let ctx = RunContext::default().with_runtime(runtime.handle().clone());
    let made = coffer
        .backup(&BackupOptions::default().sync(true), &ctx)
        .unwrap();
    assert!(made.warnings.is_empty(), "{:?}", made.warnings);
    let listing = runtime.block_on(coffer.list_remote()).unwrap();
    assert_eq!(listing.backups.len(), 1);
    assert_eq!(listing.backups[0].name, made.report.manifest.name);
    assert!(listing.backups[0].status.is_usable());

    // A fresh host: its restore streams the backup, from a thread of the runtime.
    let fresh = Coffer::new(Config {
        remote,
        ..config_in(&dir.path().join("fresh"), &cluster)
    })
    .unwrap();
    cluster.psql("portal", "DELETE FROM audit_log").unwrap();
    let name = made.report.manifest.name.clone();
    let restored = runtime
        .block_on(runtime.spawn_blocking(move || {
            let options = RestoreOptions::default().from_remote(true);
            let outcome = fresh.restore(&BackupRef::Latest, &options, &RunContext::default());
            (outcome, fresh.root().join(&name))
        }))
        .unwrap();
    let (outcome, in_root) = restored;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.report.backup, made.report.manifest.name);
    // Streamed (issue #13): nothing of the backup is written to the fresh root.
    assert!(!in_root.exists());
    assert_ne!(row_count(&cluster, "portal", "audit_log"), "0");
}
