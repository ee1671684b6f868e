//! "My account": who the platform thinks you are and how surely, your sign-in methods, your
//! sessions and the services you have allowed, each revocable.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

use crate::cookies;
use crate::oidc::{current_session, see_other, server_problem};
use crate::portal::LangQuery;
use crate::problem::ApiProblem;
use crate::state::AppState;

#[derive(Deserialize)]
pub(crate) struct AccountQuery {
    /// The card check's outcome, after [`idcard_check`].
    #[serde(default)]
    idcard: String,
}

pub(crate) async fn account_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
    Query(outcome): Query<AccountQuery>,
) -> Result<Response, ApiProblem> {
    let Some(session) = current_session(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let Some(identity) = state.directory.get(&session.identity_id).await? else {
        return Ok(see_other("/signin"));
    };
    let methods = state.directory.methods(&identity.id).await?;
    let passkeys = state.directory.passkeys(&identity.id).await?;
    let roles = state.directory.roles_of(&identity.id).await?;
    let act_for = state.directory.act_for(&identity.id).await?;
    let sessions = state
        .oidc
        .sessions_of(&identity.id, Some(&session))
        .await
        .map_err(server_problem)?;
    let apps: Vec<serde_json::Value> = state
        .oidc
        .consents_of(&identity.id)
        .await
        .map_err(server_problem)?
        .into_iter()
        .map(|(client, scopes, granted_at)| {
            let items: Vec<serde_json::Value> = scopes
                .iter()
                .filter_map(|s| saphan_oidc::scope::info(s))
                .map(|s| serde_json::json!({ "th": s.consent.th, "en": s.consent.en }))
                .collect();
            serde_json::json!({
                "client_id": client.client_id, "th": client.name.th, "en": client.name.en,
                "agency": client.agency, "items": items, "granted_at": granted_at,
            })
        })
        .collect();
    let roles: Vec<serde_json::Value> = roles
        .iter()
        .map(|r| serde_json::json!({ "agency": r.agency, "th": r.role.title().th, "en": r.role.title().en }))
        .collect();
    Ok(crate::signin::form_page(
        &state,
        &headers,
        &query,
        "account.html",
        "/account",
        StatusCode::OK,
        minijinja::context! {
            name_th => identity.name.th.to_string(), name_en => identity.name.en.to_string(),
            kind => identity.kind.as_str(),
            ial => identity.effective_ial().as_str(), recorded_ial => identity.ial.as_str(),
            reproofing => identity.reproofing_required,
            aal => session.aal.as_str(),
            methods => minijinja::Value::from_serialize(methods),
            passkeys => minijinja::Value::from_serialize(&passkeys),
            sessions => minijinja::Value::from_serialize(&sessions),
            apps => minijinja::Value::from_serialize(&apps),
            roles => minijinja::Value::from_serialize(&roles),
            act_for => minijinja::Value::from_serialize(&act_for),
            idcard_check => identity.national_id.is_some()
                && !state.config.identity.idcard_check_service.is_empty(),
            idcard => match outcome.idcard.as_str() {
                o @ ("verified" | "mismatch" | "invalid" | "unavailable") => o,
                _ => "",
            },
        },
    ))
}

#[derive(Deserialize)]
pub(crate) struct AccountAction {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    session: String,
    #[serde(default)]
    client_id: String,
}

pub(crate) async fn end_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<AccountAction>,
) -> Result<Response, ApiProblem> {
    let Some(current) = account_action(&state, &headers, &form.csrf).await? else {
        return Ok(see_other("/signin"));
    };
    state
        .oidc
        .end_session_of(&current.identity_id, &form.session)
        .await
        .map_err(server_problem)?;
    Ok(see_other(if form.session == current.public_id {
        "/"
    } else {
        "/account"
    }))
}

pub(crate) async fn revoke_app(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<AccountAction>,
) -> Result<Response, ApiProblem> {
    let Some(current) = account_action(&state, &headers, &form.csrf).await? else {
        return Ok(see_other("/signin"));
    };
    state
        .oidc
        .revoke_consent(&current.identity_id, &form.client_id)
        .await
        .map_err(server_problem)?;
    Ok(see_other("/account"))
}

/// The session behind an account form, after the CSRF check.
async fn account_action(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Option<saphan_oidc::Session>, ApiProblem> {
    if !cookies::csrf_ok(headers, csrf) {
        return Err(crate::signin::csrf_failure());
    }
    current_session(state, headers).await
}

pub(crate) async fn recover_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Response {
    crate::signin::form_page(
        &state,
        &headers,
        &query,
        "recover.html",
        "/recover",
        StatusCode::OK,
        minijinja::context! { error => None::<String> },
    )
}

#[derive(Deserialize)]
pub(crate) struct RecoverForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    nationality: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
}

/// Account recovery: a one-time code and a new password. Ends every session; the new one is
/// AAL 1 and the identity asserts IAL 1 until proofed again (see `Directory::recover`).
pub(crate) async fn recover_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    crate::ClientAddr(source): crate::ClientAddr,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    Form(form): Form<RecoverForm>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &form.csrf) {
        return Err(crate::signin::csrf_failure());
    }
    let lang = LangQuery::from_raw(raw.as_deref());
    let again = |status: StatusCode, error: &str| {
        crate::signin::form_page(
            &state,
            &headers,
            &lang,
            "recover.html",
            "/recover",
            status,
            minijinja::context! { error => error },
        )
    };
    let Ok(login) = saphan_identity::LoginId::parse(&form.identifier, &form.nationality) else {
        return Ok(again(StatusCode::BAD_REQUEST, "invalid"));
    };
    let identity = match state
        .directory
        .recover(&login, &form.code, &form.password, &source)
        .await
    {
        Ok(identity) => identity,
        Err(saphan_identity::SignInError::Invalid) => {
            return Ok(again(StatusCode::UNAUTHORIZED, "invalid"))
        }
        Err(saphan_identity::SignInError::Locked { .. }) => {
            return Ok(again(StatusCode::TOO_MANY_REQUESTS, "locked"))
        }
        Err(saphan_identity::SignInError::Other(saphan_identity::IdentityError::WeakPassword)) => {
            return Ok(again(StatusCode::BAD_REQUEST, "weak"))
        }
        Err(saphan_identity::SignInError::Other(e)) => return Err(ApiProblem(e.problem())),
    };
    state
        .oidc
        .end_all_sessions(&identity.id, "account recovered")
        .await
        .map_err(server_problem)?;
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (cookie, _) = state
        .oidc
        .start_session(&identity.id, saphan_identity::Aal::L1, &["pwd"], user_agent)
        .await
        .map_err(server_problem)?;
    let mut response = see_other("/account");
    crate::oidc::set_session_cookies(&state, &mut response, &cookie, &identity.id).await?;
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// Shows ten fresh recovery codes, once.
pub(crate) async fn new_recovery_codes(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, ApiProblem> {
    let Some(session) = account_action(&state, &headers, &form.csrf).await? else {
        return Ok(see_other("/signin"));
    };
    require_full_strength(&state, &session).await?;
    let codes = state
        .directory
        .new_recovery_codes(&session.identity_id)
        .await?;
    Ok(crate::signin::form_page(
        &state,
        &headers,
        &LangQuery::from_raw(raw.as_deref()),
        "recovery_codes.html",
        "/account",
        StatusCode::OK,
        minijinja::context! { codes => codes },
    ))
}

/// Starts TOTP enrolment: a fresh secret to put into an authenticator app.
pub(crate) async fn totp_begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, ApiProblem> {
    let Some(session) = account_action(&state, &headers, &form.csrf).await? else {
        return Ok(see_other("/signin"));
    };
    require_full_strength(&state, &session).await?;
    let secret = state.directory.begin_totp(&session.identity_id).await?;
    totp_page(
        &state,
        &headers,
        raw.as_deref(),
        &session.identity_id,
        &secret,
        None,
        StatusCode::OK,
    )
    .await
}

async fn totp_page(
    state: &AppState,
    headers: &HeaderMap,
    raw: Option<&str>,
    identity_id: &str,
    secret: &[u8],
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ApiProblem> {
    use saphan_identity::totp;
    // The app shows the account by the opaque id's start, never by the national id.
    let account = format!("Saphan-{}", &identity_id[..8.min(identity_id.len())]);
    Ok(crate::signin::form_page(
        state,
        headers,
        &LangQuery::from_raw(raw),
        "totp_setup.html",
        "/account",
        status,
        minijinja::context! {
            secret => totp::base32_encode(secret),
            uri => totp::provisioning_uri("Saphan", &account, secret),
            error => error,
        },
    ))
}

#[derive(Deserialize)]
pub(crate) struct TotpConfirm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// Finishes TOTP enrolment with a code from the app.
pub(crate) async fn totp_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    Form(form): Form<TotpConfirm>,
) -> Result<Response, ApiProblem> {
    let Some(session) = account_action(&state, &headers, &form.csrf).await? else {
        return Ok(see_other("/signin"));
    };
    if state
        .directory
        .confirm_totp(&session.identity_id, &form.code)
        .await?
    {
        return Ok(see_other("/account"));
    }
    match state
        .directory
        .pending_totp_secret(&session.identity_id)
        .await?
    {
        Some(secret) => {
            totp_page(
                &state,
                &headers,
                raw.as_deref(),
                &session.identity_id,
                &secret,
                Some("invalid"),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        None => Ok(see_other("/account")),
    }
}

/// Binding a new authenticator (or new recovery codes) needs a sign-in as strong as the
/// account's strongest method: a password-only session must not add what would then pass as a
/// second factor on an account that has one.
pub(crate) async fn require_full_strength(
    state: &AppState,
    session: &saphan_oidc::Session,
) -> Result<(), ApiProblem> {
    let methods = state.directory.methods(&session.identity_id).await?;
    if session.aal < methods.max_aal() {
        return Err(ApiProblem(saphan_core::Problem::new(
            saphan_core::ProblemKind::Forbidden,
            "step-up-required",
            saphan_core::Text::new(
                "โปรดออกจากระบบแล้วเข้าสู่ระบบใหม่ด้วยปัจจัยที่สองก่อน",
                "Please sign out and sign in again with your second factor first",
            ),
        )));
    }
    Ok(())
}

/// Removes the authenticator app, from a sign-in as strong as the account allows.
pub(crate) async fn totp_remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, ApiProblem> {
    let Some(session) = account_action(&state, &headers, &form.csrf).await? else {
        return Ok(see_other("/signin"));
    };
    require_full_strength(&state, &session).await?;
    state.directory.remove_totp(&session.identity_id).await?;
    Ok(see_other("/account"))
}

#[derive(Deserialize)]
pub(crate) struct IdCardCheck {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    laser_code: String,
}

/// Raises a citizen's identity assurance with their ID card: the digital ID asks the civil
/// registry's card check through the exchange (national id and Thai names from the account,
/// birth date and laser code as typed), and on a match records IAL 2.1 (evidence checked
/// remotely against the authoritative source) proofed by
/// `remote:dopa-idcard`. The answer comes back to the account page as `?idcard=...`.
pub(crate) async fn idcard_check(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<IdCardCheck>,
) -> Result<Response, ApiProblem> {
    let Some(session) = account_action(&state, &headers, &form.csrf).await? else {
        return Ok(see_other("/signin"));
    };
    let back = |outcome: &str| Ok(see_other(&format!("/account?idcard={outcome}#idcard")));
    let Some(identity) = state.directory.get(&session.identity_id).await? else {
        return Ok(see_other("/signin"));
    };
    let Some(nid) = identity.national_id else {
        return back("not-citizen");
    };
    let laser: String = form
        .laser_code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_uppercase();
    let laser_ok = laser.len() == 12
        && laser[..2].chars().all(|c| c.is_ascii_uppercase())
        && laser[2..].chars().all(|c| c.is_ascii_digit());
    let birth = form.birth_date.trim();
    let birth_ok = time::Date::parse(
        birth,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .is_ok();
    if !laser_ok || !birth_ok {
        return back("invalid");
    }
    let service = &state.config.identity.idcard_check_service;
    if service.is_empty() {
        return back("unavailable");
    }
    let (first, last) = identity
        .name
        .th
        .split_once(' ')
        .map(|(f, l)| (f.to_string(), l.to_string()))
        .unwrap_or_else(|| (identity.name.th.to_string(), String::new()));
    let outcome = saphan_registry::service::check_idcard(
        &state.exchange,
        &state.config.identity.exchange_subsystem,
        service,
        &saphan_registry::service::IdCard {
            national_id: nid.digits(),
            first_name_th: first,
            last_name_th: last,
            birth_date: birth.to_string(),
            laser_code: laser,
        },
    )
    .await;
    match outcome {
        Ok(true) => {
            state
                .directory
                .reproof(
                    &identity.id,
                    saphan_identity::Ial::L2_1,
                    "remote:dopa-idcard",
                )
                .await?;
            back("verified")
        }
        Ok(false) => back("mismatch"),
        Err(e) => {
            tracing::warn!(error = %e, "the ID card check could not be asked");
            back("unavailable")
        }
    }
}
