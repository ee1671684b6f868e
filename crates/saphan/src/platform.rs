//! Opening the platform: configuration, database, schema, key store, audit log, and the state
//! the web layer serves. Every command that needs the platform goes through here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use saphan_audit::AuditLog;
use saphan_core::{Config, Text};
use saphan_crypto::{KeyStore, Passphrase};
use saphan_store::{Db, Migration};
use saphan_web::{AdminToken, AppState, PortalService};

/// Every migration this build knows, in the order they apply.
pub fn migrations() -> Vec<Migration> {
    [
        saphan_audit::MIGRATIONS,
        saphan_seed::MIGRATIONS,
        saphan_identity::MIGRATIONS,
        saphan_oidc::MIGRATIONS,
        saphan_exchange::MIGRATIONS,
        saphan_registry::MIGRATIONS,
        saphan_procedures::MIGRATIONS,
        saphan_applications::MIGRATIONS,
    ]
    .concat()
}

pub async fn connect(config: &Config) -> Result<Db> {
    Ok(Db::connect(
        &config.database_url,
        config.database.max_connections,
        Duration::from_secs(config.database.connect_timeout_secs),
    )
    .await?)
}

pub fn passphrase(config: &Config) -> Result<Passphrase> {
    Ok(Passphrase::from_env_or_file(
        config.key_passphrase_file.as_deref(),
    )?)
}

pub fn open_keys(config: &Config) -> Result<KeyStore> {
    Ok(KeyStore::open(
        &config.keystore_path(),
        &passphrase(config)?,
    )?)
}

/// The public keys, read without the passphrase: public halves are stored in clear.
pub fn public_keys(config: &Config) -> Result<saphan_crypto::PublicKeySet> {
    let path = config.keystore_path();
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the key store {}; is --config / data_dir right?",
            path.display()
        )
    })?;
    #[derive(serde::Deserialize)]
    struct PublicOnly {
        keys: Vec<saphan_crypto::PublicKeyInfo>,
    }
    let file: PublicOnly = serde_json::from_str(&text).with_context(|| {
        format!(
            "the key store {} is damaged; restore it from a backup",
            path.display()
        )
    })?;
    Ok(saphan_crypto::PublicKeySet { keys: file.keys })
}

/// The administrator token: `SAPHAN_ADMIN_TOKEN`, else `admin-token` in the data directory.
pub fn admin_token(config: &Config) -> Result<Option<AdminToken>> {
    if let Ok(token) = std::env::var("SAPHAN_ADMIN_TOKEN") {
        if token.trim().len() < 16 {
            bail!("SAPHAN_ADMIN_TOKEN must be at least 16 characters");
        }
        return Ok(Some(AdminToken::new(&token)));
    }
    let path = admin_token_path(config);
    match std::fs::read_to_string(&path) {
        Ok(token) if token.trim().len() >= 16 => Ok(Some(AdminToken::new(&token))),
        Ok(_) => bail!(
            "{} must hold a token of at least 16 characters",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn admin_token_path(config: &Config) -> PathBuf {
    config.data_dir.join("admin-token")
}

/// Writes `contents` to a new file readable by the owner only; refuses to replace one.
pub fn write_secret_file(path: &Path, contents: &str) -> Result<()> {
    write_private_file(path, &format!("{contents}\n"), false)
}

/// Writes `contents` to `path`, readable by the owner only (it may hold a database password).
/// With `replace`, an existing file is overwritten, and tightened to owner-only.
pub fn write_private_file(path: &Path, contents: &str, replace: bool) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    if replace {
        options.write(true).create(true).truncate(true);
    } else {
        options.write(true).create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// The services the foundation itself offers on the landing page.
pub fn portal_services() -> Vec<PortalService> {
    vec![
        PortalService {
            title: Text::new("บริการภาครัฐ", "Government services"),
            description: Text::new(
                "ค้นหากระบวนงาน ดูคู่มือสำหรับประชาชน เอกสารที่ต้องใช้ ค่าธรรมเนียม และระยะเวลา",
                "Find a procedure: its citizen's manual, what is needed, fees and time limits",
            ),
            audience: Text::new(
                "สำหรับประชาชน ผู้ประกอบการ และชาวต่างชาติ",
                "For citizens, businesses and foreigners",
            ),
            href: "/services",
        },
        PortalService {
            title: Text::new(
                "เอกสาร API สำหรับระบบของหน่วยงาน",
                "API reference for agency systems",
            ),
            description: Text::new(
                "คำอธิบาย API ของแพลตฟอร์มตามมาตรฐาน OpenAPI 3.1 สำหรับฝ่ายไอทีของหน่วยงาน",
                "The platform's APIs described in OpenAPI 3.1, for agencies' IT teams",
            ),
            audience: Text::new("สำหรับหน่วยงานรัฐ", "For government agencies"),
            href: "/api-docs",
        },
        PortalService {
            title: Text::new("กุญแจสาธารณะของแพลตฟอร์ม", "The platform's public keys"),
            description: Text::new(
                "ใช้ตรวจสอบลายมือชื่อดิจิทัลและบันทึกตรวจสอบที่แพลตฟอร์มออกให้ได้ด้วยตนเอง",
                "Check the platform's digital signatures and audit records yourself",
            ),
            audience: Text::new("สำหรับผู้ตรวจสอบและประชาชน", "For auditors and the public"),
            href: "/api/v1/platform/keys",
        },
    ]
}

/// A running platform: what `serve` and `demo` share.
pub struct Platform {
    /// Serving the laptop demo: pages carry the demo banner.
    pub demo: bool,
    pub config: Config,
    pub db: Db,
    pub keys: Arc<KeyStore>,
    pub audit: AuditLog,
}

impl Platform {
    /// Opens a platform whose schema is current and whose key store exists.
    pub async fn open(config: Config, keys: KeyStore) -> Result<Platform> {
        let db = connect(&config).await?;
        db.check_schema(&migrations()).await?;
        let keys = Arc::new(keys);
        let audit = AuditLog::start(db.clone(), keys.clone(), &config.audit);
        Ok(Platform {
            demo: false,
            config,
            db,
            keys,
            audit,
        })
    }

    pub fn app_state(&self, admin_token: Option<AdminToken>) -> AppState {
        AppState::new(
            self.config.clone(),
            self.db.clone(),
            self.keys.clone(),
            self.audit.clone(),
            admin_token,
            portal_services(),
            migrations().len(),
            self.demo,
        )
    }

    /// Serves HTTP until SIGINT/SIGTERM, then drains requests and the audit log.
    pub async fn serve(
        self,
        admin_token: Option<AdminToken>,
        on_listening: impl FnOnce(std::net::SocketAddr),
    ) -> Result<()> {
        let listener = tokio::net::TcpListener::bind(self.config.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}; is another process using it? (set --listen or `listen`)",
                    self.config.listen
                )
            })?;
        let addr = listener.local_addr()?;
        let state = self.app_state(admin_token);
        let mailer = crate::notices::Mailer::new(&self.config.onestop)?;
        let (stop_sweep, stopped) = tokio::sync::watch::channel(false);
        let sweep = tokio::spawn(crate::notices::run(
            state.applications.clone(),
            mailer,
            std::time::Duration::from_secs(self.config.onestop.sweep_secs),
            stopped,
        ));
        let router = saphan_web::router(state);
        if let Some(tls_addr) = self.config.exchange.tls_listen {
            let tls_listener = tokio::net::TcpListener::bind(tls_addr)
                .await
                .with_context(|| {
                    format!("cannot listen on {tls_addr} for the exchange's mutual TLS (exchange.tls_listen)")
                })?;
            let mut names = vec!["localhost".to_string(), tls_addr.ip().to_string()];
            if let Some(host) = url::Url::parse(&self.config.public_url)
                .ok()
                .and_then(|u| u.host_str().map(String::from))
            {
                names.push(host);
            }
            names.sort();
            names.dedup();
            let tls = saphan_web::tls::server_config(&self.keys, names)
                .map_err(|e| anyhow::anyhow!("the exchange's TLS certificate: {e}"))?;
            tracing::info!(addr = %tls_addr, "exchange gateway listening with mutual TLS");
            tokio::spawn(saphan_web::tls::serve_tls(
                tls_listener,
                router.clone(),
                tls,
                shutdown_signal(),
            ));
        }
        on_listening(addr);
        tracing::info!(%addr, "listening");
        saphan_web::serve(
            listener,
            router,
            shutdown_signal(),
            Duration::from_secs(self.config.http.shutdown_grace_secs),
        )
        .await?;
        // The sweep finishes the round it is in, so that nothing it writes is cut half-way.
        let _ = stop_sweep.send(true);
        let _ = sweep.await;
        tracing::info!("draining the audit log");
        self.audit.shutdown().await;
        self.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested");
}
