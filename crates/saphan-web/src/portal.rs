//! The portal shell: templates, language choice, static assets, the landing page.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, State as TemplateState, Value};
use saphan_core::{Lang, Text};
use serde::Deserialize;

use crate::state::AppState;

/// A service listed on the landing page. Capability crates add theirs.
#[derive(Debug, Clone)]
pub struct PortalService {
    pub title: Text,
    pub description: Text,
    /// Who it is for, e.g. "citizens", "agency IT".
    pub audience: Text,
    pub href: &'static str,
}

pub(crate) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub(crate) fn new() -> Templates {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../templates/base.html")),
            ("index.html", include_str!("../templates/index.html")),
            ("error.html", include_str!("../templates/error.html")),
            ("api_docs.html", include_str!("../templates/api_docs.html")),
            ("admin.html", include_str!("../templates/admin.html")),
            (
                "admin_login.html",
                include_str!("../templates/admin_login.html"),
            ),
            ("signin.html", include_str!("../templates/signin.html")),
            (
                "signin_totp.html",
                include_str!("../templates/signin_totp.html"),
            ),
            ("consent.html", include_str!("../templates/consent.html")),
            ("logout.html", include_str!("../templates/logout.html")),
            (
                "signed_out.html",
                include_str!("../templates/signed_out.html"),
            ),
            ("account.html", include_str!("../templates/account.html")),
            ("services.html", include_str!("../templates/services.html")),
            ("service.html", include_str!("../templates/service.html")),
            (
                "apply_start.html",
                include_str!("../templates/apply_start.html"),
            ),
            (
                "apply_page.html",
                include_str!("../templates/apply_page.html"),
            ),
            (
                "apply_check.html",
                include_str!("../templates/apply_check.html"),
            ),
            (
                "my_applications.html",
                include_str!("../templates/my_applications.html"),
            ),
            (
                "application.html",
                include_str!("../templates/application.html"),
            ),
            ("consents.html", include_str!("../templates/consents.html")),
            (
                "data_access.html",
                include_str!("../templates/data_access.html"),
            ),
            (
                "office_inbox.html",
                include_str!("../templates/office_inbox.html"),
            ),
            (
                "office_task.html",
                include_str!("../templates/office_task.html"),
            ),
            ("recover.html", include_str!("../templates/recover.html")),
            (
                "totp_setup.html",
                include_str!("../templates/totp_setup.html"),
            ),
            (
                "identity_admin.html",
                include_str!("../templates/identity_admin.html"),
            ),
            (
                "exchange_admin.html",
                include_str!("../templates/exchange_admin.html"),
            ),
            (
                "recovery_codes.html",
                include_str!("../templates/recovery_codes.html"),
            ),
        ] {
            env.add_template(name, source).expect("templates are valid");
        }
        // t("ไทย", "English"): both languages side by side in the template; the page's `lang` picks.
        env.add_function(
            "t",
            |state: &TemplateState, th: String, en: String| -> String {
                match state.lookup("lang").as_ref().and_then(Value::as_str) {
                    Some("en") => en,
                    _ => th,
                }
            },
        );
        Templates { env }
    }

    /// Renders `name` for `lang`; `path` is the page's own path for the language switch. A path
    /// that could leave the site (`//host`, `/\\host`) becomes `/`.
    pub(crate) fn render(
        &self,
        name: &str,
        lang: Lang,
        path: &str,
        demo: bool,
        extra: Value,
    ) -> String {
        let local = path.starts_with('/') && !path.starts_with("//") && !path.contains('\\');
        let path = if local { path } else { "/" };
        let base = minijinja::context! { lang => lang.code(), path => path, demo => demo };
        let context = minijinja::context! { ..base, ..extra };
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .unwrap_or_else(|e| {
                tracing::error!(template = name, error = %e, "template failed to render");
                "<!DOCTYPE html><title>Error</title><p>ระบบขัดข้อง / Something went wrong</p>".into()
            })
    }
}

#[derive(Deserialize)]
pub(crate) struct LangQuery {
    pub(crate) lang: Option<String>,
}

impl LangQuery {
    /// The `lang` parameter of a raw query string (for handlers that read the query themselves).
    pub(crate) fn from_raw(query: Option<&str>) -> LangQuery {
        LangQuery {
            lang: query.and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "lang")
                    .map(|(_, v)| v.into_owned())
            }),
        }
    }
}

/// The language for a request: `?lang=`, then the `lang` cookie, then `Accept-Language`, then Thai.
pub(crate) fn request_lang(headers: &HeaderMap, query: Option<&str>) -> Lang {
    if let Some(lang) = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::from_tag(&v))
    }) {
        return lang;
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("lang=").and_then(Lang::from_tag));
    if let Some(lang) = cookie {
        return lang;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language)
        .unwrap_or_default()
}

/// An HTML page in the chosen language; remembers an explicit choice in a cookie.
pub(crate) fn page(
    state: &AppState,
    headers: &HeaderMap,
    query: &LangQuery,
    name: &str,
    path: &str,
    extra: Value,
) -> Response {
    let explicit = query.lang.as_deref().and_then(Lang::from_tag);
    let lang = explicit.unwrap_or_else(|| request_lang(headers, None));
    let html = state.templates.render(name, lang, path, state.demo, extra);
    let mut response = Html(html).into_response();
    if let Some(lang) = explicit {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "lang={}; Path=/; Max-Age=31536000; SameSite=Lax",
            lang.code()
        )) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    response
}

pub(crate) async fn index(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Response {
    let lang = query
        .lang
        .as_deref()
        .and_then(Lang::from_tag)
        .unwrap_or_else(|| request_lang(&headers, None));
    let services: Vec<Value> = state
        .services
        .iter()
        .map(|s| {
            Value::from_serialize(serde_json::json!({
                "title": s.title.get(lang),
                "description": s.description.get(lang),
                "audience": s.audience.get(lang),
                "href": s.href,
            }))
        })
        .collect();
    page(
        &state,
        &headers,
        &query,
        "index.html",
        "/",
        minijinja::context! { services => services },
    )
}

pub(crate) async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, content_type): (&'static [u8], &str) = match name.as_str() {
        "saphan.css" => (
            include_bytes!("../assets/saphan.css"),
            "text/css; charset=utf-8",
        ),
        "fonts/sarabun-thai-400-normal.woff2" => (
            include_bytes!("../assets/fonts/sarabun-thai-400-normal.woff2"),
            "font/woff2",
        ),
        "fonts/sarabun-thai-700-normal.woff2" => (
            include_bytes!("../assets/fonts/sarabun-thai-700-normal.woff2"),
            "font/woff2",
        ),
        "fonts/sarabun-latin-400-normal.woff2" => (
            include_bytes!("../assets/fonts/sarabun-latin-400-normal.woff2"),
            "font/woff2",
        ),
        "fonts/sarabun-latin-700-normal.woff2" => (
            include_bytes!("../assets/fonts/sarabun-latin-700-normal.woff2"),
            "font/woff2",
        ),
        "passkey.js" => (
            include_bytes!("../assets/passkey.js"),
            "text/javascript; charset=utf-8",
        ),
        "fonts/OFL.txt" => (
            include_bytes!("../assets/fonts/OFL.txt"),
            "text/plain; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}
