//! The context every long operation runs in: where it reports progress, the flag that
//! stops it, and the runtime its remote part runs on.

use std::future::Future;

use tokio::runtime::Handle;

use crate::cancel::CancelFlag;
use crate::error::{Error, ErrorKind};
use crate::progress::{Event, Progress, Silent};

/// Progress and cancellation for one operation, passed to every method of
/// [`crate::Coffer`] that runs long.
///
/// The blocking methods whose workflow reaches the remote (a backup that syncs when done, a
/// restore from the remote) run that part on a tokio runtime: the one given with
/// [`Self::with_runtime`], else the one the calling thread is in (e.g. inside
/// `tokio::task::spawn_blocking`). coffer starts none of its own.
#[derive(Clone)]
pub struct RunContext<'a> {
    progress: &'a dyn Progress,
    cancel: CancelFlag,
    runtime: Option<Handle>,
}

impl std::fmt::Debug for RunContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("cancel", &self.cancel)
            .finish_non_exhaustive()
    }
}

impl<'a> RunContext<'a> {
    /// Reports to `progress`; stopped only by a flag given with [`Self::with_cancel`].
    pub fn new(progress: &'a dyn Progress) -> RunContext<'a> {
        RunContext {
            progress,
            cancel: CancelFlag::new(),
            runtime: None,
        }
    }

    /// Stops the operation once `cancel` is set (e.g. by a signal handler).
    pub fn with_cancel(mut self, cancel: CancelFlag) -> RunContext<'a> {
        self.cancel = cancel;
        self
    }

    /// Runs the remote part of blocking methods on this (multi-thread) runtime.
    pub fn with_runtime(mut self, runtime: Handle) -> RunContext<'a> {
        self.runtime = Some(runtime);
        self
    }

    /// Where progress goes.
    pub fn progress(&self) -> &'a dyn Progress {
        self.progress
    }

    /// The flag that stops the operation.
    pub fn cancel(&self) -> &CancelFlag {
        &self.cancel
    }

    /// Reports one event.
    pub(crate) fn emit(&self, event: Event<'_>) {
        self.progress.event(&event);
    }

    /// Reports a completed step.
    pub(crate) fn done(&self, text: &str) {
        self.emit(Event::Done(text));
    }

    /// Reports a note.
    pub(crate) fn note(&self, text: &str) {
        self.emit(Event::Note(text));
    }

    /// Reports a step of a transfer to or from the remote.
    pub(crate) fn transfer(&self, text: &str) {
        self.emit(Event::Transfer(text));
    }

    /// Waits for `work` (the remote part of a blocking method) on the context's runtime.
    pub(crate) fn block_on<F: Future>(&self, work: F) -> Result<F::Output, Error> {
        Ok(self.runtime()?.block_on(work))
    }

    /// The runtime the remote part runs on.
    pub(crate) fn runtime(&self) -> Result<Handle, Error> {
        match &self.runtime {
            Some(handle) => Ok(handle.clone()),
            None => Handle::try_current().map_err(|_| {
                Error::new(
                    ErrorKind::Failed,
                    "the remote needs a tokio runtime: give the RunContext one (with_runtime), or call from a thread of one (tokio::task::spawn_blocking)",
                )
            }),
        }
    }
}

impl Default for RunContext<'static> {
    /// Reports nothing and is never cancelled.
    fn default() -> RunContext<'static> {
        RunContext::new(&Silent)
    }
}
