//! The platform's signed statement to a provider that a call came through the exchange:
//! a JWS (ES256, the platform's signing key, `kid` in the platform JWKS) in the
//! `Saphan-Exchange-Assertion` header, living [`LIFETIME_SECS`] seconds.
//!
//! Claims: `iss` (the platform), `aud` (the service id), `sub` (the consumer subsystem), `iat`,
//! `exp`, `jti` (unique), `x_road_id`, `user` and `data_subject` (pseudonyms),
//! `data_subject_id` (the person, as the provider knows them), `purpose`, `consent`, `issue`,
//! `req_hash`, and `fields` when the consumer's rights release only some fields. `req_hash` is the X-Road request hash when the gateway read
//! the whole body before forwarding (bodies up to `exchange.buffer_body_bytes`); for a streamed
//! body it covers the request line and headers only (`req_headers_hash`), and the full hash is in
//! the message log.

use saphan_crypto::{KeyAlg, KeyStore, PublicKeySet};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ExchangeError;

pub const LIFETIME_SECS: i64 = 60;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique per assertion (replay detection at the provider).
    pub jti: String,
    pub x_road_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The person the call concerns, as the provider knows them (`TH<national id>` or
    /// `<ISO3>:<passport>`): from the consent, or from `Saphan-Data-Subject`. A provider of a
    /// consent-based service must answer only about this person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_subject_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub req_hash: Option<String>,
    pub req_headers_hash: String,
    /// Field-level minimisation: the only top-level fields the provider may return to this
    /// consumer (absent: every field its right covers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

pub fn sign(keys: &KeyStore, claims: &Claims) -> Result<String, ExchangeError> {
    let value = serde_json::to_value(claims).expect("claims serialise");
    saphan_oidc::jose::sign(keys, KeyAlg::ES256, &value)
        .map_err(|e| ExchangeError::Invalid(format!("signing the assertion: {e:?}")))
}

/// What a provider does (any JOSE library will do): check the signature against the platform
/// keys, the audience and the lifetime. Returns the claims.
pub fn verify(jwt: &str, platform_keys: &PublicKeySet, service: &str, now: i64) -> Option<Claims> {
    let parsed = saphan_oidc::jose::Unverified::parse(jwt)?;
    if !parsed.verify_platform(platform_keys) {
        return None;
    }
    let claims: Claims = serde_json::from_value::<Value>(parsed.claims.clone())
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())?;
    (claims.aud == service && claims.iat <= now + 5 && now < claims.exp).then_some(claims)
}

/// One request to a provider, as [`for_request`] signs it.
pub struct Request<'a> {
    pub issuer: &'a str,
    /// The service id (`INSTANCE/CLASS/MEMBER/SUBSYSTEM/CODE`): the audience.
    pub service: &'a str,
    /// The consumer subsystem the provider is told about.
    pub consumer: &'a str,
    pub method: &'a str,
    /// Relative to the service's backend URL, with the query.
    pub path_and_query: &'a str,
    /// The headers the provider will receive (those the gateway would forward).
    pub headers: &'a http::HeaderMap,
    pub body: Option<&'a [u8]>,
    pub x_road_id: &'a str,
    pub fields: Option<Vec<String>>,
}

/// The assertion the gateway would put on `request`, bound to its line, headers and body: for
/// an operator testing a provider's backend without a consumer, and the registry benchmark's
/// direct row. Lives [`LIFETIME_SECS`].
pub fn for_request(keys: &KeyStore, request: &Request<'_>) -> Result<String, ExchangeError> {
    let digest =
        crate::protocol::headers_digest(request.method, request.path_and_query, request.headers);
    let req_hash = request.body.map(|body| {
        use sha2::Digest;
        let body_digest: [u8; 64] = sha2::Sha512::digest(body).into();
        crate::protocol::message_hash(&digest, &body_digest)
    });
    let now = crate::now_unix();
    let claims = Claims {
        iss: request.issuer.to_string(),
        aud: request.service.to_string(),
        sub: request.consumer.to_string(),
        iat: now,
        exp: now + LIFETIME_SECS,
        jti: uuid::Uuid::new_v4().to_string(),
        x_road_id: request.x_road_id.to_string(),
        user: None,
        data_subject_id: None,
        data_subject: None,
        purpose: None,
        consent: None,
        issue: None,
        req_hash,
        req_headers_hash: {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(digest)
        },
        fields: request.fields.clone(),
    };
    sign(keys, &claims)
}
