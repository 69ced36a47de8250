//! The context every long operation runs in: where it reports progress, and the flag that
//! stops it.

use crate::cancel::CancelFlag;
use crate::progress::{Event, Progress, Silent};

/// Progress and cancellation for one operation, passed to every method of
/// [`crate::Coffer`] that runs long.
#[derive(Clone)]
pub struct RunContext<'a> {
    progress: &'a dyn Progress,
    cancel: CancelFlag,
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
        }
    }

    /// Stops the operation once `cancel` is set (e.g. by a signal handler).
    pub fn with_cancel(mut self, cancel: CancelFlag) -> RunContext<'a> {
        self.cancel = cancel;
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
}

impl Default for RunContext<'static> {
    /// Reports nothing and is never cancelled.
    fn default() -> RunContext<'static> {
        RunContext::new(&Silent)
    }
}
