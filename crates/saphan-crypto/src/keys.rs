//! Key kinds, public key sets and signature verification.

use serde::{Deserialize, Serialize};

use crate::{b64url, b64url_decode, sha256, CryptoError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlg {
    /// ECDSA P-256 with SHA-256 (JOSE `ES256`); signatures are 64 bytes r‖s.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 over RSA-3072 (JOSE `RS256`).
    RS256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyPurpose {
    /// Tokens, checkpoints, assertions: anything the platform signs.
    Signing,
    /// The platform certificate authority.
    CertificateAuthority,
    /// The platform's time-stamping authority.
    TimeStamping,
}

impl KeyPurpose {
    pub fn name(self) -> &'static str {
        match self {
            KeyPurpose::Signing => "signing",
            KeyPurpose::CertificateAuthority => "certificate-authority",
            KeyPurpose::TimeStamping => "time-stamping",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Used for new signatures.
    Active,
    /// Kept only to verify what it signed before rotation.
    Retired,
}

/// The public half of one platform key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyInfo {
    /// RFC 7638 JWK thumbprint (SHA-256, base64url).
    pub kid: String,
    pub alg: KeyAlg,
    pub purpose: KeyPurpose,
    pub status: KeyStatus,
    pub created: String,
    /// SubjectPublicKeyInfo, DER, base64url.
    pub spki: String,
    /// The key's X.509 certificate, for the CA and the time-stamping authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
}

/// A detached signature: which key, which algorithm, the bytes (base64url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub kid: String,
    pub alg: KeyAlg,
    pub value: String,
}

/// Public keys that verify what the platform signed, including retired ones. Plain data: it
/// travels in audit bundles and verifies offline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeySet {
    pub keys: Vec<PublicKeyInfo>,
}

impl PublicKeyInfo {
    pub fn spki_der(&self) -> Result<Vec<u8>, CryptoError> {
        b64url_decode(&self.spki)
    }

    /// Checks `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        use p256::pkcs8::DecodePublicKey;
        use rsa::signature::Verifier;
        let der = self.spki_der()?;
        let bad = || CryptoError::BadSignature(self.kid.clone());
        match self.alg {
            KeyAlg::ES256 => {
                let key = p256::PublicKey::from_public_key_der(&der)
                    .map_err(|e| CryptoError::Malformed(e.to_string()))?;
                let sig = p256::ecdsa::Signature::from_slice(signature).map_err(|_| bad())?;
                // (r, n - s) verifies too; only the low-s form we sign is accepted, so a
                // signature cannot be altered and still pass.
                if sig.normalize_s().is_some() {
                    return Err(bad());
                }
                // ring's P-256 arithmetic: about five times as fast as the pure-Rust crate's
                // here, and every call through the exchange is checked by its provider.
                let point =
                    p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key, false);
                ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    point.as_bytes(),
                )
                .verify(message, signature)
                .map_err(|_| bad())
            }
            KeyAlg::RS256 => {
                let key = rsa::RsaPublicKey::from_public_key_der(&der)
                    .map_err(|e| CryptoError::Malformed(e.to_string()))?;
                let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key);
                let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| bad())?;
                key.verify(message, &sig).map_err(|_| bad())
            }
        }
    }

    /// This key as a JSON Web Key (RFC 7517), with `kid`, `alg` and `use`.
    pub fn jwk(&self) -> Result<serde_json::Value, CryptoError> {
        let mut jwk = jwk_members(self.alg, &self.spki_der()?)?;
        let obj = jwk.as_object_mut().expect("jwk is an object");
        obj.insert("kid".into(), self.kid.clone().into());
        obj.insert(
            "alg".into(),
            match self.alg {
                KeyAlg::ES256 => "ES256",
                KeyAlg::RS256 => "RS256",
            }
            .into(),
        );
        obj.insert("use".into(), "sig".into());
        Ok(jwk)
    }

    /// PEM of the SubjectPublicKeyInfo.
    pub fn public_pem(&self) -> Result<String, CryptoError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.spki_der()?);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        Ok(pem)
    }
}

impl PublicKeySet {
    pub fn get(&self, kid: &str) -> Result<&PublicKeyInfo, CryptoError> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| CryptoError::UnknownKey(kid.to_string()))
    }

    /// Verifies `signature` over `message`, requiring the key to have `purpose`.
    pub fn verify(
        &self,
        purpose: KeyPurpose,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        let key = self.get(&signature.kid)?;
        if key.purpose != purpose || key.alg != signature.alg {
            return Err(CryptoError::BadSignature(signature.kid.clone()));
        }
        key.verify(message, &b64url_decode(&signature.value)?)
    }

    /// The JWKS document (RFC 7517 §5) of the signing keys, active and retired.
    pub fn jwks(&self) -> Result<serde_json::Value, CryptoError> {
        let keys = self
            .keys
            .iter()
            .filter(|k| k.purpose == KeyPurpose::Signing)
            .map(PublicKeyInfo::jwk)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(serde_json::json!({ "keys": keys }))
    }
}

/// The required JWK members for a public key, from its SPKI DER.
fn jwk_members(alg: KeyAlg, spki_der: &[u8]) -> Result<serde_json::Value, CryptoError> {
    use p256::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let malformed = |e: &dyn std::fmt::Display| CryptoError::Malformed(e.to_string());
    Ok(match alg {
        KeyAlg::ES256 => {
            let key = p256::PublicKey::from_public_key_der(spki_der).map_err(|e| malformed(&e))?;
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key, false);
            serde_json::json!({
                "kty": "EC",
                "crv": "P-256",
                "x": b64url(point.x().expect("uncompressed point")),
                "y": b64url(point.y().expect("uncompressed point")),
            })
        }
        KeyAlg::RS256 => {
            let key =
                rsa::RsaPublicKey::from_public_key_der(spki_der).map_err(|e| malformed(&e))?;
            serde_json::json!({
                "kty": "RSA",
                "n": b64url(&key.n().to_bytes_be()),
                "e": b64url(&key.e().to_bytes_be()),
            })
        }
    })
}

/// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order.
pub(crate) fn jwk_thumbprint(alg: KeyAlg, spki_der: &[u8]) -> Result<String, CryptoError> {
    let jwk = jwk_members(alg, spki_der)?;
    // serde_json's map is ordered by key (no preserve_order feature), which is what RFC 7638 asks.
    let canonical = serde_json::to_string(&jwk).expect("json");
    Ok(b64url(&sha256(canonical.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es256_verification_takes_low_s_signatures_over_the_message_only() {
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::EncodePublicKey;
        let secret = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let spki = secret.verifying_key().to_public_key_der().unwrap();
        let key = PublicKeyInfo {
            kid: "k".into(),
            alg: KeyAlg::ES256,
            purpose: KeyPurpose::Signing,
            status: KeyStatus::Active,
            created: "2026-01-01T00:00:00Z".into(),
            spki: b64url(spki.as_bytes()),
            certificate_pem: None,
        };
        let sig: p256::ecdsa::Signature = secret.sign(b"message");
        let low = sig.normalize_s().unwrap_or(sig);
        key.verify(b"message", &low.to_bytes()).unwrap();
        assert!(key.verify(b"massage", &low.to_bytes()).is_err());
        let (r, s) = low.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        assert!(key.verify(b"message", &high.to_bytes()).is_err());
        assert!(key.verify(b"message", &low.to_bytes()[..63]).is_err());
        assert!(key.verify(b"message", &[0u8; 64]).is_err());
    }

    #[test]
    fn rfc7638_thumbprint_of_the_rfc_example_key() {
        // RFC 7638 §3.1: the example RSA key and its thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let e = "AQAB";
        let key = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&b64url_decode(n).unwrap()),
            rsa::BigUint::from_bytes_be(&b64url_decode(e).unwrap()),
        )
        .unwrap();
        use rsa::pkcs8::EncodePublicKey;
        let der = key.to_public_key_der().unwrap();
        assert_eq!(
            jwk_thumbprint(KeyAlg::RS256, der.as_bytes()).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
