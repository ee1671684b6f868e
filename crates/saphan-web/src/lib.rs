//! Saphan's HTTP edge. It composes the capabilities' routes into one axum router and owns what
//! is common to all of them: request ids, structured logs with personal data redacted, body-size
//! limits, timeouts, RFC 9457 problem responses, metrics, the OpenAPI document and its readable
//! reference page, and the portal shell (server-rendered, Thai first, no JavaScript needed).
//!
//! Handlers here only translate between HTTP and plain Rust calls into the capability crates;
//! no domain rule may live in this crate.

mod admin;
mod middleware;
mod openapi;
mod portal;
mod problem;
mod server;
mod state;
mod system;
#[cfg(test)]
mod tests;

pub use openapi::openapi_document;
pub use portal::PortalService;
pub use problem::ApiProblem;
pub use server::{router, serve};
pub use state::{AdminToken, AppState};
