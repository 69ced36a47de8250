//! The database stream: the dump, through the [`crate::stream::dump_scan`] gate, into one `psql`
//! transaction in restricted mode, held open without `COMMIT` until the caller decides.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cancel::CancelFlag;
use crate::format::manifest::ArtifactRole;
use crate::postgres::sandbox_exec::Confinement;
use crate::postgres::{PgError, RunningProgram};
use crate::progress::Progress;
use crate::stream::artifact::ArtifactError;
use crate::stream::crypto::Identities;
use crate::stream::dump_scan::{DumpFacts, DumpScanner};
use crate::util::units;

use super::DatabaseTarget;
use super::failure::{StreamFailure, artifact_failure};
use super::psql_session::PsqlSession;

/// Chunk size for streaming the dump into psql.
const CHUNK: usize = 1 << 20;

/// A database transaction with the whole dump applied, waiting for `COMMIT`. Dropped
/// without [`commit`](Self::commit), it ends psql without `COMMIT`: the server rolls back.
pub(super) struct PendingCommit {
    /// `None` once committed.
    psql: Option<RunningProgram>,
    /// How psql was confined (see [`crate::postgres::sandbox_exec`]).
    pub(super) confinement: Confinement,
}

impl PendingCommit {
    /// Sends `COMMIT` and waits for psql to exit: `Ok` only when the server committed.
    pub(super) fn commit(mut self) -> Result<(), PgError> {
        let mut psql = self
            .psql
            .take()
            .expect("a pending transaction has its psql");
        let sent = match psql.child.stdin.take() {
            Some(mut stdin) => stdin.write_all(b"COMMIT;\n").and_then(|_| stdin.flush()),
            None => Err(io::Error::other("psql's input is closed")),
        };
        let waited =
            psql.wait("the transaction was rolled back; check the error above and the server log");
        match (sent, waited) {
            (_, Err(e)) => Err(e),
            (Err(e), Ok(())) => Err(PgError::Unsupported(format!(
                "psql stopped reading before COMMIT: {e}"
            ))),
            (Ok(()), Ok(())) => Ok(()),
        }
    }
}

impl Drop for PendingCommit {
    fn drop(&mut self) {
        if let Some(psql) = self.psql.take() {
            end_without_commit(psql);
        }
    }
}

/// Closes psql's input without `COMMIT` and waits for it to exit (killing it after a
/// while): either way the session ends and the server rolls back. Only for a psql that has
/// applied everything it was sent (end-of-input mid-statement would run the statement).
fn end_without_commit(mut psql: RunningProgram) {
    drop(psql.child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match psql.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            // Dropped: killed and reaped.
            Ok(None) if Instant::now() >= deadline => return,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let _ = psql.wait("");
}

/// A streamed artifact reaches psql before its hashes are known: when psql fails on it,
/// the rest is read and checked, so a damaged artifact is reported as damage (which it is)
/// rather than as the SQL error the damage caused. A local artifact was proven before.
fn prefer_damage(
    reader: crate::stream::artifact::ArtifactReader,
    source: &super::Source,
    failure: StreamFailure,
) -> StreamFailure {
    if source.remote.is_none() {
        return failure;
    }
    let checked = reader.finish().and_then(|d| match &source.expected {
        Some(a) => d.check(a, &source.path),
        None => Ok(()),
    });
    match checked {
        Err(e @ (ArtifactError::Damaged { .. } | ArtifactError::Mismatch { .. })) => {
            artifact_failure(e)
        }
        _ => failure,
    }
}

/// The dump's facts are usable (complete, nothing refused) and equal the manifest's head
/// and tables; else the damage, naming the artifact.
pub(super) fn check_facts(
    db: &DatabaseTarget,
    facts: &DumpFacts,
    backup: &str,
) -> Result<(), StreamFailure> {
    let unproven = facts.unusable().or_else(|| {
        db.manifest
            .as_ref()
            .and_then(|m| facts.check_against(m).err())
    });
    match unproven {
        Some(reason) => Err(StreamFailure::Damaged(format!(
            "{reason} (in {} of {backup})",
            db.source.path.display()
        ))),
        None => Ok(()),
    }
}

/// Streams the dump into psql inside a transaction and stops just before `COMMIT`.
pub(super) fn stream_database(
    db: &DatabaseTarget,
    identities: Option<&Identities>,
    progress: &dyn Progress,
    cancel: &CancelFlag,
    abort: &AtomicBool,
    backup: &str,
) -> Result<(PendingCommit, (DumpFacts, u64)), StreamFailure> {
    let mut reader = db.source.open(identities).map_err(artifact_failure)?;
    // Every early return below drops the session: psql is killed before its input closes,
    // so nothing more of what was sent runs, and the server rolls the transaction back.
    let mut session = PsqlSession::open(&db.runner, "BEGIN;\n")?;
    progress.start(ArtifactRole::Database, &db.source.file_name());
    let mut scanner = DumpScanner::new();
    let mut buf = vec![0u8; CHUNK];
    let mut allowed = Vec::with_capacity(CHUNK);
    // Mid-stream, psql may hold a statement without its `;` that end-of-input would make it
    // run: every stop before the whole dump is through the gate kills it instead.
    loop {
        if cancel.signal().is_some() || abort.load(Ordering::SeqCst) {
            return Err(StreamFailure::Aborted);
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(artifact_failure(reader.damaged(e))),
        };
        allowed.clear();
        scanner.feed_filtered(&buf[..n], &mut allowed);
        if let Err(failure) = session.send(&allowed) {
            return Err(prefer_damage(reader, &db.source, failure));
        }
        if let Some(problem) = scanner.problem() {
            // Nothing from the refused byte on was sent; psql must not see end-of-input
            // either (it would run a statement left without its `;`): dropped, it is killed.
            let problem = problem.to_string();
            return Err(StreamFailure::Damaged(format!(
                "{problem} (in {})",
                db.source.path.display()
            )));
        }
        progress.advance(ArtifactRole::Database, n as u64);
    }
    let sql_bytes = reader.plain_bytes();
    let checked = reader.finish().and_then(|d| match &db.source.expected {
        Some(a) => d.check(a, &db.source.path),
        None => Ok(()),
    });
    if let Err(e) = checked {
        return Err(artifact_failure(e));
    }
    let facts = scanner.finish();
    // A cut dump may leave psql inside a string or a statement: it is killed, never sent
    // the end marker (which it might wait on forever) nor end-of-input.
    check_facts(db, &facts, backup)?;
    // psql may still be working through the tail of the dump (index builds can take
    // minutes). Wait until it has applied everything, so the workspace swap and COMMIT
    // that follow are only milliseconds apart.
    session.wait_applied(
        cancel,
        abort,
        &format!("the dump of {backup} ({})", db.source.path.display()),
    )?;
    progress.finish(
        ArtifactRole::Database,
        &format!(
            "{} of SQL applied, waiting to commit",
            units::bytes(sql_bytes)
        ),
    );
    let confinement = session.confinement.clone();
    Ok((
        PendingCommit {
            psql: Some(session.into_program()),
            confinement,
        },
        (facts, sql_bytes),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::TempCluster;
    use std::io::BufRead;

    /// psql with `sql` applied (it answered the `SELECT` that follows), its transaction open.
    fn psql_after(cluster: &TempCluster, sql: &str) -> (RunningProgram, Confinement) {
        let (mut psql, confinement) = cluster.database("t").spawn_psql_script().unwrap();
        let mut out = io::BufReader::new(psql.child.stdout.take().unwrap());
        let stdin = psql.child.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{sql}\nSELECT 'applied';\n").as_bytes())
            .unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        while line.trim_end() != "applied" {
            line.clear();
            assert_ne!(out.read_line(&mut line).unwrap(), 0, "psql ended early");
        }
        // psql's later output (none expected) goes nowhere, without blocking it.
        std::thread::spawn(move || io::copy(&mut out, &mut io::sink()));
        (psql, confinement)
    }

    fn gone(pid: u32) -> bool {
        let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
        rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
    }

    /// Dropping ends the transaction without `COMMIT` and reaps psql, whether the dump was
    /// all applied (a pending commit) or psql was cut off with a statement unfinished.
    #[test]
    fn dropped_sessions_roll_back_and_are_reaped() {
        let cluster = TempCluster::start().unwrap_or_else(|e| panic!("{e}"));
        cluster.create_database("t").unwrap();
        cluster.psql("t", "CREATE TABLE t (n int)").unwrap();
        let count = || cluster.psql("t", "SELECT count(*) FROM t").unwrap();

        let (psql, confinement) = psql_after(&cluster, "BEGIN;\nINSERT INTO t VALUES (1);");
        let pid = psql.child.id();
        drop(PendingCommit {
            psql: Some(psql),
            confinement,
        });
        assert!(gone(pid), "psql was not reaped");
        assert_eq!(count(), "0");

        // A `COMMIT` without its `;`: end-of-input would run it, a kill does not.
        let (mut psql, _) = psql_after(&cluster, "BEGIN;\nINSERT INTO t VALUES (2);");
        let pid = psql.child.id();
        let stdin = psql.child.stdin.as_mut().unwrap();
        stdin.write_all(b"COMMIT").unwrap();
        stdin.flush().unwrap();
        drop(psql);
        assert!(gone(pid), "psql was not reaped");
        assert_eq!(count(), "0");

        // The commit itself still commits.
        let (psql, confinement) = psql_after(&cluster, "BEGIN;\nINSERT INTO t VALUES (3);");
        PendingCommit {
            psql: Some(psql),
            confinement,
        }
        .commit()
        .unwrap();
        assert_eq!(count(), "1");
    }
}
