//! Inclusion proofs: a record, its audit path in its checkpoint's Merkle tree, the checkpoint and
//! the public keys. Self-contained, so that a court or an auditor can check it offline.

use saphan_crypto::PublicKeySet;
use saphan_store::Db;
use serde::{Deserialize, Serialize};

use crate::record::decode_hash;
use crate::{merkle, store, AuditError, AuditRecord, Checkpoint};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub format: String,
    pub record: AuditRecord,
    /// Position of the record among the checkpoint's leaves (0-based).
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Hex hashes, leaf to root, as RFC 9162 §2.1.3 orders them.
    pub audit_path: Vec<String>,
    pub checkpoint: Checkpoint,
    /// The platform's public keys at the time of export; verify against keys obtained
    /// independently (`saphan keys export-public`) where possible.
    pub public_keys: PublicKeySet,
}

pub const PROOF_FORMAT: &str = "saphan-audit-proof-1";

/// The inclusion proof of record `seq` in the checkpoint that covers it.
pub async fn inclusion_proof(
    db: &Db,
    keys: &PublicKeySet,
    seq: u64,
) -> Result<InclusionProof, AuditError> {
    let record = store::read_record(db, seq)
        .await?
        .ok_or(AuditError::NoSuchRecord(seq))?;
    let checkpoint = store::checkpoint_covering(db, seq)
        .await?
        .ok_or(AuditError::NotCheckpointed(seq))?;
    let hashes = store::read_hashes(db, checkpoint.first_seq, checkpoint.last_seq).await?;
    let leaves: Vec<[u8; 32]> = hashes
        .iter()
        .map(|h| decode_hash(h).unwrap_or([0; 32]))
        .collect();
    let index = (seq - checkpoint.first_seq) as usize;
    if index >= leaves.len() {
        return Err(AuditError::NoSuchRecord(seq));
    }
    let path = merkle::inclusion_path(&leaves, index);
    Ok(InclusionProof {
        format: PROOF_FORMAT.into(),
        record,
        leaf_index: index as u64,
        tree_size: leaves.len() as u64,
        audit_path: path.iter().map(hex::encode).collect(),
        checkpoint,
        public_keys: keys.clone(),
    })
}

impl InclusionProof {
    /// Checks the proof with `trusted` keys (or the proof's own keys when `None`).
    pub fn verify(&self, trusted: Option<&PublicKeySet>) -> Result<(), String> {
        let seq = self.record.seq;
        let c = &self.checkpoint;
        let computed = self
            .record
            .computed_hash()
            .ok_or_else(|| format!("record {seq}: a hash field is not valid hex"))?;
        if decode_hash(&self.record.hash) != Some(computed) {
            return Err(format!("record {seq}: its contents do not match its hash"));
        }
        let in_range = c.first_seq <= seq && seq <= c.last_seq;
        let size = c
            .last_seq
            .checked_sub(c.first_seq)
            .and_then(|d| d.checked_add(1));
        if !in_range || self.leaf_index != seq - c.first_seq || Some(self.tree_size) != size {
            return Err(format!(
                "record {seq} is not at the position the proof claims in {}",
                c.describe()
            ));
        }
        let path = self
            .audit_path
            .iter()
            .map(|h| {
                decode_hash(h).ok_or_else(|| "the audit path holds a malformed hash".to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let root =
            merkle::root_from_inclusion_path(&computed, self.leaf_index, self.tree_size, &path)
                .ok_or_else(|| "the audit path has the wrong length for the tree".to_string())?;
        if hex::encode(root) != c.merkle_root {
            return Err(format!(
                "record {seq} is not included in {}: the path leads to another root",
                c.describe()
            ));
        }
        c.verify_signatures(trusted.unwrap_or(&self.public_keys))
            .map_err(|fault| format!("{}: {fault:?} does not verify", c.describe()))
    }
}
