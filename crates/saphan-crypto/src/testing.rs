//! For tests: one key store per test binary, created once (RSA-3072 generation is slow).

use std::sync::{Arc, OnceLock};

use crate::{KeyStore, Passphrase};

/// A key store in a temporary directory that lives as long as the test binary.
pub fn shared_keys() -> Arc<KeyStore> {
    static KEYS: OnceLock<(tempfile::TempDir, Arc<KeyStore>)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = KeyStore::create(&dir.path().join("keys.json"), &Passphrase::new("test"))
            .expect("a new key store");
        (dir, Arc::new(store))
    })
    .1
    .clone()
}
