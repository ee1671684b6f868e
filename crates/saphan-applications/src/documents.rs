//! Uploads: documents no registry holds (a floor plan), kept for the applicant who uploaded
//! them. The type is read from the content, never from the name or the declared type; an
//! application refers to a document by id, and submission checks that the document is the
//! applicant's and fits its requirement's types and size.

use saphan_core::clock::now_text;
use saphan_core::Text;
use saphan_procedures::{ProcedureDoc, Source};
use saphan_store::sqlx::{self, Row};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{ApplicationError, Applications};

/// A kept document's description (its bytes are read separately).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    pub id: String,
    pub owner: String,
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    pub name: String,
    pub created_at: String,
}

/// The media type of `bytes` by their signature: PDF, JPEG or PNG, the types procedures take.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else {
        None
    }
}

fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let kept: String = base
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        })
        .take(100)
        .collect();
    if kept.trim().is_empty() {
        "document".into()
    } else {
        kept
    }
}

impl Applications {
    /// Keeps an upload for `owner`, refusing what is empty, too large or not a PDF, JPEG or PNG
    /// by its content.
    pub async fn upload(
        &self,
        owner: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<Document, ApplicationError> {
        if bytes.is_empty() || bytes.len() as u64 > saphan_procedures::MAX_UPLOAD_BYTES {
            return Err(ApplicationError::Invalid(Text::owned(
                format!(
                    "ไฟล์ต้องมีขนาด 1 ไบต์ถึง {} MB",
                    saphan_procedures::MAX_UPLOAD_BYTES / 1024 / 1024
                ),
                format!(
                    "a file is 1 byte to {} MB",
                    saphan_procedures::MAX_UPLOAD_BYTES / 1024 / 1024
                ),
            )));
        }
        let media_type = sniff(bytes).ok_or_else(|| {
            ApplicationError::Invalid(Text::new(
                "รับเฉพาะไฟล์ PDF, JPEG หรือ PNG (ตรวจจากเนื้อไฟล์)",
                "only PDF, JPEG or PNG files are accepted (judged by their content)",
            ))
        })?;
        let doc = Document {
            id: uuid::Uuid::new_v4().to_string(),
            owner: owner.to_string(),
            media_type: media_type.to_string(),
            size: bytes.len() as i64,
            sha256: hex::encode(Sha256::digest(bytes)),
            name: clean_name(name),
            created_at: now_text(),
        };
        sqlx::query(
            "INSERT INTO ap_documents (id, owner, media_type, size, sha256, name, content, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&doc.id)
        .bind(&doc.owner)
        .bind(&doc.media_type)
        .bind(doc.size)
        .bind(&doc.sha256)
        .bind(&doc.name)
        .bind(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            bytes,
        ))
        .bind(&doc.created_at)
        .execute(self.db.pool())
        .await?;
        Ok(doc)
    }

    /// A document's description and bytes.
    pub async fn document(&self, id: &str) -> Result<(Document, Vec<u8>), ApplicationError> {
        let row = sqlx::query(
            "SELECT id, owner, media_type, size, sha256, name, created_at, content FROM ap_documents WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| ApplicationError::not_found(id))?;
        let content: String = row.get(7);
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, content)
            .map_err(|e| ApplicationError::Corrupt(format!("document {id}: {e}")))?;
        Ok((
            Document {
                id: row.get(0),
                owner: row.get(1),
                media_type: row.get(2),
                size: row.get(3),
                sha256: row.get(4),
                name: row.get(5),
                created_at: row.get(6),
            },
            bytes,
        ))
    }

    /// Problems with the documents `answers` name for `procedure`'s upload fields: each must be
    /// the applicant's own upload, of a type and size its requirement accepts.
    pub(crate) async fn check_uploads(
        &self,
        applicant: &str,
        procedure: &ProcedureDoc,
        answers: &serde_json::Map<String, Value>,
    ) -> Result<Vec<saphan_procedures::FieldError>, ApplicationError> {
        let mut problems = Vec::new();
        for (field, requirement) in procedure.form.upload_fields() {
            let Some(id) = answers.get(field).and_then(Value::as_str) else {
                continue;
            };
            let Some(Source::Upload {
                media_types,
                max_bytes,
            }) = procedure
                .requirements
                .iter()
                .find(|r| r.key == requirement)
                .map(|r| &r.source)
            else {
                continue;
            };
            let label = procedure.form.label(field);
            let found = match self.document(id).await {
                Ok((doc, _)) if doc.owner == applicant => Some(doc),
                Ok(_) | Err(ApplicationError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            let message = match found {
                None => Some(Text::owned(
                    format!("{}: ไม่พบไฟล์ที่อัปโหลด", label.th),
                    format!("{}: no such upload of yours", label.en),
                )),
                Some(doc) if !media_types.contains(&doc.media_type) => Some(Text::owned(
                    format!("{}: รับเฉพาะ {}", label.th, media_types.join(", ")),
                    format!("{}: only {} are accepted", label.en, media_types.join(", ")),
                )),
                Some(doc) if doc.size as u64 > *max_bytes => Some(Text::owned(
                    format!("{}: ไฟล์ใหญ่เกิน {} ไบต์", label.th, max_bytes),
                    format!("{}: the file is larger than {} bytes", label.en, max_bytes),
                )),
                Some(_) => None,
            };
            if let Some(message) = message {
                problems.push(saphan_procedures::FieldError {
                    field: field.to_string(),
                    message,
                });
            }
        }
        Ok(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_judged_by_content_not_name() {
        assert_eq!(sniff(b"%PDF-1.7\n..."), Some("application/pdf"));
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Some("image/jpeg")
        );
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"<html><script>"), None);
        assert_eq!(sniff(b"MZ\x90\0"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn names_lose_paths_controls_and_bidi_overrides() {
        assert_eq!(clean_name("C:\\Users\\a\\plan.pdf"), "plan.pdf");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("plan\u{202E}fdp.exe"), "planfdp.exe");
        assert_eq!(clean_name("\n"), "document");
    }
}
