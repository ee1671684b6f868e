use std::sync::Arc;

use saphan_audit::AuditLog;
use saphan_core::Config;
use saphan_crypto::KeyStore;
use saphan_identity::Directory;
use saphan_oidc::Provider;
use saphan_store::Db;

use crate::portal::{PortalService, Templates};

/// The administrator token that guards the admin console until officials' roles arrive with the
/// digital ID. Only its SHA-256 is kept in memory.
#[derive(Clone)]
pub struct AdminToken {
    hash: [u8; 32],
}

impl AdminToken {
    pub fn new(token: &str) -> AdminToken {
        use sha2::Digest;
        AdminToken {
            hash: sha2::Sha256::digest(token.trim().as_bytes()).into(),
        }
    }

    /// Constant-time comparison of a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        use sha2::Digest;
        use subtle::ConstantTimeEq;
        let presented: [u8; 32] = sha2::Sha256::digest(presented.trim().as_bytes()).into();
        presented.ct_eq(&self.hash).into()
    }

    pub(crate) fn mac_key(&self) -> &[u8; 32] {
        &self.hash
    }
}

/// Everything a request handler may reach, shared: axum clones the state for every request, so
/// a clone is one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What [`AppState`] shares.
#[derive(Clone)]
pub struct Parts {
    pub config: Arc<Config>,
    pub db: Db,
    pub keys: Arc<KeyStore>,
    pub audit: AuditLog,
    pub admin_token: Option<AdminToken>,
    pub services: Arc<Vec<PortalService>>,
    pub(crate) templates: Arc<Templates>,
    /// Migration ids this build knows, for the admin console's schema line.
    pub known_migrations: usize,
    /// A demo platform says so on every page.
    pub demo: bool,
    pub(crate) admin_failures: Arc<crate::admin::FailureBudget>,
    /// The digital ID: identities, sign-in methods, roles.
    pub directory: Directory,
    /// The OpenID provider over the directory.
    pub oidc: Provider,
    /// Passkey sign-in, when the public URL can be a WebAuthn relying party.
    pub passkeys: Option<saphan_identity::Passkeys>,
    /// The data exchange: registry, credentials and the gateway.
    pub exchange: saphan_exchange::gateway::Gateway,
    /// The registry engine (served behind the exchange).
    pub registries: saphan_registry::Registries,
    /// The one-stop catalogue of procedures and bundles.
    pub catalogue: saphan_procedures::Catalogue,
    /// Applications and their workflow.
    pub applications: saphan_applications::Applications,
    /// Agencies' names for the portal's pages, read again after a few seconds.
    pub(crate) agency_names: Arc<std::sync::RwLock<Option<crate::procedures::CachedNames>>>,
}

impl AppState {
    /// A separate state with some parts changed (tests, and a platform that varies one part).
    pub fn altered(&self, change: impl FnOnce(&mut Parts)) -> AppState {
        let mut parts = (*self.0).clone();
        change(&mut parts);
        AppState(Arc::new(parts))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        db: Db,
        keys: Arc<KeyStore>,
        audit: AuditLog,
        admin_token: Option<AdminToken>,
        services: Vec<PortalService>,
        known_migrations: usize,
        demo: bool,
    ) -> AppState {
        let directory = Directory::new(db.clone(), audit.clone(), &config.identity)
            .expect("identity configuration was validated with the rest");
        let oidc = Provider::new(
            db.clone(),
            keys.clone(),
            directory.clone(),
            &config.public_url,
            &config.identity,
        );
        let passkeys = match saphan_identity::Passkeys::new(&config.public_url, directory.clone()) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "passkeys are off");
                None
            }
        };
        let registry =
            saphan_exchange::Registry::new(db.clone(), audit.clone(), &config.exchange.instance);
        let credentials = Arc::new(saphan_exchange::credentials::Credentials::new(
            registry.clone(),
            directory.clone(),
            keys.clone(),
            &config.public_url,
            &config.exchange,
        ));
        let exchange = saphan_exchange::gateway::Gateway::new(
            registry,
            credentials,
            directory.clone(),
            keys.clone(),
            &config.public_url,
            &config.exchange,
        )
        .expect("the gateway's HTTP client builds");
        let registries =
            saphan_registry::Registries::new(db.clone(), audit.clone(), directory.clone());
        let catalogue =
            saphan_procedures::Catalogue::new(db.clone(), audit.clone(), directory.clone());
        let applications = saphan_applications::Applications::new(
            db.clone(),
            audit.clone(),
            catalogue.clone(),
            directory.clone(),
        );
        AppState(Arc::new(Parts {
            agency_names: Arc::new(std::sync::RwLock::new(None)),
            applications,
            catalogue,
            registries,
            exchange,
            passkeys,
            directory,
            oidc,
            config: Arc::new(config),
            db,
            keys,
            audit,
            admin_token,
            services: Arc::new(services),
            templates: Arc::new(Templates::new()),
            known_migrations,
            demo,
            admin_failures: Arc::new(crate::admin::FailureBudget::default()),
        }))
    }
}
