//! [`Hint`]: a remedy the library knows applies but that only a front end can phrase.
//!
//! Library messages say what is wrong and what to change in the configuration or the data.
//! Some remedies are choices of the caller for one run (accept an unsigned backup, end the
//! other sessions, restore only the database) or other operations (list, verify, sync):
//! the library names them with a `Hint` and the front end words them in its own terms (a
//! CLI flag, a form field, a button), as rage adds flag advice to age's errors.

use serde::Serialize;

/// A remedy for a failure, a refusal or a note, in terms of the caller's choices.
///
/// Reached through [`crate::Error::hints`], [`crate::restore::Plan::hints`],
/// [`crate::Event::Hint`] and [`crate::check::verify::Check::hint`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hint {
    /// An age identity for this run opens the encrypted artifacts
    /// (`RestoreOptions::identity`, `VerifyOptions::identity`).
    Identity,
    /// An unsigned backup may be accepted for this run only (`allow_unsigned`); a bad
    /// signature never is.
    AllowUnsigned,
    /// The code's Alembic head(s) may be given for this run (`RestoreOptions::expect_heads`).
    ExpectHead,
    /// The restore may go ahead although the Alembic heads differ
    /// (`RestoreOptions::allow_head_mismatch`).
    AllowHeadMismatch,
    /// The other sessions connected to the target database may be ended instead of
    /// refusing (`RestoreOptions::terminate_connections`).
    TerminateConnections,
    /// The workspace may be restored into another directory (`RestoreOptions::target_dir`).
    TargetDir,
    /// The restore may go into another (new) database (`RestoreOptions::target_db`).
    TargetDb,
    /// Only the database may be restored (`RestoreOptions::workspace(false)`).
    DatabaseOnly,
    /// Only the workspace may be restored (`RestoreOptions::database(false)`).
    WorkspaceOnly,
    /// Another backup may be chosen: list the backups and verify them.
    AnotherBackup,
    /// The backup root's backups can be listed (`Coffer::list`).
    ListBackups,
    /// The local backup should be verified (`Coffer::verify`).
    VerifyBackup,
    /// The remote's backups can be listed (`Coffer::list_remote`).
    ListRemote,
    /// The backups can be uploaded from the host that has them (`Coffer::sync`).
    Sync,
    /// A signing key without password can be written (`signing::generate`).
    SigningKeygen,
}

/// Hints without repeats, in first-seen order.
pub(crate) fn push_unique(hints: &mut Vec<Hint>, hint: Hint) {
    if !hints.contains(&hint) {
        hints.push(hint);
    }
}

/// Problems found together (by pre-flight), each with what to do about it, and the
/// remedies the front end may add.
#[derive(Debug, Default, Clone)]
pub(crate) struct Problems {
    /// Each problem, with what to do about it in configuration and data terms.
    pub(crate) list: Vec<String>,
    /// The caller's choices that would also resolve one of them.
    pub(crate) hints: Vec<Hint>,
}

impl Problems {
    /// A problem the configuration or the data must fix.
    pub(crate) fn push(&mut self, text: impl Into<String>) {
        self.list.push(text.into());
    }

    /// A problem that a choice of the caller (each of `hints`) would also resolve.
    pub(crate) fn push_hinted(
        &mut self,
        text: impl Into<String>,
        hints: impl IntoIterator<Item = Hint>,
    ) {
        self.list.push(text.into());
        for hint in hints {
            push_unique(&mut self.hints, hint);
        }
    }

    /// Several problems the configuration or the data must fix.
    pub(crate) fn extend(&mut self, texts: impl IntoIterator<Item = String>) {
        self.list.extend(texts);
    }

    /// Whether nothing was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
