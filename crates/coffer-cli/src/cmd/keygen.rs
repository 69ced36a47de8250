//! `coffer keygen`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `coffer keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the identity (secret key); never overwritten; created 0600
    #[arg(long, short, value_name = "PATH")]
    output: PathBuf,
}

/// Runs `coffer keygen`: writes the identity and prints the public key on stdout.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let public = coffer_core::crypto::keygen(&args.output)?;
    crate::output::errln!(
        "wrote identity to {} (keep it off this host too: without it encrypted backups cannot be restored)",
        args.output.display()
    );
    crate::output::errln!("public key (put it in encryption.recipients):");
    crate::output::outln!("{public}");
    Ok(ExitCode::SUCCESS)
}
