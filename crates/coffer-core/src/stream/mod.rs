//! One-pass readers and writers: hashing, gzip, age, the workspace tar, the dump scanner,
//! and an artifact read back with both digests checked.

pub mod archive;
pub mod artifact;
pub mod crypto;
pub mod digest;
pub mod dump_scan;
pub mod parallel_gzip;
pub mod piece_plan;
pub mod piece_reader;
pub mod piece_writer;
