//! The result of a backup, as `backup` and `demo` show it.

use coffer_core::BackupReport;
use coffer_core::manifest::ArtifactRole;

use super::{bytes, outln, print_json, shown};

/// Prints a finished backup: a few lines for people, or JSON.
pub fn print_backup(report: &BackupReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(report);
    }
    let m = &report.manifest;
    if let Some(a) = m.artifact(ArtifactRole::Database) {
        let head = m
            .alembic_head
            .as_ref()
            .map_or("none (no alembic_version table)".to_string(), |h| {
                h.to_string()
            });
        outln!(
            "✓ database  {:<24} {:>10}  {} tables, alembic head {head}",
            a.file,
            bytes(a.size),
            m.database.tables.len()
        );
    }
    if let (Some(a), Some(w)) = (m.artifact(ArtifactRole::Workspace), &m.workspace) {
        outln!(
            "✓ workspace {:<24} {:>10}  {} files, {} directories, {} symlinks",
            a.file,
            bytes(a.size),
            w.files,
            w.directories,
            w.symlinks
        );
        for s in &w.skipped {
            outln!("  skipped: {}", shown(&s.to_string()));
        }
        for c in &w.changed {
            outln!("  changed while archived: {}", shown(&c.to_string()));
        }
    }
    outln!(
        "backup {} complete in {:.1}s: {}",
        m.name,
        report.duration_seconds,
        report.path.display()
    );
    Ok(())
}
