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
        crate::oidc::discovery,
        crate::oidc::token,
        crate::oidc::userinfo,
        crate::oidc::introspect,
        crate::oidc::revoke,
        crate::identity_api::agencies,
        crate::identity_api::register_client,
        crate::identity_api::list_clients,
        crate::identity_api::delete_client,
        crate::identity_api::grant_role,
        crate::identity_api::revoke_role,
        crate::exchange::token,
        crate::exchange_api::members,
        crate::exchange_api::create_member,
        crate::exchange_api::publish_service,
        crate::exchange_api::grant_right,
        crate::exchange_api::request_access,
        crate::exchange_api::decide_access,
        crate::exchange_api::message_log,
        crate::exchange_api::usage,
        crate::exchange_api::my_consents,
        crate::exchange_api::give_consent,
        crate::exchange_api::revoke_consent,
        crate::exchange_api::data_access,
        crate::registration::services,
        crate::registration::service,
        crate::registration::eforms,
        crate::registration::eform,
        crate::registration::registry_reads,
        crate::registration::statistics,
        crate::applications_api::upload,
        crate::applications_api::document,
        crate::applications_api::task_document,
        crate::exchange_api::my_act_for,
        crate::applications_api::submit,
        crate::applications_api::list,
        crate::applications_api::show,
        crate::applications_api::update,
        crate::applications_api::timeline,
        crate::applications_api::inbox,
        crate::applications_api::task,
        crate::applications_api::complete,
        crate::procedures::publish,
        crate::procedures::withdraw,
        crate::procedures::versions,
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::problem::ProblemDocument, crate::system::Health)),
    tags(
        (name = "operations", description = "Health, readiness, metrics and this description"),
        (name = "platform", description = "The platform's public keys, certificate authority and time-stamping authority"),
        (name = "digital-id", description = "The digital ID: OpenID Connect provider endpoints and its administration (clients, roles)"),
        (name = "one-stop", description = "One-stop e-services: the procedure catalogue as the GovStack Registration building block's /services and /eForms (under /registration), and its editing by agencies' procedure editors"),
        (name = "exchange", description = "The government data exchange: members, services, rights, access requests, the message log, usage; data subjects' consents and who accessed their data. The gateway itself (`/r1/...`, `/listClients`) speaks the X-Road REST protocol and is described in docs/architecture.md"),
    )
)]
struct ApiDoc;

/// The bearer scheme: the operator's admin token, or an OAuth access token for UserInfo.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

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
