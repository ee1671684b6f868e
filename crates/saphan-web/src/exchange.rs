//! The data exchange's edge: the X-Road REST gateway (`/r1/...`), its directory services
//! (`/listClients`, `listMethods`, `allowedMethods`, `getOpenAPI`), the subsystems' OAuth token
//! endpoint and GDX's `/ws/auth/validate`. These routes carry other agencies' answers, so they
//! sit outside the portal's problem, timeout and body-limit layers: errors here are X-Road's
//! (`X-Road-Error` + JSON), limits are the exchange's own.

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use futures::TryStreamExt;
use saphan_exchange::gateway::{self, BodyStream, BoxError, Meta, Presented, Target};
use saphan_exchange::protocol::GatewayError;
use saphan_exchange::registry::Service;
use saphan_exchange::ClientId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::AppState;

/// The DER client certificate of a mutual-TLS connection, put on each request by the TLS
/// listener after rustls verified it against the platform CA.
#[derive(Clone, Debug)]
pub struct PeerCertificate(pub Vec<u8>);

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/r1/{*rest}", any(r1))
        .route("/listClients", get(list_clients))
        .route("/listMethods", get(meta_without_prefix))
        .route("/allowedMethods", get(meta_without_prefix))
        .route("/getOpenAPI", get(meta_without_prefix))
        .route("/ws/auth/validate", get(gdx_validate))
        .route("/api/v1/exchange/token", post(token))
}

fn into_response(response: http::Response<BodyStream>) -> Response {
    response.map(Body::from_stream)
}

fn presented(request: &http::request::Parts) -> Presented {
    match request.extensions.get::<PeerCertificate>() {
        Some(cert) => Presented::Certificate(cert.0.clone()),
        None => Presented::from_headers(&request.headers),
    }
}

async fn r1(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let rest = parts.uri.path().strip_prefix("/r1/").unwrap_or_default();
    let target = match gateway::parse_target(rest) {
        Ok(t) => t,
        Err(e) => return into_response(gateway::plain_error(&e)),
    };
    let presented = presented(&parts);
    match target {
        Target::Meta { provider, which } => meta(&state, &parts, presented, provider, which).await,
        Target::Service { id, path } => {
            let request_id = parts
                .headers
                .get(crate::middleware::REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body: BodyStream =
                Box::pin(body.into_data_stream().map_err(|e| Box::new(e) as BoxError));
            let response = state
                .exchange
                .call(gateway::Inbound {
                    method: parts.method.clone(),
                    service: id,
                    path,
                    query: parts.uri.query().map(String::from),
                    headers: parts.headers.clone(),
                    body,
                    presented,
                    request_id,
                })
                .await;
            into_response(response)
        }
    }
}

fn error(e: GatewayError) -> Response {
    into_response(gateway::plain_error(&e))
}

/// X-Road's service id fields and GovStack's, side by side, so clients of either read them.
fn id_fields(client: &ClientId, service_code: Option<&str>) -> Value {
    let object = match (service_code, &client.subsystem) {
        (Some(_), _) => ("SERVICE", "SERVICE"),
        (None, Some(_)) => ("SUBSYSTEM", "APPLICATION"),
        (None, None) => ("MEMBER", "MEMBER"),
    };
    let mut v = json!({
        "object_type": object.0,
        "xroad_instance": client.instance,
        "member_class": client.class,
        "member_code": client.member,
        "objectType": object.1,
        "instanceId": client.instance,
        "memberClass": client.class,
        "memberCode": client.member,
    });
    if let Some(sub) = &client.subsystem {
        v["subsystem_code"] = json!(sub);
        v["applicationCode"] = json!(sub);
    }
    if let Some(code) = service_code {
        v["service_code"] = json!(code);
        v["serviceCode"] = json!(code);
    }
    v
}

fn service_json(service: &Service, endpoints: &[saphan_exchange::Endpoint]) -> Value {
    let mut v = id_fields(&service.service_id.provider, Some(&service.service_id.code));
    let list: Vec<Value> = endpoints
        .iter()
        .map(|e| json!({"method": e.method, "path": e.path}))
        .collect();
    v["service_type"] = json!("REST");
    v["serviceType"] = json!("REST");
    v["endpoint_list"] = json!(list);
    v["endpointList"] = json!({ "member": list });
    v
}

async fn meta(
    state: &AppState,
    parts: &http::request::Parts,
    presented: Presented,
    provider: ClientId,
    which: Meta,
) -> Response {
    let caller = match state
        .exchange
        .authenticate(&presented, &parts.headers)
        .await
    {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    let registry = state.exchange.registry();
    let internal = |e: saphan_exchange::ExchangeError| error(GatewayError::internal(e.to_string()));
    let services = match registry.services(Some(&provider)).await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match which {
        Meta::GetOpenApi => {
            let Some(code) = param("serviceCode") else {
                return error(GatewayError::bad_request("getOpenAPI needs ?serviceCode="));
            };
            let Some(service) = services.iter().find(|s| s.service_id.code == code) else {
                return error(GatewayError::unknown_service(format!(
                    "no service {provider}/{code}"
                )));
            };
            match registry.openapi(&service.service_id).await {
                Ok(Some(doc)) => {
                    ([(http::header::CONTENT_TYPE, "application/json")], doc).into_response()
                }
                Ok(None) => error(GatewayError::unknown_service(format!(
                    "{} has no OpenAPI description (its endpoints are listed by listMethods)",
                    service.id
                ))),
                Err(e) => internal(e),
            }
        }
        Meta::ListMethods | Meta::AllowedMethods => {
            let only = param("serviceId").or_else(|| param("serviceCode"));
            let mut list = Vec::new();
            for service in services
                .iter()
                .filter(|s| only.as_deref().is_none_or(|o| o == s.service_id.code))
            {
                let endpoints = if which == Meta::AllowedMethods {
                    match registry.allowed_endpoints(&caller.subsystem, service).await {
                        Ok(e) if e.is_empty() => continue,
                        Ok(e) => e,
                        Err(e) => return internal(e),
                    }
                } else {
                    service.endpoints.clone()
                };
                list.push(service_json(service, &endpoints));
            }
            Json(json!({ "service": list.clone(), "member": list })).into_response()
        }
    }
}

/// The metadata services without the `/r1/{provider}` prefix: the provider is then the caller
/// itself, as when an X-Road security server is asked about its own client.
async fn meta_without_prefix(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let which = match parts.uri.path() {
        "/listMethods" => Meta::ListMethods,
        "/allowedMethods" => Meta::AllowedMethods,
        _ => Meta::GetOpenApi,
    };
    let presented = presented(&parts);
    let caller = match state
        .exchange
        .authenticate(&presented, &parts.headers)
        .await
    {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    meta(&state, &parts, presented, caller.subsystem, which).await
}

/// `GET /listClients`: every member and subsystem of the instance.
async fn list_clients(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if let Err(e) = state
        .exchange
        .authenticate(&presented(&parts), &parts.headers)
        .await
    {
        return error(e);
    }
    let registry = state.exchange.registry();
    let (members, subsystems) = match (registry.members().await, registry.subsystems(None).await) {
        (Ok(m), Ok(s)) => (m, s),
        (Err(e), _) | (_, Err(e)) => return error(GatewayError::internal(e.to_string())),
    };
    let mut list = Vec::new();
    for m in &members {
        let id = ClientId {
            instance: registry.instance().to_string(),
            class: m.class.clone(),
            member: m.code.clone(),
            subsystem: None,
        };
        list.push(json!({ "id": id_fields(&id, None), "name": m.name.en }));
        for s in subsystems.iter().filter(|s| s.member == m.id) {
            if let Ok(sid) = ClientId::parse(&s.id, false) {
                list.push(json!({ "id": id_fields(&sid, None), "name": m.name.en }));
            }
        }
    }
    Json(json!({ "member": list })).into_response()
}

#[derive(Deserialize)]
struct GdxQuery {
    #[serde(rename = "ConsumerSecret")]
    consumer_secret: Option<String>,
    #[serde(rename = "AgentID")]
    agent_id: Option<String>,
}

fn gdx_error(status: StatusCode, message: &str, message_th: &str) -> Response {
    (
        status,
        Json(json!({ "Result": null, "Message": message, "MessageTh": message_th })),
    )
        .into_response()
}

/// GDX step 1: `GET /ws/auth/validate?ConsumerSecret=&AgentID=` with `Consumer-Key`.
async fn gdx_validate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<GdxQuery>,
) -> Response {
    let key = headers
        .get("consumer-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 100);
    let (Some(key), Some(secret), Some(agent)) = (key, q.consumer_secret, q.agent_id) else {
        return gdx_error(
            StatusCode::BAD_REQUEST,
            "Consumer-Key header, ConsumerSecret and AgentID are required",
            "ต้องระบุ Consumer-Key, ConsumerSecret และ AgentID",
        );
    };
    match state
        .exchange
        .credentials()
        .gdx_validate(key, &secret, &agent)
        .await
    {
        Ok(Some(token)) => Json(json!({ "Result": token })).into_response(),
        Ok(None) => gdx_error(
            StatusCode::UNAUTHORIZED,
            "the consumer key or secret is wrong, or the subsystem is disabled",
            "Consumer-Key หรือ ConsumerSecret ไม่ถูกต้อง",
        ),
        Err(saphan_exchange::ExchangeError::Invalid(m)) => {
            gdx_error(StatusCode::BAD_REQUEST, &m, "ข้อมูลไม่ถูกต้อง")
        }
        Err(e) => {
            tracing::error!(error = %e, "GDX validate failed");
            gdx_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the exchange is temporarily unavailable",
                "ระบบแลกเปลี่ยนข้อมูลไม่พร้อมให้บริการชั่วคราว",
            )
        }
    }
}

/// OAuth 2 client credentials for subsystems (RFC 6749 §4.4) with `private_key_jwt`.
#[utoipa::path(post, path = "/api/v1/exchange/token", tag = "exchange", operation_id = "exchange_token",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded",
        description = "grant_type=client_credentials, client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer, client_assertion (iss = sub = the subsystem id, aud = this endpoint)"),
    responses(
        (status = 200, description = "access_token (Bearer), expires_in", body = Object),
        (status = 400, description = "OAuth error", body = Object),
        (status = 401, description = "invalid_client", body = Object)))]
pub(crate) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use saphan_oidc::OAuthError;
    let result = async {
        let params = crate::oidc::form_params(&headers, &body)?;
        if params.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return Err(OAuthError::unsupported_grant_type(
                "only client_credentials is offered to subsystems",
            ));
        }
        if params.get("client_assertion_type").map(String::as_str)
            != Some(saphan_oidc::client::ASSERTION_TYPE)
        {
            return Err(OAuthError::invalid_client(
                "authenticate with private_key_jwt (client_assertion_type jwt-bearer)",
            ));
        }
        let assertion = params
            .get("client_assertion")
            .ok_or_else(|| OAuthError::invalid_client("client_assertion is required"))?;
        state
            .exchange
            .credentials()
            .token_for_assertion(
                assertion,
                &format!("{}/api/v1/exchange/token", state.oidc.issuer()),
            )
            .await
    }
    .await;
    match result {
        Ok(token) => crate::oidc::no_store(Json(token).into_response()),
        Err(e) => crate::oidc::oauth_error(&e, false),
    }
}
