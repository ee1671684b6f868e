//! The key store: one JSON file in the data directory. Public halves are in clear (anyone may
//! verify); each private key is sealed with ChaCha20-Poly1305 under a key derived from the
//! passphrase with Argon2id. A sealed check value tells a wrong passphrase from a damaged file.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::jwk_thumbprint;
use crate::{
    b64url, b64url_decode, CryptoError, KeyAlg, KeyPurpose, KeyStatus, PublicKeyInfo, PublicKeySet,
    Signature,
};

const FORMAT: &str = "saphan-keystore-1";
const CHECK_PLAINTEXT: &[u8] = b"saphan key store passphrase check";
const RSA_BITS: usize = 3072;

/// The passphrase that unlocks the key store. Zeroed on drop; never printed.
pub struct Passphrase(Zeroizing<String>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(***)")
    }
}

impl Passphrase {
    pub fn new(text: impl Into<String>) -> Passphrase {
        Passphrase(Zeroizing::new(text.into()))
    }

    /// `SAPHAN_KEY_PASSPHRASE` if set, otherwise the first line of `file`.
    pub fn from_env_or_file(file: Option<&Path>) -> Result<Passphrase, CryptoError> {
        if let Ok(text) = std::env::var("SAPHAN_KEY_PASSPHRASE") {
            if !text.is_empty() {
                return Ok(Passphrase::new(text));
            }
        }
        let path = file.ok_or(CryptoError::NoPassphrase)?;
        let text = std::fs::read_to_string(path).map_err(|source| CryptoError::PassphraseFile {
            path: path.display().to_string(),
            source,
        })?;
        let line = text.lines().next().unwrap_or("").to_string();
        if line.is_empty() {
            return Err(CryptoError::NoPassphrase);
        }
        Ok(Passphrase::new(line))
    }

    /// A fresh random passphrase (256 bits, base64url) for demos.
    pub fn generate() -> Passphrase {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Passphrase::new(b64url(&bytes))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    format: String,
    kdf: KdfParams,
    check: Sealed,
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
struct KdfParams {
    algorithm: Argon2Id,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    #[serde(with = "b64_array")]
    salt: [u8; 16],
}

#[derive(Serialize, Deserialize, Clone, Copy)]
enum Argon2Id {
    #[serde(rename = "argon2id")]
    Argon2Id,
}

#[derive(Serialize, Deserialize, Clone)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredKey {
    #[serde(flatten)]
    public: PublicKeyInfo,
    /// PKCS#8 DER of the private key, sealed.
    private: Sealed,
}

pub(crate) enum SecretKey {
    P256(p256::SecretKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

pub(crate) struct LoadedKey {
    pub(crate) public: PublicKeyInfo,
    pub(crate) secret: SecretKey,
    /// The same P-256 key prepared for ring, whose signing is several times faster than the
    /// portable implementation; made once at load.
    fast: Option<ring::signature::EcdsaKeyPair>,
}

impl LoadedKey {
    pub(crate) fn new(public: PublicKeyInfo, secret: SecretKey) -> LoadedKey {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let fast = match &secret {
            SecretKey::P256(k) => ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &k.to_bytes(),
                k.public_key().to_encoded_point(false).as_bytes(),
                &ring::rand::SystemRandom::new(),
            )
            .ok(),
            SecretKey::Rsa(_) => None,
        };
        LoadedKey {
            public,
            secret,
            fast,
        }
    }
}

/// The unlocked key store.
pub struct KeyStore {
    path: PathBuf,
    kdf: KdfParams,
    check: Sealed,
    cipher: ChaCha20Poly1305,
    keys: Vec<LoadedKey>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .field("keys", &self.keys.len())
            .finish()
    }
}

fn derive_cipher(passphrase: &Passphrase, kdf: &KdfParams) -> Result<ChaCha20Poly1305, String> {
    let params = argon2::Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|e| e.to_string())?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.expose().as_bytes(), &kdf.salt, key.as_mut())
        .map_err(|e| e.to_string())?;
    Ok(ChaCha20Poly1305::new(key.as_ref().into()))
}

fn seal(cipher: &ChaCha20Poly1305, plaintext: &[u8]) -> Sealed {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .expect("ChaCha20-Poly1305 encryption cannot fail for in-memory data");
    Sealed {
        nonce: b64url(&nonce),
        ciphertext: b64url(&ciphertext),
    }
}

fn open_sealed(cipher: &ChaCha20Poly1305, sealed: &Sealed) -> Option<Zeroizing<Vec<u8>>> {
    let nonce = b64url_decode(&sealed.nonce).ok()?;
    let ciphertext = b64url_decode(&sealed.ciphertext).ok()?;
    if nonce.len() != 12 {
        return None;
    }
    cipher
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
        .ok()
        .map(Zeroizing::new)
}

use saphan_core::clock::now_text;

impl KeyStore {
    /// Creates a new key store at `path` with a first generation of every key. Refuses to
    /// overwrite an existing file.
    pub fn create(path: &Path, passphrase: &Passphrase) -> Result<KeyStore, CryptoError> {
        if path.exists() {
            return Err(CryptoError::Io {
                path: path.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists"),
            });
        }
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let kdf = KdfParams {
            algorithm: Argon2Id::Argon2Id,
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
            salt,
        };
        let cipher = derive_cipher(passphrase, &kdf).map_err(|reason| CryptoError::Corrupt {
            path: path.display().to_string(),
            reason,
        })?;
        let check = seal(&cipher, CHECK_PLAINTEXT);
        let mut store = KeyStore {
            path: path.to_owned(),
            kdf,
            check,
            cipher,
            keys: Vec::new(),
        };
        store.generate_generation()?;
        store.save()?;
        Ok(store)
    }

    /// Opens and unlocks the key store at `path`.
    pub fn open(path: &Path, passphrase: &Passphrase) -> Result<KeyStore, CryptoError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CryptoError::KeyStoreMissing(shown))
            }
            Err(source) => {
                return Err(CryptoError::Io {
                    path: shown,
                    source,
                })
            }
        };
        let corrupt = |reason: String| CryptoError::Corrupt {
            path: shown.clone(),
            reason,
        };
        let file: StoreFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if file.format != FORMAT {
            return Err(corrupt(format!("unknown format `{}`", file.format)));
        }
        let cipher = derive_cipher(passphrase, &file.kdf).map_err(corrupt)?;
        match open_sealed(&cipher, &file.check) {
            Some(check) if check.as_slice() == CHECK_PLAINTEXT => {}
            _ => return Err(CryptoError::WrongPassphrase(shown)),
        }
        let mut keys = Vec::with_capacity(file.keys.len());
        for stored in file.keys {
            let kid = stored.public.kid.clone();
            let der = open_sealed(&cipher, &stored.private)
                .ok_or_else(|| corrupt(format!("private key {kid} does not decrypt")))?;
            let secret = match stored.public.alg {
                KeyAlg::ES256 => SecretKey::P256(
                    p256::SecretKey::from_pkcs8_der(&der).map_err(|e| corrupt(e.to_string()))?,
                ),
                KeyAlg::RS256 => SecretKey::Rsa(Box::new(
                    rsa::RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| corrupt(e.to_string()))?,
                )),
            };
            keys.push(LoadedKey::new(stored.public, secret));
        }
        Ok(KeyStore {
            path: path.to_owned(),
            kdf: file.kdf,
            check: file.check,
            cipher,
            keys,
        })
    }

    /// Opens the store, or creates it if there is none.
    pub fn open_or_create(path: &Path, passphrase: &Passphrase) -> Result<KeyStore, CryptoError> {
        if path.exists() {
            KeyStore::open(path, passphrase)
        } else {
            KeyStore::create(path, passphrase)
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every key's public half, active and retired, oldest first.
    pub fn public_keys(&self) -> PublicKeySet {
        PublicKeySet {
            keys: self.keys.iter().map(|k| k.public.clone()).collect(),
        }
    }

    /// A 32-byte key for encrypting data the platform stores under `label` (e.g. exchange
    /// bodies), derived by HMAC-SHA-256 from the active ES256 signing key, with that key's kid:
    /// the data key exists only in memory, and after a rotation the retired key (kept in the
    /// store) derives it again for old data.
    pub fn data_key(&self, label: &str) -> Result<(String, Zeroizing<[u8; 32]>), CryptoError> {
        let key = self.active(KeyPurpose::Signing, KeyAlg::ES256)?;
        Ok((key.public.kid.clone(), derive_data_key(key, label)?))
    }

    /// The data key `data_key` gave under `kid`.
    pub fn data_key_for(&self, kid: &str, label: &str) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.public.kid == kid && k.public.purpose == KeyPurpose::Signing)
            .ok_or_else(|| {
                CryptoError::NoActiveKey(format!("no signing key {kid} for a data key"))
            })?;
        derive_data_key(key, label)
    }

    /// Retires the active keys of every purpose and creates a new generation. Old public keys
    /// stay for verification.
    pub fn rotate(&mut self) -> Result<Vec<PublicKeyInfo>, CryptoError> {
        for key in &mut self.keys {
            key.public.status = KeyStatus::Retired;
        }
        let created = self.generate_generation()?;
        self.save()?;
        Ok(created)
    }

    pub(crate) fn active(
        &self,
        purpose: KeyPurpose,
        alg: KeyAlg,
    ) -> Result<&LoadedKey, CryptoError> {
        self.keys
            .iter()
            .rev()
            .find(|k| {
                k.public.purpose == purpose
                    && k.public.alg == alg
                    && k.public.status == KeyStatus::Active
            })
            .ok_or_else(|| CryptoError::NoActiveKey(format!("{} {:?}", purpose.name(), alg)))
    }

    /// Signs `message` with the active key for `purpose` and `alg`.
    pub fn sign(
        &self,
        purpose: KeyPurpose,
        alg: KeyAlg,
        message: &[u8],
    ) -> Result<Signature, CryptoError> {
        let key = self.active(purpose, alg)?;
        Ok(Signature {
            kid: key.public.kid.clone(),
            alg,
            value: b64url(&key.sign(message)),
        })
    }

    /// One active key per (purpose, algorithm): ES256 and RS256 for signing, ES256 for the CA
    /// and the time-stamping authority (whose certificate the new CA issues).
    fn generate_generation(&mut self) -> Result<Vec<PublicKeyInfo>, CryptoError> {
        let mut created = Vec::new();
        for (purpose, alg) in [
            (KeyPurpose::Signing, KeyAlg::ES256),
            (KeyPurpose::Signing, KeyAlg::RS256),
            (KeyPurpose::CertificateAuthority, KeyAlg::ES256),
            (KeyPurpose::TimeStamping, KeyAlg::ES256),
        ] {
            let secret = match alg {
                KeyAlg::ES256 => SecretKey::P256(p256::SecretKey::random(&mut rand::rngs::OsRng)),
                KeyAlg::RS256 => SecretKey::Rsa(Box::new(
                    rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
                        .map_err(|e| CryptoError::Malformed(e.to_string()))?,
                )),
            };
            let spki = secret.spki_der();
            let public = PublicKeyInfo {
                kid: jwk_thumbprint(alg, &spki)?,
                alg,
                purpose,
                status: KeyStatus::Active,
                created: now_text(),
                spki: b64url(&spki),
                certificate_pem: None,
            };
            self.keys.push(LoadedKey::new(public, secret));
            let index = self.keys.len() - 1;
            let certificate = match purpose {
                KeyPurpose::CertificateAuthority => {
                    Some(crate::ca::self_signed_ca(&self.keys[index])?)
                }
                KeyPurpose::TimeStamping => {
                    Some(crate::ca::tsa_certificate(self, &self.keys[index])?)
                }
                KeyPurpose::Signing => None,
            };
            self.keys[index].public.certificate_pem = certificate;
            created.push(self.keys[index].public.clone());
        }
        Ok(created)
    }

    /// Writes the store atomically (temporary file, fsync, rename), readable by the owner only.
    fn save(&self) -> Result<(), CryptoError> {
        let io = |source| CryptoError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let keys = self
            .keys
            .iter()
            .map(|k| StoredKey {
                public: k.public.clone(),
                private: seal(&self.cipher, &k.secret.pkcs8_der()),
            })
            .collect();
        let file = StoreFile {
            format: FORMAT.into(),
            kdf: self.kdf,
            check: self.check.clone(),
            keys,
        };
        let text = serde_json::to_string_pretty(&file).expect("key store serialises");
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        Ok(())
    }
}

impl SecretKey {
    fn spki_der(&self) -> Vec<u8> {
        match self {
            SecretKey::P256(k) => k
                .public_key()
                .to_public_key_der()
                .expect("encode")
                .into_vec(),
            SecretKey::Rsa(k) => k
                .to_public_key()
                .to_public_key_der()
                .expect("encode")
                .into_vec(),
        }
    }

    pub(crate) fn pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        match self {
            SecretKey::P256(k) => {
                Zeroizing::new(k.to_pkcs8_der().expect("encode").as_bytes().to_vec())
            }
            SecretKey::Rsa(k) => {
                Zeroizing::new(k.to_pkcs8_der().expect("encode").as_bytes().to_vec())
            }
        }
    }
}

impl LoadedKey {
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        use rsa::signature::{SignatureEncoding, Signer};
        match &self.secret {
            SecretKey::P256(k) => {
                let fast = self.fast.as_ref().and_then(|pair| {
                    let raw = pair.sign(&ring::rand::SystemRandom::new(), message).ok()?;
                    p256::ecdsa::Signature::from_slice(raw.as_ref()).ok()
                });
                let sig = fast.unwrap_or_else(|| p256::ecdsa::SigningKey::from(k).sign(message));
                // Low-s form only (see "Strict signatures" in docs/architecture.md).
                sig.normalize_s().unwrap_or(sig).to_bytes().to_vec()
            }
            SecretKey::Rsa(k) => {
                let signing = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new((**k).clone());
                signing.sign(message).to_vec()
            }
        }
    }
}

fn derive_data_key(key: &LoadedKey, label: &str) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    use hmac::{Hmac, Mac};
    let SecretKey::P256(secret) = &key.secret else {
        return Err(CryptoError::NoActiveKey(
            "data keys derive from ES256 keys".into(),
        ));
    };
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(&secret.to_bytes()).expect("any key length");
    mac.update(b"saphan-data-key-1\0");
    mac.update(label.as_bytes());
    Ok(Zeroizing::new(mac.finalize().into_bytes().into()))
}

/// Encrypts `plaintext` for storage (ChaCha20-Poly1305, random nonce, `aad` bound in):
/// returns the nonce and the ciphertext, base64url.
pub fn encrypt_data(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> (String, String) {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use rand::RngCore;
    let cipher = ChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("encryption of in-memory data cannot fail");
    (b64url(&nonce), b64url(&ciphertext))
}

/// Reverses [`encrypt_data`]; fails when the data, nonce, key or `aad` differ.
pub fn decrypt_data(
    key: &[u8; 32],
    aad: &[u8],
    nonce: &str,
    ciphertext: &str,
) -> Result<Vec<u8>, CryptoError> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let bad =
        || CryptoError::Malformed("stored data does not decrypt (altered, or another key)".into());
    let nonce: [u8; 12] = b64url_decode(nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(bad)?;
    let ciphertext = b64url_decode(ciphertext).map_err(|_| bad())?;
    ChaCha20Poly1305::new(key.into())
        .decrypt(
            (&nonce).into(),
            Payload {
                msg: &ciphertext,
                aad,
            },
        )
        .map_err(|_| bad())
}

mod b64_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::b64url(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = crate::b64url_decode(&text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("salt must be 16 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_round_trips_signs_rotates_and_rejects_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/keystore.json");
        let pass = Passphrase::new("correct horse battery staple");
        let mut store = KeyStore::create(&path, &pass).unwrap();
        assert_eq!(store.public_keys().keys.len(), 4);

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("PRIVATE KEY"), "private keys are sealed");

        let sig = store
            .sign(KeyPurpose::Signing, KeyAlg::ES256, b"hello")
            .unwrap();
        let rsa_sig = store
            .sign(KeyPurpose::Signing, KeyAlg::RS256, b"hello")
            .unwrap();
        let before = store.public_keys();
        before.verify(KeyPurpose::Signing, b"hello", &sig).unwrap();
        before
            .verify(KeyPurpose::Signing, b"hello", &rsa_sig)
            .unwrap();
        assert!(before.verify(KeyPurpose::Signing, b"hullo", &sig).is_err());
        // The mirror-image signature (r, n - s) is mathematically valid but refused.
        let parsed =
            p256::ecdsa::Signature::from_slice(&b64url_decode(&sig.value).unwrap()).unwrap();
        let (r, s) = parsed.split_scalars();
        let mirrored =
            p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        let mirrored = Signature {
            value: b64url(&mirrored.to_bytes()),
            ..sig.clone()
        };
        assert!(before
            .verify(KeyPurpose::Signing, b"hello", &mirrored)
            .is_err());
        assert!(before
            .verify(KeyPurpose::TimeStamping, b"hello", &sig)
            .is_err());

        store.rotate().unwrap();
        let reopened = KeyStore::open(&path, &pass).unwrap();
        let after = reopened.public_keys();
        assert_eq!(after.keys.len(), 8);
        // Signatures made before rotation still verify.
        after.verify(KeyPurpose::Signing, b"hello", &sig).unwrap();
        let new_sig = reopened
            .sign(KeyPurpose::Signing, KeyAlg::ES256, b"x")
            .unwrap();
        assert_ne!(new_sig.kid, sig.kid);

        let jwks = after.jwks().unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 4);

        match KeyStore::open(&path, &Passphrase::new("wrong")) {
            Err(CryptoError::WrongPassphrase(_)) => {}
            other => panic!("expected WrongPassphrase, got {other:?}"),
        }
        std::fs::write(&path, "{ not json").unwrap();
        assert!(matches!(
            KeyStore::open(&path, &pass),
            Err(CryptoError::Corrupt { .. })
        ));
    }
}
