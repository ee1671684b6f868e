//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use std::sync::OnceLock;

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Saphan digital government platform API",
        description = "Public and agency APIs of Saphan. Errors are RFC 9457 problem documents with Thai and English messages.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        crate::system::healthz,
        crate::system::readyz,
        crate::system::metrics_text,
        crate::system::openapi_json,
        crate::system::public_keys,
        crate::system::jwks,
        crate::system::ca_certificate,
        crate::system::timestamp,
    ),
    components(schemas(crate::problem::ProblemDocument, crate::system::Health)),
    tags(
        (name = "operations", description = "Health, readiness, metrics and this description"),
        (name = "platform", description = "The platform's public keys, certificate authority and time-stamping authority"),
    )
)]
struct ApiDoc;

/// The whole API description. Capability crates' documents are merged in here as they arrive.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

pub(crate) fn openapi_json_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        openapi_document()
            .to_pretty_json()
            .expect("OpenAPI serialises")
    })
}
