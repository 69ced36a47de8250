//! `coffer serve` stopped by SIGTERM while a restore job streams the dump into psql.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Serve, served_case};
use crate::harness::*;

/// A `database.exec` wrapper whose first dump-loading psql (script mode: `-A`, neither
/// `-c` nor `-1`) touches `stalled` and waits for `go` (at most 60 s) before it starts.
fn stalling_psql(case: &Case) -> String {
    let dir = case.dir.path();
    let wrapper = dir.join("stall-psql.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprog=$1; shift\nif [ \"$prog\" = psql ] && [ ! -e '{d}/stalled' ]; then\n  case \" $* \" in\n    *\" -c \"*|*\" -1 \"*) ;;\n    *\" -A \"*) touch '{d}/stalled'; i=0; while [ ! -e '{d}/go' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done ;;\n  esac\nfi\nexec \"$prog\" \"$@\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    make_executable(&wrapper);
    format!(
        "url = \"{}\"\nexec = [\"{}\"]\n",
        cluster().url(&case.db),
        wrapper.display()
    )
}

#[test]
fn sigterm_during_a_restore_job_rolls_it_back_and_stops_cleanly() {
    let (case, tokens, admin, viewer) = served_case("");
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    cluster()
        .psql(
            &case.db,
            "UPDATE users SET display_name = 'changed' WHERE id <= 10",
        )
        .unwrap();
    std::fs::write(case.workspace.join("added-after-backup.txt"), b"new\n").unwrap();
    let changed = Before::take(&case);
    case.write_config(
        &stalling_psql(&case),
        &format!("[server]\ntokens_file = \"{}\"\n", tokens.display()),
    );
    let mut server = Serve::start(&case);
    let r = server.post(
        &format!("/v1/admin/backup/{name}/restore"),
        &admin,
        &[("X-Confirm-Restore", "yes")],
        "",
    );
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.json["id"].as_str().unwrap().to_string();
    // The dump is being streamed: psql is started (and held), the stream has begun.
    wait_until(
        "the restore streams the dump",
        Duration::from_secs(60),
        || {
            let (_, _, job) = server.get(&format!("/v1/admin/jobs/{id}"), Some(&viewer));
            case.dir.path().join("stalled").exists() && job["artifacts"]["database"].is_object()
        },
    );
    let pid = rustix::process::Pid::from_child(&server.child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    std::fs::write(case.dir.path().join("go"), b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "coffer serve did not stop within 120s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    changed.assert_unchanged(&case, "restore interrupted by SIGTERM");
    assert_eq!(case.root_entries(), vec![name.clone()]);
    // Recorded like a command-line restore stopped by a signal.
    let log = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        (
            last["operation"].as_str(),
            last["outcome"].as_str(),
            last["backup"].as_str()
        ),
        (Some("restore"), Some("failure"), Some(name.as_str())),
        "{last}"
    );
    assert!(
        last["error"]
            .as_str()
            .unwrap_or_default()
            .contains("signal 15")
            || last["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("signal 15"),
        "{last}"
    );
}
