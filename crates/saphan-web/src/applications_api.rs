//! The GovStack Registration building block's application and task endpoints, under
//! `/registration`: applicants submit (`POST /services/{serviceId}/applications`), follow
//! (`GET /applications`, `/applications/{fileId}`) and, when sent back, complete
//! (`PUT /applications/{fileId}`) their applications; officials work their inbox
//! (`GET /tasks`, `/tasks/{taskId}`) and decide (`POST /tasks/{taskId}/complete`). Handlers
//! translate HTTP to `saphan-applications` calls, which decide who may do what.
//!
//! Who is calling: a person signed in with the digital ID, by their browser session (changes
//! also need `X-CSRF-Token`) or by an OpenID access token the digital ID issued to an app for
//! the `applications` scope (`Authorization: Bearer`). Officials act only from a browser
//! session signed in with two factors (AAL 2): an app's token, which a refresh keeps alive,
//! never decides for an agency.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use saphan_applications::{
    Application, ApplicationError, Decision, Event, Status, Task, TaskStatus,
};
use saphan_core::{Lang, Problem, ProblemKind, Text};
use saphan_identity::{Aal, Subject};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::identity_api::json_body;
use crate::portal::request_lang;
use crate::problem::ApiProblem;
use crate::registration::PREFIX;
use crate::state::AppState;

impl From<ApplicationError> for ApiProblem {
    fn from(e: ApplicationError) -> Self {
        if matches!(
            e,
            ApplicationError::Store(_) | ApplicationError::Audit(_) | ApplicationError::Corrupt(_)
        ) {
            tracing::error!(error = %e, "applications failed");
        }
        ApiProblem(e.problem())
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            &format!("{PREFIX}/services/{{service_id}}/applications"),
            post(submit),
        )
        .route(&format!("{PREFIX}/applications"), get(list))
        .route(
            &format!("{PREFIX}/applications/{{file_id}}"),
            get(show).put(update),
        )
        .route(
            &format!("{PREFIX}/applications/{{file_id}}/timeline"),
            get(timeline),
        )
        .route(&format!("{PREFIX}/tasks"), get(inbox))
        .route(&format!("{PREFIX}/tasks/{{task_id}}"), get(task))
        .route(
            &format!("{PREFIX}/tasks/{{task_id}}/complete"),
            post(complete),
        )
        .route(
            &format!("{PREFIX}/documents"),
            post(upload).layer(axum::extract::DefaultBodyLimit::max(
                saphan_procedures::MAX_UPLOAD_BYTES as usize + 64 * 1024,
            )),
        )
        .route(
            &format!("{PREFIX}/documents/{{document_id}}"),
            get(document),
        )
        .route(
            &format!("{PREFIX}/tasks/{{task_id}}/documents/{{document_id}}"),
            get(task_document),
        )
}

/// Uploads a document no registry holds (PDF, JPEG or PNG, judged by its content) and answers
/// its id, which the form's upload field then carries.
#[utoipa::path(post, path = "/registration/documents", tag = "one-stop",
    request_body(content = Object, content_type = "multipart/form-data", description = "One part named `file`"),
    responses((status = 200, description = "GovStack uploadResponse; `message` (and `documentId`) is the document's id", body = Object),
        (status = 400, description = "Not a PDF, JPEG or PNG, empty, too large, or no `file` part", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Sign in first", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    mut multipart: axum::extract::Multipart,
) -> Result<Response, ApiProblem> {
    let (me, _) = person(&state, &method, &headers).await?;
    let bad = |en: String| {
        ApiProblem::status(400).with_detail(Text::owned(
            format!("อัปโหลดไม่สำเร็จ: {en}"),
            format!("the upload failed: {en}"),
        ))
    };
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(e.body_text()))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("document").to_string();
        let bytes = field.bytes().await.map_err(|e| bad(e.body_text()))?;
        let doc = state.applications.upload(&me, &name, &bytes).await?;
        return Ok(Json(json!({
            "code": 200,
            "type": doc.media_type,
            "message": doc.id,
            "url": format!("{PREFIX}/documents/{}", doc.id),
            "documentId": doc.id,
            "size": doc.size,
            "sha256": doc.sha256,
        }))
        .into_response());
    }
    Err(bad("send the file in a multipart part named `file`".into()))
}

fn document_response(doc: &saphan_applications::documents::Document, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, doc.media_type.clone()),
            // Served as what it was sniffed to be, never rendered inline as something else.
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", doc.id),
            ),
            (
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff".into(),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// One of the applicant's own uploads.
#[utoipa::path(get, path = "/registration/documents/{documentId}", tag = "one-stop",
    params(("documentId" = String, Path)),
    responses((status = 200, description = "The document"),
        (status = 404, description = "No such upload of yours", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn document(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(document_id): Path<String>,
) -> Result<Response, ApiProblem> {
    let (me, _) = person(&state, &method, &headers).await?;
    match state.applications.document(&document_id).await {
        Ok((doc, bytes)) if doc.owner == me => Ok(document_response(&doc, bytes)),
        Ok(_) | Err(ApplicationError::NotFound(_)) => {
            Err(ApplicationError::NotFound(Text::new("ไม่พบเอกสาร", "no such document")).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// A document an application under the official's task carries.
#[utoipa::path(get, path = "/registration/tasks/{taskId}/documents/{documentId}", tag = "one-stop",
    params(("taskId" = String, Path), ("documentId" = String, Path)),
    responses((status = 200, description = "The document"),
        (status = 404, description = "No such task of yours, or not one of its documents", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn task_document(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path((task_id, document_id)): Path<(String, String)>,
) -> Result<Response, ApiProblem> {
    let who = official(&state, &method, &headers).await?;
    let (_, app) = state.applications.task_for(&who, &task_id).await?;
    let carried = app
        .answers
        .values()
        .any(|v| v.as_str() == Some(document_id.as_str()));
    let not_found = || ApplicationError::NotFound(Text::new("ไม่พบเอกสาร", "no such document"));
    if !carried {
        return Err(not_found().into());
    }
    let (doc, bytes) = state.applications.document(&document_id).await?;
    if doc.owner != app.applicant {
        return Err(not_found().into());
    }
    Ok(document_response(&doc, bytes))
}

fn sign_in_first() -> ApiProblem {
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
            "ใช้เซสชันของเบราว์เซอร์ (คำขอที่เปลี่ยนข้อมูลต้องมี X-CSRF-Token) หรือ access token จากดิจิทัลไอดี",
            "Use your browser session (changes also need X-CSRF-Token) or an access token from the digital ID",
        )),
    )
}

/// The person calling and the assurance of their sign-in.
async fn person(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(String, Aal), ApiProblem> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        return match state
            .oidc
            .access_token_holder(token.trim(), "applications")
            .await
        {
            Ok(Some((identity, assurance))) => Ok((identity, assurance.aal)),
            Ok(None) => Err(sign_in_first()),
            Err(e) => Err(crate::oidc::server_problem(e)),
        };
    }
    let session = crate::oidc::current_session(state, headers)
        .await?
        .ok_or_else(sign_in_first)?;
    if method != Method::GET {
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
    Ok((session.identity_id, session.aal))
}

/// An official: a browser session signed in with two factors.
pub(crate) async fn official(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Subject, ApiProblem> {
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(ApiProblem(
            Problem::new(
                ProblemKind::Forbidden,
                "officials-sign-in",
                Text::new(
                    "เจ้าหน้าที่ทำรายการจากเซสชันที่เข้าสู่ระบบด้วยสองปัจจัยเท่านั้น",
                    "Officials act from a session signed in with two factors",
                ),
            )
            .with_detail(Text::new(
                "ไม่รับ access token ของแอปในการพิจารณาคำขอ",
                "An app's access token does not decide applications",
            )),
        ));
    }
    let (identity, aal) = person(state, method, headers).await?;
    if aal < Aal::L2 {
        return Err(ApiProblem(
            Problem::new(
                ProblemKind::Forbidden,
                "two-factors-required",
                Text::new(
                    "เจ้าหน้าที่ต้องเข้าสู่ระบบด้วยสองปัจจัย",
                    "Officials sign in with two factors",
                ),
            )
            .with_detail(Text::new(
                "เข้าสู่ระบบอีกครั้งด้วยรหัสผ่านและแอปยืนยันตัวตน หรือพาสคีย์",
                "Sign in again with a password and an authenticator app, or a passkey",
            )),
        ));
    }
    Ok(state.directory.subject(&identity).await?)
}

/// GovStack's status model for an application.
fn status_model(status: Status, lang: Lang) -> Value {
    let code = match status {
        Status::Draft | Status::Submitted => "PENDING",
        Status::SentBack => "SENDBACK",
        Status::Approved | Status::PartlyApproved => "APPROVED",
        Status::Rejected => "REJECTED",
    };
    json!({"code": code, "title": status.title().get(lang)})
}

fn task_status(task: &Task, lang: Lang) -> Value {
    let (code, title) = match (task.status, task.outcome.as_deref()) {
        (TaskStatus::Done, Some("approved")) => ("APPROVED", Text::new("เรียบร้อย", "Done")),
        (TaskStatus::Done, Some("rejected")) => ("REJECTED", Text::new("ไม่อนุมัติ", "Refused")),
        (TaskStatus::Paused, _) => (
            "SENDBACK",
            Text::new("รอข้อมูลจากผู้ยื่น", "Waiting for the applicant"),
        ),
        (TaskStatus::Cancelled, _) => ("REJECTED", Text::new("ยกเลิก", "Cancelled")),
        _ => ("PENDING", Text::new("รอดำเนินการ", "To do")),
    };
    json!({"code": code, "title": title.get(lang)})
}

pub(crate) async fn service_name(state: &AppState, app: &Application, lang: Lang) -> String {
    match state.catalogue.version(&app.entry_id, app.version).await {
        Ok(entry) => entry.document.title().get(lang).to_string(),
        Err(_) => app.code.clone(),
    }
}

/// GovStack's `applicationFileResponse`, with Saphan's own fields beside it: the tracking
/// number, what came verified from registries, what is missing, each procedure's decision.
async fn file_response(state: &AppState, app: &Application, lang: Lang) -> Value {
    json!({
        "fileId": app.id,
        "applicantId": app.applicant,
        "registered": app.submitted_at.as_deref().unwrap_or(&app.created_at),
        "serviceId": app.entry_id,
        "serviceName": service_name(state, app, lang).await,
        "status": status_model(app.status, lang),
        "ended": app.status.ended(),
        "applicationData": {
            "applicantId": app.applicant,
            "created": app.created_at,
            "formData": {"data": app.answers},
        },
        "trackingNumber": app.tracking,
        "serviceVersion": app.version,
        "state": app.status.as_str(),
        "verified": app.verified,
        "missing": app.missing.iter().map(|m| m.get(lang)).collect::<Vec<_>>(),
        "decisions": app.decisions,
    })
}

/// The specification's fields are not nullable: absent ones are left out.
fn without_nulls(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    value
}

fn task_json(task: &Task, app: Option<&Application>, lang: Lang) -> Value {
    without_nulls(json!({
        "taskId": task.id,
        "taskName": task.title.get(lang),
        "name": task.title.get(lang),
        "assigneeId": task.assignee,
        "roleId": task.role,
        "created": task.opened_at,
        "description": format!("{} · {}", task.procedure_code, task.agency),
        "fileId": task.application_id,
        "serviceId": app.map(|a| a.entry_id.clone()),
        "status": task_status(task, lang),
        "agency": task.agency,
        "dueAt": task.due_at,
        "procedure": task.procedure_code,
    }))
}

#[derive(Deserialize)]
struct FormData {
    #[serde(default)]
    data: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileSubmit {
    #[serde(default)]
    form_data: Option<FormData>,
    /// Our extension: the juristic person (13 digits) the applicant applies for.
    #[serde(default)]
    on_behalf_of: Option<String>,
    /// Our extension: the applicant consents to the registry reads the service names
    /// (`GET /registration/services/{id}/registryReads` states them), and the portal makes
    /// them through the exchange before the answers are checked.
    #[serde(default)]
    consent_to_registry_reads: bool,
}

/// The applicant consented: the portal reads the registries the application's forms name,
/// through the exchange, and keeps what they hold as verified values.
pub(crate) async fn prefill(
    state: &AppState,
    applicant: &str,
    file_id: &str,
) -> Result<Vec<saphan_applications::prefill::ReadDone>, ApplicationError> {
    let identity = state.directory.get(applicant).await?.ok_or_else(|| {
        ApplicationError::Forbidden(Text::new("ไม่พบตัวตนของท่าน", "your identity is not known"))
    })?;
    let (_, reads) = state
        .applications
        .prefill(
            &state.exchange,
            &state.config.onestop.exchange_subsystem,
            &identity,
            file_id,
        )
        .await?;
    Ok(reads)
}

/// Submits an application with its answers. Invalid answers: 400 naming every field, and
/// nothing is kept.
#[utoipa::path(post, path = "/registration/services/{serviceId}/applications", tag = "one-stop",
    params(("serviceId" = String, Path)),
    request_body(content = Object, content_type = "application/json", description = "GovStack applicationFileSubmit: formData.data holds the answers by field; applicantId is the signed-in person whatever it says"),
    responses((status = 200, description = "The submitted application file", body = Object),
        (status = 400, description = "Answers to fix, every field named", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Sign in first", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such service", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn submit(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Path(service_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let (me, _) = person(&state, &method, &headers).await?;
    let request: FileSubmit = json_body(&headers, &body)?;
    let answers = request.form_data.map(|f| f.data).unwrap_or_default();
    let apps = &state.applications;
    let draft = apps
        .start(&me, &service_id, request.on_behalf_of.as_deref())
        .await?;
    let outcome = async {
        if request.consent_to_registry_reads {
            prefill(&state, &me, &draft.id).await?;
        }
        apps.save(&me, &draft.id, answers, None).await?;
        apps.submit(&me, &draft.id).await
    }
    .await;
    match outcome {
        Ok(app) => Ok(Json(file_response(&state, &app, lang).await).into_response()),
        Err(e) => {
            apps.discard(&me, &draft.id).await?;
            Err(e.into())
        }
    }
}

/// The signed-in person's applications, newest first.
#[utoipa::path(get, path = "/registration/applications", tag = "one-stop",
    responses((status = 200, description = "Your applications", body = Object),
        (status = 401, description = "Sign in first", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let (me, _) = person(&state, &method, &headers).await?;
    let apps = state.applications.list_of(&me).await?;
    let mut out = Vec::new();
    for app in &apps {
        out.push(without_nulls(json!({
            "fileId": app.id,
            "status": status_model(app.status, lang),
            "applicantId": app.applicant,
            "created": app.created_at,
            "registered": app.submitted_at,
            "serviceId": app.entry_id,
            "serviceName": service_name(&state, app, lang).await,
            "trackingNumber": app.tracking,
        })));
    }
    Ok(Json(out).into_response())
}

/// An application, to its applicant or to an official with a task on it.
async fn visible(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    file_id: &str,
) -> Result<Application, ApiProblem> {
    // Whoever is neither the applicant nor an official with a task on it learns nothing,
    // not even that the application exists.
    let hidden = || {
        ApiProblem::from(ApplicationError::NotFound(Text::new(
            "ไม่พบคำขอ",
            "no such application",
        )))
    };
    let app = match state.applications.get(file_id).await {
        Ok(app) => app,
        Err(ApplicationError::NotFound(_)) => return Err(hidden()),
        Err(e) => return Err(e.into()),
    };
    if let Ok((me, _)) = person(state, method, headers).await {
        if me == app.applicant {
            return Ok(app);
        }
    }
    let Ok(official) = official(state, method, headers).await else {
        return Err(hidden());
    };
    state
        .applications
        .official_view(&official, app)
        .await?
        .ok_or_else(hidden)
}

#[utoipa::path(get, path = "/registration/applications/{fileId}", tag = "one-stop",
    params(("fileId" = String, Path)),
    responses((status = 200, description = "The application file", body = Object),
        (status = 404, description = "No such application of yours", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn show(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Path(file_id): Path<String>,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let app = visible(&state, &method, &headers, &file_id).await?;
    Ok(Json(file_response(&state, &app, lang).await).into_response())
}

/// The applicant gives what was missing (or finishes a draft) and resubmits.
#[utoipa::path(put, path = "/registration/applications/{fileId}", tag = "one-stop",
    params(("fileId" = String, Path)),
    request_body(content = Object, content_type = "application/json", description = "GovStack applicationFileSubmit: formData.data holds the answers to change"),
    responses((status = 200, description = "The resubmitted application file", body = Object),
        (status = 400, description = "Answers to fix", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such application of yours", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Not waiting for the applicant", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn update(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Path(file_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let (me, _) = person(&state, &method, &headers).await?;
    let request: FileSubmit = json_body(&headers, &body)?;
    if request.consent_to_registry_reads {
        prefill(&state, &me, &file_id).await?;
    }
    let answers = request.form_data.map(|f| f.data).unwrap_or_default();
    state
        .applications
        .save(&me, &file_id, answers, None)
        .await?;
    let app = state.applications.submit(&me, &file_id).await?;
    Ok(Json(file_response(&state, &app, lang).await).into_response())
}

fn event_json(e: &Event, lang: Lang) -> Value {
    json!({"seq": e.seq, "at": e.at, "kind": e.kind, "text": e.text.get(lang)})
}

/// What happened to the application, oldest first (Saphan's extension).
#[utoipa::path(get, path = "/registration/applications/{fileId}/timeline", tag = "one-stop",
    params(("fileId" = String, Path)),
    responses((status = 200, description = "The timeline", body = Object),
        (status = 404, description = "No such application of yours", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn timeline(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Path(file_id): Path<String>,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let app = visible(&state, &method, &headers, &file_id).await?;
    let events = state.applications.timeline(&app.id).await?;
    Ok(Json(
        events
            .iter()
            .map(|e| event_json(e, lang))
            .collect::<Vec<_>>(),
    )
    .into_response())
}

/// The official's inbox: open tasks of their agencies for their roles, soonest due first.
#[utoipa::path(get, path = "/registration/tasks", tag = "one-stop",
    responses((status = 200, description = "Open tasks you may act on", body = Object),
        (status = 401, description = "Sign in first", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Officials sign in with two factors", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn inbox(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let who = official(&state, &method, &headers).await?;
    let tasks = state.applications.inbox(&who).await?;
    Ok(Json(
        tasks
            .iter()
            .map(|t| task_json(t, None, lang))
            .collect::<Vec<_>>(),
    )
    .into_response())
}

#[utoipa::path(get, path = "/registration/tasks/{taskId}", tag = "one-stop",
    params(("taskId" = String, Path)),
    responses((status = 200, description = "The task, with the application's answers and verified values", body = Object),
        (status = 404, description = "No such task of yours", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn task(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Path(task_id): Path<String>,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let who = official(&state, &method, &headers).await?;
    let (task, app) = state.applications.task_for(&who, &task_id).await?;
    let mut body = task_json(&task, Some(&app), lang);
    body["serviceName"] = json!(service_name(&state, &app, lang).await);
    body["trackingNumber"] = json!(app.tracking);
    // GovStack's task `data` holds objects: the answers, and the values verified by registries.
    body["data"] = json!({"answers": app.answers, "verified": app.verified});
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
struct AdditionalData {
    #[serde(default)]
    data: Map<String, Value>,
}

/// Decides a task. GovStack's `additionalData.data` holds objects; the decision is
/// `data.decision`: `{"decision": "approve"}`, `{"decision": "reject", "reason": "..."}` or
/// `{"decision": "request-missing", "items": ["...", "..."]}`.
#[utoipa::path(post, path = "/registration/tasks/{taskId}/complete", tag = "one-stop",
    params(("taskId" = String, Path)),
    request_body(content = Object, content_type = "application/json", description = "GovStack additionalData: data.decision = {decision: approve | reject (with reason) | request-missing (with items)}"),
    responses((status = 200, description = "Completed", body = Object),
        (status = 400, description = "Not a decision", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not your agency's task for your role", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such task", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Already done, or missing items were asked for before", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn complete(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Path(task_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let who = official(&state, &method, &headers).await?;
    let additional: AdditionalData = json_body(&headers, &body)?;
    let decision: Decision = additional
        .data
        .get("decision")
        .cloned()
        .ok_or(())
        .and_then(|d| serde_json::from_value(d).map_err(|_| ()))
        .map_err(|()| {
            ApiProblem::from(ApplicationError::Invalid(Text::new(
                "ระบุ data.decision: approve, reject (พร้อม reason) หรือ request-missing (พร้อม items)",
                "give data.decision: approve, reject (with reason) or request-missing (with items)",
            )))
        })?;
    let app = state
        .applications
        .complete(&who, &task_id, decision)
        .await?;
    let task = state.applications.task(&task_id).await?;
    Ok((
        StatusCode::OK,
        Json(json!({
            "taskId": task.id,
            "fileId": app.id,
            "serviceId": app.entry_id,
            "status": task_status(&task, lang),
            "applicationStatus": status_model(app.status, lang),
        })),
    )
        .into_response())
}
