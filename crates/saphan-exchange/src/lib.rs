//! Saphan's government data exchange (GDX / Linkage Center, X-Road REST compatible). It owns
//! the `xr_*` tables: members and their subsystems (X-Road identifiers), the services
//! subsystems offer (backend, OpenAPI endpoints, classification, consent and purposes, limits),
//! groups, access rights with their legal basis and the requests that lead to them, data
//! subjects' consents, the callers' credentials (certificates from the platform CA, OAuth keys,
//! GDX consumer keys) and the gateway: authenticate, check the right, the consent and the
//! limits, forward with the body streamed and hashed, and log every call in the audit log.
//!
//! It is plain Rust over the database, the key store, the audit log and the directory; the web
//! layer translates HTTP into calls here. It must never forward a call it has not authorised,
//! never follow a provider's redirect, never keep a body in clear (only encrypted, for services that ask), and never write a national
//! id into a log or the audit trail (data subjects appear as keyed pseudonyms).

pub mod assertion;
pub mod consent;
pub mod credentials;
mod error;
pub mod gateway;
pub mod id;
pub mod limits;
pub mod log;
pub mod openapi;
pub mod protocol;
pub mod registry;
pub mod upstream;

pub use error::ExchangeError;
pub use id::{ClientId, IdError, MemberId, ServiceId};
pub use openapi::Endpoint;
pub use registry::Registry;

use saphan_store::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        id: "exchange-0001-registry",
        sql: "
CREATE TABLE xr_members (
    id TEXT PRIMARY KEY,
    class TEXT NOT NULL,
    code TEXT NOT NULL,
    name_th TEXT NOT NULL,
    name_en TEXT NOT NULL,
    agency TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE xr_subsystems (
    id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL,
    code TEXT NOT NULL,
    status TEXT NOT NULL,
    jwks TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE xr_certificates (
    fingerprint TEXT PRIMARY KEY,
    serial TEXT NOT NULL,
    subsystem_id TEXT NOT NULL,
    not_after BIGINT NOT NULL,
    revoked_at TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE xr_gdx_keys (
    consumer_key TEXT PRIMARY KEY,
    subsystem_id TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE xr_gdx_tokens (
    token_hash TEXT PRIMARY KEY,
    consumer_key TEXT NOT NULL,
    subsystem_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    last_used BIGINT NOT NULL
);
CREATE TABLE xr_services (
    id TEXT PRIMARY KEY,
    subsystem_id TEXT NOT NULL,
    code TEXT NOT NULL,
    title_th TEXT NOT NULL,
    title_en TEXT NOT NULL,
    backend_url TEXT NOT NULL,
    openapi TEXT,
    classification TEXT NOT NULL,
    personal_data BIGINT NOT NULL,
    consent_required BIGINT NOT NULL,
    purposes TEXT NOT NULL,
    rate_limit_per_min BIGINT NOT NULL,
    timeout_secs BIGINT NOT NULL,
    status TEXT NOT NULL,
    log_bodies BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE xr_bodies (
    id TEXT PRIMARY KEY,
    kid TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE xr_endpoints (
    service_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (service_id, method, path)
);
CREATE TABLE xr_groups (
    code TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE xr_group_members (
    group_code TEXT NOT NULL,
    subsystem_id TEXT NOT NULL,
    PRIMARY KEY (group_code, subsystem_id)
);
CREATE TABLE xr_rights (
    id TEXT PRIMARY KEY,
    service_id TEXT NOT NULL,
    grantee TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    valid_from BIGINT NOT NULL,
    valid_until BIGINT,
    granted_by TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX xr_rights_service ON xr_rights (service_id);
CREATE TABLE xr_access_requests (
    id TEXT PRIMARY KEY,
    service_id TEXT NOT NULL,
    subsystem_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    purpose TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    right_id TEXT
);
CREATE TABLE xr_consents (
    id TEXT PRIMARY KEY,
    identity_id TEXT NOT NULL,
    subject_key TEXT NOT NULL,
    consumer TEXT NOT NULL,
    service_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    valid_until BIGINT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX xr_consents_identity ON xr_consents (identity_id);
",
    },
    // "Who accessed my data" and the operators' log search, over the gateway's records only
    // (see `saphan_audit::MIGRATIONS`: the audit log itself indexes nothing but its sequence).
    Migration {
        id: "exchange-0002-call-indexes",
        sql: "
CREATE INDEX xr_calls_by_subject ON audit_records (subject, seq) WHERE action = 'exchange.call';
CREATE INDEX xr_calls_by_actor ON audit_records (actor, seq) WHERE action = 'exchange.call';
",
    },
    // Field-level minimisation: a right may release only some fields (JSON array of names).
    Migration {
        id: "exchange-0003-right-fields",
        sql: "ALTER TABLE xr_rights ADD COLUMN fields TEXT;",
    },
];

pub(crate) use saphan_core::clock::{now_text as now_rfc3339, now_unix};
pub(crate) use saphan_crypto::{random_token, sha256_hex};
