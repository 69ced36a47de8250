//! Round trips through all three parts: a tree archived, listed and extracted (and extracted
//! by GNU tar) comes back the same.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rustix::fs::CWD;

use super::test_support::{
    archive, fresh_dest, gnu_list, gnu_tar, set_mtime, tar_names, write_file,
};
use super::*;

fn path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SnapKind {
    Dir,
    File(Vec<u8>),
    Symlink(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Snap {
    kind: SnapKind,
    mode: u32,
    mtime: i64,
    owner: (u32, u32),
}

/// Every directory, file and symlink under `root` (the root itself as `b""`), by relative
/// path; special files are left out.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Snap> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(root).unwrap();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let ft = meta.file_type();
        let (kind, mode) = if ft.is_dir() {
            (SnapKind::Dir, meta.mode() & 0o7777)
        } else if ft.is_symlink() {
            let target = fs::read_link(entry.path()).unwrap();
            (SnapKind::Symlink(target.as_os_str().as_bytes().to_vec()), 0)
        } else if ft.is_file() {
            (
                SnapKind::File(fs::read(entry.path()).unwrap()),
                meta.mode() & 0o7777,
            )
        } else {
            continue;
        };
        let snap = Snap {
            kind,
            mode,
            mtime: meta.mtime(),
            owner: (meta.uid(), meta.gid()),
        };
        out.insert(rel.as_os_str().as_bytes().to_vec(), snap);
    }
    out
}

/// The entry names a correct archive of `root` lists, in order.
fn expected_names(root: &Path) -> Vec<Vec<u8>> {
    let mut names = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes();
        let ft = entry.file_type();
        if entry.depth() == 0 {
            names.push(b"./".to_vec());
        } else if ft.is_dir() {
            names.push([rel, b"/"].concat());
        } else if ft.is_file() || ft.is_symlink() {
            names.push(rel.to_vec());
        }
    }
    names
}

/// Gives every entry a distinct old mtime, so restoring them is actually checked.
fn age_tree(root: &Path) {
    let all = walkdir::WalkDir::new(root).sort_by_file_name();
    for (i, entry) in all.into_iter().enumerate() {
        set_mtime(entry.unwrap().path(), 1_500_000_000 + i as i64 * 7919);
    }
}

#[test]
fn round_trip_keeps_every_kind_of_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    fs::create_dir(&root).unwrap();
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    write_file(&root.join("a/b/c/deep.txt"), b"deep\n", 0o644);
    fs::create_dir(root.join("empty_dir")).unwrap();
    fs::set_permissions(root.join("empty_dir"), fs::Permissions::from_mode(0o750)).unwrap();
    write_file(&root.join("empty.txt"), b"", 0o644);
    let big: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    write_file(&root.join("big.bin"), &big, 0o644);
    write_file(&root.join("secret.txt"), b"s3cret", 0o640);
    write_file(&root.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    std::os::unix::fs::symlink("big.bin", root.join("link_to_file")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink("a/b", root.join("link_to_dir")).unwrap();
    let long_target = "t".repeat(150);
    std::os::unix::fs::symlink(&long_target, root.join("long_target")).unwrap();
    write_file(&root.join("hard1"), b"shared inode", 0o600);
    fs::hard_link(root.join("hard1"), root.join("hard2")).unwrap();
    // A >100-byte name inside a >100-byte path.
    let long_dir = root.join("d".repeat(60));
    fs::create_dir(&long_dir).unwrap();
    write_file(&long_dir.join("n".repeat(120)), b"long name", 0o644);
    // Non-UTF-8 names, one of them starting a long path (its first 100 bytes are not
    // UTF-8 at all).
    write_file(&root.join(path(b"caf\xe9.txt")), b"latin-1", 0o644);
    let odd_dir = root.join(path(b"\xff\xfe"));
    fs::create_dir(&odd_dir).unwrap();
    write_file(&odd_dir.join(path(&[0xe9; 110])), b"odd long", 0o644);
    rustix::fs::mknodat(
        CWD,
        root.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    age_tree(&root);
    if rustix::process::geteuid().is_root() {
        // Owners are restored (as root): give a file, a symlink and a directory others.
        let owner = |p: &str, uid, gid| {
            std::os::unix::fs::lchown(root.join(p), Some(uid), Some(gid)).unwrap()
        };
        owner("secret.txt", 1234, 5678);
        owner("dangling", 4321, 8765);
        owner("empty_dir", 1111, 2222);
    }
    let source = snapshot(&root);

    let (tarball, stats) = archive(&root, &[]);
    assert_eq!(
        stats.skipped,
        vec![SkippedEntry {
            path: "pipe".into(),
            reason: "fifo".into()
        }]
    );
    assert!(stats.changed.is_empty(), "{:?}", stats.changed);
    assert_eq!(stats.hardlinks, 1);
    assert_eq!(stats.symlinks, 4);
    // ./ a a/b a/b/c empty_dir ddd… \xff\xfe
    assert_eq!(stats.directories, 7);
    // deep.txt empty.txt big.bin secret.txt run.sh hard1 nnn… café.txt ééé…
    assert_eq!(stats.files, 9);
    assert_eq!(stats.file_bytes, (1 << 20) + 5 + 6 + 18 + 12 + 9 + 7 + 8);

    // The same tree gives the same bytes.
    assert_eq!(archive(&root, &[]).0, tarball);

    let expected = expected_names(&root);
    assert_eq!(tar_names(&tarball), expected);
    assert_eq!(gnu_list(&tarball), expected);

    let listing = list_tar(&tarball[..]).unwrap();
    assert_eq!(
        listing,
        TarListing {
            files: stats.files,
            directories: stats.directories,
            symlinks: stats.symlinks,
            hardlinks: stats.hardlinks,
            file_bytes: stats.file_bytes,
            entries: expected.len() as u64,
        }
    );

    let dest = fresh_dest(tmp.path(), "restored");
    let extracted = extract_tar(&tarball[..], &dest).unwrap();
    assert_eq!(
        extracted,
        ExtractStats {
            files: stats.files,
            directories: stats.directories,
            symlinks: stats.symlinks,
            hardlinks: stats.hardlinks,
            file_bytes: stats.file_bytes,
        }
    );
    assert_eq!(snapshot(&dest), source);
    assert!(fs::symlink_metadata(dest.join("pipe")).is_err());
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&dest.join("hard1")), ino(&dest.join("hard2")));
    assert_ne!(ino(&dest.join("hard1")), ino(&root.join("hard1")));

    // GNU tar reproduces the same tree from it.
    let gnu_dest = fresh_dest(tmp.path(), "gnu");
    gnu_tar(
        &tarball,
        &["-x".as_ref(), "-C".as_ref(), gnu_dest.as_os_str()],
    );
    assert_eq!(snapshot(&gnu_dest), source);
    assert_eq!(ino(&gnu_dest.join("hard1")), ino(&gnu_dest.join("hard2")));
}

fn name_strategy() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop::sample::select(vec![b'a', b'b', b'.', b'-', b' ', b'\\', 0xff, 0xc3, 0xa9]);
    prop_oneof![
        8 => prop::collection::vec(byte, 1..8),
        1 => (95usize..130).prop_map(|n| vec![b'L'; n]),
    ]
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

#[derive(Debug, Clone)]
enum GenKind {
    Dir(u32),
    File(usize, u8, u32),
    Symlink(Vec<u8>),
    HardLink(prop::sample::Index),
}

fn kind_strategy() -> impl Strategy<Value = GenKind> {
    let mode = prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o640, 0o750, 0o4755]);
    prop_oneof![
        2 => mode.clone().prop_map(|m| GenKind::Dir(m | 0o700)),
        4 => (0usize..70_000, any::<u8>(), mode).prop_map(|(n, seed, m)| GenKind::File(n, seed, m)),
        1 => prop::collection::vec(prop::sample::select(vec![b'a', b'/', b'.', 0xfe]), 1..120)
            .prop_map(GenKind::Symlink),
        1 => any::<prop::sample::Index>().prop_map(GenKind::HardLink),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn random_trees_round_trip(
        spec in prop::collection::vec((any::<prop::sample::Index>(), name_strategy(), kind_strategy()), 0..20)
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        fs::create_dir(&root).unwrap();
        let mut dirs = vec![root.clone()];
        let mut files: Vec<PathBuf> = Vec::new();
        for (parent, name, kind) in spec {
            let p = parent.get(&dirs).join(OsStr::from_bytes(&name));
            if fs::symlink_metadata(&p).is_ok() {
                continue;
            }
            match kind {
                GenKind::Dir(mode) => {
                    fs::create_dir(&p).unwrap();
                    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
                    dirs.push(p);
                }
                GenKind::File(len, seed, mode) => {
                    let data: Vec<u8> = (0..len).map(|i| seed.wrapping_add((i % 251) as u8)).collect();
                    write_file(&p, &data, mode);
                    files.push(p);
                }
                GenKind::Symlink(target) => {
                    std::os::unix::fs::symlink(OsStr::from_bytes(&target), &p).unwrap();
                }
                GenKind::HardLink(which) if !files.is_empty() => {
                    fs::hard_link(which.get(&files), &p).unwrap();
                }
                GenKind::HardLink(_) => {}
            }
        }
        age_tree(&root);
        let source = snapshot(&root);
        let (tarball, stats) = archive(&root, &[]);
        prop_assert!(stats.changed.is_empty() && stats.skipped.is_empty());
        prop_assert_eq!(tar_names(&tarball), expected_names(&root));
        let dest = fresh_dest(tmp.path(), "dest");
        extract_tar(&tarball[..], &dest).unwrap();
        prop_assert_eq!(snapshot(&dest), source);
    }
}
