//! The admin console: platform status, keys and the latest audit records.
//!
//! The console opens for the holder of the platform's administrator token (the operator's
//! bootstrap and break-glass credential) and for platform administrators signed in with their
//! digital ID. Deny unless granted: with neither, it is closed.
//! A successful sign-in sets a short-lived session cookie, MAC'd with a key derived from the
//! token, so any node can check it without shared session state.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use hmac::{Hmac, Mac};
use saphan_audit::AuditEntry;
use serde::Deserialize;

use crate::portal::{page, LangQuery};
use crate::problem::ApiProblem;
use crate::state::{AdminToken, AppState};

const COOKIE: &str = "saphan_admin";
/// Failed sign-ins a node records per minute. Beyond it, attempts are refused with 429 and only
/// counted in a metric, so that anonymous guessing cannot flood the permanent audit log.
const FAILURES_PER_MINUTE: u32 = 20;

/// The node's budget of failed administrator sign-ins in the current minute.
#[derive(Default)]
pub(crate) struct FailureBudget {
    window: std::sync::Mutex<(Option<std::time::Instant>, u32)>,
}

/// What the budget allows for the next attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Budget {
    Open,
    /// The first refusal of this window: worth one audit record.
    JustExhausted,
    Exhausted,
}

impl FailureBudget {
    fn window(&self) -> std::sync::MutexGuard<'_, (Option<std::time::Instant>, u32)> {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if window
            .0
            .is_none_or(|start| now.duration_since(start).as_secs() >= 60)
        {
            *window = (Some(now), 0);
        }
        window
    }

    /// Checked before the token is even compared: once spent, no guess is evaluated.
    pub(crate) fn check(&self) -> Budget {
        let mut window = self.window();
        match window.1 {
            n if n < FAILURES_PER_MINUTE => Budget::Open,
            n if n == FAILURES_PER_MINUTE => {
                window.1 += 1;
                Budget::JustExhausted
            }
            _ => Budget::Exhausted,
        }
    }

    pub(crate) fn record_failure(&self) {
        self.window().1 += 1;
    }
}

/// Records a sign-in event of the admin console; the response waits until it is durable.
async fn audit_sign_in(state: &AppState, action: &str) -> Result<(), ApiProblem> {
    let entry = AuditEntry::new("admin-console", action, "admin-console", &"");
    state
        .audit
        .append(entry)
        .await
        .map_err(|e| ApiProblem(e.problem()))?;
    Ok(())
}

/// Slows every failed or refused guess; the token has 256 bits, so this is courtesy.
async fn guess_delay() {
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
}
const SESSION_SECS: i64 = 8 * 3600;

/// The MAC over a session's expiry time, keyed by the admin token.
fn session_mac(token: &AdminToken, expires: i64) -> Hmac<sha2::Sha256> {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(token.mac_key()).expect("any key length");
    m.update(b"saphan-admin-session-1");
    m.update(&expires.to_be_bytes());
    m
}

pub(crate) fn session_valid(token: &AdminToken, headers: &HeaderMap) -> bool {
    let now = saphan_core::clock::now_unix();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("saphan_admin="))
        .any(|value| {
            let Some((expires, tag)) = value.split_once('.') else {
                return false;
            };
            let Ok(expires) = expires.parse::<i64>() else {
                return false;
            };
            let Ok(tag) = hex::decode(tag) else {
                return false;
            };
            expires > now && session_mac(token, expires).verify_slice(&tag).is_ok()
        })
}

fn secure_attr(state: &AppState) -> &'static str {
    if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

pub(crate) async fn console(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Result<Response, ApiProblem> {
    let operator = state
        .admin_token
        .as_ref()
        .is_some_and(|token| session_valid(token, &headers));
    // Platform administrators signed in with their digital ID see the console too.
    let official = !operator
        && match crate::oidc::current_session(&state, &headers).await? {
            Some(session) if session.aal >= saphan_identity::Aal::L2 => state
                .directory
                .subject(&session.identity_id)
                .await
                .map_err(|e| ApiProblem(e.problem()))?
                .may(
                    &saphan_identity::Action::ReadAudit,
                    &saphan_identity::Resource::Platform,
                ),
            _ => false,
        };
    if !operator && !official {
        if state.admin_token.is_none() {
            return Err(ApiProblem::status(403).with_detail(saphan_core::Text::new(
                "ยังไม่ได้ตั้งรหัสผู้ดูแลระบบ (SAPHAN_ADMIN_TOKEN หรือไฟล์ admin-token ในไดเรกทอรีข้อมูล) และคุณไม่ได้เข้าสู่ระบบในฐานะผู้ดูแลแพลตฟอร์ม",
                "No administrator token is configured (SAPHAN_ADMIN_TOKEN or the admin-token file in the data directory), and you are not signed in as a platform administrator",
            )));
        }
        return Ok(page(
            &state,
            &headers,
            &query,
            "admin_login.html",
            "/admin",
            minijinja::context! { failed => false },
        ));
    }
    let problem = |e: saphan_audit::AuditError| ApiProblem(e.problem());
    let (head_seq, _) = saphan_audit::head(&state.db).await.map_err(problem)?;
    let checkpoints = saphan_audit::read_checkpoints(&state.db)
        .await
        .map_err(problem)?;
    let mut records = saphan_audit::read_records(&state.db, head_seq.saturating_sub(50), 50)
        .await
        .map_err(problem)?;
    records.reverse();
    let applied = state
        .db
        .schema_status(&[])
        .await
        .map(|s| s.applied.len())
        .map_err(|e| ApiProblem(e.problem()))?;
    let keys: Vec<serde_json::Value> = state
        .keys
        .public_keys()
        .keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "kid": k.kid, "alg": format!("{:?}", k.alg), "purpose": k.purpose.name(),
                "status": format!("{:?}", k.status).to_lowercase(), "created": k.created,
            })
        })
        .collect();
    Ok(page(
        &state,
        &headers,
        &query,
        "admin.html",
        "/admin",
        minijinja::context! {
            version => env!("CARGO_PKG_VERSION"),
            backend => format!("{:?}", state.db.backend()),
            migrations => format!("{applied} / {}", state.known_migrations),
            head_seq => head_seq,
            signed_up_to => checkpoints.last().map_or(0, |c| c.last_seq),
            keys => minijinja::Value::from_serialize(&keys),
            records => minijinja::Value::from_serialize(&records),
        },
    ))
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiProblem> {
    let Some(token) = &state.admin_token else {
        return Err(ApiProblem::status(403));
    };
    let budget = state.admin_failures.check();
    if budget != Budget::Open {
        metrics::counter!("saphan_admin_signin_throttled_total").increment(1);
        if budget == Budget::JustExhausted {
            audit_sign_in(&state, "admin.sign-in-throttled").await?;
        }
        guess_delay().await;
        let mut response = ApiProblem::status(429).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return Ok(response);
    }
    let ok = token.matches(&form.token);
    if !ok {
        state.admin_failures.record_failure();
    }
    let action = if ok {
        "admin.sign-in"
    } else {
        "admin.sign-in-failed"
    };
    audit_sign_in(&state, action).await?;
    if !ok {
        guess_delay().await;
        let mut response = page(
            &state,
            &headers,
            &query,
            "admin_login.html",
            "/admin",
            minijinja::context! { failed => true },
        );
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    }
    let expires = saphan_core::clock::now_unix() + SESSION_SECS;
    let cookie = format!(
        "{COOKIE}={expires}.{}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}{}",
        hex::encode(session_mac(token, expires).finalize().into_bytes()),
        secure_attr(&state)
    );
    let mut response = Redirect::to("/admin").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("ascii cookie"),
    );
    Ok(response)
}

pub(crate) async fn logout(State(state): State<AppState>) -> Response {
    let mut response = Redirect::to("/").into_response();
    let cookie = format!(
        "{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure_attr(&state)
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("ascii cookie"),
    );
    response
}
