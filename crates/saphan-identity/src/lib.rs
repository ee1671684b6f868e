//! Saphan's digital ID, the people side: identities (citizens by national id, foreigners by
//! passport and nationality), how each was proofed and its assurance level, sign-in methods
//! (argon2id passwords, TOTP, passkeys, recovery codes) with brute-force throttling, the act-for
//! relation between people and juristic persons, officials' roles per agency, and the one
//! authorization layer ([`authz::Subject::may`]) every capability asks.
//!
//! This crate is plain Rust over [`saphan_store::Db`]: no HTTP, no OpenID protocol (that is
//! `saphan-oidc`). It must never log or audit an identifier (national id, passport number) in
//! clear: records name identities by their opaque id, unknown accounts by a keyed pseudonym.

pub mod assurance;
pub mod authz;
mod directory;
mod identity;
pub mod passkey;
pub mod password;
pub mod throttle;
pub mod totp;

pub use assurance::{Aal, Assurance, Ial};
pub use authz::{Action, AgencyRole, Resource, Role, Subject};
pub use directory::{
    Agency, Directory, Methods, PasswordAttempt, PasswordOutcome, SignInError, StoredPasskey,
};
pub use identity::{ActFor, Identity, IdentityKind, LoginId, NewIdentity};
pub use passkey::{Ceremony, Passkeys};

use saphan_core::{Problem, ProblemKind, Text};
use saphan_store::Migration;

pub const MIGRATIONS: &[Migration] = &[Migration {
    id: "identity-0001-directory",
    sql: "CREATE TABLE id_identities (
        id TEXT PRIMARY KEY,
        login_key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        national_id TEXT,
        passport_number TEXT,
        nationality TEXT,
        name_th TEXT NOT NULL,
        name_en TEXT NOT NULL,
        ial TEXT NOT NULL,
        proofing TEXT NOT NULL,
        reproofing_required BIGINT NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE id_passwords (
        identity_id TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE id_totp (
        identity_id TEXT PRIMARY KEY,
        secret TEXT NOT NULL,
        confirmed BIGINT NOT NULL,
        last_step BIGINT NOT NULL
    );
    CREATE TABLE id_recovery_codes (
        identity_id TEXT NOT NULL,
        code_hash TEXT NOT NULL,
        used_at TEXT,
        PRIMARY KEY (identity_id, code_hash)
    );
    CREATE TABLE id_passkeys (
        credential_id TEXT PRIMARY KEY,
        identity_id TEXT NOT NULL,
        name TEXT NOT NULL,
        passkey TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_used_at TEXT
    );
    CREATE INDEX id_passkeys_identity ON id_passkeys (identity_id);
    CREATE TABLE id_agencies (
        code TEXT PRIMARY KEY,
        name_th TEXT NOT NULL,
        name_en TEXT NOT NULL
    );
    CREATE TABLE id_roles (
        identity_id TEXT NOT NULL,
        agency TEXT NOT NULL,
        role TEXT NOT NULL,
        granted_by TEXT NOT NULL,
        granted_at TEXT NOT NULL,
        PRIMARY KEY (identity_id, agency, role)
    );
    CREATE INDEX id_roles_agency ON id_roles (agency);
    CREATE TABLE id_act_for (
        id TEXT PRIMARY KEY,
        identity_id TEXT NOT NULL,
        juristic_id TEXT NOT NULL,
        juristic_name TEXT NOT NULL,
        capacity TEXT NOT NULL,
        source TEXT NOT NULL,
        valid_from TEXT NOT NULL,
        valid_until TEXT
    );
    CREATE INDEX id_act_for_identity ON id_act_for (identity_id);
    CREATE TABLE id_throttle (
        key TEXT PRIMARY KEY,
        failures BIGINT NOT NULL,
        window_start BIGINT NOT NULL,
        locked_until BIGINT NOT NULL
    );
    CREATE TABLE id_webauthn_states (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        identity_id TEXT,
        state TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE TABLE id_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
}];

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid national id: {0}")]
    NationalId(saphan_core::NationalIdError),
    #[error(
        "an identifier is a 13-digit national id, or a passport number of 5–20 letters and digits"
    )]
    BadIdentifier,
    #[error("a nationality is a three-letter ISO 3166 code such as GBR")]
    BadNationality,
    #[error(
        "a password needs at least {} characters (and at most {} bytes)",
        password::MIN_PASSWORD_CHARS,
        password::MAX_PASSWORD_BYTES
    )]
    WeakPassword,
    #[error("an identity with this identifier already exists")]
    Duplicate,
    #[error("no such identity")]
    NoSuchIdentity,
    #[error("no such agency `{0}`")]
    NoSuchAgency(String),
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("identity configuration: {0}")]
    Config(String),
    #[error("identity database error: {0}")]
    Store(#[from] saphan_store::StoreError),
    #[error("audit log: {0}")]
    Audit(#[from] saphan_audit::AuditError),
    #[error("identity internal error: {0}")]
    Internal(String),
}

impl From<saphan_store::sqlx::Error> for IdentityError {
    fn from(e: saphan_store::sqlx::Error) -> Self {
        IdentityError::Store(e.into())
    }
}

impl IdentityError {
    pub fn problem(&self) -> Problem {
        match self {
            IdentityError::NationalId(e) => e.problem(),
            IdentityError::BadIdentifier => Problem::new(
                ProblemKind::BadRequest,
                "invalid-identifier",
                Text::new(
                    "เลขประจำตัวไม่ถูกต้อง: ใช้เลขประจำตัวประชาชน 13 หลัก หรือเลขหนังสือเดินทาง",
                    "Invalid identifier: use a 13-digit national id or a passport number",
                ),
            ),
            IdentityError::BadNationality => Problem::new(
                ProblemKind::BadRequest,
                "invalid-nationality",
                Text::new(
                    "สัญชาติต้องเป็นรหัสสามตัวอักษร เช่น GBR",
                    "Nationality must be a three-letter code such as GBR",
                ),
            ),
            IdentityError::WeakPassword => Problem::new(
                ProblemKind::BadRequest,
                "weak-password",
                Text::new(
                    "รหัสผ่านต้องยาวอย่างน้อย 10 ตัวอักษร",
                    "A password needs at least 10 characters",
                ),
            ),
            IdentityError::Duplicate => Problem::new(
                ProblemKind::Conflict,
                "identity-exists",
                Text::new("มีผู้ใช้นี้อยู่แล้ว", "This identity already exists"),
            ),
            IdentityError::NoSuchIdentity => Problem::new(
                ProblemKind::NotFound,
                "no-such-identity",
                Text::new("ไม่พบผู้ใช้", "No such identity"),
            ),
            IdentityError::NoSuchAgency(_) => Problem::new(
                ProblemKind::NotFound,
                "no-such-agency",
                Text::new("ไม่พบหน่วยงาน", "No such agency"),
            ),
            IdentityError::Forbidden(what) => Problem::new(
                ProblemKind::Forbidden,
                "forbidden",
                Text::new("ไม่มีสิทธิ์ทำรายการนี้", "You may not do this"),
            )
            .with_detail(Text::owned(
                format!("ไม่มีสิทธิ์: {what}"),
                format!("Not allowed: {what}"),
            )),
            IdentityError::Invalid(what) => Problem::new(
                ProblemKind::BadRequest,
                "invalid-input",
                Text::new("ข้อมูลไม่ถูกต้อง", "Invalid input"),
            )
            .with_detail(Text::owned(format!("ข้อมูลไม่ถูกต้อง: {what}"), what.clone())),
            IdentityError::Store(e) => e.problem(),
            IdentityError::Audit(_) | IdentityError::Config(_) | IdentityError::Internal(_) => {
                Problem::new(
                    ProblemKind::Internal,
                    "identity-internal",
                    Text::new("ระบบยืนยันตัวตนขัดข้อง", "The digital ID failed"),
                )
            }
        }
    }
}
