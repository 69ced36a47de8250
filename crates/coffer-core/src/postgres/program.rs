//! A child program (`pg_dump`, `psql`, a hook) and the tail of its standard error.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::PgError;

/// A child program whose standard error is collected (its last lines) in the background.
///
/// Dropped before [`wait`](Self::wait) returned, it is killed (its process group too) and
/// reaped, and only then is its standard input (still in [`child`](Self::child)) closed:
/// a `psql` cut off mid-statement never sees end-of-input, which would run the statement.
pub struct RunningProgram {
    /// The child process.
    pub child: Child,
    name: String,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_thread: Option<JoinHandle<()>>,
    /// Whether the child was reaped (after which its pid may belong to another process).
    reaped: bool,
}

impl RunningProgram {
    /// Spawns `cmd` with stderr captured and, if `pipe_stdout`, stdout piped.
    pub fn spawn(mut cmd: Command, name: &str, pipe_stdout: bool) -> Result<Self, PgError> {
        cmd.stderr(Stdio::piped());
        if pipe_stdout {
            cmd.stdout(Stdio::piped());
        }
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .spawn()
            .map_err(|source| PgError::Spawn { program, source })?;
        let stderr = child.stderr.take();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_thread = stderr.map(|s| spawn_tail_collector(s, tail.clone()));
        Ok(RunningProgram {
            child,
            name: name.to_string(),
            stderr_tail: tail,
            stderr_thread,
            reaped: false,
        })
    }

    /// Waits for the program and returns an error carrying its stderr tail unless it exited 0.
    pub fn wait(mut self, hint: &str) -> Result<(), PgError> {
        let status = self.child.wait().map_err(|source| PgError::Spawn {
            program: self.name.clone(),
            source,
        })?;
        self.reaped = true;
        self.check(status, hint)
    }

    /// Whether the program has exited, without waiting (it is then reaped).
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        let status = self.child.try_wait()?;
        self.reaped |= status.is_some();
        Ok(status)
    }

    /// Kills the program and its process group (when a later stage failed) and reaps it:
    /// what dropping it does, said where it matters.
    pub fn kill(self) {
        drop(self);
    }

    fn check(&mut self, status: ExitStatus, hint: &str) -> Result<(), PgError> {
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        if status.success() {
            return Ok(());
        }
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        Err(PgError::Failed {
            what: self.name.clone(),
            status: describe_status(status),
            hint: hint.to_string(),
            stderr: tail,
        })
    }

    /// The last lines the program wrote to standard error so far.
    pub fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Drop for RunningProgram {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        // Not reaped yet, so the pid (and its group) is still this child's.
        kill_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
        // The stderr collector is not joined: a grandchild that survived the signal may
        // hold the pipe open, and a drop must not wait for it. The thread ends with the pipe.
    }
}

/// Sends SIGTERM to the process group led by `pid` (see [`super::Database::spawn_pg_dump`]).
pub fn kill_group(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
    }
}

/// Describes an exit status in words: `exit code 1`, `killed by signal 9`.
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

const STDERR_TAIL_LINES: usize = 20;

fn spawn_tail_collector(stderr: ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        // Bounded: a chatty program cannot grow our memory.
        let reader = BufReader::new(stderr.take(16 * 1024 * 1024));
        for line in reader.split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line)
                .chars()
                .take(500)
                .collect::<String>();
            if let Ok(mut t) = tail.lock() {
                if t.len() == STDERR_TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    })
}

/// Runs `cmd` to completion with its output captured.
pub(super) fn output(mut cmd: Command, program: &str) -> Result<std::process::Output, PgError> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.output().map_err(|source| PgError::Spawn {
        program: program.to_string(),
        source,
    })
}

/// The last `n` lines of `text`.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gone(pid: u32) -> bool {
        let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
        // A child killed but not reaped is still there (a zombie).
        rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
    }

    #[test]
    fn a_dropped_program_is_killed_and_reaped_before_its_input_closes() {
        let dir = tempfile::tempdir().unwrap();
        let ran = dir.path().join("ran");
        // It would create `ran` once its input ends: end-of-input must never reach it.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat >/dev/null; touch \"$0\"", ran.to_str().unwrap()])
            .stdin(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut program = RunningProgram::spawn(cmd, "sh", false).unwrap();
        let pid = program.child.id();
        program
            .child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"partial statement")
            .unwrap();
        drop(program);
        assert!(gone(pid), "the dropped program was not reaped");
        assert!(
            !ran.exists(),
            "the program saw end-of-input before it was killed"
        );
    }

    #[test]
    fn waiting_reaps_and_a_failure_keeps_the_stderr_tail() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'FATAL: no such database' >&2; exit 2"]);
        let program = RunningProgram::spawn(cmd, "sh", false).unwrap();
        let pid = program.child.id();
        let e = program.wait("check the settings").unwrap_err().to_string();
        assert!(gone(pid));
        assert!(
            e.contains("exit code 2") && e.contains("FATAL: no such database"),
            "{e}"
        );
    }
}
