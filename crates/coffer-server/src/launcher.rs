//! The job launcher: starts every job's thread from a thread that keeps the process's
//! scheduling priority.
//!
//! `coffer serve` lowers the priority of its HTTP threads ([`crate::priority`]). A thread or
//! child process inherits its creator's niceness, and an unprivileged process cannot raise it
//! again: a job started from a request's thread would run, with its compression threads and
//! its `pg_dump` or `psql`, at the HTTP threads' lowered priority. So the launcher's thread is
//! made before the HTTP runtime, never lowered, and spawns each job's thread on request. The
//! async parts of a job (transfers to and from the remote, their hashing on the blocking pool)
//! run on a small runtime of the jobs' own, built on that thread too, so that they also keep
//! the process's priority.

use std::io;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;

/// Worker threads of the jobs' runtime: remote transfers are I/O-bound.
const JOB_IO_WORKERS: usize = 2;

/// Blocking threads of the jobs' runtime (hashing and writing chunks of a transfer).
const JOB_IO_BLOCKING_THREADS: usize = 4;

/// How long starting the launcher, or a job's thread through it, may take.
const LAUNCH_LIMIT: Duration = Duration::from_secs(30);

/// What a job's thread runs.
pub(crate) type Body = Box<dyn FnOnce() + Send>;

/// The body of one job, taken by whichever side gets to it first: the new thread (which then
/// runs it) or a requester that gave up waiting (so that a late thread runs nothing).
type Slot = Arc<Mutex<Option<Body>>>;

struct Request {
    name: String,
    slot: Slot,
    spawned: mpsc::SyncSender<io::Result<()>>,
}

/// Starts job threads at the process's priority; see the module's description.
#[derive(Debug)]
pub struct JobLauncher {
    requests: mpsc::Sender<Request>,
    runtime: Handle,
}

impl JobLauncher {
    /// Starts the launcher's thread (and the jobs' runtime) from the calling thread, whose
    /// priority every job will have: call it before lowering any thread's priority. The
    /// thread ends once the launcher is dropped.
    pub fn start() -> io::Result<JobLauncher> {
        let (requests, incoming) = mpsc::channel::<Request>();
        let (ready, started) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("coffer-launcher".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(JOB_IO_WORKERS)
                    .max_blocking_threads(JOB_IO_BLOCKING_THREADS)
                    .thread_name("coffer-job-io")
                    .enable_all()
                    .build();
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(runtime.handle().clone()));
                for request in incoming {
                    launch(request);
                }
                // The server has ended; so have its jobs, or it gave up waiting for them.
                runtime.shutdown_background();
            })?;
        let runtime = started
            .recv_timeout(LAUNCH_LIMIT)
            .map_err(|_| io::Error::other("the job launcher's thread did not start"))??;
        Ok(JobLauncher { requests, runtime })
    }

    /// The jobs' runtime, for the async parts of a job.
    pub(crate) fn runtime(&self) -> Handle {
        self.runtime.clone()
    }

    /// Runs `body` on a new thread named `name`, created by the launcher's thread.
    pub(crate) fn spawn(&self, name: &str, body: Body) -> io::Result<()> {
        let slot: Slot = Arc::new(Mutex::new(Some(body)));
        let (spawned, answer) = mpsc::sync_channel(1);
        let request = Request {
            name: name.into(),
            slot: slot.clone(),
            spawned,
        };
        if self.requests.send(request).is_err() {
            return Err(io::Error::other("the job launcher's thread has ended"));
        }
        match answer.recv_timeout(LAUNCH_LIMIT) {
            Ok(result) => result,
            Err(_) => {
                let unclaimed = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                if unclaimed.is_some() {
                    Err(io::Error::other(
                        "the job launcher did not start the job's thread in time",
                    ))
                } else {
                    // The thread started and took the job after all.
                    Ok(())
                }
            }
        }
    }
}

/// Spawns the thread of one request and answers with the outcome.
fn launch(request: Request) {
    let Request {
        name,
        slot,
        spawned,
    } = request;
    let result = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let body = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(body) = body {
                body();
            }
        })
        .map(drop);
    let _ = spawned.send(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn niceness() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
    }

    #[test]
    fn jobs_keep_the_launchers_priority_when_asked_from_a_lowered_thread() {
        let base = niceness();
        let launcher = Arc::new(JobLauncher::start().unwrap());
        let (tx, rx) = mpsc::channel();
        let asking = launcher.clone();
        std::thread::spawn(move || {
            crate::priority::set_current_thread(crate::priority::lowered(base)).unwrap();
            let lowered = niceness();
            let runtime = asking.runtime();
            asking
                .spawn(
                    "coffer-job",
                    Box::new(move || {
                        let name = std::thread::current().name().map(String::from);
                        // The jobs' runtime's threads keep it too.
                        let io = runtime.block_on(async {
                            tokio::task::spawn_blocking(niceness).await.unwrap()
                        });
                        let _ = tx.send((lowered, niceness(), io, name));
                    }),
                )
                .unwrap();
        })
        .join()
        .unwrap();
        let (lowered, job, io, name) = rx.recv_timeout(LAUNCH_LIMIT).unwrap();
        assert_eq!(lowered, crate::priority::lowered(base));
        assert_eq!((job, io), (base, base));
        assert_eq!(name.as_deref(), Some("coffer-job"));
    }
}
