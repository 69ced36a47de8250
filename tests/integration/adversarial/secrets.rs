//! Secrets in errors: whatever quotes a password (a broken configuration line, a URL
//! parameter coffer does not support, a program's stderr), the terminal, the run log,
//! `status` and the notification hooks never show it; nor do hooks inherit coffer's
//! credentials from its environment.

use crate::harness::*;

const SECRET: &str = "hunter2";

fn assert_hidden(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the password:\n{text}");
}

#[test]
fn configuration_errors_never_show_the_password() {
    let case = Case::new();
    let url = format!("postgres://app:{SECRET}@127.0.0.1:1/portal");
    let variants = [
        // A syntax error on the url line (toml would quote the line).
        format!("url = \"{url}\n"),
        // A duplicate key on the url line.
        format!("url = \"{url}\"\nurl = \"{url}\"\n"),
        // Garbage after the value.
        format!("url = \"{url}\" trailing\n"),
        // A parameter coffer does not pass on, holding the key's passphrase.
        format!("url = \"postgres://app@127.0.0.1/portal?sslpassword={SECRET}&sslmode=require\"\n"),
        // A URL that does not parse.
        format!("url = \"postgres://app:{SECRET}@[::1/portal\"\n"),
        // The wrong type.
        format!("url = [\"{url}\"]\n"),
    ];
    for database in &variants {
        case.write_config(database, "");
        for args in [&["backup"][..], &["list"], &["status", "--json"]] {
            let out = case.run(args);
            assert_exit(&out, 2);
            assert_hidden(&format!("{args:?} stderr for {database:?}"), &stderr(&out));
            assert_hidden(&format!("{args:?} stdout for {database:?}"), &stdout(&out));
            assert!(
                error_line(&out).contains("configuration"),
                "{args:?}: {}",
                stderr(&out)
            );
        }
    }
    // The same through the environment.
    case.write_config(&case.db_section(), "");
    let out = case
        .coffer()
        .arg("backup")
        .env(
            "COFFER_DATABASE_URL",
            format!("postgres://app:{SECRET}@127.0.0.1/portal?sslpassword={SECRET}&bogus=1"),
        )
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert_hidden("COFFER_DATABASE_URL error", &stderr(&out));
}

#[test]
fn a_failing_program_that_prints_the_password_is_redacted_everywhere() {
    let case = Case::new();
    let paged = case.dir.path().join("paged");
    // pg_dump (through database.exec) fails and echoes connection details, as a wrapper
    // or a misconfigured client may do.
    let database = case.exec_wrapper(&format!(
        "echo \"pg_dump: connection to postgres://app:{SECRET}@db/portal failed\" >&2\n\
         echo \"pg_dump: PGPASSWORD={SECRET} password={SECRET}\" >&2\nexit 1"
    ));
    let extra = format!(
        "[hooks]\non_failure = [[\"sh\", \"-c\", \"env > {}\"]]\n",
        paged.display()
    );
    case.write_config(&database, &extra);
    // Credentials in coffer's own environment must not be handed down to hooks either.
    let out = case
        .coffer()
        .args(["backup", "--kind", "auto"])
        .env("PGPASSWORD", SECRET)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("DATABASE_URL", format!("postgres://app:{SECRET}@db/portal"))
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("pg_dump"), "{err}");
    assert_hidden("backup stderr", &err);
    assert_hidden("backup stdout", &stdout(&out));
    let log = std::fs::read_to_string(case.root.join("coffer-runs.jsonl")).unwrap();
    assert!(log.contains("\"failure\""), "{log}");
    assert_hidden("the run log", &log);
    let env = std::fs::read_to_string(&paged).unwrap();
    assert!(env.contains("COFFER_ERROR"), "{env}");
    assert_hidden("the on_failure hook's environment", &env);
    for args in [&["status"][..], &["status", "--json"]] {
        let out = case.run(args);
        assert_hidden(
            &format!("{args:?}"),
            &format!("{}{}", stdout(&out), stderr(&out)),
        );
    }
}

/// Keys inside the workspace would be archived into every backup (the signing key handed to
/// whoever reads one) and replaced by a workspace restore (the trusted key by the backup's
/// copy): refused up front, whichever key and however it is reached.
#[test]
fn key_files_inside_the_workspace_are_refused() {
    let case = Case::new();
    let keys = case.workspace.join("secrets");
    std::fs::create_dir(&keys).unwrap();
    let outside = case.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    for f in ["sign.key", "sign.key.pub", "age.txt", "recipients.txt"] {
        std::fs::write(keys.join(f), "x\n").unwrap();
    }
    // A link from outside into the workspace is the same file.
    std::os::unix::fs::symlink(keys.join("sign.key"), outside.join("sign.key")).unwrap();
    let variants = [
        (
            "signing.secret_key_file",
            format!(
                "[signing]\nsecret_key_file = \"{}\"\n",
                keys.join("sign.key").display()
            ),
        ),
        (
            "signing.secret_key_file",
            format!(
                "[signing]\nsecret_key_file = \"{}\"\n",
                outside.join("sign.key").display()
            ),
        ),
        (
            "signing.trusted_public_key_file",
            format!(
                "[signing]\ntrusted_public_key_file = \"{}\"\n",
                keys.join("sign.key.pub").display()
            ),
        ),
        (
            "encryption.identity_file",
            format!(
                "[encryption]\nidentity_file = \"{}\"\n",
                keys.join("age.txt").display()
            ),
        ),
        (
            "encryption.recipients_file",
            format!(
                "[encryption]\nrecipients_file = \"{}\"\n",
                keys.join("recipients.txt").display()
            ),
        ),
    ];
    for (key, extra) in &variants {
        case.write_config(&case.db_section(), extra);
        for args in [&["backup"][..], &["verify", "--all"]] {
            let out = case.run(args);
            assert_exit(&out, 2);
            let err = stderr(&out);
            assert!(
                err.contains(key) && err.contains("inside"),
                "{key} {args:?}: {err}"
            );
        }
        assert!(
            !case.root.exists() || case.backups().is_empty(),
            "{key}: a backup was written"
        );
    }
}
