//! The restore drill (`coffer verify --restore-test`): a real restore of a backup into a
//! throw-away database on the same server and a temporary directory, checked against the
//! manifest (Alembic head, every table's row count, the workspace's file count and sizes),
//! then dropped. It proves the whole decrypt → decompress → apply path works, which hash
//! checks alone cannot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::context::RunContext;
use crate::format::manifest::AnyManifest;
use crate::format::names;
use crate::restore::{self, RestoreError, RestoreSettings, RestoreSteps};
use crate::root::catalog::BackupEntry;
use crate::stream::crypto::Identities;
use crate::util::units;

/// One finding of the drill.
#[derive(Debug, Clone, Serialize)]
pub struct DrillCheck {
    /// What was compared.
    pub subject: String,
    /// Whether it matched.
    pub passed: bool,
    /// What was found.
    pub detail: String,
}

/// What the drill found.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DrillReport {
    /// The backup restored.
    pub backup: String,
    /// The throw-away database (dropped at the end).
    pub database: String,
    /// The temporary directory (removed at the end).
    pub directory: PathBuf,
    /// The comparisons made after the restore.
    pub checks: Vec<DrillCheck>,
    /// Whether the database and directory were removed again.
    pub cleaned_up: bool,
}

impl DrillReport {
    /// True when every comparison matched.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// Restores `entry` into a throw-away database and directory, compares, and removes both.
///
/// The database is created on the configured server (the role needs `CREATEDB`); the
/// directory is created new (never an existing one) in the backup root (beside the backup
/// when the root does not exist), under a name `coffer prune` treats as a stale staging
/// directory should this process be killed.
pub fn run(
    settings: &RestoreSettings,
    entry: &BackupEntry,
    identities: Option<&Identities>,
    jobs: usize,
    ctx: &RunContext<'_>,
) -> Result<DrillReport, RestoreError> {
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let database = format!("coffer_restore_test_{}_{stamp}", std::process::id());
    // In the backup root (coffer's own, never inside the workspace), else beside the backup.
    let parent = if settings.backup_root.is_dir() {
        settings.backup_root.as_path()
    } else {
        entry.path.parent().unwrap_or(Path::new("."))
    };
    let container = parent.join(format!(
        "{}restore-test-{}-{stamp}",
        names::STAGING_PREFIX,
        std::process::id()
    ));
    // Beside a backup that lies in the workspace, the drill would write into what backups
    // archive and restores replace.
    if let Some(ws) = &settings.workspace {
        let (real, ws) = (
            crate::workspace::boundaries::real_path(&container),
            crate::workspace::boundaries::real_path(ws),
        );
        if let (Ok(real), Ok(ws)) = (real, ws)
            && crate::workspace::boundaries::is_within(&real, &ws)
        {
            return Err(RestoreError::Refused {
                problems: vec![format!(
                    "the drill directory {} would be inside the workspace {}: move the backup out of the workspace, or create the backup root",
                    real.display(),
                    ws.display()
                )],
                hints: Vec::new(),
            });
        }
    }
    crate::util::fsutil::create_staging_dir(&container).map_err(|e| RestoreError::Refused {
        problems: vec![format!(
            "cannot create the drill directory {}: {e}",
            container.display()
        )],
        hints: Vec::new(),
    })?;
    let directory = container.join("workspace");
    // No head check against the code and no hooks: the application keeps running.
    let options = RestoreSteps {
        database: true,
        workspace: true,
        target_db: Some(database.clone()),
        create_target_db: true,
        // A drill changes nothing outside its throw-away database and directory.
        create_roles: false,
        target_dir: Some(directory.clone()),
        expect_heads: None,
        check_code_head: false,
        allow_head_mismatch: false,
        terminate_connections: false,
        keep_old: false,
        run_hooks: false,
        jobs,
    };
    let result = restore::prepare(settings, entry, &options, identities)
        .and_then(|plan| restore::execute(settings, &plan, &options, identities, ctx));
    let outcome = result.map(|report| {
        let mut checks = Vec::new();
        let restored_db = settings.database.with_dbname(&database);
        if let Some(db) = &report.database {
            checks.push(compare_rows(entry, &restored_db, &db.tables));
        }
        if let Some(ws) = &report.workspace {
            checks.push(compare_workspace(entry, &ws.path));
        }
        checks.push(DrillCheck {
            subject: "alembic head".into(),
            passed: true,
            detail: report
                .alembic_head
                .as_ref()
                .map_or("no alembic_version table, as in the backup".into(), |h| {
                    format!("{} matches the backup", h.join(","))
                }),
        });
        checks
    });

    // Always clean up, whatever happened above.
    let dropped = settings
        .database
        .with_dbname("postgres")
        .drop_database(&database);
    let removed = std::fs::remove_dir_all(&container);
    let cleaned_up = dropped.is_ok() && removed.is_ok();
    if let Err(e) = &dropped {
        ctx.note(&format!(
            "could not drop the throw-away database {database}: {e}; drop it by hand"
        ));
    }
    if let Err(e) = &removed {
        ctx.note(&format!(
            "could not remove {}: {e}; remove it by hand",
            container.display()
        ));
    }
    let checks = outcome?;
    if cleaned_up {
        ctx.done(&format!(
            "throw-away database {database} dropped and {} removed",
            container.display()
        ));
    }
    Ok(DrillReport {
        backup: entry.name.clone(),
        database,
        directory,
        checks,
        cleaned_up,
    })
}

/// Row counts in the restored database against the manifest (or, for a legacy backup,
/// against the counts read from the dump while it was applied).
fn compare_rows(
    entry: &BackupEntry,
    db: &crate::postgres::Database,
    from_dump: &BTreeMap<String, u64>,
) -> DrillCheck {
    let (expected, source) = match &entry.manifest {
        Some(AnyManifest::Coffer(m)) => (&m.database.tables, "the manifest"),
        _ => (from_dump, "the dump"),
    };
    let subject = "row counts".to_string();
    let tables: Vec<String> = expected.keys().cloned().collect();
    match db.row_counts(&tables) {
        Ok(counts) => {
            let differing: Vec<String> = tables
                .iter()
                .zip(&counts)
                .filter(|(t, n)| expected.get(*t) != Some(n))
                .map(|(t, n)| format!("{t}: {n} rows, {source} says {}", expected[t]))
                .collect();
            if differing.is_empty() {
                DrillCheck {
                    subject,
                    passed: true,
                    detail: format!(
                        "{} tables, {} rows, as in {source}",
                        tables.len(),
                        counts.iter().sum::<u64>()
                    ),
                }
            } else {
                DrillCheck {
                    subject,
                    passed: false,
                    detail: differing.join("; "),
                }
            }
        }
        Err(e) => DrillCheck {
            subject,
            passed: false,
            detail: format!("cannot count rows: {e}"),
        },
    }
}

/// The restored tree's counts and sizes against the manifest's workspace facts.
fn compare_workspace(entry: &BackupEntry, dir: &Path) -> DrillCheck {
    let subject = "workspace".to_string();
    let found = match count_tree(dir) {
        Ok(c) => c,
        Err(e) => {
            return DrillCheck {
                subject,
                passed: false,
                detail: format!("cannot walk {}: {e}", dir.display()),
            };
        }
    };
    let summary = format!(
        "{} files, {} directories, {} symlinks, {} hard links, {}",
        found.files,
        found.directories,
        found.symlinks,
        found.hardlinks,
        units::bytes(found.file_bytes)
    );
    match &entry.manifest {
        Some(AnyManifest::Coffer(m)) => match &m.workspace {
            Some(w) => {
                let expected = TreeCounts {
                    files: w.files,
                    directories: w.directories,
                    symlinks: w.symlinks,
                    hardlinks: w.hardlinks,
                    file_bytes: w.file_bytes,
                };
                DrillCheck {
                    subject,
                    passed: found == expected,
                    detail: if found == expected {
                        format!("{summary}, as in the manifest")
                    } else {
                        format!(
                            "{summary}; the manifest says {} files, {} directories, {} symlinks, {} hard links, {} bytes",
                            w.files, w.directories, w.symlinks, w.hardlinks, w.file_bytes
                        )
                    },
                }
            }
            None => DrillCheck {
                subject,
                passed: true,
                detail: summary,
            },
        },
        _ => DrillCheck {
            subject,
            passed: true,
            detail: format!("{summary} (a legacy manifest records no counts)"),
        },
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct TreeCounts {
    files: u64,
    directories: u64,
    symlinks: u64,
    hardlinks: u64,
    file_bytes: u64,
}

/// Counts a tree the way the manifest does: the root is a directory, a hard-linked file
/// counts once as a file and once per extra name as a hard link.
fn count_tree(dir: &Path) -> std::io::Result<TreeCounts> {
    use std::os::unix::fs::MetadataExt;
    let mut counts = TreeCounts::default();
    let mut seen = std::collections::HashSet::new();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.map_err(std::io::Error::other)?;
        let meta = entry.metadata().map_err(std::io::Error::other)?;
        let ft = entry.file_type();
        if ft.is_dir() {
            counts.directories += 1;
        } else if ft.is_symlink() {
            counts.symlinks += 1;
        } else if ft.is_file() {
            if meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) {
                counts.hardlinks += 1;
            } else {
                counts.files += 1;
                counts.file_bytes += meta.len();
            }
        }
    }
    Ok(counts)
}
