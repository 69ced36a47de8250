//! One psql session a restore feeds: started in restricted mode with a key only this
//! process knows, watched so that it never waits forever, killed when dropped.

use std::io::{self, Read, Write};
use std::process::ChildStdin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cancel::CancelFlag;
use crate::postgres::psql_watch;
use crate::postgres::sandbox_exec::Confinement;
use crate::postgres::{Database, RunningProgram};

use super::failure::StreamFailure;

/// A psql process reading SQL from coffer. Dropped, it is killed before its input closes,
/// so a statement left without its `;` never runs and an open transaction rolls back.
pub(super) struct PsqlSession {
    /// `None` once handed on ([`PsqlSession::into_program`]).
    psql: Option<RunningProgram>,
    watch: psql_watch::Watch,
    /// The value of the `SELECT` that says everything before it was applied: random, so no
    /// dump can print it early.
    marker: String,
    /// The session's backend pid, once psql printed it.
    backend: Option<u32>,
    /// Where the session state is asked (the same server).
    runner: Database,
    /// How psql was confined (see [`crate::postgres::sandbox_exec`]).
    pub(super) confinement: Confinement,
}

impl PsqlSession {
    /// Starts psql on `runner`'s database and sends the opening: `\restrict` with a fresh
    /// key (whatever comes later, psql refuses every meta-command and stops), the query that
    /// prints the backend pid, then `opening` (e.g. `BEGIN;`).
    pub(super) fn open(runner: &Database, opening: &str) -> Result<PsqlSession, StreamFailure> {
        let (mut psql, confinement) =
            runner
                .spawn_psql_script()
                .map_err(|e| StreamFailure::Failed {
                    what: "database",
                    reason: e.to_string(),
                })?;
        let marker = format!("coffer-applied-{}", restrict_key().map_err(no_rng)?);
        let watch = psql_watch::Watch::spawn(
            psql.child.stdout.take().expect("psql stdout is piped"),
            marker.clone(),
        );
        let mut session = PsqlSession {
            psql: Some(psql),
            watch,
            marker,
            backend: None,
            runner: runner.clone(),
            confinement,
        };
        let start = format!(
            "\\restrict {}\n{}{opening}",
            restrict_key().map_err(no_rng)?,
            psql_watch::pid_query()
        );
        session.send(start.as_bytes())?;
        Ok(session)
    }

    fn input(&mut self) -> &mut ChildStdin {
        self.psql
            .as_mut()
            .and_then(|p| p.child.stdin.as_mut())
            .expect("psql stdin is piped")
    }

    /// Sends SQL; when psql stopped reading, its own error is the reason.
    pub(super) fn send(&mut self, sql: &[u8]) -> Result<(), StreamFailure> {
        if self.input().write_all(sql).is_err() {
            return Err(self.failed());
        }
        Ok(())
    }

    /// psql stopped reading (it failed, or exited): ends it and returns its error.
    pub(super) fn failed(&mut self) -> StreamFailure {
        let Some(mut psql) = self.psql.take() else {
            return StreamFailure::Failed {
                what: "database",
                reason: "psql is gone".into(),
            };
        };
        drop(psql.child.stdin.take());
        let reason =
            match psql.wait("the transaction was rolled back; fix the cause and restore again") {
                Err(e) => restrict_hint(e.to_string()),
                Ok(()) => "psql stopped reading its input".into(),
            };
        StreamFailure::Failed {
            what: "database",
            reason,
        }
    }

    /// Sends the marker and waits until psql printed it: everything sent before was applied
    /// (index builds can take minutes). Never for input psql will not get: a session idle in
    /// its transaction, or inside a COPY waiting for data, long after everything was sent is
    /// reported as a dump the scanner misread (`what`: the artifact, for the message).
    pub(super) fn wait_applied(
        &mut self,
        cancel: &CancelFlag,
        abort: &AtomicBool,
        what: &str,
    ) -> Result<(), StreamFailure> {
        let query = format!("SELECT '{}';\n", self.marker);
        self.send(query.as_bytes())?;
        if self.input().flush().is_err() {
            return Err(self.failed());
        }
        let mut next_check = Instant::now() + Duration::from_secs(5);
        let mut waiting_since: Option<Instant> = None;
        loop {
            match self.watch.next(Duration::from_millis(200)) {
                Ok(psql_watch::Signal::Applied) => return Ok(()),
                Ok(psql_watch::Signal::Pid(pid)) => self.backend = Some(pid),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if cancel.signal().is_some() || abort.load(Ordering::SeqCst) {
                        return Err(StreamFailure::Aborted);
                    }
                    if let Some(pid) = self.backend
                        && Instant::now() >= next_check
                    {
                        next_check = Instant::now() + Duration::from_secs(5);
                        // A failed look (the server busy, a permission) is no evidence: go on.
                        let state = psql_watch::session_state(&self.runner, pid)
                            .unwrap_or(psql_watch::Session::Other);
                        let stalled = match state {
                            psql_watch::Session::IdleTooLong => true,
                            psql_watch::Session::WaitingForClient => {
                                waiting_since.get_or_insert_with(Instant::now).elapsed()
                                    >= psql_watch::COPY_STALL_AFTER
                            }
                            psql_watch::Session::Other => {
                                waiting_since = None;
                                false
                            }
                        };
                        if stalled {
                            return Err(StreamFailure::Damaged(format!(
                                "psql is still waiting for input after all of {what} was sent: \
                                 it ends inside a statement or string that coffer's scanner did not see as open; \
                                 the transaction was rolled back"
                            )));
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(self.failed()),
            }
        }
    }

    /// Ends the input (everything sent was applied: [`PsqlSession::wait_applied`]) and waits
    /// for psql to exit: `Ok` when it ended cleanly. For sessions without an open
    /// transaction.
    pub(super) fn close(mut self) -> Result<(), StreamFailure> {
        let mut psql = self.psql.take().expect("an open session has its psql");
        drop(psql.child.stdin.take());
        psql.wait("check the error above and the server log")
            .map_err(|e| StreamFailure::Failed {
                what: "database",
                reason: e.to_string(),
            })
    }

    /// The psql process, for a caller that ends it itself (a pending `COMMIT`).
    pub(super) fn into_program(mut self) -> RunningProgram {
        self.psql.take().expect("an open session has its psql")
    }
}

pub(super) fn no_rng(e: io::Error) -> StreamFailure {
    StreamFailure::Failed {
        what: "database",
        reason: format!("cannot read the operating system's random number generator: {e}"),
    }
}

/// A fresh key for psql's `\restrict`: 32 alphanumeric characters from the OS RNG.
pub(super) fn restrict_key() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Adds what to do when psql predates `\restrict` (added in the August 2025 minor releases).
pub(super) fn restrict_hint(reason: String) -> String {
    if reason.contains("invalid command \\restrict") {
        format!(
            "{reason}; this psql is too old to run a dump in restricted mode: install a psql from the August 2025 minor releases or later (15.14, 16.10, 17.6, 18.0, …)"
        )
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restrict_key_is_32_lowercase_hex_characters_and_fresh_each_time() {
        let key = restrict_key().unwrap();
        assert_eq!(key.len(), 32, "{key}");
        // psql accepts only an alphanumeric key.
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{key}"
        );
        assert_ne!(key, restrict_key().unwrap());
    }

    #[test]
    fn restrict_hint_explains_a_psql_without_restricted_mode() {
        let hinted =
            restrict_hint("psql:<stdin>:1: invalid command \\restrict (exit code 3)".to_string());
        assert!(
            hinted.starts_with(
                "psql:<stdin>:1: invalid command \\restrict (exit code 3); this psql is too old"
            ),
            "{hinted}"
        );
        assert!(hinted.contains("15.14"), "{hinted}");
    }

    #[test]
    fn restrict_hint_leaves_other_errors_alone() {
        let reason = "psql: ERROR: relation \"t\" already exists".to_string();
        assert_eq!(restrict_hint(reason.clone()), reason);
    }

    #[test]
    fn no_rng_is_a_database_failure_naming_the_generator() {
        match no_rng(io::Error::other("no /dev/urandom")) {
            StreamFailure::Failed { what, reason } => {
                assert_eq!(what, "database");
                assert_eq!(
                    reason,
                    "cannot read the operating system's random number generator: no /dev/urandom"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
