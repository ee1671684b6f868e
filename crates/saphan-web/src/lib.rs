//! Saphan's HTTP edge. It composes the capabilities' routes into one axum router and owns what
//! is common to all of them: request ids, structured logs with personal data redacted, body-size
//! limits, timeouts, RFC 9457 problem responses, metrics, the OpenAPI document and its readable
//! reference page, and the portal shell (server-rendered, Thai first, no JavaScript needed).
//!
//! Handlers here only translate between HTTP and plain Rust calls into the capability crates;
//! no domain rule may live in this crate.

mod account;
mod admin;
mod applications_api;
mod apply;
mod cookies;
mod exchange;
mod exchange_admin;
mod exchange_api;
mod identity_admin;
mod identity_api;
mod middleware;
mod office;
mod oidc;
mod openapi;
mod passkey;
mod portal;
mod problem;
mod procedures;
mod registration;
mod registry_backend;
mod server;
mod signin;
mod state;
mod system;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_exchange;
#[cfg(test)]
mod tests_identity;
pub mod tls;

pub use exchange::PeerCertificate;
pub use openapi::openapi_document;
pub use portal::PortalService;
pub use problem::ApiProblem;
pub use registry_backend::PREFIX as REGISTRY_BACKEND;
pub use server::{router, serve};
pub use state::{AdminToken, AppState};

/// The client's network address, for per-source throttling. Behind a reverse proxy every client
/// has the proxy's address (see `docs/architecture.md`).
pub(crate) struct ClientAddr(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| match c.0.ip() {
                    // One IPv6 subscriber holds a whole /64: count it as one source.
                    std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                        let s = v6.segments();
                        format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                    }
                    std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().expect("checked").to_string(),
                    ip => ip.to_string(),
                })
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}
