//! Why a database or workspace stream stopped, and which [`RestoreError`] that becomes.

use crate::cancel::CancelFlag;
use crate::stream::artifact::ArtifactError;

use super::RestoreError;

/// Why a stream stopped.
#[derive(Debug)]
pub(super) enum StreamFailure {
    /// The other stream failed, or a signal arrived.
    Aborted,
    /// The artifact is damaged, truncated, does not match the manifest, or holds an unsafe
    /// tar entry: the backup cannot be trusted.
    Damaged(String),
    /// The database or filesystem refused it.
    Failed { what: &'static str, reason: String },
}

impl StreamFailure {
    /// What the restore reports for this stop of a stream of `backup`.
    pub(super) fn into_error(self, cancel: &CancelFlag, backup: &str) -> RestoreError {
        match self {
            StreamFailure::Aborted => match cancel.signal() {
                Some(signal) => RestoreError::Interrupted { signal },
                None => RestoreError::RolledBack {
                    what: "restore".into(),
                    reason: "stopped".into(),
                },
            },
            StreamFailure::Damaged(reason) => RestoreError::Damaged {
                backup: backup.to_string(),
                reason,
            },
            StreamFailure::Failed { what, reason } => RestoreError::RolledBack {
                what: what.into(),
                reason,
            },
        }
    }
}

/// An artifact that is damaged or differs from its manifest makes the backup untrustworthy;
/// any other artifact error is a failure of this run.
pub(super) fn artifact_failure(e: ArtifactError) -> StreamFailure {
    match e {
        ArtifactError::Damaged { .. } | ArtifactError::Mismatch { .. } => {
            StreamFailure::Damaged(e.to_string())
        }
        ArtifactError::Transfer { .. } => StreamFailure::Failed {
            what: "download",
            reason: e.to_string(),
        },
        other => StreamFailure::Failed {
            what: "open artifact",
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;

    use super::*;

    fn shown(failure: StreamFailure, cancel: &CancelFlag) -> String {
        failure.into_error(cancel, "b1").to_string()
    }

    #[test]
    fn aborted_without_a_signal_is_a_plain_rollback() {
        let err = StreamFailure::Aborted.into_error(&CancelFlag::new(), "b1");
        assert!(
            matches!(&err, RestoreError::RolledBack { what, reason } if what == "restore" && reason == "stopped"),
            "{err:?}"
        );
    }

    #[test]
    fn aborted_by_a_signal_is_an_interruption() {
        let cancel = CancelFlag::new();
        cancel.cancel(15);
        assert!(matches!(
            StreamFailure::Aborted.into_error(&cancel, "b1"),
            RestoreError::Interrupted { signal: 15 }
        ));
    }

    #[test]
    fn damage_names_the_backup_and_failure_the_step() {
        let cancel = CancelFlag::new();
        assert!(
            shown(StreamFailure::Damaged("bad tar".into()), &cancel).starts_with(
                "backup b1 failed verification during the restore, nothing was changed: bad tar;"
            )
        );
        assert_eq!(
            shown(
                StreamFailure::Failed {
                    what: "workspace",
                    reason: "disk full".into()
                },
                &cancel
            ),
            "restore failed and was rolled back, the database and workspace are unchanged: workspace: disk full"
        );
    }

    #[test]
    fn only_damage_and_mismatch_make_the_backup_untrusted() {
        let path = PathBuf::from("/b/db.sql.gz");
        let damaged = ArtifactError::Damaged {
            path: path.clone(),
            source: io::Error::other("bad gzip"),
        };
        assert!(matches!(
            artifact_failure(damaged),
            StreamFailure::Damaged(_)
        ));
        let mismatch = ArtifactError::Mismatch {
            path: path.clone(),
            what: "stored sha256",
            expected: "a".into(),
            actual: "b".into(),
        };
        assert!(matches!(
            artifact_failure(mismatch),
            StreamFailure::Damaged(_)
        ));
        let missing = ArtifactError::NoIdentity { path };
        assert!(matches!(
            artifact_failure(missing),
            StreamFailure::Failed {
                what: "open artifact",
                ..
            }
        ));
    }
}
