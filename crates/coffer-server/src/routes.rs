//! The routes and their handlers: request in, one library call (on the blocking pool), the
//! result or its problem document out.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use axum::{Json, Router};
use coffer_core::shared_read::SharedRead;
use coffer_core::{BackupKind, BackupOptions, BackupRef, Coffer, RestoreOptions};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::jobs::{JobView, Jobs, Operation};
use crate::problem::Problem;
use crate::tokens::{Caller, Role, Tokens};
use crate::upload::restore as upload_restore;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) coffer: Arc<Coffer>,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) jobs: Arc<Jobs>,
    /// Becomes `true` when the server stops: event streams end.
    pub(crate) stopping: watch::Receiver<bool>,
    pub(crate) thresholds: coffer_core::Thresholds,
    /// The health report, shared by concurrent requests and reused for [`HEALTH_REUSED_FOR`].
    pub(crate) health_read: Arc<SharedRead<coffer_core::HealthReport>>,
    /// The listing, shared and reused for [`LIST_REUSED_FOR`] unless the root changed since.
    pub(crate) list_read: Arc<SharedRead<Listed>>,
}

/// How long a health report (one database ping, one root check) is reused; documented in
/// docs/openapi.yaml and README.
pub(crate) const HEALTH_REUSED_FOR: Duration = Duration::from_secs(2);

/// How long a listing (one root scan, one run-log read) is reused while neither this server
/// nor anything else changed the root or the run log since (see [`list_key`]); documented in
/// docs/openapi.yaml and README.
pub(crate) const LIST_REUSED_FOR: Duration = Duration::from_secs(1);

/// The backups and the run-log status a listing shows.
pub(crate) struct Listed {
    backups: Vec<coffer_core::ListedBackup>,
    last_attempt: Option<coffer_core::RunRecord>,
}

/// Declares the API's routes once: [`API_ROUTES`] (what docs/openapi.yaml is checked
/// against) and the router built from the same lines, so the two cannot drift apart.
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:ident,)*) => {
        /// Every route of the API as (method, path), paths in axum's (and OpenAPI's)
        /// `{param}` syntax.
        pub const API_ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn api_router() -> Router<AppState> {
            Router::new()$(.route($path, on(MethodFilter::$method, $handler)))*
        }
    };
}

api_routes! {
    GET "/v1/admin/backup/list" => list,
    POST "/v1/admin/backup/trigger" => trigger,
    POST "/v1/admin/backup/restore" => upload_restore,
    POST "/v1/admin/backup/{name}/restore" => restore,
    GET "/v1/admin/backup/{name}/download" => download,
    DELETE "/v1/admin/backup/{name}" => delete,
    GET "/v1/admin/jobs/{id}" => job,
    GET "/v1/admin/jobs/{id}/events" => job_events,
    GET "/v1/admin/health" => health,
    GET "/metrics" => metrics,
}

/// The routes of the admin API.
pub(crate) fn router(state: AppState) -> Router {
    api_router()
        // The admin page (no token: it holds no data; its API calls carry one).
        .merge(crate::page::routes())
        .fallback(|| async { Problem::not_found("no such route: see /v1/admin/…") })
        // axum's own 405 has no body; the `Allow` header is kept.
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .with_state(state)
}

/// The `{name}` or `{id}` of the URL, percent-decoded. One that is not UTF-8 is a 400
/// problem document (axum's own rejection is plain text).
pub(crate) struct Segment(String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(segment)| Segment(segment))
            .map_err(|e| Problem::bad_request(e.body_text()))
    }
}

/// A caller with any valid token.
pub(crate) struct Viewer(pub(crate) Caller);

/// A caller whose token has the admin role.
pub(crate) struct Admin(pub(crate) Caller);

fn caller(parts: &Parts, tokens: &Tokens) -> Result<Caller, Problem> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(Problem::unauthorized)?;
    let (scheme, token) = value.split_once(' ').ok_or_else(Problem::unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Problem::unauthorized());
    }
    tokens
        .authenticate(token.trim())
        .ok_or_else(Problem::unauthorized)
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        caller(parts, &state.tokens).map(Viewer)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let who = caller(parts, &state.tokens)?;
        if who.role != Role::Admin {
            return Err(Problem::forbidden("admin"));
        }
        Ok(Admin(who))
    }
}

/// Runs a blocking library call off the async workers.
async fn blocking<T: Send + 'static>(
    coffer: &Arc<Coffer>,
    call: impl FnOnce(&Coffer) -> Result<T, coffer_core::Error> + Send + 'static,
) -> Result<T, Problem> {
    let coffer = coffer.clone();
    tokio::task::spawn_blocking(move || call(&coffer))
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "urn:coffer:problem:failed",
                "The operation failed",
                "the request stopped on an internal error (a bug)",
            )
        })?
        .map_err(Problem::from)
}

/// `GET /v1/admin/backup/list`.
#[derive(Serialize)]
struct ListResponse<'a> {
    /// The same objects as `coffer list --json`, newest first.
    backups: &'a [coffer_core::ListedBackup],
    /// The last backup attempt in the run log, and its outcome.
    last_attempt: Option<&'a coffer_core::RunRecord>,
    /// The job running now, if any.
    running_job: Option<JobView>,
    /// The largest upload `POST /v1/admin/backup/restore` accepts (`server.max_upload_bytes`).
    max_upload_bytes: u64,
    /// The caller's role, so that a client shows only what the token may do.
    role: Role,
}

/// What a kept listing is valid for: this server's changes to the root, and the root's and
/// the run log's stamps (so a backup by the command line or the timer shows at once).
fn list_key(state: &AppState) -> u64 {
    state
        .jobs
        .root_changes()
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ state.coffer.root_generation()
}

async fn list(State(state): State<AppState>, Viewer(who): Viewer) -> Result<Response, Problem> {
    let thresholds = state.thresholds;
    let listed = state
        .list_read
        .get(list_key(&state), || {
            blocking(&state.coffer, move |c| {
                let status = c.status(&thresholds)?;
                // A fresh install has no root yet: that is an empty list, not an error.
                let backups = if status.status.root_missing {
                    Vec::new()
                } else {
                    c.list()?.backups
                };
                Ok(Listed {
                    backups,
                    last_attempt: status.status.last_attempt,
                })
            })
        })
        .await?;
    Ok(Json(ListResponse {
        backups: &listed.backups,
        last_attempt: listed.last_attempt.as_ref(),
        running_job: state.jobs.running().map(|j| j.view()),
        max_upload_bytes: state.coffer.config().server.max_upload_bytes.0,
        role: who.role,
    })
    .into_response())
}

/// The body of `POST /v1/admin/backup/trigger` (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TriggerBody {
    kind: Option<String>,
    label: Option<String>,
}

/// Refuses at once (409) while a job of this server or another run (a command-line
/// backup, prune, import, restore…) holds the backup root, rather than start a job that
/// would fail on the lock later.
pub(crate) fn require_root_free(state: &AppState) -> Result<(), Problem> {
    if let Some(job) = state.jobs.running() {
        return Err(Problem::busy(&job.id()));
    }
    state.coffer.check_root_free().map_err(Problem::from)
}

/// The backup `name` of the URL, which must be one in the root: 400 for what is not a
/// plain name, 404 for a name that is not a backup there. Never resolved as a path (a
/// flat dump's file name included).
fn existing_backup(state: &AppState, name: &str) -> Result<String, Problem> {
    let name = backup_name(name)?;
    if state.coffer.has_backup(&name) {
        Ok(name)
    } else {
        Err(Problem::not_found(format!(
            "there is no backup named {name:?} in the backup root: see /v1/admin/backup/list"
        )))
    }
}

/// The longest label accepted.
const MAX_LABEL_CHARS: usize = 200;

fn parse_trigger(body: &[u8]) -> Result<(BackupKind, Option<String>), Problem> {
    let body: TriggerBody = if body.iter().all(u8::is_ascii_whitespace) {
        TriggerBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            Problem::bad_request(format!("the body is not {{\"kind\"?, \"label\"?}}: {e}"))
        })?
    };
    let kind = match body.kind.as_deref() {
        None | Some("manual") => BackupKind::Manual,
        Some("auto") => BackupKind::Auto,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "kind {other:?} is not \"manual\" or \"auto\""
            )));
        }
    };
    if let Some(label) = &body.label
        && (label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control))
    {
        return Err(Problem::bad_request(format!(
            "the label must be at most {MAX_LABEL_CHARS} characters without control characters"
        )));
    }
    Ok((kind, body.label))
}

/// 202 with the job and its `Location`.
pub(crate) fn accepted(view: JobView) -> Response {
    let location = format!("/v1/admin/jobs/{}", view.id);
    let mut response = (StatusCode::ACCEPTED, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

async fn trigger(
    State(state): State<AppState>,
    Admin(who): Admin,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Problem> {
    // axum's own rejection (past its 2 MiB limit, a body cut off) is plain text.
    let body = body.map_err(|e| {
        let (kind, title) = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ("urn:coffer:problem:too_large", "The upload is too large")
        } else {
            ("urn:coffer:problem:bad_request", "The request is malformed")
        };
        Problem::new(e.status(), kind, title, e.body_text())
    })?;
    let (kind, label) = parse_trigger(&body)?;
    require_root_free(&state)?;
    let coffer = state.coffer.clone();
    let job = state.jobs.start(
        Operation::Backup,
        None,
        &who.name,
        Box::new(move |ctx| {
            let options = BackupOptions::default().kind(kind).label(label);
            let outcome = coffer.backup(&options, ctx)?;
            Ok(serde_json::json!({
                "report": outcome.report,
                "warnings": outcome.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }))
        }),
    )?;
    Ok(accepted(job.view()))
}

/// A backup's name as the URL gives it: a plain directory name, never a path.
fn backup_name(name: &str) -> Result<String, Problem> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(Problem::bad_request(format!(
            "{name:?} is not a backup name (letters, digits, `.`, `_`, `-`; see /v1/admin/backup/list)"
        )))
    }
}

/// The 412 gate of both restores: `X-Confirm-Restore: yes`, exactly.
pub(crate) fn require_confirmation(headers: &HeaderMap) -> Result<(), Problem> {
    let confirmed = headers
        .get("x-confirm-restore")
        .is_some_and(|v| v.as_bytes() == b"yes");
    if confirmed {
        Ok(())
    } else {
        Err(Problem::restore_confirmation_required())
    }
}

async fn restore(
    State(state): State<AppState>,
    Admin(who): Admin,
    Segment(name): Segment,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require_confirmation(&headers)?;
    require_root_free(&state)?;
    let name = existing_backup(&state, &name)?;
    let coffer = state.coffer.clone();
    let backup = BackupRef::Named(name.clone());
    let job = state.jobs.start(
        Operation::Restore,
        Some(name),
        &who.name,
        Box::new(move |ctx| {
            let outcome = coffer.restore(&backup, &RestoreOptions::default(), ctx)?;
            Ok(serde_json::json!({
                "plan": outcome.plan,
                "report": outcome.report,
                "warnings": outcome.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }))
        }),
    )?;
    Ok(accepted(job.view()))
}

async fn download(
    State(state): State<AppState>,
    _: Viewer,
    Segment(name): Segment,
) -> Result<Response, Problem> {
    let name = existing_backup(&state, &name)?;
    crate::download::bundle(state.coffer.clone(), name).await
}

/// `DELETE /v1/admin/backup/{name}`: refused while a job or another run holds the root.
async fn delete(
    State(state): State<AppState>,
    _: Admin,
    Segment(name): Segment,
) -> Result<Response, Problem> {
    require_root_free(&state)?;
    let name = existing_backup(&state, &name)?;
    let report = blocking(&state.coffer, move |c| {
        c.delete(&name, &coffer_core::RunContext::default())
    })
    .await;
    state.jobs.note_root_change();
    let report = report?;
    Ok(Json(serde_json::json!({
        "deleted": report.deleted,
        "freed_bytes": report.freed_bytes,
    }))
    .into_response())
}

async fn job(
    State(state): State<AppState>,
    _: Viewer,
    Segment(id): Segment,
) -> Result<Json<JobView>, Problem> {
    let job = state.jobs.get(&id).ok_or_else(|| {
        Problem::not_found(format!(
            "no job {id:?} (finished jobs are kept for a while only)"
        ))
    })?;
    Ok(Json(job.view()))
}

/// Server-Sent Events of a job: `progress` with the current snapshot at once and on every
/// change, then `outcome` with the final snapshot, then the stream ends. A reconnecting
/// client simply gets the current snapshot.
async fn job_events(
    State(state): State<AppState>,
    _: Viewer,
    Segment(id): Segment,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Problem> {
    let job = state
        .jobs
        .get(&id)
        .ok_or_else(|| Problem::not_found(format!("no job {id:?}")))?;
    let changes = job.subscribe();
    let stopping = state.stopping.clone();
    let stream = futures::stream::unfold(
        (job, changes, stopping, Phase::First),
        |(job, mut changes, mut stopping, phase)| async move {
            let mut stop = false;
            match phase {
                Phase::Done => return None,
                Phase::First => {}
                Phase::Next => {
                    tokio::select! {
                        _ = changes.changed() => {}
                        _ = stopping.wait_for(|s| *s) => stop = true,
                    }
                }
            }
            changes.borrow_and_update();
            let view = job.view();
            let (name, next) = if view.state.is_final() {
                ("outcome", Phase::Done)
            } else if stop {
                // The server stops: the state as it is, then the end of the stream.
                ("progress", Phase::Done)
            } else {
                ("progress", Phase::Next)
            };
            let event = SseEvent::default().event(name).json_data(&view).ok()?;
            Some((Ok(event), (job, changes, stopping, next)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Where an event stream is.
enum Phase {
    First,
    Next,
    Done,
}

/// `GET /v1/admin/health`: [`Coffer::health`](coffer_core::Coffer::health) (configuration,
/// root writable, database reachable within a bounded attempt, last backup age against the
/// thresholds) and the running job. 200 when healthy, 503 with the same body otherwise.
#[derive(Serialize)]
struct HealthResponse<'a> {
    #[serde(flatten)]
    report: &'a coffer_core::HealthReport,
    running_job: Option<JobView>,
}

async fn health(State(state): State<AppState>, _: Viewer) -> Result<Response, Problem> {
    let thresholds = state.thresholds;
    let report = state
        .health_read
        .get(0, || {
            blocking(&state.coffer, move |c| Ok(c.health(&thresholds)))
        })
        .await?;
    let status = if report.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = HealthResponse {
        report: &report,
        running_job: state.jobs.running().map(|j| j.view()),
    };
    Ok((status, Json(body)).into_response())
}

/// `GET /metrics`: the Prometheus text the metrics file has.
async fn metrics(State(state): State<AppState>, _: Viewer) -> Result<Response, Problem> {
    let thresholds = state.thresholds;
    let text = blocking(&state.coffer, move |c| {
        Ok(coffer_core::metrics::render(&c.status(&thresholds)?.status))
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_url_are_plain_names() {
        assert!(backup_name("2026-12-02T101500Z-manual").is_ok());
        for bad in ["", "..", ".hidden", "../etc", "a/b", "a\\b", "a b", "x\0"] {
            assert!(backup_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn trigger_bodies_are_checked() {
        assert_eq!(parse_trigger(b"").unwrap().0, BackupKind::Manual);
        let (kind, label) = parse_trigger(br#"{"kind":"auto","label":"pre-upgrade"}"#).unwrap();
        assert_eq!(
            (kind, label.as_deref()),
            (BackupKind::Auto, Some("pre-upgrade"))
        );
        for bad in [
            &br#"{"kind":"legacy"}"#[..],
            br#"{"kind":"manual","x":1}"#,
            b"not json",
            br#"{"label":"a\nb"}"#,
        ] {
            assert_eq!(parse_trigger(bad).unwrap_err().status, 400);
        }
    }
}
