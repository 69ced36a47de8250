//! `coffer serve` and `coffer serve token add`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use coffer_core::{Error, ErrorKind};
use coffer_server::{JobLauncher, Role, Server, Tokens};

use crate::output;

/// Blocking threads for reads (list, health, status, downloads): enough for a few slow
/// downloads beside the quick reads, few enough that RSS stays flat under load.
const MAX_BLOCKING_THREADS: usize = 8;

/// Arguments of `coffer serve`.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Serves the HTTP admin API (/v1/admin/…, /metrics) until SIGTERM or SIGINT; \
then a running backup is cancelled (nothing partial is left) or a running restore rolls back \
before the server exits. Every request needs `Authorization: Bearer TOKEN` with a token made by \
`coffer serve token add` (server.tokens_file). The server speaks plain HTTP: it refuses a \
non-loopback address unless server.allow_plain_http = true (put it behind a TLS-terminating \
reverse proxy). Uploads to restore (POST /v1/admin/backup/restore) are streamed, never held in \
memory, and refused with 413 past server.max_upload_bytes (default 10 GB). Requests are \
served at a lower CPU priority (nice +10, at most 19) than backups and restores, which keep \
the process's. It prints `listening on http://ADDRESS` on stdout once it accepts requests."
)]
pub struct Args {
    /// Address and port to listen on [default: server.listen, else 127.0.0.1:8787];
    /// port 0 picks a free one
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,

    #[command(subcommand)]
    command: Option<ServeCommand>,
}

#[derive(Debug, clap::Subcommand)]
enum ServeCommand {
    /// Manage the bearer tokens in server.tokens_file
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Make a new random token, store its SHA-256 in server.tokens_file (created 0600) and
    /// print the token once on stdout
    Add {
        /// A name for the token (letters, digits, `.`, `_`, `-`), e.g. ops or grafana
        name: String,
        /// admin: everything; viewer: list, status, jobs and download only
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn usage(text: String) -> Error {
    Error::new(ErrorKind::InvalidConfig, std::io::Error::other(text))
}

/// Runs `coffer serve`.
pub fn run(cli: &crate::Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let coffer = cli.coffer()?;
    let settings = coffer.config().server.clone();
    let tokens_file = settings.tokens_file.clone().ok_or_else(|| {
        usage(
            "server.tokens_file is not set: name the file that holds the bearer tokens (e.g. /etc/coffer/tokens) in the configuration's [server] section".into(),
        )
    })?;
    if let Some(ServeCommand::Token(TokenCommand::Add { name, role })) = &args.command {
        let token = coffer_server::tokens::add(&tokens_file, name, *role)?;
        output::errln!(
            "added {role} token `{name}` to {}; it is shown only now:",
            tokens_file.display()
        );
        output::outln!("{token}");
        return Ok(ExitCode::SUCCESS);
    }
    let listen = args.listen.as_deref().unwrap_or(&settings.listen);
    let addr =
        coffer_core::config::parse_listen(listen).map_err(|r| usage(format!("--listen {r}")))?;
    coffer_server::check_listen(addr, settings.allow_plain_http)?;
    let tokens = Tokens::load(&tokens_file)?;
    // Before the runtime: the launcher's thread must never be lowered, so that backups and
    // restores keep the process's priority while requests run below it.
    let launcher = JobLauncher::start().context("cannot start the server's job launcher")?;
    let http_niceness = coffer_server::priority::http_niceness()
        .inspect_err(warn_priority_unchanged)
        .ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Reads (list, health, downloads) share a few blocking threads rather than tokio's
        // default 512, each of which would grow its own malloc arena; jobs have their own
        // thread, so a burst of reads only queues reads.
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_name("coffer-serve")
        // Requests must not take the CPU from a backup: every HTTP thread runs nicer.
        .on_thread_start(move || {
            if let Some(niceness) = http_niceness {
                let _ = coffer_server::priority::set_current_thread(niceness)
                    .inspect_err(warn_priority_unchanged);
            }
        })
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr}: is another server using the port?")
        })?;
        let server = Server::new(coffer, tokens, listener)?.with_job_launcher(launcher);
        let stop = coffer_server::stop_signal().context("cannot install signal handlers")?;
        let bound = server.local_addr()?;
        output::outln!("listening on http://{bound}");
        let _ = std::io::stdout().flush();
        server.run(stop).await?;
        output::errln!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Says once that the HTTP threads keep the process's priority (`getpriority` or
/// `setpriority` refused, e.g. by a seccomp filter); the server runs anyway.
fn warn_priority_unchanged(e: &std::io::Error) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        output::errln!(
            "warning: cannot lower the priority of the server's HTTP threads ({e}): requests compete with backups for the CPU at equal priority"
        );
    });
}
