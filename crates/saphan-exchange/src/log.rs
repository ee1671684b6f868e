//! The message log, read back: searching the exchange's call records, what a data subject may
//! see about accesses to their data, and self-contained evidence (a record's detail with its
//! inclusion proof and signed checkpoint) that verifies offline.

use saphan_audit::{InclusionProof, RecordFilter};
use saphan_crypto::PublicKeySet;
use saphan_identity::{Directory, Identity};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::consent::{subject_key, subject_pseudonym};
use crate::gateway::{Gateway, CALL_ACTION};
use crate::{ExchangeError, ServiceId};

/// What `saphan exchange log` and the log API search by.
#[derive(Debug, Clone, Default)]
pub struct LogSearch {
    pub consumer: Option<String>,
    pub service: Option<String>,
    /// A national id; searched by its pseudonym, never stored.
    pub national_id: Option<String>,
    pub since: Option<String>,
    pub before_seq: Option<u64>,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub seq: u64,
    pub time: String,
    pub hash: String,
    /// The call record as stored; `null` if the detail is missing.
    pub call: Value,
    /// Whether the stored detail still hashes to the record's payload hash.
    pub detail_intact: bool,
}

fn detail_intact(payload_hash: &str, detail: Option<&str>) -> bool {
    detail.is_some_and(|d| crate::sha256_hex(d) == payload_hash)
}

pub async fn search(
    gateway: &Gateway,
    directory: &Directory,
    q: &LogSearch,
) -> Result<Vec<LogEntry>, ExchangeError> {
    let registry = gateway.registry();
    let subject = match &q.national_id {
        Some(nid) => {
            let nid: saphan_core::NationalId = nid
                .trim()
                .trim_start_matches("TH")
                .parse()
                .map_err(|e| ExchangeError::invalid(format!("subject: {e}")))?;
            Some(subject_pseudonym(directory, &format!("nid:{}", nid.digits())).await?)
        }
        None => None,
    };
    let consumer = q
        .consumer
        .as_deref()
        .map(|c| registry.parse_subsystem(c).map(|c| c.to_string()))
        .transpose()?;
    let service: Option<ServiceId> = q
        .service
        .as_deref()
        .map(|s| registry.parse_service(s))
        .transpose()?;
    let limit = q.limit.clamp(1, 1000);
    // Without a service filter the database does all the work; with one, read further back
    // and filter here (the service is in the detail).
    let fetch = if service.is_some() { 10_000 } else { limit };
    let records = saphan_audit::find_records(
        registry.db(),
        &RecordFilter {
            actor: consumer,
            action: Some(CALL_ACTION.into()),
            subject,
            before_seq: q.before_seq,
            since: q.since.clone(),
            limit: fetch,
        },
    )
    .await?;
    let wanted = service.map(|s| s.to_string());
    Ok(records
        .into_iter()
        .map(|r| {
            let call = r
                .detail
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            LogEntry {
                seq: r.record.seq,
                time: r.record.time.clone(),
                hash: r.record.hash.clone(),
                detail_intact: detail_intact(&r.record.payload_hash, r.detail.as_deref()),
                call,
            }
        })
        .filter(|e| {
            wanted
                .as_deref()
                .is_none_or(|w| e.call.get("service").and_then(Value::as_str) == Some(w))
        })
        .take(limit as usize)
        .collect())
}

/// One access to a person's data, as they see it.
#[derive(Debug, Clone, Serialize)]
pub struct DataAccess {
    pub time: String,
    pub consumer: String,
    /// The consumer's member (agency or company), in both languages.
    pub consumer_name: Option<saphan_core::Text>,
    pub service: String,
    pub service_title: Option<saphan_core::Text>,
    pub purpose: Option<String>,
    pub consent: Option<String>,
    /// True when data was released (the provider answered 2xx), false for refused calls.
    pub released: bool,
    pub x_road_id: String,
    /// The log record's sequence number: evidence can be exported for it.
    pub record: u64,
}

pub async fn data_access(
    gateway: &Gateway,
    directory: &Directory,
    person: &Identity,
    before_seq: Option<u64>,
    limit: u32,
) -> Result<Vec<DataAccess>, ExchangeError> {
    let registry = gateway.registry();
    let pseudonym = subject_pseudonym(directory, &subject_key(person)).await?;
    let records = saphan_audit::find_records(
        registry.db(),
        &RecordFilter {
            action: Some(CALL_ACTION.into()),
            subject: Some(pseudonym),
            before_seq,
            limit: limit.clamp(1, 500),
            ..RecordFilter::default()
        },
    )
    .await?;
    let members = registry.members().await?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let Some(call) = r
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
        else {
            continue;
        };
        let text = |k: &str| call.get(k).and_then(Value::as_str).map(String::from);
        let consumer = text("consumer").unwrap_or_default();
        let consumer_name = crate::ClientId::parse(&consumer, false).ok().and_then(|c| {
            let member = c.member_id().to_string();
            members
                .iter()
                .find(|m| m.id == member)
                .map(|m| m.name.clone())
        });
        let service = text("service").unwrap_or_default();
        let service_title = match ServiceId::parse(&service) {
            Ok(id) => registry.service(&id).await?.map(|s| s.title.clone()),
            Err(_) => None,
        };
        let status = call.get("status").and_then(Value::as_u64).unwrap_or(0);
        out.push(DataAccess {
            time: r.record.time.clone(),
            consumer,
            consumer_name,
            service,
            service_title,
            purpose: text("purpose"),
            consent: text("consent"),
            released: (200..300).contains(&status) && call.get("error").is_none_or(Value::is_null),
            x_road_id: text("x_road_id").unwrap_or_default(),
            record: r.record.seq,
        });
    }
    Ok(out)
}

/// Evidence for one call: its record's detail and the inclusion proof of the record in a
/// signed, time-stamped checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    pub format: String,
    pub detail: String,
    pub proof: InclusionProof,
}

pub const EVIDENCE_FORMAT: &str = "saphan-exchange-evidence-1";

pub async fn evidence(
    gateway: &Gateway,
    keys: &PublicKeySet,
    seq: u64,
) -> Result<Evidence, ExchangeError> {
    let db = gateway.registry().db();
    let proof = saphan_audit::inclusion_proof(db, keys, seq).await?;
    if proof.record.action != CALL_ACTION {
        return Err(ExchangeError::invalid(format!(
            "record {seq} is not an exchange call ({})",
            proof.record.action
        )));
    }
    let detail = saphan_audit::read_detail(db, seq)
        .await?
        .ok_or_else(|| ExchangeError::NotFound(format!("the detail of record {seq}")))?;
    Ok(Evidence {
        format: EVIDENCE_FORMAT.into(),
        detail,
        proof,
    })
}

impl Evidence {
    /// Offline: the detail hashes to the record's payload hash, and the record is in a
    /// checkpoint signed by `trusted` keys (or the evidence's own, when none are given).
    pub fn verify(&self, trusted: Option<&PublicKeySet>) -> Result<(), String> {
        if self.format != EVIDENCE_FORMAT {
            return Err(format!("unknown evidence format `{}`", self.format));
        }
        if crate::sha256_hex(&self.detail) != self.proof.record.payload_hash {
            return Err("the call detail does not match the record's payload hash".into());
        }
        self.proof.verify(trusted)
    }
}
