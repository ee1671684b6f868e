//! Durable audit-log appends per second, against a baseline measured in the same run on the same
//! database: plain batched INSERTs of rows of the same size and shape, in transactions of the
//! same size as the audit log's groups. Target: the audit log reaches at least half the baseline.
//!
//! `cargo bench -p saphan-audit --bench append` (or `cargo xtask bench`). PostgreSQL is measured
//! when `SAPHAN_BENCH_POSTGRES_URL` names a server. Under `cargo test` it runs a small smoke
//! version so that the benchmark cannot rot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use saphan_audit::{AuditEntry, AuditLog, MIGRATIONS};
use saphan_core::config::AuditConfig;
use saphan_crypto::{KeyStore, Passphrase};
use saphan_store::sqlx;
use saphan_store::testing::PostgresTestDb;
use saphan_store::Db;

const WRITERS: usize = 64;
const ROUNDS: usize = 3;

/// Mean records per commit in each audit round, reported beside the rates.
static GROUP_SIZES: std::sync::Mutex<Vec<f64>> = std::sync::Mutex::new(Vec::new());

struct Plan {
    records: usize,
    rounds: usize,
}

fn row_values(i: usize) -> [String; 8] {
    let hex = |n: usize| format!("{:064x}", n);
    [
        i.to_string(),
        "2026-11-22T09:31:02.123456Z".into(),
        format!("bench:{}", i % WRITERS),
        "bench.append".into(),
        format!("item:{}:{}", i % WRITERS, i / WRITERS),
        hex(i),
        hex(i + 1),
        hex(i + 2),
    ]
}

/// Plain batched INSERTs: `WRITERS` rows per transaction, the audit log's group size under this
/// load, one multi-row statement each.
async fn baseline(db: &Db, records: usize) -> f64 {
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS bench_plain; CREATE TABLE bench_plain (seq BIGINT PRIMARY KEY, recorded_at TEXT NOT NULL, \
         actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL, payload_hash TEXT NOT NULL, \
         prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let started = Instant::now();
    let mut i = 0;
    while i < records {
        let n = WRITERS.min(records - i);
        let sql = format!(
            "INSERT INTO bench_plain VALUES {}",
            saphan_store::values_placeholders(n, 8)
        );
        let mut tx = db.pool().begin().await.unwrap();
        let mut q = sqlx::query(&sql);
        for r in 0..n {
            let v = row_values(i + r);
            q = q.bind(v[0].parse::<i64>().unwrap());
            for s in &v[1..] {
                q = q.bind(s.clone());
            }
        }
        q.execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        i += n;
    }
    records as f64 / started.elapsed().as_secs_f64()
}

/// The audit log under `WRITERS` concurrent tasks, each waiting for its durable acknowledgement.
async fn audit(db: &Db, keys: Arc<KeyStore>, records: usize) -> f64 {
    let log = AuditLog::start(db.clone(), keys, &AuditConfig::default());
    let per_task = records / WRITERS;
    let started = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    log.append(AuditEntry::new(
                        format!("bench:{t}"),
                        "bench.append",
                        format!("item:{t}:{i}"),
                        &i,
                    ))
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (per_task * WRITERS) as f64 / started.elapsed().as_secs_f64();
    let stats = log.group_stats();
    GROUP_SIZES
        .lock()
        .unwrap()
        .push(stats.records as f64 / stats.groups.max(1) as f64);
    log.shutdown().await;
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn measure(name: &str, db: &Db, keys: Arc<KeyStore>, plan: &Plan) -> f64 {
    db.migrate(MIGRATIONS).await.unwrap();
    let (mut base, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..plan.rounds {
        // Alternate so that drifting machine load hits both alike.
        base.push(baseline(db, plan.records).await);
        ours.push(audit(db, keys.clone(), plan.records).await);
    }
    let (b, a) = (median(base), median(ours));
    let ratio = a / b;
    let groups = median(std::mem::take(&mut *GROUP_SIZES.lock().unwrap()));
    println!(
        "{name:<10} baseline {b:>9.0} rows/s   audit log {a:>9.0} appends/s ({groups:.0} per commit)   ratio {ratio:.2}   (target >= 0.50: {})",
        if ratio >= 0.5 { "met" } else { "NOT MET" }
    );
    ratio
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            records: 20_000,
            rounds: ROUNDS,
        }
    } else {
        Plan {
            records: WRITERS * 4,
            rounds: 1,
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(
        KeyStore::create(&dir.path().join("keys.json"), &Passphrase::new("bench")).unwrap(),
    );
    println!(
        "audit-log append benchmark: {} records per round, {} rounds (median), {WRITERS} concurrent writers; \
         baseline = plain INSERTs of same-size rows, {WRITERS} per transaction",
        plan.records, plan.rounds
    );

    let sqlite = Db::connect(
        &format!("sqlite://{}/bench.db", dir.path().display()),
        8,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    measure("sqlite", &sqlite, keys.clone(), &plan).await;
    sqlite.close().await;

    match std::env::var("SAPHAN_BENCH_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let pg = PostgresTestDb::create(&url).await;
            measure("postgres", &pg.db, keys.clone(), &plan).await;
            pg.drop_now().await;
        }
        _ => println!("postgres   skipped: set SAPHAN_BENCH_POSTGRES_URL to measure it"),
    }
}
