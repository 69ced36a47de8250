use super::*;

const SCRAM: &str = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVka2V5c3RvcmVka2V5c3RvcmVka2V5MTI=:c2VydmVya2V5c2VydmVya2V5c2VydmVya2V5MTI=";

/// What pg_dumpall 15 writes for a cluster with an application role in a group role.
fn dump() -> String {
    format!(
        "--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict abc123XYZ\n\n\
         SET default_transaction_read_only = off;\n\n\
         SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n\n\
         --\n-- Roles\n--\n\n\
         CREATE ROLE app;\n\
         ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD '{SCRAM}';\n\
         CREATE ROLE postgres;\n\
         ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;\n\
         CREATE ROLE readers;\n\
         ALTER ROLE readers WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 5 VALID UNTIL '2030-01-01 00:00:00+00';\n\
         CREATE ROLE \"Odd \"\"Name\";\n\
         ALTER ROLE \"Odd \"\"Name\" WITH NOSUPERUSER NOINHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;\n\n\
         --\n-- Role memberships\n--\n\n\
         GRANT readers TO app GRANTED BY postgres;\n\
         GRANT \"Odd \"\"Name\" TO readers WITH ADMIN OPTION GRANTED BY postgres;\n\n\
         \\unrestrict abc123XYZ\n\n\
         --\n-- PostgreSQL database cluster dump complete\n--\n\n"
    )
}

#[test]
fn pg_dumpalls_output_is_read() {
    let file = parse(&dump()).unwrap();
    assert_eq!(
        file.roles.keys().collect::<Vec<_>>(),
        ["Odd \"Name", "app", "postgres", "readers"]
    );
    let app = &file.roles["app"];
    assert_eq!(app.login, Some(true));
    assert_eq!(app.superuser, Some(false));
    assert_eq!(app.password.as_deref(), Some(SCRAM));
    assert!(app.privileged().is_empty());
    assert_eq!(
        file.roles["postgres"].privileged(),
        ["SUPERUSER", "REPLICATION", "BYPASSRLS"]
    );
    let readers = &file.roles["readers"];
    assert_eq!(readers.connection_limit, Some(5));
    assert_eq!(
        readers.valid_until.as_deref(),
        Some("2030-01-01 00:00:00+00")
    );
    assert_eq!(
        file.memberships,
        [
            Membership {
                role: "readers".into(),
                member: "app".into(),
                admin: false,
                inherit: None,
                set: None
            },
            Membership {
                role: "Odd \"Name".into(),
                member: "readers".into(),
                admin: true,
                inherit: None,
                set: None
            },
        ]
    );
}

#[test]
fn postgres_16_grant_options_are_read() {
    let file = parse(
        "CREATE ROLE a;\nCREATE ROLE b;\nGRANT a TO b WITH ADMIN OPTION, INHERIT FALSE, SET TRUE GRANTED BY postgres;\nGRANT b TO a WITH INHERIT TRUE;\n",
    )
    .unwrap();
    assert!(file.memberships[0].admin);
    assert_eq!(file.memberships[0].inherit, Some(false));
    assert_eq!(file.memberships[0].set, Some(true));
    assert_eq!(file.memberships[1].inherit, Some(true));
}

#[test]
fn anything_else_is_refused_naming_the_line() {
    let table: &[(&str, &str)] = &[
        ("DROP ROLE app;", "not a statement coffer accepts"),
        (
            "CREATE ROLE app; DROP ROLE x;",
            "expected the end of the statement",
        ),
        ("CREATE ROLE app;\nALTER ROLE app LOGIN;", "expected WITH"),
        (
            "ALTER ROLE app SET search_path = x",
            "expected the end of the statement (;)",
        ),
        (
            "COMMENT ON ROLE app IS 'x'; DROP ROLE y;",
            "expected the end of the statement",
        ),
        (
            "CREATE ROLE app SUPERUSER;",
            "expected the end of the statement",
        ),
        ("ALTER ROLE app WITH LOGIN;", "altered before it is created"),
        ("CREATE ROLE app;\nCREATE ROLE app;", "created twice"),
        (
            "CREATE ROLE app;\nALTER ROLE app WITH LOGIN;\nALTER ROLE app WITH NOLOGIN;",
            "altered twice",
        ),
        (
            "CREATE ROLE app;\nALTER ROLE app WITH LOGIN LOGIN;",
            "given twice",
        ),
        (
            "CREATE ROLE app;\nALTER ROLE app WITH LOGIN PASSWORD 'hunter2';",
            "not a SCRAM-SHA-256 or md5 verifier",
        ),
        (
            "CREATE ROLE app;\nALTER ROLE app WITH PASSWORD 'md5abc';",
            "not a SCRAM-SHA-256 or md5 verifier",
        ),
        (
            "CREATE ROLE app;\nALTER ROLE app WITH SYSID 5;",
            "SYSID is not a role attribute",
        ),
        (
            "CREATE ROLE app;\nALTER ROLE app WITH LOGIN",
            "expected a role attribute",
        ),
        (
            "CREATE ROLE app;\nALTER ROLE app WITH VALID UNTIL 'x''; DROP ROLE y; --';",
            "an unusual VALID UNTIL value",
        ),
        ("GRANT SELECT ON t TO app;", "expected a role name"),
        ("GRANT select ON t TO app;", "expected TO"),
        (
            "GRANT a TO b WITH GRANT OPTION;",
            "expected ADMIN, INHERIT or SET",
        ),
        ("GRANT a TO b GRANTED BY;", "expected a role name"),
        ("GRANT a, b TO c;", "expected TO"),
        ("CREATE ROLE App;", "expected a role name"),
        ("CREATE ROLE \"\";", "expected a role name"),
        ("CREATE ROLE \"open;", "not closed on its line"),
        ("CREATE ROLE \"two\nlines\";", "not closed on its line"),
        (
            "SET client_encoding = 'LATIN1';",
            "is not one coffer reads roles under",
        ),
        (
            "SET standard_conforming_strings = off;",
            "is not one coffer reads roles under",
        ),
        (
            "SET role = postgres;",
            "is not one coffer reads roles under",
        ),
        ("\\! rm -rf /", "unexpected character '\\\\'"),
        ("\\restrict ab;c", "a malformed \\restrict line"),
        ("\\connect template1", "unexpected character"),
        (
            "COPY x FROM PROGRAM 'id';",
            "not a statement coffer accepts",
        ),
        ("CREATE ROLE app; -- trailing", "not a number: -"),
        ("COMMENT ON TABLE t IS 'x';", "expected ROLE"),
    ];
    for (text, why) in table {
        let err = parse(text).expect_err(text);
        assert!(err.starts_with("line "), "{text}: {err}");
        assert!(err.contains(why), "{text}: {err} (wanted {why})");
        assert!(!err.contains("hunter2"), "a password is never shown: {err}");
    }
}

#[test]
fn the_line_number_is_the_offending_one() {
    let err = parse("CREATE ROLE a;\n\n-- c\nDROP ROLE a;\n").unwrap_err();
    assert!(err.starts_with("line 4: "), "{err}");
}

#[test]
fn verifiers_are_recognised_strictly() {
    assert!(is_verifier(SCRAM));
    assert!(is_verifier("md50123456789abcdef0123456789abcdef"));
    for bad in [
        "",
        "md5",
        "md50123456789abcdef0123456789abcdeg",
        "SCRAM-SHA-256$4096:salt",
        "SCRAM-SHA-256$x:c2FsdA==$a:b",
        "SCRAM-SHA-256$4096:c2FsdA==$a:b'; DROP ROLE x; --",
        "secret",
    ] {
        assert!(!is_verifier(bad), "{bad}");
    }
}

fn exists_only(names: &'static [&'static str]) -> impl Fn(&str) -> bool {
    move |n: &str| names.contains(&n)
}

#[test]
fn creation_takes_the_missing_needed_roles_and_their_missing_groups() {
    let file = parse(&dump()).unwrap();
    let plan = plan_creation(&file, &["app".into()], &exists_only(&["postgres"])).unwrap();
    assert_eq!(plan.names(), ["Odd \"Name", "app", "readers"]);
    assert_eq!(plan.memberships.len(), 2);

    // An existing group is granted to, never altered; an existing role is never touched.
    let plan = plan_creation(
        &file,
        &["app".into()],
        &exists_only(&["postgres", "readers"]),
    )
    .unwrap();
    assert_eq!(plan.names(), ["app"]);
    assert_eq!(plan.memberships.len(), 1);
    let plan = plan_creation(
        &file,
        &["app".into(), "readers".into()],
        &exists_only(&["app", "readers"]),
    )
    .unwrap();
    assert_eq!(plan, RoleCreation::default());
}

#[test]
fn creation_refuses_privileged_and_unknown_roles() {
    let file = parse(&dump()).unwrap();
    let err = plan_creation(
        &file,
        &["postgres".into(), "ghost".into()],
        &exists_only(&[]),
    )
    .unwrap_err();
    assert_eq!(err.len(), 2, "{err:?}");
    assert!(
        err.iter().any(|e| e.starts_with("role postgres is missing and has SUPERUSER, REPLICATION, BYPASSRLS in the backup: coffer does not create privileged roles")),
        "{err:?}"
    );
    assert!(
        err.iter().any(|e| e.contains("role ghost is missing and not in the backup's roles file: create it first (CREATE ROLE \"ghost\" LOGIN;)")),
        "{err:?}"
    );
}

#[test]
fn rendering_quotes_every_name_and_literal() {
    let file = parse(&dump()).unwrap();
    let plan = plan_creation(&file, &["app".into()], &exists_only(&["postgres"])).unwrap();
    let sql = render_creation(&plan);
    assert_eq!(
        sql,
        format!(
            "CREATE ROLE \"Odd \"\"Name\" WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS NOINHERIT NOCREATEROLE NOCREATEDB NOLOGIN;\n\
             CREATE ROLE \"app\" WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{SCRAM}';\n\
             CREATE ROLE \"readers\" WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS INHERIT NOCREATEROLE NOCREATEDB NOLOGIN CONNECTION LIMIT 5 VALID UNTIL '2030-01-01 00:00:00+00';\n\
             GRANT \"readers\" TO \"app\";\n\
             GRANT \"Odd \"\"Name\" TO \"readers\" WITH ADMIN OPTION;\n"
        )
    );
}

#[test]
fn a_suggested_role_is_quoted() {
    assert_eq!(suggested_create("app"), "CREATE ROLE \"app\" LOGIN;");
    assert_eq!(suggested_create("a\"b"), "CREATE ROLE \"a\"\"b\" LOGIN;");
}

#[test]
fn memberships_in_existing_privileged_roles_are_refused() {
    // A forged roles file: the role it creates (with the backup's password) joins the
    // superuser and a role that runs programs on the server.
    let text = format!(
        "{}GRANT postgres TO app GRANTED BY postgres;\n\
         GRANT pg_execute_server_program TO app;\n",
        dump()
    );
    let file = parse(&text).unwrap();
    let plan = plan_creation(
        &file,
        &["app".into()],
        &exists_only(&["postgres", "readers", "pg_execute_server_program"]),
    )
    .unwrap();
    assert_eq!(plan.names(), ["app"]);
    assert_eq!(
        plan.granted_existing(),
        ["pg_execute_server_program", "postgres", "readers"]
    );
    let privileged = |r: &str| r == "postgres" || r == "pg_execute_server_program";
    let refused = privileged_memberships(&plan, &privileged);
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].starts_with(
            "the backup's roles file makes the missing role app a member of postgres, which exists and is privileged"
        ),
        "{refused:?}"
    );
    assert!(
        refused[1].contains("a member of pg_execute_server_program"),
        "{refused:?}"
    );
    // An ordinary existing group, and groups the plan creates itself, are not refused.
    let plan = plan_creation(
        &parse(&dump()).unwrap(),
        &["app".into()],
        &exists_only(&["postgres"]),
    )
    .unwrap();
    assert!(plan.granted_existing().is_empty());
    assert!(privileged_memberships(&plan, &|_: &str| true).is_empty());
}

#[test]
fn a_missing_role_with_createrole_is_never_created() {
    let text = dump().replace(
        "ALTER ROLE readers WITH NOSUPERUSER INHERIT NOCREATEROLE",
        "ALTER ROLE readers WITH NOSUPERUSER INHERIT CREATEROLE",
    );
    let file = parse(&text).unwrap();
    let err = plan_creation(&file, &["app".into()], &exists_only(&["postgres"])).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with(
            "role readers is missing and has CREATEROLE in the backup: coffer does not create"
        ),
        "{err:?}"
    );
}

#[test]
fn settings_and_comments_are_read_past_and_counted() {
    let text = "CREATE ROLE app;\nALTER ROLE app WITH LOGIN;\n\
                ALTER ROLE app SET search_path TO 'a', 'public';\n\
                ALTER ROLE app IN DATABASE portal SET work_mem TO '64MB';\n\
                COMMENT ON ROLE app IS 'the application; not a statement';\n";
    let file = parse(text).unwrap();
    assert_eq!(file.skipped.get("app"), Some(&3));
    assert_eq!(file.roles.len(), 1);
    assert!(file.memberships.is_empty());
}
