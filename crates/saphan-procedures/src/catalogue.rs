//! The catalogue: published procedures and bundles (`pr_entries`), every version kept
//! (`pr_versions`) so an application keeps the version it was made under. Reads come from a
//! per-node snapshot refreshed every few seconds: the catalogue is read by everyone and changed
//! by a few editors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use saphan_audit::{AuditEntry, AuditLog};
use saphan_core::clock::now_text;
use saphan_core::Text;
use saphan_identity::{Action, Directory, Resource, Subject};
use saphan_store::sqlx::{self, Row};
use saphan_store::Db;
use serde::Serialize;
use serde_json::json;

use crate::document::{Audience, Document};
use crate::readiness::{self, Readiness};
use crate::ProcedureError;

/// How long a node serves its snapshot before reading the catalogue again; changes made on
/// this node are seen at once.
const SNAPSHOT_TTL: Duration = Duration::from_secs(2);

/// One published version of a procedure or bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The service id (a UUID), stable across versions: GovStack's `serviceId`.
    pub id: String,
    pub version: i64,
    /// This version's form: GovStack's `eFormId`.
    pub eform_id: String,
    pub published_at: String,
    pub document: Document,
    /// Procedures only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Readiness>,
}

impl Entry {
    fn new(
        id: String,
        version: i64,
        eform_id: String,
        published_at: String,
        doc: Document,
    ) -> Entry {
        let readiness = doc.as_procedure().map(readiness::assess);
        Entry {
            id,
            version,
            eform_id,
            published_at,
            document: doc,
            readiness,
        }
    }

    pub fn code(&self) -> &str {
        self.document.code()
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Words that must all appear in the title, summary, category or code (either language).
    pub query: Option<String>,
    pub audience: Option<Audience>,
    pub agency: Option<String>,
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// By Thai title.
    #[default]
    Title,
    /// Most ready for digital service first (bundles last).
    Readiness,
}

/// Every active entry's current version, as of one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    entries: Vec<Arc<Entry>>,
    by_id: HashMap<String, usize>,
    by_code: HashMap<String, usize>,
}

impl Snapshot {
    fn new(mut entries: Vec<Arc<Entry>>) -> Snapshot {
        entries.sort_by(|a, b| a.document.title().th.cmp(&b.document.title().th));
        let by_id = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.clone(), i))
            .collect();
        let by_code = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.code().to_string(), i))
            .collect();
        Snapshot {
            entries,
            by_id,
            by_code,
        }
    }

    pub fn all(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Entry>> {
        self.by_id.get(id).map(|&i| &self.entries[i])
    }

    pub fn by_code(&self, code: &str) -> Option<&Arc<Entry>> {
        self.by_code.get(code).map(|&i| &self.entries[i])
    }

    /// A service id or a code.
    pub fn find(&self, key: &str) -> Option<&Arc<Entry>> {
        self.by_id(key).or_else(|| self.by_code(key))
    }

    /// A bundle's procedures (current versions), in the bundle's order.
    pub fn members(&self, entry: &Entry) -> Vec<&Arc<Entry>> {
        match &entry.document {
            Document::Bundle(b) => b
                .procedures
                .iter()
                .filter_map(|c| self.by_code(c))
                .collect(),
            Document::Procedure(_) => Vec::new(),
        }
    }

    /// The bundles that include this procedure.
    pub fn bundles_of(&self, code: &str) -> Vec<&Arc<Entry>> {
        self.entries
            .iter()
            .filter(|e| matches!(&e.document, Document::Bundle(b) if b.procedures.iter().any(|p| p == code)))
            .collect()
    }

    /// Total fee (satang) and time limit (working days; a bundle's procedures run side by side).
    pub fn fee_and_days(&self, entry: &Entry) -> (u64, u32) {
        match &entry.document {
            Document::Procedure(p) => (p.total_fee_satang(), p.time_limit_days),
            Document::Bundle(_) => self.members(entry).iter().fold((0, 0), |(fee, days), m| {
                let (f, d) = self.fee_and_days(m);
                (fee.saturating_add(f), days.max(d))
            }),
        }
    }

    pub fn list(&self, filter: &Filter, sort: Sort) -> Vec<&Arc<Entry>> {
        let words: Vec<String> = filter
            .query
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let mut found: Vec<&Arc<Entry>> = self
            .entries
            .iter()
            .filter(|e| {
                filter
                    .audience
                    .is_none_or(|a| e.document.audience().contains(&a))
                    && filter
                        .agency
                        .as_deref()
                        .is_none_or(|a| e.document.agency() == a)
                    && (words.is_empty() || {
                        let d = &e.document;
                        let haystack = [
                            d.code(),
                            &d.title().th,
                            &d.title().en,
                            &d.summary().th,
                            &d.summary().en,
                            &d.category().th,
                            &d.category().en,
                        ]
                        .join("\n")
                        .to_lowercase();
                        words.iter().all(|w| haystack.contains(w.as_str()))
                    })
            })
            .collect();
        if sort == Sort::Readiness {
            found.sort_by_key(|e| {
                std::cmp::Reverse(e.readiness.as_ref().map(|r| r.score as i64).unwrap_or(-1))
            });
        }
        found
    }
}

/// The catalogue of procedures and bundles.
#[derive(Clone)]
pub struct Catalogue {
    db: Db,
    audit: AuditLog,
    directory: Directory,
    snapshot: Arc<RwLock<Cached>>,
    /// Moves on every change this node makes: a snapshot read before a change is not kept.
    generation: Arc<AtomicU64>,
}

/// A node's snapshot and when it was read.
type Cached = Option<(Instant, Arc<Snapshot>)>;

const SELECT_VERSION: &str = "SELECT e.id, v.version, v.eform_id, v.published_at, v.document \
     FROM pr_entries e JOIN pr_versions v ON v.entry_id = e.id";

fn entry_of(row: &sqlx::any::AnyRow) -> Result<Entry, ProcedureError> {
    let text: String = row.get(4);
    let doc: Document = serde_json::from_str(&text).map_err(|e| {
        let id: String = row.get(0);
        let version: i64 = row.get(1);
        ProcedureError::Corrupt(format!("{id} version {version}: {e}"))
    })?;
    Ok(Entry::new(
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        doc,
    ))
}

fn forbidden(agency: &str) -> ProcedureError {
    ProcedureError::Forbidden(Text::owned(
        format!("ต้องมีบทบาท procedure-editor ในหน่วยงาน {agency}"),
        format!("this needs the procedure-editor role in agency {agency}"),
    ))
}

fn changed_meanwhile(code: &str) -> ProcedureError {
    ProcedureError::Conflict(Text::owned(
        format!("{code} ถูกเผยแพร่โดยผู้อื่นในระหว่างนี้ โปรดโหลดใหม่แล้วลองอีกครั้ง"),
        format!("{code} was published by someone else meanwhile; reload and try again"),
    ))
}

impl Catalogue {
    pub fn new(db: Db, audit: AuditLog, directory: Directory) -> Catalogue {
        Catalogue {
            db,
            audit,
            directory,
            snapshot: Arc::new(RwLock::new(None)),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The current catalogue (at most a few seconds old; this node's own changes included).
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, ProcedureError> {
        if let Some((at, snap)) = self
            .snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            if at.elapsed() < SNAPSHOT_TTL {
                return Ok(snap.clone());
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let fresh = Arc::new(self.load().await?);
        let mut cached = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) == generation {
            *cached = Some((Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    fn forget(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    async fn load(&self) -> Result<Snapshot, ProcedureError> {
        let rows = sqlx::query(&format!(
            "{SELECT_VERSION} AND v.version = e.version WHERE e.status = 'active'"
        ))
        .fetch_all(self.db.pool())
        .await?;
        let entries = rows
            .iter()
            .map(|r| entry_of(r).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot::new(entries))
    }

    /// One version of an entry, current or not (what an application was made under).
    pub async fn version(&self, id: &str, version: i64) -> Result<Entry, ProcedureError> {
        let row = sqlx::query(&format!(
            "{SELECT_VERSION} AND v.version = $2 WHERE e.id = $1"
        ))
        .bind(id)
        .bind(version)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| ProcedureError::not_found(&format!("{id} v{version}")))?;
        entry_of(&row)
    }

    /// Every version of an entry, newest first.
    pub async fn versions(&self, id: &str) -> Result<Vec<Entry>, ProcedureError> {
        let rows = sqlx::query(&format!(
            "{SELECT_VERSION} WHERE e.id = $1 ORDER BY v.version DESC"
        ))
        .bind(id)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(entry_of).collect()
    }

    /// The version an e-form belongs to, and whether it is the current one of an entry that
    /// is still published.
    pub async fn eform(&self, eform_id: &str) -> Result<(Entry, bool), ProcedureError> {
        let row = sqlx::query(&format!("{SELECT_VERSION} WHERE v.eform_id = $1"))
            .bind(eform_id)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| ProcedureError::not_found(eform_id))?;
        let entry = entry_of(&row)?;
        let current = sqlx::query("SELECT version, status FROM pr_entries WHERE id = $1")
            .bind(&entry.id)
            .fetch_one(self.db.pool())
            .await?;
        let latest =
            current.get::<i64, _>(0) == entry.version && current.get::<String, _>(1) == "active";
        Ok((entry, latest))
    }

    /// Publishes a document as the entry's next version (the first publishes the entry).
    /// Returns the version and whether it is a new one: a document identical to the current
    /// version publishes nothing (and brings a withdrawn entry back). The editor needs
    /// `EditProcedures` in the owning agency, in every agency the workflow gives tasks to, and
    /// for a bundle in every agency whose procedure it gathers.
    pub async fn publish(
        &self,
        by: &Subject,
        doc: Document,
    ) -> Result<(Entry, bool), ProcedureError> {
        doc.check()?;
        let current = self.load().await?;
        let mut agencies = vec![doc.agency().to_string()];
        match &doc {
            Document::Procedure(p) => {
                agencies.extend(p.workflow.agencies().into_iter().map(str::to_string))
            }
            Document::Bundle(b) => {
                for code in &b.procedures {
                    match current.by_code(code) {
                        Some(e) if e.document.as_procedure().is_some() => {
                            agencies.push(e.document.agency().to_string())
                        }
                        _ => {
                            return Err(ProcedureError::Invalid {
                                field: "procedures".into(),
                                message: Text::owned(
                                    format!("{code} ไม่ใช่กระบวนงานที่เปิดให้บริการ"),
                                    format!("{code} is not a published procedure"),
                                ),
                            })
                        }
                    }
                }
            }
        }
        agencies.sort();
        agencies.dedup();
        for agency in &agencies {
            if !by.may(&Action::EditProcedures, &Resource::Agency(agency.clone())) {
                return Err(forbidden(agency));
            }
            if self.directory.agency(agency).await?.is_none() {
                return Err(ProcedureError::Invalid {
                    field: "agency".into(),
                    message: Text::owned(
                        format!("ไม่มีหน่วยงาน {agency} ในระบบ"),
                        format!("there is no agency {agency}"),
                    ),
                });
            }
        }
        let existing =
            sqlx::query("SELECT id, kind, agency, version, status FROM pr_entries WHERE code = $1")
                .bind(doc.code())
                .fetch_optional(self.db.pool())
                .await?;
        let text = serde_json::to_string(&doc).expect("documents serialise");
        let now = now_text();
        let eform_id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.db.pool().begin().await?;
        let (id, version, restored) = match existing {
            Some(row) => {
                let id: String = row.get(0);
                let kind: String = row.get(1);
                let agency: String = row.get(2);
                let old: i64 = row.get(3);
                let status: String = row.get(4);
                if agency != doc.agency() || kind != doc.kind() {
                    return Err(ProcedureError::Conflict(Text::owned(
                        format!(
                            "{} เป็น {kind} ของหน่วยงาน {agency} เปลี่ยนหน่วยงานหรือชนิดไม่ได้",
                            doc.code()
                        ),
                        format!(
                            "{} is a {kind} of agency {agency}; its agency and kind cannot change",
                            doc.code()
                        ),
                    )));
                }
                let same = self.version(&id, old).await?;
                if same.document == doc {
                    if status == "active" {
                        return Ok((same, false));
                    }
                    // Withdrawn and published again unchanged: the same version returns.
                    let back = sqlx::query(
                        "UPDATE pr_entries SET status = 'active', modified_at = $1 \
                         WHERE id = $2 AND version = $3 AND status = 'withdrawn'",
                    )
                    .bind(&now)
                    .bind(&id)
                    .bind(old)
                    .execute(&mut *tx)
                    .await?;
                    if back.rows_affected() != 1 {
                        return Err(changed_meanwhile(doc.code()));
                    }
                    (id, old, Some(same))
                } else {
                    sqlx::query(
                        "INSERT INTO pr_versions (entry_id, version, eform_id, document, published_at, published_by) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&id)
                    .bind(old + 1)
                    .bind(&eform_id)
                    .bind(&text)
                    .bind(&now)
                    .bind(by.actor())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| conflict(e, doc.code()))?;
                    let moved = sqlx::query(
                        "UPDATE pr_entries SET version = $1, status = 'active', modified_at = $2 \
                         WHERE id = $3 AND version = $4",
                    )
                    .bind(old + 1)
                    .bind(&now)
                    .bind(&id)
                    .bind(old)
                    .execute(&mut *tx)
                    .await?;
                    if moved.rows_affected() != 1 {
                        return Err(changed_meanwhile(doc.code()));
                    }
                    (id, old + 1, None)
                }
            }
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                sqlx::query(
                    "INSERT INTO pr_entries (id, code, kind, agency, version, status, modified_at) \
                     VALUES ($1, $2, $3, $4, 1, 'active', $5)",
                )
                .bind(&id)
                .bind(doc.code())
                .bind(doc.kind())
                .bind(doc.agency())
                .bind(&now)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict(e, doc.code()))?;
                sqlx::query(
                    "INSERT INTO pr_versions (entry_id, version, eform_id, document, published_at, published_by) \
                     VALUES ($1, 1, $2, $3, $4, $5)",
                )
                .bind(&id)
                .bind(&eform_id)
                .bind(&text)
                .bind(&now)
                .bind(by.actor())
                .execute(&mut *tx)
                .await?;
                (id, 1, None)
            }
        };
        if let Document::Bundle(b) = &doc {
            // The members, in a table, so that withdrawing a procedure can refuse in the same
            // statement that would withdraw it; and checked again inside this transaction.
            sqlx::query("DELETE FROM pr_bundle_members WHERE bundle_id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            for code in &b.procedures {
                sqlx::query(
                    "INSERT INTO pr_bundle_members (bundle_id, procedure_code) VALUES ($1, $2)",
                )
                .bind(&id)
                .bind(code)
                .execute(&mut *tx)
                .await?;
            }
            let active: i64 = sqlx::query(
                "SELECT COUNT(*) FROM pr_bundle_members m JOIN pr_entries e ON e.code = m.procedure_code \
                 WHERE m.bundle_id = $1 AND e.status = 'active' AND e.kind = 'procedure'",
            )
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
            if active != b.procedures.len() as i64 {
                return Err(changed_meanwhile(doc.code()));
            }
        }
        tx.commit().await?;
        self.forget();
        let eform_id = restored
            .as_ref()
            .map_or(eform_id, |same| same.eform_id.clone());
        self.audit
            .append(AuditEntry::new(
                by.actor(),
                "procedure.publish",
                format!("procedure:{}", doc.code()),
                &json!({"id": id, "version": version, "eform_id": eform_id, "kind": doc.kind(), "agency": doc.agency(), "restored": restored.is_some()}),
            ))
            .await?;
        Ok(match restored {
            Some(same) => (same, false),
            None => (Entry::new(id, version, eform_id, now, doc), true),
        })
    }

    /// Takes an entry out of the catalogue (its versions stay for the applications made under
    /// them). A procedure that a published bundle gathers cannot be withdrawn: the bundle's
    /// curator changes the bundle first (they hold a role in this agency to have built it).
    pub async fn withdraw(&self, by: &Subject, code: &str) -> Result<(), ProcedureError> {
        let row = sqlx::query(
            "SELECT id, agency, version FROM pr_entries WHERE code = $1 AND status = 'active'",
        )
        .bind(code)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| ProcedureError::not_found(code))?;
        let (id, agency, version): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
        if !by.may(&Action::EditProcedures, &Resource::Agency(agency.clone())) {
            return Err(forbidden(&agency));
        }
        let withdrawn = sqlx::query(
            "UPDATE pr_entries SET status = 'withdrawn', modified_at = $1 \
             WHERE id = $2 AND status = 'active' AND version = $3 AND NOT EXISTS ( \
               SELECT 1 FROM pr_bundle_members m JOIN pr_entries b ON b.id = m.bundle_id \
               WHERE m.procedure_code = $4 AND b.status = 'active')",
        )
        .bind(now_text())
        .bind(&id)
        .bind(version)
        .bind(code)
        .execute(self.db.pool())
        .await?;
        if withdrawn.rows_affected() != 1 {
            let bundles: Vec<String> = sqlx::query(
                "SELECT b.code FROM pr_bundle_members m JOIN pr_entries b ON b.id = m.bundle_id \
                 WHERE m.procedure_code = $1 AND b.status = 'active' ORDER BY b.code",
            )
            .bind(code)
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
            if bundles.is_empty() {
                return Err(changed_meanwhile(code));
            }
            let list = bundles.join(", ");
            return Err(ProcedureError::Conflict(Text::owned(
                format!("{code} อยู่ในชุดบริการ {list} ต้องแก้ไขชุดบริการก่อน"),
                format!("{code} is part of the bundle {list}; change the bundle first"),
            )));
        }
        self.forget();
        self.audit
            .append(AuditEntry::new(
                by.actor(),
                "procedure.withdraw",
                format!("procedure:{code}"),
                &json!({"id": id, "version": version}),
            ))
            .await?;
        Ok(())
    }
}

fn conflict(e: sqlx::Error, code: &str) -> ProcedureError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => changed_meanwhile(code),
        e => e.into(),
    }
}
