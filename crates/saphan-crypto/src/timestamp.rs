//! The platform's time-stamping service, in the manner of RFC 3161: a token binds a message
//! imprint (SHA-256) to the time it was seen, a unique serial and a policy, signed by the
//! time-stamping authority's key (whose certificate the platform CA issued).
//!
//! The token is a compact JSON structure rather than CMS DER; the fields are TSTInfo's.

use serde::{Deserialize, Serialize};

use crate::{CryptoError, KeyAlg, KeyPurpose, KeyStore, PublicKeySet, Signature};

/// Saphan's time-stamp policy identifier (a private OID arc placeholder; stable).
pub const TSA_POLICY: &str = "saphan-tsa-policy-1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeStampToken {
    pub policy: String,
    /// 128 random bits, hex: unique without coordination between nodes.
    pub serial: String,
    /// RFC 3339, UTC, microseconds.
    pub gen_time: String,
    pub hash_alg: String,
    /// Hex SHA-256 of the stamped data.
    pub message_imprint: String,
    pub signature: Signature,
}

impl TimeStampToken {
    fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "saphan-tst-1\n{}\n{}\n{}\n{}\n{}\n{}",
            self.policy,
            self.serial,
            self.gen_time,
            self.hash_alg,
            self.message_imprint,
            self.signature.kid
        )
        .into_bytes()
    }

    /// Checks the TSA signature and that the token stamps `imprint`.
    pub fn verify(&self, keys: &PublicKeySet, imprint: &[u8; 32]) -> Result<(), CryptoError> {
        if self.hash_alg != "sha256" || self.message_imprint != hex::encode(imprint) {
            return Err(CryptoError::BadSignature(self.signature.kid.clone()));
        }
        keys.verify(
            KeyPurpose::TimeStamping,
            &self.signed_bytes(),
            &self.signature,
        )
    }
}

impl KeyStore {
    /// Stamps a SHA-256 imprint with the current time.
    pub fn time_stamp(&self, imprint: &[u8; 32]) -> Result<TimeStampToken, CryptoError> {
        let serial: [u8; 16] = rand::random();
        let key = self.active(KeyPurpose::TimeStamping, KeyAlg::ES256)?;
        let mut token = TimeStampToken {
            policy: TSA_POLICY.into(),
            serial: hex::encode(serial),
            gen_time: saphan_core::clock::format_instant(time::OffsetDateTime::now_utc()),
            hash_alg: "sha256".into(),
            message_imprint: hex::encode(imprint),
            signature: Signature {
                kid: key.public.kid.clone(),
                alg: KeyAlg::ES256,
                value: String::new(),
            },
        };
        token.signature.value = crate::b64url(&key.sign(&token.signed_bytes()));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Passphrase;

    #[test]
    fn tokens_verify_and_detect_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::create(&dir.path().join("k.json"), &Passphrase::new("p")).unwrap();
        let imprint = crate::sha256(b"checkpoint");
        let token = store.time_stamp(&imprint).unwrap();
        let keys = store.public_keys();
        token.verify(&keys, &imprint).unwrap();
        assert!(token.verify(&keys, &crate::sha256(b"other")).is_err());
        let mut moved = token.clone();
        moved.gen_time = "2020-01-01T00:00:00.000000Z".into();
        assert!(moved.verify(&keys, &imprint).is_err());
    }
}
