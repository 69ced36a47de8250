//! Cooperative cancellation (SIGINT/SIGTERM) for long operations.
//!
//! The CLI registers the signal handlers and sets the flag; pipelines check it between
//! chunks and fail with [`cancelled_error`], so their normal cleanup (removing a staging
//! directory, rolling back a transaction) runs instead of the process dying mid-write.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A shared flag: 0 = running, otherwise the number of the signal that asked to stop.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicUsize>);

impl CancelFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared atomic, for signal handlers (`signal_hook::flag::register_usize`).
    pub fn atomic(&self) -> Arc<AtomicUsize> {
        self.0.clone()
    }

    /// Asks the operation to stop; `signal` is recorded for the message (use 0 for none).
    pub fn cancel(&self, signal: usize) {
        self.0.store(signal.max(1), Ordering::SeqCst);
    }

    /// The signal number if cancellation was asked for.
    pub fn signal(&self) -> Option<usize> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Fails with [`cancelled_error`] once cancellation was asked for.
    pub fn check(&self) -> io::Result<()> {
        match self.signal() {
            None => Ok(()),
            Some(_) => Err(cancelled_error()),
        }
    }
}

/// The I/O error pipelines fail with when cancelled.
pub fn cancelled_error() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "cancelled by signal")
}
