//! Population generation rate (persons per second into the demo registries, through the
//! registry engine: generation, schema validation, keyed hashes, index and history rows, audit
//! records) against a plain bulk load of the same rows in the same run: the `rg_*` rows the
//! generated run wrote, read back and inserted into a fresh database with plain multi-row
//! INSERTs. Target: at least half the plain rate.
//!
//! `cargo bench -p saphan-population --bench generation` (or `cargo xtask bench`). PostgreSQL is
//! measured when `SAPHAN_BENCH_POSTGRES_URL` names a server. Under `cargo test --benches` it
//! runs a small smoke version so that the benchmark cannot rot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use saphan_audit::AuditLog;
use saphan_core::config::{AuditConfig, IdentityConfig};
use saphan_crypto::{KeyStore, Passphrase};
use saphan_identity::Directory;
use saphan_population::{load, DemoRegistries};
use saphan_registry::Registries;
use saphan_store::sqlx::{self, Row};
use saphan_store::testing::PostgresTestDb;
use saphan_store::Db;

/// Rows per plain INSERT statement, and per transaction.
const STATEMENT_ROWS: usize = 32;
const TRANSACTION_ROWS: usize = 2_000;

async fn prepare(db: &Db, keys: Arc<KeyStore>) -> (Registries, AuditLog) {
    let migrations: Vec<_> = [
        saphan_audit::MIGRATIONS,
        saphan_identity::MIGRATIONS,
        saphan_exchange::MIGRATIONS,
        saphan_registry::MIGRATIONS,
    ]
    .concat();
    db.migrate(&migrations).await.unwrap();
    let audit = AuditLog::start(db.clone(), keys, &AuditConfig::default());
    let directory = Directory::new(db.clone(), audit.clone(), &IdentityConfig::default()).unwrap();
    (Registries::new(db.clone(), audit.clone(), directory), audit)
}

/// A row as text or integer, as read back.
#[derive(Clone)]
enum Cell {
    Int(i64),
    Text(Option<String>),
}

struct Table {
    name: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<Cell>>,
}

const TABLES: &[(&str, &[&str], &[bool])] = &[
    (
        "rg_records",
        &[
            "registry_id",
            "record_id",
            "content",
            "revision",
            "updated_at",
        ],
        &[true, false, false, true, false],
    ),
    (
        "rg_index",
        &["registry_id", "field", "value", "record_id"],
        &[true, false, false, false],
    ),
    (
        "rg_history",
        &[
            "registry_id",
            "record_id",
            "revision",
            "operation",
            "at",
            "actor",
            "user_id",
            "reason",
            "content",
        ],
        &[true, false, true, false, false, false, false, false, false],
    ),
];

async fn read_back(db: &Db) -> Vec<Table> {
    let mut out = Vec::new();
    for (name, columns, ints) in TABLES {
        let rows = sqlx::query(&format!("SELECT {} FROM {name}", columns.join(", ")))
            .fetch_all(db.pool())
            .await
            .unwrap();
        let rows = rows
            .iter()
            .map(|r| {
                ints.iter()
                    .enumerate()
                    .map(|(i, int)| {
                        if *int {
                            Cell::Int(r.get(i))
                        } else {
                            Cell::Text(r.get(i))
                        }
                    })
                    .collect()
            })
            .collect();
        out.push(Table {
            name,
            columns,
            rows,
        });
    }
    out
}

/// The generated run: persons per second.
async fn generated(db: &Db, keys: Arc<KeyStore>, persons: u64) -> f64 {
    let (registries, audit) = prepare(db, keys).await;
    let defs = DemoRegistries::define(&registries, "bench").await.unwrap();
    let started = Instant::now();
    load(&registries, &defs, 2018, persons, |_| {})
        .await
        .unwrap();
    let rate = persons as f64 / started.elapsed().as_secs_f64();
    audit.shutdown().await;
    rate
}

/// The same rows, plainly: persons per second.
async fn plain(db: &Db, keys: Arc<KeyStore>, tables: &[Table], persons: u64) -> f64 {
    let (_, audit) = prepare(db, keys).await;
    audit.shutdown().await;
    let started = Instant::now();
    for table in tables {
        for transaction in table.rows.chunks(TRANSACTION_ROWS) {
            let mut tx = db.pool().begin().await.unwrap();
            for statement in transaction.chunks(STATEMENT_ROWS) {
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    table.name,
                    table.columns.join(", "),
                    saphan_store::values_placeholders(statement.len(), table.columns.len())
                );
                let mut q = sqlx::query(&sql);
                for row in statement {
                    for cell in row {
                        q = match cell {
                            Cell::Int(v) => q.bind(*v),
                            Cell::Text(v) => q.bind(v.clone()),
                        };
                    }
                }
                q.execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
    }
    persons as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// One backend: `rounds` alternating pairs on fresh databases from `fresh`.
async fn measure<F, Fut>(name: &str, fresh: F, keys: Arc<KeyStore>, persons: u64, rounds: usize)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<
        Output = (
            Db,
            Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()>>,
        ),
    >,
{
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    let mut rows = 0;
    for _ in 0..rounds {
        let (db, drop_a) = fresh().await;
        ours.push(generated(&db, keys.clone(), persons).await);
        let tables = read_back(&db).await;
        rows = tables.iter().map(|t| t.rows.len()).sum();
        db.close().await;
        drop_a().await;
        let (db, drop_b) = fresh().await;
        base.push(plain(&db, keys.clone(), &tables, persons).await);
        db.close().await;
        drop_b().await;
    }
    let (a, b) = (median(ours), median(base));
    let ratio = a / b;
    println!(
        "{name:<10} plain bulk load {b:>8.0} persons/s ({rows} rows)   generated {a:>8.0} persons/s   ratio {ratio:.2}   (target >= 0.50: {})",
        if ratio >= 0.5 { "met" } else { "NOT MET" }
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (persons, rounds) = if full { (20_000, 3) } else { (300, 1) };
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(
        KeyStore::create(&dir.path().join("keys.json"), &Passphrase::new("bench")).unwrap(),
    );
    println!(
        "population generation benchmark: {persons} persons per round (houses, ID cards, companies and foreigners with them), \
         {rounds} rounds (median); baseline = the same rg_* rows inserted plainly ({STATEMENT_ROWS} per statement, \
         {TRANSACTION_ROWS} per transaction) into a fresh database"
    );
    let base = dir.path().to_path_buf();
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    measure(
        "sqlite",
        || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let url = format!("sqlite://{}/bench-{n}.db", base.display());
            async move {
                let db = Db::connect(&url, 8, Duration::from_secs(10)).await.unwrap();
                let done: Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()>> =
                    Box::new(|| Box::pin(async {}));
                (db, done)
            }
        },
        keys.clone(),
        persons,
        rounds,
    )
    .await;
    match std::env::var("SAPHAN_BENCH_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            measure(
                "postgres",
                || {
                    let url = url.clone();
                    async move {
                        let pg = PostgresTestDb::create(&url).await;
                        let db = pg.db.clone();
                        let done: Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()>> =
                            Box::new(move || Box::pin(async move { pg.drop_now().await }));
                        (db, done)
                    }
                },
                keys.clone(),
                persons,
                rounds,
            )
            .await
        }
        _ => println!("postgres   skipped: set SAPHAN_BENCH_POSTGRES_URL to measure it"),
    }
}
