//! Adversarial tests: the workspace swap acts only on what coffer made, never in a
//! directory other users can write, and never across a mount.

use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};

use crate::harness::*;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn backup_name(backup: &Path) -> String {
    backup.file_name().unwrap().to_string_lossy().into_owned()
}

/// Writes `json` as a journal: mode 0600, owned by `uid` (root when 0).
fn plant_journal(journal: &Path, json: &serde_json::Value, uid: u32) {
    std::fs::write(journal, json.to_string()).unwrap();
    std::fs::set_permissions(journal, std::fs::Permissions::from_mode(0o600)).unwrap();
    chown(journal, Some(uid), Some(uid)).unwrap();
}

const NOBODY: u32 = 65534;

/// Rule: a restore journal or leftover beside the target is acted on only if it is
/// provably coffer's; every planted variant is refused (exit 6), naming the file, and
/// nothing is touched: not the victim file, not the workspace, not the planted files.
#[test]
fn planted_restore_journals_are_refused_and_nothing_is_touched() {
    let case = Case::new();
    let name = backup_name(&case.backup_ok(&[]));
    let d = case.dir.path().to_path_buf();
    let journal = d.join(".workspace.coffer-restore.json");
    let old = d.join(".workspace.coffer-old");
    let victim = d.join("victim.txt");
    type Plant = Box<dyn Fn()>;
    let committed = serde_json::json!({
        "phase": "committed", "had_previous": true,
        "keep_previous_as": victim, "backup": "x", "started": "2026-12-02T08:00:00Z"
    });
    let plant_old = {
        let old = old.clone();
        move |uid: u32| {
            std::fs::write(&old, "attacker").unwrap();
            chown(&old, Some(uid), Some(uid)).unwrap();
        }
    };
    let variants: Vec<(&str, &[&str], Plant)> = vec![
        (
            "journal and leftover owned by nobody, kept path elsewhere",
            &["--workspace-only"],
            {
                let (j, c, p) = (journal.clone(), committed.clone(), plant_old.clone());
                Box::new(move || {
                    p(NOBODY);
                    plant_journal(&j, &c, NOBODY);
                })
            },
        ),
        (
            "root's journal, kept path elsewhere",
            &["--workspace-only"],
            {
                let (j, c, p) = (journal.clone(), committed.clone(), plant_old.clone());
                Box::new(move || {
                    p(0);
                    plant_journal(&j, &c, 0);
                })
            },
        ),
        ("journal is a symlink", &["--workspace-only"], {
            let (j, c, d) = (journal.clone(), committed.clone(), d.clone());
            Box::new(move || {
                plant_journal(&d.join("real.json"), &c, 0);
                symlink(d.join("real.json"), &j).unwrap();
            })
        }),
        ("journal readable by all", &["--workspace-only"], {
            let (j, c) = (journal.clone(), committed.clone());
            Box::new(move || {
                plant_journal(&j, &c, 0);
                std::fs::set_permissions(&j, std::fs::Permissions::from_mode(0o644)).unwrap();
            })
        }),
        // Reproduction 2: "swapped" without a previous tree deleted the workspace.
        (
            "phase swapped, had_previous false",
            &["--expect-head", "deadbeef"],
            {
                let j = journal.clone();
                Box::new(move || {
                    let swapped = serde_json::json!({
                        "phase": "swapped", "had_previous": false, "keep_previous_as": null,
                        "backup": "x", "started": "2026-12-02T08:00:00Z"
                    });
                    plant_journal(&j, &swapped, 0);
                })
            },
        ),
        (
            "previous leftover is a symlink to the victim",
            &["--workspace-only"],
            {
                let (o, v) = (old.clone(), victim.clone());
                Box::new(move || symlink(&v, &o).unwrap())
            },
        ),
    ];
    for (what, extra, plant) in variants {
        std::fs::write(&victim, "root's file\n").unwrap();
        plant();
        let ws_before = snapshot(&case.workspace);
        let beside: Vec<String> = file_names(&d);
        let mut args = vec!["restore", &name, "--yes"];
        args.extend_from_slice(extra);
        let out = case.run(&args);
        assert_exit(&out, 6);
        let line = error_line(&out);
        assert!(
            line.contains("restore refused, nothing was changed")
                && (line.contains(path(&journal)) || line.contains(path(&old)))
                && line.contains("inspect it and remove it by hand"),
            "{what}: {line}"
        );
        assert!(!stdout(&out).contains("put back"), "{what}");
        assert_eq!(snapshot(&case.workspace), ws_before, "{what}");
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "root's file\n",
            "{what}"
        );
        assert_eq!(file_names(&d), beside, "{what}");
        for p in [&journal, &old, &d.join("real.json")] {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Rule: coffer stages and swaps only in a directory no other user can write to. A target
/// whose parent is group/world writable or another user's is refused (exit 6) before
/// anything is created, with the reason and the fix; reproduction 1 (a world-writable
/// parent with a planted journal) changes nothing.
#[test]
fn restore_beside_a_directory_others_can_write_is_refused() {
    let case = Case::new();
    let name = backup_name(&case.backup_ok(&[]));
    let d = case.dir.path();
    for (what, mode, owner, reason) in [
        (
            "sticky world-writable like /tmp",
            0o1777,
            0,
            "all users (mode 1777)",
        ),
        ("world-writable", 0o777, 0, "all users (mode 777)"),
        (
            "group-writable",
            0o770,
            0,
            "writable by its group (mode 770)",
        ),
        ("another user's", 0o700, NOBODY, "owned by uid 65534"),
    ] {
        let shared = d.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(mode)).unwrap();
        chown(&shared, Some(owner), None).unwrap();
        for target in [shared.join("inspect"), shared.join("existing")] {
            if target.ends_with("existing") {
                std::fs::create_dir(&target).unwrap();
                std::fs::write(target.join("keep.txt"), "mine").unwrap();
            }
            let before = snapshot(&shared);
            let out = case.run(&[
                "restore",
                &name,
                "--yes",
                "--workspace-only",
                "--target-dir",
                path(&target),
            ]);
            assert_exit(&out, 6);
            let line = error_line(&out);
            assert!(
                line.contains("restore refused, nothing was changed")
                    && line.contains(reason)
                    && line.contains("chmod go-w"),
                "{what}: {line}"
            );
            assert_eq!(snapshot(&shared), before, "{what}");
        }
        std::fs::remove_dir_all(&shared).unwrap();
    }

    // Reproduction 1: nobody plants a leftover and a journal keeping it as root's file.
    let shared = d.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = d.join("victim.txt");
    std::fs::write(&victim, "root's file\n").unwrap();
    let old = shared.join(".inspect.coffer-old");
    std::fs::write(&old, "attacker").unwrap();
    chown(&old, Some(NOBODY), Some(NOBODY)).unwrap();
    let journal = shared.join(".inspect.coffer-restore.json");
    let committed = serde_json::json!({
        "phase": "committed", "had_previous": true,
        "keep_previous_as": victim, "backup": "x", "started": "2026-12-02T08:00:00Z"
    });
    plant_journal(&journal, &committed, NOBODY);
    let before = snapshot(&shared);
    let target = shared.join("inspect");
    let out = case.run(&[
        "restore",
        &name,
        "--yes",
        "--workspace-only",
        "--target-dir",
        path(&target),
    ]);
    assert_exit(&out, 6);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file\n");
    assert_eq!(snapshot(&shared), before);
    assert!(!target.exists());
}

/// Rule: a backup never archives the backups, however the workspace reaches them: a bind
/// mount of the backup root (or of one backup) inside the workspace is refused by
/// identity (device, inode), and nothing is written to the root.
#[test]
fn bind_mounted_backups_inside_the_workspace_are_refused_by_backup() {
    let case = Case::new();
    let _cleanup = UnmountAllUnder(case.dir.path().to_path_buf());
    let first = case.backup_ok(&[]);
    let entries = case.root_entries();
    let states = backup_states(&case);
    for (what, source) in [
        ("the backup root", case.root.clone()),
        ("one backup", first.clone()),
    ] {
        let mnt = case.workspace.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let guard = bind_mount(&source, &mnt);
        let out = case.run(&["backup"]);
        drop(guard);
        std::fs::remove_dir(&mnt).unwrap();
        assert_exit(&out, 1);
        let line = error_line(&out);
        assert!(
            line.contains(path(&mnt)) && line.contains("is the backup root or a backup"),
            "{what}: {line}"
        );
        assert_eq!(case.root_entries(), entries, "{what}");
        assert_eq!(backup_states(&case), states, "{what}");
    }
}

/// Rule: a restore never deletes mounted data: a target with anything mounted below it
/// (a bind mount of another directory, of the backup root, a name with a space) is refused
/// in pre-flight (exit 6) and the mounted data and backups are intact.
#[test]
fn restore_target_with_a_mount_below_it_is_refused() {
    let case = Case::new();
    let _cleanup = UnmountAllUnder(case.dir.path().to_path_buf());
    let backup = case.backup_ok(&[]);
    let name = backup_name(&backup);
    let d = case.dir.path();
    let data = d.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("precious.txt"), "keep\n").unwrap();
    let backups_before = backup_states(&case);
    let variants: [(&str, PathBuf, &str); 3] = [
        ("another directory", data.clone(), "data"),
        ("a name with a space", data.clone(), "with space"),
        ("the backup root", case.root.clone(), "backups-alias"),
    ];
    for (what, source, at) in variants {
        let mnt = case.workspace.join(at);
        std::fs::create_dir(&mnt).unwrap();
        let guard = bind_mount(&source, &mnt);
        // The mounted side is checked on its own below (the run log in the root changes).
        let outside_mount = |snap: std::collections::BTreeMap<Vec<u8>, String>| {
            snap.into_iter()
                .filter(|(k, _)| !k.starts_with(at.as_bytes()))
                .collect::<Vec<_>>()
        };
        let ws_before = outside_mount(snapshot(&case.workspace));
        for args in [
            &["restore", "--latest", "--yes", "--workspace-only"][..],
            &["restore", name.as_str(), "--yes"][..],
        ] {
            let out = case.run(args);
            assert_exit(&out, 6);
            let line = error_line(&out);
            assert!(
                line.contains("mounted below it") && line.contains(path(&mnt)),
                "{what}: {line}"
            );
            assert_eq!(
                outside_mount(snapshot(&case.workspace)),
                ws_before,
                "{what}"
            );
            assert_eq!(backup_states(&case), backups_before, "{what}");
        }
        drop(guard);
        std::fs::remove_dir(&mnt).unwrap();
        assert_eq!(
            std::fs::read_to_string(data.join("precious.txt")).unwrap(),
            "keep\n"
        );
    }
    assert_eq!(backup_states(&case), backups_before);
}

/// Every backup with everything in it.
fn backup_states(case: &Case) -> Vec<(PathBuf, std::collections::BTreeMap<Vec<u8>, String>)> {
    case.backups()
        .into_iter()
        .map(|b| (b.clone(), snapshot(&b)))
        .collect()
}
