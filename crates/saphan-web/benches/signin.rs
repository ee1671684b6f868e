//! Full OpenID Connect code-flow sign-ins per second (password method), against the physical
//! limit measured in the same run: argon2id verifications per second with the same parameters,
//! on all cores. Target: sign-ins reach at least 0.8 of the hash rate. Token-endpoint refreshes
//! and UserInfo requests per second are reported too.
//!
//! Each sign-in is what a browser and a relying party do: GET /oidc/authorize, GET /signin,
//! POST /signin (argon2id), the redirect with a code, POST /oidc/token (ES256 ID token), all
//! through the whole router and its middleware, in-process so no HTTP client competes for the
//! cores. `cargo bench -p saphan-web --bench signin` (or `cargo xtask bench`); PostgreSQL is
//! measured when `SAPHAN_BENCH_POSTGRES_URL` names a server. Under `cargo test` a smoke version
//! runs, so the benchmark cannot rot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use saphan_audit::AuditLog;
use saphan_core::{Config, NationalId, Text};
use saphan_crypto::{KeyStore, Passphrase};
use saphan_identity::{Agency, Ial, LoginId, NewIdentity, Subject};
use saphan_oidc::ClientRegistration;
use saphan_store::testing::PostgresTestDb;
use saphan_store::Db;
use saphan_web::{router, AppState};
use sha2::Digest;
use tower::ServiceExt;

const PASSWORD: &str = "bench password 1";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

struct Plan {
    sign_ins: usize,
    hashes: usize,
    requests: usize,
    rounds: usize,
    concurrency: usize,
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

struct Fixture {
    app: Router,
    client_id: String,
    basic: String,
    identifiers: Vec<String>,
}

async fn fixture(db: Db, keys: Arc<KeyStore>, config: Config, people: usize) -> Fixture {
    let migrations: Vec<_> = [
        saphan_audit::MIGRATIONS,
        saphan_identity::MIGRATIONS,
        saphan_oidc::MIGRATIONS,
    ]
    .concat();
    db.migrate(&migrations).await.unwrap();
    let audit = AuditLog::start(db.clone(), keys.clone(), &config.audit);
    let state = AppState::new(
        config,
        db,
        keys,
        audit,
        None,
        Vec::new(),
        migrations.len(),
        false,
    );
    let directory = state.directory.clone();
    directory
        .upsert_agency(
            "bench",
            &Agency {
                code: "bench".into(),
                name: Text::new("ทดสอบ", "Bench"),
            },
        )
        .await
        .unwrap();
    let hash = directory.hasher().hash(PASSWORD).unwrap();
    let mut rng = rand::thread_rng();
    let mut identifiers = Vec::new();
    for _ in 0..people {
        let nid = NationalId::synthetic(&mut rng);
        let identity = directory
            .create(
                "bench",
                NewIdentity {
                    login: LoginId::NationalId(nid),
                    name: Text::new("ทดสอบ", "Bench"),
                    ial: Ial::L2_1,
                    proofing: "bench".into(),
                },
            )
            .await
            .unwrap();
        directory
            .store_password_hash(&identity.id, &hash)
            .await
            .unwrap();
        identifiers.push(nid.digits());
    }
    let registered = state
        .oidc
        .register_client(
            &Subject::Operator,
            ClientRegistration {
                name: Text::new("ทดสอบ", "Bench"),
                agency: "bench".into(),
                redirect_uris: vec![REDIRECT.into()],
                post_logout_redirect_uris: vec![],
                scopes: vec!["openid".into(), "profile".into()],
                token_endpoint_auth_method: "client_secret_basic".into(),
                jwks: None,
                id_token_signed_response_alg: "ES256".into(),
                min_acr: None,
            },
        )
        .await
        .unwrap();
    for identifier in &identifiers {
        let identity = directory
            .find(&LoginId::parse(identifier, "").unwrap())
            .await
            .unwrap()
            .unwrap();
        state
            .oidc
            .grant_consent(
                &identity.id,
                &registered.client.client_id,
                &["openid".into(), "profile".into()],
            )
            .await
            .unwrap();
    }
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        registered.client.client_id,
        registered.client_secret.unwrap()
    ));
    Fixture {
        app: router(state),
        client_id: registered.client.client_id,
        basic,
        identifiers,
    }
}

async fn call(
    app: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn location(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

fn query_value(url: &str, key: &str) -> String {
    let query = url.split_once('?').unwrap().1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{key} missing in {url}"))
}

/// One full code-flow sign-in; returns the token response.
async fn sign_in(f: &Fixture, identifier: &str) -> serde_json::Value {
    let verifier = b64url(&rand::random::<[u8; 32]>());
    let challenge = b64url(&sha2::Sha256::digest(verifier.as_bytes()));
    let authorize = format!(
        "/oidc/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
        f.client_id,
        form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let (status, headers, _) =
        call(&f.app, Request::get(authorize).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let signin = location(&headers);
    let request_id = query_value(&signin, "request");
    let csrf = saphan_core::random_id();
    let (status, _, _) = call(
        &f.app,
        Request::get(&signin)
            .header(header::COOKIE, format!("saphan_csrf={csrf}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let form = format!(
        "request={request_id}&csrf={csrf}&identifier={identifier}&nationality=&password={}",
        form_urlencoded::byte_serialize(PASSWORD.as_bytes()).collect::<String>()
    );
    let (status, headers, body) = call(
        &f.app,
        Request::post("/signin")
            .header(header::COOKIE, format!("saphan_csrf={csrf}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let callback = location(&headers);
    assert!(callback.starts_with(REDIRECT), "{callback}");
    let code = query_value(&callback, "code");
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}",
        form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let (status, _, body) = call(
        &f.app,
        Request::post("/oidc/token")
            .header(header::AUTHORIZATION, format!("Basic {}", f.basic))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// argon2id verifications per second on every core: the physical limit of password sign-ins.
async fn hash_rate(state_hasher: &saphan_identity::password::PasswordHasher, plan: &Plan) -> f64 {
    let stored = state_hasher.hash(PASSWORD).unwrap();
    let per_task = plan.hashes / plan.concurrency;
    let started = Instant::now();
    let tasks: Vec<_> = (0..plan.concurrency)
        .map(|_| {
            let hasher = state_hasher.clone();
            let stored = stored.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    assert!(
                        hasher
                            .verify_off_thread(PASSWORD, Some(stored.clone()))
                            .await
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (per_task * plan.concurrency) as f64 / started.elapsed().as_secs_f64()
}

async fn sign_in_rate(f: &Arc<Fixture>, plan: &Plan) -> f64 {
    let per_task = plan.sign_ins / plan.concurrency;
    let started = Instant::now();
    let tasks: Vec<_> = (0..plan.concurrency)
        .map(|t| {
            let f = f.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let who = &f.identifiers[(t * per_task + i) % f.identifiers.len()];
                    sign_in(&f, who).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (per_task * plan.concurrency) as f64 / started.elapsed().as_secs_f64()
}

/// Refresh grants (each rotating its token) and UserInfo calls per second.
async fn token_rates(f: &Arc<Fixture>, plan: &Plan) -> (f64, f64) {
    let mut starts = Vec::new();
    for t in 0..plan.concurrency {
        starts.push(sign_in(f, &f.identifiers[t % f.identifiers.len()]).await);
    }
    let per_task = plan.requests / plan.concurrency;
    let started = Instant::now();
    let tasks: Vec<_> = starts
        .iter()
        .map(|tokens| {
            let f = f.clone();
            let mut refresh = tokens["refresh_token"].as_str().unwrap().to_string();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let (status, _, body) = call(
                        &f.app,
                        Request::post("/oidc/token")
                            .header(header::AUTHORIZATION, format!("Basic {}", f.basic))
                            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                            .body(Body::from(format!(
                                "grant_type=refresh_token&refresh_token={refresh}"
                            )))
                            .unwrap(),
                    )
                    .await;
                    assert_eq!(status, StatusCode::OK);
                    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    refresh = answer["refresh_token"].as_str().unwrap().to_string();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let refresh_rate = (per_task * plan.concurrency) as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let tasks: Vec<_> = starts
        .iter()
        .map(|tokens| {
            let f = f.clone();
            let access = tokens["access_token"].as_str().unwrap().to_string();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let (status, _, _) = call(
                        &f.app,
                        Request::get("/oidc/userinfo")
                            .header(header::AUTHORIZATION, format!("Bearer {access}"))
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await;
                    assert_eq!(status, StatusCode::OK);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let userinfo_rate = (per_task * plan.concurrency) as f64 / started.elapsed().as_secs_f64();
    (refresh_rate, userinfo_rate)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn measure(name: &str, db: Db, keys: Arc<KeyStore>, plan: &Plan) -> f64 {
    let config = Config::default();
    let f = Arc::new(fixture(db, keys, config.clone(), plan.concurrency * 4).await);
    let hasher = saphan_identity::password::PasswordHasher::new(&config.identity).unwrap();
    // One sign-in first: it creates the platform secrets and warms the caches.
    sign_in(&f, &f.identifiers[0]).await;
    let (mut hashes, mut sign_ins) = (Vec::new(), Vec::new());
    for _ in 0..plan.rounds {
        // Alternate so that drifting machine load hits both alike.
        hashes.push(hash_rate(&hasher, plan).await);
        sign_ins.push(sign_in_rate(&f, plan).await);
    }
    let (h, s) = (median(hashes), median(sign_ins));
    let ratio = s / h;
    let (refresh, userinfo) = token_rates(&f, plan).await;
    println!(
        "{name:<9} argon2id {h:>6.1} verifications/s   code-flow sign-ins {s:>6.1}/s   ratio {ratio:.2}   (target >= 0.80: {})",
        if ratio >= 0.8 { "met" } else { "NOT MET" }
    );
    println!("{name:<9} token endpoint (refresh, rotating) {refresh:>7.0} requests/s   UserInfo {userinfo:>7.0} requests/s");
    ratio
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let plan = if full {
        Plan {
            sign_ins: 240,
            hashes: 240,
            requests: 2000,
            rounds: 3,
            concurrency: cores * 4,
        }
    } else {
        Plan {
            sign_ins: 4,
            hashes: 4,
            requests: 8,
            rounds: 1,
            concurrency: 2,
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(
        KeyStore::create(&dir.path().join("keys.json"), &Passphrase::new("bench")).unwrap(),
    );
    println!(
        "sign-in benchmark: {} sign-ins and {} argon2id verifications per round, {} rounds (median), {} concurrent tasks on {cores} cores",
        plan.sign_ins, plan.hashes, plan.rounds, plan.concurrency
    );
    let sqlite = Db::connect(
        &format!("sqlite://{}/bench.db", dir.path().display()),
        8,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    measure("sqlite", sqlite.clone(), keys.clone(), &plan).await;
    sqlite.close().await;
    match std::env::var("SAPHAN_BENCH_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let pg = PostgresTestDb::create(&url).await;
            measure("postgres", pg.db.clone(), keys.clone(), &plan).await;
            pg.drop_now().await;
        }
        _ => println!("postgres  skipped: set SAPHAN_BENCH_POSTGRES_URL to measure it"),
    }
}
