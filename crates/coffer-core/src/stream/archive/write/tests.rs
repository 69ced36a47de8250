use std::os::unix::fs::PermissionsExt;

use super::*;

use crate::stream::archive::test_support::{archive, gnu_list, set_mtime, tar_names, write_file};
use crate::stream::archive::{extract_tar, list_tar};

#[test]
fn a_symlinked_root_is_followed_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    write_file(&real.join("f"), b"data", 0o644);
    std::os::unix::fs::symlink(tmp.path(), real.join("up")).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (via_link, stats) = archive(&link, &[]);
    assert_eq!(via_link, archive(&real, &[]).0);
    assert_eq!(tar_names(&via_link), [&b"./"[..], b"f", b"up"]);
    assert_eq!(stats.symlinks, 1);

    let file_root = write_workspace_tar(&real.join("f"), &ArchiveOptions::default(), Vec::new());
    assert!(
        matches!(file_root, Err(ArchiveError::Root { .. })),
        "{file_root:?}"
    );
}

/// A directory whose (device, inode) is forbidden (the backup root, a backup) is
/// refused wherever the walk meets it: as the root, nested, or under another name.
#[test]
fn forbidden_directories_are_refused_by_identity() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    fs::create_dir_all(root.join("a/b/backups")).unwrap();
    fs::write(root.join("a/file"), "x").unwrap();
    let id = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        (m.dev(), m.ino())
    };
    for (forbidden, reached) in [
        (root.join("a/b/backups"), root.join("a/b/backups")),
        (root.join("a"), root.join("a")),
        (root.clone(), root.clone()),
    ] {
        let options = ArchiveOptions {
            forbidden_dirs: vec![(1, 1), id(&forbidden)],
            ..Default::default()
        };
        match write_workspace_tar(&root, &options, Vec::new()) {
            Err(ArchiveError::ContainsBackups { path }) => assert_eq!(path, reached),
            other => panic!("{}: {:?}", forbidden.display(), other.map(|_| ())),
        }
    }
    // Excluded, it is never reached.
    let options = ArchiveOptions {
        exclude: vec!["backups".into()],
        forbidden_dirs: vec![id(&root.join("a/b/backups"))],
    };
    assert!(write_workspace_tar(&root, &options, Vec::new()).is_ok());
}

#[test]
fn excluded_directories_are_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // The unprivileged thread must reach the root.
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(root.join("private/inner")).unwrap();
    write_file(&root.join("ok"), b"ok", 0o644);
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o000)).unwrap();
    let root_buf = root.to_path_buf();
    // Without the exclude, listing `private` fails when not root; with it, nothing
    // tries. Run as an unprivileged thread so the permission check is real.
    let result = as_unprivileged(move || {
        let options = ArchiveOptions {
            exclude: vec!["private".into()],
            ..Default::default()
        };
        let excluded =
            write_workspace_tar(&root_buf, &options, Vec::new()).map(|r| tar_names(&r.0));
        let included = write_workspace_tar(&root_buf, &ArchiveOptions::default(), Vec::new())
            .map(|_| ())
            .map_err(|e| e.to_string());
        (excluded.map_err(|e| e.to_string()), included)
    });
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o755)).unwrap();
    let (excluded, included) = result;
    assert_eq!(excluded.unwrap(), [&b"./"[..], b"ok"]);
    let err = included.unwrap_err();
    assert!(err.starts_with("cannot read workspace directory "), "{err}");
    assert!(err.contains("private: Permission denied"), "{err}");
}

/// Runs `f` on a thread without root's privileges: as root, the thread (only) switches
/// to uid 65534, which drops its capabilities, so permission checks apply to it.
fn as_unprivileged<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        if rustix::process::geteuid().is_root() {
            rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534)).unwrap();
        }
        assert!(!rustix::process::geteuid().is_root());
        f()
    })
    .join()
    .unwrap()
}

#[test]
fn an_unreadable_file_fails_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    fs::create_dir(&root).unwrap();
    // The unprivileged thread must reach the file.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    write_file(&root.join("a.txt"), b"readable", 0o644);
    // Owned by root (mode 0600) when root, or by us with mode 0000 otherwise.
    let secret_mode = if rustix::process::geteuid().is_root() {
        0o600
    } else {
        0o000
    };
    write_file(&root.join("secret"), b"hidden", secret_mode);
    let root_buf = root.clone();
    let err = as_unprivileged(move || {
        write_workspace_tar(&root_buf, &ArchiveOptions::default(), Vec::new())
            .map(|_| ())
            .unwrap_err()
    });
    match &err {
        ArchiveError::ReadWorkspace { kind, path, source } => {
            assert_eq!(*kind, "file");
            assert_eq!(path, &root.join("secret"));
            assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
        }
        other => panic!("unexpected error {other:?}"),
    }
    let message = err.to_string();
    let want = format!(
        "cannot read workspace file {}: Permission denied",
        root.join("secret").display()
    );
    assert!(message.starts_with(&want), "{message}");
}

/// A tar writer over the root of `root`, ready for one more entry.
fn writer_with_root(root: &Path) -> TarWriter<Vec<u8>> {
    let mut tar = TarWriter::new(Vec::new());
    tar.append_dir(Path::new(""), &fs::metadata(root).unwrap())
        .unwrap();
    tar
}

#[test]
fn files_changing_while_archived_keep_the_archive_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    fs::create_dir(&root).unwrap();
    let abs = root.join("f");
    let change = |before: &[u8], after: &[u8], touch: bool| {
        write_file(&abs, before, 0o644);
        let mut file = File::open(&abs).unwrap();
        let stale = file.metadata().unwrap();
        fs::write(&abs, after).unwrap();
        if touch {
            set_mtime(&abs, 1_000_000_000);
        }
        let mut tar = writer_with_root(&root);
        tar.append_open_file(&abs, Path::new("f"), &mut file, &stale)
            .unwrap();
        let (out, stats) = tar.finish().unwrap();
        let listing = list_tar(&out[..]).unwrap();
        assert_eq!(
            (listing.files, listing.file_bytes),
            (1, before.len() as u64)
        );
        assert_eq!(gnu_list(&out), [&b"./"[..], b"f"]);
        let dest = tempfile::tempdir().unwrap();
        extract_tar(&out[..], dest.path()).unwrap();
        (fs::read(dest.path().join("f")).unwrap(), stats.changed)
    };
    let changed = |what: &str| {
        vec![ChangedEntry {
            path: "f".into(),
            change: what.into(),
        }]
    };

    let (data, report) = change(&[b'x'; 10_000], &[b'y'; 100], false);
    assert_eq!(report, changed("shrank while archived"));
    assert_eq!(&data[..100], &[b'y'; 100]);
    assert!(data[100..].iter().all(|b| *b == 0) && data.len() == 10_000);

    let (data, report) = change(&[b'x'; 100], &[b'y'; 10_000], false);
    assert_eq!(report, changed("grew while archived"));
    assert_eq!(data, [b'y'; 100]);

    let (data, report) = change(b"same size", b"SAME SIZE", true);
    assert_eq!(report, changed("modified while archived"));
    assert_eq!(data, b"SAME SIZE");

    // Gone between listing and opening: recorded, not archived.
    let mut tar = writer_with_root(&root);
    tar.append_path_file(&root.join("gone"), Path::new("gone"))
        .unwrap();
    let (out, stats) = tar.finish().unwrap();
    assert_eq!(
        stats.changed,
        vec![ChangedEntry {
            path: "gone".into(),
            change: "vanished".into()
        }]
    );
    assert_eq!(stats.files, 0);
    assert_eq!(tar_names(&out), [b"./"]);
}
