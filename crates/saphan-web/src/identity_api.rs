//! The digital ID's administration API: OpenID clients and officials' roles. Callers are the
//! platform operator (the admin token as a bearer token) or a signed-in official, and every
//! change goes through the authorization layer in `saphan-identity`.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use saphan_core::{Problem, ProblemKind, Text};
use saphan_identity::{Action, Resource, Role, Subject};
use saphan_oidc::{ClientRegistration, RegistrationError};
use serde::Deserialize;

use crate::admin::Budget;
use crate::oidc::{current_session, server_problem};
use crate::problem::ApiProblem;
use crate::state::AppState;

/// Who is calling: the operator's bearer token, or an official's browser session.
pub(crate) async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Subject, ApiProblem> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(presented) = bearer {
        if state.admin_failures.check() != Budget::Open {
            return Err(ApiProblem::status(429));
        }
        return match &state.admin_token {
            Some(token) if token.matches(presented) => Ok(Subject::Operator),
            _ => {
                state.admin_failures.record_failure();
                Err(unauthorized())
            }
        };
    }
    match current_session(state, headers).await? {
        // Administration needs a two-factor sign-in (AAL 2).
        Some(session) if session.aal >= saphan_identity::Aal::L2 => state
            .directory
            .subject(&session.identity_id)
            .await
            .map_err(|e| ApiProblem(e.problem())),
        _ => Err(unauthorized()),
    }
}

fn unauthorized() -> ApiProblem {
    ApiProblem(
        Problem::new(
            ProblemKind::Unauthorized,
            "authentication-required",
            Text::new("ต้องยืนยันตัวตนก่อน", "Authentication required"),
        )
        .with_detail(Text::new(
            "ส่งรหัสผู้ดูแลเป็น Bearer token หรือเข้าสู่ระบบในฐานะเจ้าหน้าที่",
            "Send the administrator token as a Bearer token, or sign in as an official",
        )),
    )
}

fn registration_problem(e: RegistrationError) -> ApiProblem {
    match e {
        RegistrationError::Invalid(message) => ApiProblem(
            Problem::new(
                ProblemKind::BadRequest,
                "invalid-client-registration",
                Text::new("ข้อมูลการลงทะเบียนบริการไม่ถูกต้อง", "Invalid client registration"),
            )
            .with_detail(Text::owned(format!("ข้อมูลไม่ถูกต้อง: {message}"), message)),
        ),
        RegistrationError::Forbidden(agency) => ApiProblem(
            Problem::new(
                ProblemKind::Forbidden,
                "forbidden",
                Text::new("ไม่มีสิทธิ์ทำรายการนี้", "You may not do this"),
            )
            .with_detail(Text::owned(
                format!("ไม่มีสิทธิ์จัดการบริการของหน่วยงาน {agency}"),
                format!("You may not manage clients of agency {agency}"),
            )),
        ),
        RegistrationError::NoSuchAgency(agency) => ApiProblem(
            Problem::new(
                ProblemKind::BadRequest,
                "no-such-agency",
                Text::new("ไม่พบหน่วยงาน", "No such agency"),
            )
            .with_detail(Text::owned(
                format!("ไม่พบหน่วยงาน {agency}"),
                format!("No agency `{agency}`"),
            )),
        ),
        RegistrationError::OAuth(e) => server_problem(e),
    }
}

/// JSON bodies: wrong content types and malformed JSON become problems, never panics.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiProblem> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim() == "application/json")
        });
    if !is_json {
        return Err(ApiProblem::status(415));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiProblem(
            Problem::new(
                ProblemKind::BadRequest,
                "invalid-json",
                Text::new("ข้อมูล JSON ไม่ถูกต้อง", "Invalid JSON body"),
            )
            .with_detail(Text::owned(format!("JSON ไม่ถูกต้อง: {e}"), e.to_string())),
        )
    })
}

/// Register an OpenID relying party for an agency (operator or the agency's administrator).
#[utoipa::path(post, path = "/api/v1/identity/clients", tag = "digital-id",
    request_body(content = Object, content_type = "application/json",
        description = "name {th,en}, agency, redirect_uris, post_logout_redirect_uris, scopes, token_endpoint_auth_method, jwks, id_token_signed_response_alg, min_acr"),
    responses(
        (status = 201, description = "The client, with client_secret shown once", body = Object),
        (status = 400, description = "Invalid registration", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Authentication required", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed for this agency", body = crate::problem::ProblemDocument, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn register_client(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let registration: ClientRegistration = json_body(&headers, &body)?;
    let registered = state
        .oidc
        .register_client(&subject, registration)
        .await
        .map_err(registration_problem)?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(registered),
    )
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct AgencyQuery {
    agency: Option<String>,
}

/// The relying parties the caller may manage.
#[utoipa::path(get, path = "/api/v1/identity/clients", tag = "digital-id",
    params(("agency" = Option<String>, Query, description = "Only this agency's clients")),
    responses((status = 200, description = "`clients`", body = Object),
        (status = 401, description = "Authentication required", body = crate::problem::ProblemDocument, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_clients(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AgencyQuery>,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let clients = state
        .oidc
        .clients(query.agency.as_deref())
        .await
        .map_err(server_problem)?
        .into_iter()
        .filter(|c| subject.may(&Action::ManageClients, &Resource::Agency(c.agency.clone())))
        .collect::<Vec<_>>();
    Ok(Json(serde_json::json!({ "clients": clients })).into_response())
}

/// Remove a relying party; everything issued to it is revoked.
#[utoipa::path(delete, path = "/api/v1/identity/clients/{client_id}", tag = "digital-id",
    params(("client_id" = String, Path, description = "The client")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No such client", body = crate::problem::ProblemDocument, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn delete_client(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    if state
        .oidc
        .delete_client(&subject, &client_id)
        .await
        .map_err(registration_problem)?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiProblem::status(404))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleChange {
    identity_id: String,
    agency: String,
    role: String,
}

async fn change_role(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    grant: bool,
) -> Result<Response, ApiProblem> {
    let subject = caller(state, headers).await?;
    let change: RoleChange = json_body(headers, body)?;
    let role: Role = change
        .role
        .parse()
        .map_err(|e: saphan_identity::authz::UnknownRole| {
            ApiProblem(
                Problem::new(
                    ProblemKind::BadRequest,
                    "unknown-role",
                    Text::new("ไม่รู้จักบทบาทนี้", "Unknown role"),
                )
                .with_detail(Text::owned(e.to_string(), e.to_string())),
            )
        })?;
    let result = if grant {
        state
            .directory
            .grant_role(&subject, &change.identity_id, &change.agency, role)
            .await
    } else {
        state
            .directory
            .revoke_role(&subject, &change.identity_id, &change.agency, role)
            .await
    };
    let changed = result?;
    Ok(Json(serde_json::json!({ "changed": changed })).into_response())
}

/// Grant an official a role in an agency (through the authorization layer; audited).
#[utoipa::path(post, path = "/api/v1/identity/roles", tag = "digital-id",
    request_body(content = Object, content_type = "application/json", description = "identity_id, agency, role"),
    responses((status = 200, description = "`changed`: false when already held", body = Object),
        (status = 403, description = "Not allowed", body = crate::problem::ProblemDocument, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn grant_role(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiProblem> {
    change_role(&state, &headers, &body, true).await
}

/// Take a role away (through the authorization layer; audited).
#[utoipa::path(delete, path = "/api/v1/identity/roles", tag = "digital-id",
    request_body(content = Object, content_type = "application/json", description = "identity_id, agency, role"),
    responses((status = 200, description = "`changed`: false when not held", body = Object),
        (status = 403, description = "Not allowed", body = crate::problem::ProblemDocument, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn revoke_role(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiProblem> {
    change_role(&state, &headers, &body, false).await
}

/// The agencies known to the digital ID.
#[utoipa::path(get, path = "/api/v1/identity/agencies", tag = "digital-id",
    responses((status = 200, description = "`agencies`: code and name", body = Object)))]
pub(crate) async fn agencies(State(state): State<AppState>) -> Result<Response, ApiProblem> {
    let agencies = state.directory.agencies().await?;
    Ok(Json(serde_json::json!({ "agencies": agencies })).into_response())
}
