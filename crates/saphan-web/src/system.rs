//! Operational and platform endpoints: health, readiness, metrics, the OpenAPI document and its
//! reference page, problem type pages, and the platform's public keys.

use std::sync::OnceLock;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

use crate::portal::{page, LangQuery};
use crate::problem::ApiProblem;
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok` when the process serves requests; `ready` when it can also reach the database.
    status: &'static str,
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process serves requests", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        database: None,
    })
}

/// Readiness: the node can reach its database.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "The database is unreachable", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiProblem> {
    state.db.ping().await.map_err(|e| ApiProblem(e.problem()))?;
    Ok(Json(Health {
        status: "ready",
        version: env!("CARGO_PKG_VERSION"),
        database: Some(match state.db.backend() {
            saphan_store::Backend::Sqlite => "sqlite",
            saphan_store::Backend::Postgres => "postgres",
        }),
    }))
}

/// The process-wide Prometheus recorder (metrics are global; so is the recorder).
pub(crate) fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (e.g. several apps in one test binary);
        // then this handle renders an empty set, which is still valid exposition text.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Metrics in the Prometheus text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics_text() -> Response {
    let handle = prometheus();
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// This API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub(crate) async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::openapi_json_text(),
    )
        .into_response()
}

pub(crate) async fn api_docs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Response {
    let doc: serde_json::Value =
        serde_json::from_str(crate::openapi::openapi_json_text()).expect("valid json");
    page(
        &state,
        &headers,
        &query,
        "api_docs.html",
        "/api-docs",
        minijinja::context! { doc => minijinja::Value::from_serialize(&doc) },
    )
}

/// Problem `type` URIs dereference to a short page, as RFC 9457 §3.1.1 suggests.
pub(crate) async fn problem_type(Path(slug): Path<String>) -> Response {
    if !slug
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || slug.len() > 64
    {
        return ApiProblem::status(404).into_response();
    }
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Problem type {slug}</title>\
         <link rel=\"stylesheet\" href=\"/assets/saphan.css\"></head><body><main class=\"main\"><h1>Problem type <code>{slug}</code></h1>\
         <p lang=\"th\">ประเภทของปัญหาที่ระบบตอบกลับ รายละเอียดอยู่ในช่อง title_th และ detail_th ของคำตอบ</p>\
         <p>A problem type returned by the Saphan API. The response's <code>title</code> and <code>detail</code> \
         (English) and <code>title_th</code> and <code>detail_th</code> (Thai) say what happened; the slug is stable.</p>\
         <p><a href=\"/api-docs\">API reference</a></p></main></body></html>"
    ))
    .into_response()
}

/// The platform's public keys.
///
/// Active and retired keys, with their certificates, for verifying what the platform signed.
#[utoipa::path(get, path = "/api/v1/platform/keys", tag = "platform",
    responses((status = 200, description = "Public key set: kid, algorithm, purpose, status, SubjectPublicKeyInfo (base64url) and certificates", body = Object)))]
pub(crate) async fn public_keys(
    State(state): State<AppState>,
) -> Json<saphan_crypto::PublicKeySet> {
    Json(state.keys.public_keys())
}

/// The signing keys as a JWKS.
///
/// The platform's signing keys, active and retired, as a JSON Web Key Set (RFC 7517).
#[utoipa::path(get, path = "/api/v1/platform/jwks.json", tag = "platform",
    responses((status = 200, description = "JWKS of the signing keys, active and retired", body = Object)))]
pub(crate) async fn jwks(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiProblem> {
    state
        .keys
        .public_keys()
        .jwks()
        .map(Json)
        .map_err(|e| ApiProblem(e.problem()))
}

/// The platform root CA certificate.
///
/// PEM; exchange members trust it for mutual TLS.
#[utoipa::path(get, path = "/api/v1/platform/ca.pem", tag = "platform",
    responses((status = 200, description = "PEM certificate", body = String, content_type = "application/x-pem-file")))]
pub(crate) async fn ca_certificate(State(state): State<AppState>) -> Result<Response, ApiProblem> {
    let pem = state
        .keys
        .ca_certificate_pem()
        .map_err(|e| ApiProblem(e.problem()))?;
    Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response())
}

const TIMESTAMP_QUERY: &str = "application/timestamp-query";
/// A TimeStampReq is well under 1 KiB; more is not a time-stamp query.
const TIMESTAMP_QUERY_LIMIT: usize = 8 * 1024;

/// Time-stamp data (RFC 3161).
///
/// The platform's time-stamping authority, RFC 3161 over HTTP (§3.4): a DER TimeStampReq in,
/// a DER TimeStampResp out. A request the authority cannot grant (another hash algorithm or
/// policy, extensions) is answered in-band with a rejection and its reason, as RFC 3161 says.
#[utoipa::path(post, path = "/api/v1/platform/timestamp", tag = "platform",
    request_body(content = String, content_type = "application/timestamp-query",
        description = "DER TimeStampReq (RFC 3161 §2.4.1) with a SHA-256 message imprint"),
    responses(
        (status = 200, description = "DER TimeStampResp (RFC 3161 §2.4.2): a token, or a rejection with its failure info", body = String, content_type = "application/timestamp-reply"),
        (status = 413, description = "The query is larger than a time-stamp query can be", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/timestamp-query", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn timestamp(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiProblem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case(TIMESTAMP_QUERY) {
        return Err(ApiProblem::status(415).with_detail(saphan_core::Text::new(
            "ส่งคำขอประทับเวลาเป็น application/timestamp-query (RFC 3161)",
            "Send the time-stamp request as application/timestamp-query (RFC 3161)",
        )));
    }
    if body.len() > TIMESTAMP_QUERY_LIMIT {
        return Err(ApiProblem::status(413));
    }
    let reply = state.keys.answer_time_stamp_request(&body);
    metrics::counter!("saphan_tsa_requests_total").increment(1);
    Ok((
        [(header::CONTENT_TYPE, "application/timestamp-reply")],
        reply,
    )
        .into_response())
}
