//! Crafted backups for `restore --jobs N`: a piece that carries a statement no transaction
//! can hold (`DROP DATABASE`, `ALTER SYSTEM`), with every size and hash (the piece index,
//! the artifact, `SHA256SUMS`) rewritten to match, so that only the sessions' transactions
//! stand in its way.

use std::path::Path;

use sha2::Digest;

use super::*;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Rewrites the backup's gzip dump with the SQL of the first piece `chosen` picks replaced
/// by `edit(sql)`: every piece recompressed as a gzip member of its own, and the piece
/// index, the artifact's sizes and hashes and `SHA256SUMS` rewritten to match, as a forger
/// with write access to the backup root would.
fn forge_piece(
    backup: &Path,
    chosen: impl Fn(&serde_json::Value) -> bool,
    edit: impl Fn(&str) -> String,
) {
    let mut m = manifest(backup);
    let artifact = m["artifacts"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|a| a["role"] == "database")
        .unwrap();
    let file = backup.join(artifact["file"].as_str().unwrap());
    assert_eq!(file.extension().unwrap(), "gz", "{}", file.display());
    let stored = std::fs::read(&file).unwrap();
    let work = tempfile::tempdir().unwrap();
    let (mut forged, mut plain) = (Vec::new(), Vec::new());
    let (mut edited, mut next) = (false, 0);
    for piece in artifact["pieces"].as_array_mut().unwrap() {
        let offset = piece["offset"].as_u64().unwrap() as usize;
        let length = piece["length"].as_u64().unwrap() as usize;
        // The pieces cover the file end to end, so rewriting them rewrites all of it.
        assert_eq!(offset, next, "{piece}");
        next = offset + length;
        let member = work.path().join("member.gz");
        std::fs::write(&member, &stored[offset..offset + length]).unwrap();
        let mut sql = sh(&format!("gunzip -c '{}'", member.display()));
        if !edited && chosen(piece) {
            sql = edit(&sql);
            edited = true;
        }
        let text = work.path().join("piece.sql");
        std::fs::write(&text, &sql).unwrap();
        sh(&format!(
            "gzip -nc '{}' > '{}'",
            text.display(),
            member.display()
        ));
        let recompressed = std::fs::read(&member).unwrap();
        piece["offset"] = forged.len().into();
        piece["length"] = recompressed.len().into();
        piece["uncompressed_size"] = sql.len().into();
        piece["sha256"] = sha256_hex(sql.as_bytes()).into();
        forged.extend_from_slice(&recompressed);
        plain.extend_from_slice(sql.as_bytes());
    }
    assert!(edited, "no piece was chosen");
    assert_eq!(next, stored.len());
    std::fs::write(&file, &forged).unwrap();
    artifact["size"] = forged.len().into();
    artifact["sha256"] = sha256_hex(&forged).into();
    artifact["uncompressed_size"] = plain.len().into();
    artifact["uncompressed_sha256"] = sha256_hex(&plain).into();
    std::fs::write(
        backup.join("manifest.json"),
        serde_json::to_string_pretty(&m).unwrap(),
    )
    .unwrap();
    write_sums_from_manifest(backup);
}

/// Which piece of the index a forgery edits.
type PieceChoice = fn(&serde_json::Value) -> bool;

/// A data piece with `DROP DATABASE` of another database, and the post-data piece with
/// `ALTER SYSTEM` (both refused inside a transaction block): `restore --jobs 2` fails
/// before the swap, the other database still exists, `postgresql.auto.conf` is unchanged,
/// the target and workspace are as they were and no helper database is left.
#[test]
fn a_piece_with_drop_database_or_alter_system_fails_and_runs_nothing() {
    let case = Case::new();
    add_keyed_tables(&case);
    let other = empty_database();
    let auto_conf = cluster().data_dir().join("postgresql.auto.conf");
    let conf_before = std::fs::read(&auto_conf).unwrap();

    let crafted: [(&str, PieceChoice, String); 2] = [
        (
            "DROP DATABASE in a data piece",
            |p| p["kind"] == "data" && p["starts_in_copy"] != true,
            format!("DROP DATABASE {other};\n"),
        ),
        (
            "ALTER SYSTEM in the post-data piece",
            |p| p["kind"] == "post-data",
            "ALTER SYSTEM SET work_mem = '1234kB';\n".to_string(),
        ),
    ];
    for (what, chosen, statement) in crafted {
        let backup = case.backup_ok(&[]);
        let name = name_of(&backup);
        forge_piece(&backup, chosen, |sql| format!("{statement}{sql}"));
        // Every hash agrees: only the sessions' transactions can stop it.
        assert_success(&case.run(&["verify", &name]));
        damage_both(&case);
        let before = Before::take(&case);

        let out = case.run(&["restore", &name, "--yes", "--jobs", "2"]);
        // Exit 7: rolled back, nothing changed; PostgreSQL refused the statement.
        assert_exit(&out, 7);
        assert!(
            error_line(&out).contains("restore failed and was rolled back"),
            "{what}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("cannot run inside a transaction block"),
            "{what}: {}",
            stderr(&out)
        );
        before.assert_unchanged(&case, what);
        assert_eq!(databases_like(&case), vec![case.db.clone()], "{what}");
        assert_eq!(
            query_other(&other),
            "1",
            "{what}: the other database is gone"
        );
        assert_eq!(
            std::fs::read(&auto_conf).unwrap(),
            conf_before,
            "{what}: postgresql.auto.conf changed"
        );
    }
    cluster()
        .psql("postgres", &format!("DROP DATABASE {other}"))
        .unwrap();
}

/// Whether database `name` exists (`1`).
fn query_other(name: &str) -> String {
    cluster()
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        )
        .unwrap()
}
