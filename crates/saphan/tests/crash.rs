//! SIGKILL during a sustained append load loses no acknowledged record, and the chain verifies
//! after restart. The load runs in a real `saphan` process that prints each acknowledgement only
//! after it was durable; the test kills it with SIGKILL mid-stream.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{assert_success, backends, Node};
use saphan_store::sqlx::{self, Row};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_record() {
    for backend in backends() {
        let node = Node::new(&backend).await;
        // Small checkpoints so the kill lands among checkpoints too.
        node.write_config("[audit]\ncheckpoint_every_records = 200\ncheckpoint_every_secs = 1\n");
        node.prepare();

        let mut acked: Vec<(u64, String)> = Vec::new();
        for round in 0..2 {
            let mut child = node
                .command(&["audit", "load", "--tasks", "32"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let reader = std::thread::spawn(move || {
                let mut lines = Vec::new();
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut parts = line.split_whitespace();
                    if let (Some("ack"), Some(seq), Some(hash)) =
                        (parts.next(), parts.next(), parts.next())
                    {
                        lines.push((seq.parse::<u64>().unwrap(), hash.to_string()));
                    }
                }
                lines
            });
            let started = Instant::now();
            // Let the load run, then kill it without warning.
            tokio::time::sleep(Duration::from_millis(if round == 0 { 2500 } else { 1500 })).await;
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            let round_acks = reader.join().unwrap();
            assert!(
                round_acks.len() > 50,
                "round {round}: only {} acks in {:?}",
                round_acks.len(),
                started.elapsed()
            );
            acked.extend(round_acks);
        }

        let db = saphan_store::Db::connect(&node.database_url, 2, Duration::from_secs(5))
            .await
            .unwrap();
        let mut missing = Vec::new();
        for (seq, hash) in &acked {
            let row = sqlx::query("SELECT hash FROM audit_records WHERE seq = $1")
                .bind(*seq as i64)
                .fetch_optional(db.pool())
                .await
                .unwrap();
            match row {
                Some(r) if &r.get::<String, _>(0) == hash => {}
                _ => missing.push(*seq),
            }
        }
        db.close().await;
        assert!(missing.is_empty(), "acknowledged records lost: {missing:?}");

        let verify = node.run(&["audit", "verify"]);
        if !verify.status.success() {
            // Under a loaded machine the checkpointer can lag the writers when the kill lands;
            // the documented remedy after every node stopped uncleanly is the operator's
            // `audit checkpoint`. Any other failure (a broken chain) is a real one.
            let said = String::from_utf8_lossy(&verify.stderr).to_string();
            assert!(said.contains("not covered by any checkpoint"), "{said}");
            assert_success(&node.run(&["audit", "checkpoint"]));
            assert_success(&node.run(&["audit", "verify"]));
        }
        let after = node.run(&["audit", "load", "--tasks", "4", "--per-task", "10"]);
        assert_success(&after);
        assert_success(&node.run(&["audit", "verify"]));
        node.cleanup().await;
    }
}
