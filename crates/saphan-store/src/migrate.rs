//! Migrations: each capability crate lists its own, in order; the binary runs them all.
//!
//! A migration's `id` is permanent (`crate-NNNN-what`). The database records which ids it has;
//! an id it has but this build does not know means the schema is newer than the code, and the
//! node refuses to start rather than corrupt it.

use sqlx::Row;

use crate::db::{Backend, Db, StoreError};

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub id: &'static str,
    /// SQL for both databases; `{blob}` becomes `BLOB` or `BYTEA`; `{bytewise}` after a
    /// `TEXT` column makes it compare byte by byte on both (SQLite's default; PostgreSQL's
    /// `COLLATE "C"`), so that prefix ranges mean the same everywhere.
    pub sql: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    pub applied: Vec<String>,
    pub pending: Vec<&'static str>,
    pub unknown: Vec<String>,
}

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS saphan_migrations (\
    position BIGINT PRIMARY KEY, id TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)";

/// Arbitrary constant: the advisory lock key that serialises migrations across nodes.
const MIGRATION_LOCK: i64 = 0x5a_50_48_41_4e;

impl Migration {
    fn sql_for(&self, backend: Backend) -> String {
        let blob = match backend {
            Backend::Sqlite => "BLOB",
            Backend::Postgres => "BYTEA",
        };
        let bytewise = match backend {
            Backend::Sqlite => "",
            Backend::Postgres => " COLLATE \"C\"",
        };
        self.sql
            .replace("{blob}", blob)
            .replace("{bytewise}", bytewise)
    }
}

/// Whether the migration ledger exists: asked without DDL, so that status checks work under a
/// read-only role.
async fn ledger_exists(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
) -> Result<bool, StoreError> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'saphan_migrations'"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'saphan_migrations'"
        }
    };
    let row = sqlx::query(sql).fetch_one(&mut *conn).await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

async fn status_on(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    known: &[Migration],
) -> Result<SchemaStatus, StoreError> {
    let applied: Vec<String> = if ledger_exists(conn, backend).await? {
        sqlx::query("SELECT id FROM saphan_migrations ORDER BY position")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect()
    } else {
        Vec::new()
    };
    let pending = known
        .iter()
        .filter(|m| !applied.iter().any(|a| a == m.id))
        .map(|m| m.id)
        .collect();
    let unknown = applied
        .iter()
        .filter(|a| !known.iter().any(|m| m.id == a.as_str()))
        .cloned()
        .collect();
    Ok(SchemaStatus {
        applied,
        pending,
        unknown,
    })
}

impl Db {
    /// What is applied, what is pending, and what the database has that `known` lacks.
    pub async fn schema_status(&self, known: &[Migration]) -> Result<SchemaStatus, StoreError> {
        let mut conn = self.pool().acquire().await?;
        status_on(&mut conn, self.backend(), known).await
    }

    /// Refuses a schema that is newer than `known` or still has pending migrations.
    pub async fn check_schema(&self, known: &[Migration]) -> Result<(), StoreError> {
        let status = self.schema_status(known).await?;
        if let Some(id) = status.unknown.first() {
            return Err(StoreError::SchemaTooNew(id.clone()));
        }
        if !status.pending.is_empty() {
            return Err(StoreError::SchemaBehind(status.pending.len()));
        }
        Ok(())
    }

    /// Applies every pending migration, each in its own transaction, all on one connection.
    /// Safe to run from several nodes at once: on PostgreSQL an advisory lock serialises them;
    /// SQLite has one writer.
    pub async fn migrate(&self, known: &[Migration]) -> Result<Vec<&'static str>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                .execute(&mut *conn)
                .await?;
        }
        let result = self.migrate_locked(&mut conn, known).await;
        if self.backend() == Backend::Postgres {
            sqlx::query(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    async fn migrate_locked(
        &self,
        conn: &mut sqlx::AnyConnection,
        known: &[Migration],
    ) -> Result<Vec<&'static str>, StoreError> {
        sqlx::raw_sql(LEDGER).execute(&mut *conn).await?;
        let status = status_on(conn, self.backend(), known).await?;
        if let Some(id) = status.unknown.first() {
            return Err(StoreError::SchemaTooNew(id.clone()));
        }
        let mut position = status.applied.len() as i64;
        let mut applied = Vec::new();
        for migration in known.iter().filter(|m| status.pending.contains(&m.id)) {
            let sql = migration.sql_for(self.backend());
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(&sql).execute(&mut *tx).await?;
            position += 1;
            sqlx::query(
                "INSERT INTO saphan_migrations (position, id, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(position)
            .bind(migration.id)
            .bind(saphan_core::clock::format_instant(
                time::OffsetDateTime::now_utc(),
            ))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(migration = migration.id, "applied migration");
            applied.push(migration.id);
        }
        Ok(applied)
    }
}
