//! The data exchange's administration API (members, subsystems, credentials, services, rights,
//! groups, access requests, the message log, usage) and the data subject's own API (consents,
//! who accessed my data). Handlers translate HTTP to `saphan-exchange` calls; every decision
//! about who may do what is made there, through `Subject::may`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use saphan_core::{Problem, ProblemKind, Text};
use saphan_exchange::registry::{Decision, NewAccessRequest, NewMember, NewRight, ServiceSpec};
use saphan_exchange::{ExchangeError, MemberId};
use saphan_identity::{Action, Identity, Resource};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::identity_api::{caller, json_body};
use crate::problem::ApiProblem;
use crate::state::AppState;

impl From<ExchangeError> for ApiProblem {
    fn from(e: ExchangeError) -> Self {
        if matches!(
            e,
            ExchangeError::Store(_) | ExchangeError::Audit(_) | ExchangeError::Crypto(_)
        ) {
            tracing::error!(error = %e, "exchange operation failed");
        }
        ApiProblem(e.problem())
    }
}

pub(crate) fn routes() -> Router<AppState> {
    let sub = "/api/v1/exchange/subsystems/{class}/{member}/{code}";
    Router::new()
        .route("/api/v1/exchange/members", get(members).post(create_member))
        .route(
            "/api/v1/exchange/members/{class}/{member}/subsystems",
            post(create_subsystem),
        )
        .route("/api/v1/exchange/subsystems", get(subsystems))
        .route(&format!("{sub}/status"), put(subsystem_status))
        .route(&format!("{sub}/keys"), put(subsystem_keys))
        .route(&format!("{sub}/certificates"), post(issue_certificate))
        .route(&format!("{sub}/gdx-keys"), post(gdx_key))
        .route(
            "/api/v1/exchange/gdx-keys/{consumer_key}/revoke",
            post(revoke_gdx_key),
        )
        .route(&format!("{sub}/services"), post(publish_service))
        .route(
            "/api/v1/exchange/certificates/{fingerprint}/revoke",
            post(revoke_certificate),
        )
        .route("/api/v1/exchange/services", get(services))
        .route(
            "/api/v1/exchange/services/{class}/{member}/{code}/{service}/rights",
            get(rights).post(grant_right),
        )
        .route(
            "/api/v1/exchange/services/{class}/{member}/{code}/{service}/status",
            put(service_status),
        )
        .route("/api/v1/exchange/rights/{id}", delete(revoke_right))
        .route("/api/v1/exchange/groups", post(create_group))
        .route("/api/v1/exchange/groups/{code}/members", post(add_to_group))
        .route(
            "/api/v1/exchange/access-requests",
            get(access_requests).post(request_access),
        )
        .route(
            "/api/v1/exchange/access-requests/{id}/decision",
            post(decide_access),
        )
        .route("/api/v1/exchange/log", get(message_log))
        .route("/api/v1/exchange/usage", get(usage))
        .route("/api/v1/me/consents", get(my_consents).post(give_consent))
        .route("/api/v1/me/consents/{id}", delete(revoke_consent))
        .route("/api/v1/me/data-access", get(data_access))
        .route("/api/v1/me/act-for", get(my_act_for))
        .route(
            "/admin/exchange",
            get(crate::exchange_admin::page).post(crate::exchange_admin::act),
        )
}

/// Reading the registry is for exchange administrators (of the platform, or of some agency).
async fn reader(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<saphan_identity::Subject, ApiProblem> {
    let subject = caller(state, headers).await?;
    if crate::exchange_admin::exchange_admin_level(&subject).is_none() {
        return Err(ExchangeError::Forbidden(
            "reading the exchange's registry needs an exchange-admin role".into(),
        )
        .into());
    }
    Ok(subject)
}

fn created(value: impl serde::Serialize) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

fn subsystem_id(
    state: &AppState,
    (class, member, code): &(String, String, String),
) -> Result<saphan_exchange::ClientId, ApiProblem> {
    Ok(state
        .exchange
        .registry()
        .parse_subsystem(&format!("{class}/{member}/{code}"))?)
}

#[utoipa::path(get, path = "/api/v1/exchange/members", tag = "exchange",
    responses((status = 200, description = "Members of the instance", body = Object)),
    security(("bearer" = [])))]
pub(crate) async fn members(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    reader(&state, &headers).await?;
    Ok(Json(state.exchange.registry().members().await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/exchange/members", tag = "exchange",
    request_body(content = Object, content_type = "application/json", description = "class, code, name_th, name_en, agency"),
    responses((status = 201, description = "The member", body = Object),
        (status = 403, description = "Only the central administrator onboards members", body = crate::problem::ProblemDocument, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn create_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let new: NewMember = json_body(&headers, &body)?;
    Ok(created(
        state
            .exchange
            .registry()
            .create_member(&subject, &new)
            .await?,
    ))
}

#[derive(Deserialize)]
struct NewSubsystem {
    code: String,
}

pub(crate) async fn create_subsystem(
    State(state): State<AppState>,
    Path((class, member)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let new: NewSubsystem = json_body(&headers, &body)?;
    let member = MemberId::parse(&format!("{class}/{member}")).map_err(ExchangeError::from)?;
    Ok(created(
        state
            .exchange
            .registry()
            .create_subsystem(&subject, &member, &new.code)
            .await?,
    ))
}

pub(crate) async fn subsystems(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    reader(&state, &headers).await?;
    Ok(Json(state.exchange.registry().subsystems(None).await?).into_response())
}

#[derive(Deserialize)]
struct Active {
    active: bool,
}

pub(crate) async fn subsystem_status(
    State(state): State<AppState>,
    Path(id): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let a: Active = json_body(&headers, &body)?;
    let id = subsystem_id(&state, &id)?;
    state
        .exchange
        .registry()
        .set_subsystem_status(&subject, &id, a.active)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn subsystem_keys(
    State(state): State<AppState>,
    Path(id): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let jwks: Value = json_body(&headers, &body)?;
    let id = subsystem_id(&state, &id)?;
    state
        .exchange
        .registry()
        .set_subsystem_keys(&subject, &id, &jwks)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct CertificateAsk {
    /// The subsystem's public key (PEM, SubjectPublicKeyInfo); none = the platform makes a pair.
    #[serde(default)]
    public_key_pem: Option<String>,
    #[serde(default = "default_days")]
    valid_days: u32,
}

fn default_days() -> u32 {
    365
}

pub(crate) async fn issue_certificate(
    State(state): State<AppState>,
    Path(id): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let ask: CertificateAsk = json_body(&headers, &body)?;
    let id = subsystem_id(&state, &id)?;
    let public = match &ask.public_key_pem {
        Some(pem) => Some(spki_der(pem)?),
        None => None,
    };
    Ok(created(
        state
            .exchange
            .credentials()
            .issue_certificate(&subject, &id, public, ask.valid_days)
            .await?,
    ))
}

pub(crate) fn spki_der(pem: &str) -> Result<Vec<u8>, ExchangeError> {
    let bad = |m: &str| ExchangeError::Invalid(format!("public_key_pem: {m}"));
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    if !pem.contains("BEGIN PUBLIC KEY") {
        return Err(bad("expected a PEM `PUBLIC KEY` (SubjectPublicKeyInfo)"));
    }
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| bad(&e.to_string()))
}

pub(crate) async fn gdx_key(
    State(state): State<AppState>,
    Path(id): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let id = subsystem_id(&state, &id)?;
    Ok(created(
        state
            .exchange
            .credentials()
            .create_gdx_key(&subject, &id)
            .await?,
    ))
}

pub(crate) async fn revoke_gdx_key(
    State(state): State<AppState>,
    Path(consumer_key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    state
        .exchange
        .credentials()
        .revoke_gdx_key(&subject, &consumer_key)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn revoke_certificate(
    State(state): State<AppState>,
    Path(fingerprint): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    state
        .exchange
        .credentials()
        .revoke_certificate(&subject, &fingerprint)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/exchange/subsystems/{class}/{member}/{code}/services", tag = "exchange",
    params(("class" = String, Path), ("member" = String, Path), ("code" = String, Path)),
    request_body(content = Object, content_type = "application/json",
        description = "code, title_th, title_en, backend_url, openapi (JSON) or endpoints, classification, personal_data, consent_required, purposes, rate_limit_per_min, timeout_secs, log_bodies"),
    responses((status = 201, description = "The service as published", body = Object),
        (status = 400, description = "Invalid service", body = crate::problem::ProblemDocument, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn publish_service(
    State(state): State<AppState>,
    Path(id): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let spec: ServiceSpec = json_body(&headers, &body)?;
    let id = subsystem_id(&state, &id)?;
    Ok(created(
        state
            .exchange
            .registry()
            .put_service(&subject, &id, &spec)
            .await?,
    ))
}

pub(crate) async fn services(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    let subject = reader(&state, &headers).await?;
    Ok(Json(state.exchange.registry().services_seen_by(&subject).await?).into_response())
}

type ServicePath = (String, String, String, String);

fn service_id(
    state: &AppState,
    (class, member, code, service): &ServicePath,
) -> Result<saphan_exchange::ServiceId, ApiProblem> {
    Ok(state
        .exchange
        .registry()
        .parse_service(&format!("{class}/{member}/{code}/{service}"))?)
}

pub(crate) async fn rights(
    State(state): State<AppState>,
    Path(path): Path<ServicePath>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    reader(&state, &headers).await?;
    let id = service_id(&state, &path)?;
    Ok(Json(state.exchange.registry().rights(&id).await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/exchange/services/{class}/{member}/{code}/{service}/rights", tag = "exchange",
    params(("class" = String, Path), ("member" = String, Path), ("code" = String, Path), ("service" = String, Path)),
    request_body(content = Object, content_type = "application/json",
        description = "grantee (subsystem id or group:CODE), method, path (or * for all), legal_basis, valid_until (unix seconds)"),
    responses((status = 201, description = "The right", body = Object),
        (status = 403, description = "Not the provider's exchange administrator", body = crate::problem::ProblemDocument, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn grant_right(
    State(state): State<AppState>,
    Path(path): Path<ServicePath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let new: NewRight = json_body(&headers, &body)?;
    let id = service_id(&state, &path)?;
    Ok(created(
        state
            .exchange
            .registry()
            .grant_right(&subject, &id, &new)
            .await?,
    ))
}

pub(crate) async fn service_status(
    State(state): State<AppState>,
    Path(path): Path<ServicePath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let a: Active = json_body(&headers, &body)?;
    let id = service_id(&state, &path)?;
    state
        .exchange
        .registry()
        .set_service_status(&subject, &id, a.active)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn revoke_right(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    state
        .exchange
        .registry()
        .revoke_right(&subject, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct NewGroup {
    code: String,
    description: String,
}

pub(crate) async fn create_group(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let g: NewGroup = json_body(&headers, &body)?;
    state
        .exchange
        .registry()
        .create_group(&subject, &g.code, &g.description)
        .await?;
    Ok(created(
        json!({ "code": g.code, "description": g.description }),
    ))
}

#[derive(Deserialize)]
struct GroupMember {
    subsystem: String,
}

pub(crate) async fn add_to_group(
    State(state): State<AppState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let m: GroupMember = json_body(&headers, &body)?;
    let registry = state.exchange.registry();
    let id = registry.parse_subsystem(&m.subsystem)?;
    registry.add_to_group(&subject, &code, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub(crate) struct StatusFilter {
    status: Option<String>,
}

pub(crate) async fn access_requests(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StatusFilter>,
) -> Result<Response, ApiProblem> {
    reader(&state, &headers).await?;
    Ok(Json(
        state
            .exchange
            .registry()
            .access_requests(q.status.as_deref())
            .await?,
    )
    .into_response())
}

#[utoipa::path(post, path = "/api/v1/exchange/access-requests", tag = "exchange",
    request_body(content = Object, content_type = "application/json",
        description = "consumer, service, method, path, purpose, legal_basis"),
    responses((status = 201, description = "The pending request", body = Object)),
    security(("bearer" = [])))]
pub(crate) async fn request_access(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let new: NewAccessRequest = json_body(&headers, &body)?;
    Ok(created(
        state
            .exchange
            .registry()
            .request_access(&subject, &new)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/exchange/access-requests/{id}/decision", tag = "exchange",
    params(("id" = String, Path)),
    request_body(content = Object, content_type = "application/json", description = "approve, reason (required to refuse), valid_until"),
    responses((status = 200, description = "The decided request", body = Object),
        (status = 409, description = "Already decided", body = crate::problem::ProblemDocument, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn decide_access(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let d: Decision = json_body(&headers, &body)?;
    Ok(Json(
        state
            .exchange
            .registry()
            .decide_access(&subject, &id, &d)
            .await?,
    )
    .into_response())
}

#[derive(Deserialize)]
pub(crate) struct LogQuery {
    consumer: Option<String>,
    service: Option<String>,
    /// A national id: searched by its pseudonym.
    subject: Option<String>,
    since: Option<String>,
    before: Option<u64>,
    limit: Option<u32>,
}

/// Searches the message log (platform administrators).
#[utoipa::path(get, path = "/api/v1/exchange/log", tag = "exchange",
    params(("consumer" = Option<String>, Query), ("service" = Option<String>, Query),
        ("subject" = Option<String>, Query, description = "a national id; matched by its pseudonym"),
        ("since" = Option<String>, Query), ("before" = Option<u64>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, description = "Records, newest first, each with its call detail", body = Object)),
    security(("bearer" = [])))]
pub(crate) async fn message_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    if !subject.may(&Action::ReadAudit, &Resource::Platform) {
        return Err(ExchangeError::Forbidden(
            "reading the whole message log needs platform-admin".into(),
        )
        .into());
    }
    let records = saphan_exchange::log::search(
        &state.exchange,
        &state.directory,
        &saphan_exchange::log::LogSearch {
            consumer: q.consumer,
            service: q.service,
            national_id: q.subject,
            since: q.since,
            before_seq: q.before,
            limit: q.limit.unwrap_or(100).min(1000),
        },
    )
    .await?;
    Ok(Json(records).into_response())
}

/// Calls, bytes and latency histograms per consumer and service, since this node started.
#[utoipa::path(get, path = "/api/v1/exchange/usage", tag = "exchange",
    responses((status = 200, description = "Usage rows: consumer, provider, service, calls, errors, bytes_in, bytes_out, latency_ms buckets", body = Object)),
    security(("bearer" = [])))]
pub(crate) async fn usage(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    reader(&state, &headers).await?;
    Ok(Json(json!({
        "latency_buckets_ms": saphan_exchange::gateway::LATENCY_BUCKETS_MS,
        "rows": state.exchange.usage(),
    }))
    .into_response())
}

// ---- the data subject's own API ------------------------------------------------------------

fn person_required() -> ApiProblem {
    ApiProblem(
        Problem::new(
            ProblemKind::Unauthorized,
            "authentication-required",
            Text::new(
                "ต้องเข้าสู่ระบบด้วยดิจิทัลไอดีก่อน",
                "Sign in with your digital ID first",
            ),
        )
        .with_detail(Text::new(
            "ใช้เซสชันของเบราว์เซอร์ที่เข้าสู่ระบบแล้ว (คำขอที่เปลี่ยนข้อมูลต้องมี X-CSRF-Token)",
            "Use your signed-in browser session (changes also need X-CSRF-Token)",
        )),
    )
}

/// The person calling: their browser session with the digital ID (writes also need the CSRF
/// token in `X-CSRF-Token`). OpenID access tokens are not accepted here: a token held by a
/// relying party (possibly the consumer agency itself) must not let it consent for the person.
async fn person(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Identity, ApiProblem> {
    let session = crate::oidc::current_session(state, headers).await?;
    if session.is_some() && method != Method::GET {
        let presented = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !crate::cookies::csrf_ok(headers, presented) {
            return Err(ApiProblem::status(403).with_detail(Text::new(
                "ต้องส่ง X-CSRF-Token ที่ตรงกับคุกกี้",
                "X-CSRF-Token must match the CSRF cookie",
            )));
        }
    }
    let identity_id = session.map(|s| s.identity_id);
    let identity_id = identity_id.ok_or_else(person_required)?;
    state
        .directory
        .get(&identity_id)
        .await?
        .ok_or_else(person_required)
}

#[utoipa::path(get, path = "/api/v1/me/consents", tag = "exchange",
    responses((status = 200, description = "The consents you gave", body = Object),
        (status = 401, description = "Sign in first", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn my_consents(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    let me = person(&state, &method, &headers).await?;
    Ok(Json(state.exchange.registry().consents_of(&me).await?).into_response())
}

/// The juristic persons you may act for now (what `onBehalfOf` of an application names).
#[utoipa::path(get, path = "/api/v1/me/act-for", tag = "one-stop",
    responses((status = 200, description = "Your act-for relations valid now", body = Object),
        (status = 401, description = "Sign in first", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn my_act_for(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    let me = person(&state, &method, &headers).await?;
    Ok(Json(state.directory.act_for(&me.id).await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/me/consents", tag = "exchange",
    request_body(content = Object, content_type = "application/json", description = "consumer, service, purpose, valid_until (unix seconds, at most a year ahead)"),
    responses((status = 201, description = "The consent; its id goes into Saphan-Consent", body = Object),
        (status = 401, description = "Sign in first", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn give_consent(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let me = person(&state, &method, &headers).await?;
    let new: saphan_exchange::consent::NewConsent = json_body(&headers, &body)?;
    Ok(created(
        state
            .exchange
            .registry()
            .give_consent(&state.directory, &me, &new)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/me/consents/{id}", tag = "exchange",
    params(("id" = String, Path)),
    responses((status = 204, description = "Revoked: calls relying on it fail from now on"),
        (status = 404, description = "No such consent of yours", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn revoke_consent(
    State(state): State<AppState>,
    method: Method,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiProblem> {
    let me = person(&state, &method, &headers).await?;
    state.exchange.registry().revoke_consent(&me, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub(crate) struct AccessQuery {
    before: Option<u64>,
    limit: Option<u32>,
}

/// Who accessed my data: agency, service, purpose, when — from the message log.
#[utoipa::path(get, path = "/api/v1/me/data-access", tag = "exchange",
    params(("before" = Option<u64>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, description = "Accesses to your data, newest first", body = Object),
        (status = 401, description = "Sign in first", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn data_access(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Query(q): Query<AccessQuery>,
) -> Result<Response, ApiProblem> {
    let me = person(&state, &method, &headers).await?;
    let accesses = saphan_exchange::log::data_access(
        &state.exchange,
        &state.directory,
        &me,
        q.before,
        q.limit.unwrap_or(50).min(500),
    )
    .await?;
    Ok(Json(accesses).into_response())
}
