//! Registries and their records: definitions, writes with history, reads with minimisation,
//! indexed search with stable cursors, and the data-usage history of a person.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use saphan_audit::{AuditEntry, AuditLog, RecordFilter};
use saphan_core::clock::now_text;
use saphan_identity::Directory;
use saphan_store::sqlx::{self, any::AnyRow, Row};
use saphan_store::Db;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::definition::{self, Definition, NewDefinition};
use crate::{Caller, RegistryError};

/// The audit action of a read of a person's record (searchable by that person's pseudonym).
pub const READ_ACTION: &str = "registry.read";

/// How long a node trusts its copy of a definition (changes on other nodes show after this).
const DEFINITION_TTL: Duration = Duration::from_secs(2);
/// Rows per multi-row INSERT (sqlx's binding cost grows with the square of the parameters).
const CHUNK: usize = 32;
/// The most records one `updateEntries` changes.
pub const MAX_UPDATE_ENTRIES: usize = 1000;
pub const MAX_PAGE_SIZE: u32 = 100;
/// The most records a question (`read`, `exists`, updates) may narrow down to by its indexed
/// fields before the others are compared.
const MAX_CANDIDATES: usize = 10_000;

/// A definition and when this node read it.
type CachedDefinition = (Instant, Arc<Definition>);

/// The registries of the platform.
#[derive(Clone)]
pub struct Registries {
    db: Db,
    audit: AuditLog,
    directory: Directory,
    cache: Arc<Mutex<HashMap<String, CachedDefinition>>>,
}

/// One change in a record's history, as a caller may see it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryEntry {
    pub revision: i64,
    /// `create`, `update` or `delete`.
    pub operation: String,
    pub at: String,
    /// The consumer subsystem (or `platform`).
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The record as it was at this revision (absent for a deletion).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
}

/// `list`'s question.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Exact matches on indexed fields (`query.<field>=value`).
    pub equals: Vec<(String, String)>,
    /// A prefix of an indexed field's value.
    pub search: Option<String>,
    /// Restricts `search` to this indexed field.
    pub filter: Option<String>,
    pub descending: bool,
    /// 1-based; ignored with a cursor.
    pub page: Option<u32>,
    pub page_size: u32,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// Matches in all.
    pub count: i64,
    pub results: Vec<Value>,
    /// Opaque: the next page starts after this.
    pub next_cursor: Option<String>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    pub record: Value,
    pub created: bool,
}

/// A read of a person's data, for their data-usage history.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub seq: u64,
    pub at: String,
    pub reader: String,
    pub registry: String,
    pub user: Option<String>,
    pub reason: Option<String>,
}

#[derive(Serialize)]
struct ReadDetail<'a> {
    v: u8,
    registry: String,
    operation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn definition_from_row(row: &AnyRow) -> Result<Definition, RegistryError> {
    let spec: NewDefinition = serde_json::from_str(&row.get::<String, _>(2))
        .map_err(|e| RegistryError::invalid(format!("stored definition: {e}")))?;
    Definition::compile(row.get(0), row.get(1), spec, row.get(3), row.get(4))
}

const DEFINITION_COLUMNS: &str = "id, provider, definition, modified_at, modified_by";

/// A field value as the index stores it.
fn index_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn reason_text(caller: &Caller) -> Option<String> {
    caller
        .reason
        .as_ref()
        .map(|r| saphan_core::redact::redact(&r.chars().take(200).collect::<String>()))
}

impl Registries {
    pub fn new(db: Db, audit: AuditLog, directory: Directory) -> Registries {
        Registries {
            db,
            audit,
            directory,
            cache: Arc::default(),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    // ---- definitions --------------------------------------------------------------------

    /// Creates a registry, or replaces the definition of one `provider` already publishes.
    /// Records already stored are checked against a changed schema at their next write.
    pub async fn define(
        &self,
        provider: &str,
        spec: NewDefinition,
        by: &str,
    ) -> Result<Definition, RegistryError> {
        definition::check(&spec)?;
        let now = now_text();
        let text = serde_json::to_string(&spec).expect("definitions serialise");
        let existing = sqlx::query(
            "SELECT id, provider, status, service_code, definition FROM rg_registries WHERE name = $1 AND version = $2",
        )
        .bind(&spec.name)
        .bind(&spec.version)
        .fetch_optional(self.db.pool())
        .await?;
        let id = match existing {
            Some(row) => {
                let owner: String = row.get(1);
                if owner != provider {
                    return Err(RegistryError::Forbidden(format!(
                        "{}/{} belongs to another provider",
                        spec.name, spec.version
                    )));
                }
                let id: i64 = row.get(0);
                let old_code: String = row.get(3);
                if old_code != spec.service_code {
                    return Err(RegistryError::invalid(format!(
                        "service_code: {}/{} is published as {old_code}; a registry's service code cannot change",
                        spec.name, spec.version
                    )));
                }
                let old: Option<NewDefinition> =
                    serde_json::from_str(&row.get::<String, _>(4)).ok();
                let held = sqlx::query("SELECT COUNT(*) FROM rg_records WHERE registry_id = $1")
                    .bind(id)
                    .fetch_one(self.db.pool())
                    .await?
                    .get::<i64, _>(0);
                if held > 0
                    && old.is_some_and(|o| o.indexed != spec.indexed || o.hashed != spec.hashed)
                {
                    return Err(RegistryError::invalid(format!(
                        "{}/{} holds {held} records: its indexed and hashed fields cannot change (define a new version)",
                        spec.name, spec.version
                    )));
                }
                sqlx::query(
                    "UPDATE rg_registries SET definition = $1, service_code = $2, status = 'active', \
                     modified_at = $3, modified_by = $4 WHERE id = $5",
                )
                .bind(&text)
                .bind(&spec.service_code)
                .bind(&now)
                .bind(by)
                .bind(id)
                .execute(self.db.pool())
                .await?;
                id
            }
            None => {
                let clash = sqlx::query(
                    "SELECT COUNT(*) FROM rg_registries WHERE provider = $1 AND service_code = $2",
                )
                .bind(provider)
                .bind(&spec.service_code)
                .fetch_one(self.db.pool())
                .await?
                .get::<i64, _>(0);
                if clash > 0 {
                    return Err(RegistryError::Duplicate(format!(
                        "service code {} is already a registry of {provider}",
                        spec.service_code
                    )));
                }
                let row = sqlx::query(
                    "INSERT INTO rg_registries (id, name, version, provider, service_code, definition, status, modified_at, modified_by) \
                     SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4, $5, 'active', $6, $7 FROM rg_registries \
                     RETURNING id",
                )
                .bind(&spec.name)
                .bind(&spec.version)
                .bind(provider)
                .bind(&spec.service_code)
                .bind(&text)
                .bind(&now)
                .bind(by)
                .fetch_one(self.db.pool())
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => {
                        RegistryError::Duplicate(format!("{}/{}", spec.name, spec.version))
                    }
                    e => e.into(),
                })?;
                row.get(0)
            }
        };
        self.audit
            .append(AuditEntry::new(
                by,
                "registry.define",
                format!("registry:{}/{}", spec.name, spec.version),
                &json!({"provider": provider, "definition": &spec}),
            ))
            .await?;
        self.forget();
        let def = Definition::compile(id, provider.to_string(), spec, now, by.to_string())?;
        Ok(def)
    }

    /// Whether the registry holds no record.
    pub async fn is_empty(&self, def: &Definition) -> Result<bool, RegistryError> {
        Ok(
            sqlx::query("SELECT record_id FROM rg_records WHERE registry_id = $1 LIMIT 1")
                .bind(def.id)
                .fetch_optional(self.db.pool())
                .await?
                .is_none(),
        )
    }

    /// Retires a registry. Refused while it still holds records: nothing is lost by accident.
    pub async fn retire(&self, def: &Definition, by: &str) -> Result<(), RegistryError> {
        let held = sqlx::query("SELECT COUNT(*) FROM rg_records WHERE registry_id = $1")
            .bind(def.id)
            .fetch_one(self.db.pool())
            .await?
            .get::<i64, _>(0);
        if held > 0 {
            return Err(RegistryError::invalid(format!(
                "{} still holds {held} records: delete them first",
                def.key()
            )));
        }
        sqlx::query("UPDATE rg_registries SET status = 'retired', modified_at = $1, modified_by = $2 WHERE id = $3")
            .bind(now_text())
            .bind(by)
            .bind(def.id)
            .execute(self.db.pool())
            .await?;
        self.audit
            .append(AuditEntry::new(
                by,
                "registry.retire",
                format!("registry:{}", def.key()),
                &def.id,
            ))
            .await?;
        self.forget();
        Ok(())
    }

    fn forget(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// An active registry by name and version.
    pub async fn definition(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<Arc<Definition>>, RegistryError> {
        let key = format!("{name}/{version}");
        if let Some((at, def)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if at.elapsed() < DEFINITION_TTL {
                return Ok(Some(def.clone()));
            }
        }
        let row = sqlx::query(&format!(
            "SELECT {DEFINITION_COLUMNS} FROM rg_registries WHERE name = $1 AND version = $2 AND status = 'active'"
        ))
        .bind(name)
        .bind(version)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let def = Arc::new(definition_from_row(&row)?);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (Instant::now(), def.clone()));
        Ok(Some(def))
    }

    /// Active registries, of one provider or all.
    pub async fn definitions(
        &self,
        provider: Option<&str>,
    ) -> Result<Vec<Definition>, RegistryError> {
        let rows = sqlx::query(&format!(
            "SELECT {DEFINITION_COLUMNS} FROM rg_registries WHERE status = 'active' \
             AND ($1 = '' OR provider = $1) ORDER BY id"
        ))
        .bind(provider.unwrap_or(""))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(definition_from_row).collect()
    }

    pub async fn definition_by_id(&self, id: i64) -> Result<Option<Definition>, RegistryError> {
        let row = sqlx::query(&format!(
            "SELECT {DEFINITION_COLUMNS} FROM rg_registries WHERE id = $1 AND status = 'active'"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| definition_from_row(&r)).transpose()
    }

    /// The registry published as `service_code` by `provider`.
    pub async fn published_as(
        &self,
        provider: &str,
        service_code: &str,
    ) -> Result<Option<Definition>, RegistryError> {
        let row = sqlx::query(&format!(
            "SELECT {DEFINITION_COLUMNS} FROM rg_registries WHERE provider = $1 AND service_code = $2 AND status = 'active'"
        ))
        .bind(provider)
        .bind(service_code)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| definition_from_row(&r)).transpose()
    }

    // ---- writes ---------------------------------------------------------------------------

    fn check_writable(
        &self,
        def: &Definition,
        caller: &Caller,
        content: &Map<String, Value>,
    ) -> Result<(), RegistryError> {
        caller.check_fields(def, content.keys().map(String::as_str))
    }

    /// Creates records (all or none), each validated against the schema. A record without its
    /// id field gets a new UUID.
    pub async fn create_many(
        &self,
        def: &Definition,
        caller: &Caller,
        contents: Vec<Value>,
    ) -> Result<Vec<Value>, RegistryError> {
        self.insert_new(def, caller, contents, false).await
    }

    /// A bulk load that can be repeated: records whose id is already stored are left as they
    /// are (not compared); the others are created as by [`Registries::create_many`]. Returns
    /// how many were created.
    pub async fn import(
        &self,
        def: &Definition,
        caller: &Caller,
        contents: Vec<Value>,
    ) -> Result<usize, RegistryError> {
        Ok(self.insert_new(def, caller, contents, true).await?.len())
    }

    async fn insert_new(
        &self,
        def: &Definition,
        caller: &Caller,
        contents: Vec<Value>,
        skip_existing: bool,
    ) -> Result<Vec<Value>, RegistryError> {
        let mut records = Vec::with_capacity(contents.len());
        let id_field = &def.spec.id_field;
        for content in contents {
            let Value::Object(mut map) = content else {
                return Err(RegistryError::invalid("content: a record is a JSON object"));
            };
            self.check_writable(def, caller, &map)?;
            if !map.contains_key(id_field) {
                map.insert(
                    id_field.clone(),
                    Value::String(uuid::Uuid::now_v7().to_string()),
                );
            }
            let mut record = Value::Object(map);
            def.validate(&record, caller.fields.is_none())?;
            let id = record_id(def, &record)?;
            if let Value::Object(map) = &mut record {
                self.hash_fields(def, map).await?;
            }
            records.push((id, record));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some((dup, _)) = records.iter().find(|(id, _)| !seen.insert(id.clone())) {
            return Err(RegistryError::Duplicate(format!(
                "two records with the same {id_field} ({})",
                clip(dup)
            )));
        }
        let now = now_text();
        let reason = reason_text(caller);
        let mut tx = self.db.pool().begin().await?;
        let mut created = Vec::with_capacity(records.len());
        for chunk in records.chunks(CHUNK) {
            let inserted =
                insert_records(
                    &mut tx,
                    def,
                    chunk,
                    &now,
                    caller,
                    reason.as_deref(),
                    skip_existing,
                )
                .await
                .map_err(|e| match e {
                    RegistryError::Store(saphan_store::StoreError::Sql(sqlx::Error::Database(
                        d,
                    ))) if d.is_unique_violation() => RegistryError::Duplicate(format!(
                        "a record with this {id_field} already exists in {}",
                        def.key()
                    )),
                    e => e,
                })?;
            created.extend(inserted);
        }
        tx.commit().await?;
        let records = created;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = records.iter().map(|(id, _)| id.as_str()).collect();
        self.audit_write(def, caller, "registry.record.create", &ids)
            .await?;
        Ok(records.into_iter().map(|(_, r)| r).collect())
    }

    pub async fn create(
        &self,
        def: &Definition,
        caller: &Caller,
        content: Value,
    ) -> Result<Value, RegistryError> {
        let mut created = self.create_many(def, caller, vec![content]).await?;
        Ok(created.remove(0))
    }

    async fn audit_write(
        &self,
        def: &Definition,
        caller: &Caller,
        action: &str,
        ids: &[&str],
    ) -> Result<(), RegistryError> {
        // Record ids may be national ids: the log holds their MACs only.
        let mut macs = Vec::with_capacity(ids.len().min(1000));
        for id in ids.iter().take(1000) {
            macs.push(self.directory.mac("registry-record", id).await?[..32].to_string());
        }
        self.audit
            .append(AuditEntry::new(
                caller.consumer.clone(),
                action,
                format!("registry:{}", def.key()),
                &json!({"records": macs, "count": ids.len(), "user": caller.user, "reason": reason_text(caller)}),
            ))
            .await?;
        Ok(())
    }

    /// Changes the first record matching `query` (or, without one, the record whose id the
    /// write names): `write`'s top-level fields replace the record's.
    pub async fn update(
        &self,
        def: &Definition,
        caller: &Caller,
        query: Option<&Map<String, Value>>,
        write: &Map<String, Value>,
    ) -> Result<Value, RegistryError> {
        let query = self.update_query(def, query, write)?;
        let ids = self.find(def, caller, &query, 1).await?;
        let Some(id) = ids.first() else {
            return Err(RegistryError::NotFound("no record found".into()));
        };
        let mut changed = self
            .apply(def, caller, std::slice::from_ref(id), write)
            .await?;
        Ok(changed.remove(0))
    }

    /// Changes every record matching `query` (at most [`MAX_UPDATE_ENTRIES`]); returns how many.
    pub async fn update_entries(
        &self,
        def: &Definition,
        caller: &Caller,
        query: &Map<String, Value>,
        write: &Map<String, Value>,
    ) -> Result<usize, RegistryError> {
        let ids = self
            .find(def, caller, query, MAX_UPDATE_ENTRIES + 1)
            .await?;
        if ids.len() > MAX_UPDATE_ENTRIES {
            return Err(RegistryError::invalid(format!(
                "the query matches more than {MAX_UPDATE_ENTRIES} records: narrow it"
            )));
        }
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(self.apply(def, caller, &ids, write).await?.len())
    }

    /// [`Registries::update`], or a new record from `write` when nothing matches.
    pub async fn update_or_create(
        &self,
        def: &Definition,
        caller: &Caller,
        query: Option<&Map<String, Value>>,
        write: &Map<String, Value>,
    ) -> Result<WriteOutcome, RegistryError> {
        let query = self.update_query(def, query, write)?;
        let ids = self.find(def, caller, &query, 1).await?;
        match ids.first() {
            Some(id) => Ok(WriteOutcome {
                record: self
                    .apply(def, caller, std::slice::from_ref(id), write)
                    .await?
                    .remove(0),
                created: false,
            }),
            None => {
                let mut content = query.clone();
                content.extend(write.clone());
                Ok(WriteOutcome {
                    record: self.create(def, caller, Value::Object(content)).await?,
                    created: true,
                })
            }
        }
    }

    fn update_query(
        &self,
        def: &Definition,
        query: Option<&Map<String, Value>>,
        write: &Map<String, Value>,
    ) -> Result<Map<String, Value>, RegistryError> {
        match query {
            Some(q) if !q.is_empty() => Ok(q.clone()),
            _ => match write.get(&def.spec.id_field) {
                Some(id) => Ok(Map::from_iter([(def.spec.id_field.clone(), id.clone())])),
                None => Err(RegistryError::invalid(format!(
                    "query: say which record to change, or name its {} in write.content",
                    def.spec.id_field
                ))),
            },
        }
    }

    /// Merges `write` into each record in `ids`, in one transaction, keeping each old revision
    /// in the history.
    async fn apply(
        &self,
        def: &Definition,
        caller: &Caller,
        ids: &[String],
        write: &Map<String, Value>,
    ) -> Result<Vec<Value>, RegistryError> {
        self.check_writable(def, caller, write)?;
        // The clear values are checked against the schema before they are hashed.
        let mut probe = Map::new();
        for (k, v) in write.iter().filter(|(k, _)| def.is_hashed(k)) {
            probe.insert(k.clone(), v.clone());
        }
        if !probe.is_empty() {
            let mut check = self.load(def, &ids[0]).await?.unwrap_or_default();
            if let Value::Object(map) = &mut check {
                map.extend(probe);
            }
            def.validate(&check, caller.fields.is_none())?;
        }
        let mut write = write.clone();
        self.hash_fields(def, &mut write).await?;
        let write = &write;
        let now = now_text();
        let reason = reason_text(caller);
        let mut out = Vec::with_capacity(ids.len());
        let mut tx = self.db.pool().begin().await?;
        for id in ids {
            let (old_text, revision) = archive_current(&mut tx, def, id).await?;
            let mut record: Value = serde_json::from_str(&old_text)
                .map_err(|e| RegistryError::invalid(format!("stored record: {e}")))?;
            if let Value::Object(map) = &mut record {
                map.extend(write.clone());
            }
            def.validate(&record, caller.fields.is_none())?;
            if record_id(def, &record)? != *id {
                return Err(RegistryError::invalid(format!(
                    "{}: a record's id cannot change",
                    def.spec.id_field
                )));
            }
            let text = serde_json::to_string(&record).expect("records serialise");
            sqlx::query(
                "UPDATE rg_records SET content = $1, revision = $2, updated_at = $3 \
                 WHERE registry_id = $4 AND record_id = $5",
            )
            .bind(&text)
            .bind(revision + 1)
            .bind(&now)
            .bind(def.id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            insert_history(
                &mut tx,
                def,
                id,
                revision + 1,
                "update",
                &now,
                caller,
                reason.as_deref(),
            )
            .await?;
            sqlx::query("DELETE FROM rg_index WHERE registry_id = $1 AND record_id = $2")
                .bind(def.id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_index(&mut tx, def, &[(id.clone(), record.clone())]).await?;
            out.push(record);
        }
        tx.commit().await?;
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.audit_write(def, caller, "registry.record.update", &refs)
            .await?;
        Ok(out)
    }

    /// Deletes a record; its history stays.
    pub async fn delete(
        &self,
        def: &Definition,
        caller: &Caller,
        id: &str,
    ) -> Result<(), RegistryError> {
        if caller.fields.is_some() {
            return Err(RegistryError::Forbidden(
                "deleting a record needs a right to all its fields".into(),
            ));
        }
        let now = now_text();
        let mut tx = self.db.pool().begin().await?;
        let (_, revision) = archive_current(&mut tx, def, id).await?;
        insert_history(
            &mut tx,
            def,
            id,
            revision + 1,
            "delete",
            &now,
            caller,
            reason_text(caller).as_deref(),
        )
        .await?;
        for table in ["rg_index", "rg_records"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE registry_id = $1 AND record_id = $2"
            ))
            .bind(def.id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.audit_write(def, caller, "registry.record.delete", &[id])
            .await
    }

    // ---- reads ----------------------------------------------------------------------------

    /// Ids of records whose fields equal `query`'s (at least one of them the id or indexed),
    /// in id order, at most `limit`.
    async fn find(
        &self,
        def: &Definition,
        caller: &Caller,
        query: &Map<String, Value>,
        limit: usize,
    ) -> Result<Vec<String>, RegistryError> {
        if query.is_empty() {
            return Err(RegistryError::invalid(
                "query.content: name at least one field",
            ));
        }
        caller.check_fields(def, query.keys().map(String::as_str))?;
        let mut query = query.clone();
        self.hash_fields(def, &mut query).await?;
        let query = &query;
        if !query.keys().any(|f| def.is_indexed(f)) {
            return Err(RegistryError::invalid(format!(
                "query.content: include {} or an indexed field ({})",
                def.spec.id_field,
                def.spec.indexed.join(", ")
            )));
        }
        // Candidates by the id and every indexed field asked, then every field compared.
        let mut sql = String::from(
            "SELECT r.record_id, r.content FROM rg_records r WHERE r.registry_id = $1",
        );
        let mut binds: Vec<String> = Vec::new();
        for (f, v) in query.iter().filter(|(f, _)| def.is_indexed(f)) {
            let Some(text) = index_text(v) else {
                return Err(RegistryError::invalid(format!(
                    "query.content.{f}: a string, number or boolean"
                )));
            };
            if *f == def.spec.id_field {
                binds.push(text);
                sql.push_str(&format!(" AND r.record_id = ${}", binds.len() + 1));
            } else {
                binds.push(f.clone());
                binds.push(text);
                sql.push_str(&format!(
                    " AND r.record_id IN (SELECT record_id FROM rg_index WHERE registry_id = $1 AND field = ${} AND value = ${})",
                    binds.len(),
                    binds.len() + 1
                ));
            }
        }
        sql.push_str(&format!(
            " ORDER BY r.record_id LIMIT {}",
            MAX_CANDIDATES + 1
        ));
        let mut candidates = sqlx::query(&sql).bind(def.id);
        for b in &binds {
            candidates = candidates.bind(b.clone());
        }
        let rows = candidates.fetch_all(self.db.pool()).await?;
        if rows.len() > MAX_CANDIDATES {
            return Err(RegistryError::invalid(format!(
                "the question matches more than {MAX_CANDIDATES} records: name more indexed fields ({})",
                def.spec.indexed.join(", ")
            )));
        }
        let mut out = Vec::new();
        for row in rows {
            let record: Value = serde_json::from_str(&row.get::<String, _>(1))
                .map_err(|e| RegistryError::invalid(format!("stored record: {e}")))?;
            if query.iter().all(|(f, v)| record.get(f) == Some(v)) {
                out.push(row.get::<String, _>(0));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Replaces the clear values of `def`'s hashed fields in `map` by their keyed hashes.
    async fn hash_fields(
        &self,
        def: &Definition,
        map: &mut Map<String, Value>,
    ) -> Result<(), RegistryError> {
        for field in &def.spec.hashed {
            if let Some(Value::String(clear)) = map.get(field) {
                if !clear.starts_with(crate::definition::HASH_PREFIX) {
                    let mac = self
                        .directory
                        .mac(&format!("registry-hashed:{}:{field}", def.key()), clear)
                        .await?;
                    map.insert(
                        field.clone(),
                        Value::String(format!("{}{mac}", crate::definition::HASH_PREFIX)),
                    );
                }
            }
        }
        Ok(())
    }

    async fn load(&self, def: &Definition, id: &str) -> Result<Option<Value>, RegistryError> {
        let row =
            sqlx::query("SELECT content FROM rg_records WHERE registry_id = $1 AND record_id = $2")
                .bind(def.id)
                .bind(id)
                .fetch_optional(self.db.pool())
                .await?;
        row.map(|r| {
            serde_json::from_str(&r.get::<String, _>(0))
                .map_err(|e| RegistryError::invalid(format!("stored record: {e}")))
        })
        .transpose()
    }

    /// The first record matching `query`, as the caller may see it.
    pub async fn read(
        &self,
        def: &Definition,
        caller: &Caller,
        query: &Map<String, Value>,
    ) -> Result<Option<Value>, RegistryError> {
        let ids = self.find(def, caller, query, 1).await?;
        let Some(id) = ids.first() else {
            return Ok(None);
        };
        let Some(record) = self.load(def, id).await? else {
            return Ok(None);
        };
        self.note_reads(def, caller, "read", std::slice::from_ref(&record))
            .await?;
        Ok(Some(caller.minimise(def, record)))
    }

    /// Whether a record matches `query` (a question about released fields only).
    pub async fn exists(
        &self,
        def: &Definition,
        caller: &Caller,
        query: &Map<String, Value>,
    ) -> Result<bool, RegistryError> {
        Ok(!self.find(def, caller, query, 1).await?.is_empty())
    }

    /// One field of one record.
    pub async fn read_value(
        &self,
        def: &Definition,
        caller: &Caller,
        id: &str,
        field: &str,
    ) -> Result<Value, RegistryError> {
        caller.check_fields(def, [field])?;
        if def.is_hashed(field) {
            return Err(RegistryError::Forbidden(format!(
                "`{field}` is kept only as a hash: ask whether it matches (exists)"
            )));
        }
        let record = self
            .load(def, id)
            .await?
            .ok_or_else(|| RegistryError::NotFound("no record found".into()))?;
        let value = record
            .get(field)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(format!("the record has no {field}")))?;
        self.note_reads(def, caller, "readValue", std::slice::from_ref(&record))
            .await?;
        Ok(value)
    }

    /// A page of records matching `q`, in id order, with a cursor to the next page.
    pub async fn list(
        &self,
        def: &Definition,
        caller: &Caller,
        q: &ListQuery,
    ) -> Result<Page, RegistryError> {
        let size = q.page_size.clamp(1, MAX_PAGE_SIZE);
        let mut conditions = String::new();
        let mut binds: Vec<String> = Vec::new();
        let next_param = |binds: &mut Vec<String>, v: String| {
            binds.push(v);
            format!("${}", binds.len() + 1)
        };
        for (field, value) in &q.equals {
            caller.check_fields(def, [field.as_str()])?;
            if !def.is_indexed(field) {
                return Err(RegistryError::invalid(format!(
                    "query.{field}: not an indexed field of {} (indexed: {})",
                    def.key(),
                    def.spec.indexed.join(", ")
                )));
            }
            if *field == def.spec.id_field {
                let p = next_param(&mut binds, value.clone());
                conditions.push_str(&format!(" AND r.record_id = {p}"));
            } else {
                let f = next_param(&mut binds, field.clone());
                let v = next_param(&mut binds, value.clone());
                conditions.push_str(&format!(
                    " AND r.record_id IN (SELECT record_id FROM rg_index WHERE registry_id = $1 AND field = {f} AND value = {v})"
                ));
            }
        }
        if let Some(search) = q.search.as_ref().filter(|s| !s.is_empty()) {
            let fields: Vec<String> = match &q.filter {
                Some(f) => {
                    caller.check_fields(def, [f.as_str()])?;
                    if !def.spec.indexed.contains(f) {
                        return Err(RegistryError::invalid(format!(
                            "filter: {f} is not an indexed field (indexed: {})",
                            def.spec.indexed.join(", ")
                        )));
                    }
                    vec![f.clone()]
                }
                None => def
                    .spec
                    .indexed
                    .iter()
                    .filter(|f| caller.may_see(def, f))
                    .cloned()
                    .collect(),
            };
            if fields.is_empty() {
                return Err(RegistryError::invalid("search: no indexed field to search"));
            }
            let placeholders: Vec<String> = fields
                .iter()
                .map(|f| next_param(&mut binds, f.clone()))
                .collect();
            let low = next_param(&mut binds, search.clone());
            let high = next_param(&mut binds, format!("{search}\u{10FFFF}"));
            conditions.push_str(&format!(
                " AND r.record_id IN (SELECT record_id FROM rg_index WHERE registry_id = $1 AND field IN ({}) AND value >= {low} AND value < {high})",
                placeholders.join(", ")
            ));
        }
        let count_sql =
            format!("SELECT COUNT(*) FROM rg_records r WHERE r.registry_id = $1{conditions}");
        let mut count_query = sqlx::query(&count_sql).bind(def.id);
        for b in &binds {
            count_query = count_query.bind(b.clone());
        }
        let count: i64 = count_query.fetch_one(self.db.pool()).await?.get(0);
        let mut page_conditions = conditions.clone();
        let mut page_binds = binds.clone();
        let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
        if let Some(after) = &cursor {
            page_binds.push(after.clone());
            page_conditions.push_str(&format!(
                " AND r.record_id {} ${}",
                if q.descending { "<" } else { ">" },
                page_binds.len() + 1
            ));
        }
        let offset = match (&cursor, q.page) {
            (None, Some(p)) if p > 1 => i64::from(p - 1) * i64::from(size),
            _ => 0,
        };
        let sql = format!(
            "SELECT r.record_id, r.content FROM rg_records r WHERE r.registry_id = $1{page_conditions} \
             ORDER BY r.record_id {} LIMIT {} OFFSET {offset}",
            if q.descending { "DESC" } else { "ASC" },
            size + 1
        );
        let mut page_query = sqlx::query(&sql).bind(def.id);
        for b in &page_binds {
            page_query = page_query.bind(b.clone());
        }
        let rows = page_query.fetch_all(self.db.pool()).await?;
        let more = rows.len() > size as usize;
        let mut records = Vec::with_capacity(rows.len().min(size as usize));
        let mut last_id = None;
        for row in rows.iter().take(size as usize) {
            last_id = Some(row.get::<String, _>(0));
            records.push(
                serde_json::from_str::<Value>(&row.get::<String, _>(1))
                    .map_err(|e| RegistryError::invalid(format!("stored record: {e}")))?,
            );
        }
        self.note_reads(def, caller, "list", &records).await?;
        Ok(Page {
            count,
            results: records
                .into_iter()
                .map(|r| caller.minimise(def, r))
                .collect(),
            next_cursor: if more {
                last_id.map(|id| encode_cursor(&id))
            } else {
                None
            },
        })
    }

    /// A record's changes, oldest first, each as the caller may see it.
    pub async fn history(
        &self,
        def: &Definition,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<HistoryEntry>, RegistryError> {
        let rows = sqlx::query(
            "SELECT h.revision, h.operation, h.at, h.actor, h.user_id, h.reason, \
             COALESCE(h.content, r.content) FROM rg_history h LEFT JOIN rg_records r \
             ON r.registry_id = h.registry_id AND r.record_id = h.record_id AND r.revision = h.revision \
             WHERE h.registry_id = $1 AND h.record_id = $2 ORDER BY h.revision",
        )
        .bind(def.id)
        .bind(id)
        .fetch_all(self.db.pool())
        .await?;
        if rows.is_empty() {
            return Err(RegistryError::NotFound("no record found".into()));
        }
        let mut entries = Vec::with_capacity(rows.len());
        let mut seen = Vec::new();
        for row in &rows {
            let content = row
                .get::<Option<String>, _>(6)
                .map(|t| {
                    serde_json::from_str::<Value>(&t)
                        .map_err(|e| RegistryError::invalid(format!("stored record: {e}")))
                })
                .transpose()?;
            if let Some(c) = &content {
                seen.push(c.clone());
            }
            entries.push(HistoryEntry {
                revision: row.get(0),
                operation: row.get(1),
                at: row.get(2),
                actor: row.get(3),
                user: row.get(4),
                reason: row.get(5),
                content: content.map(|c| caller.minimise(def, c)),
            });
        }
        if let Some(latest) = seen.last() {
            self.note_reads(def, caller, "history", std::slice::from_ref(latest))
                .await?;
        }
        Ok(entries)
    }

    /// Writes one audit record per person whose record the caller received, so that the
    /// person can see it ([`Registries::personal_data_usage`]). All in one group commit.
    async fn note_reads(
        &self,
        def: &Definition,
        caller: &Caller,
        operation: &str,
        records: &[Value],
    ) -> Result<(), RegistryError> {
        let Some(field) = &def.spec.subject_field else {
            return Ok(());
        };
        let mut entries = Vec::new();
        for record in records {
            let Some(nid) = record.get(field).and_then(Value::as_str) else {
                continue;
            };
            let subject =
                saphan_exchange::consent::subject_pseudonym(&self.directory, &format!("nid:{nid}"))
                    .await?;
            entries.push(AuditEntry::with_detail(
                caller.consumer.clone(),
                READ_ACTION,
                subject,
                &ReadDetail {
                    v: 1,
                    registry: def.key(),
                    operation,
                    user: &caller.user,
                    reason: reason_text(caller),
                },
            ));
        }
        // Submitted together, so that the audit writer commits them as one group.
        futures::future::try_join_all(entries.into_iter().map(|e| self.audit.append(e))).await?;
        Ok(())
    }

    /// Who read the records of the person with this national id, newest first.
    pub async fn personal_data_usage(
        &self,
        national_id: &str,
        limit: u32,
    ) -> Result<Vec<Usage>, RegistryError> {
        let subject = saphan_exchange::consent::subject_pseudonym(
            &self.directory,
            &format!("nid:{national_id}"),
        )
        .await?;
        let found = saphan_audit::find_records(
            &self.db,
            &RecordFilter {
                action: Some(READ_ACTION.into()),
                subject: Some(subject),
                limit: limit.clamp(1, 1000),
                ..RecordFilter::default()
            },
        )
        .await?;
        Ok(found
            .into_iter()
            .map(|r| {
                let detail: Value = r
                    .detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or(Value::Null);
                Usage {
                    seq: r.record.seq,
                    at: r.record.time.clone(),
                    reader: r.record.actor.clone(),
                    registry: detail["registry"].as_str().unwrap_or_default().to_string(),
                    user: detail["user"].as_str().map(String::from),
                    reason: detail["reason"].as_str().map(String::from),
                }
            })
            .collect())
    }
}

fn record_id(def: &Definition, record: &Value) -> Result<String, RegistryError> {
    match record.get(&def.spec.id_field) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 200 => Ok(s.clone()),
        _ => Err(RegistryError::invalid(format!(
            "{}: a record's id is a string of 1 to 200 characters",
            def.spec.id_field
        ))),
    }
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

fn encode_cursor(id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

fn decode_cursor(cursor: &str) -> Result<String, RegistryError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| RegistryError::invalid("cursor: not a cursor this registry gave"))
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// Inserts a chunk of new records with their first history row and index rows. With
/// `skip_existing`, ids already stored are left alone (`ON CONFLICT DO NOTHING`); returns the
/// records actually inserted.
async fn insert_records(
    tx: &mut Tx<'_>,
    def: &Definition,
    chunk: &[(String, Value)],
    now: &str,
    caller: &Caller,
    reason: Option<&str>,
    skip_existing: bool,
) -> Result<Vec<(String, Value)>, RegistryError> {
    // A record created again after a deletion continues its history's revisions.
    let next_revision = |registry: usize, record: usize| {
        format!(
            "COALESCE((SELECT MAX(h.revision) FROM rg_history h WHERE h.registry_id = ${registry} AND h.record_id = ${record}), 0) + 1"
        )
    };
    let rows: Vec<String> = (0..chunk.len())
        .map(|i| {
            let p = i * 4;
            format!(
                "(${}, ${}, ${}, {}, ${})",
                p + 1,
                p + 2,
                p + 3,
                next_revision(p + 1, p + 2),
                p + 4
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO rg_records (registry_id, record_id, content, revision, updated_at) VALUES {}{}",
        rows.join(", "),
        if skip_existing {
            " ON CONFLICT (registry_id, record_id) DO NOTHING RETURNING record_id"
        } else {
            ""
        }
    );
    let mut query = sqlx::query(&sql);
    for (id, record) in chunk {
        query = query
            .bind(def.id)
            .bind(id.clone())
            .bind(serde_json::to_string(record).expect("records serialise"))
            .bind(now.to_string());
    }
    let inserted: Vec<(String, Value)> = if skip_existing {
        let new: std::collections::HashSet<String> = query
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        chunk
            .iter()
            .filter(|(id, _)| new.contains(id))
            .cloned()
            .collect()
    } else {
        query.execute(&mut **tx).await?;
        chunk.to_vec()
    };
    if inserted.is_empty() {
        return Ok(inserted);
    }
    let rows: Vec<String> = (0..inserted.len())
        .map(|i| {
            let p = i * 8;
            format!(
                "(${}, ${}, {}, ${}, ${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                next_revision(p + 1, p + 2),
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7,
                p + 8
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO rg_history (registry_id, record_id, revision, operation, at, actor, user_id, reason, content) VALUES {}",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (id, _) in &inserted {
        query = query
            .bind(def.id)
            .bind(id.clone())
            .bind("create")
            .bind(now.to_string())
            .bind(caller.consumer.clone())
            .bind(caller.user.clone())
            .bind(reason.map(String::from))
            .bind(None::<String>);
    }
    query.execute(&mut **tx).await?;
    insert_index(tx, def, &inserted).await?;
    Ok(inserted)
}

async fn insert_index(
    tx: &mut Tx<'_>,
    def: &Definition,
    records: &[(String, Value)],
) -> Result<(), RegistryError> {
    let mut rows: Vec<(&str, String, &str)> = Vec::new();
    for (id, record) in records {
        for field in &def.spec.indexed {
            if let Some(text) = record.get(field).and_then(index_text) {
                rows.push((field.as_str(), text, id.as_str()));
            }
        }
    }
    for chunk in rows.chunks(CHUNK * 2) {
        let sql = format!(
            "INSERT INTO rg_index (registry_id, field, value, record_id) VALUES {}",
            saphan_store::values_placeholders(chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (field, value, id) in chunk {
            query = query
                .bind(def.id)
                .bind(field.to_string())
                .bind(value.clone())
                .bind(id.to_string());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The stored record's content and revision, copied into that revision's history row: from
/// now on the history holds it, and the record may change or go.
async fn archive_current(
    tx: &mut Tx<'_>,
    def: &Definition,
    id: &str,
) -> Result<(String, i64), RegistryError> {
    let row = sqlx::query(
        "SELECT content, revision FROM rg_records WHERE registry_id = $1 AND record_id = $2",
    )
    .bind(def.id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| RegistryError::NotFound("no record found".into()))?;
    let (content, revision): (String, i64) = (row.get(0), row.get(1));
    sqlx::query(
        "UPDATE rg_history SET content = $1 WHERE registry_id = $2 AND record_id = $3 AND revision = $4",
    )
    .bind(&content)
    .bind(def.id)
    .bind(id)
    .bind(revision)
    .execute(&mut **tx)
    .await?;
    Ok((content, revision))
}

#[allow(clippy::too_many_arguments)]
async fn insert_history(
    tx: &mut Tx<'_>,
    def: &Definition,
    id: &str,
    revision: i64,
    operation: &str,
    now: &str,
    caller: &Caller,
    reason: Option<&str>,
) -> Result<(), RegistryError> {
    sqlx::query(
        "INSERT INTO rg_history (registry_id, record_id, revision, operation, at, actor, user_id, reason, content) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
    )
    .bind(def.id)
    .bind(id)
    .bind(revision)
    .bind(operation)
    .bind(now)
    .bind(&caller.consumer)
    .bind(caller.user.clone())
    .bind(reason.map(String::from))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
