//! What follows a run: metrics, notification hooks, and operator hooks.

pub mod hooks;
pub mod metrics;
pub mod notify;
