//! The digital ID's admin pages: relying parties and officials' roles, for the platform operator
//! (admin-console session) and for officials whose roles allow it (an agency's administrator
//! manages that agency's clients and roles). Every change goes through the same authorization
//! layer and audit records as the API.

use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use saphan_core::Text;
use saphan_identity::{Action, LoginId, Resource, Role, Subject};
use saphan_oidc::ClientRegistration;
use serde::Deserialize;

use crate::cookies;
use crate::oidc::{current_session, see_other, server_problem};
use crate::portal::LangQuery;
use crate::problem::ApiProblem;
use crate::signin::{csrf_failure, form_page};
use crate::state::AppState;

/// The operator (admin-console session) or a signed-in official; `None` for anyone else.
pub(crate) async fn admin_subject(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Subject>, ApiProblem> {
    if let Some(token) = &state.admin_token {
        if crate::admin::session_valid(token, headers) {
            return Ok(Some(Subject::Operator));
        }
    }
    match current_session(state, headers).await? {
        // Administration needs a two-factor sign-in (AAL 2).
        Some(session) if session.aal >= saphan_identity::Aal::L2 => {
            Ok(Some(state.directory.subject(&session.identity_id).await?))
        }
        _ => Ok(None),
    }
}

/// Agencies whose clients or roles `subject` may manage.
async fn manageable(
    state: &AppState,
    subject: &Subject,
) -> Result<Vec<saphan_identity::Agency>, ApiProblem> {
    Ok(state
        .directory
        .agencies()
        .await?
        .into_iter()
        .filter(|a| {
            let agency = Resource::Agency(a.code.clone());
            subject.may(&Action::ManageClients, &agency)
                || subject.may(&Action::GrantRole(Role::Reviewer), &agency)
        })
        .collect())
}

fn forbidden() -> ApiProblem {
    ApiProblem::status(403).with_detail(Text::new(
        "เฉพาะผู้ดูแลแพลตฟอร์มหรือผู้ดูแลหน่วยงาน โปรดเข้าสู่ระบบด้วยดิจิทัลไอดีหรือที่คอนโซลผู้ดูแล",
        "Platform and agency administrators only: sign in with your digital ID, or at the admin console",
    ))
}

async fn render(
    state: &AppState,
    headers: &HeaderMap,
    lang: &LangQuery,
    subject: &Subject,
    status: StatusCode,
    message: Option<serde_json::Value>,
) -> Result<Response, ApiProblem> {
    let agencies = manageable(state, subject).await?;
    let mut sections = Vec::new();
    for agency in &agencies {
        let clients = state
            .oidc
            .clients(Some(&agency.code))
            .await
            .map_err(server_problem)?;
        let officials: Vec<serde_json::Value> = state
            .directory
            .officials(&agency.code)
            .await?
            .into_iter()
            .map(|(identity, roles)| {
                serde_json::json!({
                    "id": identity.id, "th": identity.name.th, "en": identity.name.en,
                    "roles": roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect();
        sections.push(serde_json::json!({
            "code": agency.code, "th": agency.name.th, "en": agency.name.en,
            "clients": clients, "officials": officials,
        }));
    }
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let scopes = saphan_oidc::scope::names();
    Ok(form_page(
        state,
        headers,
        lang,
        "identity_admin.html",
        "/admin/identity",
        status,
        minijinja::context! {
            sections => minijinja::Value::from_serialize(&sections),
            roles => roles, scopes => scopes, message => minijinja::Value::from_serialize(&message),
        },
    ))
}

pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(lang): Query<LangQuery>,
) -> Result<Response, ApiProblem> {
    let Some(subject) = admin_subject(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    if manageable(&state, &subject).await?.is_empty() {
        return Err(forbidden());
    }
    render(&state, &headers, &lang, &subject, StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub(crate) struct ClientForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name_th: String,
    #[serde(default)]
    name_en: String,
    #[serde(default)]
    agency: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    alg: String,
}

pub(crate) async fn register_client(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Form(form): Form<ClientForm>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &form.csrf) {
        return Err(csrf_failure());
    }
    let lang = LangQuery::from_raw(raw.as_deref());
    let Some(subject) = admin_subject(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let registration = ClientRegistration {
        name: Text::owned(form.name_th.trim(), form.name_en.trim()),
        agency: form.agency.clone(),
        redirect_uris: form
            .redirect_uris
            .split_whitespace()
            .map(String::from)
            .collect(),
        post_logout_redirect_uris: Vec::new(),
        scopes: form
            .scopes
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        token_endpoint_auth_method: "client_secret_basic".into(),
        jwks: None,
        id_token_signed_response_alg: if form.alg == "ES256" {
            "ES256".into()
        } else {
            "RS256".into()
        },
        min_acr: None,
    };
    let (status, message) = match state.oidc.register_client(&subject, registration).await {
        Ok(registered) => (
            StatusCode::OK,
            serde_json::json!({ "ok": true, "client_id": registered.client.client_id, "secret": registered.client_secret }),
        ),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "ok": false, "error": e.to_string() }),
        ),
    };
    render(&state, &headers, &lang, &subject, status, Some(message)).await
}

#[derive(Deserialize)]
pub(crate) struct RoleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    agency: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    change: String,
}

pub(crate) async fn change_role(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Form(form): Form<RoleForm>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &form.csrf) {
        return Err(csrf_failure());
    }
    let lang = LangQuery::from_raw(raw.as_deref());
    let Some(subject) = admin_subject(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    // Only someone who may manage this agency's roles learns whether an identifier is known.
    if !subject.may(
        &Action::GrantRole(Role::Reviewer),
        &Resource::Agency(form.agency.clone()),
    ) {
        return Err(forbidden());
    }
    // An official is named by their national id (or an identity id from the list).
    let identity_id = match LoginId::parse(&form.identifier, "") {
        Ok(login) => state.directory.find(&login).await?.map(|i| i.id),
        Err(_) => Some(form.identifier.trim().to_string()),
    };
    let outcome = match (identity_id, form.role.parse::<Role>()) {
        (Some(id), Ok(role)) => {
            let result = if form.change == "revoke" {
                state
                    .directory
                    .revoke_role(&subject, &id, &form.agency, role)
                    .await
            } else {
                state
                    .directory
                    .grant_role(&subject, &id, &form.agency, role)
                    .await
            };
            result.map_err(|e| e.to_string())
        }
        (None, _) => Err("no such person".to_string()),
        (_, Err(e)) => Err(e.to_string()),
    };
    let (status, message) = match outcome {
        Ok(changed) => (
            StatusCode::OK,
            serde_json::json!({ "ok": true, "changed": changed }),
        ),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "ok": false, "error": error }),
        ),
    };
    render(&state, &headers, &lang, &subject, status, Some(message)).await
}
