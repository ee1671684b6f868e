//! What an application, a task and a timeline event are.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use saphan_core::Text;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where an application stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Being filled in by the applicant; no official sees it.
    Draft,
    /// With the officials.
    Submitted,
    /// Waiting for the applicant to supply what the officials listed as missing.
    SentBack,
    Approved,
    Rejected,
    /// A bundle whose procedures were decided differently.
    PartlyApproved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Submitted => "submitted",
            Status::SentBack => "sent-back",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::PartlyApproved => "partly-approved",
        }
    }

    pub fn title(self) -> Text {
        match self {
            Status::Draft => Text::new("ร่าง", "Draft"),
            Status::Submitted => Text::new("อยู่ระหว่างพิจารณา", "Being considered"),
            Status::SentBack => Text::new("รอเอกสารหรือข้อมูลเพิ่มเติม", "Waiting for you"),
            Status::Approved => Text::new("อนุมัติ", "Approved"),
            Status::Rejected => Text::new("ไม่อนุมัติ", "Refused"),
            Status::PartlyApproved => Text::new("อนุมัติบางรายการ", "Partly approved"),
        }
    }

    pub fn ended(self) -> bool {
        matches!(
            self,
            Status::Approved | Status::Rejected | Status::PartlyApproved
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Status, String> {
        [
            Status::Draft,
            Status::Submitted,
            Status::SentBack,
            Status::Approved,
            Status::Rejected,
            Status::PartlyApproved,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| format!("unknown application status {s}"))
    }
}

/// A value read from a registry for the application: shown to the officer as verified, with
/// where and when it came from; the applicant cannot change it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    pub value: Value,
    /// The exchange service it was read from, `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`.
    pub source: String,
    /// The exchange's message id of the read (`X-Road-Id`), to find it in the message log.
    pub message_id: String,
    pub at: String,
}

/// An application: one applicant's file for one version of a procedure or bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Application {
    /// GovStack's `fileId`.
    pub id: String,
    /// What people quote on the phone or at a counter.
    pub tracking: String,
    /// The catalogue entry (GovStack's `serviceId`) and the version applied under.
    pub entry_id: String,
    pub version: i64,
    pub code: String,
    /// The applicant's identity id.
    pub applicant: String,
    pub status: Status,
    /// What the applicant typed, by field.
    pub answers: Map<String, Value>,
    /// What came from registries, by field.
    pub verified: BTreeMap<String, Verified>,
    /// What the officials asked for, when sent back (all at once).
    pub missing: Vec<Text>,
    /// Each procedure's decision, by code (`approved` / `rejected`), once decided.
    pub decisions: BTreeMap<String, String>,
    /// For a bundle: its procedures at the versions current when the application started.
    pub members: Vec<Member>,
    /// The juristic person applied for (13 digits) and its name, when the applicant acts
    /// for a business.
    pub on_behalf_of: Option<String>,
    pub on_behalf_of_name: Option<String>,
    pub created_at: String,
    pub submitted_at: Option<String>,
    pub decided_at: Option<String>,
    pub updated_at: String,
}

impl Application {
    /// The answers with the verified values in place: what the form is validated against.
    pub fn merged(&self) -> Map<String, Value> {
        let mut all = self.answers.clone();
        for (field, v) in &self.verified {
            all.insert(field.clone(), v.value.clone());
        }
        all
    }
}

/// A bundle's procedure, pinned at a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The catalogue entry.
    pub id: String,
    pub version: i64,
}

/// What an official's task is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    Open,
    /// While the application waits for the applicant.
    Paused,
    Done,
    /// Its procedure was refused by another task.
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Paused => "paused",
            TaskStatus::Done => "done",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

impl FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<TaskStatus, String> {
        [
            TaskStatus::Open,
            TaskStatus::Paused,
            TaskStatus::Done,
            TaskStatus::Cancelled,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| format!("unknown task status {s}"))
    }
}

/// One official's task on one application.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub id: String,
    pub application_id: String,
    pub procedure_code: String,
    pub stage: i64,
    pub key: String,
    pub title: Text,
    pub agency: String,
    /// `reviewer` or `approver`.
    pub role: String,
    pub status: TaskStatus,
    /// `approved`, `rejected` or `sent-back`, once done.
    pub outcome: Option<String>,
    pub reason: Option<Text>,
    pub assignee: Option<String>,
    pub opened_at: String,
    /// When the task's SLA runs out.
    pub due_at: String,
    pub completed_at: Option<String>,
}

/// What an official decides on a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Checked and in order (a reviewer), or granted (an approver).
    Approve {
        #[serde(default)]
        note: Option<String>,
    },
    /// Refused, with the reason the applicant will read.
    Reject { reason: String },
    /// Incomplete: everything missing, listed at once. An application is sent back once.
    RequestMissing { items: Vec<String> },
}

/// One line of an application's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub kind: String,
    /// What the applicant reads.
    pub text: Text,
}
