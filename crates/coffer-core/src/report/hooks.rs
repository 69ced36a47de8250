//! Operator hooks: the argv lists of the `[hooks]` configuration section.
//!
//! A hook is run without a shell, with coffer's environment plus the variables the caller
//! passes (outcome, backup name, sizes). Its stdout and stderr both go to coffer's stderr,
//! so a `--json` report on stdout stays parseable and the operator still sees what
//! `docker compose stop` said.
//!
//! A hook never holds coffer forever: each command runs in a process group of its own and,
//! past `hooks.timeout`, the whole group is sent SIGTERM and, a few seconds later, SIGKILL.

use std::fmt;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long one hook command may run unless `hooks.timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// How long a stopped command's group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Most bytes of a captured command's output that are kept (the rest is read and dropped).
const CAPTURE_CAP: usize = 1 << 20;

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
    /// The program ran longer than `hooks.timeout` and was stopped.
    #[error(
        "{stage} command `{command}` did not finish within {} and was stopped; fix the command or raise hooks.timeout",
        humantime::format_duration(*.timeout)
    )]
    TimedOut {
        /// Which hook list.
        stage: Stage,
        /// The argv, joined with spaces.
        command: String,
        /// The limit it ran into.
        timeout: Duration,
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

/// Runs one hook command and waits for it, at most `timeout`.
///
/// `env` is added to coffer's own environment; variable names should start with `COFFER_`.
pub fn run(
    stage: Stage,
    argv: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<(), HookError> {
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
    let mut child = cmd
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(spawn_err)?;
    let Some(status) = wait_at_most(&mut child, timeout).map_err(spawn_err)? else {
        return Err(HookError::TimedOut {
            stage,
            command,
            timeout,
        });
    };
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
        crate::util::redact::is_secret_key(&name)
            || matches!(
                crate::util::redact::redact(&value),
                std::borrow::Cow::Owned(_)
            )
    })
    .map(|(name, _)| name)
    .collect()
}

/// Runs every command of a list in order, each even when an earlier one failed, and returns
/// the failures. For hooks that must all get their chance (after a restore, notifications).
pub fn run_all(
    stage: Stage,
    commands: &[Vec<String>],
    env: &[(String, String)],
    timeout: Duration,
) -> Vec<HookError> {
    commands
        .iter()
        .filter_map(|argv| run(stage, argv, env, timeout).err())
        .collect()
}

/// Runs the commands of a list in order and stops at the first failure. For hooks that
/// gate what follows (before a restore).
pub fn run_until_failure(
    stage: Stage,
    commands: &[Vec<String>],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<(), HookError> {
    commands
        .iter()
        .try_for_each(|argv| run(stage, argv, env, timeout))
}

/// Reads a command's output as text (used by `alembic.expected_head_command`): its first
/// MiB, within `timeout`; a command still running then is stopped and is an error of kind
/// `TimedOut`.
///
/// stdin is closed and stderr passes through to coffer's stderr.
pub fn capture(argv: &[String], timeout: Duration) -> std::io::Result<(ExitStatus, String)> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()?;
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "it did not finish within {} (hooks.timeout) and was stopped",
                humantime::format_duration(timeout)
            ),
        )
    };
    // Read on another thread so a command that prints without end never blocks the wait.
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut out = out;
        let read = (&mut out)
            .take(CAPTURE_CAP as u64)
            .read_to_end(&mut bytes)
            // Drained, not closed: a command must not die of SIGPIPE for printing too much.
            .and_then(|_| std::io::copy(&mut out, &mut std::io::sink()));
        let _ = tx.send(read.map(|_| bytes));
    });
    let Some(status) = wait_at_most(&mut child, timeout)? else {
        return Err(timed_out());
    };
    // What the command left running in its group (`sleep 60 &`) may hold the pipe open.
    let group = rustix::process::Pid::from_child(&child);
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let left = deadline.saturating_duration_since(Instant::now());
    let bytes = match rx.recv_timeout(left.max(Duration::from_millis(100))) {
        Ok(read) => read?,
        // Something that left the group holds the pipe: its output is not waited for.
        Err(_) => return Err(timed_out()),
    };
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Waits for `child` at most `timeout`; past it, stops the child's process group (SIGTERM,
/// then SIGKILL after a grace period) and returns `None`.
fn wait_at_most(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    let group = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
    let grace = Instant::now() + KILL_GRACE;
    while Instant::now() < grace {
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Whatever of the group is left (a child that ignored SIGTERM, its own children), and
    // the child itself should it have moved to another group.
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let _ = child.kill();
    child.wait()?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn env_reaches_the_hook_and_failures_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("printf %s \"$COFFER_OUTCOME\" > {}", out.display());
        let env = vec![("COFFER_OUTCOME".to_string(), "success".to_string())];
        run(Stage::OnSuccess, &argv(&["sh", "-c", &script]), &env, LONG).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "success");

        let err = run(Stage::OnFailure, &argv(&["sh", "-c", "exit 3"]), &[], LONG).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("hooks.on_failure command `sh -c exit 3` failed"),
            "{msg}"
        );
        assert!(msg.contains('3'), "{msg}");

        let err = run(
            Stage::BeforeRestore,
            &argv(&["/nonexistent/hook"]),
            &[],
            LONG,
        )
        .unwrap_err();
        assert!(matches!(err, HookError::Spawn { .. }), "{err}");
    }

    #[test]
    fn run_all_continues_and_run_until_failure_stops() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let touch = argv(&["touch", marker.to_str().unwrap()]);
        let list = vec![argv(&["false"]), touch];
        assert_eq!(run_all(Stage::AfterRestore, &list, &[], LONG).len(), 1);
        assert!(marker.exists());
        std::fs::remove_file(&marker).unwrap();
        assert!(run_until_failure(Stage::BeforeRestore, &list, &[], LONG).is_err());
        assert!(!marker.exists());
    }

    #[test]
    fn capture_reads_stdout() {
        let (status, text) = capture(&argv(&["echo", "abc123 (head)"]), LONG).unwrap();
        assert!(status.success());
        assert_eq!(text.trim(), "abc123 (head)");
        // Endless output: the first MiB is kept, the rest drained, the command ends.
        let (status, text) = capture(&argv(&["sh", "-c", "yes | head -c 5000000"]), LONG).unwrap();
        assert!(status.success());
        assert_eq!(text.len(), CAPTURE_CAP);
    }

    /// A command and everything it started are stopped at the timeout, even one that
    /// ignores SIGTERM; the error names the hook list and the limit.
    #[test]
    fn a_hook_past_its_timeout_is_stopped_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!(
            "trap '' TERM; sleep 60 & echo $! > {p}; echo $$ >> {p}; while :; do sleep 1; done",
            p = pids.display()
        );
        let started = Instant::now();
        let err = run(
            Stage::BeforeRestore,
            &argv(&["sh", "-c", &script]),
            &[],
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with("hooks.before_restore command `sh -c trap")
                && msg.contains("did not finish within 500ms and was stopped")
                && msg.contains("hooks.timeout"),
            "{msg}"
        );
        // SIGKILL is delivered asynchronously: give the kernel a moment to end them.
        let alive = |pid: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z "))
        };
        for pid in std::fs::read_to_string(&pids).unwrap().lines() {
            let until = Instant::now() + Duration::from_secs(5);
            while alive(pid) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(!alive(pid), "process {pid} of the hook is still running");
        }
        // Exited, but a background child holds the pipe: within the limit all the same.
        let started = Instant::now();
        let (status, text) = capture(
            &argv(&["sh", "-c", "echo abc123; sleep 60 &"]),
            Duration::from_secs(2),
        )
        .unwrap();
        assert!(status.success() && text.trim() == "abc123", "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let err = capture(&argv(&["sleep", "60"]), Duration::from_millis(300)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("hooks.timeout"), "{err}");
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
