//! The backup root: its catalog, lock, run log, retention and prune.

pub mod catalog;
pub mod lock;
pub mod prune;
pub mod retention;
pub mod runlog;
