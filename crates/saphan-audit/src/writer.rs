//! Group commit: callers hand entries to one writer task per node; it takes everything waiting
//! (up to `max_batch`), writes it in one transaction and only then acknowledges each caller.
//! A checkpointer task signs what has accumulated every N records or T seconds. On a SQLite
//! file the group is written by a thread with a connection of its own (see [`Committer`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use saphan_core::config::AuditConfig;
use saphan_crypto::KeyStore;
use saphan_store::Db;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{merkle, store, AuditEntry, AuditError, Checkpoint, Receipt};

type Ack = oneshot::Sender<Result<Receipt, AuditError>>;

enum Command {
    Append(AuditEntry, Ack),
    /// Stop taking entries, write what is queued, make a final checkpoint, then answer.
    Shutdown(oneshot::Sender<()>),
}

/// Handle to the node's audit log. Cheap to clone; all clones feed the same writer.
#[derive(Clone)]
pub struct AuditLog {
    commands: mpsc::Sender<Command>,
    db: Db,
    keys: Arc<KeyStore>,
    /// One checkpoint at a time per node, so the periodic, final and on-demand ones never race.
    checkpointing: Arc<tokio::sync::Mutex<()>>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    groups: AtomicU64,
    records: AtomicU64,
}

/// How well appends are being grouped: records written and the commits they took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupStats {
    pub groups: u64,
    pub records: u64,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl AuditLog {
    /// Starts the writer and checkpointer tasks on the current Tokio runtime.
    pub fn start(db: Db, keys: Arc<KeyStore>, config: &AuditConfig) -> AuditLog {
        let (commands, receiver) = mpsc::channel(config.max_batch.max(1) * 8);
        let (written_tx, written_rx) = watch::channel(0u64);
        let checkpointing = Arc::new(tokio::sync::Mutex::new(()));
        let signer = Signer {
            db: db.clone(),
            keys: keys.clone(),
            lock: checkpointing.clone(),
        };
        let checkpointer = tokio::spawn(run_checkpointer(
            signer.clone(),
            written_rx,
            config.checkpoint_every_records,
            Duration::from_secs(config.checkpoint_every_secs),
        ));
        let stats = Arc::new(Stats::default());
        tokio::spawn(run_writer(
            Committer::for_db(&db),
            signer,
            stats.clone(),
            receiver,
            written_tx,
            config.max_batch,
            checkpointer,
        ));
        AuditLog {
            commands,
            db,
            keys,
            checkpointing,
            stats,
        }
    }

    /// Appends one entry; returns once it is durable in the database.
    pub async fn append(&self, entry: AuditEntry) -> Result<Receipt, AuditError> {
        entry.validate()?;
        let (ack, answer) = oneshot::channel();
        self.commands
            .send(Command::Append(entry, ack))
            .await
            .map_err(|_| AuditError::Closed)?;
        answer.await.map_err(|_| AuditError::Closed)?
    }

    /// Writes everything queued, signs a final checkpoint and stops. Later appends fail.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Shutdown(done)).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// Signs a checkpoint over everything not yet covered, now. Returns it, or `None` if there
    /// was nothing to cover.
    pub async fn checkpoint_now(&self) -> Result<Option<Checkpoint>, AuditError> {
        Signer {
            db: self.db.clone(),
            keys: self.keys.clone(),
            lock: self.checkpointing.clone(),
        }
        .checkpoint()
        .await
    }

    /// Groups committed and records written by this node's writer since it started.
    pub fn group_stats(&self) -> GroupStats {
        GroupStats {
            groups: self.stats.groups.load(Ordering::Relaxed),
            records: self.stats.records.load(Ordering::Relaxed),
        }
    }
}

/// Where a group is written: through the pool, or (SQLite files) on a thread with a
/// connection of its own, where a commit costs one thread hop instead of one per statement.
enum Committer {
    Pool(Db),
    OwnSqlite(std::sync::mpsc::Sender<SqliteJob>),
}

type SqliteJob = (
    String,
    Vec<AuditEntry>,
    oneshot::Sender<Result<Vec<crate::AuditRecord>, AuditError>>,
);

impl Committer {
    fn for_db(db: &Db) -> Committer {
        let conn = match db.own_sqlite_connection() {
            None => return Committer::Pool(db.clone()),
            Some(Ok(conn)) => conn,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the audit log writes through the pool: no connection of its own");
                return Committer::Pool(db.clone());
            }
        };
        let (jobs, received) = std::sync::mpsc::channel::<SqliteJob>();
        let started = std::thread::Builder::new()
            .name("saphan-audit-sqlite".into())
            .spawn(move || {
                let mut conn = conn;
                // Ends when the writer task drops its sender.
                for (time, entries, answer) in received {
                    let refs: Vec<&AuditEntry> = entries.iter().collect();
                    let _ = answer.send(store::append_batch_sqlite(&mut conn, &time, &refs));
                }
            });
        match started {
            Ok(_) => Committer::OwnSqlite(jobs),
            Err(e) => {
                tracing::warn!(error = %e, "the audit log writes through the pool: no thread of its own");
                Committer::Pool(db.clone())
            }
        }
    }

    async fn append(
        &self,
        time: String,
        entries: Vec<AuditEntry>,
    ) -> Result<Vec<crate::AuditRecord>, AuditError> {
        match self {
            Committer::Pool(db) => {
                let refs: Vec<&AuditEntry> = entries.iter().collect();
                store::append_batch(db, &time, &refs).await
            }
            Committer::OwnSqlite(jobs) => {
                let (answer, answered) = oneshot::channel();
                jobs.send((time, entries, answer))
                    .map_err(|_| AuditError::Closed)?;
                answered.await.map_err(|_| AuditError::Closed)?
            }
        }
    }
}

async fn run_writer(
    committer: Committer,
    signer: Signer,
    stats: Arc<Stats>,
    mut receiver: mpsc::Receiver<Command>,
    written: watch::Sender<u64>,
    max_batch: usize,
    checkpointer: tokio::task::JoinHandle<()>,
) {
    let mut batch: Vec<(AuditEntry, Ack)> = Vec::with_capacity(max_batch);
    let mut shutdown: Option<oneshot::Sender<()>> = None;
    loop {
        match receiver.recv().await {
            Some(Command::Append(entry, ack)) => batch.push((entry, ack)),
            Some(Command::Shutdown(done)) => shutdown = Some(done),
            None => break,
        }
        // Take whatever else is waiting: this is the group in group commit. Callers released
        // together by the previous commit re-submit within microseconds of each other, so keep
        // yielding to them while new entries keep arriving; an idle log pays one yield.
        loop {
            let before = batch.len();
            while shutdown.is_none() && batch.len() < max_batch {
                match receiver.try_recv() {
                    Ok(Command::Append(entry, ack)) => batch.push((entry, ack)),
                    Ok(Command::Shutdown(done)) => shutdown = Some(done),
                    Err(_) => break,
                }
            }
            if shutdown.is_some()
                || batch.len() >= max_batch
                || (batch.len() == before && before > 1)
            {
                break;
            }
            if batch.len() == before {
                // Nothing new since the first entry: give concurrent callers one chance.
                tokio::task::yield_now().await;
                if receiver.is_empty() {
                    break;
                }
                continue;
            }
            tokio::task::yield_now().await;
        }
        if shutdown.is_some() {
            receiver.close();
            while let Ok(command) = receiver.try_recv() {
                if let Command::Append(entry, ack) = command {
                    batch.push((entry, ack));
                }
            }
        }
        if !batch.is_empty() {
            stats.groups.fetch_add(1, Ordering::Relaxed);
            stats
                .records
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            write_group(&committer, std::mem::take(&mut batch), &written).await;
        }
        if shutdown.is_some() {
            break;
        }
    }
    checkpointer.abort();
    if let Err(e) = signer.checkpoint().await {
        tracing::warn!(error = %e, "final audit checkpoint failed");
    }
    if let Some(done) = shutdown {
        let _ = done.send(());
    }
}

async fn write_group(
    committer: &Committer,
    batch: Vec<(AuditEntry, Ack)>,
    written: &watch::Sender<u64>,
) {
    let time = saphan_core::clock::now_text();
    let (entries, acks): (Vec<AuditEntry>, Vec<Ack>) = batch.into_iter().unzip();
    let started = std::time::Instant::now();
    let written_batch = committer.append(time, entries).await;
    metrics::histogram!("saphan_audit_commit_seconds").record(started.elapsed().as_secs_f64());
    match written_batch {
        Ok(records) => {
            metrics::counter!("saphan_audit_records_total").increment(records.len() as u64);
            metrics::histogram!("saphan_audit_group_size").record(records.len() as f64);
            if let Some(last) = records.last() {
                written.send_replace(last.seq);
            }
            for (ack, record) in acks.into_iter().zip(records) {
                let _ = ack.send(Ok(Receipt {
                    seq: record.seq,
                    hash: record.hash,
                }));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, records = acks.len(), "audit group commit failed");
            metrics::counter!("saphan_audit_failures_total").increment(1);
            let message = e.to_string();
            for ack in acks {
                let _ = ack.send(Err(AuditError::Store(saphan_store::StoreError::Sql(
                    saphan_store::sqlx::Error::Protocol(message.clone()),
                ))));
            }
        }
    }
}

async fn run_checkpointer(
    signer: Signer,
    mut written: watch::Receiver<u64>,
    every_records: u64,
    every: Duration,
) {
    let mut covered = store::last_checkpointed(&signer.db).await.unwrap_or(0);
    let mut deadline = tokio::time::Instant::now() + every;
    loop {
        tokio::select! {
            changed = written.changed() => {
                if changed.is_err() {
                    return;
                }
                let head = *written.borrow_and_update();
                if head < covered + every_records {
                    continue;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {}
        }
        deadline = tokio::time::Instant::now() + every;
        match signer.checkpoint().await {
            Ok(Some(c)) => covered = c.last_seq,
            // Another node may have signed: start counting from its checkpoint.
            Ok(None) => {
                covered = store::last_checkpointed(&signer.db)
                    .await
                    .unwrap_or(covered)
            }
            Err(e) => tracing::warn!(error = %e, "audit checkpoint failed; will retry"),
        }
    }
}

#[derive(Clone)]
struct Signer {
    db: Db,
    keys: Arc<KeyStore>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Signer {
    /// Signs everything not yet covered and appends the checkpoint's record, atomically.
    async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let _one_at_a_time = self.lock.lock().await;
        let keys = &self.keys;
        let made = store::append_checkpoint(&self.db, |first, last, leaves, head_hash| {
            Checkpoint::sign(keys, first, last, merkle::merkle_root(leaves), head_hash)
        })
        .await?;
        if made.is_some() {
            metrics::counter!("saphan_audit_checkpoints_total").increment(1);
        }
        Ok(made)
    }
}
