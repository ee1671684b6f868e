//! `saphan demo` creates what is missing, seeds once, and reuses everything on the next start.

mod common;

use common::saphan;

fn demo(dir: &std::path::Path) -> std::process::Output {
    saphan()
        .args(["demo", "--no-serve", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn a_second_start_reuses_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("saphan-data");
    let first = demo(&data);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let said = String::from_utf8_lossy(&first.stderr);
    assert!(said.contains("Created a key-store passphrase"), "{said}");
    assert!(said.contains("6 seed steps ran"), "{said}");
    assert!(data.join("exchange/dbd-registry.crt").exists());
    let keystore = std::fs::read(data.join("keys/keystore.json")).unwrap();
    let token = std::fs::read(data.join("admin-token")).unwrap();
    let logins = std::fs::read(data.join("demo-logins.json")).unwrap();

    let second = demo(&data);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("0 seed steps ran, 6 were already done"),
        "{said}"
    );
    assert!(
        !said.contains("Created"),
        "nothing is created again: {said}"
    );
    assert_eq!(
        std::fs::read(data.join("keys/keystore.json")).unwrap(),
        keystore
    );
    assert_eq!(std::fs::read(data.join("admin-token")).unwrap(), token);
    assert_eq!(
        std::fs::read(data.join("demo-logins.json")).unwrap(),
        logins,
        "the demo people are seeded once"
    );

    #[cfg(unix)]
    for secret in [
        "passphrase",
        "admin-token",
        "saphan.toml",
        "keys/keystore.json",
        "demo-logins.json",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join(secret))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{secret} must be readable by its owner only");
    }

    // The operator commands reach the demo through the configuration it wrote.
    let verify = saphan()
        .arg("--config")
        .arg(data.join("saphan.toml"))
        .args(["audit", "verify"])
        .env_remove("SAPHAN_KEY_PASSPHRASE")
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).starts_with("OK: "));
}
