//! `saphan audit`: verify the log (live or from a bundle), export bundles, produce and check
//! inclusion proofs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use saphan_audit::{AuditEntry, AuditLog, InclusionProof, VerifyFailure, VerifyReport};
use saphan_core::Config;
use saphan_crypto::PublicKeySet;

use crate::platform;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the chain, every checkpoint's Merkle root, signature and time-stamp; name the first
    /// bad record. Without --bundle, checks the live database.
    Verify {
        /// An exported bundle to check instead of the database (no database or passphrase needed).
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Trusted public keys (`saphan keys export-public` output); default: the bundle's own.
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// Write the whole log, its checkpoints and the public keys to a self-contained bundle.
    Export {
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the inclusion proof of one record (JSON) to stdout or --out.
    Proof {
        #[arg(value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
        seq: u64,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check an inclusion proof offline.
    VerifyProof {
        file: PathBuf,
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// Sign a checkpoint over every record not yet covered, now.
    Checkpoint,
    /// Append synthetic records from many tasks and print each acknowledgement (`ack SEQ HASH`)
    /// as soon as it arrives. For crash and load tests.
    #[command(hide = true)]
    Load {
        #[arg(long, default_value_t = 32)]
        tasks: usize,
        /// Records per task; 0 means until killed.
        #[arg(long, default_value_t = 0)]
        per_task: u64,
    },
}

fn progress(label: &'static str) -> ProgressBar {
    let target = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(0), target);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} records ({per_sec})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label);
    bar
}

/// This platform's bound on unsigned records, from its checkpoint settings.
fn tail_policy(config: &Config) -> saphan_audit::TailPolicy {
    saphan_audit::TailPolicy::from_config(&config.audit, time::OffsetDateTime::now_utc())
}

pub(crate) fn read_keys(path: &PathBuf) -> Result<PublicKeySet> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a public key set; create it with `saphan keys export-public --format json`",
            path.display()
        )
    })
}

fn report(outcome: Result<VerifyReport, VerifyFailure>) -> ExitCode {
    match outcome {
        Ok(r) => {
            println!(
                "OK: {} records, {} checkpoints verified{}",
                r.records,
                r.checkpoints,
                if r.unsigned_tail > 0 {
                    format!(
                        "; the last {} records are chained but not yet in a signed checkpoint",
                        r.unsigned_tail
                    )
                } else {
                    String::new()
                }
            );
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("saphan: audit log FAILED verification: {}", f.message);
            ExitCode::FAILURE
        }
    }
}

pub async fn run(config: &Config, command: AuditCommand) -> Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            bundle: Some(bundle),
            keys,
        } => {
            let trusted = keys.as_ref().map(read_keys).transpose()?;
            let file = std::fs::File::open(&bundle)
                .with_context(|| format!("cannot open the bundle {}", bundle.display()))?;
            let bar = progress("verifying");
            let outcome = saphan_audit::verify_bundle(
                std::io::BufReader::new(file),
                &bundle.display().to_string(),
                trusted.as_ref(),
                Some(tail_policy(config)),
                |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                },
            )?;
            bar.finish_and_clear();
            let ok = outcome.is_ok();
            let code = report(outcome);
            if trusted.is_none() && ok {
                println!("note: signatures were checked with the keys inside the bundle; pass --keys with keys obtained independently to rule out a forged bundle");
            }
            Ok(code)
        }
        AuditCommand::Verify { bundle: None, keys } => {
            let trusted = match &keys {
                Some(path) => read_keys(path)?,
                None => platform::public_keys(config)?,
            };
            let db = platform::connect(config).await?;
            db.check_schema(&platform::migrations()).await?;
            let bar = progress("verifying");
            let outcome = saphan_audit::verify_database(
                &db,
                &trusted,
                Some(tail_policy(config)),
                |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                },
            )
            .await?;
            bar.finish_and_clear();
            Ok(report(outcome))
        }
        AuditCommand::Export { out } => {
            let keys = platform::public_keys(config)?;
            let db = platform::connect(config).await?;
            db.check_schema(&platform::migrations()).await?;
            let tmp = out.with_extension("partial");
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut writer = std::io::BufWriter::new(file);
            let bar = progress("exporting");
            let n = saphan_audit::export_bundle(
                &db,
                &keys,
                &mut writer,
                &out.display().to_string(),
                |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                },
            )
            .await?;
            bar.finish_and_clear();
            writer
                .into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, &out)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("exported {n} records to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Proof { seq, out } => {
            let keys = platform::public_keys(config)?;
            let db = platform::connect(config).await?;
            db.check_schema(&platform::migrations()).await?;
            let proof = saphan_audit::inclusion_proof(&db, &keys, seq).await?;
            let json = serde_json::to_string_pretty(&proof)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, json)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    println!("wrote the proof of record {seq} to {}", path.display());
                }
                None => println!("{json}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::VerifyProof { file, keys } => {
            let trusted = keys.as_ref().map(read_keys).transpose()?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let proof: InclusionProof = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an audit inclusion proof", file.display()))?;
            match proof.verify(trusted.as_ref()) {
                Ok(()) => {
                    println!(
                        "OK: record {} is included in the signed {}",
                        proof.record.seq,
                        proof.checkpoint.describe()
                    );
                    if trusted.is_none() {
                        println!("note: signatures were checked with the keys inside the proof; pass --keys with keys obtained independently to rule out a forged proof");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(message) => {
                    eprintln!("saphan: proof FAILED: {message}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Checkpoint => {
            let node =
                platform::Platform::open(config.clone(), platform::open_keys(config)?).await?;
            let made = node.audit.checkpoint_now().await;
            node.audit.shutdown().await;
            match made? {
                Some(c) => println!("signed the {}", c.describe()),
                None => println!("every record is already covered by a checkpoint"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Load { tasks, per_task } => {
            let node =
                platform::Platform::open(config.clone(), platform::open_keys(config)?).await?;
            load(node.audit.clone(), tasks, per_task).await?;
            node.audit.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn load(audit: AuditLog, tasks: usize, per_task: u64) -> Result<()> {
    let (acks, mut received) = tokio::sync::mpsc::unbounded_channel::<(u64, String)>();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let audit = audit.clone();
        let acks = acks.clone();
        handles.push(tokio::spawn(async move {
            let mut i = 0u64;
            while per_task == 0 || i < per_task {
                let entry = AuditEntry::new(
                    format!("load:{task}"),
                    "load.append",
                    format!("item:{task}:{i}"),
                    &serde_json::json!({ "task": task, "i": i }),
                );
                let receipt = audit.append(entry).await?;
                let _ = acks.send((receipt.seq, receipt.hash));
                i += 1;
            }
            anyhow::Ok(())
        }));
    }
    drop(acks);
    let printer = tokio::task::spawn_blocking(move || {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        while let Some((seq, hash)) = received.blocking_recv() {
            // Printed only after the append was acknowledged, i.e. durable.
            if writeln!(out, "ack {seq} {hash}")
                .and_then(|_| out.flush())
                .is_err()
            {
                break;
            }
        }
    });
    for h in handles {
        h.await??;
    }
    printer.await?;
    Ok(())
}
