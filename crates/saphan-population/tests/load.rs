//! Loading a population on both databases: it grows with its own seed, a repeated or resumed
//! load adds nothing twice, and another seed is refused rather than mixed in.

use saphan_audit::AuditLog;
use saphan_core::config::{AuditConfig, IdentityConfig};
use saphan_identity::Directory;
use saphan_population::{load, DemoRegistries};
use saphan_registry::{Caller, ListQuery, Registries, RegistryError};

use saphan_crypto::testing::shared_keys as keys;

#[tokio::test]
async fn a_population_grows_with_its_own_seed_only() {
    saphan_store::testing::for_each_backend(|db| async move {
        let migrations: Vec<_> = [
            saphan_audit::MIGRATIONS,
            saphan_identity::MIGRATIONS,
            saphan_exchange::MIGRATIONS,
            saphan_registry::MIGRATIONS,
        ]
        .concat();
        db.migrate(&migrations).await.unwrap();
        let audit = AuditLog::start(db.clone(), keys(), &AuditConfig::default());
        let directory =
            Directory::new(db.clone(), audit.clone(), &IdentityConfig::default()).unwrap();
        let regs = Registries::new(db.clone(), audit, directory);
        let defs = DemoRegistries::define(&regs, "test").await.unwrap();
        let count = |def| {
            let regs = regs.clone();
            async move {
                regs.list(
                    def,
                    &Caller::platform("test"),
                    &ListQuery {
                        page_size: 1,
                        ..ListQuery::default()
                    },
                )
                .await
                .unwrap()
                .count
            }
        };
        let loaded = load(&regs, &defs, 7, 150, |_| {}).await.unwrap();
        assert_eq!(loaded.persons, 150);
        assert_eq!(count(&defs.person).await, 150);
        // Grown with the same seed: only the new people are added.
        load(&regs, &defs, 7, 400, |_| {}).await.unwrap();
        assert_eq!(count(&defs.person).await, 400);
        let houses = count(&defs.house).await;
        load(&regs, &defs, 7, 400, |_| {}).await.unwrap();
        assert_eq!(count(&defs.person).await, 400);
        assert_eq!(count(&defs.house).await, houses);
        assert!(count(&defs.idcard).await > 200);
        assert!(count(&defs.juristic).await >= 6);
        // Another seed would mix two populations under the same ids.
        assert!(matches!(
            load(&regs, &defs, 8, 100, |_| {}).await,
            Err(RegistryError::Invalid(m)) if m.contains("another seed")
        ));
    })
    .await;
}
