//! One-file bundles: `export`, `import`, `backup --output`, checked with GNU tar and
//! sha256sum, and hostile bundles refused with nothing imported.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::harness::*;

fn name_of(backup: &Path) -> String {
    backup.file_name().unwrap().to_string_lossy().into_owned()
}

/// `coffer --backup-dir ROOT ARGS…` for this case.
fn run_in(case: &Case, root: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = case.coffer();
    cmd.arg("--backup-dir").arg(root).args(args);
    cmd.output().unwrap()
}

/// Entries of `root` other than coffer's lock and run log.
fn entries(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".coffer.lock" && n != "coffer-runs.jsonl")
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The regular files of a directory: name → content.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            assert!(e.file_type().unwrap().is_file(), "{:?}", e.path());
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The members of a tar: (name, data offset, size), by hand (ustar headers only).
fn members(tar: &[u8]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|&b| b != 0) {
        let h = &tar[at..at + 512];
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let size_text = String::from_utf8_lossy(&h[124..136]);
        let size =
            usize::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8)
                .unwrap();
        out.push((name, at + 512, size));
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// One ustar member, built by hand (type `0` file, `2` symlink, `5` directory).
fn member(name: &str, kind: u8, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000600");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    if kind == b'2' {
        h[157..168].copy_from_slice(b"/etc/passwd");
    }
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len() + (512 - data.len() % 512) % 512, 0);
    out
}

fn end_marker() -> Vec<u8> {
    vec![0u8; 1024]
}

fn export_to(case: &Case, name: &str, file: &Path) {
    let out = case.run(&["export", name, "--output", file.to_str().unwrap()]);
    assert_success(&out);
}

#[test]
fn export_unpacks_with_tar_into_the_same_directory() {
    let case = Case::new();
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    let bundle = case.dir.path().join("b.tar");
    export_to(&case, &name, &bundle);
    let mode = std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Manifest first, then the artifacts, then SHA256SUMS.
    let listing = sh(&format!("tar -tf {}", bundle.display()));
    let listed: Vec<&str> = listing.lines().collect();
    let m = manifest(&backup);
    let mut want = vec![format!("{name}/"), format!("{name}/manifest.json")];
    for a in m["artifacts"].as_array().unwrap() {
        want.push(format!("{name}/{}", a["file"].as_str().unwrap()));
    }
    want.push(format!("{name}/SHA256SUMS"));
    assert_eq!(listed, want);

    let out_dir = case.dir.path().join("unpacked");
    std::fs::create_dir(&out_dir).unwrap();
    sh(&format!(
        "tar -xf {} -C {}",
        bundle.display(),
        out_dir.display()
    ));
    let unpacked = out_dir.join(&name);
    assert_eq!(files(&unpacked), files(&backup));
    let dir_mode = std::fs::metadata(&unpacked).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    sh(&format!(
        "cd {} && sha256sum -c SHA256SUMS",
        unpacked.display()
    ));

    // To standard output (--latest), byte for byte the same bundle.
    let piped = case.dir.path().join("piped.tar");
    let mut cmd = case.coffer();
    cmd.args(["export", "--latest"])
        .stdout(std::fs::File::create(&piped).unwrap());
    assert_success(&cmd.output().unwrap());
    assert_eq!(
        std::fs::read(&piped).unwrap(),
        std::fs::read(&bundle).unwrap()
    );

    // An existing file is never replaced.
    let out = case.run(&["export", &name, "--output", bundle.to_str().unwrap()]);
    assert_exit(&out, 1);
    assert!(error_line(&out).contains("exists"), "{}", error_line(&out));
    assert_eq!(
        std::fs::read(&piped).unwrap(),
        std::fs::read(&bundle).unwrap()
    );
}

#[test]
fn export_import_restore_round_trip_on_an_empty_root() {
    let case = Case::new();
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    let bundle = case.dir.path().join("b.tar");
    export_to(&case, &name, &bundle);

    let other = case.dir.path().join("other-root");
    let out = run_in(&case, &other, &["import", bundle.to_str().unwrap()]);
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("imported {name}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(entries(&other), std::slice::from_ref(&name));
    assert_eq!(files(&other.join(&name)), files(&backup));
    // The same bundle again collides: refused, nothing changed.
    let out = run_in(&case, &other, &["import", bundle.to_str().unwrap()]);
    assert_exit(&out, 1);
    assert!(
        error_line(&out).contains("already exists"),
        "{}",
        error_line(&out)
    );
    assert_eq!(entries(&other), std::slice::from_ref(&name));

    let c = cluster();
    c.psql(
        &case.db,
        "DROP TABLE attachments; UPDATE users SET display_name = 'x'",
    )
    .unwrap();
    std::fs::write(case.workspace.join("added.txt"), b"new\n").unwrap();
    let out = run_in(&case, &other, &["restore", &name, "--yes"]);
    assert_success(&out);
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(archived_part(snapshot(&case.workspace)), workspace);
}

#[test]
fn damaged_truncated_and_hostile_bundles_import_nothing() {
    let case = Case::new();
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    let bundle = case.dir.path().join("b.tar");
    export_to(&case, &name, &bundle);
    let good = std::fs::read(&bundle).unwrap();
    let root = case.dir.path().join("import-root");
    let bad = case.dir.path().join("bad.tar");
    let try_import = |bytes: &[u8], what: &str, want: &str| {
        std::fs::write(&bad, bytes).unwrap();
        let out = run_in(&case, &root, &["import", bad.to_str().unwrap()]);
        assert_exit(&out, 5);
        let line = error_line(&out);
        assert!(
            line.contains(want) && line.contains("nothing was imported"),
            "{what}: {line}"
        );
        assert!(
            entries(&root).is_empty(),
            "{what}: left {:?}",
            entries(&root)
        );
        // Via standard input too.
        let mut cmd = case.coffer();
        cmd.arg("--backup-dir").arg(&root).args(["import", "-"]);
        cmd.stdin(std::fs::File::open(&bad).unwrap());
        let out = cmd.output().unwrap();
        assert_exit(&out, 5);
        assert!(entries(&root).is_empty(), "{what} (stdin)");
    };

    // Truncated: inside a member, at a member boundary, inside the end marker.
    let parts = members(&good);
    let last_data_end = {
        let (_, off, size) = parts.last().unwrap();
        off + size.div_ceil(512) * 512
    };
    for cut in [
        good.len() / 2,
        parts[2].1 - 512,
        last_data_end,
        good.len() - 512,
    ] {
        try_import(&good[..cut], &format!("cut at {cut}"), "truncated");
    }
    // A flipped byte in each member's data.
    for (member_name, off, size) in &parts {
        if *size == 0 {
            continue;
        }
        let mut bytes = good.clone();
        // The manifest's first byte (anywhere else could be a free-text field); in the
        // others the middle. XOR 1 keeps hex digits hex but different.
        let at = if member_name.ends_with("/manifest.json") {
            *off
        } else {
            off + size / 2
        };
        bytes[at] ^= 0x01;
        std::fs::write(&bad, &bytes).unwrap();
        let out = run_in(&case, &root, &["import", bad.to_str().unwrap()]);
        assert_exit(&out, 5);
        assert!(
            error_line(&out).contains("nothing was imported"),
            "{member_name}: {}",
            error_line(&out)
        );
        assert!(
            entries(&root).is_empty(),
            "{member_name}: {:?}",
            entries(&root)
        );
    }

    let m = std::fs::read(backup.join("manifest.json")).unwrap();
    let file = |f: &str| std::fs::read(backup.join(f)).unwrap();
    let artifacts: Vec<String> = manifest(&backup)["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["file"].as_str().unwrap().to_string())
        .collect();
    let with = |extra: Vec<u8>| {
        let mut t = member(&format!("{name}/manifest.json"), b'0', &m);
        t.extend(extra);
        t.extend(end_marker());
        t
    };
    // `..` in a member name: nothing is written outside the root either.
    try_import(
        &with(member(&format!("{name}/../escaped"), b'0', b"x")),
        "dot-dot",
        "`..`",
    );
    assert!(!case.dir.path().join("escaped").exists());
    // The manifest missing: the artifacts and SHA256SUMS only.
    let mut no_manifest = Vec::new();
    for a in &artifacts {
        no_manifest.extend(member(&format!("{name}/{a}"), b'0', &file(a)));
    }
    no_manifest.extend(member(
        &format!("{name}/SHA256SUMS"),
        b'0',
        &file("SHA256SUMS"),
    ));
    no_manifest.extend(end_marker());
    try_import(&no_manifest, "no manifest", "starts with its manifest");
    // A symbolic link, a duplicate, a second backup directory, an absolute path, a stray file.
    try_import(
        &with(member(&format!("{name}/SHA256SUMS"), b'2', b"")),
        "symlink",
        "symbolic link",
    );
    try_import(
        &with(member(&format!("{name}/manifest.json"), b'0', &m)),
        "duplicate",
        "appears twice",
    );
    try_import(
        &with(member("manual-20200101T000000Z/manifest.json", b'0', &m)),
        "two backups",
        "more than one backup directory",
    );
    try_import(
        &with(member(&format!("/{name}/x"), b'0', b"x")),
        "absolute",
        "absolute path",
    );
    try_import(
        &with(member(&format!("{name}/report.csv"), b'0', b"x")),
        "stray file",
        "not listed",
    );
    // Not a tar at all.
    try_import(
        b"hello, this is not a bundle",
        "text",
        "nothing was imported",
    );
    // The good bundle still imports after all that.
    let out = run_in(&case, &root, &["import", bundle.to_str().unwrap()]);
    assert_success(&out);
    assert_eq!(entries(&root), [name]);
}

#[test]
fn legacy_tar_gz_of_a_shell_script_backup_imports_and_restores() {
    let case = Case::new();
    // Fifos and sockets make GNU tar warn or archive them; the script's workspaces had none.
    std::fs::remove_file(case.workspace.join("run/app.fifo")).unwrap();
    std::fs::remove_file(case.workspace.join("run/app.sock")).unwrap();
    let tables = table_fingerprints(&case.db);
    let workspace = snapshot(&case.workspace);
    let scratch = case.dir.path().join("old-host");
    let dir = scratch.join("2025-06-01-030000");
    std::fs::create_dir_all(&dir).unwrap();
    let env: Vec<(String, String)> = cluster().env(&case.db);
    let env_str: String = env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
    sh(&format!(
        "cd {d} && {env_str} pg_dump --clean --if-exists {db} | gzip > postgres.sql.gz && \
         tar -czf workspace.tar.gz -C {ws} . && \
         printf '{{\"timestamp\": \"2025-06-01T03:00:00Z\", \"alembic_head\": \"{HEAD}\", \"db_size\": \"12 MB\", \"workspace_path\": \"{ws}\"}}' > manifest.json && \
         tar -czf {s}/upload.tar.gz -C {s} 2025-06-01-030000",
        d = dir.display(),
        s = scratch.display(),
        db = case.db,
        ws = case.workspace.display()
    ));
    let upload: PathBuf = scratch.join("upload.tar.gz");

    let out = case.run(&["import", upload.to_str().unwrap()]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("imported 2025-06-01-030000 (legacy)"),
        "{text}"
    );
    assert!(text.contains("not checked: "), "{text}");
    assert_eq!(files(&case.root.join("2025-06-01-030000")), files(&dir));

    cluster()
        .psql(
            &case.db,
            "DROP TABLE attachments; UPDATE users SET display_name = 'x'",
        )
        .unwrap();
    std::fs::write(case.workspace.join("added.txt"), b"new\n").unwrap();
    let out = case.run(&["restore", "2025-06-01-030000", "--yes"]);
    assert_success(&out);
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);

    // Straight from the upload, its manifest first: a shell-script manifest lists no
    // artifacts, so the pre-flight waits for them (it must not refuse a backup "without" any).
    let manifest_first = scratch.join("manifest-first.tar.gz");
    sh(&format!(
        "tar -czf {m} -C {s} 2025-06-01-030000/manifest.json 2025-06-01-030000/postgres.sql.gz 2025-06-01-030000/workspace.tar.gz",
        m = manifest_first.display(),
        s = scratch.display()
    ));
    std::fs::remove_dir_all(case.root.join("2025-06-01-030000")).unwrap();
    cluster()
        .psql(&case.db, "UPDATE users SET display_name = 'y'")
        .unwrap();
    let out = case.run(&[
        "restore",
        "--from-file",
        manifest_first.to_str().unwrap(),
        "--yes",
    ]);
    assert_success(&out);
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);

    // A truncated upload imports nothing.
    let bytes = std::fs::read(&upload).unwrap();
    let cut = case.dir.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let root = case.dir.path().join("root2");
    let out = run_in(&case, &root, &["import", cut.to_str().unwrap()]);
    assert_exit(&out, 5);
    assert!(entries(&root).is_empty());
}

#[test]
fn backup_output_writes_one_bundle_and_nothing_in_the_root() {
    let case = Case::new();
    let bundle = case.dir.path().join("evidence.tar");
    let out = case.run(&["backup", "--output", bundle.to_str().unwrap()]);
    assert_success(&out);
    assert!(entries(&case.root).is_empty(), "{:?}", entries(&case.root));
    // Only the run log's record of it (see the test below).
    let log = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.contains("\"operation\":\"bundle\""), "{log}");
    let mode = std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Nothing left beside the output but the output.
    let beside: Vec<String> = std::fs::read_dir(case.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
    let listing = sh(&format!("tar -tf {}", bundle.display()));
    let second = listing.lines().nth(1).unwrap();
    assert!(second.ends_with("/manifest.json"), "{listing}");

    // To standard output, piped into an import.
    let (produced, imported) = pipe_coffer(
        &case,
        &["backup", "--output", "-", "--quiet"],
        &["import", "-"],
    );
    assert_success(&imported);
    assert_success(&produced);
    assert_eq!(case.backups().len(), 1);

    let out = case.run(&["import", bundle.to_str().unwrap()]);
    // Both were made within seconds: distinct names, or the same second refused as a collision.
    if out.status.success() {
        assert_eq!(case.backups().len(), 2);
    } else {
        assert!(
            error_line(&out).contains("already exists"),
            "{}",
            error_line(&out)
        );
    }
}

#[test]
fn backup_output_piped_into_restore_from_file_round_trips() {
    let case = Case::new();
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    let bundle = case.dir.path().join("b.tar");
    let mut producer = case.coffer();
    producer
        .args(["backup", "--output", "-", "--quiet"])
        .stdout(Stdio::piped());
    let mut producer = producer.spawn().unwrap();
    let mut from_backup = producer.stdout.take().unwrap();
    // The bundle's first block arrives once the backup is complete: only then is the
    // live state changed, so the backup holds the state before.
    let mut first = vec![0u8; 512];
    from_backup.read_exact(&mut first).unwrap();
    cluster()
        .psql(
            &case.db,
            "DROP TABLE attachments; UPDATE users SET display_name = 'x'",
        )
        .unwrap();
    std::fs::write(case.workspace.join("added.txt"), b"new\n").unwrap();
    let mut restore = case.coffer();
    restore
        .args(["restore", "--from-file", "-", "--yes"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut restore = restore.spawn().unwrap();
    let mut to_restore = restore.stdin.take().unwrap();
    // The pipe, with a copy saved on the way for the damaged case below.
    let saved = bundle.clone();
    let pipe = std::thread::spawn(move || {
        let mut copy = std::fs::File::create(saved).unwrap();
        let mut buf = first;
        loop {
            copy.write_all(&buf).unwrap();
            to_restore.write_all(&buf).unwrap();
            buf.resize(1 << 16, 0);
            let n = from_backup.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            buf.truncate(n);
        }
    });
    pipe.join().unwrap();
    assert!(producer.wait().unwrap().success());
    let out = wait_within(restore, RUN_LIMIT, "coffer restore --from-file -");
    assert_success(&out);
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(archived_part(snapshot(&case.workspace)), workspace);
    assert_eq!(
        case.backups().len(),
        1,
        "the imported backup stays in the root"
    );

    // A damaged bundle from a file: refused (exit 5), nothing changed, nothing imported.
    std::fs::remove_dir_all(&case.backups()[0]).unwrap();
    cluster()
        .psql(&case.db, "UPDATE users SET display_name = 'y'")
        .unwrap();
    let before = Before::take(&case);
    let mut bytes = std::fs::read(&bundle).unwrap();
    let (_, off, size) = members(&bytes)[2].clone();
    bytes[off + size / 2] ^= 0x01;
    let bad = case.dir.path().join("bad.tar");
    std::fs::write(&bad, &bytes).unwrap();
    let out = case.run(&["restore", "--from-file", bad.to_str().unwrap(), "--yes"]);
    assert_exit(&out, 5);
    before.assert_unchanged(&case, "damaged bundle");
    assert!(entries(&case.root).is_empty(), "{:?}", entries(&case.root));
}

#[test]
fn backup_output_is_encrypted_when_recipients_are_configured() {
    let case = Case::new();
    let (key, public) = case.keygen("key.txt");
    case.write_config(
        &case.db_section(),
        &format!("[encryption]\nrecipients = [\"{public}\"]\n"),
    );
    let bundle = case.dir.path().join("secret.tar");
    let out = case.run(&["backup", "--output", bundle.to_str().unwrap()]);
    assert_success(&out);
    let listing = sh(&format!("tar -tf {}", bundle.display()));
    assert!(
        listing.contains("/postgres.sql.gz.age\n") && listing.contains("/workspace.tar.gz.age\n"),
        "{listing}"
    );
    let out = case.run(&[
        "import",
        bundle.to_str().unwrap(),
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert!(!stdout(&out).contains("not checked"), "{}", stdout(&out));

    // An identity that is not a recipient: `restore --from-file` refuses it on the first
    // artifact's age header (exit 6, a pre-flight refusal, not damage), with nothing
    // imported or changed; the right one restores.
    std::fs::remove_dir_all(&case.backups()[0]).unwrap();
    let (other, _) = case.keygen("other.txt");
    let before = Before::take(&case);
    let out = case.run(&[
        "restore",
        "--from-file",
        bundle.to_str().unwrap(),
        "--yes",
        "--identity",
        other.to_str().unwrap(),
    ]);
    assert_exit(&out, 6);
    let line = error_line(&out);
    assert!(
        line.contains("restore refused, nothing was changed")
            && line.contains("does not match any recipient"),
        "{line}"
    );
    before.assert_unchanged(&case, "wrong identity");
    assert!(entries(&case.root).is_empty(), "{:?}", entries(&case.root));
    let out = case.run(&[
        "restore",
        "--from-file",
        bundle.to_str().unwrap(),
        "--yes",
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert_success(&out);
}

#[test]
fn a_bundle_is_never_written_to_a_terminal() {
    let case = Case::new();
    // `script` gives coffer a terminal as standard output.
    for args in [
        "export --latest",
        "export --latest --output -",
        "backup --output -",
    ] {
        let cmd = format!("{COFFER} --config {} {args}", case.config.display());
        let out = std::process::Command::new("script")
            .args(["-q", "-e", "-c", &cmd, "/dev/null"])
            .env_remove("COFFER_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("`script` (util-linux) is needed: apt-get install util-linux");
        assert_eq!(out.status.code(), Some(2), "{args}");
        let text = stdout(&out);
        assert!(
            text.contains("refusing to write a bundle to a terminal"),
            "{args}: {text}"
        );
        assert!(text.len() < 1000, "{args}: {text}");
    }
    assert!(case.backups().is_empty());
}

#[test]
fn a_member_larger_than_the_free_space_is_refused_before_it_is_written() {
    let case = Case::new();
    let root = case.dir.path().join("import-root");
    // A .tar.gz whose database member claims 1 PiB (GNU base-256 size): a small upload
    // that would otherwise fill the disk until the write fails.
    let mut header = member("2025-06-01-030000/postgres.sql.gz", b'0', b"");
    header[124..136].fill(0);
    header[124] = 0x80;
    header[129] = 0x04; // 1 << 50, in the last 8 bytes
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header[..512].iter().map(|&b| u32::from(b)).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    header.extend_from_slice(&[0u8; 1 << 20]);
    let plain = case.dir.path().join("huge.tar");
    std::fs::write(&plain, &header).unwrap();
    sh(&format!("gzip -n '{}'", plain.display()));
    let bundle = case.dir.path().join("huge.tar.gz");
    let out = run_in(&case, &root, &["import", bundle.to_str().unwrap()]);
    assert_exit(&out, 5);
    let line = error_line(&out);
    assert!(
        line.contains("member 2025-06-01-030000/postgres.sql.gz is 1.0 PiB, more than the")
            && line.contains("nothing was imported"),
        "{line}"
    );
    assert!(entries(&root).is_empty(), "{:?}", entries(&root));
}

/// An upload that stalls must not hold the root's lock for ever: `import -` waits for input
/// in poll(2), so SIGTERM ends it at once (exit 143) and the lock is free again.
#[test]
fn an_import_from_a_silent_stdin_stops_on_sigterm_and_frees_the_lock() {
    let case = Case::new();
    let root = case.dir.path().join("import-root");
    std::fs::create_dir(&root).unwrap();
    let mut child = case
        .coffer()
        .arg("--backup-dir")
        .arg(&root)
        .args(["import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Held open and silent: the upload that never sends a byte.
    let _upload = child.stdin.take().unwrap();
    // The holder's line in the lock file (taking the lock to probe it could make the
    // import itself fail to take it).
    wait_until(
        "the import holds the root's lock",
        std::time::Duration::from_secs(60),
        || {
            std::fs::read_to_string(root.join(".coffer.lock"))
                .is_ok_and(|holder| holder.contains(&format!("pid {}", child.id())))
        },
    );
    assert_exit(&run_in(&case, &root, &["prune"]), 3);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "import - ignored SIGTERM while waiting for input"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(143), "{status}: {err}");
    assert!(entries(&root).is_empty(), "{:?}", entries(&root));
    assert_success(&run_in(&case, &root, &["prune"]));
}

/// The manifest comes first in a bundle, so `restore --from-file -` runs its pre-flight on it
/// before any data arrives: a refused restore (here, the Alembic head) is refused with exit 6
/// although every artifact is garbage (no damage error: the data was never read), reads
/// nothing much past the manifest of a large upload, imports nothing and changes nothing.
#[test]
fn restore_from_file_is_refused_on_the_manifest_before_the_data() {
    let case = Case::new();
    let name = name_of(&case.backup_ok(&[]));
    let bundle = case.dir.path().join("b.tar");
    export_to(&case, &name, &bundle);
    std::fs::remove_dir_all(case.root.join(&name)).unwrap();
    cluster()
        .psql(&case.db, "UPDATE users SET display_name = 'y'")
        .unwrap();
    let before = Before::take(&case);
    // The directory and the manifest as exported; every artifact's bytes garbage (of the
    // sizes the manifest gives); then 64 MiB more of garbage, as a large upload would be.
    let bytes = std::fs::read(&bundle).unwrap();
    let list = members(&bytes);
    assert!(list[1].0.ends_with("/manifest.json"), "{list:?}");
    let head_end = list[2].1 - 512;
    let mut forged = bytes[..head_end].to_vec();
    for (path, _, size) in &list[2..] {
        forged.extend(member(path, b'0', &vec![0x5a; *size]));
    }
    let tail = 64usize << 20;
    forged.resize(forged.len() + tail, 0x5a);

    let mut restore = case.coffer();
    restore
        .args([
            "restore",
            "--from-file",
            "-",
            "--yes",
            "--expect-head",
            "0123456789ab",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut restore = restore.spawn().unwrap();
    let mut to_restore = restore.stdin.take().unwrap();
    // Counts what coffer took; ends on the broken pipe once coffer has exited (or once
    // wait_within has killed it), so it cannot hang.
    let writer = std::thread::spawn(move || {
        let mut taken = 0usize;
        for chunk in forged.chunks(1 << 12) {
            if to_restore.write_all(chunk).is_err() {
                break;
            }
            taken += chunk.len();
        }
        taken
    });
    let out = wait_within(restore, RUN_LIMIT, "coffer restore --from-file -");
    let taken = writer.join().unwrap();
    assert_exit(&out, 6);
    let line = error_line(&out);
    assert!(
        line.contains("restore refused, nothing was changed") && line.contains("0123456789ab"),
        "{line}"
    );
    assert!(
        !stderr(&out).contains("sha256") && !stderr(&out).contains("damaged"),
        "{}",
        stderr(&out)
    );
    // At most what the pipe and one read buffer hold beyond the manifest.
    assert!(
        taken < head_end + (4 << 20),
        "coffer read {taken} bytes of a {}-byte upload",
        head_end + tail
    );
    before.assert_unchanged(&case, "refused before the data");
    assert!(entries(&case.root).is_empty(), "{:?}", entries(&case.root));
    let log = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["operation"].as_str(), last["outcome"].as_str()),
        (Some("restore"), Some("failure")),
        "{last}"
    );
    assert_eq!(last["backup"].as_str(), Some(name.as_str()), "{last}");
}

/// `backup --output` is a run like any other: recorded in the run log as operation `bundle`
/// with its outcome, the metrics file rewritten and the outcome's hooks run; it is not a
/// backup of the root, so status and metrics do not count it as one, and the root holds no
/// backup.
#[test]
fn backup_output_is_recorded_and_seen_by_status_metrics_and_hooks() {
    let case = Case::new();
    let prom = case.dir.path().join("coffer.prom");
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
    let env = |file: &str| -> std::collections::BTreeMap<String, String> {
        std::fs::read_to_string(case.dir.path().join(file))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let records = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(case.root.join("coffer-runs.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };

    let bundle = case.dir.path().join("evidence.tar");
    let out = case.run(&["backup", "--output", bundle.to_str().unwrap()]);
    assert_success(&out);
    let listing = sh(&format!("tar -tf {}", bundle.display()));
    let name = listing
        .lines()
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    assert!(case.backups().is_empty() && entries(&case.root).is_empty());
    let log = records();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["operation"], "bundle");
    assert_eq!(log[0]["outcome"], "success");
    assert_eq!(log[0]["backup"].as_str(), Some(name.as_str()));
    let ok = env("success.env");
    assert_eq!(ok["COFFER_OPERATION"], "bundle");
    assert_eq!(ok["COFFER_OUTCOME"], "success");
    assert_eq!(ok["COFFER_BACKUP_NAME"], name);
    assert_eq!(ok["COFFER_BACKUP_PATH"], "", "not in the root");
    assert!(
        ok["COFFER_DETAIL"].contains(bundle.to_str().unwrap()),
        "{ok:?}"
    );
    // Not a backup of the root: no last success, no backup counted.
    let metrics = std::fs::read_to_string(&prom).unwrap();
    for line in [
        "coffer_last_success_timestamp_seconds 0",
        "coffer_backups{kind=\"manual\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }
    let status = case.run(&["status"]);
    assert_exit(&status, 10);
    assert!(
        stdout(&status).starts_with("CRITICAL: no successful backup;"),
        "{}",
        stdout(&status)
    );

    // A failed one (the output exists) is recorded as failed and runs on_failure.
    let out = case.run(&["backup", "--output", bundle.to_str().unwrap()]);
    assert_exit(&out, 1);
    let log = records();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1]["operation"], "bundle");
    assert_eq!(log[1]["outcome"], "failure");
    let failed = env("failure.env");
    assert_eq!(failed["COFFER_OPERATION"], "bundle");
    assert_eq!(failed["COFFER_OUTCOME"], "failure");
    assert!(failed["COFFER_ERROR"].contains("exists"), "{failed:?}");
    assert!(case.backups().is_empty() && entries(&case.root).is_empty());
}
