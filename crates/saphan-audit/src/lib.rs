//! Saphan's provable audit log. Every exchange message, issued document, administrative change
//! and sign-in becomes an append-only record `{seq, time, actor, action, subject, payload_hash,
//! prev_hash, hash}` chained by SHA-256. Appends from many tasks are group-committed and
//! acknowledged only once durable. Periodically a checkpoint signs the Merkle root (RFC 9162
//! tree hashing) of the records since the previous checkpoint, with the chain head, using the
//! platform key and a time-stamp token. Any record's inclusion proof verifies offline, and so does
//! an exported bundle of the whole log.
//!
//! A capability may keep a small JSON *detail* with a record (the exchange's message-log
//! entries); its SHA-256 is the record's payload hash, so the chain vouches for it.
//!
//! This crate owns the `audit_*` tables. It must never store payloads other than those details
//! (only their hashes), never update or delete a record, and never acknowledge an append before
//! its transaction commits.

mod bundle;
mod checkpoint;
mod merkle;
mod proof;
mod record;
mod store;
mod verify;
mod writer;

pub use bundle::{export_bundle, verify_bundle, BundleHeader, BUNDLE_FORMAT};
pub use checkpoint::Checkpoint;
pub use merkle::{inclusion_path, merkle_root, root_from_inclusion_path};
pub use proof::{inclusion_proof, InclusionProof};
pub use record::{AuditEntry, AuditRecord, Receipt, CHECKPOINT_ACTION, GENESIS_HASH};
pub use store::{
    find_records, head, read_checkpoints, read_detail, read_records, RecordFilter, RecordWithDetail,
};
pub use verify::{verify_database, TailPolicy, Verifier, VerifyFailure, VerifyReport};
pub use writer::{AuditLog, GroupStats};

use saphan_core::{Problem, ProblemKind, Text};
use saphan_store::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        id: "audit-0001-records-checkpoints",
        sql: "
CREATE TABLE audit_records (
    seq BIGINT PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE audit_checkpoints (
    first_seq BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL UNIQUE,
    merkle_root TEXT NOT NULL,
    head_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    signature TEXT NOT NULL,
    timestamp_token TEXT NOT NULL
);
",
    },
    Migration {
        id: "audit-0002-details-indexes",
        sql: "
CREATE TABLE audit_details (
    seq BIGINT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE INDEX audit_records_actor ON audit_records (actor, seq);
CREATE INDEX audit_records_subject ON audit_records (subject, seq);
",
    },
    // Indexes over every record made every append pay for searches only some capabilities run
    // (the append rate on SQLite fell to a quarter of plain INSERTs). A capability that searches
    // the log indexes its own actions (partial indexes; `find_records` names the action as a
    // literal so that both planners can use them).
    Migration {
        id: "audit-0003-capability-indexes",
        sql: "
DROP INDEX IF EXISTS audit_records_actor;
DROP INDEX IF EXISTS audit_records_subject;
",
    },
];

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit entry rejected: {0}")]
    InvalidEntry(&'static str),
    #[error("the audit log is shut down")]
    Closed,
    #[error("audit database error: {0}")]
    Store(#[from] saphan_store::StoreError),
    #[error("audit key error: {0}")]
    Crypto(#[from] saphan_crypto::CryptoError),
    #[error("cannot read or write the audit bundle {path}: {message}")]
    Bundle { path: String, message: String },
    #[error("no record with sequence number {0}")]
    NoSuchRecord(u64),
    #[error("record {0} is not covered by a checkpoint yet; try again after the next checkpoint")]
    NotCheckpointed(u64),
}

impl From<saphan_store::sqlx::Error> for AuditError {
    fn from(e: saphan_store::sqlx::Error) -> Self {
        AuditError::Store(e.into())
    }
}

impl From<saphan_store::rusqlite::Error> for AuditError {
    fn from(e: saphan_store::rusqlite::Error) -> Self {
        AuditError::Store(e.into())
    }
}

impl AuditError {
    pub fn problem(&self) -> Problem {
        match self {
            AuditError::InvalidEntry(_) => Problem::new(
                ProblemKind::BadRequest,
                "audit-entry-invalid",
                Text::new("รายการบันทึกตรวจสอบไม่ถูกต้อง", "The audit entry is not valid"),
            ),
            AuditError::NoSuchRecord(_) => Problem::new(
                ProblemKind::NotFound,
                "audit-record-not-found",
                Text::new("ไม่พบรายการบันทึกตรวจสอบนี้", "No such audit record"),
            ),
            _ => Problem::new(
                ProblemKind::Unavailable,
                "audit-unavailable",
                Text::new(
                    "ไม่สามารถบันทึกรายการตรวจสอบได้ในขณะนี้",
                    "The audit log cannot record this now",
                ),
            ),
        }
    }
}
