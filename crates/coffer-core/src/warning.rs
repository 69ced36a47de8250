//! Warnings: what went wrong around an operation without changing its outcome.

use std::fmt;

use crate::root::runlog::Operation;

/// Something that failed or needs attention while the operation's outcome stands.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The run could not be appended to the run log, so the status will not count it.
    RunLog(String),
    /// The metrics file could not be rewritten.
    Metrics(String),
    /// An `on_success` / `on_failure` hook failed.
    Hook {
        /// What failed.
        error: String,
        /// The run the hook reported.
        operation: Operation,
    },
    /// The prune after a successful backup failed; the backup is kept.
    Prune(String),
    /// The sync after a successful backup failed; the backup is kept.
    Sync(String),
    /// The newest backup was chosen passing over backups dated in the future.
    PassedOver(String),
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::RunLog(e) | Warning::Metrics(e) | Warning::PassedOver(e) => f.write_str(e),
            Warning::Hook { error, operation } => {
                write!(f, "{error} (the {operation} itself is not affected)")
            }
            Warning::Prune(e) => write!(f, "prune: {e}"),
            Warning::Sync(e) => write!(
                f,
                "sync failed (the backup itself succeeded and is kept): {e}"
            ),
        }
    }
}
