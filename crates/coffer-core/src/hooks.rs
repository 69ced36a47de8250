//! Operator hooks: the argv lists of the `[hooks]` configuration section.
//!
//! A hook is run without a shell, with coffer's environment plus the variables the caller
//! passes (outcome, backup name, sizes). Its stdout and stderr both go to coffer's stderr,
//! so a `--json` report on stdout stays parseable and the operator still sees what
//! `docker compose stop` said.

use std::fmt;
use std::io::Read;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

/// When a hook runs; names the configuration key in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `hooks.before_restore`: before a restore changes anything.
    BeforeRestore,
    /// `hooks.after_restore`: after a restore, whether it succeeded or not.
    AfterRestore,
    /// `hooks.on_success`: after a successful run.
    OnSuccess,
    /// `hooks.on_failure`: after a failed run.
    OnFailure,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::BeforeRestore => "hooks.before_restore",
            Stage::AfterRestore => "hooks.after_restore",
            Stage::OnSuccess => "hooks.on_success",
            Stage::OnFailure => "hooks.on_failure",
        })
    }
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The program could not be started (not found, not executable).
    #[error(
        "{stage} command `{command}` could not be started: {source}; check the path in the configuration"
    )]
    Spawn {
        /// Which hook list.
        stage: Stage,
        /// The argv, joined with spaces.
        command: String,
        /// The error from exec.
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("{stage} command `{command}` failed: {status}")]
    Failed {
        /// Which hook list.
        stage: Stage,
        /// The argv, joined with spaces.
        command: String,
        /// How it ended, e.g. `exit status 1`.
        status: String,
    },
}

/// Runs one hook command and waits for it.
///
/// `env` is added to coffer's own environment; variable names should start with `COFFER_`.
pub fn run(stage: Stage, argv: &[String], env: &[(String, String)]) -> Result<(), HookError> {
    let command = argv.join(" ");
    let Some((program, args)) = argv.split_first() else {
        // Config validation rejects empty lists; treat one reaching here as a no-op.
        return Ok(());
    };
    let spawn_err = |source| HookError::Spawn {
        stage,
        command: command.clone(),
        source,
    };
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(spawn_err)?;
    let mut cmd = Command::new(program);
    for name in secret_variables(std::env::vars_os()) {
        cmd.env_remove(name);
    }
    let status = cmd
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::inherit())
        .status()
        .map_err(spawn_err)?;
    if status.success() {
        Ok(())
    } else {
        Err(HookError::Failed {
            stage,
            command,
            status: crate::postgres::describe_status(status),
        })
    }
}

/// The names of the inherited variables a hook must not see: coffer's own credentials
/// (`PGPASSWORD`, `AWS_SECRET_ACCESS_KEY`, `*_TOKEN`, …) and any variable whose value holds a
/// password (`COFFER_DATABASE_URL=postgres://app:…@db/portal`). A hook is the operator's
/// command, but it may log its environment or pass it on; one that needs credentials reads
/// them itself.
fn secret_variables(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Vec<std::ffi::OsString> {
    vars.filter(|(name, value)| {
        let name = name.to_string_lossy();
        let value = value.to_string_lossy();
        crate::redact::is_secret_key(&name)
            || matches!(crate::redact::redact(&value), std::borrow::Cow::Owned(_))
    })
    .map(|(name, _)| name)
    .collect()
}

/// Runs every command of a list in order, each even when an earlier one failed, and returns
/// the failures. For hooks that must all get their chance (after a restore, notifications).
pub fn run_all(stage: Stage, commands: &[Vec<String>], env: &[(String, String)]) -> Vec<HookError> {
    commands
        .iter()
        .filter_map(|argv| run(stage, argv, env).err())
        .collect()
}

/// Runs the commands of a list in order and stops at the first failure. For hooks that
/// gate what follows (before a restore).
pub fn run_until_failure(
    stage: Stage,
    commands: &[Vec<String>],
    env: &[(String, String)],
) -> Result<(), HookError> {
    commands.iter().try_for_each(|argv| run(stage, argv, env))
}

/// Reads a command's whole output as text (used by `alembic.expected_head_command`).
///
/// stdin is closed and stderr passes through to coffer's stderr.
pub fn capture(argv: &[String]) -> std::io::Result<(std::process::ExitStatus, String)> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let mut bytes = Vec::new();
        out.read_to_end(&mut bytes)?;
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    Ok((child.wait()?, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn env_reaches_the_hook_and_failures_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("printf %s \"$COFFER_OUTCOME\" > {}", out.display());
        let env = vec![("COFFER_OUTCOME".to_string(), "success".to_string())];
        run(Stage::OnSuccess, &argv(&["sh", "-c", &script]), &env).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "success");

        let err = run(Stage::OnFailure, &argv(&["sh", "-c", "exit 3"]), &[]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("hooks.on_failure command `sh -c exit 3` failed"),
            "{msg}"
        );
        assert!(msg.contains('3'), "{msg}");

        let err = run(Stage::BeforeRestore, &argv(&["/nonexistent/hook"]), &[]).unwrap_err();
        assert!(matches!(err, HookError::Spawn { .. }), "{err}");
    }

    #[test]
    fn run_all_continues_and_run_until_failure_stops() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let touch = argv(&["touch", marker.to_str().unwrap()]);
        let list = vec![argv(&["false"]), touch];
        assert_eq!(run_all(Stage::AfterRestore, &list, &[]).len(), 1);
        assert!(marker.exists());
        std::fs::remove_file(&marker).unwrap();
        assert!(run_until_failure(Stage::BeforeRestore, &list, &[]).is_err());
        assert!(!marker.exists());
    }

    #[test]
    fn capture_reads_stdout() {
        let (status, text) = capture(&argv(&["echo", "abc123 (head)"])).unwrap();
        assert!(status.success());
        assert_eq!(text.trim(), "abc123 (head)");
    }

    #[test]
    fn secret_variables_are_not_inherited() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("HOME", "/root"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("PGPASSWORD", "pw"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_SESSION_TOKEN", "tok"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "k"),
            ("COFFER_DATABASE_URL", "postgres://app:pw@db/portal"),
            ("DATABASE_URL", "postgres://app@db/portal?sslpassword=pw"),
            ("COFFER_BACKUP_DIR", "/var/backups/coffer"),
        ];
        let got = secret_variables(
            vars.iter()
                .map(|(k, v)| (std::ffi::OsString::from(k), std::ffi::OsString::from(v))),
        );
        let got: Vec<_> = got
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            got,
            [
                "PGPASSWORD",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "AZURE_STORAGE_ACCOUNT_KEY",
                "COFFER_DATABASE_URL",
                "DATABASE_URL"
            ]
        );
    }
}
