//! `saphan demo`: the laptop platform. Creates what is missing in the data directory (SQLite
//! database, key-store passphrase, key store, admin token), applies migrations, seeds the demo
//! data, and serves.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use saphan_audit::{AuditEntry, AuditLog};
use saphan_core::Config;
use saphan_crypto::{KeyStore, Passphrase};
use saphan_seed::{SeedContext, SeedResult, SeedStep, Seeder};

use crate::platform::{self, Platform};

pub struct DemoOptions {
    pub data_dir: std::path::PathBuf,
    pub listen: Option<std::net::SocketAddr>,
    pub seed: u64,
    pub serve: bool,
}

/// The passphrase for the demo's key store: `SAPHAN_KEY_PASSPHRASE`, else the `passphrase` file
/// in the data directory, created on first run.
fn demo_passphrase(data_dir: &Path) -> Result<(Passphrase, Option<std::path::PathBuf>)> {
    if std::env::var("SAPHAN_KEY_PASSPHRASE").is_ok_and(|p| !p.is_empty()) {
        return Ok((Passphrase::from_env_or_file(None)?, None));
    }
    let path = data_dir.join("passphrase");
    if !path.exists() {
        let generated = Passphrase::generate();
        platform::write_secret_file(&path, generated.expose())?;
        eprintln!(
            "Created a key-store passphrase in {} (keep it secret; back it up).",
            path.display()
        );
    }
    Ok((Passphrase::from_env_or_file(Some(&path))?, Some(path)))
}

/// Writes `saphan.toml` into the data directory, so that operator commands reach the demo:
/// `saphan --config saphan-data/saphan.toml audit verify`. Paths in it are absolute.
fn write_demo_config(config: &Config) -> Result<()> {
    let dir = std::fs::canonicalize(&config.data_dir)
        .with_context(|| format!("cannot resolve {}", config.data_dir.display()))?;
    let mut file_config = config.clone();
    file_config.data_dir = dir.clone();
    if file_config.database_url.starts_with("sqlite:") {
        file_config.database_url = format!("sqlite://{}", dir.join("saphan.db").display());
    }
    file_config.key_passphrase_file = config
        .key_passphrase_file
        .as_ref()
        .map(|_| dir.join("passphrase"));
    let text = format!(
        "# Written by `saphan demo`: the demo's settings, for operator commands such as\n\
         # saphan --config {}/saphan.toml audit verify\n{}",
        dir.display(),
        toml::to_string(&file_config).context("cannot describe the demo configuration")?
    );
    platform::write_private_file(&dir.join("saphan.toml"), &text, true)
}

/// The demo's population: enough for lists and searches, seeded in seconds.
const DEMO_PERSONS: u64 = 2_000;

pub async fn run(options: DemoOptions) -> Result<()> {
    let mut config = Config::for_demo(&options.data_dir, options.listen)?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let (passphrase, passphrase_file) = demo_passphrase(&config.data_dir)?;
    config.key_passphrase_file = passphrase_file;

    write_demo_config(&config)?;
    let db = platform::connect(&config).await?;
    let applied = db.migrate(&platform::migrations()).await?;
    if !applied.is_empty() {
        eprintln!("Applied {} database migrations.", applied.len());
    }
    db.close().await;

    let keystore_path = config.keystore_path();
    let created = !keystore_path.exists();
    if created {
        eprintln!(
            "Generating the platform keys (ECDSA P-256, RSA-3072) and certificate authority..."
        );
    }
    let keys = KeyStore::open_or_create(&keystore_path, &passphrase)?;
    if created {
        eprintln!("Created the key store {}.", keystore_path.display());
    }

    let token_path = platform::admin_token_path(&config);
    if std::env::var_os("SAPHAN_ADMIN_TOKEN").is_none() && !token_path.exists() {
        platform::write_secret_file(&token_path, Passphrase::generate().expose())?;
    }
    let admin_token = platform::admin_token(&config)?;

    let mut platform = Platform::open(config, keys).await?;
    platform.demo = true;
    let directory = saphan_identity::Directory::new(
        platform.db.clone(),
        platform.audit.clone(),
        &platform.config.identity,
    )?;
    let exchange = platform.app_state(None).exchange.clone();
    let outcomes = Seeder::new(platform.db.clone(), options.seed)
        .show_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .provide(Arc::new(platform.audit.clone()))
        .provide(crate::procedures::catalogue_of(&platform, &directory))
        .provide(Arc::new(directory))
        .provide(Arc::new(exchange))
        .provide(crate::population::registries_of(&platform))
        .step(PlatformInitialised)
        .step(crate::demo_people::DemoPeople {
            data_dir: platform.config.data_dir.clone(),
            extra_citizens: 50,
        })
        .step(crate::procedures::DemoProcedures)
        .step(crate::demo_exchange::DemoExchange {
            data_dir: platform.config.data_dir.clone(),
        })
        .step(crate::population::DemoPopulation {
            persons: DEMO_PERSONS,
            seed: options.seed,
            public_url: platform.config.public_url.clone(),
            data_dir: platform.config.data_dir.clone(),
        })
        .step(crate::procedures::DemoPortal {
            subsystem: platform.config.onestop.exchange_subsystem.clone(),
        })
        .run()
        .await?;
    let ran = outcomes
        .iter()
        .filter(|o| matches!(o, saphan_seed::StepOutcome::Ran(_)))
        .count();
    eprintln!(
        "Demo data: {ran} seed steps ran, {} were already done (seed {}).",
        outcomes.len() - ran,
        options.seed
    );

    if !options.serve {
        platform.audit.shutdown().await;
        return Ok(());
    }
    let token_hint = if std::env::var_os("SAPHAN_ADMIN_TOKEN").is_some() {
        "the token in SAPHAN_ADMIN_TOKEN".to_string()
    } else {
        format!("the token in {}", token_path.display())
    };
    let data_dir = platform.config.data_dir.clone();
    let public_url = platform.config.public_url.clone();
    let tls = platform.config.exchange.tls_listen;
    platform
        .serve(admin_token, move |addr| {
            // The public address (localhost, so passkeys work), unless the port was picked now.
            let base = if addr.port() == options.listen.map_or(0, |l| l.port()) {
                public_url
            } else {
                format!("http://{addr}")
            };
            println!();
            println!("Saphan is running (Ctrl-C to stop). / สะพานพร้อมให้บริการแล้ว");
            println!("  Portal / พอร์ทัล:            {base}/");
            println!(
                "  Services / บริการภาครัฐ:     {base}/services   (GovStack Registration: {base}/registration/services)"
            );
            println!(
                "  API reference / เอกสาร API:  {base}/api-docs   (OpenAPI: {base}/openapi.json)"
            );
            println!("  Admin console / ผู้ดูแลระบบ:  {base}/admin   (sign in with {token_hint})");
            println!("  Health: {base}/healthz  Ready: {base}/readyz  Metrics: {base}/metrics");
            println!("  OpenID provider: {base}/.well-known/openid-configuration");
            crate::demo_people::print_logins(&data_dir, &base);
            crate::demo_exchange::print_example(&data_dir, &base, tls);
        })
        .await
}

/// The first audit record of every platform: who set it up, with which seed.
struct PlatformInitialised;

impl SeedStep for PlatformInitialised {
    fn name(&self) -> &'static str {
        "platform.initialised"
    }

    fn run<'a>(&'a self, ctx: &'a mut SeedContext) -> BoxFuture<'a, SeedResult> {
        Box::pin(async move {
            let audit = ctx
                .service::<AuditLog>()
                .ok_or_else(|| ctx.fail("the audit log is not available"))?;
            let entry = AuditEntry::new(
                "system:demo",
                "platform.initialised",
                "platform",
                &serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }),
            );
            audit.append(entry).await.map_err(|e| ctx.fail(e))?;
            Ok(())
        })
    }
}
