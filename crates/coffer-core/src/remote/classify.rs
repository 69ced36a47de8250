//! What a folder under the remote prefix is: one of coffer's backups (complete or not), or
//! something coffer does not know, which it lists and never deletes.
//!
//! The rule is the backup root's ([`crate::root::catalog`]), from the listing instead of the file
//! system: a folder is coffer's only when its name parses as a backup name and, once it has
//! a manifest, that manifest fits the name and the folder holds nothing but the manifest's
//! artifacts and the reserved names (`manifest.json`, `SHA256SUMS`, `*.minisig`). Remote
//! retention deletes only such folders, and only when they are complete.

use std::collections::BTreeMap;

use crate::format::manifest::{self, AnyManifest, ArtifactRole};
use crate::format::names;
use crate::root::catalog::{self, EntryStatus};

/// The status of a remote backup from its objects (file name → size) and manifest:
/// complete exactly when every artifact the manifest lists exists with the recorded size.
pub fn remote_status(objects: &BTreeMap<String, u64>, manifest: &AnyManifest) -> EntryStatus {
    match manifest {
        AnyManifest::Coffer(m) => {
            let problems: Vec<String> = m
                .artifacts
                .iter()
                .filter_map(|a| match objects.get(&a.file) {
                    None => Some(format!("missing {}", a.file)),
                    Some(&s) if s != a.size => {
                        Some(format!("{} is {s} bytes, manifest says {}", a.file, a.size))
                    }
                    Some(_) => None,
                })
                .collect();
            if !problems.is_empty() {
                EntryStatus::Incomplete(problems.join(", "))
            } else if m.artifact(ArtifactRole::Database).is_none() {
                EntryStatus::Incomplete("manifest lists no database artifact".into())
            } else {
                EntryStatus::Complete
            }
        }
        AnyManifest::Legacy(_) => {
            if ["postgres.sql.gz", "postgres.sql.gz.age"]
                .iter()
                .any(|f| objects.contains_key(*f))
            {
                EntryStatus::Legacy
            } else {
                EntryStatus::Incomplete("missing postgres.sql.gz".into())
            }
        }
    }
}

/// `None` when the remote folder `name` is one of coffer's backups; otherwise why coffer
/// does not take it for its own. `objects` are the folder's objects by their path below it
/// (an object deeper down is `sub/file`, never a name coffer writes); `manifest` is its
/// parsed manifest, if any. A folder without a (readable) manifest is judged by its name
/// alone: it is an unfinished upload at worst, never complete, so never deleted.
pub fn unknown_reason(
    name: &str,
    objects: &BTreeMap<String, u64>,
    manifest: Option<&AnyManifest>,
) -> Option<String> {
    let Some(parsed) = names::parse_name(name) else {
        return Some(format!(
            "folder not named like a backup{}",
            if objects.contains_key(manifest::MANIFEST_FILE) {
                " (it holds a manifest.json)"
            } else {
                ""
            }
        ));
    };
    let manifest = manifest?;
    let expected = match catalog::known_artifacts(parsed.kind, manifest) {
        Ok(expected) => expected,
        Err(why) => return Some(why),
    };
    // Every object is a regular file: a listing has no links or devices.
    catalog::foreign_files(&expected, objects.keys().map(|k| (k.clone(), true)))
}

/// The objects of a backup that coffer deletes, in the order it deletes them: the manifest
/// first (the backup stops being complete at once, as uploads write it last), then the
/// artifacts, `SHA256SUMS` and the signatures. `Err` names the objects coffer did not write
/// when there are any: then nothing of the folder may be deleted.
pub fn deletion_order(
    name: &str,
    objects: &BTreeMap<String, u64>,
    manifest: &AnyManifest,
) -> Result<Vec<String>, String> {
    if let Some(why) = unknown_reason(name, objects, Some(manifest)) {
        return Err(why);
    }
    let mut order: Vec<String> = objects.keys().cloned().collect();
    order.sort_by_key(|f| (f != manifest::MANIFEST_FILE, f.clone()));
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = r#"{"timestamp":"2020-01-01-000000"}"#;

    fn objects(names: &[&str]) -> BTreeMap<String, u64> {
        names.iter().map(|n| (n.to_string(), 1)).collect()
    }

    fn legacy() -> AnyManifest {
        manifest::parse_bytes(LEGACY.as_bytes(), "test").unwrap()
    }

    /// A coffer manifest of the real format, listing `postgres.sql.gz` (1 byte).
    fn coffer() -> AnyManifest {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/corpus/manifest/coffer-valid"
        ))
        .unwrap();
        manifest::parse_bytes(text.as_bytes(), "test").unwrap()
    }

    /// A folder name, its objects, its manifest, and `None` when it is coffer's, else a
    /// part of the reason.
    type Case<'a> = (
        &'a str,
        BTreeMap<String, u64>,
        Option<&'a AnyManifest>,
        Option<&'a str>,
    );

    #[test]
    fn classification_table() {
        let legacy = legacy();
        let coffer = coffer();
        let coffer_files: Vec<String> = match &coffer {
            AnyManifest::Coffer(m) => m.artifacts.iter().map(|a| a.file.clone()).collect(),
            AnyManifest::Legacy(_) => unreachable!(),
        };
        let mut complete_coffer: Vec<&str> = coffer_files.iter().map(String::as_str).collect();
        complete_coffer.extend([
            "manifest.json",
            "SHA256SUMS",
            "manifest.json.minisig",
            "SHA256SUMS.minisig",
        ]);
        let with = |extra: &str| {
            let mut v = complete_coffer.clone();
            v.push(extra);
            objects(&v)
        };
        // (folder name, objects, manifest, expected: None = coffer's, Some(part of reason))
        let table: Vec<Case<'_>> = vec![
            // The reviewer's folder: not a backup name, legacy manifest and a dump.
            (
                "exports",
                objects(&["manifest.json", "postgres.sql.gz", "report.csv"]),
                Some(&legacy),
                Some("not named like a backup (it holds a manifest.json)"),
            ),
            (
                "exports",
                objects(&["report.csv"]),
                None,
                Some("not named like a backup"),
            ),
            (
                "backups-2020",
                objects(&complete_coffer),
                Some(&coffer),
                Some("not named like a backup"),
            ),
            (
                ".hidden",
                objects(&["x"]),
                None,
                Some("not named like a backup"),
            ),
            // Legacy-named.
            (
                "2020-01-01-000000",
                objects(&[
                    "manifest.json",
                    "postgres.sql.gz",
                    "workspace.tar.gz",
                    "SHA256SUMS",
                ]),
                Some(&legacy),
                None,
            ),
            (
                "2020-01-01-000000",
                objects(&[
                    "manifest.json",
                    "postgres.sql.gz.age",
                    "workspace.tar.gz.age",
                ]),
                Some(&legacy),
                None,
            ),
            (
                "2020-01-01-000000",
                objects(&["manifest.json", "postgres.sql.gz", "report.csv"]),
                Some(&legacy),
                Some("\"report.csv\""),
            ),
            (
                "2020-01-01-000000",
                objects(&["manifest.json", "postgres.sql.gz", "sub/postgres.sql.gz"]),
                Some(&legacy),
                Some("\"sub/postgres.sql.gz\""),
            ),
            // A legacy manifest in a coffer-named folder is not what the scripts wrote.
            (
                "auto-20200101T000000Z",
                objects(&["manifest.json", "postgres.sql.gz"]),
                Some(&legacy),
                Some("not named YYYY-MM-DD-HHMMSS"),
            ),
            // Coffer-named.
            (
                "auto-20200101T000000Z",
                objects(&complete_coffer),
                Some(&coffer),
                None,
            ),
            (
                "manual-20200101T000000Z",
                objects(&complete_coffer),
                Some(&coffer),
                None,
            ),
            (
                "auto-20200101T000000Z",
                with("notes.txt"),
                Some(&coffer),
                Some("\"notes.txt\""),
            ),
            (
                "auto-20200101T000000Z",
                with("postgres.sql.gz.age"),
                Some(&coffer),
                Some("\"postgres.sql.gz.age\""),
            ),
            // No manifest yet: an unfinished upload, coffer's (never complete, never deleted).
            (
                "auto-20200101T000000Z",
                objects(&["postgres.sql.gz"]),
                None,
                None,
            ),
        ];
        for (name, objects, manifest, want) in &table {
            let got = unknown_reason(name, objects, *manifest);
            match (want, &got) {
                (None, None) => {}
                (Some(part), Some(reason)) if reason.contains(part) => {}
                _ => panic!("{name} {objects:?}: got {got:?}, want {want:?}"),
            }
            if let Some(m) = manifest {
                let order = deletion_order(name, objects, m);
                assert_eq!(order.is_ok(), want.is_none(), "{name} {objects:?}");
                if let Ok(order) = order {
                    assert_eq!(order[0], "manifest.json");
                    assert_eq!(order.len(), objects.len());
                }
            }
        }
    }

    #[test]
    fn legacy_status_needs_the_dump() {
        let m = legacy();
        assert_eq!(
            remote_status(&objects(&["manifest.json", "postgres.sql.gz"]), &m),
            EntryStatus::Legacy
        );
        assert!(matches!(
            remote_status(&objects(&["manifest.json", "workspace.tar.gz"]), &m),
            EntryStatus::Incomplete(_)
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever a legacy-named folder holds, it is coffer's exactly when every object is
        /// one of the scripts' names, and then deletion removes exactly those, manifest first.
        #[test]
        fn deletable_objects_are_exactly_the_known_ones(
            picks in proptest::collection::btree_set(0usize..9, 0..9),
        ) {
            const FILES: [&str; 9] = [
                "manifest.json", "postgres.sql.gz", "postgres.sql.gz.age", "workspace.tar.gz",
                "SHA256SUMS", "SHA256SUMS.minisig", "report.csv", "sub/manifest.json",
                "postgres.sql",
            ];
            let names: Vec<&str> = picks.iter().map(|&i| FILES[i]).collect();
            let objects = objects(&names);
            let foreign = names.iter().any(|n| ["report.csv", "sub/manifest.json", "postgres.sql"].contains(n));
            let m = legacy();
            let got = deletion_order("2020-01-01-000000", &objects, &m);
            proptest::prop_assert_eq!(got.is_err(), foreign);
            if let Ok(order) = got {
                proptest::prop_assert_eq!(order.len(), names.len());
                if names.contains(&"manifest.json") {
                    proptest::prop_assert_eq!(order[0].as_str(), "manifest.json");
                }
            }
        }
    }
}
