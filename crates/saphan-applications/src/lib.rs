//! Saphan's applications and their workflow: an applicant's file for one version of a
//! procedure or bundle (a tracking number, answers, values read verified from registries), its
//! submission with every answer validated against the forms, and the data-driven workflow of
//! the procedure version: stages in sequence, tasks in parallel for officials of several
//! agencies by role, each with its SLA; the Licensing Facilitation Act's rule that what is
//! missing is listed at once and asked for only once; decisions with reasons; the timeline the
//! applicant follows.
//!
//! Plain Rust over the `ap_*` tables; `saphan-web` serves it as the GovStack Registration
//! application and task endpoints and the portal's pages. It must never show an application to
//! anyone but its applicant and the officials of the agencies its workflow names, let an
//! applicant change a value that came verified from a registry, or let an official decide a
//! task without the task's role in the task's agency.

mod applications;
pub mod documents;
mod error;
pub mod followups;
pub mod model;
pub mod notices;
pub mod prefill;
pub mod statistics;
pub mod window;

pub use applications::Applications;
pub use error::ApplicationError;
pub use model::{Application, Decision, Event, Member, Status, Task, TaskStatus, Verified};

use saphan_store::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        id: "applications-0001-workflow",
        sql: "
CREATE TABLE ap_applications (
    id TEXT PRIMARY KEY,
    tracking TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    code TEXT NOT NULL,
    applicant TEXT NOT NULL,
    status TEXT NOT NULL,
    answers TEXT NOT NULL,
    verified TEXT NOT NULL,
    missing TEXT,
    decisions TEXT NOT NULL,
    members TEXT NOT NULL,
    sendbacks BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    submitted_at TEXT,
    decided_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX ap_applications_tracking ON ap_applications (tracking);
CREATE INDEX ap_applications_applicant ON ap_applications (applicant, created_at);
CREATE TABLE ap_tasks (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    procedure_code TEXT NOT NULL,
    stage BIGINT NOT NULL,
    task_key TEXT NOT NULL,
    title TEXT NOT NULL,
    agency TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT,
    reason TEXT,
    assignee TEXT,
    opened_at TEXT NOT NULL,
    due_at TEXT NOT NULL,
    completed_at TEXT
);
CREATE INDEX ap_tasks_inbox ON ap_tasks (agency, status, due_at);
CREATE INDEX ap_tasks_application ON ap_tasks (application_id);
CREATE TABLE ap_events (
    application_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (application_id, seq)
);
",
    },
    Migration {
        id: "applications-0002-business-notices-documents-followups",
        sql: "
ALTER TABLE ap_applications ADD COLUMN on_behalf_of TEXT;
ALTER TABLE ap_applications ADD COLUMN on_behalf_of_name TEXT;
ALTER TABLE ap_applications ADD COLUMN last_notice_at TEXT;
CREATE TABLE ap_notices (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    application_id TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    read_at TEXT,
    mail_state TEXT NOT NULL,
    mail_to TEXT
);
CREATE INDEX ap_notices_recipient ON ap_notices (recipient, at);
CREATE INDEX ap_notices_mail ON ap_notices (mail_state);
ALTER TABLE ap_tasks ADD COLUMN overdue_at TEXT;
CREATE TABLE ap_documents (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX ap_documents_owner ON ap_documents (owner, created_at);
CREATE TABLE ap_followups (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    procedure_code TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    amount_satang BIGINT,
    created_at TEXT NOT NULL,
    done_at TEXT
);
CREATE INDEX ap_followups_queue ON ap_followups (kind, state, created_at);
CREATE INDEX ap_followups_application ON ap_followups (application_id);
",
    },
];
