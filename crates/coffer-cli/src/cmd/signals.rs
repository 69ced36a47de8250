//! SIGINT and SIGTERM, registered once per process. While an operation runs, the first signal
//! asks it to stop through its [`CancelFlag`] (so it cleans up: removes its staging directory,
//! rolls back) and a second one exits at once; when no operation is running, a signal exits
//! at once, as it would without handlers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use coffer_core::CancelFlag;
use signal_hook::consts::{SIGINT, SIGTERM};

/// What the handlers share with the operations.
#[derive(Clone)]
struct Registration {
    /// Set by a signal: the operation running should stop.
    flag: CancelFlag,
    /// When set, the next signal exits at once with 128 + its number: no operation is
    /// running, or the one running was already asked to stop.
    exit_now: Arc<AtomicBool>,
}

/// The process's registration, made by the first operation that asks for one: registering
/// again would stack a second set of handlers whose exit condition nobody clears.
static REGISTRATION: Mutex<Option<Registration>> = Mutex::new(None);

fn registration() -> std::io::Result<Registration> {
    let mut slot = REGISTRATION.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(r) = slot.as_ref() {
        return Ok(r.clone());
    }
    let r = Registration {
        flag: CancelFlag::new(),
        exit_now: Arc::new(AtomicBool::new(true)),
    };
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the conditional exit must see the state before this signal.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, r.exit_now.clone())?;
        signal_hook::flag::register(sig, r.exit_now.clone())?;
        signal_hook::flag::register_usize(sig, r.flag.atomic(), sig as usize)?;
    }
    *slot = Some(r.clone());
    Ok(r)
}

/// Turns SIGINT and SIGTERM into a cancellation request for the rest of the process, so the
/// operation starting now cleans up before exiting. A second signal exits at once.
pub fn cancel_on_signals() -> std::io::Result<CancelFlag> {
    let r = registration()?;
    r.exit_now.store(false, Ordering::SeqCst);
    Ok(r.flag)
}

/// Runs `operation` with SIGINT and SIGTERM asking it to stop through the flag it is given
/// (a second signal exits at once). Afterwards a signal does what it did before: exit at
/// once, or ask the enclosing operation (a backup that syncs when done) to stop.
pub fn cancellable<T>(
    operation: impl FnOnce(&CancelFlag) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let r = registration().context("cannot install signal handlers")?;
    let idle = r.exit_now.swap(false, Ordering::SeqCst);
    let result = operation(&r.flag);
    if idle {
        r.exit_now.store(true, Ordering::SeqCst);
    }
    result
}
