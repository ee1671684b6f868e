//! The demo's procedure catalogue: the agencies its procedures name, and the procedures and
//! bundles of `saphan_procedures::demo`, published as the operator through the same
//! `Catalogue::publish` an agency's editor uses.

use std::sync::Arc;

use futures::future::BoxFuture;
use saphan_identity::{Agency, Directory, Subject};
use saphan_procedures::Catalogue;
use saphan_seed::{SeedContext, SeedResult, SeedStep};

pub fn catalogue_of(platform: &crate::platform::Platform, directory: &Directory) -> Arc<Catalogue> {
    Arc::new(Catalogue::new(
        platform.db.clone(),
        platform.audit.clone(),
        directory.clone(),
    ))
}

pub struct DemoProcedures;

impl SeedStep for DemoProcedures {
    fn name(&self) -> &'static str {
        "procedures.demo-catalogue"
    }

    fn run<'a>(&'a self, ctx: &'a mut SeedContext) -> BoxFuture<'a, SeedResult> {
        Box::pin(async move {
            let directory = ctx
                .service::<Directory>()
                .ok_or_else(|| ctx.fail("the directory is not available"))?;
            let catalogue = ctx
                .service::<Catalogue>()
                .ok_or_else(|| ctx.fail("the catalogue is not available"))?;
            for (code, th, en) in saphan_procedures::demo::AGENCIES {
                directory
                    .upsert_agency(
                        "system:demo",
                        &Agency {
                            code: code.into(),
                            name: saphan_core::Text::new(th, en),
                        },
                    )
                    .await
                    .map_err(|e| ctx.fail(e))?;
            }
            let documents = saphan_procedures::demo::documents();
            let bar = ctx.progress(documents.len() as u64);
            for doc in documents {
                let code = doc.code().to_string();
                catalogue
                    .publish(&Subject::Operator, doc)
                    .await
                    .map_err(|e| ctx.fail(format!("{code}: {e}")))?;
                bar.inc(1);
            }
            bar.finish_and_clear();
            Ok(())
        })
    }
}

/// The portal as a member subsystem of the exchange (`[onestop] exchange_subsystem`), with a
/// right to read, from each registry the demo procedures name, the fields their forms and
/// lookups need and no more: the reads it makes for applicants, with their consent.
pub struct DemoPortal {
    pub subsystem: String,
}

impl SeedStep for DemoPortal {
    fn name(&self) -> &'static str {
        "onestop.portal-subsystem"
    }

    fn run<'a>(&'a self, ctx: &'a mut SeedContext) -> BoxFuture<'a, SeedResult> {
        Box::pin(async move {
            let gateway = ctx
                .service::<saphan_exchange::gateway::Gateway>()
                .ok_or_else(|| ctx.fail("the exchange is not available"))?;
            let run = async {
                let exchange = gateway.registry();
                let portal = exchange.parse_subsystem(&self.subsystem)?;
                let member = saphan_exchange::MemberId::parse(&format!(
                    "{}/{}",
                    portal.class, portal.member
                ))?;
                match exchange
                    .create_subsystem(
                        &Subject::Operator,
                        &member,
                        portal.subsystem.as_deref().unwrap_or("PORTAL"),
                    )
                    .await
                {
                    Ok(_) | Err(saphan_exchange::ExchangeError::Duplicate(_)) => {}
                    Err(e) => return Err(anyhow::Error::from(e)),
                }
                let procedures: Vec<_> = saphan_procedures::demo::documents()
                    .into_iter()
                    .filter_map(|d| d.as_procedure().cloned())
                    .collect();
                let all = saphan_applications::prefill::reads(&procedures);
                for read in &all {
                    let service_id = exchange.parse_service(&read.service)?;
                    let service = exchange
                        .service(&service_id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("{} is not published", read.service))?;
                    let Some(endpoint) = service
                        .endpoints
                        .iter()
                        .find(|e| e.method == "POST" && e.path.ends_with("/read"))
                    else {
                        anyhow::bail!("{} answers no read", read.service);
                    };
                    exchange
                        .grant_right(
                            &Subject::Operator,
                            &service_id,
                            &saphan_exchange::registry::NewRight {
                                grantee: portal.to_string(),
                                method: "POST".into(),
                                path: endpoint.path.clone(),
                                legal_basis: "Digital Government Act B.E. 2562 s.13 (demo): \
                                              one-stop applications, with the applicant's consent"
                                    .into(),
                                valid_until: None,
                                fields: Some(saphan_applications::prefill::released_fields(
                                    read, &all,
                                )),
                            },
                        )
                        .await?;
                }
                anyhow::Ok(())
            };
            run.await.map_err(|e| ctx.fail(format!("{e:#}")))
        })
    }
}
