//! The applications service: drafts, answers, submission, the workflow's tasks and decisions,
//! and each application's timeline, over the `ap_*` tables.

use std::collections::BTreeMap;

use saphan_audit::{AuditEntry, AuditLog};
use saphan_core::clock::{format_instant, now_text};
use saphan_core::Text;
use saphan_identity::{Action, Directory, Subject};
use saphan_procedures::document::TaskRole;
use saphan_procedures::{Catalogue, Document, Entry, FieldError, ProcedureDoc};
use saphan_store::sqlx::{self, Row};
use saphan_store::Db;
use serde_json::{json, Map, Value};

use crate::model::{Application, Decision, Event, Member, Status, Task, Verified};
use crate::ApplicationError;

/// The most tasks an inbox shows at once, soonest due first.
const INBOX_LIMIT: usize = 500;

/// Answers larger than this are refused: forms ask for text, uploads travel separately.
const MAX_ANSWERS_BYTES: usize = 256 * 1024;

pub(crate) const APPLICATION_COLUMNS: &str =
    "id, tracking, entry_id, version, code, applicant, status, answers, verified, \
     missing, decisions, created_at, submitted_at, decided_at, updated_at, members, \
     on_behalf_of, on_behalf_of_name";

const TASK_COLUMNS: &str =
    "id, application_id, procedure_code, stage, task_key, title, agency, role, status, \
     outcome, reason, assignee, opened_at, due_at, completed_at";

fn corrupt(what: &str, e: impl std::fmt::Display) -> ApplicationError {
    ApplicationError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn application_of(row: &sqlx::any::AnyRow) -> Result<Application, ApplicationError> {
    let json = |i: usize| -> Result<Value, ApplicationError> {
        let text: Option<String> = row.get(i);
        match text {
            Some(t) => serde_json::from_str(&t).map_err(|e| corrupt("application", e)),
            None => Ok(Value::Null),
        }
    };
    let status: String = row.get(6);
    Ok(Application {
        id: row.get(0),
        tracking: row.get(1),
        entry_id: row.get(2),
        version: row.get(3),
        code: row.get(4),
        applicant: row.get(5),
        status: status.parse().map_err(|e| corrupt("application", e))?,
        answers: serde_json::from_value(json(7)?).map_err(|e| corrupt("answers", e))?,
        verified: serde_json::from_value(json(8)?).map_err(|e| corrupt("verified", e))?,
        missing: match json(9)? {
            Value::Null => Vec::new(),
            v => serde_json::from_value(v).map_err(|e| corrupt("missing", e))?,
        },
        decisions: serde_json::from_value(json(10)?).map_err(|e| corrupt("decisions", e))?,
        created_at: row.get(11),
        submitted_at: row.get(12),
        decided_at: row.get(13),
        updated_at: row.get(14),
        members: serde_json::from_value(json(15)?).map_err(|e| corrupt("members", e))?,
        on_behalf_of: row.get(16),
        on_behalf_of_name: row.get(17),
    })
}

fn task_of(row: &sqlx::any::AnyRow) -> Result<Task, ApplicationError> {
    let status: String = row.get(8);
    let title: String = row.get(5);
    let reason: Option<String> = row.get(10);
    Ok(Task {
        id: row.get(0),
        application_id: row.get(1),
        procedure_code: row.get(2),
        stage: row.get(3),
        key: row.get(4),
        title: serde_json::from_str(&title).map_err(|e| corrupt("task", e))?,
        agency: row.get(6),
        role: row.get(7),
        status: status.parse().map_err(|e| corrupt("task", e))?,
        outcome: row.get(9),
        reason: reason
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| corrupt("task", e))?,
        assignee: row.get(11),
        opened_at: row.get(12),
        due_at: row.get(13),
        completed_at: row.get(14),
    })
}

/// A tracking number people can read out: `SP-` and ten characters of Crockford's base 32
/// (no I, L, O or U), from a random UUID.
fn tracking_number() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut n = u64::from_be_bytes(bytes[..8].try_into().expect("eight bytes"));
    let mut out = String::from("SP-");
    for i in 0..10 {
        if i == 5 {
            out.push('-');
        }
        out.push(ALPHABET[(n % 32) as usize] as char);
        n /= 32;
    }
    out
}

/// The procedures a service runs today: the procedure itself, or a bundle's procedures at
/// their current versions (an application pins them when it starts).
pub(crate) fn procedures_of(
    entry: &Entry,
    snapshot: &saphan_procedures::Snapshot,
) -> Vec<ProcedureDoc> {
    match &entry.document {
        Document::Procedure(p) => vec![(**p).clone()],
        Document::Bundle(_) => snapshot
            .members(entry)
            .iter()
            .filter_map(|m| m.document.as_procedure().cloned())
            .collect(),
    }
}

/// The applications and their workflow.
#[derive(Clone)]
pub struct Applications {
    pub(crate) db: Db,
    pub(crate) audit: AuditLog,
    pub(crate) catalogue: Catalogue,
    pub(crate) directory: Directory,
}

impl Applications {
    pub fn new(
        db: Db,
        audit: AuditLog,
        catalogue: Catalogue,
        directory: Directory,
    ) -> Applications {
        Applications {
            db,
            audit,
            catalogue,
            directory,
        }
    }

    async fn record(
        &self,
        actor: &str,
        action: &str,
        application: &str,
        detail: Value,
    ) -> Result<(), ApplicationError> {
        self.audit
            .append(AuditEntry::new(
                actor,
                action,
                format!("application:{application}"),
                &detail,
            ))
            .await?;
        Ok(())
    }

    /// Starts a draft for the current version of a published procedure or bundle, for the
    /// applicant themselves or (`on_behalf_of`, a juristic-person id) for a company they act
    /// for. A service whose registry data is the business's needs the company.
    pub async fn start(
        &self,
        applicant: &str,
        service: &str,
        on_behalf_of: Option<&str>,
    ) -> Result<Application, ApplicationError> {
        let snapshot = self.catalogue.snapshot().await?;
        let entry = snapshot
            .find(service)
            .ok_or_else(|| ApplicationError::not_found(service))?;
        let procedures = procedures_of(entry, &snapshot);
        let online = |p: &ProcedureDoc| {
            p.channels
                .iter()
                .any(|c| c.kind == saphan_procedures::document::ChannelKind::Online)
        };
        if procedures.is_empty() || !procedures.iter().all(online) {
            return Err(ApplicationError::conflict(
                "บริการนี้ยังไม่เปิดให้ยื่นออนไลน์ โปรดดูช่องทางในคู่มือ",
                "this service cannot be applied for online yet; see the manual's channels",
            ));
        }
        let business = match on_behalf_of {
            Some(juristic_id) => Some(
                self.directory
                    .act_for(applicant)
                    .await?
                    .into_iter()
                    .find(|a| a.juristic_id == juristic_id)
                    .ok_or_else(|| {
                        ApplicationError::Forbidden(Text::new(
                            "ท่านไม่มีอำนาจทำการแทนนิติบุคคลนี้",
                            "you do not act for this juristic person",
                        ))
                    })?,
            ),
            None => None,
        };
        if business.is_none() && procedures.iter().any(crate::prefill::needs_business) {
            return Err(ApplicationError::Invalid(Text::new(
                "บริการนี้ยื่นในนามนิติบุคคล: เลือกนิติบุคคลที่ท่านทำการแทน",
                "this service is applied for by a business: choose the juristic person you act for",
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_text();
        let tracking = tracking_number();
        // A bundle's procedures are pinned now: the application runs these versions even if
        // an agency publishes a new one meanwhile.
        let members: Vec<Member> = snapshot
            .members(entry)
            .iter()
            .map(|m| Member {
                id: m.id.clone(),
                version: m.version,
            })
            .collect();
        // The application and its first timeline line are written together.
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(
            "INSERT INTO ap_applications (id, tracking, entry_id, version, code, applicant, status, answers, \
             verified, decisions, members, sendbacks, revision, created_at, updated_at, on_behalf_of, \
             on_behalf_of_name) \
             VALUES ($1, $2, $3, $4, $5, $6, 'draft', '{}', '{}', '{}', $8, 0, 0, $7, $7, $9, $10)",
        )
        .bind(&id)
        .bind(&tracking)
        .bind(&entry.id)
        .bind(entry.version)
        .bind(entry.code())
        .bind(applicant)
        .bind(&now)
        .bind(serde_json::to_string(&members).expect("members serialise"))
        .bind(business.as_ref().map(|b| b.juristic_id.clone()))
        .bind(business.as_ref().map(|b| b.juristic_name.clone()))
        .execute(&mut *tx)
        .await?;
        let started = Text::owned(
            format!("เริ่มคำขอ {}", entry.document.title().th),
            format!("Started an application for {}", entry.document.title().en),
        );
        event_in(&mut tx, &id, applicant, "started", &started).await?;
        tx.commit().await?;
        self.get(&id).await
    }

    pub async fn get(&self, id: &str) -> Result<Application, ApplicationError> {
        let row = sqlx::query(&format!(
            "SELECT {APPLICATION_COLUMNS} FROM ap_applications WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| ApplicationError::not_found(id))?;
        application_of(&row)
    }

    /// An application as its applicant sees it (anyone else: not found).
    pub async fn of_applicant(
        &self,
        applicant: &str,
        id: &str,
    ) -> Result<Application, ApplicationError> {
        match self.get(id).await {
            Ok(a) if a.applicant == applicant => Ok(a),
            Ok(_) | Err(ApplicationError::NotFound(_)) => Err(ApplicationError::not_found(id)),
            Err(e) => Err(e),
        }
    }

    /// An applicant's applications, newest first.
    pub async fn list_of(&self, applicant: &str) -> Result<Vec<Application>, ApplicationError> {
        let rows = sqlx::query(&format!(
            "SELECT {APPLICATION_COLUMNS} FROM ap_applications WHERE applicant = $1 ORDER BY created_at DESC, id"
        ))
        .bind(applicant)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(application_of).collect()
    }

    /// The forms the application answers: its procedure's, or each of its bundle's.
    pub async fn procedures(
        &self,
        application: &Application,
    ) -> Result<Vec<ProcedureDoc>, ApplicationError> {
        let entry = self
            .catalogue
            .version(&application.entry_id, application.version)
            .await?;
        match &entry.document {
            Document::Procedure(p) => Ok(vec![(**p).clone()]),
            Document::Bundle(_) => {
                let mut procedures = Vec::new();
                for m in &application.members {
                    let version = self.catalogue.version(&m.id, m.version).await?;
                    if let Some(p) = version.document.as_procedure() {
                        procedures.push(p.clone());
                    }
                }
                Ok(procedures)
            }
        }
    }

    /// Saves answers (merged into those already given) while the application is with the
    /// applicant. Fields that came verified from a registry cannot be given; with `page`, that
    /// page's answers are validated now (one topic per page).
    pub async fn save(
        &self,
        applicant: &str,
        id: &str,
        answers: Map<String, Value>,
        page: Option<&str>,
    ) -> Result<Application, ApplicationError> {
        let mut app = self.of_applicant(applicant, id).await?;
        if !matches!(app.status, Status::Draft | Status::SentBack) {
            return Err(ApplicationError::conflict(
                "คำขออยู่ระหว่างพิจารณา แก้ไขไม่ได้",
                "the application is with the officials and cannot be changed",
            ));
        }
        let procedures = self.procedures(&app).await?;
        let known: std::collections::BTreeSet<&str> = procedures
            .iter()
            .flat_map(|p| p.form.properties())
            .collect();
        // Once a procedure of a bundle is decided, its answers are what was decided on.
        let decided: std::collections::BTreeSet<&str> = procedures
            .iter()
            .filter(|p| app.decisions.contains_key(&p.code))
            .flat_map(|p| p.form.properties())
            .filter(|f| {
                !procedures.iter().any(|p| {
                    !app.decisions.contains_key(&p.code) && p.form.properties().contains(f)
                })
            })
            .collect();
        let mut problems = Vec::new();
        for field in answers.keys() {
            if decided.contains(field.as_str()) {
                problems.push(FieldError {
                    field: field.clone(),
                    message: Text::owned(
                        format!("{field} เป็นข้อมูลของรายการที่พิจารณาแล้ว แก้ไขไม่ได้"),
                        format!("{field} belongs to a decided procedure and cannot change"),
                    ),
                });
            } else if app.verified.contains_key(field) {
                problems.push(FieldError {
                    field: field.clone(),
                    message: Text::owned(
                        format!("{field} มาจากทะเบียนและได้รับการยืนยันแล้ว แก้ไขไม่ได้"),
                        format!("{field} came verified from a registry and cannot be changed"),
                    ),
                });
            } else if !known.contains(field.as_str()) {
                problems.push(FieldError {
                    field: field.clone(),
                    message: Text::owned(
                        format!("แบบฟอร์มไม่มีช่อง {field}"),
                        format!("the form has no field {field}"),
                    ),
                });
            }
        }
        if !problems.is_empty() {
            return Err(ApplicationError::Answers(problems));
        }
        app.answers.extend(answers);
        let text = serde_json::to_string(&app.answers).expect("answers serialise");
        if text.len() > MAX_ANSWERS_BYTES {
            return Err(ApplicationError::Invalid(Text::new(
                "คำตอบยาวเกิน 256 KB",
                "the answers exceed 256 KB",
            )));
        }
        if let Some(page) = page {
            let merged = Value::Object(app.merged());
            let mut errors = Vec::new();
            let mut found = false;
            for p in &procedures {
                if p.form.page(page).is_some() {
                    found = true;
                    if let Err(e) = p.form.validate_page(page, &subset(&merged, &p.form)) {
                        errors.extend(e);
                    }
                }
            }
            if !found {
                return Err(ApplicationError::not_found(page));
            }
            dedup_fields(&mut errors);
            if !errors.is_empty() {
                return Err(ApplicationError::Answers(errors));
            }
        }
        let now = now_text();
        let saved = sqlx::query(
            "UPDATE ap_applications SET answers = $1, updated_at = $2 \
             WHERE id = $3 AND status IN ('draft', 'sent-back')",
        )
        .bind(&text)
        .bind(&now)
        .bind(id)
        .execute(self.db.pool())
        .await?;
        if saved.rows_affected() != 1 {
            return Err(ApplicationError::conflict(
                "คำขอถูกยื่นไปแล้วในระหว่างนี้",
                "the application was submitted meanwhile",
            ));
        }
        app.updated_at = now;
        Ok(app)
    }

    /// Records values read from a registry for the application (the portal reads them through
    /// the exchange with the applicant's consent: [`Applications::prefill`]), with a timeline
    /// line for each read. Only fields the forms take from a registry requirement are kept;
    /// they replace any typed answer.
    pub async fn record_verified(
        &self,
        applicant: &str,
        id: &str,
        values: BTreeMap<String, Verified>,
        lines: &[Text],
    ) -> Result<Application, ApplicationError> {
        let mut app = self.of_applicant(applicant, id).await?;
        if !matches!(app.status, Status::Draft | Status::SentBack) {
            return Err(ApplicationError::conflict(
                "คำขออยู่ระหว่างพิจารณา",
                "the application is with the officials",
            ));
        }
        let procedures = self.procedures(&app).await?;
        // Once a procedure of a bundle is decided, its answers are what was decided on.
        let open_fields: std::collections::BTreeSet<&str> = procedures
            .iter()
            .filter(|p| !app.decisions.contains_key(&p.code))
            .flat_map(|p| p.form.properties())
            .collect();
        let values: BTreeMap<String, Verified> = values
            .into_iter()
            .filter(|(field, _)| open_fields.contains(field.as_str()))
            .collect();
        for field in values.keys() {
            let from_registry = procedures
                .iter()
                .any(|p| p.form.verified_fields().any(|(f, _, _)| f == field));
            if !from_registry {
                return Err(ApplicationError::Invalid(Text::owned(
                    format!("{field} ไม่ใช่ข้อมูลจากทะเบียนในแบบฟอร์มนี้"),
                    format!("{field} is not a registry field of this form"),
                )));
            }
            app.answers.remove(field);
        }
        app.verified.extend(values);
        let now = now_text();
        let mut tx = self.db.pool().begin().await?;
        let kept = sqlx::query(
            "UPDATE ap_applications SET answers = $1, verified = $2, updated_at = $3 \
             WHERE id = $4 AND status IN ('draft', 'sent-back')",
        )
        .bind(serde_json::to_string(&app.answers).expect("answers serialise"))
        .bind(serde_json::to_string(&app.verified).expect("verified values serialise"))
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if kept.rows_affected() != 1 {
            return Err(ApplicationError::conflict(
                "คำขอถูกยื่นไปแล้วในระหว่างนี้",
                "the application was submitted meanwhile",
            ));
        }
        for line in lines {
            event_in(&mut tx, id, applicant, "registry-read", line).await?;
        }
        tx.commit().await?;
        app.updated_at = now;
        Ok(app)
    }

    /// Submits (or, after a send-back, resubmits) the application: every answer is validated
    /// against its forms; the first stage's tasks open (or the paused tasks reopen).
    pub async fn submit(&self, applicant: &str, id: &str) -> Result<Application, ApplicationError> {
        let app = self.of_applicant(applicant, id).await?;
        let resubmission = match app.status {
            Status::Draft => false,
            Status::SentBack => true,
            _ => {
                return Err(ApplicationError::conflict(
                    "ยื่นคำขอนี้แล้ว",
                    "this application was already submitted",
                ))
            }
        };
        let procedures = self.procedures(&app).await?;
        if procedures.is_empty() {
            return Err(ApplicationError::conflict(
                "บริการนี้ไม่มีกระบวนงานที่เปิดรับคำขอ",
                "this service has no procedure open for applications",
            ));
        }
        let merged = Value::Object(app.merged());
        let mut errors = Vec::new();
        for p in &procedures {
            if let Err(e) = p.form.validate(&subset(&merged, &p.form)) {
                errors.extend(e);
            }
            errors.extend(self.check_uploads(applicant, p, &app.answers).await?);
        }
        dedup_fields(&mut errors);
        if !errors.is_empty() {
            return Err(ApplicationError::Answers(errors));
        }
        let today = time::OffsetDateTime::now_utc().date();
        let mut next_due = Vec::new();
        for p in procedures.iter().filter(|_| !resubmission) {
            if let Some(window) = &p.filing_window {
                let verified: Map<String, Value> = app
                    .verified
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value.clone()))
                    .collect();
                let due = crate::window::check(window, &verified, today)
                    .map_err(ApplicationError::Window)?;
                next_due.push(due);
            }
        }
        let now = now_text();
        let mut tx = self.db.pool().begin().await?;
        let moved = sqlx::query(
            "UPDATE ap_applications SET status = 'submitted', submitted_at = COALESCE(submitted_at, $1), \
             updated_at = $1, revision = revision + 1 WHERE id = $2 AND status = $3",
        )
        .bind(&now)
        .bind(id)
        .bind(app.status.as_str())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Err(ApplicationError::conflict(
                "คำขอเปลี่ยนสถานะไปแล้ว",
                "the application changed meanwhile",
            ));
        }
        if resubmission {
            let paused = sqlx::query(
                "SELECT id, task_key, procedure_code FROM ap_tasks WHERE application_id = $1 AND status = 'paused'",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            for row in paused {
                let task_id: String = row.get(0);
                let key: String = row.get(1);
                let code: String = row.get(2);
                let sla = procedures
                    .iter()
                    .filter(|p| p.code == code)
                    .flat_map(|p| p.workflow.stages.iter().flat_map(|s| &s.tasks))
                    .find(|t| t.key == key)
                    .map_or(1, |t| t.sla_days);
                sqlx::query(
                    "UPDATE ap_tasks SET status = 'open', opened_at = $1, due_at = $2, overdue_at = NULL WHERE id = $3",
                )
                .bind(&now)
                .bind(due(sla))
                .bind(&task_id)
                .execute(&mut *tx)
                .await?;
            }
        } else {
            for p in &procedures {
                open_stage(&mut tx, id, p, 0, &now).await?;
            }
        }
        let (th, en) = if resubmission {
            ("ส่งข้อมูลเพิ่มเติมแล้ว", "Sent what was missing")
        } else {
            ("ยื่นคำขอแล้ว", "Submitted")
        };
        event_in(&mut tx, id, applicant, "submitted", &Text::new(th, en)).await?;
        let days = procedures
            .iter()
            .map(|p| p.time_limit_days)
            .max()
            .unwrap_or(0);
        crate::notices::notice_in(
            &mut tx,
            &app,
            "submitted",
            &Text::owned(
                format!("ได้รับคำขอแล้ว จะพิจารณาภายใน {days} วันทำการ และแจ้งความคืบหน้าอย่างน้อยทุก 7 วัน"),
                format!(
                    "received; it will be decided within {days} working days, and you will hear \
                     how it stands at least every 7 days"
                ),
            ),
        )
        .await?;
        for next in &next_due {
            event_in(
                &mut tx,
                id,
                applicant,
                "next-due",
                &crate::window::next_due_text(*next),
            )
            .await?;
        }
        tx.commit().await?;
        self.record(
            applicant,
            "application.submit",
            id,
            json!({"code": app.code, "version": app.version, "resubmission": resubmission}),
        )
        .await?;
        self.get(id).await
    }

    /// Deletes a draft that was never submitted (an API submission whose answers failed).
    pub async fn discard(&self, applicant: &str, id: &str) -> Result<(), ApplicationError> {
        let app = self.of_applicant(applicant, id).await?;
        if app.status != Status::Draft || app.submitted_at.is_some() {
            return Err(ApplicationError::conflict(
                "ลบได้เฉพาะร่างที่ยังไม่เคยยื่น",
                "only a draft never submitted can be discarded",
            ));
        }
        sqlx::query("DELETE FROM ap_events WHERE application_id = $1")
            .bind(id)
            .execute(self.db.pool())
            .await?;
        sqlx::query("DELETE FROM ap_applications WHERE id = $1 AND status = 'draft'")
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// An application as an official sees it: only the answers and verified values of the
    /// procedures whose tasks they may act on (now or before); `None` when there are none.
    pub async fn official_view(
        &self,
        official: &Subject,
        mut application: Application,
    ) -> Result<Option<Application>, ApplicationError> {
        let codes: std::collections::BTreeSet<String> = self
            .tasks(&application.id)
            .await?
            .into_iter()
            .filter(|t| may_act(official, t))
            .map(|t| t.procedure_code)
            .collect();
        if codes.is_empty() {
            return Ok(None);
        }
        let procedures = self.procedures(&application).await?;
        let fields: std::collections::BTreeSet<String> = procedures
            .iter()
            .filter(|p| codes.contains(&p.code))
            .flat_map(|p| p.form.properties().into_iter().map(str::to_string))
            .collect();
        application.answers.retain(|k, _| fields.contains(k));
        application.verified.retain(|k, _| fields.contains(k));
        Ok(Some(application))
    }

    /// A task and its application as the official who may act on it sees them (only that
    /// procedure's answers); to anyone else, no such task.
    pub async fn task_for(
        &self,
        official: &Subject,
        task_id: &str,
    ) -> Result<(Task, Application), ApplicationError> {
        let hidden = || ApplicationError::NotFound(Text::new("ไม่พบงาน", "no such task"));
        let task = match self.task(task_id).await {
            Ok(t) if may_act(official, &t) => t,
            Ok(_) | Err(ApplicationError::NotFound(_)) => return Err(hidden()),
            Err(e) => return Err(e),
        };
        let mut app = self.get(&task.application_id).await?;
        let procedures = self.procedures(&app).await?;
        if let Some(p) = procedures.iter().find(|p| p.code == task.procedure_code) {
            let fields = p.form.properties();
            app.answers.retain(|k, _| fields.contains(&k.as_str()));
            app.verified.retain(|k, _| fields.contains(&k.as_str()));
        }
        Ok((task, app))
    }

    /// The tasks of an application, in the order they opened.
    pub async fn tasks(&self, application: &str) -> Result<Vec<Task>, ApplicationError> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM ap_tasks WHERE application_id = $1 ORDER BY opened_at, id"
        ))
        .bind(application)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(task_of).collect()
    }

    pub async fn task(&self, id: &str) -> Result<Task, ApplicationError> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM ap_tasks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| ApplicationError::not_found(id))?;
        task_of(&row)
    }

    /// The open tasks an official may act on: their agencies' tasks for their roles, oldest
    /// due first.
    pub async fn inbox(&self, official: &Subject) -> Result<Vec<Task>, ApplicationError> {
        // Only the official's own agencies' tasks are read (the role is checked per task).
        let agencies: Vec<&str> = match official {
            Subject::Person { roles, .. } => {
                let mut a: Vec<&str> = roles.iter().map(|r| r.agency.as_str()).collect();
                a.sort_unstable();
                a.dedup();
                a
            }
            Subject::Operator => Vec::new(),
        };
        if agencies.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=agencies.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM ap_tasks WHERE status = 'open' AND agency IN ({}) \
             ORDER BY due_at, id LIMIT {INBOX_LIMIT}",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for agency in &agencies {
            query = query.bind(*agency);
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        let mut tasks = Vec::new();
        for row in &rows {
            let task = task_of(row)?;
            if may_act(official, &task) {
                tasks.push(task);
            }
        }
        Ok(tasks)
    }

    /// An official decides a task. Reviewers approve (checked) or send back; approvers
    /// approve or refuse; either may refuse with a reason. Sending back lists everything
    /// missing at once and happens at most once per application.
    pub async fn complete(
        &self,
        official: &Subject,
        task_id: &str,
        decision: Decision,
    ) -> Result<Application, ApplicationError> {
        let task = self.task(task_id).await?;
        if !may_act(official, &task) {
            return Err(ApplicationError::Forbidden(Text::owned(
                format!("งานนี้เป็นของ {} ในหน่วยงาน {}", task.role, task.agency),
                format!("this task is for a {} of agency {}", task.role, task.agency),
            )));
        }
        let reason = match &decision {
            Decision::Reject { reason } => Some(checked_text(reason, "reason")?),
            Decision::RequestMissing { items } => {
                if items.is_empty() || items.len() > 50 {
                    return Err(ApplicationError::Invalid(Text::new(
                        "ระบุทุกรายการที่ขาด (1–50 รายการ) ในครั้งเดียว",
                        "list everything missing (1 to 50 items) at once",
                    )));
                }
                for item in items {
                    checked_text(item, "items")?;
                }
                None
            }
            Decision::Approve { note } => match note {
                Some(n) if !n.trim().is_empty() => Some(checked_text(n, "note")?),
                _ => None,
            },
        };
        if matches!(decision, Decision::RequestMissing { .. }) && task.role != "reviewer" {
            return Err(ApplicationError::Invalid(Text::new(
                "ผู้ตรวจสอบเป็นผู้ขอเอกสารเพิ่มเติม",
                "reviewers ask for what is missing",
            )));
        }
        // What the application runs, read before the transaction (the entry and version an
        // application was made under never change).
        let filed = self.get(&task.application_id).await?;
        if let Subject::Person { identity_id, .. } = official {
            if *identity_id == filed.applicant {
                return Err(ApplicationError::Forbidden(Text::new(
                    "เจ้าหน้าที่พิจารณาคำขอของตนเองไม่ได้",
                    "officials do not decide their own applications",
                )));
            }
        }
        let procedures = self.procedures(&filed).await?;
        let procedure = procedures
            .iter()
            .find(|p| p.code == task.procedure_code)
            .ok_or_else(|| corrupt("task", "its procedure is not in the application"))?;
        let now = now_text();
        let actor = official.actor();
        let mut tx = self.db.pool().begin().await?;
        // Serialises the decisions on one application (a row lock on PostgreSQL, the write
        // lock on SQLite), so that parallel sign-offs see each other.
        let locked = sqlx::query(
            "UPDATE ap_applications SET revision = revision + 1, updated_at = $1 WHERE id = $2 AND status = 'submitted'",
        )
        .bind(&now)
        .bind(&task.application_id)
        .execute(&mut *tx)
        .await?;
        if locked.rows_affected() != 1 {
            return Err(ApplicationError::conflict(
                "คำขอไม่ได้อยู่ระหว่างพิจารณา",
                "the application is not with the officials",
            ));
        }
        let row = sqlx::query(&format!(
            "SELECT {APPLICATION_COLUMNS}, sendbacks FROM ap_applications WHERE id = $1"
        ))
        .bind(&task.application_id)
        .fetch_one(&mut *tx)
        .await?;
        let app = application_of(&row)?;
        let sendbacks: i64 = row.get("sendbacks");
        let still_open: String = sqlx::query("SELECT status FROM ap_tasks WHERE id = $1")
            .bind(task_id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        if still_open != "open" {
            return Err(ApplicationError::conflict(
                "งานนี้ดำเนินการไปแล้ว",
                "this task was already completed",
            ));
        }
        if matches!(decision, Decision::RequestMissing { .. }) && sendbacks > 0 {
            return Err(ApplicationError::conflict(
                "ขอเอกสารเพิ่มเติมได้เพียงครั้งเดียว (พ.ร.บ.การอำนวยความสะดวกฯ)",
                "what is missing may be asked for only once (Licensing Facilitation Act)",
            ));
        }
        let (outcome, status) = match &decision {
            Decision::Approve { .. } => ("approved", "done"),
            Decision::Reject { .. } => ("rejected", "done"),
            Decision::RequestMissing { .. } => ("sent-back", "paused"),
        };
        sqlx::query(
            "UPDATE ap_tasks SET status = $1, outcome = $2, reason = $3, assignee = $4, completed_at = $5 WHERE id = $6",
        )
        .bind(status)
        .bind(outcome)
        .bind(reason.as_ref().map(|r| serde_json::to_string(r).expect("text serialises")))
        .bind(&actor)
        .bind(&now)
        .bind(task_id)
        .execute(&mut *tx)
        .await?;
        let mut decisions = app.decisions.clone();
        let event: Text;
        let mut next_steps = Vec::new();
        match &decision {
            Decision::RequestMissing { items } => {
                sqlx::query(
                    "UPDATE ap_tasks SET status = 'paused' WHERE application_id = $1 AND status = 'open'",
                )
                .bind(&task.application_id)
                .execute(&mut *tx)
                .await?;
                let missing: Vec<Text> = items
                    .iter()
                    .map(|i| Text::owned(i.trim(), i.trim()))
                    .collect();
                sqlx::query(
                    "UPDATE ap_applications SET status = 'sent-back', missing = $1, sendbacks = sendbacks + 1 WHERE id = $2",
                )
                .bind(serde_json::to_string(&missing).expect("texts serialise"))
                .bind(&task.application_id)
                .execute(&mut *tx)
                .await?;
                let list = items
                    .iter()
                    .map(|i| i.trim())
                    .collect::<Vec<_>>()
                    .join("; ");
                event = Text::owned(
                    format!("เจ้าหน้าที่ขอข้อมูลเพิ่มเติม: {list}"),
                    format!("The officials need more: {list}"),
                );
            }
            Decision::Reject { .. } => {
                sqlx::query(
                    "UPDATE ap_tasks SET status = 'cancelled' WHERE application_id = $1 AND procedure_code = $2 AND status IN ('open', 'paused')",
                )
                .bind(&task.application_id)
                .bind(&task.procedure_code)
                .execute(&mut *tx)
                .await?;
                decisions.insert(task.procedure_code.clone(), "rejected".into());
                event = Text::owned(
                    format!(
                        "{}: ไม่อนุมัติ เหตุผล: {}",
                        procedure.title.th,
                        reason.as_ref().map_or("", |r| r.th.as_ref())
                    ),
                    format!(
                        "{}: refused. Reason: {}",
                        procedure.title.en,
                        reason.as_ref().map_or("", |r| r.en.as_ref())
                    ),
                );
            }
            Decision::Approve { .. } => {
                let stage = usize::try_from(task.stage).unwrap_or(usize::MAX);
                let pending: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM ap_tasks WHERE application_id = $1 AND procedure_code = $2 AND stage = $3 AND status <> 'done'",
                )
                .bind(&task.application_id)
                .bind(&task.procedure_code)
                .bind(task.stage)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
                if pending > 0 {
                    event = Text::owned(
                        format!("{}: {} เรียบร้อย", procedure.title.th, task.title.th),
                        format!("{}: {} done", procedure.title.en, task.title.en),
                    );
                } else if stage + 1 < procedure.workflow.stages.len() {
                    open_stage(&mut tx, &task.application_id, procedure, stage + 1, &now).await?;
                    let next = &procedure.workflow.stages[stage + 1];
                    event = Text::owned(
                        format!("{}: เข้าสู่ขั้น {}", procedure.title.th, next.title.th),
                        format!("{}: now at {}", procedure.title.en, next.title.en),
                    );
                } else {
                    decisions.insert(task.procedure_code.clone(), "approved".into());
                    event = Text::owned(
                        format!("{}: อนุมัติ", procedure.title.th),
                        format!("{}: approved", procedure.title.en),
                    );
                    // The final step's hook: payment, e-licence, receipt.
                    next_steps = crate::followups::open_in(
                        &mut tx,
                        &task.application_id,
                        &app.tracking,
                        procedure,
                        &now,
                    )
                    .await?;
                }
            }
        }
        let all_decided = procedures.iter().all(|p| decisions.contains_key(&p.code));
        let mut decided_as = None;
        if all_decided {
            let approved = decisions.values().filter(|d| *d == "approved").count();
            let status = match approved {
                0 => Status::Rejected,
                n if n == decisions.len() => Status::Approved,
                _ => Status::PartlyApproved,
            };
            decided_as = Some(status);
            sqlx::query(
                "UPDATE ap_applications SET status = $1, decisions = $2, decided_at = $3 WHERE id = $4",
            )
            .bind(status.as_str())
            .bind(serde_json::to_string(&decisions).expect("decisions serialise"))
            .bind(&now)
            .bind(&task.application_id)
            .execute(&mut *tx)
            .await?;
        } else if decisions != app.decisions {
            sqlx::query("UPDATE ap_applications SET decisions = $1 WHERE id = $2")
                .bind(serde_json::to_string(&decisions).expect("decisions serialise"))
                .bind(&task.application_id)
                .execute(&mut *tx)
                .await?;
        }
        // The timeline line commits with the decision (numbered under the application's lock).
        event_in(&mut tx, &task.application_id, &actor, outcome, &event).await?;
        for line in &next_steps {
            event_in(&mut tx, &task.application_id, &actor, "next-step", line).await?;
        }
        if let Some(status) = decided_as {
            let title = status.title();
            let told = Text::owned(
                format!("ผลการพิจารณา: {} ({})", title.th, event.th),
                format!("decided: {} ({})", title.en, event.en),
            );
            crate::notices::notice_in(&mut tx, &app, "decided", &told).await?;
        } else if outcome != "approved" {
            crate::notices::notice_in(&mut tx, &app, outcome, &event).await?;
        }
        tx.commit().await?;
        self.record(
            &actor,
            "application.task",
            &task.application_id,
            json!({"task": task.id, "key": task.key, "agency": task.agency, "outcome": outcome}),
        )
        .await?;
        self.get(&task.application_id).await
    }

    /// The application's timeline, oldest first.
    pub async fn timeline(&self, application: &str) -> Result<Vec<Event>, ApplicationError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, kind, text FROM ap_events WHERE application_id = $1 ORDER BY seq",
        )
        .bind(application)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.get(4);
                Ok(Event {
                    seq: r.get(0),
                    at: r.get(1),
                    actor: r.get(2),
                    kind: r.get(3),
                    text: serde_json::from_str(&text).map_err(|e| corrupt("event", e))?,
                })
            })
            .collect()
    }
}

/// Adds a line to an application's timeline, in the transaction that writes the application
/// row (which serialises writers, so the next number is free). The only way lines are added.
pub(crate) async fn event_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    application: &str,
    actor: &str,
    kind: &str,
    text: &Text,
) -> Result<(), ApplicationError> {
    sqlx::query(
        "INSERT INTO ap_events (application_id, seq, at, actor, kind, text) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM ap_events WHERE application_id = $1",
    )
    .bind(application)
    .bind(now_text())
    .bind(actor)
    .bind(kind)
    .bind(serde_json::to_string(text).expect("text serialises"))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether an official holds the task's role in its agency themselves (approvers may also
/// review); the operator and platform administrators do not decide agencies' applications.
fn may_act(official: &Subject, task: &Task) -> bool {
    let action = if task.role == "approver" {
        Action::ApproveApplications
    } else {
        Action::ReviewApplications
    };
    official.acts_for_agency(&action, &task.agency)
}

/// Adds working days (Monday to Friday; public holidays are not known yet).
fn due(working_days: u32) -> String {
    let mut day = time::OffsetDateTime::now_utc();
    let mut left = working_days;
    while left > 0 {
        day += time::Duration::days(1);
        if !matches!(
            day.weekday(),
            time::Weekday::Saturday | time::Weekday::Sunday
        ) {
            left -= 1;
        }
    }
    format_instant(day)
}

fn checked_text(text: &str, field: &str) -> Result<Text, ApplicationError> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > 1000 || t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApplicationError::Invalid(Text::owned(
            format!("{field}: ต้องมีข้อความ 1–1000 ตัวอักษร"),
            format!("{field}: 1 to 1000 characters of text"),
        )));
    }
    // Officials write in the language they work in; both slots carry their words.
    Ok(Text::owned(t, t))
}

/// The answers a form asks for, and only those (each form refuses fields it does not have).
fn subset(answers: &Value, form: &saphan_procedures::Form) -> Value {
    let properties = form.properties();
    Value::Object(
        answers
            .as_object()
            .map(|all| {
                all.iter()
                    .filter(|(k, _)| properties.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// One message per field, even when several of a bundle's forms ask for it.
fn dedup_fields(errors: &mut Vec<FieldError>) {
    let mut seen = std::collections::BTreeSet::new();
    errors.retain(|e| seen.insert(e.field.clone()));
}

async fn open_stage(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    application: &str,
    procedure: &ProcedureDoc,
    stage: usize,
    now: &str,
) -> Result<(), ApplicationError> {
    let Some(s) = procedure.workflow.stages.get(stage) else {
        return Ok(());
    };
    for task in &s.tasks {
        let role = match task.role {
            TaskRole::Reviewer => "reviewer",
            TaskRole::Approver => "approver",
        };
        sqlx::query(
            "INSERT INTO ap_tasks (id, application_id, procedure_code, stage, task_key, title, agency, role, status, opened_at, due_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(application)
        .bind(&procedure.code)
        .bind(stage as i64)
        .bind(&task.key)
        .bind(serde_json::to_string(&task.title).expect("text serialises"))
        .bind(&task.agency)
        .bind(role)
        .bind(now)
        .bind(due(task.sla_days))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
