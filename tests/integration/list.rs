//! `coffer list`, `coffer demo`.

use std::process::Command;

use crate::harness::*;

#[test]
fn list_shows_every_kind_newest_first_without_failing_on_bad_entries() {
    let case = Case::new();
    let made = case.backup_ok(&["--kind", "auto"]);
    let made_name = made.file_name().unwrap().to_string_lossy().into_owned();
    let root = &case.root;

    // A shell-script-era backup, made as the script made it.
    let legacy = root.join("2025-01-31-041500");
    std::fs::create_dir(&legacy).unwrap();
    let c = cluster();
    let env: Vec<String> = c
        .env(&case.db)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    sh(&format!(
        "env {} pg_dump --clean --if-exists | gzip > {l}/postgres.sql.gz && tar -czf {l}/workspace.tar.gz -C {ws} . && \
         printf '{{\"timestamp\":\"2025-01-31-041500\",\"alembic_head\":\"abc123\",\"db_size\":\"12 MB\",\"workspace_path\":\"{ws}\"}}' > {l}/manifest.json",
        env.join(" "),
        l = legacy.display(),
        ws = case.workspace.display()
    ));
    // Entries that must show as broken without breaking the listing.
    std::fs::create_dir(root.join("auto-20250101T000000Z")).unwrap();
    let garbage = root.join("manual-20250102T000000Z");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("manifest.json"), "{not json").unwrap();
    std::fs::create_dir(root.join(".coffer-staging-manual-20250103T000000Z")).unwrap();
    std::fs::create_dir(root.join("lost+found")).unwrap();

    let out = case.run(&["list"]);
    assert_success(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("DB REVISION"),
        "{text}"
    );
    let names: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            made_name.as_str(),
            "2025-01-31-041500",
            "manual-20250102T000000Z",
            "auto-20250101T000000Z"
        ],
        "{text}"
    );
    assert!(
        lines[1].contains(HEAD) && lines[1].contains("complete") && lines[1].contains(" auto "),
        "{text}"
    );
    assert!(
        lines[2].contains("abc123") && lines[2].contains("legacy"),
        "{text}"
    );
    assert!(lines[3].contains("UNREADABLE"), "{text}");
    assert!(lines[4].contains("INCOMPLETE: no manifest.json"), "{text}");

    let out = case.run(&["list", "--json"]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["status"]["status"], "complete");
    assert_eq!(rows[0]["alembic_head"], HEAD);
    assert_eq!(rows[1]["kind"], "legacy");
    assert_eq!(rows[1]["created"], "2025-01-31T04:15:00Z");
    assert_eq!(rows[3]["status"]["status"], "incomplete");
}

#[test]
fn demo_quick_start_runs_a_whole_backup() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(COFFER)
        .args(["demo", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains(&format!("alembic head {HEAD}")), "{text}");
    let backups: Vec<_> = std::fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("manual-"))
        .collect();
    assert_eq!(backups.len(), 1);
    sh(&format!(
        "cd {} && sha256sum -c SHA256SUMS",
        backups[0].path().display()
    ));
}
