//! The `coffer` command: a thin layer over `coffer-core` that parses arguments, shows
//! progress and maps failures to documented exit codes.

mod cmd;
mod exit;
mod input;
mod output;
mod systemd_units;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use coffer_core::Coffer;
use coffer_core::config::Config;

/// Backup and restore for a PostgreSQL database plus a workspace directory.
///
/// Artifacts are plain gzip (optionally age-encrypted) files with a manifest and SHA256SUMS,
/// readable by gunzip, tar, age, psql and sha256sum without coffer.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, max_term_width = 100)]
#[command(after_help = exit::EXIT_CODES_HELP)]
pub struct Cli {
    /// Configuration file [default: $COFFER_CONFIG, else /etc/coffer/coffer.toml if it exists]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Backup root, overriding backup_dir and BACKUP_DIR
    #[arg(long, global = true, value_name = "DIR")]
    backup_dir: Option<PathBuf>,

    /// Prometheus textfile rewritten after every backup and prune, overriding metrics_file
    #[arg(long, global = true, value_name = "PATH")]
    metrics_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Back up the database and the workspace into a new backup directory
    Backup(cmd::backup::Args),
    /// List the backups in the backup root, newest first
    List(cmd::list::Args),
    /// Check a backup end to end (hashes, decompression, dump and tar) without restoring it
    Verify(cmd::verify::Args),
    /// Restore the database and the workspace from a backup, all or nothing
    Restore(cmd::restore::Args),
    /// Delete the backups the retention policy does not keep (manual ones never)
    Prune(cmd::prune::Args),
    /// Copy complete local backups to the remote (remote.url), then apply remote retention
    Sync(cmd::sync::Args),
    /// Download a backup from the remote into the backup root, verified, all or nothing
    Pull(cmd::pull::Args),
    /// Write a backup of the root as one tar file (a bundle), to a file or stdout
    Export(cmd::export::Args),
    /// Read a bundle (or a shell-script backup's .tar.gz) into the backup root, verified
    Import(cmd::import::Args),
    /// Show the last success, consecutive failures and size; exit 10/11 past a threshold
    Status(cmd::status::Args),
    /// Serve the HTTP admin API (list, trigger, jobs, restore); `serve token add` makes tokens
    Serve(cmd::serve::Args),
    /// Print or install the systemd units of the nightly backup timer and of `coffer serve`
    Systemd(cmd::systemd::Args),
    /// Write a new age identity (--output) or minisign signing key (--signing); print its public key
    Keygen(cmd::keygen::Args),
    /// Run a whole backup against a throw-away PostgreSQL cluster and the fixture workspace
    Demo(cmd::demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Backup(ref a) => cmd::backup::run(&cli, a),
        Command::List(ref a) => cmd::list::run(&cli, a),
        Command::Verify(ref a) => cmd::verify::run(&cli, a),
        Command::Restore(ref a) => cmd::restore::run(&cli, a),
        Command::Prune(ref a) => cmd::prune::run(&cli, a),
        Command::Sync(ref a) => cmd::sync::run(&cli, a),
        Command::Pull(ref a) => cmd::pull::run(&cli, a),
        Command::Export(ref a) => cmd::export::run(&cli, a),
        Command::Import(ref a) => cmd::import::run(&cli, a),
        Command::Status(ref a) => cmd::status::run(&cli, a),
        Command::Serve(ref a) => cmd::serve::run(&cli, a),
        Command::Systemd(ref a) => cmd::systemd::run(&cli, a),
        Command::Keygen(ref a) => cmd::keygen::run(a),
        Command::Demo(ref a) => cmd::demo::run(a),
    };
    match result {
        Ok(code) => match output::stdout_failure() {
            // The operation succeeded but its output was lost (e.g. a full disk).
            Some(e) if code == ExitCode::SUCCESS => {
                output::errln!("error: cannot write the output to stdout: {e}");
                ExitCode::from(exit::FAILED)
            }
            _ => code,
        },
        Err(err) => {
            let code = exit::code_for(&err);
            output::print_error(&err);
            if cli.command.json() {
                output::outln!("{}", output::error_json(&err, code));
            }
            ExitCode::from(code)
        }
    }
}

impl Command {
    /// Whether `--json` was asked for: failures are then also a JSON object on stdout.
    fn json(&self) -> bool {
        match self {
            Command::Backup(a) => a.json,
            Command::List(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Restore(a) => a.json,
            Command::Prune(a) => a.json,
            Command::Sync(a) => a.json,
            Command::Pull(a) => a.json,
            Command::Export(a) => a.json,
            Command::Import(a) => a.json,
            Command::Status(a) => a.json,
            Command::Serve(_) | Command::Systemd(_) | Command::Keygen(_) | Command::Demo(_) => {
                false
            }
        }
    }
}

impl Cli {
    /// The handle on the backup root: the configuration loaded, the global flags applied,
    /// its paths checked.
    fn coffer(&self) -> anyhow::Result<Coffer> {
        let loaded = Config::load(self.config.as_deref(), &|k| std::env::var(k).ok())
            .map_err(coffer_core::Error::from)?;
        let mut config = loaded.config;
        if let Some(dir) = &self.backup_dir {
            config.backup_dir = Some(dir.clone());
        }
        if let Some(path) = &self.metrics_file {
            config.metrics_file = Some(path.clone());
        }
        Ok(Coffer::new(config)?)
    }
}
