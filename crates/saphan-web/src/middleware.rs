//! Cross-cutting request handling: timeouts, metrics, and turning every error response into a
//! problem document (for programs) or an error page (for people).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use saphan_core::Text;

use crate::problem::{ApiProblem, PROBLEM_JSON};
use crate::state::AppState;

pub(crate) const REQUEST_ID: &str = "x-request-id";

/// Answers with a timeout problem when the handler takes longer than configured.
pub(crate) async fn timeout(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = Duration::from_secs(state.config.http.request_timeout_secs);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiProblem::status(504).into_response(),
    }
}

/// Counts requests and their latency per route template (never per concrete path, which could
/// carry personal identifiers and would explode the series).
pub(crate) async fn metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("saphan_http_requests_total", &labels).increment(1);
    metrics::histogram!("saphan_http_request_duration_seconds", &labels[..2])
        .record(started.elapsed().as_secs_f64());
    response
}

fn wants_html(request: &Request) -> bool {
    let path = request.uri().path();
    if path.starts_with("/api/") || path.starts_with("/r1/") {
        return false;
    }
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Every error response leaves as RFC 9457 problem+json with `instance` and `request_id`, or,
/// for a browser asking for HTML, as a bilingual error page. Catches the plain-text errors that
/// axum's extractors and tower-http's layers produce (413, 405, 415, 422, ...).
pub(crate) async fn problems(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let html = wants_html(&request);
    let lang = crate::portal::request_lang(request.headers(), request.uri().query());
    let path = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if content_type.starts_with("text/html") {
        return response; // already a page written for people
    }
    if content_type.starts_with("application/json") {
        // A protocol's own error format (OAuth 2.0 `{error, error_description}`), on purpose.
        return response;
    }
    let problem = response
        .extensions()
        .get::<ApiProblem>()
        .cloned()
        .unwrap_or_else(|| ApiProblem::status(status.as_u16()));
    let (mut parts, _) = response.into_parts();
    parts.extensions.remove::<ApiProblem>();
    if html {
        let page = state.templates.render(
            "error.html",
            lang,
            &path,
            state.demo,
            minijinja::context! {
                title => problem.0.title.get(lang),
                detail => problem.0.detail.as_ref().map(|d: &Text| d.get(lang).to_owned()),
                request_id => request_id,
            },
        );
        let mut response = (status, Html(page)).into_response();
        response
            .headers_mut()
            .extend(parts.headers.into_iter().filter_map(|(k, v)| {
                k.filter(|k| *k == header::ALLOW || *k == header::RETRY_AFTER)
                    .map(|k| (k, v))
            }));
        return response;
    }
    let body =
        serde_json::to_vec(&problem.document(Some(path), request_id)).expect("problem serialises");
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The security headers every response carries: no framing, no sniffing, only our own scripts,
/// styles and fonts. Forms may only post to this site, except on the digital ID's pages, whose
/// forms end in a redirect to the relying party (browsers apply `form-action` to redirects).
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let hands_back =
        path.starts_with("/signin") || path == "/consent" || path.starts_with("/oidc/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if hands_back {
            "default-src 'self'; img-src 'self' data:; style-src 'self'; font-src 'self'; \
             script-src 'self'; frame-ancestors 'none'; base-uri 'self'"
        } else {
            "default-src 'self'; img-src 'self' data:; style-src 'self'; font-src 'self'; \
             script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
        }),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A 404 for anything no route matched.
pub(crate) async fn not_found() -> impl IntoResponse {
    ApiProblem::status(StatusCode::NOT_FOUND.as_u16())
}
