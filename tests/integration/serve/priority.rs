//! `coffer serve` runs its HTTP threads at a lower scheduling priority (nice +10) than its
//! jobs: a backup's threads and its `pg_dump` keep the process's priority.

use std::time::Duration;

use super::{Serve, served_case};
use crate::harness::*;

/// A thread or process as /proc shows it: its id, name (`comm`) and niceness.
#[derive(Debug)]
struct Task {
    id: u32,
    name: String,
    nice: i32,
}

/// The task whose stat file is `dir/stat`, with its parent's id (`None` if it has ended).
fn task(dir: &std::path::Path) -> Option<(Task, u32)> {
    let id = dir.file_name()?.to_str()?.parse().ok()?;
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so split at the last
    // `)`; after it come field 3 (state), 4 (ppid), …, 19 (nice).
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let parent = fields.get(1)?.parse().ok()?;
    let nice = fields.get(16)?.parse().ok()?;
    let name = std::fs::read_to_string(dir.join("comm")).ok()?;
    Some((
        Task {
            id,
            name: name.trim_end().to_string(),
            nice,
        },
        parent,
    ))
}

/// The threads of process `pid`.
fn threads(pid: u32) -> Vec<Task> {
    let dir = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {dir}: {e}"));
    entries
        .filter_map(|e| task(&e.ok()?.path()))
        .map(|(t, _)| t)
        .collect()
}

/// The child processes of process `pid`.
fn children(pid: u32) -> Vec<Task> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| task(&e.ok()?.path()))
        .filter(|(_, parent)| *parent == pid)
        .map(|(t, _)| t)
        .collect()
}

#[test]
fn http_threads_run_ten_nicer_than_the_backup_its_threads_and_pg_dump() {
    let (case, tokens, admin, viewer) = served_case("");
    let dir = case.dir.path();
    // pg_dump's wrapper waits for `go` (at most 60 s) before it execs pg_dump in its place
    // (same process, same niceness): the backup is held with its child started.
    let hold = format!(
        "touch '{d}/dumping'; i=0; while [ ! -e '{d}/go' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done",
        d = dir.display()
    );
    case.write_config(
        &case.exec_wrapper(&hold),
        &format!("[server]\ntokens_file = \"{}\"\n", tokens.display()),
    );
    let server = Serve::start(&case);
    let pid = server.child.id();
    // Requests first, so that the blocking pool has threads too.
    for path in ["/v1/admin/backup/list", "/v1/admin/health", "/metrics"] {
        let (status, _, json) = server.get(path, Some(&viewer));
        assert!(status == 200 || status == 503, "{path}: {status} {json}");
    }
    let a = server.post("/v1/admin/backup/trigger", &admin, &[], "");
    assert_eq!(a.status, 202, "{}", a.json);
    let id = a.json["id"].as_str().unwrap().to_string();
    wait_until("the backup starts pg_dump", Duration::from_secs(60), || {
        dir.join("dumping").exists()
    });

    let threads = threads(pid);
    let base = threads
        .iter()
        .find(|t| t.id == pid)
        .expect("the main thread")
        .nice;
    // The server started at the test's priority: its main thread was not lowered.
    assert_eq!(
        base,
        rustix::process::getpriority_process(None).unwrap(),
        "{threads:?}"
    );
    let lowered = (base + 10).min(19);
    let (http, others): (Vec<&Task>, Vec<&Task>) = threads
        .iter()
        .partition(|t| t.name.starts_with("coffer-serve"));
    // Two runtime workers and at least one blocking thread.
    assert!(http.len() >= 3, "{threads:?}");
    assert!(http.iter().all(|t| t.nice == lowered), "{threads:?}");
    // Everything else — the main thread, the launcher, the job's thread and the threads it
    // started, the jobs' runtime — keeps the process's priority.
    assert!(others.iter().any(|t| t.name == "coffer-job"), "{threads:?}");
    assert!(others.iter().all(|t| t.nice == base), "{threads:?}");
    let children = children(pid);
    assert!(
        children.iter().any(|c| c.name == "pg-wrapper.sh"),
        "{children:?}"
    );
    assert!(children.iter().all(|c| c.nice == base), "{children:?}");

    std::fs::write(dir.join("go"), b"").unwrap();
    let job = server.outcome(&id, &viewer);
    assert_eq!(job["state"], "succeeded", "{job}");
}

#[test]
fn a_triggered_backup_syncs_to_the_remote_on_the_jobs_runtime() {
    let (case, tokens, admin, viewer) = served_case("");
    let offsite = case.dir.path().join("offsite");
    // The sync after the backup is the job's async part: it runs on the launcher's runtime.
    case.write_config(
        &case.db_section(),
        &format!(
            "[server]\ntokens_file = \"{}\"\n[remote]\nurl = \"file://{}\"\nsync_after_backup = true\n",
            tokens.display(),
            offsite.display()
        ),
    );
    let server = Serve::start(&case);
    let a = server.post("/v1/admin/backup/trigger", &admin, &[], "");
    assert_eq!(a.status, 202, "{}", a.json);
    let job = server.outcome(a.json["id"].as_str().unwrap(), &viewer);
    assert_eq!(job["state"], "succeeded", "{job}");
    // A failed sync would only be a warning of a successful backup.
    assert_eq!(job["result"]["warnings"], serde_json::json!([]), "{job}");
    let backups = case.backups();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let name = backups[0].file_name().unwrap();
    assert!(offsite.join(name).join("manifest.json").is_file(), "{job}");
}
