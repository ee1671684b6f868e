//! Prefill without copies: the registry data an application's forms name, read by the portal
//! (itself a member subsystem of the exchange) through `/r1/...` with the applicant's consent,
//! and kept on the application as verified values with their source, time and the exchange's
//! message id. The applicant never uploads or types what a registry holds.

use std::collections::BTreeMap;

use saphan_core::clock::now_text;
use saphan_core::Text;
use saphan_exchange::consent::NewConsent;
use saphan_exchange::gateway::Gateway;
use saphan_identity::Identity;
use saphan_procedures::{Lookup, LookupFrom, ProcedureDoc, Source};
use serde::Serialize;
use serde_json::{json, Value};

use crate::model::{Application, Status, Verified};
use crate::{ApplicationError, Applications};

/// The purpose the applicant consents to, stated on every read.
pub const PURPOSE: &str = "one-stop-application";

/// How long a consent given on the portal lasts (the applicant may revoke it sooner).
const CONSENT_DAYS: i64 = 90;

/// One registry read an application needs: what the consent page states, then performs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryRead {
    /// The requirement's key (`house`), shared by a bundle's procedures.
    pub key: String,
    pub title: Text,
    pub service: String,
    pub provider: Text,
    /// The fields read, and no more (the portal's right on the service names the same).
    pub fields: Vec<String>,
    pub lookup: Lookup,
}

/// A read performed: where to find it in the exchange's message log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadDone {
    pub key: String,
    pub service: String,
    pub message_id: String,
    pub consent: String,
    /// How many of the forms' fields it filled.
    pub filled: usize,
}

/// Whether a procedure reads the applicant's business from a registry (so an application
/// must name the juristic person the applicant acts for).
pub fn needs_business(procedure: &ProcedureDoc) -> bool {
    procedure.requirements.iter().any(|r| {
        matches!(&r.source, Source::Registry { lookup: Some(l), .. } if l.from == LookupFrom::Business)
    })
}

/// The registry reads of `procedures`, each requirement key once (a bundle's procedures share
/// them; their fields are merged), in document order so that a lookup's source comes first.
pub fn reads(procedures: &[ProcedureDoc]) -> Vec<RegistryRead> {
    let mut out: Vec<RegistryRead> = Vec::new();
    for p in procedures {
        for r in &p.requirements {
            let Source::Registry {
                service,
                provider,
                fields,
                lookup: Some(lookup),
            } = &r.source
            else {
                continue;
            };
            match out.iter_mut().find(|x| x.key == r.key) {
                Some(known) if known.service == *service => {
                    for f in fields {
                        if !known.fields.contains(f) {
                            known.fields.push(f.clone());
                        }
                    }
                }
                Some(_) => {}
                None => out.push(RegistryRead {
                    key: r.key.clone(),
                    title: r.title.clone(),
                    service: service.clone(),
                    provider: provider.clone(),
                    fields: fields.clone(),
                    lookup: lookup.clone(),
                }),
            }
        }
    }
    out
}

/// The applicant's own id as registries know it: a Thai national id, or
/// `NATIONALITY-PASSPORT` for a foreigner.
pub fn applicant_key(person: &Identity) -> Option<String> {
    match (
        &person.national_id,
        &person.passport_number,
        &person.nationality,
    ) {
        (Some(nid), _, _) => Some(nid.digits().to_string()),
        (None, Some(passport), Some(nationality)) => Some(format!("{nationality}-{passport}")),
        _ => None,
    }
}

fn read_failed(read: &RegistryRead, th: &str, en: &str) -> ApplicationError {
    ApplicationError::Registry(Text::owned(
        format!("{} ({}): {th}", read.title.th, read.provider.th),
        format!("{} ({}): {en}", read.title.en, read.provider.en),
    ))
}

impl Applications {
    /// The registry reads `application` needs, for its consent page.
    pub async fn registry_reads(
        &self,
        application: &Application,
    ) -> Result<Vec<RegistryRead>, ApplicationError> {
        Ok(reads(&self.procedures(application).await?))
    }

    /// The applicant consents to the reads (or a consent they gave before and that holds is
    /// reused), and the portal subsystem `portal` performs them through the exchange; the
    /// forms' registry fields become verified values, each read a line on the timeline.
    pub async fn prefill(
        &self,
        gateway: &Gateway,
        portal: &str,
        person: &Identity,
        id: &str,
    ) -> Result<(Application, Vec<ReadDone>), ApplicationError> {
        let app = self.of_applicant(&person.id, id).await?;
        if !matches!(app.status, Status::Draft | Status::SentBack) {
            return Err(ApplicationError::conflict(
                "คำขออยู่ระหว่างพิจารณา",
                "the application is with the officials",
            ));
        }
        let procedures = self.procedures(&app).await?;
        // The act-for relation is checked again: it may have ended since the application began.
        if let Some(company) = &app.on_behalf_of {
            let still = self
                .directory
                .act_for(&person.id)
                .await?
                .iter()
                .any(|a| &a.juristic_id == company);
            if !still {
                return Err(ApplicationError::Forbidden(Text::new(
                    "ท่านไม่มีอำนาจทำการแทนนิติบุคคลนี้แล้ว",
                    "you no longer act for this juristic person",
                )));
            }
        }
        let exchange = gateway.registry();
        let exchange_error = |e: saphan_exchange::ExchangeError| {
            ApplicationError::Registry(Text::owned(
                "ระบบแลกเปลี่ยนข้อมูลไม่พร้อม",
                format!("the exchange: {e}"),
            ))
        };
        let consumer = exchange.parse_subsystem(portal).map_err(exchange_error)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let held = exchange.consents_of(person).await.map_err(exchange_error)?;
        let mut records: BTreeMap<String, Value> = BTreeMap::new();
        let mut values = BTreeMap::new();
        let mut done = Vec::new();
        let needed = reads(&procedures);
        for read in &needed {
            let service_id = exchange
                .parse_service(&read.service)
                .map_err(exchange_error)?;
            let lookup_value = match &read.lookup.from {
                LookupFrom::Applicant => applicant_key(person),
                LookupFrom::Business => app.on_behalf_of.clone(),
                LookupFrom::Requirement { key, field } => records
                    .get(key)
                    .and_then(|r| r.get(field))
                    .and_then(|v| v.as_str().map(str::to_string)),
            };
            let Some(lookup_value) = lookup_value else {
                return Err(read_failed(
                    read,
                    "ไม่มีข้อมูลที่ใช้ค้นหาระเบียน",
                    "there is nothing to look the record up by",
                ));
            };
            let service = exchange
                .service(&service_id)
                .await
                .map_err(exchange_error)?
                .ok_or_else(|| read_failed(read, "ไม่พบบริการ", "the service is not published"))?;
            let Some(endpoint) = service
                .endpoints
                .iter()
                .find(|e| e.method == "POST" && e.path.ends_with("/read"))
            else {
                return Err(read_failed(
                    read,
                    "บริการไม่มีการอ่านระเบียน",
                    "the service answers no read",
                ));
            };
            let consent = match held.iter().find(|c| {
                c.revoked_at.is_none()
                    && c.valid_until > now + 3600
                    && c.consumer == consumer.to_string()
                    && c.service == service_id.to_string()
                    && c.purpose == PURPOSE
            }) {
                Some(c) => c.id.clone(),
                None => {
                    exchange
                        .give_consent(
                            &self.directory,
                            person,
                            &NewConsent {
                                consumer: consumer.to_string(),
                                service: service_id.to_string(),
                                purpose: PURPOSE.into(),
                                valid_until: now + CONSENT_DAYS * 86_400,
                            },
                        )
                        .await
                        .map_err(exchange_error)?
                        .id
                }
            };
            let mut headers = http::HeaderMap::new();
            let mut set = |name: &'static str, value: &str| {
                if let Ok(v) = http::HeaderValue::from_str(value) {
                    headers.insert(http::HeaderName::from_static(name), v);
                }
            };
            set("content-type", "application/json");
            set(saphan_exchange::protocol::CONSENT, &consent);
            set(saphan_exchange::protocol::PURPOSE, PURPOSE);
            set(saphan_exchange::protocol::USER_ID, &person.id);
            if let Some(nid) = &person.national_id {
                set(
                    saphan_exchange::protocol::DATA_SUBJECT,
                    &format!("TH{}", nid.digits()),
                );
            }
            let body = json!({"query": {"content": {read.lookup.field.clone(): lookup_value}}});
            let (status, answer_headers, answer) = gateway
                .call_as_platform(
                    &consumer,
                    http::Method::POST,
                    service_id.clone(),
                    &endpoint.path,
                    headers,
                    bytes::Bytes::from(body.to_string()),
                )
                .await
                .map_err(|e| read_failed(read, "การเรียกผ่านระบบแลกเปลี่ยนล้มเหลว", &e.message))?;
            let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            if status == http::StatusCode::NOT_FOUND && answer.get("content").is_none() {
                return Err(read_failed(
                    read,
                    "ทะเบียนไม่มีระเบียนของท่าน",
                    "the registry holds no record for you",
                ));
            }
            if !status.is_success() {
                let why = answer["message"]
                    .as_str()
                    .or(answer["detail"].as_str())
                    .unwrap_or("");
                return Err(read_failed(
                    read,
                    &format!("ทะเบียนตอบ {status} {why}"),
                    &format!("the registry answered {status} {why}"),
                ));
            }
            let message_id = answer_headers
                .get(saphan_exchange::protocol::ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let record = answer["content"].clone();
            let at = now_text();
            let mut filled = 0;
            for p in &procedures {
                for (field, requirement, pointer) in p.form.verified_fields() {
                    if requirement != read.key || values.contains_key(field) {
                        continue;
                    }
                    if let Some(value) = record.pointer(pointer) {
                        values.insert(
                            field.to_string(),
                            Verified {
                                value: value.clone(),
                                source: service_id.to_string(),
                                message_id: message_id.clone(),
                                at: at.clone(),
                            },
                        );
                        filled += 1;
                    }
                }
            }
            records.insert(read.key.clone(), record);
            done.push(ReadDone {
                key: read.key.clone(),
                service: service_id.to_string(),
                message_id,
                consent,
                filled,
            });
        }
        let lines: Vec<Text> = done
            .iter()
            .filter_map(|d| {
                let read = needed.iter().find(|r| r.key == d.key)?;
                Some(Text::owned(
                    format!(
                        "{} ส่ง{}ผ่านระบบแลกเปลี่ยนข้อมูลตามความยินยอมของท่าน (ข้อความ {})",
                        read.provider.th, read.title.th, d.message_id
                    ),
                    format!(
                        "{} sent {} through the exchange with your consent (message {})",
                        sentence_case(&read.provider.en, true),
                        sentence_case(&read.title.en, false),
                        d.message_id
                    ),
                ))
            })
            .collect();
        let app = self.record_verified(&person.id, id, values, &lines).await?;
        Ok((app, done))
    }
}

/// `text` with its first letter upper-case (starting a sentence) or lower-case (inside one).
fn sentence_case(text: &str, upper: bool) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if upper => first.to_uppercase().chain(chars).collect(),
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The record fields a read needs for its lookups and forms (the portal's right names them).
pub fn released_fields(read: &RegistryRead, all: &[RegistryRead]) -> Vec<String> {
    let mut fields = read.fields.clone();
    fields.push(read.lookup.field.clone());
    for other in all {
        if let LookupFrom::Requirement { key, field } = &other.lookup.from {
            if *key == read.key {
                fields.push(field.clone());
            }
        }
    }
    fields.sort();
    fields.dedup();
    fields
}

impl Applications {
    /// The registry reads applying for `service` (a procedure or bundle code or id) needs:
    /// what an applicant consents to, stated before they apply.
    pub async fn service_reads(
        &self,
        service: &str,
    ) -> Result<Vec<RegistryRead>, ApplicationError> {
        let snapshot = self.catalogue.snapshot().await?;
        let entry = snapshot
            .find(service)
            .ok_or_else(|| ApplicationError::not_found(service))?;
        Ok(reads(&crate::applications::procedures_of(entry, &snapshot)))
    }
}
