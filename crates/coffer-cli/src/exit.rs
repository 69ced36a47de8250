//! Exit codes, documented in `--help` and the README.

use coffer_core::ErrorKind;

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

/// Maps an error to its exit code: a library error (the CLI's own refusals are library
/// errors too) by its kind, anything else as a failure.
pub fn code_for(err: &anyhow::Error) -> u8 {
    crate::output::core_error(err).map_or(FAILED, |e| code_of(e.kind()))
}

/// The exit code of each kind of library error.
fn code_of(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidConfig => USAGE,
        ErrorKind::Locked => LOCKED,
        ErrorKind::Damaged => VERIFY_FAILED,
        ErrorKind::Refused => REFUSED,
        ErrorKind::RolledBack => ROLLED_BACK,
        ErrorKind::AfterRestore => AFTER_RESTORE,
        ErrorKind::Inconsistent => INCONSISTENT,
        ErrorKind::RemoteUnavailable => REMOTE_UNAVAILABLE,
        ErrorKind::Interrupted { signal } => 128 + signal as u8,
        _ => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_library_error_exits_with_its_kinds_code_even_under_context() {
        let locked = coffer_core::Error::new(ErrorKind::Locked, std::io::Error::other("held"));
        let err = anyhow::Error::from(locked);
        assert_eq!(code_for(&err), LOCKED);
        let wrapped = Err::<(), _>(coffer_core::Error::new(
            ErrorKind::Refused,
            std::io::Error::other("not confirmed"),
        ))
        .context("restore")
        .unwrap_err();
        assert_eq!(code_for(&wrapped), REFUSED);
    }

    #[test]
    fn anything_else_is_a_failure() {
        assert_eq!(code_for(&anyhow::anyhow!("disk on fire")), FAILED);
        assert_eq!(code_of(ErrorKind::Failed), FAILED);
    }

    #[test]
    fn interruptions_exit_128_plus_the_signal() {
        assert_eq!(code_of(ErrorKind::Interrupted { signal: 2 }), 130);
        assert_eq!(code_of(ErrorKind::Interrupted { signal: 15 }), 143);
    }
}
