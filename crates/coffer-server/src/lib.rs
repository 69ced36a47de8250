//! # coffer-server
//!
//! The HTTP admin API of `coffer serve`, on [`coffer_core`]'s public API only: each route
//! maps a request to one library call and its result (or [`coffer_core::Error`]) to a
//! response, with no backup or restore logic of its own. This is also the proof that the
//! library embeds in an async program: its blocking operations run on tokio's blocking pool
//! with a [`coffer_core::RunContext`] whose progress feeds the job's event stream and whose
//! cancel flag the server's shutdown sets.
//!
//! Routes (JSON; every error is an RFC 9457 `application/problem+json` document, see
//! [`problem`]):
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /v1/admin/backup/list` | viewer | the backups (as `coffer list --json`), the last attempt, the running job |
//! | `POST /v1/admin/backup/trigger` | admin | `{kind?, label?}` → 202, the job, `Location`; 409 while a job runs |
//! | `POST /v1/admin/backup/{name}/restore` | admin | needs `X-Confirm-Restore: yes` (else 412); → 202, the job |
//! | `POST /v1/admin/backup/restore` | admin | the body (a bundle or a legacy `.tar.gz`, streamed, at most `server.max_upload_bytes`, else 413) restored; needs `X-Confirm-Restore: yes`; → 202, the job |
//! | `GET /v1/admin/backup/{name}/download` | viewer | the backup as one bundle (tar), streamed |
//! | `DELETE /v1/admin/backup/{name}` | admin | deletes it; refuses the newest complete one (422) |
//! | `GET /v1/admin/jobs/{id}` | viewer | the job: state, timings, progress, report or problem |
//! | `GET /v1/admin/jobs/{id}/events` | viewer | Server-Sent Events: `progress` snapshots, then `outcome` |
//! | `GET /v1/admin/health` | viewer | `Coffer::health`: config, root writable, database reachable, last backup age; 200 or 503 |
//! | `GET /metrics` | viewer | the Prometheus text of the metrics file |
//! | `GET /admin/backup` (and `.js`, `.css`) | none | the admin page ([`page`]); its API calls carry the token |
//!
//! Authentication: `Authorization: Bearer <token>`, checked against the hashes in the
//! tokens file ([`tokens`]); missing or unknown → 401, a viewer on an admin route → 403.

#![deny(missing_docs)]

mod download;
pub mod jobs;
pub mod launcher;
pub mod page;
pub mod priority;
pub mod problem;
mod routes;
pub mod tokens;
mod upload;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use coffer_core::shared_read::SharedRead;
use coffer_core::{Coffer, Error, ErrorKind, Thresholds};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use launcher::JobLauncher;
pub use tokens::{Role, Tokens};

/// Every route of the HTTP API as (method, path), e.g. `("GET", "/v1/admin/jobs/{id}")`:
/// the router is built from this list, and docs/openapi.yaml is checked against it.
pub fn api_routes() -> &'static [(&'static str, &'static str)] {
    routes::API_ROUTES
}

/// How long a stopping server waits for its running job to cancel and clean up (a restore
/// rolls back) before it exits anyway.
pub const JOB_STOP_LIMIT: Duration = Duration::from_secs(300);

/// How long a stopping server waits for open requests once its job ended.
const REQUEST_STOP_LIMIT: Duration = Duration::from_secs(10);

/// The thresholds `health` and `list` judge the root by: those of `coffer status`.
pub const DEFAULT_THRESHOLDS: Thresholds = Thresholds {
    max_age: Duration::from_secs(26 * 3600),
    max_failures: 3,
};

fn refused(text: String) -> Error {
    Error::new(ErrorKind::InvalidConfig, std::io::Error::other(text))
}

/// Refuses a non-loopback address unless plain HTTP is allowed: the server has no TLS of
/// its own, so tokens would cross the network in clear.
pub fn check_listen(addr: SocketAddr, allow_plain_http: bool) -> Result<(), Error> {
    if addr.ip().is_loopback() || allow_plain_http {
        return Ok(());
    }
    Err(refused(format!(
        "refusing to listen on {addr}: the server speaks plain HTTP, so bearer tokens would cross the network unencrypted; listen on a loopback address behind a TLS-terminating reverse proxy, or set server.allow_plain_http = true if that proxy reaches it over a trusted network"
    )))
}

/// A server ready to run: the library handle, the accepted tokens and the listener.
pub struct Server {
    coffer: Arc<Coffer>,
    tokens: Arc<Tokens>,
    listener: TcpListener,
    thresholds: Thresholds,
    launcher: Option<JobLauncher>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("coffer", &self.coffer)
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `coffer` on `listener`. Refuses an empty token set: every request
    /// would be refused.
    pub fn new(coffer: Coffer, tokens: Tokens, listener: TcpListener) -> Result<Server, Error> {
        if tokens.is_empty() {
            return Err(refused(
                "no bearer token is configured: add one to server.tokens_file first".into(),
            ));
        }
        Ok(Server {
            coffer: Arc::new(coffer),
            tokens: Arc::new(tokens),
            listener,
            thresholds: DEFAULT_THRESHOLDS,
            launcher: None,
        })
    }

    /// Starts the jobs' threads through `launcher`, so that they keep its thread's
    /// priority whatever the priority of the thread that handles the request (see
    /// [`launcher`]); without one, the handling thread starts them.
    pub fn with_job_launcher(mut self, launcher: JobLauncher) -> Server {
        self.launcher = Some(launcher);
        self
    }

    /// The address it listens on (the port chosen when it was 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` resolves (e.g. [`stop_signal`]), then shuts down cleanly: no new
    /// jobs, the running one cancelled with `signal` (a backup leaves nothing partial, a
    /// restore rolls back) and awaited, event streams ended, open requests finished.
    pub async fn run(self, stop: impl Future<Output = usize> + Send) -> Result<(), Error> {
        let jobs = Arc::new(match self.launcher {
            Some(launcher) => jobs::Jobs::with_launcher(launcher),
            None => jobs::Jobs::default(),
        });
        let (stopping_tx, stopping) = watch::channel(false);
        let app = routes::router(routes::AppState {
            coffer: self.coffer,
            tokens: self.tokens,
            jobs: jobs.clone(),
            stopping: stopping.clone(),
            thresholds: self.thresholds,
            health_read: Arc::new(SharedRead::new(routes::HEALTH_REUSED_FOR)),
            list_read: Arc::new(SharedRead::new(routes::LIST_REUSED_FOR)),
        });
        let server = tokio::spawn(serve_http(self.listener, app, stopping.clone()));
        let signal = stop.await;
        let job_ended = jobs.shut_down(signal, JOB_STOP_LIMIT).await;
        let _ = stopping_tx.send(true);
        let served = tokio::time::timeout(REQUEST_STOP_LIMIT, server).await;
        if !job_ended {
            return Err(Error::new(
                ErrorKind::Failed,
                std::io::Error::other(format!(
                    "the running job did not stop within {}s of the signal; check the backup root and the run log",
                    JOB_STOP_LIMIT.as_secs()
                )),
            ));
        }
        match served {
            Ok(Ok(Ok(()))) | Err(_) => Ok(()),
            Ok(Ok(Err(e))) => Err(Error::new(ErrorKind::Failed, e)),
            Ok(Err(e)) => Err(Error::new(ErrorKind::Failed, e)),
        }
    }
}

/// How long a client may take to send a request's head, and an idle connection may wait
/// for its next request, before the connection is closed.
const HEAD_READ_LIMIT: Duration = Duration::from_secs(30);

/// Serves HTTP/1 connections on `listener` until `stopping` becomes `true`, then lets the
/// open ones finish. Not `axum::serve`: it sets no timer, so a client that never completes
/// a request head would hold its connection (and a file descriptor) for ever.
async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    mut stopping: watch::Receiver<bool>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_READ_LIMIT);
    let stop = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: retry once some are released.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(connection);
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A future that resolves on SIGTERM or SIGINT with the signal's number. The handlers are
/// installed now (call it inside the runtime, before announcing the server), so a signal
/// that comes early is not lost.
pub fn stop_signal() -> std::io::Result<impl Future<Output = usize> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => 15,
            _ = int.recv() => 2,
        }
    })
}
