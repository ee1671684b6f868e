//! The provider's protocol steps: authorization requests, the decision after sign-in (assurance,
//! consent, code), the token endpoint, UserInfo, introspection, revocation and logout.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use saphan_audit::AuditEntry;
use saphan_core::config::IdentityConfig;
use saphan_crypto::{b64url, KeyStore};
use saphan_identity::{Assurance, Directory, Identity};
use saphan_store::sqlx::{self, Row};
use saphan_store::Db;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::client::Client;
use crate::jose::{self, Unverified};
use crate::session::Session;
use crate::{now_unix, random_token, scope, sha256_hex, OAuthError};

/// Longest value accepted for any single protocol parameter.
const MAX_PARAM: usize = 2048;
/// How long a pending authorization request waits for the person to sign in.
const REQUEST_TTL_SECS: i64 = 30 * 60;
/// Longest sealed request accepted (every parameter is capped at [`MAX_PARAM`]).
pub const MAX_SEALED_REQUEST: usize = 16 * 1024;
/// ID tokens are short-lived: they prove a sign-in, they are not credentials.
const ID_TOKEN_TTL_SECS: i64 = 600;

#[derive(Debug, Clone)]
pub(crate) struct Lifetimes {
    pub session_secs: i64,
    pub code_secs: i64,
    pub access_secs: i64,
    pub refresh_secs: i64,
}

/// The OpenID provider. Cheap to clone.
#[derive(Clone)]
pub struct Provider {
    pub(crate) db: Db,
    pub(crate) keys: Arc<KeyStore>,
    pub(crate) directory: Directory,
    pub(crate) issuer: String,
    pub(crate) lifetimes: Lifetimes,
    pairwise: Arc<OnceCell<[u8; 32]>>,
    pub(crate) client_cache: Arc<crate::client::ClientCache>,
    pub(crate) upstreams: crate::upstream::Upstreams,
}

/// A validated authorization request (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    /// Requested levels that parsed; unknown values are ignored (acr_values is voluntary).
    pub acr_values: Vec<String>,
    pub max_age: Option<i64>,
    pub prompt: Vec<String>,
    pub ui_locales: Option<String>,
    /// When the request arrived: `prompt=login` and step-up need a sign-in after it.
    pub received_at: i64,
}

/// Why an authorization request cannot go on.
#[derive(Debug, Clone)]
pub enum AuthorizeFailure {
    /// The client or redirect URI cannot be trusted: show the error, never redirect.
    Page(OAuthError),
    /// Report to the client at its registered redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

/// What happens next with a request.
#[derive(Debug, Clone)]
pub enum Finish {
    /// The person must sign in (again, or more strongly).
    SignIn,
    /// The person must approve what the client receives.
    Consent {
        client: Box<Client>,
        scopes: Vec<String>,
    },
    /// Back to the client: with a code, or an error.
    Redirect(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub id_token: String,
    pub scope: String,
}

/// RFC 7662 answer.
#[derive(Debug, Clone, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten)]
    pub details: Option<Map<String, Value>>,
}

fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut pairs = url.query_pairs_mut();
                for (k, v) in params {
                    pairs.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => redirect_uri.to_string(),
    }
}

impl AuthorizeFailure {
    /// The URL to send the browser to, for redirect failures (RFC 9207 `iss` included).
    pub fn redirect_url(&self, issuer: &str) -> Option<String> {
        match self {
            AuthorizeFailure::Page(_) => None,
            AuthorizeFailure::Redirect {
                redirect_uri,
                state,
                error,
            } => {
                let mut params = vec![
                    ("error", error.error),
                    ("error_description", error.description.as_str()),
                ];
                if let Some(s) = state {
                    params.push(("state", s));
                }
                params.push(("iss", issuer));
                Some(redirect_with(redirect_uri, &params))
            }
        }
    }
}

/// Reads a form or query into single values; a repeated parameter is an error (RFC 6749 §3.1).
pub fn single_params(
    pairs: &[(String, String)],
) -> Result<std::collections::BTreeMap<String, String>, OAuthError> {
    let mut map = std::collections::BTreeMap::new();
    for (k, v) in pairs {
        if v.len() > MAX_PARAM {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{}` is too long",
                k.chars().take(40).collect::<String>()
            )));
        }
        if map.insert(k.clone(), v.clone()).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{}` is repeated",
                k.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok(map)
}

fn is_pkce_value(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

impl Provider {
    pub fn new(
        db: Db,
        keys: Arc<KeyStore>,
        directory: Directory,
        issuer: &str,
        config: &IdentityConfig,
    ) -> Provider {
        Provider {
            db,
            keys,
            directory,
            issuer: issuer.trim_end_matches('/').to_string(),
            lifetimes: Lifetimes {
                session_secs: config.session_hours as i64 * 3600,
                code_secs: config.code_ttl_secs as i64,
                access_secs: config.access_token_ttl_secs as i64,
                refresh_secs: config.refresh_token_ttl_days as i64 * 86400,
            },
            pairwise: Arc::new(OnceCell::new()),
            client_cache: Arc::default(),
            upstreams: crate::upstream::Upstreams::new(config.upstream.clone()),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub(crate) async fn record(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        payload: &impl Serialize,
    ) -> Result<(), OAuthError> {
        self.directory
            .audit()
            .append(AuditEntry::new(actor, action, subject, payload))
            .await?;
        Ok(())
    }

    /// The client's pairwise subject for a person (OIDC Core §8.1): stable per client, unlinkable
    /// across clients, and never the national id.
    pub async fn subject_for(
        &self,
        client_id: &str,
        identity_id: &str,
    ) -> Result<String, OAuthError> {
        let secret = *self
            .pairwise
            .get_or_try_init(|| self.directory.platform_secret("pairwise"))
            .await?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("any key length");
        mac.update(client_id.as_bytes());
        mac.update(b"\0");
        mac.update(identity_id.as_bytes());
        Ok(b64url(&mac.finalize().into_bytes()))
    }

    // ---- authorization ----------------------------------------------------------------------

    /// Validates an authorization request, in the order RFC 6749 §4.1.2.1 requires: the client
    /// and redirect URI first (errors shown, never redirected), then everything else.
    pub async fn validate_authorization(
        &self,
        pairs: &[(String, String)],
    ) -> Result<AuthRequest, AuthorizeFailure> {
        let params = single_params(pairs).map_err(AuthorizeFailure::Page)?;
        let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let client_id = get("client_id").ok_or_else(|| {
            AuthorizeFailure::Page(OAuthError::invalid_request("client_id is missing"))
        })?;
        let client = self
            .client(client_id)
            .await
            .map_err(AuthorizeFailure::Page)?
            .ok_or_else(|| {
                AuthorizeFailure::Page(OAuthError::invalid_client("unknown client_id"))
            })?;
        let redirect_uri = get("redirect_uri").ok_or_else(|| {
            AuthorizeFailure::Page(OAuthError::invalid_request("redirect_uri is missing"))
        })?;
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(AuthorizeFailure::Page(OAuthError::invalid_request(
                "redirect_uri is not registered for this client (exact match required)",
            )));
        }
        let state = get("state").map(String::from);
        let fail = |error: OAuthError| AuthorizeFailure::Redirect {
            redirect_uri: redirect_uri.to_string(),
            state: state.clone(),
            error,
        };
        if params.contains_key("request") {
            return Err(fail(OAuthError::request_not_supported(
                "request objects are not supported",
            )));
        }
        if params.contains_key("request_uri") {
            return Err(fail(OAuthError::request_uri_not_supported(
                "request_uri is not supported",
            )));
        }
        match get("response_type") {
            Some("code") => {}
            None => {
                return Err(fail(OAuthError::invalid_request(
                    "response_type is missing",
                )))
            }
            Some(_) => {
                return Err(fail(OAuthError::unsupported_response_type(
                    "only response_type=code is supported",
                )))
            }
        }
        if let Some(mode) = get("response_mode") {
            if mode != "query" {
                return Err(fail(OAuthError::invalid_request(
                    "only response_mode=query is supported",
                )));
            }
        }
        let scopes = scope::parse(get("scope").unwrap_or(""));
        if !scopes.iter().any(|s| s == "openid") {
            return Err(fail(OAuthError::invalid_scope("scope must include openid")));
        }
        if let Some(s) = scopes.iter().find(|s| !client.scopes.contains(s)) {
            return Err(fail(OAuthError::invalid_scope(format!(
                "scope `{}` is not registered for this client",
                s.chars().take(40).collect::<String>()
            ))));
        }
        let challenge = get("code_challenge").ok_or_else(|| {
            fail(OAuthError::invalid_request(
                "PKCE is required: code_challenge is missing",
            ))
        })?;
        if get("code_challenge_method") != Some("S256") {
            return Err(fail(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            )));
        }
        if challenge.len() != 43 || !is_pkce_value(challenge, 43, 43) {
            return Err(fail(OAuthError::invalid_request(
                "code_challenge must be a base64url SHA-256 (43 characters)",
            )));
        }
        let max_age = match get("max_age") {
            Some(v) => Some(v.parse::<i64>().ok().filter(|m| *m >= 0).ok_or_else(|| {
                fail(OAuthError::invalid_request(
                    "max_age must be a non-negative integer",
                ))
            })?),
            None => None,
        };
        let prompt: Vec<String> = get("prompt")
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        for p in &prompt {
            if !["none", "login", "consent", "select_account"].contains(&p.as_str()) {
                return Err(fail(OAuthError::invalid_request(
                    "prompt must be none, login, consent or select_account",
                )));
            }
        }
        if prompt.len() > 1 && prompt.iter().any(|p| p == "none") {
            return Err(fail(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            )));
        }
        let acr_values = get("acr_values")
            .unwrap_or("")
            .split(' ')
            .filter(|a| Assurance::parse_acr(a).is_ok())
            .map(String::from)
            .collect();
        Ok(AuthRequest {
            client_id: client.client_id,
            redirect_uri: redirect_uri.to_string(),
            scopes,
            state: state.clone(),
            nonce: get("nonce").map(String::from),
            code_challenge: challenge.to_string(),
            acr_values,
            max_age,
            prompt,
            ui_locales: get("ui_locales").map(String::from),
            received_at: now_unix(),
        })
    }

    /// Keeps a request while the person signs in; returns its id for the sign-in pages.
    /// Seals a request for the sign-in pages: the request itself, MAC'd with a platform secret,
    /// so that no node needs to store it and any node can take it back. It is valid for
    /// [`REQUEST_TTL_SECS`]; replaying it needs the person's session and yields codes bound to
    /// the original PKCE challenge and redirect URI, so it gains nothing.
    pub async fn save_request(&self, request: &AuthRequest) -> Result<String, OAuthError> {
        let body = b64url(&serde_json::to_vec(request).expect("json"));
        let mac = self.directory.mac("oidc-request", &body).await?;
        Ok(format!("{body}.{mac}"))
    }

    /// The request a sealed id carries, if the seal holds and it has not expired.
    pub async fn load_request(&self, id: &str) -> Result<Option<AuthRequest>, OAuthError> {
        if id.is_empty() || id.len() > MAX_SEALED_REQUEST {
            return Ok(None);
        }
        let Some((body, mac)) = id.rsplit_once('.') else {
            return Ok(None);
        };
        let expected = self.directory.mac("oidc-request", body).await?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            mac.as_bytes(),
        )) {
            return Ok(None);
        }
        let request: Option<AuthRequest> = saphan_crypto::b64url_decode(body)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        Ok(request.filter(|r| r.received_at + REQUEST_TTL_SECS > now_unix()))
    }

    fn error_redirect(&self, request: &AuthRequest, error: OAuthError) -> Finish {
        Finish::Redirect(
            AuthorizeFailure::Redirect {
                redirect_uri: request.redirect_uri.clone(),
                state: request.state.clone(),
                error,
            }
            .redirect_url(&self.issuer)
            .expect("redirect failure"),
        )
    }

    /// Decides what a request needs next, given the browser's session (if any).
    /// `identity` is the session's person when the caller has just loaded them (a sign-in).
    pub async fn decide(
        &self,
        request: &AuthRequest,
        session: Option<&Session>,
        identity: Option<&Identity>,
    ) -> Result<Finish, OAuthError> {
        let client = match self.client(&request.client_id).await? {
            Some(c) => c,
            None => {
                return Ok(self
                    .error_redirect(request, OAuthError::access_denied("the client was removed")))
            }
        };
        let prompt_none = request.prompt.iter().any(|p| p == "none");
        let needs_fresh = request
            .prompt
            .iter()
            .any(|p| p == "login" || p == "select_account");
        let now = now_unix();
        // A sign-in made for this very request always counts (max_age=0 included).
        let session = session.filter(|s| {
            s.auth_time >= request.received_at
                || (!needs_fresh && request.max_age.is_none_or(|m| now - s.auth_time <= m))
        });
        let Some(session) = session else {
            return Ok(if prompt_none {
                self.error_redirect(
                    request,
                    OAuthError::login_required("the person is not signed in"),
                )
            } else {
                Finish::SignIn
            });
        };
        let identity = match identity.filter(|i| i.id == session.identity_id) {
            Some(i) => i.clone(),
            None => match self.directory.get(&session.identity_id).await? {
                Some(i) => i,
                None => return Ok(Finish::SignIn),
            },
        };
        let achieved = Assurance::new(identity.effective_ial(), session.aal);
        let wanted: Vec<Assurance> = request
            .acr_values
            .iter()
            .filter_map(|a| Assurance::parse_acr(a).ok())
            .collect();
        let meets_request = wanted.is_empty() || wanted.iter().any(|w| achieved.satisfies(*w));
        let meets_client = client.min_assurance().is_none_or(|m| achieved.satisfies(m));
        if !(meets_request && meets_client) {
            // A stronger sign-in may reach it (e.g. a password session when a passkey exists);
            // a sign-in made for this very request that still falls short is final.
            let methods = self.directory.methods(&identity.id).await?;
            let reachable = Assurance::new(identity.effective_ial(), methods.max_aal());
            let could = (wanted.is_empty() || wanted.iter().any(|w| reachable.satisfies(*w)))
                && client
                    .min_assurance()
                    .is_none_or(|m| reachable.satisfies(m));
            if could && session.auth_time < request.received_at {
                return Ok(if prompt_none {
                    self.error_redirect(
                        request,
                        OAuthError::login_required("a stronger sign-in is needed"),
                    )
                } else {
                    Finish::SignIn
                });
            }
            self.record(&format!("identity:{}", identity.id), "oidc.authorize.unmet-assurance", &format!("client:{}", client.client_id), &json!({ "achieved": achieved.acr(), "wanted": request.acr_values, "client_min": client.min_acr }))
                .await?;
            return Ok(self.error_redirect(
                request,
                OAuthError::unmet_authentication_requirements(format!(
                    "this person can reach {} at most, below what was asked",
                    reachable.acr()
                )),
            ));
        }
        let consented = self
            .has_consent(&identity.id, &client.client_id, &request.scopes)
            .await?;
        let force_consent = request.prompt.iter().any(|p| p == "consent");
        if !consented || force_consent {
            if prompt_none {
                return Ok(self.error_redirect(
                    request,
                    OAuthError::consent_required("the person has not approved this client"),
                ));
            }
            return Ok(Finish::Consent {
                client: Box::new(client),
                scopes: request.scopes.clone(),
            });
        }
        let code = self
            .issue_code(request, session, &identity, achieved)
            .await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = &request.state {
            params.push(("state", s));
        }
        params.push(("iss", &self.issuer));
        Ok(Finish::Redirect(redirect_with(
            &request.redirect_uri,
            &params,
        )))
    }

    /// The person refused on the consent page.
    pub async fn deny(
        &self,
        request: &AuthRequest,
        identity_id: &str,
    ) -> Result<String, OAuthError> {
        self.record(
            &format!("identity:{identity_id}"),
            "oidc.consent.denied",
            &format!("client:{}", request.client_id),
            &request.scopes,
        )
        .await?;
        match self.error_redirect(request, OAuthError::access_denied("the person declined")) {
            Finish::Redirect(url) => Ok(url),
            _ => unreachable!("error_redirect redirects"),
        }
    }

    async fn issue_code(
        &self,
        request: &AuthRequest,
        session: &Session,
        identity: &Identity,
        achieved: Assurance,
    ) -> Result<String, OAuthError> {
        let code = random_token();
        sqlx::query(
            "INSERT INTO oidc_codes (code_hash, client_id, identity_id, session_id, redirect_uri, scope, nonce, code_challenge, acr, amr, auth_time, expires_at, used) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0)",
        )
        .bind(sha256_hex(&code))
        .bind(&request.client_id)
        .bind(&identity.id)
        .bind(&session.id)
        .bind(&request.redirect_uri)
        .bind(request.scopes.join(" "))
        .bind(&request.nonce)
        .bind(&request.code_challenge)
        .bind(achieved.acr())
        .bind(serde_json::to_string(&session.amr).expect("json"))
        .bind(session.auth_time)
        .bind(now_unix() + self.lifetimes.code_secs)
        .execute(self.db.pool())
        .await?;
        // The release is audited when the code becomes tokens (`oidc.token.issued`).
        Ok(code)
    }

    // ---- consent ----------------------------------------------------------------------------

    pub async fn has_consent(
        &self,
        identity_id: &str,
        client_id: &str,
        scopes: &[String],
    ) -> Result<bool, OAuthError> {
        let row = sqlx::query(
            "SELECT scopes FROM oidc_consents WHERE identity_id = $1 AND client_id = $2",
        )
        .bind(identity_id)
        .bind(client_id)
        .fetch_optional(self.db.pool())
        .await?;
        let granted: Vec<String> = row
            .map(|r| serde_json::from_str(&r.get::<String, _>(0)).unwrap_or_default())
            .unwrap_or_default();
        Ok(scopes.iter().all(|s| granted.contains(s)))
    }

    pub async fn grant_consent(
        &self,
        identity_id: &str,
        client_id: &str,
        scopes: &[String],
    ) -> Result<(), OAuthError> {
        let row = sqlx::query(
            "SELECT scopes FROM oidc_consents WHERE identity_id = $1 AND client_id = $2",
        )
        .bind(identity_id)
        .bind(client_id)
        .fetch_optional(self.db.pool())
        .await?;
        let mut all: Vec<String> = row
            .map(|r| serde_json::from_str(&r.get::<String, _>(0)).unwrap_or_default())
            .unwrap_or_default();
        for s in scopes {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        sqlx::query(
            "INSERT INTO oidc_consents (identity_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (identity_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
        )
        .bind(identity_id)
        .bind(client_id)
        .bind(serde_json::to_string(&all).expect("json"))
        .bind(saphan_core::clock::now_text())
        .execute(self.db.pool())
        .await?;
        self.record(
            &format!("identity:{identity_id}"),
            "oidc.consent.granted",
            &format!("client:{client_id}"),
            &scopes,
        )
        .await
    }

    /// The clients a person has allowed, with the scopes and when.
    pub async fn consents_of(
        &self,
        identity_id: &str,
    ) -> Result<Vec<(Client, Vec<String>, String)>, OAuthError> {
        let rows = sqlx::query("SELECT client_id, scopes, granted_at FROM oidc_consents WHERE identity_id = $1 ORDER BY granted_at DESC")
            .bind(identity_id)
            .fetch_all(self.db.pool())
            .await?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(client) = self.client(&r.get::<String, _>(0)).await? {
                out.push((
                    client,
                    serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
                    r.get(2),
                ));
            }
        }
        Ok(out)
    }

    /// Withdraws a consent and revokes every token the client holds for the person.
    pub async fn revoke_consent(
        &self,
        identity_id: &str,
        client_id: &str,
    ) -> Result<bool, OAuthError> {
        let removed =
            sqlx::query("DELETE FROM oidc_consents WHERE identity_id = $1 AND client_id = $2")
                .bind(identity_id)
                .bind(client_id)
                .execute(self.db.pool())
                .await?
                .rows_affected()
                == 1;
        sqlx::query("UPDATE oidc_tokens SET revoked = 1 WHERE identity_id = $1 AND client_id = $2")
            .bind(identity_id)
            .bind(client_id)
            .execute(self.db.pool())
            .await?;
        if removed {
            self.record(
                &format!("identity:{identity_id}"),
                "oidc.consent.revoked",
                &format!("client:{client_id}"),
                &(),
            )
            .await?;
        }
        Ok(removed)
    }

    // ---- tokens -----------------------------------------------------------------------------

    /// The token endpoint (RFC 6749 §3.2): `authorization_code` with PKCE, and `refresh_token`
    /// with rotation; `client` is already authenticated.
    pub async fn token(
        &self,
        client: &Client,
        params: &std::collections::BTreeMap<String, String>,
    ) -> Result<TokenResponse, OAuthError> {
        let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
        match get("grant_type") {
            Some("authorization_code") => {
                self.exchange_code(
                    client,
                    get("code"),
                    get("redirect_uri"),
                    get("code_verifier"),
                )
                .await
            }
            Some("refresh_token") => {
                self.refresh(client, get("refresh_token"), get("scope"))
                    .await
            }
            Some(_) => Err(OAuthError::unsupported_grant_type(
                "grant_type must be authorization_code or refresh_token",
            )),
            None => Err(OAuthError::invalid_request("grant_type is missing")),
        }
    }

    async fn exchange_code(
        &self,
        client: &Client,
        code: Option<&str>,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let code = code.ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
        let verifier = verifier.ok_or_else(|| {
            OAuthError::invalid_request("code_verifier is missing (PKCE is required)")
        })?;
        if !is_pkce_value(verifier, 43, 128) {
            return Err(OAuthError::invalid_request(
                "code_verifier must be 43–128 unreserved characters",
            ));
        }
        let code_hash = sha256_hex(code);
        // One use only: the first exchange marks it, whatever the outcome, so a stolen code
        // cannot be tried against many verifiers. Marking and reading are one statement.
        let row = sqlx::query(
            "UPDATE oidc_codes SET used = used + 1 WHERE code_hash = $1 AND client_id = $2 \
             RETURNING client_id, identity_id, session_id, redirect_uri, scope, nonce, code_challenge, acr, amr, \
             auth_time, expires_at, used, \
             (SELECT public_id FROM oidc_sessions s WHERE s.id = oidc_codes.session_id)",
        )
        .bind(&code_hash)
        .bind(&client.client_id)
        .fetch_optional(self.db.pool())
        .await?;
        let invalid = || OAuthError::invalid_grant("the code is invalid, expired or already used");
        let Some(row) = row else {
            return Err(invalid());
        };
        let first_use = row.get::<i64, _>(11) == 1;
        let identity_id: String = row.get(1);
        if !first_use {
            // RFC 6749 §4.1.2: revoke what the code already gave.
            sqlx::query("UPDATE oidc_tokens SET revoked = 1 WHERE family = $1")
                .bind(&code_hash)
                .execute(self.db.pool())
                .await?;
            self.record(
                &format!("client:{}", client.client_id),
                "oidc.code.replayed",
                &format!("identity:{identity_id}"),
                &(),
            )
            .await?;
            return Err(invalid());
        }
        if row.get::<i64, _>(10) <= now_unix() {
            return Err(invalid());
        }
        if redirect_uri != Some(row.get::<String, _>(3).as_str()) {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        let challenge: String = row.get(6);
        let computed = b64url(&Sha256::digest(verifier.as_bytes()));
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            computed.as_bytes(),
            challenge.as_bytes(),
        )) {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match code_challenge",
            ));
        }
        let grant = Grant {
            identity_id,
            session_id: row.get(2),
            sid: row.get(12),
            family: code_hash,
            scope: row.get(4),
            refresh_scope: row.get(4),
            nonce: row.get(5),
            acr: row.get(7),
            amr: row.get(8),
            auth_time: row.get(9),
            refresh_expires_at: now_unix() + self.lifetimes.refresh_secs,
        };
        self.issue_tokens(client, &grant, "oidc.token.issued").await
    }

    async fn refresh(
        &self,
        client: &Client,
        token: Option<&str>,
        scope_param: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let token = token.ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
        let hash = sha256_hex(token);
        let row = sqlx::query(
            "SELECT client_id, identity_id, session_id, family, scope, acr, amr, auth_time, expires_at, revoked, rotated, \
             (SELECT public_id FROM oidc_sessions s WHERE s.id = oidc_tokens.session_id) \
             FROM oidc_tokens WHERE token_hash = $1 AND kind = 'refresh'",
        )
        .bind(&hash)
        .fetch_optional(self.db.pool())
        .await?;
        let invalid =
            || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
        let Some(row) = row else {
            return Err(invalid());
        };
        if row.get::<String, _>(0) != client.client_id {
            return Err(invalid());
        }
        let family: String = row.get(3);
        let identity_id: String = row.get(1);
        if row.get::<i64, _>(9) != 0 || row.get::<i64, _>(8) <= now_unix() {
            return Err(invalid());
        }
        let rotated_now = sqlx::query("UPDATE oidc_tokens SET rotated = 1 WHERE token_hash = $1 AND rotated = 0 AND revoked = 0")
            .bind(&hash)
            .execute(self.db.pool())
            .await?
            .rows_affected()
            == 1;
        if row.get::<i64, _>(10) != 0 || !rotated_now {
            // A rotated token came back: someone holds a copy. End the whole family.
            sqlx::query("UPDATE oidc_tokens SET revoked = 1 WHERE family = $1")
                .bind(&family)
                .execute(self.db.pool())
                .await?;
            self.record(
                &format!("client:{}", client.client_id),
                "oidc.refresh.reused",
                &format!("identity:{identity_id}"),
                &json!({ "family": &family[..16] }),
            )
            .await?;
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used; its family is revoked",
            ));
        }
        let granted: String = row.get(4);
        let refresh_scope = granted.clone();
        let scope = match scope_param {
            Some(asked) => {
                let asked = scope::parse(asked);
                let granted_list = scope::parse(&granted);
                if asked.iter().any(|s| !granted_list.contains(s)) {
                    return Err(OAuthError::invalid_scope(
                        "a refresh cannot widen the scope",
                    ));
                }
                asked.join(" ")
            }
            None => granted,
        };
        let grant = Grant {
            identity_id,
            session_id: row.get(2),
            sid: row.get(11),
            family,
            scope,
            refresh_scope,
            nonce: None,
            acr: row.get(5),
            amr: row.get(6),
            auth_time: row.get(7),
            refresh_expires_at: row.get(8),
        };
        self.issue_tokens(client, &grant, "oidc.token.refreshed")
            .await
    }

    async fn issue_tokens(
        &self,
        client: &Client,
        grant: &Grant,
        action: &str,
    ) -> Result<TokenResponse, OAuthError> {
        let identity = self
            .directory
            .get(&grant.identity_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("the person no longer exists"))?;
        let now = now_unix();
        let access = random_token();
        let refresh = random_token();
        let insert = "INSERT INTO oidc_tokens (token_hash, kind, client_id, identity_id, session_id, family, scope, acr, amr, auth_time, issued_at, expires_at, revoked, rotated) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, 0)";
        let mut tx = self.db.pool().begin().await?;
        for (token, kind, expires, scope) in [
            (
                &access,
                "access",
                now + self.lifetimes.access_secs,
                &grant.scope,
            ),
            (
                &refresh,
                "refresh",
                grant.refresh_expires_at,
                &grant.refresh_scope,
            ),
        ] {
            sqlx::query(insert)
                .bind(sha256_hex(token))
                .bind(kind)
                .bind(&client.client_id)
                .bind(&grant.identity_id)
                .bind(&grant.session_id)
                .bind(&grant.family)
                .bind(scope)
                .bind(&grant.acr)
                .bind(&grant.amr)
                .bind(grant.auth_time)
                .bind(now)
                .bind(expires)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let scopes = scope::parse(&grant.scope);
        let sub = self.subject_for(&client.client_id, &identity.id).await?;
        let mut claims = self.claims(&identity, &scopes).await?;
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("sub".into(), sub.into());
        claims.insert("aud".into(), client.client_id.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + ID_TOKEN_TTL_SECS).into());
        claims.insert("auth_time".into(), grant.auth_time.into());
        claims.insert("acr".into(), grant.acr.clone().into());
        claims.insert(
            "amr".into(),
            serde_json::from_str::<Value>(&grant.amr).unwrap_or(json!([])),
        );
        let digest = Sha256::digest(access.as_bytes());
        claims.insert("at_hash".into(), b64url(&digest[..16]).into());
        if let Some(nonce) = &grant.nonce {
            claims.insert("nonce".into(), nonce.clone().into());
        }
        if let Some(sid) = &grant.sid {
            claims.insert("sid".into(), sid.clone().into());
        }
        let id_token = jose::sign(&self.keys, client.id_token_alg(), &Value::Object(claims))?;
        self.record(
            &format!("client:{}", client.client_id),
            action,
            &format!("identity:{}", identity.id),
            &json!({ "scope": grant.scope }),
        )
        .await?;
        Ok(TokenResponse {
            access_token: access,
            token_type: "Bearer",
            expires_in: self.lifetimes.access_secs,
            refresh_token: refresh,
            id_token,
            scope: grant.scope.clone(),
        })
    }

    /// The claims `scopes` release about a person (besides `sub`).
    pub async fn claims(
        &self,
        identity: &Identity,
        scopes: &[String],
    ) -> Result<Map<String, Value>, OAuthError> {
        let mut claims = Map::new();
        for s in scopes {
            match s.as_str() {
                "profile" => {
                    claims.insert("name".into(), identity.name.th.to_string().into());
                    claims.insert("name#th".into(), identity.name.th.to_string().into());
                    claims.insert("name#en".into(), identity.name.en.to_string().into());
                }
                "pid" => {
                    if let Some(nid) = &identity.national_id {
                        claims.insert("pid".into(), nid.digits().into());
                    }
                }
                "passport" => {
                    if let (Some(number), Some(nationality)) =
                        (&identity.passport_number, &identity.nationality)
                    {
                        claims.insert("passport_number".into(), number.clone().into());
                        claims.insert("nationality".into(), nationality.clone().into());
                    }
                }
                "act_for" => {
                    let relations = self.directory.act_for(&identity.id).await?;
                    claims.insert(
                        "act_for".into(),
                        serde_json::to_value(relations).expect("json"),
                    );
                }
                "roles" => {
                    let roles = self.directory.roles_of(&identity.id).await?;
                    claims.insert("roles".into(), serde_json::to_value(roles).expect("json"));
                }
                _ => {}
            }
        }
        Ok(claims)
    }

    /// A token that is neither revoked nor expired.
    async fn live_token(&self, token: &str) -> Result<Option<LiveToken>, OAuthError> {
        if token.is_empty() || token.len() > 200 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT kind, client_id, identity_id, scope, issued_at, expires_at, family, acr FROM oidc_tokens \
             WHERE token_hash = $1 AND revoked = 0 AND rotated = 0 AND expires_at > $2",
        )
        .bind(sha256_hex(token))
        .bind(now_unix())
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|r| LiveToken {
            kind: r.get(0),
            client_id: r.get(1),
            identity_id: r.get(2),
            scope: r.get(3),
            issued_at: r.get(4),
            expires_at: r.get(5),
            family: r.get(6),
            acr: r.get(7),
        }))
    }

    /// The identity a live access token speaks for, and the assurance of the sign-in that
    /// issued it (for APIs a person calls through an app), if the token carries `scope`.
    pub async fn access_token_holder(
        &self,
        token: &str,
        scope: &str,
    ) -> Result<Option<(String, saphan_identity::Assurance)>, OAuthError> {
        Ok(self
            .live_token(token)
            .await?
            .filter(|t| t.kind == "access" && t.scope.split(' ').any(|s| s == scope))
            .and_then(|t| {
                saphan_identity::Assurance::parse_acr(&t.acr)
                    .ok()
                    .map(|a| (t.identity_id, a))
            }))
    }

    /// UserInfo (OIDC Core §5.3) for a bearer access token.
    pub async fn userinfo(&self, access_token: &str) -> Result<Map<String, Value>, OAuthError> {
        let token = self
            .live_token(access_token)
            .await?
            .filter(|t| t.kind == "access");
        let Some(token) = token else {
            return Err(OAuthError::invalid_token(
                "the access token is invalid, expired or revoked",
            ));
        };
        let identity = self
            .directory
            .get(&token.identity_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_token("the person no longer exists"))?;
        let mut claims = self.claims(&identity, &scope::parse(&token.scope)).await?;
        claims.insert(
            "sub".into(),
            self.subject_for(&token.client_id, &identity.id)
                .await?
                .into(),
        );
        Ok(claims)
    }

    /// RFC 7662: only the client a token was issued to learns anything about it.
    pub async fn introspect(
        &self,
        client: &Client,
        token: &str,
    ) -> Result<Introspection, OAuthError> {
        let live = self
            .live_token(token)
            .await?
            .filter(|t| t.client_id == client.client_id);
        let Some(t) = live else {
            return Ok(Introspection {
                active: false,
                details: None,
            });
        };
        let mut details = Map::new();
        details.insert("scope".into(), t.scope.clone().into());
        details.insert("client_id".into(), t.client_id.clone().into());
        details.insert(
            "sub".into(),
            self.subject_for(&t.client_id, &t.identity_id).await?.into(),
        );
        details.insert("iat".into(), t.issued_at.into());
        details.insert("exp".into(), t.expires_at.into());
        details.insert("iss".into(), self.issuer.clone().into());
        details.insert("aud".into(), t.client_id.clone().into());
        details.insert(
            "token_type".into(),
            if t.kind == "access" {
                "Bearer"
            } else {
                "refresh_token"
            }
            .into(),
        );
        Ok(Introspection {
            active: true,
            details: Some(details),
        })
    }

    /// RFC 7009: revoking a refresh token ends its family; an access token, just itself. Unknown
    /// tokens and other clients' tokens are silently ignored, as the RFC asks.
    pub async fn revoke(&self, client: &Client, token: &str) -> Result<(), OAuthError> {
        let Some(t) = self.live_token(token).await? else {
            return Ok(());
        };
        if t.client_id != client.client_id {
            return Ok(());
        }
        if t.kind == "refresh" {
            sqlx::query("UPDATE oidc_tokens SET revoked = 1 WHERE family = $1")
                .bind(&t.family)
                .execute(self.db.pool())
                .await?;
        } else {
            sqlx::query("UPDATE oidc_tokens SET revoked = 1 WHERE token_hash = $1")
                .bind(sha256_hex(token))
                .execute(self.db.pool())
                .await?;
        }
        self.record(
            &format!("client:{}", client.client_id),
            "oidc.token.revoked",
            &format!("identity:{}", t.identity_id),
            &json!({ "kind": t.kind }),
        )
        .await
    }

    // ---- logout -----------------------------------------------------------------------------

    /// RP-initiated logout 1.0: which client asks (from `id_token_hint` or `client_id`), whether
    /// the hint names this browser's person, and where to send the browser afterwards.
    pub async fn logout_target(
        &self,
        id_token_hint: Option<&str>,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
        session: Option<&Session>,
    ) -> Result<LogoutTarget, OAuthError> {
        let hint = id_token_hint
            .and_then(Unverified::parse)
            .filter(|h| h.verify_platform(&self.keys.public_keys()));
        if id_token_hint.is_some() && hint.is_none() {
            return Err(OAuthError::invalid_request(
                "id_token_hint is not an ID token this provider issued",
            ));
        }
        let hint_client = hint
            .as_ref()
            .and_then(|h| h.claims.get("aud"))
            .and_then(Value::as_str)
            .map(String::from);
        if let (Some(a), Some(b)) = (&hint_client, client_id) {
            if a != b {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the id_token_hint",
                ));
            }
        }
        let client_id = hint_client.or(client_id.map(String::from));
        let client = match &client_id {
            Some(c) => self.client(c).await?,
            None => None,
        };
        let redirect = match (post_logout_redirect_uri, &client) {
            (Some(uri), Some(c)) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => {
                let mut params = vec![];
                if let Some(s) = state {
                    params.push(("state", s));
                }
                Some(redirect_with(uri, &params))
            }
            (Some(_), _) => {
                return Err(OAuthError::invalid_request(
                    "post_logout_redirect_uri is not registered for this client",
                ))
            }
            (None, _) => None,
        };
        // The hint confirms the request comes from a client the person used in this session.
        let hint_matches = match (&hint, &client, session) {
            (Some(h), Some(c), Some(s)) => {
                let sub = self.subject_for(&c.client_id, &s.identity_id).await?;
                h.claims.get("sub").and_then(Value::as_str) == Some(sub.as_str())
            }
            _ => false,
        };
        Ok(LogoutTarget {
            redirect,
            confirmed: hint_matches,
            client,
        })
    }

    /// Provider metadata (OpenID Connect Discovery 1.0 §3).
    pub fn discovery(&self) -> Value {
        let i = &self.issuer;
        json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/oidc/authorize"),
            "token_endpoint": format!("{i}/oidc/token"),
            "userinfo_endpoint": format!("{i}/oidc/userinfo"),
            "jwks_uri": format!("{i}/api/v1/platform/jwks.json"),
            "revocation_endpoint": format!("{i}/oidc/revoke"),
            "introspection_endpoint": format!("{i}/oidc/introspect"),
            "end_session_endpoint": format!("{i}/oidc/logout"),
            "scopes_supported": scope::names(),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
            "code_challenge_methods_supported": ["S256"],
            "acr_values_supported": Assurance::all_acr_values(),
            "claims_supported": scope::claims_supported(),
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "authorization_response_iss_parameter_supported": true,
            "ui_locales_supported": ["th", "en"],
            "claims_locales_supported": ["th", "en"],
        })
    }
}

/// Where a logout goes and whether it may proceed without asking the person.
pub struct LogoutTarget {
    pub redirect: Option<String>,
    /// The `id_token_hint` names the signed-in person: log out without a confirmation page.
    pub confirmed: bool,
    pub client: Option<Client>,
}

struct Grant {
    identity_id: String,
    session_id: String,
    /// The session's public id, for the `sid` claim.
    sid: Option<String>,
    family: String,
    scope: String,
    /// The refresh token keeps the whole grant even when a refresh narrows the access token
    /// (RFC 6749 §6).
    refresh_scope: String,
    nonce: Option<String>,
    acr: String,
    amr: String,
    auth_time: i64,
    refresh_expires_at: i64,
}

struct LiveToken {
    acr: String,
    kind: String,
    client_id: String,
    identity_id: String,
    scope: String,
    issued_at: i64,
    expires_at: i64,
    family: String,
}
