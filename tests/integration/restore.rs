//! `coffer restore` and `coffer verify`: all or nothing, checked against the real server
//! and the real filesystem.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// The things restore must leave untouched when it fails.
struct Before {
    tables: std::collections::BTreeMap<String, String>,
    workspace: std::collections::BTreeMap<Vec<u8>, String>,
}

impl Before {
    fn take(case: &Case) -> Before {
        Before {
            tables: table_fingerprints(&case.db),
            workspace: snapshot(&case.workspace),
        }
    }

    fn assert_unchanged(&self, case: &Case, context: &str) {
        assert_eq!(table_fingerprints(&case.db), self.tables, "{context}: database changed");
        assert_eq!(snapshot(&case.workspace), self.workspace, "{context}: workspace changed");
        let parent = case.workspace.parent().unwrap();
        let leftovers: Vec<String> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("coffer-"))
            .collect();
        assert!(leftovers.is_empty(), "{context}: left behind {leftovers:?}");
    }
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
    assert_eq!(ino("uploads/2025/06/report-1.txt"), ino("uploads/report-1-hardlink.txt"));
    assert_eq!(
        std::fs::read_to_string(marker_dir.join("before")).unwrap(),
        format!("restore {name}\n")
    );
    assert_eq!(
        std::fs::read_to_string(marker_dir.join("after")).unwrap(),
        format!("restore success {name}\n")
    );
    // No staging, journal or previous copy is left beside the workspace.
    let parent: Vec<String> = std::fs::read_dir(case.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("coffer-") || n.contains("before-restore"))
        .collect();
    assert!(parent.is_empty(), "{parent:?}");

    // --keep-old keeps the replaced tree beside it; --json reports it.
    std::fs::write(case.workspace.join("only-in-old.txt"), b"x").unwrap();
    let out = restore(&case, &["--latest", "--yes", "--keep-old", "--json", "--no-hooks"]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let kept = PathBuf::from(v["report"]["workspace"]["previous_kept_at"].as_str().unwrap());
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
    let key = case.dir.path().join("key.txt");
    let out = case.run(&["keygen", "--output", key.to_str().unwrap()]);
    assert_success(&out);
    let public = stdout(&out).lines().find(|l| l.starts_with("age1")).unwrap().to_string();
    let wrong = case.dir.path().join("wrong.txt");
    assert_success(&case.run(&["keygen", "--output", wrong.to_str().unwrap()]));
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
    let out = restore(&case, &[&name, "--yes", "--identity", wrong.to_str().unwrap()]);
    assert_exit(&out, 6);
    assert!(stderr(&out).contains("does not match"), "{}", stderr(&out));
    before.assert_unchanged(&case, "wrong identity");

    let out = restore(&case, &[&name, "--yes", "--identity", key.to_str().unwrap()]);
    assert_success(&out);
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);
}
