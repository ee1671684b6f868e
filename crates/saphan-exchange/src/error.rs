use saphan_core::{Problem, ProblemKind, Text};

/// What went wrong in an administrative or consent operation. The gateway's own refusals are
/// [`crate::protocol::GatewayError`]s, which speak X-Road.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Invalid input, explained in both languages (forms show it as it is).
    #[error("invalid input: {}", .0.en)]
    InvalidText(Text),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    Duplicate(String),
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("exchange database error: {0}")]
    Store(#[from] saphan_store::StoreError),
    #[error("audit log: {0}")]
    Audit(#[from] saphan_audit::AuditError),
    #[error("keys: {0}")]
    Crypto(#[from] saphan_crypto::CryptoError),
    #[error("identity: {0}")]
    Identity(#[from] saphan_identity::IdentityError),
}

impl From<saphan_store::sqlx::Error> for ExchangeError {
    fn from(e: saphan_store::sqlx::Error) -> Self {
        ExchangeError::Store(e.into())
    }
}

impl From<crate::IdError> for ExchangeError {
    fn from(e: crate::IdError) -> Self {
        ExchangeError::Invalid(e.to_string())
    }
}

impl ExchangeError {
    pub(crate) fn invalid(message: impl Into<String>) -> ExchangeError {
        ExchangeError::Invalid(message.into())
    }

    /// The problem an API answers with. Detail is the English message (it names the field).
    pub fn problem(&self) -> Problem {
        let detail = |m: &str| Text::owned(m.to_string(), m.to_string());
        match self {
            ExchangeError::Invalid(m) => Problem::new(
                ProblemKind::BadRequest,
                "exchange-invalid",
                Text::new("ข้อมูลไม่ถูกต้อง", "The request is not valid"),
            )
            .with_detail(detail(m)),
            ExchangeError::InvalidText(text) => Problem::new(
                ProblemKind::BadRequest,
                "exchange-invalid",
                Text::new("ข้อมูลไม่ถูกต้อง", "The request is not valid"),
            )
            .with_detail(text.clone()),
            ExchangeError::NotFound(m) => Problem::new(
                ProblemKind::NotFound,
                "exchange-not-found",
                Text::new("ไม่พบรายการที่ระบุ", "Not found"),
            )
            .with_detail(detail(m)),
            ExchangeError::Duplicate(m) => Problem::new(
                ProblemKind::Conflict,
                "exchange-duplicate",
                Text::new("มีรายการนี้อยู่แล้ว", "It already exists"),
            )
            .with_detail(detail(m)),
            ExchangeError::Conflict(m) => Problem::new(
                ProblemKind::Conflict,
                "exchange-conflict",
                Text::new(
                    "สถานะไม่อนุญาตให้ทำรายการนี้",
                    "This cannot be done in the current state",
                ),
            )
            .with_detail(detail(m)),
            ExchangeError::Forbidden(m) => Problem::new(
                ProblemKind::Forbidden,
                "exchange-forbidden",
                Text::new("ไม่มีสิทธิ์ทำรายการนี้", "You may not do this"),
            )
            .with_detail(detail(m)),
            ExchangeError::Identity(e) => e.problem(),
            _ => Problem::new(
                ProblemKind::Unavailable,
                "exchange-unavailable",
                Text::new(
                    "ระบบแลกเปลี่ยนข้อมูลไม่พร้อมให้บริการชั่วคราว",
                    "The data exchange is temporarily unavailable",
                ),
            ),
        }
    }
}
