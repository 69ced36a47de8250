//! The load phase of a parallel restore: the data pieces and the post-data's index builds
//! in `jobs` sessions, each index built as soon as its table's data is committed
//! ([`LoadQueue`]).

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::stream::dump_scan::{DumpFacts, DumpScanner};

use super::super::failure::StreamFailure;
use super::super::post_data::IndexBuild;
use super::super::psql_session::PsqlSession;
use super::schedule::{LoadQueue, Task, block_head};
use super::sessions::{Board, Resume, Run};

/// What the load phase did.
pub(super) struct Loaded {
    /// Each data piece's facts, by piece index.
    pub(super) facts: Vec<(usize, DumpFacts)>,
    /// Seconds until the last data piece committed.
    pub(super) data_secs: f64,
    /// Seconds the index builds went on after that.
    pub(super) index_secs: f64,
}

/// The queue and when the data ended, shared by the sessions.
struct Shared<'p> {
    queue: LoadQueue<'p>,
    data_ended: Option<Instant>,
}

impl Run<'_> {
    /// Loads every data piece, largest first, each in its own transaction, and builds
    /// `builds` (each in its own transaction, once its table is loaded) in `jobs` sessions.
    pub(super) fn load(
        &self,
        resume: &Resume,
        builds: &[IndexBuild],
    ) -> Result<Loaded, StreamFailure> {
        let start = Instant::now();
        let shared = Mutex::new(Shared {
            queue: LoadQueue::new(
                self.pieces,
                builds.iter().map(|b| b.table.clone()).collect(),
            ),
            data_ended: None,
        });
        let changed = Condvar::new();
        let board = Board::default();
        let worker = || -> Result<Vec<(usize, DumpFacts)>, StreamFailure> {
            let mut done = Vec::new();
            let mut session: Option<PsqlSession> = None;
            loop {
                let task = {
                    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                    loop {
                        match s.queue.next() {
                            Task::Wait if self.stopped() => return Err(StreamFailure::Aborted),
                            Task::Wait => {
                                s = changed
                                    .wait_timeout(s, Duration::from_millis(200))
                                    .unwrap_or_else(|e| e.into_inner())
                                    .0;
                            }
                            task => break task,
                        }
                    }
                };
                let s = match (task, session.as_mut()) {
                    (Task::Done | Task::Wait, _) => break,
                    (_, Some(s)) => s,
                    (_, None) => session.insert(PsqlSession::open(&self.runner, "")?),
                };
                match task {
                    Task::Data(i) => {
                        let (facts, tables) = self.load_piece(i, s, resume, &board)?;
                        done.push((i, facts));
                        let mut sh = shared.lock().unwrap_or_else(|e| e.into_inner());
                        sh.queue.committed(i, &tables);
                        if sh.queue.data_done() {
                            sh.data_ended = Some(Instant::now());
                        }
                        changed.notify_all();
                    }
                    Task::Index(b) => self.build_index(&builds[b], s, resume)?,
                    Task::Done | Task::Wait => unreachable!("handled above"),
                }
            }
            if let Some(s) = session {
                s.close()?;
            }
            Ok(done)
        };
        let facts = self.in_parallel(&worker)?;
        let end = Instant::now();
        let data_ended = shared
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .data_ended
            .unwrap_or(start);
        Ok(Loaded {
            facts,
            data_secs: (data_ended - start).as_secs_f64(),
            index_secs: (end - data_ended).as_secs_f64(),
        })
    }

    /// Data piece `i` as `BEGIN; COPY …; COMMIT`, committed only after it matched its
    /// SHA-256. Returns its facts and the tables whose `COPY` statement it held.
    fn load_piece(
        &self,
        i: usize,
        session: &mut PsqlSession,
        resume: &Resume,
        board: &Board,
    ) -> Result<(DumpFacts, Vec<String>), StreamFailure> {
        let piece = &self.pieces[i];
        let copy = if piece.starts_in_copy {
            let head = block_head(self.pieces, i);
            let table = self.pieces[head].table.clone().unwrap_or_default();
            let statement = board.wait_for(&table, self)?;
            Some((table, statement))
        } else {
            None
        };
        session.send(b"BEGIN;\n")?;
        let scanner = DumpScanner::resume(
            &resume.state,
            copy.as_ref().map(|(t, c)| (t.as_str(), c.as_slice())),
        );
        let loaded = self.stream_piece(i, scanner, session, Some(board))?;
        session.send(b"COMMIT;\n")?;
        session.wait_applied(self.cancel, self.abort, &self.describe(i))?;
        Ok(loaded)
    }

    /// One index build in its own transaction, through the gate again.
    fn build_index(
        &self,
        build: &IndexBuild,
        session: &mut PsqlSession,
        resume: &Resume,
    ) -> Result<(), StreamFailure> {
        session.send(b"BEGIN;\n")?;
        self.send_gated(
            session,
            resume,
            &build.sql,
            &format!("index {}", build.name),
        )?;
        session.send(b"COMMIT;\n")?;
        session.wait_applied(
            self.cancel,
            self.abort,
            &format!("the build of index {}", build.name),
        )
    }
}
