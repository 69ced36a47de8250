//! Mount boundaries: what is mounted below a directory coffer is about to replace, and
//! removing a tree without ever crossing into another mount.
//!
//! A bind mount (`mount --bind /var/backups/coffer /srv/app/workspace/mnt`) keeps the same
//! `st_dev` when both sides are on one filesystem, so paths and device numbers alone do not
//! see it: the mount table (`/proc/self/mountinfo`) and the mount id (`statx`
//! `STATX_MNT_ID`) do.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::util::fsutil;

/// Where the kernel lists this process's mounts.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The mount table is read whole; a few thousand mounts fit many times over.
const MOUNTINFO_MAX: u64 = 16 << 20;

/// The mount points listed in `mountinfo` text (the format of `/proc/self/mountinfo`: the
/// fifth field, with the kernel's octal escapes `\040` (space), `\011`, `\012`, `\134`
/// decoded). Lines too short to hold a mount point are skipped.
pub fn mount_points(mountinfo: &[u8]) -> Vec<PathBuf> {
    mountinfo
        .split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .filter(|field| !field.is_empty())
        .map(|field| PathBuf::from(OsString::from_vec(unescape(field))))
        .collect()
}

/// Decodes the kernel's `\ooo` escapes; anything else is kept as written.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field.get(i + 1..i + 4).filter(|d| {
            field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// The mount points of `mountinfo` strictly below `dir` (a real, absolute path), sorted
/// and without duplicates. Pure.
pub fn mounts_below(mountinfo: &[u8], dir: &Path) -> Vec<PathBuf> {
    let mut below: Vec<PathBuf> = mount_points(mountinfo)
        .into_iter()
        .filter(|m| m != dir && m.starts_with(dir))
        .collect();
    below.sort();
    below.dedup();
    below
}

/// The mount points below `dir` on this system (reads [`MOUNTINFO`], bounded).
pub fn mounts_below_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let text = fsutil::read_bounded(Path::new(MOUNTINFO), MOUNTINFO_MAX)
        .map_err(|e| format!("cannot read the mount table {MOUNTINFO}: {e}"))?;
    Ok(mounts_below(&text, dir))
}

/// Which mount `path` (not followed if a symlink) is on: its device and mount id. Two
/// directories with the same pair are on the same mount, bind mounts included.
pub fn mount_of(path: &Path) -> io::Result<(u64, u64)> {
    use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
    let st = statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::MNT_ID | StatxFlags::INO,
    )?;
    let dev = libc_dev(st.stx_dev_major, st.stx_dev_minor);
    Ok((dev, st.stx_mnt_id))
}

fn libc_dev(major: u32, minor: u32) -> u64 {
    rustix::fs::makedev(major, minor)
}

/// Removes the tree at `path` (a symlink or file is unlinked, never followed) without
/// crossing into another mount: a directory below it that is on another mount (a mount
/// point, a bind mount) is left alone with everything in it, and so are the directories
/// holding it. Returns the mount points left alone (empty when all was removed).
pub fn remove_tree_within_mount(path: &Path) -> io::Result<Vec<PathBuf>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        fs::remove_file(path)?;
        return Ok(Vec::new());
    }
    let home = mount_of(path)?;
    let mut left = Vec::new();
    struct Level {
        dir: PathBuf,
        entries: fs::ReadDir,
        keep: bool,
    }
    let mut stack = vec![Level {
        entries: fs::read_dir(path)?,
        dir: path.to_path_buf(),
        keep: false,
    }];
    while let Some(top) = stack.last_mut() {
        match top.entries.next() {
            Some(entry) => {
                let child = entry?.path();
                let m = match fs::symlink_metadata(&child) {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if !m.is_dir() {
                    match fs::remove_file(&child) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                        _ => continue,
                    }
                }
                if mount_of(&child)? != home {
                    top.keep = true;
                    left.push(child);
                    continue;
                }
                let entries = fs::read_dir(&child)?;
                stack.push(Level {
                    dir: child,
                    entries,
                    keep: false,
                });
            }
            None => {
                let done = stack.pop().expect("a level is on the stack");
                if done.keep {
                    if let Some(parent) = stack.last_mut() {
                        parent.keep = true;
                    }
                } else {
                    fs::remove_dir(&done.dir)?;
                }
            }
        }
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid shared:2 - proc proc rw
40 22 8:1 /var/backups/coffer /srv/app/ws/mnt rw,relatime shared:1 - ext4 /dev/sda1 rw
41 22 0:30 / /srv/app/ws/with\\040space rw - tmpfs tmpfs rw
42 22 0:31 / /srv/app/wsx rw - tmpfs tmpfs rw
43 22 0:32 / /srv/app/ws rw - tmpfs tmpfs rw
44 22 0:33 / /srv/app/ws/a\\134b\\011c\\012d rw - tmpfs tmpfs rw
45 22 0:34 / /srv/app/ws/mnt rw - tmpfs tmpfs rw
short line
";

    #[test]
    fn mount_points_decode_octal_escapes() {
        let points = mount_points(SAMPLE.as_bytes());
        assert_eq!(points.len(), 8);
        assert!(points.contains(&PathBuf::from("/srv/app/ws/with space")));
        assert!(points.contains(&PathBuf::from("/srv/app/ws/a\\b\tc\nd")));
        // Not an escape: kept as written.
        assert_eq!(unescape(b"a\\x41\\9\\"), b"a\\x41\\9\\");
        assert_eq!(unescape(b"\\400"), b"\\400");
    }

    #[test]
    fn mounts_below_a_directory_table() {
        let cases: &[(&str, &[&str])] = &[
            (
                "/srv/app/ws",
                &[
                    "/srv/app/ws/a\\b\tc\nd",
                    "/srv/app/ws/mnt",
                    "/srv/app/ws/with space",
                ],
            ),
            ("/srv/app/ws/mnt", &[]),
            ("/srv/app/wsx", &[]),
            (
                "/srv/app",
                &[
                    "/srv/app/ws",
                    "/srv/app/ws/a\\b\tc\nd",
                    "/srv/app/ws/mnt",
                    "/srv/app/ws/with space",
                    "/srv/app/wsx",
                ],
            ),
            ("/srv/ap", &[]),
            ("/elsewhere", &[]),
        ];
        for (dir, want) in cases {
            let got = mounts_below(SAMPLE.as_bytes(), Path::new(dir));
            let want: Vec<PathBuf> = want.iter().map(PathBuf::from).collect();
            assert_eq!(got, want, "{dir}");
        }
        assert!(mounts_below(b"", Path::new("/")).is_empty());
    }

    #[test]
    fn this_systems_table_is_readable() {
        let below_root = mounts_below_dir(Path::new("/")).unwrap();
        assert!(below_root.iter().any(|m| m == Path::new("/proc")));
    }

    #[test]
    fn removal_within_one_mount_removes_everything_and_never_follows_links() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        let tree = tmp.path().join("tree");
        fs::create_dir_all(tree.join("a/b/c")).unwrap();
        fs::write(tree.join("a/b/c/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        assert!(remove_tree_within_mount(&tree).unwrap().is_empty());
        assert!(!tree.exists());
        assert!(outside.join("keep").exists());
        assert!(remove_tree_within_mount(&tree).unwrap().is_empty());
    }

    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }

    /// A bind mount of a directory on the same filesystem has the same `st_dev`: only the
    /// mount id tells it apart. Removal leaves it and its data alone and reports it.
    #[test]
    fn removal_never_crosses_into_a_bind_mount() {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test bind-mounts a directory and must run as root (CI does)"
        );
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("precious"), "keep").unwrap();
        let tree = tmp.path().join("tree");
        let mnt = tree.join("sub/mnt");
        fs::create_dir_all(&mnt).unwrap();
        fs::write(tree.join("sub/other"), "x").unwrap();
        fs::write(tree.join("top"), "x").unwrap();
        let status = std::process::Command::new("mount")
            .arg("--bind")
            .arg(&data)
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(status.success(), "mount --bind failed");
        let _guard = Unmount(mnt.clone());
        assert_eq!(remove_tree_within_mount(&tree).unwrap(), vec![mnt.clone()]);
        assert_eq!(fs::read_to_string(data.join("precious")).unwrap(), "keep");
        assert!(mnt.join("precious").exists());
        assert!(!tree.join("top").exists() && !tree.join("sub/other").exists());
    }
}
