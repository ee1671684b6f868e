//! Data subjects' consents: a person, signed in with the digital ID, lets one consumer
//! subsystem use one service for one purpose until a date, and may revoke it at any time. A call
//! to a service that requires consent must reference a consent valid now, for that consumer,
//! service and purpose. Data subjects are known to the log only by keyed pseudonyms.
//!
//! The gateway caches consents it found valid for [`crate::registry::CACHE_SECS`]: a revocation
//! stops calls at once on the node that recorded it, and on other nodes within that time.

use saphan_identity::{Directory, Identity};
use saphan_store::sqlx::{self, any::AnyRow, Row};
use serde::{Deserialize, Serialize};

use crate::{now_rfc3339, now_unix, ExchangeError, Registry};

/// Longest a consent may be given for.
pub const MAX_CONSENT_DAYS: i64 = 366;

/// The keyed pseudonym under which a data subject appears in the message log: the same for a
/// citizen whether the call named their national id or referenced their consent.
pub async fn subject_pseudonym(directory: &Directory, key: &str) -> Result<String, ExchangeError> {
    Ok(format!(
        "ds:{}",
        &directory.mac("exchange-data-subject", key).await?[..32]
    ))
}

/// The key a person is known by as a data subject: their national id, else their identity id.
pub fn subject_key(identity: &Identity) -> String {
    match &identity.national_id {
        Some(nid) => format!("nid:{}", nid.digits()),
        None => format!("identity:{}", identity.id),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Consent {
    pub id: String,
    pub consumer: String,
    pub service: String,
    pub purpose: String,
    pub granted_at: String,
    pub valid_until: i64,
    pub revoked_at: Option<String>,
}

/// What a person submits to give consent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewConsent {
    /// The consumer subsystem, e.g. `TH/GOV/DBD/REGISTRY`.
    pub consumer: String,
    /// The service, e.g. `TH/GOV/DOPA/CIVREG/person`.
    pub service: String,
    pub purpose: String,
    /// Unix seconds; at most a year ahead.
    pub valid_until: i64,
}

/// A consent the gateway found for a call.
#[derive(Debug, Clone)]
pub struct ValidConsent {
    pub id: String,
    /// The data subject's pseudonym.
    pub subject: String,
    /// The data subject as the provider knows them (`TH<national id>`, `<ISO3>:<passport>`),
    /// for the signed assertion: the provider checks that the record asked for is theirs.
    pub subject_id: String,
    /// The purpose the consent was given for.
    pub purpose: String,
}

/// How a provider knows a person: `TH` + national id, or nationality + `:` + passport number.
pub fn provider_identifier(identity: &Identity) -> String {
    match (
        &identity.national_id,
        &identity.passport_number,
        &identity.nationality,
    ) {
        (Some(nid), _, _) => format!("TH{}", nid.digits()),
        (None, Some(passport), Some(nationality)) => format!("{nationality}:{passport}"),
        _ => format!("identity:{}", identity.id),
    }
}

/// Why a consent did not cover a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentRefusal {
    Unknown,
    Revoked,
    Expired,
    /// Given to another consumer, for another service or another purpose.
    OtherScope,
}

fn consent_from_row(registry: &Registry, r: &AnyRow) -> Consent {
    Consent {
        id: r.get(0),
        consumer: format!("{}/{}", registry.instance(), r.get::<String, _>(1)),
        service: format!("{}/{}", registry.instance(), r.get::<String, _>(2)),
        purpose: r.get(3),
        granted_at: r.get(4),
        valid_until: r.get(5),
        revoked_at: r.get(6),
    }
}

const COLUMNS: &str = "id, consumer, service_id, purpose, granted_at, valid_until, revoked_at";

impl Registry {
    /// `person` gives consent. The service must require consent and allow the purpose.
    pub async fn give_consent(
        &self,
        directory: &Directory,
        person: &Identity,
        new: &NewConsent,
    ) -> Result<Consent, ExchangeError> {
        let consumer = self.parse_subsystem(&new.consumer)?;
        let service_id = self.parse_service(&new.service)?;
        let service = self
            .service(&service_id)
            .await?
            .ok_or_else(|| ExchangeError::NotFound(format!("service {service_id}")))?;
        if self.subsystem(&consumer).await?.is_none() {
            return Err(ExchangeError::NotFound(format!("subsystem {consumer}")));
        }
        if !service.consent_required && !service.personal_data {
            return Err(ExchangeError::invalid(format!(
                "service {service_id} carries no personal data and does not ask for consent"
            )));
        }
        let purpose = new.purpose.trim();
        if purpose.is_empty()
            || purpose.len() > 100
            || (!service.purposes.is_empty() && !service.purposes.iter().any(|p| p == purpose))
        {
            return Err(ExchangeError::invalid(format!(
                "purpose must be one of: {}",
                service.purposes.join(", ")
            )));
        }
        let now = now_unix();
        if new.valid_until <= now || new.valid_until > now + MAX_CONSENT_DAYS * 86_400 {
            return Err(ExchangeError::invalid(
                "valid_until must be in the future and at most a year ahead",
            ));
        }
        let subject = subject_pseudonym(directory, &subject_key(person)).await?;
        let consent = Consent {
            id: uuid::Uuid::new_v4().to_string(),
            consumer: consumer.to_string(),
            service: service_id.to_string(),
            purpose: purpose.to_string(),
            granted_at: now_rfc3339(),
            valid_until: new.valid_until,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO xr_consents (id, identity_id, subject_key, consumer, service_id, purpose, \
             granted_at, valid_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&consent.id)
        .bind(&person.id)
        .bind(&subject)
        .bind(consumer.key())
        .bind(service_id.key())
        .bind(&consent.purpose)
        .bind(&consent.granted_at)
        .bind(consent.valid_until)
        .execute(self.db().pool())
        .await?;
        self.record_as(
            format!("identity:{}", person.id),
            "exchange.consent.give",
            &subject,
            &consent,
        )
        .await?;
        Ok(consent)
    }

    /// The consents `person` gave, newest first.
    pub async fn consents_of(&self, person: &Identity) -> Result<Vec<Consent>, ExchangeError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM xr_consents WHERE identity_id = $1 ORDER BY granted_at DESC"
        ))
        .bind(&person.id)
        .fetch_all(self.db().pool())
        .await?;
        Ok(rows.iter().map(|r| consent_from_row(self, r)).collect())
    }

    /// `person` revokes one of their consents; calls referencing it fail from now on.
    pub async fn revoke_consent(
        &self,
        person: &Identity,
        consent_id: &str,
    ) -> Result<(), ExchangeError> {
        let n = sqlx::query(
            "UPDATE xr_consents SET revoked_at = $1 WHERE id = $2 AND identity_id = $3 AND revoked_at IS NULL",
        )
        .bind(now_rfc3339())
        .bind(consent_id)
        .bind(&person.id)
        .execute(self.db().pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(ExchangeError::NotFound(
                "no such consent of yours, or it was already revoked".into(),
            ));
        }
        self.record_as(
            format!("identity:{}", person.id),
            "exchange.consent.revoke",
            consent_id,
            &consent_id,
        )
        .await?;
        Ok(())
    }

    /// The gateway's check: is `consent_id` valid now for this consumer, service and purpose?
    pub async fn check_consent(
        &self,
        directory: &Directory,
        consent_id: &str,
        consumer_key: &str,
        service_key: &str,
        purpose: Option<&str>,
    ) -> Result<Result<ValidConsent, ConsentRefusal>, ExchangeError> {
        if consent_id.len() > 64 {
            return Ok(Err(ConsentRefusal::Unknown));
        }
        let entry = match self.cached_consent(consent_id) {
            Some(entry) => entry,
            None => {
                let row = sqlx::query(
                    "SELECT subject_key, consumer, service_id, purpose, valid_until, revoked_at, \
                     identity_id FROM xr_consents WHERE id = $1",
                )
                .bind(consent_id)
                .fetch_optional(self.db().pool())
                .await?;
                let Some(row) = row else {
                    return Ok(Err(ConsentRefusal::Unknown));
                };
                if row.get::<Option<String>, _>(5).is_some() {
                    return Ok(Err(ConsentRefusal::Revoked));
                }
                let identity_id: String = row.get(6);
                let Some(person) = directory.get(&identity_id).await? else {
                    return Ok(Err(ConsentRefusal::Unknown));
                };
                let entry = crate::registry::ConsentEntry {
                    subject_id: provider_identifier(&person),
                    subject: row.get(0),
                    consumer: row.get(1),
                    service: row.get(2),
                    purpose: row.get(3),
                    valid_until: row.get(4),
                };
                self.cache_consent(consent_id, entry.clone());
                entry
            }
        };
        if entry.valid_until <= now_unix() {
            return Ok(Err(ConsentRefusal::Expired));
        }
        let scope_ok = entry.consumer == consumer_key
            && entry.service == service_key
            && purpose.is_none_or(|p| p == entry.purpose);
        if !scope_ok {
            return Ok(Err(ConsentRefusal::OtherScope));
        }
        Ok(Ok(ValidConsent {
            id: consent_id.to_string(),
            subject: entry.subject,
            subject_id: entry.subject_id,
            purpose: entry.purpose,
        }))
    }
}

/// The keyed pseudonym of a user id (`X-Road-UserId`, GDX `AgentID`): who acted, without
/// keeping a national id in the log.
pub async fn user_pseudonym(directory: &Directory, user: &str) -> Result<String, ExchangeError> {
    Ok(format!(
        "user:{}",
        &directory.mac("exchange-user", user.trim()).await?[..32]
    ))
}
