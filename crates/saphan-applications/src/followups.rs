//! The workflow's final-step hook: what a procedure's approval leads to (`on_approval`: paying
//! its fees, issuing its e-licence, a receipt) is opened as a follow-up in the transaction that
//! approves it, with a line on the applicant's timeline. The payment and e-licence services
//! take the pending follow-ups of their kind and settle them; a receipt is settled at once.

use saphan_core::Text;
use saphan_procedures::document::Outcome;
use saphan_procedures::ProcedureDoc;
use saphan_store::sqlx::{self, Row};
use serde::Serialize;

use crate::{ApplicationError, Applications};

/// One follow-up of an approval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FollowUp {
    pub id: String,
    pub application_id: String,
    pub procedure_code: String,
    /// `payment`, `licence` or `receipt`.
    pub kind: String,
    /// `pending` until its service settles it, then `done`.
    pub state: String,
    /// For a payment, the fees in satang.
    pub amount_satang: Option<i64>,
    pub created_at: String,
    pub done_at: Option<String>,
}

fn baht(satang: u64) -> String {
    if satang.is_multiple_of(100) {
        format!("{}", satang / 100)
    } else {
        format!("{}.{:02}", satang / 100, satang % 100)
    }
}

/// Opens `procedure`'s follow-ups for an approved application; the timeline's lines for them.
pub(crate) async fn open_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    application: &str,
    tracking: &str,
    procedure: &ProcedureDoc,
    now: &str,
) -> Result<Vec<Text>, ApplicationError> {
    let mut lines = Vec::new();
    for outcome in &procedure.workflow.on_approval {
        let fees: u64 = procedure.fees.iter().map(|f| f.amount_satang).sum();
        let (kind, state, amount, line) = match outcome {
            Outcome::Payment => (
                "payment",
                "pending",
                Some(fees),
                Text::owned(
                    format!(
                        "{}: ขั้นถัดไป ชำระค่าธรรมเนียม {} บาท",
                        procedure.title.th,
                        baht(fees)
                    ),
                    format!(
                        "{}: next, paying the fees of {} baht",
                        procedure.title.en,
                        baht(fees)
                    ),
                ),
            ),
            Outcome::Licence => (
                "licence",
                "pending",
                None,
                Text::owned(
                    format!("{}: ขั้นถัดไป ออกใบอนุญาตอิเล็กทรอนิกส์", procedure.title.th),
                    format!("{}: next, the e-licence is issued", procedure.title.en),
                ),
            ),
            Outcome::Receipt => (
                "receipt",
                "done",
                None,
                Text::owned(
                    format!(
                        "{}: ออกใบรับเลขที่ {tracking}-{}",
                        procedure.title.th, procedure.code
                    ),
                    format!(
                        "{}: receipt {tracking}-{} issued",
                        procedure.title.en, procedure.code
                    ),
                ),
            ),
        };
        sqlx::query(
            "INSERT INTO ap_followups (id, application_id, procedure_code, kind, state, amount_satang, created_at, done_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(application)
        .bind(&procedure.code)
        .bind(kind)
        .bind(state)
        .bind(amount.map(|a| a as i64))
        .bind(now)
        .bind((state == "done").then_some(now))
        .execute(&mut **tx)
        .await?;
        lines.push(line);
    }
    Ok(lines)
}

fn followup_of(r: &sqlx::any::AnyRow) -> FollowUp {
    FollowUp {
        id: r.get(0),
        application_id: r.get(1),
        procedure_code: r.get(2),
        kind: r.get(3),
        state: r.get(4),
        amount_satang: r.get(5),
        created_at: r.get(6),
        done_at: r.get(7),
    }
}

const COLUMNS: &str =
    "id, application_id, procedure_code, kind, state, amount_satang, created_at, done_at";

impl Applications {
    /// An application's follow-ups, oldest first.
    pub async fn followups_of(&self, application: &str) -> Result<Vec<FollowUp>, ApplicationError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ap_followups WHERE application_id = $1 ORDER BY created_at, id"
        ))
        .bind(application)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(followup_of).collect())
    }

    /// The pending follow-ups of one kind (`payment`, `licence`), oldest first: the work
    /// queue of the service that settles them.
    pub async fn pending_followups(
        &self,
        kind: &str,
        limit: u32,
    ) -> Result<Vec<FollowUp>, ApplicationError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ap_followups WHERE kind = $1 AND state = 'pending' \
             ORDER BY created_at, id LIMIT $2"
        ))
        .bind(kind)
        .bind(i64::from(limit.min(1000)))
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(followup_of).collect())
    }
}
