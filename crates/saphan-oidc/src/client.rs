//! Relying parties: registration by administrators (through the authorization layer), and
//! client authentication at the token, introspection and revocation endpoints.

use saphan_core::Text;
use saphan_identity::{Action, Assurance, Resource, Subject};
use saphan_store::sqlx::{self, any::AnyRow, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jose::{self, Unverified};
use crate::{now_unix, random_token, scope, sha256_hex, OAuthError, Provider};

pub const AUTH_BASIC: &str = "client_secret_basic";
pub const AUTH_PRIVATE_KEY_JWT: &str = "private_key_jwt";
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What an administrator submits to register a relying party.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    /// Shown on the consent page: which service receives the data.
    pub name: Text,
    /// The agency that runs the service (its code).
    pub agency: String,
    /// Exact-match redirect URIs: https, or http on a loopback address.
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Scopes the client may ask for; `openid` is required.
    pub scopes: Vec<String>,
    /// `client_secret_basic` (default) or `private_key_jwt`.
    #[serde(default = "default_auth_method")]
    pub token_endpoint_auth_method: String,
    /// The client's public keys, for `private_key_jwt`.
    #[serde(default)]
    pub jwks: Option<Value>,
    /// `RS256` (default) or `ES256`.
    #[serde(default = "default_alg")]
    pub id_token_signed_response_alg: String,
    /// The least assurance every sign-in for this client must reach, e.g. `urn:saphan:ial-2.1:aal-2`.
    #[serde(default)]
    pub min_acr: Option<String>,
}

fn default_auth_method() -> String {
    AUTH_BASIC.into()
}

fn default_alg() -> String {
    "RS256".into()
}

/// A registered client as stored (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub client_id: String,
    pub agency: String,
    pub name: Text,
    pub token_endpoint_auth_method: String,
    #[serde(skip)]
    pub(crate) secret_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub id_token_signed_response_alg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_acr: Option<String>,
    pub created_at: String,
    pub created_by: String,
}

/// The answer to a registration: the client, and its secret, shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct RegisteredClient {
    #[serde(flatten)]
    pub client: Client,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// How a client presented itself at an endpoint.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    Basic {
        client_id: String,
        secret: String,
    },
    Assertion {
        client_id: Option<String>,
        assertion: String,
    },
    None,
}

impl Client {
    pub fn min_assurance(&self) -> Option<Assurance> {
        self.min_acr
            .as_deref()
            .and_then(|a| Assurance::parse_acr(a).ok())
    }

    pub fn id_token_alg(&self) -> saphan_crypto::KeyAlg {
        jose::parse_alg(&self.id_token_signed_response_alg).unwrap_or(saphan_crypto::KeyAlg::RS256)
    }
}

const CLIENT_COLUMNS: &str = "client_id, agency, name_th, name_en, auth_method, secret_hash, jwks, \
     redirect_uris, post_logout_redirect_uris, scopes, id_token_alg, min_acr, created_at, created_by";

fn client_from_row(row: &AnyRow) -> Result<Client, OAuthError> {
    let json = |i: usize| -> Result<Vec<String>, OAuthError> {
        serde_json::from_str(&row.get::<String, _>(i))
            .map_err(|e| OAuthError::server(&format!("stored client: {e}")))
    };
    Ok(Client {
        client_id: row.get(0),
        agency: row.get(1),
        name: Text::owned(row.get::<String, _>(2), row.get::<String, _>(3)),
        token_endpoint_auth_method: row.get(4),
        secret_hash: row.get(5),
        jwks: row
            .get::<Option<String>, _>(6)
            .map(|j| serde_json::from_str(&j))
            .transpose()
            .map_err(|e| OAuthError::server(&format!("stored jwks: {e}")))?,
        redirect_uris: json(7)?,
        post_logout_redirect_uris: json(8)?,
        scopes: json(9)?,
        id_token_signed_response_alg: row.get(10),
        min_acr: row.get(11),
        created_at: row.get(12),
        created_by: row.get(13),
    })
}

/// Registration problems, for the administrator (API, CLI, admin page).
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{0}")]
    Invalid(String),
    #[error("not allowed to manage clients of agency `{0}`")]
    Forbidden(String),
    #[error("no such agency `{0}`")]
    NoSuchAgency(String),
    #[error(transparent)]
    OAuth(#[from] OAuthError),
}

fn check_redirect_uri(uri: &str) -> Result<(), RegistrationError> {
    let bad = |why: &str| {
        RegistrationError::Invalid(format!(
            "redirect URI `{}`: {why}",
            uri.chars().take(100).collect::<String>()
        ))
    };
    if uri.len() > 2000 {
        return Err(bad("longer than 2000 characters"));
    }
    let parsed = url::Url::parse(uri).map_err(|_| bad("not an absolute URL"))?;
    if parsed.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    let loopback = matches!(
        parsed.host_str(),
        Some("127.0.0.1") | Some("localhost") | Some("[::1]")
    );
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(bad("must be https (http only on a loopback address)")),
    }
}

impl ClientRegistration {
    fn validate(&self) -> Result<(), RegistrationError> {
        let invalid = |m: &str| Err(RegistrationError::Invalid(m.into()));
        if self.name.th.trim().is_empty()
            || self.name.en.trim().is_empty()
            || self.name.th.len() > 200
            || self.name.en.len() > 200
        {
            return invalid("name.th and name.en are required (at most 200 bytes each)");
        }
        if self.redirect_uris.is_empty() || self.redirect_uris.len() > 10 {
            return invalid("between 1 and 10 redirect_uris are required");
        }
        if self.post_logout_redirect_uris.len() > 10 {
            return invalid("at most 10 post_logout_redirect_uris");
        }
        for uri in self
            .redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris)
        {
            check_redirect_uri(uri)?;
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return invalid("scopes must include openid");
        }
        for s in &self.scopes {
            if scope::info(s).is_none() {
                return Err(RegistrationError::Invalid(format!(
                    "unknown scope `{}`; known: {}",
                    s.chars().take(40).collect::<String>(),
                    scope::names().join(", ")
                )));
            }
        }
        if jose::parse_alg(&self.id_token_signed_response_alg).is_none() {
            return invalid("id_token_signed_response_alg must be RS256 or ES256");
        }
        if let Some(acr) = &self.min_acr {
            Assurance::parse_acr(acr).map_err(|e| RegistrationError::Invalid(e.to_string()))?;
        }
        match self.token_endpoint_auth_method.as_str() {
            AUTH_BASIC => {
                if self.jwks.is_some() {
                    return invalid("jwks is only for private_key_jwt");
                }
            }
            AUTH_PRIVATE_KEY_JWT => {
                let keys = self
                    .jwks
                    .as_ref()
                    .and_then(|j| j.get("keys"))
                    .and_then(Value::as_array)
                    .filter(|k| !k.is_empty() && k.len() <= 10);
                let Some(keys) = keys else {
                    return invalid("private_key_jwt needs jwks with 1–10 public keys");
                };
                for key in keys {
                    saphan_crypto::ExternalKey::from_jwk(key)
                        .map_err(|e| RegistrationError::Invalid(format!("jwks: {e}")))?;
                }
            }
            _ => {
                return invalid(
                    "token_endpoint_auth_method must be client_secret_basic or private_key_jwt",
                )
            }
        }
        Ok(())
    }
}

impl Provider {
    /// Registers a relying party for an agency, if `by` may manage that agency's clients.
    pub async fn register_client(
        &self,
        by: &Subject,
        registration: ClientRegistration,
    ) -> Result<RegisteredClient, RegistrationError> {
        registration.validate()?;
        if self
            .directory
            .agency(&registration.agency)
            .await
            .map_err(OAuthError::from)?
            .is_none()
        {
            return Err(RegistrationError::NoSuchAgency(registration.agency.clone()));
        }
        if !by.may(
            &Action::ManageClients,
            &Resource::Agency(registration.agency.clone()),
        ) {
            self.record(
                &by.actor(),
                "oidc.client.denied",
                &format!("agency:{}", registration.agency),
                &(),
            )
            .await?;
            return Err(RegistrationError::Forbidden(registration.agency.clone()));
        }
        let client_id = format!(
            "{}-{}",
            registration.agency,
            &saphan_core::random_id()[..16]
        );
        let secret = (registration.token_endpoint_auth_method == AUTH_BASIC).then(random_token);
        let json = |v: &Vec<String>| serde_json::to_string(v).expect("json");
        sqlx::query(&format!(
            "INSERT INTO oidc_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(&client_id)
        .bind(&registration.agency)
        .bind(registration.name.th.as_ref())
        .bind(registration.name.en.as_ref())
        .bind(&registration.token_endpoint_auth_method)
        .bind(secret.as_deref().map(sha256_hex))
        .bind(registration.jwks.as_ref().map(|j| j.to_string()))
        .bind(json(&registration.redirect_uris))
        .bind(json(&registration.post_logout_redirect_uris))
        .bind(json(&registration.scopes))
        .bind(&registration.id_token_signed_response_alg)
        .bind(&registration.min_acr)
        .bind(saphan_core::clock::now_text())
        .bind(by.actor())
        .execute(self.db.pool())
        .await
        .map_err(OAuthError::from)?;
        self.record(
            &by.actor(),
            "oidc.client.registered",
            &format!("client:{client_id}"),
            &registration,
        )
        .await?;
        let client = self
            .client(&client_id)
            .await?
            .ok_or_else(|| OAuthError::server("client vanished"))?;
        Ok(RegisteredClient {
            client,
            client_secret: secret,
        })
    }

    /// Removes a client and ends everything issued to it.
    pub async fn delete_client(
        &self,
        by: &Subject,
        client_id: &str,
    ) -> Result<bool, RegistrationError> {
        let Some(client) = self.client(client_id).await? else {
            return Ok(false);
        };
        if !by.may(
            &Action::ManageClients,
            &Resource::Agency(client.agency.clone()),
        ) {
            return Err(RegistrationError::Forbidden(client.agency));
        }
        for sql in [
            "DELETE FROM oidc_clients WHERE client_id = $1",
            "UPDATE oidc_tokens SET revoked = 1 WHERE client_id = $1",
            "DELETE FROM oidc_consents WHERE client_id = $1",
        ] {
            sqlx::query(sql)
                .bind(client_id)
                .execute(self.db.pool())
                .await
                .map_err(OAuthError::from)?;
        }
        self.client_cache.forget(client_id);
        self.record(
            &by.actor(),
            "oidc.client.deleted",
            &format!("client:{client_id}"),
            &(),
        )
        .await?;
        Ok(true)
    }

    /// A registered client. Found clients are cached for a few seconds (every sign-in asks for
    /// its client several times); a change on another node shows within [`CLIENT_CACHE_SECS`].
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>, OAuthError> {
        if client_id.is_empty() || client_id.len() > 128 {
            return Ok(None);
        }
        if let Some(client) = self.client_cache.get(client_id) {
            return Ok(Some(client));
        }
        let client = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(self.db.pool())
        .await?
        .as_ref()
        .map(client_from_row)
        .transpose()?;
        if let Some(c) = &client {
            self.client_cache.put(c.clone());
        }
        Ok(client)
    }

    pub async fn clients(&self, agency: Option<&str>) -> Result<Vec<Client>, OAuthError> {
        let rows = match agency {
            Some(a) => {
                sqlx::query(&format!(
                "SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE agency = $1 ORDER BY client_id"
            ))
                .bind(a)
                .fetch_all(self.db.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {CLIENT_COLUMNS} FROM oidc_clients ORDER BY client_id"
                ))
                .fetch_all(self.db.pool())
                .await?
            }
        };
        rows.iter().map(client_from_row).collect()
    }

    /// Authenticates a client at `endpoint` (its URL, accepted as an assertion audience).
    pub async fn authenticate_client(
        &self,
        auth: &ClientAuth,
        endpoint: &str,
    ) -> Result<Client, OAuthError> {
        let fail = || OAuthError::invalid_client("client authentication failed");
        match auth {
            ClientAuth::None => Err(OAuthError::invalid_client(
                "client authentication is required (client_secret_basic or private_key_jwt)",
            )),
            ClientAuth::Basic { client_id, secret } => {
                let client = self.client(client_id).await?.ok_or_else(fail)?;
                let (Some(stored), AUTH_BASIC) = (
                    &client.secret_hash,
                    client.token_endpoint_auth_method.as_str(),
                ) else {
                    return Err(fail());
                };
                let presented = sha256_hex(secret);
                if bool::from(subtle::ConstantTimeEq::ct_eq(
                    presented.as_bytes(),
                    stored.as_bytes(),
                )) {
                    Ok(client)
                } else {
                    Err(fail())
                }
            }
            ClientAuth::Assertion {
                client_id,
                assertion,
            } => {
                let jwt = Unverified::parse(assertion).ok_or_else(fail)?;
                let iss = jwt
                    .claims
                    .get("iss")
                    .and_then(Value::as_str)
                    .ok_or_else(fail)?;
                let sub = jwt
                    .claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .ok_or_else(fail)?;
                if iss != sub || client_id.as_deref().is_some_and(|c| c != iss) {
                    return Err(fail());
                }
                let client = self.client(iss).await?.ok_or_else(fail)?;
                if client.token_endpoint_auth_method != AUTH_PRIVATE_KEY_JWT {
                    return Err(fail());
                }
                let jwks = client.jwks.clone().ok_or_else(fail)?;
                let token_endpoint = format!("{}/oidc/token", self.issuer);
                check_client_assertion(
                    &self.db,
                    &jwt,
                    &client.client_id,
                    &jwks,
                    &[&self.issuer, &token_endpoint, endpoint],
                )
                .await?;
                Ok(client)
            }
        }
    }
}

/// Checks a client assertion (RFC 7523) whose `iss`/`sub` the caller has matched to
/// `client_id`: an audience among `audiences`, a short lifetime, a signature by one of `jwks`,
/// and a `jti` never seen before for this client (single use, §3 item 7). The exchange's
/// subsystems authenticate the same way.
pub async fn check_client_assertion(
    db: &saphan_store::Db,
    jwt: &Unverified,
    client_id: &str,
    jwks: &Value,
    audiences: &[&str],
) -> Result<(), OAuthError> {
    let fail = || OAuthError::invalid_client("client authentication failed");
    let presented: Vec<&str> = match jwt.claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !presented.iter().any(|a| audiences.contains(a)) {
        return Err(OAuthError::invalid_client(
            "the assertion's aud must be the issuer or the endpoint",
        ));
    }
    let now = now_unix();
    let exp = jwt
        .claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(fail)?;
    if exp <= now - 30 || exp > now + 3600 {
        return Err(OAuthError::invalid_client(
            "the assertion has expired or lives too long",
        ));
    }
    let jti = jwt
        .claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 200);
    let Some(jti) = jti else {
        return Err(OAuthError::invalid_client("the assertion needs a jti"));
    };
    if !jwt.verify_jwks(jwks) {
        return Err(fail());
    }
    sqlx::query("DELETE FROM oidc_assertions WHERE expires_at < $1")
        .bind(now - 60)
        .execute(db.pool())
        .await?;
    let fresh = sqlx::query(
        "INSERT INTO oidc_assertions (jti_key, expires_at) VALUES ($1, $2) ON CONFLICT (jti_key) DO NOTHING",
    )
    .bind(sha256_hex(&format!("{client_id}\0{jti}")))
    .bind(exp)
    .execute(db.pool())
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Err(OAuthError::invalid_client(
            "this assertion was already used",
        ));
    }
    Ok(())
}

/// How long a client read from the database is trusted.
pub const CLIENT_CACHE_SECS: u64 = 5;
const CLIENT_CACHE_MAX: usize = 10_000;

/// Recently read clients. Only clients that exist are kept, so unknown ids cannot fill it.
#[derive(Default)]
pub(crate) struct ClientCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Client)>>,
}

impl ClientCache {
    fn get(&self, client_id: &str) -> Option<Client> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(client_id)
            .filter(|(at, _)| at.elapsed().as_secs() < CLIENT_CACHE_SECS)
            .map(|(_, c)| c.clone())
    }

    fn put(&self, client: Client) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CLIENT_CACHE_MAX {
            entries.clear();
        }
        entries.insert(
            client.client_id.clone(),
            (std::time::Instant::now(), client),
        );
    }

    fn forget(&self, client_id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(client_id);
    }
}
