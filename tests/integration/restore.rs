//! `coffer restore` and `coffer verify`: all or nothing, checked against the real server
//! and the real filesystem.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// Changes rows, drops a table, edits, adds and deletes workspace files.
fn damage_live_state(case: &Case) {
    let c = cluster();
    c.psql(
        &case.db,
        "UPDATE users SET display_name = 'changed' WHERE id <= 10; DROP TABLE attachments; \
         DELETE FROM documents WHERE id % 2 = 0; \
         INSERT INTO projects (id, owner_id, name) VALUES (9999, 1, 'new')",
    )
    .unwrap();
    let ws = &case.workspace;
    std::fs::write(ws.join("uploads/2025/06/report-1.txt"), b"edited\n").unwrap();
    std::fs::write(ws.join("added-after-backup.txt"), b"new\n").unwrap();
    std::fs::remove_file(ws.join("config/app.json")).unwrap();
    std::fs::remove_file(ws.join("uploads/report-1-hardlink.txt")).unwrap();
}

fn restore(case: &Case, args: &[&str]) -> std::process::Output {
    let mut all = vec!["restore"];
    all.extend_from_slice(args);
    case.run(&all)
}

fn name_of(backup: &Path) -> String {
    backup.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn round_trip_restores_database_and_workspace_exactly() {
    let case = Case::new();
    let marker_dir = case.dir.path().join("hooks");
    std::fs::create_dir(&marker_dir).unwrap();
    let hook = |name: &str| {
        format!(
            "[\"sh\", \"-c\", \"echo $COFFER_OPERATION $COFFER_OUTCOME $COFFER_BACKUP_NAME >> {}/{name}\"]",
            marker_dir.display()
        )
    };
    case.write_config(
        &case.db_section(),
        &format!(
            "[hooks]\nbefore_restore = [{}]\nafter_restore = [{}]\n",
            hook("before"),
            hook("after")
        ),
    );
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);

    damage_live_state(&case);
    assert_ne!(table_fingerprints(&case.db), tables);

    let out = restore(&case, &[&name, "--yes"]);
    assert_success(&out);
    let text = stdout(&out);
    for line in [
        "✓ database restored into ",
        "✓ workspace restored to ",
        "✓ application restarted",
        &format!("✓ alembic head matches manifest ({HEAD})"),
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);
    // The hard link came back as a link.
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| std::fs::metadata(case.workspace.join(p)).unwrap().ino();
    assert_eq!(
        ino("uploads/2025/06/report-1.txt"),
        ino("uploads/report-1-hardlink.txt")
    );
    assert_eq!(
        std::fs::read_to_string(marker_dir.join("before")).unwrap(),
        format!("restore {name}\n")
    );
    assert_eq!(
        std::fs::read_to_string(marker_dir.join("after")).unwrap(),
        format!("restore success {name}\n")
    );
    // The attempt is in the run log that `coffer status` reads.
    let log = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["operation"].as_str(), last["outcome"].as_str()),
        (Some("restore"), Some("success")),
        "{last}"
    );
    assert_eq!(last["backup"], name.as_str());
    // No staging, journal or previous copy is left beside the workspace.
    let parent: Vec<String> = std::fs::read_dir(case.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("coffer-") || n.contains("before-restore"))
        .collect();
    assert!(parent.is_empty(), "{parent:?}");

    // --keep-old keeps the replaced tree beside it; --json reports it.
    std::fs::write(case.workspace.join("only-in-old.txt"), b"x").unwrap();
    let out = restore(
        &case,
        &["--latest", "--yes", "--keep-old", "--json", "--no-hooks"],
    );
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let kept = PathBuf::from(
        v["report"]["workspace"]["previous_kept_at"]
            .as_str()
            .unwrap(),
    );
    assert!(kept.join("only-in-old.txt").exists());
    assert_eq!(v["report"]["alembic_head"][0], HEAD);
    assert_eq!(snapshot(&case.workspace), workspace);
}

#[test]
fn legacy_shell_script_backup_restores() {
    let case = Case::new();
    // Fifos and sockets make GNU tar warn or archive them; the script's workspaces had none.
    std::fs::remove_file(case.workspace.join("run/app.fifo")).unwrap();
    std::fs::remove_file(case.workspace.join("run/app.sock")).unwrap();
    let tables = table_fingerprints(&case.db);
    let workspace = snapshot(&case.workspace);
    let dir = case.root.join("2025-06-01-030000");
    std::fs::create_dir_all(&dir).unwrap();
    let env: Vec<(String, String)> = cluster().env(&case.db);
    let env_str: String = env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
    sh(&format!(
        "cd {d} && {env_str} pg_dump --clean --if-exists {db} | gzip > postgres.sql.gz && \
         tar -czf workspace.tar.gz -C {ws} . && \
         printf '{{\"timestamp\": \"2025-06-01T03:00:00Z\", \"alembic_head\": \"{HEAD}\", \"db_size\": \"12 MB\", \"workspace_path\": \"{ws}\"}}' > manifest.json",
        d = dir.display(),
        db = case.db,
        ws = case.workspace.display()
    ));

    damage_live_state(&case);
    let out = case.run(&["verify", "2025-06-01-030000"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains("not checked: legacy backup"), "{text}");
    assert!(text.contains("✓ workspace.tar.gz: tar listing"), "{text}");

    let out = restore(&case, &["2025-06-01-030000", "--yes"]);
    assert_success(&out);
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);
    assert!(stdout(&out).contains(&format!("alembic head matches manifest ({HEAD})")));
}

#[test]
fn encrypted_backup_restores_with_its_identity_only() {
    let case = Case::new();
    let (key, public) = case.keygen("key.txt");
    let (wrong, _) = case.keygen("wrong.txt");
    case.write_config(
        &case.db_section(),
        &format!("[encryption]\nrecipients = [\"{public}\"]\n"),
    );
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    let name = name_of(&case.backup_ok(&[]));
    damage_live_state(&case);
    let before = Before::take(&case);

    // No identity: refused before anything changes, saying what to set.
    let out = restore(&case, &[&name, "--yes"]);
    assert_exit(&out, 6);
    assert!(error_line(&out).contains("identity"), "{}", stderr(&out));
    // The wrong identity: refused, naming the mismatch.
    let out = restore(
        &case,
        &[&name, "--yes", "--identity", wrong.to_str().unwrap()],
    );
    assert_exit(&out, 6);
    assert!(stderr(&out).contains("does not match"), "{}", stderr(&out));
    before.assert_unchanged(&case, "wrong identity");

    let out = restore(
        &case,
        &[&name, "--yes", "--identity", key.to_str().unwrap()],
    );
    assert_success(&out);
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);
}

#[test]
fn damaged_artifacts_fail_verify_and_restore_changes_nothing() {
    let case = Case::new();
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    damage_live_state(&case);
    let before = Before::take(&case);
    for file in ["postgres.sql.gz", "workspace.tar.gz"] {
        let path = backup.join(file);
        let good = std::fs::read(&path).unwrap();
        let flipped = {
            let mut b = good.clone();
            let at = b.len() * 2 / 3;
            b[at] ^= 0x55;
            b
        };
        let truncated = good[..good.len() / 2].to_vec();
        for (how, bytes) in [("flipped byte", flipped), ("truncated", truncated)] {
            let context = format!("{file}, {how}");
            std::fs::write(&path, &bytes).unwrap();
            let out = case.run(&["verify", &name]);
            assert_exit(&out, 5);
            assert!(
                stdout(&out)
                    .lines()
                    .any(|l| l.contains("✗") && l.contains(file)),
                "{context}: {}",
                stdout(&out)
            );
            let out = restore(&case, &[&name, "--yes"]);
            // Damage is found by a hash, the decompressor, or psql choking on garbage: in
            // every case the restore ends before its commit.
            let code = out.status.code();
            assert!(
                matches!(code, Some(5) | Some(7)),
                "{context}: {}",
                stderr(&out)
            );
            assert!(
                error_line(&out).contains("nothing was changed")
                    || error_line(&out).contains("unchanged"),
                "{context}: {}",
                stderr(&out)
            );
            before.assert_unchanged(&case, &context);
        }
        std::fs::write(&path, &good).unwrap();
    }
    assert_success(&case.run(&["verify", &name]));
}

/// A backup whose workspace archive is `tar_bytes` (the dump is a real one).
fn backup_with_tar(case: &Case, name: &str, tar_bytes: &[u8]) -> PathBuf {
    let good = case.backup_ok(&[]);
    let dir = case.root.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(good.join("postgres.sql.gz"), dir.join("postgres.sql.gz")).unwrap();
    let gz = gzip(tar_bytes);
    std::fs::write(dir.join("workspace.tar.gz"), gz).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        format!("{{\"timestamp\": \"2025-06-01T03:00:00Z\", \"alembic_head\": \"{HEAD}\", \"db_size\": 1, \"workspace_path\": \"/srv/ws\"}}"),
    )
    .unwrap();
    std::fs::remove_dir_all(&good).unwrap();
    dir
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&data).unwrap();
    });
    let out = wait_within(child, RUN_LIMIT, "coffer");
    writer.join().unwrap();
    out.stdout
}

/// A tar built by Python's tarfile from a list of (name, type, payload) entries.
fn python_tar(entries: &str) -> Vec<u8> {
    let script = format!(
        "import io, sys, tarfile\n\
         buf = io.BytesIO()\n\
         with tarfile.open(fileobj=buf, mode='w', format=tarfile.GNU_FORMAT) as t:\n\
         \x20   for name, kind, payload in {entries}:\n\
         \x20       info = tarfile.TarInfo(name)\n\
         \x20       if kind == 'dir':\n\
         \x20           info.type = tarfile.DIRTYPE; info.mode = 0o755; t.addfile(info)\n\
         \x20       elif kind == 'sym':\n\
         \x20           info.type = tarfile.SYMTYPE; info.linkname = payload; t.addfile(info)\n\
         \x20       else:\n\
         \x20           data = payload.encode(); info.size = len(data); info.mode = 0o644\n\
         \x20           t.addfile(info, io.BytesIO(data))\n\
         sys.stdout.buffer.write(buf.getvalue())\n"
    );
    let out = run_ok(Command::new("python3").args(["-c", &script]));
    out.stdout
}

#[test]
fn malicious_tar_entries_are_refused_and_nothing_is_written_outside() {
    let case = Case::new();
    let outside = case.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let cases = [
        (
            "dotdot",
            "[('./', 'dir', ''), ('../escaped.txt', 'file', 'x')]".to_string(),
        ),
        (
            "absolute",
            format!(
                "[('./', 'dir', ''), ('{}/abs.txt', 'file', 'x')]",
                outside.display()
            ),
        ),
        (
            "symlink-then-file",
            format!(
                "[('./', 'dir', ''), ('link', 'sym', '{}'), ('link/through.txt', 'file', 'x')]",
                outside.display()
            ),
        ),
    ];
    let before = Before::take(&case);
    for (i, (what, entries)) in cases.iter().enumerate() {
        let name = format!("2025-06-0{}-030000", i + 1);
        backup_with_tar(&case, &name, &python_tar(entries));
        let out = restore(&case, &[&name, "--yes"]);
        assert_exit(&out, 5);
        assert!(
            error_line(&out).contains("unsafe tar entry"),
            "{what}: {}",
            stderr(&out)
        );
        assert!(!case.dir.path().join("escaped.txt").exists(), "{what}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "{what}");
        before.assert_unchanged(&case, what);
    }
}

#[test]
fn head_mismatch_is_refused_with_the_direction_explained() {
    let case = Case::new();
    let versions = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../coffer-core/tests/data/alembic_versions")
        .canonicalize()
        .unwrap();
    let set_head = |rev: &str| {
        cluster()
            .psql(
                &case.db,
                &format!("UPDATE alembic_version SET version_num = '{rev}'"),
            )
            .unwrap();
    };
    let with_versions = format!("[alembic]\nversions_dir = \"{}\"\n", versions.display());
    case.write_config(&case.db_section(), &with_versions);

    // Without a versions_dir the mismatch is refused and the way to proceed is named.
    let name = name_of(&case.backup_ok(&[]));
    let before = Before::take(&case);
    let out = restore(&case, &[&name, "--yes", "--expect-head", "0123456789ab"]);
    assert_exit(&out, 6);
    let err = stderr(&out);
    assert!(
        err.contains("alembic head mismatch") && err.contains("--allow-head-mismatch"),
        "{err}"
    );
    before.assert_unchanged(&case, "expect-head");

    // Same head as the versions_dir: a check line, then the restore.
    let out = restore(&case, &[&name, "--yes"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("✓ alembic head {HEAD} is the code's head")),
        "{}",
        stdout(&out)
    );

    for (rev, expect_head, word) in [
        ("ae1027a6acf", None, "OLDER"),
        ("ffff00001111", None, "NEWER"),
        ("3cac04ae8714", Some("27c6a30d7c24"), "unrelated"),
    ] {
        set_head(rev);
        let name = name_of(&case.backup_ok(&[]));
        let before = Before::take(&case);
        let mut args = vec![name.as_str(), "--yes"];
        if let Some(h) = expect_head {
            args.extend(["--expect-head", h]);
        }
        let out = restore(&case, &args);
        assert_exit(&out, 6);
        let err = stderr(&out);
        assert!(err.contains(word), "{rev}: {err}");
        before.assert_unchanged(&case, rev);
        if word == "OLDER" {
            assert!(err.contains("alembic upgrade head"), "{err}");
            // Allowed explicitly, it restores, and the live head is the backup's.
            args.push("--allow-head-mismatch");
            let out = restore(&case, &args);
            assert_success(&out);
            assert!(stdout(&out).contains(&format!("alembic head matches manifest ({rev})")));
        }
    }
}

#[test]
fn after_hooks_run_when_the_restore_fails() {
    let case = Case::new();
    let marker = case.dir.path().join("after");
    case.write_config(
        &case.db_section(),
        &format!(
            "[hooks]\nbefore_restore = [[\"true\"]]\nafter_restore = [[\"sh\", \"-c\", \"echo $COFFER_OUTCOME > {}\"]]\n",
            marker.display()
        ),
    );
    let backup = case.backup_ok(&[]);
    damage_live_state(&case);
    let before = Before::take(&case);
    // Same size, different bytes: found only while streaming, after the before-hooks.
    let path = backup.join("workspace.tar.gz");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = restore(&case, &[&name_of(&backup), "--yes"]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "failure\n");
    before.assert_unchanged(&case, "after hooks");
    let log = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["operation"].as_str(), last["outcome"].as_str()),
        (Some("restore"), Some("failure")),
        "{last}"
    );
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("failed verification"),
        "{last}"
    );

    // A failing before-hook stops the restore, and the after-hooks still run.
    std::fs::remove_file(&marker).unwrap();
    case.write_config(
        &case.db_section(),
        &format!(
            "[hooks]\nbefore_restore = [[\"false\"]]\nafter_restore = [[\"sh\", \"-c\", \"echo $COFFER_OUTCOME > {}\"]]\n",
            marker.display()
        ),
    );
    let good = case.backup_ok(&[]);
    let out = restore(&case, &[&name_of(&good), "--yes"]);
    assert_exit(&out, 6);
    assert!(
        error_line(&out).contains("hooks.before_restore"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "failure\n");
    before.assert_unchanged(&case, "before hook");
}

#[test]
fn other_sessions_and_missing_confirmation_are_refused() {
    let case = Case::new();
    let name = name_of(&case.backup_ok(&[]));
    damage_live_state(&case);
    let before = Before::take(&case);

    // Without a terminal and without --yes: refused, saying how to proceed.
    let out = restore(&case, &[&name]);
    assert_exit(&out, 6);
    assert!(error_line(&out).contains("--yes"), "{}", stderr(&out));

    // An application session holds a connection.
    let mut app = Command::new("psql")
        .envs(cluster().env(&case.db))
        .args(["-X", "-c", "SELECT pg_sleep(60)"])
        .env("PGAPPNAME", "portal-backend")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the application session", Duration::from_secs(10), || {
        cluster()
            .psql(
                &case.db,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'portal-backend'",
            )
            .unwrap()
            == "1"
    });
    let out = restore(&case, &[&name, "--yes"]);
    assert_exit(&out, 6);
    let err = stderr(&out);
    assert!(
        err.contains("portal-backend") && err.contains("--terminate-connections"),
        "{err}"
    );
    before.assert_unchanged(&case, "session open");

    let out = restore(&case, &[&name, "--yes", "--terminate-connections"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("terminated 1 other session"),
        "{}",
        stdout(&out)
    );
    let status = app.wait().unwrap();
    assert!(
        !status.success(),
        "the application session should have been terminated"
    );
}

#[test]
fn target_db_target_dir_and_partial_restores() {
    let case = Case::new();
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    let name = name_of(&case.backup_ok(&[]));
    damage_live_state(&case);
    let before = Before::take(&case);

    let other_db = format!("{}_copy", case.db);
    let other_dir = case.dir.path().join("elsewhere");
    let out = restore(
        &case,
        &[
            &name,
            "--yes",
            "--target-db",
            &other_db,
            "--target-dir",
            other_dir.to_str().unwrap(),
        ],
    );
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("database {other_db} created")),
        "{}",
        stdout(&out)
    );
    assert_eq!(table_fingerprints(&other_db), tables);
    assert_eq!(snapshot(&other_dir), workspace);
    before.assert_unchanged(&case, "restored elsewhere");

    let out = restore(&case, &[&name, "--yes", "--db-only"]);
    assert_success(&out);
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), before.workspace);

    let out = restore(&case, &[&name, "--yes", "--workspace-only"]);
    assert_success(&out);
    assert_eq!(snapshot(&case.workspace), workspace);
}

#[test]
fn sigkill_mid_restore_leaves_everything_as_it_was() {
    let case = Case::new();
    // An index whose build takes a few seconds, so the restore can be killed inside it.
    cluster()
        .psql(
            &case.db,
            "CREATE FUNCTION public.slow_id(i integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE \
             AS $$ BEGIN PERFORM pg_sleep(0.4); RETURN i; END $$; \
             CREATE TABLE slow_rows (i integer); INSERT INTO slow_rows SELECT generate_series(1, 8); \
             CREATE INDEX slow_rows_idx ON slow_rows (public.slow_id(i));",
        )
        .unwrap();
    let name = name_of(&case.backup_ok(&[]));
    damage_live_state(&case);
    let before = Before::take(&case);

    let mut child = case
        .coffer()
        .args(["restore", &name, "--yes", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let in_index_build = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE 'CREATE INDEX slow_rows_idx%'",
        case.db
    );
    wait_until("the restore's index build", Duration::from_secs(60), || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the restore ended early"
        );
        cluster().psql("postgres", &in_index_build).unwrap() == "1"
    });
    child.kill().unwrap();
    child.wait().unwrap();

    // psql finishes its statement, reads end-of-input without COMMIT, and the server rolls
    // back when the session ends.
    let sessions = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        case.db
    );
    wait_until(
        "the restore's session to end",
        Duration::from_secs(60),
        || cluster().psql(&case.db, &sessions).unwrap() == "0",
    );
    before.assert_state_unchanged(&case, "killed");

    // The next run tidies what the killed one left (its staging directory) and says so.
    let out = restore(&case, &[&name, "--yes", "--expect-head", "0123456789ab"]);
    assert_exit(&out, 6);
    assert!(
        stdout(&out).contains("interrupted restore"),
        "{}",
        stdout(&out)
    );
    before.assert_unchanged(&case, "after the next run");
}

#[test]
fn restore_test_drill_restores_compares_and_cleans_up() {
    let case = Case::new();
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    let before = Before::take(&case);
    let databases = || {
        cluster()
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname LIKE 'coffer_restore_test_%'",
            )
            .unwrap()
    };

    let out = case.run(&["verify", &name, "--restore-test"]);
    assert_success(&out);
    let text = stdout(&out);
    for line in [
        "✓ database restored into coffer_restore_test_",
        "✓ row counts: 9 tables, 7713 rows, as in the manifest",
        "✓ workspace: ",
        &format!("✓ alembic head matches manifest ({HEAD})"),
        "restore test OK",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert_eq!(databases(), "0", "the throw-away database was not dropped");
    assert_eq!(
        case.root_entries(),
        [name.as_str()],
        "the drill left files in the root"
    );
    before.assert_unchanged(&case, "drill");

    // A dump that verifies (gzip and trailer intact) but does not apply: only the drill
    // finds out, and it still cleans up.
    let legacy = case.root.join("2025-06-01-030000");
    std::fs::create_dir(&legacy).unwrap();
    let b = backup.display();
    sh(&format!(
        "gunzip -c {b}/postgres.sql.gz | sed 's/^-- PostgreSQL database dump complete/CREATE TABLE broken (a no_such_type);\\n&/' | gzip > {l}/postgres.sql.gz && \
         cp {b}/workspace.tar.gz {l}/ && \
         printf '{{\"timestamp\": \"2025-06-01T03:00:00Z\", \"alembic_head\": \"{HEAD}\", \"db_size\": 1, \"workspace_path\": \"/w\"}}' > {l}/manifest.json",
        l = legacy.display()
    ));
    assert_success(&case.run(&["verify", "2025-06-01-030000"]));
    let out = case.run(&["verify", "2025-06-01-030000", "--restore-test"]);
    assert_exit(&out, 7);
    assert!(stderr(&out).contains("no_such_type"), "{}", stderr(&out));
    assert_eq!(databases(), "0", "the throw-away database was not dropped");
}

#[test]
fn verify_all_and_json_and_encrypted_without_identity() {
    let case = Case::new();
    let (key, public) = case.keygen("key.txt");
    let plain = name_of(&case.backup_ok(&[]));
    case.write_config(
        &case.db_section(),
        &format!("[encryption]\nrecipients = [\"{public}\"]\n"),
    );
    let encrypted = name_of(&case.backup_ok(&["--kind", "auto"]));

    // Without the identity the stored hashes are still checked; the rest is "not checked".
    let out = case.run(&["verify", &encrypted]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("✓ postgres.sql.gz.age: stored size and sha256"),
        "{text}"
    );
    assert!(
        text.contains("– postgres.sql.gz.age: decrypt and decompress: not checked"),
        "{text}"
    );
    let out = case.run(&["verify", &encrypted, "--identity", key.to_str().unwrap()]);
    assert_success(&out);
    assert!(!stdout(&out).contains("not checked"), "{}", stdout(&out));

    // --all covers every entry; an incomplete one fails the run (exit 5).
    std::fs::create_dir(case.root.join("auto-20250101T030000Z")).unwrap();
    let out = case.run(&[
        "verify",
        "--all",
        "--json",
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert_exit(&out, 5);
    let reports: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let by_name = |n: &str| {
        reports
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap_or_else(|| panic!("{n} missing from {reports}"))
            .clone()
    };
    for good in [&plain, &encrypted] {
        let r = by_name(good);
        assert!(
            r["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["outcome"] == "pass"),
            "{r}"
        );
    }
    let bad = by_name("auto-20250101T030000Z");
    assert_eq!(bad["checks"][0]["outcome"], "fail");
}

#[test]
fn confirmation_on_a_terminal_needs_the_word_restore() {
    let case = Case::new();
    let name = name_of(&case.backup_ok(&[]));
    damage_live_state(&case);
    let before = Before::take(&case);
    // `script` gives coffer a terminal; the answer is typed on it.
    let run_on_tty = |answer: &str| {
        let cmd = format!("{COFFER} --config {} restore {name}", case.config.display());
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c", &cmd, "/dev/null"])
            .env_remove("COFFER_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("`script` (util-linux) is needed: apt-get install util-linux");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            stdin.write_all(answer.as_bytes()).unwrap();
        }
        wait_within(child, RUN_LIMIT, "coffer")
    };
    let out = run_on_tty("yes\n");
    assert_exit(&out, 6);
    let text = stdout(&out);
    assert!(
        text.contains("This restore REPLACES") && text.contains(&case.db),
        "{text}"
    );
    assert!(text.contains("not confirmed"), "{text}");
    before.assert_unchanged(&case, "not confirmed");

    let out = run_on_tty("restore\n");
    assert_success(&out);
    assert!(
        stdout(&out).contains("✓ database restored"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn small_or_mounted_workspace_filesystems_are_refused_up_front() {
    let case = Case::new();
    let name = name_of(&case.backup_ok(&[]));
    let small = case.dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let _guard = mount_tmpfs(&small, "128k");

    let out = restore(
        &case,
        &[
            &name,
            "--yes",
            "--workspace-only",
            "--target-dir",
            small.join("ws").to_str().unwrap(),
        ],
    );
    assert_exit(&out, 6);
    assert!(
        error_line(&out).contains("not enough space"),
        "{}",
        stderr(&out)
    );
    assert!(!small.join("ws").exists());

    let out = restore(
        &case,
        &[
            &name,
            "--yes",
            "--workspace-only",
            "--target-dir",
            small.to_str().unwrap(),
        ],
    );
    assert_exit(&out, 6);
    assert!(
        error_line(&out).contains("is a mount point"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn zstd_backups_are_read_by_the_zstd_cli_verified_and_restored() {
    let case = Case::new();
    let (key, public) = case.keygen("key.txt");
    case.write_config(&case.db_section(), "[compression]\nalgorithm = \"zstd\"\n");
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    let plain = case.backup_ok(&[]);
    let files = file_names(&plain);
    assert_eq!(
        files,
        [
            "SHA256SUMS",
            "manifest.json",
            "postgres.sql.zst",
            "workspace.tar.zst"
        ]
    );
    assert_eq!(manifest(&plain)["artifacts"][0]["compression"], "zstd");
    let p = plain.display();
    sh(
        "command -v zstd >/dev/null || { echo 'the zstd CLI is needed: apt-get install zstd' >&2; exit 1; }",
    );
    sh(&format!(
        "cd {p} && sha256sum -c --strict SHA256SUMS && zstd -tq postgres.sql.zst workspace.tar.zst"
    ));
    let listed = sh(&format!(
        "zstd -dc {p}/workspace.tar.zst | tar -tf - | wc -l"
    ));
    assert!(listed.trim().parse::<u32>().unwrap() > 10, "{listed}");
    let copy = empty_database();
    let env: String = cluster()
        .env(&copy)
        .iter()
        .map(|(k, v)| format!("{k}='{v}' "))
        .collect();
    sh(&format!(
        "zstd -dc {p}/postgres.sql.zst | {env} psql -X -q -v ON_ERROR_STOP=1 -1 >/dev/null"
    ));
    assert_eq!(table_fingerprints(&copy), tables);
    assert_success(&case.run(&["verify", &name_of(&plain)]));

    // Encrypted zstd: `age -d | zstd -d` reads it, and restore brings everything back.
    case.write_config(
        &case.db_section(),
        &format!("[compression]\nalgorithm = \"zstd\"\nlevel = 5\n[encryption]\nrecipients = [\"{public}\"]\n"),
    );
    let encrypted = case.backup_ok(&[]);
    let e = encrypted.display();
    sh(&format!(
        "age -d -i {} {e}/postgres.sql.zst.age | zstd -dc | grep -q 'dump complete'",
        key.display()
    ));
    damage_live_state(&case);
    let out = restore(
        &case,
        &[
            &name_of(&encrypted),
            "--yes",
            "--identity",
            key.to_str().unwrap(),
        ],
    );
    assert_success(&out);
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);

    // Levels are checked against the algorithm's range.
    case.write_config(
        &case.db_section(),
        "[compression]\nalgorithm = \"zstd\"\nlevel = 22\n",
    );
    let out = case.run(&["backup"]);
    assert_exit(&out, 2);
    assert!(
        error_line(&out).contains("compression.level"),
        "{}",
        stderr(&out)
    );
}
