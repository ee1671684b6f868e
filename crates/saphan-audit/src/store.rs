//! Reading and writing the `audit_*` tables. SQL lives here and nowhere else in the crate.

use saphan_store::sqlx::{self, any::AnyRow, Row};
use saphan_store::Db;
use serde::Serialize;

use crate::record::{chain, checkpoint_entry, decode_hash};
use crate::{AuditEntry, AuditError, AuditRecord, Checkpoint};

/// Rows per multi-row INSERT (8 parameters each, well inside both databases' limits). SQLite
/// looks each parameter's name up in a list as it is bound, so a statement's binding time grows
/// with the square of its parameters: there, smaller statements are cheaper.
fn insert_chunk(db: &Db) -> usize {
    match db.backend() {
        saphan_store::Backend::Sqlite => 32,
        saphan_store::Backend::Postgres => 256,
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).expect("sequence numbers fit in i64")
}

fn record_from_row(row: &AnyRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        seq: row.try_get::<i64, _>(0)? as u64,
        time: row.try_get(1)?,
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        subject: row.try_get(4)?,
        payload_hash: row.try_get(5)?,
        prev_hash: row.try_get(6)?,
        hash: row.try_get(7)?,
    })
}

/// The chain head: the last sequence number and its hash (`0` and the genesis hash when empty).
pub async fn head(db: &Db) -> Result<(u64, String), AuditError> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(db.pool())
        .await?;
    Ok((row.try_get::<i64, _>(0)? as u64, row.try_get(1)?))
}

/// Up to `limit` records with `seq > after`, in order.
pub async fn read_records(db: &Db, after: u64, limit: u32) -> Result<Vec<AuditRecord>, AuditError> {
    let rows = sqlx::query(
        "SELECT seq, recorded_at, actor, action, subject, payload_hash, prev_hash, hash \
         FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(to_i64(after))
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(record_from_row).collect::<Result<_, _>>()?)
}

pub(crate) async fn read_record(db: &Db, seq: u64) -> Result<Option<AuditRecord>, AuditError> {
    let row = sqlx::query(
        "SELECT seq, recorded_at, actor, action, subject, payload_hash, prev_hash, hash \
         FROM audit_records WHERE seq = $1",
    )
    .bind(to_i64(seq))
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(record_from_row).transpose()?)
}

/// Every checkpoint, oldest first. Checkpoints are few (one per thousand records by default).
/// A checkpoint whose stored JSON no longer parses is returned with empty signatures so that the
/// verifier reports it as tampered rather than failing to read the log.
pub async fn read_checkpoints(db: &Db) -> Result<Vec<Checkpoint>, AuditError> {
    let mut conn = db.pool().acquire().await?;
    checkpoints_on(&mut conn).await
}

const CHECKPOINTS: &str =
    "SELECT first_seq, last_seq, merkle_root, head_hash, created_at, signature, \
     timestamp_token FROM audit_checkpoints ORDER BY first_seq";

async fn checkpoints_on(conn: &mut sqlx::AnyConnection) -> Result<Vec<Checkpoint>, AuditError> {
    let rows = sqlx::query(CHECKPOINTS).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            let signature: String = row.try_get(5)?;
            let timestamp: String = row.try_get(6)?;
            Ok(Checkpoint {
                first_seq: row.try_get::<i64, _>(0)? as u64,
                last_seq: row.try_get::<i64, _>(1)? as u64,
                merkle_root: row.try_get(2)?,
                head_hash: row.try_get(3)?,
                created_at: row.try_get(4)?,
                signature: canonical_json(&signature).unwrap_or_else(broken_signature),
                timestamp: canonical_json(&timestamp).unwrap_or_else(broken_timestamp),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// The log's state at one instant, for verification and export.
pub(crate) struct Snapshot {
    pub head_seq: u64,
    pub head_hash: String,
    /// The highest seq stored; above `head_seq` only if someone moved the head back.
    pub last_stored: u64,
    pub checkpoints: Vec<Checkpoint>,
}

/// Reads the head, the highest stored record and every checkpoint in one transaction, so they
/// agree (PostgreSQL: REPEATABLE READ; SQLite in WAL mode reads one snapshot per transaction).
impl Snapshot {
    /// The last record a reader must look at: past a head that was moved back too, so that the
    /// verifier can name what lies beyond it.
    pub fn until(&self) -> u64 {
        self.head_seq.max(self.last_stored)
    }
}

pub(crate) async fn snapshot(db: &Db) -> Result<Snapshot, AuditError> {
    use sqlx::Connection;
    let mut conn = db.pool().acquire().await?;
    let mut tx = match db.backend() {
        saphan_store::Backend::Postgres => {
            // Now and then under load a pooled connection comes back still inside a
            // transaction the driver no longer counts; PostgreSQL then refuses to set the
            // isolation level ("must be called before any query"). In a transaction of its
            // own, a statement starts when its transaction does: if not, end the old one.
            // (A simple query: in the extended protocol each message restarts the statement
            // clock.)
            let inside: bool =
                sqlx::raw_sql("SELECT transaction_timestamp() <> statement_timestamp()")
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get(0)?;
            if inside {
                tracing::warn!(
                    "a pooled database connection was still inside a transaction; ending it"
                );
                sqlx::query("ROLLBACK").execute(&mut *conn).await?;
            }
            conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
                .await?
        }
        saphan_store::Backend::Sqlite => conn.begin().await?,
    };
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    let (head_seq, head_hash) = (row.try_get::<i64, _>(0)? as u64, row.try_get(1)?);
    let row = sqlx::query("SELECT MAX(seq) FROM audit_records")
        .fetch_one(&mut *tx)
        .await?;
    let last_stored = row.try_get::<Option<i64>, _>(0)?.unwrap_or(0) as u64;
    let checkpoints = checkpoints_on(&mut tx).await?;
    tx.commit().await?;
    Ok(Snapshot {
        head_seq,
        head_hash,
        last_stored,
        checkpoints,
    })
}

/// Parses a stored JSON column only if it is exactly as we write it: any other spelling of the
/// same value (spaces, extra fields, reordered keys) means someone edited the column.
fn canonical_json<T: serde::Serialize + serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    let value: T = serde_json::from_str(text).ok()?;
    (serde_json::to_string(&value).ok()? == text).then_some(value)
}

fn broken_signature() -> saphan_crypto::Signature {
    saphan_crypto::Signature {
        kid: "unreadable".into(),
        alg: saphan_crypto::KeyAlg::ES256,
        value: String::new(),
    }
}

fn broken_timestamp() -> saphan_crypto::TimeStampToken {
    saphan_crypto::TimeStampToken {
        token: String::new(),
    }
}

/// The hashes of records `first..=last`, in order.
pub(crate) async fn read_hashes(db: &Db, first: u64, last: u64) -> Result<Vec<String>, AuditError> {
    let rows =
        sqlx::query("SELECT hash FROM audit_records WHERE seq >= $1 AND seq <= $2 ORDER BY seq")
            .bind(to_i64(first))
            .bind(to_i64(last))
            .fetch_all(db.pool())
            .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// The last sequence number covered by a checkpoint (0 if none).
pub(crate) async fn last_checkpointed(db: &Db) -> Result<u64, AuditError> {
    let row = sqlx::query("SELECT MAX(last_seq) FROM audit_checkpoints")
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get::<Option<i64>, _>(0)?.unwrap_or(0) as u64)
}

pub(crate) async fn checkpoint_covering(
    db: &Db,
    seq: u64,
) -> Result<Option<Checkpoint>, AuditError> {
    // Few checkpoints: filtering the ordered list is simpler than a second decoding path.
    Ok(read_checkpoints(db)
        .await?
        .into_iter()
        .find(|c| c.first_seq <= seq && seq <= c.last_seq))
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Locks the head row (an UPDATE takes the write lock on both databases, so writers on every
/// node serialise here and the chain stays linear) and reads it.
async fn lock_head(tx: &mut Tx) -> Result<(u64, String), AuditError> {
    // One round trip: each one is a thread hop on SQLite and a network trip on PostgreSQL,
    // and the commit's latency is what every exchange call waits for.
    let row = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut **tx)
        .await?;
    Ok((row.try_get::<i64, _>(0)? as u64, row.try_get(1)?))
}

/// Inserts `records` and moves the head to the last of them.
async fn insert_records(
    tx: &mut Tx,
    records: &[AuditRecord],
    chunk_rows: usize,
) -> Result<(), AuditError> {
    for chunk in records.chunks(chunk_rows) {
        let sql = format!(
            "INSERT INTO audit_records \
             (seq, recorded_at, actor, action, subject, payload_hash, prev_hash, hash) VALUES {}",
            saphan_store::values_placeholders(chunk.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for r in chunk {
            query = query
                .bind(to_i64(r.seq))
                .bind(&r.time)
                .bind(&r.actor)
                .bind(&r.action)
                .bind(&r.subject)
                .bind(&r.payload_hash)
                .bind(&r.prev_hash)
                .bind(&r.hash);
        }
        query.execute(&mut **tx).await?;
    }
    if let Some(last) = records.last() {
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(to_i64(last.seq))
            .bind(&last.hash)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Appends `entries` after the current head in one transaction, with their details; returns
/// the stored records.
pub(crate) async fn append_batch(
    db: &Db,
    time: &str,
    entries: &[&AuditEntry],
) -> Result<Vec<AuditRecord>, AuditError> {
    let mut tx = db.pool().begin().await?;
    let (head_seq, head_hash) = lock_head(&mut tx).await?;
    let records = chain(head_seq, &head_hash, time, entries);
    let details: Vec<(i64, &str)> = records
        .iter()
        .zip(entries)
        .filter_map(|(r, e)| e.detail.as_deref().map(|d| (to_i64(r.seq), d)))
        .collect();
    insert_records(&mut tx, &records, insert_chunk(db)).await?;
    for chunk in details.chunks(insert_chunk(db)) {
        let sql = format!(
            "INSERT INTO audit_details (seq, body) VALUES {}",
            saphan_store::values_placeholders(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql);
        for (seq, body) in chunk {
            query = query.bind(*seq).bind(*body);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(records)
}

/// [`append_batch`] on a blocking SQLite connection of the writer's own: the same records, in
/// one `BEGIN IMMEDIATE` transaction (the write lock first, so the head cannot move under it)
/// with cached statements, and no thread hop per statement.
pub(crate) fn append_batch_sqlite(
    conn: &mut saphan_store::rusqlite::Connection,
    time: &str,
    entries: &[&AuditEntry],
) -> Result<Vec<AuditRecord>, AuditError> {
    use saphan_store::rusqlite::{params, TransactionBehavior};
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (head_seq, head_hash): (i64, String) =
        tx.query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let records = chain(head_seq as u64, &head_hash, time, entries);
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO audit_records \
             (seq, recorded_at, actor, action, subject, payload_hash, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut detail =
            tx.prepare_cached("INSERT INTO audit_details (seq, body) VALUES (?1, ?2)")?;
        for (r, entry) in records.iter().zip(entries) {
            insert.execute(params![
                to_i64(r.seq),
                r.time,
                r.actor,
                r.action,
                r.subject,
                r.payload_hash,
                r.prev_hash,
                r.hash
            ])?;
            if let Some(body) = &entry.detail {
                detail.execute(params![to_i64(r.seq), body])?;
            }
        }
        if let Some(last) = records.last() {
            tx.prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")?
                .execute(params![to_i64(last.seq), last.hash])?;
        }
    }
    tx.commit()?;
    Ok(records)
}

/// What [`find_records`] looks for; every given field must match.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub subject: Option<String>,
    /// Records with `seq` below this (for paging backwards); none = from the newest.
    pub before_seq: Option<u64>,
    /// Records at or after this RFC 3339 instant.
    pub since: Option<String>,
    pub limit: u32,
}

/// A record and the detail its capability stored with it, if any.
#[derive(Debug, Clone, Serialize)]
pub struct RecordWithDetail {
    #[serde(flatten)]
    pub record: AuditRecord,
    pub detail: Option<String>,
}

/// The newest records matching `filter`, newest first.
pub async fn find_records(
    db: &Db,
    filter: &RecordFilter,
) -> Result<Vec<RecordWithDetail>, AuditError> {
    let mut sql = String::from(
        "SELECT r.seq, r.recorded_at, r.actor, r.action, r.subject, r.payload_hash, \
         r.prev_hash, r.hash, d.body FROM audit_records r \
         LEFT JOIN audit_details d ON d.seq = r.seq WHERE 1 = 1",
    );
    let mut binds: Vec<String> = Vec::new();
    let mut action = filter.action.clone();
    if let Some(a) = filter.action.as_ref().filter(|a| {
        a.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    }) {
        // A literal: capabilities index their own actions with partial indexes, and neither
        // planner uses one unless the query's text implies its predicate. Only the plain
        // characters above are inlined; anything else is bound.
        sql.push_str(&format!(" AND r.action = '{a}'"));
        action = None;
    }
    for (column, value) in [
        ("r.actor", &filter.actor),
        ("r.action", &action),
        ("r.subject", &filter.subject),
    ] {
        if let Some(v) = value {
            binds.push(v.clone());
            sql.push_str(&format!(" AND {column} = ${}", binds.len()));
        }
    }
    if let Some(since) = &filter.since {
        binds.push(since.clone());
        sql.push_str(&format!(" AND r.recorded_at >= ${}", binds.len()));
    }
    if let Some(before) = filter.before_seq {
        sql.push_str(&format!(" AND r.seq < {}", to_i64(before)));
    }
    sql.push_str(&format!(
        " ORDER BY r.seq DESC LIMIT {}",
        filter.limit.clamp(1, 10_000)
    ));
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b);
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| {
            Ok(RecordWithDetail {
                record: record_from_row(row)?,
                detail: row.try_get(8)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// The detail stored with record `seq`, if any.
pub async fn read_detail(db: &Db, seq: u64) -> Result<Option<String>, AuditError> {
    let row = sqlx::query("SELECT body FROM audit_details WHERE seq = $1")
        .bind(to_i64(seq))
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// In one transaction under the head lock: signs (with `sign`) the records after the last
/// checkpoint, stores the checkpoint and appends its record to the chain. `None` when nothing
/// new is there to sign (the only record after the last checkpoint is that checkpoint's own).
pub(crate) async fn append_checkpoint<F>(db: &Db, sign: F) -> Result<Option<Checkpoint>, AuditError>
where
    F: FnOnce(u64, u64, &[[u8; 32]], String) -> Result<Checkpoint, AuditError>,
{
    let mut tx = db.pool().begin().await?;
    let (head_seq, head_hash) = lock_head(&mut tx).await?;
    let row = sqlx::query("SELECT MAX(last_seq) FROM audit_checkpoints")
        .fetch_one(&mut *tx)
        .await?;
    let covered = row.try_get::<Option<i64>, _>(0)?.unwrap_or(0) as u64;
    let first = covered + 1;
    let only_own_record = covered > 0 && head_seq <= first;
    if head_seq < first || only_own_record {
        return Ok(None);
    }
    let rows =
        sqlx::query("SELECT hash FROM audit_records WHERE seq >= $1 AND seq <= $2 ORDER BY seq")
            .bind(to_i64(first))
            .bind(to_i64(head_seq))
            .fetch_all(&mut *tx)
            .await?;
    let leaves: Vec<[u8; 32]> = rows
        .iter()
        .map(|r| {
            r.try_get::<String, _>(0)
                .ok()
                .and_then(|h| decode_hash(&h))
                .unwrap_or([0; 32])
        })
        .collect();
    if leaves.len() as u64 != head_seq - first + 1 {
        return Err(AuditError::InvalidEntry(
            "audit records are missing below the chain head",
        ));
    }
    let checkpoint = sign(first, head_seq, &leaves, head_hash.clone())?;
    sqlx::query(
        "INSERT INTO audit_checkpoints \
         (first_seq, last_seq, merkle_root, head_hash, created_at, signature, timestamp_token) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(to_i64(checkpoint.first_seq))
    .bind(to_i64(checkpoint.last_seq))
    .bind(&checkpoint.merkle_root)
    .bind(&checkpoint.head_hash)
    .bind(&checkpoint.created_at)
    .bind(serde_json::to_string(&checkpoint.signature).expect("json"))
    .bind(serde_json::to_string(&checkpoint.timestamp).expect("json"))
    .execute(&mut *tx)
    .await?;
    let entry = checkpoint_entry(first, head_seq, checkpoint.statement_hash());
    let records = chain(head_seq, &head_hash, &checkpoint.created_at, &[&entry]);
    insert_records(&mut tx, &records, insert_chunk(db)).await?;
    tx.commit().await?;
    Ok(Some(checkpoint))
}
