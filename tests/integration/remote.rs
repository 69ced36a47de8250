//! `coffer sync`, `pull`, `list --remote` and `restore --from-remote` against a real
//! S3-protocol server (s3s-fs on 127.0.0.1, checking signatures) and a `file://` remote.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

fn name_of(backup: &Path) -> String {
    backup.file_name().unwrap().to_string_lossy().into_owned()
}

/// Runs coffer with the test server's credentials (or another secret).
fn run_s3(case: &Case, secret: &str, args: &[&str]) -> Output {
    let mut cmd = case.coffer();
    with_s3_credentials(&mut cmd, secret);
    cmd.args(args).output().unwrap()
}

fn remote_list(case: &Case, secret: &str) -> serde_json::Value {
    let out = run_s3(case, secret, &["list", "--remote", "--json"]);
    assert_success(&out);
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// The status of `name` in a `list --remote --json` listing, if it is listed.
fn remote_status(list: &serde_json::Value, name: &str) -> Option<String> {
    list.as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .map(|b| b["status"]["status"].as_str().unwrap().to_string())
}

/// Changes the database and the workspace after a backup.
fn damage(case: &Case) {
    cluster()
        .psql(
            &case.db,
            "UPDATE users SET display_name = 'changed' WHERE id <= 10; DROP TABLE attachments",
        )
        .unwrap();
    std::fs::write(
        case.workspace.join("uploads/2025/06/report-1.txt"),
        b"edited\n",
    )
    .unwrap();
    std::fs::write(case.workspace.join("added-after-backup.txt"), b"new\n").unwrap();
}

/// Files below `dir` (recursively) named `name`.
fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .map(|rel| dir.join(std::ffi::OsStr::new(&String::from_utf8(rel).unwrap())))
        .filter(|p| p.file_name().is_some_and(|n| n == name))
        .collect()
}

fn file_remote(case: &Case, extra: &str) -> PathBuf {
    let dir = case.dir.path().join("offsite");
    case.write_config(
        &case.db_section(),
        &format!("[remote]\nurl = \"file://{}\"\n{extra}\n", dir.display()),
    );
    dir
}

#[test]
fn s3_sync_then_restore_from_remote_on_a_fresh_root_reproduces_the_original() {
    let server = s3();
    let case = Case::new();
    case.write_config(
        &case.db_section(),
        &server.remote_section(S3_BUCKET, "dr/portal", ""),
    );
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    let name = name_of(&case.backup_ok(&[]));

    let out = run_s3(&case, S3_SECRET, &["sync", "--verify"]);
    assert_success(&out);
    assert!(stdout(&out).contains("1 uploaded"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("read back and verified"),
        "{}",
        stderr(&out)
    );
    // Idempotent: nothing to do the second time.
    let out = run_s3(&case, S3_SECRET, &["sync"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("0 uploaded") && stdout(&out).contains("1 already complete"),
        "{}",
        stdout(&out)
    );
    let list = remote_list(&case, S3_SECRET);
    assert_eq!(remote_status(&list, &name).as_deref(), Some("complete"));
    let remote_dir = server.data.join(S3_BUCKET).join("dr/portal").join(&name);
    assert!(remote_dir.join("manifest.json").is_file());
    let text = stdout(&run_s3(&case, S3_SECRET, &["list", "--remote"]));
    assert!(text.contains(&name) && text.contains("complete"), "{text}");

    // The host is lost: no backup root, the live state differs.
    std::fs::remove_dir_all(&case.root).unwrap();
    damage(&case);
    let out = run_s3(
        &case,
        S3_SECRET,
        &["restore", "--from-remote", "--latest", "--yes"],
    );
    assert_success(&out);
    // Streamed (issue #13): nothing of the backup is written to the root; `pull` is the
    // command that copies it here, and its copy verifies.
    assert!(
        stderr(&out).contains(&format!("{name}: streaming from")),
        "{}",
        stderr(&out)
    );
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);
    assert!(!case.root.join(&name).exists());
    let out = run_s3(&case, S3_SECRET, &["pull", &name]);
    assert_success(&out);
    assert!(
        stderr(&out).contains(&format!("✓ pulled {name}"))
            || stdout(&out).contains(&format!("pulled {name}")),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_success(&case.run(&["verify", &name]));
    assert!(
        !case
            .root_entries()
            .iter()
            .any(|e| e.starts_with(".coffer-staging")),
        "{:?}",
        case.root_entries()
    );
}

#[test]
fn file_remote_sync_pull_verify_restore_with_many_small_parts() {
    let case = Case::new();
    random_file(&case.workspace.join("random.bin"), 6 << 20);
    let offsite = file_remote(&case, "part_size = \"1MiB\"\nconcurrency = 2");
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    let out = case.run(&["sync", "--verify"]);
    assert_success(&out);
    let err = stderr(&out);
    let parts: u64 = err
        .lines()
        .find(|l| l.contains("workspace.tar.gz") && l.contains(" part(s) of 1.0 MiB"))
        .and_then(|l| l.split(" in ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no multipart line in:\n{err}"));
    assert!(parts >= 6, "{parts} parts:\n{err}");
    for f in [
        "postgres.sql.gz",
        "workspace.tar.gz",
        "SHA256SUMS",
        "manifest.json",
    ] {
        assert_eq!(
            std::fs::read(offsite.join(&name).join(f)).unwrap(),
            std::fs::read(backup.join(f)).unwrap(),
            "{f} differs on the remote"
        );
    }

    let original = std::fs::read(backup.join("workspace.tar.gz")).unwrap();
    std::fs::remove_dir_all(&case.root).unwrap();
    let out = case.run(&["pull", &name]);
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("pulled {name}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read(case.root.join(&name).join("workspace.tar.gz")).unwrap(),
        original
    );
    // A second pull finds it complete and downloads nothing.
    let out = case.run(&["pull", "--latest"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("already complete"),
        "{}",
        stdout(&out)
    );
    assert_success(&case.run(&["verify", &name]));
    damage(&case);
    assert_success(&case.run(&["restore", &name, "--yes"]));
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);
}

#[test]
fn s3_multipart_upload_with_many_parts_round_trips_byte_exact() {
    let server = s3();
    let case = Case::new();
    random_file(&case.workspace.join("random.bin"), 23 << 20);
    case.write_config(
        &case.db_section(),
        &server.remote_section(S3_BUCKET, "multipart", "part_size = \"5MiB\""),
    );
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    let out = run_s3(&case, S3_SECRET, &["sync", "--verify"]);
    assert_success(&out);
    assert!(
        stderr(&out).contains("workspace.tar.gz (23.")
            && stderr(&out).contains("in 5 part(s) of 5.0 MiB"),
        "{}",
        stderr(&out)
    );
    let other_root = case.dir.path().join("other-root");
    let other = other_root.to_str().unwrap();
    let out = run_s3(&case, S3_SECRET, &["--backup-dir", other, "pull", &name]);
    assert_success(&out);
    for f in [
        "postgres.sql.gz",
        "workspace.tar.gz",
        "SHA256SUMS",
        "manifest.json",
    ] {
        assert_eq!(
            std::fs::read(other_root.join(&name).join(f)).unwrap(),
            std::fs::read(backup.join(f)).unwrap(),
            "{f} differs after the round trip"
        );
    }
}

#[test]
fn sync_killed_mid_upload_leaves_nothing_complete_and_the_next_sync_finishes() {
    let server = s3();
    let case = Case::new();
    random_file(&case.workspace.join("random.bin"), 40 << 20);
    case.write_config(
        &case.db_section(),
        &server.remote_section(S3_BUCKET, "killed", "part_size = \"5MiB\"\nconcurrency = 1"),
    );
    let name = name_of(&case.backup_ok(&[]));
    let mut cmd = case.coffer();
    with_s3_credentials(&mut cmd, S3_SECRET);
    let mut child = cmd
        .arg("sync")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.upload_in_progress() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "sync finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no multipart upload started");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let remote_dir = server.data.join(S3_BUCKET).join("killed").join(&name);
    assert!(!remote_dir.join("manifest.json").exists());
    assert!(!remote_dir.join("workspace.tar.gz").exists());
    let list = remote_list(&case, S3_SECRET);
    assert_ne!(remote_status(&list, &name).as_deref(), Some("complete"));

    let out = run_s3(&case, S3_SECRET, &["sync"]);
    assert_success(&out);
    assert!(stdout(&out).contains("1 uploaded"), "{}", stdout(&out));
    let list = remote_list(&case, S3_SECRET);
    assert_eq!(remote_status(&list, &name).as_deref(), Some("complete"));
    std::fs::remove_dir_all(&case.root).unwrap();
    assert_success(&run_s3(&case, S3_SECRET, &["pull", "--latest"]));
    assert_success(&case.run(&["verify", &name]));
}

#[test]
fn sigint_mid_upload_stops_the_sync_cleanly_with_exit_130() {
    let server = s3();
    let case = Case::new();
    random_file(&case.workspace.join("random.bin"), 40 << 20);
    case.write_config(
        &case.db_section(),
        &server.remote_section(
            S3_BUCKET,
            "interrupted",
            "part_size = \"5MiB\"\nconcurrency = 1",
        ),
    );
    let name = name_of(&case.backup_ok(&[]));
    let mut cmd = case.coffer();
    with_s3_credentials(&mut cmd, S3_SECRET);
    let mut child = cmd
        .arg("sync")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.upload_in_progress() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "sync finished before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "no multipart upload started");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Seven more parts are to go: the sync sees the signal before the next one.
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{status}: {err}");
    assert!(err.contains("sync interrupted by signal 2"), "{err}");
    let remote_dir = server.data.join(S3_BUCKET).join("interrupted").join(&name);
    assert!(!remote_dir.join("manifest.json").exists());
    assert!(!remote_dir.join("workspace.tar.gz").exists());
    assert!(
        !server.upload_in_progress(),
        "the interrupted multipart upload was not aborted"
    );
    let list = remote_list(&case, S3_SECRET);
    assert_ne!(remote_status(&list, &name).as_deref(), Some("complete"));
}

#[test]
fn server_stopped_mid_upload_fails_clearly_and_nothing_looks_complete() {
    let server = S3Server::start();
    server.create_bucket("stopped");
    let case = Case::new();
    random_file(&case.workspace.join("random.bin"), 40 << 20);
    case.write_config(
        &case.db_section(),
        &server.remote_section(
            "stopped",
            "p",
            "part_size = \"5MiB\"\nconcurrency = 1\nmax_retries = 2\nretry_timeout = 5\ntimeout = 20",
        ),
    );
    let name = name_of(&case.backup_ok(&[]));
    let mut cmd = case.coffer();
    with_s3_credentials(&mut cmd, S3_SECRET);
    let child = cmd
        .arg("sync")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.upload_in_progress() {
        assert!(Instant::now() < deadline, "no multipart upload started");
        std::thread::sleep(Duration::from_millis(1));
    }
    server.stop();
    let out = wait_within(child, RUN_LIMIT, "coffer");
    assert_exit(&out, 12);
    let line = error_line(&out);
    assert!(
        line.contains("remote s3://stopped/p is unavailable") && line.contains("cannot reach"),
        "{line}"
    );
    assert!(!stderr(&out).contains(S3_SECRET));
    let remote_dir = server.data.join("stopped").join("p").join(&name);
    assert!(!remote_dir.join("manifest.json").exists());
    // The run log records the failed sync.
    let log = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("\"operation\":\"sync\"") && l.contains("\"failure\"")),
        "{log}"
    );
    // Back up again: the listing shows nothing complete, and a sync finishes the job.
    server.restart();
    let list = remote_list(&case, S3_SECRET);
    assert_ne!(remote_status(&list, &name).as_deref(), Some("complete"));
    assert_success(&run_s3(&case, S3_SECRET, &["sync"]));
    let list = remote_list(&case, S3_SECRET);
    assert_eq!(remote_status(&list, &name).as_deref(), Some("complete"));
}

#[test]
fn wrong_credentials_and_a_missing_bucket_get_one_clear_line_and_exit_12() {
    let server = s3();
    let case = Case::new();
    case.write_config(
        &case.db_section(),
        &server.remote_section(S3_BUCKET, "auth", "max_retries = 0"),
    );
    case.backup_ok(&[]);
    let wrong = "WrongSecretValue-987654321";
    let out = run_s3(&case, wrong, &["sync"]);
    assert_exit(&out, 12);
    let line = error_line(&out);
    assert!(
        line.contains(&format!("remote s3://{S3_BUCKET}/auth is unavailable"))
            && line.contains("AWS_SECRET_ACCESS_KEY"),
        "{line}"
    );
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains(wrong) && !all.contains(S3_SECRET), "{all}");
    assert!(find_named(&server.data.join(S3_BUCKET), "auth").is_empty());

    case.write_config(
        &case.db_section(),
        &server.remote_section("no-such-bucket", "x", "max_retries = 0"),
    );
    let out = run_s3(&case, S3_SECRET, &["list", "--remote"]);
    assert_exit(&out, 12);
    assert!(
        error_line(&out).contains("does not exist"),
        "{}",
        error_line(&out)
    );

    // No remote configured: a configuration error.
    case.write_config(&case.db_section(), "");
    let out = case.run(&["sync"]);
    assert_exit(&out, 2);
    assert!(
        error_line(&out).contains("remote.url"),
        "{}",
        error_line(&out)
    );
}

#[test]
fn remote_retention_deletes_what_the_policy_says_and_never_the_newest() {
    let case = Case::new();
    let offsite = file_remote(&case, "retention = { keep_days = 0, keep_last = 2 }");
    let newest = case.backup_ok(&["--kind", "auto"]);
    let newest_name = name_of(&newest);
    // Older backups: copies under older names (kind and time come from the name).
    let old = [
        "auto-20200101T000000Z",
        "auto-20200102T000000Z",
        "auto-20200103T000000Z",
        "manual-20200101T000000Z",
    ];
    for n in old {
        sh(&format!(
            "cp -a '{}' '{}'",
            newest.display(),
            case.root.join(n).display()
        ));
    }
    // Without retention, everything goes up.
    let out = case.run(&["sync", "--no-retention"]);
    assert_success(&out);
    assert!(stdout(&out).contains("5 uploaded"), "{}", stdout(&out));
    let remote_names = || {
        let mut v: Vec<String> = std::fs::read_dir(&offsite)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(remote_names().len(), 5);
    // keep_last = 2: the newest auto backups stay, manual ones always; 0101 and 0102 go.
    let out = case.run(&["sync"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("2 deleted from the remote"),
        "{}",
        stdout(&out)
    );
    let mut want = vec![
        "auto-20200103T000000Z".to_string(),
        "manual-20200101T000000Z".to_string(),
        newest_name.clone(),
    ];
    want.sort();
    assert_eq!(remote_names(), want);
    // A local backup the remote rules would delete at once is not uploaded.
    let out = case.run(&["sync"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("2 outside remote retention"),
        "{}",
        stdout(&out)
    );
    assert_eq!(remote_names(), want);

    // Every rule off: only the newest complete auto backup (and manual ones) are kept.
    file_remote(&case, "retention = { keep_days = 0 }");
    assert_success(&case.run(&["sync"]));
    let mut want = vec!["manual-20200101T000000Z".to_string(), newest_name.clone()];
    want.sort();
    assert_eq!(remote_names(), want);
    // An incomplete remote backup (no manifest) is never deleted by retention.
    std::fs::create_dir(offsite.join("auto-20190101T000000Z")).unwrap();
    std::fs::write(offsite.join("auto-20190101T000000Z/postgres.sql.gz"), b"x").unwrap();
    assert_success(&case.run(&["sync"]));
    assert!(
        offsite
            .join("auto-20190101T000000Z/postgres.sql.gz")
            .exists()
    );
}

#[test]
fn a_tampered_remote_artifact_is_caught_by_pull_and_nothing_is_put_in_place() {
    let case = Case::new();
    let offsite = file_remote(&case, "");
    let name = name_of(&case.backup_ok(&[]));
    assert_success(&case.run(&["sync"]));
    // Same size, one byte changed, in the middle of the dump.
    let artifact = offsite.join(&name).join("postgres.sql.gz");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    std::fs::remove_dir_all(&case.root).unwrap();

    let out = case.run(&["pull", &name]);
    assert_exit(&out, 5);
    let line = error_line(&out);
    assert!(
        line.contains(&format!("backup {name} pulled from"))
            && line.contains("sha256")
            && line.contains("nothing was put into the backup root"),
        "{line}"
    );
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());
    // A remote artifact of another size than its manifest says is damage too.
    std::fs::write(&artifact, &bytes[..mid]).unwrap();
    let out = case.run(&["pull", &name]);
    assert_exit(&out, 5);
    assert!(
        error_line(&out).contains(&format!("size is {mid}")),
        "{}",
        error_line(&out)
    );
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());
    // restore --from-remote stops there too, changing nothing.
    let tables = table_fingerprints(&case.db);
    let out = case.run(&["restore", "--from-remote", &name, "--yes"]);
    assert_exit(&out, 5);
    assert_eq!(table_fingerprints(&case.db), tables);
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());
}

#[test]
fn backup_sync_reports_a_failed_sync_without_failing_the_backup() {
    let case = Case::new();
    // Nothing listens on port 1.
    let metrics = case.dir.path().join("coffer.prom");
    case.write_config(
        &case.db_section(),
        &(format!("metrics_file = \"{}\"\n", metrics.display())
            + "[remote]\nurl = \"s3://b/p\"\nendpoint = \"http://127.0.0.1:1\"\nallow_http = true\nregion = \"us-east-1\"\nmax_retries = 0\n"),
    );
    let mut cmd = case.coffer();
    with_s3_credentials(&mut cmd, S3_SECRET);
    let out = cmd.args(["backup", "--sync"]).output().unwrap();
    assert_success(&out);
    assert!(
        stderr(&out).contains("warning: sync failed (the backup itself succeeded"),
        "{}",
        stderr(&out)
    );
    assert_eq!(case.backups().len(), 1);
    let log = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    let ops: Vec<(String, String)> = log
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["operation"].as_str().unwrap().to_string(),
                v["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        ops.contains(&("backup".into(), "success".into())),
        "{ops:?}"
    );
    assert!(ops.contains(&("sync".into(), "failure".into())), "{ops:?}");
    // Status and metrics show it.
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(prom.contains("\ncoffer_last_sync_success 0\n"), "{prom}");
    assert!(prom.contains("\ncoffer_last_run_success 1\n"), "{prom}");
    let status = stdout(&case.run(&["status"]));
    assert!(
        status.contains("last sync:            failure at") && status.contains("never succeeded"),
        "{status}"
    );

    // remote.sync_after_backup with a reachable remote: the backup is on it afterwards.
    // (Backup names have one-second resolution.)
    std::thread::sleep(Duration::from_millis(1100));
    let offsite = file_remote(&case, "sync_after_backup = true");
    let name = name_of(&case.backup_ok(&[]));
    assert!(offsite.join(&name).join("manifest.json").is_file());
}

#[test]
fn legacy_shell_script_backups_are_synced_manifest_last_and_pulled_back() {
    let case = Case::new();
    // The remote keeps everything (a 2025 legacy backup is older than keep_days).
    let offsite = file_remote(&case, "retention = { keep_days = 0, keep_last = 10 }");
    let name = "2025-06-01-030000";
    let dir = case.root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let env: String = cluster()
        .env(&case.db)
        .iter()
        .map(|(k, v)| format!("{k}='{v}' "))
        .collect();
    sh(&format!(
        "cd {d} && {env} pg_dump --clean --if-exists {db} | gzip > postgres.sql.gz && \
         printf '{{\"timestamp\": \"2025-06-01T03:00:00Z\", \"alembic_head\": \"{HEAD}\", \"db_size\": \"12 MB\"}}' > manifest.json",
        d = dir.display(),
        db = case.db,
    ));
    let out = case.run(&["sync", "--verify"]);
    assert_success(&out);
    assert!(stdout(&out).contains("1 uploaded"), "{}", stdout(&out));
    let list = remote_list(&case, S3_SECRET);
    assert_eq!(remote_status(&list, name).as_deref(), Some("legacy"));
    assert_eq!(
        std::fs::read(offsite.join(name).join("postgres.sql.gz")).unwrap(),
        std::fs::read(dir.join("postgres.sql.gz")).unwrap()
    );
    std::fs::remove_dir_all(&case.root).unwrap();
    let out = case.run(&["pull", name]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("note: not checked"),
        "{}",
        stdout(&out)
    );
    assert_success(&case.run(&["verify", name]));
}

/// Every file below `dir` (recursively) with its content; none when `dir` is gone.
fn files_below(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    if !dir.exists() {
        return Default::default();
    }
    walk(dir)
        .into_iter()
        .map(|rel| dir.join(std::ffi::OsStr::new(&String::from_utf8(rel).unwrap())))
        .filter(|p| p.is_file())
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// Issue #11, reproduction 3 on the remote: with remote retention that would delete every
/// one of them, folders that are not provably coffer's complete backups keep every object and
/// are reported as unknown; a genuine old backup is pruned and loses exactly its objects.
/// `remote` is where the remote's objects are on disk, `run` runs coffer against it.
fn remote_retention_leaves_unknown_folders_whole(
    case: &Case,
    remote: &Path,
    run: &dyn Fn(&[&str]) -> Output,
) {
    let newest = case.backup_ok(&["--kind", "auto"]);
    let newest_name = name_of(&newest);
    let genuine_old = "auto-20200101T000000Z";
    sh(&format!(
        "cp -a '{}' '{}'",
        newest.display(),
        case.root.join(genuine_old).display()
    ));
    let out = run(&["sync", "--no-retention"]);
    assert_success(&out);
    assert!(stdout(&out).contains("2 uploaded"), "{}", stdout(&out));
    let genuine = remote.join(&newest_name);
    let plant = |name: &str, extra: &[(&str, &[u8])]| {
        let d = remote.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for (file, content) in extra {
            std::fs::write(d.join(file), content).unwrap();
        }
        d
    };
    let copy_of_genuine = |name: &str| {
        sh(&format!(
            "cp -a '{}' '{}'",
            genuine.display(),
            remote.join(name).display()
        ));
        remote.join(name)
    };
    let legacy_manifest: &[u8] = br#"{"timestamp":"2020-01-01-000000"}"#;
    // The reviewer's folder.
    plant(
        "exports",
        &[
            ("manifest.json", legacy_manifest),
            ("postgres.sql.gz", b"dump"),
            ("report.csv", b"a,b\n1,2\n"),
        ],
    );
    // A legacy-named folder with an extra file.
    plant(
        "2020-01-02-000000",
        &[
            ("manifest.json", legacy_manifest),
            ("postgres.sql.gz", b"dump"),
            ("notes.txt", b"keep me"),
        ],
    );
    // A coffer-named, complete backup with an extra object (at the top and deeper down).
    let extra = copy_of_genuine("auto-20200103T000000Z");
    std::fs::write(extra.join("report.csv"), b"mine").unwrap();
    // A folder not named like a backup, holding a complete coffer backup dated 2020.
    let misnamed = copy_of_genuine("backups-old");
    sh(&format!(
        "sed -i -E 's/\"created_at\": *\"[^\"]*\"/\"created_at\": \"2020-01-05T00:00:00Z\"/' '{}/manifest.json'",
        misnamed.display()
    ));
    // Future-dated: by its name, and by its manifest under an old name.
    copy_of_genuine("auto-20991231T000000Z");
    let future_manifest = copy_of_genuine("auto-20200104T000000Z");
    sh(&format!(
        "sed -i -E 's/\"created_at\": *\"[^\"]*\"/\"created_at\": \"2099-01-01T00:00:00Z\"/' '{}/manifest.json'",
        future_manifest.display()
    ));
    let left_alone = [
        "exports",
        "2020-01-02-000000",
        "auto-20200103T000000Z",
        "backups-old",
        "auto-20991231T000000Z",
        "auto-20200104T000000Z",
    ];
    let unknown = [
        "exports",
        "2020-01-02-000000",
        "auto-20200103T000000Z",
        "backups-old",
    ];
    let before: Vec<_> = left_alone
        .iter()
        .map(|n| files_below(&remote.join(n)))
        .collect();
    let genuine_before = files_below(&remote.join(genuine_old));
    assert!(genuine_before.contains_key("manifest.json"));

    // Listing: coffer's backups in the table, the others as unknown notes / status.
    let out = run(&["list", "--remote"]);
    assert_success(&out);
    for name in unknown {
        assert!(
            stderr(&out).contains(&format!(
                "note: {name:?} on the remote is unknown — left alone"
            )),
            "{name}: {}",
            stderr(&out)
        );
        assert!(!stdout(&out).contains(name), "{name}: {}", stdout(&out));
    }
    let out = run(&["list", "--remote", "--json"]);
    assert_success(&out);
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for name in unknown {
        assert_eq!(
            remote_status(&list, name).as_deref(),
            Some("unknown"),
            "{name}"
        );
    }
    assert_eq!(
        remote_status(&list, genuine_old).as_deref(),
        Some("complete")
    );
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "exports"
                && b["status"]["reason"]
                    .as_str()
                    .unwrap()
                    .contains("not named like a backup")),
        "{list:#}"
    );

    // Every rule off: only the newest complete auto backup is kept.
    let out = run(&["sync"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("1 deleted from the remote")
            && stdout(&out).contains("4 unknown on the remote left alone"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains(&format!("{genuine_old}: deleted from the remote")),
        "{}",
        stderr(&out)
    );
    for name in unknown {
        assert!(
            stderr(&out).contains(&format!(
                "note: {name:?} on the remote is unknown — left alone"
            )),
            "{name}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains(&format!("{name}: deleted")),
            "{}",
            stderr(&out)
        );
    }
    assert!(
        stderr(&out).contains("\"report.csv\"") && stderr(&out).contains("\"notes.txt\""),
        "{}",
        stderr(&out)
    );
    for (name, before) in left_alone.iter().zip(&before) {
        assert_eq!(&files_below(&remote.join(name)), before, "{name}");
    }
    // The genuine old backup lost exactly its objects; the newest is untouched.
    assert_eq!(
        files_below(&remote.join(genuine_old)),
        Default::default(),
        "{genuine_old}"
    );
    assert!(genuine.join("manifest.json").is_file());
    let out = run(&["sync", "--json"]);
    assert_success(&out);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = report["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    let mut want = unknown.to_vec();
    want.sort();
    assert_eq!(names, want);
    assert_eq!(report["deleted"], serde_json::json!([]));
    // An unknown folder is never pulled as a backup, even by name.
    for name in ["backups-old", "2020-01-02-000000"] {
        let out = run(&["pull", name]);
        assert!(!out.status.success(), "{name}: {}", stdout(&out));
        assert!(
            error_line(&out).contains(&format!("no backup named `{name}`")),
            "{}",
            error_line(&out)
        );
        assert!(!case.root.join(name).exists());
    }
}

#[test]
fn file_remote_retention_deletes_only_known_backups_and_only_their_files() {
    let case = Case::new();
    let offsite = file_remote(&case, "retention = { keep_days = 0 }");
    std::fs::create_dir_all(&offsite).unwrap();
    remote_retention_leaves_unknown_folders_whole(&case, &offsite, &|args| case.run(args));
}

#[test]
fn s3_retention_deletes_only_known_backups_and_only_their_files() {
    let server = s3();
    let case = Case::new();
    case.write_config(
        &case.db_section(),
        &server.remote_section(
            S3_BUCKET,
            "unknown-folders/coffer",
            "retention = { keep_days = 0 }",
        ),
    );
    let remote = server.data.join(S3_BUCKET).join("unknown-folders/coffer");
    remote_retention_leaves_unknown_folders_whole(&case, &remote, &|args| {
        run_s3(&case, S3_SECRET, args)
    });
}
