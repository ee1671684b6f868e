//! The digital ID's pages for people: sign-in (password, then TOTP when enrolled), consent,
//! and sign-out. Server-rendered, Thai first, usable without JavaScript. Every form carries the
//! CSRF token; every failure shows the same message whether or not the account exists.

use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use saphan_identity::{Aal, IdentityError, LoginId, PasswordAttempt, SignInError};
use serde::Deserialize;

use crate::cookies;
use crate::oidc::{current_session, next_step, see_other, server_problem, set_session_cookies};
use crate::portal::{page, LangQuery};
use crate::problem::ApiProblem;
use crate::state::AppState;
use crate::ClientAddr;

/// How long the password step stays valid while the person finds their TOTP code.
const SECOND_FACTOR_SECS: i64 = 300;

#[derive(Deserialize)]
pub(crate) struct RequestQuery {
    request: Option<String>,
    lang: Option<String>,
}

impl RequestQuery {
    fn lang_query(&self) -> LangQuery {
        LangQuery {
            lang: self.lang.clone(),
        }
    }
}

/// A page's own address with its pending request, so the language switch keeps the sign-in.
fn page_path(path: &str, request: Option<&str>) -> String {
    match request.filter(|r| {
        !r.is_empty()
            && r.len() <= saphan_oidc::MAX_SEALED_REQUEST
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    }) {
        Some(r) => format!("{path}?request={r}"),
        None => path.to_string(),
    }
}

/// Renders a form page with a CSRF token (setting its cookie when missing) and `status`.
pub(crate) fn form_page(
    state: &AppState,
    headers: &HeaderMap,
    lang: &LangQuery,
    template: &str,
    path: &str,
    status: StatusCode,
    extra: minijinja::Value,
) -> Response {
    let (csrf, fresh) = cookies::csrf_token(headers);
    let context = minijinja::context! { csrf => csrf, ..extra };
    let mut response = page(state, headers, lang, template, path, context);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if fresh {
        let secure = if state.config.public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{}={csrf}; Path=/; HttpOnly; SameSite=Lax{secure}",
            cookies::CSRF
        )) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The request a sign-in page is for, if it names one that is still pending.
async fn pending(
    state: &AppState,
    request: Option<&str>,
) -> Result<Option<(String, saphan_oidc::AuthRequest)>, ApiProblem> {
    let Some(id) = request.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    match state.oidc.load_request(id).await.map_err(server_problem)? {
        Some(r) => Ok(Some((id.to_string(), r))),
        None => Err(expired_request()),
    }
}

fn expired_request() -> ApiProblem {
    ApiProblem(
        saphan_core::Problem::new(
            saphan_core::ProblemKind::BadRequest,
            "sign-in-expired",
            saphan_core::Text::new("คำขอเข้าสู่ระบบหมดอายุแล้ว", "This sign-in has expired"),
        )
        .with_detail(saphan_core::Text::new(
            "โปรดกลับไปที่บริการที่คุณใช้อยู่แล้วเริ่มเข้าสู่ระบบใหม่",
            "Please go back to the service you were using and sign in again",
        )),
    )
}

async fn signin_context(
    state: &AppState,
    request: Option<&(String, saphan_oidc::AuthRequest)>,
) -> Result<minijinja::Value, ApiProblem> {
    let client = match request {
        Some((_, r)) => state
            .oidc
            .client(&r.client_id)
            .await
            .map_err(server_problem)?,
        None => None,
    };
    let upstreams: Vec<serde_json::Value> = state
        .oidc
        .upstream_list()
        .into_iter()
        .map(|u| serde_json::json!({ "name": u.name, "th": u.title.th, "en": u.title.en }))
        .collect();
    Ok(minijinja::context! {
        upstreams => minijinja::Value::from_serialize(&upstreams),
        request => request.map(|(id, _)| id.clone()),
        client_th => client.as_ref().map(|c| c.name.th.to_string()),
        client_en => client.as_ref().map(|c| c.name.en.to_string()),
    })
}

pub(crate) async fn signin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<RequestQuery>,
) -> Result<Response, ApiProblem> {
    let request = pending(&state, query.request.as_deref()).await?;
    let context = signin_context(&state, request.as_ref()).await?;
    Ok(form_page(
        &state,
        &headers,
        &query.lang_query(),
        "signin.html",
        &page_path("/signin", query.request.as_deref()),
        StatusCode::OK,
        minijinja::context! { error => None::<String>, identifier => "", nationality => "", ..context },
    ))
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    request: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    nationality: String,
    #[serde(default)]
    password: String,
}

pub(crate) fn csrf_failure() -> ApiProblem {
    ApiProblem(
        saphan_core::Problem::new(
            saphan_core::ProblemKind::Forbidden,
            "form-expired",
            saphan_core::Text::new(
                "แบบฟอร์มหมดอายุ โปรดลองอีกครั้ง",
                "This form has expired; please try again",
            ),
        )
        .with_detail(saphan_core::Text::new(
            "เปิดหน้าเดิมใหม่แล้วส่งอีกครั้ง (เบราว์เซอร์ต้องรับคุกกี้ของเว็บไซต์นี้)",
            "Open the page again and resubmit (the browser must accept this site's cookies)",
        )),
    )
}

/// Where to go after a successful sign-in: the pending request, or the account page.
pub(crate) async fn after_sign_in(
    state: &AppState,
    request_id: &str,
    loaded: Option<(String, saphan_oidc::AuthRequest)>,
    session: &saphan_oidc::Session,
    identity: Option<&saphan_identity::Identity>,
) -> Result<Response, ApiProblem> {
    if request_id.is_empty() {
        return Ok(see_other("/account"));
    }
    let (id, request) = match loaded {
        Some(pending) => pending,
        None => pending(state, Some(request_id))
            .await?
            .ok_or_else(expired_request)?,
    };
    next_step(state, &request, Some(session), Some(&id), identity).await
}

pub(crate) async fn signin_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(source): ClientAddr,
    RawQuery(raw): RawQuery,
    Form(form): Form<SignInForm>,
) -> Result<Response, ApiProblem> {
    let lang = LangQuery::from_raw(raw.as_deref());
    if !cookies::csrf_ok(&headers, &form.csrf) {
        return Err(csrf_failure());
    }
    let request = pending(&state, Some(&form.request)).await?;
    // Only a failed attempt shows the page again; a success goes straight on.
    let login = LoginId::parse(&form.identifier, &form.nationality);
    let failure = match &login {
        Ok(_) => None,
        Err(IdentityError::NationalId(_)) => Some((StatusCode::BAD_REQUEST, "national-id", None)),
        Err(IdentityError::BadNationality) => Some((StatusCode::BAD_REQUEST, "nationality", None)),
        Err(_) => Some((StatusCode::BAD_REQUEST, "identifier", None)),
    };
    let outcome = match &login {
        Ok(login) => {
            let device = cookies::get(&headers, cookies::DEVICE);
            state
                .directory
                .sign_in_password(PasswordAttempt {
                    login,
                    password: &form.password,
                    source: &source,
                    device_token: device.as_deref(),
                })
                .await
        }
        Err(_) => Err(SignInError::Invalid),
    };
    let failure = match (failure, &outcome) {
        (Some(f), _) => Some(f),
        (None, Ok(_)) => None,
        (None, Err(SignInError::Invalid)) => Some((StatusCode::UNAUTHORIZED, "invalid", None)),
        (None, Err(SignInError::Locked { retry_after_secs })) => Some((
            StatusCode::TOO_MANY_REQUESTS,
            "locked",
            Some(*retry_after_secs),
        )),
        (None, Err(SignInError::Other(_))) => None,
    };
    if let Some((status, error, retry)) = failure {
        let context = signin_context(&state, request.as_ref()).await?;
        let mut response = form_page(
            &state,
            &headers,
            &lang,
            "signin.html",
            &page_path("/signin", Some(&form.request)),
            status,
            minijinja::context! {
                error => error, retry_after => retry,
                identifier => form.identifier.chars().take(64).collect::<String>(),
                nationality => form.nationality.chars().take(3).collect::<String>(),
                ..context.clone()
            },
        );
        if let Some(secs) = retry {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        return Ok(response);
    }
    let outcome = match outcome {
        Ok(o) => o,
        Err(SignInError::Other(e)) => return Err(ApiProblem::from(e)),
        Err(_) => unreachable!("failures were answered above"),
    };
    let user_agent = user_agent(&headers);
    if outcome.second_factor_required {
        let expires = saphan_core::clock::now_unix() + SECOND_FACTOR_SECS;
        let message = format!("{}.{expires}", outcome.identity.id);
        let mac = state.directory.mac("second-factor", &message).await?;
        let mut response = see_other(&format!(
            "/signin/totp?request={}&lang={}",
            form.request,
            crate::portal::request_lang(&headers, raw.as_deref()).code()
        ));
        cookies::set(
            &state,
            &mut response,
            cookies::SECOND_FACTOR,
            &format!("{message}.{mac}"),
            SECOND_FACTOR_SECS,
        );
        return Ok(response);
    }
    let (cookie, session) = state
        .oidc
        .start_session(&outcome.identity.id, Aal::L1, &["pwd"], &user_agent)
        .await
        .map_err(server_problem)?;
    let mut response = after_sign_in(
        &state,
        &form.request,
        request,
        &session,
        Some(&outcome.identity),
    )
    .await?;
    set_session_cookies(&state, &mut response, &cookie, &outcome.identity.id).await?;
    Ok(response)
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The identity that passed the password step, from the short-lived signed cookie.
async fn second_factor_identity(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiProblem> {
    let Some(value) = cookies::get(headers, cookies::SECOND_FACTOR) else {
        return Ok(None);
    };
    let mut parts = value.rsplitn(2, '.');
    let (Some(mac), Some(message)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let Some((identity_id, expires)) = message.split_once('.') else {
        return Ok(None);
    };
    let expected = state.directory.mac("second-factor", message).await?;
    let fresh = expires
        .parse::<i64>()
        .is_ok_and(|e| e > saphan_core::clock::now_unix());
    let valid: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), mac.as_bytes()).into();
    Ok((valid && fresh).then(|| identity_id.to_string()))
}

pub(crate) async fn totp_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<RequestQuery>,
) -> Result<Response, ApiProblem> {
    if second_factor_identity(&state, &headers).await?.is_none() {
        return Ok(see_other(&format!(
            "/signin?request={}",
            query.request.as_deref().unwrap_or("")
        )));
    }
    Ok(form_page(
        &state,
        &headers,
        &query.lang_query(),
        "signin_totp.html",
        &page_path("/signin/totp", query.request.as_deref()),
        StatusCode::OK,
        minijinja::context! { request => query.request, error => None::<String> },
    ))
}

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    #[serde(default)]
    request: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

pub(crate) async fn totp_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(source): ClientAddr,
    RawQuery(raw): RawQuery,
    Form(form): Form<CodeForm>,
) -> Result<Response, ApiProblem> {
    let lang = LangQuery::from_raw(raw.as_deref());
    if !cookies::csrf_ok(&headers, &form.csrf) {
        return Err(csrf_failure());
    }
    let Some(identity_id) = second_factor_identity(&state, &headers).await? else {
        return Ok(see_other(&format!("/signin?request={}", form.request)));
    };
    let again = |status: StatusCode, error: &str| {
        form_page(
            &state,
            &headers,
            &lang,
            "signin_totp.html",
            &page_path("/signin/totp", Some(&form.request)),
            status,
            minijinja::context! { request => form.request.clone(), error => error },
        )
    };
    match state
        .directory
        .sign_in_totp(
            &identity_id,
            &form.code,
            &source,
            cookies::get(&headers, cookies::DEVICE).as_deref(),
        )
        .await
    {
        Ok(()) => {}
        Err(SignInError::Invalid) => return Ok(again(StatusCode::UNAUTHORIZED, "invalid")),
        Err(SignInError::Locked { .. }) => {
            return Ok(again(StatusCode::TOO_MANY_REQUESTS, "locked"))
        }
        Err(SignInError::Other(e)) => return Err(ApiProblem::from(e)),
    }
    let (cookie, session) = state
        .oidc
        .start_session(
            &identity_id,
            Aal::L2,
            &["pwd", "otp", "mfa"],
            &user_agent(&headers),
        )
        .await
        .map_err(server_problem)?;
    let mut response = after_sign_in(&state, &form.request, None, &session, None).await?;
    set_session_cookies(&state, &mut response, &cookie, &identity_id).await?;
    cookies::set(&state, &mut response, cookies::SECOND_FACTOR, "", 0);
    Ok(response)
}

// ---- consent ------------------------------------------------------------------------------

pub(crate) async fn consent_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<RequestQuery>,
) -> Result<Response, ApiProblem> {
    let Some((id, request)) = pending(&state, query.request.as_deref()).await? else {
        return Err(expired_request());
    };
    let Some(session) = current_session(&state, &headers).await? else {
        return Ok(see_other(&format!("/signin?request={id}")));
    };
    let client = state
        .oidc
        .client(&request.client_id)
        .await
        .map_err(server_problem)?
        .ok_or_else(expired_request)?;
    let agency = state.directory.agency(&client.agency).await?;
    let identity = state.directory.get(&session.identity_id).await?;
    let items: Vec<minijinja::Value> = request
        .scopes
        .iter()
        .filter_map(|s| saphan_oidc::scope::info(s))
        .map(|s| {
            minijinja::Value::from_serialize(
                serde_json::json!({ "th": s.consent.th, "en": s.consent.en }),
            )
        })
        .collect();
    Ok(form_page(
        &state,
        &headers,
        &query.lang_query(),
        "consent.html",
        &page_path("/consent", Some(&id)),
        StatusCode::OK,
        minijinja::context! {
            request => id,
            client_th => client.name.th.to_string(), client_en => client.name.en.to_string(),
            agency_th => agency.as_ref().map(|a| a.name.th.to_string()).unwrap_or(client.agency.clone()),
            agency_en => agency.as_ref().map(|a| a.name.en.to_string()).unwrap_or(client.agency.clone()),
            person_th => identity.as_ref().map(|i| i.name.th.to_string()),
            person_en => identity.as_ref().map(|i| i.name.en.to_string()),
            items => items,
        },
    ))
}

#[derive(Deserialize)]
pub(crate) struct ConsentForm {
    #[serde(default)]
    request: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

pub(crate) async fn consent_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &form.csrf) {
        return Err(csrf_failure());
    }
    let Some((id, request)) = pending(&state, Some(&form.request)).await? else {
        return Err(expired_request());
    };
    let Some(session) = current_session(&state, &headers).await? else {
        return Ok(see_other(&format!("/signin?request={id}")));
    };
    match form.decision.as_str() {
        "allow" => {
            // The person has just answered `prompt=consent`: do not ask again.
            let mut request = request;
            request.prompt.retain(|p| p != "consent");
            state
                .oidc
                .grant_consent(&session.identity_id, &request.client_id, &request.scopes)
                .await
                .map_err(server_problem)?;
            next_step(&state, &request, Some(&session), Some(&id), None).await
        }
        "deny" => {
            let url = state
                .oidc
                .deny(&request, &session.identity_id)
                .await
                .map_err(server_problem)?;
            Ok(see_other(&url))
        }
        _ => Err(ApiProblem::status(400)),
    }
}

// ---- sign-out -------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub(crate) struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    ui_locales: Option<String>,
    csrf: Option<String>,
    confirm: Option<String>,
    lang: Option<String>,
}

/// RP-initiated logout (GET from a relying party, or the confirmation form's POST).
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    method: axum::http::Method,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Result<Response, ApiProblem> {
    let text = if method == axum::http::Method::POST {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        raw.clone().unwrap_or_default()
    };
    let params: LogoutParams = serde_urlencoded_params(&text)?;
    let session = current_session(&state, &headers).await?;
    let target = state
        .oidc
        .logout_target(
            params.id_token_hint.as_deref().filter(|s| !s.is_empty()),
            params.client_id.as_deref().filter(|s| !s.is_empty()),
            params
                .post_logout_redirect_uri
                .as_deref()
                .filter(|s| !s.is_empty()),
            params.state.as_deref(),
            session.as_ref(),
        )
        .await
        .map_err(|e| crate::oidc::authorize_page_error(&e))?;
    let confirmed_by_form = method == axum::http::Method::POST
        && params.confirm.as_deref() == Some("yes")
        && cookies::csrf_ok(&headers, params.csrf.as_deref().unwrap_or(""));
    let lang = LangQuery {
        lang: params.lang.clone().or_else(|| {
            params
                .ui_locales
                .as_deref()
                .and_then(|l| {
                    l.split(' ')
                        .find(|t| saphan_core::Lang::from_tag(t).is_some())
                })
                .map(String::from)
        }),
    };
    if session.is_some() && !(target.confirmed || confirmed_by_form) {
        return Ok(form_page(
            &state,
            &headers,
            &lang,
            "logout.html",
            "/oidc/logout",
            StatusCode::OK,
            minijinja::context! {
                id_token_hint => params.id_token_hint, client_id => params.client_id,
                post_logout_redirect_uri => params.post_logout_redirect_uri, state => params.state,
                client_th => target.client.as_ref().map(|c| c.name.th.to_string()),
                client_en => target.client.as_ref().map(|c| c.name.en.to_string()),
            },
        ));
    }
    if let Some(session) = &session {
        state
            .oidc
            .end_session(session, "signed out")
            .await
            .map_err(server_problem)?;
    }
    let mut response = match &target.redirect {
        Some(url) => see_other(url),
        None => page(
            &state,
            &headers,
            &lang,
            "signed_out.html",
            "/oidc/logout",
            minijinja::Value::UNDEFINED,
        ),
    };
    cookies::set(&state, &mut response, cookies::SESSION, "", 0);
    Ok(response)
}

fn serde_urlencoded_params(text: &str) -> Result<LogoutParams, ApiProblem> {
    let mut params = LogoutParams::default();
    for (k, v) in form_urlencoded::parse(text.as_bytes()) {
        if v.len() > 8192 {
            return Err(ApiProblem::status(400));
        }
        let v = Some(v.into_owned());
        match k.as_ref() {
            "id_token_hint" => params.id_token_hint = v,
            "client_id" => params.client_id = v,
            "post_logout_redirect_uri" => params.post_logout_redirect_uri = v,
            "state" => params.state = v,
            "ui_locales" => params.ui_locales = v,
            "csrf" => params.csrf = v,
            "confirm" => params.confirm = v,
            "lang" => params.lang = v,
            _ => {}
        }
    }
    Ok(params)
}

// ---- upstream providers (federation) ------------------------------------------------------

fn upstream_problem(e: saphan_oidc::upstream::UpstreamError) -> ApiProblem {
    use saphan_oidc::upstream::UpstreamError;
    tracing::warn!(error = %e, "federated sign-in failed");
    let (slug, th, en) = match &e {
        UpstreamError::Unknown(_) => (
            "no-such-upstream",
            "ไม่พบผู้ให้บริการยืนยันตัวตนนี้",
            "No such sign-in provider",
        ),
        UpstreamError::BadState => (
            "upstream-sign-in-expired",
            "การเข้าสู่ระบบผ่านผู้ให้บริการภายนอกหมดอายุหรือถูกใช้ไปแล้ว",
            "This sign-in with the other provider expired or was already used",
        ),
        UpstreamError::Refused(_) => (
            "upstream-refused",
            "ผู้ให้บริการยืนยันตัวตนไม่ยืนยันการเข้าสู่ระบบ",
            "The sign-in provider did not confirm the sign-in",
        ),
        UpstreamError::Unreachable(_) => (
            "upstream-unreachable",
            "ติดต่อผู้ให้บริการยืนยันตัวตนไม่ได้ โปรดลองใหม่ภายหลัง",
            "Cannot reach the sign-in provider; please try again later",
        ),
        _ => (
            "upstream-invalid",
            "คำตอบจากผู้ให้บริการยืนยันตัวตนไม่ถูกต้อง",
            "The sign-in provider's answer is not valid",
        ),
    };
    let status = match e {
        UpstreamError::Unreachable(_) => saphan_core::ProblemKind::Status(502),
        UpstreamError::Unknown(_) => saphan_core::ProblemKind::NotFound,
        _ => saphan_core::ProblemKind::BadRequest,
    };
    ApiProblem(saphan_core::Problem::new(
        status,
        slug,
        saphan_core::Text::new(th, en),
    ))
}

/// Starts a sign-in with an upstream provider (ThaID or another).
pub(crate) async fn upstream_begin(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    Query(query): Query<RequestQuery>,
) -> Result<Response, ApiProblem> {
    let request = query.request.unwrap_or_default();
    if !request.is_empty() {
        pending(&state, Some(&request)).await?;
    }
    let (url, browser) = state
        .oidc
        .upstream_begin(&name, &request)
        .await
        .map_err(upstream_problem)?;
    let mut response = see_other(&url);
    cookies::set(&state, &mut response, cookies::UPSTREAM, &browser, 600);
    Ok(response)
}

/// The upstream provider's answer: sign the person in and continue their request.
pub(crate) async fn upstream_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(name): axum::extract::Path<String>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiProblem> {
    let signed_in = state
        .oidc
        .upstream_finish(
            &name,
            &params,
            cookies::get(&headers, cookies::UPSTREAM).as_deref(),
        )
        .await
        .map_err(upstream_problem)?;
    let (cookie, session) = state
        .oidc
        .start_session(
            &signed_in.identity.id,
            signed_in.aal,
            &["fed"],
            &user_agent(&headers),
        )
        .await
        .map_err(server_problem)?;
    let mut response = after_sign_in(
        &state,
        &signed_in.request,
        None,
        &session,
        Some(&signed_in.identity),
    )
    .await?;
    set_session_cookies(&state, &mut response, &cookie, &signed_in.identity.id).await?;
    cookies::set(&state, &mut response, cookies::UPSTREAM, "", 0);
    Ok(response)
}
