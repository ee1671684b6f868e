//! The seeding framework: named, versioned steps that fill the database with demo or bulk data.
//!
//! Every step is deterministic (its random generator is derived from the run's seed and the
//! step's name, so adding a step never changes another's data), idempotent (a finished step is
//! recorded in `saphan_seeds` and skipped next time; a step that writes tables should use upserts
//! so that one interrupted half-way can simply run again), and reports progress on long work.
//! Capability crates contribute steps; the binary decides which run for `saphan demo`.
//!
//! This crate must never know what a step writes.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use saphan_store::sqlx::{self, Row};
use saphan_store::{Db, Migration};
use sha2::{Digest, Sha256};

pub const MIGRATIONS: &[Migration] = &[Migration {
    id: "seed-0001-ledger",
    sql: "CREATE TABLE saphan_seeds (
        name TEXT PRIMARY KEY,
        version BIGINT NOT NULL,
        seed BIGINT NOT NULL,
        finished_at TEXT NOT NULL
    );",
}];

pub type SeedResult = Result<(), SeedError>;

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed step `{step}` failed: {message}")]
    Step { step: &'static str, message: String },
    #[error("seed ledger: {0}")]
    Store(#[from] saphan_store::StoreError),
}

impl From<sqlx::Error> for SeedError {
    fn from(e: sqlx::Error) -> Self {
        SeedError::Store(e.into())
    }
}

/// One seeding step.
pub trait SeedStep: Send + Sync {
    /// Permanent, unique name, e.g. `audit.platform-initialised`.
    fn name(&self) -> &'static str;
    /// Bump to make the step run again on databases that ran an older version.
    fn version(&self) -> u32 {
        1
    }
    fn run<'a>(&'a self, ctx: &'a mut SeedContext) -> BoxFuture<'a, SeedResult>;
}

/// What a step gets: the database, its own deterministic random generator, progress reporting
/// and the services the binary provides (e.g. the audit log), looked up by type.
pub struct SeedContext {
    pub db: Db,
    pub rng: ChaCha20Rng,
    step: &'static str,
    show_progress: bool,
    services: Arc<HashMap<std::any::TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl SeedContext {
    /// A progress bar of `len` units for this step (drawn only on a terminal).
    pub fn progress(&self, len: u64) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(
            Some(len),
            if self.show_progress {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix:>32} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(self.step);
        bar
    }

    /// A service the binary registered with [`Seeder::provide`].
    pub fn service<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.services
            .get(&std::any::TypeId::of::<T>())
            .and_then(|s| s.clone().downcast::<T>().ok())
    }

    pub fn fail(&self, message: impl std::fmt::Display) -> SeedError {
        SeedError::Step {
            step: self.step,
            message: message.to_string(),
        }
    }
}

/// Runs steps in order, each at most once per database.
pub struct Seeder {
    db: Db,
    seed: u64,
    show_progress: bool,
    steps: Vec<Box<dyn SeedStep>>,
    services: HashMap<std::any::TypeId, Arc<dyn Any + Send + Sync>>,
}

/// What happened to each step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    Ran(&'static str),
    AlreadyDone(&'static str),
}

impl Seeder {
    pub fn new(db: Db, seed: u64) -> Seeder {
        Seeder {
            db,
            seed,
            show_progress: false,
            steps: Vec::new(),
            services: HashMap::new(),
        }
    }

    pub fn show_progress(mut self, show: bool) -> Seeder {
        self.show_progress = show;
        self
    }

    pub fn step(mut self, step: impl SeedStep + 'static) -> Seeder {
        self.steps.push(Box::new(step));
        self
    }

    pub fn provide<T: Any + Send + Sync>(mut self, service: Arc<T>) -> Seeder {
        self.services.insert(std::any::TypeId::of::<T>(), service);
        self
    }

    /// The generator a step gets: ChaCha20 keyed by SHA-256(seed ‖ step name ‖ version).
    pub fn rng_for(seed: u64, step: &str, version: u32) -> ChaCha20Rng {
        let mut h = Sha256::new();
        h.update(seed.to_be_bytes());
        h.update(step.as_bytes());
        h.update(version.to_be_bytes());
        ChaCha20Rng::from_seed(h.finalize().into())
    }

    pub async fn run(self) -> Result<Vec<StepOutcome>, SeedError> {
        let services = Arc::new(self.services);
        let mut outcomes = Vec::new();
        for step in &self.steps {
            let name = step.name();
            let version = step.version();
            let done = sqlx::query("SELECT version FROM saphan_seeds WHERE name = $1")
                .bind(name)
                .fetch_optional(self.db.pool())
                .await?
                .map(|row| row.get::<i64, _>(0));
            if done.is_some_and(|v| v >= i64::from(version)) {
                outcomes.push(StepOutcome::AlreadyDone(name));
                continue;
            }
            let mut ctx = SeedContext {
                db: self.db.clone(),
                rng: Seeder::rng_for(self.seed, name, version),
                step: name,
                show_progress: self.show_progress,
                services: services.clone(),
            };
            step.run(&mut ctx).await?;
            sqlx::query(
                "INSERT INTO saphan_seeds (name, version, seed, finished_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version, seed = excluded.seed, \
                 finished_at = excluded.finished_at",
            )
            .bind(name)
            .bind(i64::from(version))
            .bind(self.seed as i64)
            .bind(saphan_core::clock::now_text())
            .execute(self.db.pool())
            .await?;
            tracing::info!(step = name, "seed step finished");
            outcomes.push(StepOutcome::Ran(name));
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use saphan_store::testing::for_each_backend;

    /// Writes `count` deterministic rows with an upsert, so a rerun changes nothing.
    struct Numbers {
        count: u64,
    }

    impl SeedStep for Numbers {
        fn name(&self) -> &'static str {
            "test.numbers"
        }
        fn run<'a>(&'a self, ctx: &'a mut SeedContext) -> BoxFuture<'a, SeedResult> {
            Box::pin(async move {
                let bar = ctx.progress(self.count);
                for i in 0..self.count {
                    let value: i64 = ctx.rng.gen_range(0..1_000_000);
                    sqlx::query("INSERT INTO numbers (i, v) VALUES ($1, $2) ON CONFLICT (i) DO UPDATE SET v = excluded.v")
                        .bind(i as i64)
                        .bind(value)
                        .execute(ctx.db.pool())
                        .await?;
                    bar.inc(1);
                }
                bar.finish_and_clear();
                Ok(())
            })
        }
    }

    async fn values(db: &Db) -> Vec<i64> {
        sqlx::query("SELECT v FROM numbers ORDER BY i")
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<i64, _>(0))
            .collect()
    }

    #[tokio::test]
    async fn steps_are_deterministic_and_run_once() {
        for_each_backend(|db| async move {
            db.migrate(MIGRATIONS).await.unwrap();
            sqlx::query("CREATE TABLE numbers (i BIGINT PRIMARY KEY, v BIGINT NOT NULL)")
                .execute(db.pool())
                .await
                .unwrap();
            let first = Seeder::new(db.clone(), 42)
                .step(Numbers { count: 20 })
                .run()
                .await
                .unwrap();
            assert_eq!(first, vec![StepOutcome::Ran("test.numbers")]);
            let seeded = values(&db).await;
            assert_eq!(seeded.len(), 20);

            let again = Seeder::new(db.clone(), 42)
                .step(Numbers { count: 20 })
                .run()
                .await
                .unwrap();
            assert_eq!(again, vec![StepOutcome::AlreadyDone("test.numbers")]);

            // Same seed, same data, whatever ran before.
            let mut a = Seeder::rng_for(42, "test.numbers", 1);
            let expected: Vec<i64> = (0..20).map(|_| a.gen_range(0..1_000_000)).collect();
            assert_eq!(seeded, expected);
            let mut other = Seeder::rng_for(43, "test.numbers", 1);
            assert_ne!(other.gen_range(0..1_000_000i64), expected[0]);
        })
        .await;
    }
}
