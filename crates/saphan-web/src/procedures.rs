//! The procedure catalogue on the portal (`/services`: search and audience filter, no
//! JavaScript needed; `/services/{code}`: the citizen's manual of one procedure or bundle) and
//! its editing API for officials with the `procedure-editor` role
//! (`PUT`/`DELETE /api/v1/procedures/{code}`, `GET /api/v1/procedures/{code}/versions`).

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use minijinja::Value;
use saphan_core::{Lang, Text};
use saphan_procedures::document::{ChannelKind, Source};
use saphan_procedures::{Audience, Document, Entry, Filter, ProcedureError, Snapshot, Sort};
use serde::Deserialize;
use serde_json::json;

use crate::identity_api::{caller, json_body};
use crate::portal::{page, request_lang, LangQuery};
use crate::problem::ApiProblem;
use crate::state::AppState;

/// Baht from satang, as Thais write it: `2,000` or `12.50`.
fn baht(satang: u64) -> String {
    let whole = (satang / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match satang % 100 {
        0 => grouped,
        s => format!("{grouped}.{s:02}"),
    }
}

fn fee_text(satang: u64, lang: Lang) -> String {
    match (satang, lang) {
        (0, Lang::Th) => "ไม่มีค่าธรรมเนียม".into(),
        (0, Lang::En) => "Free".into(),
        (s, Lang::Th) => format!("{} บาท", baht(s)),
        (s, Lang::En) => format!("{} baht", baht(s)),
    }
}

/// Agencies' names, read at most every few seconds per node (they change rarely; every
/// catalogue page shows them).
struct AgencyNames(std::sync::Arc<std::collections::HashMap<String, Text>>);

/// A node's agency names and when they were read.
pub(crate) type CachedNames = (
    std::time::Instant,
    std::sync::Arc<std::collections::HashMap<String, Text>>,
);

const NAMES_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl AgencyNames {
    async fn load(state: &AppState) -> Result<AgencyNames, ApiProblem> {
        if let Some((at, names)) = state
            .agency_names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            if at.elapsed() < NAMES_TTL {
                return Ok(AgencyNames(names.clone()));
            }
        }
        let agencies = state
            .directory
            .agencies()
            .await
            .map_err(|e| ApiProblem(e.problem()))?;
        let names = std::sync::Arc::new(
            agencies
                .into_iter()
                .map(|a| (a.code, a.name))
                .collect::<std::collections::HashMap<_, _>>(),
        );
        *state
            .agency_names
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), names.clone()));
        Ok(AgencyNames(names))
    }

    fn get(&self, code: &str, lang: Lang) -> String {
        self.0
            .get(code)
            .map_or_else(|| code.to_string(), |n| n.get(lang).to_string())
    }
}

/// Entries per catalogue page.
const PAGE_SIZE: usize = 50;

fn summary_view(snap: &Snapshot, entry: &Entry, agency: String, lang: Lang) -> serde_json::Value {
    let (fee, days) = snap.fee_and_days(entry);
    let doc = &entry.document;
    json!({
        "code": doc.code(),
        "kind": doc.kind(),
        "title": doc.title().get(lang),
        "summary": doc.summary().get(lang),
        "category": doc.category().get(lang),
        "agency": agency,
        "fee": fee_text(fee, lang),
        "days": days,
        "readiness": entry.readiness.as_ref().map(|r| r.score),
        "members": snap.members(entry).len(),
    })
}

#[derive(Deserialize)]
pub(crate) struct CatalogueQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    audience: String,
    #[serde(default)]
    sort: String,
    page: Option<usize>,
    lang: Option<String>,
}

/// The catalogue page: search words, who it is for, and the order.
pub(crate) async fn catalogue_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Query(q): Query<CatalogueQuery>,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let snap = state.catalogue.snapshot().await?;
    let audience = match q.audience.as_str() {
        "citizen" => Some(Audience::Citizen),
        "business" => Some(Audience::Business),
        "foreigner" => Some(Audience::Foreigner),
        _ => None,
    };
    let sort = if q.sort == "readiness" {
        Sort::Readiness
    } else {
        Sort::Title
    };
    let query: String = q.q.trim().chars().take(100).collect();
    let filter = Filter {
        query: (!query.is_empty()).then(|| query.clone()),
        audience,
        agency: None,
    };
    let mut listed = snap.list(&filter, sort);
    if sort == Sort::Title && lang == Lang::En {
        listed.sort_by(|a, b| a.document.title().en.cmp(&b.document.title().en));
    }
    let names = AgencyNames::load(&state).await?;
    let matched = listed.len();
    let pages = matched.div_ceil(PAGE_SIZE).max(1);
    let page_no = q.page.unwrap_or(1).clamp(1, pages);
    let found: Vec<serde_json::Value> = listed
        .into_iter()
        .skip((page_no - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|entry| {
            let agency = names.get(entry.document.agency(), lang);
            summary_view(&snap, entry, agency, lang)
        })
        .collect();
    let page_link = |n: usize| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("q", &query)
            .append_pair("audience", &q.audience)
            .append_pair("sort", &q.sort)
            .append_pair("page", &n.to_string())
            .append_pair("lang", lang.code());
        format!("/services?{}", s.finish())
    };
    let previous = (page_no > 1).then(|| page_link(page_no - 1));
    let next = (page_no < pages).then(|| page_link(page_no + 1));
    let audiences: Vec<serde_json::Value> =
        [Audience::Citizen, Audience::Business, Audience::Foreigner]
            .iter()
            .map(|a| {
                let code = serde_json::to_value(a).expect("audiences serialise");
                json!({"code": code, "title": a.title().get(lang), "chosen": Some(*a) == audience})
            })
            .collect();
    let path = match raw.as_deref() {
        Some(r) if !r.is_empty() => format!(
            "/services?{}",
            form_urlencoded::parse(r.as_bytes())
                .filter(|(k, _)| k != "lang")
                .fold(
                    form_urlencoded::Serializer::new(String::new()),
                    |mut s, (k, v)| {
                        s.append_pair(&k, &v);
                        s
                    }
                )
                .finish()
        ),
        _ => "/services".to_string(),
    };
    Ok(page(
        &state,
        &headers,
        &LangQuery { lang: q.lang },
        "services.html",
        &path,
        Value::from_serialize(json!({
            "found": found,
            "matched": matched,
            "page": page_no,
            "pages": pages,
            "previous": previous,
            "next": next,
            "total": snap.all().len(),
            "query": query,
            "audiences": audiences,
            "by_readiness": sort == Sort::Readiness,
        })),
    ))
}

fn texts(list: &[Text], lang: Lang) -> Vec<String> {
    list.iter().map(|t| t.get(lang).to_string()).collect()
}

/// One procedure's or bundle's manual.
pub(crate) async fn manual_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Path(code): Path<String>,
    Query(lang_query): Query<LangQuery>,
) -> Result<Response, ApiProblem> {
    let lang = request_lang(&headers, raw.as_deref());
    let snap = state.catalogue.snapshot().await?;
    let entry = snap
        .by_code(&code)
        .ok_or_else(|| ProcedureError::not_found(&code))?;
    let names = AgencyNames::load(&state).await?;
    let mut view = summary_view(&snap, entry, names.get(entry.document.agency(), lang), lang);
    view["version"] = json!(entry.version);
    view["published"] = json!(entry.published_at.get(..10).unwrap_or_default());
    match &entry.document {
        Document::Bundle(_) => {
            let mut members = Vec::new();
            for m in snap.members(entry) {
                members.push(summary_view(
                    &snap,
                    m,
                    names.get(m.document.agency(), lang),
                    lang,
                ));
            }
            view["procedures"] = json!(members);
        }
        Document::Procedure(p) => {
            view["unit"] = json!(p.unit.get(lang));
            view["legal_basis"] = json!(texts(&p.legal_basis, lang));
            view["criteria"] = json!(texts(&p.criteria, lang));
            view["steps"] = json!(p
                .steps
                .iter()
                .map(|s| json!({"title": s.title.get(lang), "unit": s.unit.get(lang), "days": s.days}))
                .collect::<Vec<_>>());
            view["requirements"] = json!(p
                .requirements
                .iter()
                .map(|r| {
                    let (kind, from) = match &r.source {
                        Source::Registry { provider, .. } => {
                            ("registry", provider.get(lang).to_string())
                        }
                        Source::Upload { .. } => ("upload", String::new()),
                        Source::Applicant => ("applicant", String::new()),
                    };
                    json!({"title": r.title.get(lang), "kind": kind, "from": from})
                })
                .collect::<Vec<_>>());
            view["fees"] = json!(p
                .fees
                .iter()
                .map(|f| json!({"title": f.title.get(lang), "amount": fee_text(f.amount_satang, lang)}))
                .collect::<Vec<_>>());
            view["channels"] = json!(p
                .channels
                .iter()
                .map(|c| json!({
                    "online": c.kind == ChannelKind::Online,
                    "title": c.title.get(lang),
                    "hours": c.hours.as_ref().map(|h| h.get(lang)),
                }))
                .collect::<Vec<_>>());
            view["service_points"] = json!(texts(&p.service_points, lang));
            view["complaints"] = json!(p.complaints.as_ref().map(|c| c.get(lang)));
            view["criteria_readiness"] = json!(entry.readiness.as_ref().map(|r| r
                .criteria
                .iter()
                .map(|c| json!({"title": c.title.get(lang), "points": c.points, "max": c.max}))
                .collect::<Vec<_>>()));
            let bundles: Vec<serde_json::Value> = snap
                .bundles_of(&code)
                .iter()
                .map(|b| json!({"code": b.code(), "title": b.document.title().get(lang)}))
                .collect();
            view["bundles"] = json!(bundles);
        }
    }
    let online = |d: &saphan_procedures::ProcedureDoc| {
        d.channels.iter().any(|c| c.kind == ChannelKind::Online)
    };
    view["online"] = json!(match &entry.document {
        Document::Procedure(p) => online(p),
        Document::Bundle(_) => snap
            .members(entry)
            .iter()
            .all(|m| m.document.as_procedure().is_some_and(online)),
    });
    Ok(page(
        &state,
        &headers,
        &lang_query,
        "service.html",
        &format!("/services/{code}"),
        Value::from_serialize(json!({ "p": view })),
    ))
}

/// Publishes a procedure or bundle as its next version (the body is the whole document; its
/// `code` must be the path's). 201 for a new version, 200 when nothing changed.
#[utoipa::path(put, path = "/api/v1/procedures/{code}", tag = "one-stop",
    params(("code" = String, Path)),
    request_body(content = Object, content_type = "application/json", description = "the procedure or bundle document (kind, code, agency, titles, manual, form, workflow); see crates/saphan-procedures/demo/"),
    responses((status = 201, description = "Published as a new version", body = Object),
        (status = 200, description = "Unchanged: the current version", body = Object),
        (status = 400, description = "Not a valid document; the detail names the field", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Needs the procedure-editor role in the agencies involved", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Published by someone else meanwhile, or the agency or kind would change", body = crate::problem::ProblemDocument, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    body: Bytes,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    let doc: Document = json_body(&headers, &body)?;
    if doc.code() != code {
        return Err(ProcedureError::Invalid {
            field: "code".into(),
            message: Text::new(
                "รหัสในเอกสารต้องตรงกับรหัสใน URL",
                "the document's code must be the path's",
            ),
        }
        .into());
    }
    let (entry, new_version) = state.catalogue.publish(&subject, doc).await?;
    let status = if new_version {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(entry)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/procedures/{code}", tag = "one-stop",
    params(("code" = String, Path)),
    responses((status = 204, description = "Withdrawn from the catalogue; its versions stay for the applications made under them"),
        (status = 404, description = "No such procedure", body = crate::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "A published bundle includes it", body = crate::problem::ProblemDocument, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Result<Response, ApiProblem> {
    let subject = caller(&state, &headers).await?;
    state.catalogue.withdraw(&subject, &code).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every version of a procedure, newest first (public: the manual is public law).
#[utoipa::path(get, path = "/api/v1/procedures/{code}/versions", tag = "one-stop",
    params(("code" = String, Path)),
    responses((status = 200, description = "The versions, newest first", body = Object),
        (status = 404, description = "No such procedure", body = crate::problem::ProblemDocument, content_type = "application/problem+json")))]
pub(crate) async fn versions(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Response, ApiProblem> {
    let snap = state.catalogue.snapshot().await?;
    let entry = snap
        .by_code(&code)
        .ok_or_else(|| ProcedureError::not_found(&code))?;
    Ok(Json(state.catalogue.versions(&entry.id).await?).into_response())
}
