//! Cookies the digital ID's pages use: reading them, setting them with safe attributes, and the
//! CSRF token every form carries (double submit: a cookie and a hidden field that must match).

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;

use crate::state::AppState;

pub(crate) const SESSION: &str = "saphan_session";
pub(crate) const DEVICE: &str = "saphan_device";
pub(crate) const CSRF: &str = "saphan_csrf";
pub(crate) const SECOND_FACTOR: &str = "saphan_2fa";
/// Binds a sign-in at an upstream provider to the browser that started it.
pub(crate) const UPSTREAM: &str = "saphan_upstream";

/// The value of cookie `name`, if the request carries it.
pub(crate) fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Adds a `Set-Cookie`: HttpOnly, SameSite=Lax (the provider's pages are reached by top-level
/// navigation from relying parties), Secure on https. `max_age` 0 deletes.
pub(crate) fn set(
    state: &AppState,
    response: &mut Response,
    name: &str,
    value: &str,
    max_age: i64,
) {
    let secure = if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The browser's CSRF token, and whether it must be set (it was missing).
pub(crate) fn csrf_token(headers: &HeaderMap) -> (String, bool) {
    match get(headers, CSRF).filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())) {
        Some(v) => (v, false),
        None => (saphan_core::random_id(), true),
    }
}

/// True when the form's token matches the cookie's.
pub(crate) fn csrf_ok(headers: &HeaderMap, presented: &str) -> bool {
    match get(headers, CSRF) {
        Some(cookie) if !cookie.is_empty() => {
            subtle::ConstantTimeEq::ct_eq(cookie.as_bytes(), presented.as_bytes()).into()
        }
        _ => false,
    }
}
