//! Jobs: a backup or restore started by a request, run on a thread of its own (not tokio's
//! blocking pool, which is capped and shared with reads: a burst of reads can neither starve
//! nor deadlock a job) with its own [`RunContext`], outliving the request. One job holds the
//! backup root at a time. With a [`JobLauncher`], that thread is started by the launcher and
//! keeps the process's scheduling priority while the HTTP threads run at a lower one.
//!
//! A job's progress is one snapshot (state, current step, per-artifact bytes) updated by the
//! library's [`Event`]s; watchers are woken through a `watch` channel, so a slow or
//! reconnecting client gets the current state rather than a backlog.

use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use coffer_core::{CancelFlag, Event, Progress, RunContext};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::sync::watch;

use crate::launcher::JobLauncher;
use crate::problem::Problem;

/// Finished jobs kept for `GET /v1/admin/jobs/{id}`; older ones are forgotten.
const KEPT_JOBS: usize = 100;

/// Steps and notes kept per job (the newest ones).
const KEPT_LINES: usize = 200;

/// The name of a job's thread.
const JOB_THREAD_NAME: &str = "coffer-job";

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// `Coffer::backup`.
    Backup,
    /// `Coffer::restore`.
    Restore,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Accepted, not started yet.
    Queued,
    /// Running.
    Running,
    /// Finished successfully: see `result`.
    Succeeded,
    /// Finished with an error: see `error`.
    Failed,
}

impl State {
    /// Whether the job is over.
    pub fn is_final(self) -> bool {
        matches!(self, State::Succeeded | State::Failed)
    }
}

/// One artifact stream of a job.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArtifactProgress {
    /// Its file name.
    pub file: String,
    /// Bytes processed so far (uncompressed side).
    pub bytes: u64,
    /// Whether it is finished.
    pub done: bool,
    /// The library's summary once finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// What `GET /v1/admin/jobs/{id}` and the events show of a job.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// Backup or restore.
    pub operation: Operation,
    /// The backup restored (restore jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Who started it (the token's name).
    pub requested_by: String,
    /// Where it is.
    pub state: State,
    /// When it was accepted.
    pub created: DateTime<Utc>,
    /// When it started running.
    pub started: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished: Option<DateTime<Utc>>,
    /// The step running now.
    pub step: Option<String>,
    /// Per-artifact progress, by role.
    pub artifacts: BTreeMap<String, ArtifactProgress>,
    /// Completed steps, notes and warnings, oldest first (the newest 200).
    pub log: VecDeque<String>,
    /// The report of a succeeded job.
    pub result: Option<serde_json::Value>,
    /// The problem document of a failed job.
    pub error: Option<Problem>,
}

/// A job: its snapshot, the flag that cancels it, and the channel that wakes its watchers.
pub struct Job {
    view: Mutex<JobView>,
    cancel: CancelFlag,
    changed: watch::Sender<u64>,
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, JobView> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The job's id.
    pub fn id(&self) -> String {
        self.lock().id.clone()
    }

    /// A copy of the snapshot.
    pub fn view(&self) -> JobView {
        self.lock().clone()
    }

    /// Whether the server asked the job to stop (it is shutting down).
    pub fn cancelled(&self) -> bool {
        self.cancel.signal().is_some()
    }

    /// Wakes on every change of the snapshot.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn update(&self, change: impl FnOnce(&mut JobView)) {
        change(&mut self.lock());
        self.changed.send_modify(|v| *v += 1);
    }
}

fn push_line(log: &mut VecDeque<String>, line: String) {
    if log.len() == KEPT_LINES {
        log.pop_front();
    }
    log.push_back(line);
}

impl Progress for Job {
    fn event(&self, event: &Event<'_>) {
        match *event {
            Event::ArtifactStarted { role, file } => self.update(|v| {
                v.artifacts.insert(
                    role.as_str().into(),
                    ArtifactProgress {
                        file: file.into(),
                        ..ArtifactProgress::default()
                    },
                );
            }),
            Event::ArtifactAdvanced { role, bytes } => self.update(|v| {
                let a = v.artifacts.entry(role.as_str().into()).or_default();
                a.bytes = a.bytes.saturating_add(bytes);
            }),
            Event::ArtifactFinished { role, summary } => self.update(|v| {
                let a = v.artifacts.entry(role.as_str().into()).or_default();
                a.done = true;
                a.summary = Some(summary.into());
            }),
            Event::Step(text) => self.update(|v| v.step = Some(text.into())),
            Event::Done(text) => self.update(|v| push_line(&mut v.log, format!("done: {text}"))),
            Event::Note(text) => self.update(|v| push_line(&mut v.log, format!("note: {text}"))),
            Event::Transfer(text) => {
                self.update(|v| push_line(&mut v.log, format!("transfer: {text}")));
            }
            Event::Warning(w) => self.update(|v| push_line(&mut v.log, format!("warning: {w}"))),
            Event::Pruned(name) => {
                self.update(|v| push_line(&mut v.log, format!("pruned: {name}")))
            }
            _ => {}
        }
    }
}

/// The work of a job: runs on a thread of its own; its `Ok` becomes the job's `result`, its
/// `Err` the job's `error` (a library [`coffer_core::Error`] converts with `?`; the HTTP layer may
/// answer with its own problem, e.g. an upload past the size limit).
pub type Work = Box<dyn FnOnce(&RunContext<'_>) -> Result<serde_json::Value, Problem> + Send>;

#[derive(Default)]
struct Registry {
    jobs: VecDeque<Arc<Job>>,
    /// The running job and what resolves when its thread ends (its sender is dropped).
    running: Option<(Arc<Job>, oneshot::Receiver<()>)>,
}

/// The server's jobs.
#[derive(Default)]
pub struct Jobs {
    registry: Mutex<Registry>,
    /// Starts the job threads; without one they are started by the requesting thread.
    launcher: Option<JobLauncher>,
    closed: std::sync::atomic::AtomicBool,
    /// Counts this server's changes to the backup root (jobs ended, deletes): the key under
    /// which a listing is reused.
    root_changes: std::sync::atomic::AtomicU64,
}

impl Jobs {
    /// Jobs whose threads `launcher` starts, and whose async parts (remote transfers) run on
    /// its runtime, at the launcher's priority.
    pub fn with_launcher(launcher: JobLauncher) -> Jobs {
        Jobs {
            launcher: Some(launcher),
            ..Jobs::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many changes this server made to the backup root so far.
    pub fn root_changes(&self) -> u64 {
        self.root_changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records a change to the backup root (a job ended, a backup deleted).
    pub fn note_root_change(&self) {
        self.root_changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The job with this id, if still kept.
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.lock().jobs.iter().find(|j| j.lock().id == id).cloned()
    }

    /// The job running now, if any.
    pub fn running(&self) -> Option<Arc<Job>> {
        let registry = self.lock();
        let (job, _) = registry.running.as_ref()?;
        (!job.lock().state.is_final()).then(|| job.clone())
    }

    /// Starts `work` as a job, unless another job is running (409) or the server is
    /// shutting down (503).
    pub fn start(
        self: &Arc<Self>,
        operation: Operation,
        backup: Option<String>,
        requested_by: &str,
        work: Work,
    ) -> Result<Arc<Job>, Problem> {
        let mut registry = self.lock();
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "urn:coffer:problem:shutting_down",
                "The server is shutting down",
                "retry once it is back",
            ));
        }
        if let Some((job, _)) = &registry.running
            && !job.lock().state.is_final()
        {
            return Err(Problem::busy(&job.id()));
        }
        let job = Arc::new(Job {
            view: Mutex::new(JobView {
                id: new_id(),
                operation,
                backup,
                requested_by: requested_by.into(),
                state: State::Queued,
                created: Utc::now(),
                started: None,
                finished: None,
                step: None,
                artifacts: BTreeMap::new(),
                log: VecDeque::new(),
                result: None,
                error: None,
            }),
            cancel: CancelFlag::new(),
            changed: watch::channel(0).0,
        });
        let worker = job.clone();
        let jobs = self.clone();
        let (ended, handle) = oneshot::channel::<()>();
        // The remote part of a workflow runs on a runtime (a plain thread has none): the
        // launcher's, else the server's.
        let runtime = match &self.launcher {
            Some(launcher) => Some(launcher.runtime()),
            None => tokio::runtime::Handle::try_current().ok(),
        };
        let body: crate::launcher::Body = Box::new(move || {
            let _ended = ended;
            run(&worker, &jobs, runtime, work);
        });
        match &self.launcher {
            Some(launcher) => launcher.spawn(JOB_THREAD_NAME, body),
            None => std::thread::Builder::new()
                .name(JOB_THREAD_NAME.into())
                .spawn(body)
                .map(drop),
        }
        .map_err(|e| {
            Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "urn:coffer:problem:failed",
                "The job could not start",
                format!("the server cannot start a thread ({e}); retry later"),
            )
        })?;
        if registry.jobs.len() == KEPT_JOBS
            && let Some(pos) = registry.jobs.iter().position(|j| j.lock().state.is_final())
        {
            registry.jobs.remove(pos);
        }
        registry.jobs.push_back(job.clone());
        registry.running = Some((job.clone(), handle));
        Ok(job)
    }

    /// Refuses new jobs, asks the running one to stop (as SIGTERM would a CLI run: it
    /// cleans up, rolls back) and waits for it at most `limit`. `false` if it did not end.
    pub async fn shut_down(&self, signal: usize, limit: Duration) -> bool {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let running = self.lock().running.take();
        let Some((job, handle)) = running else {
            return true;
        };
        job.cancel.cancel(signal);
        tokio::time::timeout(limit, handle).await.is_ok()
    }
}

/// Runs `work` for `job`, recording its outcome; a panic is a failure, not a job running
/// forever.
fn run(job: &Job, jobs: &Jobs, runtime: Option<tokio::runtime::Handle>, work: Work) {
    job.update(|v| {
        v.state = State::Running;
        v.started = Some(Utc::now());
    });
    let mut ctx = RunContext::new(job).with_cancel(job.cancel.clone());
    if let Some(runtime) = runtime {
        ctx = ctx.with_runtime(runtime);
    }
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(&ctx)));
    // Before the job shows as ended: a client that sees it ended and lists gets a fresh scan.
    jobs.note_root_change();
    job.update(|v| {
        v.finished = Some(Utc::now());
        v.step = None;
        match outcome {
            Ok(Ok(result)) => {
                v.state = State::Succeeded;
                v.result = Some(result);
            }
            Ok(Err(problem)) => {
                v.state = State::Failed;
                v.error = Some(problem);
            }
            Err(_) => {
                v.state = State::Failed;
                v.error = Some(Problem::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "urn:coffer:problem:failed",
                    "The operation failed",
                    "the job stopped on an internal error (a bug): see the server's log",
                ));
            }
        }
    });
}

/// A job id: 16 hex digits, unguessable so ids leak nothing about other jobs.
fn new_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        // Unique is what matters; unguessable is a nicety.
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        bytes = nanos.to_le_bytes();
    }
    hex::encode(bytes)
}
