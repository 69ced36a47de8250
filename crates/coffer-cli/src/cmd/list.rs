//! `coffer list`.

use std::process::ExitCode;

use coffer_core::Coffer;
use coffer_core::EntryStatus;

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
    let coffer = cli.coffer()?;
    if args.remote {
        return list_remote(&coffer, args.json);
    }
    let listing = coffer.list()?;
    if args.json {
        output::print_json_sorted(&listing.backups)?;
        return Ok(ExitCode::SUCCESS);
    }
    if listing.backups.is_empty() {
        output::errln!("no backups in {}", coffer.root().display());
    } else {
        print_table(listing.backups.iter().map(|b| Row {
            name: &b.name,
            kind: b.kind,
            created: b.created,
            size: b.size_bytes,
            head: b.alembic_head.as_ref().map(ToString::to_string),
            status: &b.status,
            future: b.future_dated,
        }));
    }
    for u in &listing.unknown {
        output::errln!(
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
    kind: Option<coffer_core::BackupKind>,
    created: Option<chrono::DateTime<chrono::Utc>>,
    size: u64,
    head: Option<String>,
    status: &'a EntryStatus,
    future: bool,
}

fn print_table<'a>(rows: impl Iterator<Item = Row<'a>>) {
    output::outln!(
        "{:<28} {:<7} {:<20} {:>10}  {:<14} STATUS",
        "NAME",
        "KIND",
        "CREATED",
        "SIZE",
        "DB REVISION"
    );
    for r in rows {
        output::outln!(
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

fn list_remote(coffer: &Coffer, json: bool) -> anyhow::Result<ExitCode> {
    let listing = super::runtime::start()?.block_on(coffer.list_remote())?;
    if json {
        output::print_json_sorted(&listing)?;
        return Ok(ExitCode::SUCCESS);
    }
    for u in &listing.unknown {
        output::errln!(
            "note: {:?} on the remote is unknown — left alone: {}",
            u.name,
            u.status.reason.as_deref().unwrap_or_default()
        );
    }
    if listing.backups.is_empty() {
        output::errln!("no backups on {}", listing.remote);
        return Ok(ExitCode::SUCCESS);
    }
    output::outln!("remote {}", listing.remote);
    print_table(listing.backups.iter().map(|b| Row {
        name: &b.name,
        kind: b.kind,
        created: b.created,
        size: b.size_bytes,
        head: b.alembic_head.as_ref().map(ToString::to_string),
        status: &b.status,
        future: b.future_dated,
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
