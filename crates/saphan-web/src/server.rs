//! The router and the server loop with graceful shutdown.

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::{any, get, post};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnRequest, DefaultOnResponse, TraceLayer};

use crate::middleware::{self, REQUEST_ID};
use crate::state::AppState;
use crate::{
    account, admin, exchange, exchange_api, identity_admin, identity_api, oidc, passkey, portal,
    procedures, registration, registry_backend, signin, system,
};

/// The whole platform's router.
pub fn router(state: AppState) -> Router {
    // The recorder must exist before the first request is counted, not at the first scrape.
    system::prometheus();
    let gateway = exchange::routes()
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(
                    HeaderName::from_static(REQUEST_ID),
                    MakeRequestUuid,
                ))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                        tracing::info_span!(
                            "exchange",
                            method = %request.method(),
                            path = %saphan_core::redact::redact(request.uri().path()),
                        )
                    }),
                )
                .layer(PropagateRequestIdLayer::new(HeaderName::from_static(
                    REQUEST_ID,
                ))),
        )
        .with_state(state.clone());
    with_edge_layers(
        routes()
            .merge(exchange_api::routes())
            .merge(registration::routes())
            .merge(crate::applications_api::routes()),
        state,
    )
    .merge(gateway)
}

fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(portal::index))
        .route("/assets/{*name}", get(portal::asset))
        .route("/healthz", get(system::healthz))
        .route("/services", get(procedures::catalogue_page))
        .route("/services/{code}", get(procedures::manual_page))
        .route(
            "/services/{code}/apply",
            get(crate::apply::start_page).post(crate::apply::start),
        )
        .route("/applications", get(crate::apply::list))
        .route("/applications/{id}", get(crate::apply::show))
        .route(
            "/applications/{id}/pages/{n}",
            get(crate::apply::page).post(crate::apply::save_page).layer(
                axum::extract::DefaultBodyLimit::max(
                    saphan_procedures::MAX_UPLOAD_BYTES as usize + 256 * 1024,
                ),
            ),
        )
        .route("/applications/{id}/check", get(crate::apply::check))
        .route("/applications/{id}/submit", post(crate::apply::submit))
        .route(
            "/consents",
            get(crate::apply::consents).post(crate::apply::revoke),
        )
        .route("/data-access", get(crate::apply::data_access))
        .route("/office", get(crate::office::inbox))
        .route(
            "/office/tasks/{id}",
            get(crate::office::task).post(crate::office::decide),
        )
        .route(
            "/api/v1/procedures/{code}",
            axum::routing::put(procedures::publish).delete(procedures::withdraw),
        )
        .route(
            "/api/v1/procedures/{code}/versions",
            get(procedures::versions),
        )
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics_text))
        .route("/openapi.json", get(system::openapi_json))
        .route("/api-docs", get(system::api_docs))
        .route("/problems/{slug}", get(system::problem_type))
        .route(
            &format!("{}/{{*rest}}", registry_backend::PREFIX),
            any(registry_backend::handle),
        )
        .route("/api/v1/platform/keys", get(system::public_keys))
        .route("/api/v1/platform/jwks.json", get(system::jwks))
        .route("/api/v1/platform/ca.pem", get(system::ca_certificate))
        .route("/api/v1/platform/timestamp", post(system::timestamp))
        .route("/admin", get(admin::console))
        .route("/admin/login", post(admin::login))
        .route("/admin/logout", post(admin::logout))
        .route("/admin/identity", get(identity_admin::page))
        .route(
            "/admin/identity/clients",
            post(identity_admin::register_client),
        )
        .route("/admin/identity/roles", post(identity_admin::change_role))
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route(
            "/oidc/authorize",
            get(oidc::authorize).post(oidc::authorize),
        )
        .route("/oidc/token", post(oidc::token))
        .route("/oidc/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .route("/oidc/introspect", post(oidc::introspect))
        .route("/oidc/revoke", post(oidc::revoke))
        .route("/oidc/logout", get(signin::logout).post(signin::logout))
        .route(
            "/signin",
            get(signin::signin_page).post(signin::signin_submit),
        )
        .route(
            "/signin/totp",
            get(signin::totp_page).post(signin::totp_submit),
        )
        .route("/signin/upstream/{name}", get(signin::upstream_begin))
        .route(
            "/signin/upstream/{name}/callback",
            get(signin::upstream_callback),
        )
        .route("/signin/passkey/begin", post(passkey::signin_begin))
        .route("/signin/passkey/finish", post(passkey::signin_finish))
        .route("/account/passkeys/begin", post(passkey::register_begin))
        .route("/account/passkeys/finish", post(passkey::register_finish))
        .route("/account/passkeys/remove", post(passkey::remove))
        .route(
            "/consent",
            get(signin::consent_page).post(signin::consent_submit),
        )
        .route("/account", get(account::account_page))
        .route("/account/sessions/end", post(account::end_session))
        .route("/account/apps/revoke", post(account::revoke_app))
        .route("/account/recovery-codes", post(account::new_recovery_codes))
        .route("/account/totp", post(account::totp_begin))
        .route("/account/totp/confirm", post(account::totp_confirm))
        .route("/account/totp/remove", post(account::totp_remove))
        .route("/account/idcard", post(account::idcard_check))
        .route(
            "/recover",
            get(account::recover_page).post(account::recover_submit),
        )
        .route("/api/v1/identity/agencies", get(identity_api::agencies))
        .route(
            "/api/v1/identity/clients",
            get(identity_api::list_clients).post(identity_api::register_client),
        )
        .route(
            "/api/v1/identity/clients/{client_id}",
            axum::routing::delete(identity_api::delete_client),
        )
        .route(
            "/api/v1/identity/roles",
            post(identity_api::grant_role).delete(identity_api::revoke_role),
        )
}

/// What every route gets: ids, logs, limits, timeouts, problems, metrics, security headers.
pub(crate) fn with_edge_layers(routes: Router<AppState>, state: AppState) -> Router {
    let body_limit = state.config.http.body_limit_bytes;
    let request_id = HeaderName::from_static(REQUEST_ID);
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    // Paths can carry national ids; logs get the redacted form only.
                    tracing::info_span!(
                        "http",
                        method = %request.method(),
                        path = %saphan_core::redact::redact(request.uri().path()),
                        request_id = %id,
                    )
                })
                .on_request(DefaultOnRequest::new().level(tracing::Level::INFO))
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::problems,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::timeout,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        // Uploads (documents, form pages) raise their extractor's limit per route; the outer
        // limit lets them through, and every other route stays at `body_limit`.
        .layer(RequestBodyLimitLayer::new(body_limit.max(
            saphan_procedures::MAX_UPLOAD_BYTES as usize + 256 * 1024,
        )));

    routes
        .fallback(middleware::not_found)
        .route_layer(axum::middleware::from_fn(middleware::metrics))
        .layer(layers)
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting and gives
/// in-flight requests up to `grace` to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    });
    let server = tokio::spawn(async move { server.await });
    let mut server = server;
    tokio::select! {
        result = &mut server => return result.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        _ = signalled_rx => {}
    }
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => result.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        Err(_) => {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "in-flight requests did not finish in time; stopping"
            );
            server.abort();
            Ok(())
        }
    }
}
