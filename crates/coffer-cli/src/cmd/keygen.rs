//! `coffer keygen`: an age identity (`--output`) or a minisign signing key (`--signing`).

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `coffer keygen`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
--output PATH writes an age identity for encrypted backups and prints its public key (for \
encryption.recipients).

--signing PATH writes a minisign key pair for signed backups: PATH, the secret key (0600, \
without password so the nightly timer can sign), and PATH.pub; it prints the public key (for \
signing.trusted_public_keys) and the configuration lines to add. Backups signed with it verify \
without coffer: `minisign -Vm manifest.json -P <public key>`. Neither form ever overwrites a \
file.")]
pub struct Args {
    /// Where to write the age identity (secret key); never overwritten; created 0600
    #[arg(
        long,
        short,
        value_name = "PATH",
        required_unless_present = "signing",
        conflicts_with = "signing"
    )]
    output: Option<PathBuf>,

    /// Where to write a minisign signing key (secret, 0600) and its public key (PATH.pub);
    /// never overwritten
    #[arg(long, value_name = "PATH")]
    signing: Option<PathBuf>,
}

/// Runs `coffer keygen`: writes the key and prints the public key on stdout.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.signing {
        return signing(path);
    }
    let output = args
        .output
        .as_ref()
        .expect("clap requires --output or --signing");
    let public = coffer_core::generate_age_identity(output).map_err(coffer_core::Error::from)?;
    crate::output::errln!(
        "wrote identity to {} (keep it off this host too: without it encrypted backups cannot be restored)",
        output.display()
    );
    crate::output::errln!("public key (put it in encryption.recipients):");
    crate::output::outln!("{public}");
    Ok(ExitCode::SUCCESS)
}

fn signing(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let key = coffer_core::generate_signing_key(path).map_err(coffer_core::Error::from)?;
    crate::output::errln!(
        "wrote signing key {} (secret, 0600: keep it on the backup host only) and public key {} (key id {})",
        key.secret_key_file.display(),
        key.public_key_file.display(),
        key.key_id
    );
    let absolute = std::path::absolute(&key.secret_key_file).unwrap_or(key.secret_key_file);
    crate::output::errln!(
        "add to the configuration:\n  on the backup host:\n    [signing]\n    secret_key_file = \"{}\"\n  wherever backups are verified, pulled or restored:\n    [signing]\n    trusted_public_keys = [\"{}\"]",
        absolute.display(),
        key.public_key
    );
    crate::output::errln!("public key:");
    crate::output::outln!("{}", key.public_key);
    Ok(ExitCode::SUCCESS)
}
