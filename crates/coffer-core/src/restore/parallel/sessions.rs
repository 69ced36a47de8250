//! The sessions of a parallel restore: the pre-data in one, the data pieces in N, the
//! post-data's index builds in N and its rest in one.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::cancel::CancelFlag;
use crate::format::manifest::{Artifact, ArtifactRole};
use crate::format::pieces::Piece;
use crate::postgres::Database;
use crate::postgres::sandbox_exec::Confinement;
use crate::progress::Progress;
use crate::remote::stream::RemoteObject;
use crate::stream::crypto::Identities;
use crate::stream::dump_scan::{DumpFacts, DumpScanner, SessionState};
use crate::stream::piece_reader::{PieceReader, PieceSource};

use super::super::failure::{StreamFailure, artifact_failure};
use super::super::post_data::{PostDataPlan, plan_post_data};
use super::super::psql_session::PsqlSession;

/// Bytes read from a piece at a time.
const CHUNK: usize = 256 << 10;

/// Largest post-data piece that is split into index builds and the rest (it is held in
/// memory to be split); a larger one (large objects) runs as one stream in order.
const POST_SPLIT_CAP: u64 = 16 << 20;

/// The session state later pieces resume from: the settings the pre-data left in effect
/// (the last of each, e.g. `SET default_tablespace`, which the post-data relies on), the
/// encoding and the dump's `\restrict` key.
pub(super) struct Resume {
    pub(super) state: SessionState,
}

/// Where [`Run::pump`] hands what the gate let through (with the scanner, for the COPY
/// statements it completed).
type Emit<'e> = dyn FnMut(&mut DumpScanner, &[u8]) -> Result<(), StreamFailure> + 'e;

/// Stops the other sessions when a session's thread panics (they may be waiting for a COPY
/// statement it would have published).
struct AbortOnPanic<'a>(&'a AtomicBool);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// What every session of one parallel restore shares.
pub(super) struct Run<'a> {
    pub(super) path: &'a Path,
    /// Streamed from the remote instead of read from `path` (which then only names it).
    pub(super) remote: Option<&'a RemoteObject>,
    pub(super) artifact: &'a Artifact,
    pub(super) pieces: &'a [Piece],
    pub(super) identities: Option<&'a Identities>,
    /// Connected to the new database.
    pub(super) runner: Database,
    pub(super) progress: &'a dyn Progress,
    pub(super) cancel: &'a CancelFlag,
    pub(super) abort: &'a AtomicBool,
    pub(super) jobs: usize,
}

/// COPY statements published by the session that read them, for the pieces that continue
/// their blocks.
#[derive(Default)]
pub(super) struct Board {
    copies: Mutex<HashMap<String, Vec<u8>>>,
    changed: Condvar,
}

impl Board {
    fn publish(&self, found: Vec<(String, Vec<u8>)>) {
        if found.is_empty() {
            return;
        }
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        for (table, statement) in found {
            copies.entry(table).or_insert(statement);
        }
        self.changed.notify_all();
    }

    /// The COPY statement published for `table`.
    fn published(&self, table: &str) -> Option<Vec<u8>> {
        let copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        copies.get(table).cloned()
    }

    /// Waits for `table`'s COPY statement (its block's head piece is being read by another
    /// session, which publishes it early, or failed and set `abort`).
    pub(super) fn wait_for(&self, table: &str, run: &Run<'_>) -> Result<Vec<u8>, StreamFailure> {
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(s) = copies.get(table) {
                return Ok(s.clone());
            }
            if run.stopped() {
                return Err(StreamFailure::Aborted);
            }
            copies = self
                .changed
                .wait_timeout(copies, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Run<'_> {
    pub(super) fn stopped(&self) -> bool {
        self.cancel.signal().is_some() || self.abort.load(Ordering::SeqCst)
    }

    /// A reader of `piece` alone: from the file, or with its own ranged reads from the
    /// remote.
    fn open_piece(&self, piece: &Piece) -> Result<PieceReader, StreamFailure> {
        let source = match self.remote {
            Some(object) => PieceSource::Remote(object),
            None => PieceSource::File(self.path),
        };
        PieceReader::open_from(source, self.artifact, piece, self.identities)
            .map_err(artifact_failure)
    }

    pub(super) fn describe(&self, i: usize) -> String {
        let p = &self.pieces[i];
        match &p.table {
            Some(t) => format!("piece {i} ({t}) of {}", self.path.display()),
            None => format!("piece {i} of {}", self.path.display()),
        }
    }

    /// Reads piece `i` to its end through `scanner`, handing each chunk the gate let
    /// through to `emit`; stops at a signal, a refusal or a read error (damage).
    fn pump(
        &self,
        i: usize,
        reader: &mut PieceReader,
        scanner: &mut DumpScanner,
        emit: &mut Emit<'_>,
    ) -> Result<(), StreamFailure> {
        let mut buf = vec![0u8; CHUNK];
        let mut out = Vec::with_capacity(CHUNK);
        loop {
            if self.stopped() {
                return Err(StreamFailure::Aborted);
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                // A failed download is the remote's failure, not damage.
                Err(e) if reader.transfer_failed() => {
                    return Err(artifact_failure(reader.damaged(e)));
                }
                Err(e) => {
                    return Err(StreamFailure::Damaged(format!("{}: {e}", self.describe(i))));
                }
            };
            out.clear();
            scanner.feed_filtered(&buf[..n], &mut out);
            emit(scanner, &out)?;
            if let Some(problem) = scanner.problem() {
                return Err(StreamFailure::Damaged(format!(
                    "{problem} (in {})",
                    self.describe(i)
                )));
            }
            self.progress.advance(ArtifactRole::Database, n as u64);
        }
    }

    /// Streams piece `i` through `scanner` into `session`; returns its facts and the tables
    /// whose `COPY` statement it holds. `board` gets those statements as soon as they are
    /// read.
    pub(super) fn stream_piece(
        &self,
        i: usize,
        mut scanner: DumpScanner,
        session: &mut PsqlSession,
        board: Option<&Board>,
    ) -> Result<(DumpFacts, Vec<String>), StreamFailure> {
        let piece = &self.pieces[i];
        let mut reader = self.open_piece(piece)?;
        let mut last_copy: Option<(String, Vec<u8>)> = None;
        let mut tables = Vec::new();
        self.pump(i, &mut reader, &mut scanner, &mut |scanner, out| {
            session.send(out)?;
            let found = scanner.take_copy_statements();
            if let Some(last) = found.last() {
                last_copy = Some(last.clone());
            }
            tables.extend(found.iter().map(|(t, _)| t.clone()));
            if let Some(b) = board {
                b.publish(found);
            }
            Ok(())
        })?;
        let mut out = Vec::new();
        let facts = scanner
            .finish_piece(piece.ends_in_copy, &mut out)
            .map_err(|cut| StreamFailure::Damaged(format!("{cut} (in {})", self.describe(i))))?;
        reader.finish().map_err(artifact_failure)?;
        // The index says the next piece continues this block: it must be this table's.
        let last_table = last_copy.as_ref().map(|(t, _)| t);
        if piece.ends_in_copy && last_table != piece.table.as_ref() {
            return Err(StreamFailure::Damaged(format!(
                "the piece index says {} ends inside the COPY block of {}, but its last COPY is of {}",
                self.describe(i),
                piece.table.as_deref().unwrap_or("no table"),
                last_table.map_or("no table", String::as_str)
            )));
        }
        // The continuing pieces got the first COPY of the table published; it must be the
        // block this piece ends in.
        if let (true, Some(board), Some((table, statement))) =
            (piece.ends_in_copy, board, &last_copy)
            && board.published(table).as_ref() != Some(statement)
        {
            return Err(StreamFailure::Damaged(format!(
                "{} holds more than one COPY block of {table}: a dump has one per table",
                self.describe(i)
            )));
        }
        session.send(&out)?;
        Ok((facts, tables))
    }

    /// The pre-data piece in one session: the schema. Returns the session state later
    /// pieces resume from.
    pub(super) fn pre_data(&self) -> Result<(Resume, DumpFacts, Confinement), StreamFailure> {
        // Every session works inside a transaction, committed only after its piece matched
        // its SHA-256: what cannot run in one (DROP DATABASE, ALTER SYSTEM, …) never runs.
        let mut session = PsqlSession::open(&self.runner, "BEGIN;\n")?;
        let piece = &self.pieces[0];
        let mut reader = self.open_piece(piece)?;
        let mut scanner = DumpScanner::new();
        self.pump(0, &mut reader, &mut scanner, &mut |_, out| {
            session.send(out)
        })?;
        let state = scanner.session_state();
        let mut out = Vec::new();
        let facts = scanner
            .finish_piece(false, &mut out)
            .map_err(|cut| StreamFailure::Damaged(format!("{cut} (in {})", self.describe(0))))?;
        reader.finish().map_err(artifact_failure)?;
        session.send(&out)?;
        session.send(b"COMMIT;\n")?;
        session.wait_applied(self.cancel, self.abort, &self.describe(0))?;
        let confinement = session.confinement.clone();
        session.close()?;
        Ok((Resume { state }, facts, confinement))
    }

    /// Runs `worker` on `jobs` threads; the first failure stops the others.
    pub(super) fn in_parallel<T: Send>(
        &self,
        worker: &(dyn Fn() -> Result<Vec<T>, StreamFailure> + Sync),
    ) -> Result<Vec<T>, StreamFailure> {
        let results: Vec<Result<Vec<T>, StreamFailure>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..self.jobs.max(1))
                .map(|_| {
                    s.spawn(|| {
                        let _stop_others = AbortOnPanic(self.abort);
                        let r = worker();
                        if r.is_err() {
                            self.abort.store(true, Ordering::SeqCst);
                        }
                        r
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("restore session thread"))
                .collect()
        });
        let mut all = Vec::new();
        let mut failure: Option<StreamFailure> = None;
        for r in results {
            match r {
                Ok(v) => all.extend(v),
                // The first real failure wins over "stopped because another one failed".
                Err(e) => {
                    if failure
                        .as_ref()
                        .is_none_or(|f| matches!(f, StreamFailure::Aborted))
                    {
                        failure = Some(e);
                    }
                }
            }
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(all),
        }
    }

    /// The post-data piece read and gated whole and split into its index builds and the
    /// rest, with its facts; `None` for one too large to hold ([`POST_SPLIT_CAP`]: large
    /// objects), which [`Run::post_data_streamed`] runs instead.
    pub(super) fn post_data_plan(
        &self,
        resume: &Resume,
        i: usize,
    ) -> Result<Option<(PostDataPlan, DumpFacts)>, StreamFailure> {
        if self.pieces[i].uncompressed_size > POST_SPLIT_CAP {
            return Ok(None);
        }
        let (sql, facts) = self.gated(i, &resume.state)?;
        let relations = self.plain_relations()?;
        let plan = plan_post_data(&sql, &|table| relations.contains(table))
            .map_err(|e| StreamFailure::Damaged(format!("{e} (in {})", self.describe(i))))?;
        Ok(Some((plan, facts)))
    }

    /// The post-data's rest (all but the index builds), in order, in one session.
    pub(super) fn post_data_rest(
        &self,
        resume: &Resume,
        plan: &PostDataPlan,
        i: usize,
    ) -> Result<(), StreamFailure> {
        let mut session = PsqlSession::open(&self.runner, "BEGIN;\n")?;
        self.send_gated(&mut session, resume, &plan.rest, "the post-data")?;
        session.send(b"COMMIT;\n")?;
        session.wait_applied(self.cancel, self.abort, &self.describe(i))?;
        session.close()
    }

    /// A post-data piece too large to split, as one stream in order in one session.
    pub(super) fn post_data_streamed(
        &self,
        resume: &Resume,
        i: usize,
    ) -> Result<DumpFacts, StreamFailure> {
        let mut session = PsqlSession::open(&self.runner, "BEGIN;\n")?;
        let (facts, _) = self.stream_piece(
            i,
            DumpScanner::resume(&resume.state, None),
            &mut session,
            None,
        )?;
        session.send(b"COMMIT;\n")?;
        session.wait_applied(self.cancel, self.abort, &self.describe(i))?;
        session.close()?;
        Ok(facts)
    }

    /// Piece `i` decoded, checked and gated, whole, with its facts.
    fn gated(&self, i: usize, state: &SessionState) -> Result<(Vec<u8>, DumpFacts), StreamFailure> {
        let piece = &self.pieces[i];
        let mut reader = self.open_piece(piece)?;
        let mut scanner = DumpScanner::resume(state, None);
        let mut sql = Vec::new();
        self.pump(i, &mut reader, &mut scanner, &mut |_, out| {
            sql.extend_from_slice(out);
            Ok(())
        })?;
        let facts = scanner
            .finish_piece(false, &mut sql)
            .map_err(|cut| StreamFailure::Damaged(format!("{cut} (in {})", self.describe(i))))?;
        reader.finish().map_err(artifact_failure)?;
        Ok((sql, facts))
    }

    /// Sends SQL that already passed the gate through it once more, resumed in the dump's
    /// session state (so the session is set up as the dump's own would be at that point):
    /// nothing the planner produced reaches psql ungated.
    pub(super) fn send_gated(
        &self,
        session: &mut PsqlSession,
        resume: &Resume,
        sql: &[u8],
        what: &str,
    ) -> Result<(), StreamFailure> {
        let mut scanner = DumpScanner::resume(&resume.state, None);
        let mut out = Vec::with_capacity(sql.len() + 1024);
        scanner.feed_filtered(sql, &mut out);
        if let Some(problem) = scanner.problem() {
            return Err(StreamFailure::Damaged(format!("{problem} (in {what})")));
        }
        scanner
            .finish_piece(false, &mut out)
            .map_err(|cut| StreamFailure::Damaged(format!("{cut} (in {what})")))?;
        session.send(&out)
    }

    /// The ordinary (not partitioned) tables and the materialized views of the new
    /// database, quoted as pg_dump quotes them: only their indexes are built ahead.
    fn plain_relations(&self) -> Result<HashSet<String>, StreamFailure> {
        let out = self
            .runner
            .query(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            )
            .map_err(|e| StreamFailure::Failed {
                what: "database",
                reason: e.to_string(),
            })?;
        Ok(out.lines().map(str::to_string).collect())
    }
}
