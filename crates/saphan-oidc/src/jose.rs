//! Compact JWS (RFC 7515) as OpenID needs it: signing ID tokens with the platform's keys, and
//! reading JWTs signed by the platform (`id_token_hint`) or by clients (`private_key_jwt`).

use saphan_crypto::{
    b64url, b64url_decode, ExternalKey, KeyAlg, KeyPurpose, KeyStore, PublicKeySet,
};
use serde_json::Value;

use crate::OAuthError;

/// Largest JWT accepted from outside.
pub const MAX_JWT_BYTES: usize = 8 * 1024;

pub fn alg_name(alg: KeyAlg) -> &'static str {
    match alg {
        KeyAlg::ES256 => "ES256",
        KeyAlg::RS256 => "RS256",
    }
}

pub fn parse_alg(name: &str) -> Option<KeyAlg> {
    match name {
        "ES256" => Some(KeyAlg::ES256),
        "RS256" => Some(KeyAlg::RS256),
        _ => None,
    }
}

/// Signs `claims` with the platform's active signing key for `alg`.
pub fn sign(keys: &KeyStore, alg: KeyAlg, claims: &Value) -> Result<String, OAuthError> {
    let kid = keys
        .public_keys()
        .keys
        .iter()
        .rev()
        .find(|k| {
            k.purpose == KeyPurpose::Signing
                && k.alg == alg
                && k.status == saphan_crypto::KeyStatus::Active
        })
        .map(|k| k.kid.clone())
        .ok_or_else(|| OAuthError::server("no active signing key"))?;
    let header = serde_json::json!({ "alg": alg_name(alg), "typ": "JWT", "kid": kid });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = keys
        .sign(KeyPurpose::Signing, alg, input.as_bytes())
        .map_err(|e| OAuthError::server(&e.to_string()))?;
    debug_assert_eq!(signature.kid, kid);
    Ok(format!("{input}.{}", signature.value))
}

/// A JWT split and decoded, not yet verified.
pub struct Unverified {
    pub header: Value,
    pub claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

impl Unverified {
    pub fn parse(jwt: &str) -> Option<Unverified> {
        if jwt.len() > MAX_JWT_BYTES {
            return None;
        }
        let mut parts = jwt.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&b64url_decode(h).ok()?).ok()?;
        let claims: Value = serde_json::from_slice(&b64url_decode(c).ok()?).ok()?;
        if !header.is_object() || !claims.is_object() {
            return None;
        }
        Some(Unverified {
            header,
            claims,
            signing_input: format!("{h}.{c}"),
            signature: b64url_decode(s).ok()?,
        })
    }

    pub fn alg(&self) -> Option<KeyAlg> {
        self.header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(parse_alg)
    }

    /// Verifies against the platform's own signing keys (active or retired).
    pub fn verify_platform(&self, keys: &PublicKeySet) -> bool {
        let (Some(alg), Some(kid)) = (self.alg(), self.header.get("kid").and_then(Value::as_str))
        else {
            return false;
        };
        match keys.get(kid) {
            Ok(key) if key.purpose == KeyPurpose::Signing && key.alg == alg => key
                .verify(self.signing_input.as_bytes(), &self.signature)
                .is_ok(),
            _ => false,
        }
    }

    /// Verifies against a JWKS (a client's or an upstream provider's): the key named by `kid`,
    /// or any key of the right type when there is no `kid`.
    pub fn verify_jwks(&self, jwks: &Value) -> bool {
        let Some(alg) = self.alg() else { return false };
        let kid = self.header.get("kid").and_then(Value::as_str);
        let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
            return false;
        };
        keys.iter()
            .filter(|k| kid.is_none() || k.get("kid").and_then(Value::as_str) == kid)
            .filter_map(|k| ExternalKey::from_jwk(k).ok())
            .filter(|k| k.alg() == alg)
            .any(|k| {
                k.verify(self.signing_input.as_bytes(), &self.signature)
                    .is_ok()
            })
    }
}
