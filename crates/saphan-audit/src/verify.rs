//! Verification: one streaming pass over the records in order, checking each record's hash,
//! each link, and at the end of each checkpoint's range its Merkle root, chain head, signature
//! and time-stamp. Used on the live database and on exported bundles alike.

use saphan_crypto::PublicKeySet;
use saphan_store::Db;

use crate::checkpoint::CheckpointFault;
use crate::record::decode_hash;
use crate::record::CHECKPOINT_ACTION;
use crate::{merkle, store, AuditError, AuditRecord, Checkpoint, GENESIS_HASH};

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub records: u64,
    pub checkpoints: u64,
    /// Records after the last checkpoint: chain-verified, not yet signed.
    pub unsigned_tail: u64,
}

/// The first thing found wrong, naming the record or checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct VerifyFailure {
    /// The first record implicated, when one can be named.
    pub seq: Option<u64>,
    pub message: String,
}

fn fail<T>(seq: impl Into<Option<u64>>, message: String) -> Result<T, VerifyFailure> {
    Err(VerifyFailure {
        seq: seq.into(),
        message,
    })
}

pub struct Verifier {
    keys: PublicKeySet,
    checkpoints: Vec<Checkpoint>,
    next_checkpoint: usize,
    expected_seq: u64,
    prev_hash: [u8; 32],
    leaves: Vec<[u8; 32]>,
}

impl Verifier {
    /// Checkpoints must tile the log from record 1 without gaps or overlaps.
    pub fn new(
        keys: PublicKeySet,
        mut checkpoints: Vec<Checkpoint>,
    ) -> Result<Verifier, VerifyFailure> {
        checkpoints.sort_by_key(|c| c.first_seq);
        let mut expected_first = 1;
        for c in &checkpoints {
            if c.first_seq != expected_first
                || c.last_seq < c.first_seq
                || c.last_seq >= i64::MAX as u64
            {
                return fail(
                    c.first_seq,
                    format!(
                        "{} does not follow the previous checkpoint (expected it to start at record {expected_first}); a checkpoint was altered or removed",
                        c.describe()
                    ),
                );
            }
            expected_first = c.last_seq + 1;
        }
        Ok(Verifier {
            keys,
            checkpoints,
            next_checkpoint: 0,
            expected_seq: 1,
            prev_hash: GENESIS_HASH,
            leaves: Vec::new(),
        })
    }

    /// Records verified so far.
    pub fn records_seen(&self) -> u64 {
        self.expected_seq - 1
    }

    pub fn feed(&mut self, record: &AuditRecord) -> Result<(), VerifyFailure> {
        let seq = record.seq;
        if seq != self.expected_seq {
            return if seq > self.expected_seq {
                fail(
                    self.expected_seq,
                    format!(
                        "record {} is missing (the next record present is {seq})",
                        self.expected_seq
                    ),
                )
            } else {
                fail(seq, format!("record {seq} appears out of order or twice"))
            };
        }
        let Some(computed) = record.computed_hash() else {
            return fail(seq, format!("record {seq}: a hash field is not 64 hexadecimal digits; the record was altered"));
        };
        if decode_hash(&record.hash) != Some(computed) {
            return fail(
                seq,
                format!("record {seq}: its contents do not match its hash; the record was altered"),
            );
        }
        if decode_hash(&record.prev_hash) != Some(self.prev_hash) {
            return fail(
                seq.saturating_sub(1).max(1),
                format!(
                    "record {seq}: prev_hash is not the hash of record {}; record {} was altered (and re-hashed) or record {seq}'s link was",
                    seq - 1,
                    seq - 1
                ),
            );
        }
        // Each checkpoint's record follows its range, and every checkpoint record has its
        // checkpoint: so a removed checkpoint is named by the chain itself.
        let closed = self
            .next_checkpoint
            .checked_sub(1)
            .map(|i| &self.checkpoints[i]);
        let is_checkpoint_record = record.action == CHECKPOINT_ACTION;
        match closed.filter(|c| c.last_seq.checked_add(1) == Some(seq)) {
            Some(c)
                if !is_checkpoint_record
                    || record.payload_hash != hex::encode(c.statement_hash()) =>
            {
                return fail(seq, format!("record {seq} should be the record of the {} but does not match it; the checkpoint or the record was altered", c.describe()));
            }
            None if is_checkpoint_record => {
                return fail(seq, format!("record {seq} records a checkpoint ({}) that is missing; a checkpoint was removed", record.subject));
            }
            _ => {}
        }
        self.prev_hash = computed;
        self.expected_seq += 1;

        if let Some(c) = self.checkpoints.get(self.next_checkpoint) {
            if seq >= c.first_seq {
                self.leaves.push(computed);
            }
            if seq == c.last_seq {
                let c = c.clone();
                self.close_checkpoint(&c, &record.hash)?;
            }
        }
        Ok(())
    }

    fn close_checkpoint(&mut self, c: &Checkpoint, head_hash: &str) -> Result<(), VerifyFailure> {
        let root = hex::encode(merkle::merkle_root(&self.leaves));
        self.leaves.clear();
        self.next_checkpoint += 1;
        if root != c.merkle_root {
            return fail(c.first_seq, format!("{}: the Merkle root of the stored records differs from the signed root; a record in {}–{} or the checkpoint was altered", c.describe(), c.first_seq, c.last_seq));
        }
        if head_hash != c.head_hash {
            return fail(
                c.last_seq,
                format!(
                    "{}: the chain head differs from the signed head",
                    c.describe()
                ),
            );
        }
        match c.verify_signatures(&self.keys) {
            Ok(()) => Ok(()),
            Err(CheckpointFault::Signature) => fail(c.first_seq, format!("{}: the platform signature does not verify; the checkpoint was altered or signed by an unknown key", c.describe())),
            Err(CheckpointFault::Timestamp) => fail(c.first_seq, format!("{}: the time-stamp token does not verify; the checkpoint or its token was altered", c.describe())),
        }
    }

    /// Ends the pass. `head` is the chain head the store claims, if it keeps one.
    pub fn finish(self, head: Option<(u64, &str)>) -> Result<VerifyReport, VerifyFailure> {
        let last = self.expected_seq - 1;
        if let Some(c) = self.checkpoints.get(self.next_checkpoint) {
            return fail(
                last + 1,
                format!(
                    "records {}–{} are missing: {} covers them",
                    last + 1,
                    c.last_seq,
                    c.describe()
                ),
            );
        }
        if let Some(c) = self
            .checkpoints
            .last()
            .filter(|c| c.last_seq == last && last > 0)
        {
            return fail(
                last + 1,
                format!(
                    "the record of the {} is missing: the log was cut after record {last}",
                    c.describe()
                ),
            );
        }
        if let Some((head_seq, head_hash)) = head {
            if head_seq != last {
                return fail(last + 1, format!("the chain head says the log ends at record {head_seq}, but the last record present is {last}; records were removed"));
            }
            if last > 0 && decode_hash(head_hash) != Some(self.prev_hash) {
                return fail(last, format!("the chain head hash differs from record {last}'s hash; record {last} or the head was altered"));
            }
        }
        // The last checkpoint's own record is bound to its signed statement: not counted.
        let covered = self.checkpoints.last().map_or(0, |c| c.last_seq + 1);
        Ok(VerifyReport {
            records: last,
            checkpoints: self.checkpoints.len() as u64,
            unsigned_tail: last.saturating_sub(covered),
        })
    }
}

/// Outcome of verifying: either a report, a named failure, or an error reading the log.
pub type VerifyOutcome = Result<Result<VerifyReport, VerifyFailure>, AuditError>;

/// Verifies the whole log in `db`, streaming it in pages. `progress(done, total)` is called
/// after each page.
pub async fn verify_database(
    db: &Db,
    keys: &PublicKeySet,
    mut progress: impl FnMut(u64, u64),
) -> VerifyOutcome {
    const PAGE: u32 = 5000;
    let (head_seq, head_hash, checkpoints) = consistent_view(db).await?;
    let mut verifier = match Verifier::new(keys.clone(), checkpoints) {
        Ok(v) => v,
        Err(f) => return Ok(Err(f)),
    };
    let mut after = 0;
    loop {
        let page = store::read_records(db, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in page.iter().take_while(|r| r.seq <= head_seq) {
            if let Err(f) = verifier.feed(record) {
                return Ok(Err(f));
            }
        }
        progress(verifier.records_seen(), head_seq);
        if after >= head_seq {
            break;
        }
    }
    Ok(verifier.finish(Some((head_seq, &head_hash))))
}

/// The chain head and every checkpoint, read so that they agree: a checkpoint and its record
/// commit together (moving the head), so if the head is the same before and after reading the
/// checkpoints, no checkpoint was added in between. A checkpoint beyond that head is then
/// evidence (a cut log), never a race, and is kept for the verifier to name.
pub(crate) async fn consistent_view(db: &Db) -> Result<(u64, String, Vec<Checkpoint>), AuditError> {
    let mut head = store::head(db).await?;
    loop {
        let checkpoints = store::read_checkpoints(db).await?;
        let again = store::head(db).await?;
        if again == head {
            return Ok((head.0, head.1, checkpoints));
        }
        head = again;
    }
}
