//! Saphan's procedure catalogue: every procedure (กระบวนงาน) with what its citizen's manual
//! holds under the Licensing Facilitation Act (owning agency and unit, legal basis, criteria,
//! steps with days, time limit, required data and where each comes from, fees, channels),
//! bundles that gather several agencies' procedures into one application (Biz Portal's "open a
//! restaurant"), each version's e-form (JSON Schema + UI schema, validated on the server with
//! messages in Thai and English) and workflow, and a readiness score for digital service.
//!
//! The catalogue is plain Rust over the `pr_*` tables; `saphan-web` serves it as the portal's
//! pages and the GovStack Registration `/services` and `/eForms` APIs. It must never change a
//! published version (an application keeps the version it was made under), let an editor
//! publish for an agency they hold no `procedure-editor` role in, or ask an applicant to upload
//! what a registry holds.

mod catalogue;
pub mod demo;
pub mod document;
mod error;
pub mod form;
pub mod readiness;

pub use catalogue::{Catalogue, Entry, Filter, Snapshot, Sort};
pub use document::{
    Audience, BundleDoc, Document, FilingWindow, Lookup, LookupFrom, ProcedureDoc, Requirement,
    Source,
};
pub use error::ProcedureError;
pub use form::{FieldError, Form};

use saphan_store::Migration;

/// The largest upload any procedure may accept.
pub const MAX_UPLOAD_BYTES: u64 = 20 * 1024 * 1024;

pub const MIGRATIONS: &[Migration] = &[Migration {
    id: "procedures-0001-catalogue",
    sql: "
CREATE TABLE pr_entries (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    kind TEXT NOT NULL,
    agency TEXT NOT NULL,
    version BIGINT NOT NULL,
    status TEXT NOT NULL,
    modified_at TEXT NOT NULL
);
CREATE UNIQUE INDEX pr_entries_code ON pr_entries (code);
CREATE TABLE pr_versions (
    entry_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    eform_id TEXT NOT NULL,
    document TEXT NOT NULL,
    published_at TEXT NOT NULL,
    published_by TEXT NOT NULL,
    PRIMARY KEY (entry_id, version)
);
CREATE UNIQUE INDEX pr_versions_eform ON pr_versions (eform_id);
CREATE TABLE pr_bundle_members (
    bundle_id TEXT NOT NULL,
    procedure_code TEXT NOT NULL,
    PRIMARY KEY (bundle_id, procedure_code)
);
CREATE INDEX pr_bundle_members_procedure ON pr_bundle_members (procedure_code);
",
}];
