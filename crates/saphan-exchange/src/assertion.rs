//! The platform's signed statement to a provider that a call came through the exchange:
//! a JWS (ES256, the platform's signing key, `kid` in the platform JWKS) in the
//! `Saphan-Exchange-Assertion` header, living [`LIFETIME_SECS`] seconds.
//!
//! Claims: `iss` (the platform), `aud` (the service id), `sub` (the consumer subsystem), `iat`,
//! `exp`, `jti` (unique), `x_road_id`, `user` and `data_subject` (pseudonyms),
//! `data_subject_id` (the person, as the provider knows them), `purpose`, `consent`, `issue`,
//! `req_hash`. `req_hash` is the X-Road request hash when the gateway read
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
