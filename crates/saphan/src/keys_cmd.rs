//! `saphan keys`: list, rotate and export the platform's keys; issue certificates.

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use saphan_core::Config;
use saphan_crypto::{CertificateKind, CertificateRequest, KeyStore};

use crate::platform;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create the key store (first generation of every key) if there is none.
    Init,
    /// List every key: kid, algorithm, purpose, status, creation time.
    List,
    /// Retire the active keys and create a new generation (old public keys stay for verification).
    Rotate,
    /// Print the public keys.
    ExportPublic {
        #[arg(long, value_enum, default_value_t = PublicFormat::Json)]
        format: PublicFormat,
    },
    /// Issue an X.509 certificate from the platform CA (prints PEM; a new private key too, when
    /// no --public-key is given).
    IssueCert {
        #[arg(long)]
        common_name: String,
        #[arg(long)]
        organization: Option<String>,
        #[arg(long, value_enum)]
        kind: CertKind,
        /// DNS names or IP addresses, for --kind tls.
        #[arg(long = "name")]
        names: Vec<String>,
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// The subject's public key (PEM SubjectPublicKeyInfo).
        #[arg(long)]
        public_key: Option<std::path::PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PublicFormat {
    /// The public key set, as audit bundles carry it.
    Json,
    /// A JSON Web Key Set of the signing keys.
    Jwks,
    /// PEM public keys and certificates.
    Pem,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CertKind {
    Member,
    Official,
    Tls,
}

pub fn run(config: &Config, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Init => {
            let path = config.keystore_path();
            if path.exists() {
                println!("the key store {} already exists", path.display());
                return Ok(());
            }
            KeyStore::create(&path, &platform::passphrase(config)?)?;
            println!("created the key store {}", path.display());
        }
        KeysCommand::List => {
            let keys = platform::public_keys(config)?;
            println!(
                "{:<44} {:<6} {:<22} {:<8} created",
                "kid", "alg", "purpose", "status"
            );
            for k in keys.keys {
                println!(
                    "{:<44} {:<6} {:<22} {:<8} {}",
                    k.kid,
                    format!("{:?}", k.alg),
                    k.purpose.name(),
                    format!("{:?}", k.status).to_lowercase(),
                    k.created
                );
            }
        }
        KeysCommand::Rotate => {
            let mut store = platform::open_keys(config)?;
            let created = store.rotate()?;
            for k in created {
                println!("new active {} {:?} key {}", k.purpose.name(), k.alg, k.kid);
            }
            println!("old keys are retired and kept for verification; restart the nodes to sign with the new keys");
        }
        KeysCommand::ExportPublic { format } => {
            let keys = platform::public_keys(config)?;
            match format {
                PublicFormat::Json => println!("{}", serde_json::to_string_pretty(&keys)?),
                PublicFormat::Jwks => println!("{}", serde_json::to_string_pretty(&keys.jwks()?)?),
                PublicFormat::Pem => {
                    for k in &keys.keys {
                        println!(
                            "# kid {} {:?} {} {:?}",
                            k.kid,
                            k.alg,
                            k.purpose.name(),
                            k.status
                        );
                        print!("{}", k.public_pem()?);
                        if let Some(cert) = &k.certificate_pem {
                            print!("{cert}");
                        }
                    }
                }
            }
        }
        KeysCommand::IssueCert {
            common_name,
            organization,
            kind,
            names,
            days,
            public_key,
        } => {
            let store = platform::open_keys(config)?;
            let kind = match kind {
                CertKind::Member => CertificateKind::Member,
                CertKind::Official => CertificateKind::Official,
                CertKind::Tls => {
                    if names.is_empty() {
                        bail!("--kind tls needs at least one --name (a DNS name or IP address)");
                    }
                    CertificateKind::TlsServer { names }
                }
            };
            let public_key_der =
                match public_key {
                    Some(path) => {
                        let pem = std::fs::read_to_string(&path)
                            .with_context(|| format!("cannot read {}", path.display()))?;
                        Some(pem_body(&pem).with_context(|| {
                            format!("{} is not a PEM public key", path.display())
                        })?)
                    }
                    None => None,
                };
            let issued = store.issue_certificate(&CertificateRequest {
                common_name,
                organization,
                kind,
                valid_days: days,
                public_key_der,
            })?;
            print!("{}", issued.certificate_pem);
            if let Some(key) = issued.private_key_pem {
                print!("{key}");
            }
        }
    }
    Ok(())
}

fn pem_body(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()
}
