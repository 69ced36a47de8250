//! What goes into the artifacts: pg_dump's output (scanned as it streams) and the
//! workspace as a tar.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use super::artifact_writer::{ArtifactWriter, Taps};
use super::{BackupError, BackupSettings, IO_BUFFER};
use crate::format::manifest::{Artifact, ArtifactRole, Encryption};
use crate::stream::archive::{self, ArchiveOptions, ArchiveStats};
use crate::stream::dump_scan::DumpFacts;
use crate::stream::piece_writer::PieceWriter;

/// The largest roles dump read (a cluster's roles are a few KiB; this bounds memory).
const ROLES_CAP: u64 = 64 << 20;

/// Streams pg_dump's output into the database artifact, scanning it as it passes.
pub(super) fn dump_database(
    settings: &BackupSettings,
    staging: &Path,
    encryption: Option<Encryption>,
    dump_pid: &AtomicU32,
    taps: &Taps<'_>,
) -> Result<(Artifact, DumpFacts), BackupError> {
    let writer =
        ArtifactWriter::create(settings, staging, ArtifactRole::Database, encryption, taps)?;
    let path = writer.path.clone();
    let mut dump = settings.database.spawn_pg_dump()?;
    dump_pid.store(dump.child.id(), Ordering::SeqCst);
    let mut stdout = dump.child.stdout.take().expect("stdout is piped");
    let mut scanning = PieceWriter::new(writer);
    let copied = copy_stream(&mut stdout, &mut scanning);
    drop(stdout);
    if let Err(e) = copied {
        // Our side failed (disk full, signal): stop pg_dump rather than let it block on a
        // full pipe, and report our error, which is the cause.
        dump.kill();
        dump_pid.store(0, Ordering::SeqCst);
        return Err(taps
            .stopped()
            .unwrap_or_else(|| BackupError::io("write", &path, e)));
    }
    if let Some(stopped) = taps.stopped() {
        dump.kill();
        dump_pid.store(0, Ordering::SeqCst);
        return Err(stopped);
    }
    let waited = dump.wait(
        "check the database settings and that the server is running; the partial backup was removed",
    );
    dump_pid.store(0, Ordering::SeqCst);
    waited?;
    let (writer, facts, pieces) = scanning
        .finish()
        .map_err(|e| BackupError::io("write", &path, e))?;
    if let Some(problem) = &facts.problem {
        return Err(BackupError::DumpRefused(problem.clone()));
    }
    if !facts.complete {
        return Err(BackupError::DumpTruncated);
    }
    let artifact = writer.finish_with_pieces(pieces)?;
    taps.progress.finish(
        ArtifactRole::Database,
        &format!(
            "{} tables, {} bytes stored",
            facts.tables.len(),
            artifact.size
        ),
    );
    Ok((artifact, facts))
}

/// Stores `pg_dumpall --roles-only` as the roles artifact, after checking that a restore
/// will be able to read it (see [`crate::postgres::roles`]).
pub(super) fn dump_roles(
    settings: &BackupSettings,
    staging: &Path,
    encryption: Option<Encryption>,
    dump_pid: &AtomicU32,
    taps: &Taps<'_>,
) -> Result<Artifact, BackupError> {
    let mut dump = settings.database.spawn_pg_dumpall_roles()?;
    dump_pid.store(dump.child.id(), Ordering::SeqCst);
    let stdout = dump.child.stdout.take().expect("stdout is piped");
    let mut text = Vec::new();
    let read = stdout.take(ROLES_CAP + 1).read_to_end(&mut text);
    if read.is_err() || text.len() as u64 > ROLES_CAP || taps.stopped().is_some() {
        dump.kill();
        dump_pid.store(0, Ordering::SeqCst);
        return Err(taps.stopped().unwrap_or_else(|| {
            BackupError::RolesRefused(match read {
                Err(e) => format!("cannot read pg_dumpall's output: {e}"),
                Ok(_) => format!(
                    "pg_dumpall wrote more than {}",
                    crate::util::units::bytes(ROLES_CAP)
                ),
            })
        }));
    }
    let waited = dump.wait(
        "database.include_roles needs a superuser (pg_dumpall reads pg_authid): connect as one, or set include_roles = false",
    );
    dump_pid.store(0, Ordering::SeqCst);
    waited?;
    let parsed = std::str::from_utf8(&text)
        .map_err(|e| format!("not UTF-8: {e}"))
        .and_then(crate::postgres::roles::parse);
    if let Err(e) = parsed {
        return Err(BackupError::RolesRefused(e));
    }
    let mut writer =
        ArtifactWriter::create(settings, staging, ArtifactRole::Roles, encryption, taps)?;
    let path = writer.path.clone();
    writer.write_all(&text).map_err(|e| {
        taps.stopped()
            .unwrap_or_else(|| BackupError::io("write", &path, e))
    })?;
    writer.finish()
}

fn copy_stream(input: &mut impl Read, output: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; IO_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        output.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// The identities (device, inode) of the backup root and of every directory in it (the
/// backups and staging directories, this run's included): the workspace walk must reach
/// none of them, whatever path (bind mount, alias) leads there.
fn backup_dir_ids(root: &Path) -> io::Result<Vec<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(root)?;
    let mut ids = vec![(meta.dev(), meta.ino())];
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        if let Ok(m) = fs::symlink_metadata(entry.path())
            && m.is_dir()
        {
            ids.push((m.dev(), m.ino()));
        }
    }
    Ok(ids)
}

/// Archives the workspace at `root` into the workspace artifact.
pub(super) fn archive_workspace(
    settings: &BackupSettings,
    root: &Path,
    staging: &Path,
    encryption: Option<Encryption>,
    taps: &Taps<'_>,
) -> Result<(Artifact, ArchiveStats), BackupError> {
    let writer =
        ArtifactWriter::create(settings, staging, ArtifactRole::Workspace, encryption, taps)?;
    let options = ArchiveOptions {
        exclude: settings.exclude.clone(),
        forbidden_dirs: backup_dir_ids(&settings.root)
            .map_err(|e| BackupError::io("list the backup root", &settings.root, e))?,
    };
    let (writer, stats) = archive::write_workspace_tar(root, &options, writer)
        .map_err(|e| taps.stopped().unwrap_or(BackupError::Archive(e)))?;
    let artifact = writer.finish()?;
    taps.progress.finish(
        ArtifactRole::Workspace,
        &format!("{} files, {} bytes stored", stats.files, artifact.size),
    );
    Ok((artifact, stats))
}
