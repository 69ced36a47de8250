//! Fixtures the archive tests share: files on disk, archives of them, and GNU tar's view.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};

use super::{ArchiveOptions, ArchiveStats, write_workspace_tar};

/// Sets the mtime (and atime) of `path`, a symlink itself rather than its target.
pub(super) fn set_mtime(path: &Path, secs: i64) {
    let time = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

/// Writes a file with `data` and `mode`.
pub(super) fn write_file(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The archive of `root` with `exclude` patterns, and its stats.
pub(super) fn archive(root: &Path, exclude: &[&str]) -> (Vec<u8>, ArchiveStats) {
    let options = ArchiveOptions {
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    write_workspace_tar(root, &options, Vec::new()).unwrap()
}

/// Entry names as the tar crate reads them.
pub(super) fn tar_names(archive: &[u8]) -> Vec<Vec<u8>> {
    let mut ar = tar::Archive::new(archive);
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path_bytes().into_owned())
        .collect()
}

/// Runs GNU tar on `archive` with `args`; asserts it succeeds without a warning.
pub(super) fn gnu_tar(archive: &[u8], args: &[&OsStr]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.tar");
    fs::write(&file, archive).unwrap();
    let out = Command::new("tar")
        .arg("-f")
        .arg(&file)
        .args(args)
        .output()
        .expect("GNU tar on PATH");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Entry names as GNU tar lists them.
pub(super) fn gnu_list(archive: &[u8]) -> Vec<Vec<u8>> {
    let out = gnu_tar(
        archive,
        &["--quoting-style=literal".as_ref(), "-t".as_ref()],
    );
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// A new empty directory `name` under `parent`.
pub(super) fn fresh_dest(parent: &Path, name: &str) -> PathBuf {
    let dest = parent.join(name);
    fs::create_dir(&dest).unwrap();
    dest
}
