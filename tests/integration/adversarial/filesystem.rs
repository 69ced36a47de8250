//! Adversarial tests: filesystem boundaries, the lock, honest exits and output.
//!
//! Each test is one rule of the trust issue with several variants; every variant runs the
//! real binary and looks at what an operator would see (exit code, first error line) and
//! at what must not have changed on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::harness::*;

/// Writes the case's config with another backup root, workspace path and extra top-level
/// settings (paths are written as given: relative, with `..`, through symlinks).
fn config_with(case: &Case, root: &str, workspace: &str, extra: &str) {
    let text = format!(
        "backup_dir = \"{root}\"\n{extra}\n[database]\n{}\n[workspace]\npath = \"{workspace}\"\nexclude = [\"cache/**\"]\n",
        case.db_section()
    );
    std::fs::write(&case.config, text).unwrap();
}

/// The backup directories of a root with everything in them.
fn backups_state(root: &Path) -> BTreeMap<PathBuf, BTreeMap<Vec<u8>, String>> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.map(Result::unwrap) {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() && !name.starts_with('.') {
                m.insert(e.path(), snapshot(&e.path()));
            }
        }
    }
    m
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Rule: nothing coffer needs is inside what it archives. Every overlap of the backup root
/// (or metrics file) and the workspace, however spelled, is a configuration error (exit 2)
/// before anything is written.
#[test]
fn overlapping_backup_root_and_workspace_are_refused_before_anything_is_written() {
    let case = Case::new();
    let d = case.dir.path();
    let ws = path(&case.workspace).to_string();
    std::os::unix::fs::symlink(&case.workspace, d.join("ws-link")).unwrap();
    std::fs::create_dir(d.join("real-parent")).unwrap();
    std::os::unix::fs::symlink(case.workspace.join("inner"), d.join("root-link")).unwrap();
    let dd = path(d).to_string();
    let variants: Vec<(&str, String, String, String)> = vec![
        (
            "root inside workspace",
            format!("{ws}/backups"),
            ws.clone(),
            String::new(),
        ),
        (
            "root equals workspace",
            ws.clone(),
            ws.clone(),
            String::new(),
        ),
        (
            "trailing slash",
            format!("{ws}/"),
            format!("{ws}/"),
            String::new(),
        ),
        (
            "via ..",
            format!("{dd}/real-parent/../workspace/b"),
            ws.clone(),
            String::new(),
        ),
        (
            "via a symlinked workspace",
            format!("{ws}/backups"),
            format!("{dd}/ws-link"),
            String::new(),
        ),
        (
            "via a symlink into the workspace",
            format!("{dd}/ws-link/backups"),
            ws.clone(),
            String::new(),
        ),
        (
            "symlinked root pointing inside (dangling)",
            format!("{dd}/root-link"),
            ws.clone(),
            String::new(),
        ),
        (
            "workspace inside root",
            dd.clone(),
            ws.clone(),
            String::new(),
        ),
        ("root is /", "/".into(), ws.clone(), String::new()),
        (
            "metrics file inside workspace",
            format!("{dd}/backups"),
            ws.clone(),
            format!("metrics_file = \"{ws}/coffer.prom\""),
        ),
    ];
    let before = snapshot(&case.workspace);
    for (what, root, workspace, extra) in &variants {
        config_with(&case, root, workspace, extra);
        for args in [
            &["backup"][..],
            &["restore", "--latest", "--yes"],
            &["prune"],
        ] {
            let out = case.run(args);
            assert_exit(&out, 2);
            let line = error_line(&out);
            assert!(
                line.starts_with("error: configuration refused: ") && line.contains("inside"),
                "{what} {args:?}: {line}"
            );
        }
        assert_eq!(
            snapshot(&case.workspace),
            before,
            "{what}: workspace changed"
        );
        assert!(!case.root.exists(), "{what}: {:?}", case.root_entries());
    }
    // The same through the flag and the environment.
    case.write_config(&case.db_section(), "");
    let out = case.run(&["--backup-dir", &format!("{ws}/backups"), "backup"]);
    assert_exit(&out, 2);
    let out = case
        .coffer()
        .env("BACKUP_DIR", format!("{dd}/ws-link/b"))
        .arg("backup")
        .output()
        .unwrap();
    assert_exit(&out, 2);
    let out = case.run(&["--metrics-file", &format!("{ws}/m.prom"), "backup"]);
    assert_exit(&out, 2);
    assert_eq!(snapshot(&case.workspace), before);
    // And a sane configuration still works.
    case.backup_ok(&[]);
}

/// Reproduction 1 and its class: a restore never replaces a directory that holds (or is
/// inside) the backup root, the backup being restored or the metrics file: exit 6, and
/// every backup is intact.
#[test]
fn restore_targets_holding_coffers_files_are_refused_and_nothing_changes() {
    let case = Case::new();
    let d = case.dir.path().to_path_buf();
    let metrics = d.join("metrics");
    std::fs::create_dir(&metrics).unwrap();
    case.write_config(
        &case.db_section(),
        &format!("metrics_file = \"{}/coffer.prom\"", path(&metrics)),
    );
    let backup = case.backup_ok(&[]);
    std::os::unix::fs::symlink(&case.root, d.join("root-link")).unwrap();
    let before = backups_state(&case.root);
    let root = path(&case.root).to_string();
    let targets = [
        root.clone(),
        format!("{root}/"),
        path(&d).to_string(),
        format!("{root}/restored"),
        format!("{root}/../backups"),
        format!("{}/root-link", path(&d)),
        format!("{}/root-link/new", path(&d)),
        path(&backup).to_string(),
        path(&metrics).to_string(),
        "/".to_string(),
    ];
    for target in &targets {
        for extra in [&["--workspace-only"][..], &[]] {
            let mut args = vec!["restore", "--latest", "--yes", "--target-dir", target];
            args.extend_from_slice(extra);
            let out = case.run(&args);
            assert_exit(&out, 6);
            let line = error_line(&out);
            assert!(
                line.contains("restore refused, nothing was changed")
                    && (line.contains("target") || line.contains("cannot restore into /:")),
                "{target}: {line}"
            );
            assert_eq!(backups_state(&case.root), before, "{target}");
        }
    }
    assert!(metrics.join("coffer.prom").exists());
    // The same refusal for a backup named by its path outside the root.
    let outside = d.join("elsewhere");
    std::fs::create_dir(&outside).unwrap();
    run_ok(Command::new("cp").arg("-a").arg(&backup).arg(&outside));
    let copied = outside.join(backup.file_name().unwrap());
    let out = case.run(&[
        "restore",
        path(&copied),
        "--yes",
        "--workspace-only",
        "--target-dir",
        path(&outside),
    ]);
    assert_exit(&out, 6);
    assert!(copied.join("manifest.json").exists());

    // Reproduction 1: the backup root moved inside the workspace; restore --latest refuses
    // the configuration instead of swapping every backup away.
    let inside = case.workspace.join("backups");
    run_ok(Command::new("cp").arg("-a").arg(&case.root).arg(&inside));
    config_with(&case, path(&inside), path(&case.workspace), "");
    let ws_before = snapshot(&case.workspace);
    let out = case.run(&["restore", "--latest", "--yes"]);
    assert_exit(&out, 2);
    assert_eq!(snapshot(&case.workspace), ws_before);
}

/// Rule: the lock never follows or truncates what is in its place, and an unusable lock is
/// a failure (1), never "another run holds the lock" (3).
#[test]
fn special_files_in_place_of_the_lock_are_refused_and_never_followed() {
    let case = Case::new();
    let victim = case.dir.path().join("victim.txt");
    let lock = case.root.join(".coffer.lock");
    type Make = fn(&Path, &Path);
    let variants: &[(&str, Make, &str)] = &[
        (
            "symlink to a file",
            |l, v| std::os::unix::fs::symlink(v, l).unwrap(),
            "a symbolic link",
        ),
        (
            "symlink to /dev/zero",
            |l, _| std::os::unix::fs::symlink("/dev/zero", l).unwrap(),
            "a symbolic link",
        ),
        (
            "dangling symlink",
            |l, v| std::os::unix::fs::symlink(v.with_extension("missing"), l).unwrap(),
            "a symbolic link",
        ),
        (
            "hard link",
            |l, v| std::fs::hard_link(v, l).unwrap(),
            "other hard links",
        ),
        (
            "fifo",
            |l, _| {
                run_ok(Command::new("mkfifo").arg(l));
            },
            "a fifo",
        ),
        (
            "directory",
            |l, _| std::fs::create_dir(l).unwrap(),
            "a directory",
        ),
    ];
    for (what, make, kind) in variants {
        std::fs::create_dir_all(&case.root).unwrap();
        std::fs::write(&victim, "precious\n").unwrap();
        let _ = std::fs::remove_dir(&lock);
        let _ = std::fs::remove_file(&lock);
        make(&lock, &victim);
        for args in [&["backup"][..], &["prune"]] {
            let out = case.run(args);
            assert_exit(&out, 1);
            let line = error_line(&out);
            assert!(
                line.contains("not coffer's lock file")
                    && line.contains(kind)
                    && line.contains("remove it"),
                "{what} {args:?}: {line}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious\n",
            "{what}"
        );
        assert!(!victim.with_extension("missing").exists(), "{what}");
        assert!(case.backups().is_empty(), "{what}");
    }
    let _ = std::fs::remove_dir(&lock);
    let _ = std::fs::remove_file(&lock);
    case.backup_ok(&[]);
    assert!(std::fs::symlink_metadata(&lock).unwrap().is_file());
}

/// A read-only or permission-denied backup root is a failure of this run (exit 1) whose
/// first line says the root is not writable, not exit 3.
#[test]
fn unwritable_backup_root_is_a_failure_not_a_lock() {
    let case = Case::new();
    case.backup_ok(&[]);
    // Read-only filesystem.
    let ro = case.dir.path().join("ro-root");
    std::fs::create_dir(&ro).unwrap();
    let _mount = mount_tmpfs(&ro, "1m");
    run_ok(Command::new("mount").args(["-o", "remount,ro"]).arg(&ro));
    for args in [&["backup"][..], &["prune"]] {
        let out = case.run(&[&["--backup-dir", path(&ro)][..], args].concat());
        assert_exit(&out, 1);
        let line = error_line(&out);
        assert!(
            line.contains("is not writable") && line.contains("Read-only file system"),
            "{args:?}: {line}"
        );
    }
    // Permission denied: coffer as `nobody` on root's 0700 backup root.
    std::fs::set_permissions(
        case.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    run_ok(Command::new("chmod").args(["a+r"]).arg(&case.config));
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--", COFFER, "--config"])
        .arg(&case.config)
        .arg("prune")
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let line = error_line(&out);
    assert!(
        line.contains("is not writable") && line.contains("Permission denied"),
        "{line}"
    );
}

/// Empty, blank and relative backup roots are configuration errors (exit 2) and nothing is
/// written, least of all into the current directory.
#[test]
fn empty_or_relative_paths_are_refused_and_nothing_is_written() {
    let case = Case::new();
    let cwd = case.dir.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let ws = path(&case.workspace).to_string();
    let run_in_cwd = |args: &[&str], env: Option<(&str, &str)>| -> Output {
        let mut cmd = case.coffer();
        cmd.current_dir(&cwd).args(args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    for root in ["", "   ", "\t", "backups", "./backups", "~/backups"] {
        config_with(&case, root, &ws, "");
        let out = run_in_cwd(&["backup"], None);
        assert_exit(&out, 2);
        let line = error_line(&out);
        assert!(
            line.contains("key `backup_dir`")
                && (line.contains("empty") || line.contains("relative")),
            "{root:?}: {line}"
        );
    }
    config_with(&case, "/x", "workspace", "");
    let out = run_in_cwd(&["backup"], None);
    assert_exit(&out, 2);
    assert!(error_line(&out).contains("key `workspace.path`"));
    case.write_config(&case.db_section(), "");
    // An empty flag value is refused by the argument parser itself (exit 2).
    assert_exit(&run_in_cwd(&["--backup-dir", "", "backup"], None), 2);
    for (args, env) in [
        (&["--backup-dir", " ", "backup"][..], None),
        (&["backup"], Some(("BACKUP_DIR", "  "))),
        (&["backup"], Some(("COFFER_BACKUP_DIR", "\t"))),
    ] {
        let out = run_in_cwd(args, env);
        assert_exit(&out, 2);
        assert!(
            error_line(&out).contains("backup_dir is empty"),
            "{args:?} {env:?}"
        );
    }
    assert!(file_names(&cwd).is_empty(), "{:?}", file_names(&cwd));
    assert!(!case.root.exists());
}

/// A workspace path that is a symlink (or lies below one) backs up and restores: the
/// directory it points to is replaced, the link is kept.
#[test]
fn symlinked_workspace_backs_up_and_restores_keeping_the_link() {
    let case = Case::new();
    let d = case.dir.path();
    let link = d.join("ws-link");
    std::os::unix::fs::symlink(&case.workspace, &link).unwrap();
    std::os::unix::fs::symlink(d, d.join("parent-link")).unwrap();
    let via_parent = d.join("parent-link/workspace");
    let root = path(&case.root).to_string();
    for ws in [&link, &via_parent] {
        config_with(&case, &root, path(ws), "");
        let before = archived_part(snapshot(&case.workspace));
        case.backup_ok(&[]);
        std::fs::write(case.workspace.join("added-later.txt"), "x").unwrap();
        std::fs::remove_file(case.workspace.join("config/app.json")).unwrap();
        let out = case.run(&["restore", "--latest", "--yes", "--workspace-only"]);
        assert_success(&out);
        assert!(
            stdout(&out).contains("that directory is replaced"),
            "{}",
            stdout(&out)
        );
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_link(&link).unwrap(), case.workspace);
        assert_eq!(
            archived_part(snapshot(&case.workspace)),
            before,
            "{}",
            ws.display()
        );
        let leftovers: Vec<String> = file_names(d)
            .into_iter()
            .filter(|n| n.contains("coffer-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// Exit 9 only when something could not be put back: a workspace whose parent does not
/// allow the staging directory is refused in pre-flight (exit 6), nothing changed.
#[test]
fn read_only_parent_of_the_workspace_is_refused_up_front() {
    let case = Case::new();
    let name = case
        .backup_ok(&[])
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let ro = case.dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let _mount = mount_tmpfs(&ro, "4m");
    std::fs::create_dir(ro.join("ws")).unwrap();
    std::fs::write(ro.join("ws/keep.txt"), "mine\n").unwrap();
    run_ok(Command::new("mount").args(["-o", "remount,ro"]).arg(&ro));
    let before = snapshot(&ro);
    let tables = table_fingerprints(&case.db);
    for (target, extra) in [
        (ro.join("ws"), &["--workspace-only"][..]),
        (ro.join("new"), &["--workspace-only"]),
        (ro.join("ws"), &[]),
    ] {
        let mut args = vec!["restore", &name, "--yes", "--target-dir", path(&target)];
        args.extend_from_slice(extra);
        let out = case.run(&args);
        assert_exit(&out, 6);
        let line = error_line(&out);
        assert!(
            line.contains("cannot create the staging directory") && line.contains("Read-only"),
            "{}: {line}",
            target.display()
        );
        assert_eq!(snapshot(&ro), before);
        assert_eq!(table_fingerprints(&case.db), tables);
    }
    // The configured workspace itself on the read-only filesystem.
    config_with(&case, path(&case.root), path(&ro.join("ws")), "");
    let out = case.run(&["restore", &name, "--yes"]);
    assert_exit(&out, 6);
    assert_eq!(snapshot(&ro), before);
    assert_eq!(table_fingerprints(&case.db), tables);
}

/// Runs coffer with its stdout closed before it writes (`| true`, `| head -0`).
fn run_with_closed_stdout(case: &Case, args: &[&str]) -> Output {
    let mut child = case
        .coffer()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    wait_within(child, RUN_LIMIT, "coffer")
}

/// A closed stdout is not a failure of the operation: no panic, the operation's own exit
/// code, and a backup made under `| true` is complete.
#[test]
fn closed_stdout_never_panics_and_keeps_the_operations_exit_code() {
    let case = Case::new();
    let out = run_with_closed_stdout(&case, &["backup"]);
    assert_exit(&out, 0);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let backups = case.backups();
    assert_eq!(backups.len(), 1);
    assert_success(&case.run(&["verify", path(&backups[0])]));
    std::thread::sleep(std::time::Duration::from_secs(2));
    for (args, code) in [
        (&["status", "--max-age", "1s"][..], 10),
        (&["status"], 0),
        (&["status", "--json"], 0),
        (&["list"], 0),
        (&["list", "--json"], 0),
        (&["verify", "--all"], 0),
        (&["prune", "--dry-run"], 0),
        (&["backup", "--json"], 0),
        (&["sync"], 2),
        (&["systemd", "print"], 0),
    ] {
        let out = run_with_closed_stdout(&case, args);
        assert_exit(&out, code);
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(case.backups().len(), 2);
}

/// `--json` on failure: exactly one JSON error object on stdout, with the exit code, and
/// the human line still on stderr.
#[test]
fn json_failures_print_one_error_object() {
    let case = Case::new();
    let backup = case.backup_ok(&[]);
    let check = |args: &[&str], code: i32| {
        let out = case.run(args);
        assert_exit(&out, code);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not one JSON value ({e}):\n{}",
                stdout(&out)
            )
        });
        let err = &v["error"];
        let message = err["message"].as_str().unwrap();
        assert_eq!(err["exit_code"], code, "{args:?}");
        assert!(
            err["details"].is_null() || err["details"].is_string(),
            "{args:?}"
        );
        assert!(error_line(&out).ends_with(message), "{args:?}: {message}");
        message.to_string()
    };
    // Configuration errors, for every command with --json.
    let good = std::fs::read_to_string(&case.config).unwrap();
    std::fs::write(&case.config, "backup_dir = \"\"\n").unwrap();
    for cmd in [
        "backup", "list", "verify", "restore", "prune", "sync", "pull", "status",
    ] {
        let mut args = vec![cmd, "--json"];
        if cmd == "restore" {
            args.extend(["--latest", "--yes"]);
        }
        if cmd == "verify" {
            args.push("--all");
        }
        if cmd == "pull" {
            args.push("--latest");
        }
        let m = check(&args, 2);
        assert!(m.contains("backup_dir"), "{cmd}: {m}");
    }
    std::fs::write(&case.config, good).unwrap();
    // Operation failures.
    let m = check(&["sync", "--json"], 2);
    assert!(m.contains("remote"), "{m}");
    let m = check(
        &[
            "restore",
            "--json",
            "--latest",
            "--yes",
            "--target-dir",
            path(&case.root),
        ],
        6,
    );
    assert!(m.starts_with("restore refused"), "{m}");
    let m = check(&["restore", "--json", "no-such-backup", "--yes"], 1);
    assert!(m.contains("no-such-backup"), "{m}");
    std::fs::remove_file(case.root.join(".coffer.lock")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", case.root.join(".coffer.lock")).unwrap();
    let m = check(&["prune", "--json"], 1);
    assert!(m.contains("not coffer's lock file"), "{m}");
    let m = check(&["backup", "--json"], 1);
    assert!(m.contains("not coffer's lock file"), "{m}");
    assert!(backup.join("manifest.json").exists());
}

/// The restore drill's directory is a new one in the backup root (also when the root is
/// reached through a symlink), never inside the workspace, and it is removed afterwards.
#[test]
fn restore_drill_directory_is_coffers_own_and_never_in_the_workspace() {
    let case = Case::new();
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let d = case.dir.path();
    std::os::unix::fs::symlink(&case.root, d.join("root-link")).unwrap();
    let out = case.run(&[
        "--backup-dir",
        path(&d.join("root-link")),
        "verify",
        &name,
        "--restore-test",
    ]);
    assert_success(&out);
    assert!(stdout(&out).contains("restore test OK"), "{}", stdout(&out));
    assert_eq!(case.root_entries(), [name.as_str()]);

    // A backup lying in the workspace, with no backup root to work in: refused, nothing
    // written into the workspace.
    let inside = case.workspace.join("old-backup");
    run_ok(Command::new("cp").arg("-a").arg(&backup).arg(&inside));
    let before = snapshot(&case.workspace);
    let out = case.run(&[
        "--backup-dir",
        path(&d.join("no-such-root")),
        "verify",
        path(&inside),
        "--restore-test",
    ]);
    assert_exit(&out, 6);
    let line = error_line(&out);
    assert!(
        line.contains("drill directory") && line.contains("inside the workspace"),
        "{line}"
    );
    assert_eq!(snapshot(&case.workspace), before);
}
