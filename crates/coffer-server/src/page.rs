//! The admin page, `GET /admin/backup`: one static HTML page with its script and style sheet,
//! embedded in the binary (no build step, no framework, nothing loaded from elsewhere).
//!
//! The page holds no data, so it is served without a token; every API call it makes carries
//! the token the user pasted. It is served with a strict Content Security Policy: only its
//! own script and style run, it may call only this origin, and Trusted Types forbid every
//! HTML-parsing sink (the script writes backup names, which come from a hostile root, with
//! `textContent` only).

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The page's Content Security Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

const HTML: &str = include_str!("../assets/backup.html");
const SCRIPT: &str = include_str!("../assets/backup.js");
const STYLE: &str = include_str!("../assets/backup.css");

/// Where `/admin/backup/` sends the browser: relative, so that it also works under a
/// reverse proxy's path prefix (`…/admin/backup/` + `../backup` = `…/admin/backup`).
pub const TRAILING_SLASH_LOCATION: &str = "../backup";

/// The page's routes; the script and the style sheet sit next to the page, so that its
/// relative links also work under a reverse proxy's path prefix.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/admin/backup",
            get(|| async { asset("text/html; charset=utf-8", HTML) }),
        )
        // With the slash the page's relative links would point into `/admin/backup/`: send
        // the browser to the page instead of a 404 (308 keeps the method).
        .route(
            "/admin/backup/",
            get(|| async { Redirect::permanent(TRAILING_SLASH_LOCATION) }),
        )
        .route(
            "/admin/backup.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/admin/backup.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

/// One embedded file with the security headers every part of the page gets.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        // For browsers older than `frame-ancestors`.
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // A new binary's page must not meet an old cached script.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_parses_no_html_from_data() {
        for text in [HTML, SCRIPT, STYLE] {
            // The one URL allowed is the SVG namespace of the inline lock icon (a name, not
            // a resource).
            let text = text.replace("http://www.w3.org/2000/svg", "");
            for forbidden in ["http://", "https://", "//cdn", "@import"] {
                assert!(!text.contains(forbidden), "{forbidden}");
            }
        }
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!SCRIPT.contains(sink), "{sink}");
        }
        // No inline script or style: the policy would block them.
        assert!(!HTML.contains("<script>") && !HTML.contains("<style") && !HTML.contains("style="));
        assert!(HTML.contains(r#"<script src="backup.js""#));
        assert!(HTML.contains(r#"href="backup.css""#));
    }
}
