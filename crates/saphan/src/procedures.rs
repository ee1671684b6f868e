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
