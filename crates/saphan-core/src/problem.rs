//! Problems: what went wrong, described once for every edge (HTTP problem+json, CLI error lines).
//!
//! Capability crates define their own error types and describe each as a [`Problem`]; the web
//! layer renders it as RFC 9457 `application/problem+json`, the CLI as one line. The `slug` is a
//! stable identifier: clients may rely on it, so a slug is never reused for another meaning.

use crate::text::Text;

/// The broad class of a problem, which decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Internal,
    Unavailable,
    Timeout,
    /// Any other status, kept exactly (RFC 9457 §3.1.3: `status` matches the response).
    Status(u16),
}

impl ProblemKind {
    pub fn status(self) -> u16 {
        match self {
            ProblemKind::BadRequest => 400,
            ProblemKind::Unauthorized => 401,
            ProblemKind::Forbidden => 403,
            ProblemKind::NotFound => 404,
            ProblemKind::MethodNotAllowed => 405,
            ProblemKind::Conflict => 409,
            ProblemKind::PayloadTooLarge => 413,
            ProblemKind::UnsupportedMediaType => 415,
            ProblemKind::TooManyRequests => 429,
            ProblemKind::Internal => 500,
            ProblemKind::Unavailable => 503,
            ProblemKind::Timeout => 504,
            ProblemKind::Status(status) => status,
        }
    }
}

/// A problem as clients see it. `detail` must never carry secrets or another person's data.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// Stable, kebab-case; becomes the `type` URI `/problems/{slug}`.
    pub slug: &'static str,
    pub title: Text,
    pub detail: Option<Text>,
}

impl Problem {
    pub fn new(kind: ProblemKind, slug: &'static str, title: Text) -> Problem {
        Problem {
            kind,
            slug,
            title,
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: Text) -> Problem {
        self.detail = Some(detail);
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The problem that stands for an HTTP error status when nothing more specific is known; its
    /// status is always `status`.
    #[allow(clippy::match_overlapping_arm)] // specific statuses first, then their class
    pub fn for_status(status: u16) -> Problem {
        let (kind, slug, title) = match status {
            400 => (
                ProblemKind::BadRequest,
                "bad-request",
                Text::new("คำขอไม่ถูกต้อง", "The request is not valid"),
            ),
            401 => (
                ProblemKind::Unauthorized,
                "unauthorized",
                Text::new("ต้องยืนยันตัวตนก่อน", "Authentication is required"),
            ),
            403 => (
                ProblemKind::Forbidden,
                "forbidden",
                Text::new("ไม่มีสิทธิ์ดำเนินการนี้", "You are not allowed to do this"),
            ),
            404 => (
                ProblemKind::NotFound,
                "not-found",
                Text::new("ไม่พบสิ่งที่ขอ", "Nothing was found at this address"),
            ),
            405 => (
                ProblemKind::MethodNotAllowed,
                "method-not-allowed",
                Text::new(
                    "ที่อยู่นี้ไม่รองรับวิธีเรียกนี้",
                    "This address does not accept this method",
                ),
            ),
            409 => (
                ProblemKind::Conflict,
                "conflict",
                Text::new("ขัดแย้งกับข้อมูลที่มีอยู่", "This conflicts with existing data"),
            ),
            413 => (
                ProblemKind::PayloadTooLarge,
                "payload-too-large",
                Text::new("ข้อมูลที่ส่งมีขนาดใหญ่เกินกำหนด", "The request body is too large"),
            ),
            415 => (
                ProblemKind::UnsupportedMediaType,
                "unsupported-media-type",
                Text::new("ไม่รองรับชนิดข้อมูลที่ส่งมา", "This content type is not accepted"),
            ),
            422 => (
                ProblemKind::Status(422),
                "invalid-body",
                Text::new("ข้อมูลที่ส่งมาไม่ถูกต้อง", "The request body is not valid"),
            ),
            429 => (
                ProblemKind::TooManyRequests,
                "too-many-requests",
                Text::new(
                    "มีคำขอมากเกินไป โปรดลองใหม่ภายหลัง",
                    "Too many requests; try again later",
                ),
            ),
            503 => (
                ProblemKind::Unavailable,
                "unavailable",
                Text::new("ระบบยังไม่พร้อมให้บริการ", "The service is not available now"),
            ),
            504 => (
                ProblemKind::Timeout,
                "timeout",
                Text::new("ใช้เวลานานเกินกำหนด", "The request took too long"),
            ),
            408 => (
                ProblemKind::Status(408),
                "request-timeout",
                Text::new("ส่งคำขอช้าเกินกำหนด", "The request was not received in time"),
            ),
            400..=499 => (
                ProblemKind::Status(status),
                "client-error",
                Text::new(
                    "ไม่สามารถดำเนินการตามคำขอนี้ได้",
                    "This request cannot be handled",
                ),
            ),
            500 => (
                ProblemKind::Internal,
                "internal",
                Text::new(
                    "ระบบขัดข้อง โปรดลองใหม่ภายหลัง",
                    "Something went wrong on our side",
                ),
            ),
            _ => (
                ProblemKind::Status(status),
                "internal",
                Text::new(
                    "ระบบขัดข้อง โปรดลองใหม่ภายหลัง",
                    "Something went wrong on our side",
                ),
            ),
        };
        Problem::new(kind, slug, title)
    }
}

#[cfg(test)]
mod tests {
    use super::Problem;

    #[test]
    fn generic_problems_keep_the_status_they_stand_for() {
        for status in (400..=431).chain([451, 500, 501, 502, 503, 504, 507]) {
            assert_eq!(Problem::for_status(status).status(), status);
        }
    }
}
