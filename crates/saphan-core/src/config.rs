//! Node configuration: defaults, then an optional TOML file, then `SAPHAN_*` environment
//! variables (nested keys with `__`, e.g. `SAPHAN_HTTP__BODY_LIMIT_BYTES`).
//!
//! `saphan.example.toml` at the repository root documents every key; keep it in step with
//! [`Config`]. Secrets (the key-store passphrase) are never configuration values: they come from
//! `SAPHAN_KEY_PASSPHRASE` or from the file named by `key_passphrase_file`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `sqlite://path/to/file.db` or `postgres://user@host:port/db`.
    pub database_url: String,
    /// Address and port the HTTP server listens on.
    pub listen: SocketAddr,
    /// Where the key store and (for SQLite) the database live.
    pub data_dir: PathBuf,
    /// The address people and agency systems use to reach this platform.
    pub public_url: String,
    /// File holding the key-store passphrase; `SAPHAN_KEY_PASSPHRASE` wins when both are set.
    pub key_passphrase_file: Option<PathBuf>,
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub audit: AuditConfig,
    pub identity: IdentityConfig,
    pub exchange: ExchangeConfig,
    pub onestop: OneStopConfig,
    pub log: LogConfig,
}

/// The one-stop portal: applying, prefill and notices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OneStopConfig {
    /// The portal's own subsystem on the exchange, which reads registries for applicants with
    /// their consent.
    pub exchange_subsystem: String,
    /// Where notices are e-mailed through, e.g. `smtp://127.0.0.1:25` (plain, for a relay on
    /// the same network) or `smtps://user:password@mail.example.org` (TLS); none: notices are
    /// shown in the portal only.
    pub smtp_url: Option<String>,
    /// The sender of notice e-mails.
    pub mail_from: String,
    /// How often the 7-day updates, overdue tasks and e-mails are looked at, in seconds.
    pub sweep_secs: u64,
}

impl Default for OneStopConfig {
    fn default() -> Self {
        OneStopConfig {
            exchange_subsystem: "TH/GOV/DGA/PORTAL".into(),
            smtp_url: None,
            mail_from: "Saphan <no-reply@saphan.invalid>".into(),
            sweep_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub max_connections: u32,
    /// Seconds to wait for a connection before giving up.
    pub connect_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// A request that takes longer is answered with a timeout problem.
    pub request_timeout_secs: u64,
    /// On shutdown, in-flight requests get this long to finish.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// A signed checkpoint is made after this many records...
    pub checkpoint_every_records: u64,
    /// ...or after this many seconds, whichever comes first (if any record is waiting).
    pub checkpoint_every_secs: u64,
    /// Most records written in one group commit.
    pub max_batch: usize,
}

/// The data exchange gateway: identifiers, the mutual-TLS listener, limits toward providers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeConfig {
    /// The X-Road instance identifier of this platform (the first part of every member id).
    pub instance: String,
    /// Where the gateway also listens with TLS, asking callers for a client certificate issued
    /// by the platform CA (mutual TLS). None: tokens only, on the main listener.
    pub tls_listen: Option<SocketAddr>,
    /// Largest request or response body passed through, in bytes.
    pub max_body_bytes: u64,
    /// Bodies up to this size are read whole before forwarding, so the provider's assertion
    /// carries the complete request hash; larger ones stream.
    pub buffer_body_bytes: usize,
    /// Connecting to a provider's backend.
    pub connect_timeout_ms: u64,
    /// A provider's whole answer (headers); services may set their own.
    pub timeout_secs: u64,
    /// Failures in a row toward one service that open its circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before letting one through to try.
    pub breaker_cooldown_secs: u64,
    /// Lifetime of an OAuth access token given to a subsystem.
    pub token_ttl_secs: u64,
    /// GDX-compatible tokens expire after this long unused (GDX: 60 minutes).
    pub gdx_idle_secs: u64,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            instance: "TH".into(),
            tls_listen: None,
            max_body_bytes: 1024 * 1024 * 1024,
            buffer_body_bytes: 64 * 1024,
            connect_timeout_ms: 2000,
            timeout_secs: 30,
            breaker_failures: 5,
            breaker_cooldown_secs: 10,
            token_ttl_secs: 300,
            gdx_idle_secs: 3600,
        }
    }
}

/// The digital ID: password hashing, sessions, token lifetimes and the brute-force policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Argon2id memory cost in KiB (OWASP's 19 MiB by default).
    pub password_memory_kib: u32,
    /// Argon2id passes over memory.
    pub password_iterations: u32,
    /// Argon2id lanes.
    pub password_parallelism: u32,
    /// A browser sign-in lasts this long.
    pub session_hours: u64,
    /// Authorization codes expire after this many seconds.
    pub code_ttl_secs: u64,
    /// Access tokens expire after this many seconds.
    pub access_token_ttl_secs: u64,
    /// Refresh tokens (and their rotation family) expire after this many days.
    pub refresh_token_ttl_days: u64,
    /// After this many consecutive failures an account is locked from unknown devices...
    pub account_lock_after: u32,
    /// ...for 30 s, doubling with each further failure, up to this many seconds.
    pub account_lock_max_secs: u64,
    /// One network source may fail this many sign-ins per window before it is locked out...
    pub source_failures_per_window: u32,
    /// ...for the rest of a window of this many seconds.
    pub source_window_secs: u64,
    /// Upstream OpenID providers (such as ThaID) offered as sign-in methods.
    pub upstream: Vec<UpstreamProvider>,
    /// The exchange service that checks a national ID card (national id, Thai names, birth
    /// date and laser code, answering GovStack `exists`), e.g. `TH/GOV/DOPA/CIVREG/idcard-v1`.
    /// Empty: people cannot raise their assurance with their card online.
    pub idcard_check_service: String,
    /// The digital ID's own subsystem on the exchange, which asks the card check.
    pub exchange_subsystem: String,
}

/// An upstream OpenID provider people may sign in with. Its assertions map to local identities
/// by the national id claim, and to assurance levels by `acr` (or the defaults).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamProvider {
    /// Short name used in URLs, e.g. `thaid`.
    pub name: String,
    pub title_th: String,
    pub title_en: String,
    /// The provider's issuer; its `/.well-known/openid-configuration` is read at start.
    pub issuer: String,
    pub client_id: String,
    /// File holding the client secret registered with the provider.
    pub client_secret_file: PathBuf,
    #[serde(default = "default_upstream_scopes")]
    pub scopes: Vec<String>,
    /// Claim carrying the 13-digit national id (ThaID: `pid`).
    #[serde(default = "default_national_id_claim")]
    pub national_id_claim: String,
    /// Identity-assurance level of the provider's proofing when `acr_map` has no entry.
    pub default_ial: String,
    /// Authenticator-assurance level when `acr_map` has no entry.
    pub default_aal: u8,
    /// Upstream `acr` value → local `urn:saphan:ial-X:aal-Y`.
    #[serde(default)]
    pub acr_map: std::collections::BTreeMap<String, String>,
}

fn default_upstream_scopes() -> Vec<String> {
    vec!["openid".into(), "pid".into()]
}

fn default_national_id_claim() -> String {
    "pid".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `json` (one object per line, for machines) or `pretty` (for people at a terminal).
    pub format: LogFormat,
    /// A tracing filter such as `info` or `saphan=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

impl Default for Config {
    fn default() -> Self {
        let data_dir = PathBuf::from("./saphan-data");
        Config {
            database_url: "sqlite://./saphan-data/saphan.db".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            public_url: "http://127.0.0.1:8080".into(),
            key_passphrase_file: None,
            database: DatabaseConfig::default(),
            http: HttpConfig::default(),
            audit: AuditConfig::default(),
            identity: IdentityConfig::default(),
            exchange: ExchangeConfig::default(),
            onestop: OneStopConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            max_connections: 16,
            connect_timeout_secs: 5,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit_bytes: 2 * 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 30,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every_records: 1000,
            checkpoint_every_secs: 60,
            max_batch: 512,
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            password_memory_kib: 19 * 1024,
            password_iterations: 2,
            password_parallelism: 1,
            session_hours: 8,
            code_ttl_secs: 60,
            access_token_ttl_secs: 600,
            refresh_token_ttl_days: 30,
            account_lock_after: 5,
            account_lock_max_secs: 900,
            source_failures_per_window: 50,
            source_window_secs: 600,
            upstream: Vec::new(),
            idcard_check_service: String::new(),
            exchange_subsystem: "TH/GOV/DGA/DIGITALID".into(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

/// Why a configuration could not be used. Each message says what, where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} was not found; create it (see saphan.example.toml) or pass another --config")]
    FileMissing { path: PathBuf },
    #[error("configuration is not valid: {message}; see saphan.example.toml for every key")]
    Invalid { message: String },
}

/// The top-level keys read from `SAPHAN_*` variables. Other `SAPHAN_` variables (the
/// passphrase, the admin token, test and benchmark settings) are not configuration and are left
/// alone; a misspelt nested key (`SAPHAN_HTTP__BODY_LIMT`) is still refused.
const ENV_KEYS: &[&str] = &[
    "database_url",
    "listen",
    "data_dir",
    "public_url",
    "key_passphrase_file",
    "database",
    "http",
    "audit",
    "identity",
    "exchange",
    "onestop",
    "log",
];

impl Config {
    /// Defaults, overlaid by `file` (if given), overlaid by `SAPHAN_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::FileMissing {
                    path: path.to_owned(),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed("SAPHAN_").split("__").filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            ENV_KEYS.contains(&key.split('.').next().unwrap_or(""))
        }));
        let config: Config = figment.extract().map_err(|e| ConfigError::Invalid {
            message: describe_figment_error(e),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Configuration for `saphan demo`: everything under `data_dir`, SQLite unless overridden.
    pub fn for_demo(data_dir: &Path, listen: Option<SocketAddr>) -> Result<Config, ConfigError> {
        let mut config = Config::load(None)?;
        config.data_dir = data_dir.to_owned();
        if std::env::var_os("SAPHAN_DATABASE_URL").is_none() {
            config.database_url = format!("sqlite://{}", data_dir.join("saphan.db").display());
        }
        if let Some(listen) = listen {
            config.listen = listen;
        }
        if std::env::var_os("SAPHAN_PUBLIC_URL").is_none() {
            // Browsers refuse IP addresses as WebAuthn relying parties: on a laptop the demo is
            // `localhost`, so passkeys work.
            config.public_url = if config.listen.ip().is_loopback() {
                format!("http://localhost:{}", config.listen.port())
            } else {
                format!("http://{}", config.listen)
            };
        }
        if config.exchange.tls_listen.is_none()
            && std::env::var_os("SAPHAN_EXCHANGE__TLS_LISTEN").is_none()
        {
            // The demo shows mutual TLS too: the gateway's TLS port is the next one up.
            let mut tls = config.listen;
            tls.set_port(match config.listen.port() {
                0 => 0,
                p => p.wrapping_add(1).max(1),
            });
            config.exchange.tls_listen = Some(tls);
        }
        if config.identity.idcard_check_service.is_empty()
            && std::env::var_os("SAPHAN_IDENTITY__IDCARD_CHECK_SERVICE").is_none()
        {
            // The demo's civil registry publishes the card check (see `saphan-population`).
            config.identity.idcard_check_service = "TH/GOV/DOPA/CIVREG/idcard-v1".into();
        }
        config.log.format = LogFormat::Pretty;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return invalid("database_url must start with sqlite:// or postgres://".to_string());
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return invalid(format!(
                "public_url `{}` must start with http:// or https://",
                self.public_url
            ));
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections must be at least 1".into());
        }
        if self.http.body_limit_bytes < 1024 {
            return invalid("http.body_limit_bytes must be at least 1024".into());
        }
        if self.http.request_timeout_secs == 0 {
            return invalid("http.request_timeout_secs must be at least 1".into());
        }
        if self.audit.checkpoint_every_records == 0 || self.audit.checkpoint_every_secs == 0 {
            return invalid(
                "audit.checkpoint_every_records and audit.checkpoint_every_secs must be at least 1"
                    .into(),
            );
        }
        if self.audit.max_batch == 0 || self.audit.max_batch > 4096 {
            return invalid("audit.max_batch must be between 1 and 4096".into());
        }
        let ex = &self.exchange;
        let id_part = |p: &str| {
            !p.is_empty()
                && p.len() <= 255
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "'()+,-.=?".contains(c))
        };
        if !id_part(&ex.instance) {
            return invalid(
                "exchange.instance must be 1-255 of A-Z a-z 0-9 ' ( ) + , - . = ?".into(),
            );
        }
        if ex.max_body_bytes == 0
            || ex.connect_timeout_ms == 0
            || ex.timeout_secs == 0
            || ex.breaker_failures == 0
            || ex.token_ttl_secs == 0
            || ex.gdx_idle_secs == 0
        {
            return invalid("exchange limits (max_body_bytes, connect_timeout_ms, timeout_secs, breaker_failures, token_ttl_secs, gdx_idle_secs) must be at least 1".into());
        }
        let id = &self.identity;
        if id.password_memory_kib < 8 * 1024
            || id.password_iterations == 0
            || id.password_parallelism == 0
        {
            return invalid(
                "identity.password_memory_kib must be at least 8192 and the iterations and parallelism at least 1"
                    .into(),
            );
        }
        if id.session_hours == 0
            || id.code_ttl_secs == 0
            || id.access_token_ttl_secs == 0
            || id.refresh_token_ttl_days == 0
        {
            return invalid("identity lifetimes (session_hours, code_ttl_secs, access_token_ttl_secs, refresh_token_ttl_days) must be at least 1".into());
        }
        if id.account_lock_after == 0
            || id.source_failures_per_window == 0
            || id.source_window_secs == 0
        {
            return invalid("identity.account_lock_after, source_failures_per_window and source_window_secs must be at least 1".into());
        }
        for upstream in &id.upstream {
            if upstream.name.is_empty()
                || !upstream
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return invalid(format!(
                    "identity.upstream name `{}` must be lowercase letters, digits and -",
                    upstream.name
                ));
            }
            if !(upstream.issuer.starts_with("https://") || upstream.issuer.starts_with("http://"))
            {
                return invalid(format!(
                    "identity.upstream `{}`: issuer must be an http(s) URL",
                    upstream.name
                ));
            }
        }
        Ok(())
    }

    /// The path of the key store inside the data directory.
    pub fn keystore_path(&self) -> PathBuf {
        self.data_dir.join("keys").join("keystore.json")
    }
}

/// Figment's errors carry the key and the source (file or env var); say them in one line.
fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("key `{}`: ", e.path.join("."))
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" (in {src})"),
                    None => format!(" (in {})", m.name),
                })
                .unwrap_or_default();
            format!("{key}{}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
mod tests {
    use super::*;

    #[test]
    fn file_and_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "saphan.toml",
                "database_url = \"postgres://postgres@127.0.0.1/test\"\n[http]\nbody_limit_bytes = 4096\n",
            )?;
            jail.set_env("SAPHAN_LISTEN", "0.0.0.0:9000");
            jail.set_env("SAPHAN_AUDIT__MAX_BATCH", "64");
            jail.set_env("SAPHAN_KEY_PASSPHRASE", "not a config key");
            jail.set_env("SAPHAN_ADMIN_TOKEN", "not a config key either");
            jail.set_env("SAPHAN_CONFIG", "saphan.toml");
            jail.set_env("SAPHAN_BENCH_POSTGRES_URL", "postgres://elsewhere/x");
            let c = Config::load(Some(Path::new("saphan.toml"))).unwrap();
            assert_eq!(c.database_url, "postgres://postgres@127.0.0.1/test");
            assert_eq!(c.http.body_limit_bytes, 4096);
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.audit.max_batch, 64);
            Ok(())
        });
    }

    #[test]
    fn the_example_file_documents_exactly_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../saphan.example.toml");
        figment::Jail::expect_with(|_| {
            let c = Config::load(Some(&path)).unwrap();
            assert_eq!(c, Config::default());
            Ok(())
        });
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("saphan.toml", "databse_url = \"sqlite://x.db\"\n")?;
            let e = Config::load(Some(Path::new("saphan.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("databse_url"), "{e}");
            assert!(e.contains("saphan.toml"), "{e}");

            jail.create_file("bad.toml", "listen = \"not an address\"\n")?;
            let e = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("listen"), "{e}");

            jail.create_file("db.toml", "database_url = \"mysql://x\"\n")?;
            let e = Config::load(Some(Path::new("db.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("database_url"), "{e}");

            let e = Config::load(Some(Path::new("missing.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("missing.toml"), "{e}");
            Ok(())
        });
    }
}
