//! Filling the staging directory: both artifacts written at once (a failure or a signal
//! stops the other), then `SHA256SUMS`, `manifest.json` and their signatures, fsynced.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::artifact_writer::Taps;
use super::sources::{archive_workspace, dump_database, dump_roles};
use super::{BackupError, BackupRequest, BackupSettings};
use crate::cancel::CancelFlag;
use crate::format::manifest::{
    self, AlembicHead, DatabaseFacts, Encryption, Manifest, WorkspaceFacts,
};
use crate::postgres::{ClientVersion, ServerInfo};
use crate::progress::Progress;
use crate::util::fsutil;

/// Writes both artifacts, the checksums and the manifest into `staging`.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_backup(
    settings: &BackupSettings,
    request: &BackupRequest,
    name: &str,
    created_at: DateTime<Utc>,
    staging: &Path,
    server: &ServerInfo,
    pg_dump: &ClientVersion,
    progress: &dyn Progress,
    cancel: &CancelFlag,
) -> Result<Manifest, BackupError> {
    let encryption = settings.recipients.as_ref().map(|_| Encryption::Age);
    let dump_pid = AtomicU32::new(0);
    // Set by whichever artifact fails first, so the other stops instead of running on.
    let abort = AtomicBool::new(false);
    let taps = Taps {
        progress,
        cancel,
        abort: &abort,
    };
    let stop_other_on_error = |failed: bool| {
        if failed {
            abort.store(true, Ordering::SeqCst);
        }
    };

    let (db, ws) = std::thread::scope(|scope| {
        let db = scope.spawn(|| {
            // The roles first (a few KiB): pg_dumpall and pg_dump share the kill switch.
            let roles = settings
                .include_roles
                .then(|| dump_roles(settings, staging, encryption, &dump_pid, &taps))
                .transpose();
            let r = roles.and_then(|roles| {
                dump_database(settings, staging, encryption, &dump_pid, &taps)
                    .map(|(a, facts)| (a, facts, roles))
            });
            stop_other_on_error(r.is_err());
            r
        });
        let ws = settings.workspace.as_ref().map(|root| {
            scope.spawn(|| {
                let r = archive_workspace(settings, root, staging, encryption, &taps);
                stop_other_on_error(r.is_err());
                r
            })
        });
        // pg_dump can block for a long time (waiting for a lock) without writing anything;
        // a signal must still stop it, so watch the flag here and kill it.
        while !db.is_finished() || ws.as_ref().is_some_and(|w| !w.is_finished()) {
            if cancel.signal().is_some() || abort.load(Ordering::SeqCst) {
                let pid = dump_pid.load(Ordering::SeqCst);
                if pid != 0 {
                    crate::postgres::kill_group(pid);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let db = db.join().expect("database thread panicked");
        let ws = ws.map(|w| w.join().expect("workspace thread panicked"));
        (db, ws)
    });
    if let Some(signal) = cancel.signal() {
        return Err(BackupError::Interrupted { signal });
    }
    // Report the error that caused the failure, not the other artifact's `Aborted`; when
    // both failed on their own, the database's (it carries pg_dump's stderr).
    let (db, ws) = match (db, ws.transpose()) {
        (Err(BackupError::Aborted), Err(e)) | (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
        (Ok(db), Ok(ws)) => (db, ws),
    };
    let (db_artifact, facts, roles_artifact) = db;
    let (ws_artifact, stats) = match ws {
        Some((a, s)) => (Some(a), Some(s)),
        None => (None, None),
    };

    let completed_at = Utc::now();
    let mut artifacts = vec![db_artifact];
    artifacts.extend(ws_artifact);
    artifacts.extend(roles_artifact);
    let workspace_path = settings.workspace.as_ref().map(|p| p.display().to_string());
    let manifest = Manifest {
        format: manifest::FORMAT,
        name: name.to_string(),
        kind: request.kind,
        label: request.label.clone(),
        created_at,
        completed_at,
        coffer_version: crate::VERSION.to_string(),
        hostname: hostname(),
        timestamp: created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        alembic_head: AlembicHead::from_heads(facts.alembic_heads.clone()),
        db_size: server.size_bytes,
        workspace_path: workspace_path.clone(),
        database: DatabaseFacts {
            name: server.database.clone(),
            server_version: server.version.clone(),
            pg_dump_version: pg_dump.short(),
            size_bytes: server.size_bytes,
            tables: facts.tables.clone(),
            owners: facts.owners.iter().cloned().collect(),
        },
        workspace: stats.map(|s| WorkspaceFacts {
            path: workspace_path.unwrap_or_default(),
            files: s.files,
            directories: s.directories,
            symlinks: s.symlinks,
            hardlinks: s.hardlinks,
            file_bytes: s.file_bytes,
            skipped: s
                .skipped
                .iter()
                .map(|e| format!("{} ({})", e.path, e.reason))
                .collect(),
            changed: s
                .changed
                .iter()
                .map(|e| format!("{} ({})", e.path, e.change))
                .collect(),
        }),
        artifacts,
    };
    progress.step(if settings.signing_key.is_some() {
        "writing and signing the checksums and the manifest"
    } else {
        "writing the checksums and the manifest"
    });
    for (file, text) in [
        (manifest::SUMS_FILE, manifest.sha256sums()),
        (manifest::MANIFEST_FILE, manifest.to_json()),
    ] {
        let path = staging.join(file);
        write_small_file(&path, text.as_bytes())?;
        // Signed from the bytes just written, before the rename publishes the backup: a
        // backup never looks complete without its signatures.
        if let Some(key) = &settings.signing_key {
            let signature = key.sign(name, file, text.as_bytes())?;
            let sig_path = staging.join(crate::format::signing::signature_name(file));
            write_small_file(&sig_path, signature.as_bytes())?;
        }
    }
    fsutil::sync_dir(staging).map_err(|e| BackupError::io("sync", staging, e))?;
    Ok(manifest)
}

fn write_small_file(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut f = fsutil::create_private(path).map_err(|e| BackupError::io("create", path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| BackupError::io("write", path, e))
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
