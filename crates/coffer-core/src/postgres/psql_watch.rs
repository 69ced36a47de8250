//! Watching the psql session a restore streams the dump into, so that it never waits forever.
//!
//! The restore sends the whole dump, then a marker `SELECT` with a random value, and waits for
//! psql to print it: psql applies statements in order, so the marker means everything before
//! it was applied (index builds can legitimately take minutes). If psql disagrees with coffer's
//! scanner about where a string or statement ends, the marker is swallowed into the dump's
//! last statement and psql waits for more input that never comes, with the transaction open.
//! The server shows that state: the session is `idle in transaction` although coffer has sent
//! everything (or, if the server started a COPY coffer never saw, the session waits for COPY
//! data from psql). [`Watch`] learns the session's backend pid from psql's first output line
//! and [`session_state`] asks the server, on another connection, which it is.

use std::io::{self, Read};
use std::process::ChildStdout;
use std::sync::mpsc;
use std::time::Duration;

use crate::postgres::{Database, PgError};

/// The prefix of the line psql prints first: its backend pid.
const PID_PREFIX: &str = "coffer-pid:";

/// Bytes of a psql output line that are looked at; the rest of a longer line is dropped.
const LINE_CAP: usize = 128;

/// How long the session may sit `idle in transaction` after the whole dump was sent before
/// psql is taken to be waiting for input. Between two statements psql is never idle for
/// more than the time it takes to read the next one from its pipe.
pub const STALL_AFTER: Duration = Duration::from_secs(30);

/// How long a COPY may wait for data from psql after everything was sent. Longer than
/// [`STALL_AFTER`]: a slow psql streaming a huge COPY is briefly in this state too, so only
/// an uninterrupted run of samples counts.
pub const COPY_STALL_AFTER: Duration = Duration::from_secs(120);

/// The SQL that makes psql print its backend pid: sent right after `\restrict`, before the
/// dump, so its output comes first.
pub fn pid_query() -> String {
    format!("SELECT '{PID_PREFIX}' || pg_backend_pid();\n")
}

/// What psql printed that the restore cares about.
#[derive(Debug, PartialEq, Eq)]
pub enum Signal {
    /// The session's backend pid (the first `coffer-pid:` line only).
    Pid(u32),
    /// The marker was printed: everything sent before it was applied.
    Applied,
}

/// Reads psql's standard output to its end in the background, so psql never blocks on a full
/// pipe, and passes on only the pid line and the marker. Memory stays bounded whatever the
/// dump makes psql print (a hostile dump can print gigabytes, or one endless line).
pub struct Watch {
    signals: mpsc::Receiver<Signal>,
}

impl Watch {
    /// Starts reading `stdout`; `marker` is the value of the final `SELECT`.
    pub fn spawn(stdout: ChildStdout, marker: String) -> Watch {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || read_signals(stdout, &marker, &tx));
        Watch { signals: rx }
    }

    /// The next signal within `timeout`.
    pub fn next(&self, timeout: Duration) -> Result<Signal, mpsc::RecvTimeoutError> {
        self.signals.recv_timeout(timeout)
    }
}

fn read_signals(mut stdout: ChildStdout, marker: &str, tx: &mpsc::Sender<Signal>) {
    let mut line = Vec::with_capacity(LINE_CAP);
    let mut overflow = false;
    let mut pid_seen = false;
    let mut buf = [0u8; 8192];
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        for &b in &buf[..n] {
            if b != b'\n' {
                if line.len() < LINE_CAP {
                    line.push(b);
                } else {
                    overflow = true;
                }
                continue;
            }
            if !overflow {
                let signal = classify(&line, marker, pid_seen);
                if let Some(s) = signal {
                    pid_seen |= matches!(s, Signal::Pid(_));
                    // Nobody listening any more is fine: keep draining.
                    let _ = tx.send(s);
                }
            }
            line.clear();
            overflow = false;
        }
    }
}

/// What one complete output line means.
fn classify(line: &[u8], marker: &str, pid_seen: bool) -> Option<Signal> {
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    if line == marker {
        return Some(Signal::Applied);
    }
    if pid_seen {
        // A dump can print a line of the same shape later; only psql's first counts.
        return None;
    }
    line.strip_prefix(PID_PREFIX)?.parse().ok().map(Signal::Pid)
}

/// What the server says the restore's session is doing.
#[derive(Debug, PartialEq, Eq)]
pub enum Session {
    /// `idle in transaction` for at least [`STALL_AFTER`]: psql is waiting for input.
    IdleTooLong,
    /// Inside a COPY, waiting for data from psql (`ClientRead`): psql is waiting for input
    /// if this lasts (a COPY the scanner did not see started and wants its data).
    WaitingForClient,
    /// Working, waiting on a lock, briefly idle, or gone.
    Other,
}

/// Asks the server, on another connection, what the session `pid` is doing.
pub fn session_state(db: &Database, pid: u32) -> Result<Session, PgError> {
    let out = db.query(&format!(
        "SELECT CASE \
           WHEN state = 'idle in transaction' AND now() - state_change >= interval '{} seconds' THEN 'idle' \
           WHEN state = 'active' AND wait_event = 'ClientRead' THEN 'client' \
           ELSE 'other' END \
         FROM pg_stat_activity WHERE pid = {pid}",
        STALL_AFTER.as_secs()
    ))?;
    Ok(match out.trim() {
        "idle" => Session::IdleTooLong,
        "client" => Session::WaitingForClient,
        _ => Session::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_pid_line_and_the_exact_marker_count() {
        let m = "coffer-applied-0123abcd";
        let cases: &[(&[u8], bool, Option<Signal>)] = &[
            (b"coffer-pid:4242", false, Some(Signal::Pid(4242))),
            (b"coffer-pid:4242\r", false, Some(Signal::Pid(4242))),
            (b"coffer-pid:4242", true, None),
            (b"coffer-pid:x", false, None),
            (b"coffer-applied-0123abcd", true, Some(Signal::Applied)),
            (b"coffer-applied-0123abcd", false, Some(Signal::Applied)),
            (b"coffer-applied-0123abce", true, None),
            (b" coffer-applied-0123abcd", true, None),
            (b"42", false, None),
            (b"\xff\xfe", false, None),
        ];
        for (line, pid_seen, want) in cases {
            assert_eq!(&classify(line, m, *pid_seen), want, "{line:?}");
        }
    }

    #[test]
    fn output_is_drained_with_bounded_lines() {
        // A child that prints an endless-looking line, noise, then the two signals.
        let script = "head -c 1000000 /dev/zero | tr '\\0' x; echo; \
                      echo coffer-pid:7; yes noise | head -n 100000; \
                      echo coffer-pid:8; echo marker-1";
        let mut child = std::process::Command::new("sh")
            .args(["-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let watch = Watch::spawn(child.stdout.take().unwrap(), "marker-1".into());
        let timeout = Duration::from_secs(20);
        assert_eq!(watch.next(timeout), Ok(Signal::Pid(7)));
        assert_eq!(watch.next(timeout), Ok(Signal::Applied));
        child.wait().unwrap();
        assert_eq!(
            watch.next(timeout),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
