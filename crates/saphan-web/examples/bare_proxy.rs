//! A bare reverse proxy on the gateway's own stack (axum and hyper serving, the gateway's
//! [`Upstream`] client forwarding, mimalloc) and nothing else: no authentication, checks,
//! signed assertion or message log. `bench/exchange.py` measures it beside nginx and the
//! gateway, which splits the gateway's cost into what the HTTP stack costs and what the
//! exchange's own work costs. Not part of the platform.
//!
//! Usage: `bare_proxy LISTEN_ADDR BACKEND_URL`

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use futures::TryStreamExt;
use saphan_exchange::upstream::Upstream;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Proxy {
    upstream: Upstream,
    base: Arc<str>,
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(backend)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_proxy LISTEN_ADDR BACKEND_URL");
        std::process::exit(2);
    };
    let proxy = Proxy {
        upstream: Upstream::new(Duration::from_secs(5)).expect("an HTTP client"),
        base: Arc::from(backend.trim_end_matches('/')),
    };
    let app = Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {listen}: {e}"));
    axum::serve(listener, app).await.expect("serving");
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let url = format!(
        "{}{}",
        proxy.base,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut headers = parts.headers;
    headers.remove(axum::http::header::HOST);
    let body = Upstream::streamed(body.into_data_stream().map_err(Into::into));
    let failed = || {
        Response::builder()
            .status(502)
            .body(Body::empty())
            .expect("a static response")
    };
    let Ok((status, answer_headers, answer)) =
        proxy.upstream.send(parts.method, &url, headers, body).await
    else {
        return failed();
    };
    let mut response = Response::builder().status(status);
    for (name, value) in &answer_headers {
        response = response.header(name, value);
    }
    response
        .body(Body::from_stream(answer))
        .unwrap_or_else(|_| failed())
}
