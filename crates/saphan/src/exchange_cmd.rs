//! `saphan exchange`: the operator's view of the data exchange — its registry, the message log
//! (search; evidence for one call, verified offline). Searches and exports go through the same
//! `saphan-exchange` calls as the API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use saphan_core::Config;
use saphan_exchange::log::{Evidence, LogSearch};

use crate::platform::{self, Platform};

#[derive(Subcommand)]
pub enum ExchangeCommand {
    /// List members and their subsystems.
    Members,
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
            ExchangeCommand::Verify { .. } => unreachable!("handled above"),
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    node.audit.shutdown().await;
    result.map(|()| ExitCode::SUCCESS)
}
