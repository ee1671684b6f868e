use saphan_crypto::{KeyAlg, KeyPurpose, KeyStore, PublicKeySet, Signature, TimeStampToken};
use serde::{Deserialize, Serialize};

use crate::AuditError;

/// A signed statement: "records `first_seq..=last_seq` have this Merkle root, and the chain head
/// at `last_seq` is `head_hash`", with a time-stamp token over that statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub first_seq: u64,
    pub last_seq: u64,
    pub merkle_root: String,
    pub head_hash: String,
    pub created_at: String,
    pub signature: Signature,
    pub timestamp: TimeStampToken,
}

/// Why a checkpoint does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointFault {
    Signature,
    Timestamp,
}

pub(crate) fn statement(
    first_seq: u64,
    last_seq: u64,
    merkle_root: &str,
    head_hash: &str,
    created_at: &str,
) -> Vec<u8> {
    format!(
        "saphan-checkpoint-1\n{first_seq}\n{last_seq}\n{merkle_root}\n{head_hash}\n{created_at}"
    )
    .into_bytes()
}

impl Checkpoint {
    pub(crate) fn sign(
        keys: &KeyStore,
        first_seq: u64,
        last_seq: u64,
        merkle_root: [u8; 32],
        head_hash: String,
    ) -> Result<Checkpoint, AuditError> {
        let created_at = saphan_core::clock::now_text();
        let merkle_root = hex::encode(merkle_root);
        let message = statement(first_seq, last_seq, &merkle_root, &head_hash, &created_at);
        let signature = keys.sign(KeyPurpose::Signing, KeyAlg::ES256, &message)?;
        let timestamp = keys.time_stamp(&saphan_crypto::sha256(&message))?;
        Ok(Checkpoint {
            first_seq,
            last_seq,
            merkle_root,
            head_hash,
            created_at,
            signature,
            timestamp,
        })
    }

    /// SHA-256 of the signed statement: the payload hash of this checkpoint's record.
    pub fn statement_hash(&self) -> [u8; 32] {
        saphan_crypto::sha256(&self.statement())
    }

    fn statement(&self) -> Vec<u8> {
        statement(
            self.first_seq,
            self.last_seq,
            &self.merkle_root,
            &self.head_hash,
            &self.created_at,
        )
    }

    /// Checks the platform signature and the time-stamp token over this checkpoint's statement.
    pub fn verify_signatures(&self, keys: &PublicKeySet) -> Result<(), CheckpointFault> {
        let message = self.statement();
        keys.verify(KeyPurpose::Signing, &message, &self.signature)
            .map_err(|_| CheckpointFault::Signature)?;
        self.timestamp
            .verify(keys, &saphan_crypto::sha256(&message))
            .map_err(|_| CheckpointFault::Timestamp)
    }

    pub fn describe(&self) -> String {
        format!("checkpoint of records {}–{}", self.first_seq, self.last_seq)
    }
}
