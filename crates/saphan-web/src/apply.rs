//! The portal's applying pages, working without JavaScript: start (with the plain-language
//! consent for the registry reads, and the company for a business service), one topic per
//! page, check your answers, submit; "my applications" with each one's status and timeline.
//! Everything goes through `saphan_applications`, as the GovStack API does.

use std::collections::BTreeMap;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use saphan_applications::{Application, ApplicationError, Status};
use saphan_core::{Lang, Text};
use saphan_procedures::form::{FieldUi, Widget};
use saphan_procedures::ProcedureDoc;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::cookies;
use crate::oidc::{current_session, see_other};
use crate::portal::{request_lang, LangQuery};
use crate::problem::ApiProblem;
use crate::signin::form_page;
use crate::state::AppState;

/// A page the applicant is asked: a bundle's forms share pages with the same key, and a field
/// is asked once, on the first page that has it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AskPage {
    pub key: String,
    pub title: Text,
    pub fields: Vec<String>,
}

pub(crate) fn ask_pages(procedures: &[ProcedureDoc]) -> Vec<AskPage> {
    let mut pages: Vec<AskPage> = Vec::new();
    let mut asked = std::collections::BTreeSet::new();
    for p in procedures {
        for page in &p.form.ui.pages {
            let fresh: Vec<String> = page
                .fields
                .iter()
                .filter(|f| asked.insert((*f).clone()))
                .cloned()
                .collect();
            match pages.iter_mut().find(|x| x.key == page.key) {
                Some(known) => known.fields.extend(fresh),
                None if !fresh.is_empty() => pages.push(AskPage {
                    key: page.key.clone(),
                    title: page.title.clone(),
                    fields: fresh,
                }),
                None => {}
            }
        }
    }
    pages
}

/// A field's UI and schema, from the first form that has it.
fn field_of<'a>(
    procedures: &'a [ProcedureDoc],
    name: &str,
) -> Option<(&'a FieldUi, &'a Value, bool)> {
    procedures.iter().find_map(|p| {
        let ui = p.form.ui.fields.get(name)?;
        let schema = p.form.schema["properties"].get(name)?;
        let required = p.form.schema["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == name));
        Some((ui, schema, required))
    })
}

/// What a typed answer is, by the field's schema type (a wrong one stays text, so that the
/// form's own message explains it).
fn typed(schema: &Value, text: &str) -> Value {
    let text = text.trim();
    match schema["type"].as_str() {
        Some("integer") => text.parse::<i64>().map(Value::from).unwrap_or(json!(text)),
        Some("number") => text
            .parse::<f64>()
            .ok()
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
            .unwrap_or(json!(text)),
        Some("boolean") => json!(text == "on" || text == "true"),
        _ => json!(text),
    }
}

fn shown(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

fn field_view(
    procedures: &[ProcedureDoc],
    app: &Application,
    name: &str,
    errors: &BTreeMap<String, String>,
    lang: Lang,
) -> Value {
    let Some((ui, schema, required)) = field_of(procedures, name) else {
        return Value::Null;
    };
    let merged = app.merged();
    let value = shown(merged.get(name));
    let widget = if matches!(
        ui.source,
        Some(saphan_procedures::form::FieldSource::Upload { .. })
    ) {
        Widget::Upload
    } else {
        ui.widget
    };
    let input_type = match widget {
        Widget::Number => "number",
        Widget::Date => "date",
        Widget::Email => "email",
        Widget::Tel => "tel",
        _ => "text",
    };
    let choices: Vec<Value> = if ui.choices.is_empty() {
        schema["enum"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|v| v.as_str())
                    .map(|v| json!({"value": v, "label": v, "checked": v == value}))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        ui.choices
            .iter()
            .map(|c| json!({"value": c.value, "label": c.label.get(lang), "checked": c.value == value}))
            .collect()
    };
    let display = choices
        .iter()
        .find(|c| c["checked"] == true)
        .and_then(|c| c["label"].as_str())
        .unwrap_or(&value)
        .to_string();
    json!({
        "name": name,
        "label": ui.label.get(lang),
        "display": display,
        "hint": ui.hint.as_ref().map(|h| h.get(lang)),
        "widget": serde_json::to_value(widget).unwrap_or(json!("text")),
        "input_type": input_type,
        "step": if schema["type"] == "number" { "any" } else { "1" },
        "choices": choices,
        "value": value,
        "required": required,
        "verified": app.verified.get(name).map(|v| json!({
            "source": v.source, "message_id": v.message_id, "at": v.at.get(..16).unwrap_or(&v.at),
        })),
        "error": errors.get(name),
    })
}

/// The page's language: `?lang=`, else the remembered choice or the browser's.
pub(crate) fn lang_of(headers: &HeaderMap, query: &LangQuery) -> Lang {
    query
        .lang
        .as_deref()
        .and_then(Lang::from_tag)
        .unwrap_or_else(|| request_lang(headers, None))
}

async fn sign_in(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, ApiProblem> {
    Ok(current_session(state, headers)
        .await?
        .map(|s| s.identity_id))
}

fn not_yours() -> ApiProblem {
    ApplicationError::NotFound(Text::new("ไม่พบคำขอ", "no such application of yours")).into()
}

#[derive(Deserialize)]
pub(crate) struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    on_behalf_of: String,
    #[serde(default)]
    consent: String,
}

/// Before applying: what the service reads from registries, from whom, and the consent.
pub(crate) async fn start_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
    Path(code): Path<String>,
) -> Result<Response, ApiProblem> {
    let Some(me) = sign_in(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let lang = lang_of(&headers, &query);
    let snap = state.catalogue.snapshot().await?;
    let entry = snap
        .by_code(&code)
        .ok_or_else(|| saphan_procedures::ProcedureError::not_found(&code))?;
    let reads = state.applications.service_reads(&code).await?;
    let procedures: Vec<ProcedureDoc> = match &entry.document {
        saphan_procedures::Document::Procedure(p) => vec![(**p).clone()],
        saphan_procedures::Document::Bundle(_) => snap
            .members(entry)
            .iter()
            .filter_map(|m| m.document.as_procedure().cloned())
            .collect(),
    };
    let business = procedures
        .iter()
        .any(saphan_applications::prefill::needs_business);
    let companies = if business {
        state.directory.act_for(&me).await?
    } else {
        Vec::new()
    };
    let reads: Vec<Value> = reads
        .iter()
        .map(|r| {
            let labels: Vec<String> = r
                .fields
                .iter()
                .map(|f| {
                    procedures
                        .iter()
                        .flat_map(|p| {
                            p.form
                                .verified_fields()
                                .map(move |(name, req, ptr)| (p, name, req, ptr))
                        })
                        .find(|(_, _, req, ptr)| *req == r.key && ptr.trim_start_matches('/') == f)
                        .map(|(p, name, _, _)| p.form.label(name).get(lang).to_string())
                        .unwrap_or_else(|| f.clone())
                })
                .collect();
            json!({"provider": r.provider.get(lang), "title": r.title.get(lang), "fields": labels})
        })
        .collect();
    Ok(form_page(
        &state,
        &headers,
        &query,
        "apply_start.html",
        &format!("/services/{code}/apply"),
        StatusCode::OK,
        minijinja::Value::from_serialize(json!({
            "code": code,
            "title": entry.document.title().get(lang),
            "reads": reads,
            "business": business,
            "companies": companies,
        })),
    ))
}

/// Starts the application (for the company chosen), and with the applicant's consent reads
/// the registries through the exchange.
pub(crate) async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
    Path(code): Path<String>,
    Form(form): Form<StartForm>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &form.csrf) {
        return Err(crate::signin::csrf_failure());
    }
    let Some(me) = sign_in(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let lang = lang_of(&headers, &query).code();
    let company = Some(form.on_behalf_of.trim()).filter(|c| !c.is_empty());
    let app = state.applications.start(&me, &code, company).await?;
    let mut read = "";
    if form.consent == "yes" {
        read = match crate::applications_api::prefill(&state, &me, &app.id).await {
            Ok(_) => "done",
            Err(e @ ApplicationError::Registry(_)) => {
                tracing::warn!(application = %app.id, error = %e, "prefill failed");
                "failed"
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(see_other(&format!(
        "/applications/{}/pages/0?lang={lang}{}",
        app.id,
        if read.is_empty() {
            String::new()
        } else {
            format!("&read={read}")
        }
    )))
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    read: Option<String>,
}

async fn mine(
    state: &AppState,
    me: &str,
    id: &str,
) -> Result<(Application, Vec<ProcedureDoc>), ApiProblem> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_yours());
    }
    let app = state.applications.of_applicant(me, id).await?;
    let procedures = state.applications.procedures(&app).await?;
    Ok((app, procedures))
}

async fn render_page(
    state: &AppState,
    headers: &HeaderMap,
    lang_query: &LangQuery,
    (app, procedures): (&Application, &[ProcedureDoc]),
    n: usize,
    errors: &BTreeMap<String, String>,
    read: Option<&str>,
) -> Result<Response, ApiProblem> {
    let lang = lang_of(headers, lang_query);
    let pages = ask_pages(procedures);
    let Some(page) = pages.get(n) else {
        return Err(not_yours());
    };
    let fields: Vec<Value> = page
        .fields
        .iter()
        .map(|f| field_view(procedures, app, f, errors, lang))
        .filter(|v| !v.is_null())
        .collect();
    let title = crate::applications_api::service_name(state, app, lang).await;
    let response = form_page(
        state,
        headers,
        lang_query,
        "apply_page.html",
        &format!("/applications/{}/pages/{n}", app.id),
        if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        },
        minijinja::Value::from_serialize(json!({
            "id": app.id, "tracking": app.tracking, "service": title,
            "page": {"title": page.title.get(lang), "n": n, "count": pages.len()},
            "fields": fields,
            "errors": errors.iter().map(|(f, m)| json!({"field": f, "message": m})).collect::<Vec<_>>(),
            "read": read,
            "missing": app.missing.iter().map(|m| m.get(lang).to_string()).collect::<Vec<_>>(),
        })),
    );
    Ok(response)
}

pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
    Path((id, n)): Path<(String, usize)>,
) -> Result<Response, ApiProblem> {
    let Some(me) = sign_in(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let (app, procedures) = mine(&state, &me, &id).await?;
    if !matches!(app.status, Status::Draft | Status::SentBack) {
        return Ok(see_other(&format!("/applications/{id}")));
    }
    let lang_query = LangQuery {
        lang: query.lang.clone(),
    };
    render_page(
        &state,
        &headers,
        &lang_query,
        (&app, &procedures),
        n,
        &BTreeMap::new(),
        query.read.as_deref(),
    )
    .await
}

/// Saves one page's answers (uploads first, judged by their content) and moves on; a page's
/// problems are shown on it, every field at once.
pub(crate) async fn save_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
    Path((id, n)): Path<(String, usize)>,
    mut multipart: Multipart,
) -> Result<Response, ApiProblem> {
    let Some(me) = sign_in(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let lang = lang_of(&headers, &query);
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    let mut files: BTreeMap<String, (String, axum::body::Bytes)> = BTreeMap::new();
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiProblem::status(400).with_detail(Text::owned(
            format!("อ่านแบบฟอร์มไม่ได้: {}", e.body_text()),
            format!("the form could not be read: {}", e.body_text()),
        ))
    };
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        match field.file_name().map(str::to_string) {
            Some(file_name) => {
                let bytes = field.bytes().await.map_err(bad)?;
                if !bytes.is_empty() {
                    files.insert(name, (file_name, bytes));
                }
            }
            None => {
                let text = field.text().await.map_err(bad)?;
                texts.insert(name, text);
            }
        }
    }
    if !cookies::csrf_ok(
        &headers,
        texts.get("csrf").map(String::as_str).unwrap_or_default(),
    ) {
        return Err(crate::signin::csrf_failure());
    }
    let (app, procedures) = mine(&state, &me, &id).await?;
    let pages = ask_pages(&procedures);
    let Some(page) = pages.get(n) else {
        return Err(not_yours());
    };
    let mut answers = Map::new();
    let mut errors = BTreeMap::new();
    for name in &page.fields {
        if app.verified.contains_key(name) {
            continue;
        }
        let Some((ui, schema, _)) = field_of(&procedures, name) else {
            continue;
        };
        if matches!(
            ui.source,
            Some(saphan_procedures::form::FieldSource::Upload { .. })
        ) {
            if let Some((file_name, bytes)) = files.get(name) {
                match state.applications.upload(&me, file_name, bytes).await {
                    Ok(doc) => {
                        answers.insert(name.clone(), json!(doc.id));
                    }
                    Err(ApplicationError::Invalid(m)) => {
                        errors.insert(
                            name.clone(),
                            format!("{}: {}", ui.label.get(lang), m.get(lang)),
                        );
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            continue;
        }
        match texts.get(name).map(|t| t.trim()) {
            Some(t) if !t.is_empty() => {
                answers.insert(name.clone(), typed(schema, t));
            }
            _ if ui.widget == Widget::Checkbox => {
                answers.insert(name.clone(), json!(false));
            }
            _ => {}
        }
    }
    if errors.is_empty() {
        match state
            .applications
            .save(&me, &id, answers, Some(&page.key))
            .await
        {
            Ok(_) => {}
            Err(ApplicationError::Answers(problems)) => {
                for p in problems {
                    errors
                        .entry(p.field)
                        .or_insert_with(|| p.message.get(lang).to_string());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !errors.is_empty() {
        let app = state.applications.of_applicant(&me, &id).await?;
        return render_page(
            &state,
            &headers,
            &query,
            (&app, &procedures),
            n,
            &errors,
            None,
        )
        .await;
    }
    let lang_tag = lang.code();
    Ok(see_other(&if n + 1 < pages.len() {
        format!("/applications/{id}/pages/{}?lang={lang_tag}", n + 1)
    } else {
        format!("/applications/{id}/check?lang={lang_tag}")
    }))
}

async fn render_check(
    state: &AppState,
    headers: &HeaderMap,
    query: &LangQuery,
    app: &Application,
    procedures: &[ProcedureDoc],
    errors: &BTreeMap<String, String>,
) -> Result<Response, ApiProblem> {
    let lang = lang_of(headers, query);
    let sections: Vec<Value> = ask_pages(procedures)
        .iter()
        .enumerate()
        .map(|(n, page)| {
            json!({
                "n": n,
                "title": page.title.get(lang),
                "fields": page.fields.iter().map(|f| field_view(procedures, app, f, errors, lang)).filter(|v| !v.is_null()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let response = form_page(
        state,
        headers,
        query,
        "apply_check.html",
        &format!("/applications/{}/check", app.id),
        if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        },
        minijinja::Value::from_serialize(json!({
            "id": app.id, "tracking": app.tracking, "sections": sections,
            "errors": errors.iter().map(|(f, m)| json!({"field": f, "message": m})).collect::<Vec<_>>(),
            "resubmission": app.status == Status::SentBack,
            "company": app.on_behalf_of_name,
        })),
    );
    Ok(response)
}

/// Check your answers: every page's answers with a link to change them, then submit.
pub(crate) async fn check(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
    Path(id): Path<String>,
) -> Result<Response, ApiProblem> {
    let Some(me) = sign_in(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let (app, procedures) = mine(&state, &me, &id).await?;
    if !matches!(app.status, Status::Draft | Status::SentBack) {
        return Ok(see_other(&format!("/applications/{id}")));
    }
    render_check(
        &state,
        &headers,
        &query,
        &app,
        &procedures,
        &BTreeMap::new(),
    )
    .await
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &form.csrf) {
        return Err(crate::signin::csrf_failure());
    }
    let Some(me) = sign_in(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let lang = lang_of(&headers, &query);
    let (app, procedures) = mine(&state, &me, &id).await?;
    match state.applications.submit(&me, &id).await {
        Ok(_) => Ok(see_other(&format!(
            "/applications/{id}?lang={}&submitted=1",
            lang.code()
        ))),
        Err(ApplicationError::Answers(problems)) => {
            let errors = problems
                .into_iter()
                .map(|p| (p.field, p.message.get(lang).to_string()))
                .collect();
            render_check(&state, &headers, &query, &app, &procedures, &errors).await
        }
        Err(e @ (ApplicationError::Window(_) | ApplicationError::Conflict(_))) => {
            let message = match &e {
                ApplicationError::Window(m) | ApplicationError::Conflict(m) => {
                    m.get(lang).to_string()
                }
                _ => String::new(),
            };
            let errors = BTreeMap::from([(String::new(), message)]);
            render_check(&state, &headers, &query, &app, &procedures, &errors).await
        }
        Err(e) => Err(e.into()),
    }
}

/// My applications, newest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Result<Response, ApiProblem> {
    let Some(me) = sign_in(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let lang = lang_of(&headers, &query);
    let mut rows = Vec::new();
    for app in state.applications.list_of(&me).await? {
        let title = crate::applications_api::service_name(&state, &app, lang).await;
        rows.push(json!({
            "id": app.id, "tracking": app.tracking, "title": title,
            "status": app.status.title().get(lang), "status_code": app.status.as_str(),
            "updated": app.updated_at.get(..16).unwrap_or(&app.updated_at),
            "company": app.on_behalf_of_name,
        }));
    }
    let notices: Vec<Value> = state
        .applications
        .notices(&me, 20)
        .await?
        .iter()
        .map(|n| json!({"at": n.at.get(..16).unwrap_or(&n.at), "text": n.text.get(lang), "read": n.read, "id": n.application_id}))
        .collect();
    // Seen once listed here.
    state.applications.mark_notices_read(&me).await?;
    Ok(form_page(
        &state,
        &headers,
        &query,
        "my_applications.html",
        "/applications",
        StatusCode::OK,
        minijinja::Value::from_serialize(json!({"applications": rows, "notices": notices})),
    ))
}

#[derive(Deserialize)]
pub(crate) struct ShowQuery {
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    submitted: Option<String>,
}

/// One application: its status, what is missing, its timeline.
pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ShowQuery>,
    Path(id): Path<String>,
) -> Result<Response, ApiProblem> {
    let Some(me) = sign_in(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let lang_query = LangQuery {
        lang: query.lang.clone(),
    };
    let lang = lang_of(&headers, &lang_query);
    let (app, _) = mine(&state, &me, &id).await?;
    let title = crate::applications_api::service_name(&state, &app, lang).await;
    let timeline: Vec<Value> = state
        .applications
        .timeline(&app.id)
        .await?
        .iter()
        .map(|e| json!({"at": e.at.get(..16).unwrap_or(&e.at), "text": e.text.get(lang), "kind": e.kind}))
        .collect();
    Ok(form_page(
        &state,
        &headers,
        &lang_query,
        "application.html",
        &format!("/applications/{id}"),
        StatusCode::OK,
        minijinja::Value::from_serialize(json!({
            "id": app.id, "tracking": app.tracking, "title": title,
            "status": app.status.title().get(lang), "status_code": app.status.as_str(),
            "editable": matches!(app.status, Status::Draft | Status::SentBack),
            "missing": app.missing.iter().map(|m| m.get(lang).to_string()).collect::<Vec<_>>(),
            "timeline": timeline,
            "submitted": query.submitted.is_some(),
            "company": app.on_behalf_of_name,
        })),
    ))
}

async fn identity_or_sign_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<saphan_identity::Identity>, ApiProblem> {
    match sign_in(state, headers).await? {
        Some(me) => Ok(state.directory.get(&me).await?),
        None => Ok(None),
    }
}

/// My consents: what each lets which agency's system read, until when; each revocable.
pub(crate) async fn consents(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Result<Response, ApiProblem> {
    let Some(me) = identity_or_sign_in(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let lang = lang_of(&headers, &query);
    let exchange = state.exchange.registry();
    let mut rows = Vec::new();
    for c in exchange.consents_of(&me).await? {
        let title = match exchange.parse_service(&c.service) {
            Ok(id) => exchange
                .service(&id)
                .await?
                .map(|s| s.title.get(lang).to_string()),
            Err(_) => None,
        };
        let until = time::OffsetDateTime::from_unix_timestamp(c.valid_until)
            .map(|t| {
                saphan_core::clock::format_instant(t)
                    .get(..10)
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default();
        rows.push(json!({
            "id": c.id, "consumer": c.consumer, "service": title.unwrap_or(c.service.clone()),
            "purpose": c.purpose, "granted": c.granted_at.get(..10).unwrap_or(&c.granted_at),
            "until": until, "revoked": c.revoked_at.is_some(),
        }));
    }
    Ok(form_page(
        &state,
        &headers,
        &query,
        "consents.html",
        "/consents",
        StatusCode::OK,
        minijinja::Value::from_serialize(json!({"consents": rows})),
    ))
}

#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    consent: String,
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, ApiProblem> {
    if !cookies::csrf_ok(&headers, &form.csrf) {
        return Err(crate::signin::csrf_failure());
    }
    let Some(me) = identity_or_sign_in(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    state
        .exchange
        .registry()
        .revoke_consent(&me, &form.consent)
        .await?;
    Ok(see_other(&format!(
        "/consents?lang={}",
        lang_of(&headers, &query).code()
    )))
}

/// Who accessed my data: from the exchange's message log, newest first.
pub(crate) async fn data_access(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Result<Response, ApiProblem> {
    let Some(me) = identity_or_sign_in(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let lang = lang_of(&headers, &query);
    let accesses =
        saphan_exchange::log::data_access(&state.exchange, &state.directory, &me, None, 100)
            .await?;
    let rows: Vec<Value> = accesses
        .iter()
        .map(|a| {
            json!({
                "time": a.time.get(..16).unwrap_or(&a.time),
                "who": a.consumer_name.as_ref().map(|n| n.get(lang).to_string()).unwrap_or(a.consumer.clone()),
                "consumer": a.consumer,
                "what": a.service_title.as_ref().map(|n| n.get(lang).to_string()).unwrap_or(a.service.clone()),
                "purpose": a.purpose, "consent": a.consent.is_some(), "released": a.released,
                "message": a.x_road_id,
            })
        })
        .collect();
    Ok(form_page(
        &state,
        &headers,
        &query,
        "data_access.html",
        "/data-access",
        StatusCode::OK,
        minijinja::Value::from_serialize(json!({"accesses": rows})),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_asks_each_field_once_and_merges_pages_by_key() {
        let docs: Vec<ProcedureDoc> = saphan_procedures::demo::documents()
            .into_iter()
            .filter_map(|d| d.as_procedure().cloned())
            .filter(|p| p.code == "food-business-permit" || p.code == "signboard-permit")
            .collect();
        let pages = ask_pages(&docs);
        let all: Vec<&String> = pages.iter().flat_map(|p| &p.fields).collect();
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(all.len(), unique.len(), "{pages:?}");
        assert!(all.iter().any(|f| *f == "signText") && all.iter().any(|f| *f == "floorPlan"));
        assert!(pages.iter().all(|p| !p.fields.is_empty()));
    }

    #[test]
    fn answers_take_their_schema_type() {
        assert_eq!(typed(&json!({"type": "integer"}), " 48 "), json!(48));
        assert_eq!(typed(&json!({"type": "number"}), "2.5"), json!(2.5));
        assert_eq!(typed(&json!({"type": "integer"}), "many"), json!("many"));
        assert_eq!(typed(&json!({"type": "string"}), "ครัว"), json!("ครัว"));
    }
}
