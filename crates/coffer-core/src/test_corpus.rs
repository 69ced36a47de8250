//! Replays the crash/regression corpora in `fixtures/corpus/<parser>/` (one input per file)
//! through a parser, so every input that once broke one stays a test.

use std::path::PathBuf;

/// The corpus directory of `parser`.
pub fn dir(parser: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/corpus")
        .join(parser)
}

/// Calls `check` with every file of the corpus of `parser` (which must hold at least one),
/// naming the file when it panics.
pub fn replay(parser: &str, check: impl Fn(&[u8])) {
    let dir = dir(parser);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&bytes)));
        assert!(outcome.is_ok(), "corpus file {} panicked", file.display());
    }
}
