//! The X-Road REST message protocol at the gateway's edges: header names, which headers pass,
//! the request hash, and the gateway's own typed errors (`X-Road-Error` + a JSON body).

use base64::Engine;
use http::{HeaderMap, HeaderName, StatusCode};
use serde::Serialize;
use sha2::{Digest, Sha512};

pub const CLIENT: &str = "x-road-client";
/// GovStack Information Mediator's name for the same header.
pub const IM_CLIENT: &str = "information-mediator-client";
/// The GovStack directory-services specification's name for it.
pub const GOVSTACK_CLIENT: &str = "x-govstack-client";
pub const ID: &str = "x-road-id";
pub const USER_ID: &str = "x-road-userid";
pub const ISSUE: &str = "x-road-issue";
pub const REPRESENTED_PARTY: &str = "x-road-represented-party";
pub const SERVICE: &str = "x-road-service";
pub const REQUEST_ID: &str = "x-road-request-id";
pub const REQUEST_HASH: &str = "x-road-request-hash";
pub const ERROR: &str = "x-road-error";
/// Saphan's additions: the consent a call relies on, its purpose, the data subject it concerns,
/// and the platform's signed statement to the provider.
pub const CONSENT: &str = "saphan-consent";
pub const PURPOSE: &str = "saphan-purpose";
pub const DATA_SUBJECT: &str = "saphan-data-subject";
pub const ASSERTION: &str = "saphan-exchange-assertion";
/// GDX's credentials headers.
pub const GDX_CONSUMER_KEY: &str = "consumer-key";
pub const GDX_TOKEN: &str = "token";

/// Headers that never cross the gateway: hop-by-hop (RFC 9110 §7.6.1), the ones X-Road strips,
/// credentials and cookies (the gateway shares the platform's origin), the assertion (only the
/// gateway writes it) and the exchange's own headers.
const STRIPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "user-agent",
    "server",
    "authorization",
    "cookie",
    "set-cookie",
    GDX_CONSUMER_KEY,
    GDX_TOKEN,
    ASSERTION,
    "content-length",
    // What proxies on either leg add: the consumer's network is not the provider's business, and
    // a proxy between the gateway and the provider must not break the assertion's binding.
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "via",
    // Client names other than X-Road-Client (which the gateway sets) and the exchange's own
    // response headers: a caller must not speak for the exchange.
    IM_CLIENT,
    GOVSTACK_CLIENT,
    REQUEST_HASH,
    REQUEST_ID,
    ERROR,
];

/// Whether a header passes through the gateway (either direction).
pub fn passes(name: &HeaderName, connection_listed: &[String]) -> bool {
    let n = name.as_str();
    !STRIPPED.contains(&n) && !connection_listed.iter().any(|c| c == n)
}

/// Header names a `Connection` header lists: hop-by-hop too (RFC 9110 §7.6.1).
pub fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The last value of a header (X-Road: if repeated, the last wins), as text.
pub fn last(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(name)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// SHA-512 over the request line and the forwarded headers, in a canonical form: lower-case
/// names sorted, one `name: value` per line.
pub fn headers_digest(method: &str, path_and_query: &str, headers: &HeaderMap) -> [u8; 64] {
    let mut lines: Vec<(String, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes()))
        .collect();
    lines.sort();
    let mut h = Sha512::new();
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path_and_query.as_bytes());
    h.update(b"\n");
    for (name, value) in lines {
        h.update(name.as_bytes());
        h.update(b": ");
        h.update(value);
        h.update(b"\n");
    }
    h.finalize().into()
}

/// `X-Road-Request-Hash`: base64 of SHA-512(SHA-512(headers) ‖ SHA-512(body)).
pub fn message_hash(headers_digest: &[u8; 64], body_digest: &[u8; 64]) -> String {
    let mut h = Sha512::new();
    h.update(headers_digest);
    h.update(body_digest);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// The gateway's own refusals and failures, never the provider's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub status: StatusCode,
    /// The `X-Road-Error` type, e.g. `Server.ServerProxy.AccessDenied`.
    pub kind: &'static str,
    pub message: String,
    /// Thai, for people reading the body.
    pub message_th: &'static str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
    detail: &'a str,
    message_th: &'a str,
}

impl GatewayError {
    fn new(status: u16, kind: &'static str, th: &'static str, message: impl Into<String>) -> Self {
        GatewayError {
            status: StatusCode::from_u16(status).expect("valid status"),
            kind,
            message: message.into(),
            message_th: th,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "Client.BadRequest", "คำขอไม่ถูกต้องตามข้อกำหนด", message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(
            401,
            "Server.ClientProxy.SslAuthenticationFailed",
            "ไม่สามารถยืนยันตัวตนของระบบผู้เรียกใช้ได้",
            message,
        )
    }
    pub fn client_mismatch(message: impl Into<String>) -> Self {
        Self::new(
            403,
            "Server.ClientProxy.ClientMismatch",
            "X-Road-Client ไม่ตรงกับระบบที่ยืนยันตัวตน",
            message,
        )
    }
    pub fn unknown_service(message: impl Into<String>) -> Self {
        Self::new(
            404,
            "Server.ServerProxy.UnknownService",
            "ไม่พบบริการที่ระบุ",
            message,
        )
    }
    pub fn service_disabled(message: impl Into<String>) -> Self {
        Self::new(
            503,
            "Server.ServerProxy.ServiceDisabled",
            "บริการนี้ถูกระงับชั่วคราว",
            message,
        )
    }
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(
            403,
            "Server.ServerProxy.AccessDenied",
            "ระบบผู้เรียกใช้ไม่มีสิทธิ์เข้าถึงบริการนี้",
            message,
        )
    }
    pub fn consent(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            403,
            kind,
            "ไม่มีความยินยอมของเจ้าของข้อมูลที่ใช้ได้สำหรับคำขอนี้",
            message,
        )
    }
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(
            429,
            "Server.ClientProxy.RateLimited",
            "เรียกใช้บริการเกินอัตราที่กำหนด",
            message,
        )
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "Client.BodyTooLarge", "ข้อมูลมีขนาดใหญ่เกินกำหนด", message)
    }
    pub fn provider_failed(message: impl Into<String>) -> Self {
        Self::new(
            502,
            "Server.ServerProxy.ServiceFailed",
            "ระบบของหน่วยงานผู้ให้บริการไม่ตอบสนอง",
            message,
        )
    }
    pub fn provider_timeout(message: impl Into<String>) -> Self {
        Self::new(
            504,
            "Server.ServerProxy.Timeout",
            "ระบบของหน่วยงานผู้ให้บริการตอบช้าเกินกำหนด",
            message,
        )
    }
    pub fn circuit_open(message: impl Into<String>) -> Self {
        Self::new(
            503,
            "Server.ServerProxy.ServiceUnavailable",
            "ระบบของหน่วยงานผู้ให้บริการขัดข้อง โปรดลองใหม่ภายหลัง",
            message,
        )
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "Server.ClientProxy.InternalError",
            "ระบบแลกเปลี่ยนข้อมูลขัดข้อง",
            message,
        )
    }

    /// The JSON body: `{"type", "message", "detail", "message_th"}`; `detail` is the call's
    /// X-Road-Id so that support can find the log record.
    pub fn body(&self, x_road_id: &str) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody {
            kind: self.kind,
            message: &self.message,
            detail: x_road_id,
            message_th: self.message_th,
        })
        .expect("json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_credentials_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-secret".parse().unwrap());
        let listed = connection_listed(&h);
        for name in [
            "connection",
            "host",
            "authorization",
            "token",
            "x-secret",
            "te",
        ] {
            assert!(!passes(&HeaderName::from_static(name), &listed), "{name}");
        }
        for name in ["accept", "x-road-client", "content-type", "x-custom"] {
            assert!(passes(&HeaderName::from_static(name), &listed), "{name}");
        }
    }

    #[test]
    fn the_last_repeated_header_wins() {
        let mut h = HeaderMap::new();
        h.append(CLIENT, "TH/GOV/A/B".parse().unwrap());
        h.append(CLIENT, "TH/GOV/C/D".parse().unwrap());
        assert_eq!(last(&h, CLIENT).as_deref(), Some("TH/GOV/C/D"));
    }

    #[test]
    fn request_hash_depends_on_headers_and_body() {
        let mut h = HeaderMap::new();
        h.insert("accept", "application/json".parse().unwrap());
        let a = headers_digest("GET", "/x", &h);
        let body: [u8; 64] = Sha512::digest(b"").into();
        let other: [u8; 64] = Sha512::digest(b"x").into();
        assert_ne!(message_hash(&a, &body), message_hash(&a, &other));
        assert_ne!(a, headers_digest("GET", "/y", &h));
        assert_eq!(message_hash(&a, &body).len(), 88);
    }
}
