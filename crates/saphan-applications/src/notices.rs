//! Telling applicants where their application stands: a notice (shown in the portal, and
//! e-mailed when the application gives an address and the platform has an SMTP server) when it
//! is received, sent back or decided, and at least every 7 days until it is decided, as the
//! Licensing Facilitation Act asks. The sweep that sends the 7-day updates also marks tasks past
//! their SLA as overdue, once, in the audit log.

use saphan_audit::AuditEntry;
use saphan_core::clock::{format_instant, now_text};
use saphan_core::Text;
use saphan_store::sqlx::{self, Row};
use serde::Serialize;
use serde_json::{json, Value};

use crate::model::Application;
use crate::{ApplicationError, Applications};

/// How often an applicant hears about an application that is being considered, at least.
pub const UPDATE_EVERY_DAYS: i64 = 7;

/// One notice to an applicant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub id: String,
    pub application_id: String,
    pub at: String,
    pub kind: String,
    pub text: Text,
    pub read: bool,
}

/// A notice waiting to be e-mailed.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub notice: String,
    pub to: String,
    pub tracking: String,
    pub text: Text,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sweep {
    pub updates: usize,
    pub overdue: usize,
}

/// The address an application's answers give for e-mail, if any.
fn email_of(app: &Application) -> Option<String> {
    app.answers
        .get("email")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| e.len() <= 200 && e.contains('@') && !e.contains(['\r', '\n', ',', ';']))
        .map(str::to_string)
}

/// Adds a notice for the application's applicant, in the transaction that changes it.
pub(crate) async fn notice_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    app: &Application,
    kind: &str,
    text: &Text,
) -> Result<(), ApplicationError> {
    let now = now_text();
    let tracked = Text::owned(
        format!("{}: {}", app.tracking, text.th),
        format!("{}: {}", app.tracking, text.en),
    );
    sqlx::query(
        "INSERT INTO ap_notices (id, recipient, application_id, at, kind, text, mail_state, mail_to) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&app.applicant)
    .bind(&app.id)
    .bind(&now)
    .bind(kind)
    .bind(serde_json::to_string(&tracked).expect("text serialises"))
    .bind(if email_of(app).is_some() { "pending" } else { "none" })
    .bind(email_of(app))
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE ap_applications SET last_notice_at = $1 WHERE id = $2")
        .bind(&now)
        .bind(&app.id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Applications {
    /// A person's notices, newest first.
    pub async fn notices(
        &self,
        recipient: &str,
        limit: u32,
    ) -> Result<Vec<Notice>, ApplicationError> {
        let rows = sqlx::query(
            "SELECT id, application_id, at, kind, text, read_at FROM ap_notices WHERE recipient = $1 \
             ORDER BY at DESC, id LIMIT $2",
        )
        .bind(recipient)
        .bind(i64::from(limit.min(500)))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.get(4);
                Ok(Notice {
                    id: r.get(0),
                    application_id: r.get(1),
                    at: r.get(2),
                    kind: r.get(3),
                    text: serde_json::from_str(&text)
                        .map_err(|e| ApplicationError::Corrupt(format!("notice: {e}")))?,
                    read: r.get::<Option<String>, _>(5).is_some(),
                })
            })
            .collect()
    }

    /// Marks all of a person's notices read.
    pub async fn mark_notices_read(&self, recipient: &str) -> Result<(), ApplicationError> {
        sqlx::query("UPDATE ap_notices SET read_at = $1 WHERE recipient = $2 AND read_at IS NULL")
            .bind(now_text())
            .bind(recipient)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The 7-day updates that are due, and the tasks newly past their SLA. Safe to run on
    /// several nodes at once: each update and each overdue mark is claimed by a guarded update.
    pub async fn sweep(&self) -> Result<Sweep, ApplicationError> {
        let now = time::OffsetDateTime::now_utc();
        let due_before = format_instant(now - time::Duration::days(UPDATE_EVERY_DAYS));
        let mut sweep = Sweep::default();
        let ids: Vec<String> = sqlx::query(
            "SELECT id FROM ap_applications WHERE status = 'submitted' \
             AND COALESCE(last_notice_at, submitted_at) <= $1 ORDER BY id LIMIT 1000",
        )
        .bind(&due_before)
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        for id in ids {
            let mut tx = self.db.pool().begin().await?;
            let claimed = sqlx::query(
                "UPDATE ap_applications SET last_notice_at = $1 WHERE id = $2 AND status = 'submitted' \
                 AND COALESCE(last_notice_at, submitted_at) <= $3",
            )
            .bind(now_text())
            .bind(&id)
            .bind(&due_before)
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            let row = sqlx::query(&format!(
                "SELECT {} FROM ap_applications WHERE id = $1",
                crate::applications::APPLICATION_COLUMNS
            ))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
            let app = crate::applications::application_of(&row)?;
            let due: Option<String> = sqlx::query(
                "SELECT MAX(due_at) FROM ap_tasks WHERE application_id = $1 AND status = 'open'",
            )
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
            let due = due.as_deref().and_then(|d| d.get(..10)).unwrap_or("-");
            let text = Text::owned(
                format!("ยังอยู่ระหว่างพิจารณา กำหนดพิจารณาขั้นปัจจุบันเสร็จภายใน {due}"),
                format!("still being considered; the current step is due by {due}"),
            );
            crate::applications::event_in(&mut tx, &id, "platform:sweep", "update", &text).await?;
            notice_in(&mut tx, &app, "update", &text).await?;
            tx.commit().await?;
            sweep.updates += 1;
        }
        let overdue = sqlx::query(
            "SELECT id, application_id, agency, task_key, due_at FROM ap_tasks \
             WHERE status = 'open' AND due_at < $1 AND overdue_at IS NULL ORDER BY due_at LIMIT 1000",
        )
        .bind(now_text())
        .fetch_all(self.db.pool())
        .await?;
        for row in overdue {
            let task: String = row.get(0);
            let marked = sqlx::query(
                "UPDATE ap_tasks SET overdue_at = $1 WHERE id = $2 AND overdue_at IS NULL",
            )
            .bind(now_text())
            .bind(&task)
            .execute(self.db.pool())
            .await?;
            if marked.rows_affected() == 1 {
                let application: String = row.get(1);
                self.audit
                    .append(AuditEntry::new(
                        "platform:sweep",
                        "application.task.overdue",
                        format!("application:{application}"),
                        &json!({"task": task, "agency": row.get::<String, _>(2),
                                "key": row.get::<String, _>(3), "due_at": row.get::<String, _>(4)}),
                    ))
                    .await?;
                sweep.overdue += 1;
            }
        }
        Ok(sweep)
    }

    /// Notices waiting to be e-mailed, oldest first.
    pub async fn pending_mail(&self, limit: u32) -> Result<Vec<Mail>, ApplicationError> {
        let rows = sqlx::query(
            "SELECT n.id, n.mail_to, a.tracking, n.text FROM ap_notices n \
             JOIN ap_applications a ON a.id = n.application_id \
             WHERE n.mail_state = 'pending' ORDER BY n.at LIMIT $1",
        )
        .bind(i64::from(limit.min(500)))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.get(3);
                Ok(Mail {
                    notice: r.get(0),
                    to: r.get::<Option<String>, _>(1).unwrap_or_default(),
                    tracking: r.get(2),
                    text: serde_json::from_str(&text)
                        .map_err(|e| ApplicationError::Corrupt(format!("notice: {e}")))?,
                })
            })
            .collect()
    }

    /// Claims a pending notice for e-mailing, so that one node sends it: false when another
    /// node has it. (A node that stops mid-send leaves it `sending`: it is not sent twice.)
    pub async fn claim_mail(&self, notice: &str) -> Result<bool, ApplicationError> {
        let claimed = sqlx::query(
            "UPDATE ap_notices SET mail_state = 'sending' WHERE id = $1 AND mail_state = 'pending'",
        )
        .bind(notice)
        .execute(self.db.pool())
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Records the outcome of e-mailing a claimed notice: `Some(true)` sent, `Some(false)` given
    /// up, `None` to be tried again in a later sweep.
    pub async fn mail_outcome(
        &self,
        notice: &str,
        sent: Option<bool>,
    ) -> Result<(), ApplicationError> {
        sqlx::query(
            "UPDATE ap_notices SET mail_state = $1 WHERE id = $2 AND mail_state = 'sending'",
        )
        .bind(match sent {
            Some(true) => "sent",
            Some(false) => "failed",
            None => "pending",
        })
        .bind(notice)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}
