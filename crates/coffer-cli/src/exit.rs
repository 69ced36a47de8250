//! Exit codes, documented in `--help` and the README.

use coffer_core::backup::BackupError;
use coffer_core::config::ConfigError;
use coffer_core::crypto::CryptoError;
use coffer_core::lock::LockError;
use coffer_core::prune::PruneError;
use coffer_core::remote::RemoteError;
use coffer_core::restore::RestoreError;
use coffer_core::signing::SigningError;
use coffer_core::systemd::SystemdError;

/// The operation failed (see the error message).
pub const FAILED: u8 = 1;
/// Bad command line or configuration.
pub const USAGE: u8 = 2;
/// Another coffer run holds the backup root's lock.
pub const LOCKED: u8 = 3;
/// `backup --strict`: the backup is complete but files changed while they were archived.
pub const CHANGED_FILES: u8 = 4;

/// `verify` found a damaged backup, or `restore`/`pull` refused one that failed verification
/// (including a bad signature, or none while trusted signing keys are configured).
pub const VERIFY_FAILED: u8 = 5;
/// `restore` refused in pre-flight or at confirmation: nothing was changed.
pub const REFUSED: u8 = 6;
/// `restore` failed and was rolled back: nothing was changed.
pub const ROLLED_BACK: u8 = 7;
/// `restore` completed, but the head check or `hooks.after_restore` failed afterwards.
pub const AFTER_RESTORE: u8 = 8;
/// `restore` failed and the previous state could not be fully put back.
pub const INCONSISTENT: u8 = 9;
/// `status`: no successful backup within `--max-age` (or none at all, the backup root is
/// missing, or the last success is dated in the future).
pub const STATUS_TOO_OLD: u8 = 10;
/// `status`: `--max-failures` consecutive failed backups (and the last success is recent).
pub const STATUS_FAILING: u8 = 11;
/// `sync`, `pull`, `list --remote`, `restore --from-remote`: the remote is unreachable,
/// refuses the credentials or permissions, or the bucket does not exist.
pub const REMOTE_UNAVAILABLE: u8 = 12;

/// The exit-code table shown at the end of `coffer --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    the operation failed (the message says what failed and what to do)
  2    invalid command line or configuration
  3    another coffer run holds the backup root's lock
  4    backup --strict: backup complete, but files changed while being archived
  5    verify/restore/pull: the backup is damaged, or its signature is bad or missing
       while signing.trusted_public_keys is set (restore and pull changed nothing)
  6    restore refused by pre-flight checks or confirmation (nothing changed)
  7    restore failed and was rolled back (nothing changed)
  8    restore completed, but the Alembic head check or hooks.after_restore failed
  9    restore failed and the previous state could not be fully put back
  10   status: no successful backup within --max-age (or none at all, the root is
       missing, or the last success is dated in the future)
  11   status: --max-failures consecutive backup failures (10 wins when both apply)
  12   sync/pull/--remote: the remote is unreachable, refuses the credentials or
       permissions, or the bucket does not exist (the message names the remote)
  130  interrupted by SIGINT (143: SIGTERM); nothing partial was left behind";

/// 3 only when another run holds the lock; an unusable lock (read-only root, a symlink in
/// its place) is a failure of this run.
fn lock_code(e: &LockError) -> u8 {
    if e.is_held() { LOCKED } else { FAILED }
}

/// A signing or trusted key that cannot be used is a configuration problem.
fn signing_code(e: &SigningError) -> u8 {
    match e {
        SigningError::SecretKey { .. } | SigningError::PublicKey { .. } => USAGE,
        _ => FAILED,
    }
}

/// Maps an error to its exit code.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<ConfigError>().is_some() {
        return USAGE;
    }
    if let Some(e) = err.downcast_ref::<BackupError>() {
        return match e {
            BackupError::Locked(l) => lock_code(l),
            BackupError::Config(_) => USAGE,
            BackupError::Interrupted { signal } => 128 + *signal as u8,
            BackupError::Crypto(_) => USAGE,
            BackupError::Signing(e) => signing_code(e),
            _ => FAILED,
        };
    }
    if err
        .downcast_ref::<crate::cmd::restore::NotConfirmed>()
        .is_some()
    {
        return REFUSED;
    }
    if let Some(e) = err.downcast_ref::<RestoreError>() {
        return match e {
            RestoreError::Refused { .. } | RestoreError::BeforeHook(_) => REFUSED,
            RestoreError::Damaged { .. } => VERIFY_FAILED,
            RestoreError::RolledBack { .. } => ROLLED_BACK,
            RestoreError::Interrupted { signal } => 128 + *signal as u8,
            RestoreError::Inconsistent(_) => INCONSISTENT,
            RestoreError::AfterRestore { .. } => AFTER_RESTORE,
        };
    }
    if let Some(e) = err.downcast_ref::<CryptoError>() {
        // An identity or recipient that cannot be used is a configuration problem.
        return match e {
            CryptoError::Keygen { .. } | CryptoError::Decrypt { .. } => FAILED,
            _ => USAGE,
        };
    }
    if let Some(e) = err.downcast_ref::<SigningError>() {
        return signing_code(e);
    }
    if let Some(e) = err.downcast_ref::<LockError>() {
        return lock_code(e);
    }
    if let Some(e) = err.downcast_ref::<RemoteError>() {
        return match e {
            RemoteError::NotConfigured | RemoteError::Config { .. } => USAGE,
            RemoteError::Locked(l) => lock_code(l),
            RemoteError::Interrupted { signal, .. } => 128 + *signal as u8,
            e if e.is_unavailable() => REMOTE_UNAVAILABLE,
            e if e.is_damage() => VERIFY_FAILED,
            _ => FAILED,
        };
    }
    if let Some(e) = err.downcast_ref::<PruneError>() {
        return match e {
            PruneError::Locked(l) => lock_code(l),
            _ => FAILED,
        };
    }
    if let Some(e) = err.downcast_ref::<SystemdError>() {
        return match e {
            SystemdError::RelativePath { .. } | SystemdError::BadValue { .. } => USAGE,
            _ => FAILED,
        };
    }
    FAILED
}
