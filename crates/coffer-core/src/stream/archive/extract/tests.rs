use std::os::unix::fs::MetadataExt;

use super::*;

use crate::stream::archive::list_tar;
use crate::stream::archive::test_support::fresh_dest;
use crate::stream::archive::{ZEROS, pad_len, set_field};

/// A tar stream built header by header, with names written raw to bypass any checks.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn entry(mut self, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) -> Self {
        let mut header = Header::new_gnu();
        set_field(&mut header.as_old_mut().name, name);
        set_field(&mut header.as_old_mut().linkname, link);
        header.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_size(data.len() as u64);
        header.set_entry_type(kind);
        header.set_cksum();
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        self.0
            .extend_from_slice(&ZEROS[..pad_len(data.len() as u64)]);
        self
    }
    fn file(self, name: &[u8], data: &[u8]) -> Self {
        self.entry(name, EntryType::Regular, b"", data)
    }
    fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

#[test]
fn malicious_archives_are_refused_and_write_nothing_outside() {
    let outer = tempfile::tempdir().unwrap();
    let mut case = 0;
    let mut refuse = |build: &dyn Fn(&Path) -> Raw, reason: &str, outside: &[&str]| {
        case += 1;
        let base = outer.path().join(format!("case{case}"));
        fs::create_dir_all(base.join("outside")).unwrap();
        let dest = fresh_dest(&base, "dest");
        let tarball = build(&base).end();
        assert!(
            list_tar(&tarball[..]).is_ok(),
            "case {case} is a well-formed archive"
        );
        match extract_tar(&tarball[..], &dest) {
            Err(ArchiveError::UnsafeEntry { reason: got, .. }) => {
                assert!(
                    got.contains(reason),
                    "case {case}: `{got}` lacks `{reason}`"
                )
            }
            other => panic!("case {case}: {other:?}"),
        }
        for p in outside {
            assert!(
                fs::symlink_metadata(base.join(p)).is_err(),
                "case {case}: {p} exists"
            );
        }
        let mut left: Vec<_> = fs::read_dir(&base)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["dest", "outside"], "case {case}");
        assert_eq!(
            fs::read_dir(base.join("outside")).unwrap().count(),
            0,
            "case {case}"
        );
    };

    refuse(
        &|_| Raw::default().file(b"../evil", b"x"),
        "parent directory (..)",
        &["evil"],
    );
    refuse(
        &|_| Raw::default().file(b"a/../../evil", b"x"),
        "parent directory (..)",
        &["evil"],
    );
    refuse(
        &|base| Raw::default().file(base.join("abs-evil").as_os_str().as_bytes(), b"x"),
        "absolute path",
        &["abs-evil"],
    );
    refuse(
        &|base| {
            Raw::default()
                .entry(
                    b"link",
                    EntryType::Symlink,
                    base.join("outside").as_os_str().as_bytes(),
                    b"",
                )
                .file(b"link/pwned", b"x")
        },
        "would be written through symlink `link`",
        &["outside/pwned"],
    );
    refuse(
        &|_| {
            Raw::default()
                .entry(b"l", EntryType::Symlink, b"..", b"")
                .file(b"l/evil", b"x")
        },
        "would be written through symlink `l`",
        &["evil"],
    );
    refuse(
        &|base| {
            Raw::default()
                .entry(b"a/", EntryType::Directory, b"", b"")
                .entry(
                    b"a/l",
                    EntryType::Symlink,
                    base.join("outside").as_os_str().as_bytes(),
                    b"",
                )
                .entry(b"a/l/x/", EntryType::Directory, b"", b"")
        },
        "would be written through symlink `a/l`",
        &["outside/x"],
    );
    refuse(
        &|_| Raw::default().entry(b"h", EntryType::Link, b"../../etc/passwd", b""),
        "outside the archive",
        &[],
    );
    refuse(
        &|_| Raw::default().entry(b"h", EntryType::Link, b"/etc/passwd", b""),
        "outside the archive",
        &[],
    );
    refuse(
        &|_| Raw::default().entry(b"h", EntryType::Link, b"missing", b""),
        "not a regular file extracted earlier",
        &[],
    );
    refuse(
        &|_| {
            Raw::default()
                .entry(b"s", EntryType::Symlink, b"/etc/passwd", b"")
                .entry(b"h", EntryType::Link, b"s", b"")
        },
        "not a regular file extracted earlier",
        &[],
    );
    refuse(
        &|_| Raw::default().entry(b"dev", EntryType::Char, b"", b""),
        "device file",
        &[],
    );
    refuse(
        &|_| Raw::default().entry(b"blk", EntryType::Block, b"", b""),
        "device file",
        &[],
    );
    refuse(
        &|_| Raw::default().entry(b"fifo", EntryType::Fifo, b"", b""),
        "fifo",
        &[],
    );
    refuse(
        &|_| {
            Raw::default()
                .entry(b"d/", EntryType::Directory, b"", b"")
                .file(b"d", b"x")
        },
        "duplicate entry",
        &[],
    );
    refuse(
        &|_| {
            Raw::default()
                .file(b"f", b"x")
                .entry(b"f/", EntryType::Directory, b"", b"")
        },
        "duplicate entry",
        &[],
    );
    refuse(
        &|_| {
            Raw::default()
                .entry(b"s", EntryType::Symlink, b"t", b"")
                .file(b"s", b"x")
        },
        "duplicate entry",
        &[],
    );
    refuse(
        &|_| Raw::default().file(b"f", b"x").file(b"f/g", b"x"),
        "is a regular file",
        &[],
    );
}

#[test]
fn benign_duplicates_and_implied_directories_extract() {
    let tarball = Raw::default()
        .file(b"./f", b"one")
        .file(b"f", b"two")
        .entry(b"d/", EntryType::Directory, b"", b"")
        .entry(b"d", EntryType::Directory, b"", b"")
        .file(b"x/y//z", b"implied parents")
        .entry(b"x/link", EntryType::Link, b"./x/y/z", b"")
        .end();
    let dest = tempfile::tempdir().unwrap();
    let stats = extract_tar(&tarball[..], dest.path()).unwrap();
    assert_eq!(fs::read(dest.path().join("f")).unwrap(), b"two");
    assert_eq!(
        fs::read(dest.path().join("x/link")).unwrap(),
        b"implied parents"
    );
    assert_eq!(
        fs::metadata(dest.path().join("x")).unwrap().mode() & 0o7777,
        0o700
    );
    assert_eq!(
        fs::metadata(dest.path().join("d")).unwrap().mode() & 0o7777,
        0o755
    );
    assert_eq!((stats.files, stats.directories, stats.hardlinks), (3, 2, 1));

    // The destination must be an empty real directory.
    let err = extract_tar(&tarball[..], dest.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::Destination { .. }), "{err}");
}
