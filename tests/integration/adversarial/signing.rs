//! Authenticity: signed backups (minisign format). With trusted keys configured, `verify`,
//! `restore` (every source) and `pull` refuse a backup that is unsigned or whose signatures
//! do not prove it is the backup it claims to be; the signatures verify with the real
//! `minisign` tool, without coffer.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::*;

fn name_of(backup: &Path) -> String {
    backup.file_name().unwrap().to_string_lossy().into_owned()
}

/// `coffer keygen --signing` into the case directory: the secret key file and public key.
fn signing_key(case: &Case, file: &str) -> (PathBuf, String) {
    let key = case.dir.path().join(file);
    let out = case.run(&["keygen", "--signing", key.to_str().unwrap()]);
    assert_success(&out);
    let public = stdout(&out).trim().to_string();
    assert!(public.starts_with("RW") && public.len() == 56, "{public}");
    (key, public)
}

/// A `[signing]` section: signing with `secret` (if any), trusting `trusted`.
fn signing_section(secret: Option<&Path>, trusted: &[&str]) -> String {
    let mut s = String::from("[signing]\n");
    if let Some(p) = secret {
        s.push_str(&format!("secret_key_file = \"{}\"\n", p.display()));
    }
    let keys: Vec<String> = trusted.iter().map(|k| format!("\"{k}\"")).collect();
    s.push_str(&format!("trusted_public_keys = [{}]\n", keys.join(", ")));
    s
}

fn configure(case: &Case, extra: &str) {
    case.write_config(&case.db_section(), extra);
}

/// Runs the real minisign tool; fails the test with how to install it when missing.
fn minisign(args: &[&str], dir: &Path) -> Output {
    Command::new("minisign")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run minisign ({e}): these tests check signatures with the standard tool; \
                 install it with `apt-get install minisign` (.ci/run does)"
            )
        })
}

/// What must stay exactly as it was when a backup is refused.
struct World {
    tables: std::collections::BTreeMap<String, String>,
    workspace: std::collections::BTreeMap<Vec<u8>, String>,
}

fn world(case: &Case) -> World {
    World {
        tables: table_fingerprints(&case.db),
        workspace: snapshot(&case.workspace),
    }
}

fn assert_unchanged(case: &Case, before: &World, what: &str) {
    assert_eq!(
        table_fingerprints(&case.db),
        before.tables,
        "{what}: database"
    );
    assert_eq!(
        snapshot(&case.workspace),
        before.workspace,
        "{what}: workspace"
    );
}

/// A copy of `backup` under the same name in a new parent directory (outside the root).
fn copy_of(case: &Case, backup: &Path, variant: &str) -> PathBuf {
    let parent = case.dir.path().join("variants").join(variant);
    std::fs::create_dir_all(&parent).unwrap();
    let dest = parent.join(name_of(backup));
    run_ok(Command::new("cp").arg("-a").arg(backup).arg(&dest));
    dest
}

fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut m = manifest(dir);
    edit(&mut m);
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&m).unwrap(),
    )
    .unwrap();
}

#[test]
fn keygen_signing_writes_a_private_key_and_its_public_half_and_never_overwrites() {
    let case = Case::new();
    let key = case.dir.path().join("signing.key");
    let out = case.run(&["keygen", "--signing", key.to_str().unwrap()]);
    assert_success(&out);
    let public = stdout(&out).trim().to_string();
    let secret_text = std::fs::read_to_string(&key).unwrap();
    let secret_line = secret_text.lines().nth(1).unwrap();
    assert!(
        secret_text.starts_with("untrusted comment: "),
        "{secret_text}"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let pub_file = case.dir.path().join("signing.key.pub");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&pub_file), 0o644);
    assert!(
        std::fs::read_to_string(&pub_file)
            .unwrap()
            .contains(&public),
        "the .pub file holds the printed key"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("secret_key_file = \"{}\"", key.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("trusted_public_keys = [\"{public}\"]")),
        "{err}"
    );
    for text in [stdout(&out), err] {
        assert!(
            !text.contains(secret_line),
            "the secret key was printed: {text}"
        );
    }

    // Never overwrites: neither the secret key, nor a .pub file left alone.
    let out = case.run(&["keygen", "--signing", key.to_str().unwrap()]);
    assert_exit(&out, 1);
    assert!(error_line(&out).contains("already exists"), "{out:?}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), secret_text);
    std::fs::remove_file(&key).unwrap();
    let out = case.run(&["keygen", "--signing", key.to_str().unwrap()]);
    assert_exit(&out, 1);
    assert!(
        error_line(&out).contains(&format!("{} already exists", pub_file.display())),
        "{out:?}"
    );
    assert!(!key.exists(), "a refused keygen writes no secret key");
    assert!(
        std::fs::read_to_string(&pub_file)
            .unwrap()
            .contains(&public)
    );
    // The age identity form still works.
    let (_, age_public) = case.keygen("identity.txt");
    assert!(age_public.starts_with("age1"), "{age_public}");
}

#[test]
fn a_signed_backup_verifies_with_coffer_and_with_the_minisign_tool() {
    let case = Case::new();
    let (key, public) = signing_key(&case, "signing.key");
    configure(&case, &signing_section(Some(&key), &[&public]));
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    for sig in ["manifest.json.minisig", "SHA256SUMS.minisig"] {
        let m = std::fs::metadata(backup.join(sig)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{sig}");
    }

    let out = case.run(&["verify", &name]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "✓ signature: manifest.json and SHA256SUMS signed for {name} by trusted key"
        )),
        "{text}"
    );

    // The standard tool, without coffer: both files, and the trusted comment names the backup.
    for file in ["manifest.json", "SHA256SUMS"] {
        let out = minisign(&["-Vm", file, "-P", &public], &backup);
        assert!(out.status.success(), "minisign -V {file}: {out:?}");
        let said = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            said.contains(&format!("coffer backup:{name} file:{file}")),
            "{said}"
        );
    }
    sh(&format!(
        "cd '{}' && sha256sum -c SHA256SUMS",
        backup.display()
    ));

    // Without a trusted key the line says what it could not check (and does not fail).
    configure(&case, "[signing]\n");
    let out = case.run(&["verify", &name]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("– signature: not checked: no trusted key configured"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn with_a_trusted_key_forged_or_missing_signatures_are_refused_and_nothing_changes() {
    let case = Case::new();
    let (key, public) = signing_key(&case, "signing.key");
    let (other_key, other_public) = signing_key(&case, "other.key");
    // An unsigned backup (signing off), then two signed ones.
    configure(&case, "");
    let unsigned = case.backup_ok(&["--kind", "manual"]);
    configure(&case, &signing_section(Some(&key), &[&public]));
    let signed = case.backup_ok(&[]);
    // The second backup's workspace differs, so swapping its archive in is a real change.
    std::fs::write(case.workspace.join("planted.txt"), b"planted\n").unwrap();
    let second = case.backup_ok(&[]);
    let name = name_of(&signed);
    let before = world(&case);

    type Tamper<'a> = Box<dyn Fn(&Path) + 'a>;
    let variants: Vec<(&str, PathBuf, Tamper, &str)> = vec![
        (
            "unsigned",
            unsigned.clone(),
            Box::new(|_| {}),
            "the backup is unsigned",
        ),
        (
            "signatures removed",
            signed.clone(),
            Box::new(|d| {
                std::fs::remove_file(d.join("manifest.json.minisig")).unwrap();
                std::fs::remove_file(d.join("SHA256SUMS.minisig")).unwrap();
            }),
            "the backup is unsigned",
        ),
        (
            "signed by another key (minisign tool)",
            signed.clone(),
            Box::new(|d| {
                for file in ["manifest.json", "SHA256SUMS"] {
                    std::fs::remove_file(d.join(format!("{file}.minisig"))).unwrap();
                    let comment = format!("coffer backup:{name} file:{file}");
                    let out = minisign(
                        &[
                            "-S",
                            "-s",
                            other_key.to_str().unwrap(),
                            "-m",
                            file,
                            "-t",
                            &comment,
                        ],
                        d,
                    );
                    assert!(out.status.success(), "minisign -S: {out:?}");
                }
            }),
            "not a trusted key",
        ),
        (
            "manifest edited after signing",
            signed.clone(),
            Box::new(|d| edit_manifest(d, |m| m["label"] = "edited".into())),
            "does not verify manifest.json",
        ),
        (
            "SHA256SUMS edited after signing",
            signed.clone(),
            Box::new(|d| {
                let mut s = std::fs::read_to_string(d.join("SHA256SUMS")).unwrap();
                s.push_str(&format!("{}  extra.bin\n", "0".repeat(64)));
                std::fs::write(d.join("SHA256SUMS"), s).unwrap();
            }),
            "does not verify SHA256SUMS",
        ),
        (
            "artifact swapped with manifest and SHA256SUMS rewritten consistently",
            signed.clone(),
            Box::new(|d| {
                let other = manifest(&second);
                std::fs::copy(second.join("workspace.tar.gz"), d.join("workspace.tar.gz")).unwrap();
                edit_manifest(d, |m| {
                    m["artifacts"][1] = other["artifacts"][1].clone();
                    m["workspace"] = other["workspace"].clone();
                });
                write_sums_from_manifest(d);
            }),
            "does not verify manifest.json",
        ),
        (
            "signature files of another backup",
            signed.clone(),
            Box::new(|d| {
                for sig in ["manifest.json.minisig", "SHA256SUMS.minisig"] {
                    std::fs::copy(second.join(sig), d.join(sig)).unwrap();
                }
            }),
            "bad signature",
        ),
        (
            "signature is a symlink to /dev/zero",
            signed.clone(),
            Box::new(|d| {
                std::fs::remove_file(d.join("SHA256SUMS.minisig")).unwrap();
                std::os::unix::fs::symlink("/dev/zero", d.join("SHA256SUMS.minisig")).unwrap();
            }),
            "is a symbolic link",
        ),
        (
            "huge signature",
            signed.clone(),
            Box::new(|d| {
                std::fs::write(d.join("manifest.json.minisig"), vec![b'A'; 20 << 20]).unwrap()
            }),
            "more than",
        ),
        (
            "garbage signature",
            signed.clone(),
            Box::new(|d| {
                std::fs::write(d.join("manifest.json.minisig"), b"\xff\x00garbage").unwrap()
            }),
            "not a minisign signature",
        ),
        (
            "one signature missing",
            signed.clone(),
            Box::new(|d| std::fs::remove_file(d.join("SHA256SUMS.minisig")).unwrap()),
            "SHA256SUMS.minisig is missing",
        ),
    ];
    for (i, (what, source, tamper, reason)) in variants.iter().enumerate() {
        let copy = copy_of(&case, source, &i.to_string());
        tamper(&copy);
        let path = copy.to_str().unwrap();

        let out = case.run(&["verify", path]);
        assert_exit(&out, 5);
        let text = stdout(&out);
        assert!(
            text.contains("✗ signature: ") && text.contains(reason),
            "{what}: {text}"
        );
        // --allow-unsigned never lets a bad signature through.
        if !reason.contains("unsigned") {
            assert_exit(&case.run(&["verify", "--allow-unsigned", path]), 5);
        }

        let out = case.run(&["restore", path, "--yes"]);
        assert_exit(&out, 5);
        let err = error_line(&out);
        assert!(
            err.contains("nothing was changed") && err.contains(reason),
            "{what}: {err}"
        );
        assert_unchanged(&case, &before, what);
    }

    // The consistent forgery passes every hash check: only the signature catches it.
    configure(&case, "");
    let forged = case.dir.path().join("variants/5").join(name_of(&signed));
    assert_success(&case.run(&["verify", forged.to_str().unwrap()]));

    // A signed backup renamed (e.g. an old one given a newer name) is refused by name.
    configure(&case, &signing_section(None, &[&public, &other_public]));
    let renamed = "auto-20260301T000000Z";
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(&signed)
            .arg(case.root.join(renamed)),
    );
    let out = case.run(&["restore", renamed, "--yes"]);
    assert_exit(&out, 5);
    assert!(
        error_line(&out).contains("was made for `coffer backup:"),
        "{}",
        error_line(&out)
    );
    assert_unchanged(&case, &before, "renamed backup");
    // By name, from the root, the drill (verify --restore-test) refuses as well.
    let unsigned_name = name_of(&unsigned);
    assert_exit(&case.run(&["restore", &unsigned_name, "--yes"]), 5);
    assert_exit(&case.run(&["verify", &unsigned_name, "--restore-test"]), 5);
    assert_unchanged(&case, &before, "unsigned by name");
}

#[test]
fn allow_unsigned_lets_an_unsigned_backup_through_and_says_so() {
    let case = Case::new();
    let (_key, public) = signing_key(&case, "signing.key");
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    configure(&case, &signing_section(None, &[&public]));

    let out = case.run(&["restore", &name, "--yes"]);
    assert_exit(&out, 5);
    assert!(
        stderr(&out).contains(
            "hint: to accept an unsigned backup for this run only, pass --allow-unsigned"
        ),
        "{}",
        stderr(&out)
    );
    let out = case.run(&["verify", &name]);
    assert_exit(&out, 5);
    assert!(
        stderr(&out).contains("--allow-unsigned"),
        "{}",
        stderr(&out)
    );

    let out = case.run(&["verify", &name, "--allow-unsigned"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("– signature: not checked: the backup is unsigned; accepted because unsigned backups are explicitly allowed"),
        "{}",
        stdout(&out)
    );
    // The restore drill runs under the same allowance.
    let out = case.run(&["verify", &name, "--allow-unsigned", "--restore-test"]);
    assert_success(&out);
    assert!(stdout(&out).contains("restore test OK"), "{}", stdout(&out));
    let out = case.run(&["restore", &name, "--yes", "--allow-unsigned"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("note: signature: the backup is unsigned; accepted"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_unusable_signing_key_fails_the_backup_before_anything_is_written() {
    let case = Case::new();
    let (good, _) = signing_key(&case, "good.key");
    let good_text = std::fs::read_to_string(&good).unwrap();
    let good_b64 = good_text.lines().nth(1).unwrap().to_string();
    // The same key marked as password-protected (kdf "Sc"), as `minisign -G` without -W writes.
    let encrypted_b64 = sh(&format!(
        "python3 -c 'import base64,sys; b=bytearray(base64.b64decode(sys.argv[1])); b[2:4]=b\"Sc\"; print(base64.b64encode(bytes(b)).decode())' {good_b64}"
    ));
    let dir = case.dir.path();
    let secret_marker = "SECRET-KEY-MATERIAL-0123456789abcdef";
    let variants: Vec<(&str, PathBuf, &str)> = {
        let mut v = Vec::new();
        let file = |name: &str, bytes: &[u8], mode: u32, reason: &'static str| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            (p, reason)
        };
        let (p, r) = file(
            "garbage.key",
            format!("{secret_marker}\n{secret_marker}\n").as_bytes(),
            0o600,
            "not a minisign secret key",
        );
        v.push(("garbage", p, r));
        let (p, r) = file(
            "encrypted.key",
            format!("untrusted comment: x\n{}", encrypted_b64).as_bytes(),
            0o600,
            "protected by a password",
        );
        v.push(("password-protected", p, r));
        let (p, r) = file("readable.key", good_text.as_bytes(), 0o644, "chmod 600");
        v.push(("readable by others", p, r));
        let (p, r) = file("huge.key", &vec![b'k'; 1 << 20], 0o600, "more than");
        v.push(("huge", p, r));
        let zero = dir.join("zero.key");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        v.push(("symlink to a device", zero, "not a regular file"));
        v.push(("missing", dir.join("missing.key"), "No such file"));
        v
    };
    for (what, path, reason) in variants {
        configure(&case, &signing_section(Some(&path), &[]));
        let out = case.run(&["backup"]);
        assert_exit(&out, 2);
        let err = error_line(&out);
        assert!(
            err.starts_with(&format!(
                "error: cannot use the signing key {}",
                path.display()
            )) && err.contains(reason),
            "{what}: {err}"
        );
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !all.contains(secret_marker) && !all.contains(&good_b64[8..48]),
            "{what}: key bytes in the output: {all}"
        );
        assert!(
            case.backups().is_empty(),
            "{what}: {:?}",
            case.root_entries()
        );
        assert!(
            case.root_entries()
                .iter()
                .all(|e| !e.starts_with(".coffer-staging")),
            "{what}: {:?}",
            case.root_entries()
        );
    }
}

#[test]
fn sync_and_pull_carry_the_signatures_and_a_tampered_remote_copy_is_refused() {
    let server = s3();
    let case = Case::new();
    let (key, public) = signing_key(&case, "signing.key");
    let remote = server.remote_section(S3_BUCKET, "signed/portal", "");
    configure(
        &case,
        &format!("{remote}\n{}", signing_section(Some(&key), &[&public])),
    );
    let backup = case.backup_ok(&[]);
    let name = name_of(&backup);
    let s3 = |args: &[&str]| {
        let mut cmd = case.coffer();
        with_s3_credentials(&mut cmd, S3_SECRET);
        cmd.args(args).output().unwrap()
    };
    assert_success(&s3(&["sync"]));
    let remote_dir = server
        .data
        .join(S3_BUCKET)
        .join("signed/portal")
        .join(&name);
    for sig in ["manifest.json.minisig", "SHA256SUMS.minisig"] {
        assert_eq!(
            std::fs::read(remote_dir.join(sig)).unwrap(),
            std::fs::read(backup.join(sig)).unwrap(),
            "{sig} on the remote"
        );
    }

    let out = s3(&["list", "--remote", "--json"]);
    assert_success(&out);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {listed}"));
    assert_eq!(row["signed"], true, "{row}");

    // Round trip into an empty root: the signatures come along and verify.
    std::fs::remove_dir_all(&case.root).unwrap();
    let out = s3(&["pull", &name]);
    assert_success(&out);
    for sig in ["manifest.json.minisig", "SHA256SUMS.minisig"] {
        assert!(case.root.join(&name).join(sig).is_file(), "{sig} pulled");
    }
    let out = case.run(&["verify", &name]);
    assert_success(&out);
    assert!(stdout(&out).contains("✓ signature: "), "{}", stdout(&out));

    // Tampered on the remote: pull and restore --from-remote refuse, leave nothing behind.
    let before = world(&case);
    let manifest_before = std::fs::read(remote_dir.join("manifest.json")).unwrap();
    type Tamper = Box<dyn Fn(&Path)>;
    let variants: Vec<(&str, Tamper, &str)> = vec![
        (
            "unsigned",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join("manifest.json.minisig")).unwrap();
                std::fs::remove_file(d.join("SHA256SUMS.minisig")).unwrap();
            }),
            "the backup is unsigned",
        ),
        (
            "manifest edited",
            Box::new(|d: &Path| edit_manifest(d, |m| m["label"] = "edited".into())),
            "does not verify manifest.json",
        ),
        (
            "huge signature",
            Box::new(|d: &Path| {
                std::fs::write(d.join("SHA256SUMS.minisig"), vec![b'A'; 5 << 20]).unwrap()
            }),
            "more than a signature can be",
        ),
    ];
    let saved = case.dir.path().join("saved-remote");
    run_ok(Command::new("cp").arg("-a").arg(&remote_dir).arg(&saved));
    for (what, tamper, reason) in variants {
        std::fs::remove_dir_all(&remote_dir).unwrap();
        run_ok(Command::new("cp").arg("-a").arg(&saved).arg(&remote_dir));
        tamper(&remote_dir);
        std::fs::remove_dir_all(&case.root).unwrap();
        let out = s3(&["pull", &name]);
        assert_exit(&out, 5);
        assert!(
            error_line(&out).contains(reason),
            "{what}: {}",
            error_line(&out)
        );
        assert!(
            case.root_entries().is_empty(),
            "{what}: left behind: {:?}",
            case.root_entries()
        );
        let out = s3(&["restore", "--from-remote", "--latest", "--yes"]);
        assert_exit(&out, 5);
        assert!(
            case.root_entries().is_empty(),
            "{what}: {:?}",
            case.root_entries()
        );
        assert_unchanged(&case, &before, what);
    }
    // Put back, a disaster-recovery restore from the remote passes the signature check.
    std::fs::remove_dir_all(&remote_dir).unwrap();
    run_ok(Command::new("cp").arg("-a").arg(&saved).arg(&remote_dir));
    assert_eq!(
        std::fs::read(remote_dir.join("manifest.json")).unwrap(),
        manifest_before
    );
    let out = s3(&["restore", "--from-remote", "--latest", "--yes"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("✓ signature: manifest.json and SHA256SUMS signed for"),
        "{}",
        stdout(&out)
    );
}
