//! The officials' back office: the inbox of their agencies' tasks for their roles, soonest due
//! first, and a task's page with the application's answers (verified values marked with their
//! registry, time and exchange message id; uploads to open) and the decision form. The same
//! rules as the API: a two-factor session, the role itself in the task's agency.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::Form;
use saphan_applications::{ApplicationError, Decision};
use saphan_core::Text;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::apply::lang_of;
use crate::cookies;
use crate::oidc::see_other;
use crate::portal::LangQuery;
use crate::problem::ApiProblem;
use crate::signin::form_page;
use crate::state::AppState;

async fn official_or_sign_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Result<saphan_identity::Subject, Response>, ApiProblem> {
    if crate::oidc::current_session(state, headers)
        .await?
        .is_none()
    {
        return Ok(Err(see_other("/signin")));
    }
    Ok(Ok(crate::applications_api::official(
        state,
        &Method::GET,
        headers,
    )
    .await?))
}

#[derive(Deserialize)]
pub(crate) struct InboxQuery {
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

pub(crate) async fn inbox(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<InboxQuery>,
) -> Result<Response, ApiProblem> {
    let who = match official_or_sign_in(&state, &headers).await? {
        Ok(who) => who,
        Err(redirect) => return Ok(redirect),
    };
    let lang_query = LangQuery {
        lang: query.lang.clone(),
    };
    let lang = lang_of(&headers, &lang_query);
    let tasks = state.applications.inbox(&who).await?;
    let mut rows = Vec::new();
    for t in &tasks {
        let app = state.applications.get(&t.application_id).await?;
        rows.push(json!({
            "id": t.id, "title": t.title.get(lang), "agency": t.agency, "role": t.role,
            "tracking": app.tracking, "procedure": t.procedure_code,
            "status": t.status.as_str(), "due": t.due_at.get(..10).unwrap_or(&t.due_at),
        }));
    }
    Ok(form_page(
        &state,
        &headers,
        &lang_query,
        "office_inbox.html",
        "/office",
        StatusCode::OK,
        minijinja::Value::from_serialize(json!({"tasks": rows, "done": query.done})),
    ))
}

async fn render_task(
    state: &AppState,
    headers: &HeaderMap,
    lang_query: &LangQuery,
    who: &saphan_identity::Subject,
    task_id: &str,
    error: Option<String>,
) -> Result<Response, ApiProblem> {
    let lang = lang_of(headers, lang_query);
    let (task, app) = state.applications.task_for(who, task_id).await?;
    let procedures = state.applications.procedures(&app).await?;
    let procedure = procedures.iter().find(|p| p.code == task.procedure_code);
    let mut sections = Vec::new();
    if let Some(p) = procedure {
        let uploads: Vec<&str> = p.form.upload_fields().map(|(f, _)| f).collect();
        for page in &p.form.ui.pages {
            let fields: Vec<Value> = page
                .fields
                .iter()
                .map(|f| {
                    let verified = app.verified.get(f);
                    let value = verified
                        .map(|v| v.value.clone())
                        .or_else(|| app.answers.get(f).cloned())
                        .unwrap_or(Value::Null);
                    let text = match &value {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        v => v.to_string(),
                    };
                    json!({
                        "label": p.form.label(f).get(lang),
                        "value": text,
                        "document": uploads.contains(&f.as_str()) && !text.is_empty(),
                        "verified": verified.map(|v| json!({
                            "source": v.source, "message_id": v.message_id,
                            "at": v.at.get(..16).unwrap_or(&v.at),
                        })),
                    })
                })
                .collect();
            sections.push(json!({"title": page.title.get(lang), "fields": fields}));
        }
    }
    let timeline: Vec<Value> = state
        .applications
        .timeline(&app.id)
        .await?
        .iter()
        .map(|e| json!({"at": e.at.get(..16).unwrap_or(&e.at), "text": e.text.get(lang)}))
        .collect();
    let response = form_page(
        state,
        headers,
        lang_query,
        "office_task.html",
        &format!("/office/tasks/{task_id}"),
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        minijinja::Value::from_serialize(json!({
            "task": {
                "id": task.id, "title": task.title.get(lang), "agency": task.agency,
                "role": task.role, "status": task.status.as_str(),
                "due": task.due_at.get(..10).unwrap_or(&task.due_at),
                "open": task.status.as_str() == "open",
            },
            "tracking": app.tracking,
            "procedure": procedure.map(|p| p.title.get(lang).to_string()),
            "company": app.on_behalf_of_name,
            "sections": sections,
            "timeline": timeline,
            "error": error,
        })),
    );
    Ok(response)
}

pub(crate) async fn task(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
    Path(task_id): Path<String>,
) -> Result<Response, ApiProblem> {
    let who = match official_or_sign_in(&state, &headers).await? {
        Ok(who) => who,
        Err(redirect) => return Ok(redirect),
    };
    if uuid::Uuid::parse_str(&task_id).is_err() {
        return Err(ApplicationError::NotFound(Text::new("ไม่พบงาน", "no such task")).into());
    }
    render_task(&state, &headers, &query, &who, &task_id, None).await
}

#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    items: String,
}

/// Approve, refuse with a reason, or list everything missing at once (one item a line).
pub(crate) async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
    Path(task_id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &form.csrf) {
        return Err(crate::signin::csrf_failure());
    }
    let who = match official_or_sign_in(&state, &headers).await? {
        Ok(who) => who,
        Err(redirect) => return Ok(redirect),
    };
    let lang = lang_of(&headers, &query);
    let decision = match form.decision.as_str() {
        "approve" => Some(Decision::Approve { note: None }),
        "reject" => Some(Decision::Reject {
            reason: form.reason.clone(),
        }),
        "request-missing" => Some(Decision::RequestMissing {
            items: form
                .items
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        }),
        _ => None,
    };
    let outcome = match decision {
        Some(d) => state.applications.complete(&who, &task_id, d).await,
        None => Err(ApplicationError::Invalid(Text::new(
            "เลือกผลการพิจารณา",
            "choose a decision",
        ))),
    };
    match outcome {
        Ok(_) => Ok(see_other(&format!("/office?lang={}&done=1", lang.code()))),
        Err(
            e @ (ApplicationError::Invalid(_)
            | ApplicationError::Conflict(_)
            | ApplicationError::Answers(_)),
        ) => {
            let problem = e.problem();
            let message = problem
                .detail
                .unwrap_or(problem.title)
                .get(lang)
                .to_string();
            render_task(&state, &headers, &query, &who, &task_id, Some(message)).await
        }
        Err(e) => Err(e.into()),
    }
}
