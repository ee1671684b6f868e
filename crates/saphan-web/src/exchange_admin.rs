//! The data exchange's admin page (`/admin/exchange`): usage charts, members, subsystems,
//! services, rights and access requests, with a form for each change the admin API makes.
//! The page is for exchange administrators: the platform's (every member) and agencies' (their
//! own members; the registry decides, through `Subject::may`, exactly as for the API). Forms only
//! translate fields into the same `saphan-exchange` calls the API makes, so authorization and
//! audit records are the same whichever door a change comes through.

use std::collections::HashMap;

use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use saphan_core::Text;
use saphan_exchange::registry::{Decision, NewAccessRequest, NewMember, NewRight, ServiceSpec};
use saphan_exchange::{ExchangeError, MemberId};
use saphan_identity::{Action, Resource, Role, Subject};
use serde_json::{json, Value};

use crate::cookies;
use crate::identity_admin::admin_subject;
use crate::oidc::see_other;
use crate::portal::LangQuery;
use crate::problem::ApiProblem;
use crate::signin::{csrf_failure, form_page};
use crate::state::AppState;

/// Whether `subject` administers the exchange: `Some(true)` for the platform (sees backend
/// addresses), `Some(false)` for an agency's exchange administrator, `None` for anyone else.
pub(crate) fn exchange_admin_level(subject: &Subject) -> Option<bool> {
    if subject.may(&Action::AdministerExchange, &Resource::Platform) {
        return Some(true);
    }
    let agency_admin = matches!(subject, Subject::Person { roles, .. }
        if roles.iter().any(|r| r.role == Role::ExchangeAdmin));
    agency_admin.then_some(false)
}

fn forbidden() -> ApiProblem {
    ApiProblem::status(403).with_detail(Text::new(
        "เฉพาะผู้ดูแลการแลกเปลี่ยนข้อมูลของแพลตฟอร์มหรือของหน่วยงาน",
        "Exchange administrators of the platform or of an agency only",
    ))
}

/// Who is asking, if they may see the page (`None`: not signed in; an error: no role).
async fn viewer(state: &AppState, headers: &HeaderMap) -> Result<Option<Subject>, ApiProblem> {
    let Some(subject) = admin_subject(state, headers).await? else {
        return Ok(None);
    };
    exchange_admin_level(&subject).ok_or_else(forbidden)?;
    Ok(Some(subject))
}

pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(lang): Query<LangQuery>,
) -> Result<Response, ApiProblem> {
    let Some(subject) = viewer(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    render(&state, &headers, &lang, &subject, StatusCode::OK, None).await
}

async fn render(
    state: &AppState,
    headers: &HeaderMap,
    lang: &LangQuery,
    subject: &Subject,
    status: StatusCode,
    message: Option<Value>,
) -> Result<Response, ApiProblem> {
    let platform = exchange_admin_level(subject) == Some(true);
    let rows = state.exchange.usage();
    let most = rows.iter().map(|r| r.stats.calls).max().unwrap_or(1).max(1);
    let usage: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "consumer": r.consumer, "service": r.service, "calls": r.stats.calls,
                "errors": r.stats.errors, "bytes_in": r.stats.bytes_in, "bytes_out": r.stats.bytes_out,
                "bar": 1 + r.stats.calls * 400 / most,
            })
        })
        .collect();
    let mut buckets = vec![0u64; saphan_exchange::gateway::LATENCY_BUCKETS_MS.len() + 1];
    for r in &rows {
        for (i, n) in r.stats.latency_ms.iter().enumerate() {
            if let Some(b) = buckets.get_mut(i) {
                *b += n;
            }
        }
    }
    let tallest = buckets.iter().copied().max().unwrap_or(1).max(1);
    let latency: Vec<Value> = buckets
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let label = saphan_exchange::gateway::LATENCY_BUCKETS_MS
                .get(i)
                .map(|b| b.to_string())
                .unwrap_or_else(|| "∞".into());
            json!({ "label": label, "count": n, "height": n * 110 / tallest })
        })
        .collect();
    let registry = state.exchange.registry();
    let members = registry.members().await?;
    let subsystems = registry.subsystems(None).await?;
    let mut services = Vec::new();
    for service in registry.services_seen_by(subject).await? {
        let rights: Vec<Value> = registry
            .rights(&service.service_id)
            .await?
            .into_iter()
            .filter(|r| r.revoked_at.is_none())
            .map(|r| {
                // Shown as the last day it is valid, as the grant form takes it.
                let until = r
                    .valid_until
                    .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t - 1).ok())
                    .map(|t| t.date().to_string());
                json!({
                    "id": r.id, "grantee": r.grantee, "method": r.method, "path": r.path,
                    "legal_basis": r.legal_basis, "until": until,
                })
            })
            .collect();
        let mut shown =
            serde_json::to_value(&service).map_err(|e| ExchangeError::Invalid(e.to_string()))?;
        shown["rights"] = Value::Array(rights);
        services.push(shown);
    }
    let requests = registry.access_requests(Some("pending")).await?;
    Ok(form_page(
        state,
        headers,
        lang,
        "exchange_admin.html",
        "/admin/exchange",
        status,
        minijinja::context! {
            usage => minijinja::Value::from_serialize(&usage),
            latency => minijinja::Value::from_serialize(&latency),
            members => minijinja::Value::from_serialize(&members),
            subsystems => minijinja::Value::from_serialize(&subsystems),
            services => minijinja::Value::from_serialize(&services),
            requests => minijinja::Value::from_serialize(&requests),
            classifications => saphan_exchange::registry::CLASSIFICATIONS,
            platform => platform,
            message => minijinja::Value::from_serialize(&message),
        },
    ))
}

/// One form post: `action` names the change, the other fields are its arguments.
pub(crate) async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, ApiProblem> {
    let fields = Fields(form);
    if !cookies::csrf_ok(&headers, fields.get("csrf")) {
        return Err(csrf_failure());
    }
    let lang = LangQuery::from_raw(raw.as_deref());
    let Some(subject) = viewer(&state, &headers).await? else {
        return Ok(see_other("/signin"));
    };
    let (status, message) = match perform(&state, &subject, &fields).await {
        Ok(done) => (StatusCode::OK, json!({ "ok": true, "done": done })),
        Err(e) => {
            if matches!(
                e,
                ExchangeError::Store(_) | ExchangeError::Audit(_) | ExchangeError::Crypto(_)
            ) {
                tracing::error!(error = %e, "exchange admin change failed");
            }
            let problem = e.problem();
            let status = StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::BAD_REQUEST);
            (
                status,
                json!({ "ok": false, "title": problem.title, "detail": problem.detail }),
            )
        }
    };
    render(&state, &headers, &lang, &subject, status, Some(message)).await
}

/// Form fields; absent and blank fields are the same thing. Errors name the field by the label
/// the page shows, in both languages.
struct Fields(HashMap<String, String>);

/// The page's label for a field, for error messages.
fn label(name: &str) -> (&'static str, &'static str) {
    match name {
        "class" => ("ประเภทสมาชิก", "Member class"),
        "code" => ("รหัส", "Code"),
        "name_th" => ("ชื่อ (ภาษาไทย)", "Name (Thai)"),
        "name_en" => ("ชื่อ (ภาษาอังกฤษ)", "Name (English)"),
        "member" => ("สมาชิก", "Member"),
        "subsystem" => ("ระบบย่อย", "Subsystem"),
        "service" => ("บริการ", "Service"),
        "title_th" => ("ชื่อบริการ (ภาษาไทย)", "Title (Thai)"),
        "title_en" => ("ชื่อบริการ (ภาษาอังกฤษ)", "Title (English)"),
        "backend_url" => ("URL ระบบหลังบ้าน", "Backend URL"),
        "openapi" => ("คำอธิบาย OpenAPI", "OpenAPI description"),
        "endpoints" => ("ปลายทาง", "Endpoints"),
        "jwks" => ("กุญแจสาธารณะ (JWKS)", "Public keys (JWKS)"),
        "grantee" => ("ผู้ได้รับสิทธิ์", "Grantee"),
        "legal_basis" => ("ฐานทางกฎหมาย", "Legal basis"),
        "fields" => ("ฟิลด์ที่เปิดเผย", "Fields released"),
        "valid_until" => ("ใช้ได้ถึง", "Valid through"),
        "valid_days" => ("อายุใบรับรอง", "Certificate validity"),
        "right" => ("สิทธิ์", "Right"),
        "group" => ("รหัสกลุ่ม", "Group code"),
        "consumer" => ("ระบบย่อยผู้ใช้บริการ", "Consumer subsystem"),
        "purpose" => ("วัตถุประสงค์", "Purpose"),
        "request" => ("คำขอ", "Request"),
        "fingerprint" => ("ลายนิ้วมือใบรับรอง", "Certificate fingerprint"),
        "consumer_key" => ("Consumer-Key", "Consumer-Key"),
        "active" | "approve" => ("การเลือก", "The choice"),
        "rate_limit_per_min" => ("จำนวนครั้งต่อนาที", "Calls a minute"),
        "timeout_secs" => ("เวลารอคำตอบ", "Timeout"),
        _ => ("ช่องข้อมูล", "A field"),
    }
}

fn field_error(name: &str, th: &str, en: &str) -> ExchangeError {
    let (label_th, label_en) = label(name);
    ExchangeError::InvalidText(Text::owned(
        format!("{label_th}: {th}"),
        format!("{label_en}: {en}"),
    ))
}

impl Fields {
    fn get(&self, name: &str) -> &str {
        self.0.get(name).map(|v| v.trim()).unwrap_or("")
    }

    fn required(&self, name: &str) -> Result<String, ExchangeError> {
        match self.get(name) {
            "" => Err(field_error(name, "ต้องกรอก", "is required")),
            v => Ok(v.to_string()),
        }
    }

    fn optional(&self, name: &str) -> Option<String> {
        Some(self.get(name))
            .filter(|v| !v.is_empty())
            .map(String::from)
    }

    /// A checkbox: present ("on", "true", "yes") or not.
    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), "on" | "true" | "yes" | "1")
    }

    /// A yes/no that the page's buttons always send: missing is an error, never a default.
    fn choice(&self, name: &str) -> Result<bool, ExchangeError> {
        match self.get(name) {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(field_error(
                name,
                "ต้องเป็น true หรือ false",
                "must be true or false",
            )),
        }
    }

    fn number(&self, name: &str) -> Result<u32, ExchangeError> {
        match self.get(name) {
            "" => Ok(0),
            v => v
                .parse()
                .map_err(|_| field_error(name, "ต้องเป็นจำนวนเต็ม", "must be a whole number")),
        }
    }

    /// A date (`YYYY-MM-DD`, valid through the end of that day, UTC) as Unix seconds.
    fn until(&self, name: &str) -> Result<Option<i64>, ExchangeError> {
        let text = self.get(name);
        if text.is_empty() {
            return Ok(None);
        }
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let bad = || {
            field_error(
                name,
                "ต้องเป็นวันที่ ปปปป-ดด-วว (ค.ศ.)",
                "must be a date, YYYY-MM-DD",
            )
        };
        let day = time::Date::parse(text, &format).map_err(|_| bad())?;
        let next = day.next_day().ok_or_else(bad)?;
        Ok(Some(next.midnight().assume_utc().unix_timestamp()))
    }

    /// A JSON document.
    fn json(&self, name: &str) -> Result<Option<Value>, ExchangeError> {
        match self.optional(name) {
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                field_error(
                    name,
                    &format!("ไม่ใช่ JSON ที่ถูกต้อง ({e})"),
                    &format!("is not valid JSON ({e})"),
                )
            }),
            None => Ok(None),
        }
    }

    /// Endpoints, one `METHOD /path` a line.
    fn endpoints(&self, name: &str) -> Result<Vec<saphan_exchange::Endpoint>, ExchangeError> {
        self.get(name)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|line| match line.split_once(char::is_whitespace) {
                Some((method, path)) if path.trim().starts_with('/') => {
                    Ok(saphan_exchange::Endpoint {
                        method: method.to_ascii_uppercase(),
                        path: path.trim().to_string(),
                    })
                }
                _ => Err(field_error(
                    name,
                    "บรรทัดละหนึ่งรายการ เช่น GET /persons/{id}",
                    "one a line, such as GET /persons/{id}",
                )),
            })
            .collect()
    }

    /// A comma- or newline-separated list.
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}

/// Makes the change a form asks for; returns what to show about it.
async fn perform(state: &AppState, subject: &Subject, f: &Fields) -> Result<Value, ExchangeError> {
    let registry = state.exchange.registry();
    let credentials = state.exchange.credentials();
    let done = |th: &str, en: &str| json!({ "th": th, "en": en });
    match f.get("action") {
        "member" => {
            let new = NewMember {
                class: f.required("class")?,
                code: f.required("code")?,
                name_th: f.required("name_th")?,
                name_en: f.required("name_en")?,
                agency: f.optional("agency"),
            };
            let member = registry.create_member(subject, &new).await?;
            Ok(json!({ "th": "เพิ่มสมาชิกแล้ว", "en": "Member added", "id": member.id }))
        }
        "subsystem" => {
            let member = MemberId::parse(&f.required("member")?)?;
            let created = registry
                .create_subsystem(subject, &member, &f.required("code")?)
                .await?;
            Ok(json!({ "th": "เพิ่มระบบย่อยแล้ว", "en": "Subsystem added", "id": created.id }))
        }
        "subsystem_status" => {
            let id = registry.parse_subsystem(&f.required("subsystem")?)?;
            registry
                .set_subsystem_status(subject, &id, f.choice("active")?)
                .await?;
            Ok(done("บันทึกสถานะระบบย่อยแล้ว", "Subsystem status saved"))
        }
        "service" => {
            let provider = registry.parse_subsystem(&f.required("subsystem")?)?;
            let openapi = f.json("openapi")?;
            let spec = ServiceSpec {
                code: f.required("code")?,
                title_th: f.required("title_th")?,
                title_en: f.required("title_en")?,
                backend_url: f.required("backend_url")?,
                openapi,
                endpoints: f.endpoints("endpoints")?,
                classification: f
                    .optional("classification")
                    .unwrap_or_else(|| "internal".into()),
                personal_data: f.flag("personal_data"),
                consent_required: f.flag("consent_required"),
                purposes: f.list("purposes"),
                rate_limit_per_min: f.number("rate_limit_per_min")?,
                timeout_secs: f.number("timeout_secs")?,
                log_bodies: f.flag("log_bodies"),
            };
            let service = registry.put_service(subject, &provider, &spec).await?;
            Ok(json!({ "th": "เผยแพร่บริการแล้ว", "en": "Service published", "id": service.id }))
        }
        "service_status" => {
            let id = registry.parse_service(&f.required("service")?)?;
            registry
                .set_service_status(subject, &id, f.choice("active")?)
                .await?;
            Ok(done("บันทึกสถานะบริการแล้ว", "Service status saved"))
        }
        "grant" => {
            let service = registry.parse_service(&f.required("service")?)?;
            let new = NewRight {
                grantee: f.required("grantee")?,
                method: f.optional("method").unwrap_or_else(|| "*".into()),
                path: f.optional("path").unwrap_or_else(|| "*".into()),
                legal_basis: f.required("legal_basis")?,
                valid_until: f.until("valid_until")?,
                fields: Some(f.list("fields")).filter(|l| !l.is_empty()),
            };
            let right = registry.grant_right(subject, &service, &new).await?;
            Ok(json!({ "th": "ให้สิทธิ์แล้ว", "en": "Right granted", "id": right.id }))
        }
        "revoke" => {
            registry
                .revoke_right(subject, &f.required("right")?)
                .await?;
            Ok(done("ถอนสิทธิ์แล้ว", "Right revoked"))
        }
        "group" => {
            let code = f.required("code")?;
            registry
                .create_group(subject, &code, f.get("description"))
                .await?;
            Ok(json!({ "th": "สร้างกลุ่มแล้ว", "en": "Group created", "id": code }))
        }
        "group_member" => {
            let id = registry.parse_subsystem(&f.required("subsystem")?)?;
            registry
                .add_to_group(subject, &f.required("group")?, &id)
                .await?;
            Ok(done("เพิ่มเข้ากลุ่มแล้ว", "Added to the group"))
        }
        "request" => {
            let new = NewAccessRequest {
                consumer: f.required("consumer")?,
                service: f.required("service")?,
                method: f.optional("method").unwrap_or_else(|| "*".into()),
                path: f.optional("path").unwrap_or_else(|| "*".into()),
                purpose: f.required("purpose")?,
                legal_basis: f.required("legal_basis")?,
            };
            let request = registry.request_access(subject, &new).await?;
            Ok(json!({ "th": "ส่งคำขอสิทธิ์แล้ว", "en": "Access requested", "id": request.id }))
        }
        "decide" => {
            let decision = Decision {
                approve: f.choice("approve")?,
                reason: f.optional("reason"),
                valid_until: f.until("valid_until")?,
                fields: Some(f.list("fields")).filter(|l| !l.is_empty()),
            };
            let decided = registry
                .decide_access(subject, &f.required("request")?, &decision)
                .await?;
            Ok(if decided.status == "approved" {
                done("อนุมัติคำขอแล้ว", "Request approved")
            } else {
                done("ปฏิเสธคำขอแล้ว", "Request refused")
            })
        }
        "certificate" => {
            let id = registry.parse_subsystem(&f.required("subsystem")?)?;
            let public = f
                .optional("public_key_pem")
                .map(|pem| crate::exchange_api::spki_der(&pem))
                .transpose()?;
            let days = match f.number("valid_days")? {
                0 => 365,
                days => days,
            };
            let issued = credentials
                .issue_certificate(subject, &id, public, days)
                .await?;
            Ok(json!({
                "th": "ออกใบรับรองแล้ว", "en": "Certificate issued",
                "id": issued.fingerprint_sha256,
                "certificate_pem": issued.certificate_pem,
                "private_key_pem": issued.private_key_pem,
            }))
        }
        "keys" => {
            let id = registry.parse_subsystem(&f.required("subsystem")?)?;
            let jwks = f
                .json("jwks")?
                .ok_or_else(|| field_error("jwks", "ต้องกรอก", "is required"))?;
            registry.set_subsystem_keys(subject, &id, &jwks).await?;
            Ok(done("บันทึกกุญแจ OAuth แล้ว", "OAuth keys saved"))
        }
        "revoke_certificate" => {
            credentials
                .revoke_certificate(subject, &f.required("fingerprint")?)
                .await?;
            Ok(done("เพิกถอนใบรับรองแล้ว", "Certificate revoked"))
        }
        "gdx_key" => {
            let id = registry.parse_subsystem(&f.required("subsystem")?)?;
            let key = credentials.create_gdx_key(subject, &id).await?;
            Ok(json!({
                "th": "สร้างกุญแจ GDX แล้ว", "en": "GDX key created",
                "id": key.consumer_key, "consumer_secret": key.consumer_secret,
            }))
        }
        "revoke_gdx_key" => {
            credentials
                .revoke_gdx_key(subject, &f.required("consumer_key")?)
                .await?;
            Ok(done("เพิกถอนกุญแจ GDX แล้ว", "GDX key revoked"))
        }
        _ => Err(ExchangeError::InvalidText(Text::new(
            "ไม่รู้จักรายการที่ขอ",
            "The page asked for a change this version does not know",
        ))),
    }
}
