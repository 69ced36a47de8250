//! `coffer prune`, `coffer status`, the metrics file, notification hooks and the systemd
//! units, on real backup roots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};

use crate::harness::*;

const DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/systemd");

/// Copies a real backup directory under another name (its time comes from the name).
fn copy_backup(from: &Path, root: &Path, name: &str) -> PathBuf {
    let to = root.join(name);
    run_ok(Command::new("cp").arg("-a").arg(from).arg(&to));
    to
}

fn name_at(kind: &str, time: chrono::DateTime<Utc>) -> String {
    format!("{kind}-{}", time.format("%Y%m%dT%H%M%SZ"))
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(out), stderr(out)))
}

fn names_where(report: &serde_json::Value, keep: bool) -> Vec<String> {
    let mut v: Vec<String> = report["plan"]["backups"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["plan"]["staging"].as_array().unwrap())
        .filter(|b| b["keep"] == keep)
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn entries(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".coffer.lock" && n != "coffer-runs.jsonl")
        .collect();
    v.sort();
    v
}

fn run_log(root: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(root.join("coffer-runs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn prune_dry_run_deletes_nothing_and_prune_deletes_exactly_what_it_listed() {
    let case = Case::new();
    let real = case.backup_ok(&["--kind", "auto", "--no-prune"]);
    let root = &case.root;
    let now = Utc::now();
    // Within keep_days (7): kept. Older auto and legacy ones: deleted.
    copy_backup(&real, root, &name_at("auto", now - TimeDelta::days(2)));
    copy_backup(&real, root, "auto-20250101T030000Z");
    copy_backup(&real, root, "auto-20250102T030000Z");
    copy_backup(&real, root, "2025-01-03-030000");
    // Manual: never pruned, however old.
    copy_backup(&real, root, "manual-20240101T100000Z");
    // Incomplete and unreadable: not known as coffer's complete backups, so left alone for a
    // person to look at (issue #11: prune deletes only what it positively knows).
    std::fs::create_dir(root.join("auto-20250104T030000Z")).unwrap();
    let unreadable = copy_backup(&real, root, "auto-20250105T030000Z");
    std::fs::write(unreadable.join("manifest.json"), "{damaged").unwrap();
    // Staging directories: one abandoned two days ago, one fresh.
    let stale = root.join(".coffer-staging-auto-20250106T030000Z");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("postgres.sql.gz"), b"partial").unwrap();
    // The marker coffer writes into every staging directory it creates.
    std::fs::write(
        stale.join(coffer_core::STAGING_MARKER),
        coffer_core::STAGING_MARKER_TEXT,
    )
    .unwrap();
    sh(&format!(
        "touch -d '2 days ago' {s}/postgres.sql.gz {s}/{m} {s}",
        s = stale.display(),
        m = coffer_core::STAGING_MARKER
    ));
    std::fs::create_dir(root.join(".coffer-staging-manual-20990101T000000Z")).unwrap();
    let before = entries(root);

    let out = case.run(&["prune", "--dry-run"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.starts_with("ACTION "), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{text}"))
            .to_string()
    };
    assert!(
        line("auto-20250101T030000Z").starts_with("delete")
            && line("auto-20250101T030000Z").ends_with("expired"),
        "{text}"
    );
    assert!(line("2025-01-03-030000").starts_with("delete"), "{text}");
    assert!(
        line("manual-20240101T100000Z").contains("manual (never pruned automatically)"),
        "{text}"
    );
    assert!(
        line(&real.file_name().unwrap().to_string_lossy()).contains("newest complete backup"),
        "{text}"
    );
    assert!(
        line("auto-20250104T030000Z").starts_with("keep")
            && line("auto-20250104T030000Z").contains("unknown — left alone: incomplete"),
        "{text}"
    );
    assert!(
        line("auto-20250105T030000Z").starts_with("keep")
            && line("auto-20250105T030000Z").contains("unknown — left alone: unreadable"),
        "{text}"
    );
    assert!(
        line("staging-auto-20250106").starts_with("delete"),
        "{text}"
    );
    assert!(
        line("staging-manual-20990101").starts_with("keep"),
        "{text}"
    );
    assert!(text.contains("would delete 3 backup(s)"), "{text}");
    assert_eq!(entries(root), before, "--dry-run changed the root");

    let out = case.run(&["prune", "--dry-run", "--json"]);
    assert_success(&out);
    let dry = json(&out);
    assert_eq!(dry["dry_run"], true);
    let listed = names_where(&dry, false);
    assert_eq!(
        listed,
        [
            ".coffer-staging-auto-20250106T030000Z",
            "2025-01-03-030000",
            "auto-20250101T030000Z",
            "auto-20250102T030000Z",
        ]
    );
    assert_eq!(entries(root), before);

    let out = case.run(&["prune", "--json"]);
    assert_success(&out);
    let done = json(&out);
    let mut deleted: Vec<String> = serde_json::from_value(done["deleted"].clone()).unwrap();
    deleted.sort();
    assert_eq!(deleted, listed);
    let mut expected: Vec<String> = before.into_iter().filter(|n| !listed.contains(n)).collect();
    expected.sort();
    assert_eq!(entries(root), expected);
    let log = run_log(root);
    let last = log.last().unwrap();
    assert_eq!(
        (last["operation"].as_str(), last["outcome"].as_str()),
        (Some("prune"), Some("success"))
    );
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .starts_with("deleted 3 backup(s)"),
        "{last}"
    );

    // A successful backup prunes; --no-prune and a failed backup do not.
    copy_backup(&real, root, "auto-20250201T030000Z");
    case.backup_ok(&["--kind", "auto", "--no-prune"]);
    assert!(root.join("auto-20250201T030000Z").exists());
    case.write_config(&format!("url = \"{}\"\n", cluster().url("no_such_db")), "");
    assert_exit(&case.run(&["backup", "--kind", "auto"]), 1);
    assert!(root.join("auto-20250201T030000Z").exists());
    case.write_config(&case.db_section(), "");
    let out = case.run(&["backup", "--kind", "auto"]);
    assert_success(&out);
    assert!(
        stderr(&out).contains("pruned auto-20250201T030000Z"),
        "{}",
        stderr(&out)
    );
    assert!(!root.join("auto-20250201T030000Z").exists());
    let ops: Vec<(String, String)> = run_log(root)
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().unwrap().into(),
                r["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        ops,
        [
            s("backup", "success"),
            s("prune", "success"),
            s("backup", "success"),
            s("backup", "failure"),
            s("backup", "success"),
            s("prune", "success"),
        ]
    );
}

/// Starts a backup whose pg_dump stalls, and waits until it holds the lock and writes.
#[allow(clippy::zombie_processes)] // the caller kills and waits for it
fn start_stalled_backup(case: &Case) -> Child {
    case.write_config(
        &case.exec_wrapper("pg_dump \"$@\" | { head -c 200000; sleep 120; }\nexit 0"),
        "",
    );
    let mut child = case
        .coffer()
        .args(["backup", "--quiet", "--kind", "auto"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !case
        .root_entries()
        .iter()
        .any(|n| n.starts_with(".coffer-staging-"))
    {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("backup never started writing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn a_running_backup_blocks_prune() {
    let case = Case::new();
    let real = case.backup_ok(&["--kind", "auto", "--no-prune"]);
    copy_backup(&real, &case.root, "auto-20250101T030000Z");
    let mut running = start_stalled_backup(&case);
    let out = case.run(&["prune"]);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&running),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    running.wait().unwrap();
    assert_exit(&out, 3);
    let err = error_line(&out);
    assert!(
        err.contains(&format!("pid {}", running.id())) && err.contains("backup started"),
        "{err}"
    );
    assert!(case.root.join("auto-20250101T030000Z").exists());
    // The blocked prune is on record as a failed prune, not as a failed backup.
    let log = run_log(&case.root);
    assert!(
        log.iter()
            .any(|r| r["operation"] == "prune" && r["outcome"] == "failure"),
        "{log:?}"
    );
    // Once the backup is gone, prune runs.
    assert_success(&case.run(&["prune"]));
    assert!(!case.root.join("auto-20250101T030000Z").exists());
}

fn metrics(path: &Path) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines)
        .unwrap_or_else(|e| panic!("metrics do not parse ({e}):\n{text}"));
    for name in [
        "coffer_last_success_timestamp_seconds",
        "coffer_consecutive_failures",
        "coffer_backups",
    ] {
        assert!(
            scrape.docs.contains_key(name),
            "no HELP for {name}:\n{text}"
        );
    }
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let key = if labels.is_empty() {
                s.metric
            } else {
                format!("{}{{{}}}", s.metric, labels.join(","))
            };
            let value = match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                other => panic!("{key}: unexpected {other:?}"),
            };
            (key, value)
        })
        .collect()
}

fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("hook output {}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn status_thresholds_metrics_and_hooks_after_success_and_failures() {
    let case = Case::new();
    let prom = case.dir.path().join("textfile/coffer.prom");
    std::fs::create_dir(prom.parent().unwrap()).unwrap();
    let hook = |file: &str| {
        format!(
            "[[\"sh\", \"-c\", \"env | grep ^COFFER_ > {}\"]]",
            case.dir.path().join(file).display()
        )
    };
    let extra = format!(
        "metrics_file = \"{}\"\n[hooks]\non_success = {}\non_failure = {}\n",
        prom.display(),
        hook("success.env"),
        hook("failure.env")
    );
    case.write_config(&case.db_section(), &extra);

    let out = case.run(&["status"]);
    assert_exit(&out, 10);
    assert!(
        stdout(&out).starts_with("CRITICAL: no successful backup;"),
        "{}",
        stdout(&out)
    );

    let backup = case.backup_ok(&["--kind", "auto"]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let manifest = manifest(&backup);
    let size = |role: &str| {
        manifest["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["role"] == role)
            .unwrap()["size"]
            .as_f64()
            .unwrap()
    };
    let out = case.run(&["status"]);
    assert_exit(&out, 0);
    let first = stdout(&out).lines().next().unwrap().to_string();
    assert!(
        first.starts_with(&format!("OK: last backup {name} "))
            && first.contains("0 consecutive failure(s)"),
        "{first}"
    );

    let m = metrics(&prom);
    let now = Utc::now().timestamp() as f64;
    let success_at = m["coffer_last_success_timestamp_seconds"];
    assert!((now - 120.0..=now + 1.0).contains(&success_at), "{m:?}");
    assert_eq!(m["coffer_last_attempt_timestamp_seconds"], success_at);
    assert_eq!(m["coffer_last_run_success"], 1.0);
    assert_eq!(m["coffer_consecutive_failures"], 0.0);
    assert_eq!(
        m["coffer_last_backup_artifact_bytes{artifact=database}"],
        size("database")
    );
    assert_eq!(
        m["coffer_last_backup_artifact_bytes{artifact=workspace}"],
        size("workspace")
    );
    assert_eq!(m["coffer_backups{kind=auto}"], 1.0);
    assert_eq!(m["coffer_backups{kind=manual}"], 0.0);
    assert!(
        m["coffer_backups_size_bytes"] >= size("database") + size("workspace"),
        "{m:?}"
    );
    assert!(m["coffer_last_run_duration_seconds"] > 0.0, "{m:?}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&prom).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);

    let env = env_file(&case.dir.path().join("success.env"));
    assert_eq!(env["COFFER_OPERATION"], "backup");
    assert_eq!(env["COFFER_OUTCOME"], "success");
    assert_eq!(env["COFFER_BACKUP_NAME"], name);
    assert_eq!(env["COFFER_BACKUP_KIND"], "auto");
    assert_eq!(env["COFFER_BACKUP_PATH"], backup.display().to_string());
    assert_eq!(env["COFFER_DATABASE_BYTES"], size("database").to_string());
    assert_eq!(env["COFFER_WORKSPACE_BYTES"], size("workspace").to_string());
    assert_eq!(env["COFFER_ERROR"], "");

    // The database goes away: backups fail.
    let broken = format!("url = \"{}\"\n", cluster().url("no_such_db"));
    case.write_config(&broken, &extra);
    assert_exit(&case.run(&["backup", "--kind", "auto"]), 1);
    assert_exit(&case.run(&["status"]), 0);
    assert_exit(&case.run(&["status", "--max-failures", "1"]), 11);
    let env = env_file(&case.dir.path().join("failure.env"));
    assert_eq!(env["COFFER_OUTCOME"], "failure");
    assert_eq!(env["COFFER_BACKUP_KIND"], "auto");
    assert!(
        env["COFFER_ERROR"].starts_with("psql query failed"),
        "{env:?}"
    );
    assert!(
        env["COFFER_ERROR_DETAIL"].contains("\"no_such_db\" does not exist"),
        "{env:?}"
    );

    assert_exit(&case.run(&["backup", "--kind", "manual"]), 1);
    assert_exit(&case.run(&["backup", "--kind", "auto"]), 1);
    let out = case.run(&["status"]);
    assert_exit(&out, 11);
    let first = stdout(&out).lines().next().unwrap().to_string();
    assert!(
        first.starts_with(&format!("CRITICAL: last backup {name} ")),
        "{first}"
    );
    assert!(
        first.contains("3 consecutive failure(s) (limit 3)") && first.contains("does not exist"),
        "{first}"
    );
    let out = case.run(&["status", "--json"]);
    assert_exit(&out, 11);
    let v = json(&out);
    assert_eq!(v["state"], "critical");
    assert_eq!(v["alert"], "too_many_failures");
    assert_eq!(v["status"]["consecutive_failures"], 3);
    // Both thresholds crossed: too old wins.
    std::thread::sleep(Duration::from_millis(2100));
    assert_exit(&case.run(&["status", "--max-age", "1s"]), 10);
    assert_exit(&case.run(&["status", "--max-failures", "0"]), 0);
    let out = case.run(&["status", "--max-age", "soon"]);
    assert_exit(&out, 2);

    let m = metrics(&prom);
    assert_eq!(m["coffer_last_run_success"], 0.0);
    assert_eq!(m["coffer_consecutive_failures"], 3.0);
    assert_eq!(m["coffer_last_success_timestamp_seconds"], success_at);
    assert!(
        m["coffer_last_attempt_timestamp_seconds"] > success_at,
        "{m:?}"
    );
    assert_eq!(
        m["coffer_last_backup_artifact_bytes{artifact=database}"],
        size("database")
    );

    // A success ends the alert.
    case.write_config(&case.db_section(), &extra);
    case.backup_ok(&["--kind", "auto"]);
    assert_exit(&case.run(&["status"]), 0);
    assert_eq!(metrics(&prom)["coffer_consecutive_failures"], 0.0);
}

#[test]
fn status_of_a_root_migrated_from_the_shell_scripts_does_not_page() {
    let case = Case::new();
    let legacy = case.root.join(
        (Utc::now() - TimeDelta::hours(5))
            .format("%Y-%m-%d-%H%M%S")
            .to_string(),
    );
    std::fs::create_dir_all(&legacy).unwrap();
    sh(&format!(
        "echo 'SELECT 1;' | gzip > {l}/postgres.sql.gz && echo '{{\"alembic_head\":\"abc\"}}' > {l}/manifest.json",
        l = legacy.display()
    ));
    let out = case.run(&["status"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.starts_with("OK: last backup 20"), "{text}");
    assert!(
        text.contains("(from the backups; not in the run log)"),
        "{text}"
    );
    assert_exit(&case.run(&["status", "--max-age", "4h"]), 10);
}

fn systemd_analyze() -> &'static str {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "systemd-analyze is missing: install it with `apt-get install systemd` (.ci/run does)"
    );
    "systemd-analyze"
}

#[test]
fn systemd_units_verify_install_safely_and_match_dist() {
    let case = Case::new();
    std::fs::create_dir_all(&case.root).unwrap();
    let units = case.dir.path().join("units");
    let out = case.run(&["systemd", "install", "--dir", units.to_str().unwrap()]);
    assert_success(&out);
    assert!(
        stdout(&out)
            .contains("systemctl daemon-reload && systemctl enable --now coffer-backup.timer")
    );
    let names = [
        "coffer-backup.service",
        "coffer-backup.timer",
        "coffer-backup-failure.service",
        "coffer-serve.service",
    ];
    let service = std::fs::read_to_string(units.join(names[0])).unwrap();
    assert!(
        service.contains(&format!(
            "\nExecStart={COFFER} --config {} backup --kind auto --quiet\n",
            case.config.display()
        )),
        "{service}"
    );
    assert!(
        service.contains(&format!("\nReadWritePaths={}\n", case.root.display())),
        "{service}"
    );
    // The server's unit runs `coffer serve` with the same flags and may also write the
    // workspace's parent (a restore stages and swaps there); the backup service may not.
    let serve = std::fs::read_to_string(units.join(names[3])).unwrap();
    assert!(
        serve.contains(&format!(
            "\nExecStart={COFFER} --config {} serve\n",
            case.config.display()
        )),
        "{serve}"
    );
    let parent = case.workspace.parent().unwrap().display().to_string();
    assert!(
        serve.contains(&format!("\nReadWritePaths=-{parent}\n")),
        "{serve}"
    );
    assert!(!service.contains(&format!("ReadWritePaths={parent}\n")));
    assert!(
        stdout(&out).contains("systemctl enable --now coffer-serve.service"),
        "{}",
        stdout(&out)
    );
    let out = Command::new(systemd_analyze())
        .arg("verify")
        .args(names.map(|n| units.join(n)))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}",
        out.status,
        stderr(&out)
    );

    // Installing again changes nothing; a modified unit is not overwritten without --force.
    let out = case.run(&["systemd", "install", "--dir", units.to_str().unwrap()]);
    assert_success(&out);
    assert_eq!(stdout(&out).matches("unchanged ").count(), names.len());
    let timer = units.join(names[1]);
    std::fs::write(&timer, "[Timer]\nOnCalendar=hourly\n").unwrap();
    let out = case.run(&[
        "systemd",
        "install",
        "--dir",
        units.to_str().unwrap(),
        "--on-calendar",
        "*-*-* 01:15:00",
    ]);
    assert_exit(&out, 1);
    assert!(error_line(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&timer).unwrap(),
        "[Timer]\nOnCalendar=hourly\n"
    );
    let out = case.run(&[
        "systemd",
        "install",
        "--dir",
        units.to_str().unwrap(),
        "--on-calendar",
        "*-*-* 01:15:00",
        "--force",
    ]);
    assert_success(&out);
    assert!(
        std::fs::read_to_string(&timer)
            .unwrap()
            .contains("\nOnCalendar=*-*-* 01:15:00\n")
    );

    // The copies in dist/systemd are `coffer systemd print` for /usr/local/bin/coffer and a
    // configuration at the default place with backup_dir = /var/backups/coffer.
    let config = case.dir.path().join("dist.toml");
    std::fs::write(&config, "backup_dir = \"/var/backups/coffer\"\n").unwrap();
    let out = Command::new(COFFER)
        .args(["systemd", "print", "--binary", "/usr/local/bin/coffer"])
        .env_clear()
        .env("COFFER_CONFIG", &config)
        .output()
        .unwrap();
    assert_success(&out);
    let printed = stdout(&out);
    let mut sections: Vec<(&str, String)> = Vec::new();
    for part in printed.split("### ").filter(|p| !p.is_empty()) {
        let (name, text) = part.split_once('\n').unwrap();
        // print separates units with one blank line.
        sections.push((name, text.strip_suffix('\n').unwrap().to_string()));
    }
    assert_eq!(sections.iter().map(|s| s.0).collect::<Vec<_>>(), names);
    for (name, text) in sections {
        let dist = Path::new(DIST).join(name);
        let copy =
            std::fs::read_to_string(&dist).unwrap_or_else(|e| panic!("{}: {e}", dist.display()));
        assert_eq!(
            copy,
            text,
            "{} differs from `coffer systemd print`: regenerate it (README, Development)",
            dist.display()
        );
    }

    // A relative backup root cannot go in a unit.
    let out = Command::new(COFFER)
        .args(["--backup-dir", "relative", "systemd", "print"])
        .env_clear()
        .env("COFFER_CONFIG", &config)
        .output()
        .unwrap();
    assert_success(&out); // --backup-dir is made absolute
    std::fs::write(&config, "backup_dir = \"relative\"\n").unwrap();
    let out = Command::new(COFFER)
        .args(["systemd", "print"])
        .env_clear()
        .env("COFFER_CONFIG", &config)
        .output()
        .unwrap();
    assert_exit(&out, 2);
}

#[test]
fn the_failure_unit_reports_a_killed_backup_once() {
    let case = Case::new();
    let out_file = case.dir.path().join("paged");
    let extra = format!(
        "[hooks]\non_failure = [[\"sh\", \"-c\", \"echo \\\"$COFFER_ERROR\\\" >> {}\"]]\n",
        out_file.display()
    );
    case.write_config(&case.db_section(), &extra);
    // The unit failed without a record from coffer (say it was killed): paged and counted.
    let out = case.run(&["systemd", "notify-failure", "coffer-backup.service"]);
    assert_success(&out);
    let paged = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        paged.contains("journalctl -u coffer-backup.service"),
        "{paged}"
    );
    let out = case.run(&["status", "--max-failures", "1"]);
    assert_exit(&out, 10);
    // coffer itself recorded (and reported) a failure: the unit's failure is not paged again.
    case.write_config(
        &format!("url = \"{}\"\n", cluster().url("no_such_db")),
        &extra,
    );
    assert_exit(&case.run(&["backup", "--kind", "auto"]), 1);
    let out = case.run(&["systemd", "notify-failure", "coffer-backup.service"]);
    assert_success(&out);
    assert!(
        stderr(&out).contains("already recorded"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap().lines().count(),
        2
    );
}
