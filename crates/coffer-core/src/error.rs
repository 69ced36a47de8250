//! One error type for every front end: what went wrong (the message of the error that
//! happened, unchanged) and what kind of failure it is ([`ErrorKind`]).
//!
//! The kind is what a front end acts on: the CLI maps it to its documented exit codes, an
//! HTTP layer could map it to statuses. The message says what is wrong and what to do in
//! terms of configuration and data, never a CLI flag; [`Error::hints`] names the caller's
//! choices that would also help ([`Hint`]), and the front end words them in its own terms.

use std::error::Error as StdError;
use std::fmt;

use crate::backup::BackupError;
use crate::bundle::BundleError;
use crate::config::ConfigError;
use crate::format::signing::{SigningError, UNSIGNED_REFUSED};
use crate::hint::{Hint, push_unique};
use crate::postgres::PgError;
use crate::remote::RemoteError;
use crate::restore::RestoreError;
use crate::root::catalog::CatalogError;
use crate::root::lock::LockError;
use crate::root::prune::PruneError;
use crate::root::runlog::{RunLogError, StatusError};
use crate::stream::crypto::CryptoError;

/// What kind of failure an [`Error`] is: whether anything changed, and whether trying again,
/// fixing the configuration or using another backup is what helps.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration (or a key, identity or path it names) cannot be used.
    InvalidConfig,
    /// Another coffer run holds the backup root's lock.
    Locked,
    /// A backup is damaged, or its signature is bad (or missing while trusted keys are
    /// configured): it must not be used. A restore or pull refused it and changed nothing.
    Damaged,
    /// A restore was refused in pre-flight (or by `hooks.before_restore`): nothing changed.
    Refused,
    /// A restore failed and was rolled back: nothing changed.
    RolledBack,
    /// A restore was committed, but the head check or `hooks.after_restore` failed afterwards.
    AfterRestore,
    /// A restore failed and the previous state could not be fully put back.
    Inconsistent,
    /// The remote is unreachable, refuses the credentials or permissions, or has no bucket.
    RemoteUnavailable,
    /// A signal asked the operation to stop; it cleaned up before returning.
    Interrupted {
        /// The signal's number (2: SIGINT, 15: SIGTERM).
        signal: usize,
    },
    /// Any other failure; the message says what failed.
    Failed,
}

/// An error of a coffer operation: its [`ErrorKind`] and the error that happened.
///
/// `Display` is that error's message and `source()` continues with its causes, so the
/// chain reads exactly as the inner error's own.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    hints: Vec<Hint>,
    inner: Box<dyn StdError + Send + Sync + 'static>,
}

/// A `Result` whose error is an [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` carrying `inner` (its message is shown as is).
    pub fn new(kind: ErrorKind, inner: impl Into<Box<dyn StdError + Send + Sync>>) -> Error {
        Error {
            kind,
            hints: Vec::new(),
            inner: inner.into(),
        }
    }

    /// This error with `hint` added to its [`hints`](Self::hints).
    pub fn with_hint(mut self, hint: Hint) -> Error {
        push_unique(&mut self.hints, hint);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The caller's choices that would also resolve this failure (accept an unsigned
    /// backup, end the other sessions, list the backups…), most specific first, for the
    /// front end to phrase. The message already says what to change in the configuration
    /// or the data.
    pub fn hints(&self) -> &[Hint] {
        &self.hints
    }

    /// The error that happened.
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self.inner.as_ref()
    }

    /// The error that happened, if it is an `E` (e.g. `RestoreError` for its report).
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.inner.downcast_ref::<E>()
    }

    /// Why a restore was refused in pre-flight, one problem each (what is wrong and what to
    /// change); empty for any other error.
    pub fn refusal_reasons(&self) -> &[String] {
        match self.downcast_ref::<RestoreError>() {
            Some(RestoreError::Refused { problems, .. }) => problems,
            _ => &[],
        }
    }

    /// The message followed by every cause, `": "`-separated: the form stored in the run
    /// log and passed to hooks.
    pub fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let mut cause = self.source();
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        // The inner error is shown as this one, so its causes follow directly.
        self.inner.source()
    }
}

/// Locked only when another run holds the lock: an unusable lock (read-only root, a symlink
/// in its place) is a failure of this run.
fn lock_kind(e: &LockError) -> ErrorKind {
    if e.is_held() {
        ErrorKind::Locked
    } else {
        ErrorKind::Failed
    }
}

/// A signing or trusted key that cannot be used is a configuration problem.
fn signing_kind(e: &SigningError) -> ErrorKind {
    match e {
        SigningError::SecretKey { .. } | SigningError::PublicKey { .. } => ErrorKind::InvalidConfig,
        _ => ErrorKind::Failed,
    }
}

/// An identity or recipient that cannot be used is a configuration problem; a key that
/// cannot be written or an artifact that cannot be decrypted is not.
fn crypto_kind(e: &CryptoError) -> ErrorKind {
    match e {
        CryptoError::Keygen { .. } | CryptoError::Decrypt { .. } => ErrorKind::Failed,
        _ => ErrorKind::InvalidConfig,
    }
}

/// The remedies of an error type that a front end may offer (see [`Hint`]).
trait Remedies: StdError {
    /// The hints of this value; none unless the type says otherwise.
    fn remedies(&self) -> Vec<Hint> {
        Vec::new()
    }
}

/// The hints of `e`: its own, and accepting an unsigned backup wherever the refusal of one
/// is what failed (that refusal reaches restore, pull and drill as a damage report).
fn hints_of(e: &impl Remedies) -> Vec<Hint> {
    let mut hints = Vec::new();
    if e.to_string().contains(UNSIGNED_REFUSED) {
        hints.push(Hint::AllowUnsigned);
    }
    for hint in e.remedies() {
        push_unique(&mut hints, hint);
    }
    hints
}

impl Remedies for SigningError {
    fn remedies(&self) -> Vec<Hint> {
        match self {
            SigningError::SecretKey { .. } => vec![Hint::SigningKeygen],
            _ => Vec::new(),
        }
    }
}

impl Remedies for CryptoError {
    fn remedies(&self) -> Vec<Hint> {
        match self {
            CryptoError::Identity { .. } | CryptoError::NoIdentity { .. } => vec![Hint::Identity],
            _ => Vec::new(),
        }
    }
}

impl Remedies for BackupError {
    fn remedies(&self) -> Vec<Hint> {
        match self {
            BackupError::Crypto(e) => e.remedies(),
            BackupError::Signing(e) => e.remedies(),
            _ => Vec::new(),
        }
    }
}

impl Remedies for RestoreError {
    fn remedies(&self) -> Vec<Hint> {
        match self {
            RestoreError::Refused { hints, .. } => hints.clone(),
            RestoreError::Damaged { .. } => vec![Hint::AnotherBackup],
            _ => Vec::new(),
        }
    }
}

impl Remedies for RemoteError {
    fn remedies(&self) -> Vec<Hint> {
        match self {
            RemoteError::LocalDamaged { .. } => vec![Hint::VerifyBackup],
            RemoteError::NotFound { .. } => vec![Hint::ListRemote],
            RemoteError::NoneComplete { .. } | RemoteError::Incomplete { .. } => vec![Hint::Sync],
            _ => Vec::new(),
        }
    }
}

impl Remedies for CatalogError {
    fn remedies(&self) -> Vec<Hint> {
        match self {
            CatalogError::NotFound { .. } => vec![Hint::ListBackups],
            _ => Vec::new(),
        }
    }
}

impl Remedies for ConfigError {}
impl Remedies for BundleError {
    fn remedies(&self) -> Vec<Hint> {
        match self {
            BundleError::SourceDamaged { .. } => vec![Hint::VerifyBackup],
            _ => Vec::new(),
        }
    }
}
impl Remedies for LockError {}
impl Remedies for PruneError {}
impl Remedies for PgError {}
impl Remedies for RunLogError {}
impl Remedies for StatusError {}
#[cfg(feature = "sandbox")]
impl Remedies for crate::sandbox::SandboxError {}
impl Remedies for std::io::Error {}

/// `From` for an error type whose kind follows from its value (and its hints, from
/// [`Remedies`]).
macro_rules! from_with_kind {
    ($($error:ty => $kind:expr;)*) => {$(
        impl From<$error> for Error {
            fn from(e: $error) -> Error {
                let kind: fn(&$error) -> ErrorKind = $kind;
                let hints = hints_of(&e);
                Error {
                    hints,
                    ..Error::new(kind(&e), e)
                }
            }
        }
    )*};
}

from_with_kind! {
    ConfigError => |_| ErrorKind::InvalidConfig;
    LockError => lock_kind;
    SigningError => signing_kind;
    CryptoError => crypto_kind;
    BackupError => |e| match e {
        BackupError::Locked(l) => lock_kind(l),
        BackupError::Config(_) | BackupError::Crypto(_) => ErrorKind::InvalidConfig,
        BackupError::Interrupted { signal } => ErrorKind::Interrupted { signal: *signal },
        BackupError::Signing(e) => signing_kind(e),
        _ => ErrorKind::Failed,
    };
    RestoreError => |e| match e {
        RestoreError::Refused { .. } | RestoreError::BeforeHook(_) => ErrorKind::Refused,
        RestoreError::Damaged { .. } => ErrorKind::Damaged,
        RestoreError::RolledBack { .. } => ErrorKind::RolledBack,
        RestoreError::Interrupted { signal } => ErrorKind::Interrupted { signal: *signal },
        RestoreError::Inconsistent(_) => ErrorKind::Inconsistent,
        RestoreError::AfterRestore { .. } => ErrorKind::AfterRestore,
    };
    RemoteError => |e| match e {
        RemoteError::NotConfigured | RemoteError::Config { .. } => ErrorKind::InvalidConfig,
        RemoteError::Locked(l) => lock_kind(l),
        RemoteError::Interrupted { signal, .. } => ErrorKind::Interrupted { signal: *signal },
        e if e.is_unavailable() => ErrorKind::RemoteUnavailable,
        e if e.is_damage() => ErrorKind::Damaged,
        _ => ErrorKind::Failed,
    };
    BundleError => |e| match e {
        BundleError::Damaged { .. } | BundleError::SourceDamaged { .. } => ErrorKind::Damaged,
        BundleError::Locked(l) => lock_kind(l),
        BundleError::Interrupted { signal, .. } => ErrorKind::Interrupted { signal: *signal },
        BundleError::RefusedBeforeData(inner) => inner.kind(),
        _ => ErrorKind::Failed,
    };
    PruneError => |e| match e {
        PruneError::Locked(l) => lock_kind(l),
        PruneError::Newest { .. } => ErrorKind::Refused,
        _ => ErrorKind::Failed,
    };
    CatalogError => |_| ErrorKind::Failed;
    PgError => |_| ErrorKind::Failed;
    RunLogError => |_| ErrorKind::Failed;
    StatusError => |_| ErrorKind::Failed;
    std::io::Error => |_| ErrorKind::Failed;
}

// The throw-away cluster's errors, only with the feature that has it.
#[cfg(feature = "sandbox")]
from_with_kind! {
    crate::sandbox::SandboxError => |_| ErrorKind::Failed;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn held() -> LockError {
        LockError::Held {
            root: PathBuf::from("/b"),
            holder: "pid 1".into(),
        }
    }

    fn not_a_file() -> LockError {
        LockError::NotAFile {
            path: PathBuf::from("/b/.coffer.lock"),
            what: "a symbolic link",
        }
    }

    #[test]
    fn locked_only_when_another_run_holds_the_lock() {
        assert_eq!(Error::from(held()).kind(), ErrorKind::Locked);
        assert_eq!(Error::from(not_a_file()).kind(), ErrorKind::Failed);
        assert_eq!(
            Error::from(BackupError::Locked(held())).kind(),
            ErrorKind::Locked
        );
        assert_eq!(
            Error::from(PruneError::Locked(not_a_file())).kind(),
            ErrorKind::Failed
        );
        assert_eq!(
            Error::from(RemoteError::Locked(held())).kind(),
            ErrorKind::Locked
        );
    }

    #[test]
    fn interruptions_and_restore_outcomes_keep_their_kind() {
        let refused = RestoreError::Refused {
            problems: vec!["no".into()],
            hints: Vec::new(),
        };
        assert_eq!(Error::from(refused).kind(), ErrorKind::Refused);
        let interrupted = RestoreError::Interrupted { signal: 15 };
        assert_eq!(
            Error::from(interrupted).kind(),
            ErrorKind::Interrupted { signal: 15 }
        );
        assert_eq!(
            Error::from(RestoreError::Inconsistent("x".into())).kind(),
            ErrorKind::Inconsistent
        );
        let stopped = RemoteError::Interrupted {
            operation: "pull",
            signal: 2,
            outcome: "nothing was put into the backup root",
        };
        assert_eq!(
            Error::from(stopped).kind(),
            ErrorKind::Interrupted { signal: 2 }
        );
    }

    #[test]
    fn keys_that_cannot_be_used_are_configuration_problems() {
        let secret = SigningError::SecretKey {
            path: PathBuf::from("/k"),
            reason: "bad".into(),
        };
        assert_eq!(Error::from(secret).kind(), ErrorKind::InvalidConfig);
        let exists = SigningError::Exists {
            path: PathBuf::from("/k"),
        };
        assert_eq!(Error::from(exists).kind(), ErrorKind::Failed);
        let identity = CryptoError::Identity {
            path: PathBuf::from("/i"),
            reason: "bad".into(),
        };
        assert_eq!(Error::from(identity).kind(), ErrorKind::InvalidConfig);
        let decrypt = CryptoError::Decrypt {
            artifact: "a".into(),
            reason: "wrong key".into(),
        };
        assert_eq!(Error::from(decrypt).kind(), ErrorKind::Failed);
        assert_eq!(
            Error::from(BackupError::Crypto(CryptoError::NoRecipients {
                origin: "x".into()
            }))
            .kind(),
            ErrorKind::InvalidConfig
        );
    }

    #[test]
    fn remedies_follow_the_error_and_wrapping_keeps_them() {
        let identity = CryptoError::Identity {
            path: PathBuf::from("/i"),
            reason: "bad".into(),
        };
        assert_eq!(Error::from(identity).hints(), [Hint::Identity]);
        let secret = SigningError::SecretKey {
            path: PathBuf::from("/k"),
            reason: "bad".into(),
        };
        assert_eq!(
            Error::from(BackupError::Signing(secret)).hints(),
            [Hint::SigningKeygen]
        );
        let unsigned = RestoreError::Damaged {
            backup: "b1".into(),
            reason: UNSIGNED_REFUSED.into(),
        };
        assert_eq!(
            Error::from(unsigned).hints(),
            [Hint::AllowUnsigned, Hint::AnotherBackup]
        );
        let missing = RemoteError::NotFound {
            name: "b1".into(),
            remote: "s3://b/p".into(),
        };
        assert_eq!(Error::from(missing).hints(), [Hint::ListRemote]);
        assert!(Error::from(held()).hints().is_empty());
        let refused = RestoreError::Refused {
            problems: vec!["sessions".into()],
            hints: vec![Hint::TerminateConnections],
        };
        let err = Error::from(refused).with_hint(Hint::TerminateConnections);
        assert_eq!(err.hints(), [Hint::TerminateConnections]);
    }

    #[test]
    fn message_and_causes_are_the_inner_errors() {
        let io = std::io::Error::other("disk on fire");
        let inner = RemoteError::from(LockError::Io {
            path: PathBuf::from("/b/.coffer.lock"),
            source: io,
        });
        let shown = inner.to_string();
        let err = Error::from(inner);
        assert_eq!(err.to_string(), shown);
        assert_eq!(err.source().unwrap().to_string(), "disk on fire");
        assert_eq!(err.with_causes(), format!("{shown}: disk on fire"));
    }
}
