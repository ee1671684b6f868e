//! Federation: upstream OpenID providers (ThaID, or any other) as sign-in methods. Saphan is
//! their relying party: authorization code flow with PKCE S256, `state` and `nonce`, the ID token
//! checked against the upstream's published JWKS, its national-id claim mapped to a local
//! identity (created on first sign-in, proofed `upstream:<name>`), and its `acr` mapped to local
//! assurance levels by configuration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use saphan_core::config::UpstreamProvider;
use saphan_core::{NationalId, Text};
use saphan_identity::{Aal, Assurance, Ial, Identity, IdentityError, LoginId, NewIdentity};
use saphan_store::sqlx::{self, Row};
use serde_json::Value;
use sha2::Digest;

use crate::jose::Unverified;
use crate::{now_unix, random_token, sha256_hex, Provider};

/// How long a person may take at the upstream provider.
const STATE_TTL_SECS: i64 = 10 * 60;
/// Discovery documents and key sets are re-read after this long.
const METADATA_TTL: Duration = Duration::from_secs(600);

/// Why a federated sign-in failed. Shown to the person; details go to the log.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream provider `{0}`")]
    Unknown(String),
    #[error("the sign-in with the upstream provider expired or was already used")]
    BadState,
    #[error("the upstream provider refused: {0}")]
    Refused(String),
    #[error("the upstream provider's answer is not valid: {0}")]
    Invalid(String),
    #[error("cannot reach the upstream provider: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    OAuth(#[from] crate::OAuthError),
}

impl From<sqlx::Error> for UpstreamError {
    fn from(e: sqlx::Error) -> Self {
        UpstreamError::OAuth(e.into())
    }
}

/// An upstream provider as the sign-in page offers it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpstreamInfo {
    pub name: String,
    pub title: Text,
}

/// A federated sign-in that succeeded.
pub struct FederatedSignIn {
    pub identity: Identity,
    pub aal: Aal,
    /// The sealed authorization request the sign-in was for ("" when none).
    pub request: String,
}

#[derive(Clone)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// The configured upstreams, with their discovery documents and key sets cached.
#[derive(Clone)]
pub struct Upstreams {
    providers: Arc<Vec<UpstreamProvider>>,
    http: reqwest::Client,
    metadata: Arc<Mutex<HashMap<String, (Instant, Metadata)>>>,
    jwks: Arc<Mutex<HashMap<String, (Instant, Value)>>>,
}

impl Upstreams {
    pub fn new(providers: Vec<UpstreamProvider>) -> Upstreams {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        Upstreams {
            providers: Arc::new(providers),
            http,
            metadata: Arc::default(),
            jwks: Arc::default(),
        }
    }

    fn provider(&self, name: &str) -> Result<&UpstreamProvider, UpstreamError> {
        self.providers
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| UpstreamError::Unknown(name.chars().take(40).collect()))
    }

    async fn get_json(&self, url: &str) -> Result<Value, UpstreamError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(UpstreamError::Unreachable(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        response
            .json()
            .await
            .map_err(|e| UpstreamError::Invalid(format!("{url}: {e}")))
    }

    async fn metadata(&self, provider: &UpstreamProvider) -> Result<Metadata, UpstreamError> {
        if let Some((at, m)) = self
            .metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&provider.name)
        {
            if at.elapsed() < METADATA_TTL {
                return Ok(m.clone());
            }
        }
        let issuer = provider.issuer.trim_end_matches('/');
        let doc = self
            .get_json(&format!("{issuer}/.well-known/openid-configuration"))
            .await?;
        let field = |k: &str| {
            doc.get(k)
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| UpstreamError::Invalid(format!("discovery has no {k}")))
        };
        let metadata = Metadata {
            issuer: field("issuer")?,
            authorization_endpoint: field("authorization_endpoint")?,
            token_endpoint: field("token_endpoint")?,
            jwks_uri: field("jwks_uri")?,
        };
        // OpenID Connect Discovery §4.3: the issuer must be the one configured.
        if metadata.issuer.trim_end_matches('/') != issuer {
            return Err(UpstreamError::Invalid(format!(
                "discovery names issuer {} instead of {issuer}",
                metadata.issuer
            )));
        }
        self.metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(provider.name.clone(), (Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    async fn key_set(&self, metadata: &Metadata, refresh: bool) -> Result<Value, UpstreamError> {
        if !refresh {
            if let Some((at, keys)) = self
                .jwks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&metadata.jwks_uri)
            {
                if at.elapsed() < METADATA_TTL {
                    return Ok(keys.clone());
                }
            }
        }
        let keys = self.get_json(&metadata.jwks_uri).await?;
        self.jwks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(metadata.jwks_uri.clone(), (Instant::now(), keys.clone()));
        Ok(keys)
    }
}

use saphan_crypto::b64url;

impl Provider {
    /// The upstream providers the sign-in page offers.
    pub fn upstream_list(&self) -> Vec<UpstreamInfo> {
        self.upstreams
            .providers
            .iter()
            .map(|p| UpstreamInfo {
                name: p.name.clone(),
                title: Text::owned(p.title_th.clone(), p.title_en.clone()),
            })
            .collect()
    }

    fn upstream_redirect_uri(&self, name: &str) -> String {
        format!("{}/signin/upstream/{name}/callback", self.issuer)
    }

    /// Starts a sign-in at upstream `name` for the sealed request `request` (may be empty);
    /// returns where to send the browser and a value the browser must keep (a cookie) and show
    /// again at the callback, so that a callback URL cannot be planted in another browser
    /// (login CSRF).
    pub async fn upstream_begin(
        &self,
        name: &str,
        request: &str,
    ) -> Result<(String, String), UpstreamError> {
        let provider = self.upstreams.provider(name)?;
        let metadata = self.upstreams.metadata(provider).await?;
        let (state, nonce, verifier, browser) = (
            random_token(),
            random_token(),
            random_token(),
            random_token(),
        );
        let now = now_unix();
        if rand::random::<u8>() < 8 {
            sqlx::query("DELETE FROM oidc_upstream_states WHERE expires_at < $1")
                .bind(now)
                .execute(self.db.pool())
                .await?;
        }
        sqlx::query(
            "INSERT INTO oidc_upstream_states (state_hash, upstream, browser, nonce, verifier, request, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(sha256_hex(&state))
        .bind(name)
        .bind(sha256_hex(&browser))
        .bind(&nonce)
        .bind(&verifier)
        .bind(request)
        .bind(now + STATE_TTL_SECS)
        .execute(self.db.pool())
        .await?;
        let mut url = url::Url::parse(&metadata.authorization_endpoint)
            .map_err(|_| UpstreamError::Invalid("authorization_endpoint is not a URL".into()))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair("redirect_uri", &self.upstream_redirect_uri(name))
            .append_pair("scope", &provider.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair(
                "code_challenge",
                &b64url(&sha2::Sha256::digest(verifier.as_bytes())),
            )
            .append_pair("code_challenge_method", "S256");
        Ok((url.to_string(), browser))
    }

    /// Finishes a sign-in at upstream `name` from its callback parameters.
    pub async fn upstream_finish(
        &self,
        name: &str,
        params: &HashMap<String, String>,
        browser: Option<&str>,
    ) -> Result<FederatedSignIn, UpstreamError> {
        let result = self.upstream_finish_inner(name, params, browser).await;
        if let Err(e) = &result {
            // Every failed federated sign-in is on record, with the reason's class only.
            let reason = match e {
                UpstreamError::BadState => "state",
                UpstreamError::Refused(_) => "refused",
                UpstreamError::Invalid(_) => "invalid",
                UpstreamError::Unreachable(_) => "unreachable",
                _ => "other",
            };
            self.record(
                "anonymous",
                "identity.sign-in.failed",
                &format!("upstream:{}", name.chars().take(40).collect::<String>()),
                &serde_json::json!({ "method": "fed", "reason": reason }),
            )
            .await?;
        }
        result
    }

    async fn upstream_finish_inner(
        &self,
        name: &str,
        params: &HashMap<String, String>,
        browser: Option<&str>,
    ) -> Result<FederatedSignIn, UpstreamError> {
        let provider = self.upstreams.provider(name)?.clone();
        let state = params
            .get("state")
            .filter(|s| !s.is_empty() && s.len() <= 100)
            .ok_or(UpstreamError::BadState)?;
        // The state works once, whatever happens next.
        let row = sqlx::query(
            "DELETE FROM oidc_upstream_states WHERE state_hash = $1 AND upstream = $2 AND browser = $3 AND expires_at > $4 \
             RETURNING nonce, verifier, request",
        )
        .bind(sha256_hex(state))
        .bind(name)
        .bind(sha256_hex(browser.unwrap_or("")))
        .bind(now_unix())
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(UpstreamError::BadState)?;
        let (nonce, verifier, request): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        if let Some(error) = params.get("error") {
            return Err(UpstreamError::Refused(error.chars().take(64).collect()));
        }
        let code = params
            .get("code")
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or_else(|| UpstreamError::Invalid("no code".into()))?;
        let metadata = self.upstreams.metadata(&provider).await?;
        let secret = std::fs::read_to_string(&provider.client_secret_file).map_err(|e| {
            UpstreamError::Unreachable(format!(
                "cannot read {}: {e}",
                provider.client_secret_file.display()
            ))
        })?;
        let encode = |s: &str| form_urlencoded_byte(s);
        let response = self
            .upstreams
            .http
            .post(&metadata.token_endpoint)
            .basic_auth(encode(&provider.client_id), Some(encode(secret.trim())))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", &self.upstream_redirect_uri(name)),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| UpstreamError::Invalid(format!("token response: {e}")))?;
        if !status.is_success() {
            return Err(UpstreamError::Refused(format!(
                "token endpoint: {}",
                body.get("error").and_then(Value::as_str).unwrap_or("error")
            )));
        }
        let id_token = body
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| UpstreamError::Invalid("no id_token".into()))?;
        let claims = self
            .verify_upstream_id_token(&provider, &metadata, id_token, &nonce)
            .await?;
        let (identity, aal) = self.map_upstream_identity(&provider, &claims).await?;
        Ok(FederatedSignIn {
            identity,
            aal,
            request,
        })
    }

    async fn verify_upstream_id_token(
        &self,
        provider: &UpstreamProvider,
        metadata: &Metadata,
        id_token: &str,
        nonce: &str,
    ) -> Result<Value, UpstreamError> {
        let jwt = Unverified::parse(id_token)
            .ok_or_else(|| UpstreamError::Invalid("malformed ID token".into()))?;
        let keys = self.upstreams.key_set(metadata, false).await?;
        // A key the cached set lacks may be new: read the set again once.
        let verified = jwt.verify_jwks(&keys)
            || jwt.verify_jwks(&self.upstreams.key_set(metadata, true).await?);
        if !verified {
            return Err(UpstreamError::Invalid(
                "the ID token's signature does not verify".into(),
            ));
        }
        let c = &jwt.claims;
        if c.get("iss").and_then(Value::as_str) != Some(metadata.issuer.as_str()) {
            return Err(UpstreamError::Invalid("wrong iss".into()));
        }
        let audience_ok = match c.get("aud") {
            Some(Value::String(a)) => a == &provider.client_id,
            Some(Value::Array(a)) => a
                .iter()
                .any(|v| v.as_str() == Some(provider.client_id.as_str())),
            _ => false,
        };
        if !audience_ok {
            return Err(UpstreamError::Invalid("wrong aud".into()));
        }
        if c.get("exp")
            .and_then(Value::as_i64)
            .is_none_or(|exp| exp < now_unix() - 60)
        {
            return Err(UpstreamError::Invalid("expired".into()));
        }
        if c.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(UpstreamError::Invalid("wrong nonce".into()));
        }
        Ok(jwt.claims.clone())
    }

    async fn map_upstream_identity(
        &self,
        provider: &UpstreamProvider,
        claims: &Value,
    ) -> Result<(Identity, Aal), UpstreamError> {
        let nid: NationalId = claims
            .get(&provider.national_id_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                UpstreamError::Invalid(format!("no `{}` claim", provider.national_id_claim))
            })?
            .parse()
            .map_err(|e| UpstreamError::Invalid(format!("national id claim: {e}")))?;
        let mapped = claims
            .get("acr")
            .and_then(Value::as_str)
            .and_then(|acr| provider.acr_map.get(acr))
            .and_then(|local| Assurance::parse_acr(local).ok());
        let assurance = match mapped {
            Some(a) => a,
            None => Assurance::new(
                provider
                    .default_ial
                    .parse::<Ial>()
                    .map_err(|e| UpstreamError::Invalid(e.to_string()))?,
                Aal::from_number(provider.default_aal).unwrap_or(Aal::L1),
            ),
        };
        let proofing = format!("upstream:{}", provider.name);
        let login = LoginId::NationalId(nid);
        let identity = match self.directory.find(&login).await? {
            Some(existing) => {
                if existing.reproofing_required || assurance.ial > existing.ial {
                    self.directory
                        .reproof(&existing.id, assurance.ial, &proofing)
                        .await?;
                }
                self.directory
                    .get(&existing.id)
                    .await?
                    .ok_or(IdentityError::NoSuchIdentity)?
            }
            None => {
                let th = claims
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .chars()
                    .take(200)
                    .collect::<String>();
                let en = claims
                    .get("name#en")
                    .and_then(Value::as_str)
                    .map(|s| s.chars().take(200).collect())
                    .unwrap_or_else(|| th.clone());
                self.directory
                    .create(
                        &format!("upstream:{}", provider.name),
                        NewIdentity {
                            login,
                            name: Text::owned(th, en),
                            ial: assurance.ial,
                            proofing,
                        },
                    )
                    .await?
            }
        };
        let subject = format!("identity:{}", identity.id);
        self.record(&subject, "identity.sign-in", &subject, &serde_json::json!({ "amr": ["fed"], "upstream": provider.name, "acr": assurance.acr() }))
            .await?;
        Ok((identity, assurance.aal))
    }
}

/// `application/x-www-form-urlencoded` encoding of a Basic credential half (RFC 6749 §2.3.1).
fn form_urlencoded_byte(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
