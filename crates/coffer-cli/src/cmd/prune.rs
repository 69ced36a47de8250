//! `coffer prune`.

use std::process::ExitCode;

use chrono::Utc;
use coffer_core::notify::Reporting;
use coffer_core::prune::{self, PruneReport};
use coffer_core::runlog::{Operation, RunRecord};

use crate::output;

/// Arguments of `coffer prune`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Rules ([retention] in the configuration): keep_days (default 7; env BACKUP_RETENTION_DAYS), \
keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, with restic's semantics: a backup \
kept by any rule is kept; periods are UTC. They apply to auto and legacy backups; manual backups \
are never pruned automatically, and the newest complete backup is always kept. Incomplete \
Only what coffer positively knows is deleted: complete backups it identifies (a coffer \
manifest naming the directory with its artifacts, or the scripts' manifest, artifacts and \
YYYY-MM-DD-HHMMSS name, and nothing else inside) and its own staging directories (with the \
marker coffer writes) untouched for a day. Everything else — incomplete or unreadable \
backups, other directories, symlinks, files — is listed as \"unknown — left alone\". \
Future-dated backups are kept and flagged (clock skew?).

prune holds the backup root's lock (exit 3 while a backup runs); --dry-run changes nothing and \
takes no lock. A prune that deletes is appended to the run log, rewrites the metrics file and \
runs hooks.on_success / hooks.on_failure.")]
pub struct Args {
    /// Show what would be deleted, and why, without deleting anything
    #[arg(long)]
    dry_run: bool,

    /// Print JSON instead of a table
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `coffer prune`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let config = cli.load_config()?;
    let reporting = Reporting::from_config(&config);
    let started = Utc::now();
    let result = prune::run(&reporting.root, &config.retention, started, args.dry_run);
    if args.dry_run {
        print(&result.map_err(coffer_core::Error::from)?, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let record = RunRecord::new(Operation::Prune, started);
    let (record, outcome) = match result {
        Ok(report) => {
            print(&report, args.json)?;
            let record = record.with_detail(report.summary());
            match report.error() {
                None => (record.succeeded(Utc::now()), Ok(())),
                Some(e) => (record.failed(Utc::now(), &e.to_string()), Err(e)),
            }
        }
        Err(e) => (record.failed(Utc::now(), &e.to_string()), Err(e)),
    };
    super::print_warnings(&reporting.after_run(&record, Utc::now()));
    outcome.map_err(coffer_core::Error::from)?;
    Ok(ExitCode::SUCCESS)
}

fn print(report: &PruneReport, json: bool) -> anyhow::Result<()> {
    let plan = &report.plan;
    if json {
        crate::output::outln!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    if plan.backups.is_empty() && plan.staging.is_empty() && plan.unknown.is_empty() {
        crate::output::errln!("no backups in {}", plan.root.display());
        return Ok(());
    }
    crate::output::outln!(
        "{:<7} {:<28} {:<7} {:<20} {:>10}  WHY",
        "ACTION",
        "NAME",
        "KIND",
        "CREATED",
        "SIZE"
    );
    let action = |keep: bool| if keep { "keep" } else { "delete" };
    for b in &plan.backups {
        crate::output::outln!(
            "{:<7} {:<28} {:<7} {:<20} {:>10}  {}",
            action(b.keep),
            b.name,
            b.kind.map_or("?".into(), |k| k.to_string()),
            b.time
                .map_or("?".into(), |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()),
            output::bytes(b.size_bytes),
            b.reasons.join("; ")
        );
    }
    for s in &plan.staging {
        crate::output::outln!(
            "{:<7} {:<28} {:<7} {:<20} {:>10}  {}",
            action(s.keep),
            s.name,
            "staging",
            s.modified.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "",
            if s.keep {
                "staging directory changed within a day (may be in progress)"
            } else {
                "stale staging directory (unchanged for over a day)"
            }
        );
    }
    for u in &plan.unknown {
        crate::output::outln!(
            "{:<7} {:<28} {:<7} {:<20} {:>10}  unknown — left alone: {}",
            "keep",
            format!("{:?}", u.name).trim_matches('"'),
            "?",
            "?",
            "",
            u.reason
        );
    }
    crate::output::outln!("{}", report.summary());
    for (name, err) in &report.failed {
        crate::output::errln!("error: cannot delete {name}: {err}");
    }
    Ok(())
}
