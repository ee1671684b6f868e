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
    tail: Option<TailPolicy>,
    /// The first record not covered by any checkpoint, with its time.
    first_unsigned: Option<(u64, String)>,
}

/// How much of the log an honest platform leaves unsigned: checkpoints come every N records or
/// T seconds, so a longer or older unsigned tail means checkpoints were removed (or every node
/// stopped uncleanly, which an operator with the keys fixes with `saphan audit checkpoint`).
/// Without such a bound, someone who can write to the database could strip checkpoints from the
/// end one by one and rewrite what they had signed.
#[derive(Debug, Clone, Copy)]
pub struct TailPolicy {
    pub max_records: u64,
    pub max_age: time::Duration,
    /// The moment the tail's age is measured at: now, or when a bundle was exported.
    pub now: time::OffsetDateTime,
}

impl TailPolicy {
    /// Twice what the checkpoint settings allow, plus a minute, to absorb load and clock skew.
    pub fn from_config(
        config: &saphan_core::config::AuditConfig,
        now: time::OffsetDateTime,
    ) -> TailPolicy {
        let per_checkpoint = config
            .checkpoint_every_records
            .saturating_add(config.max_batch as u64);
        TailPolicy {
            max_records: per_checkpoint.saturating_mul(2).saturating_add(1),
            max_age: time::Duration::seconds(
                config
                    .checkpoint_every_secs
                    .saturating_mul(2)
                    .min(i64::MAX as u64 / 4) as i64
                    + 60,
            ),
            now,
        }
    }
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
            tail: None,
            first_unsigned: None,
        })
    }

    /// Fails verification when the unsigned tail exceeds `policy`.
    pub fn with_tail_policy(mut self, policy: Option<TailPolicy>) -> Verifier {
        self.tail = policy;
        self
    }

    /// Records up to here are signed: the last checkpoint's range and its own record.
    fn signed_until(&self) -> u64 {
        self.checkpoints.last().map_or(0, |c| c.last_seq + 1)
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
            Some(c) if !is_checkpoint_record || !crate::record::is_record_of(record, c) => {
                return fail(seq, format!("record {seq} should be the record of the {} but does not match it; the checkpoint or the record was altered", c.describe()));
            }
            None if is_checkpoint_record => {
                return fail(seq, format!("record {seq} records a checkpoint ({}) that is missing; a checkpoint was removed", record.subject));
            }
            _ => {}
        }
        self.prev_hash = computed;
        self.expected_seq += 1;
        if seq > self.signed_until() && self.first_unsigned.is_none() {
            self.first_unsigned = Some((seq, record.time.clone()));
        }

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
        let unsigned_tail = last.saturating_sub(self.signed_until());
        if let (Some(policy), Some((first, time))) = (self.tail, &self.first_unsigned) {
            let age = saphan_core::clock::parse_instant(time).map(|t| policy.now - t);
            let too_old = age.as_ref().map_or(true, |age| *age > policy.max_age);
            if unsigned_tail > policy.max_records || too_old {
                return fail(*first, format!(
                    "records {first}–{last} ({unsigned_tail}, the oldest from {time}) are not covered by any checkpoint, more than this platform leaves unsigned \
                     (at most {} records or {} seconds); checkpoints were removed, or every node stopped uncleanly — an operator can sign them with `saphan audit checkpoint`",
                    policy.max_records,
                    policy.max_age.whole_seconds()
                ));
            }
        }
        Ok(VerifyReport {
            records: last,
            checkpoints: self.checkpoints.len() as u64,
            unsigned_tail,
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
    tail: Option<TailPolicy>,
    mut progress: impl FnMut(u64, u64),
) -> VerifyOutcome {
    const PAGE: u32 = 5000;
    let snapshot = store::snapshot(db).await?;
    let until = snapshot.until();
    let store::Snapshot {
        head_seq,
        head_hash,
        checkpoints,
        ..
    } = snapshot;
    let mut verifier = match Verifier::new(keys.clone(), checkpoints) {
        Ok(v) => v.with_tail_policy(tail),
        Err(f) => return Ok(Err(f)),
    };
    let mut after = 0;
    loop {
        let page = store::read_records(db, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in page.iter().take_while(|r| r.seq <= until) {
            if let Err(f) = verifier.feed(record) {
                return Ok(Err(f));
            }
        }
        progress(verifier.records_seen(), until);
        if after >= until {
            break;
        }
    }
    Ok(verifier.finish(Some((head_seq, &head_hash))))
}
