//! The workspace directory: what may be archived or replaced, mounts, the crash-safe swap.

pub mod boundaries;
pub mod mounts;
pub mod swap;
