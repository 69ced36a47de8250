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

    /// Fails with `cancelled_error` once cancellation was asked for.
    pub fn check(&self) -> io::Result<()> {
        match self.signal() {
            None => Ok(()),
            Some(_) => Err(cancelled_error()),
        }
    }
}

/// The I/O error pipelines fail with when cancelled.
///
/// Not `ErrorKind::Interrupted`: `write_all`, `read_exact` and most read loops retry on that
/// kind (it means EINTR), so a cancelled stage would be called again forever.
pub fn cancelled_error() -> io::Error {
    io::Error::other(Cancelled)
}

/// Whether `e` is (or wraps) the error of [`cancelled_error`].
#[cfg(test)]
pub fn is_cancelled(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Cancelled>())
}

/// The marker inside [`cancelled_error`].
#[derive(Debug)]
struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled by signal")
    }
}

impl std::error::Error for Cancelled {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A writer that fails with the cancellation error: `write_all` must give up at once.
    struct Stopped;

    impl Write for Stopped {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(cancelled_error())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn cancellation_is_not_retried_as_eintr() {
        let err = Stopped.write_all(b"data").unwrap_err();
        assert!(is_cancelled(&err));
        assert!(!is_cancelled(&io::Error::other("x")));
    }
}
