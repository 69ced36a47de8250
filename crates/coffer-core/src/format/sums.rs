//! `SHA256SUMS`: the checksum list next to the manifest, in `sha256sum -c` format.
//!
//! The file comes from the backup root or a bucket, so it is untrusted: it is read bounded
//! ([`SUMS_CAP`]) and parsed strictly. Every line is `<64 hex digits>  <file>` (or
//! `<hex> *<file>`, sha256sum's binary mode), every file a plain name inside the backup
//! directory ([`crate::format::names::check_artifact_file_name`]), and no file is listed twice.

use std::collections::BTreeMap;
use std::path::Path;

use crate::format::manifest::SUMS_FILE;
use crate::util::fsutil::{self, BoundedReadError};

/// The largest `SHA256SUMS` coffer reads (a real one is two lines).
pub const SUMS_CAP: u64 = 256 << 10;

/// Why a checksum list could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SumsError {
    /// The file could not be read (missing, a symlink, not a regular file, too large).
    #[error("cannot read {path}: it {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: BoundedReadError,
    },
    /// A line does not follow the format.
    #[error("invalid {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Which line and why.
        reason: String,
    },
}

impl SumsError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SumsError::Read { source, .. } if source.is_not_found())
    }
}

/// Parses checksum-list bytes into file → lower-case hex digest; `origin` names the file in
/// errors. Blank lines are ignored.
pub fn parse(bytes: &[u8], origin: &str) -> Result<BTreeMap<String, String>, SumsError> {
    let invalid = |reason: String| SumsError::Invalid {
        path: origin.to_string(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| invalid(format!("not UTF-8 text: {e}")))?;
    let mut sums = BTreeMap::new();
    for (i, line) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let (hash, rest) = line
            .split_once(' ')
            .ok_or_else(|| invalid(format!("line {n}: expected `<sha256>  <file>`")))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "line {n}: `{}` is not a SHA-256 in hex",
                hash.chars().take(80).collect::<String>()
            )));
        }
        let file = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or_else(|| {
                invalid(format!(
                    "line {n}: expected two spaces or ` *` after the hash"
                ))
            })?;
        crate::format::names::check_artifact_file_name(file)
            .map_err(|e| invalid(format!("line {n}: {e}")))?;
        if sums
            .insert(file.to_string(), hash.to_ascii_lowercase())
            .is_some()
        {
            return Err(invalid(format!("line {n}: {file:?} is listed twice")));
        }
    }
    Ok(sums)
}

/// Reads and parses `dir/SHA256SUMS` (a regular file of at most [`SUMS_CAP`] bytes).
pub fn read(dir: &Path) -> Result<BTreeMap<String, String>, SumsError> {
    let path = dir.join(SUMS_FILE);
    let origin = path.display().to_string();
    let bytes = fsutil::read_bounded(&path, SUMS_CAP).map_err(|source| SumsError::Read {
        path: origin.clone(),
        source,
    })?;
    parse(&bytes, &origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn formats_table() {
        let text = format!(
            "{}  postgres.sql.gz\n{} *workspace.tar.gz\n\n",
            h('A'),
            h('b')
        );
        let sums = parse(text.as_bytes(), "S").unwrap();
        assert_eq!(sums.len(), 2);
        assert_eq!(sums["postgres.sql.gz"], h('a'));
        assert_eq!(sums["workspace.tar.gz"], h('b'));
        assert!(parse(b"", "S").unwrap().is_empty());
    }

    #[test]
    fn bad_lists_say_why() {
        let cases: Vec<(String, &str)> = vec![
            (format!("{}  ../etc/passwd\n", h('a')), "contains `/`"),
            (format!("{}  /etc/passwd\n", h('a')), "contains `/`"),
            (format!("{}  ..\n", h('a')), "`.` or `..`"),
            (format!("{}  a\rb\n", h('a')), "control character"),
            (format!("{}  manifest.json\n", h('a')), "metadata files"),
            (format!("{}  x\n{}  x\n", h('a'), h('b')), "listed twice"),
            ("abc  x\n".into(), "not a SHA-256"),
            (format!("{}x\n", h('a')), "expected `<sha256>  <file>`"),
            (format!("{} x\n", h('a')), "two spaces"),
            (format!("{}  \n", h('a')), "is empty"),
        ];
        for (text, want) in cases {
            let e = parse(text.as_bytes(), "/b/SHA256SUMS")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("/b/SHA256SUMS") && e.contains(want),
                "{text:?}: {e}"
            );
        }
        let e = parse(b"\xff\xfe", "S").unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn corpus_replays() {
        crate::test_corpus::replay("sha256sums", |bytes| {
            let _ = parse(bytes, "corpus");
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&bytes, "p");
        }

        #[test]
        fn valid_lists_round_trip(
            entries in proptest::collection::btree_map("[a-z0-9._-]{1,30}", "[0-9a-f]{64}", 0..8)
        ) {
            let entries: BTreeMap<String, String> = entries
                .into_iter()
                .filter(|(f, _)| crate::format::names::check_artifact_file_name(f).is_ok())
                .collect();
            let text: String = entries.iter().map(|(f, h)| format!("{h}  {f}\n")).collect();
            prop_assert_eq!(parse(text.as_bytes(), "p").unwrap(), entries);
        }
    }
}
