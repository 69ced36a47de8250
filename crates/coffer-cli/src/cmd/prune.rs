//! `coffer prune`.

use std::process::ExitCode;

use coffer_core::PruneReport;
use coffer_core::{PruneOptions, RunContext};

use crate::output::{self, Lines, Reporter};

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
    let coffer = cli.coffer()?;
    let reporter = Reporter::new(true, Lines::Hidden);
    let options = PruneOptions::default().dry_run(args.dry_run);
    let report = coffer.prune(&options, &RunContext::new(&reporter))?;
    print(&report, args.json)?;
    if let Some(e) = report.error() {
        return Err(coffer_core::Error::from(e).into());
    }
    Ok(ExitCode::SUCCESS)
}

fn print(report: &PruneReport, json: bool) -> anyhow::Result<()> {
    let plan = &report.plan;
    if json {
        return output::print_json(report);
    }
    if plan.backups.is_empty() && plan.staging.is_empty() && plan.unknown.is_empty() {
        output::errln!("no backups in {}", plan.root.display());
        return Ok(());
    }
    output::outln!(
        "{:<7} {:<28} {:<7} {:<20} {:>10}  WHY",
        "ACTION",
        "NAME",
        "KIND",
        "CREATED",
        "SIZE"
    );
    let action = |keep: bool| if keep { "keep" } else { "delete" };
    for b in &plan.backups {
        output::outln!(
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
        output::outln!(
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
        output::outln!(
            "{:<7} {:<28} {:<7} {:<20} {:>10}  unknown — left alone: {}",
            "keep",
            format!("{:?}", u.name).trim_matches('"'),
            "?",
            "?",
            "",
            u.reason
        );
    }
    output::outln!("{}", report.summary());
    for (name, err) in &report.failed {
        output::errln!("error: cannot delete {name}: {err}");
    }
    Ok(())
}
