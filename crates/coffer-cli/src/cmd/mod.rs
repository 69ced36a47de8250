//! One module per subcommand.

pub mod backup;
pub mod demo;
pub mod keygen;
pub mod list;
pub mod prune;
pub mod pull;
pub mod restore;
pub mod status;
pub mod sync;
pub mod systemd;
pub mod verify;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use coffer_core::cancel::CancelFlag;
use signal_hook::consts::{SIGINT, SIGTERM};

/// Turns SIGINT and SIGTERM into a cancellation request, so the operation cleans up (removes
/// its staging directory, rolls back) before exiting. A second signal exits at once.
pub fn cancel_on_signals() -> std::io::Result<CancelFlag> {
    let flag = CancelFlag::new();
    let seen = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the conditional exit must see the state before this signal.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, seen.clone())?;
        signal_hook::flag::register(sig, seen.clone())?;
        signal_hook::flag::register_usize(sig, flag.atomic(), sig as usize)?;
    }
    Ok(flag)
}

/// The age identities to decrypt with: `--identity`, else `encryption.identity_file` (which
/// `COFFER_AGE_IDENTITY_FILE` overrides). `None` when neither is set.
pub fn load_identities(
    config: &coffer_core::config::Config,
    flag: Option<&std::path::Path>,
) -> anyhow::Result<Option<coffer_core::crypto::Identities>> {
    let path = flag.or(config.encryption.identity_file.as_deref());
    Ok(match path {
        Some(p) => {
            Some(coffer_core::crypto::Identities::load(p).map_err(coffer_core::Error::from)?)
        }
        None => None,
    })
}

/// The signature policy of `[signing]` for this run; `allow_unsigned` is `--allow-unsigned`.
/// A trusted key that cannot be loaded is a configuration error (exit 2).
pub fn signature_policy(
    config: &coffer_core::config::Config,
    allow_unsigned: bool,
) -> anyhow::Result<coffer_core::signing::SignaturePolicy> {
    Ok(coffer_core::signing::SignaturePolicy::load(&config.signing)
        .map_err(coffer_core::Error::from)?
        .allowing_unsigned(allow_unsigned))
}

/// What to do about an unsigned backup refused because trusted keys are configured.
pub const ALLOW_UNSIGNED_HINT: &str = "to accept an unsigned backup for this run only, pass --allow-unsigned (a bad signature is never accepted)";

/// Prints the warnings of a run's reporting (run log, metrics, hooks) on stderr.
pub fn print_warnings(warnings: &[String]) {
    for w in warnings {
        crate::output::errln!("warning: {}", coffer_core::redact::redact(w));
    }
}
