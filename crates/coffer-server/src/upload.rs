//! `POST /v1/admin/backup/restore`: an uploaded bundle (or a shell-script-era `.tar.gz`)
//! restored as a job, as `coffer restore --from-file -` restores one from standard input.
//!
//! The body is never held in memory. The handler pumps it frame by frame through a bounded
//! channel into the job, whose blocking restore reads it as a [`Read`]
//! ([`Coffer::prepare_restore_from_bundle`](coffer_core::Coffer::prepare_restore_from_bundle)
//! with [`BundleInput::Stream`]): a slow import slows the upload, a fast client waits.
//! A hand-written bridge rather than `tokio_util`'s `StreamReader` + `SyncIoBridge`, because
//! the pump must also count bytes against `server.max_upload_bytes`, notice a stalled client
//! and keep draining the body after the import stopped reading (so the client gets the
//! answer instead of a reset connection).
//!
//! The import reads its input to the end before pre-flight starts, so the response comes
//! once the body is read: 202 with the job (which then restores, or failed already), 413
//! when the body passed the limit (the job fails with the same problem; the import's
//! staging directory is removed, nothing is left in the root). A `Content-Length` over the
//! limit is refused before anything is read or started.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use coffer_core::{BundleInput, RestoreOptions};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::jobs::Operation;
use crate::problem::Problem;
use crate::routes::{Admin, AppState, accepted, require_confirmation, require_root_free};

/// Frames in flight between the request and the import.
const IN_FLIGHT: usize = 8;

/// How long the client may send less than [`MIN_PROGRESS`] before the upload counts as
/// stalled: a trickle of a byte now and then must not hold the root's lock for ever.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// The least an upload must deliver in every [`IDLE_LIMIT`] (64 KiB a minute is far below
/// any real link, far above a trickle).
const MIN_PROGRESS: u64 = 64 << 10;

/// How often a waiting pump checks whether the server stops.
const TICK: Duration = Duration::from_secs(1);

/// Bytes read and discarded after the import stopped reading (refused, or past the limit),
/// so that the client can send its last bytes and read the answer; beyond this the
/// connection is closed instead.
const DRAIN_LIMIT: u64 = 16 << 20;

/// What the pump hands the import.
enum Chunk {
    Data(Bytes),
    /// The body ended properly.
    End,
    /// The body must not be used: too large, stalled, broken off.
    Failed(io::Error),
}

/// The request body as the blocking import reads it. A channel closed without
/// [`Chunk::End`] (the request was dropped) is an error, never a short but clean end.
struct BodyReader {
    rx: mpsc::Receiver<Chunk>,
    current: Bytes,
    ended: bool,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(data)) => self.current = data,
                Some(Chunk::End) => self.ended = true,
                Some(Chunk::Failed(e)) => return Err(e),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the upload was cut off (the client went away)",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// How the body ended, from the request's side.
#[derive(Debug, PartialEq, Eq)]
enum Pumped {
    /// Read to its end (the import may still have refused it).
    Complete,
    /// Larger than the limit.
    TooLarge,
    /// Stalled, broken off, or the server stops.
    Failed(String),
    /// Still coming after [`DRAIN_LIMIT`] more bytes than the import wanted.
    Abandoned,
}

/// Forwards `body` to the import until its end, the limit or a failure; then drains what
/// the client still sends, up to [`DRAIN_LIMIT`]. Sets `too_large` before the import
/// learns that the body passed the limit.
async fn pump(
    body: Body,
    tx: mpsc::Sender<Chunk>,
    limit: u64,
    too_large: &AtomicBool,
    cancelled: impl Fn() -> bool,
) -> Pumped {
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    let mut drained: u64 = 0;
    // `Some` once the import no longer takes data: why, for the answer.
    let mut stopped: Option<Pumped> = None;
    // The current window: since when, and how much arrived in it.
    let mut window_start = tokio::time::Instant::now();
    let mut window_bytes: u64 = 0;
    loop {
        let stalled = window_start.elapsed() >= IDLE_LIMIT;
        let next = tokio::select! {
            next = stream.next(), if !stalled => next,
            () = tokio::time::sleep(if stalled { Duration::ZERO } else { TICK }) => {
                let why = if cancelled() {
                    "the server is shutting down".to_string()
                } else if stalled {
                    format!(
                        "the client sent less than {} KiB in {}s",
                        MIN_PROGRESS >> 10,
                        IDLE_LIMIT.as_secs()
                    )
                } else {
                    continue;
                };
                if stopped.is_none() {
                    let _ = tx.send(Chunk::Failed(io::Error::other(why.clone()))).await;
                }
                return stopped.unwrap_or(Pumped::Failed(format!("the upload stopped: {why}")));
            }
        };
        let data = match next {
            None => {
                if stopped.is_none() {
                    let _ = tx.send(Chunk::End).await;
                }
                return stopped.unwrap_or(Pumped::Complete);
            }
            Some(Err(e)) => {
                let why = format!("the upload broke off: {e}");
                if stopped.is_none() {
                    let _ = tx.send(Chunk::Failed(io::Error::other(why.clone()))).await;
                }
                return stopped.unwrap_or(Pumped::Failed(why));
            }
            Some(Ok(data)) => data,
        };
        window_bytes = window_bytes.saturating_add(data.len() as u64);
        if window_bytes >= MIN_PROGRESS {
            window_start = tokio::time::Instant::now();
            window_bytes = 0;
        }
        total = total.saturating_add(data.len() as u64);
        if stopped.is_none() && total > limit {
            too_large.store(true, Ordering::SeqCst);
            let _ = tx
                .send(Chunk::Failed(io::Error::other(format!(
                    "the upload is larger than server.max_upload_bytes ({limit} bytes)"
                ))))
                .await;
            stopped = Some(Pumped::TooLarge);
        }
        if stopped.is_none() && tx.send(Chunk::Data(data.clone())).await.is_err() {
            // The import stopped reading: it refused the bundle (the job says why).
            stopped = Some(Pumped::Complete);
        }
        if stopped.is_some() {
            drained = drained.saturating_add(data.len() as u64);
            if drained > DRAIN_LIMIT {
                return match stopped {
                    Some(Pumped::TooLarge) => Pumped::TooLarge,
                    _ => Pumped::Abandoned,
                };
            }
        }
    }
}

/// The `Content-Length` the client announced, if any.
fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `POST /v1/admin/backup/restore`.
pub(crate) async fn restore(
    State(state): State<AppState>,
    Admin(who): Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    require_confirmation(&headers)?;
    let limit = state.coffer.config().server.max_upload_bytes.0;
    if announced_length(&headers).is_some_and(|len| len > limit) {
        return Err(Problem::too_large(limit));
    }
    require_root_free(&state)?;
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let too_large = Arc::new(AtomicBool::new(false));
    let seen_too_large = too_large.clone();
    let coffer = state.coffer.clone();
    let job = state.jobs.start(
        Operation::Restore,
        None,
        &who.name,
        Box::new(move |ctx| {
            let mut body = BodyReader {
                rx,
                current: Bytes::new(),
                ended: false,
            };
            let result = coffer
                .prepare_restore_from_bundle(
                    BundleInput::Stream(&mut body),
                    &RestoreOptions::default(),
                    ctx,
                )
                .and_then(|prepared| prepared.execute(ctx));
            match result {
                Ok(outcome) => Ok(serde_json::json!({
                    "plan": outcome.plan,
                    "report": outcome.report,
                    "warnings": outcome.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })),
                Err(_) if seen_too_large.load(Ordering::SeqCst) => Err(Problem::too_large(limit)),
                Err(e) => Err(e.into()),
            }
        }),
    )?;
    let pumped = pump(body, tx, limit, &too_large, || job.cancelled()).await;
    let complete = pumped == Pumped::Complete;
    let mut response = match pumped {
        Pumped::Complete | Pumped::Abandoned => accepted(job.view()),
        Pumped::TooLarge => Problem::too_large(limit).into_response(),
        Pumped::Failed(why) => Problem::bad_request(why).into_response(),
    };
    if !response.status().is_success() {
        // The job exists and fails with the same problem: say where.
        if let Ok(v) = HeaderValue::from_str(&format!("/v1/admin/jobs/{}", job.id())) {
            response.headers_mut().insert(header::LOCATION, v);
        }
    }
    if !complete {
        // The rest of the body was not read: the connection cannot carry another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pumps a body that yields `chunk` bytes every `every` until `count` chunks (or for
    /// ever), on tokio's paused clock; the import side takes everything.
    async fn pumped(chunk: usize, every: Duration, count: Option<usize>) -> Pumped {
        let body = Body::from_stream(futures::stream::unfold(0usize, move |sent| async move {
            if count.is_some_and(|c| sent >= c) {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok::<_, io::Error>(Bytes::from(vec![b'x'; chunk])), sent + 1))
        }));
        let (tx, mut rx) = mpsc::channel(IN_FLIGHT);
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        pump(body, tx, u64::MAX, &AtomicBool::new(false), || false).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_a_stall_and_a_slow_but_real_upload_is_not() {
        // A byte every 30 s would hold the root's lock for ever: it fails within a window.
        let started = tokio::time::Instant::now();
        match pumped(1, Duration::from_secs(30), None).await {
            Pumped::Failed(why) => assert!(why.contains("less than 64 KiB in 60s"), "{why}"),
            other => panic!("a trickle was accepted: {other:?}"),
        }
        assert!(started.elapsed() <= IDLE_LIMIT + 2 * TICK);
        // Nothing at all fails the same way.
        assert!(matches!(
            pumped(1, Duration::from_secs(3600), None).await,
            Pumped::Failed(_)
        ));
        // 64 KiB every 50 s for ten minutes is slow, but an upload: it completes.
        assert_eq!(
            pumped(64 << 10, Duration::from_secs(50), Some(12)).await,
            Pumped::Complete
        );
    }

    fn reader(chunks: Vec<Chunk>) -> BodyReader {
        let (tx, rx) = mpsc::channel(chunks.len().max(1));
        for c in chunks {
            tx.try_send(c).ok().unwrap();
        }
        BodyReader {
            rx,
            current: Bytes::new(),
            ended: false,
        }
    }

    #[test]
    fn only_an_explicit_end_is_the_end_of_the_body() {
        let data = || Chunk::Data(Bytes::from_static(b"abc"));
        let mut out = Vec::new();
        reader(vec![data(), data(), Chunk::End])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"abcabc");
        // The request went away: an error, never a short but clean body.
        let err = reader(vec![data()])
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // Too large, stalled: the pump's error is the reader's.
        let failed = Chunk::Failed(io::Error::other("too large"));
        let err = reader(vec![data(), failed, Chunk::End])
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.to_string(), "too large");
    }

    #[test]
    fn content_length_is_read_only_when_it_is_a_number() {
        let mut headers = HeaderMap::new();
        assert_eq!(announced_length(&headers), None);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12345"));
        assert_eq!(announced_length(&headers), Some(12345));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("-1"));
        assert_eq!(announced_length(&headers), None);
    }
}
