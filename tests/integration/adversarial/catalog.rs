//! The backup root's catalog under hostile contents (issue #11): prune deletes only what it
//! positively knows, every metadata read is bounded, artifact names stay inside the backup,
//! and time is checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use coffer_core::{STAGING_MARKER, STAGING_MARKER_TEXT};

use crate::harness::*;

const QUICK: Duration = Duration::from_secs(20);

fn copy_dir(from: &Path, to: &Path) {
    run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

/// Sets the modification time of `path` (and, for a directory, of everything in it) to two
/// days ago, without following symlinks.
fn age(path: &Path) {
    sh(&format!(
        "find '{}' -exec touch -h -d '2 days ago' {{}} +",
        path.display()
    ));
}

fn mkfifo(path: &Path) {
    run_ok(Command::new("mkfifo").arg(path));
}

fn write_json(path: &Path, v: &serde_json::Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

fn dir_listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn prune_deletes_only_what_it_positively_knows_and_lists_the_rest_as_unknown() {
    let case = Case::new();
    let real = case.backup_ok(&["--kind", "auto", "--no-prune"]);
    let root = case.root.clone();
    let legacy_manifest = serde_json::json!({
        "timestamp": "2020-01-01-030000", "alembic_head": HEAD, "db_size": "1 MB",
        "workspace_path": case.workspace.display().to_string(),
    });

    // Positive controls: an expired copy of a coffer backup and an expired, complete legacy
    // backup are deleted.
    copy_dir(&real, &root.join("auto-20200111T030000Z"));
    let legacy_ok = root.join("2020-01-10-030000");
    std::fs::create_dir(&legacy_ok).unwrap();
    std::fs::copy(
        real.join("postgres.sql.gz"),
        legacy_ok.join("postgres.sql.gz"),
    )
    .unwrap();
    write_json(&legacy_ok.join("manifest.json"), &legacy_manifest);

    // Not coffer's, or not positively known: every one must survive.
    let exports = root.join("exports");
    std::fs::create_dir(&exports).unwrap();
    write_json(
        &exports.join("manifest.json"),
        &serde_json::json!({"timestamp": "2020-01-01T00:00:00Z"}),
    );
    std::fs::write(exports.join("report.csv"), "a,b\n1,2\n").unwrap();
    let no_manifest = root.join("2020-01-02-030000");
    std::fs::create_dir(&no_manifest).unwrap();
    std::fs::copy(
        real.join("postgres.sql.gz"),
        no_manifest.join("postgres.sql.gz"),
    )
    .unwrap();
    let incomplete_legacy = root.join("2020-01-03-030000");
    std::fs::create_dir(&incomplete_legacy).unwrap();
    write_json(&incomplete_legacy.join("manifest.json"), &legacy_manifest);
    std::fs::write(incomplete_legacy.join("notes.txt"), "keep me").unwrap();
    let legacy_with_foreign = root.join("2020-01-04-030000");
    copy_dir(&legacy_ok, &legacy_with_foreign);
    std::fs::write(legacy_with_foreign.join("report.csv"), "precious").unwrap();
    let coffer_with_subdir = root.join("auto-20200112T030000Z");
    copy_dir(&real, &coffer_with_subdir);
    std::fs::create_dir(coffer_with_subdir.join("uploads")).unwrap();
    std::fs::write(coffer_with_subdir.join("uploads/x"), "precious").unwrap();
    // A symlink to a directory (a real backup elsewhere): neither deleted nor followed.
    let elsewhere = case.dir.path().join("elsewhere");
    copy_dir(&real, &elsewhere);
    std::os::unix::fs::symlink(&elsewhere, root.join("auto-20200105T030000Z")).unwrap();
    std::fs::write(root.join("auto-20200106T030000Z"), "a file").unwrap();
    std::fs::write(root.join("notes\nwith newline"), "a file").unwrap();
    // Staging-named directories: only the marked one with a coffer name is coffer's.
    let unmarked = root.join(".coffer-staging-auto-20200108T030000Z");
    std::fs::create_dir(&unmarked).unwrap();
    std::fs::write(unmarked.join("data"), "x").unwrap();
    let marked = root.join(".coffer-staging-auto-20200109T030000Z");
    std::fs::create_dir(&marked).unwrap();
    std::fs::write(marked.join(STAGING_MARKER), STAGING_MARKER_TEXT).unwrap();
    let marked_bad_name = root.join(".coffer-staging-exports");
    std::fs::create_dir(&marked_bad_name).unwrap();
    std::fs::write(marked_bad_name.join(STAGING_MARKER), STAGING_MARKER_TEXT).unwrap();
    let forged_marker = root.join(".coffer-staging-pull-auto-20200110T030000Z");
    std::fs::create_dir(&forged_marker).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", forged_marker.join(STAGING_MARKER)).unwrap();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path != real {
            age(&path);
        }
    }
    let unknown = [
        ".coffer-staging-auto-20200108T030000Z",
        ".coffer-staging-exports",
        ".coffer-staging-pull-auto-20200110T030000Z",
        "2020-01-02-030000",
        "2020-01-03-030000",
        "2020-01-04-030000",
        "auto-20200105T030000Z",
        "auto-20200106T030000Z",
        "auto-20200112T030000Z",
        "exports",
        "notes\nwith newline",
    ];
    let contents: Vec<(String, Vec<String>)> = unknown
        .iter()
        .map(|n| {
            let p = root.join(n);
            let listing = if p.is_dir() {
                dir_listing(&p)
            } else {
                Vec::new()
            };
            (n.to_string(), listing)
        })
        .collect();

    let out = run_bounded(&case, &["prune", "--dry-run", "--json"], QUICK);
    assert_success(&out);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<&str> = plan["plan"]["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, unknown, "{}", stdout(&out));

    let out = run_bounded(&case, &["prune"], QUICK);
    assert_success(&out);
    let text = stdout(&out);
    for name in unknown.iter().filter(|n| !n.contains('\n')) {
        let line = text
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not in the prune output:\n{text}"));
        assert!(
            line.starts_with("keep") && line.contains("unknown — left alone"),
            "{line}"
        );
    }
    assert!(text.contains("notes\\nwith newline"), "{text}");
    assert!(text.contains("left alone 11 unknown entries"), "{text}");
    for (name, listing) in &contents {
        let p = root.join(name);
        assert!(std::fs::symlink_metadata(&p).is_ok(), "{name} was deleted");
        if p.is_dir() {
            assert_eq!(&dir_listing(&p), listing, "{name} was changed");
        }
    }
    assert_eq!(
        dir_listing(&elsewhere),
        dir_listing(&real),
        "followed the symlink"
    );
    // What coffer knows is gone: the expired backups and the marked stale staging dir.
    for gone in [
        "auto-20200111T030000Z",
        "2020-01-10-030000",
        ".coffer-staging-auto-20200109T030000Z",
    ] {
        assert!(!root.join(gone).exists(), "{gone} was not deleted:\n{text}");
    }
    assert!(real.is_dir());

    // The prune after a backup leaves them alone too.
    case.backup_ok(&["--kind", "auto"]);
    for (name, _) in &contents {
        assert!(
            std::fs::symlink_metadata(root.join(name)).is_ok(),
            "{name} was deleted"
        );
    }
}

#[test]
fn a_killed_backup_leaves_a_marked_staging_dir_that_prune_removes_when_stale() {
    let case = Case::new();
    case.write_config(
        &case.exec_wrapper("pg_dump \"$@\" | { head -c 100000; sleep 60; }\nexit 0"),
        "",
    );
    let mut child = case
        .coffer()
        .args(["backup", "--quiet", "--kind", "auto"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let staging = || -> Option<PathBuf> {
        std::fs::read_dir(&case.root)
            .ok()?
            .filter_map(Result::ok)
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".coffer-staging-")
            })
            .map(|e| e.path())
    };
    wait_until("the staging directory", Duration::from_secs(30), || {
        staging().is_some_and(|s| s.join(STAGING_MARKER).exists())
    });
    // SIGKILL: no cleanup runs, as when the machine loses power.
    child.kill().unwrap();
    child.wait().unwrap();
    let staging = staging().unwrap();
    assert_eq!(
        std::fs::read_to_string(staging.join(STAGING_MARKER)).unwrap(),
        STAGING_MARKER_TEXT
    );
    case.write_config(&case.db_section(), "");
    let out = run_bounded(&case, &["prune"], QUICK);
    assert_success(&out);
    assert!(staging.exists(), "a fresh staging dir was deleted");
    age(&staging);
    let out = run_bounded(&case, &["prune"], QUICK);
    assert_success(&out);
    assert!(!staging.exists(), "{}", stdout(&out));
    // A published backup does not carry the marker.
    let backup = case.backup_ok(&["--kind", "auto"]);
    assert!(!backup.join(STAGING_MARKER).exists());
}

/// Puts one kind of hostile file at a path.
type MakeHostile = Box<dyn Fn(&Path)>;

/// The kinds of file put in place of a metadata file.
fn hostile_variants() -> Vec<(&'static str, MakeHostile)> {
    vec![
        (
            "symlink to /dev/zero",
            Box::new(|p: &Path| std::os::unix::fs::symlink("/dev/zero", p).unwrap()),
        ),
        (
            "symlink to /dev/urandom",
            Box::new(|p: &Path| std::os::unix::fs::symlink("/dev/urandom", p).unwrap()),
        ),
        ("fifo", Box::new(|p: &Path| mkfifo(p))),
        (
            "50 MB file",
            Box::new(|p: &Path| {
                let f = std::fs::File::create(p).unwrap();
                f.set_len(50 << 20).unwrap();
            }),
        ),
    ]
}

#[test]
fn special_or_giant_metadata_files_are_clear_errors_within_seconds() {
    let case = Case::new();
    let good = case.backup_ok(&["--kind", "manual"]);
    let good_name = good.file_name().unwrap().to_string_lossy().into_owned();
    let mut damaged = Vec::new();
    for (i, file) in ["manifest.json", "SHA256SUMS"].iter().enumerate() {
        for (j, (what, make)) in hostile_variants().into_iter().enumerate() {
            // Manual: never pruned, so every one must still be listed at the end.
            let name = format!("manual-2020010{}T0{j}0000Z", i + 1);
            let dir = case.root.join(&name);
            copy_dir(&good, &dir);
            std::fs::remove_file(dir.join(file)).unwrap();
            make(&dir.join(file));
            damaged.push((name, *file, what));
        }
    }
    for (name, file, what) in &damaged {
        let out = run_bounded(&case, &["verify", name], QUICK);
        assert_exit(&out, 5);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        let want = match *what {
            "fifo" => "a fifo",
            "50 MB file" => "larger than",
            _ => "symbolic link",
        };
        assert!(
            text.contains(file) && text.contains(want),
            "{file} as {what}:\n{text}"
        );
    }
    let out = run_bounded(&case, &["list"], QUICK);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&good_name) && l.contains("complete")),
        "{text}"
    );
    for (name, file, _) in &damaged {
        let line = text.lines().find(|l| l.starts_with(name.as_str())).unwrap();
        if *file == "manifest.json" {
            assert!(line.contains("UNREADABLE"), "{line}");
        }
    }
    let out = run_bounded(&case, &["verify", "--all"], QUICK);
    assert_exit(&out, 5);
    assert!(stdout(&out).contains(&good_name), "{}", stdout(&out));
    for args in [&["prune", "--dry-run"][..], &["prune"], &["status"]] {
        let out = run_bounded(&case, args, QUICK);
        assert!(
            out.status.code().is_some_and(|c| c == 0 || c == 10),
            "{args:?}: {out:?}"
        );
    }
    // The prune after a backup still runs, and the other backups are still listed.
    case.backup_ok(&["--kind", "auto"]);
    let out = run_bounded(&case, &["list", "--json"], QUICK);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), damaged.len() + 2);
}

#[test]
fn a_hostile_run_log_is_a_clear_error_or_read_bounded() {
    let case = Case::new();
    case.backup_ok(&["--kind", "auto"]);
    let log = case.root.join("coffer-runs.jsonl");
    for (what, make) in hostile_variants() {
        std::fs::remove_file(&log).unwrap();
        make(&log);
        let out = run_bounded(&case, &["status"], QUICK);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        match what {
            "50 MB file" => {
                // Only the end is read; one 50 MB line of zeros is no record.
                assert!(text.len() < 4096, "{what}: {} bytes of output", text.len());
                assert!(text.contains("only its end was read"), "{text}");
            }
            "fifo" => {
                assert_exit(&out, 1);
                assert!(
                    text.contains("coffer-runs.jsonl") && text.contains("a fifo"),
                    "{text}"
                );
            }
            _ => {
                assert_exit(&out, 1);
                assert!(
                    text.contains("coffer-runs.jsonl") && text.contains("symbolic link"),
                    "{what}: {text}"
                );
            }
        }
        // A backup never blocks on it, and its prune still runs.
        let out = run_bounded(
            &case,
            &["backup", "--kind", "auto"],
            Duration::from_secs(120),
        );
        assert_success(&out);
        let out = run_bounded(&case, &["prune"], QUICK);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
    }
}

fn rewrite_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut m = manifest(dir);
    edit(&mut m);
    write_json(&dir.join("manifest.json"), &m);
}

#[test]
fn artifact_names_outside_the_backup_directory_are_refused() {
    let case = Case::new();
    let real = case.backup_ok(&["--kind", "manual"]);
    let real_m = manifest(&real);
    let db_file = real_m["artifacts"][0]["file"].as_str().unwrap().to_string();
    // A copy of the real dump outside the backup, with matching hashes in both lists.
    let outside = case.root.join(format!("outside-{db_file}"));
    std::fs::copy(real.join(&db_file), &outside).unwrap();
    let hash = real_m["artifacts"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let names = [
        format!("../outside-{db_file}"),
        outside.display().to_string(),
        format!("sub/{db_file}"),
        format!("{db_file}\nx"),
    ];
    let mut bad = Vec::new();
    for (i, file) in names.iter().enumerate() {
        let name = format!("manual-2020010{}T000000Z", i + 1);
        let dir = case.root.join(&name);
        copy_dir(&real, &dir);
        rewrite_manifest(&dir, |m| m["artifacts"][0]["file"] = file.clone().into());
        let mut sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
        sums = sums.replace(
            &format!("  {db_file}\n"),
            &format!("  {}\n", file.replace('\n', "")),
        );
        std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
        std::fs::remove_file(dir.join(&db_file)).unwrap();
        bad.push(name);
    }
    // SHA256SUMS alone naming a file outside: the manifest is fine, the list is not.
    let sums_only = case.root.join("manual-20200109T000000Z");
    copy_dir(&real, &sums_only);
    std::fs::write(
        sums_only.join("SHA256SUMS"),
        format!("{hash}  ../outside-{db_file}\n"),
    )
    .unwrap();

    for name in &bad {
        let out = run_bounded(&case, &["verify", name], QUICK);
        assert_exit(&out, 5);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(text.contains("artifacts[0].file"), "{name}: {text}");
        let out = run_bounded(
            &case,
            &[
                "restore",
                name,
                "--yes",
                "--db-only",
                "--target-db",
                "never_made",
            ],
            QUICK,
        );
        assert_exit(&out, 5);
    }
    let out = run_bounded(&case, &["verify", "manual-20200109T000000Z"], QUICK);
    assert_exit(&out, 5);
    assert!(stdout(&out).contains("contains `/`"), "{}", stdout(&out));
    let out = run_bounded(&case, &["list"], QUICK);
    for name in &bad {
        let line = stdout(&out)
            .lines()
            .find(|l| l.starts_with(name.as_str()))
            .map(String::from);
        assert!(
            line.is_some_and(|l| l.contains("UNREADABLE")),
            "{}",
            stdout(&out)
        );
    }
    // sync uploads none of them and says so.
    let offsite = case.dir.path().join("offsite");
    case.write_config(
        &case.db_section(),
        &format!("[remote]\nurl = \"file://{}\"\n", offsite.display()),
    );
    let out = run_bounded(&case, &["sync"], Duration::from_secs(120));
    let err = stderr(&out);
    for name in &bad {
        assert!(
            err.contains(&format!("{name}: not uploaded")),
            "{name}:\n{err}"
        );
        assert!(!offsite.join(name).exists(), "{name} was uploaded");
    }
    assert!(outside.exists());
}

#[test]
fn future_dated_backups_are_never_latest_silently() {
    let case = Case::new();
    let real = case.backup_ok(&["--kind", "auto"]);
    let real_name = real.file_name().unwrap().to_string_lossy().into_owned();
    let future = "auto-20991231T235959Z";
    copy_dir(&real, &case.root.join(future));

    let out = run_bounded(&case, &["verify"], Duration::from_secs(120));
    assert_success(&out);
    assert!(stdout(&out).contains(&real_name), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(future) && stderr(&out).contains("clock skew"),
        "{}",
        stderr(&out)
    );
    let out = run_bounded(&case, &["verify", "--latest"], Duration::from_secs(120));
    assert_success(&out);
    assert!(!stdout(&out).contains(future), "{}", stdout(&out));

    let target = case.dir.path().join("restored");
    let out = run_bounded(
        &case,
        &[
            "restore",
            "--latest",
            "--workspace-only",
            "--target-dir",
            target.to_str().unwrap(),
            "--yes",
        ],
        Duration::from_secs(120),
    );
    assert_success(&out);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains(&real_name)
            && all.contains(&format!(
                "passed over 1 backup(s) dated in the future (clock skew?): {future}"
            )),
        "{all}"
    );

    let out = run_bounded(&case, &["list"], QUICK);
    let line = stdout(&out)
        .lines()
        .find(|l| l.starts_with(future))
        .unwrap()
        .to_string();
    assert!(line.contains("future-dated — clock skew?"), "{line}");
    let out = run_bounded(&case, &["prune", "--dry-run"], QUICK);
    let text = stdout(&out);
    let line = text.lines().find(|l| l.contains(future)).unwrap();
    assert!(
        line.starts_with("keep") && line.contains("future-dated — clock skew?"),
        "{text}"
    );
    let line = text.lines().find(|l| l.contains(&real_name)).unwrap();
    assert!(line.contains("newest complete backup"), "{text}");

    // On a remote too: list flags it, pull --latest passes over it.
    let offsite = case.dir.path().join("offsite");
    case.write_config(
        &case.db_section(),
        &format!("[remote]\nurl = \"file://{}\"\n", offsite.display()),
    );
    assert_success(&run_bounded(&case, &["sync"], Duration::from_secs(120)));
    let out = run_bounded(&case, &["list", "--remote"], QUICK);
    let line = stdout(&out)
        .lines()
        .find(|l| l.starts_with(future))
        .unwrap()
        .to_string();
    assert!(line.contains("future-dated — clock skew?"), "{line}");
    let out = run_bounded(&case, &["pull", "--latest"], Duration::from_secs(120));
    assert_success(&out);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains(&format!("{real_name}: already in"))
            && all.contains(&format!("dated in the future (clock skew?): {future}")),
        "{all}"
    );

    // Only future-dated backups: refused with a clear message, not picked.
    std::fs::rename(&real, case.dir.path().join("moved-away")).unwrap();
    let out = run_bounded(&case, &["verify", "--latest"], QUICK);
    assert_exit(&out, 1);
    assert!(
        error_line(&out).contains("not dated in the future") && error_line(&out).contains(future),
        "{}",
        stderr(&out)
    );
}

fn record(outcome: &str, at: &str, error: Option<&str>) -> String {
    let mut v = serde_json::json!({
        "operation": "backup", "outcome": outcome, "started": at, "ended": at,
        "duration_seconds": 0.0, "kind": "auto",
    });
    if let Some(e) = error {
        v["error"] = e.into();
    }
    format!("{v}\n")
}

#[test]
fn status_counts_failures_in_log_order_and_reports_a_future_success_as_skew() {
    let case = Case::new();
    std::fs::create_dir_all(&case.root).unwrap();
    let now = chrono::Utc::now();
    let at = |mins: i64| (now - chrono::TimeDelta::minutes(mins)).to_rfc3339();
    let long_error = format!("pg_dump failed: {}", "x".repeat(60_000));
    let log = [
        record("success", &at(120), None),
        record("success", "2099-12-31T23:59:59Z", None),
        record("failure", &at(30), Some("first failure")),
        record("failure", &at(20), Some("second failure")),
        // Over the line cap (64 KiB) but within the window read: skipped and counted.
        format!("{}\n", "y".repeat(1 << 20)),
        record("failure", &at(10), Some(&long_error)),
    ]
    .concat();
    std::fs::write(case.root.join("coffer-runs.jsonl"), log).unwrap();
    let out = run_bounded(&case, &["status"], QUICK);
    assert_exit(&out, 10);
    let text = stdout(&out);
    let headline = text.lines().next().unwrap();
    assert!(headline.starts_with("CRITICAL: "), "{headline}");
    assert!(
        headline.contains("dated in the future (2099-12-31 23:59:59Z; clock skew?)"),
        "{headline}"
    );
    assert!(headline.contains("3 consecutive failure(s)"), "{headline}");
    assert!(text.contains("… (59516 more bytes)"), "{text}");
    assert_eq!(text.matches("pg_dump failed: xxx").count(), 1, "{text}");
    assert!(text.len() < 4096, "{} bytes of status", text.len());
    assert!(
        text.contains("1 line(s) of the run log are longer than"),
        "{text}"
    );
}

#[test]
fn status_on_a_missing_root_says_the_root_is_missing() {
    let case = Case::new();
    assert!(!case.root.exists());
    let out = run_bounded(&case, &["status"], QUICK);
    assert_exit(&out, 10);
    assert!(
        stdout(&out).starts_with(
            "CRITICAL: no successful backup; the backup root does not exist (check backup_dir);"
        ),
        "{}",
        stdout(&out)
    );
    let out = run_bounded(&case, &["status", "--json"], QUICK);
    assert_exit(&out, 10);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"]["root_missing"], true);
}

#[test]
fn giant_metadata_objects_on_the_remote_are_refused_without_downloading_them() {
    let case = Case::new();
    let real = case.backup_ok(&["--kind", "manual"]);
    let name = real.file_name().unwrap().to_string_lossy().into_owned();
    let offsite = case.dir.path().join("offsite");
    case.write_config(
        &case.db_section(),
        &format!("[remote]\nurl = \"file://{}\"\n", offsite.display()),
    );
    let giant = "manual-20200101T000000Z";
    copy_dir(&real, &case.root.join(giant));
    assert_success(&run_bounded(&case, &["sync"], Duration::from_secs(120)));
    // On the remote: a 50 MB manifest for one backup, a 50 MB SHA256SUMS for the other.
    let set_len = |p: PathBuf| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(50 << 20)
            .unwrap()
    };
    set_len(offsite.join(giant).join("manifest.json"));
    set_len(offsite.join(&name).join("SHA256SUMS"));
    let out = run_bounded(&case, &["list", "--remote"], QUICK);
    assert_success(&out);
    let text = stdout(&out);
    let line = text.lines().find(|l| l.starts_with(giant)).unwrap();
    assert!(
        line.contains("UNREADABLE") && line.contains("larger than"),
        "{text}"
    );
    // Pulling into a fresh root: the giant SHA256SUMS is refused before it is downloaded.
    let fresh = case.dir.path().join("fresh-root");
    std::fs::write(
        &case.config,
        std::fs::read_to_string(&case.config).unwrap().replace(
            &case.root.display().to_string(),
            &fresh.display().to_string(),
        ),
    )
    .unwrap();
    let out = run_bounded(&case, &["pull", &name], QUICK);
    assert_exit(&out, 5);
    assert!(
        error_line(&out).contains("SHA256SUMS is 52428800 bytes"),
        "{}",
        stderr(&out)
    );
    assert!(!fresh.join(&name).exists());
}
