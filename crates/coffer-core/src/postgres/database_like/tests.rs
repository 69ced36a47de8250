use super::*;
use crate::sandbox::TempCluster;

#[test]
fn guc_lists_split_like_postgres() {
    let cases: [(&str, Option<&[&str]>); 9] = [
        ("", Some(&[])),
        ("public", Some(&["public"])),
        ("\"$user\", public", Some(&["$user", "public"])),
        ("a,b ,  c", Some(&["a", "b", "c"])),
        (
            "\"My Schema\", \"q\"\"uote\"",
            Some(&["My Schema", "q\"uote"]),
        ),
        ("\"\"", Some(&[""])),
        ("\"unterminated", None),
        ("a,,b", None),
        ("a b", None),
    ];
    for (text, want) in cases {
        let got = split_guc_list(text);
        let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{text:?}");
    }
}

#[test]
fn settings_become_quoted_assignments() {
    let cases = [
        ("work_mem=12MB", Ok("\"work_mem\" = '12MB'")),
        (
            "search_path=\"$user\", public",
            Ok("\"search_path\" = '$user', 'public'"),
        ),
        ("app.tenant=it's", Ok("\"app\".\"tenant\" = 'it''s'")),
        ("app.x=a=b", Ok("\"app\".\"x\" = 'a=b'")),
        ("x=back\\slash", Ok("\"x\" = E'back\\\\slash'")),
        ("noequals", Err(())),
        ("bad name=1", Err(())),
        ("a;DROP=1", Err(())),
        ("a..b=1", Err(())),
        ("=1", Err(())),
    ];
    for (item, want) in cases {
        let got = setting_assignment(item);
        assert_eq!(got.as_deref().map_err(|_| ()), want, "{item}: {got:?}");
    }
}

#[test]
fn aclitems_parse_or_are_refused() {
    let item = |grantee: Option<&str>, grantor: &str, p: &[(&'static str, bool)]| AclItem {
        grantee: grantee.map(String::from),
        grantor: grantor.into(),
        privileges: p.to_vec(),
    };
    let cases = [
        (
            "=Tc/postgres",
            Ok(item(
                None,
                "postgres",
                &[("TEMPORARY", false), ("CONNECT", false)],
            )),
        ),
        (
            "app=C*Tc/postgres",
            Ok(item(
                Some("app"),
                "postgres",
                &[("CREATE", true), ("TEMPORARY", false), ("CONNECT", false)],
            )),
        ),
        (
            "\"we\"\"ird/=x\nrole\"=c/\"own er\"",
            Ok(item(
                Some("we\"ird/=x\nrole"),
                "own er",
                &[("CONNECT", false)],
            )),
        ),
        ("app=r/postgres", Err(())),
        ("app=c", Err(())),
        ("app=**c/postgres", Err(())),
        ("app=c**/postgres", Err(())),
        ("\"app=c/postgres", Err(())),
        ("app=c/postgres;x", Err(())),
        ("app=c/", Err(())),
    ];
    for (text, want) in cases {
        let got = parse_aclitem(text);
        assert_eq!(got.as_ref().ok(), want.as_ref().ok(), "{text:?}");
        assert_eq!(got.is_err(), want.is_err(), "{text:?}: {got:?}");
    }
}

#[test]
fn grants_start_from_nothing_and_keep_their_grantor() {
    let acl = [
        "=c/owner".to_string(),
        "r=C*/owner".to_string(),
        "s=C/r".to_string(),
    ];
    let sql = grant_statements(&acl, "owner", "\"d\"").unwrap();
    assert_eq!(
        sql,
        "REVOKE ALL ON DATABASE \"d\" FROM PUBLIC;\n\
         REVOKE ALL ON DATABASE \"d\" FROM \"owner\";\n\
         GRANT CONNECT ON DATABASE \"d\" TO PUBLIC;\n\
         GRANT CREATE ON DATABASE \"d\" TO \"r\" WITH GRANT OPTION;\n\
         SET ROLE \"r\";\n\
         GRANT CREATE ON DATABASE \"d\" TO \"s\";\n\
         RESET ROLE;\n"
    );
}

#[test]
fn names_past_63_bytes_are_refused() {
    assert!(check_name(&"a".repeat(63)).is_ok());
    assert!(check_name(&"a".repeat(64)).is_err());
    // 21 three-byte characters are 63 bytes; one more byte is too many.
    assert!(check_name(&"€".repeat(21)).is_ok());
    assert!(check_name(&format!("{}x", "€".repeat(21))).is_err());
    assert!(check_name("").is_err());
}

/// The catalog facts of database `name`, read independently of `database_profile`: what
/// a database made like another must match.
fn catalog_row(cluster: &TempCluster, name: &str) -> String {
    cluster
        .psql(
            "postgres",
            &format!(
                "SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, \
                 d.datctype, d.datlocprovider, coalesce(d.daticulocale, '-'), d.datconnlimit, \
                 coalesce(d.datacl::text, 'default'), t.spcname, \
                 coalesce(shobj_description(d.oid, 'pg_database'), '-'), \
                 (SELECT coalesce(string_agg(coalesce(r.rolname, '-') || ':' || s.setconfig::text, \
                   ';' ORDER BY r.rolname NULLS FIRST), '') \
                  FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole \
                  WHERE s.setdatabase = d.oid) \
                 FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace \
                 WHERE d.datname = {}",
                quote_literal(name)
            ),
        )
        .unwrap()
}

#[test]
fn a_database_made_like_another_has_its_owner_locale_settings_and_grants() {
    let cluster = TempCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let weird_role = "we'ird \"role\"\nx";
    let source = "src \"db\" it's\nline";
    let run = |sql: &str| cluster.psql("postgres", sql).unwrap();
    run(&format!(
        "CREATE ROLE app; CREATE ROLE reader; CREATE ROLE {}",
        quote_ident(weird_role)
    ));
    let db = quote_ident(source);
    run(&format!(
        "CREATE DATABASE {db} OWNER app TEMPLATE template0 ENCODING 'UTF8' \
         LC_COLLATE 'C.utf8' LC_CTYPE 'C.utf8' CONNECTION LIMIT 7"
    ));
    run(&format!(
        "ALTER DATABASE {db} SET search_path = '$user', public, 'My \"Schema'; \
         ALTER DATABASE {db} SET work_mem = '12MB'; \
         ALTER ROLE reader IN DATABASE {db} SET statement_timeout = '5s'; \
         ALTER ROLE {w} IN DATABASE {db} SET application_name = 'a''b\\c'; \
         REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC; \
         GRANT CONNECT ON DATABASE {db} TO reader; \
         GRANT CREATE ON DATABASE {db} TO {w} WITH GRANT OPTION; \
         SET ROLE {w}; GRANT CREATE ON DATABASE {db} TO reader; RESET ROLE; \
         COMMENT ON DATABASE {db} IS 'the app''s'",
        w = quote_ident(weird_role)
    ));
    let admin = cluster.database("postgres");
    let profile = admin.database_profile(source).unwrap();
    assert_eq!(profile.owner, "app");
    assert_eq!(profile.connection_limit, 7);
    assert!(profile.allow_connections);
    assert!(
        profile.acl.as_ref().is_some_and(|a| a.len() >= 4),
        "{profile:?}"
    );

    let copy = "copy \"db\"\nit's";
    let oid = admin.create_database_like(&profile, copy).unwrap();
    assert_eq!(admin.database_oid(copy).unwrap(), Some(oid));
    assert_ne!(oid, profile.oid);
    let want = catalog_row(&cluster, source);
    assert!(want.contains("statement_timeout=5s"), "{want}");
    assert_eq!(catalog_row(&cluster, copy), want);

    // ICU, and the default ACL (None) stays the default.
    run("CREATE DATABASE icu TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'und'");
    let icu = admin.database_profile("icu").unwrap();
    assert_eq!(icu.locale_provider, "icu");
    assert_eq!(icu.acl, None);
    admin.create_database_like(&icu, "icu2").unwrap();
    assert_eq!(catalog_row(&cluster, "icu2"), catalog_row(&cluster, "icu"));

    // A 63-byte name is kept whole; a 64-byte one is refused and nothing is created.
    let longest = format!("{}x", "€".repeat(20)) + &"y".repeat(2);
    assert_eq!(longest.len(), 63);
    admin.create_database_like(&icu, &longest).unwrap();
    assert!(admin.database_exists(&longest).unwrap());
    let too_long = format!("{longest}z");
    assert!(admin.create_database_like(&icu, &too_long).is_err());
    let count = run("SELECT count(*) FROM pg_database");
    assert_eq!(count, "8", "{}", run("SELECT datname FROM pg_database"));

    // A profile whose settings cannot be applied creates nothing that stays.
    let mut broken = icu.clone();
    broken.settings = vec![(Some("no such role".into()), vec!["work_mem=1MB".into()])];
    assert!(admin.create_database_like(&broken, "broken").is_err());
    assert_eq!(admin.database_oid("broken").unwrap(), None);
    assert_eq!(
        admin.database_profile("absent").unwrap_err().to_string(),
        "database absent does not exist"
    );
}

#[test]
fn a_lock_timeout_holds_for_queries_and_scripts_and_prints_nothing() {
    let cluster = TempCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let limited = cluster
        .database("postgres")
        .with_lock_timeout(Some(std::time::Duration::from_millis(1500)));
    // The SET's command tag must not reach the output a caller parses.
    assert_eq!(limited.query("SHOW lock_timeout").unwrap(), "1500ms");
    limited
        .run_script(
            "DO $$ BEGIN IF current_setting('lock_timeout') <> '1500ms' THEN \
             RAISE EXCEPTION 'no lock timeout'; END IF; END $$;",
        )
        .unwrap();
    let unlimited = limited.with_lock_timeout(None);
    assert_eq!(unlimited.query("SHOW lock_timeout").unwrap(), "0");
}
