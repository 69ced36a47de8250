//! `coffer backup`, checked with the standard tools an operator would use in a disaster.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn plain_backup_is_complete_and_readable_with_standard_tools() {
    let case = Case::new();
    let backup = case.backup_ok(&["--label", "pre-upgrade-1.4"]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("manual-")
            && name.ends_with('Z')
            && name.len() == "manual-20261123T030000Z".len(),
        "{name}"
    );

    // Layout and permissions.
    let files = file_names(&backup);
    assert_eq!(
        files,
        [
            "SHA256SUMS",
            "manifest.json",
            "postgres.sql.gz",
            "workspace.tar.gz"
        ]
    );
    assert_eq!(mode(&case.root), 0o700);
    assert_eq!(mode(&backup), 0o700);
    for f in &files {
        assert_eq!(mode(&backup.join(f)), 0o600, "{f}");
    }
    assert!(
        case.root_entries()
            .iter()
            .all(|n| !n.starts_with(".coffer-staging"))
    );

    // Standard tools.
    let b = backup.display();
    sh(&format!("cd {b} && sha256sum -c --strict SHA256SUMS"));
    sh(&format!(
        "gunzip -t {b}/postgres.sql.gz {b}/workspace.tar.gz"
    ));

    // The tar lists exactly the workspace: minus cache/** (excluded), fifo and socket.
    let listing = run_ok(
        Command::new("tar")
            .args(["--quoting-style=literal", "-tzf"])
            .arg(backup.join("workspace.tar.gz")),
    );
    let mut listed: Vec<Vec<u8>> = listing
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = l.strip_prefix(b"./").unwrap_or(l);
            l.strip_suffix(b"/").unwrap_or(l).to_vec()
        })
        .filter(|l| !l.is_empty() && l != b".")
        .collect();
    listed.sort();
    let expected: Vec<Vec<u8>> = walk(&case.workspace)
        .into_iter()
        .filter(|p| !p.starts_with(b"cache/") && p != b"run/app.fifo" && p != b"run/app.sock")
        .collect();
    assert_eq!(
        listed
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>(),
        expected
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
    );

    // GNU tar extracts it to the same bytes, symlinks and hard links included.
    let out_dir = case.dir.path().join("extracted");
    std::fs::create_dir(&out_dir).unwrap();
    sh(&format!(
        "tar -xzf {b}/workspace.tar.gz -C {}",
        out_dir.display()
    ));
    sh(&format!(
        "diff -r --no-dereference --exclude=cache --exclude=run {} {}",
        case.workspace.display(),
        out_dir.display()
    ));
    assert_eq!(
        std::fs::read_link(out_dir.join("current")).unwrap(),
        Path::new("releases/v1.4.0")
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(out_dir.join("uploads/report-1-hardlink.txt"))
            .unwrap()
            .ino(),
        std::fs::metadata(out_dir.join("uploads/2025/06/report-1.txt"))
            .unwrap()
            .ino(),
        "hard link restored as a link"
    );
    assert_eq!(mode(&out_dir.join("releases/v1.4.0/migrate.sh")), 0o755);

    // The dump replays with gunzip | psql into a fresh database, table for table.
    let fresh = empty_database();
    let c = cluster();
    let env: Vec<String> = c
        .env(&fresh)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    sh(&format!(
        "gunzip -c {b}/postgres.sql.gz | env {} psql -X -q -v ON_ERROR_STOP=1 >/dev/null",
        env.join(" ")
    ));
    let original = table_fingerprints(&case.db);
    assert_eq!(original.len(), 9, "{original:?}");
    assert_eq!(table_fingerprints(&fresh), original);

    // The manifest.
    let m = manifest(&backup);
    assert_eq!(m["format"], 1);
    assert_eq!(m["name"], name.as_str());
    assert_eq!(m["kind"], "manual");
    assert_eq!(m["label"], "pre-upgrade-1.4");
    assert_eq!(m["alembic_head"], HEAD);
    assert_eq!(m["database"]["name"], case.db.as_str());
    assert!(
        m["database"]["server_version"]
            .as_str()
            .unwrap()
            .starts_with("15")
    );
    assert!(
        m["database"]["pg_dump_version"]
            .as_str()
            .unwrap()
            .starts_with("15.")
    );
    assert!(m["db_size"].as_u64().unwrap() > 1_000_000);
    assert_eq!(
        m["workspace_path"],
        case.workspace.display().to_string().as_str()
    );
    for k in [
        "timestamp",
        "created_at",
        "completed_at",
        "coffer_version",
        "hostname",
    ] {
        assert!(m[k].is_string(), "{k}");
    }
    let tables = &m["database"]["tables"];
    for (t, n) in [
        ("public.users", 500),
        ("public.projects", 60),
        ("public.documents", 2000),
        ("public.attachments", 120),
        ("public.audit_log", 5000),
        ("public.alembic_version", 1),
        ("reporting.daily_totals", 30),
        ("public.pending_jobs", 0),
    ] {
        assert_eq!(tables[t], n, "{t} in {tables}");
    }
    assert_eq!(tables.as_object().unwrap().len(), 9, "{tables}");
    let ws = &m["workspace"];
    assert_eq!(ws["symlinks"], 2);
    assert_eq!(ws["hardlinks"], 1);
    let skipped = ws["skipped"].to_string();
    assert!(
        skipped.contains("run/app.fifo") && skipped.contains("run/app.sock"),
        "{skipped}"
    );
    for a in m["artifacts"].as_array().unwrap() {
        let file = backup.join(a["file"].as_str().unwrap());
        assert_eq!(a["size"], std::fs::metadata(&file).unwrap().len());
        let sum = sh(&format!("sha256sum {}", file.display()));
        assert_eq!(a["sha256"], sum.split_whitespace().next().unwrap());
        let plain = sh(&format!("gunzip -c {} | sha256sum", file.display()));
        assert_eq!(
            a["uncompressed_sha256"],
            plain.split_whitespace().next().unwrap()
        );
        assert_eq!(a["compression"], "gzip");
        assert!(a["encryption"].is_null());
    }
}

#[test]
fn json_summary_and_auto_kind() {
    let case = Case::new();
    let out = case.run(&["backup", "--kind", "auto", "--json", "--quiet"]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert!(v["manifest"]["name"].as_str().unwrap().starts_with("auto-"));
    assert_eq!(v["manifest"]["kind"], "auto");
    assert!(
        Path::new(v["path"].as_str().unwrap())
            .join("manifest.json")
            .is_file()
    );
    assert!(stderr(&out).is_empty(), "--quiet: {}", stderr(&out));
}

#[test]
fn progress_steps_follow_the_backup_from_the_checks_to_the_hooks() {
    let case = Case::new();
    let hook_ran = case.dir.path().join("hook-ran");
    case.write_config(
        &case.db_section(),
        &format!(
            "[hooks]\non_success = [[\"touch\", \"{}\"]]\n",
            hook_ran.display()
        ),
    );
    let steps = [
        "checking the database connection and pg_dump version",
        "dumping the database and archiving the workspace",
        "writing the checksums and the manifest",
        "renaming the backup into place",
        "pruning the backup root",
        "running the on_success hooks",
    ];
    // Off a terminal every step is one line on stderr: each once, in the run's order.
    let out = case.run(&["backup"]);
    assert_success(&out);
    let err = stderr(&out);
    let seen: Vec<&str> = err.lines().filter(|l| steps.contains(l)).collect();
    assert_eq!(seen, steps, "{err}");
    assert!(hook_ran.exists());

    // Without a workspace, prune or hooks: only the steps that run.
    std::fs::write(
        &case.config,
        format!(
            "backup_dir = \"{}\"\n[database]\n{}",
            case.root.display(),
            case.db_section()
        ),
    )
    .unwrap();
    let out = case.run(&["backup", "--no-prune"]);
    assert_success(&out);
    let err = stderr(&out);
    let seen: Vec<&str> = err
        .lines()
        .filter(|l| steps.contains(l) || *l == "dumping the database")
        .collect();
    assert_eq!(
        seen,
        [
            "checking the database connection and pg_dump version",
            "dumping the database",
            "writing the checksums and the manifest",
            "renaming the backup into place",
        ],
        "{err}"
    );
}

#[test]
fn encrypted_backup_writes_no_plaintext_and_age_cli_decrypts_it() {
    let case = Case::new();
    let key = case.dir.path().join("identity.txt");
    let out = case.run(&["keygen", "--output", key.to_str().unwrap()]);
    assert_success(&out);
    let public = stdout(&out).trim().to_string();
    assert!(public.starts_with("age1"), "{public}");
    assert_eq!(mode(&key), 0o600);
    // keygen never overwrites an identity.
    let again = case.run(&["keygen", "--output", key.to_str().unwrap()]);
    assert_exit(&again, 1);
    assert!(std::fs::read_to_string(&key).unwrap().contains(&public));

    case.write_config(
        &case.db_section(),
        &format!("[encryption]\nrecipients = [\"{public}\"]\n"),
    );
    let backup = case.backup_ok(&[]);
    let files = file_names(&backup);
    assert_eq!(
        files,
        [
            "SHA256SUMS",
            "manifest.json",
            "postgres.sql.gz.age",
            "workspace.tar.gz.age"
        ]
    );
    let b = backup.display();
    sh(&format!("cd {b} && sha256sum -c SHA256SUMS"));
    let k = key.display();
    let tail = sh(&format!(
        "age -d -i {k} {b}/postgres.sql.gz.age | gunzip -c | tail -c 200"
    ));
    assert!(tail.contains("PostgreSQL database dump complete"), "{tail}");
    sh(&format!(
        "age -d -i {k} {b}/workspace.tar.gz.age | tar -tzf - | grep -c README.md >/dev/null"
    ));
    // The ciphertext is not gzip.
    assert!(
        Command::new("gunzip")
            .arg("-t")
            .arg(backup.join("postgres.sql.gz.age"))
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );
    let m = manifest(&backup);
    for a in m["artifacts"].as_array().unwrap() {
        assert_eq!(a["encryption"], "age");
        let plain = sh(&format!(
            "age -d -i {k} {b}/{} | gunzip -c | sha256sum",
            a["file"].as_str().unwrap()
        ));
        assert_eq!(
            a["uncompressed_sha256"],
            plain.split_whitespace().next().unwrap()
        );
    }
    assert_eq!(m["alembic_head"], HEAD);
}

#[test]
fn invalid_recipient_stops_before_anything_is_written() {
    let case = Case::new();
    case.write_config(
        &case.db_section(),
        "[encryption]\nrecipients = [\"age1notavalidkey\"]\n",
    );
    let out = case.run(&["backup"]);
    assert_exit(&out, 2);
    assert!(
        error_line(&out).starts_with("error: invalid age recipient"),
        "{}",
        stderr(&out)
    );
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());

    case.write_config(
        &case.db_section(),
        "[encryption]\nrecipients_file = \"/nonexistent/keys.txt\"\n",
    );
    let out = case.run(&["backup"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("/nonexistent/keys.txt"),
        "{}",
        stderr(&out)
    );
    assert!(case.root_entries().is_empty());
}

#[test]
fn invalid_config_is_rejected_naming_file_and_key() {
    let case = Case::new();
    std::fs::write(
        &case.config,
        "backup_dir = \"/tmp/x\"\n[compression]\nlevel = 42\n",
    )
    .unwrap();
    let out = case.run(&["backup"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(&case.config.display().to_string()) && err.contains("compression.level"),
        "{err}"
    );
    std::fs::write(&case.config, "[workspace]\npaht = \"/srv\"\n").unwrap();
    let out = case.run(&["list"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("workspace.paht") && stderr(&out).contains("unknown field"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unreachable_database_fails_clearly_and_never_shows_the_password() {
    let case = Case::new();
    case.write_config(
        "url = \"postgres://postgres:hunter2@127.0.0.1:1/portal\"\n",
        "",
    );
    let out = case.run(&["backup"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        error_line(&out).starts_with("error: psql query failed"),
        "{err}"
    );
    assert!(err.contains("connection settings"), "{err}");
    assert!(
        !err.contains("hunter2") && !stdout(&out).contains("hunter2"),
        "{err}"
    );
    assert!(case.backups().is_empty());
}

#[test]
fn wrong_database_fails_before_writing() {
    let case = Case::new();
    case.write_config(&format!("url = \"{}\"\n", cluster().url("no_such_db")), "");
    let out = case.run(&["backup"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("\"no_such_db\" does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(case.root_entries().is_empty());
}

#[test]
fn pg_dump_failing_leaves_nothing_and_shows_its_stderr() {
    let case = Case::new();
    case.write_config(
        &case.exec_wrapper("exec pg_dump \"$@\" --table=no_such_table_xyz"),
        "",
    );
    let out = case.run(&["backup"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        error_line(&out).starts_with("error: pg_dump failed (exit code 1)"),
        "{err}"
    );
    assert!(err.contains("no matching tables were found"), "{err}");
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());
}

#[test]
fn pg_dump_killed_mid_stream_leaves_nothing() {
    let case = Case::new();
    case.write_config(
        &case.exec_wrapper("pg_dump \"$@\" | head -c 300000\nkill -KILL $$"),
        "",
    );
    let out = case.run(&["backup"]);
    assert_exit(&out, 1);
    assert!(
        error_line(&out).starts_with("error: pg_dump failed (killed by signal 9)"),
        "{}",
        stderr(&out)
    );
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());
}

#[test]
fn dump_cut_short_with_success_status_is_refused() {
    let case = Case::new();
    case.write_config(
        &case.exec_wrapper("pg_dump \"$@\" | head -c 300000\nexit 0"),
        "",
    );
    let out = case.run(&["backup"]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("ended early"), "{}", stderr(&out));
    assert!(case.root_entries().is_empty());
}

#[test]
fn pg_dump_older_than_server_is_refused_naming_both_versions() {
    let case = Case::new();
    let db = case.exec_wrapper("");
    let script = case.dir.path().join("pg-wrapper.sh");
    let text = std::fs::read_to_string(&script).unwrap().replace(
        "prog=$1; shift\n",
        "prog=$1; shift\nif [ \"$prog $1\" = \"pg_dump --version\" ]; then echo 'pg_dump (PostgreSQL) 13.9'; exit 0; fi\n",
    );
    std::fs::write(&script, text).unwrap();
    case.write_config(&db, "");
    let out = case.run(&["backup"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("pg_dump 13.9 is older than the server (15."),
        "{err}"
    );
    assert!(case.root_entries().is_empty());
}

/// Starts a backup whose pg_dump stalls after some output, and waits until its staging
/// directory holds data.
#[allow(clippy::zombie_processes)] // returned to the caller, which waits for it
fn start_stalled_backup(case: &Case) -> Child {
    case.write_config(
        &case.exec_wrapper("pg_dump \"$@\" | { head -c 200000; sleep 120; }\nexit 0"),
        "",
    );
    let mut child = case
        .coffer()
        .args(["backup", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let staged = case
            .root_entries()
            .iter()
            .find(|n| n.starts_with(".coffer-staging-"))
            .map(|n| case.root.join(n).join("postgres.sql.gz"))
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some();
        if staged {
            // Let pg_dump's first bytes reach the file.
            std::thread::sleep(Duration::from_millis(300));
            return child;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("backup never started writing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("coffer did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_mid_backup_removes_the_staging_directory() {
    let case = Case::new();
    let mut child = start_stalled_backup(&case);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = wait_timeout(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(143), "{status}");
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("interrupted by signal 15"), "{err}");
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());
}

#[test]
fn a_second_backup_is_refused_while_one_runs_naming_the_holder() {
    let case = Case::new();
    let mut first = start_stalled_backup(&case);
    let out = case.run(&["backup"]);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("pid {}", first.id())) && err.contains("backup started"),
        "{err}"
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&first),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    wait_timeout(&mut first, Duration::from_secs(20));
    // The lock died with its holder: the next backup runs.
    case.write_config(&case.db_section(), "");
    case.backup_ok(&[]);
}

#[test]
fn disk_full_fails_cleanly() {
    let case = Case::new();
    std::fs::create_dir(&case.root).unwrap();
    let _guard = mount_tmpfs(&case.root, "256k");
    let out = case.run(&["backup"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("No space left on device") && err.contains("free space"),
        "{err}"
    );
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());
}

#[test]
fn unreadable_workspace_file_fails_and_leaves_nothing() {
    let case = Case::new();
    let secret = case.workspace.join("config/locked.key");
    std::fs::write(&secret, "x").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = if is_root() {
        // Root reads anything: run coffer as `nobody`, who can read all but that file.
        std::fs::set_permissions(case.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(&case.root).unwrap();
        run_ok(Command::new("chown").args(["-R", "nobody"]).arg(&case.root));
        run_ok(
            Command::new("chmod")
                .args(["-R", "a+rX"])
                .arg(&case.workspace)
                .arg(&case.config),
        );
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "nobody", "--", COFFER, "--config"])
            .arg(&case.config)
            .arg("backup");
        cmd.output().unwrap()
    } else {
        case.run(&["backup"])
    };
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("config/locked.key") && err.contains("Permission denied"),
        "{err}"
    );
    assert!(case.root_entries().is_empty(), "{:?}", case.root_entries());
}

#[test]
fn files_changing_during_the_archive_are_reported_and_strict_exits_4() {
    let case = Case::new();
    let busy = case.workspace.join("busy.log");
    // 64 MiB takes a good fraction of a second to archive; the writer below changes it in
    // place every 100 µs, so its mtime moves while it is being read.
    std::fs::write(&busy, vec![b'x'; 64 << 20]).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let file = std::fs::OpenOptions::new().write(true).open(&busy).unwrap();
        std::thread::spawn(move || {
            use std::os::unix::fs::FileExt;
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                file.write_at(b"changed", (i * 4099) % (64 << 20)).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    let out = case.run(&["backup", "--strict"]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    assert_exit(&out, 4);
    assert!(
        stdout(&out).contains("changed while archived: busy.log"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("--strict"), "{}", stderr(&out));
    let backup = case.backups().pop().expect("the backup is kept");
    let m = manifest(&backup);
    assert!(
        m["workspace"]["changed"].to_string().contains("busy.log"),
        "{}",
        m["workspace"]
    );
    sh(&format!(
        "tar -tzf {}/workspace.tar.gz >/dev/null",
        backup.display()
    ));
    sh(&format!(
        "cd {} && sha256sum -c SHA256SUMS",
        backup.display()
    ));
}
