//! `coffer systemd`: the nightly timer's and the HTTP server's unit files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use coffer_core::UnitFailure;

use crate::systemd_units::{self as systemd, Installed, UnitOptions};

/// Arguments of `coffer systemd`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print the unit files (each after a `### NAME` line)
    Print(UnitArgs),
    /// Write the unit files into /etc/systemd/system (or --dir)
    #[command(after_help = "\
Then: systemctl daemon-reload && systemctl enable --now coffer-backup.timer
For the HTTP API (coffer serve) also: systemctl enable --now coffer-serve.service
Check with: systemctl list-timers coffer-backup.timer; journalctl -u coffer-backup.service")]
    Install(InstallArgs),
    /// Run by coffer-backup-failure.service (OnFailure=): runs hooks.on_failure when the
    /// backup unit failed without coffer reporting it (killed, timed out)
    NotifyFailure {
        /// The unit that failed
        unit: String,
    },
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The service runs `coffer backup --kind auto --quiet` with the --config, --backup-dir and \
--metrics-file given here (else /etc/coffer/coffer.toml), writable paths limited to the backup \
root and the metrics file's directory. coffer-serve.service runs `coffer serve` with the same \
flags and may also write the workspace's parent directory (restores stage and swap there); it \
restarts on failure and waits for a running restore to roll back when stopped. Adjust with a \
drop-in: systemctl edit coffer-backup.service (or coffer-serve.service)")]
struct UnitArgs {
    /// When the timer fires (systemd.time(7) calendar syntax)
    #[arg(long, default_value = systemd::DEFAULT_ON_CALENDAR, value_name = "SPEC")]
    on_calendar: String,

    /// Random delay added to each run, so many hosts do not start at once
    #[arg(long, default_value = systemd::DEFAULT_RANDOMIZED_DELAY, value_name = "DURATION")]
    randomized_delay: String,

    /// The coffer binary the units run [default: this one]
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct InstallArgs {
    #[command(flatten)]
    units: UnitArgs,

    /// Directory to write the units into
    #[arg(long, default_value = systemd::DEFAULT_UNIT_DIR, value_name = "DIR")]
    dir: PathBuf,

    /// Overwrite unit files that differ from what coffer writes
    #[arg(long)]
    force: bool,
}

/// Runs `coffer systemd`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        Command::Print(u) => {
            for unit in systemd::render(&options(cli, u)?).map_err(coffer_core::Error::from)? {
                crate::output::outln!("### {}\n{}", unit.name, unit.text);
            }
        }
        Command::Install(i) => {
            let units =
                systemd::render(&options(cli, &i.units)?).map_err(coffer_core::Error::from)?;
            let installed =
                systemd::install(&i.dir, &units, i.force).map_err(coffer_core::Error::from)?;
            for done in installed {
                match done {
                    Installed::Written(p) => crate::output::outln!("wrote {}", p.display()),
                    Installed::Unchanged(p) => crate::output::outln!("unchanged {}", p.display()),
                }
            }
            crate::output::outln!(
                "next: systemctl daemon-reload && systemctl enable --now {}",
                systemd::TIMER
            );
            crate::output::outln!(
                "for the HTTP API (coffer serve): systemctl enable --now {}",
                systemd::SERVE_SERVICE
            );
        }
        Command::NotifyFailure { unit } => {
            let coffer = cli.coffer()?;
            match coffer.unit_failed(unit, Utc::now()) {
                UnitFailure::AlreadyReported => {
                    crate::output::errln!(
                        "{unit} failed; coffer already recorded and reported the failure"
                    )
                }
                UnitFailure::Reported(warnings) => {
                    crate::output::errln!(
                        "{unit} failed without a record from coffer: recorded, hooks.on_failure run"
                    );
                    for w in &warnings {
                        crate::output::print_warning(w);
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}

fn options(cli: &crate::Cli, args: &UnitArgs) -> anyhow::Result<UnitOptions> {
    let coffer = cli.coffer()?;
    let binary = match &args.binary {
        Some(b) => absolute(b)?,
        None => std::env::current_exe()
            .context("cannot find the path of the coffer binary; pass --binary")?,
    };
    // Flags given here must reach the service too; settings from the configuration file
    // are read by the service itself.
    let mut global_args = Vec::new();
    let flags = [
        ("--config", &cli.config),
        ("--backup-dir", &cli.backup_dir),
        ("--metrics-file", &cli.metrics_file),
    ];
    for (flag, value) in flags {
        if let Some(v) = value {
            global_args.push(flag.to_string());
            global_args.push(absolute(v)?.display().to_string());
        }
    }
    Ok(UnitOptions {
        binary,
        global_args,
        backup_dir: match &cli.backup_dir {
            Some(dir) => absolute(dir)?,
            None => coffer.root().to_path_buf(),
        },
        writable: systemd::metrics_dir(coffer.config())
            .map(Path::to_path_buf)
            .into_iter()
            .collect(),
        // A restore stages the new workspace beside it and swaps by rename.
        restore_writable: coffer
            .config()
            .workspace
            .path
            .as_deref()
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
            .map(absolute)
            .transpose()?
            .into_iter()
            .collect(),
        on_calendar: args.on_calendar.clone(),
        randomized_delay: args.randomized_delay.clone(),
    })
}
