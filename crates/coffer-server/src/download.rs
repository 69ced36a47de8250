//! `GET /v1/admin/backup/{name}/download`: `Coffer::export` streamed as the response body.
//!
//! The export runs on the blocking pool and hands 256 KiB chunks to the response through a
//! bounded channel (a slow client slows the export; memory stays flat). The response starts
//! only once the export announced the bundle's exact length (every file open, nothing
//! written yet), which becomes `Content-Length`; a backup that is unknown or incomplete
//! (refused before that) gets its problem document. A backup found damaged mid-stream stops
//! the bundle before its end marker and the connection is aborted: no client takes a
//! truncated body for a bundle (and `coffer import` refuses one without the marker).

use std::io::{self, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use coffer_core::{BackupRef, BundleOutput, Coffer, RunContext};
use tokio::sync::mpsc;

use crate::problem::Problem;

/// Bytes handed to the response at a time.
const CHUNK: usize = 256 << 10;

/// Chunks in flight between the export and the client.
const IN_FLIGHT: usize = 8;

enum Msg {
    /// The bundle's exact length, announced before its first byte.
    Length(u64),
    Data(Bytes),
    Failed(Problem),
}

/// A `Write` that sends full chunks down the channel; fails once the client is gone, which
/// stops the export.
struct ChannelWriter {
    tx: mpsc::Sender<Msg>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Msg::Data(data))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The bundle of backup `name` as a streamed response.
pub(crate) async fn bundle(coffer: Arc<Coffer>, name: String) -> Result<Response, Problem> {
    let (tx, mut rx) = mpsc::channel(IN_FLIGHT);
    let backup = BackupRef::Named(name.clone());
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let ctx = RunContext::default();
        let length_tx = tx.clone();
        let mut announce = |length| {
            let _ = length_tx.blocking_send(Msg::Length(length));
        };
        let result = coffer
            .export_announcing(&backup, BundleOutput::Stream(&mut out), &mut announce, &ctx)
            .and_then(|report| {
                out.flush()
                    .map(|()| report)
                    .map_err(|e| coffer_core::Error::new(coffer_core::ErrorKind::Failed, e))
            });
        if let Err(e) = result {
            let _ = tx.blocking_send(Msg::Failed(Problem::from_error(&e)));
        }
    });
    let length = match rx.recv().await {
        Some(Msg::Length(length)) => length,
        Some(Msg::Failed(problem)) => return Err(problem),
        Some(Msg::Data(_)) | None => {
            return Err(Problem::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "urn:coffer:problem:failed",
                "The operation failed",
                format!("the export of {name:?} stopped before it started (a bug)"),
            ));
        }
    };
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await? {
            Msg::Data(data) => Some((Ok(data), rx)),
            Msg::Failed(p) => Some((Err(io::Error::other(p.detail.unwrap_or_default())), rx)),
            Msg::Length(_) => Some((Err(io::Error::other("the length came twice (a bug)")), rx)),
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    // Exact (see `coffer_core::bundle_len`): a body cut short by damage found
    // mid-stream is a broken transfer to every client, never a shorter file.
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    // The name is checked to be letters, digits, `.`, `_`, `-`: safe inside the quotes.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.tar\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
