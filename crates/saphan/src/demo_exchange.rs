//! The demo's data exchange: the demo agencies as members (GOV/DGA, GOV/DOPA, GOV/DBD), their
//! subsystems, and DBD's registry subsystem's client certificate and GDX key (written to
//! `<data-dir>/exchange/`). The registries DOPA publishes, and DBD's right to read persons'
//! names, come with the population (`population.rs`).

use std::path::PathBuf;

use futures::future::BoxFuture;
use saphan_exchange::gateway::Gateway;
use saphan_exchange::registry::NewMember;
use saphan_exchange::MemberId;
use saphan_identity::Subject;
use saphan_seed::{SeedContext, SeedResult, SeedStep};

pub struct DemoExchange {
    pub data_dir: PathBuf,
}

impl SeedStep for DemoExchange {
    fn name(&self) -> &'static str {
        "exchange.demo-members"
    }

    fn run<'a>(&'a self, ctx: &'a mut SeedContext) -> BoxFuture<'a, SeedResult> {
        Box::pin(async move {
            let gateway = ctx
                .service::<Gateway>()
                .ok_or_else(|| ctx.fail("the exchange is not available"))?;
            let fail = |e: saphan_exchange::ExchangeError| ctx.fail(e);
            let registry = gateway.registry();
            let operator = Subject::Operator;
            for (code, agency, th, en) in [
                (
                    "DGA",
                    "dga",
                    "สำนักงานพัฒนารัฐบาลดิจิทัล",
                    "Digital Government Development Agency",
                ),
                (
                    "DOPA",
                    "dopa",
                    "กรมการปกครอง",
                    "Department of Provincial Administration",
                ),
                (
                    "DBD",
                    "dbd",
                    "กรมพัฒนาธุรกิจการค้า",
                    "Department of Business Development",
                ),
            ] {
                registry
                    .create_member(
                        &operator,
                        &NewMember {
                            class: "GOV".into(),
                            code: code.into(),
                            name_th: th.into(),
                            name_en: en.into(),
                            agency: Some(agency.into()),
                        },
                    )
                    .await
                    .map(|_| ())
                    .or_else(already_there)
                    .map_err(fail)?;
            }
            for (member, code) in [("GOV/DOPA", "CIVREG"), ("GOV/DBD", "REGISTRY")] {
                let member = MemberId::parse(member).map_err(|e| fail(e.into()))?;
                registry
                    .create_subsystem(&operator, &member, code)
                    .await
                    .map(|_| ())
                    .or_else(already_there)
                    .map_err(fail)?;
            }
            let dbd = registry.parse_subsystem("GOV/DBD/REGISTRY").map_err(fail)?;
            let cert = gateway
                .credentials()
                .issue_certificate(&operator, &dbd, None, 365)
                .await
                .map_err(fail)?;
            let gdx = gateway
                .credentials()
                .create_gdx_key(&operator, &dbd)
                .await
                .map_err(fail)?;
            let dir = self.data_dir.join("exchange");
            std::fs::create_dir_all(&dir).map_err(|e| ctx.fail(e))?;
            let write = |name: &str, text: &str, private: bool| {
                let path = dir.join(name);
                if private {
                    crate::platform::write_private_file(&path, text, true)
                } else {
                    std::fs::write(&path, text).map_err(Into::into)
                }
            };
            write("dbd-registry.crt", &cert.certificate_pem, false).map_err(|e| ctx.fail(e))?;
            write(
                "dbd-registry.key",
                cert.private_key_pem.as_deref().unwrap_or_default(),
                true,
            )
            .map_err(|e| ctx.fail(e))?;
            write(
                "dbd-registry-gdx.json",
                &serde_json::to_string_pretty(&gdx).unwrap_or_default(),
                true,
            )
            .map_err(|e| ctx.fail(e))?;
            Ok(())
        })
    }
}

/// A step re-run on a database that already has these members (seeded by hand) goes on.
fn already_there(e: saphan_exchange::ExchangeError) -> Result<(), saphan_exchange::ExchangeError> {
    match e {
        saphan_exchange::ExchangeError::Duplicate(_) => Ok(()),
        e => Err(e),
    }
}

/// What the banner prints: one call through the gateway with mutual TLS.
pub fn print_example(data_dir: &std::path::Path, base: &str, tls: Option<std::net::SocketAddr>) {
    let dir = data_dir.join("exchange");
    if !dir.join("dbd-registry.crt").exists() {
        return;
    }
    println!("  Data exchange / แลกเปลี่ยนข้อมูล: DBD's registry reads a person from DOPA's civil registry (names only: its right):");
    if let Some(tls) = tls {
        println!(
            "    curl --cacert <(curl -s {base}/api/v1/platform/ca.pem) --cert {d}/dbd-registry.crt --key {d}/dbd-registry.key \\\n      -H 'X-Road-Client: TH/GOV/DBD/REGISTRY' -H 'Content-Type: application/json' \\\n      -d '{{\"query\": {{\"content\": {{\"nationalId\": \"<national id from demo-logins.json>\"}}}}}}' \\\n      https://localhost:{port}/r1/TH/GOV/DOPA/CIVREG/person-v1/data/person/1.0/read",
            d = dir.display(),
            port = tls.port()
        );
    }
    println!(
        "    GDX-style consumer key and secret: {}",
        dir.join("dbd-registry-gdx.json").display()
    );
}
