//! Progress reporting from long operations to whoever displays it: one [`Progress`] trait
//! that receives typed [`Event`]s.
//!
//! The library only reports; the front end decides how to show it (the CLI: progress bars
//! on a terminal, plain log lines for the systemd journal, nothing with `--quiet`).

use crate::check::drill::DrillReport;
use crate::check::verify::VerifyReport;
use crate::format::manifest::ArtifactRole;
use crate::remote::pull::PullReport;
use crate::remote::sync::SyncReport;
use crate::warning::Warning;

/// Something a running operation reports.
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// An artifact stream started.
    ArtifactStarted {
        /// Which artifact.
        role: ArtifactRole,
        /// Its file name.
        file: &'a str,
    },
    /// More of an artifact stream was processed.
    ArtifactAdvanced {
        /// Which artifact.
        role: ArtifactRole,
        /// Bytes processed since the last event (uncompressed side).
        bytes: u64,
    },
    /// An artifact stream finished.
    ArtifactFinished {
        /// Which artifact.
        role: ArtifactRole,
        /// A short human description, e.g. `12 tables, 3.1 MiB`.
        summary: &'a str,
    },
    /// A step of the operation begins, e.g. `checking the database connection`.
    Step(&'a str),
    /// A step completed, e.g. `database restored`.
    Done(&'a str),
    /// Something the operator should know that does not stop the operation.
    Note(&'a str),
    /// The operation's outcome stands, but something around it failed (the run log, the
    /// metrics file, a hook, the prune after a backup) or needs attention.
    Warning(&'a Warning),
    /// The prune after a backup deleted this backup or staging directory.
    Pruned(&'a str),
    /// The checks of one backup are done (verify, one event per backup).
    Verified(&'a VerifyReport),
    /// The restore drill of this backup starts.
    DrillStarted(&'a str),
    /// The restore drill of one backup is done.
    Drilled(&'a DrillReport),
    /// A step of a transfer to or from the remote (an object uploaded, a backup checked).
    Transfer(&'a str),
    /// The sync after a backup is done.
    Synced(&'a SyncReport),
    /// A restore from the remote pulled its backup into the root.
    Pulled(&'a PullReport),
    /// A restore from the remote found its backup (this name) complete in the root
    /// already: nothing is pulled.
    FoundInRoot(&'a str),
}

/// Receives the events of a backup, verify, restore or transfer. Called from worker
/// threads, so implementations must be cheap and thread-safe.
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, event: &Event<'_>);
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _event: &Event<'_>) {}
}

/// Shorthands for the pipelines that report artifact streams.
impl dyn Progress + '_ {
    /// An artifact stream started.
    pub(crate) fn start(&self, role: ArtifactRole, file: &str) {
        self.event(&Event::ArtifactStarted { role, file });
    }

    /// `bytes` more bytes of `role` were processed.
    pub(crate) fn advance(&self, role: ArtifactRole, bytes: u64) {
        self.event(&Event::ArtifactAdvanced { role, bytes });
    }

    /// An artifact stream finished.
    pub(crate) fn finish(&self, role: ArtifactRole, summary: &str) {
        self.event(&Event::ArtifactFinished { role, summary });
    }

    /// A step of the operation begins.
    pub(crate) fn step(&self, text: &str) {
        self.event(&Event::Step(text));
    }
}
