//! Library errors speak of configuration and data, never of a front end's flags or
//! subcommands: the remedies that are the caller's choice come as typed [`Hint`]s. Through
//! the public API only, against a real throw-away PostgreSQL cluster.

use std::path::Path;
use std::process::Command;

use coffer_core::CheckOutcome as Outcome;
use coffer_core::config::{Config, DatabaseConfig, EncryptionConfig, WorkspaceConfig};
use coffer_core::sandbox::TempCluster;
use coffer_core::{
    BackupOptions, BackupRef, Coffer, Error, ErrorKind, Event, Hint, Progress, RestoreOptions,
    RunContext, Selection, VerifyOptions,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");

fn cluster() -> TempCluster {
    let cluster = TempCluster::start().unwrap_or_else(|e| {
        panic!("{e} (these tests need PostgreSQL: apt-get install postgresql postgresql-client)")
    });
    cluster.create_database("portal").unwrap();
    cluster
        .psql_file("portal", &Path::new(FIXTURES).join("portal.sql"))
        .unwrap();
    cluster
}

/// An encrypting configuration in `dir` (recipient only: no identity configured) and the
/// identity file that opens its backups.
fn encrypted_config(dir: &Path, cluster: &TempCluster) -> (Config, std::path::PathBuf) {
    let workspace = dir.join("workspace");
    let status = Command::new("cp")
        .arg("-a")
        .arg(Path::new(FIXTURES).join("workspace"))
        .arg(&workspace)
        .status()
        .unwrap();
    assert!(status.success());
    let identity = dir.join("identity.txt");
    let recipient = coffer_core::generate_age_identity(&identity).unwrap();
    let config = Config {
        backup_dir: Some(dir.join("backups")),
        database: DatabaseConfig {
            url: Some(cluster.url("portal")),
            ..Default::default()
        },
        workspace: WorkspaceConfig {
            path: Some(workspace),
            exclude: vec!["cache/**".into()],
        },
        encryption: EncryptionConfig {
            recipients: vec![recipient],
            ..Default::default()
        },
        ..Default::default()
    };
    (config, identity)
}

/// Keeps the notes and hints a restore reports.
#[derive(Default)]
struct Notes(std::sync::Mutex<Vec<String>>);

impl Progress for Notes {
    fn event(&self, event: &Event<'_>) {
        let line = match event {
            Event::Note(text) => format!("note {text}"),
            Event::Hint(hint) => format!("hint {hint:?}"),
            _ => return,
        };
        self.0.lock().unwrap().push(line);
    }
}

/// The message and every cause name no command-line flag and no `coffer` subcommand.
fn assert_speaks_library(text: &str) {
    assert!(!text.contains("--"), "names a flag: {text}");
    assert!(!text.contains("`coffer "), "names a subcommand: {text}");
}

fn assert_hinted(err: &Error, kind: ErrorKind, hint: Hint) {
    assert_eq!(err.kind(), kind, "{err}");
    assert!(err.hints().contains(&hint), "{:?}: {err}", err.hints());
    assert_speaks_library(&err.with_causes());
}

#[test]
fn hinted_failures_name_configuration_and_data_and_leave_flags_to_the_front_end() {
    let cluster = cluster();
    let dir = tempfile::tempdir().unwrap();
    let (config, identity) = encrypted_config(dir.path(), &cluster);
    let coffer = Coffer::new(config).unwrap();
    let notes = Notes::default();
    let ctx = RunContext::new(&notes);
    let backup = coffer.backup(&BackupOptions::default(), &ctx).unwrap();
    let made = backup.report.path.file_name().unwrap().to_string_lossy();
    let name = BackupRef::Named(made.into_owned());

    // An encrypted backup restored without an identity: the configuration is named, and
    // an identity for this run is the hint.
    let err = coffer
        .prepare_restore(&name, &RestoreOptions::default(), &ctx)
        .expect_err("restored without an identity");
    assert_hinted(&err, ErrorKind::Refused, Hint::Identity);
    assert!(
        err.to_string().contains("encryption.identity_file"),
        "{err}"
    );

    // An identity that cannot be loaded: the same hint, a configuration error.
    let missing = dir.path().join("no-such-identity.txt");
    let err = coffer
        .prepare_restore(
            &name,
            &RestoreOptions::default().identity(Some(missing)),
            &ctx,
        )
        .expect_err("restored with a missing identity");
    assert_hinted(&err, ErrorKind::InvalidConfig, Hint::Identity);

    // The code expects another Alembic head: refused, and going ahead anyway is the hint.
    let options = RestoreOptions::default()
        .identity(Some(identity.clone()))
        .expect_heads(Some(vec!["0123456789ab".into()]));
    let err = coffer
        .prepare_restore(&name, &options, &ctx)
        .expect_err("restored despite a head mismatch");
    assert_hinted(&err, ErrorKind::Refused, Hint::AllowHeadMismatch);
    assert!(err.to_string().contains("alembic head mismatch"), "{err}");
    assert!(!err.hints().contains(&Hint::Identity), "{:?}", err.hints());

    // A name that is not in the root: listing the backups is the hint.
    let err = coffer
        .prepare_restore(
            &BackupRef::Named("auto-20000101T000000Z".into()),
            &RestoreOptions::default(),
            &ctx,
        )
        .expect_err("restored a backup that does not exist");
    assert_hinted(&err, ErrorKind::Failed, Hint::ListBackups);

    // Verify without an identity checks what it can; the check it cannot make says why,
    // and carries the hint.
    let outcome = coffer
        .verify(
            &Selection::One(name.clone()),
            &VerifyOptions::default(),
            &ctx,
        )
        .unwrap();
    let skipped: Vec<_> = outcome.reports[0]
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::NotChecked)
        .collect();
    assert!(!skipped.is_empty(), "{:?}", outcome.reports[0].checks);
    for check in skipped {
        assert_eq!(check.hint, Some(Hint::Identity), "{check:?}");
        assert_speaks_library(&check.detail);
    }

    // With no source for the code's head, the note says what to configure and the hint
    // follows it as an event.
    notes.0.lock().unwrap().clear();
    let prepared = coffer
        .prepare_restore(
            &name,
            &RestoreOptions::default().identity(Some(identity)),
            &ctx,
        )
        .unwrap();
    assert_eq!(prepared.plan().hints, [Hint::ExpectHead]);
    let seen = notes.0.lock().unwrap().clone();
    let note = seen
        .iter()
        .position(|l| l.starts_with("note the code's Alembic head is not known"))
        .unwrap_or_else(|| panic!("{seen:?}"));
    assert_eq!(
        seen[note + 1..].last().map(String::as_str),
        Some("hint ExpectHead")
    );
    for line in &seen {
        assert_speaks_library(line);
    }
}
