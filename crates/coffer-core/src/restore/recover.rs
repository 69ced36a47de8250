//! Crash recovery: a workspace swap that a killed earlier restore left half done is
//! settled before anything else is checked.

use crate::workspace::swap;

use super::db_swap;
use super::workspace::swap_path;
use super::{RestoreError, RestoreSettings, RestoreSteps, workspace_target};

/// Settles a database swap that a restore killed after creating `<target>__coffer_new`
/// left (see `db_swap`): the new database is dropped, or, when the swap had committed, the
/// previous one, and that restore's workspace swap is marked committed. Returns what it did,
/// for the operator. Call it before [`recover_interrupted`], which refuses while such a
/// journal is left. Nothing is asked of the server when there is no journal.
pub fn recover_database_swap(
    settings: &RestoreSettings,
    options: &RestoreSteps,
) -> Result<Vec<String>, RestoreError> {
    if !db_swap::journal_left(&settings.backup_root) {
        return Ok(Vec::new());
    }
    let admin = settings.database.with_dbname("postgres");
    db_swap::recover(
        &admin,
        &settings.backup_root,
        workspace_target(settings, options),
    )
}

/// Undoes (or finishes) a workspace swap that a killed earlier restore left behind, so the
/// workspace is whole again before anything else is checked. Call it before
/// [`prepare`](super::prepare) to report what it did; `prepare` calls it too and reports it
/// as a note.
pub fn recover_interrupted(
    settings: &RestoreSettings,
    options: &RestoreSteps,
) -> Result<Option<swap::Recovery>, RestoreError> {
    let Some(target) = workspace_target(settings, options) else {
        return Ok(None);
    };
    if db_swap::journal_left(&settings.backup_root) {
        // Whether that restore committed is the database's to say: putting the previous
        // workspace back now could pair it with the restored database.
        return Err(RestoreError::Refused {
            problems: vec![format!(
                "an earlier restore's database swap is not settled yet ({} is left in the backup root): it decides whether the workspace is put back or finished; settle it first",
                db_swap::JOURNAL_FILE
            )],
            hints: Vec::new(),
        });
    }
    let target = swap_path(target);
    // Only a swap that had started renaming can leave the workspace half swapped; failing
    // to remove a staging leftover changes nothing.
    let half_swapped = swap::interrupted_phase(&target).is_some_and(|p| p != swap::Phase::Staging);
    swap::recover(&target).map_err(|e| {
        if matches!(
            e,
            swap::SwapError::Untrusted { .. }
                | swap::SwapError::SharedParent { .. }
        ) {
            // Nothing was touched: what is there is not provably coffer's.
            RestoreError::Refused {
                problems: vec![e.to_string()],
                hints: Vec::new(),
            }
        } else if half_swapped {
            RestoreError::Inconsistent(format!(
                "{e}; an interrupted earlier restore left {} half swapped: resolve it by hand",
                target.display()
            ))
        } else if matches!(e, swap::SwapError::Target { .. }) {
            RestoreError::Refused {
                problems: vec![e.to_string()],
                hints: Vec::new(),
            }
        } else {
            RestoreError::Refused {
                problems: vec![format!(
                    "{e}; an interrupted earlier restore left files beside {}: remove them, or make the directory writable",
                    target.display()
                )],
                hints: Vec::new(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(workspace: Option<std::path::PathBuf>) -> RestoreSettings {
        RestoreSettings {
            database: Default::default(),
            workspace,
            hooks: Default::default(),
            alembic: Default::default(),
            backup_root: "/var/backups/coffer".into(),
            metrics_file: None,
            signatures: Default::default(),
        }
    }

    #[test]
    fn nothing_to_recover_without_a_workspace_to_restore() {
        let options = RestoreSteps {
            workspace: false,
            ..RestoreSteps::default()
        };
        let found = recover_interrupted(&settings(Some("/srv/ws".into())), &options).unwrap();
        assert!(found.is_none());
    }

    /// A killed restore's database swap decides its workspace swap: the workspace is not
    /// recovered before it is settled, and without its journal nothing asks the server.
    #[test]
    fn the_workspace_waits_for_a_left_database_swap() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let mut settings = settings(Some(ws.clone()));
        settings.backup_root = root.clone();
        // No server is reachable through the default runner: it is not asked.
        settings.database =
            crate::postgres::Database::from_env(vec![("PGHOST".into(), "/nonexistent".into())]);
        let options = RestoreSteps {
            workspace: true,
            ..RestoreSteps::default()
        };
        assert!(
            recover_database_swap(&settings, &options)
                .unwrap()
                .is_empty()
        );
        assert!(recover_interrupted(&settings, &options).unwrap().is_none());
        std::fs::write(root.join(db_swap::JOURNAL_FILE), "{}").unwrap();
        let err = recover_interrupted(&settings, &options).unwrap_err();
        assert!(
            err.to_string().contains("database swap is not settled"),
            "{err}"
        );
        assert!(recover_database_swap(&settings, &options).is_err());
    }

    #[test]
    fn nothing_to_recover_beside_an_untouched_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        let options = RestoreSteps {
            workspace: true,
            ..RestoreSteps::default()
        };
        let found = recover_interrupted(&settings(Some(ws.clone())), &options).unwrap();
        assert!(found.is_none());
        assert!(ws.is_dir());
    }
}
