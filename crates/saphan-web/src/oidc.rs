//! OpenID Connect's machine endpoints: discovery, authorization (the browser's entry, which
//! hands over to the sign-in pages), token, UserInfo, introspection and revocation. OAuth errors
//! leave in OAuth's own JSON (`{error, error_description}`), not as problem documents, because
//! that is what relying parties' libraries parse.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use saphan_core::Text;
use saphan_oidc::{single_params, AuthorizeFailure, ClientAuth, Finish, OAuthError};

use crate::cookies;
use crate::problem::ApiProblem;
use crate::state::AppState;

/// An OAuth error as JSON with `Cache-Control: no-store`; 401s name the scheme to use.
pub(crate) fn oauth_error(error: &OAuthError, bearer: bool) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (
        status,
        Json(serde_json::json!({ "error": error.error, "error_description": error.description })),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        let challenge = if bearer {
            format!(
                "Bearer realm=\"saphan\", error=\"{}\", error_description=\"{}\"",
                error.error,
                error.description.replace('"', "'")
            )
        } else {
            "Basic realm=\"saphan\"".to_string()
        };
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
    }
    response
}

pub(crate) fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// OpenID Provider metadata (OpenID Connect Discovery 1.0).
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "digital-id",
    responses((status = 200, description = "Provider metadata", body = Object)))]
pub(crate) async fn discovery(State(state): State<AppState>) -> Response {
    Json(state.oidc.discovery()).into_response()
}

/// A 303 to `location` (after a POST the browser must GET the next page).
pub(crate) fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

fn parse_pairs(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// The authorization endpoint (GET with a query, or POST with a form, OIDC Core §3.1.2.1).
pub(crate) async fn authorize(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let text = if method == Method::POST {
        if !is_form(&headers) {
            return Err(ApiProblem::status(415));
        }
        String::from_utf8_lossy(&body).into_owned()
    } else {
        query.unwrap_or_default()
    };
    let request = match state.oidc.validate_authorization(&parse_pairs(&text)).await {
        Ok(r) => r,
        Err(AuthorizeFailure::Page(error)) => return Err(authorize_page_error(&error)),
        Err(failure) => {
            let url = failure
                .redirect_url(state.oidc.issuer())
                .expect("redirect failure");
            return Ok(see_other(&url));
        }
    };
    let session = current_session(&state, &headers).await?;
    next_step(&state, &request, session.as_ref(), None, None).await
}

/// An error that must not go back to the client: shown to the person (and to developers).
pub(crate) fn authorize_page_error(error: &OAuthError) -> ApiProblem {
    ApiProblem(
        saphan_core::Problem::new(
            saphan_core::ProblemKind::BadRequest,
            "invalid-authorization-request",
            Text::new(
                "คำขอเข้าสู่ระบบจากบริการนี้ไม่ถูกต้อง",
                "This service's sign-in request is not valid",
            ),
        )
        .with_detail(Text::owned(
            format!("โปรดแจ้งผู้ให้บริการ: {} ({})", error.error, error.description),
            format!(
                "Please tell the service: {} ({})",
                error.error, error.description
            ),
        )),
    )
}

/// The browser's live session at the provider, if its cookie names one.
pub(crate) async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<saphan_oidc::Session>, ApiProblem> {
    match cookies::get(headers, cookies::SESSION) {
        Some(c) => state.oidc.session(&c).await.map_err(server_problem),
        None => Ok(None),
    }
}

pub(crate) fn server_problem(e: OAuthError) -> ApiProblem {
    tracing::error!(error = %e, "digital ID failure");
    ApiProblem::status(500)
}

/// Where a request goes next: sign-in, consent or back to the client. `request_id` is the saved
/// request's id when there is one already.
pub(crate) async fn next_step(
    state: &AppState,
    request: &saphan_oidc::AuthRequest,
    session: Option<&saphan_oidc::Session>,
    request_id: Option<&str>,
    identity: Option<&saphan_identity::Identity>,
) -> Result<Response, ApiProblem> {
    let finish = state
        .oidc
        .decide(request, session, identity)
        .await
        .map_err(server_problem)?;
    let saved = |state: AppState| async move {
        match request_id {
            Some(id) => Ok::<_, ApiProblem>(id.to_string()),
            None => state
                .oidc
                .save_request(request)
                .await
                .map_err(server_problem),
        }
    };
    let lang = request
        .ui_locales
        .as_deref()
        .and_then(|l| l.split(' ').find_map(saphan_core::Lang::from_tag))
        .map(|l| format!("&lang={}", l.code()))
        .unwrap_or_default();
    Ok(match finish {
        Finish::SignIn => see_other(&format!(
            "/signin?request={}{lang}",
            saved(state.clone()).await?
        )),
        Finish::Consent { .. } => see_other(&format!(
            "/consent?request={}{lang}",
            saved(state.clone()).await?
        )),
        Finish::Redirect(url) => see_other(&url),
    })
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

/// Client authentication from the Authorization header or the form (RFC 6749 §2.3.1, RFC 7523).
fn client_auth(
    headers: &HeaderMap,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<ClientAuth, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let assertion = params.get("client_assertion");
    if params.contains_key("client_secret") {
        return Err(OAuthError::invalid_client(
            "client_secret_post is not supported; use client_secret_basic or private_key_jwt",
        ));
    }
    match (basic, assertion) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "use exactly one client authentication method",
        )),
        (Some(encoded), None) => {
            use base64::Engine;
            let bad = || OAuthError::invalid_client("malformed Basic credentials");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (id, secret) = text.split_once(':').ok_or_else(bad)?;
            // Both halves are form-encoded before Basic encoding (RFC 6749 §2.3.1).
            let decode = |s: &str| -> String {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Ok(ClientAuth::Basic {
                client_id: decode(id),
                secret: decode(secret),
            })
        }
        (None, Some(assertion)) => {
            if params.get("client_assertion_type").map(String::as_str)
                != Some(saphan_oidc::client::ASSERTION_TYPE)
            {
                return Err(OAuthError::invalid_request(
                    "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
            }
            Ok(ClientAuth::Assertion {
                client_id: params.get("client_id").cloned(),
                assertion: assertion.clone(),
            })
        }
        (None, None) => Ok(ClientAuth::None),
    }
}

/// The parameters of an OAuth form POST: the right content type, UTF-8, each name once.
pub(crate) fn form_params(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<std::collections::BTreeMap<String, String>, OAuthError> {
    if !is_form(headers) {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
    single_params(&parse_pairs(text))
}

/// Parses a client-authenticated form POST: form params and the authenticated client.
async fn client_form(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    endpoint: &str,
) -> Result<
    (
        std::collections::BTreeMap<String, String>,
        saphan_oidc::Client,
    ),
    OAuthError,
> {
    let params = form_params(headers, body)?;
    let auth = client_auth(headers, &params)?;
    let client = state
        .oidc
        .authenticate_client(&auth, &format!("{}{endpoint}", state.oidc.issuer()))
        .await?;
    Ok((params, client))
}

/// The token endpoint (RFC 6749 §3.2): `authorization_code` with PKCE, `refresh_token` with
/// rotation. Clients authenticate with `client_secret_basic` or `private_key_jwt`.
#[utoipa::path(post, path = "/oidc/token", tag = "digital-id",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded",
        description = "grant_type, code, redirect_uri, code_verifier | refresh_token; client_assertion for private_key_jwt"),
    responses(
        (status = 200, description = "Tokens: access_token, refresh_token, id_token, expires_in, scope", body = Object),
        (status = 400, description = "OAuth error (invalid_request, invalid_grant, unsupported_grant_type, invalid_scope)", body = Object),
        (status = 401, description = "invalid_client", body = Object)))]
pub(crate) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (params, client) = client_form(&state, &headers, &body, "/oidc/token").await?;
        state.oidc.token(&client, &params).await
    }
    .await;
    match result {
        Ok(tokens) => no_store(Json(tokens).into_response()),
        Err(e) => oauth_error(&e, false),
    }
}

/// UserInfo (OpenID Connect Core §5.3): the claims the access token's scopes release.
#[utoipa::path(get, path = "/oidc/userinfo", tag = "digital-id",
    responses(
        (status = 200, description = "Claims, with the client's pairwise `sub`", body = Object),
        (status = 401, description = "invalid_token (WWW-Authenticate: Bearer)", body = Object)),
    security(("bearer" = [])))]
pub(crate) async fn userinfo(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let (method, headers) = (parts.method, parts.headers);
    // UserInfo takes the token from a form only on POST; bodies are small.
    let body = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let header_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    let form_token = if method == Method::POST && is_form(&headers) {
        parse_pairs(&String::from_utf8_lossy(&body))
            .into_iter()
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v)
    } else {
        None
    };
    let token = match (header_token, form_token) {
        (Some(_), Some(_)) => {
            return oauth_error(
                &OAuthError::invalid_request("send the access token one way only"),
                true,
            )
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => {
            let mut response = oauth_error(
                &OAuthError::invalid_token("a bearer access token is required"),
                true,
            );
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            return response;
        }
    };
    match state.oidc.userinfo(&token).await {
        Ok(claims) => no_store(Json(claims).into_response()),
        Err(e) => oauth_error(&e, true),
    }
}

/// Token introspection (RFC 7662), for the client the token was issued to.
#[utoipa::path(post, path = "/oidc/introspect", tag = "digital-id",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "token"),
    responses(
        (status = 200, description = "`active`, and for live tokens scope, client_id, sub, exp, iat", body = Object),
        (status = 401, description = "invalid_client", body = Object)))]
pub(crate) async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (params, client) = client_form(&state, &headers, &body, "/oidc/introspect").await?;
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        state.oidc.introspect(&client, token).await
    }
    .await;
    match result {
        Ok(answer) => no_store(Json(answer).into_response()),
        Err(e) => oauth_error(&e, false),
    }
}

/// Token revocation (RFC 7009). A refresh token ends its whole rotation family.
#[utoipa::path(post, path = "/oidc/revoke", tag = "digital-id",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "token"),
    responses(
        (status = 200, description = "Revoked (or unknown: the answer is the same)"),
        (status = 401, description = "invalid_client", body = Object)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (params, client) = client_form(&state, &headers, &body, "/oidc/revoke").await?;
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        state.oidc.revoke(&client, token).await
    }
    .await;
    match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => oauth_error(&e, false),
    }
}

/// Sets the session and device cookies after a sign-in.
pub(crate) async fn set_session_cookies(
    state: &AppState,
    response: &mut Response,
    cookie: &str,
    identity_id: &str,
) -> Result<(), ApiProblem> {
    let max_age = state.config.identity.session_hours as i64 * 3600;
    cookies::set(state, response, cookies::SESSION, cookie, max_age);
    let device = state.directory.device_token(identity_id).await?;
    cookies::set(state, response, cookies::DEVICE, &device, 400 * 86400);
    Ok(())
}
