//! Flat dump files (`pg_dump DB | gzip > app_….sql.gz`, made by the real pg_dump without
//! `--clean`): restored into a new or empty database, refused up front for a database that
//! is not empty, and refused with nothing changed when cut, without their trailer, or
//! holding a psql meta-command; `verify FILE` checks them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

/// Runs the real pg_dump of the harness cluster on `db` (plain format, `extra` flags).
fn pg_dump(db: &str, extra: &[&str]) -> Vec<u8> {
    let out = Command::new("pg_dump")
        .args(["--format=plain", "--no-password"])
        .args(extra)
        .arg("--dbname")
        .arg(cluster().url(db))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run pg_dump: {e}; install the PostgreSQL client (apt-get install postgresql-client)")
        });
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `bytes` gzipped by the real gzip, as the cron scripts did.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = wait_within(child, RUN_LIMIT, "coffer");
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn write(case: &Case, name: &str, bytes: &[u8]) -> PathBuf {
    let path = case.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn database_exists(name: &str) -> bool {
    cluster()
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        )
        .unwrap()
        == "1"
}

fn new_name() -> String {
    format!("flat_{}", empty_database())
}

#[test]
fn a_gzipped_dump_without_clean_restores_into_a_new_or_empty_database() {
    let case = Case::new();
    let file = write(
        &case,
        "app_20250101_030000.sql.gz",
        &gzip(&pg_dump(&case.db, &[])),
    );
    let want = table_fingerprints(&case.db);
    assert!(!want.is_empty());

    // A database that does not exist is created.
    let target = new_name();
    let out = case.run(&["restore", arg(&file), "--target-db", &target, "--yes"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains("will be created"), "{text}");
    assert!(text.contains("workspace is left as it is"), "{text}");
    assert_eq!(table_fingerprints(&target), want);

    // An empty one is restored into.
    let empty = empty_database();
    let out = case.run(&[
        "restore",
        arg(&file),
        "--target-db",
        &empty,
        "--db-only",
        "--yes",
    ]);
    assert_success(&out);
    assert!(stdout(&out).contains(&format!("database {empty} is empty")));
    assert_eq!(table_fingerprints(&empty), want);

    // verify takes the file too.
    let out = case.run(&["verify", arg(&file)]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains("gzip integrity"), "{text}");
    assert!(text.contains("without --clean"), "{text}");
    assert!(text.contains("OK"), "{text}");
}

#[test]
fn a_dump_without_clean_is_refused_up_front_for_a_non_empty_database() {
    let case = Case::new();
    let file = write(&case, "app.sql.gz", &gzip(&pg_dump(&case.db, &[])));
    let before = Before::take(&case);
    let out = case.run(&["restore", arg(&file), "--yes"]);
    assert_exit(&out, 6);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("the database {} is not empty", case.db))
            && err.contains("no DROP statements"),
        "{err}"
    );
    assert!(err.contains("--target-db NAME"), "{err}");
    before.assert_unchanged(&case, "non-empty target");
}

#[test]
fn a_dump_made_with_clean_replaces_a_non_empty_database() {
    let case = Case::new();
    let want = table_fingerprints(&case.db);
    let file = write(
        &case,
        "app.sql",
        &pg_dump(&case.db, &["--clean", "--if-exists"]),
    );
    cluster()
        .psql(&case.db, "DELETE FROM public.audit_log")
        .unwrap();
    assert_ne!(table_fingerprints(&case.db), want);
    let out = case.run(&["restore", arg(&file), "--db-only", "--yes"]);
    assert_success(&out);
    assert_eq!(table_fingerprints(&case.db), want);
}

#[test]
fn a_dump_failing_in_psql_leaves_no_database_behind() {
    let case = Case::new();
    let dump = String::from_utf8(pg_dump(&case.db, &[])).unwrap();
    // Complete and harmless to the gate, but the server refuses it halfway.
    let failing = dump.replacen(
        "\n-- PostgreSQL database dump complete",
        "\nSELECT 1/0;\n\n-- PostgreSQL database dump complete",
        1,
    );
    assert_ne!(failing, dump);
    let file = write(&case, "failing.sql.gz", &gzip(failing.as_bytes()));
    let target = new_name();
    let out = case.run(&["restore", arg(&file), "--target-db", &target, "--yes"]);
    assert_exit(&out, 7);
    assert!(
        stderr(&out).contains("division by zero"),
        "{}",
        stderr(&out)
    );
    assert!(
        !database_exists(&target),
        "the created database was left behind"
    );
    // Into an empty database: rolled back, still empty.
    let empty = empty_database();
    let out = case.run(&["restore", arg(&file), "--target-db", &empty, "--yes"]);
    assert_exit(&out, 7);
    assert!(table_fingerprints(&empty).is_empty());
}

#[test]
fn cut_dumps_are_refused_with_nothing_changed() {
    let case = Case::new();
    let dump = pg_dump(&case.db, &[]);
    let gz = gzip(&dump);
    let cut_gz = write(&case, "cut.sql.gz", &gz[..gz.len() / 2]);
    let trailer = b"-- PostgreSQL database dump complete";
    let at = dump
        .windows(trailer.len())
        .rposition(|w| w == trailer)
        .expect("pg_dump writes its trailer");
    let no_trailer = write(&case, "no_trailer.sql", &dump[..at]);
    let before = Before::take(&case);
    for file in [&cut_gz, &no_trailer] {
        // Into a new database: refused before it is created.
        let target = new_name();
        let out = case.run(&["restore", arg(file), "--target-db", &target, "--yes"]);
        assert_exit(&out, 5);
        assert!(!database_exists(&target), "{}: created", file.display());
        // Into an empty one: still empty.
        let empty = empty_database();
        let out = case.run(&["restore", arg(file), "--target-db", &empty, "--yes"]);
        assert_exit(&out, 5);
        assert!(table_fingerprints(&empty).is_empty());
        // Into the configured one.
        let out = case.run(&["restore", arg(file), "--yes"]);
        assert_exit(&out, 5);
        before.assert_unchanged(&case, &file.display().to_string());
        let out = case.run(&["verify", arg(file)]);
        assert_exit(&out, 5);
    }
    let err = stderr(&case.run(&["restore", arg(&no_trailer), "--yes"]));
    assert!(err.contains("cut short"), "{err}");
    // Garbage after the last gzip member is refused as well.
    let trailing = write(
        &case,
        "trailing.sql.gz",
        &[gz.clone(), b"garbage".to_vec()].concat(),
    );
    assert_exit(&case.run(&["verify", arg(&trailing)]), 5);
    let target = new_name();
    let out = case.run(&["restore", arg(&trailing), "--target-db", &target, "--yes"]);
    assert_exit(&out, 5);
    assert!(!database_exists(&target));
}

#[test]
fn a_dump_with_a_psql_meta_command_is_refused() {
    let case = Case::new();
    let marker = case.dir.path().join("pwned");
    let dump = String::from_utf8(pg_dump(&case.db, &[])).unwrap();
    let hostile = dump.replacen(
        "SET statement_timeout = 0;\n",
        &format!(
            "SET statement_timeout = 0;\n\\! touch {}\n",
            marker.display()
        ),
        1,
    );
    assert_ne!(hostile, dump, "the dump sets statement_timeout");
    for (name, bytes) in [
        ("meta.sql", hostile.clone().into_bytes()),
        ("meta.sql.gz", gzip(hostile.as_bytes())),
    ] {
        let file = write(&case, name, &bytes);
        let target = new_name();
        let out = case.run(&["restore", arg(&file), "--target-db", &target, "--yes"]);
        assert_exit(&out, 5);
        assert!(
            error_line(&out).contains("meta-command"),
            "{}",
            stderr(&out)
        );
        assert!(!marker.exists(), "{name}: the meta-command ran");
        assert!(!database_exists(&target));
        assert_exit(&case.run(&["verify", arg(&file)]), 5);
    }
}

#[test]
fn files_that_are_not_plain_dumps_are_not_taken_for_one() {
    let case = Case::new();
    let before = Before::take(&case);
    // A bundle-like tar, gzipped, under a dump's name; a cluster dump; a plain dump gzipped
    // twice: each refused, nothing changed.
    let tar = case.dir.path().join("bundle.tar");
    sh(&format!(
        "tar -C {} -cf {} workspace",
        case.dir.path().display(),
        tar.display()
    ));
    let dump = pg_dump(&case.db, &[]);
    for (name, bytes) in [
        ("bundle.sql.gz", gzip(&std::fs::read(&tar).unwrap())),
        (
            "cluster.sql",
            b"--\n-- PostgreSQL database cluster dump\n--\n".to_vec(),
        ),
        ("twice.sql.gz", gzip(&gzip(&dump))),
    ] {
        let file = write(&case, name, &bytes);
        let out = case.run(&["restore", arg(&file), "--yes"]);
        assert_exit(&out, 5);
        assert!(error_line(&out).contains("pg_dump"), "{}", stderr(&out));
        assert_exit(&case.run(&["verify", arg(&file)]), 5);
    }
    // A bundle under its own name is no flat dump: it is looked up as a backup.
    let out = case.run(&["restore", arg(&tar), "--yes"]);
    assert!(!out.status.success());
    before.assert_unchanged(&case, "not a dump");
}
