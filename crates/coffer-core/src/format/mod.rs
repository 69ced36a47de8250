//! What a backup looks like on disk: names, `manifest.json`, `SHA256SUMS`, signatures.

pub mod describe;
pub mod manifest;
pub mod names;
pub mod pieces;
pub mod signing;
pub mod sums;
