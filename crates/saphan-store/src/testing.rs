//! Throw-away databases for tests: a fresh SQLite file always, and a fresh PostgreSQL database
//! when `SAPHAN_TEST_POSTGRES_URL` names a server (CI and `cargo xtask test` set it).
//!
//! Each PostgreSQL test database is created under a unique name and dropped afterwards, even
//! when the test body panics.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

use crate::{Backend, Db};

pub const POSTGRES_ENV: &str = "SAPHAN_TEST_POSTGRES_URL";

/// Runs `body` once per available backend, each on a fresh empty database.
pub async fn for_each_backend<F, Fut>(body: F)
where
    F: Fn(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}/test.db", dir.path().display());
    let db = Db::connect(&url, 8, Duration::from_secs(10))
        .await
        .expect("sqlite test database");
    body(db.clone()).await;
    db.close().await;

    if let Some(server) = postgres_server_url() {
        let pg = PostgresTestDb::create(&server).await;
        let outcome = AssertUnwindSafe(body(pg.db.clone())).catch_unwind().await;
        pg.drop_now().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// The PostgreSQL server tests should use, if one is configured.
pub fn postgres_server_url() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|s| !s.is_empty())
}

/// A fresh PostgreSQL database, dropped by [`PostgresTestDb::drop_now`].
pub struct PostgresTestDb {
    pub url: String,
    pub db: Db,
    name: String,
    admin: Db,
}

impl PostgresTestDb {
    /// Creates a new database on `server` (whose URL names any existing database, e.g. `.../test`).
    pub async fn create(server: &str) -> PostgresTestDb {
        let admin = Db::connect(server, 2, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but PostgreSQL is not usable: {e}"));
        assert_eq!(
            admin.backend(),
            Backend::Postgres,
            "{POSTGRES_ENV} must be a postgres:// URL"
        );
        let name = format!("saphan_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(admin.pool())
            .await
            .expect("create test database");
        let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
        let url = format!("{base}/{name}");
        let db = Db::connect(&url, 8, Duration::from_secs(10))
            .await
            .expect("connect to test database");
        PostgresTestDb {
            url,
            db,
            name,
            admin,
        }
    }

    pub async fn drop_now(self) {
        self.db.close().await;
        let _ = sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(self.admin.pool())
        .await;
        self.admin.close().await;
    }
}
