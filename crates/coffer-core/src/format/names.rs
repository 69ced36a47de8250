//! Backup directory names.
//!
//! coffer names a backup `auto-YYYYMMDDTHHMMSSZ` (made by the timer) or
//! `manual-YYYYMMDDTHHMMSSZ` (made by hand), in UTC. The shell scripts coffer replaces
//! named them `YYYY-MM-DD-HHMMSS`; those are recognised as [`BackupKind::Legacy`] so they
//! are listed, pruned by age and restored like any other.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// File name of the run log inside the backup root.
pub const RUN_LOG_FILE: &str = "coffer-runs.jsonl";

/// Prefix of the hidden staging directories a backup or pull is written into.
pub const STAGING_PREFIX: &str = ".coffer-staging-";

/// Who made a backup, which decides how retention treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// Made by the nightly timer (`coffer backup --kind auto`): pruned by retention rules.
    Auto,
    /// Made by hand, e.g. before an upgrade: never pruned automatically.
    Manual,
    /// Made by the shell scripts coffer replaces (`YYYY-MM-DD-HHMMSS`): pruned like auto.
    Legacy,
}

impl BackupKind {
    /// The lower-case word used in names, manifests and output.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Auto => "auto",
            BackupKind::Manual => "manual",
            BackupKind::Legacy => "legacy",
        }
    }
}

impl fmt::Display for BackupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackupKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(BackupKind::Auto),
            "manual" => Ok(BackupKind::Manual),
            "legacy" => Ok(BackupKind::Legacy),
            other => Err(format!(
                "unknown backup kind `{other}` (expected auto or manual)"
            )),
        }
    }
}

/// A backup name that parsed: its kind and the UTC time it encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedName {
    /// Auto, manual or legacy.
    pub kind: BackupKind,
    /// The time in the name (UTC; legacy names are taken as UTC too).
    pub time: DateTime<Utc>,
}

const COFFER_TIME: &str = "%Y%m%dT%H%M%SZ";
const LEGACY_TIME: &str = "%Y-%m-%d-%H%M%S";

/// Formats the directory name of a new backup.
pub fn format_name(kind: BackupKind, time: DateTime<Utc>) -> String {
    match kind {
        BackupKind::Legacy => time.format(LEGACY_TIME).to_string(),
        _ => format!("{}-{}", kind.as_str(), time.format(COFFER_TIME)),
    }
}

/// Parses a backup directory name; `None` when it is not one coffer recognises.
pub fn parse_name(name: &str) -> Option<ParsedName> {
    let (kind, stamp, pattern, len) = if let Some(rest) = name.strip_prefix("auto-") {
        (BackupKind::Auto, rest, COFFER_TIME, 16)
    } else if let Some(rest) = name.strip_prefix("manual-") {
        (BackupKind::Manual, rest, COFFER_TIME, 16)
    } else {
        (BackupKind::Legacy, name, LEGACY_TIME, 17)
    };
    // chrono accepts fields without leading zeros; the fixed length keeps names canonical.
    if stamp.len() != len || !stamp.is_ascii() {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(stamp, pattern).ok()?;
    Some(ParsedName {
        kind,
        time: naive.and_utc(),
    })
}

/// Whether `name` starts like a staging directory (`.coffer-staging-…`). Whether it really
/// is one of coffer's is [`is_staging_name`] plus the marker inside.
pub fn is_staging(name: &str) -> bool {
    name.starts_with(STAGING_PREFIX)
}

/// Whether `name` is exactly a name coffer gives its staging directories:
/// `.coffer-staging-<backup>` (backup), `.coffer-staging-pull-<backup>` (pull),
/// `.coffer-staging-prune-<backup>` (a backup being deleted) or
/// `.coffer-staging-restore-test-<pid>-<YYYYMMDDHHMMSS>` (restore drill).
pub fn is_staging_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(STAGING_PREFIX) else {
        return false;
    };
    if let Some(test) = rest.strip_prefix("restore-test-") {
        return test.split_once('-').is_some_and(|(pid, stamp)| {
            !pid.is_empty()
                && pid.len() <= 10
                && pid.bytes().all(|b| b.is_ascii_digit())
                && stamp.len() == 14
                && NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S").is_ok()
        });
    }
    let backup = rest
        .strip_prefix("pull-")
        .or_else(|| rest.strip_prefix("prune-"))
        .unwrap_or(rest);
    parse_name(backup).is_some()
}

/// How far in the future a backup's time may be before it counts as future-dated (clock
/// skew): a little slack for clocks that differ by seconds between hosts.
pub const FUTURE_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Whether `time` is in the future of `now` beyond [`FUTURE_TOLERANCE`].
pub fn is_future(time: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now.checked_add_signed(FUTURE_TOLERANCE)
        .is_some_and(|limit| time > limit)
}

/// Checks that `name` is a plain file name inside a backup directory, as every artifact and
/// checksum entry must be: not empty, no `/`, not `.` or `..`, no control characters (NUL,
/// newline, …), at most 255 bytes, and not one of the backup's own metadata files.
pub fn check_artifact_file_name(name: &str) -> Result<(), String> {
    let reason = if name.is_empty() {
        "is empty"
    } else if name.contains('/') {
        "contains `/` (artifact names are plain file names inside the backup directory)"
    } else if name == "." || name == ".." {
        "is `.` or `..`"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else if name.len() > 255 {
        "is longer than 255 bytes"
    } else if RESERVED_FILES.contains(&name) {
        "is one of the backup's metadata files"
    } else {
        return Ok(());
    };
    Err(format!("file name {name:?} {reason}"))
}

/// Files of a backup directory that are not artifacts.
pub const RESERVED_FILES: &[&str] = &[
    "manifest.json",
    "SHA256SUMS",
    "manifest.json.minisig",
    "SHA256SUMS.minisig",
];

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_table() {
        let t = |y, mo, d, h, mi, s| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap();
        type Row = (&'static str, Option<(BackupKind, DateTime<Utc>)>);
        let cases: &[Row] = &[
            (
                "auto-20261123T030000Z",
                Some((BackupKind::Auto, t(2026, 11, 23, 3, 0, 0))),
            ),
            (
                "manual-20240229T235959Z",
                Some((BackupKind::Manual, t(2024, 2, 29, 23, 59, 59))),
            ),
            (
                "2025-01-31-041500",
                Some((BackupKind::Legacy, t(2025, 1, 31, 4, 15, 0))),
            ),
            ("auto-20261123T030000", None),
            ("auto-2026113T030000Z", None),
            ("manual-20230229T000000Z", None),
            ("2025-1-31-041500", None),
            ("2025-01-31", None),
            ("backup-20261123T030000Z", None),
            (".coffer-staging-manual-20261123T030000Z", None),
            ("", None),
            ("auto-２0261123T030000Z", None),
        ];
        for (name, want) in cases {
            let got = parse_name(name).map(|p| (p.kind, p.time));
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn format_round_trips() {
        let time = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        for kind in [BackupKind::Auto, BackupKind::Manual, BackupKind::Legacy] {
            let name = format_name(kind, time);
            assert_eq!(parse_name(&name), Some(ParsedName { kind, time }), "{name}");
        }
        assert_eq!(
            format_name(BackupKind::Manual, time),
            "manual-20260102T030405Z"
        );
        assert_eq!(format_name(BackupKind::Legacy, time), "2026-01-02-030405");
    }

    #[test]
    fn staging_names_table() {
        let cases = [
            (".coffer-staging-auto-20261123T030000Z", true),
            (".coffer-staging-manual-20261123T030000Z", true),
            (".coffer-staging-pull-auto-20261123T030000Z", true),
            (".coffer-staging-prune-2025-01-31-041500", true),
            (".coffer-staging-restore-test-4242-20261123030000", true),
            (".coffer-staging-", false),
            (".coffer-staging-exports", false),
            (".coffer-staging-auto-20261123T030000Z-x", false),
            (".coffer-staging-pull-", false),
            (".coffer-staging-restore-test--20261123030000", false),
            (".coffer-staging-restore-test-12-2026112303000", false),
            ("auto-20261123T030000Z", false),
            (".coffer-staging-../auto-20261123T030000Z", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_staging_name(name), want, "{name}");
        }
    }

    #[test]
    fn artifact_file_names_table() {
        let ok = [
            "postgres.sql.gz",
            "workspace.tar.zst.age",
            "a b",
            "..x",
            "x..",
            "é",
        ];
        for name in ok {
            assert_eq!(check_artifact_file_name(name), Ok(()), "{name}");
        }
        let bad = [
            "",
            ".",
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            "x\ny",
            "nul\0",
            "tab\t",
            "manifest.json",
            "SHA256SUMS",
            "SHA256SUMS.minisig",
        ];
        for name in bad {
            assert!(check_artifact_file_name(name).is_err(), "{name:?}");
        }
        assert!(check_artifact_file_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn future_has_a_tolerance() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap();
        assert!(!is_future(now, now));
        assert!(!is_future(now + chrono::TimeDelta::minutes(5), now));
        assert!(is_future(
            now + chrono::TimeDelta::minutes(5) + chrono::TimeDelta::seconds(1),
            now
        ));
        assert!(!is_future(
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MAX_UTC
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn plain_names_never_escape(name in "\\PC{0,40}") {
            if check_artifact_file_name(&name).is_ok() {
                let joined = std::path::Path::new("/b").join(&name);
                proptest::prop_assert_eq!(joined.parent(), Some(std::path::Path::new("/b")));
                proptest::prop_assert!(!name.contains('\n') && !name.contains('\0'));
            }
        }

        #[test]
        fn any_second_round_trips(secs in 0i64..4_102_444_800, auto in proptest::bool::ANY) {
            let time = DateTime::from_timestamp(secs, 0).unwrap();
            let kind = if auto { BackupKind::Auto } else { BackupKind::Manual };
            proptest::prop_assert_eq!(parse_name(&format_name(kind, time)), Some(ParsedName { kind, time }));
        }
    }
}
