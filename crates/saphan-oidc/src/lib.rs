//! Saphan's OpenID Connect provider: the protocol side of the digital ID. It owns registered
//! clients, pending authorization requests, browser sessions at the provider, authorization
//! codes (PKCE S256 only), access and refresh tokens (rotation with reuse detection), consents,
//! pairwise subject identifiers, and the claims each scope releases.
//!
//! It is plain Rust over the database, the key store and the directory (`saphan-identity`): the
//! web layer turns HTTP into calls here and [`OAuthError`]s back into standard OAuth answers.
//! It must never store a token, code or client secret in clear (only SHA-256 hashes), never put
//! the national id in `sub`, and never release a claim under a scope the client is not
//! registered for.

pub mod client;
pub mod jose;
mod provider;
pub mod scope;
mod session;
pub mod upstream;

pub use client::{Client, ClientAuth, ClientRegistration, RegisteredClient, RegistrationError};
pub use provider::{
    single_params, AuthRequest, AuthorizeFailure, Finish, Introspection, LogoutTarget, Provider,
    TokenResponse, MAX_SEALED_REQUEST,
};
pub use session::{Session, SessionInfo};

use saphan_store::Migration;

pub const MIGRATIONS: &[Migration] = &[Migration {
    id: "oidc-0001-provider",
    sql: "CREATE TABLE oidc_clients (
        client_id TEXT PRIMARY KEY,
        agency TEXT NOT NULL,
        name_th TEXT NOT NULL,
        name_en TEXT NOT NULL,
        auth_method TEXT NOT NULL,
        secret_hash TEXT,
        jwks TEXT,
        redirect_uris TEXT NOT NULL,
        post_logout_redirect_uris TEXT NOT NULL,
        scopes TEXT NOT NULL,
        id_token_alg TEXT NOT NULL,
        min_acr TEXT,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE TABLE oidc_sessions (
        id TEXT PRIMARY KEY,
        public_id TEXT NOT NULL UNIQUE,
        identity_id TEXT NOT NULL,
        auth_time BIGINT NOT NULL,
        aal TEXT NOT NULL,
        amr TEXT NOT NULL,
        user_agent TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        ended BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX oidc_sessions_identity ON oidc_sessions (identity_id);
    CREATE TABLE oidc_codes (
        code_hash TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        identity_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        scope TEXT NOT NULL,
        nonce TEXT,
        code_challenge TEXT NOT NULL,
        acr TEXT NOT NULL,
        amr TEXT NOT NULL,
        auth_time BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE oidc_tokens (
        token_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        client_id TEXT NOT NULL,
        identity_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        family TEXT NOT NULL,
        scope TEXT NOT NULL,
        acr TEXT NOT NULL,
        amr TEXT NOT NULL,
        auth_time BIGINT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked BIGINT NOT NULL DEFAULT 0,
        rotated BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX oidc_tokens_family ON oidc_tokens (family);
    CREATE INDEX oidc_tokens_identity ON oidc_tokens (identity_id);
    CREATE INDEX oidc_tokens_session ON oidc_tokens (session_id);
    CREATE TABLE oidc_consents (
        identity_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        scopes TEXT NOT NULL,
        granted_at TEXT NOT NULL,
        PRIMARY KEY (identity_id, client_id)
    );
    CREATE TABLE oidc_upstream_states (
        state_hash TEXT PRIMARY KEY,
        upstream TEXT NOT NULL,
        browser TEXT NOT NULL,
        nonce TEXT NOT NULL,
        verifier TEXT NOT NULL,
        request TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE TABLE oidc_assertions (
        jti_key TEXT PRIMARY KEY,
        expires_at BIGINT NOT NULL
    );",
}];

/// An OAuth 2.0 / OpenID Connect error, as the protocol names it (RFC 6749 §4.1.2.1, §5.2;
/// OIDC Core §3.1.2.6; RFC 6750 §3.1). The description is for developers, in English, and never
/// names another user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            error,
            description: description.into(),
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new("unauthorized_client", d)
    }
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new("unsupported_grant_type", d)
    }
    pub fn unsupported_response_type(d: impl Into<String>) -> Self {
        Self::new("unsupported_response_type", d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new("invalid_scope", d)
    }
    pub fn access_denied(d: impl Into<String>) -> Self {
        Self::new("access_denied", d)
    }
    pub fn login_required(d: impl Into<String>) -> Self {
        Self::new("login_required", d)
    }
    pub fn consent_required(d: impl Into<String>) -> Self {
        Self::new("consent_required", d)
    }
    pub fn unmet_authentication_requirements(d: impl Into<String>) -> Self {
        Self::new("unmet_authentication_requirements", d)
    }
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new("invalid_token", d)
    }
    pub fn request_not_supported(d: impl Into<String>) -> Self {
        Self::new("request_not_supported", d)
    }
    pub fn request_uri_not_supported(d: impl Into<String>) -> Self {
        Self::new("request_uri_not_supported", d)
    }
    pub fn server(d: &str) -> Self {
        tracing::error!(error = d, "OpenID provider internal error");
        Self::new("server_error", "the provider failed; try again later")
    }

    /// The HTTP status for token-endpoint answers.
    pub fn status(&self) -> u16 {
        match self.error {
            "invalid_client" | "invalid_token" => 401,
            "server_error" => 500,
            _ => 400,
        }
    }
}

impl From<saphan_store::sqlx::Error> for OAuthError {
    fn from(e: saphan_store::sqlx::Error) -> Self {
        OAuthError::server(&format!("database: {e}"))
    }
}

impl From<saphan_identity::IdentityError> for OAuthError {
    fn from(e: saphan_identity::IdentityError) -> Self {
        OAuthError::server(&format!("directory: {e}"))
    }
}

impl From<saphan_audit::AuditError> for OAuthError {
    fn from(e: saphan_audit::AuditError) -> Self {
        OAuthError::server(&format!("audit: {e}"))
    }
}

pub(crate) use saphan_core::clock::now_unix;
pub(crate) use saphan_crypto::sha256_hex;

/// A fresh secret token: 256 bits, base64url.
pub(crate) fn random_token() -> String {
    saphan_crypto::random_token(32)
}
