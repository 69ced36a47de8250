//! Checking backups without touching the live system: verify, and the restore drill.

pub mod drill;
pub mod verify;
