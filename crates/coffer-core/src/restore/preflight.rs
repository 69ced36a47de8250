//! Pre-flight: everything a restore needs is checked before anything is changed, and every
//! problem found is reported at once.

use std::path::Path;
use std::sync::Arc;

use tokio::runtime::Handle;

use crate::format::manifest::{AnyManifest, Artifact, ArtifactRole};
use crate::format::signing::Verdict;
use crate::hint::{Hint, Problems};
use crate::postgres::Session;
use crate::remote::Remote;
use crate::remote::stream::RemoteObject;
use crate::root::catalog::{self, BackupEntry, EntryStatus};
use crate::stream::artifact::ArtifactReader;
use crate::stream::crypto::Identities;
use crate::util::units;
use crate::workspace::swap;

use super::head::check_head;
use super::parents::{PARENT_MODE, check_ancestor, missing_parents};
use super::roles::plan_missing_roles;
use super::workspace::swap_path;
use super::{
    DatabaseTarget, HeadCheck, Plan, RestoreError, RestoreSettings, RestoreSteps, Source,
    WorkspaceTarget, workspace_target,
};

/// Where a streamed backup's artifacts are: the remote, and the runtime to fetch them on.
pub type StreamOrigin<'a> = (&'a Arc<Remote>, &'a Handle);

/// Where the artifacts the pre-flight looks at are.
#[derive(Clone, Copy)]
enum Artifacts<'a> {
    /// In the backup's directory.
    Here,
    /// On the remote, streamed.
    Remote(StreamOrigin<'a>),
    /// Not arrived yet: only the manifest has (a bundle read in order). What needs their
    /// bytes (sizes, the identity, the roles file, the `SHA256SUMS` signature) is checked
    /// once they are there.
    Announced,
}

impl<'a> Artifacts<'a> {
    fn remote(self) -> Option<StreamOrigin<'a>> {
        match self {
            Artifacts::Remote(origin) => Some(origin),
            _ => None,
        }
    }
}

/// The artifacts of a backup, whichever generation wrote it; on the remote when `origin`.
fn sources(
    entry: &BackupEntry,
    origin: Option<StreamOrigin<'_>>,
) -> (Option<Source>, Option<Source>) {
    let find = |role: ArtifactRole| -> Option<Source> {
        match &entry.manifest {
            Some(AnyManifest::Coffer(m)) => {
                m.artifact(role).map(|a| coffer_source(entry, a, origin))
            }
            _ => catalog::legacy_artifact(&entry.path, role).map(|path| Source {
                encrypted: path.extension().is_some_and(|e| e == "age"),
                path,
                expected: None,
                remote: None,
            }),
        }
    };
    (find(ArtifactRole::Database), find(ArtifactRole::Workspace))
}

/// A coffer artifact of `entry`, in its directory or, with `origin`, on the remote.
fn coffer_source(entry: &BackupEntry, a: &Artifact, origin: Option<StreamOrigin<'_>>) -> Source {
    let remote = origin.map(|(remote, runtime)| {
        RemoteObject::new(
            remote.clone(),
            runtime.clone(),
            &entry.name,
            &a.file,
            a.size,
        )
    });
    Source {
        path: remote
            .as_ref()
            .map_or_else(|| entry.path.join(&a.file), RemoteObject::display_path),
        encrypted: a.encryption.is_some(),
        expected: Some(a.clone()),
        remote,
    }
}

/// The roles artifact (`database.include_roles`), which only coffer backups have.
fn roles_source(entry: &BackupEntry, origin: Option<StreamOrigin<'_>>) -> Option<Source> {
    match &entry.manifest {
        Some(AnyManifest::Coffer(m)) => m
            .artifact(ArtifactRole::Roles)
            .map(|a| coffer_source(entry, a, origin)),
        _ => None,
    }
}

/// Runs the pre-flight checks; changes nothing except finishing or undoing a swap that a
/// killed earlier restore left half done (reported as a note).
///
/// The checks: the backup is usable, the identity opens encrypted artifacts, the database is
/// reachable, the roles the dump assigns ownership to exist, the Alembic head fits the code,
/// the workspace's filesystem has room for a second copy.
pub fn prepare(
    settings: &RestoreSettings,
    entry: &BackupEntry,
    options: &RestoreSteps,
    identities: Option<&Identities>,
) -> Result<Plan, RestoreError> {
    prepare_streamed(settings, entry, options, identities, None)
}

/// [`prepare`] for a backup whose small files are in `entry.path` and whose artifacts are
/// streamed from the remote `origin` (their listed sizes are checked; an encrypted one's
/// header is fetched to check the identity).
pub fn prepare_streamed(
    settings: &RestoreSettings,
    entry: &BackupEntry,
    options: &RestoreSteps,
    identities: Option<&Identities>,
    origin: Option<StreamOrigin<'_>>,
) -> Result<Plan, RestoreError> {
    let artifacts = origin.map_or(Artifacts::Here, Artifacts::Remote);
    prepare_from(settings, entry, options, identities, artifacts)
}

/// The pre-flight of a backup of which only the manifest (and its signature, if any) has
/// arrived, in `entry.path`: a bundle read in order, before any of its data is read. Every
/// check that needs only the manifest and the host runs (the manifest's signature, the
/// database and its roles, sessions, the workspace target and its room, the Alembic head);
/// what needs the data (sizes, the identity, the roles file) waits for the complete
/// [`prepare`] that must follow once the data has arrived.
pub fn prepare_announced(
    settings: &RestoreSettings,
    entry: &BackupEntry,
    options: &RestoreSteps,
) -> Result<Plan, RestoreError> {
    prepare_from(settings, entry, options, None, Artifacts::Announced)
}

fn prepare_from(
    settings: &RestoreSettings,
    entry: &BackupEntry,
    options: &RestoreSteps,
    identities: Option<&Identities>,
    artifacts: Artifacts<'_>,
) -> Result<Plan, RestoreError> {
    let origin = artifacts.remote();
    let announced = matches!(artifacts, Artifacts::Announced);
    let mut problems = Problems::default();
    let mut damaged = Vec::new();
    let mut plan = Plan {
        backup: entry.name.clone(),
        backup_path: entry.path.clone(),
        created: entry.created,
        database: None,
        workspace: None,
        head: HeadCheck {
            backup: entry
                .manifest
                .as_ref()
                .and_then(|m| m.alembic_head())
                .map(|h| h.heads()),
            expected: None,
            source: None,
            relation: None,
        },
        sessions: Vec::new(),
        checks: Vec::new(),
        notes: Vec::new(),
        hints: Vec::new(),
    };

    match &entry.status {
        EntryStatus::Complete => plan.checks.push(format!("backup {} is complete", entry.name)),
        EntryStatus::Legacy => plan.checks.push(format!(
            "backup {} is a legacy shell-script backup (no hashes: gzip and dump integrity are checked while restoring)",
            entry.name
        )),
        EntryStatus::Incomplete(r) | EntryStatus::Unreadable(r) => {
            return Err(RestoreError::Damaged {
                backup: entry.name.clone(),
                reason: r.clone(),
            });
        }
    }
    // Authenticity before anything else is read or run.
    let judgement = if announced {
        settings
            .signatures
            .judge_manifest(&entry.path, &entry.name, entry.manifest.as_ref())
    } else {
        settings
            .signatures
            .judge(&entry.path, &entry.name, entry.manifest.as_ref())
    };
    match judgement.verdict {
        Verdict::Verified => plan.checks.push(format!("signature: {}", judgement.detail)),
        // Said only when signatures are required: then an unsigned backup passing is news.
        Verdict::NotChecked if settings.signatures.enforced() => {
            plan.notes.push(format!("signature: {}", judgement.detail))
        }
        Verdict::NotChecked => {}
        Verdict::Refused => {
            return Err(RestoreError::Damaged {
                backup: entry.name.clone(),
                reason: judgement.detail,
            });
        }
    }
    let (db_source, ws_source) = sources(entry, origin);
    let roles = roles_source(entry, origin);

    // Artifacts: present, of the recorded size, and openable with the identity (once
    // they are there).
    let present = db_source
        .iter()
        .chain(ws_source.iter())
        .chain(roles.iter())
        .filter(|_| !announced);
    for source in present {
        if let Some(a) = &source.expected {
            let len = match &source.remote {
                Some(remote) => remote.size(),
                None => std::fs::metadata(&source.path)
                    .map(|m| m.len())
                    .unwrap_or(0),
            };
            if len != a.size {
                damaged.push(format!(
                    "{} is {len} bytes, the manifest says {}",
                    a.file, a.size
                ));
                continue;
            }
        }
        if source.encrypted {
            // Only the identity is checked here: the content is proven when it is applied.
            let opened = match &source.remote {
                Some(remote) => {
                    let header = remote.open_header();
                    let failure = header.failure();
                    ArtifactReader::from_stream(
                        Box::new(header),
                        &source.path,
                        true,
                        identities,
                        failure,
                    )
                }
                None => ArtifactReader::open(&source.path, source.encrypted, identities),
            };
            match opened {
                Ok(_) => plan.checks.push(format!(
                    "identity {} opens {}",
                    identities.map_or_else(String::new, |i| i.path().display().to_string()),
                    source.file_name()
                )),
                Err(e) => problems.push_hinted(e.to_string(), e.hint()),
            }
        }
    }
    if !damaged.is_empty() {
        return Err(RestoreError::Damaged {
            backup: entry.name.clone(),
            reason: damaged.join("; "),
        });
    }

    if options.database {
        match db_source {
            Some(source) => {
                plan.database = check_database(
                    settings,
                    entry,
                    options,
                    source,
                    (
                        roles.as_ref().filter(|_| options.create_roles),
                        identities,
                        announced,
                    ),
                    &mut plan.checks,
                    &mut plan.notes,
                    &mut plan.sessions,
                    &mut problems,
                );
            }
            None => problems.push_hinted(
                format!(
                    "backup {} has no database artifact: only its workspace can be restored",
                    entry.name
                ),
                [Hint::WorkspaceOnly],
            ),
        }
    }
    if options.workspace {
        match (ws_source, workspace_target(settings, options)) {
            (None, _) if !options.database => problems.push(format!(
                "backup {} has no workspace artifact",
                entry.name
            )),
            (None, _) => plan
                .notes
                .push("the backup has no workspace archive: only the database is restored".into()),
            (Some(_), None) => problems.push_hinted(
                "no workspace path: set workspace.path (or WORKSPACE_HOST_PATH), or restore only the database",
                [Hint::TargetDir, Hint::DatabaseOnly],
            ),
            (Some(source), Some(target)) => {
                plan.workspace = check_workspace(settings, entry, source, target, &mut plan.checks, &mut plan.notes, &mut problems);
            }
        }
    }
    if options.check_code_head {
        check_head(settings, options, &mut plan, &mut problems);
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(RestoreError::refused(problems))
    }
}

#[allow(clippy::too_many_arguments)]
fn check_database(
    settings: &RestoreSettings,
    entry: &BackupEntry,
    options: &RestoreSteps,
    source: Source,
    (roles, identities, announced): (Option<&Source>, Option<&Identities>, bool),
    checks: &mut Vec<String>,
    notes: &mut Vec<String>,
    sessions: &mut Vec<Session>,
    problems: &mut Problems,
) -> Option<DatabaseTarget> {
    let runner = match &options.target_db {
        Some(name) => settings.database.with_dbname(name),
        None => settings.database.clone(),
    };
    let mut target = DatabaseTarget {
        name: options.target_db.clone().unwrap_or_default(),
        server_version: None,
        create: false,
        create_roles: Vec::new(),
        roles_sql: String::new(),
        runner: runner.clone(),
        source,
        manifest: entry.manifest.clone(),
        jobs: 1,
    };
    match runner.server_info() {
        Ok(info) => {
            checks.push(format!(
                "database {} reachable (PostgreSQL {}, {})",
                info.database,
                info.version,
                units::bytes(info.size_bytes)
            ));
            target.name = info.database;
            target.server_version = Some(info.version);
        }
        Err(e) => {
            // A database that does not exist is created (the configured one always, a
            // --target-db when allowed); a server that cannot be reached or refuses the
            // login is a refusal, as is a name coffer cannot know (libpq's default).
            let name = options
                .target_db
                .clone()
                .or_else(|| settings.database.configured_dbname());
            let maintenance = settings.database.with_dbname("postgres");
            let missing = name
                .as_deref()
                .is_some_and(|n| matches!(maintenance.database_exists(n), Ok(false)));
            let allowed = options.target_db.is_none() || options.create_target_db;
            match name {
                Some(name) if missing && allowed => {
                    match maintenance.may_create_databases() {
                        Ok(true) => {
                            checks.push(format!(
                                "database {name} does not exist: it will be created"
                            ));
                        }
                        Ok(false) => {
                            problems.push(format!(
                                "database {name} does not exist and the role coffer connects as may not create databases: create it (CREATE DATABASE {} OWNER <role>) as a superuser, or grant that role CREATEDB",
                                crate::postgres::quote_ident(&name)
                            ));
                            return None;
                        }
                        Err(e) => {
                            problems.push(format!(
                                "database {name} does not exist and coffer cannot tell whether it may create it: {}",
                                e.to_string().trim_end()
                            ));
                            return None;
                        }
                    }
                    target.name = name;
                    target.create = true;
                }
                _ => {
                    problems.push(format!(
                        "cannot reach the target database: {}",
                        e.to_string().trim_end()
                    ));
                    return None;
                }
            }
        }
    }
    let owners = match &entry.manifest {
        Some(AnyManifest::Coffer(m)) => Some(m.database.owners.clone()),
        _ => None,
    };
    let probe = if target.create {
        settings.database.with_dbname("postgres")
    } else {
        runner.clone()
    };
    match owners {
        Some(owners) => match probe.missing_roles(&owners) {
            Ok(missing) if missing.is_empty() => {
                if !owners.is_empty() {
                    checks.push(format!("roles exist: {}", owners.join(", ")));
                }
            }
            // The roles file has not arrived: whether it can create them is checked then.
            Ok(missing) if announced && roles.is_some() => checks.push(format!(
                "roles {} do not exist: the backup's roles file is checked for them once it has arrived",
                missing.join(", ")
            )),
            Ok(missing) => {
                match plan_missing_roles(&probe, roles, identities, &owners, &missing) {
                    Ok((step, line)) => {
                        checks.push(line);
                        target.create_roles = step.names;
                        target.roles_sql = step.sql;
                    }
                    Err(p) => problems.extend(p),
                }
            }
            Err(e) => problems.push(format!("cannot check roles: {e}")),
        },
        None => notes.push(
            "legacy backup: the roles it needs are not recorded; a missing one fails the restore, which is then rolled back"
                .into(),
        ),
    }
    if !target.create {
        match runner.other_sessions() {
            Ok(found) if found.is_empty() => checks.push("no other sessions connected".into()),
            Ok(found) => {
                super::sessions::judge_sessions(
                    &found,
                    &target.name,
                    options.terminate_connections,
                    options.run_hooks && !settings.hooks.before_restore.is_empty(),
                    notes,
                    problems,
                );
                *sessions = found;
            }
            Err(e) => problems.push(format!("cannot list sessions: {e}")),
        }
    }
    target.jobs = super::parallel::plan_jobs(
        options.jobs,
        &target,
        &settings.database,
        (checks, notes),
        problems,
    );
    Some(target)
}

fn check_workspace(
    settings: &RestoreSettings,
    entry: &BackupEntry,
    source: Source,
    configured: &Path,
    checks: &mut Vec<String>,
    notes: &mut Vec<String>,
    problems: &mut Problems,
) -> Option<WorkspaceTarget> {
    let real = swap_path(configured);
    if real != std::path::absolute(configured).unwrap_or_default() {
        notes.push(format!(
            "{} resolves to {}: that directory is replaced, symlinks on the way are kept",
            configured.display(),
            real.display()
        ));
    }
    let target = real.as_path();
    let conflicts = crate::workspace::boundaries::check_restore_target(
        configured,
        target,
        &settings.backup_root,
        (&entry.name, &entry.path),
        settings.metrics_file.as_deref(),
    );
    if !conflicts.is_empty() {
        problems.extend(conflicts);
        return None;
    }
    // coffer stages and swaps beside the target: another user able to write there could
    // substitute what is restored, or plant a journal.
    let parent_exists = target.parent().is_some_and(Path::is_dir);
    if parent_exists && let Err(e) = swap::check_parent(target) {
        problems.push(e.to_string());
        return None;
    }
    // The swap removes the previous tree: whatever is mounted below it would go with it.
    match crate::workspace::mounts::mounts_below_dir(target) {
        Ok(m) if m.is_empty() => {}
        Ok(m) => {
            problems.push(format!(
                "{} has {} mounted below it ({}): replacing it would delete the mounted data; unmount {}, or restore into another directory",
                target.display(),
                if m.len() == 1 { "a filesystem" } else { "filesystems" },
                m.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                if m.len() == 1 { "it" } else { "them" },
            ));
            return None;
        }
        Err(e) => {
            problems.push(format!(
                "{e}; coffer must know what is mounted below {} before replacing it",
                target.display()
            ));
            return None;
        }
    }
    // A swap a killed restore left behind is settled first, so what we check is real.
    match swap::recover(target) {
        Ok(Some(r)) => notes.push(r.to_string()),
        Ok(None) => {}
        Err(e) => {
            problems.push(format!("{e}; resolve it by hand before restoring"));
            return None;
        }
    }
    let exists = match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            problems.push(format!(
                "workspace {} exists and is not a directory",
                target.display()
            ));
            return None;
        }
        Err(_) => false,
    };
    // On a bare host the workspace's parents may be missing: they are created (and removed
    // again if the restore fails), below an ancestor nobody else can write to.
    let parents = match missing_parents(configured, target) {
        Ok(p) => p,
        Err(e) => {
            problems.push_hinted(e, [Hint::TargetDir]);
            return None;
        }
    };
    if !parents.missing.is_empty() {
        if let Err(e) = check_ancestor(&parents.existing) {
            problems.push_hinted(e, [Hint::TargetDir]);
            return None;
        }
        checks.push(format!(
            "the workspace's parent directories do not exist: they will be created (mode {:o}): {}",
            PARENT_MODE,
            parents
                .missing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let parent = parents.existing.as_path();
    // The staging directory and journal are created beside the target: refuse now if the
    // parent does not allow that (read-only filesystem, permissions), not halfway through.
    if let Err(e) = rustix::fs::access(
        parent,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    ) {
        problems.push(format!(
            "cannot create the staging directory beside {} in {} ({}): make that directory writable for the user running coffer, or restore elsewhere",
            target.display(),
            parent.display(),
            std::io::Error::from(e)
        ));
        return None;
    }
    if exists && is_mount_point(target, parent) {
        problems.push_hinted(
            format!(
                "workspace {} is a mount point, so it cannot be swapped in by rename; restore into a directory inside it, or mount its parent instead",
                target.display()
            ),
            [Hint::TargetDir],
        );
        return None;
    }
    let facts = match &entry.manifest {
        Some(AnyManifest::Coffer(m)) => m.workspace.clone(),
        _ => None,
    };
    match (facts, rustix::fs::statvfs(parent)) {
        (Some(w), Ok(st)) => {
            let available = st.f_bavail.saturating_mul(st.f_frsize);
            // File data plus a block per entry for metadata.
            let needed = w.file_bytes + (w.files + w.directories + w.symlinks) * 4096;
            if available < needed {
                problems.push(format!(
                    "not enough space beside {} for the staging copy: {} free, about {} needed (the previous workspace is kept until the restore succeeds)",
                    target.display(),
                    units::bytes(available),
                    units::bytes(needed)
                ));
            } else {
                checks.push(format!(
                    "free space for the staging copy: {} free, about {} needed",
                    units::bytes(available),
                    units::bytes(needed)
                ));
            }
        }
        (None, _) => notes.push(
            "legacy backup: the workspace size is not recorded, so free space cannot be checked in advance".into(),
        ),
        (_, Err(e)) => notes.push(format!("cannot check free space in {}: {e}", parent.display())),
    }
    if !exists {
        checks.push(format!(
            "workspace {} does not exist: it will be created as the backup archived it",
            target.display()
        ));
    }
    Some(WorkspaceTarget {
        path: target.to_path_buf(),
        exists,
        create_parents: parents.missing,
        source,
    })
}

/// Whether `dir` is on another filesystem than its parent (renaming it would fail).
fn is_mount_point(dir: &Path, parent: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(dir), std::fs::metadata(parent)) {
        (Ok(d), Ok(p)) => d.dev() != p.dev(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn legacy_entry(dir: &Path) -> BackupEntry {
        BackupEntry {
            name: "b1".into(),
            path: dir.to_path_buf(),
            kind: None,
            created: None,
            status: EntryStatus::Legacy,
            manifest: None,
            alembic_head: None,
            label: None,
            size_bytes: 0,
        }
    }

    #[test]
    fn a_legacy_backup_has_its_artifacts_found_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("postgres.sql.gz"), b"x").unwrap();
        std::fs::write(dir.path().join("workspace.tar.gz.age"), b"x").unwrap();
        let (db, ws) = sources(&legacy_entry(dir.path()), None);
        let (db, ws) = (db.unwrap(), ws.unwrap());
        assert_eq!(db.path, dir.path().join("postgres.sql.gz"));
        assert!(!db.encrypted);
        assert!(db.expected.is_none());
        assert_eq!(ws.path, dir.path().join("workspace.tar.gz.age"));
        assert!(ws.encrypted);
        assert!(ws.expected.is_none());
    }

    #[test]
    fn a_legacy_backup_may_lack_an_artifact() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("postgres.sql.gz"), b"x").unwrap();
        let (db, ws) = sources(&legacy_entry(dir.path()), None);
        assert!(db.is_some());
        assert!(ws.is_none());
    }

    #[test]
    fn a_directory_on_its_parents_filesystem_is_no_mount_point() {
        let dir = tempfile::tempdir().unwrap();
        let child = dir.path().join("ws");
        std::fs::create_dir(&child).unwrap();
        assert!(!is_mount_point(&child, dir.path()));
        // Neither is a directory that does not exist (there is nothing to compare).
        assert!(!is_mount_point(
            &PathBuf::from("/nonexistent/ws"),
            dir.path()
        ));
    }

    #[test]
    fn proc_is_a_mount_point() {
        assert!(is_mount_point(Path::new("/proc"), Path::new("/")));
    }
}
