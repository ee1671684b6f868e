//! The audit log on both databases: group commit, checkpoints, proofs, bundles, and detection of
//! every kind of tampering with the stored records, checkpoints and signatures.

use std::sync::{Arc, OnceLock};

use saphan_audit::{AuditEntry, AuditLog, MIGRATIONS};
use saphan_core::config::AuditConfig;
use saphan_crypto::{KeyStore, Passphrase};
use saphan_store::sqlx;
use saphan_store::testing::for_each_backend;
use saphan_store::Db;

/// One key store for the whole test binary: generating RSA-3072 keys is slow.
fn keys() -> Arc<KeyStore> {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let path = dir.path().join("keystore.json");
    static CREATE: OnceLock<()> = OnceLock::new();
    CREATE.get_or_init(|| {
        KeyStore::create(&path, &Passphrase::new("test")).unwrap();
    });
    Arc::new(KeyStore::open(&path, &Passphrase::new("test")).unwrap())
}

fn config(every_records: u64) -> AuditConfig {
    AuditConfig {
        checkpoint_every_records: every_records,
        checkpoint_every_secs: 3600,
        max_batch: 64,
    }
}

async fn filled_log(db: &Db, n: u64) -> AuditLog {
    db.migrate(MIGRATIONS).await.unwrap();
    let log = AuditLog::start(db.clone(), keys(), &config(50));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                log.append(AuditEntry::new(
                    format!("official:{}", i % 7),
                    "admin.change",
                    format!("setting:{i}"),
                    &serde_json::json!({ "i": i }),
                ))
                .await
                .unwrap()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().seq);
    }
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len() as u64, n, "every append gets a distinct seq");
    log
}

fn tail_policy() -> Option<saphan_audit::TailPolicy> {
    Some(saphan_audit::TailPolicy::from_config(
        &config(50),
        time::OffsetDateTime::now_utc(),
    ))
}

async fn verify(db: &Db) -> Result<saphan_audit::VerifyReport, saphan_audit::VerifyFailure> {
    saphan_audit::verify_database(db, &keys().public_keys(), tail_policy(), |_, _| {})
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_chain_checkpoint_and_verify() {
    for_each_backend(|db| async move {
        let log = filled_log(&db, 230).await;
        log.shutdown().await;
        let report = verify(&db).await.unwrap();
        assert!(report.checkpoints >= 1);
        assert_eq!(
            report.records,
            230 + report.checkpoints,
            "each checkpoint adds its record"
        );
        assert_eq!(report.unsigned_tail, 0, "shutdown signs a final checkpoint");
        let after = log.append(AuditEntry::new("a", "b", "c", &1)).await;
        assert!(after.is_err(), "appends after shutdown fail");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inclusion_proofs_verify_offline_and_detect_forgery() {
    for_each_backend(|db| async move {
        let log = filled_log(&db, 120).await;
        log.checkpoint_now().await.unwrap();
        for seq in [1, 2, 50, 51, 77, 120] {
            let proof = saphan_audit::inclusion_proof(&db, &keys().public_keys(), seq)
                .await
                .unwrap();
            let json = serde_json::to_string(&proof).unwrap();
            let back: saphan_audit::InclusionProof = serde_json::from_str(&json).unwrap();
            back.verify(Some(&keys().public_keys())).unwrap();

            let mut forged = back.clone();
            forged.record.subject = "someone else".into();
            assert!(forged.verify(None).is_err());
            let mut forged = back.clone();
            if let Some(h) = forged.audit_path.first_mut() {
                h.replace_range(0..2, if h.starts_with("00") { "11" } else { "00" });
                assert!(forged.verify(None).is_err());
            }
        }
        assert!(matches!(
            saphan_audit::inclusion_proof(&db, &keys().public_keys(), 999).await,
            Err(saphan_audit::AuditError::NoSuchRecord(999))
        ));
        log.shutdown().await;
    })
    .await;
}

async fn exec(db: &Db, sql: &str) {
    sqlx::query(sql).execute(db.pool()).await.unwrap();
}

/// Runs one tampering statement and checks that it hit exactly one row (one that hit nothing
/// would leave the test proving nothing); returns the checkpoints, for failure messages.
async fn tamper(db: &Db, sql: &str) -> String {
    let changed = sqlx::query(sql).execute(db.pool()).await.unwrap();
    let checkpoints: Vec<(i64, String)> =
        sqlx::query_as("SELECT first_seq, substr(timestamp_token, 1, 16) FROM audit_checkpoints")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(
        changed.rows_affected(),
        1,
        "{sql} changed nothing; checkpoints: {checkpoints:?}"
    );
    format!("{checkpoints:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_records_is_detected_and_named() {
    let cases: &[(&str, u64)] = &[
        ("UPDATE audit_records SET actor = 'mallory' WHERE seq = 37", 37),
        ("UPDATE audit_records SET recorded_at = '2020-01-01T00:00:00.000000Z' WHERE seq = 5", 5),
        ("UPDATE audit_records SET payload_hash = '1111111111111111111111111111111111111111111111111111111111111111' WHERE seq = 90", 90),
        ("UPDATE audit_records SET hash = 'zz' WHERE seq = 12", 12),
        ("DELETE FROM audit_records WHERE seq = 64", 64),
        ("DELETE FROM audit_records WHERE seq = 100", 100),
        ("UPDATE audit_records SET prev_hash = hash WHERE seq = 20", 20),
    ];
    for &(sql, named) in cases {
        for_each_backend(|db| async move {
            let log = filled_log(&db, 100).await;
            log.shutdown().await;
            verify(&db).await.unwrap();
            tamper(&db, sql).await;
            let failure = verify(&db).await.expect_err(sql);
            assert_eq!(failure.seq, Some(named), "{sql}: {}", failure.message);
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_checkpoints_and_signatures_is_detected() {
    let cases: &[&str] = &[
        "UPDATE audit_checkpoints SET merkle_root = '2222222222222222222222222222222222222222222222222222222222222222' WHERE first_seq = 1",
        "UPDATE audit_checkpoints SET created_at = '2030-01-01T00:00:00.000000Z' WHERE first_seq = 1",
        "UPDATE audit_checkpoints SET signature = replace(signature, '\"value\":\"', '\"value\":\"AAAA') WHERE first_seq = 1",
        // The token is base64 DER: a SEQUENCE with a long-form length always starts "MI" (a
        // token under 256 bytes starts "MIG"/"MIH", so matching "MII" missed now and then).
        "UPDATE audit_checkpoints SET timestamp_token = replace(timestamp_token, '\"token\":\"MI', '\"token\":\"MJ') WHERE first_seq = 1",
        "UPDATE audit_checkpoints SET signature = 'garbage' WHERE first_seq = 1",
        "UPDATE audit_checkpoints SET head_hash = '3333333333333333333333333333333333333333333333333333333333333333' WHERE first_seq = 1",
    ];
    for &sql in cases {
        for_each_backend(|db| async move {
            let log = filled_log(&db, 80).await;
            log.shutdown().await;
            verify(&db).await.unwrap();
            let checkpoints = tamper(&db, sql).await;
            let failure = verify(&db)
                .await
                .expect_err(&format!("{sql}; checkpoints: {checkpoints}"));
            assert!(
                failure.message.contains("checkpoint"),
                "{sql}: {}",
                failure.message
            );
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_any_checkpoint_is_detected() {
    for_each_backend(|db| async move {
        let log = filled_log(&db, 60).await;
        for _ in 0..2 {
            log.checkpoint_now().await.unwrap();
            log.append(AuditEntry::new("a", "late", "x", &1))
                .await
                .unwrap();
        }
        log.shutdown().await;
        let checkpoints = saphan_audit::read_checkpoints(&db).await.unwrap();
        assert!(checkpoints.len() >= 3);
        verify(&db).await.unwrap();

        // The newest: its record in the chain names it.
        let newest = checkpoints.last().unwrap();
        exec(
            &db,
            &format!(
                "DELETE FROM audit_checkpoints WHERE first_seq = {}",
                newest.first_seq
            ),
        )
        .await;
        let failure = verify(&db).await.unwrap_err();
        assert_eq!(
            failure.seq,
            Some(newest.last_seq + 1),
            "{}",
            failure.message
        );
        assert!(
            failure.message.contains("checkpoint was removed"),
            "{}",
            failure.message
        );

        // An earlier one: the checkpoints no longer tile the log.
        tamper(&db, "DELETE FROM audit_checkpoints WHERE first_seq = 1").await;
        let failure = verify(&db).await.unwrap_err();
        assert!(
            failure.message.contains("checkpoint"),
            "{}",
            failure.message
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_the_log_after_a_checkpoint_is_detected() {
    for_each_backend(|db| async move {
        let log = filled_log(&db, 40).await;
        let c = log.checkpoint_now().await.unwrap().unwrap();
        log.shutdown().await;
        // Remove the checkpoint's record and move the head back, as a careful forger would.
        exec(
            &db,
            &format!("DELETE FROM audit_records WHERE seq > {}", c.last_seq),
        )
        .await;
        exec(
            &db,
            &format!(
                "UPDATE audit_head SET seq = {}, hash = '{}' WHERE id = 1",
                c.last_seq, c.head_hash
            ),
        )
        .await;
        let failure = verify(&db).await.unwrap_err();
        assert!(
            failure.message.contains("log was cut"),
            "{}",
            failure.message
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_action_is_reserved() {
    for_each_backend(|db| async move {
        let log = filled_log(&db, 1).await;
        let forged = log
            .append(AuditEntry::new(
                "mallory",
                saphan_audit::CHECKPOINT_ACTION,
                "checkpoint:1-1",
                &0,
            ))
            .await;
        assert!(matches!(
            forged,
            Err(saphan_audit::AuditError::InvalidEntry(_))
        ));
        log.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_verify_elsewhere_and_tampered_bundles_do_not() {
    for_each_backend(|db| async move {
        let log = filled_log(&db, 150).await;
        log.shutdown().await;
        let mut bundle = Vec::new();
        let n =
            saphan_audit::export_bundle(&db, &keys().public_keys(), &mut bundle, "test", |_, _| {})
                .await
                .unwrap();
        let report =
            saphan_audit::verify_bundle(&bundle[..], "test", None, tail_policy(), |_, _| {})
                .unwrap()
                .unwrap();
        assert_eq!(report.records, n);
        assert_eq!(n, 150 + report.checkpoints);

        let text = String::from_utf8(bundle).unwrap();
        let tampered = text.replacen("setting:42\"", "setting:43\"", 1);
        assert_ne!(tampered, text);
        let failure = saphan_audit::verify_bundle(
            tampered.as_bytes(),
            "test",
            None,
            tail_policy(),
            |_, _| {},
        )
        .unwrap()
        .unwrap_err();
        assert!(failure.message.contains("record"), "{}", failure.message);

        // Signed by keys the verifier does not trust.
        let dir = tempfile::tempdir().unwrap();
        let other = KeyStore::create(&dir.path().join("k.json"), &Passphrase::new("x")).unwrap();
        let failure = saphan_audit::verify_bundle(
            text.as_bytes(),
            "test",
            Some(&other.public_keys()),
            tail_policy(),
            |_, _| {},
        )
        .unwrap()
        .unwrap_err();
        assert!(failure.message.contains("signature"), "{}", failure.message);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_database_keep_one_chain() {
    // Two nodes on one database: each has its own writer; the head lock keeps the chain linear.
    for_each_backend(|db| async move {
        db.migrate(MIGRATIONS).await.unwrap();
        let a = AuditLog::start(db.clone(), keys(), &config(40));
        let b = AuditLog::start(db.clone(), keys(), &config(40));
        let mut tasks = Vec::new();
        for i in 0..120u64 {
            let log = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                log.append(AuditEntry::new("node", "x", format!("{i}"), &i))
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        a.shutdown().await;
        b.shutdown().await;
        let report = verify(&db).await.unwrap();
        assert_eq!(report.records, 120 + report.checkpoints);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_log_is_checkpointed_after_the_interval() {
    for_each_backend(|db| async move {
        db.migrate(MIGRATIONS).await.unwrap();
        let config = AuditConfig {
            checkpoint_every_records: 1_000_000,
            checkpoint_every_secs: 1,
            max_batch: 64,
        };
        let log = AuditLog::start(db.clone(), keys(), &config);
        for i in 0..3 {
            log.append(AuditEntry::new("a", "quiet", "x", &i))
                .await
                .unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let checkpoints = saphan_audit::read_checkpoints(&db).await.unwrap();
            if checkpoints.last().is_some_and(|c| c.last_seq == 3) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no time-based checkpoint"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(verify(&db).await.unwrap().unsigned_tail, 0);
        log.shutdown().await;
    })
    .await;
}

/// Re-chains every record from `from` on, as a forger who changed one of them would, and moves
/// the head to the new last hash.
async fn rechain_from(db: &Db, from: u64) {
    let mut records = saphan_audit::read_records(db, 0, 100_000).await.unwrap();
    let mut prev = if from > 1 {
        records[from as usize - 2].hash.clone()
    } else {
        "0".repeat(64)
    };
    for r in records.iter_mut().filter(|r| r.seq >= from) {
        r.prev_hash = prev.clone();
        r.hash = hex::encode(r.computed_hash().unwrap());
        sqlx::query(
            "UPDATE audit_records SET action = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
        )
        .bind(&r.action)
        .bind(&r.prev_hash)
        .bind(&r.hash)
        .bind(r.seq as i64)
        .execute(db.pool())
        .await
        .unwrap();
        prev = r.hash.clone();
    }
    let last = records.last().unwrap();
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(last.seq as i64)
        .bind(&last.hash)
        .execute(db.pool())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripping_checkpoints_from_the_end_is_caught_by_the_tail_bound() {
    for_each_backend(|db| async move {
        db.migrate(MIGRATIONS).await.unwrap();
        let small = AuditConfig {
            checkpoint_every_records: 10,
            checkpoint_every_secs: 3600,
            max_batch: 4,
        };
        let log = AuditLog::start(db.clone(), keys(), &small);
        for i in 0..120u64 {
            log.append(AuditEntry::new(
                "official:1",
                "admin.change",
                format!("setting:{i}"),
                &i,
            ))
            .await
            .unwrap();
            if i % 10 == 9 {
                log.checkpoint_now().await.unwrap();
            }
        }
        log.shutdown().await;
        let policy = || {
            Some(saphan_audit::TailPolicy::from_config(
                &small,
                time::OffsetDateTime::now_utc(),
            ))
        };
        let keys = keys().public_keys();
        saphan_audit::verify_database(&db, &keys, policy(), |_, _| {})
            .await
            .unwrap()
            .unwrap();

        // The forger removes the newest checkpoints (about 60 records' worth), disguises their
        // records, and re-chains everything after the first one touched.
        let checkpoints = saphan_audit::read_checkpoints(&db).await.unwrap();
        let (head_seq, _) = saphan_audit::head(&db).await.unwrap();
        let keep = checkpoints
            .iter()
            .position(|c| c.first_seq + 70 > head_seq)
            .unwrap();
        let first_stripped = checkpoints[keep].clone();
        for c in &checkpoints[keep..] {
            exec(
                &db,
                &format!(
                    "DELETE FROM audit_checkpoints WHERE first_seq = {}",
                    c.first_seq
                ),
            )
            .await;
            exec(
                &db,
                &format!(
                    "UPDATE audit_records SET action = 'admin.change' WHERE seq = {}",
                    c.last_seq + 1
                ),
            )
            .await;
        }
        rechain_from(&db, first_stripped.last_seq + 1).await;

        // Chain and remaining checkpoints are consistent: only the tail bound can tell.
        let unbounded = saphan_audit::verify_database(&db, &keys, None, |_, _| {})
            .await
            .unwrap()
            .unwrap();
        assert!(unbounded.unsigned_tail > 50);
        let failure = saphan_audit::verify_database(&db, &keys, policy(), |_, _| {})
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            failure.message.contains("not covered by any checkpoint"),
            "{}",
            failure.message
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_beyond_a_head_moved_back_are_named() {
    for_each_backend(|db| async move {
        let log = filled_log(&db, 30).await;
        let c = log.checkpoint_now().await.unwrap().unwrap();
        log.append(AuditEntry::new("a", "after", "x", &1))
            .await
            .unwrap();
        log.shutdown().await;
        // Drop the newest checkpoint and move the head back to where it started.
        exec(
            &db,
            &format!(
                "DELETE FROM audit_checkpoints WHERE first_seq = {}",
                c.first_seq
            ),
        )
        .await;
        exec(
            &db,
            &format!(
                "UPDATE audit_head SET seq = {}, hash = '{}' WHERE id = 1",
                c.last_seq, c.head_hash
            ),
        )
        .await;
        let failure = verify(&db).await.unwrap_err();
        assert!(
            failure.message.contains("checkpoint") || failure.message.contains("head"),
            "{}",
            failure.message
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_found_by_actor_action_and_subject_whatever_the_action_holds() {
    for_each_backend(|db| async move {
        let log = filled_log(&db, 0).await;
        // A plain action is written into the query (for partial indexes); any other is bound.
        for action in ["svc.call", "Odd 'quoted' action; DROP TABLE audit_records"] {
            for (actor, subject) in [("alice", "ds:1"), ("bob", "ds:1"), ("alice", "ds:2")] {
                log.append(AuditEntry::with_detail(actor, action, subject, &action))
                    .await
                    .unwrap();
            }
            let found = saphan_audit::find_records(
                &db,
                &saphan_audit::RecordFilter {
                    action: Some(action.into()),
                    subject: Some("ds:1".into()),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            assert_eq!(found.len(), 2, "{action}");
            assert!(found[0].record.seq > found[1].record.seq, "newest first");
            assert!(found.iter().all(|r| r.record.action == action));
            let by_actor = saphan_audit::find_records(
                &db,
                &saphan_audit::RecordFilter {
                    actor: Some("alice".into()),
                    action: Some(action.into()),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            assert_eq!(by_actor.len(), 2, "{action}");
        }
        log.shutdown().await;
    })
    .await;
}
