//! Saphan's registry engine: any agency hosts an authoritative register here. A registry is
//! `{name}/{version}` with a JSON Schema; its records are validated against it, fields are
//! marked personal, sensitive or indexed, and every change keeps who, when and why (the
//! `rg_*` tables). Reads answer only the fields the caller's exchange right releases
//! ([`Caller`], from the gateway's signed assertion), and each read of a person's record is an
//! audit record about that person (a pseudonym), so they can see who used their data.
//!
//! The engine is plain Rust over the database and the audit log; `saphan-web` serves it with
//! the GovStack Digital Registries Data and Database APIs as the backend of exchange services.
//! It must never answer a caller that did not come through the exchange, return a field the
//! caller's right does not name, or write a record id or field value into the audit log in
//! clear (pseudonyms and hashes only).

mod caller;
mod definition;
mod error;
mod records;
pub mod service;

pub use caller::Caller;
pub use definition::{Definition, NewDefinition};
pub use error::RegistryError;
pub use records::{HistoryEntry, ListQuery, Page, Registries, Usage, WriteOutcome, READ_ACTION};

use saphan_store::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        id: "registry-0001-engine",
        sql: "
CREATE TABLE rg_registries (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    provider TEXT NOT NULL,
    service_code TEXT NOT NULL,
    definition TEXT NOT NULL,
    status TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    modified_by TEXT NOT NULL
);
CREATE UNIQUE INDEX rg_registries_name ON rg_registries (name, version);
CREATE TABLE rg_records (
    registry_id BIGINT NOT NULL,
    record_id TEXT{bytewise} NOT NULL,
    content TEXT NOT NULL,
    revision BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (registry_id, record_id)
);
CREATE TABLE rg_index (
    registry_id BIGINT NOT NULL,
    field TEXT NOT NULL,
    value TEXT{bytewise} NOT NULL,
    record_id TEXT{bytewise} NOT NULL,
    PRIMARY KEY (registry_id, field, value, record_id)
);
CREATE INDEX rg_index_record ON rg_index (registry_id, record_id);
CREATE TABLE rg_history (
    registry_id BIGINT NOT NULL,
    record_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    operation TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    user_id TEXT,
    reason TEXT,
    content TEXT,
    PRIMARY KEY (registry_id, record_id, revision)
);
CREATE INDEX xr_registry_reads_by_subject ON audit_records (subject, seq) WHERE action = 'registry.read';
",
    },
];
