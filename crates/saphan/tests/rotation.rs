//! Key rotation through the CLI: a new generation signs from then on, the old one is retired but
//! kept, and the whole log, signed partly by each, still verifies (live and as a bundle).

mod common;

use common::{assert_success, Backend, Node};

#[tokio::test]
async fn the_log_verifies_across_a_key_rotation() {
    let node = Node::new(&Backend::Sqlite).await;
    node.prepare();
    assert_success(&node.run(&["audit", "load", "--tasks", "2", "--per-task", "5"]));
    let before: serde_json::Value = serde_json::from_slice(
        &node
            .run(&["keys", "export-public", "--format", "json"])
            .stdout,
    )
    .unwrap();

    let rotated = node.run(&["keys", "rotate"]);
    assert_success(&rotated);
    assert_success(&node.run(&["audit", "load", "--tasks", "2", "--per-task", "5"]));

    let after: serde_json::Value = serde_json::from_slice(
        &node
            .run(&["keys", "export-public", "--format", "json"])
            .stdout,
    )
    .unwrap();
    let keys = after["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2 * before["keys"].as_array().unwrap().len());
    assert_eq!(
        keys.iter().filter(|k| k["status"] == "retired").count(),
        keys.len() / 2
    );

    // Both generations signed checkpoints...
    let checkpoints_by = |kid: &str| {
        let proof = node.run(&["audit", "proof", "1"]);
        assert_success(&proof);
        String::from_utf8_lossy(&proof.stdout).contains(kid)
    };
    let old_signing = before["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["purpose"] == "signing" && k["alg"] == "ES256")
        .unwrap();
    assert!(
        checkpoints_by(old_signing["kid"].as_str().unwrap()),
        "record 1 was signed by the first generation"
    );

    // ...and everything verifies, live and from a bundle checked with the exported keys.
    let verify = node.run(&["audit", "verify"]);
    assert_success(&verify);
    let dir = node.data_dir();
    let bundle = dir.join("log.jsonl");
    let keys_file = dir.join("keys.json");
    std::fs::write(&keys_file, serde_json::to_vec(&after).unwrap()).unwrap();
    assert_success(&node.run(&["audit", "export", "--out", bundle.to_str().unwrap()]));
    assert_success(&node.run(&[
        "audit",
        "verify",
        "--bundle",
        bundle.to_str().unwrap(),
        "--keys",
        keys_file.to_str().unwrap(),
    ]));

    // Keys from before the rotation cannot vouch for checkpoints signed after it.
    let old_keys_file = dir.join("old-keys.json");
    std::fs::write(&old_keys_file, serde_json::to_vec(&before).unwrap()).unwrap();
    let refused = node.run(&[
        "audit",
        "verify",
        "--bundle",
        bundle.to_str().unwrap(),
        "--keys",
        old_keys_file.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    node.cleanup().await;
}
