//! The dump artifact's piece index: the file is still one ordinary `.gz`/`.zst`/`.age`
//! that the standard tools decode to exactly what `pg_dump` writes, and each recorded piece
//! decodes on its own (cut out with `dd`) to its recorded size and SHA-256.

use crate::harness::*;

/// Adds to the case's database a table large enough to be cut at row boundaries (past the
/// 64 MiB piece size), one above the 4 MiB piece minimum, and text that looks like COPY
/// blocks where it is not one (a function body, a comment, a quoted identifier).
pub(crate) fn add_large_tables(case: &Case) {
    cluster()
        .psql(
            &case.db,
            r#"
CREATE TABLE public.big AS
  SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload
  FROM generate_series(1, 1000000) g;
CREATE TABLE public.mid AS
  SELECT g AS id, repeat(md5(g::text), 2) AS payload FROM generate_series(1, 70000) g;
CREATE TABLE public."odd
COPY public.big (id, payload) FROM stdin;" (a int);
INSERT INTO public."odd
COPY public.big (id, payload) FROM stdin;" VALUES (1), (2);
CREATE FUNCTION public.decoy() RETURNS text LANGUAGE sql AS $body$
SELECT 'COPY public.big (id, payload) FROM stdin;
1	x
\.
'::text $body$;
COMMENT ON TABLE public.mid IS E'\nCOPY public.mid (id, payload) FROM stdin;\n\\.\n';
"#,
        )
        .unwrap();
}

/// The dump's text without pg_dump's `\restrict`/`\unrestrict` lines (their key is random
/// per run).
pub(crate) fn without_restrict(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// What a direct `pg_dump` of the case's (idle) database writes, with coffer's options.
fn direct_dump(case: &Case) -> String {
    let env: Vec<String> = cluster()
        .env(&case.db)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    sh(&format!(
        "env {} pg_dump --format=plain --clean --if-exists --no-password",
        env.join(" ")
    ))
}

/// Checks the artifact `file` of `backup` against the direct dump and its pieces;
/// `decode` is the shell command that turns the file's bytes (stdin) into SQL, and
/// `plaintext` the one that turns the stored file into the compressed stream the offsets
/// point into.
fn check_artifact(backup: &std::path::Path, direct: &str, decode: &str, plaintext: &str) -> usize {
    let m = manifest(backup);
    let a = &m["artifacts"][0];
    assert_eq!(a["role"], "database");
    let file = backup.join(a["file"].as_str().unwrap());
    let f = file.display();
    let whole = sh(&format!("{plaintext} < {f} | {decode}"));
    assert_eq!(
        without_restrict(&whole),
        without_restrict(direct),
        "{f} decodes to what pg_dump writes"
    );
    let stream = backup.join("compressed.tmp");
    sh(&format!("{plaintext} < {f} > {}", stream.display()));
    let pieces = a["pieces"].as_array().expect("a piece index");
    let mut kinds = Vec::new();
    let mut rows = 0;
    for p in pieces {
        let (offset, length) = (p["offset"].as_u64().unwrap(), p["length"].as_u64().unwrap());
        // `dd` rather than `tail | head`: head exiting early would fail the pipeline.
        let cut = format!(
            "dd if={} bs=1M iflag=skip_bytes,count_bytes skip={offset} count={length} status=none",
            stream.display()
        );
        let alone = sh(&format!("{cut} | {decode} | sha256sum"));
        assert_eq!(alone.split_whitespace().next(), p["sha256"].as_str(), "{p}");
        let size = sh(&format!("{cut} | {decode} | wc -c"));
        assert_eq!(
            size.trim().parse::<u64>().unwrap(),
            p["uncompressed_size"].as_u64().unwrap()
        );
        kinds.push(p["kind"].as_str().unwrap().to_string());
        rows += p["rows"].as_u64().unwrap();
    }
    std::fs::remove_file(&stream).unwrap();
    assert_eq!(kinds.first().map(String::as_str), Some("pre-data"));
    assert_eq!(kinds.last().map(String::as_str), Some("post-data"));
    let table_rows: u64 = m["database"]["tables"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(rows, table_rows);
    // The big table is cut at row boundaries into pieces of its own.
    let big: Vec<_> = pieces
        .iter()
        .filter(|p| p["table"] == "public.big")
        .collect();
    assert!(big.len() >= 2, "{pieces:?}");
    assert!(big[0]["ends_in_copy"] == true && big[1]["starts_in_copy"] == true);
    assert!(
        pieces.iter().any(|p| p["table"] == "public.mid"),
        "{pieces:?}"
    );
    pieces.len()
}

#[test]
fn new_dumps_decode_as_before_and_every_piece_decodes_alone() {
    let case = Case::new();
    add_large_tables(&case);
    let direct = direct_dump(&case);
    assert!(direct.contains("COPY public.big (id, payload) FROM stdin;\n1\t"));

    let backup = case.backup_ok(&[]);
    let gz = check_artifact(&backup, &direct, "gunzip -c", "cat");
    sh(&format!(
        "cd {} && sha256sum -c SHA256SUMS >/dev/null",
        backup.display()
    ));
    assert_success(&case.run(&["verify", backup.file_name().unwrap().to_str().unwrap()]));

    // zstd: frames instead of members.
    case.write_config(&case.db_section(), "[compression]\nalgorithm = \"zstd\"\n");
    let backup = case.backup_ok(&[]);
    check_artifact(&backup, &direct, "zstd -dc", "cat");
    // verify walks each piece's frame to its end (libzstd's multi-threaded frames).
    let out = case.run(&["verify", backup.file_name().unwrap().to_str().unwrap()]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("✓ postgres.sql.zst: pieces"),
        "{}",
        stdout(&out)
    );

    // age: the offsets are in the compressed stream age decrypts to.
    let key = case.dir.path().join("identity.txt");
    let public = stdout(&case.run(&["keygen", "--output", key.to_str().unwrap()]))
        .trim()
        .to_string();
    case.write_config(
        &case.db_section(),
        &format!("[encryption]\nrecipients = [\"{public}\"]\n"),
    );
    let backup = case.backup_ok(&[]);
    let age = format!("age -d -i {}", key.display());
    assert_eq!(check_artifact(&backup, &direct, "gunzip -c", &age), gz);
    // verify finds the members in age's plaintext, and a boundary moved there.
    let name = backup.file_name().unwrap().to_str().unwrap().to_string();
    let verify = |case: &Case| case.run(&["verify", &name, "--identity", key.to_str().unwrap()]);
    let out = verify(&case);
    assert_success(&out);
    assert!(
        stdout(&out).contains("where recorded in the decrypted stream"),
        "{}",
        stdout(&out)
    );
    let path = backup.join("manifest.json");
    let mut m = manifest(&backup);
    let p = &mut m["artifacts"][0]["pieces"];
    for (i, key, by) in [(0, "length", 40i64), (1, "offset", 40), (1, "length", -40)] {
        let v = p[i][key].as_u64().unwrap() as i64 + by;
        p[i][key] = serde_json::Value::from(v as u64);
    }
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let out = verify(&case);
    assert_exit(&out, 5);
    assert!(
        stdout(&out).contains("✗ postgres.sql.gz.age: pieces"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_forged_piece_index_is_refused_by_verify() {
    let case = Case::new();
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_str().unwrap().to_string();
    let path = backup.join("manifest.json");
    let good = std::fs::read_to_string(&path).unwrap();
    let m: serde_json::Value = serde_json::from_str(&good).unwrap();
    let pieces = m["artifacts"][0]["pieces"].as_array().unwrap().clone();
    assert!(pieces.len() >= 2, "the fixture has data: {pieces:?}");
    type Forge = fn(&mut Vec<serde_json::Value>);
    let forgeries: [(&str, Forge, &str); 5] = [
        (
            "a gap",
            |p| bump(&mut p[1], "offset", 1),
            "invalid manifest",
        ),
        (
            "past the end",
            |p| bump(p.last_mut().unwrap(), "length", 1),
            "invalid manifest",
        ),
        (
            "a shifted member boundary",
            |p| {
                bump(&mut p[0], "length", 3);
                bump(&mut p[1], "offset", 3);
                bump(&mut p[1], "length", -3);
            },
            "✗ postgres.sql.gz: pieces",
        ),
        (
            "another hash",
            |p| {
                p[0]["sha256"] = serde_json::Value::from("0".repeat(64));
            },
            "✗ postgres.sql.gz: pieces",
        ),
        (
            "a moved boundary",
            |p| {
                bump(&mut p[0], "uncompressed_size", -1);
                bump(&mut p[1], "uncompressed_size", 1);
            },
            "✗ postgres.sql.gz: pieces",
        ),
    ];
    for (what, forge, want) in forgeries {
        let mut m = m.clone();
        let mut p = pieces.clone();
        forge(&mut p);
        m["artifacts"][0]["pieces"] = serde_json::Value::from(p);
        std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
        let out = case.run(&["verify", &name]);
        assert_exit(&out, 5);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(all.contains(want), "{what}: {all}");
        if what == "another hash" {
            // A restore reads the same bytes: it refuses before its commit, changing nothing.
            // (A change made after the backup: a restore that went through would undo it.)
            cluster()
                .psql(
                    &case.db,
                    "UPDATE public.users SET display_name = 'after the backup'",
                )
                .unwrap();
            let before = Before::take(&case);
            let out = run_bounded(
                &case,
                &["restore", &name, "--yes"],
                std::time::Duration::from_secs(120),
            );
            assert_exit(&out, 5);
            assert!(error_line(&out).contains("piece index"), "{}", stderr(&out));
            before.assert_unchanged(&case, what);
        }
        if what == "a gap" {
            // An index that does not fit its artifact makes the manifest invalid: a restore
            // refuses it as a backup that fails verification, changing nothing.
            let before = Before::take(&case);
            let out = run_bounded(
                &case,
                &["restore", &name, "--yes"],
                std::time::Duration::from_secs(120),
            );
            assert_exit(&out, 5);
            before.assert_unchanged(&case, what);
        }
    }
    std::fs::write(&path, good).unwrap();
    assert_success(&case.run(&["verify", &name]));
}

fn bump(v: &mut serde_json::Value, key: &str, by: i64) {
    let n = v[key].as_u64().unwrap() as i64 + by;
    v[key] = serde_json::Value::from(n as u64);
}

/// Review finding: a restore streamed from the remote checks the piece index as it reads,
/// like a local one (it refused locally and went through from the remote). The remote's
/// manifest is edited after the sync; the restore refuses before its commit, exit 5.
#[test]
fn a_forged_piece_index_is_refused_by_a_restore_streamed_from_the_remote() {
    let case = Case::new();
    let offsite = case.dir.path().join("offsite");
    case.write_config(
        &case.db_section(),
        &format!("[remote]\nurl = \"file://{}\"\n", offsite.display()),
    );
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_str().unwrap().to_string();
    assert_success(&case.run(&["sync"]));
    let path = offsite.join(&name).join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["artifacts"][0]["pieces"][0]["sha256"] = serde_json::Value::from("0".repeat(64));
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    std::fs::remove_dir_all(&case.root).unwrap();
    cluster()
        .psql(
            &case.db,
            "UPDATE public.users SET display_name = 'after the backup'",
        )
        .unwrap();
    let before = Before::take(&case);
    let out = run_bounded(
        &case,
        &["restore", "--from-remote", &name, "--yes"],
        std::time::Duration::from_secs(120),
    );
    assert_exit(&out, 5);
    assert!(error_line(&out).contains("piece index"), "{}", stderr(&out));
    before.assert_unchanged(&case, "a forged index on the remote");
}
