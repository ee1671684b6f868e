//! Bad input gives one clear error line (what, where, what to do) and a non-zero exit, never a
//! panic: malformed configuration, an unreachable database, a wrong passphrase, a corrupted audit
//! record, a schema newer than the binary.

mod common;

use common::{assert_one_clear_error, assert_success, backends, Backend, Node};
use saphan_store::sqlx;

#[tokio::test]
async fn malformed_configuration_is_named() {
    let node = Node::new(&Backend::Sqlite).await;
    std::fs::write(
        node.config_path(),
        "database_url = \"sqlite://x.db\"\nlisten = 8080\n",
    )
    .unwrap();
    assert_one_clear_error(&node.run(&["migrate"]), &["listen", "saphan.toml"]);

    std::fs::write(node.config_path(), "databse_url = \"sqlite://x.db\"\n").unwrap();
    assert_one_clear_error(
        &node.run(&["migrate"]),
        &["databse_url", "saphan.example.toml"],
    );

    std::fs::write(node.config_path(), "this is not toml = = =\n").unwrap();
    assert_one_clear_error(&node.run(&["migrate"]), &["saphan.toml"]);

    let missing = node
        .command(&["migrate"])
        .arg("--config")
        .arg("/nonexistent/saphan.toml")
        .output()
        .unwrap();
    assert_one_clear_error(&missing, &["/nonexistent/saphan.toml"]);

    node.write_config("");
    let bad_env = node
        .command(&["migrate"])
        .env("SAPHAN_HTTP__BODY_LIMIT_BYTES", "lots")
        .output()
        .unwrap();
    assert_one_clear_error(&bad_env, &["body_limit_bytes"]);
    node.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_database_is_named_without_its_password() {
    let node = Node::new(&Backend::Sqlite).await;
    let out = node
        .command(&["migrate"])
        .env(
            "SAPHAN_DATABASE_URL",
            "postgres://app:s3cret@127.0.0.1:1/saphan",
        )
        .env("SAPHAN_DATABASE__CONNECT_TIMEOUT_SECS", "2")
        .output()
        .unwrap();
    let line = assert_one_clear_error(&out, &["cannot reach the database", "127.0.0.1:1"]);
    assert!(!line.contains("s3cret"), "{line}");
    node.cleanup().await;
}

#[tokio::test]
async fn a_wrong_or_missing_passphrase_is_refused() {
    let node = Node::new(&Backend::Sqlite).await;
    node.prepare();
    let wrong = node
        .command(&["keys", "rotate"])
        .env("SAPHAN_KEY_PASSPHRASE", "guess")
        .output()
        .unwrap();
    assert_one_clear_error(&wrong, &["passphrase is wrong", "SAPHAN_KEY_PASSPHRASE"]);
    let none = node
        .command(&["keys", "rotate"])
        .env_remove("SAPHAN_KEY_PASSPHRASE")
        .output()
        .unwrap();
    assert_one_clear_error(&none, &["no key-store passphrase"]);
    // Listing public keys needs no passphrase.
    assert_success(
        &node
            .command(&["keys", "list"])
            .env_remove("SAPHAN_KEY_PASSPHRASE")
            .output()
            .unwrap(),
    );
    node.cleanup().await;
}

#[tokio::test]
async fn a_corrupted_audit_record_is_named_by_verify() {
    for backend in backends() {
        let node = Node::new(&backend).await;
        node.prepare();
        assert_success(&node.run(&["audit", "load", "--tasks", "4", "--per-task", "25"]));
        let ok = node.run(&["audit", "verify"]);
        assert_success(&ok);
        let text = String::from_utf8_lossy(&ok.stdout).to_string();
        assert!(
            text.starts_with("OK: 10"),
            "100 records and their checkpoints' records: {text}"
        );

        let db =
            saphan_store::Db::connect(&node.database_url, 1, std::time::Duration::from_secs(5))
                .await
                .unwrap();
        sqlx::query("UPDATE audit_records SET subject = 'forged' WHERE seq = 42")
            .execute(db.pool())
            .await
            .unwrap();
        db.close().await;
        let out = node.run(&["audit", "verify"]);
        assert_one_clear_error(&out, &["record 42", "altered"]);
        node.cleanup().await;
    }
}

#[tokio::test]
async fn nodes_refuse_a_schema_newer_than_they_know_or_not_migrated() {
    for backend in backends() {
        let node = Node::new(&backend).await;
        assert_success(&node.run(&["keys", "init"]));
        assert_one_clear_error(&node.run(&["serve"]), &["saphan migrate"]);
        assert_success(&node.run(&["migrate"]));
        let db =
            saphan_store::Db::connect(&node.database_url, 1, std::time::Duration::from_secs(5))
                .await
                .unwrap();
        sqlx::query("INSERT INTO saphan_migrations (position, id, applied_at) VALUES (99, 'future-0001-x', 'now')")
            .execute(db.pool())
            .await
            .unwrap();
        db.close().await;
        assert_one_clear_error(&node.run(&["serve"]), &["newer", "future-0001-x"]);
        assert_one_clear_error(&node.run(&["migrate"]), &["newer"]);
        node.cleanup().await;
    }
}
