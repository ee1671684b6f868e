use saphan_core::{Problem, ProblemKind, Text};

/// What went wrong in the catalogue; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ProcedureError {
    /// The document is not valid (400); `field` says where.
    #[error("{field}: {}", message.en)]
    Invalid { field: String, message: Text },
    /// The subject may not edit this agency's procedures (403).
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// Someone else published meanwhile, or the change conflicts with other entries (409).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("catalogue database error: {0}")]
    Store(#[from] saphan_store::StoreError),
    #[error("audit log: {0}")]
    Audit(#[from] saphan_audit::AuditError),
    #[error("identity: {0}")]
    Identity(#[from] saphan_identity::IdentityError),
}

impl From<saphan_store::sqlx::Error> for ProcedureError {
    fn from(e: saphan_store::sqlx::Error) -> Self {
        ProcedureError::Store(e.into())
    }
}

impl ProcedureError {
    pub fn problem(&self) -> Problem {
        let plain = |m: &str| Text::owned(m.to_string(), m.to_string());
        match self {
            ProcedureError::Invalid { field, message } => Problem::new(
                ProblemKind::BadRequest,
                "procedure-invalid",
                Text::new("ข้อมูลกระบวนงานไม่ถูกต้อง", "The procedure is not valid"),
            )
            .with_detail(Text::owned(
                format!("{field}: {}", message.th),
                format!("{field}: {}", message.en),
            )),
            ProcedureError::Forbidden(m) => Problem::new(
                ProblemKind::Forbidden,
                "procedure-forbidden",
                Text::new(
                    "ไม่มีสิทธิ์แก้ไขกระบวนงานของหน่วยงานนี้",
                    "You may not edit this agency's procedures",
                ),
            )
            .with_detail(plain(m)),
            ProcedureError::NotFound(m) => Problem::new(
                ProblemKind::NotFound,
                "procedure-not-found",
                Text::new("ไม่พบกระบวนงาน", "No such procedure"),
            )
            .with_detail(plain(m)),
            ProcedureError::Conflict(m) => Problem::new(
                ProblemKind::Conflict,
                "procedure-conflict",
                Text::new("กระบวนงานถูกแก้ไขพร้อมกัน", "The procedure changed meanwhile"),
            )
            .with_detail(plain(m)),
            ProcedureError::Store(_) | ProcedureError::Audit(_) | ProcedureError::Identity(_) => {
                Problem::for_status(503)
            }
        }
    }
}
