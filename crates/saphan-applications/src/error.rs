use saphan_core::{Problem, ProblemKind, Text};
use saphan_procedures::{FieldError, ProcedureError};

/// What went wrong with an application; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApplicationError {
    /// Answers that do not satisfy the form (400): every field's problem at once.
    #[error("the answers are not valid ({} fields)", .0.len())]
    Answers(Vec<FieldError>),
    /// The request is not valid (400).
    #[error("invalid: {}", .0.en)]
    Invalid(Text),
    /// Not the applicant's, or not the official's agency and role (403).
    #[error("not allowed: {}", .0.en)]
    Forbidden(Text),
    #[error("not found: {}", .0.en)]
    NotFound(Text),
    /// Not possible in the application's or task's present state (409).
    #[error("conflict: {}", .0.en)]
    Conflict(Text),
    /// A registry read through the exchange failed (502): the applicant may retry or type.
    #[error("registry read: {}", .0.en)]
    Registry(Text),
    /// Outside the procedure's filing window (409), with the rule stated.
    #[error("outside the filing window: {}", .0.en)]
    Window(Text),
    #[error("identity directory: {0}")]
    Identity(#[from] saphan_identity::IdentityError),
    #[error("catalogue: {0}")]
    Procedure(#[from] ProcedureError),
    #[error("applications database error: {0}")]
    Store(#[from] saphan_store::StoreError),
    #[error("audit log: {0}")]
    Audit(#[from] saphan_audit::AuditError),
    /// A stored application no longer reads (500; logged).
    #[error("a stored application does not read: {0}")]
    Corrupt(String),
}

impl From<saphan_store::sqlx::Error> for ApplicationError {
    fn from(e: saphan_store::sqlx::Error) -> Self {
        ApplicationError::Store(e.into())
    }
}

impl ApplicationError {
    pub(crate) fn not_found(what: &str) -> ApplicationError {
        let what: String = what.chars().take(80).collect();
        ApplicationError::NotFound(Text::owned(
            format!("ไม่พบ {what}"),
            format!("there is no {what}"),
        ))
    }

    pub(crate) fn conflict(th: impl Into<String>, en: impl Into<String>) -> ApplicationError {
        ApplicationError::Conflict(Text::owned(th, en))
    }

    pub fn problem(&self) -> Problem {
        match self {
            ApplicationError::Answers(errors) => Problem::new(
                ProblemKind::BadRequest,
                "application-answers",
                Text::new("คำตอบในแบบฟอร์มยังไม่ถูกต้อง", "Some answers need attention"),
            )
            .with_detail(Text::owned(
                errors
                    .iter()
                    .map(|e| e.message.th.as_ref())
                    .collect::<Vec<_>>()
                    .join("; "),
                errors
                    .iter()
                    .map(|e| e.message.en.as_ref())
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
            ApplicationError::Invalid(m) => Problem::new(
                ProblemKind::BadRequest,
                "application-invalid",
                Text::new("คำขอไม่ถูกต้อง", "The request is not valid"),
            )
            .with_detail(m.clone()),
            ApplicationError::Forbidden(m) => Problem::new(
                ProblemKind::Forbidden,
                "application-forbidden",
                Text::new(
                    "ไม่มีสิทธิ์ดำเนินการกับคำขอนี้",
                    "You may not act on this application",
                ),
            )
            .with_detail(m.clone()),
            ApplicationError::NotFound(m) => Problem::new(
                ProblemKind::NotFound,
                "application-not-found",
                Text::new("ไม่พบคำขอ", "No such application"),
            )
            .with_detail(m.clone()),
            ApplicationError::Conflict(m) => Problem::new(
                ProblemKind::Conflict,
                "application-conflict",
                Text::new("ทำรายการนี้ในขณะนี้ไม่ได้", "Not possible now"),
            )
            .with_detail(m.clone()),
            ApplicationError::Registry(m) => Problem::new(
                ProblemKind::Status(502),
                "application-registry-read",
                Text::new("อ่านข้อมูลจากทะเบียนไม่สำเร็จ", "The registry could not be read"),
            )
            .with_detail(m.clone()),
            ApplicationError::Window(m) => Problem::new(
                ProblemKind::Conflict,
                "application-filing-window",
                Text::new("ยังไม่อยู่ในช่วงเวลาที่ยื่นได้", "Not within the filing window"),
            )
            .with_detail(m.clone()),
            ApplicationError::Procedure(e) => e.problem(),
            ApplicationError::Corrupt(_) => Problem::for_status(500),
            ApplicationError::Store(_)
            | ApplicationError::Audit(_)
            | ApplicationError::Identity(_) => Problem::for_status(503),
        }
    }
}
