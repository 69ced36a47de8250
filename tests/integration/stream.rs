//! `restore --from-remote` streams each artifact from a real S3-protocol server (s3s-fs)
//! straight into the restore: nothing is written to the backup root, and nothing commits
//! before every artifact's size and both hashes matched the manifest.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use crate::harness::*;

fn name_of(backup: &Path) -> String {
    backup.file_name().unwrap().to_string_lossy().into_owned()
}

/// The real binary with the S3 credentials and its temporary directory in `tmp` (where a
/// streamed restore keeps the backup's manifest and checksums, and nothing else).
fn coffer_s3(case: &Case, tmp: &Path) -> std::process::Command {
    let mut cmd = case.coffer();
    with_s3_credentials(&mut cmd, S3_SECRET);
    cmd.env("TMPDIR", tmp);
    cmd
}

fn run_s3(case: &Case, tmp: &Path, args: &[&str]) -> Output {
    coffer_s3(case, tmp).args(args).output().unwrap()
}

/// A private temporary directory for coffer's TMPDIR, inside the case.
fn tmp_dir(case: &Case) -> PathBuf {
    let tmp = case.dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    tmp
}

/// Changes the database and the workspace after a backup.
fn change_live_state(case: &Case) {
    cluster()
        .psql(
            &case.db,
            "UPDATE users SET display_name = 'changed' WHERE id <= 10; DROP TABLE attachments",
        )
        .unwrap();
    std::fs::write(case.workspace.join("added-after-backup.txt"), b"new\n").unwrap();
}

/// Nothing of a restore is left: no staging directory beside the workspace, nothing in
/// coffer's temporary directory.
fn assert_no_leftovers(case: &Case, tmp: &Path) {
    let beside = file_names(case.workspace.parent().unwrap());
    assert!(
        !beside.iter().any(|n| n.contains("coffer-")),
        "left beside the workspace: {beside:?}"
    );
    assert!(
        file_names(tmp).is_empty(),
        "left in TMPDIR: {:?}",
        file_names(tmp)
    );
}

#[test]
fn streamed_restore_needs_no_room_in_the_backup_root() {
    // A server of its own: its uploads never look like another test's in progress.
    let server = S3Server::start();
    server.create_bucket(S3_BUCKET);
    let case = Case::new();
    // 6 MiB of random bytes: the workspace artifact alone is larger than the root below.
    random_file(&case.workspace.join("random.bin"), 6 << 20);
    case.write_config(
        &case.db_section(),
        &server.remote_section(S3_BUCKET, "stream/room", ""),
    );
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    let size: u64 = std::fs::read_dir(&backup)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let tmp = tmp_dir(&case);
    assert_success(&run_s3(&case, &tmp, &["sync"]));

    // The host is lost: an empty backup root on a tmpfs of 1 MiB, smaller than the backup
    // (over 6 MiB): a full local copy cannot fit, only the run log does.
    std::fs::remove_dir_all(&case.root).unwrap();
    std::fs::create_dir(&case.root).unwrap();
    let _mount = mount_tmpfs(&case.root, "1m");
    assert!(size > 2 << 20, "the backup is only {size} bytes");
    change_live_state(&case);

    let out = run_s3(
        &case,
        &tmp,
        &["restore", "--from-remote", "--latest", "--yes"],
    );
    assert_success(&out);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{name}: streaming from s3://{S3_BUCKET}/stream/room"
        )),
        "{err}"
    );
    assert!(
        stdout(&out).contains("nothing is written to the backup root"),
        "{}",
        stdout(&out)
    );
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);
    // Nothing of the backup was written to the root.
    assert!(
        !case
            .root_entries()
            .iter()
            .any(|e| e.contains(&name) || e.starts_with(".coffer")),
        "{:?}",
        case.root_entries()
    );
    assert_no_leftovers(&case, &tmp);
}

/// A `database.exec` wrapper that holds the psql reading the dump (the one without `-c`)
/// until `<case>/go` exists, after touching `<case>/started`; every other program runs as is.
fn psql_gate(case: &Case) -> PathBuf {
    let dir = case.dir.path();
    let wrapper = dir.join("gate-psql.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprog=$1; shift\nif [ \"$prog\" = psql ]; then\n  case \" $* \" in\n    *\" -c \"*) ;;\n    *) touch '{d}/started'; i=0\n       while [ ! -e '{d}/go' ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done ;;\n  esac\nfi\nexec \"$prog\" \"$@\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    make_executable(&wrapper);
    wrapper
}

#[test]
fn server_stopped_mid_stream_rolls_back_and_leaves_nothing() {
    let server = S3Server::start();
    server.create_bucket("streamstop");
    let case = Case::new();
    // A dump of tens of MiB even compressed (hex digits of random hashes): many more ranged
    // reads than the few chunks the stream fetches ahead of psql.
    cluster()
        .psql(
            &case.db,
            "CREATE TABLE bulk AS SELECT g, md5(random()::text) || md5(random()::text) AS h \
             FROM generate_series(1, 1500000) g",
        )
        .unwrap();
    let remote = server.remote_section(
        "streamstop",
        "p",
        "max_retries = 2\nretry_timeout = 5\ntimeout = 20",
    );
    case.write_config(&case.db_section(), &remote);
    case.backup_ok(&[]);
    let tmp = tmp_dir(&case);
    assert_success(&run_s3(&case, &tmp, &["sync"]));
    std::fs::remove_dir_all(&case.root).unwrap();
    change_live_state(&case);
    let before = Before::take(&case);

    // psql is held before it reads a byte, so the stream cannot get past the chunks it
    // fetches ahead; the server is stopped then, and psql let go.
    let gate = psql_gate(&case);
    case.write_config(
        &format!(
            "url = \"{}\"\nexec = [\"{}\"]\n",
            cluster().url(&case.db),
            gate.display()
        ),
        &remote,
    );
    let child = coffer_s3(&case, &tmp)
        .args(["restore", "--from-remote", "--latest", "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = case.dir.path().join("started");
    wait_until(
        "the restore's psql started",
        std::time::Duration::from_secs(120),
        || started.exists(),
    );
    server.stop();
    std::fs::write(case.dir.path().join("go"), b"").unwrap();
    let out = wait_within(child, RUN_LIMIT, "coffer");
    let code = out.status.code();
    assert!(
        code == Some(7) || code == Some(12),
        "exit {code:?}\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let line = error_line(&out);
    // Exit 7: the stream's ranged read failed (after the store's retries) and everything
    // was rolled back; 12 if the remote was already gone when the stream was opened.
    assert!(
        line.contains("rolled back") && line.contains("downloading artifact")
            || line.contains("unavailable"),
        "{line}"
    );
    assert!(!stderr(&out).contains(S3_SECRET));
    before.assert_state_unchanged(&case, "server stopped mid-stream");
    assert_no_leftovers(&case, &tmp);
    assert!(
        !case.root.exists() || case.backups().is_empty(),
        "{:?}",
        case.root_entries()
    );
}

#[test]
fn a_tampered_remote_artifact_is_refused_by_the_stream_and_nothing_changes() {
    let server = S3Server::start();
    server.create_bucket(S3_BUCKET);
    let case = Case::new();
    case.write_config(
        &case.db_section(),
        &server.remote_section(S3_BUCKET, "stream/tampered", ""),
    );
    let name = name_of(&case.backup_ok(&[]));
    let tmp = tmp_dir(&case);
    assert_success(&run_s3(&case, &tmp, &["sync"]));
    std::fs::remove_dir_all(&case.root).unwrap();
    change_live_state(&case);
    let before = Before::take(&case);
    let remote_dir = server
        .data
        .join(S3_BUCKET)
        .join("stream/tampered")
        .join(&name);
    for file in ["postgres.sql.gz", "workspace.tar.gz"] {
        // Same size, one byte flipped, the manifest and SHA256SUMS untouched.
        let artifact = remote_dir.join(file);
        let original = std::fs::read(&artifact).unwrap();
        let mut bytes = original.clone();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&artifact, &bytes).unwrap();

        let out = run_s3(&case, &tmp, &["restore", "--from-remote", &name, "--yes"]);
        assert_exit(&out, 5);
        let line = error_line(&out);
        assert!(
            line.contains(&format!("backup {name} failed verification"))
                && line.contains("nothing was changed"),
            "{file}: {line}"
        );
        before.assert_state_unchanged(&case, file);
        assert_no_leftovers(&case, &tmp);
        assert!(!case.root.join(&name).exists());
        std::fs::write(&artifact, &original).unwrap();
    }
}

/// A case with the parallel tests' large tables and objects, backed up once unencrypted and
/// once age-encrypted and synced to `server` (the root then lost): the two backups' names
/// and the database's fingerprint at backup time.
fn synced_piece_backups(
    server: &S3Server,
    case: &Case,
    tmp: &Path,
) -> ([String; 2], crate::parallel::Fingerprint) {
    crate::parallel::add_large_tables(case);
    crate::parallel::add_objects(case);
    let before = crate::parallel::fingerprint(&case.db);
    let remote = server.remote_section(S3_BUCKET, "stream/jobs", "");
    case.write_config(&case.db_section(), &remote);
    let plain = name_of(&case.backup_ok(&[]));
    let (key, public) = case.keygen("identity.txt");
    case.write_config(
        &case.db_section(),
        &format!(
            "{remote}\n[encryption]\nrecipients = [\"{public}\"]\nidentity_file = \"{}\"\n",
            key.display()
        ),
    );
    let encrypted = name_of(&case.backup_ok(&[]));
    assert_success(&run_s3(case, tmp, &["sync"]));
    std::fs::remove_dir_all(&case.root).unwrap();
    ([plain, encrypted], before)
}

/// `restore --from-remote --jobs 4` fetches each piece with its own ranged reads into its
/// session while the whole object is hashed alongside: the database equals the one
/// `--jobs 1` restores, encrypted or not, and nothing is left behind.
#[test]
fn streamed_restore_with_4_sessions_restores_what_one_session_does() {
    let server = S3Server::start();
    server.create_bucket(S3_BUCKET);
    let case = Case::new();
    let tmp = tmp_dir(&case);
    let (names, before) = synced_piece_backups(&server, &case, &tmp);
    for name in &names {
        change_live_state(&case);
        let out = run_s3(
            &case,
            &tmp,
            &["restore", "--from-remote", name, "--yes", "--jobs", "1"],
        );
        assert_success(&out);
        assert!(!stdout(&out).contains("sessions into"), "{}", stdout(&out));
        assert_eq!(
            crate::parallel::fingerprint(&case.db),
            before,
            "{name}: --jobs 1"
        );

        change_live_state(&case);
        let args = [
            "restore",
            "--from-remote",
            name,
            "--yes",
            "--jobs",
            "4",
            "--json",
        ];
        let out = run_s3(&case, &tmp, &args);
        assert_success(&out);
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let m = manifest(&server.data.join(S3_BUCKET).join("stream/jobs").join(name));
        let data_pieces = m["artifacts"][0]["pieces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["kind"] == "data")
            .count();
        assert!(data_pieces >= 3, "{name}: {data_pieces} data pieces");
        let jobs = &v["report"]["database"]["phases"]["jobs"];
        assert_eq!(jobs, data_pieces.min(4), "{name}: {v}");
        assert!(
            v["report"]["database"]["phases"]["prove"]
                .as_f64()
                .is_some(),
            "{name}: {v}"
        );
        assert_eq!(
            crate::parallel::fingerprint(&case.db),
            before,
            "{name}: --jobs 4"
        );
        assert_eq!(
            crate::parallel::databases_like(&case),
            vec![case.db.clone()]
        );
        assert_no_leftovers(&case, &tmp);
        assert!(
            !case.root.join(name).exists(),
            "{name} was written to the root"
        );
    }
}

/// A remote artifact altered inside one data piece where no decoder looks (a gzip member's
/// MTIME field, same size): every piece still decodes to its recorded SHA-256, so only the
/// whole-object hash read alongside the sessions catches it; the restore fails as damage
/// before the swap, and nothing changes.
#[test]
fn a_remote_artifact_altered_inside_a_piece_fails_the_parallel_restore() {
    let server = S3Server::start();
    server.create_bucket(S3_BUCKET);
    let case = Case::new();
    let tmp = tmp_dir(&case);
    let ([name, _], _) = synced_piece_backups(&server, &case, &tmp);
    let object = server
        .data
        .join(S3_BUCKET)
        .join("stream/jobs")
        .join(&name)
        .join("postgres.sql.gz");
    let m = manifest(object.parent().unwrap());
    let pieces = m["artifacts"][0]["pieces"].as_array().unwrap();
    let data = pieces.iter().rfind(|p| p["kind"] == "data").unwrap();
    let mtime = data["offset"].as_u64().unwrap() as usize + 4;
    let mut bytes = std::fs::read(&object).unwrap();
    assert_eq!(
        &bytes[mtime - 4..mtime - 1],
        b"\x1f\x8b\x08",
        "a gzip member starts there"
    );
    bytes[mtime] ^= 0x5a;
    std::fs::write(&object, &bytes).unwrap();

    change_live_state(&case);
    let before = Before::take(&case);
    let out = run_s3(
        &case,
        &tmp,
        &["restore", "--from-remote", &name, "--yes", "--jobs", "4"],
    );
    assert_exit(&out, 5);
    let line = error_line(&out);
    assert!(
        line.contains(&format!("backup {name} failed verification"))
            && line.contains("stored sha256"),
        "{line}"
    );
    before.assert_state_unchanged(&case, "altered remote piece");
    assert_eq!(
        crate::parallel::databases_like(&case),
        vec![case.db.clone()]
    );
    assert_no_leftovers(&case, &tmp);
}
