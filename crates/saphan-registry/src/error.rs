use saphan_core::{Problem, ProblemKind, Text};

/// What went wrong in a registry operation; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request or record is not valid (400); the message names the field.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The caller's right does not release this field or operation (403).
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    Duplicate(String),
    #[error("registry database error: {0}")]
    Store(#[from] saphan_store::StoreError),
    #[error("audit log: {0}")]
    Audit(#[from] saphan_audit::AuditError),
    #[error("identity: {0}")]
    Identity(#[from] saphan_identity::IdentityError),
    #[error("exchange: {0}")]
    Exchange(#[from] saphan_exchange::ExchangeError),
}

impl From<saphan_store::sqlx::Error> for RegistryError {
    fn from(e: saphan_store::sqlx::Error) -> Self {
        RegistryError::Store(e.into())
    }
}

impl RegistryError {
    pub(crate) fn invalid(message: impl Into<String>) -> RegistryError {
        RegistryError::Invalid(message.into())
    }

    pub fn problem(&self) -> Problem {
        let detail = |m: &str| Text::owned(m.to_string(), m.to_string());
        match self {
            RegistryError::Invalid(m) => Problem::new(
                ProblemKind::BadRequest,
                "registry-invalid",
                Text::new("ข้อมูลไม่ถูกต้อง", "The request is not valid"),
            )
            .with_detail(detail(m)),
            RegistryError::Forbidden(m) => Problem::new(
                ProblemKind::Forbidden,
                "registry-forbidden",
                Text::new(
                    "สิทธิ์ของท่านไม่ครอบคลุมข้อมูลนี้",
                    "Your right does not cover this data",
                ),
            )
            .with_detail(detail(m)),
            RegistryError::NotFound(m) => Problem::new(
                ProblemKind::NotFound,
                "registry-not-found",
                Text::new("ไม่พบข้อมูล", "Not found"),
            )
            .with_detail(detail(m)),
            RegistryError::Duplicate(m) => Problem::new(
                ProblemKind::Conflict,
                "registry-duplicate",
                Text::new("มีข้อมูลนี้อยู่แล้ว", "This record already exists"),
            )
            .with_detail(detail(m)),
            RegistryError::Exchange(e) => e.problem(),
            RegistryError::Store(_) | RegistryError::Audit(_) | RegistryError::Identity(_) => {
                Problem::new(
                    ProblemKind::Unavailable,
                    "registry-unavailable",
                    Text::new(
                        "ระบบทะเบียนขัดข้องชั่วคราว",
                        "The registry is temporarily unavailable",
                    ),
                )
            }
        }
    }
}
