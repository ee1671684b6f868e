//! The `saphan` binary: runs a platform node (`serve`), the laptop demo (`demo`), and the
//! operator's chores (`migrate`, `keys`, `audit`, `openapi`).
//!
//! This crate wires the library crates together and turns their errors into one clear line and a
//! non-zero exit. It holds no domain logic of its own.

mod audit_cmd;
mod demo;
mod demo_exchange;
mod demo_people;
mod exchange_cmd;
mod identity_cmd;
mod keys_cmd;
mod notices;
mod platform;
mod population;
mod procedures;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use saphan_core::config::LogFormat;
use saphan_core::Config;

#[derive(Parser)]
#[command(
    name = "saphan",
    version,
    about = "Saphan digital government platform / สะพาน แพลตฟอร์มรัฐบาลดิจิทัล"
)]
struct Cli {
    /// Configuration file (TOML); every key can also come from SAPHAN_* variables.
    #[arg(long, global = true, env = "SAPHAN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the demo platform on an embedded SQLite database, with demo data.
    Demo {
        /// Where the demo keeps its database, keys and tokens.
        #[arg(long, env = "SAPHAN_DATA_DIR", default_value = "./saphan-data")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "SAPHAN_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Seed for the deterministic demo data.
        #[arg(long, default_value_t = 2018)]
        seed: u64,
        /// Seed the data and exit without serving.
        #[arg(long)]
        no_serve: bool,
    },
    /// Run a platform node with the given configuration.
    Serve,
    /// Apply pending database migrations.
    Migrate {
        /// Only show which migrations are applied and pending.
        #[arg(long)]
        status: bool,
    },
    /// Manage the platform's keys.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Verify, export and prove the audit log.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Agencies whose officials hold roles and whose systems sign people in.
    #[command(subcommand)]
    Agencies(identity_cmd::AgenciesCommand),
    /// People in the digital ID (bootstrap officials; recovery codes).
    #[command(subcommand)]
    Identities(identity_cmd::IdentitiesCommand),
    /// Officials' roles per agency.
    #[command(subcommand)]
    Roles(identity_cmd::RolesCommand),
    /// OpenID Connect relying parties.
    #[command(subcommand)]
    Clients(identity_cmd::ClientsCommand),
    /// The data exchange: registry, message log, evidence.
    #[command(subcommand)]
    Exchange(exchange_cmd::ExchangeCommand),
    /// Generate synthetic data into the registries.
    #[command(subcommand)]
    Seed(population::SeedCommand),
    /// Print the OpenAPI 3.1 document.
    Openapi,
}

fn init_logging(config: &Config, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let load = || Config::load(cli.config.as_deref());
    match cli.command {
        Command::Demo {
            data_dir,
            listen,
            seed,
            no_serve,
        } => {
            let config = Config::for_demo(&data_dir, Some(listen))?;
            init_logging(&config, "info,sqlx=warn");
            demo::run(demo::DemoOptions {
                data_dir,
                listen: Some(listen),
                seed,
                serve: !no_serve,
            })
            .await?;
        }
        Command::Seed(command) => {
            let config = load()?;
            init_logging(&config, "warn");
            population::run_seed(config, command).await?;
        }
        Command::Serve => {
            let config = load()?;
            init_logging(&config, &config.log.level.clone());
            let keys = platform::open_keys(&config)?;
            let admin = platform::admin_token(&config)?;
            let node = platform::Platform::open(config, keys).await?;
            node.serve(admin, |_| {}).await?;
        }
        Command::Migrate { status } => {
            let config = load()?;
            init_logging(&config, "warn");
            let db = platform::connect(&config).await?;
            let known = platform::migrations();
            if status {
                let s = db.schema_status(&known).await?;
                println!("applied: {}", s.applied.len());
                for id in &s.pending {
                    println!("pending: {id}");
                }
                for id in &s.unknown {
                    println!("unknown to this build: {id}");
                }
            } else {
                let applied = db.migrate(&known).await?;
                println!(
                    "applied {} migrations; the schema is current",
                    applied.len()
                );
            }
            db.close().await;
        }
        Command::Keys(command) => {
            let config = load()?;
            init_logging(&config, "warn");
            keys_cmd::run(&config, command)?;
        }
        Command::Audit(command) => {
            let config = load()?;
            init_logging(&config, "warn");
            return audit_cmd::run(&config, command).await;
        }
        Command::Agencies(command) => {
            let config = load()?;
            init_logging(&config, "warn");
            identity_cmd::agencies(&config, command).await?;
        }
        Command::Identities(command) => {
            let config = load()?;
            init_logging(&config, "warn");
            identity_cmd::identities(&config, command).await?;
        }
        Command::Roles(command) => {
            let config = load()?;
            init_logging(&config, "warn");
            identity_cmd::roles(&config, command).await?;
        }
        Command::Clients(command) => {
            let config = load()?;
            init_logging(&config, "warn");
            identity_cmd::clients(&config, command).await?;
        }
        Command::Exchange(command) => {
            let config = load()?;
            init_logging(&config, "warn");
            return exchange_cmd::run(&config, command).await;
        }
        Command::Openapi => {
            println!("{}", saphan_web::openapi_document().to_pretty_json()?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// glibc's allocator spent about a seventh of the gateway's CPU under load (consolidating
/// freed chunks across threads); mimalloc's per-thread heaps avoid that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A panic is a bug; still, people get one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("saphan: internal error: {info}. This is a bug; please report it with the steps that led here.");
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("saphan: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("saphan: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, without repeating a cause its parent already quoted.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}
