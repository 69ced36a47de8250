//! Disaster recovery on a bare host: no application database, no workspace directory (nor
//! its parents), no application roles. Restore creates what is missing, says so in the plan
//! and the output, and removes exactly what it created when it fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::harness::*;

fn name_of(backup: &Path) -> String {
    backup.file_name().unwrap().to_string_lossy().into_owned()
}

/// Everything coffer printed.
fn all_output(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

fn database_exists(name: &str) -> bool {
    cluster()
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        )
        .unwrap()
        .trim()
        == "1"
}

fn drop_database(name: &str) {
    cluster()
        .psql(
            "postgres",
            &format!("DROP DATABASE \"{name}\" WITH (FORCE)"),
        )
        .unwrap();
}

fn role_exists(name: &str) -> bool {
    cluster()
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{name}'"),
        )
        .unwrap()
        .trim()
        == "1"
}

/// A case whose workspace lives at `<case>/srv/app/workspace`, so that a bare host lacks
/// its parents too; `extra` goes into the config (sections), `database` into `[database]`.
struct Bare {
    case: Case,
    /// The outermost directory a bare host lacks (`<case>/srv`).
    srv: PathBuf,
}

impl Bare {
    fn new() -> Bare {
        let mut case = Case::new();
        let srv = case.dir.path().join("srv");
        let nested = srv.join("app/workspace");
        std::fs::create_dir_all(nested.parent().unwrap()).unwrap();
        std::fs::rename(&case.workspace, &nested).unwrap();
        case.workspace = nested;
        let bare = Bare { case, srv };
        bare.configure("", "");
        bare
    }

    fn configure(&self, database: &str, extra: &str) {
        self.case
            .write_config(&format!("{}{database}", self.case.db_section()), extra);
    }

    /// The host is bare: the database and the workspace with its parents are gone.
    fn lose_everything(&self) {
        drop_database(&self.case.db);
        std::fs::remove_dir_all(&self.srv).unwrap();
    }
}

#[test]
fn a_bare_host_gets_the_database_and_the_workspace_with_its_parents() {
    let bare = Bare::new();
    let case = &bare.case;
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    let name = name_of(&case.backup_ok(&[]));
    bare.lose_everything();

    let out = case.run(&["restore", &name, "--yes"]);
    assert_success(&out);
    let text = all_output(&out);
    for said in [
        format!("database {} does not exist: it will be created", case.db),
        format!("database {} created", case.db),
        "the workspace's parent directories do not exist: they will be created (mode 711)"
            .to_string(),
        format!("created directory {}", bare.srv.display()),
        format!(
            "workspace {} does not exist: it will be created",
            case.workspace.display()
        ),
    ] {
        assert!(text.contains(&said), "missing {said:?} in:\n{text}");
    }
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);
    for dir in [bare.srv.clone(), bare.srv.join("app")] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o711, "{}", dir.display());
    }
}

#[test]
fn a_bare_host_restores_the_latest_backup_from_the_s3_server() {
    let server = s3();
    let bare = Bare::new();
    let case = &bare.case;
    let roles = AppRoles::create(case);
    bare.configure(
        "include_roles = true\n",
        &server.remote_section(S3_BUCKET, &format!("bare/{}", case.db), ""),
    );
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    case.backup_ok(&[]);
    let mut sync = case.coffer();
    with_s3_credentials(&mut sync, S3_SECRET);
    assert_success(&sync.arg("sync").output().unwrap());

    // The host is lost entirely: no backup root, no database, no workspace, no roles.
    std::fs::remove_dir_all(&case.root).unwrap();
    bare.lose_everything();
    cluster()
        .psql(
            "postgres",
            &format!("DROP ROLE {}; DROP ROLE {}", roles.app, roles.group),
        )
        .unwrap();
    let mut restore = case.coffer();
    with_s3_credentials(&mut restore, S3_SECRET);
    let out = restore
        .args(["restore", "--from-remote", "--latest", "--yes"])
        .output()
        .unwrap();
    assert_success(&out);
    let text = all_output(&out);
    assert!(
        text.contains(&format!("database {} created", case.db)),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "roles {}, {} do not exist: they will be created",
            roles.app, roles.group
        )),
        "{text}"
    );
    assert!(role_exists(&roles.app) && role_exists(&roles.group));
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);
}

/// Rewrites the backup's artifact of `role` (gzip) from its plain text edited by `edit`,
/// and makes the manifest and `SHA256SUMS` agree: every hash check passes.
fn forge(backup: &Path, role: &str, edit: impl FnOnce(String) -> String) {
    use sha2::Digest;
    let hex = |b: &[u8]| hex::encode(sha2::Sha256::digest(b));
    let mut m = manifest(backup);
    let file = m["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["role"] == role)
        .unwrap_or_else(|| panic!("no {role} artifact"))["file"]
        .as_str()
        .unwrap()
        .to_string();
    let path = backup.join(&file);
    let text = edit(sh(&format!("gunzip -c '{}'", path.display())));
    let plain = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(plain.path(), &text).unwrap();
    sh(&format!(
        "gzip -nc '{}' > '{}'",
        plain.path().display(),
        path.display()
    ));
    let stored = std::fs::read(&path).unwrap();
    for a in m["artifacts"].as_array_mut().unwrap() {
        if a["role"] == role {
            a["size"] = stored.len().into();
            a["sha256"] = hex(&stored).into();
            a["uncompressed_size"] = text.len().into();
            a["uncompressed_sha256"] = hex(text.as_bytes()).into();
            // A new file has no piece index (as from a coffer before it): only the gate judges it.
            a.as_object_mut().unwrap().remove("pieces");
        }
    }
    std::fs::write(
        backup.join("manifest.json"),
        serde_json::to_string_pretty(&m).unwrap(),
    )
    .unwrap();
    write_sums_from_manifest(backup);
}

#[test]
fn a_restore_that_fails_after_creating_the_database_leaves_nothing_behind() {
    let bare = Bare::new();
    let case = &bare.case;
    let backup = case.backup_ok(&[]);
    // A statement that fails on the server, late in an otherwise valid dump.
    forge(&backup, "database", |dump| {
        let at = dump.rfind("-- PostgreSQL database dump complete").unwrap();
        format!("{}SELECT 1/0;\n\n{}", &dump[..at], &dump[at..])
    });
    bare.lose_everything();

    let out = case.run(&["restore", &name_of(&backup), "--yes"]);
    assert_exit(&out, 7);
    let text = all_output(&out);
    assert!(text.contains("division by zero"), "{text}");
    assert!(
        text.contains(&format!(
            "database {}, which this restore had created, was dropped again",
            case.db
        )),
        "{text}"
    );
    assert!(
        text.contains("removed the directories this restore had created"),
        "{text}"
    );
    assert!(!database_exists(&case.db), "the created database is left");
    assert!(!bare.srv.exists(), "the created directories are left");
    // Nothing else was touched: the case's directory holds what it held.
    let mut left = file_names(case.dir.path());
    left.sort();
    assert_eq!(left, ["backups", "coffer.toml"], "{left:?}");
}

#[test]
fn a_workspace_inside_the_backup_root_is_refused_and_nothing_is_created() {
    let bare = Bare::new();
    let case = &bare.case;
    let name = name_of(&case.backup_ok(&[]));
    let inside = case.root.join("new/deeper/workspace");
    let out = case.run(&[
        "restore",
        &name,
        "--yes",
        "--workspace-only",
        "--target-dir",
        inside.to_str().unwrap(),
    ]);
    assert_exit(&out, 6);
    assert!(!case.root.join("new").exists());
}

/// Roles owned objects need, unique to this test (roles are the cluster's, shared by tests).
struct AppRoles {
    app: String,
    group: String,
}

impl AppRoles {
    /// `app` (LOGIN, a password, member of `group`) owns the `users` table of the case.
    fn create(case: &Case) -> AppRoles {
        let roles = AppRoles {
            app: format!("{}_app", case.db),
            group: format!("{}_readers", case.db),
        };
        cluster()
            .psql(
                "postgres",
                &format!(
                    "CREATE ROLE {g} NOLOGIN; CREATE ROLE {a} LOGIN PASSWORD 'app-secret' CONNECTION LIMIT 4; GRANT {g} TO {a}; \
                     ALTER ROLE {a} SET search_path TO 'public'; COMMENT ON ROLE {a} IS 'the application; it owns users';",
                    a = roles.app,
                    g = roles.group
                ),
            )
            .unwrap();
        cluster()
            .psql(
                &case.db,
                &format!("ALTER TABLE users OWNER TO {}", roles.app),
            )
            .unwrap();
        roles
    }

    fn password_verifier(&self) -> String {
        cluster()
            .psql(
                "postgres",
                &format!(
                    "SELECT rolpassword FROM pg_authid WHERE rolname = '{}'",
                    self.app
                ),
            )
            .unwrap()
    }
}

#[test]
fn with_include_roles_a_dropped_role_is_recreated_and_an_existing_one_left_alone() {
    let bare = Bare::new();
    let case = &bare.case;
    let roles = AppRoles::create(case);
    let verifier = roles.password_verifier();
    assert!(verifier.starts_with("SCRAM-SHA-256$"), "{verifier}");
    bare.configure("include_roles = true\n", "");
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    let backup = case.backup_ok(&[]);
    let m = manifest(&backup);
    let listed: Vec<&str> = m["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["file"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"roles.sql.gz"), "{listed:?}");
    sh(&format!(
        "cd '{}' && sha256sum -c --quiet SHA256SUMS",
        backup.display()
    ));
    let out = case.run(&["verify", &name_of(&backup)]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("roles.sql.gz: roles"),
        "{}",
        stdout(&out)
    );

    // The host lost the database and the application's role; the group role is there,
    // changed since the backup: it must stay as it is now.
    bare.lose_everything();
    cluster()
        .psql(
            "postgres",
            &format!(
                "DROP ROLE {}; ALTER ROLE {} CONNECTION LIMIT 3",
                roles.app, roles.group
            ),
        )
        .unwrap();
    let out = case.run(&["restore", &name_of(&backup), "--yes"]);
    assert_success(&out);
    let text = all_output(&out);
    assert!(
        text.contains(&format!(
            "roles {} do not exist: they will be created from the backup's roles.sql.gz (existing roles are not changed), with memberships {} in {}; their 2 role setting(s) and comment(s) in it are not restored",
            roles.app, roles.app, roles.group
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("roles created: {}", roles.app)),
        "{text}"
    );
    assert!(
        !text.contains("app-secret") && !text.contains("SCRAM"),
        "{text}"
    );
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);
    assert_eq!(roles.password_verifier(), verifier);
    let facts = cluster()
        .psql(
            "postgres",
            &format!(
                "SELECT r.rolcanlogin, r.rolconnlimit, r.rolsuper, \
                 pg_has_role(r.oid, '{g}', 'MEMBER'), \
                 (SELECT rolconnlimit FROM pg_roles WHERE rolname = '{g}') \
                 FROM pg_roles r WHERE r.rolname = '{a}'",
                a = roles.app,
                g = roles.group
            ),
        )
        .unwrap();
    assert_eq!(facts.trim(), "t|4|f|t|3");
    let owner = cluster()
        .psql(
            &case.db,
            "SELECT tableowner FROM pg_tables WHERE tablename = 'users'",
        )
        .unwrap();
    assert_eq!(owner.trim(), roles.app);
}

#[test]
fn without_include_roles_the_refusal_says_exactly_what_to_create() {
    let bare = Bare::new();
    let case = &bare.case;
    let roles = AppRoles::create(case);
    let name = name_of(&case.backup_ok(&[]));
    bare.lose_everything();
    cluster()
        .psql("postgres", &format!("DROP ROLE {}", roles.app))
        .unwrap();
    let out = case.run(&["restore", &name, "--yes"]);
    assert_exit(&out, 6);
    let text = all_output(&out);
    assert!(
        text.contains(&format!(
            "roles named by the dump's OWNER TO do not exist: {a}; create them first (CREATE ROLE \"{a}\" LOGIN;)",
            a = roles.app
        )),
        "{text}"
    );
    assert!(!database_exists(&case.db));
    assert!(!bare.srv.exists());
}

#[test]
fn a_roles_file_with_a_forbidden_statement_is_refused_with_nothing_changed() {
    let bare = Bare::new();
    let case = &bare.case;
    let roles = AppRoles::create(case);
    bare.configure("include_roles = true\n", "");
    let backup = case.backup_ok(&[]);
    let marker = case.dir.path().join("ran");
    forge(&backup, "roles", |text| {
        format!(
            "{text}\nDROP ROLE {g};\nCOPY (SELECT 1) TO PROGRAM 'touch {m}';\n\\! touch {m}\n",
            g = roles.group,
            m = marker.display()
        )
    });
    bare.lose_everything();
    cluster()
        .psql("postgres", &format!("DROP ROLE {}", roles.app))
        .unwrap();

    let out = case.run(&["restore", &name_of(&backup), "--yes"]);
    assert_exit(&out, 6);
    let text = all_output(&out);
    assert!(
        text.contains(
            "the backup's roles file roles.sql.gz holds what coffer does not accept (line "
        ) && text.contains("not a statement coffer accepts in a roles file: DROP ROLE")
            && text.contains(&format!("CREATE ROLE \"{}\" LOGIN;", roles.app)),
        "{text}"
    );
    assert!(!marker.exists());
    assert!(!role_exists(&roles.app), "no role was created");
    assert!(role_exists(&roles.group), "no role was dropped");
    assert!(!database_exists(&case.db));
    assert!(!bare.srv.exists());
}

#[test]
fn a_privileged_role_is_never_created() {
    let bare = Bare::new();
    let case = &bare.case;
    let admin = format!("{}_admin", case.db);
    cluster()
        .psql("postgres", &format!("CREATE ROLE {admin} LOGIN SUPERUSER"))
        .unwrap();
    cluster()
        .psql(&case.db, &format!("ALTER TABLE users OWNER TO {admin}"))
        .unwrap();
    bare.configure("include_roles = true\n", "");
    let name = name_of(&case.backup_ok(&[]));
    bare.lose_everything();
    cluster()
        .psql("postgres", &format!("DROP ROLE {admin}"))
        .unwrap();
    let out = case.run(&["restore", &name, "--yes"]);
    assert_exit(&out, 6);
    let text = all_output(&out);
    assert!(
        text.contains(&format!(
            "role {admin} is missing and has SUPERUSER in the backup: coffer does not create privileged roles"
        )),
        "{text}"
    );
    assert!(!role_exists(&admin));
    assert!(!database_exists(&case.db));
}

#[test]
fn a_server_that_refuses_the_login_is_not_a_missing_database() {
    let bare = Bare::new();
    let case = &bare.case;
    let name = name_of(&case.backup_ok(&[]));
    bare.lose_everything();
    // The same server, a role that does not exist: the login fails, whatever the database.
    let url = cluster()
        .url(&case.db)
        .replace("postgres@", &format!("{}_nobody@", case.db));
    case.write_config(&format!("url = \"{url}\"\n"), "");
    let out = case.run(&["restore", &name, "--yes"]);
    assert_exit(&out, 6);
    let text = all_output(&out);
    assert!(text.contains("cannot reach the target database"), "{text}");
    assert!(
        !text.contains(&format!("database {} does not exist", case.db)),
        "{text}"
    );
    assert!(!database_exists(&case.db));
    assert!(!bare.srv.exists());
}

#[test]
fn a_roles_file_that_grants_an_existing_privileged_role_creates_nothing() {
    let bare = Bare::new();
    let case = &bare.case;
    let roles = AppRoles::create(case);
    bare.configure("include_roles = true\n", "");
    let backup = case.backup_ok(&[]);
    // Forged with matching hashes: the recreated role (whose password the backup sets)
    // would join the superuser and the role that runs programs on the server.
    forge(&backup, "roles", |text| {
        format!(
            "{text}\nGRANT postgres TO {a} GRANTED BY postgres;\nGRANT pg_execute_server_program TO {a};\n",
            a = roles.app
        )
    });
    bare.lose_everything();
    cluster()
        .psql("postgres", &format!("DROP ROLE {}", roles.app))
        .unwrap();

    let out = case.run(&["restore", &name_of(&backup), "--yes"]);
    assert_exit(&out, 6);
    let text = all_output(&out);
    for role in ["postgres", "pg_execute_server_program"] {
        assert!(
            text.contains(&format!(
                "the backup's roles file makes the missing role {} a member of {role}, which exists and is privileged",
                roles.app
            )),
            "{text}"
        );
    }
    assert!(
        !text.contains(&format!("a member of {}", roles.group)),
        "{text}"
    );
    assert!(!role_exists(&roles.app), "no role was created");
    assert!(!database_exists(&case.db));
    assert!(!bare.srv.exists());
}

/// Starts `coffer restore NAME --yes` and SIGKILLs it while its transaction builds the slow
/// index (see [`slow_index`]); returns once the killed restore's session has ended.
fn kill_mid_apply(case: &Case, name: &str) {
    let mut child = case
        .coffer()
        .args(["restore", name, "--yes", "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let in_index_build = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE 'CREATE INDEX slow_rows_idx%'",
        case.db
    );
    let limit = std::time::Duration::from_secs(120);
    let deadline = std::time::Instant::now() + limit;
    // Killed whatever happens, so a failing wait leaves no restore running.
    let reached = loop {
        if child.try_wait().unwrap().is_some() {
            break Err("the restore ended before it could be killed");
        }
        if cluster().psql("postgres", &in_index_build).unwrap() == "1" {
            break Ok(());
        }
        if std::time::Instant::now() >= deadline {
            break Err("timed out waiting for the restore's index build");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = child.kill();
    child.wait().unwrap();
    reached.unwrap();
    // psql finishes its statement, reads end-of-input without COMMIT, and the server rolls
    // back when the session ends.
    let sessions = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'",
        case.db
    );
    wait_until("the killed restore's session to end", limit, || {
        cluster().psql("postgres", &sessions).unwrap() == "0"
    });
}

/// An index whose build takes a few seconds, so that a restore can be killed inside it.
fn slow_index(case: &Case) {
    cluster()
        .psql(
            &case.db,
            "CREATE FUNCTION public.slow_id(i integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE \
             AS $$ BEGIN PERFORM pg_sleep(0.4); RETURN i; END $$; \
             CREATE TABLE slow_rows (i integer); INSERT INTO slow_rows SELECT generate_series(1, 8); \
             CREATE INDEX slow_rows_idx ON slow_rows (public.slow_id(i));",
        )
        .unwrap();
}

/// A coffer killed with SIGKILL mid-restore on a bare host leaves the database, the role and
/// the workspace's parents it created. The next restore recognises them from its journal:
/// what is provably the killed run's and unused since is removed and said so; a database
/// someone has put something into since is left in place, with what to check.
#[test]
fn a_restore_killed_on_a_bare_host_leaves_what_the_next_one_recognises() {
    let bare = Bare::new();
    let case = &bare.case;
    let roles = AppRoles::create(case);
    bare.configure("include_roles = true\n", "");
    slow_index(case);
    let tables = table_fingerprints(&case.db);
    let workspace = archived_part(snapshot(&case.workspace));
    let name = name_of(&case.backup_ok(&[]));
    let journal = case.root.join(".coffer-restore-created.json");
    let lose_all = || {
        bare.lose_everything();
        cluster()
            .psql("postgres", &format!("DROP ROLE {}", roles.app))
            .unwrap();
    };

    // Killed: what it created is still there, and so is its journal.
    lose_all();
    kill_mid_apply(case, &name);
    assert!(database_exists(&case.db) && role_exists(&roles.app));
    assert!(bare.srv.join("app").is_dir());
    assert!(journal.is_file());
    let objects = |db: &str| {
        cluster()
            .psql(
                db,
                "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
            )
            .unwrap()
    };
    assert_eq!(objects(&case.db), "0", "rolled back");

    // The next restore removes it (empty, unused, the same objects), then restores.
    let out = case.run(&["restore", &name, "--yes"]);
    assert_success(&out);
    let text = all_output(&out);
    for said in [
        format!("a restore of {name} was killed earlier"),
        format!("database {} (empty)", case.db),
        format!("role {}", roles.app),
        format!("directory {}", bare.srv.display()),
        format!("database {} created", case.db),
        format!("roles created: {}", roles.app),
    ] {
        assert!(text.contains(&said), "missing {said:?} in:\n{text}");
    }
    assert!(!text.contains("left in place"), "{text}");
    assert!(!journal.exists());
    assert_eq!(table_fingerprints(&case.db), tables);
    assert_eq!(snapshot(&case.workspace), workspace);

    // Killed again; then someone puts a table into the database it created: that database
    // is not provably coffer's any more and stays, with the table; the roles stay with it.
    lose_all();
    kill_mid_apply(case, &name);
    cluster()
        .psql(&case.db, "CREATE TABLE operator_notes (x int)")
        .unwrap();
    let out = case.run(&["restore", &name, "--yes"]);
    assert_success(&out);
    let text = all_output(&out);
    for said in [
        format!(
            "left in place (not provably coffer's any more): database {} (it holds ",
            case.db
        ),
        format!("roles {} (created for that database", roles.app),
    ] {
        assert!(text.contains(&said), "missing {said:?} in:\n{text}");
    }
    assert!(!journal.exists());
    assert_eq!(
        cluster()
            .psql(&case.db, "SELECT count(*) FROM operator_notes")
            .unwrap(),
        "0"
    );
    assert_eq!(snapshot(&case.workspace), workspace);
}
