//! Crash recovery: a workspace swap that a killed earlier restore left half done is
//! settled before anything else is checked.

use crate::workspace::swap;

use super::workspace::swap_path;
use super::{RestoreError, RestoreSettings, RestoreSteps, workspace_target};

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
            }
        } else if half_swapped {
            RestoreError::Inconsistent(format!(
                "{e}; an interrupted earlier restore left {} half swapped: resolve it by hand",
                target.display()
            ))
        } else if matches!(e, swap::SwapError::Target { .. }) {
            RestoreError::Refused {
                problems: vec![e.to_string()],
            }
        } else {
            RestoreError::Refused {
                problems: vec![format!(
                    "{e}; an interrupted earlier restore left files beside {}: remove them, or make the directory writable",
                    target.display()
                )],
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
