//! How subsystems prove who they are at the gateway:
//! - **mutual TLS** with a certificate the platform CA issued to the subsystem (its SHA-256
//!   fingerprint is registered; revocation is immediate on this node, within
//!   [`crate::registry::CACHE_SECS`] on others);
//! - **OAuth 2 client credentials** with `private_key_jwt` (RFC 7523): a short-lived bearer
//!   token bound to the subsystem, MAC'd with a platform secret;
//! - **GDX compatibility**: a consumer key and secret exchanged at `/ws/auth/validate` for a
//!   token that expires after an idle period, as Thailand's GDX does today.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use saphan_crypto::{b64url, b64url_decode, CertificateKind, CertificateRequest, KeyStore};
use saphan_identity::{Directory, Subject};
use saphan_store::sqlx::{self, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{now_rfc3339, now_unix, random_token, sha256_hex, ClientId, ExchangeError, Registry};

/// How a caller authenticated; recorded with every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    Mtls,
    Token,
    Gdx,
    /// The platform's own subsystem (e.g. the digital ID) calling in-process.
    Platform,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subsystem: ClientId,
    pub method: AuthMethod,
    /// GDX's `AgentID`, as a pseudonym: who acted, when the consumer named them at sign-in.
    pub agent: Option<String>,
}

/// A certificate issued to a subsystem, with its private key when the platform made the pair.
#[derive(Debug, Clone, Serialize)]
pub struct SubsystemCertificate {
    pub subsystem: String,
    pub fingerprint_sha256: String,
    pub serial: String,
    pub not_after: i64,
    pub certificate_pem: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<String>,
}

/// A GDX consumer key and its secret, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct GdxCredentials {
    pub subsystem: String,
    pub consumer_key: String,
    pub consumer_secret: String,
}

/// The OAuth token endpoint's answer (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessToken {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

const CERT_CACHE_MAX: usize = 10_000;

/// Fingerprint → subsystem, per node, for [`crate::registry::CACHE_SECS`].
#[derive(Default)]
pub(crate) struct CertificateCache {
    entries: Mutex<HashMap<String, CertificateEntry>>,
}

/// When it was read, at which registry generation, and the subsystem (none: not valid).
type CertificateEntry = (Instant, u64, Option<ClientId>);

impl CertificateCache {
    /// A fresh entry made at the registry's current `generation` (a local change to a
    /// subsystem makes every entry stale at once).
    fn get(&self, fp: &str, generation: u64) -> Option<Option<ClientId>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(fp)
            .filter(|(at, g, _)| {
                *g == generation && at.elapsed() < Duration::from_secs(crate::registry::CACHE_SECS)
            })
            .map(|(_, _, c)| c.clone())
    }

    fn put(&self, fp: &str, generation: u64, value: Option<ClientId>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CERT_CACHE_MAX {
            entries.clear();
        }
        entries.insert(fp.to_string(), (Instant::now(), generation, value));
    }
}

/// SHA-256 fingerprint (hex) of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn der_of_pem(pem: &str) -> Result<Vec<u8>, ExchangeError> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| ExchangeError::invalid(format!("certificate PEM: {e}")))?;
    Ok(parsed.contents)
}

/// Credentials of subsystems: issuing, revoking, and recognising them at the gateway.
pub struct Credentials {
    registry: Registry,
    directory: Directory,
    keys: std::sync::Arc<KeyStore>,
    cache: CertificateCache,
    token_ttl: u64,
    gdx_idle: i64,
    issuer: String,
    /// The token MAC key, read from the database once.
    token_key: tokio::sync::OnceCell<[u8; 32]>,
}

impl Credentials {
    pub fn new(
        registry: Registry,
        directory: Directory,
        keys: std::sync::Arc<KeyStore>,
        issuer: &str,
        config: &saphan_core::config::ExchangeConfig,
    ) -> Credentials {
        Credentials {
            registry,
            directory,
            keys,
            cache: CertificateCache::default(),
            token_ttl: config.token_ttl_secs,
            gdx_idle: i64::try_from(config.gdx_idle_secs).unwrap_or(i64::MAX),
            issuer: issuer.trim_end_matches('/').to_string(),
            token_key: tokio::sync::OnceCell::new(),
        }
    }

    async fn authorize(&self, subject: &Subject, id: &ClientId) -> Result<(), ExchangeError> {
        self.registry
            .authorize_client(subject, id, "managing a subsystem's credentials")
            .await
    }

    async fn require_subsystem(&self, id: &ClientId) -> Result<(), ExchangeError> {
        if self.registry.subsystem(id).await?.is_none() {
            return Err(ExchangeError::NotFound(format!("subsystem {id}")));
        }
        Ok(())
    }

    /// Issues a client certificate for mutual TLS. With `public_key_der` (SPKI) the subsystem
    /// keeps its private key; without, the platform makes a P-256 pair and returns the private
    /// key once.
    pub async fn issue_certificate(
        &self,
        subject: &Subject,
        id: &ClientId,
        public_key_der: Option<Vec<u8>>,
        valid_days: u32,
    ) -> Result<SubsystemCertificate, ExchangeError> {
        self.authorize(subject, id).await?;
        self.require_subsystem(id).await?;
        if !(1..=825).contains(&valid_days) {
            return Err(ExchangeError::invalid("valid_days must be 1 to 825"));
        }
        let member = self.registry.member(&id.member_id()).await?;
        let issued = self.keys.issue_certificate(&CertificateRequest {
            common_name: id.to_string(),
            organization: member.map(|m| m.name.en.to_string()),
            kind: CertificateKind::Member,
            valid_days,
            public_key_der,
        })?;
        let der = der_of_pem(&issued.certificate_pem)?;
        let fp = fingerprint(&der);
        let not_after = now_unix() + i64::from(valid_days) * 86_400;
        sqlx::query(
            "INSERT INTO xr_certificates (fingerprint, serial, subsystem_id, not_after, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&fp)
        .bind(&issued.serial_hex)
        .bind(id.key())
        .bind(not_after)
        .bind(now_rfc3339())
        .execute(self.registry.db().pool())
        .await?;
        self.registry
            .record(
                subject,
                "exchange.certificate.issue",
                &id.to_string(),
                &(&fp, &issued.serial_hex),
            )
            .await?;
        Ok(SubsystemCertificate {
            subsystem: id.to_string(),
            fingerprint_sha256: fp,
            serial: issued.serial_hex,
            not_after,
            certificate_pem: issued.certificate_pem,
            private_key_pem: issued.private_key_pem,
        })
    }

    /// Revokes a certificate by its SHA-256 fingerprint.
    pub async fn revoke_certificate(
        &self,
        subject: &Subject,
        fingerprint: &str,
    ) -> Result<(), ExchangeError> {
        let row = sqlx::query("SELECT subsystem_id FROM xr_certificates WHERE fingerprint = $1")
            .bind(fingerprint.to_ascii_lowercase())
            .fetch_optional(self.registry.db().pool())
            .await?
            .ok_or_else(|| {
                ExchangeError::NotFound("no certificate with that fingerprint".into())
            })?;
        let id = self.registry.parse_subsystem(&row.get::<String, _>(0))?;
        self.authorize(subject, &id).await?;
        sqlx::query("UPDATE xr_certificates SET revoked_at = $1 WHERE fingerprint = $2")
            .bind(now_rfc3339())
            .bind(fingerprint.to_ascii_lowercase())
            .execute(self.registry.db().pool())
            .await?;
        // Recording bumps the registry's generation, which makes cached lookups stale.
        self.registry
            .record(
                subject,
                "exchange.certificate.revoke",
                &id.to_string(),
                &fingerprint,
            )
            .await?;
        Ok(())
    }

    /// The subsystem a client certificate (DER, already verified against the platform CA by
    /// the TLS layer) was issued to, if it is registered, unrevoked and unexpired.
    pub async fn subsystem_of_certificate(
        &self,
        der: &[u8],
    ) -> Result<Option<ClientId>, ExchangeError> {
        let fp = fingerprint(der);
        let generation = self.registry.generation();
        if let Some(hit) = self.cache.get(&fp, generation) {
            return Ok(hit);
        }
        let row = sqlx::query(
            "SELECT c.subsystem_id FROM xr_certificates c JOIN xr_subsystems s ON s.id = c.subsystem_id \
             WHERE c.fingerprint = $1 AND c.revoked_at IS NULL AND c.not_after > $2 AND s.status = 'active'",
        )
        .bind(&fp)
        .bind(now_unix())
        .fetch_optional(self.registry.db().pool())
        .await?;
        let found = row
            .map(|r| self.registry.parse_subsystem(&r.get::<String, _>(0)))
            .transpose()?;
        self.cache.put(&fp, generation, found.clone());
        Ok(found)
    }

    // ---- OAuth client credentials ---------------------------------------------------------

    async fn token_key(&self) -> Result<[u8; 32], ExchangeError> {
        Ok(*self
            .token_key
            .get_or_try_init(|| self.directory.platform_secret("exchange-token"))
            .await?)
    }

    /// RFC 6749 §4.4 with an RFC 7523 client assertion: `iss` = `sub` = the subsystem id,
    /// signed by a key the subsystem registered.
    pub async fn token_for_assertion(
        &self,
        assertion: &str,
        token_endpoint: &str,
    ) -> Result<AccessToken, saphan_oidc::OAuthError> {
        use saphan_oidc::OAuthError;
        let fail = || OAuthError::invalid_client("client authentication failed");
        let jwt = saphan_oidc::jose::Unverified::parse(assertion).ok_or_else(fail)?;
        let iss = jwt
            .claims
            .get("iss")
            .and_then(|v| v.as_str())
            .ok_or_else(fail)?;
        let sub = jwt
            .claims
            .get("sub")
            .and_then(|v| v.as_str())
            .ok_or_else(fail)?;
        if iss != sub {
            return Err(fail());
        }
        let id = self.registry.parse_subsystem(iss).map_err(|_| fail())?;
        let (status, jwks) = self
            .registry
            .subsystem_keys(&id)
            .await
            .map_err(|e| OAuthError::server(&e.to_string()))?
            .ok_or_else(fail)?;
        let jwks = jwks.ok_or_else(fail)?;
        if status != "active" {
            return Err(fail());
        }
        saphan_oidc::client::check_client_assertion(
            self.registry.db(),
            &jwt,
            &id.to_string(),
            &jwks,
            &[&self.issuer, token_endpoint],
        )
        .await?;
        let exp = now_unix() + self.token_ttl as i64;
        let payload = b64url(
            serde_json::json!({ "sub": id.to_string(), "exp": exp })
                .to_string()
                .as_bytes(),
        );
        let key = self
            .token_key()
            .await
            .map_err(|e| OAuthError::server(&e.to_string()))?;
        Ok(AccessToken {
            access_token: format!("xr1.{payload}.{}", mac_b64(&key, &payload)),
            token_type: "Bearer".into(),
            expires_in: self.token_ttl,
        })
    }

    /// The subsystem a bearer token was issued to, if it is genuine and unexpired.
    pub async fn subsystem_of_token(&self, token: &str) -> Result<Option<ClientId>, ExchangeError> {
        let Some((payload, mac)) = token
            .strip_prefix("xr1.")
            .and_then(|rest| rest.split_once('.'))
        else {
            return Ok(None);
        };
        let key = self.token_key().await?;
        let expected = mac_b64(&key, payload);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            mac.as_bytes(),
        )) {
            return Ok(None);
        }
        let Ok(bytes) = b64url_decode(payload) else {
            return Ok(None);
        };
        let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Ok(None);
        };
        if claims.get("exp").and_then(|e| e.as_i64()).unwrap_or(0) <= now_unix() {
            return Ok(None);
        }
        Ok(claims
            .get("sub")
            .and_then(|s| s.as_str())
            .and_then(|s| self.registry.parse_subsystem(s).ok()))
    }

    // ---- GDX compatibility ----------------------------------------------------------------

    /// Makes a consumer key and secret for a subsystem (the secret is shown once).
    pub async fn create_gdx_key(
        &self,
        subject: &Subject,
        id: &ClientId,
    ) -> Result<GdxCredentials, ExchangeError> {
        self.authorize(subject, id).await?;
        self.require_subsystem(id).await?;
        let consumer_key = uuid::Uuid::new_v4().to_string();
        let secret = random_token(32);
        sqlx::query(
            "INSERT INTO xr_gdx_keys (consumer_key, subsystem_id, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&consumer_key)
        .bind(id.key())
        .bind(sha256_hex(&secret))
        .bind(now_rfc3339())
        .execute(self.registry.db().pool())
        .await?;
        self.registry
            .record(
                subject,
                "exchange.gdx-key.create",
                &id.to_string(),
                &consumer_key,
            )
            .await?;
        Ok(GdxCredentials {
            subsystem: id.to_string(),
            consumer_key,
            consumer_secret: secret,
        })
    }

    /// Revokes a GDX consumer key and every token made with it.
    pub async fn revoke_gdx_key(
        &self,
        subject: &Subject,
        consumer_key: &str,
    ) -> Result<(), ExchangeError> {
        let row = sqlx::query("SELECT subsystem_id FROM xr_gdx_keys WHERE consumer_key = $1")
            .bind(consumer_key)
            .fetch_optional(self.registry.db().pool())
            .await?
            .ok_or_else(|| ExchangeError::NotFound("no such GDX consumer key".into()))?;
        let id = self.registry.parse_subsystem(&row.get::<String, _>(0))?;
        self.authorize(subject, &id).await?;
        sqlx::query("UPDATE xr_gdx_keys SET revoked_at = $1 WHERE consumer_key = $2")
            .bind(now_rfc3339())
            .bind(consumer_key)
            .execute(self.registry.db().pool())
            .await?;
        sqlx::query("DELETE FROM xr_gdx_tokens WHERE consumer_key = $1")
            .bind(consumer_key)
            .execute(self.registry.db().pool())
            .await?;
        self.registry
            .record(
                subject,
                "exchange.gdx-key.revoke",
                &id.to_string(),
                &consumer_key,
            )
            .await?;
        Ok(())
    }

    /// `GET /ws/auth/validate`: a token for a valid consumer key and secret; `agent` is the
    /// officer's citizen id or a system name, kept only as a pseudonym.
    pub async fn gdx_validate(
        &self,
        consumer_key: &str,
        secret: &str,
        agent: &str,
    ) -> Result<Option<String>, ExchangeError> {
        let agent = agent.trim();
        if agent.is_empty() || agent.len() > 100 {
            return Err(ExchangeError::invalid(
                "AgentID is required (at most 100 characters)",
            ));
        }
        let row = sqlx::query(
            "SELECT k.subsystem_id, k.secret_hash FROM xr_gdx_keys k JOIN xr_subsystems s ON s.id = k.subsystem_id \
             WHERE k.consumer_key = $1 AND k.revoked_at IS NULL AND s.status = 'active'",
        )
        .bind(consumer_key)
        .fetch_optional(self.registry.db().pool())
        .await?;
        let presented = sha256_hex(secret);
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.get(1);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            presented.as_bytes(),
            stored.as_bytes(),
        )) {
            return Ok(None);
        }
        let token = random_token(32);
        let agent = crate::consent::user_pseudonym(&self.directory, agent).await?;
        let now = now_unix();
        sqlx::query("DELETE FROM xr_gdx_tokens WHERE last_used < $1")
            .bind(now - self.gdx_idle)
            .execute(self.registry.db().pool())
            .await?;
        sqlx::query(
            "INSERT INTO xr_gdx_tokens (token_hash, consumer_key, subsystem_id, agent, last_used) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(sha256_hex(&token))
        .bind(consumer_key)
        .bind(row.get::<String, _>(0))
        .bind(&agent)
        .bind(now)
        .execute(self.registry.db().pool())
        .await?;
        Ok(Some(token))
    }

    /// The caller behind GDX `Consumer-Key` + `Token` headers; touches the token so that it
    /// expires only after an idle period.
    pub async fn gdx_caller(
        &self,
        consumer_key: &str,
        token: &str,
    ) -> Result<Option<Caller>, ExchangeError> {
        let now = now_unix();
        let hash = sha256_hex(token);
        let row = sqlx::query(
            "SELECT t.subsystem_id, t.agent, t.last_used FROM xr_gdx_tokens t \
             JOIN xr_gdx_keys k ON k.consumer_key = t.consumer_key \
             WHERE t.token_hash = $1 AND t.consumer_key = $2 AND k.revoked_at IS NULL",
        )
        .bind(&hash)
        .bind(consumer_key)
        .fetch_optional(self.registry.db().pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let last_used: i64 = row.get(2);
        if last_used + self.gdx_idle <= now {
            return Ok(None);
        }
        if now - last_used >= 60 {
            sqlx::query("UPDATE xr_gdx_tokens SET last_used = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(&hash)
                .execute(self.registry.db().pool())
                .await?;
        }
        let subsystem = self.registry.parse_subsystem(&row.get::<String, _>(0))?;
        Ok(Some(Caller {
            subsystem,
            method: AuthMethod::Gdx,
            agent: Some(row.get(1)),
        }))
    }
}

fn mac_b64(key: &[u8; 32], payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(b"exchange-token\0");
    mac.update(payload.as_bytes());
    b64url(&mac.finalize().into_bytes())
}
