//! `saphan agencies`, `saphan identities`, `saphan roles`, `saphan clients`: the operator's side
//! of the digital ID, for bootstrapping a deployment (the first agencies and officials) and for
//! registering relying parties from scripts. Every command acts as the platform operator and
//! goes through the same directory and provider calls (and audit records) as the API.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use saphan_core::{Config, Text};
use saphan_identity::{Agency, Directory, Ial, LoginId, NewIdentity, Role, Subject};
use saphan_oidc::{ClientRegistration, Provider};

use crate::platform::{self, Platform};

#[derive(Subcommand)]
pub enum AgenciesCommand {
    /// Add an agency, or rename one.
    Add {
        /// Short code: lowercase letters, digits and -, e.g. `dopa`.
        code: String,
        #[arg(long)]
        name_th: String,
        #[arg(long)]
        name_en: String,
    },
    /// List agencies.
    List,
}

#[derive(Subcommand)]
pub enum IdentitiesCommand {
    /// Add a person proofed elsewhere (e.g. at a counter). The password is read from stdin.
    Add {
        /// 13-digit national id, or a passport number with --nationality.
        #[arg(long)]
        identifier: String,
        /// Three-letter nationality, for passports.
        #[arg(long, default_value = "")]
        nationality: String,
        #[arg(long)]
        name_th: String,
        #[arg(long)]
        name_en: String,
        /// Identity-assurance level: 1, 2.1, 2.2, 2.3 or 3.
        #[arg(long)]
        ial: String,
        /// How the person was proofed, e.g. `counter:chip-card`.
        #[arg(long)]
        proofing: String,
    },
    /// Print ten new one-time recovery codes for a person (the old ones stop working).
    RecoveryCodes {
        #[arg(long)]
        identity: String,
    },
}

#[derive(Subcommand)]
pub enum RolesCommand {
    /// Grant an official a role in an agency.
    Grant {
        #[arg(long)]
        identity: String,
        #[arg(long)]
        agency: String,
        #[arg(long)]
        role: String,
    },
    /// Take a role away.
    Revoke {
        #[arg(long)]
        identity: String,
        #[arg(long)]
        agency: String,
        #[arg(long)]
        role: String,
    },
    /// List an agency's officials and their roles.
    List {
        #[arg(long)]
        agency: String,
    },
}

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Register a relying party; prints its client_id (and secret, shown once) as JSON.
    Register {
        /// A JSON registration document (as for POST /api/v1/identity/clients); `-` for stdin.
        file: PathBuf,
    },
    /// List relying parties as JSON.
    List {
        #[arg(long)]
        agency: Option<String>,
    },
    /// Remove a relying party and revoke everything issued to it.
    Delete { client_id: String },
}

async fn open(config: &Config) -> Result<(Platform, Directory)> {
    let keys = platform::open_keys(config)?;
    let node = Platform::open(config.clone(), keys).await?;
    let directory = Directory::new(node.db.clone(), node.audit.clone(), &config.identity)?;
    Ok((node, directory))
}

const ACTOR: &str = "operator:cli";

pub async fn agencies(config: &Config, command: AgenciesCommand) -> Result<()> {
    let (node, directory) = open(config).await?;
    let result = async {
        match command {
            AgenciesCommand::Add {
                code,
                name_th,
                name_en,
            } => {
                directory
                    .upsert_agency(
                        ACTOR,
                        &Agency {
                            code: code.clone(),
                            name: Text::owned(name_th, name_en),
                        },
                    )
                    .await?;
                println!("agency {code} saved");
            }
            AgenciesCommand::List => {
                for agency in directory.agencies().await? {
                    println!("{}\t{}\t{}", agency.code, agency.name.th, agency.name.en);
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    node.audit.shutdown().await;
    result
}

pub async fn identities(config: &Config, command: IdentitiesCommand) -> Result<()> {
    let (node, directory) = open(config).await?;
    let result = async {
        match command {
            IdentitiesCommand::Add {
                identifier,
                nationality,
                name_th,
                name_en,
                ial,
                proofing,
            } => {
                let login = LoginId::parse(&identifier, &nationality)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let ial: Ial = ial.parse()?;
                let mut password = String::new();
                std::io::stdin()
                    .read_to_string(&mut password)
                    .context("cannot read the password from stdin")?;
                let password = password.trim_end_matches(['\n', '\r']);
                saphan_identity::password::check_policy(password)?;
                let identity = directory
                    .create(
                        ACTOR,
                        NewIdentity {
                            login,
                            name: Text::owned(name_th, name_en),
                            ial,
                            proofing,
                        },
                    )
                    .await?;
                directory
                    .set_password(ACTOR, &identity.id, password)
                    .await?;
                println!("{}", identity.id);
            }
            IdentitiesCommand::RecoveryCodes { identity } => {
                if directory.get(&identity).await?.is_none() {
                    bail!("no identity {identity}");
                }
                for code in directory.new_recovery_codes(&identity).await? {
                    println!("{code}");
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    node.audit.shutdown().await;
    result
}

pub async fn roles(config: &Config, command: RolesCommand) -> Result<()> {
    let (node, directory) = open(config).await?;
    let result = async {
        match command {
            RolesCommand::Grant {
                identity,
                agency,
                role,
            } => {
                let role: Role = role.parse()?;
                let changed = directory
                    .grant_role(&Subject::Operator, &identity, &agency, role)
                    .await?;
                println!("{}", if changed { "granted" } else { "already held" });
            }
            RolesCommand::Revoke {
                identity,
                agency,
                role,
            } => {
                let role: Role = role.parse()?;
                let changed = directory
                    .revoke_role(&Subject::Operator, &identity, &agency, role)
                    .await?;
                println!("{}", if changed { "revoked" } else { "not held" });
            }
            RolesCommand::List { agency } => {
                for (identity, roles) in directory.officials(&agency).await? {
                    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                    println!("{}\t{}\t{}", identity.id, identity.name.en, roles.join(","));
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    node.audit.shutdown().await;
    result
}

pub async fn clients(config: &Config, command: ClientsCommand) -> Result<()> {
    let (node, directory) = open(config).await?;
    let provider = Provider::new(
        node.db.clone(),
        node.keys.clone(),
        directory,
        &config.public_url,
        &config.identity,
    );
    let result = async {
        match command {
            ClientsCommand::Register { file } => {
                let text = if file.as_os_str() == "-" {
                    let mut text = String::new();
                    std::io::stdin().read_to_string(&mut text)?;
                    text
                } else {
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?
                };
                let registration: ClientRegistration = serde_json::from_str(&text)
                    .context("the registration is not valid JSON for a client")?;
                let registered = provider
                    .register_client(&Subject::Operator, registration)
                    .await?;
                println!("{}", serde_json::to_string_pretty(&registered)?);
            }
            ClientsCommand::List { agency } => {
                let clients = provider.clients(agency.as_deref()).await?;
                println!("{}", serde_json::to_string_pretty(&clients)?);
            }
            ClientsCommand::Delete { client_id } => {
                if !provider
                    .delete_client(&Subject::Operator, &client_id)
                    .await?
                {
                    bail!("no client {client_id}");
                }
                println!("deleted {client_id}");
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    node.audit.shutdown().await;
    result
}
