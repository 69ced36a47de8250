//! The configuration parser takes hand-written, possibly broken text that holds the database
//! password: whatever the text, loading it never panics and no error shows the password.
//! Replays `fixtures/corpus/config/` (every file there holds the secret `hunter2`) and
//! generates damaged configurations with proptest.

use std::path::{Path, PathBuf};

use coffer_core::config::Config;
use proptest::prelude::*;

const SECRET: &str = "hunter2";

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/corpus/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    files
}

#[test]
fn no_corpus_file_leaks_the_password() {
    for file in corpus() {
        let text = std::fs::read(&file).unwrap();
        assert!(
            String::from_utf8_lossy(&text).contains(SECRET),
            "{} must hold the secret to test anything",
            file.display()
        );
        match Config::load(Some(&file), &|_| None) {
            Ok(_) => {}
            Err(e) => {
                let shown = format!("{e} {e:?}");
                assert!(
                    !shown.contains(SECRET),
                    "{}: the error shows the password: {shown}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn an_environment_url_error_hides_the_password() {
    let env = |k: &str| {
        (k == "COFFER_DATABASE_URL")
            .then(|| format!("postgres://app:{SECRET}@db/portal?sslpassword={SECRET}&x=1"))
    };
    let err = Config::load(None, &env).expect_err("x=1 is not a supported parameter");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("COFFER_DATABASE_URL"), "{shown}");
}

/// A configuration whose `url` line carries the secret in one of the ways operators write it.
fn config_text() -> impl Strategy<Value = String> {
    let url = prop_oneof![
        Just(format!("postgres://app:{SECRET}@db:5432/portal")),
        Just(format!(
            "postgresql://app:{SECRET}@db/portal?sslmode=require"
        )),
        Just(format!("postgres://db/portal?password={SECRET}")),
        Just(format!("postgres://db/portal?sslpassword={SECRET}")),
        Just(format!("postgres://app:{SECRET}@db/portal?bogus=1")),
        Just(format!("postgres://app:{SECRET}@[::1/portal")),
    ];
    let quoting = prop_oneof![
        Just(("\"", "\"")),
        Just(("'", "'")),
        Just(("\"\"\"", "\"\"\"")),
        Just(("", "")),
        Just(("[\"", "\"]")),
    ];
    let other = prop_oneof![
        Just("backup_dir = \"/var/backups/coffer\"".to_string()),
        Just("backup_dir = 3".to_string()),
        Just("[workspace]\npath = \"/srv/ws\"".to_string()),
        Just("[compression]\nlevel = 42".to_string()),
        Just("[database]".to_string()),
        Just("name = \"portal\"".to_string()),
        Just("[database".to_string()),
        Just(String::new()),
    ];
    (
        url,
        quoting,
        prop::collection::vec(other.clone(), 0..3),
        prop::collection::vec(other, 0..3),
        any::<bool>(),
    )
        .prop_map(|(url, (open, close), before, after, twice)| {
            let line = format!("url = {open}{url}{close}");
            let mut lines = before;
            lines.push("[database]".to_string());
            lines.push(line.clone());
            if twice {
                lines.push(line);
            }
            lines.extend(after);
            lines.join("\n")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whole, cut short anywhere, or with a byte changed: never a panic, never the password.
    #[test]
    fn a_damaged_configuration_never_shows_the_password(
        text in config_text(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in prop::sample::select(vec![b'"', b'\'', b'\n', b'=', b'[', b']', b'\\', b'#', b'@']),
        damage in 0usize..3,
    ) {
        let mut bytes = text.into_bytes();
        match damage {
            1 => bytes.truncate(cut.index(bytes.len() + 1)),
            2 => { let i = flip.index(bytes.len()); bytes[i] = byte; }
            _ => {}
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = Config::from_toml(&text, "coffer.toml") {
            let shown = format!("{e} {e:?}");
            prop_assert!(!shown.contains(SECRET), "{text:?} gave {shown}");
        }
    }
}
