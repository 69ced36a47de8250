//! Checking backups without touching the live system: verify, and the restore drill;
//! flat dump files are recognised and checked here too.

pub mod drill;
pub mod flat;
mod pieces;
pub mod verify;
