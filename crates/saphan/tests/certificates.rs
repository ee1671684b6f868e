//! Certificates from the platform CA, checked by an independent implementation: OpenSSL's
//! `verify` against the CA certificate the platform publishes, and its reading of the key usages.

mod common;

use std::process::Command;

use common::{assert_success, Backend, Node};

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (Debian package openssl)")
}

#[tokio::test]
async fn issued_certificates_verify_with_openssl() {
    let node = Node::new(&Backend::Sqlite).await;
    node.prepare();
    let dir = node.data_dir().to_path_buf();
    let keys = node.run(&["keys", "export-public", "--format", "json"]);
    assert_success(&keys);
    let set: serde_json::Value = serde_json::from_slice(&keys.stdout).unwrap();
    let ca_pem = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["purpose"] == "certificate-authority" && k["status"] == "active")
        .and_then(|k| k["certificate_pem"].as_str())
        .unwrap()
        .to_string();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, &ca_pem).unwrap();

    for (kind, extra, eku) in [
        ("member", vec![], "TLS Web Client Authentication"),
        ("official", vec![], "E-mail Protection"),
        (
            "tls",
            vec!["--name", "saphan.example.go.th", "--name", "127.0.0.1"],
            "TLS Web Server Authentication",
        ),
    ] {
        let mut args = vec![
            "keys",
            "issue-cert",
            "--common-name",
            "TH/GOV/DOPA/CIVIL",
            "--kind",
            kind,
        ];
        args.extend(extra);
        let issued = node.run(&args);
        assert_success(&issued);
        let pem = String::from_utf8(issued.stdout).unwrap();
        assert!(pem.contains("BEGIN CERTIFICATE") && pem.contains("PRIVATE KEY"));
        let cert_path = dir.join(format!("{kind}.pem"));
        std::fs::write(&cert_path, &pem).unwrap();
        let verify = openssl(&[
            "verify",
            "-CAfile",
            ca_path.to_str().unwrap(),
            cert_path.to_str().unwrap(),
        ]);
        assert_success(&verify);
        let text = openssl(&[
            "x509",
            "-in",
            cert_path.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        assert_success(&text);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains(eku), "{kind}: {text}");
        assert!(text.contains("CA:FALSE"), "{kind}: {text}");
        if kind == "tls" {
            assert!(
                text.contains("DNS:saphan.example.go.th") && text.contains("IP Address:127.0.0.1"),
                "{text}"
            );
        }
    }

    // The time-stamping authority's certificate chains to the CA and is for time-stamping only.
    let tsa = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["purpose"] == "time-stamping")
        .and_then(|k| k["certificate_pem"].as_str())
        .unwrap();
    let tsa_path = dir.join("tsa.pem");
    std::fs::write(&tsa_path, tsa).unwrap();
    assert_success(&openssl(&[
        "verify",
        "-purpose",
        "timestampsign",
        "-CAfile",
        ca_path.to_str().unwrap(),
        tsa_path.to_str().unwrap(),
    ]));
    node.cleanup().await;
}
