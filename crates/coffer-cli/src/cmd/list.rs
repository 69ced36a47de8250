//! `coffer list`.

use std::process::ExitCode;

use coffer_core::catalog::{self, BackupEntry, EntryStatus};
use serde_json::json;

use crate::output;

/// Arguments of `coffer list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table
    #[arg(long)]
    pub(crate) json: bool,

    /// List the backups on the remote (remote.url) instead of the backup root; complete
    /// means the manifest exists and every artifact it lists has the recorded size
    #[arg(long)]
    remote: bool,
}

/// Runs `coffer list`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let config = cli.load_config()?;
    if args.remote {
        return list_remote(&config, args.json);
    }
    let root = config.backup_dir();
    let scanned = catalog::scan(&root)?;
    let entries = &scanned.backups;
    let now = chrono::Utc::now();
    if args.json {
        let rows: Vec<_> = entries.iter().map(|e| entry_json(e, now)).collect();
        crate::output::outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        crate::output::errln!("no backups in {}", root.display());
    } else {
        print_table(entries.iter().map(|e| Row {
            name: &e.name,
            kind: e.kind,
            created: e.created,
            size: e.size_bytes,
            head: e.alembic_head(),
            status: &e.status,
            future: e.is_future(now),
        }));
    }
    for u in &scanned.unknown {
        crate::output::errln!(
            "note: {:?} in the backup root is unknown — left alone: {}",
            u.name,
            u.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of the table, local or remote.
struct Row<'a> {
    name: &'a str,
    kind: Option<coffer_core::names::BackupKind>,
    created: Option<chrono::DateTime<chrono::Utc>>,
    size: u64,
    head: Option<String>,
    status: &'a EntryStatus,
    future: bool,
}

fn print_table<'a>(rows: impl Iterator<Item = Row<'a>>) {
    crate::output::outln!(
        "{:<28} {:<7} {:<20} {:>10}  {:<14} STATUS",
        "NAME",
        "KIND",
        "CREATED",
        "SIZE",
        "DB REVISION"
    );
    for r in rows {
        crate::output::outln!(
            "{:<28} {:<7} {:<20} {:>10}  {:<14} {}",
            r.name,
            r.kind.map_or("?".into(), |k| k.to_string()),
            r.created
                .map_or("?".into(), |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()),
            output::bytes(r.size),
            r.head.unwrap_or_else(|| "-".into()),
            status_text(r.status)
                + if r.future {
                    " (future-dated — clock skew?)"
                } else {
                    ""
                }
        );
    }
}

fn list_remote(config: &coffer_core::config::Config, json: bool) -> anyhow::Result<ExitCode> {
    let remote = coffer_core::remote::Remote::from_config(&config.remote)?;
    let scanned = super::runtime::block_on(remote.scan())??;
    let backups = &scanned.backups;
    if json {
        let mut rows: Vec<_> = backups
            .iter()
            .map(|b| {
                json!({
                    "name": b.name,
                    "kind": b.kind,
                    "created": b.created,
                    "size_bytes": b.size_bytes(),
                    "alembic_head": b.manifest.as_ref().and_then(|m| m.alembic_head()),
                    "status": b.status,
                    "objects": b.objects,
                    // Both signature files are there (checked by pull, not by a listing).
                    "signed": coffer_core::signing::SIGNED_FILES
                        .iter()
                        .all(|(_, sig)| b.objects.contains_key(*sig)),
                })
            })
            .collect();
        // Folders coffer does not know: status "unknown", never pulled or deleted.
        rows.extend(scanned.unknown.iter().map(|u| {
            json!({
                "name": u.name,
                "size_bytes": u.size_bytes(),
                "status": {"status": "unknown", "reason": u.unknown},
                "objects": u.objects,
            })
        }));
        crate::output::outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    for u in &scanned.unknown {
        crate::output::errln!(
            "note: {:?} on the remote is unknown — left alone: {}",
            u.name,
            u.unknown.as_deref().unwrap_or_default()
        );
    }
    if backups.is_empty() {
        crate::output::errln!("no backups on {}", remote.url());
        return Ok(ExitCode::SUCCESS);
    }
    crate::output::outln!("remote {}", remote.url());
    print_table(backups.iter().map(|b| {
        Row {
            name: &b.name,
            kind: b.kind,
            created: b.created,
            size: b.size_bytes(),
            head: b.alembic_head(),
            status: &b.status,
            future: b
                .created
                .is_some_and(|t| coffer_core::names::is_future(t, chrono::Utc::now())),
        }
    }));
    Ok(ExitCode::SUCCESS)
}

fn status_text(s: &EntryStatus) -> String {
    match s {
        EntryStatus::Complete => "complete".into(),
        EntryStatus::Legacy => "legacy".into(),
        EntryStatus::Incomplete(r) => format!("INCOMPLETE: {r}"),
        EntryStatus::Unreadable(r) => format!("UNREADABLE: {r}"),
    }
}

fn entry_json(e: &BackupEntry, now: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    let label = match &e.manifest {
        Some(coffer_core::manifest::AnyManifest::Coffer(m)) => m.label.clone(),
        _ => None,
    };
    json!({
        "name": e.name,
        "path": e.path,
        "kind": e.kind,
        "created": e.created,
        "size_bytes": e.size_bytes,
        "alembic_head": e.manifest.as_ref().and_then(|m| m.alembic_head()),
        "label": label,
        "status": e.status,
        "future_dated": e.is_future(now),
    })
}
