//! Other parties' public keys as JSON Web Keys (RFC 7517): parsing and verifying their JWS
//! signatures (RFC 7515), e.g. OpenID clients' `private_key_jwt` assertions and upstream
//! providers' ID tokens.
//!
//! Unlike the platform's own signatures, ES256 signatures from others may use either `s` form:
//! JOSE does not require low-s, and WebCrypto produces both.

use rsa::BigUint;
use serde_json::Value;

use crate::{b64url_decode, CryptoError, KeyAlg};

/// A public key read from a JWK.
#[derive(Clone, Debug)]
pub enum ExternalKey {
    P256(p256::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

fn member<'a>(jwk: &'a Value, name: &str) -> Result<&'a str, CryptoError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| CryptoError::Malformed(format!("JWK member `{name}` missing")))
}

impl ExternalKey {
    /// Reads an EC P-256 or RSA (≥ 2048-bit) public key. Private members are refused: a party
    /// that sends its private key has leaked it.
    pub fn from_jwk(jwk: &Value) -> Result<ExternalKey, CryptoError> {
        if jwk.get("d").is_some() || jwk.get("p").is_some() {
            return Err(CryptoError::Malformed("the JWK holds a private key".into()));
        }
        match member(jwk, "kty")? {
            "EC" => {
                if member(jwk, "crv")? != "P-256" {
                    return Err(CryptoError::Malformed(
                        "only the P-256 curve is accepted".into(),
                    ));
                }
                let x = b64url_decode(member(jwk, "x")?)?;
                let y = b64url_decode(member(jwk, "y")?)?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(CryptoError::Malformed(
                        "P-256 coordinates are 32 bytes".into(),
                    ));
                }
                let mut sec1 = vec![4u8];
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map(ExternalKey::P256)
                    .map_err(|_| CryptoError::Malformed("not a point on P-256".into()))
            }
            "RSA" => {
                let n = BigUint::from_bytes_be(&b64url_decode(member(jwk, "n")?)?);
                let e = BigUint::from_bytes_be(&b64url_decode(member(jwk, "e")?)?);
                if n.bits() < 2048 {
                    return Err(CryptoError::Malformed(
                        "RSA keys need at least 2048 bits".into(),
                    ));
                }
                rsa::RsaPublicKey::new(n, e)
                    .map(ExternalKey::Rsa)
                    .map_err(|e| CryptoError::Malformed(format!("RSA key: {e}")))
            }
            other => Err(CryptoError::Malformed(format!(
                "key type `{}` is not accepted (EC P-256 or RSA)",
                other.chars().take(16).collect::<String>()
            ))),
        }
    }

    pub fn alg(&self) -> KeyAlg {
        match self {
            ExternalKey::P256(_) => KeyAlg::ES256,
            ExternalKey::Rsa(_) => KeyAlg::RS256,
        }
    }

    /// Verifies a JWS signature (ES256: r‖s, 64 bytes; RS256: PKCS#1 v1.5).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        use rsa::signature::Verifier;
        let bad = || CryptoError::BadSignature("external key".into());
        match self {
            ExternalKey::P256(key) => {
                let sig = p256::ecdsa::Signature::from_slice(signature).map_err(|_| bad())?;
                let sig = sig.normalize_s().unwrap_or(sig);
                key.verify(message, &sig).map_err(|_| bad())
            }
            ExternalKey::Rsa(key) => {
                let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key.clone());
                let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| bad())?;
                key.verify(message, &sig).map_err(|_| bad())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_p256_signatures_in_both_s_forms_and_refuses_others() {
        use p256::ecdsa::signature::Signer;
        let secret = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let point = secret.verifying_key().to_encoded_point(false);
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": crate::b64url(point.x().unwrap()), "y": crate::b64url(point.y().unwrap()),
        });
        let key = ExternalKey::from_jwk(&jwk).unwrap();
        let sig: p256::ecdsa::Signature = secret.sign(b"hello");
        key.verify(b"hello", &sig.to_bytes()).unwrap();
        // The high-s twin of the same signature.
        let (r, s) = sig.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        key.verify(b"hello", &high.to_bytes()).unwrap();
        assert!(key.verify(b"hellO", &sig.to_bytes()).is_err());

        let mut private = jwk.clone();
        private["d"] = "AAAA".into();
        assert!(ExternalKey::from_jwk(&private).is_err());
        let mut other_curve = jwk.clone();
        other_curve["crv"] = "P-384".into();
        assert!(ExternalKey::from_jwk(&other_curve).is_err());
        assert!(ExternalKey::from_jwk(&serde_json::json!({"kty": "oct", "k": "AA"})).is_err());
        assert!(ExternalKey::from_jwk(
            &serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})
        )
        .is_err());
    }
}
