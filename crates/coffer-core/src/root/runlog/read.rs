//! Reading the run log back, bounded: the log may legitimately grow for years, and anything
//! may sit in its place (a symlink to `/dev/zero`, a fifo, a 50 MB line), so [`read`] takes
//! only the last [`READ_WINDOW`] bytes of a regular file and [`parse`] skips (and counts)
//! lines longer than [`LINE_CAP`].

use std::io;
use std::path::Path;

use super::{RunLogError, RunRecord, path};
use crate::util::fsutil;

/// How much of the end of the run log is read (a nightly backup writes ~0.5 KiB a day, so
/// this is decades of history).
pub const READ_WINDOW: u64 = 8 << 20;

/// The longest run-log line parsed; longer ones are skipped and counted.
pub const LINE_CAP: usize = 64 << 10;

/// The records of a run log, oldest first, and how many lines could not be parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunLog {
    /// The records that parsed, in file (append) order.
    pub records: Vec<RunRecord>,
    /// Lines that did not parse (a torn last line, or damage), ignored.
    pub bad_lines: usize,
    /// Lines longer than [`LINE_CAP`], skipped unread.
    pub long_lines: usize,
    /// Whether the log is longer than [`READ_WINDOW`] and only its end was read.
    pub truncated: bool,
}

/// Reads the run log in `root`: at most its last [`READ_WINDOW`] bytes, from a regular file
/// (a symlink is not followed, a fifo does not block). A missing log is an empty one.
pub fn read(root: &Path) -> Result<RunLog, RunLogError> {
    let path = path(root);
    match fsutil::read_tail(&path, READ_WINDOW) {
        Ok((bytes, truncated)) => Ok(RunLog {
            truncated,
            ..parse(&bytes)
        }),
        Err(e) if e.is_not_found() => Ok(RunLog::default()),
        Err(source) => Err(RunLogError::Refused { path, source }),
    }
}

/// Parses run-log bytes, ignoring blank lines, counting those that do not parse (invalid
/// UTF-8 or JSON) and skipping those longer than [`LINE_CAP`]. Never fails.
pub fn parse(bytes: &[u8]) -> RunLog {
    let mut log = RunLog::default();
    for line in bytes.split(|&b| b == b'\n') {
        if line.len() > LINE_CAP {
            log.long_lines += 1;
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match std::str::from_utf8(line)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            .and_then(|text| serde_json::from_str(text).map_err(io::Error::from))
        {
            Ok(r) => log.records.push(r),
            Err(_) => log.bad_lines += 1,
        }
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::runlog::Operation;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn record(i: u32) -> RunRecord {
        let t = chrono::Utc.with_ymd_and_hms(2026, 11, 20, 3, 0, 0).unwrap()
            + chrono::TimeDelta::minutes(i.into());
        RunRecord::new(Operation::Backup, t).succeeded(t + chrono::TimeDelta::seconds(5))
    }

    #[test]
    fn long_invalid_and_blank_lines_are_counted_not_fatal() {
        let mut bytes = record(1).to_line().into_bytes();
        bytes.extend_from_slice(b"\n   \n");
        bytes.extend(std::iter::repeat_n(b'x', LINE_CAP + 1));
        bytes.push(b'\n');
        bytes.extend_from_slice(b"\xff\xfe{}\n{\"operation\":\"backup\"\n");
        bytes.extend_from_slice(record(2).to_line().as_bytes());
        let log = parse(&bytes);
        assert_eq!(log.records, [record(1), record(2)]);
        assert_eq!((log.bad_lines, log.long_lines), (2, 1));
    }

    #[test]
    fn only_the_end_of_a_huge_log_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![b'y'; (READ_WINDOW + 100) as usize];
        bytes.push(b'\n');
        bytes.extend_from_slice(record(3).to_line().as_bytes());
        std::fs::write(path(dir.path()), &bytes).unwrap();
        let log = read(dir.path()).unwrap();
        assert!(log.truncated);
        assert_eq!(log.records, [record(3)]);
        assert_eq!(log.bad_lines + log.long_lines, 0);
    }

    #[test]
    fn special_files_are_refused_quickly() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", path(dir.path())).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        std::fs::remove_file(path(dir.path())).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path(dir.path()),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("a fifo"), "{e}");
    }

    #[test]
    fn corpus_replays() {
        crate::test_corpus::replay("runlog", |bytes| {
            let log = parse(bytes);
            assert!(log.records.len() <= bytes.len());
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let log = parse(&bytes);
            prop_assert!(log.records.len() + log.bad_lines <= bytes.len() + 1);
        }

        #[test]
        fn valid_logs_round_trip_and_any_cut_keeps_the_whole_lines(
            n in 1u32..12,
            cut in any::<proptest::sample::Index>(),
        ) {
            let records: Vec<RunRecord> = (0..n).map(record).collect();
            let text: String = records.iter().map(RunRecord::to_line).collect();
            prop_assert_eq!(&parse(text.as_bytes()).records, &records);
            // A log cut anywhere (a run killed mid-write) keeps every whole line before it.
            let at = cut.index(text.len());
            let log = parse(&text.as_bytes()[..at]);
            let whole = text[..at].matches('\n').count();
            prop_assert_eq!(&log.records[..whole], &records[..whole]);
            prop_assert!(log.bad_lines <= 1);
        }
    }
}
