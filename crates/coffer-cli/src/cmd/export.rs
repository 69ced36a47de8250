//! `coffer export`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use coffer_core::{BackupRef, BundleOutput, ErrorKind, RunContext};

use crate::output::{self, Lines, Reporter};

/// Arguments of `coffer export`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Writes one backup of the root as a single uncompressed POSIX tar (a bundle): NAME/, \
NAME/manifest.json first, then the artifacts, NAME/SHA256SUMS and the signature files if any. \
`tar -xf BUNDLE` unpacks it into the ordinary backup directory; `coffer import` reads it back. \
The backup is streamed (no temporary copy) and every artifact is checked against the \
manifest's size and SHA-256 on the way: a damaged backup stops the bundle before its \
end-of-archive marker, so it cannot be imported. An incomplete backup is refused.

With --output FILE the bundle is written to a hidden temporary file beside FILE (mode 0600) \
and renamed when complete; an existing FILE is never replaced. Without --output, or with \
--output -, it goes to standard output, which must not be a terminal.

Exit codes: 0 exported, 1 failed (nothing complete-looking was written), 2 bad configuration \
or stdout is a terminal, 5 the backup is damaged, 130/143 interrupted.")]
pub struct Args {
    /// The backup's name in the root, or the path of a backup directory
    #[arg(value_name = "NAME", required_unless_present = "latest")]
    name: Option<String>,

    /// Export the newest complete backup
    #[arg(long, conflicts_with = "name")]
    latest: bool,

    /// Write the bundle to FILE (0600; never replaces a file); `-` for standard output
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Print a machine-readable summary (JSON) on stdout (with --output FILE only)
    #[arg(long)]
    pub(crate) json: bool,

    /// No summary or progress lines on stderr
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `coffer export`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let file = args.output.clone().filter(|p| p.as_os_str() != "-");
    if file.is_none() {
        if args.json {
            return Err(
                usage("--json needs --output FILE: standard output carries the bundle").into(),
            );
        }
        if std::io::stdout().is_terminal() {
            return Err(usage(
                "refusing to write a bundle to a terminal: pass --output FILE, or redirect standard output (coffer export NAME > NAME.tar)",
            )
            .into());
        }
    }
    let coffer = cli.coffer()?;
    let backup = match &args.name {
        Some(n) => BackupRef::Named(n.clone()),
        None => BackupRef::Latest,
    };
    let reporter = Reporter::new(args.quiet, Lines::Hidden);
    let report = super::signals::cancellable(|cancel| {
        let ctx = RunContext::new(&reporter).with_cancel(cancel.clone());
        match &file {
            Some(path) => Ok(coffer.export(&backup, BundleOutput::File(path.clone()), &ctx)?),
            None => {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
                let report = coffer.export(&backup, BundleOutput::Stream(&mut out), &ctx)?;
                out.flush()?;
                Ok(report)
            }
        }
    })?;
    if args.json {
        output::print_json(&report)?;
    } else if !args.quiet {
        let to = file.map_or("standard output".to_string(), |p| p.display().to_string());
        output::errln!(
            "exported {} ({} files, {}) to {to}",
            report.name,
            report.files.len(),
            output::bytes(report.bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A refused command line (exit 2).
fn usage(message: &str) -> coffer_core::Error {
    coffer_core::Error::new(ErrorKind::InvalidConfig, message.to_string())
}
