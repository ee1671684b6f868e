//! A bare reverse proxy on the gateway's own stack (axum and hyper serving, reqwest forwarding
//! with the gateway's client settings, mimalloc) and nothing else: no authentication, checks,
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

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    base: Arc<str>,
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(backend)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_proxy LISTEN_ADDR BACKEND_URL");
        std::process::exit(2);
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()
        .expect("an HTTP client");
    let upstream = Upstream {
        client,
        base: Arc::from(backend.trim_end_matches('/')),
    };
    let app = Router::new().fallback(forward).with_state(upstream);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {listen}: {e}"));
    axum::serve(listener, app).await.expect("serving");
}

async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let url = format!(
        "{}{}",
        upstream.base,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let sent = upstream
        .client
        .request(parts.method, url)
        .headers(parts.headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    let failed = || {
        Response::builder()
            .status(502)
            .body(Body::empty())
            .expect("a static response")
    };
    let Ok(answer) = sent else {
        return failed();
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| failed())
}
