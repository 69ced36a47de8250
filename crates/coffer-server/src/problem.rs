//! Problem documents (RFC 9457, `application/problem+json`): every error response, with a
//! stable `type` URN per [`ErrorKind`] and per refusal of the HTTP layer itself.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coffer_core::{Error, ErrorKind, Hint};
use serde::Serialize;

/// The `type` of the 412 a restore without `X-Confirm-Restore: yes` gets (fixed by the
/// stacks' runbooks).
pub const RESTORE_CONFIRMATION_REQUIRED: &str =
    "urn:trustedoss:problem:restore_confirmation_required";

/// The `title` that goes with [`RESTORE_CONFIRMATION_REQUIRED`].
pub const RESTORE_CONFIRMATION_TITLE: &str = "Restore confirmation header missing";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A stable URN naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A short summary, the same for every problem of this type.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What happened and what to do, for this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Why a restore was refused in pre-flight, one problem each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The caller's choices that would also help (see [`Hint`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<Hint>,
}

/// The URN suffix and title of each kind of library error.
fn kind_parts(kind: ErrorKind) -> (&'static str, &'static str, StatusCode) {
    match kind {
        ErrorKind::InvalidConfig => (
            "urn:coffer:problem:invalid_config",
            "The configuration cannot be used",
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        ErrorKind::Locked => (
            "urn:coffer:problem:locked",
            "Another run holds the backup root",
            StatusCode::CONFLICT,
        ),
        ErrorKind::Damaged => (
            "urn:coffer:problem:damaged",
            "The backup is damaged",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ErrorKind::Refused => (
            "urn:coffer:problem:refused",
            "Restore refused in pre-flight, nothing changed",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ErrorKind::RolledBack => (
            "urn:coffer:problem:rolled_back",
            "Restore failed and was rolled back",
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        ErrorKind::AfterRestore => (
            "urn:coffer:problem:after_restore",
            "Restore committed, but a check after it failed",
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        ErrorKind::Inconsistent => (
            "urn:coffer:problem:inconsistent",
            "Restore failed and the previous state could not be fully put back",
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        ErrorKind::RemoteUnavailable => (
            "urn:coffer:problem:remote_unavailable",
            "The remote is unavailable",
            StatusCode::BAD_GATEWAY,
        ),
        ErrorKind::Interrupted { .. } => (
            "urn:coffer:problem:interrupted",
            "The operation was interrupted",
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        _ => (
            "urn:coffer:problem:failed",
            "The operation failed",
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    }
}

/// The `type` URN of a library error kind: `urn:coffer:problem:<kind>`.
pub fn type_of(kind: ErrorKind) -> &'static str {
    kind_parts(kind).0
}

impl Problem {
    /// A problem of the HTTP layer; `kind` is its `urn:coffer:problem:<name>`.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            kind,
            title,
            status: status.as_u16(),
            detail: Some(detail.into()),
            reasons: Vec::new(),
            hints: Vec::new(),
        }
    }

    /// 401: no token, or one the server does not know.
    pub fn unauthorized() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "urn:coffer:problem:unauthorized",
            "Missing or invalid bearer token",
            "send `Authorization: Bearer <token>` with a token from server.tokens_file",
        )
    }

    /// 403: the token's role may not do this.
    pub fn forbidden(needed: &str) -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            "urn:coffer:problem:forbidden",
            "The token's role may not do this",
            format!("this needs a token with the {needed} role"),
        )
    }

    /// 409: a job of this server holds the backup root.
    pub fn busy(job: &str) -> Problem {
        let (kind, title, status) = kind_parts(ErrorKind::Locked);
        Problem::new(
            status,
            kind,
            title,
            format!("job {job} is running: wait for it to finish (GET /v1/admin/jobs/{job})"),
        )
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "urn:coffer:problem:not_found",
            "Not found",
            detail,
        )
    }

    /// 405: the route exists, not with this method (the `Allow` header names those it has).
    pub fn method_not_allowed() -> Problem {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "urn:coffer:problem:method_not_allowed",
            "Method not allowed",
            "the route does not take this method: see the Allow header",
        )
    }

    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "urn:coffer:problem:bad_request",
            "The request is malformed",
            detail,
        )
    }

    /// 413: an upload larger than `server.max_upload_bytes` (`limit`).
    pub fn too_large(limit: u64) -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:coffer:problem:too_large",
            "The upload is too large",
            format!(
                "the upload is larger than server.max_upload_bytes ({limit} bytes); nothing was restored and nothing was kept: raise the limit in the configuration if the bundle is genuine"
            ),
        )
    }

    /// 412: a restore without `X-Confirm-Restore: yes`.
    pub fn restore_confirmation_required() -> Problem {
        Problem {
            kind: RESTORE_CONFIRMATION_REQUIRED,
            title: RESTORE_CONFIRMATION_TITLE,
            status: StatusCode::PRECONDITION_FAILED.as_u16(),
            detail: Some(
                "a restore replaces the database and the workspace: send `X-Confirm-Restore: yes` to go ahead"
                    .into(),
            ),
            reasons: Vec::new(),
            hints: Vec::new(),
        }
    }

    /// A library error: its kind's type, title and status; its message (with causes) as
    /// the detail; a restore's refusal reasons and the error's hints.
    pub fn from_error(err: &Error) -> Problem {
        let (kind, title, status) = kind_parts(err.kind());
        Problem {
            kind,
            title,
            status: status.as_u16(),
            detail: Some(err.with_causes()),
            reasons: err.refusal_reasons().to_vec(),
            hints: err.hints().to_vec(),
        }
    }
}

impl From<Error> for Problem {
    fn from(err: Error) -> Problem {
        Problem::from_error(&err)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_stable_type() {
        let kinds = [
            ErrorKind::InvalidConfig,
            ErrorKind::Locked,
            ErrorKind::Damaged,
            ErrorKind::Refused,
            ErrorKind::RolledBack,
            ErrorKind::AfterRestore,
            ErrorKind::Inconsistent,
            ErrorKind::RemoteUnavailable,
            ErrorKind::Interrupted { signal: 15 },
            ErrorKind::Failed,
        ];
        let types: std::collections::BTreeSet<&str> = kinds.iter().map(|k| type_of(*k)).collect();
        assert_eq!(types.len(), kinds.len());
        assert_eq!(type_of(ErrorKind::Locked), "urn:coffer:problem:locked");
        assert_eq!(
            type_of(ErrorKind::Interrupted { signal: 2 }),
            "urn:coffer:problem:interrupted"
        );
    }

    #[test]
    fn the_restore_gate_is_exactly_the_runbooks() {
        let p = serde_json::to_value(Problem::restore_confirmation_required()).unwrap();
        assert_eq!(
            p["type"],
            "urn:trustedoss:problem:restore_confirmation_required"
        );
        assert_eq!(p["title"], "Restore confirmation header missing");
        assert_eq!(p["status"], 412);
    }
}
