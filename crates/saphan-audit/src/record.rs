use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AuditError;

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

const MAX_FIELD: usize = 512;
const MAX_DETAIL: usize = 16 * 1024;

/// The action of the record each checkpoint appends to the chain; reserved for the log itself.
pub const CHECKPOINT_ACTION: &str = "audit.checkpoint";
const CHECKPOINT_ACTOR: &str = "system:audit";

/// What a capability asks to record. The payload itself is not stored: only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub payload_hash: [u8; 32],
    /// A capability's own description of the event (JSON), stored beside the record and bound
    /// to it by `payload_hash`. Never personal data in clear: pseudonyms and hashes only.
    pub detail: Option<String>,
}

impl AuditEntry {
    /// `payload` is hashed as its JSON serialisation.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        payload: &impl Serialize,
    ) -> AuditEntry {
        let bytes = serde_json::to_vec(payload).expect("audit payloads serialise");
        AuditEntry::with_payload_hash(actor, action, subject, Sha256::digest(&bytes).into())
    }

    pub fn with_payload_hash(
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        payload_hash: [u8; 32],
    ) -> AuditEntry {
        AuditEntry {
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            payload_hash,
            detail: None,
        }
    }

    /// An entry whose detail is kept (searchable, exportable with the record's proof); the
    /// payload hash is the SHA-256 of `detail`'s JSON text, so the chain vouches for it.
    pub fn with_detail(
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        detail: &impl Serialize,
    ) -> AuditEntry {
        let text = serde_json::to_string(detail).expect("audit details serialise");
        let mut entry =
            AuditEntry::with_payload_hash(actor, action, subject, Sha256::digest(&text).into());
        entry.detail = Some(text);
        entry
    }

    pub(crate) fn validate(&self) -> Result<(), AuditError> {
        if self.actor.is_empty() || self.action.is_empty() {
            return Err(AuditError::InvalidEntry("actor and action are required"));
        }
        if self.action.starts_with("audit.") {
            return Err(AuditError::InvalidEntry(
                "actions starting with `audit.` are reserved for the log itself",
            ));
        }
        if self.detail.as_ref().is_some_and(|d| d.len() > MAX_DETAIL) {
            return Err(AuditError::InvalidEntry("a detail is at most 16 KiB"));
        }
        if self.actor.len() > MAX_FIELD
            || self.action.len() > MAX_FIELD
            || self.subject.len() > MAX_FIELD
        {
            return Err(AuditError::InvalidEntry(
                "actor, action and subject are at most 512 bytes",
            ));
        }
        Ok(())
    }
}

/// A stored record. Hashes are lowercase hex, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub payload_hash: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What an acknowledged append returns: the record's place and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub seq: u64,
    pub hash: String,
}

/// The record hash: SHA-256 over a domain tag and every field, each length-prefixed so that no
/// two different records can serialise alike.
pub(crate) fn record_hash(
    seq: u64,
    time: &str,
    actor: &str,
    action: &str,
    subject: &str,
    payload_hash: &[u8],
    prev_hash: &[u8],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"saphan-audit-record-1");
    h.update(seq.to_be_bytes());
    for field in [
        time.as_bytes(),
        actor.as_bytes(),
        action.as_bytes(),
        subject.as_bytes(),
        payload_hash,
        prev_hash,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    h.finalize().into()
}

impl AuditRecord {
    /// Recomputes this record's hash from its fields; `None` if a stored hash field is not hex.
    pub fn computed_hash(&self) -> Option<[u8; 32]> {
        let payload = decode_hash(&self.payload_hash)?;
        let prev = decode_hash(&self.prev_hash)?;
        Some(record_hash(
            self.seq,
            &self.time,
            &self.actor,
            &self.action,
            &self.subject,
            &payload,
            &prev,
        ))
    }
}

pub(crate) fn decode_hash(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

/// The entry a checkpoint of `first..=last` appends: its payload hash is the hash of the signed
/// checkpoint statement, so the chain itself says that the checkpoint exists.
pub(crate) fn checkpoint_entry(first: u64, last: u64, statement_hash: [u8; 32]) -> AuditEntry {
    AuditEntry::with_payload_hash(
        CHECKPOINT_ACTOR,
        CHECKPOINT_ACTION,
        format!("checkpoint:{first}-{last}"),
        statement_hash,
    )
}

/// Builds the records that follow `head`, each linked to the one before.
pub(crate) fn chain(
    head_seq: u64,
    head_hash: &str,
    time: &str,
    entries: &[&AuditEntry],
) -> Vec<AuditRecord> {
    let mut prev = decode_hash(head_hash).unwrap_or(GENESIS_HASH);
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let seq = head_seq + 1 + i as u64;
            let hash = record_hash(
                seq,
                time,
                &e.actor,
                &e.action,
                &e.subject,
                &e.payload_hash,
                &prev,
            );
            let record = AuditRecord {
                seq,
                time: time.to_string(),
                actor: e.actor.clone(),
                action: e.action.clone(),
                subject: e.subject.clone(),
                payload_hash: hex::encode(e.payload_hash),
                prev_hash: hex::encode(prev),
                hash: hex::encode(hash),
            };
            prev = hash;
            record
        })
        .collect()
}

/// Whether `record` is exactly the record `checkpoint_entry` makes for `checkpoint`: every field
/// is determined by the signed checkpoint, so none can be changed unnoticed.
pub(crate) fn is_record_of(record: &AuditRecord, checkpoint: &crate::Checkpoint) -> bool {
    let expected = checkpoint_entry(
        checkpoint.first_seq,
        checkpoint.last_seq,
        checkpoint.statement_hash(),
    );
    record.actor == expected.actor
        && record.action == expected.action
        && record.subject == expected.subject
        && record.payload_hash == hex::encode(expected.payload_hash)
        && record.time == checkpoint.created_at
}
