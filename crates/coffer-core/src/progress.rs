//! Progress reporting from long operations to whoever displays it.
//!
//! The library only reports; the CLI decides between progress bars (a terminal) and plain
//! log lines (the systemd journal).

use crate::manifest::ArtifactRole;

/// Receives progress from a backup, verify, restore or transfer. Called from worker
/// threads, so implementations must be cheap and thread-safe.
pub trait Progress: Send + Sync {
    /// An artifact stream started.
    fn start(&self, _role: ArtifactRole, _file: &str) {}
    /// `bytes` more bytes of `role` were processed (uncompressed side).
    fn advance(&self, _role: ArtifactRole, _bytes: u64) {}
    /// An artifact stream finished; `summary` is a short human description.
    fn finish(&self, _role: ArtifactRole, _summary: &str) {}
    /// A step of the operation, e.g. `checking database connection`.
    fn step(&self, _text: &str) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {}
