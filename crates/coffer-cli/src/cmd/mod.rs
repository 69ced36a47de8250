//! One module per subcommand, plus what they share: [`signals`] and the remote's [`runtime`].

pub mod backup;
pub mod demo;
pub mod keygen;
pub mod list;
pub mod prune;
pub mod pull;
pub mod restore;
pub mod runtime;
pub mod signals;
pub mod status;
pub mod sync;
pub mod systemd;
pub mod verify;

pub use signals::cancel_on_signals;

/// The age identities to decrypt with: `--identity`, else `encryption.identity_file` (which
/// `COFFER_AGE_IDENTITY_FILE` overrides). `None` when neither is set.
pub fn load_identities(
    config: &coffer_core::config::Config,
    flag: Option<&std::path::Path>,
) -> anyhow::Result<Option<coffer_core::crypto::Identities>> {
    let path = flag.or(config.encryption.identity_file.as_deref());
    Ok(match path {
        Some(p) => Some(coffer_core::crypto::Identities::load(p)?),
        None => None,
    })
}

/// The signature policy of `[signing]` for this run; `allow_unsigned` is `--allow-unsigned`.
/// A trusted key that cannot be loaded is a configuration error (exit 2).
pub fn signature_policy(
    config: &coffer_core::config::Config,
    allow_unsigned: bool,
) -> anyhow::Result<coffer_core::signing::SignaturePolicy> {
    Ok(
        coffer_core::signing::SignaturePolicy::load(&config.signing)?
            .allowing_unsigned(allow_unsigned),
    )
}

/// What to do about an unsigned backup refused because trusted keys are configured.
pub const ALLOW_UNSIGNED_HINT: &str = "to accept an unsigned backup for this run only, pass --allow-unsigned (a bad signature is never accepted)";

/// Prints the warnings of a run's reporting (run log, metrics, hooks) on stderr.
pub fn print_warnings(warnings: &[String]) {
    for w in warnings {
        crate::output::errln!("warning: {}", coffer_core::redact::redact(w));
    }
}
