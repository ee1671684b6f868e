//! Migrations on both databases: applied once, in order, on a single connection if need be;
//! status checks write nothing; a newer schema is refused.

use std::time::Duration;

use saphan_store::testing::for_each_backend;
use saphan_store::{Db, Migration, StoreError};

const FIRST: Migration = Migration {
    id: "test-0001-items",
    sql: "CREATE TABLE items (id BIGINT PRIMARY KEY, body {blob} NOT NULL);",
};
const SECOND: Migration = Migration {
    id: "test-0002-names",
    sql: "ALTER TABLE items ADD COLUMN name TEXT;",
};

#[tokio::test]
async fn migrations_apply_once_and_newer_schemas_are_refused() {
    for_each_backend(|db| async move {
        // Status on a fresh database reports everything pending and creates nothing.
        let status = db.schema_status(&[FIRST, SECOND]).await.unwrap();
        assert_eq!(status.pending, vec![FIRST.id, SECOND.id]);
        assert!(matches!(
            db.check_schema(&[FIRST]).await,
            Err(StoreError::SchemaBehind(1))
        ));
        assert!(db.schema_status(&[]).await.unwrap().applied.is_empty());

        assert_eq!(db.migrate(&[FIRST]).await.unwrap(), vec![FIRST.id]);
        assert_eq!(db.migrate(&[FIRST, SECOND]).await.unwrap(), vec![SECOND.id]);
        assert!(db.migrate(&[FIRST, SECOND]).await.unwrap().is_empty());
        db.check_schema(&[FIRST, SECOND]).await.unwrap();
        saphan_store::sqlx::query("INSERT INTO items (id, body, name) VALUES ($1, $2, $3)")
            .bind(1i64)
            .bind(vec![0u8, 1, 2])
            .bind("หนึ่ง")
            .execute(db.pool())
            .await
            .unwrap();

        // A build that knows only FIRST is older than this database.
        match db.check_schema(&[FIRST]).await {
            Err(StoreError::SchemaTooNew(id)) => assert_eq!(id, SECOND.id),
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
        assert!(matches!(
            db.migrate(&[FIRST]).await,
            Err(StoreError::SchemaTooNew(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn a_single_connection_pool_can_migrate() {
    for_each_backend(|db| async move {
        // Reconnect to the same database with one connection.
        let url = match db.backend() {
            saphan_store::Backend::Sqlite => {
                let row = saphan_store::sqlx::query("PRAGMA database_list")
                    .fetch_one(db.pool())
                    .await
                    .unwrap();
                format!(
                    "sqlite://{}",
                    saphan_store::sqlx::Row::get::<String, _>(&row, 2)
                )
            }
            saphan_store::Backend::Postgres => {
                let row = saphan_store::sqlx::query("SELECT CAST(current_database() AS TEXT)")
                    .fetch_one(db.pool())
                    .await
                    .unwrap();
                let name: String = saphan_store::sqlx::Row::get(&row, 0);
                let server = saphan_store::testing::postgres_server_url().unwrap();
                format!("{}/{name}", server.rsplit_once('/').unwrap().0)
            }
        };
        let one = Db::connect(&url, 1, Duration::from_secs(5)).await.unwrap();
        let applied = tokio::time::timeout(Duration::from_secs(20), one.migrate(&[FIRST, SECOND]))
            .await
            .expect("migrate must not wait for a second connection")
            .unwrap();
        assert_eq!(applied.len(), 2);
        one.close().await;
    })
    .await;
}
