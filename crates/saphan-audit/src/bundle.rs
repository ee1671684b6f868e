//! Export bundles: the whole log as JSON Lines, self-contained. The first line is a header with
//! the public keys, the chain head and every checkpoint; then one record per line, in order.
//! Verification streams it, so bundles of any size verify in flat memory.

use std::io::{BufRead, Write};

use saphan_crypto::PublicKeySet;
use saphan_store::Db;
use serde::{Deserialize, Serialize};

use crate::{store, AuditError, AuditRecord, Checkpoint, Verifier, VerifyFailure, VerifyReport};

pub const BUNDLE_FORMAT: &str = "saphan-audit-bundle-1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleHeader {
    pub format: String,
    pub exported_at: String,
    pub head_seq: u64,
    pub head_hash: String,
    pub public_keys: PublicKeySet,
    pub checkpoints: Vec<Checkpoint>,
}

fn bundle_error(path: &str, e: impl std::fmt::Display) -> AuditError {
    AuditError::Bundle {
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// Writes the whole log to `out`. Returns the number of records written.
pub async fn export_bundle(
    db: &Db,
    keys: &PublicKeySet,
    out: &mut impl Write,
    name: &str,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, AuditError> {
    let snapshot = store::snapshot(db).await?;
    let until = snapshot.until();
    let store::Snapshot {
        head_seq,
        head_hash,
        checkpoints,
        ..
    } = snapshot;
    let header = BundleHeader {
        format: BUNDLE_FORMAT.into(),
        exported_at: saphan_core::clock::now_text(),
        head_seq,
        head_hash,
        public_keys: keys.clone(),
        checkpoints,
    };
    write_line(out, &header, name)?;
    let mut after = 0;
    let mut written = 0;
    while after < until {
        let page = store::read_records(db, after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in page.iter().take_while(|r| r.seq <= until) {
            write_line(out, record, name)?;
            written += 1;
        }
        progress(written, until);
    }
    out.flush().map_err(|e| bundle_error(name, e))?;
    Ok(written)
}

/// Verifies a bundle read from `input`. With `trusted` keys, signatures must verify under them;
/// otherwise under the keys the bundle carries.
/// `tail` bounds the unsigned tail; with `now: None` its age is measured at the export time.
pub fn verify_bundle(
    input: impl BufRead,
    name: &str,
    trusted: Option<&PublicKeySet>,
    tail: Option<crate::TailPolicy>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Result<VerifyReport, VerifyFailure>, AuditError> {
    let mut lines = input.lines();
    let first = lines
        .next()
        .ok_or_else(|| bundle_error(name, "the file is empty"))?
        .map_err(|e| bundle_error(name, e))?;
    let header: BundleHeader = serde_json::from_str(&first)
        .map_err(|e| bundle_error(name, format!("line 1 is not a bundle header: {e}")))?;
    if header.format != BUNDLE_FORMAT {
        return Err(bundle_error(
            name,
            format!("unknown format `{}`", header.format),
        ));
    }
    let keys = trusted.cloned().unwrap_or(header.public_keys);
    // An exported bundle is judged as of its export: the tail could not have been signed later.
    let tail = tail.map(|mut policy| {
        if let Ok(exported) = saphan_core::clock::parse_instant(&header.exported_at) {
            policy.now = policy.now.min(exported);
        }
        policy
    });
    let mut verifier = match Verifier::new(keys, header.checkpoints) {
        Ok(v) => v.with_tail_policy(tail),
        Err(f) => return Ok(Err(f)),
    };
    for (index, line) in lines.enumerate() {
        let line = line.map_err(|e| bundle_error(name, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: AuditRecord = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                return Ok(Err(VerifyFailure {
                    seq: Some(verifier.records_seen() + 1),
                    message: format!(
                        "line {} is not a valid audit record ({e}); the bundle was altered",
                        index + 2
                    ),
                }))
            }
        };
        if let Err(f) = verifier.feed(&record) {
            return Ok(Err(f));
        }
        if verifier.records_seen() % 10_000 == 0 {
            progress(verifier.records_seen(), header.head_seq);
        }
    }
    progress(verifier.records_seen(), header.head_seq);
    Ok(verifier.finish(Some((header.head_seq, &header.head_hash))))
}

fn write_line(out: &mut impl Write, value: &impl Serialize, name: &str) -> Result<(), AuditError> {
    serde_json::to_writer(&mut *out, value).map_err(|e| bundle_error(name, e))?;
    out.write_all(b"\n").map_err(|e| bundle_error(name, e))
}
