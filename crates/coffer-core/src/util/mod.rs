//! Small helpers shared by every layer: files, redaction, sizes.

pub mod fsutil;
pub mod redact;
pub mod units;
