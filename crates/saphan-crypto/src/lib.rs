//! Saphan's keys and signatures: the key store in the data directory (private keys encrypted at
//! rest under a passphrase), ES256 and RS256 signing, public key sets and JWKS for verification,
//! the platform certificate authority, and the platform's time-stamping service.
//!
//! Public halves live in [`PublicKeySet`], plain data that verifies signatures anywhere, offline,
//! without the passphrase. This crate must never write a private key or the passphrase anywhere
//! but the encrypted key store, and never log either.

mod ca;
mod jwk;
mod keys;
mod keystore;
#[cfg(feature = "testing")]
pub mod testing;
mod timestamp;

pub use ca::{CertificateKind, CertificateRequest, IssuedCertificate};
pub use jwk::ExternalKey;
pub use keys::{KeyAlg, KeyPurpose, KeyStatus, PublicKeyInfo, PublicKeySet, Signature};
pub use keystore::{decrypt_data, encrypt_data, KeyStore, Passphrase};
pub use timestamp::TimeStampToken;

use saphan_core::{Problem, ProblemKind, Text};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "the key store {0} does not exist; run `saphan demo` or `saphan keys init` to create it"
    )]
    KeyStoreMissing(String),
    #[error("the key-store passphrase is wrong for {0}; check SAPHAN_KEY_PASSPHRASE or key_passphrase_file")]
    WrongPassphrase(String),
    #[error("no key-store passphrase: set SAPHAN_KEY_PASSPHRASE or key_passphrase_file in the configuration")]
    NoPassphrase,
    #[error("cannot read the passphrase file {path}: {source}")]
    PassphraseFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the key store {path} is damaged ({reason}); restore it from a backup")]
    Corrupt { path: String, reason: String },
    #[error("cannot write the key store {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no active {0} key in the key store; run `saphan keys rotate`")]
    NoActiveKey(String),
    #[error("unknown key id `{0}`")]
    UnknownKey(String),
    #[error("signature does not verify with key `{0}`")]
    BadSignature(String),
    #[error("malformed public key or signature: {0}")]
    Malformed(String),
    #[error("certificate error: {0}")]
    Certificate(String),
}

impl CryptoError {
    pub fn problem(&self) -> Problem {
        Problem::new(
            ProblemKind::Internal,
            "key-store",
            Text::new(
                "ระบบกุญแจของแพลตฟอร์มขัดข้อง",
                "The platform's key store failed",
            ),
        )
    }
}

/// Lower-case hex SHA-256 of a text: how stored secrets (token and key hashes) are compared.
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// A fresh secret: `bytes` random bytes from the operating system, base64url.
pub fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    b64url(&buf)
}

/// URL-safe base64 without padding, as JOSE uses.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(text: &str) -> Result<Vec<u8>, CryptoError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| CryptoError::Malformed(format!("base64: {e}")))
}

/// 128 random bits as a positive, minimally encoded DER INTEGER: the first byte is 1..=0x7f, so
/// there is neither a sign bit nor a leading zero octet.
pub(crate) fn random_serial() -> [u8; 16] {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = bytes[0] % 0x7f + 1;
    bytes
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
