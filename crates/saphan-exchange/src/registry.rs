//! The registry: members, subsystems, services and their endpoints, groups, access rights and
//! access requests. Every change is authorised by `Subject::may` and recorded in the audit log.
//! The gateway reads services and rights through a short per-node cache that this node's own
//! changes clear at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use saphan_audit::{AuditEntry, AuditLog};
use saphan_core::Text;
use saphan_identity::{Action, Resource, Subject};
use saphan_store::sqlx::{self, any::AnyRow, Row};
use saphan_store::Db;
use serde::{Deserialize, Serialize};

use crate::openapi::{self, Endpoint};
use crate::{now_rfc3339, now_unix, ClientId, ExchangeError, MemberId, ServiceId};

/// How long another node's registry change may take to reach this node's gateway.
pub const CACHE_SECS: u64 = 2;

/// Data classification of a service (Thai government data governance levels).
pub const CLASSIFICATIONS: &[&str] = &["public", "internal", "confidential", "secret"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub id: String,
    pub class: String,
    pub code: String,
    pub name: Text,
    /// The digital ID's agency whose `exchange-admin`s administer this member.
    pub agency: Option<String>,
    pub created_at: String,
}

/// What the central administrator submits to onboard a member.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub class: String,
    pub code: String,
    pub name_th: String,
    pub name_en: String,
    #[serde(default)]
    pub agency: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Subsystem {
    /// `INSTANCE/CLASS/MEMBER/SUBSYSTEM`.
    pub id: String,
    pub member: String,
    pub code: String,
    pub status: String,
    /// Whether OAuth keys (`private_key_jwt`) are registered.
    pub oauth_keys: bool,
    pub created_at: String,
}

/// What a provider's administrator submits to publish (or update) a service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub code: String,
    pub title_th: String,
    pub title_en: String,
    /// Where the provider's backend answers (http or https).
    pub backend_url: String,
    /// The OpenAPI description (JSON); its operations become the endpoints.
    #[serde(default)]
    pub openapi: Option<serde_json::Value>,
    /// Endpoints when there is no OpenAPI description.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default = "default_classification")]
    pub classification: String,
    #[serde(default)]
    pub personal_data: bool,
    #[serde(default)]
    pub consent_required: bool,
    /// Purposes a caller may state (`Saphan-Purpose`); empty = any.
    #[serde(default)]
    pub purposes: Vec<String>,
    /// Calls a minute per consumer, per node; 0 = unlimited.
    #[serde(default)]
    pub rate_limit_per_min: u32,
    /// Seconds the provider has to answer; 0 = the platform default.
    #[serde(default)]
    pub timeout_secs: u32,
    /// Keep request and response bodies (those read whole, up to `buffer_body_bytes`) with the
    /// message log, encrypted under a key derived from the platform's signing key.
    #[serde(default)]
    pub log_bodies: bool,
}

fn default_classification() -> String {
    "internal".into()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Service {
    pub id: String,
    #[serde(skip)]
    pub service_id: ServiceId,
    pub title: Text,
    /// Empty (and left out of JSON) for readers who may not administer the provider.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub backend_url: String,
    pub classification: String,
    pub personal_data: bool,
    pub consent_required: bool,
    pub purposes: Vec<String>,
    pub rate_limit_per_min: u32,
    pub timeout_secs: u32,
    pub status: String,
    pub log_bodies: bool,
    pub endpoints: Vec<Endpoint>,
    pub has_openapi: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Right {
    pub id: String,
    pub service: String,
    /// A subsystem (`INSTANCE/CLASS/MEMBER/SUBSYSTEM`) or a group (`group:CODE`).
    pub grantee: String,
    pub method: String,
    pub path: String,
    pub legal_basis: String,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    pub granted_by: String,
    pub granted_at: String,
    pub revoked_at: Option<String>,
    /// The top-level fields of the provider's answers this right releases (field-level
    /// minimisation, enforced by the provider from the signed assertion); none = every field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

impl Right {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            method: self.method.clone(),
            path: self.path.clone(),
        }
    }

    pub fn valid_at(&self, now: i64) -> bool {
        self.revoked_at.is_none()
            && self.valid_from <= now
            && self.valid_until.is_none_or(|until| now < until)
    }
}

/// What an administrator submits to grant a right.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewRight {
    /// A subsystem id or `group:CODE`.
    pub grantee: String,
    #[serde(default = "any")]
    pub method: String,
    #[serde(default = "any")]
    pub path: String,
    /// e.g. "Digital Government Act B.E. 2562 s.13; letter DGA 0001/2569".
    pub legal_basis: String,
    /// Unix seconds; none = open-ended.
    #[serde(default)]
    pub valid_until: Option<i64>,
    /// Only these fields of the answers (e.g. a person's names but not the birth date);
    /// none = every field.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
}

/// The fields a consumer may receive, as the gateway tells the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    All,
    Only(Vec<String>),
}

/// Validates a right's field list: 1 to 100 names of letters, digits, `_` and `-`.
fn field_list(fields: Option<&[String]>) -> Result<Option<Vec<String>>, ExchangeError> {
    let Some(fields) = fields else {
        return Ok(None);
    };
    let mut out: Vec<String> = fields.iter().map(|f| f.trim().to_string()).collect();
    out.retain(|f| !f.is_empty());
    out.sort();
    out.dedup();
    if out.is_empty() || out.len() > 100 {
        return Err(ExchangeError::invalid(
            "fields: name between 1 and 100 fields, or leave it out for every field",
        ));
    }
    if let Some(bad) = out.iter().find(|f| {
        f.len() > 64
            || !f
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }) {
        return Err(ExchangeError::invalid(format!(
            "fields: `{}` is not a field name (letters, digits, _ and -)",
            clip(bad, 40)
        )));
    }
    Ok(Some(out))
}

fn any() -> String {
    "*".into()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccessRequest {
    pub id: String,
    pub service: String,
    pub consumer: String,
    pub method: String,
    pub path: String,
    pub purpose: String,
    pub legal_basis: String,
    /// `pending`, `approved` or `refused`.
    pub status: String,
    pub reason: Option<String>,
    pub requested_by: String,
    pub requested_at: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub right_id: Option<String>,
}

/// What a consumer's administrator submits to ask for access.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccessRequest {
    pub consumer: String,
    pub service: String,
    #[serde(default = "any")]
    pub method: String,
    #[serde(default = "any")]
    pub path: String,
    pub purpose: String,
    pub legal_basis: String,
}

/// A provider administrator's answer to an access request.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub approve: bool,
    /// Required when refusing; shown to the consumer.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub valid_until: Option<i64>,
    /// When approving: only these fields (see [`NewRight::fields`]).
    #[serde(default)]
    pub fields: Option<Vec<String>>,
}

struct Cached<V> {
    at: Instant,
    value: V,
}

/// A consent as the gateway checks it.
#[derive(Clone)]
pub(crate) struct ConsentEntry {
    pub subject: String,
    /// Who gave it, as the provider knows people: `TH<national id>` or `<ISO3>:<passport>`.
    pub subject_id: String,
    pub consumer: String,
    pub service: String,
    pub purpose: String,
    pub valid_until: i64,
}

/// Group code → the subsystem keys in it.
type GroupMembers = Arc<HashMap<String, Vec<String>>>;

/// Per-node cache of what the gateway reads on every call.
#[derive(Default)]
struct GatewayCache {
    services: Mutex<HashMap<String, Cached<Option<Arc<Service>>>>>,
    rights: Mutex<HashMap<String, Cached<Arc<Vec<Right>>>>>,
    groups: Mutex<Option<Cached<GroupMembers>>>,
    active: Mutex<HashMap<String, Cached<bool>>>,
    /// Consents found valid: id → (subject pseudonym, consumer key, service key, purpose,
    /// valid until). Revocation on this node clears it; other nodes see it within the TTL.
    consents: Mutex<HashMap<String, Cached<ConsentEntry>>>,
    /// Bumped by every local change, so that caches elsewhere (certificates) can tell.
    generation: std::sync::atomic::AtomicU64,
}

impl GatewayCache {
    fn clear(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.rights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self.groups.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.consents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

fn fresh<V: Clone>(entry: Option<&Cached<V>>) -> Option<V> {
    entry
        .filter(|c| c.at.elapsed() < Duration::from_secs(CACHE_SECS))
        .map(|c| c.value.clone())
}

/// The exchange's registry. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    db: Db,
    audit: AuditLog,
    instance: String,
    cache: Arc<GatewayCache>,
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn required(field: &str, value: &str, max: usize) -> Result<String, ExchangeError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(ExchangeError::invalid(format!(
            "{field} is required and at most {max} characters"
        )));
    }
    Ok(v.to_string())
}

const SERVICE_COLUMNS: &str = "id, subsystem_id, code, title_th, title_en, backend_url, \
    classification, personal_data, consent_required, purposes, rate_limit_per_min, timeout_secs, \
    status, created_at, CAST(CASE WHEN openapi IS NULL THEN 0 ELSE 1 END AS BIGINT), log_bodies";

const RIGHT_COLUMNS: &str = "id, service_id, grantee, method, path, legal_basis, valid_from, \
    valid_until, granted_by, granted_at, revoked_at, fields";

const REQUEST_COLUMNS: &str = "id, service_id, subsystem_id, method, path, purpose, legal_basis, \
    status, reason, requested_by, requested_at, decided_by, decided_at, right_id";

fn right_from_row(row: &AnyRow) -> Right {
    Right {
        id: row.get(0),
        service: row.get(1),
        grantee: row.get(2),
        method: row.get(3),
        path: row.get(4),
        legal_basis: row.get(5),
        valid_from: row.get(6),
        valid_until: row.get(7),
        granted_by: row.get(8),
        granted_at: row.get(9),
        revoked_at: row.get(10),
        fields: row
            .get::<Option<String>, _>(11)
            .and_then(|f| serde_json::from_str(&f).ok()),
    }
}

fn request_from_row(row: &AnyRow) -> AccessRequest {
    AccessRequest {
        id: row.get(0),
        service: row.get(1),
        consumer: row.get(2),
        method: row.get(3),
        path: row.get(4),
        purpose: row.get(5),
        legal_basis: row.get(6),
        status: row.get(7),
        reason: row.get(8),
        requested_by: row.get(9),
        requested_at: row.get(10),
        decided_by: row.get(11),
        decided_at: row.get(12),
        right_id: row.get(13),
    }
}

impl Registry {
    pub fn new(db: Db, audit: AuditLog, instance: &str) -> Registry {
        Registry {
            db,
            audit,
            instance: instance.to_string(),
            cache: Arc::default(),
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Changes with every registry change made on this node.
    pub fn generation(&self) -> u64 {
        self.cache
            .generation
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn cached_consent(&self, id: &str) -> Option<ConsentEntry> {
        fresh(
            self.cache
                .consents
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id),
        )
    }

    pub(crate) fn cache_consent(&self, id: &str, entry: ConsentEntry) {
        let mut map = self
            .cache
            .consents
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(
            id.to_string(),
            Cached {
                at: Instant::now(),
                value: entry,
            },
        );
    }

    /// Whether a subsystem exists and is active, through the gateway's cache.
    pub async fn subsystem_active(&self, id: &ClientId) -> Result<bool, ExchangeError> {
        let key = id.key();
        if let Some(hit) = fresh(
            self.cache
                .active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key),
        ) {
            return Ok(hit);
        }
        let active = self
            .subsystem(id)
            .await?
            .is_some_and(|s| s.status == "active");
        let mut map = self.cache.active.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(
            key,
            Cached {
                at: Instant::now(),
                value: active,
            },
        );
        Ok(active)
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// After a change: forgets this node's cached gateway state (so the change holds at once
    /// here) and records it in the audit log.
    pub(crate) async fn record(
        &self,
        subject: &Subject,
        action: &str,
        target: &str,
        payload: &impl Serialize,
    ) -> Result<(), ExchangeError> {
        self.record_as(subject.actor(), action, target, payload)
            .await
    }

    /// [`Registry::record`] for an actor that is not an administrator (a data subject).
    pub(crate) async fn record_as(
        &self,
        actor: String,
        action: &str,
        target: &str,
        payload: &impl Serialize,
    ) -> Result<(), ExchangeError> {
        self.cache.clear();
        self.audit
            .append(AuditEntry::new(actor, action, target, payload))
            .await?;
        Ok(())
    }

    /// A client id of this instance from the registry's key (`CLASS/MEMBER/SUBSYSTEM`).
    fn client(&self, key: &str) -> ClientId {
        ClientId::parse(&format!("{}/{key}", self.instance), true)
            .expect("stored keys are valid identifiers")
    }

    /// Parses an id given with or without the instance prefix, refusing another instance.
    pub fn parse_subsystem(&self, text: &str) -> Result<ClientId, ExchangeError> {
        let text = text.trim();
        let full = if text.split('/').count() == 3 {
            format!("{}/{text}", self.instance)
        } else {
            text.to_string()
        };
        let id = ClientId::parse(&full, false)?;
        if id.instance != self.instance {
            return Err(ExchangeError::NotFound(format!(
                "`{}` belongs to instance {}, this platform is {}",
                clip(text, 80),
                clip(&id.instance, 20),
                self.instance
            )));
        }
        Ok(id)
    }

    pub fn parse_service(&self, text: &str) -> Result<ServiceId, ExchangeError> {
        let text = text.trim();
        let full = if text.split('/').count() == 4 {
            format!("{}/{text}", self.instance)
        } else {
            text.to_string()
        };
        let id = ServiceId::parse(&full)?;
        if id.provider.instance != self.instance {
            return Err(ExchangeError::NotFound(format!(
                "service `{}` is not in instance {}",
                clip(text, 80),
                self.instance
            )));
        }
        Ok(id)
    }

    fn authorize(
        &self,
        subject: &Subject,
        agency: Option<&str>,
        what: &str,
    ) -> Result<(), ExchangeError> {
        let resource = match agency {
            Some(a) => Resource::Agency(a.to_string()),
            None => Resource::Platform,
        };
        if subject.may(&Action::AdministerExchange, &resource) {
            Ok(())
        } else {
            Err(ExchangeError::Forbidden(format!(
                "{what} needs the exchange-admin role of {}",
                agency.unwrap_or("the platform")
            )))
        }
    }

    /// [`Registry::authorize`] for an act on `client`'s member, administered by its agency.
    pub(crate) async fn authorize_client(
        &self,
        subject: &Subject,
        client: &ClientId,
        what: &str,
    ) -> Result<(), ExchangeError> {
        let agency = self.agency_of(client).await?;
        self.authorize(subject, agency.as_deref(), what)
    }

    // ---- members and subsystems -----------------------------------------------------------

    /// Onboards a member: the central administrator's act.
    pub async fn create_member(
        &self,
        subject: &Subject,
        new: &NewMember,
    ) -> Result<Member, ExchangeError> {
        self.authorize(subject, None, "onboarding a member")?;
        let id = MemberId::parse(&format!("{}/{}", new.class.trim(), new.code.trim()))?;
        let member = Member {
            id: id.to_string(),
            class: id.class.clone(),
            code: id.code.clone(),
            name: Text::owned(
                required("name_th", &new.name_th, 200)?,
                required("name_en", &new.name_en, 200)?,
            ),
            agency: new
                .agency
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from),
            created_at: now_rfc3339(),
        };
        let inserted = sqlx::query(
            "INSERT INTO xr_members (id, class, code, name_th, name_en, agency, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&member.id)
        .bind(&member.class)
        .bind(&member.code)
        .bind(member.name.th.as_ref())
        .bind(member.name.en.as_ref())
        .bind(&member.agency)
        .bind(&member.created_at)
        .bind(subject.actor())
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(ExchangeError::Duplicate(format!("member {}", member.id)));
        }
        self.record(subject, "exchange.member.create", &member.id, &member)
            .await?;
        Ok(member)
    }

    pub async fn member(&self, id: &MemberId) -> Result<Option<Member>, ExchangeError> {
        let row = sqlx::query(
            "SELECT id, class, code, name_th, name_en, agency, created_at FROM xr_members WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|r| member_from_row(&r)))
    }

    pub async fn members(&self) -> Result<Vec<Member>, ExchangeError> {
        let rows = sqlx::query(
            "SELECT id, class, code, name_th, name_en, agency, created_at FROM xr_members ORDER BY id",
        )
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(member_from_row).collect())
    }

    async fn member_agency(&self, member: &MemberId) -> Result<Option<String>, ExchangeError> {
        let m = self
            .member(member)
            .await?
            .ok_or_else(|| ExchangeError::NotFound(format!("member {member}")))?;
        Ok(m.agency)
    }

    /// The agency whose administrators manage this client's member (none: platform only).
    pub async fn agency_of(&self, client: &ClientId) -> Result<Option<String>, ExchangeError> {
        self.member_agency(&client.member_id()).await
    }

    pub async fn create_subsystem(
        &self,
        subject: &Subject,
        member: &MemberId,
        code: &str,
    ) -> Result<Subsystem, ExchangeError> {
        let agency = self.member_agency(member).await?;
        self.authorize(subject, agency.as_deref(), "adding a subsystem")?;
        let id = ClientId::subsystem(&self.instance, &member.class, &member.code, code.trim());
        let id = ClientId::parse(&id.to_string(), false)?;
        let now = now_rfc3339();
        let inserted = sqlx::query(
            "INSERT INTO xr_subsystems (id, member_id, code, status, created_at, created_by) \
             VALUES ($1, $2, $3, 'active', $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.key())
        .bind(member.to_string())
        .bind(id.subsystem.as_deref())
        .bind(&now)
        .bind(subject.actor())
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(ExchangeError::Duplicate(format!("subsystem {id}")));
        }
        self.record(subject, "exchange.subsystem.create", &id.to_string(), &id)
            .await?;
        Ok(Subsystem {
            id: id.to_string(),
            member: member.to_string(),
            code: id.subsystem.clone().unwrap_or_default(),
            status: "active".into(),
            oauth_keys: false,
            created_at: now,
        })
    }

    pub async fn subsystem(&self, id: &ClientId) -> Result<Option<Subsystem>, ExchangeError> {
        let row = sqlx::query(
            "SELECT id, member_id, code, status, CAST(CASE WHEN jwks IS NULL THEN 0 ELSE 1 END AS BIGINT), created_at FROM xr_subsystems WHERE id = $1",
        )
        .bind(id.key())
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|r| self.subsystem_from_row(&r)))
    }

    fn subsystem_from_row(&self, r: &AnyRow) -> Subsystem {
        Subsystem {
            id: self.client(&r.get::<String, _>(0)).to_string(),
            member: r.get(1),
            code: r.get(2),
            status: r.get(3),
            oauth_keys: r.get::<i64, _>(4) != 0,
            created_at: r.get(5),
        }
    }

    /// Every subsystem, or those of one member.
    pub async fn subsystems(
        &self,
        member: Option<&MemberId>,
    ) -> Result<Vec<Subsystem>, ExchangeError> {
        let rows = match member {
            Some(m) => sqlx::query(
                "SELECT id, member_id, code, status, CAST(CASE WHEN jwks IS NULL THEN 0 ELSE 1 END AS BIGINT), created_at FROM xr_subsystems \
                 WHERE member_id = $1 ORDER BY id",
            )
            .bind(m.to_string())
            .fetch_all(self.db.pool())
            .await?,
            None => sqlx::query(
                "SELECT id, member_id, code, status, CAST(CASE WHEN jwks IS NULL THEN 0 ELSE 1 END AS BIGINT), created_at FROM xr_subsystems ORDER BY id",
            )
            .fetch_all(self.db.pool())
            .await?,
        };
        Ok(rows.iter().map(|r| self.subsystem_from_row(r)).collect())
    }

    /// Registers the public keys (a JWKS) a subsystem signs its OAuth client assertions with.
    pub async fn set_subsystem_keys(
        &self,
        subject: &Subject,
        id: &ClientId,
        jwks: &serde_json::Value,
    ) -> Result<(), ExchangeError> {
        self.authorize_client(subject, id, "registering a subsystem's keys")
            .await?;
        let keys = jwks.get("keys").and_then(|k| k.as_array());
        if keys.is_none_or(|k| k.is_empty() || k.len() > 10) {
            return Err(ExchangeError::invalid(
                "keys must be a JWKS: {\"keys\": [...]} with 1 to 10 public keys",
            ));
        }
        if keys
            .into_iter()
            .flatten()
            .any(|k| k.get("d").is_some() || k.get("p").is_some())
        {
            return Err(ExchangeError::invalid(
                "the JWKS holds a private key; send only public keys",
            ));
        }
        let updated = sqlx::query("UPDATE xr_subsystems SET jwks = $1 WHERE id = $2")
            .bind(jwks.to_string())
            .bind(id.key())
            .execute(self.db.pool())
            .await?
            .rows_affected();
        if updated == 0 {
            return Err(ExchangeError::NotFound(format!("subsystem {id}")));
        }
        self.record(subject, "exchange.subsystem.keys", &id.to_string(), jwks)
            .await
    }

    pub(crate) async fn subsystem_keys(
        &self,
        id: &ClientId,
    ) -> Result<Option<(String, Option<serde_json::Value>)>, ExchangeError> {
        let row = sqlx::query("SELECT status, jwks FROM xr_subsystems WHERE id = $1")
            .bind(id.key())
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.map(|r| {
            (
                r.get::<String, _>(0),
                r.get::<Option<String>, _>(1)
                    .and_then(|j| serde_json::from_str(&j).ok()),
            )
        }))
    }

    /// Enables or disables a subsystem: a disabled one can neither call nor be called.
    pub async fn set_subsystem_status(
        &self,
        subject: &Subject,
        id: &ClientId,
        active: bool,
    ) -> Result<(), ExchangeError> {
        self.authorize_client(subject, id, "changing a subsystem")
            .await?;
        let status = if active { "active" } else { "disabled" };
        sqlx::query("UPDATE xr_subsystems SET status = $1 WHERE id = $2")
            .bind(status)
            .bind(id.key())
            .execute(self.db.pool())
            .await?;
        self.record(
            subject,
            "exchange.subsystem.status",
            &id.to_string(),
            &status,
        )
        .await
    }

    // ---- services -------------------------------------------------------------------------

    /// Publishes a service on `provider`, or replaces its description when it exists.
    pub async fn put_service(
        &self,
        subject: &Subject,
        provider: &ClientId,
        spec: &ServiceSpec,
    ) -> Result<Service, ExchangeError> {
        self.authorize_client(subject, provider, "publishing a service")
            .await?;
        if self.subsystem(provider).await?.is_none() {
            return Err(ExchangeError::NotFound(format!("subsystem {provider}")));
        }
        let service_id = ServiceId {
            provider: provider.clone(),
            code: spec.code.trim().to_string(),
        };
        let service_id = ServiceId::parse(&service_id.to_string())?;
        let backend = url::Url::parse(spec.backend_url.trim())
            .map_err(|e| ExchangeError::invalid(format!("backend_url: {e}")))?;
        if !matches!(backend.scheme(), "http" | "https") || backend.host_str().is_none() {
            return Err(ExchangeError::invalid("backend_url must be an http(s) URL"));
        }
        // An agency's administrator may not point the exchange at the platform's own network
        // (loopback, private, link-local addresses): only the central administrator may.
        if !subject.may(&Action::AdministerExchange, &Resource::Platform) && internal_host(&backend)
        {
            return Err(ExchangeError::Forbidden(
                "a backend on a loopback, private or link-local address needs the central administrator".into(),
            ));
        }
        if backend.query().is_some() || backend.fragment().is_some() {
            return Err(ExchangeError::invalid(
                "backend_url must not carry a query or fragment",
            ));
        }
        if !CLASSIFICATIONS.contains(&spec.classification.as_str()) {
            return Err(ExchangeError::invalid(format!(
                "classification must be one of {}",
                CLASSIFICATIONS.join(", ")
            )));
        }
        if spec.consent_required && !spec.personal_data {
            return Err(ExchangeError::invalid(
                "a service that requires consent carries personal data (set personal_data)",
            ));
        }
        let openapi_text = spec.openapi.as_ref().map(|v| v.to_string());
        let endpoints = match &openapi_text {
            Some(text) => openapi::endpoints(text).map_err(ExchangeError::Invalid)?,
            None if spec.endpoints.is_empty() => {
                return Err(ExchangeError::invalid(
                    "give the service an OpenAPI description or a list of endpoints",
                ))
            }
            None => spec
                .endpoints
                .iter()
                .map(|e| Endpoint::new(&e.method, &e.path))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ExchangeError::Invalid)?,
        };
        if openapi_text.as_ref().is_some_and(|t| t.len() > 1024 * 1024) {
            return Err(ExchangeError::invalid(
                "the OpenAPI description is larger than 1 MiB",
            ));
        }
        let mut purposes = Vec::new();
        for p in &spec.purposes {
            purposes.push(required("purposes[]", p, 100)?);
        }
        let title_th = required("title_th", &spec.title_th, 200)?;
        let title_en = required("title_en", &spec.title_en, 200)?;
        let key = service_id.key();
        let mut tx = self.db.pool().begin().await?;
        // One statement publishes or updates; an update keeps the status, creation and creator.
        sqlx::query(
            "INSERT INTO xr_services (id, subsystem_id, code, title_th, title_en, backend_url, \
             openapi, classification, personal_data, consent_required, purposes, \
             rate_limit_per_min, timeout_secs, status, created_at, created_by, log_bodies) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'active', $14, $15, $16) \
             ON CONFLICT (id) DO UPDATE SET title_th = excluded.title_th, \
             title_en = excluded.title_en, backend_url = excluded.backend_url, \
             openapi = excluded.openapi, classification = excluded.classification, \
             personal_data = excluded.personal_data, consent_required = excluded.consent_required, \
             purposes = excluded.purposes, rate_limit_per_min = excluded.rate_limit_per_min, \
             timeout_secs = excluded.timeout_secs, log_bodies = excluded.log_bodies",
        )
        .bind(&key)
        .bind(provider.key())
        .bind(&service_id.code)
        .bind(&title_th)
        .bind(&title_en)
        .bind(backend.as_str())
        .bind(&openapi_text)
        .bind(&spec.classification)
        .bind(i64::from(spec.personal_data))
        .bind(i64::from(spec.consent_required))
        .bind(serde_json::to_string(&purposes).expect("json"))
        .bind(i64::from(spec.rate_limit_per_min))
        .bind(i64::from(spec.timeout_secs))
        .bind(now_rfc3339())
        .bind(subject.actor())
        .bind(i64::from(spec.log_bodies))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM xr_endpoints WHERE service_id = $1")
            .bind(&key)
            .execute(&mut *tx)
            .await?;
        for e in &endpoints {
            sqlx::query("INSERT INTO xr_endpoints (service_id, method, path) VALUES ($1, $2, $3)")
                .bind(&key)
                .bind(&e.method)
                .bind(&e.path)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let mut logged = spec.clone();
        logged.openapi = None;
        self.record(
            subject,
            "exchange.service.publish",
            &service_id.to_string(),
            &logged,
        )
        .await?;
        self.load_service(&service_id)
            .await?
            .ok_or_else(|| ExchangeError::NotFound(service_id.to_string()))
    }

    /// Suspends or reactivates a service; a suspended service refuses every call.
    pub async fn set_service_status(
        &self,
        subject: &Subject,
        service: &ServiceId,
        active: bool,
    ) -> Result<(), ExchangeError> {
        self.authorize_client(subject, &service.provider, "changing a service")
            .await?;
        let status = if active { "active" } else { "suspended" };
        let n = sqlx::query("UPDATE xr_services SET status = $1 WHERE id = $2")
            .bind(status)
            .bind(service.key())
            .execute(self.db.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(ExchangeError::NotFound(format!("service {service}")));
        }
        self.record(
            subject,
            "exchange.service.status",
            &service.to_string(),
            &status,
        )
        .await
    }

    async fn load_service(&self, id: &ServiceId) -> Result<Option<Service>, ExchangeError> {
        let sql = format!("SELECT {SERVICE_COLUMNS} FROM xr_services WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.key())
            .fetch_optional(self.db.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let endpoints = self.endpoints_of(&id.key()).await?;
        Ok(Some(self.service_from_row(&row, endpoints)))
    }

    async fn endpoints_of(&self, key: &str) -> Result<Vec<Endpoint>, ExchangeError> {
        let rows = sqlx::query(
            "SELECT method, path FROM xr_endpoints WHERE service_id = $1 ORDER BY method, path",
        )
        .bind(key)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Endpoint {
                method: r.get(0),
                path: r.get(1),
            })
            .collect())
    }

    fn service_from_row(&self, r: &AnyRow, endpoints: Vec<Endpoint>) -> Service {
        let key: String = r.get(0);
        let service_id = ServiceId::parse(&format!("{}/{key}", self.instance))
            .expect("stored service ids are valid");
        Service {
            id: service_id.to_string(),
            service_id,
            title: Text::owned(r.get::<String, _>(3), r.get::<String, _>(4)),
            backend_url: r.get(5),
            classification: r.get(6),
            personal_data: r.get::<i64, _>(7) != 0,
            consent_required: r.get::<i64, _>(8) != 0,
            purposes: serde_json::from_str(&r.get::<String, _>(9)).unwrap_or_default(),
            rate_limit_per_min: r.get::<i64, _>(10).clamp(0, u32::MAX as i64) as u32,
            timeout_secs: r.get::<i64, _>(11).clamp(0, u32::MAX as i64) as u32,
            status: r.get(12),
            created_at: r.get(13),
            has_openapi: r.get::<i64, _>(14) != 0,
            log_bodies: r.get::<i64, _>(15) != 0,
            endpoints,
        }
    }

    /// A service, through the gateway's cache.
    pub async fn service(&self, id: &ServiceId) -> Result<Option<Arc<Service>>, ExchangeError> {
        let key = id.key();
        if let Some(hit) = fresh(
            self.cache
                .services
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key),
        ) {
            return Ok(hit);
        }
        let loaded = self.load_service(id).await?.map(Arc::new);
        if loaded.is_none() {
            // Unknown ids are not remembered: callers could fill the cache with them.
            return Ok(None);
        }
        self.cache
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key,
                Cached {
                    at: Instant::now(),
                    value: loaded.clone(),
                },
            );
        Ok(loaded)
    }

    /// The services a subsystem offers (all when `provider` is none).
    pub async fn services(
        &self,
        provider: Option<&ClientId>,
    ) -> Result<Vec<Service>, ExchangeError> {
        let rows = match provider {
            Some(p) => {
                let sql = format!(
                    "SELECT {SERVICE_COLUMNS} FROM xr_services WHERE subsystem_id = $1 ORDER BY id"
                );
                sqlx::query(&sql)
                    .bind(p.key())
                    .fetch_all(self.db.pool())
                    .await?
            }
            None => {
                let sql = format!("SELECT {SERVICE_COLUMNS} FROM xr_services ORDER BY id");
                sqlx::query(&sql).fetch_all(self.db.pool()).await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let endpoints = self.endpoints_of(&r.get::<String, _>(0)).await?;
            out.push(self.service_from_row(r, endpoints));
        }
        Ok(out)
    }

    /// Every service as `subject` may see it: a backend's address only for those who may
    /// administer its provider (the platform's exchange administrators, the provider agency's).
    pub async fn services_seen_by(&self, subject: &Subject) -> Result<Vec<Service>, ExchangeError> {
        // Each member's agency read once, not once per service.
        let agencies: HashMap<String, Option<String>> = self
            .members()
            .await?
            .into_iter()
            .map(|m| (m.id, m.agency))
            .collect();
        let mut services = self.services(None).await?;
        for service in &mut services {
            let member = service.service_id.provider.member_id().to_string();
            let agency = agencies.get(&member).cloned().flatten();
            if self
                .authorize(subject, agency.as_deref(), "seeing a backend address")
                .is_err()
            {
                service.backend_url.clear();
            }
        }
        Ok(services)
    }

    /// The stored OpenAPI description of a service.
    pub async fn openapi(&self, id: &ServiceId) -> Result<Option<String>, ExchangeError> {
        let row = sqlx::query("SELECT openapi FROM xr_services WHERE id = $1")
            .bind(id.key())
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.and_then(|r| r.get::<Option<String>, _>(0)))
    }

    // ---- groups ---------------------------------------------------------------------------

    /// Creates a global group (central administration).
    pub async fn create_group(
        &self,
        subject: &Subject,
        code: &str,
        description: &str,
    ) -> Result<(), ExchangeError> {
        self.authorize(subject, None, "creating a group")?;
        if !crate::id::valid_part(code.trim()) {
            return Err(ExchangeError::invalid(
                "a group code is 1-255 of A-Z a-z 0-9 ' ( ) + , - . = ?",
            ));
        }
        let description = required("description", description, 300)?;
        let n = sqlx::query(
            "INSERT INTO xr_groups (code, description, created_at, created_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (code) DO NOTHING",
        )
        .bind(code.trim())
        .bind(&description)
        .bind(now_rfc3339())
        .bind(subject.actor())
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(ExchangeError::Duplicate(format!(
                "group {}",
                clip(code, 60)
            )));
        }
        self.record(subject, "exchange.group.create", code.trim(), &description)
            .await
    }

    pub async fn add_to_group(
        &self,
        subject: &Subject,
        code: &str,
        member: &ClientId,
    ) -> Result<(), ExchangeError> {
        self.authorize(subject, None, "changing a group")?;
        let exists = sqlx::query("SELECT 1 FROM xr_groups WHERE code = $1")
            .bind(code)
            .fetch_optional(self.db.pool())
            .await?
            .is_some();
        if !exists {
            return Err(ExchangeError::NotFound(format!("group {}", clip(code, 60))));
        }
        if self.subsystem(member).await?.is_none() {
            return Err(ExchangeError::NotFound(format!("subsystem {member}")));
        }
        sqlx::query(
            "INSERT INTO xr_group_members (group_code, subsystem_id) VALUES ($1, $2) \
             ON CONFLICT (group_code, subsystem_id) DO NOTHING",
        )
        .bind(code)
        .bind(member.key())
        .execute(self.db.pool())
        .await?;
        self.record(subject, "exchange.group.add", code, &member.to_string())
            .await
    }

    /// Group code → member subsystem keys, through the cache.
    async fn groups(&self) -> Result<Arc<HashMap<String, Vec<String>>>, ExchangeError> {
        if let Some(hit) = fresh(
            self.cache
                .groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref(),
        ) {
            return Ok(hit);
        }
        let rows = sqlx::query("SELECT group_code, subsystem_id FROM xr_group_members")
            .fetch_all(self.db.pool())
            .await?;
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for r in rows {
            map.entry(r.get(0)).or_default().push(r.get(1));
        }
        let map = Arc::new(map);
        *self.cache.groups.lock().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
            at: Instant::now(),
            value: map.clone(),
        });
        Ok(map)
    }

    // ---- rights ---------------------------------------------------------------------------

    fn grantee_key(&self, grantee: &str) -> Result<String, ExchangeError> {
        match grantee.trim().strip_prefix("group:") {
            Some(code) if crate::id::valid_part(code) => Ok(format!("group:{code}")),
            Some(_) => Err(ExchangeError::invalid("group:CODE names a group")),
            None => Ok(self.parse_subsystem(grantee)?.key()),
        }
    }

    fn grantee_display(&self, key: &str) -> String {
        if key.starts_with("group:") {
            key.to_string()
        } else {
            self.client(key).to_string()
        }
    }

    /// Grants `new` on `service`: the provider's administrator's act.
    pub async fn grant_right(
        &self,
        subject: &Subject,
        service: &ServiceId,
        new: &NewRight,
    ) -> Result<Right, ExchangeError> {
        self.authorize_client(subject, &service.provider, "granting access")
            .await?;
        self.insert_right(subject, service, new).await
    }

    async fn insert_right(
        &self,
        subject: &Subject,
        service: &ServiceId,
        new: &NewRight,
    ) -> Result<Right, ExchangeError> {
        let svc = self
            .load_service(service)
            .await?
            .ok_or_else(|| ExchangeError::NotFound(format!("service {service}")))?;
        let endpoint = Endpoint::new(&new.method, &new.path).map_err(ExchangeError::Invalid)?;
        if endpoint.path != "*"
            && !svc.endpoints.iter().any(|e| {
                e.path == endpoint.path && (endpoint.method == "*" || e.method == endpoint.method)
            })
        {
            return Err(ExchangeError::invalid(format!(
                "{} {} is not an endpoint of {service}",
                endpoint.method, endpoint.path
            )));
        }
        let grantee = self.grantee_key(&new.grantee)?;
        if !grantee.starts_with("group:") && self.subsystem(&self.client(&grantee)).await?.is_none()
        {
            return Err(ExchangeError::NotFound(format!(
                "subsystem {}",
                self.grantee_display(&grantee)
            )));
        }
        let now = now_unix();
        if new.valid_until.is_some_and(|u| u <= now) {
            return Err(ExchangeError::invalid("valid_until is in the past"));
        }
        let right = Right {
            id: uuid::Uuid::new_v4().to_string(),
            service: service.to_string(),
            grantee: self.grantee_display(&grantee),
            method: endpoint.method,
            path: endpoint.path,
            legal_basis: required("legal_basis", &new.legal_basis, 500)?,
            valid_from: now,
            valid_until: new.valid_until,
            granted_by: subject.actor(),
            granted_at: now_rfc3339(),
            revoked_at: None,
            fields: field_list(new.fields.as_deref())?,
        };
        sqlx::query(&format!(
            "INSERT INTO xr_rights ({RIGHT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11)"
        ))
        .bind(&right.id)
        .bind(service.key())
        .bind(&grantee)
        .bind(&right.method)
        .bind(&right.path)
        .bind(&right.legal_basis)
        .bind(right.valid_from)
        .bind(right.valid_until)
        .bind(&right.granted_by)
        .bind(&right.granted_at)
        .bind(
            right
                .fields
                .as_ref()
                .map(|f| serde_json::to_string(f).expect("strings serialise")),
        )
        .execute(self.db.pool())
        .await?;
        self.record(subject, "exchange.right.grant", &right.service, &right)
            .await?;
        Ok(right)
    }

    pub async fn revoke_right(
        &self,
        subject: &Subject,
        right_id: &str,
    ) -> Result<(), ExchangeError> {
        let right = self
            .right(right_id)
            .await?
            .ok_or_else(|| ExchangeError::NotFound(format!("right {}", clip(right_id, 40))))?;
        let service = self.parse_service(&right.service)?;
        self.authorize_client(subject, &service.provider, "revoking access")
            .await?;
        sqlx::query("UPDATE xr_rights SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_rfc3339())
            .bind(right_id)
            .execute(self.db.pool())
            .await?;
        self.record(subject, "exchange.right.revoke", &right.service, &right.id)
            .await
    }

    async fn right(&self, id: &str) -> Result<Option<Right>, ExchangeError> {
        let row = sqlx::query(&format!(
            "SELECT {RIGHT_COLUMNS} FROM xr_rights WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|r| self.display_right(right_from_row(&r))))
    }

    fn display_right(&self, mut right: Right) -> Right {
        right.grantee = self.grantee_display(&right.grantee);
        right.service = format!("{}/{}", self.instance, right.service);
        right
    }

    /// Every right on a service, revoked and expired ones included (the history).
    pub async fn rights(&self, service: &ServiceId) -> Result<Vec<Right>, ExchangeError> {
        let rows = sqlx::query(&format!(
            "SELECT {RIGHT_COLUMNS} FROM xr_rights WHERE service_id = $1 ORDER BY granted_at"
        ))
        .bind(service.key())
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| self.display_right(right_from_row(r)))
            .collect())
    }

    /// Rights on a service as stored (grantee keys), through the cache.
    async fn cached_rights(&self, service: &ServiceId) -> Result<Arc<Vec<Right>>, ExchangeError> {
        let key = service.key();
        if let Some(hit) = fresh(
            self.cache
                .rights
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key),
        ) {
            return Ok(hit);
        }
        let rows = sqlx::query(&format!(
            "SELECT {RIGHT_COLUMNS} FROM xr_rights WHERE service_id = $1 AND revoked_at IS NULL"
        ))
        .bind(&key)
        .fetch_all(self.db.pool())
        .await?;
        let rights = Arc::new(rows.iter().map(right_from_row).collect::<Vec<_>>());
        self.cache
            .rights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key,
                Cached {
                    at: Instant::now(),
                    value: rights.clone(),
                },
            );
        Ok(rights)
    }

    /// The endpoints of `service` that `consumer` may call now (`*` rights expanded).
    pub async fn allowed_endpoints(
        &self,
        consumer: &ClientId,
        service: &Service,
    ) -> Result<Vec<Endpoint>, ExchangeError> {
        let rights = self.valid_rights(consumer, &service.service_id).await?;
        let mut out: Vec<Endpoint> = service
            .endpoints
            .iter()
            .filter(|e| rights.iter().any(|r| covers(&r.endpoint(), e)))
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn valid_rights(
        &self,
        consumer: &ClientId,
        service: &ServiceId,
    ) -> Result<Vec<Right>, ExchangeError> {
        let now = now_unix();
        let rights = self.cached_rights(service).await?;
        let groups = self.groups().await?;
        let key = consumer.key();
        Ok(rights
            .iter()
            .filter(|r| r.valid_at(now))
            .filter(|r| match r.grantee.strip_prefix("group:") {
                Some(g) => groups.get(g).is_some_and(|m| m.contains(&key)),
                None => r.grantee == key,
            })
            .cloned()
            .collect())
    }

    /// Whether `consumer` holds a right, valid now, covering `method path` on `service`: the
    /// gateway's question. The path must also be one of the service's endpoints.
    pub async fn may_call(
        &self,
        consumer: &ClientId,
        service: &Service,
        method: &str,
        path: &str,
    ) -> Result<bool, ExchangeError> {
        Ok(self
            .access(consumer, service, method, path)
            .await?
            .is_some())
    }

    /// What `consumer` may receive from `method path` on `service` now: `None` without a right;
    /// otherwise the fields its covering rights release together (`Fields::All` if any of them
    /// names no fields).
    pub async fn access(
        &self,
        consumer: &ClientId,
        service: &Service,
        method: &str,
        path: &str,
    ) -> Result<Option<Fields>, ExchangeError> {
        // The right must cover the endpoint the call *is*; a right's template is never matched
        // against the raw path (a right on /persons/{id} must not open /persons/export).
        let Some(endpoint) = openapi::most_specific(&service.endpoints, method, path) else {
            return Ok(None);
        };
        let rights = self.valid_rights(consumer, &service.service_id).await?;
        let mut access: Option<Fields> = None;
        for right in rights.iter().filter(|r| covers(&r.endpoint(), endpoint)) {
            access = Some(match (access, &right.fields) {
                (Some(Fields::All), _) | (_, None) => Fields::All,
                (None, Some(only)) => Fields::Only(only.clone()),
                (Some(Fields::Only(mut have)), Some(only)) => {
                    have.extend(only.iter().cloned());
                    have.sort();
                    have.dedup();
                    Fields::Only(have)
                }
            });
        }
        Ok(access)
    }

    // ---- access requests ------------------------------------------------------------------

    /// A consumer's administrator asks the provider for access.
    pub async fn request_access(
        &self,
        subject: &Subject,
        new: &NewAccessRequest,
    ) -> Result<AccessRequest, ExchangeError> {
        let consumer = self.parse_subsystem(&new.consumer)?;
        self.authorize_client(subject, &consumer, "asking for access")
            .await?;
        let service = self.parse_service(&new.service)?;
        if self.load_service(&service).await?.is_none() {
            return Err(ExchangeError::NotFound(format!("service {service}")));
        }
        if self.subsystem(&consumer).await?.is_none() {
            return Err(ExchangeError::NotFound(format!("subsystem {consumer}")));
        }
        let endpoint = Endpoint::new(&new.method, &new.path).map_err(ExchangeError::Invalid)?;
        let request = AccessRequest {
            id: uuid::Uuid::new_v4().to_string(),
            service: service.to_string(),
            consumer: consumer.to_string(),
            method: endpoint.method,
            path: endpoint.path,
            purpose: required("purpose", &new.purpose, 500)?,
            legal_basis: required("legal_basis", &new.legal_basis, 500)?,
            status: "pending".into(),
            reason: None,
            requested_by: subject.actor(),
            requested_at: now_rfc3339(),
            decided_by: None,
            decided_at: None,
            right_id: None,
        };
        sqlx::query(&format!(
            "INSERT INTO xr_access_requests ({REQUEST_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', NULL, $8, $9, NULL, NULL, NULL)"
        ))
        .bind(&request.id)
        .bind(service.key())
        .bind(consumer.key())
        .bind(&request.method)
        .bind(&request.path)
        .bind(&request.purpose)
        .bind(&request.legal_basis)
        .bind(&request.requested_by)
        .bind(&request.requested_at)
        .execute(self.db.pool())
        .await?;
        self.record(
            subject,
            "exchange.access.request",
            &request.service,
            &request,
        )
        .await?;
        Ok(request)
    }

    fn display_request(&self, mut r: AccessRequest) -> AccessRequest {
        r.service = format!("{}/{}", self.instance, r.service);
        r.consumer = self.client(&r.consumer).to_string();
        r
    }

    pub async fn access_request(&self, id: &str) -> Result<Option<AccessRequest>, ExchangeError> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM xr_access_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|r| self.display_request(request_from_row(&r))))
    }

    /// Access requests, newest first; `status` filters (`pending`, `approved`, `refused`).
    pub async fn access_requests(
        &self,
        status: Option<&str>,
    ) -> Result<Vec<AccessRequest>, ExchangeError> {
        let rows = match status {
            Some(s) => sqlx::query(&format!(
                "SELECT {REQUEST_COLUMNS} FROM xr_access_requests WHERE status = $1 ORDER BY requested_at DESC"
            ))
            .bind(s)
            .fetch_all(self.db.pool())
            .await?,
            None => sqlx::query(&format!(
                "SELECT {REQUEST_COLUMNS} FROM xr_access_requests ORDER BY requested_at DESC"
            ))
            .fetch_all(self.db.pool())
            .await?,
        };
        Ok(rows
            .iter()
            .map(|r| self.display_request(request_from_row(r)))
            .collect())
    }

    /// The provider's administrator approves (granting the right asked for) or refuses with a
    /// reason. A request is decided once.
    pub async fn decide_access(
        &self,
        subject: &Subject,
        id: &str,
        decision: &Decision,
    ) -> Result<AccessRequest, ExchangeError> {
        let request = self
            .access_request(id)
            .await?
            .ok_or_else(|| ExchangeError::NotFound(format!("access request {}", clip(id, 40))))?;
        let service = self.parse_service(&request.service)?;
        self.authorize_client(subject, &service.provider, "deciding an access request")
            .await?;
        let reason = decision
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| clip(r, 1000));
        if !decision.approve && reason.is_none() {
            return Err(ExchangeError::invalid("a refusal needs a reason"));
        }
        let right_id = if decision.approve {
            let right = self
                .insert_right(
                    subject,
                    &service,
                    &NewRight {
                        grantee: request.consumer.clone(),
                        method: request.method.clone(),
                        path: request.path.clone(),
                        legal_basis: request.legal_basis.clone(),
                        valid_until: decision.valid_until,
                        fields: decision.fields.clone(),
                    },
                )
                .await?;
            Some(right.id)
        } else {
            None
        };
        let status = if decision.approve {
            "approved"
        } else {
            "refused"
        };
        let n = sqlx::query(
            "UPDATE xr_access_requests SET status = $1, reason = $2, decided_by = $3, decided_at = $4, \
             right_id = $5 WHERE id = $6 AND status = 'pending'",
        )
        .bind(status)
        .bind(&reason)
        .bind(subject.actor())
        .bind(now_rfc3339())
        .bind(&right_id)
        .bind(id)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if n == 0 {
            if let Some(rid) = &right_id {
                sqlx::query("UPDATE xr_rights SET revoked_at = $1 WHERE id = $2")
                    .bind(now_rfc3339())
                    .bind(rid)
                    .execute(self.db.pool())
                    .await?;
            }
            return Err(ExchangeError::Conflict(format!(
                "access request {} was already decided",
                clip(id, 40)
            )));
        }
        self.record(
            subject,
            &format!("exchange.access.{status}"),
            &request.service,
            &(id, &reason),
        )
        .await?;
        self.access_request(id)
            .await?
            .ok_or_else(|| ExchangeError::NotFound(id.to_string()))
    }
}

/// Whether a URL names this machine or a private network by literal address or `localhost`.
/// (Names resolving to such addresses are the deployment's egress firewall's to stop.)
fn internal_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => {
            ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()
        }
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => true,
    }
}

/// Whether a granted endpoint (possibly with `*`) covers a declared endpoint.
fn covers(granted: &Endpoint, declared: &Endpoint) -> bool {
    (granted.method == "*" || granted.method == declared.method)
        && (granted.path == "*" || granted.path == declared.path)
}

fn member_from_row(r: &AnyRow) -> Member {
    Member {
        id: r.get(0),
        class: r.get(1),
        code: r.get(2),
        name: Text::owned(r.get::<String, _>(3), r.get::<String, _>(4)),
        agency: r.get(5),
        created_at: r.get(6),
    }
}
