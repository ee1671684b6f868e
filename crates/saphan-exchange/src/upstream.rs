//! The HTTP client toward providers' backends: hyper's pooled HTTP/1.1 client over TCP, or
//! rustls with the web PKI's roots for `https` backends. Redirects are never followed (they go
//! back to the consumer) and nothing is added to a request but `Host` and the body's framing,
//! so the headers the assertion's `req_headers_hash` covers are the headers the provider sees.
//!
//! hyper directly rather than reqwest: reqwest's per-request work (parsing the URL with IDNA,
//! its middleware stack, copying the header map) was about a tenth of the gateway's CPU per
//! call. Must never know anything of the exchange's rules: it only carries bytes.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::gateway::{BodyStream, BoxError};

/// A request body toward a backend.
pub type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// Why a backend could not be asked or did not answer.
#[derive(Debug)]
pub enum UpstreamError {
    /// The service's backend URL with this call's path is not a valid URI.
    BadUrl,
    /// No connection could be made (refused, unreachable, TLS handshake failed, timed out).
    Connect(String),
    /// The connection broke while sending the request or reading the answer's head.
    Failed(String),
}

/// The pooled client. Cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, UpstreamBody>,
}

impl Upstream {
    pub fn new(connect_timeout: Duration) -> Result<Upstream, String> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        // Covers the TCP connect; a TLS handshake that stalls runs into the call's timeout.
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.set_keepalive(Some(Duration::from_secs(15)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("TLS toward backends: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            // Without a timer the pool never closes idle connections on its own.
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Upstream { client })
    }

    /// A body known whole.
    pub fn whole(bytes: Bytes) -> UpstreamBody {
        Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    /// A body that streams (sent chunked).
    pub fn streamed(
        stream: impl Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
    ) -> UpstreamBody {
        StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
    }

    /// Sends one request; returns the answer's status, headers and body as it streams in.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: UpstreamBody,
    ) -> Result<(StatusCode, HeaderMap, BodyStream), UpstreamError> {
        let (uri, basic) = split_credentials(url).ok_or(UpstreamError::BadUrl)?;
        let mut headers = headers;
        if let Some(basic) = basic {
            // A backend address with `user:password@` (allowed when the service is registered)
            // logs in with HTTP Basic, as it did through reqwest.
            headers.insert(http::header::AUTHORIZATION, basic);
        }
        let mut request = http::Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let response = self.client.request(request).await.map_err(|e| {
            if e.is_connect() {
                UpstreamError::Connect(describe(&e))
            } else {
                UpstreamError::Failed(describe(&e))
            }
        })?;
        let (parts, incoming) = response.into_parts();
        let body: BodyStream = Box::pin(
            incoming
                .into_data_stream()
                .map(|chunk| chunk.map_err(|e| Box::new(e) as BoxError)),
        );
        Ok((parts.status, parts.headers, body))
    }
}

/// The URI without its `user:password@`, and those as a Basic `Authorization` value. `None` when
/// the address is not an absolute URI with a host.
fn split_credentials(url: &str) -> Option<(Uri, Option<http::HeaderValue>)> {
    let uri: Uri = url.parse().ok()?;
    let authority = uri.authority()?.as_str().to_string();
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        uri.host()?;
        return Some((uri, None));
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |text: &str| {
        url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let pair = format!("{}:{}", decode(user), decode(password));
    let basic = {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        let mut value = http::HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
        value.set_sensitive(true);
        value
    };
    let mut parts = uri.into_parts();
    parts.authority = Some(host.parse().ok()?);
    let uri = Uri::from_parts(parts).ok()?;
    uri.host()?;
    Some((uri, Some(basic)))
}

/// The error and its causes in one line (none of them carries the backend's URL).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::split_credentials;

    #[test]
    fn credentials_in_a_backend_address_become_basic_auth() {
        let (uri, basic) =
            split_credentials("https://api:s%40cret@backend.example:8443/p?q=1").unwrap();
        assert_eq!(uri.to_string(), "https://backend.example:8443/p?q=1");
        // base64("api:s@cret")
        assert_eq!(basic.unwrap(), "Basic YXBpOnNAY3JldA==");
        let (uri, basic) = split_credentials("http://127.0.0.1:9000/persons/1").unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:9000/persons/1");
        assert!(basic.is_none());
        assert!(split_credentials("/persons/1").is_none());
        assert!(split_credentials("not a url").is_none());
    }
}
