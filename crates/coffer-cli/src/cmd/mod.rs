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

/// What to do about an unsigned backup refused because trusted keys are configured.
pub const ALLOW_UNSIGNED_HINT: &str = "to accept an unsigned backup for this run only, pass --allow-unsigned (a bad signature is never accepted)";
