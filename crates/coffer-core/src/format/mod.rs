//! What a backup looks like on disk: names, `manifest.json`, `SHA256SUMS`, signatures.

pub mod manifest;
pub mod names;
pub mod signing;
pub mod sums;
