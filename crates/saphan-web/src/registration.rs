//! The GovStack Registration building block's catalogue endpoints, under `/registration`:
//! `/services` (every published procedure and bundle), `/services/{serviceId}`,
//! `/services/{serviceId}/eForms` and `/eForms/{eFormId}`. Names and descriptions come in the
//! request's language (`?lang=`, `Accept-Language`; Thai by default). Handlers translate
//! HTTP to `saphan-procedures` calls.

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use saphan_core::{Lang, Text};
use saphan_procedures::{Document, Entry, Filter, ProcedureError, Snapshot, Sort};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::portal::request_lang;
use crate::problem::ApiProblem;
use crate::state::AppState;

/// Where the Registration API is mounted; its paths follow the GovStack specification below it.
pub const PREFIX: &str = "/registration";

impl From<ProcedureError> for ApiProblem {
    fn from(e: ProcedureError) -> Self {
        if matches!(
            e,
            ProcedureError::Store(_)
                | ProcedureError::Audit(_)
                | ProcedureError::Identity(_)
                | ProcedureError::Corrupt(_)
        ) {
            tracing::error!(error = %e, "procedure catalogue failed");
        }
        ApiProblem(e.problem())
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{PREFIX}/services"), get(services))
        .route(&format!("{PREFIX}/services/{{service_id}}"), get(service))
        .route(
            &format!("{PREFIX}/services/{{service_id}}/eForms"),
            get(eforms),
        )
        .route(&format!("{PREFIX}/eForms/{{eform_id}}"), get(eform))
        .route(
            &format!("{PREFIX}/services/{{service_id}}/registryReads"),
            get(registry_reads),
        )
        .route(&format!("{PREFIX}/data/statistics"), get(statistics))
}

fn not_found(what: &str) -> ApiProblem {
    ProcedureError::not_found(what).into()
}

/// A procedure or bundle as a GovStack `service`; Saphan's manual travels in `serviceBody`.
fn service_json(snap: &Snapshot, entry: &Entry, lang: Lang) -> Value {
    let doc = &entry.document;
    let (fee, days) = snap.fee_and_days(entry);
    let mut body = vec![
        ("code", doc.code().to_string()),
        ("kind", doc.kind().to_string()),
        ("agency", doc.agency().to_string()),
        ("category", doc.category().get(lang).to_string()),
        ("timeLimitDays", days.to_string()),
        ("feeSatang", fee.to_string()),
        ("published", entry.published_at.clone()),
        ("portal", format!("/services/{}", doc.code())),
    ];
    if let Some(r) = &entry.readiness {
        body.push(("readiness", r.score.to_string()));
    }
    if let Document::Bundle(b) = doc {
        body.push(("procedures", b.procedures.join(",")));
    }
    json!({
        "id": entry.id,
        "name": doc.title().get(lang),
        "version": entry.version.to_string(),
        "type": "Public",
        "isExecutable": executable(snap, entry),
        "isClosed": false,
        "description": doc.summary().get(lang),
        "serviceBody": body.into_iter().map(|(code, value)| json!({"code": code, "value": value})).collect::<Vec<_>>(),
    })
}

/// Whether the service can be applied for online (GovStack's `isExecutable`): a procedure
/// with an online channel, or a bundle whose procedures all have one.
fn executable(snap: &Snapshot, entry: &Entry) -> bool {
    let online = |e: &Entry| {
        e.document.as_procedure().is_some_and(|p| {
            p.channels
                .iter()
                .any(|c| c.kind == saphan_procedures::document::ChannelKind::Online)
        })
    };
    match &entry.document {
        Document::Procedure(_) => online(entry),
        Document::Bundle(_) => {
            let members = snap.members(entry);
            !members.is_empty() && members.iter().all(|m| online(m))
        }
    }
}

fn eform_item(entry: &Entry, latest: bool, lang: Lang) -> Value {
    json!({
        "eFormId": entry.eform_id,
        "name": entry.document.code(),
        "description": entry.document.title().get(lang),
        "version": entry.version.to_string(),
        "latest": latest,
    })
}

#[derive(Deserialize)]
pub(crate) struct ServicesQuery {
    name: Option<String>,
}

/// Every published procedure and bundle; `name` keeps those whose title, summary, category or
/// code holds all its words.
#[utoipa::path(get, path = "/registration/services", tag = "one-stop",
    params(("name" = Option<String>, Query, description = "words to search for")),
    responses((status = 200, description = "GovStack Registration services", body = Object)))]
pub(crate) async fn services(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Query(q): Query<ServicesQuery>,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let snap = state.catalogue.snapshot().await?;
    let filter = Filter {
        query: q.name.map(|n| n.chars().take(100).collect()),
        ..Filter::default()
    };
    let list: Vec<Value> = snap
        .list(&filter, Sort::Title)
        .into_iter()
        .map(|e| service_json(&snap, e, lang))
        .collect();
    Ok(Json(list).into_response())
}

#[utoipa::path(get, path = "/registration/services/{serviceId}", tag = "one-stop",
    params(("serviceId" = String, Path, description = "the service id (UUID) or code")),
    responses((status = 200, description = "The service", body = Object),
        (status = 404, description = "No such service", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn service(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Path(service_id): Path<String>,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let snap = state.catalogue.snapshot().await?;
    let entry = snap
        .find(&service_id)
        .ok_or_else(|| not_found(&service_id))?;
    Ok(Json(service_json(&snap, entry, lang)).into_response())
}

/// A procedure's e-forms, one per published version (the current one `latest`); a bundle's are
/// the current e-forms of its procedures.
#[utoipa::path(get, path = "/registration/services/{serviceId}/eForms", tag = "one-stop",
    params(("serviceId" = String, Path)),
    responses((status = 200, description = "The service's e-forms", body = Object),
        (status = 404, description = "No such service", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn eforms(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Path(service_id): Path<String>,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let snap = state.catalogue.snapshot().await?;
    let entry = snap
        .find(&service_id)
        .ok_or_else(|| not_found(&service_id))?;
    let items: Vec<Value> = match &entry.document {
        Document::Bundle(_) => snap
            .members(entry)
            .iter()
            .map(|m| eform_item(m, true, lang))
            .collect(),
        Document::Procedure(_) => state
            .catalogue
            .versions(&entry.id)
            .await?
            .iter()
            .map(|v| eform_item(v, v.version == entry.version, lang))
            .collect(),
    };
    Ok(Json(items).into_response())
}

/// One e-form: its JSON Schema (draft 2020-12) in `schema`, and how to ask for it (pages,
/// labels, which fields come verified from a registry) in `uiSchema`.
#[utoipa::path(get, path = "/registration/eForms/{eFormId}", tag = "one-stop",
    params(("eFormId" = String, Path)),
    responses((status = 200, description = "The e-form", body = Object),
        (status = 404, description = "No such e-form", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn eform(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Path(eform_id): Path<String>,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    if uuid::Uuid::parse_str(&eform_id).is_err() {
        return Err(not_found(&eform_id));
    }
    let (entry, latest) = state.catalogue.eform(&eform_id).await?;
    let Document::Procedure(p) = &entry.document else {
        return Err(not_found(&eform_id));
    };
    let mut item = eform_item(&entry, latest, lang);
    item["schema"] = p.form.schema.clone();
    item["uiSchema"] = serde_json::to_value(&p.form.ui).expect("UI schemas serialise");
    Ok(Json(item).into_response())
}

/// What applying reads from registries through the exchange (Saphan's extension): who sends
/// what, so that a client can ask the applicant's consent in these words before it sets
/// `consentToRegistryReads`.
#[utoipa::path(get, path = "/registration/services/{serviceId}/registryReads", tag = "one-stop",
    params(("serviceId" = String, Path)),
    responses((status = 200, description = "The reads, each with its provider, data and fields", body = Object),
        (status = 404, description = "No such service", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn registry_reads(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Path(service_id): Path<String>,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let reads = state.applications.service_reads(&service_id).await?;
    let portal = &state.config.onestop.exchange_subsystem;
    let items: Vec<Value> = reads
        .iter()
        .map(|r| {
            json!({
                "key": r.key,
                "title": r.title.get(lang),
                "provider": r.provider.get(lang),
                "service": r.service,
                "fields": r.fields,
                "recipient": portal,
                "purpose": saphan_applications::prefill::PURPOSE,
            })
        })
        .collect();
    Ok(Json(items).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatisticsParams {
    start_date: Option<String>,
    end_date: Option<String>,
    registration_name: Option<String>,
    operator: Option<String>,
    role: Option<String>,
    timeframe: Option<String>,
}

/// How many applications were processed, approved, sent back and refused: for anyone (GovStack
/// statistics API). By service (`registrationName`, a service code), by task role, per day,
/// week, month or year. Statistics by a named official are not published.
#[utoipa::path(get, path = "/registration/data/statistics", tag = "one-stop",
    params(("startDate" = Option<String>, Query), ("endDate" = Option<String>, Query),
        ("registrationName" = Option<String>, Query), ("role" = Option<String>, Query),
        ("timeframe" = Option<String>, Query)),
    responses((status = 200, description = "Counts per period", body = Object),
        (status = 400, description = "A date, role or timeframe that does not read", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn statistics(
    State(state): State<AppState>,
    axum::extract::Query(p): axum::extract::Query<StatisticsParams>,
) -> Result<Response, ApiProblem> {
    use saphan_applications::statistics::{StatisticsQuery, Timeframe};
    let invalid = |th: &str, en: &str| {
        ApiProblem::from(saphan_applications::ApplicationError::Invalid(Text::owned(
            th.to_string(),
            en.to_string(),
        )))
    };
    if p.operator.is_some() {
        return Err(invalid(
            "ไม่เผยแพร่สถิติรายเจ้าหน้าที่",
            "statistics by a named official are not published",
        ));
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = |v: &Option<String>, name: &str| -> Result<Option<time::Date>, ApiProblem> {
        v.as_deref()
            .map(|d| {
                time::Date::parse(d, format).map_err(|_| {
                    invalid(
                        &format!("{name} ต้องเป็นวันที่ ปปปป-ดด-วว"),
                        &format!("{name} is a date, YYYY-MM-DD"),
                    )
                })
            })
            .transpose()
    };
    let query = StatisticsQuery {
        start: date(&p.start_date, "startDate")?,
        end: date(&p.end_date, "endDate")?,
        service: p.registration_name.clone().filter(|s| !s.is_empty()),
        role: p.role.clone().filter(|s| !s.is_empty()),
        timeframe: p
            .timeframe
            .as_deref()
            .map(str::parse::<Timeframe>)
            .transpose()?,
    };
    let counts = state.applications.statistics(&query).await?;
    let items: Vec<Value> = counts
        .iter()
        .map(|c| {
            json!({
                "processed": c.processed, "approved": c.approved,
                "sentBack": c.sent_back, "rejected": c.rejected,
                "references": {
                    "startDate": c.start.map(|d| d.to_string()),
                    "endDate": c.end.map(|d| d.to_string()),
                    "registrationName": query.service,
                    "role": query.role,
                    "timeframeDay": query.timeframe == Some(Timeframe::Day),
                    "timeframeWeek": query.timeframe == Some(Timeframe::Week),
                    "timeframeMonth": query.timeframe == Some(Timeframe::Month),
                    "timeframeYear": query.timeframe == Some(Timeframe::Year),
                },
            })
        })
        .map(|mut v| {
            if let Some(r) = v["references"].as_object_mut() {
                r.retain(|_, x| !x.is_null());
            }
            v
        })
        .collect();
    Ok(Json(items).into_response())
}
