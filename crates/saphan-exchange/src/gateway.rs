//! The gateway: one call from a consumer subsystem to a provider's service, end to end.
//!
//! Order of checks (each refusal is a typed X-Road error and a message-log record): the
//! target, the caller's credentials, `X-Road-Client` = the authenticated subsystem, the service
//! (exists, active, provider active), a right valid now for the method and path, the purpose,
//! the consent, the rate limit, the circuit breaker. Then the call is forwarded with the body
//! streamed and hashed; the provider's answer comes back with the exchange's headers. Bodies up
//! to `buffer_body_bytes` are read whole first, so the record is durable before any byte of the
//! answer leaves; for larger answers the last chunk is held until the record is durable.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response};
use saphan_audit::AuditEntry;
use saphan_core::config::ExchangeConfig;
use saphan_crypto::KeyStore;
use saphan_identity::Directory;
use serde::Serialize;
use sha2::{Digest, Sha512};
use tokio::sync::oneshot;

use crate::assertion::{self, Claims};
use crate::consent::{self, ConsentRefusal};
use crate::credentials::{AuthMethod, Caller, Credentials};
use crate::limits::{BreakerState, Breakers, RateLimiter};
use crate::protocol::{self as p, GatewayError};
use crate::registry::Service;
use crate::upstream::{Upstream, UpstreamError};
use crate::{now_rfc3339, now_unix, ClientId, Registry, ServiceId};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A body in either direction.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>>;

const BODY_KEY_LABEL: &str = "exchange-bodies";

/// The audit action of every call record.
pub const CALL_ACTION: &str = "exchange.call";

/// What the caller presented to prove who it is.
#[derive(Debug, Clone)]
pub enum Presented {
    /// The DER client certificate the TLS layer verified against the platform CA.
    Certificate(Vec<u8>),
    Bearer(String),
    Gdx {
        consumer_key: String,
        token: String,
    },
    /// One of the platform's own subsystems, calling from inside the process
    /// ([`Gateway::call_as_platform`]). Never built from anything a request carries.
    Platform(ClientId),
    Nothing,
}

impl Presented {
    /// Reads credentials from the request headers (the TLS layer adds certificates itself).
    pub fn from_headers(headers: &HeaderMap) -> Presented {
        if let Some(bearer) = p::last(headers, "authorization")
            .and_then(|a| a.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
        {
            return Presented::Bearer(bearer);
        }
        match (
            p::last(headers, p::GDX_CONSUMER_KEY),
            p::last(headers, p::GDX_TOKEN),
        ) {
            (Some(consumer_key), Some(token)) => Presented::Gdx {
                consumer_key,
                token,
            },
            _ => Presented::Nothing,
        }
    }
}

/// One call as it arrived at the gateway.
pub struct Inbound {
    pub method: Method,
    pub service: ServiceId,
    /// The path after the service code: empty or starting with `/`.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: BodyStream,
    pub presented: Presented,
    /// The platform's request id, echoed as `X-Road-Request-Id`.
    pub request_id: String,
}

/// What `/r1/...` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A service, and the path after its code (empty or starting with `/`).
    Service { id: ServiceId, path: String },
    /// `listMethods`, `allowedMethods` or `getOpenAPI` of a provider subsystem.
    Meta { provider: ClientId, which: Meta },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    ListMethods,
    AllowedMethods,
    GetOpenApi,
}

fn decode_segment(seg: &str) -> Option<String> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(seg.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Decodes `%XX` escapes of unreserved characters and upper-cases the others.
fn normalise_segment(seg: &str) -> String {
    let bytes = seg.as_bytes();
    let mut out = String::with_capacity(seg.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(v) = seg
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                    out.push(v as char);
                } else {
                    out.push_str(&format!("%{v:02X}"));
                }
                i += 3;
                continue;
            }
        }
        // Valid UTF-8 by construction (a &str); copy the char whole.
        let ch = seg[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Parses what follows `/r1/`: `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE[/path]`. Path segments
/// that would climb (`.`, `..`, an encoded `/`) are refused: rights are checked on the path as
/// given, so the provider must see the same one.
pub fn parse_target(rest: &str) -> Result<Target, GatewayError> {
    let segments: Vec<&str> = rest.splitn(6, '/').collect();
    if segments.len() < 5 {
        return Err(GatewayError::bad_request(
            "the path must be /r1/{INSTANCE}/{CLASS}/{MEMBER}/{SUBSYSTEM}/{SERVICECODE}[/path]",
        ));
    }
    let provider = ClientId::parse(&segments[..4].join("/"), false)
        .map_err(|e| GatewayError::bad_request(format!("service identifier: {e}")))?;
    let code = decode_segment(segments[4])
        .filter(|c| crate::id::valid_part(c))
        .ok_or_else(|| GatewayError::bad_request("service code is not a valid identifier part"))?;
    let path = segments.get(5).map(|p| format!("/{p}")).unwrap_or_default();
    if path.is_empty() {
        let meta = match code.as_str() {
            "listMethods" => Some(Meta::ListMethods),
            "allowedMethods" => Some(Meta::AllowedMethods),
            "getOpenAPI" => Some(Meta::GetOpenApi),
            _ => None,
        };
        if let Some(which) = meta {
            return Ok(Target::Meta { provider, which });
        }
    }
    // Unreserved characters are decoded (RFC 3986 §6.2.2.2), so that `/persons/%65xport` is the
    // `/persons/export` the provider will see, both for the rights check and when forwarded.
    let mut normalised = String::with_capacity(path.len());
    for seg in path.split('/').skip(1) {
        let decoded = decode_segment(seg)
            .ok_or_else(|| GatewayError::bad_request("the path has a malformed %-escape"))?;
        if decoded == "." || decoded == ".." || decoded.contains('/') || decoded.contains('\\') {
            return Err(GatewayError::bad_request(
                "path segments `.`, `..` and encoded slashes are not allowed",
            ));
        }
        normalised.push('/');
        normalised.push_str(&normalise_segment(seg));
    }
    let path = normalised;
    Ok(Target::Service {
        id: ServiceId { provider, code },
        path,
    })
}

/// One message-log record: what the audit log keeps (as the record's detail) for every call.
/// No body, no national id: the user and the data subject are keyed pseudonyms, the actual
/// path only as a hash (paths can carry ids).
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub v: u8,
    pub x_road_id: String,
    pub request_id: String,
    pub consumer: String,
    pub auth: Option<AuthMethod>,
    pub service: String,
    pub method: String,
    /// The matched endpoint template, e.g. `GET /persons/{id}`.
    pub endpoint: Option<String>,
    /// HMAC of the actual path and query under a platform secret: the same path gives the same
    /// value (an auditor holding the platform's secret can check a claimed path), but a
    /// national id in it cannot be recovered by guessing.
    pub path_mac: String,
    pub user: Option<String>,
    pub issue: Option<String>,
    pub purpose: Option<String>,
    pub represented_party: Option<String>,
    pub data_subject: Option<String>,
    pub consent: Option<String>,
    pub request_hash: Option<String>,
    pub response_hash: Option<String>,
    /// Ids of the encrypted bodies kept for services that ask (`log_bodies`).
    pub request_body_id: Option<String>,
    pub response_body_id: Option<String>,
    pub status: u16,
    pub error: Option<String>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// False when a body was cut short (a limit, a broken connection).
    pub complete: bool,
    pub started_at: String,
    pub duration_ms: u64,
    pub provider_ms: Option<u64>,
}

/// Calls, errors, bytes and latencies per consumer and service since this node started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UsageStats {
    pub calls: u64,
    pub errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Counts per upper bound in milliseconds (`LATENCY_BUCKETS_MS`, last = slower).
    pub latency_ms: Vec<u64>,
}

pub const LATENCY_BUCKETS_MS: &[u64] = &[1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

#[derive(Debug, Clone, Serialize)]
pub struct UsageRow {
    pub consumer: String,
    pub provider: String,
    pub service: String,
    #[serde(flatten)]
    pub stats: UsageStats,
}

#[derive(Default)]
struct Usage {
    rows: Mutex<HashMap<(String, String), UsageStats>>,
}

impl Usage {
    fn add(&self, record: &CallRecord) {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        if rows.len() > 100_000 {
            return;
        }
        let stats = rows
            .entry((record.consumer.clone(), record.service.clone()))
            .or_insert_with(|| UsageStats {
                latency_ms: vec![0; LATENCY_BUCKETS_MS.len() + 1],
                ..UsageStats::default()
            });
        stats.calls += 1;
        if record.error.is_some() || record.status >= 500 {
            stats.errors += 1;
        }
        stats.bytes_in += record.request_bytes;
        stats.bytes_out += record.response_bytes;
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|b| record.duration_ms <= *b)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        stats.latency_ms[bucket] += 1;
    }
}

/// The gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    credentials: Arc<Credentials>,
    directory: Directory,
    keys: Arc<KeyStore>,
    config: ExchangeConfig,
    issuer: String,
    upstream: Upstream,
    limiter: RateLimiter,
    breakers: Breakers,
    usage: Usage,
}

/// What was checked before forwarding; goes into the record.
#[derive(Default)]
struct Facts {
    auth: Option<AuthMethod>,
    consumer: Option<String>,
    endpoint: Option<String>,
    user: Option<String>,
    data_subject: Option<String>,
    consent: Option<String>,
    purpose: Option<String>,
    /// The data subject as the provider knows them; only in the signed assertion.
    subject_id: Option<String>,
    /// The fields the caller's rights release (`None`: all); only in the signed assertion.
    fields: Option<Vec<String>>,
}

/// What only the provider learns, in the signed assertion (never in the message log).
struct ProviderOnly {
    subject_id: Option<String>,
    fields: Option<Vec<String>>,
}

impl Gateway {
    pub fn new(
        registry: Registry,
        credentials: Arc<Credentials>,
        directory: Directory,
        keys: Arc<KeyStore>,
        issuer: &str,
        config: &ExchangeConfig,
    ) -> Result<Gateway, String> {
        let upstream = Upstream::new(Duration::from_millis(config.connect_timeout_ms))?;
        Ok(Gateway {
            inner: Arc::new(Inner {
                registry,
                credentials,
                directory,
                keys,
                config: config.clone(),
                issuer: issuer.trim_end_matches('/').to_string(),
                upstream,
                limiter: RateLimiter::default(),
                breakers: Breakers::new(
                    config.breaker_failures,
                    Duration::from_secs(config.breaker_cooldown_secs),
                ),
                usage: Usage::default(),
            }),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    /// Usage since this node started, per consumer and service.
    pub fn usage(&self) -> Vec<UsageRow> {
        let rows = self
            .inner
            .usage
            .rows
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<UsageRow> = rows
            .iter()
            .map(|((consumer, service), stats)| UsageRow {
                consumer: consumer.clone(),
                provider: service
                    .rsplit_once('/')
                    .map(|(p, _)| p.to_string())
                    .unwrap_or_default(),
                service: service.clone(),
                stats: stats.clone(),
            })
            .collect();
        out.sort_by(|a, b| (&a.service, &a.consumer).cmp(&(&b.service, &b.consumer)));
        out
    }

    /// Who is calling: the credential must name an active subsystem, and `X-Road-Client`
    /// (or its GovStack names) must be that subsystem.
    pub async fn authenticate(
        &self,
        presented: &Presented,
        headers: &HeaderMap,
    ) -> Result<Caller, GatewayError> {
        let claimed = p::last(headers, p::CLIENT)
            .or_else(|| p::last(headers, p::IM_CLIENT))
            .or_else(|| p::last(headers, p::GOVSTACK_CLIENT))
            .ok_or_else(|| GatewayError::bad_request("the X-Road-Client header is required"))?;
        let claimed = ClientId::parse(&claimed, false)
            .map_err(|e| GatewayError::bad_request(format!("X-Road-Client: {e}")))?;
        let creds = &self.inner.credentials;
        let internal = |e: crate::ExchangeError| GatewayError::internal(e.to_string());
        let caller = match presented {
            Presented::Certificate(der) => creds
                .subsystem_of_certificate(der)
                .await
                .map_err(internal)?
                .map(|subsystem| Caller {
                    subsystem,
                    method: AuthMethod::Mtls,
                    agent: None,
                }),
            Presented::Bearer(token) => creds
                .subsystem_of_token(token)
                .await
                .map_err(internal)?
                .map(|subsystem| Caller {
                    subsystem,
                    method: AuthMethod::Token,
                    agent: None,
                }),
            Presented::Gdx {
                consumer_key,
                token,
            } => creds.gdx_caller(consumer_key, token).await.map_err(internal)?,
            Presented::Platform(subsystem) => Some(Caller {
                subsystem: subsystem.clone(),
                method: AuthMethod::Platform,
                agent: None,
            }),
            Presented::Nothing => {
                return Err(GatewayError::unauthenticated(
                    "present a client certificate issued by the platform CA, a bearer token, or GDX Consumer-Key and Token",
                ))
            }
        };
        let caller = caller.ok_or_else(|| {
            GatewayError::unauthenticated(
                "the credential is unknown, expired or revoked, or its subsystem is disabled",
            )
        })?;
        if caller.subsystem != claimed {
            return Err(GatewayError::client_mismatch(format!(
                "X-Road-Client is {claimed} but the credential belongs to {}",
                caller.subsystem
            )));
        }
        if caller.method != AuthMethod::Mtls {
            // Certificates are checked against the subsystem's status in their query.
            let active = self
                .inner
                .registry
                .subsystem_active(&caller.subsystem)
                .await
                .map_err(internal)?;
            if !active {
                return Err(GatewayError::unauthenticated("the subsystem is disabled"));
            }
        }
        Ok(caller)
    }

    /// Runs one call to a service and always answers: the provider's response, or the
    /// exchange's typed error. Every outcome is recorded before the consumer has all of it.
    pub async fn call(&self, inbound: Inbound) -> Response<BodyStream> {
        let Inbound {
            method,
            service: service_id,
            path,
            query,
            headers,
            body,
            presented,
            request_id,
        } = inbound;
        let started = Instant::now();
        let started_at = now_rfc3339();
        // A consumer's id is kept if it is short and carries no long digit run (no national id
        // in the log); otherwise the exchange makes one.
        let x_road_id = p::last(&headers, p::ID)
            .filter(|v| v.len() <= 100 && v.chars().all(|c| c.is_ascii_graphic()))
            .filter(|v| uuid::Uuid::parse_str(v).is_ok() || !holds_national_id(v))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let request_id: String = request_id
            .chars()
            .filter(char::is_ascii_graphic)
            .take(100)
            .collect();
        let mut facts = Facts::default();
        let path_and_query = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let outcome = self
            .check(
                &method,
                &service_id,
                &path,
                &headers,
                &presented,
                &mut facts,
            )
            .await;
        let base = CallRecord {
            v: 1,
            x_road_id: x_road_id.clone(),
            request_id,
            consumer: facts.consumer.clone().unwrap_or_default(),
            auth: facts.auth,
            service: service_id.to_string(),
            method: method.to_string(),
            endpoint: facts.endpoint.clone(),
            path_mac: self
                .inner
                .directory
                .mac("exchange-path", &path_and_query)
                .await
                .unwrap_or_default(),
            user: facts.user.clone(),
            issue: p::last(&headers, p::ISSUE)
                .map(|i| saphan_core::redact::redact(&i.chars().take(200).collect::<String>())),
            purpose: facts.purpose.clone(),
            represented_party: p::last(&headers, p::REPRESENTED_PARTY)
                .map(|i| saphan_core::redact::redact(&i.chars().take(200).collect::<String>())),
            data_subject: facts.data_subject.clone(),
            consent: facts.consent.clone(),
            request_hash: None,
            response_hash: None,
            request_body_id: None,
            response_body_id: None,
            status: 0,
            error: None,
            request_bytes: 0,
            response_bytes: 0,
            complete: true,
            started_at,
            duration_ms: 0,
            provider_ms: None,
        };
        let (service, caller) = match outcome {
            Ok(ok) => ok,
            Err(error) => return self.refuse(base, error, started).await,
        };
        // Forwarding runs as its own task: a consumer that goes away mid-call cannot stop the
        // call's record from being written (the provider may already have acted on it).
        let gateway = self.clone();
        let private = ProviderOnly {
            subject_id: facts.subject_id.clone(),
            fields: facts.fields.clone(),
        };
        let x_road_id = base.x_road_id.clone();
        let task = tokio::spawn(async move {
            gateway
                .forward(
                    base,
                    service,
                    caller,
                    method,
                    path_and_query,
                    headers,
                    body,
                    started,
                    private,
                )
                .await
        });
        match task.await {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(error = %e, "a forwarding task failed");
                plain_error(&GatewayError::internal(format!(
                    "the call {x_road_id} failed inside the exchange"
                )))
            }
        }
    }

    async fn check(
        &self,
        method: &Method,
        service_id: &ServiceId,
        path: &str,
        headers: &HeaderMap,
        presented: &Presented,
        facts: &mut Facts,
    ) -> Result<(Arc<Service>, Caller), GatewayError> {
        let inner = &self.inner;
        let internal = |e: crate::ExchangeError| GatewayError::internal(e.to_string());
        let caller = self.authenticate(presented, headers).await?;
        facts.auth = Some(caller.method);
        facts.consumer = Some(caller.subsystem.to_string());
        facts.user = match p::last(headers, p::USER_ID) {
            Some(u) if u.len() > 100 => {
                return Err(GatewayError::bad_request(
                    "X-Road-UserId is longer than 100",
                ))
            }
            Some(u) => Some(
                consent::user_pseudonym(&inner.directory, &u)
                    .await
                    .map_err(internal)?,
            ),
            None => caller.agent.clone(),
        };
        // Known early, so that refusals concerning a person show in their access history.
        let declared_subject = match p::last(headers, p::DATA_SUBJECT) {
            Some(s) => {
                let digits = s.strip_prefix("TH").unwrap_or(&s);
                let nid = digits.parse::<saphan_core::NationalId>().map_err(|_| {
                    GatewayError::bad_request(
                        "Saphan-Data-Subject must be a Thai national id, optionally TH-prefixed",
                    )
                })?;
                facts.subject_id = Some(format!("TH{}", nid.digits()));
                Some(
                    consent::subject_pseudonym(&inner.directory, &format!("nid:{}", nid.digits()))
                        .await
                        .map_err(internal)?,
                )
            }
            None => None,
        };
        facts.data_subject = declared_subject.clone();
        if service_id.provider.instance != inner.registry.instance() {
            return Err(GatewayError::unknown_service(format!(
                "instance {} is not served here",
                service_id.provider.instance
            )));
        }
        let service = inner
            .registry
            .service(service_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| GatewayError::unknown_service(format!("no service {service_id}")))?;
        if service.status != "active" {
            return Err(GatewayError::service_disabled(format!(
                "{service_id} is suspended by its provider"
            )));
        }
        let provider_active = inner
            .registry
            .subsystem_active(&service_id.provider)
            .await
            .map_err(internal)?;
        if !provider_active {
            return Err(GatewayError::service_disabled(format!(
                "the provider {} is disabled",
                service_id.provider
            )));
        }
        let route = if path.is_empty() { "/" } else { path };
        facts.endpoint = crate::openapi::most_specific(&service.endpoints, method.as_str(), route)
            .map(|e| format!("{} {}", e.method, e.path));
        let access = inner
            .registry
            .access(&caller.subsystem, &service, method.as_str(), route)
            .await
            .map_err(internal)?;
        facts.fields = match &access {
            Some(crate::registry::Fields::Only(fields)) => Some(fields.clone()),
            _ => None,
        };
        if access.is_none() {
            return Err(GatewayError::access_denied(format!(
                "{} holds no valid right to {} {} on {service_id}",
                caller.subsystem,
                method,
                facts
                    .endpoint
                    .as_deref()
                    .map(|e| e.split_once(' ').map(|x| x.1).unwrap_or(e))
                    .unwrap_or("(not an endpoint of the service)")
            )));
        }
        let purpose = p::last(headers, p::PURPOSE);
        if let Some(pp) = &purpose {
            if pp.len() > 100 {
                return Err(GatewayError::bad_request(
                    "Saphan-Purpose is longer than 100",
                ));
            }
        }
        if !service.purposes.is_empty() {
            match &purpose {
                Some(pp) if service.purposes.contains(pp) => {}
                _ => {
                    return Err(GatewayError::consent(
                        "Server.ServerProxy.PurposeNotAllowed",
                        format!(
                            "state one of this service's purposes in Saphan-Purpose: {}",
                            service.purposes.join(", ")
                        ),
                    ))
                }
            }
        }
        facts.purpose = purpose.clone();
        // A consent referenced where none is required is checked all the same, so that the
        // record can name it (the portal reads registries with the applicant's consent).
        let consent_ref = p::last(headers, p::CONSENT);
        if service.consent_required && consent_ref.is_none() {
            return Err(GatewayError::consent(
                "Server.ServerProxy.ConsentRequired",
                "this service requires the data subject's consent: reference it in Saphan-Consent",
            ));
        }
        if let Some(consent_id) = consent_ref {
            let checked = inner
                .registry
                .check_consent(
                    &inner.directory,
                    &consent_id,
                    &caller.subsystem.key(),
                    &service_id.key(),
                    purpose.as_deref(),
                )
                .await
                .map_err(internal)?;
            let valid = checked.map_err(|refusal| {
                let (kind, message) = match refusal {
                    ConsentRefusal::Unknown => {
                        ("Server.ServerProxy.ConsentNotFound", "no such consent")
                    }
                    ConsentRefusal::Revoked => (
                        "Server.ServerProxy.ConsentRevoked",
                        "the data subject revoked this consent",
                    ),
                    ConsentRefusal::Expired => (
                        "Server.ServerProxy.ConsentExpired",
                        "this consent has expired",
                    ),
                    ConsentRefusal::OtherScope => (
                        "Server.ServerProxy.ConsentMismatch",
                        "this consent was given to another consumer, service or purpose",
                    ),
                };
                GatewayError::consent(kind, message)
            })?;
            if declared_subject
                .as_ref()
                .is_some_and(|d| *d != valid.subject)
            {
                return Err(GatewayError::consent(
                    "Server.ServerProxy.ConsentMismatch",
                    "the consent was given by another data subject than Saphan-Data-Subject",
                ));
            }
            facts.data_subject = Some(valid.subject);
            facts.subject_id = Some(valid.subject_id);
            if facts.purpose.is_none() {
                facts.purpose = Some(valid.purpose);
            }
            facts.consent = Some(valid.id);
        }
        let bucket = format!("{} {}", caller.subsystem.key(), service_id.key());
        if !inner.limiter.allow(&bucket, service.rate_limit_per_min) {
            return Err(GatewayError::rate_limited(format!(
                "{} calls a minute to {service_id} are allowed on this node",
                service.rate_limit_per_min
            )));
        }
        Ok((service, caller))
    }

    async fn log(&self, record: &CallRecord) -> Result<(), GatewayError> {
        // Usage and metric labels only for calls that reached a known service from a known
        // consumer: arbitrary ids from outside must not create series or rows.
        let known = !record.consumer.is_empty()
            && !matches!(
                record.error.as_deref(),
                Some(
                    "Server.ServerProxy.UnknownService"
                        | "Client.BadRequest"
                        | "Server.ClientProxy.SslAuthenticationFailed"
                        | "Server.ClientProxy.ClientMismatch"
                )
            );
        let (consumer_label, service_label) = if known {
            (record.consumer.clone(), record.service.clone())
        } else {
            ("unknown".to_string(), "unknown".to_string())
        };
        if known {
            self.inner.usage.add(record);
        }
        metrics::counter!(
            "saphan_exchange_calls_total",
            "consumer" => consumer_label,
            "service" => service_label.clone(),
            "status" => record.status.to_string(),
        )
        .increment(1);
        metrics::histogram!("saphan_exchange_call_seconds", "service" => service_label)
            .record(record.duration_ms as f64 / 1000.0);
        metrics::counter!("saphan_exchange_bytes_total", "direction" => "in")
            .increment(record.request_bytes);
        metrics::counter!("saphan_exchange_bytes_total", "direction" => "out")
            .increment(record.response_bytes);
        let actor = if record.consumer.is_empty() {
            "exchange:unauthenticated".to_string()
        } else {
            record.consumer.clone()
        };
        let subject = record
            .data_subject
            .clone()
            .unwrap_or_else(|| format!("service:{}", record.service))
            .chars()
            .take(500)
            .collect::<String>();
        let actor: String = actor.chars().take(500).collect();
        self.inner
            .registry
            .audit()
            .append(AuditEntry::with_detail(actor, CALL_ACTION, subject, record))
            .await
            .map(|_| ())
            .map_err(|e| {
                tracing::error!(error = %e, "the message log refused a record; the call fails");
                GatewayError::internal("the message log is unavailable")
            })
    }

    /// Stores a body encrypted (ChaCha20-Poly1305 under a data key derived from the platform's
    /// signing key, bound to its id); returns the id the call record names.
    async fn keep_body(&self, body: &[u8]) -> Result<String, GatewayError> {
        let id = uuid::Uuid::new_v4().to_string();
        let (kid, key) = self
            .inner
            .keys
            .data_key(BODY_KEY_LABEL)
            .map_err(|e| GatewayError::internal(e.to_string()))?;
        let (nonce, ciphertext) = saphan_crypto::encrypt_data(&key, id.as_bytes(), body);
        saphan_store::sqlx::query(
            "INSERT INTO xr_bodies (id, kid, nonce, ciphertext, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(&kid)
        .bind(&nonce)
        .bind(&ciphertext)
        .bind(now_rfc3339())
        .execute(self.inner.registry.db().pool())
        .await
        .map_err(|e| GatewayError::internal(format!("keeping a body: {e}")))?;
        Ok(id)
    }

    /// A kept body, decrypted (for the operator and auditors; the CLI's `exchange body`).
    /// A call by one of the platform's own subsystems (the digital ID asking DOPA's card
    /// check, say): the same checks, forwarding and record as any consumer's, without a network
    /// credential. Returns the status and the whole answer (up to 4 MiB: these are questions,
    /// not transfers).
    pub async fn call_as_platform(
        &self,
        subsystem: &ClientId,
        method: Method,
        service: ServiceId,
        path: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<(http::StatusCode, HeaderMap, Bytes), GatewayError> {
        headers.insert(
            HeaderName::from_static(p::CLIENT),
            header_value(&subsystem.to_string()),
        );
        let request_id = uuid::Uuid::new_v4().to_string();
        // As a call over HTTP carries the platform's request id to the provider.
        headers.insert(
            HeaderName::from_static("x-request-id"),
            header_value(&request_id),
        );
        let response = self
            .call(Inbound {
                method,
                service,
                path: path.to_string(),
                query: None,
                headers,
                body: Box::pin(futures::stream::once(
                    async move { Ok::<_, BoxError>(body) },
                )),
                presented: Presented::Platform(subsystem.clone()),
                request_id,
            })
            .await;
        let (parts, mut stream) = response.into_parts();
        let mut answer = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| GatewayError::internal(e.to_string()))?;
            if answer.len() + chunk.len() > 4 * 1024 * 1024 {
                return Err(GatewayError::internal("the answer is too large"));
            }
            answer.extend_from_slice(&chunk);
        }
        Ok((parts.status, parts.headers, Bytes::from(answer)))
    }

    pub async fn read_body(&self, id: &str) -> Result<Option<Vec<u8>>, crate::ExchangeError> {
        use saphan_store::sqlx::Row;
        let row =
            saphan_store::sqlx::query("SELECT kid, nonce, ciphertext FROM xr_bodies WHERE id = $1")
                .bind(id)
                .fetch_optional(self.inner.registry.db().pool())
                .await?;
        let Some(row) = row else { return Ok(None) };
        let key = self
            .inner
            .keys
            .data_key_for(&row.get::<String, _>(0), BODY_KEY_LABEL)?;
        Ok(Some(saphan_crypto::decrypt_data(
            &key,
            id.as_bytes(),
            &row.get::<String, _>(1),
            &row.get::<String, _>(2),
        )?))
    }

    async fn refuse(
        &self,
        mut record: CallRecord,
        error: GatewayError,
        started: Instant,
    ) -> Response<BodyStream> {
        record.status = error.status.as_u16();
        record.error = Some(error.kind.to_string());
        record.duration_ms = started.elapsed().as_millis() as u64;
        let x_road_id = record.x_road_id.clone();
        let error = match self.log(&record).await {
            Ok(()) => error,
            Err(log_error) => log_error,
        };
        error_response(&error, &x_road_id, &record)
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        mut record: CallRecord,
        service: Arc<Service>,
        caller: Caller,
        method: Method,
        path_and_query: String,
        headers: HeaderMap,
        body: BodyStream,
        started: Instant,
        private: ProviderOnly,
    ) -> Response<BodyStream> {
        let inner = &self.inner;
        let service_key = service.service_id.key();
        if inner.breakers.check(&service_key) == BreakerState::Open {
            return self
                .refuse(
                    record,
                    GatewayError::circuit_open(format!(
                        "{} failed repeatedly; calls resume after a short pause",
                        service.id
                    )),
                    started,
                )
                .await;
        }
        // Headers to the provider.
        let listed = p::connection_listed(&headers);
        let mut out = HeaderMap::new();
        for (name, value) in &headers {
            if p::passes(name, &listed) {
                out.append(name.clone(), value.clone());
            }
        }
        out.insert(
            HeaderName::from_static(p::CLIENT),
            header_value(&caller.subsystem.encoded()),
        );
        out.insert(
            HeaderName::from_static(p::ID),
            header_value(&record.x_road_id),
        );
        out.insert(
            HeaderName::from_static(p::SERVICE),
            header_value(&service.service_id.encoded()),
        );
        if !out.contains_key(http::header::ACCEPT) {
            out.insert(
                http::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            );
        }
        let headers_digest = p::headers_digest(method.as_str(), &path_and_query, &out);
        let headers_hash = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(headers_digest)
        };
        // The request body: read whole when small, else streamed.
        let max = inner.config.max_body_bytes;
        let (request_body, request_meter) =
            match prefetch(body, inner.config.buffer_body_bytes, max).await {
                Ok(Prefetched::Whole(bytes)) => {
                    let digest: [u8; 64] = Sha512::digest(&bytes).into();
                    record.request_bytes = bytes.len() as u64;
                    record.request_hash = Some(p::message_hash(&headers_digest, &digest));
                    if service.log_bodies && !bytes.is_empty() {
                        match self.keep_body(&bytes).await {
                            Ok(id) => record.request_body_id = Some(id),
                            Err(e) => return self.refuse(record, e, started).await,
                        }
                    }
                    (Upstream::whole(bytes), None)
                }
                Ok(Prefetched::Stream(stream)) => {
                    let (meter, rx) = Metered::new(stream, max);
                    (Upstream::streamed(meter), Some(rx))
                }
                Err(e) => return self.refuse(record, e, started).await,
            };
        let claims = Claims {
            iss: inner.issuer.clone(),
            aud: service.id.clone(),
            sub: caller.subsystem.to_string(),
            iat: now_unix(),
            exp: now_unix() + assertion::LIFETIME_SECS,
            jti: uuid::Uuid::new_v4().to_string(),
            x_road_id: record.x_road_id.clone(),
            data_subject_id: private.subject_id,
            user: record.user.clone(),
            data_subject: record.data_subject.clone(),
            purpose: record.purpose.clone(),
            consent: record.consent.clone(),
            issue: record.issue.clone(),
            req_hash: record.request_hash.clone(),
            req_headers_hash: headers_hash,
            fields: private.fields,
        };
        match assertion::sign(&inner.keys, &claims) {
            Ok(jws) => {
                out.insert(HeaderName::from_static(p::ASSERTION), header_value(&jws));
            }
            Err(e) => {
                return self
                    .refuse(record, GatewayError::internal(e.to_string()), started)
                    .await
            }
        }
        let url = format!(
            "{}{}",
            service.backend_url.trim_end_matches('/'),
            if path_and_query.is_empty() || path_and_query.starts_with('?') {
                format!("/{path_and_query}")
            } else {
                path_and_query.clone()
            }
        );
        let timeout = Duration::from_secs(if service.timeout_secs > 0 {
            u64::from(service.timeout_secs)
        } else {
            inner.config.timeout_secs
        });
        let provider_started = Instant::now();
        let sent = tokio::time::timeout(
            timeout,
            inner.upstream.send(method.clone(), &url, out, request_body),
        )
        .await;
        // The request digest, when it streamed: the body ended (or broke) before the answer.
        let mut consumer_broke_off = false;
        if let Some(rx) = request_meter {
            match tokio::time::timeout(Duration::from_secs(5), rx).await {
                Ok(Ok(m)) => {
                    record.request_bytes = m.bytes;
                    record.complete &= m.complete;
                    consumer_broke_off = m.source_failed;
                    record.request_hash = Some(p::message_hash(&headers_digest, &m.digest));
                    if m.too_large {
                        return self
                            .refuse(
                                record,
                                GatewayError::too_large(format!(
                                    "request bodies are limited to {max} bytes"
                                )),
                                started,
                            )
                            .await;
                    }
                }
                _ => record.complete = false,
            }
        }
        // A call whose consumer broke its upload off (hung up, sent too much) says nothing
        // about the provider and must not count toward its breaker; a provider that refused,
        // reset or timed out while reading the upload does count.
        let count_provider_failure = || {
            if !consumer_broke_off {
                inner.breakers.failure(&service_key);
            }
        };
        let response = match sent {
            Err(_) => {
                count_provider_failure();
                return self
                    .refuse(
                        record,
                        GatewayError::provider_timeout(format!(
                            "{} did not answer within {} s",
                            service.id,
                            timeout.as_secs()
                        )),
                        started,
                    )
                    .await;
            }
            Ok(Err(e)) => {
                count_provider_failure();
                let message = match e {
                    UpstreamError::BadUrl => {
                        format!("the backend address of {} is not a valid URL", service.id)
                    }
                    UpstreamError::Connect(_) => {
                        format!("cannot connect to the backend of {}", service.id)
                    }
                    UpstreamError::Failed(why) => {
                        format!("the backend of {} failed: {why}", service.id)
                    }
                };
                return self
                    .refuse(record, GatewayError::provider_failed(message), started)
                    .await;
            }
            Ok(Ok(answer)) => answer,
        };
        let (status, provider_headers, provider_body) = response;
        inner.breakers.success(&service_key);
        record.provider_ms = Some(provider_started.elapsed().as_millis() as u64);
        record.status = status.as_u16();
        let mut answer_headers = HeaderMap::new();
        let listed = p::connection_listed(&provider_headers);
        for (name, value) in &provider_headers {
            if p::passes(name, &listed) && !name.as_str().starts_with("x-road-") {
                answer_headers.append(name.clone(), value.clone());
            }
        }
        set_exchange_headers(&mut answer_headers, &record);
        let body = with_idle_timeout(provider_body, timeout);
        match prefetch(body, inner.config.buffer_body_bytes, max).await {
            Ok(Prefetched::Whole(bytes)) => {
                let digest: [u8; 64] = Sha512::digest(&bytes).into();
                record.response_bytes = bytes.len() as u64;
                record.response_hash = Some(hash_b64(&digest));
                if service.log_bodies && !bytes.is_empty() {
                    match self.keep_body(&bytes).await {
                        Ok(id) => record.response_body_id = Some(id),
                        Err(e) => return error_response(&e, &record.x_road_id.clone(), &record),
                    }
                }
                record.duration_ms = started.elapsed().as_millis() as u64;
                if let Err(e) = self.log(&record).await {
                    return error_response(&e, &record.x_road_id.clone(), &record);
                }
                let mut answer = Response::new(Box::pin(futures::stream::once(async move {
                    Ok::<_, BoxError>(bytes)
                })) as BodyStream);
                *answer.status_mut() = status;
                *answer.headers_mut() = answer_headers;
                answer
            }
            Ok(Prefetched::Stream(stream)) => {
                let (meter, rx) = Metered::new(stream, max);
                let (done_tx, done_rx) = oneshot::channel::<Result<(), GatewayError>>();
                let gateway = self.clone();
                tokio::spawn(async move {
                    let mut record = record;
                    match rx.await {
                        Ok(m) => {
                            record.response_bytes = m.bytes;
                            record.response_hash = Some(hash_b64(&m.digest));
                            record.complete &= m.complete;
                        }
                        Err(_) => record.complete = false,
                    }
                    record.duration_ms = started.elapsed().as_millis() as u64;
                    let _ = done_tx.send(gateway.log(&record).await);
                });
                let tail = futures::stream::once(async move {
                    match done_rx.await {
                        Ok(Ok(())) => None,
                        _ => Some(Err::<Bytes, BoxError>(
                            "the message log did not record this call".into(),
                        )),
                    }
                })
                .filter_map(|x| async move { x });
                let mut answer = Response::new(Box::pin(meter.chain(tail)) as BodyStream);
                *answer.status_mut() = status;
                *answer.headers_mut() = answer_headers;
                answer
            }
            Err(e) => {
                record.complete = false;
                self.refuse(record, e, started).await
            }
        }
    }
}

/// Whether text holds 13 digits in a row once dashes and spaces are taken out (a national id,
/// however written).
fn holds_national_id(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars().filter(|c| *c != '-' && *c != ' ') {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 13 {
            return true;
        }
    }
    false
}

fn hash_b64(digest: &[u8; 64]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(digest)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn set_exchange_headers(headers: &mut HeaderMap, record: &CallRecord) {
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        headers.insert(HeaderName::from_static(name), header_value(value));
    };
    if !record.consumer.is_empty() {
        let consumer = ClientId::parse(&record.consumer, false)
            .map(|c| c.encoded())
            .unwrap_or_else(|_| record.consumer.clone());
        set(headers, p::CLIENT, &consumer);
    }
    let service = ServiceId::parse(&record.service)
        .map(|s| s.encoded())
        .unwrap_or_else(|_| record.service.clone());
    set(headers, p::SERVICE, &service);
    set(headers, p::ID, &record.x_road_id);
    set(headers, p::REQUEST_ID, &record.request_id);
    if let Some(h) = &record.request_hash {
        set(headers, p::REQUEST_HASH, h);
    }
}

/// The exchange's own error answer.
pub fn error_response(
    error: &GatewayError,
    x_road_id: &str,
    record: &CallRecord,
) -> Response<BodyStream> {
    let body = Bytes::from(error.body(x_road_id));
    let mut response =
        Response::new(Box::pin(futures::stream::once(
            async move { Ok::<_, BoxError>(body) },
        )) as BodyStream);
    *response.status_mut() = error.status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        HeaderName::from_static(p::ERROR),
        HeaderValue::from_static(error.kind),
    );
    set_exchange_headers(headers, record);
    response
}

/// An error answer before any record exists (metadata services, malformed targets).
pub fn plain_error(error: &GatewayError) -> Response<BodyStream> {
    let id = uuid::Uuid::new_v4().to_string();
    let body = Bytes::from(error.body(&id));
    let mut response =
        Response::new(Box::pin(futures::stream::once(
            async move { Ok::<_, BoxError>(body) },
        )) as BodyStream);
    *response.status_mut() = error.status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response.headers_mut().insert(
        HeaderName::from_static(p::ERROR),
        HeaderValue::from_static(error.kind),
    );
    response
        .headers_mut()
        .insert(HeaderName::from_static(p::ID), header_value(&id));
    response
}

enum Prefetched {
    Whole(Bytes),
    Stream(BodyStream),
}

/// Reads up to `buffer` bytes; returns the whole body if it ended by then, else a stream that
/// replays what was read and continues.
async fn prefetch(
    mut body: BodyStream,
    buffer: usize,
    max: u64,
) -> Result<Prefetched, GatewayError> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    loop {
        match body.next().await {
            None => {
                let whole = if chunks.len() == 1 {
                    chunks.pop().unwrap_or_default()
                } else {
                    let mut all = Vec::with_capacity(size);
                    for c in &chunks {
                        all.extend_from_slice(c);
                    }
                    Bytes::from(all)
                };
                return Ok(Prefetched::Whole(whole));
            }
            Some(Err(e)) => {
                if e.to_string().contains("length limit exceeded") {
                    return Err(GatewayError::too_large(format!(
                        "bodies are limited to {max} bytes"
                    )));
                }
                return Err(GatewayError::provider_failed(format!(
                    "a body broke off: {}",
                    e.to_string().chars().take(120).collect::<String>()
                )));
            }
            Some(Ok(chunk)) => {
                size += chunk.len();
                chunks.push(chunk);
                if size as u64 > max {
                    return Err(GatewayError::too_large(format!(
                        "bodies are limited to {max} bytes"
                    )));
                }
                if size > buffer {
                    let replay = futures::stream::iter(chunks.into_iter().map(Ok));
                    return Ok(Prefetched::Stream(Box::pin(replay.chain(body))));
                }
            }
        }
    }
}

/// Ends a body with an error when no chunk arrives for `idle`.
fn with_idle_timeout(body: BodyStream, idle: Duration) -> BodyStream {
    Box::pin(futures::stream::unfold(
        Some(body),
        move |state| async move {
            let mut body = state?;
            match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(item)) => Some((item, Some(body))),
                Ok(None) => None,
                Err(_) => Some((
                    Err::<Bytes, BoxError>("the provider stopped sending".into()),
                    None,
                )),
            }
        },
    ))
}

/// What a metered body reports when it ends (or is dropped).
pub struct Measured {
    pub digest: [u8; 64],
    pub bytes: u64,
    pub complete: bool,
    pub too_large: bool,
    /// The body's source failed (the sender hung up or sent too much), as opposed to its
    /// reader dropping it (the provider refused, reset or timed out).
    pub source_failed: bool,
}

/// A body passing through: hashed (SHA-512) and counted on the fly, cut at `max` bytes.
struct Metered {
    inner: BodyStream,
    hasher: Sha512,
    bytes: u64,
    max: u64,
    report: Option<oneshot::Sender<Measured>>,
}

impl Metered {
    fn new(inner: BodyStream, max: u64) -> (Metered, oneshot::Receiver<Measured>) {
        let (tx, rx) = oneshot::channel();
        (
            Metered {
                inner,
                hasher: Sha512::new(),
                bytes: 0,
                max,
                report: Some(tx),
            },
            rx,
        )
    }

    fn finish(&mut self, complete: bool, too_large: bool, source_failed: bool) {
        if let Some(tx) = self.report.take() {
            let digest = std::mem::take(&mut self.hasher).finalize().into();
            let _ = tx.send(Measured {
                digest,
                bytes: self.bytes,
                complete,
                too_large,
                source_failed,
            });
        }
    }
}

impl Stream for Metered {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.report.is_none() {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.bytes += chunk.len() as u64;
                if self.bytes > self.max {
                    self.finish(false, true, true);
                    return Poll::Ready(Some(Err(
                        "the body is larger than the exchange allows".into()
                    )));
                }
                self.hasher.update(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.finish(false, false, true);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.finish(true, false, false);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.finish(false, false, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = parse_target("TH/GOV/DOPA/CIVREG/person/persons/1?x").unwrap();
        match t {
            Target::Service { id, path } => {
                assert_eq!(id.to_string(), "TH/GOV/DOPA/CIVREG/person");
                assert_eq!(path, "/persons/1?x");
            }
            _ => panic!(),
        }
        assert_eq!(
            parse_target("TH/GOV/DOPA/CIVREG/listMethods").unwrap(),
            Target::Meta {
                provider: ClientId::parse("TH/GOV/DOPA/CIVREG", false).unwrap(),
                which: Meta::ListMethods
            }
        );
        assert_eq!(
            parse_target("TH/GOV/DOPA/CIVREG/person/persons/%65xport/a%2fb%20c").ok(),
            None,
            "encoded slashes stay refused"
        );
        match parse_target("TH/GOV/DOPA/CIVREG/person/persons/%65xport/a%20c").unwrap() {
            Target::Service { path, .. } => assert_eq!(path, "/persons/export/a%20c"),
            _ => panic!(),
        }
        assert!(matches!(
            parse_target("TH/GOV/DOPA/CIVREG/person").unwrap(),
            Target::Service { path, .. } if path.is_empty()
        ));
        for bad in [
            "TH/GOV/DOPA/CIVREG",
            "TH/GOV/DOPA/CIVREG/person/../admin",
            "TH/GOV/DOPA/CIVREG/person/a/%2e%2e/b",
            "TH/GOV/DOPA/CIVREG/person/a%2Fb",
            "TH/GOV/DOPA/CIVREG/person/%2E%2E/x",
            "TH/GOV/DO PA/CIVREG/person",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn national_ids_are_spotted_however_written() {
        assert!(holds_national_id("case-1101700000001"));
        assert!(holds_national_id("1-1017-00000-00-1"));
        assert!(!holds_national_id("echo-0d50b8a7742945d4d18c"));
        assert!(!holds_national_id("123456789012"));
    }

    #[tokio::test]
    async fn prefetch_buffers_small_and_streams_large_bodies() {
        let small: BodyStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Ok(Bytes::from_static(b"cd")),
        ]));
        match prefetch(small, 10, 100).await.ok().unwrap() {
            Prefetched::Whole(b) => assert_eq!(&b[..], b"abcd"),
            Prefetched::Stream(_) => panic!("small bodies are read whole"),
        }
        let large: BodyStream = Box::pin(futures::stream::iter(
            (0..10).map(|_| Ok(Bytes::from_static(b"0123456789"))),
        ));
        match prefetch(large, 25, 1000).await.ok().unwrap() {
            Prefetched::Stream(s) => {
                let (meter, rx) = Metered::new(s, 1000);
                let all: Vec<_> = meter.collect().await;
                assert_eq!(all.len(), 10);
                let m = rx.await.unwrap();
                assert_eq!(m.bytes, 100);
                assert!(m.complete);
                let expected: [u8; 64] = Sha512::digest(b"0123456789".repeat(10)).into();
                assert_eq!(m.digest, expected);
            }
            Prefetched::Whole(_) => panic!("large bodies stream"),
        }
        let too_big: BodyStream = Box::pin(futures::stream::iter(
            (0..10).map(|_| Ok(Bytes::from_static(b"0123456789"))),
        ));
        assert!(prefetch(too_big, 1000, 50).await.is_err());
    }
}
