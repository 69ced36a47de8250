//! `coffer status`: a health check for people and for monitoring (Nagios, cron, PagerDuty).

use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use coffer_core::StatusReport;
use coffer_core::text;
use coffer_core::{Alert, SuccessSource, Thresholds};
use serde::Serialize;

use crate::exit;
use crate::output;

/// Arguments of `coffer status`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The first line is for monitoring plugins: `OK: …` or `CRITICAL: …`. The last success comes \
from the run log (coffer-runs.jsonl in the backup root), or from the newest usable backup when \
that is newer (a root migrated from the shell scripts). Consecutive failures count failed backup \
attempts (auto and manual) since the last success.

Failures are counted in the run log's append order, not by timestamp. A last success dated in \
the future (clock skew) does not count as a success. A missing backup root is named as such.

Exit codes: 0 OK; 10 no successful backup within --max-age, or none at all (also when the root \
is missing, or the last success is dated in the future); 11 --max-failures consecutive \
failures (when both apply, 10); 1 the status could not be read.")]
pub struct Args {
    /// Alert when the last successful backup is older than this (e.g. 26h, 2d, 90m)
    #[arg(long, default_value = "26h", value_parser = parse_duration, value_name = "DURATION")]
    max_age: Duration,

    /// Alert at this many consecutive failed backups (0: never)
    #[arg(long, default_value_t = 3, value_name = "N")]
    max_failures: u32,

    /// Print JSON instead of text (the exit code is the same)
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 26h, 2d, 90m)"))
}

/// Runs `coffer status`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let coffer = cli.coffer()?;
    let thresholds = Thresholds {
        max_age: args.max_age,
        max_failures: args.max_failures,
    };
    let report = coffer.status(&thresholds)?;
    let code = match report.alert {
        None => 0,
        Some(Alert::TooOld) => exit::STATUS_TOO_OLD,
        Some(Alert::TooManyFailures) => exit::STATUS_FAILING,
    };
    if args.json {
        output::print_json_sorted(&StatusJson {
            report: &report,
            exit_code: code,
        })?;
    } else {
        print_text(&report);
    }
    Ok(ExitCode::from(code))
}

/// The `--json` form: the core's report and the exit code it makes.
#[derive(Serialize)]
struct StatusJson<'a> {
    #[serde(flatten)]
    report: &'a StatusReport,
    exit_code: u8,
}

fn print_text(report: &StatusReport) {
    let status = &report.status;
    output::outln!("{}", report.headline);
    let at = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%SZ").to_string();
    match &status.last_success {
        Some(s) => output::outln!(
            "last success:         {} ({}) at {}, {} ago{}",
            s.backup.as_deref().unwrap_or("?"),
            s.kind.map_or("?".into(), |k| k.to_string()),
            at(s.at),
            text::human_age(s.age_seconds),
            match s.source {
                SuccessSource::RunLog => "",
                SuccessSource::Backups => " (from the backups; not in the run log)",
            }
        ),
        None => output::outln!("last success:         never"),
    }
    if let Some(a) = &status.last_attempt {
        output::outln!(
            "last attempt:         {} at {}, {:.1}s",
            a.outcome,
            at(a.ended),
            a.duration_seconds
        );
    }
    output::outln!(
        "consecutive failures: {} (alert at {})",
        status.consecutive_failures,
        if report.max_failures == 0 {
            "never".to_string()
        } else {
            report.max_failures.to_string()
        }
    );
    if let Some(s) = &status.last_sync {
        output::outln!(
            "last sync:            {} at {}{}",
            s.outcome,
            at(s.ended),
            match status.last_sync_success {
                Some(t) if !s.is_success() => format!(" (last successful sync {})", at(t)),
                None if !s.is_success() => " (never succeeded)".to_string(),
                _ => String::new(),
            }
        );
    }
    // The headline already carries the last error while backups are failing: once is enough.
    if let Some(f) = status
        .last_failure
        .as_ref()
        .filter(|_| status.consecutive_failures == 0)
    {
        output::outln!(
            "last error:           {} at {}: {}",
            f.operation,
            at(f.ended),
            f.error_summary().unwrap_or_else(|| "?".into())
        );
    }
    let kinds: Vec<String> = status
        .backups
        .by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    output::outln!(
        "backups:              {} ({}), {}",
        status.backups.count,
        if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        },
        output::bytes(status.backups.total_bytes)
    );
    if !status.backups.future_dated.is_empty() {
        output::outln!(
            "note: dated in the future (clock skew?): {}",
            text::truncate(&status.backups.future_dated.join(", "), 500)
        );
    }
    if status.long_log_lines > 0 {
        output::outln!(
            "note: {} line(s) of the run log are longer than {} bytes and were skipped",
            status.long_log_lines,
            text::RUN_LOG_LINE_CAP
        );
    }
    if status.log_truncated {
        output::outln!(
            "note: the run log is longer than {} bytes; only its end was read",
            text::RUN_LOG_READ_WINDOW
        );
    }
    if status.bad_log_lines > 0 {
        output::outln!(
            "note: {} line(s) of the run log could not be read and were ignored",
            status.bad_log_lines
        );
    }
}
