//! Proof before streaming: a dump replaced by a same-size forgery (manifest, `SHA256SUMS`
//! and signatures untouched) is refused before psql receives a byte of it, whatever the
//! restore source; and the dump can never end coffer's single transaction, while pg_dump's
//! own large-object `BEGIN;`/`COMMIT;` pair restores inside it.

use std::path::Path;
use std::time::Duration;

use super::dump::{assert_no_open_transaction, forge_dump, inject, legacy_backup, read_dump};
use crate::harness::*;

fn database_section(case: &Case, wrapper: &Path) -> String {
    format!(
        "url = \"{}\"\nexec = [\"{}\"]\n",
        cluster().url(&case.db),
        wrapper.display()
    )
}

/// Everything psql was given since the last call (and forgets it).
fn psql_input(captures: &Path) -> String {
    let mut all = String::new();
    for f in std::fs::read_dir(captures).unwrap() {
        let path = f.unwrap().path();
        all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        std::fs::remove_file(path).unwrap();
    }
    all
}

/// Replaces the backup's `postgres.sql.gz` with a valid gzip of `text` of exactly the same
/// size (padded with a gzip header comment); manifest, sums and signatures stay as they were.
fn forge_same_size(backup: &Path, text: &str) {
    let gz = backup.join("postgres.sql.gz");
    let size = std::fs::metadata(&gz).unwrap().len() as usize;
    let plain = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(plain.path(), text).unwrap();
    let packed = std::process::Command::new("gzip")
        .args(["-9nc"])
        .arg(plain.path())
        .output()
        .unwrap()
        .stdout;
    assert!(
        packed.len() + 2 <= size,
        "the forgery ({} bytes) must fit in {size}",
        packed.len()
    );
    // FCOMMENT: a zero-terminated comment right after the 10-byte header.
    let mut forged = packed[..10].to_vec();
    forged[3] |= 0x10;
    forged.extend(std::iter::repeat_n(b'x', size - packed.len() - 1));
    forged.push(0);
    forged.extend_from_slice(&packed[10..]);
    assert_eq!(forged.len(), size);
    std::fs::write(&gz, &forged).unwrap();
    let back = sh(&format!("gunzip -c '{}'", gz.display()));
    assert_eq!(back, text, "the forgery is a valid gzip of the text");
}

/// The dump without pg_dump's per-object comments, which makes room for the payload.
fn slimmed(dump: &str) -> String {
    dump.lines()
        .filter(|l| !l.starts_with("-- Name: ") && !l.starts_with("-- Data for Name: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn role_exists(role: &str) -> bool {
    cluster()
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"),
        )
        .unwrap()
        .trim()
        == "1"
}

#[test]
fn same_size_forged_dumps_are_refused_before_psql_sees_a_byte() {
    let case = Case::new();
    let wrapper = tee_psql(&case);
    let captures = case.dir.path().join("psql-input");
    let key = case.dir.path().join("signing.key");
    let out = case.run(&["keygen", "--signing", key.to_str().unwrap()]);
    assert_success(&out);
    let public = stdout(&out).trim().to_string();
    let signing = format!(
        "[signing]\nsecret_key_file = \"{}\"\ntrusted_public_keys = [\"{public}\"]\n",
        key.display()
    );
    let marker = case.dir.path().join("pwned");
    let role = format!("evil_{}", case.db);
    let payloads = [
        "COMMIT; BEGIN;\nDROP TABLE public.users CASCADE;".to_string(),
        format!("COMMIT; CREATE ROLE {role} SUPERUSER LOGIN; BEGIN;"),
        format!("CREATE ROLE {role} SUPERUSER LOGIN;"),
        format!("COPY (SELECT 1) TO PROGRAM 'id > {}';", marker.display()),
        "DROP TABLE public.users CASCADE;".to_string(),
    ];
    for signed in [true, false] {
        // A coffer backup made signed (trusted key) or unsigned (no signing configured).
        case.write_config(
            &database_section(&case, &wrapper),
            if signed { &signing } else { "" },
        );
        let backup = case.backup_ok(&[]);
        let name = backup.file_name().unwrap().to_string_lossy().into_owned();
        let path = backup.display().to_string();
        let original = std::fs::read(backup.join("postgres.sql.gz")).unwrap();
        let dump = read_dump(&backup);
        let before = Before::take(&case);
        for payload in &payloads {
            forge_same_size(&backup, &inject(&slimmed(&dump), payload, false));
            for source in [
                vec!["restore", name.as_str(), "--yes"],
                vec!["restore", path.as_str(), "--yes"],
                vec!["restore", "--latest", "--yes"],
            ] {
                let context = format!("signed={signed} {payload:?} via {source:?}");
                psql_input(&captures);
                let out = run_bounded(&case, &source, Duration::from_secs(60));
                assert_exit(&out, 5);
                let err = error_line(&out);
                assert!(
                    err.contains("nothing was changed"),
                    "{context}: {err}\n{}",
                    stderr(&out)
                );
                assert!(
                    stderr(&out).contains("does not match its manifest")
                        || err.contains("does not match its manifest"),
                    "{context}: {}",
                    stderr(&out)
                );
                let sent = psql_input(&captures);
                assert!(
                    !sent.contains("DROP TABLE public.users")
                        && !sent.contains("CREATE ROLE")
                        && !sent.contains("PROGRAM"),
                    "{context}: psql received the forgery: {sent:.300}"
                );
                assert!(!role_exists(&role), "{context}: a role was created");
                assert!(!marker.exists(), "{context}: the program ran");
                before.assert_state_unchanged(&case, &context);
                assert_no_open_transaction(&case, &context);
            }
        }
        // The genuine file still restores.
        std::fs::write(backup.join("postgres.sql.gz"), &original).unwrap();
        assert_success(&case.run(&["restore", &name, "--yes", "--db-only"]));
        assert_eq!(table_fingerprints(&case.db), before.tables);
    }
}

#[test]
fn a_same_size_forgery_is_refused_by_restore_from_remote() {
    let case = Case::new();
    let offsite = case.dir.path().join("offsite");
    let wrapper = tee_psql(&case);
    let captures = case.dir.path().join("psql-input");
    case.write_config(
        &database_section(&case, &wrapper),
        &format!("[remote]\nurl = \"file://{}\"\n", offsite.display()),
    );
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    assert_success(&case.run(&["sync"]));
    let remote = offsite.join(&name);
    let payload = "COMMIT; BEGIN;\nDROP TABLE public.users CASCADE;";
    forge_same_size(
        &remote,
        &inject(&slimmed(&read_dump(&remote)), payload, false),
    );
    std::fs::remove_dir_all(&case.root).unwrap();
    let before = Before::take(&case);
    psql_input(&captures);
    let out = run_bounded(
        &case,
        &["restore", "--from-remote", &name, "--yes"],
        Duration::from_secs(60),
    );
    assert_exit(&out, 5);
    assert!(
        !psql_input(&captures).contains("DROP TABLE public.users"),
        "psql received the forgery"
    );
    before.assert_state_unchanged(&case, "restore --from-remote");
}

/// pg_dump's plain output brackets large-object data with `BEGIN;` … `COMMIT;`. Restored
/// inside coffer's transaction, the pair must not commit early: the large objects come
/// back, and a failure after the section leaves everything as it was.
#[test]
fn large_objects_restore_inside_the_one_transaction() {
    let case = Case::new();
    let wrapper = tee_psql(&case);
    let captures = case.dir.path().join("psql-input");
    case.write_config(&database_section(&case, &wrapper), "");
    let c = cluster();
    let oid = c
        .psql(
            &case.db,
            "SELECT lo_from_bytea(0, convert_to('large object one', 'UTF8'))",
        )
        .unwrap()
        .trim()
        .to_string();
    let lo = |db: &str| {
        c.psql(
            db,
            &format!(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_largeobject_metadata WHERE oid = {oid}) \
                 THEN convert_from(lo_get({oid}), 'UTF8') ELSE 'missing' END"
            ),
        )
        .unwrap()
        .trim()
        .to_string()
    };
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let dump = read_dump(&backup);
    assert!(
        dump.contains("\nBEGIN;\n") && dump.contains("\nCOMMIT;\n") && dump.contains("lowrite"),
        "pg_dump wrote its large-object section: {dump}"
    );
    assert_success(&case.run(&["verify", &name]));

    // The round trip: the large object comes back, and psql never got the dump's pair.
    c.psql(&case.db, &format!("SELECT lo_unlink({oid})"))
        .unwrap();
    psql_input(&captures);
    assert_success(&case.run(&["restore", &name, "--yes", "--db-only"]));
    assert_eq!(lo(&case.db), "large object one");
    let sent = psql_input(&captures);
    assert_eq!(
        sent.matches("\nBEGIN;\n").count(),
        1,
        "only coffer's own BEGIN: {sent}"
    );
    assert_eq!(
        sent.matches("COMMIT;").count(),
        1,
        "only coffer's own COMMIT"
    );

    // A failure after the large-object section: nothing is committed, not even the section.
    // (Without the tee wrapper: a `tee | psql` pipeline outlives a psql that stopped.)
    case.write_config(&case.db_section(), "");
    c.psql(&case.db, &format!("SELECT lo_unlink({oid})"))
        .unwrap();
    c.psql(&case.db, "CREATE TABLE public.kept_by_rollback (x int)")
        .unwrap();
    let before = Before::take(&case);
    let at = dump.find("\nCOMMIT;\n").unwrap() + "\nCOMMIT;\n".len();
    let failing = format!("{}SELECT 1/0;\n{}", &dump[..at], &dump[at..]);
    forge_dump(&backup, &failing);
    let out = run_bounded(
        &case,
        &["restore", &name, "--yes", "--db-only"],
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        error_line(&out).contains("nothing was changed") || stderr(&out).contains("rolled back"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        lo(&case.db),
        "missing",
        "the large-object section committed"
    );
    before.assert_state_unchanged(&case, "failure after the large objects");
    assert_no_open_transaction(&case, "failure after the large objects");
}

/// Where no hash can stand in the way (a coffer backup whose manifest and sums were
/// rewritten to match, or a legacy backup without hashes), the gate still refuses any
/// statement that would end coffer's transaction, before psql receives it.
#[test]
fn transaction_control_in_a_dump_is_refused_before_psql_receives_it() {
    let case = Case::new();
    let wrapper = tee_psql(&case);
    let captures = case.dir.path().join("psql-input");
    case.write_config(&database_section(&case, &wrapper), "");
    let role = format!("evil_{}", case.db);
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let dump = read_dump(&backup);
    let before = Before::take(&case);
    let payloads = [
        "COMMIT; BEGIN;\nDROP TABLE public.users CASCADE;".to_string(),
        format!("COMMIT; CREATE ROLE {role} SUPERUSER LOGIN; BEGIN;"),
        "commit /* done */ ;\nDROP TABLE public.users CASCADE;".to_string(),
        "END;\nDROP TABLE public.users CASCADE;".to_string(),
        "ROLLBACK;\nDROP TABLE public.users CASCADE;".to_string(),
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE;".to_string(),
        "PREPARE TRANSACTION 'coffer_evil';".to_string(),
        "COMMIT PREPARED 'coffer_evil';".to_string(),
        "SAVEPOINT s; RELEASE s;".to_string(),
        "BEGIN;\nBEGIN;\nCOMMIT;\nDROP TABLE public.users CASCADE;".to_string(),
    ];
    for (i, payload) in payloads.iter().enumerate() {
        for legacy in [false, true] {
            let context = format!("{payload:?} (legacy: {legacy})");
            let forged = inject(&dump, payload, i % 2 == 1);
            let target = if legacy {
                let legacy_name = format!("backup_20250601_03000{i}");
                legacy_backup(&case, &legacy_name, &forged, "");
                legacy_name
            } else {
                forge_dump(&backup, &forged);
                name.clone()
            };
            psql_input(&captures);
            let out = run_bounded(
                &case,
                &["restore", &target, "--yes", "--db-only"],
                Duration::from_secs(60),
            );
            assert_exit(&out, 5);
            let err = error_line(&out);
            assert!(
                err.contains("nothing was changed") && err.contains("transaction-control"),
                "{context}: {err}"
            );
            let sent = psql_input(&captures);
            assert!(
                !sent.contains("DROP TABLE public.users")
                    && !sent.contains("CREATE ROLE")
                    && !sent.contains("PREPARE")
                    && !sent.contains("SAVEPOINT")
                    && sent.matches("COMMIT").count() == 0,
                "{context}: psql received {sent:.300}"
            );
            assert!(!role_exists(&role), "{context}: a role was created");
            before.assert_state_unchanged(&case, &context);
            assert_no_open_transaction(&case, &context);
        }
    }
}
