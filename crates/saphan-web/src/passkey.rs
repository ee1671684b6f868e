//! Passkey ceremonies over JSON, for `assets/passkey.js`: sign-in (discoverable credentials) and
//! registration from "My account". The page works without JavaScript; passkeys need it.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use saphan_identity::{Aal, SignInError};
use serde::Deserialize;

use crate::cookies;
use crate::oidc::{current_session, see_other, server_problem, set_session_cookies};
use crate::problem::ApiProblem;
use crate::state::AppState;
use crate::ClientAddr;

fn passkeys(state: &AppState) -> Result<&saphan_identity::Passkeys, ApiProblem> {
    state.passkeys.as_ref().ok_or_else(|| {
        ApiProblem::status(404).with_detail(saphan_core::Text::new(
            "แพลตฟอร์มนี้ยังไม่เปิดใช้พาสคีย์ (public_url ต้องเป็นชื่อโดเมน)",
            "Passkeys are off on this platform (public_url must be a domain name)",
        ))
    })
}

#[derive(Deserialize)]
pub(crate) struct Begin {
    csrf: String,
}

pub(crate) async fn signin_begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<Begin>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &body.csrf) {
        return Err(crate::signin::csrf_failure());
    }
    let ceremony = passkeys(&state)?.begin_sign_in().await?;
    Ok(
        Json(serde_json::json!({ "ceremony": ceremony.id, "options": ceremony.options }))
            .into_response(),
    )
}

#[derive(Deserialize)]
pub(crate) struct SignInFinish {
    csrf: String,
    ceremony: String,
    #[serde(default)]
    request: String,
    credential: serde_json::Value,
}

pub(crate) async fn signin_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(source): ClientAddr,
    Json(body): Json<SignInFinish>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &body.csrf) {
        return Err(crate::signin::csrf_failure());
    }
    let identity_id = match passkeys(&state)?
        .finish_sign_in(&body.ceremony, &body.credential, &source)
        .await
    {
        Ok(id) => id,
        Err(SignInError::Invalid) => {
            return Err(ApiProblem(saphan_core::Problem::new(
                saphan_core::ProblemKind::Unauthorized,
                "passkey-refused",
                saphan_core::Text::new(
                    "ใช้พาสคีย์นี้เข้าสู่ระบบไม่ได้",
                    "This passkey could not sign you in",
                ),
            )))
        }
        Err(SignInError::Locked { .. }) => return Err(ApiProblem::status(429)),
        Err(SignInError::Other(e)) => return Err(ApiProblem::from(e)),
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (cookie, session) = state
        .oidc
        .start_session(&identity_id, Aal::L2, &["hwk", "user", "mfa"], user_agent)
        .await
        .map_err(server_problem)?;
    let next = crate::signin::after_sign_in(&state, &body.request, None, &session, None).await?;
    let location = next
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("/account")
        .to_string();
    let mut response = Json(serde_json::json!({ "redirect": location })).into_response();
    set_session_cookies(&state, &mut response, &cookie, &identity_id).await?;
    Ok(response)
}

pub(crate) async fn register_begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<Begin>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &body.csrf) {
        return Err(crate::signin::csrf_failure());
    }
    let Some(session) = current_session(&state, &headers).await? else {
        return Err(ApiProblem::status(401));
    };
    crate::account::require_full_strength(&state, &session).await?;
    let ceremony = passkeys(&state)?
        .begin_registration(&session.identity_id)
        .await?;
    Ok(
        Json(serde_json::json!({ "ceremony": ceremony.id, "options": ceremony.options }))
            .into_response(),
    )
}

#[derive(Deserialize)]
pub(crate) struct RegisterFinish {
    csrf: String,
    ceremony: String,
    credential: serde_json::Value,
    #[serde(default)]
    name: String,
}

pub(crate) async fn register_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<RegisterFinish>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &body.csrf) {
        return Err(crate::signin::csrf_failure());
    }
    let Some(session) = current_session(&state, &headers).await? else {
        return Err(ApiProblem::status(401));
    };
    let id = passkeys(&state)?
        .finish_registration(
            &session.identity_id,
            &body.ceremony,
            &body.credential,
            &body.name,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "credential_id": id })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct Remove {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    credential_id: String,
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Remove>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &form.csrf) {
        return Err(crate::signin::csrf_failure());
    }
    let Some(session) = current_session(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    state
        .directory
        .remove_passkey(&session.identity_id, &form.credential_id)
        .await?;
    Ok(see_other("/account"))
}
