//! `saphan exchange`: the operator's side of the data exchange — onboarding members and
//! subsystems, publishing services, rights, credentials, and the message log (search; kept
//! bodies; evidence for one call, verified offline). Everything goes through the same
//! `saphan-exchange` calls (and audit records) as the API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use saphan_core::Config;
use saphan_exchange::log::{Evidence, LogSearch};

use crate::platform::{self, Platform};

/// Every command acts as the platform operator, through the same calls (and audit records) as
/// the API.
const OPERATOR: saphan_identity::Subject = saphan_identity::Subject::Operator;

#[derive(Subcommand)]
pub enum ExchangeCommand {
    /// List members and their subsystems.
    Members,
    /// Onboard a member (as the platform operator).
    AddMember {
        /// Member class: GOV, COM, NGO, NEE, ORG or PRIV.
        #[arg(long)]
        class: String,
        #[arg(long)]
        code: String,
        #[arg(long)]
        name_th: String,
        #[arg(long)]
        name_en: String,
        /// The digital-ID agency whose exchange-admins manage this member.
        #[arg(long)]
        agency: Option<String>,
    },
    /// Add a subsystem to a member, e.g. `--member GOV/DOPA --code CIVREG`.
    AddSubsystem {
        #[arg(long)]
        member: String,
        #[arg(long)]
        code: String,
    },
    /// Publish or update a service from a JSON file (the same body as the API's).
    Publish {
        /// The provider subsystem, e.g. TH/GOV/DOPA/CIVREG.
        #[arg(long)]
        subsystem: String,
        file: PathBuf,
    },
    /// Grant a subsystem or `group:CODE` a right on a service.
    Grant {
        #[arg(long)]
        service: String,
        #[arg(long)]
        grantee: String,
        #[arg(long, default_value = "*")]
        method: String,
        #[arg(long, default_value = "*")]
        path: String,
        #[arg(long)]
        legal_basis: String,
        /// Unix seconds.
        #[arg(long)]
        valid_until: Option<i64>,
        /// Release only these fields of the answers (comma-separated); default: all.
        #[arg(long)]
        fields: Option<String>,
    },
    /// Revoke a right by its id.
    Revoke { right: String },
    /// Issue a client certificate for a subsystem; writes NAME.crt and NAME.key.
    Certificate {
        #[arg(long)]
        subsystem: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Make a GDX consumer key and secret for a subsystem (printed once).
    GdxKey {
        #[arg(long)]
        subsystem: String,
    },
    /// List published services with their endpoints.
    Services,
    /// Search the message log, newest first.
    Log {
        /// A consumer subsystem, e.g. TH/GOV/DBD/REGISTRY.
        #[arg(long)]
        consumer: Option<String>,
        /// A service, e.g. TH/GOV/DOPA/CIVREG/person.
        #[arg(long)]
        service: Option<String>,
        /// A data subject's national id (matched through its pseudonym; never stored).
        #[arg(long)]
        subject: Option<String>,
        /// Only records at or after this RFC 3339 instant.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Export the evidence for one call: its record, detail, inclusion proof and checkpoint.
    Evidence {
        /// The record's sequence number (`seq` in `saphan exchange log`).
        seq: u64,
        /// Where to write it; standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a body kept (encrypted) for a service with `log_bodies`, by the id its call record
    /// names (`request_body_id` / `response_body_id`). Needs the key store.
    Body {
        id: String,
        /// Where to write it; standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sign the exchange's assertion for one request to a provider's backend, as the gateway
    /// would (to test a backend without a consumer; the registry benchmark's direct row). Send
    /// exactly these headers, this body and `Saphan-Exchange-Assertion: <printed>` within 60 s.
    /// Needs the key store.
    Assert {
        /// The service, `TH/CLASS/MEMBER/SUBSYSTEM/CODE`.
        #[arg(long)]
        service: String,
        /// The consumer subsystem the provider is told about.
        #[arg(long)]
        consumer: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// The path (and query) after the service's backend URL, e.g. `/data/person/1.0/read`.
        #[arg(long)]
        path: String,
        /// A header the request carries, `Name: value` (repeat).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// The request body, from this file.
        #[arg(long)]
        body: Option<PathBuf>,
        /// Release only these fields (comma-separated), as a field-limited right would.
        #[arg(long)]
        fields: Option<String>,
    },
    /// Verify exported evidence offline (no database needed).
    Verify {
        file: PathBuf,
        /// Trusted public keys (`saphan keys export-public`); default: the evidence's own.
        #[arg(long)]
        keys: Option<PathBuf>,
    },
}

pub async fn run(config: &Config, command: ExchangeCommand) -> Result<ExitCode> {
    if let ExchangeCommand::Verify { file, keys } = &command {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let evidence: Evidence = serde_json::from_str(&text)
            .with_context(|| format!("{} is not exchange evidence", file.display()))?;
        let trusted = keys.as_ref().map(crate::audit_cmd::read_keys).transpose()?;
        if trusted.is_none() {
            eprintln!(
                "warning: checking against the public keys inside the evidence itself; pass --keys \
                 with keys obtained independently (saphan keys export-public) to trust the result"
            );
        }
        return Ok(match evidence.verify(trusted.as_ref()) {
            Ok(()) => {
                println!(
                    "OK: call record {} is in the signed checkpoint {}-{} and its detail is intact / หลักฐานถูกต้อง",
                    evidence.proof.record.seq,
                    evidence.proof.checkpoint.first_seq,
                    evidence.proof.checkpoint.last_seq
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("FAILED / หลักฐานไม่ถูกต้อง: {e}");
                ExitCode::FAILURE
            }
        });
    }
    let node = Platform::open(config.clone(), platform::open_keys(config)?).await?;
    let state = node.app_state(None);
    let result = async {
        let gateway = &state.exchange;
        match command {
            ExchangeCommand::Members => {
                let subsystems = gateway.registry().subsystems(None).await?;
                for m in gateway.registry().members().await? {
                    println!(
                        "{}/{}\t{}\t{}\tagency={}",
                        gateway.registry().instance(),
                        m.id,
                        m.name.th,
                        m.name.en,
                        m.agency.as_deref().unwrap_or("-")
                    );
                    for s in subsystems.iter().filter(|s| s.member == m.id) {
                        println!("  {}\t{}", s.id, s.status);
                    }
                }
            }
            ExchangeCommand::AddMember {
                class,
                code,
                name_th,
                name_en,
                agency,
            } => {
                let m = gateway
                    .registry()
                    .create_member(
                        &OPERATOR,
                        &saphan_exchange::registry::NewMember {
                            class,
                            code,
                            name_th,
                            name_en,
                            agency,
                        },
                    )
                    .await?;
                println!("member {} added", m.id);
            }
            ExchangeCommand::AddSubsystem { member, code } => {
                let member = saphan_exchange::MemberId::parse(&member)?;
                let s = gateway
                    .registry()
                    .create_subsystem(&OPERATOR, &member, &code)
                    .await?;
                println!("subsystem {} added", s.id);
            }
            ExchangeCommand::Publish { subsystem, file } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let spec: saphan_exchange::registry::ServiceSpec = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a service description", file.display()))?;
                let id = gateway.registry().parse_subsystem(&subsystem)?;
                let s = gateway
                    .registry()
                    .put_service(&OPERATOR, &id, &spec)
                    .await?;
                println!(
                    "service {} published with {} endpoints",
                    s.id,
                    s.endpoints.len()
                );
            }
            ExchangeCommand::Grant {
                service,
                grantee,
                method,
                path,
                legal_basis,
                valid_until,
                fields,
            } => {
                let id = gateway.registry().parse_service(&service)?;
                let r = gateway
                    .registry()
                    .grant_right(
                        &OPERATOR,
                        &id,
                        &saphan_exchange::registry::NewRight {
                            grantee,
                            method,
                            path,
                            legal_basis,
                            valid_until,
                            fields: fields
                                .map(|f| f.split(',').map(|s| s.trim().to_string()).collect()),
                        },
                    )
                    .await?;
                println!("right {} granted", r.id);
            }
            ExchangeCommand::Revoke { right } => {
                gateway.registry().revoke_right(&OPERATOR, &right).await?;
                println!("right {right} revoked");
            }
            ExchangeCommand::Certificate {
                subsystem,
                out,
                days,
            } => {
                let id = gateway.registry().parse_subsystem(&subsystem)?;
                let cert = gateway
                    .credentials()
                    .issue_certificate(&OPERATOR, &id, None, days)
                    .await?;
                let crt = out.with_extension("crt");
                let key = out.with_extension("key");
                std::fs::write(&crt, &cert.certificate_pem)
                    .with_context(|| format!("cannot write {}", crt.display()))?;
                platform::write_private_file(
                    &key,
                    cert.private_key_pem.as_deref().unwrap_or_default(),
                    false,
                )?;
                println!(
                    "certificate {} (SHA-256 {}) in {}, key in {}",
                    cert.serial,
                    cert.fingerprint_sha256,
                    crt.display(),
                    key.display()
                );
            }
            ExchangeCommand::GdxKey { subsystem } => {
                let id = gateway.registry().parse_subsystem(&subsystem)?;
                let k = gateway.credentials().create_gdx_key(&OPERATOR, &id).await?;
                println!(
                    "Consumer-Key: {}\nConsumerSecret: {}  (shown once)",
                    k.consumer_key, k.consumer_secret
                );
            }
            ExchangeCommand::Services => {
                for s in gateway.registry().services(None).await? {
                    println!(
                        "{}\t{}\t{}\t{}{}",
                        s.id,
                        s.status,
                        s.classification,
                        if s.consent_required { "consent " } else { "" },
                        s.title.en
                    );
                    for e in &s.endpoints {
                        println!("  {} {}", e.method, e.path);
                    }
                }
            }
            ExchangeCommand::Log {
                consumer,
                service,
                subject,
                since,
                limit,
                json,
            } => {
                let entries = saphan_exchange::log::search(
                    gateway,
                    &state.directory,
                    &LogSearch {
                        consumer,
                        service,
                        national_id: subject,
                        since,
                        before_seq: None,
                        limit,
                    },
                )
                .await?;
                for e in entries {
                    if json {
                        println!("{}", serde_json::to_string(&e)?);
                        continue;
                    }
                    let c = &e.call;
                    let s = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_string();
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}{}",
                        e.seq,
                        e.time,
                        s("consumer"),
                        s("service"),
                        s("endpoint"),
                        c.get("status").and_then(|v| v.as_u64()).unwrap_or(0),
                        s("error"),
                        s("purpose"),
                        if e.detail_intact {
                            ""
                        } else {
                            "\tDETAIL ALTERED"
                        }
                    );
                }
            }
            ExchangeCommand::Evidence { seq, out } => {
                let keys = platform::public_keys(config)?;
                let evidence = saphan_exchange::log::evidence(gateway, &keys, seq).await?;
                let text = serde_json::to_string_pretty(&evidence)?;
                match out {
                    Some(path) => {
                        std::fs::write(&path, text)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        eprintln!("wrote the evidence for record {seq} to {}", path.display());
                    }
                    None => println!("{text}"),
                }
            }
            ExchangeCommand::Body { id, out } => {
                let Some(body) = gateway.read_body(&id).await? else {
                    anyhow::bail!("no kept body {id} (only services with log_bodies keep them)");
                };
                match out {
                    Some(path) => std::fs::write(&path, body)
                        .with_context(|| format!("cannot write {}", path.display()))?,
                    None => {
                        use std::io::Write;
                        std::io::stdout().write_all(&body)?;
                    }
                }
            }
            ExchangeCommand::Assert {
                service,
                consumer,
                method,
                path,
                headers,
                body,
                fields,
            } => {
                let mut map = http::HeaderMap::new();
                for header in &headers {
                    let (name, value) = header.split_once(':').with_context(|| {
                        format!("--header `{header}`: write it as `Name: value`")
                    })?;
                    map.append(
                        http::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
                            .with_context(|| format!("--header `{header}`: not a header name"))?,
                        http::HeaderValue::from_str(value.trim())
                            .with_context(|| format!("--header `{header}`: not a header value"))?,
                    );
                }
                let body = body
                    .map(|p| {
                        std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
                    })
                    .transpose()?;
                let x_road_id = map
                    .get("x-road-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("operator-test")
                    .to_string();
                let jws = saphan_exchange::assertion::for_request(
                    &state.keys,
                    &saphan_exchange::assertion::Request {
                        issuer: &config.public_url,
                        service: &service,
                        consumer: &consumer,
                        method: &method.to_ascii_uppercase(),
                        path_and_query: &path,
                        headers: &map,
                        body: body.as_deref(),
                        x_road_id: &x_road_id,
                        fields: fields
                            .map(|f| f.split(',').map(|s| s.trim().to_string()).collect()),
                    },
                )?;
                // Whoever holds the key store can speak for any consumer: it is on the record.
                node.audit
                    .append(saphan_audit::AuditEntry::new(
                        "operator",
                        "exchange.assertion.minted",
                        format!("service:{service}"),
                        &serde_json::json!({
                            "consumer": consumer,
                            "method": method,
                            "path_sha256": saphan_crypto::sha256_hex(&path),
                        }),
                    ))
                    .await?;
                println!("{jws}");
            }
            ExchangeCommand::Verify { .. } => unreachable!("handled above"),
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    node.audit.shutdown().await;
    result.map(|()| ExitCode::SUCCESS)
}
