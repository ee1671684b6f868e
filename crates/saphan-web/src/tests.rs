//! The HTTP edge, exercised in-process: problems, limits, timeouts, languages, the admin guard.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use saphan_audit::AuditLog;
use saphan_core::Config;
use saphan_crypto::{KeyStore, Passphrase};
use saphan_store::Db;
use tower::ServiceExt;

use crate::{AdminToken, AppState};

pub(crate) const TOKEN: &str = "test-admin-token-0123456789";

pub(crate) fn keys() -> Arc<KeyStore> {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static MADE: OnceLock<()> = OnceLock::new();
    let path = DIR
        .get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .join("k.json");
    MADE.get_or_init(|| {
        KeyStore::create(&path, &Passphrase::new("p")).unwrap();
    });
    Arc::new(KeyStore::open(&path, &Passphrase::new("p")).unwrap())
}

struct Fixture {
    state: AppState,
    _dir: tempfile::TempDir,
}

/// The web state over `db` (migrated here), with the test admin token.
async fn state_on(db: Db, config: Config) -> AppState {
    db.migrate(saphan_audit::MIGRATIONS).await.unwrap();
    let keys = keys();
    let audit = AuditLog::start(db.clone(), keys.clone(), &config.audit);
    AppState::new(
        config,
        db,
        keys,
        audit,
        Some(AdminToken::new(TOKEN)),
        Vec::new(),
        1,
        false,
    )
}

/// A state on a fresh SQLite file, for tests of the HTTP edge that do not depend on the database.
async fn fixture(config: Config) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let db = Db::connect(&url, 4, Duration::from_secs(5)).await.unwrap();
    let state = state_on(db, config).await;
    Fixture { state, _dir: dir }
}

async fn app() -> (Router, Fixture) {
    let f = fixture(Config::default()).await;
    (crate::router(f.state.clone()), f)
}

pub(crate) async fn send(
    app: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let (app, _f) = app().await;
    let (s, _, body) = send(&app, get_req("/healthz")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("\"ok\""));
    let (s, _, body) = send(&app, get_req("/readyz")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("sqlite"));
    let (s, h, body) = send(&app, get_req("/metrics")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(body.contains("saphan_http_requests_total") || body.is_empty() || body.contains('#'));
    let (s, _, body) = send(&app, get_req("/openapi.json")).await;
    assert_eq!(s, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/readyz"].is_object());
    let (s, _, body) = send(&app, get_req("/api-docs?lang=en")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains("readyz") && body.contains("API reference"),
        "{body}"
    );
}

#[tokio::test]
async fn readiness_follows_the_database() {
    saphan_store::testing::for_each_backend(|db| async move {
        let state = state_on(db.clone(), Config::default()).await;
        let app = crate::router(state);
        let (s, _, body) = send(&app, get_req("/readyz")).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let backend = match db.backend() {
            saphan_store::Backend::Sqlite => "sqlite",
            saphan_store::Backend::Postgres => "postgres",
        };
        assert!(body.contains(backend), "{body}");
        db.close().await;
        let (s, h, body) = send(&app, get_req("/readyz")).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(h[header::CONTENT_TYPE], "application/problem+json");
        assert!(body.contains("/problems/database-unavailable"), "{body}");
    })
    .await;
}

#[tokio::test]
async fn errors_are_problem_documents_with_thai_and_english() {
    let (app, _f) = app().await;
    let request = Request::get("/no/such/thing")
        .header("x-request-id", "req-123")
        .body(Body::empty())
        .unwrap();
    let (s, h, body) = send(&app, request).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(h[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(h["x-request-id"], "req-123");
    let p: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["type"], "/problems/not-found");
    assert_eq!(p["status"], 404);
    assert_eq!(p["instance"], "/no/such/thing");
    assert_eq!(p["request_id"], "req-123");
    assert!(!p["title"].as_str().unwrap().is_empty());
    assert!(p["title_th"]
        .as_str()
        .unwrap()
        .chars()
        .any(|c| ('\u{0E00}'..='\u{0E7F}').contains(&c)));

    let (s, h, body) = send(&app, Request::post("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h[header::CONTENT_TYPE], "application/problem+json");
    assert!(body.contains("/problems/method-not-allowed"));

    // Type URIs dereference to a page.
    let (s, _, _) = send(&app, get_req("/problems/not-found")).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let mut config = Config::default();
    config.http.body_limit_bytes = 1024;
    let f = fixture(config).await;
    let app = crate::router(f.state.clone());
    let big = format!("token={}", "x".repeat(4096));
    let request = Request::post("/admin/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big))
        .unwrap();
    let (s, h, body) = send(&app, request).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(h[header::CONTENT_TYPE], "application/problem+json");
    assert!(body.contains("payload-too-large"));
}

#[tokio::test]
async fn slow_handlers_time_out_with_a_problem() {
    let mut config = Config::default();
    config.http.request_timeout_secs = 1;
    let f = fixture(config).await;
    let routes = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    );
    let app = crate::server::with_edge_layers(routes, f.state.clone());
    let (s, h, body) = send(&app, get_req("/slow")).await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(h[header::CONTENT_TYPE], "application/problem+json");
    assert!(body.contains("/problems/timeout"));
}

#[tokio::test]
async fn the_portal_speaks_thai_by_default_and_english_on_request() {
    let (app, _f) = app().await;
    let (s, h, body) = send(&app, get_req("/")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    assert!(body.contains("<html lang=\"th\">") && body.contains("บริการ"));

    let (_, h, body) = send(&app, get_req("/?lang=en")).await;
    assert!(body.contains("<html lang=\"en\">") && body.contains("Services on this platform"));
    let cookie = h[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("lang=en"));

    let remembered = Request::get("/")
        .header(header::COOKIE, "lang=en")
        .body(Body::empty())
        .unwrap();
    assert!(send(&app, remembered)
        .await
        .2
        .contains("<html lang=\"en\">"));
    let negotiated = Request::get("/")
        .header(header::ACCEPT_LANGUAGE, "en-GB,en;q=0.8")
        .body(Body::empty())
        .unwrap();
    assert!(send(&app, negotiated)
        .await
        .2
        .contains("<html lang=\"en\">"));

    // People asking for HTML get an error page, not JSON.
    let page = Request::get("/missing?lang=en")
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap();
    let (s, h, body) = send(&app, page).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(body.contains("Nothing was found"));

    // The language switch on an error page never links off the site.
    let offsite = Request::get("//evil.example")
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap();
    let (_, _, body) = send(&app, offsite).await;
    assert!(!body.contains("evil.example"), "{body}");

    let (s, h, _) = send(&app, get_req("/assets/fonts/sarabun-thai-400-normal.woff2")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "font/woff2");
}

#[tokio::test]
async fn the_admin_console_is_closed_without_the_token() {
    saphan_store::testing::for_each_backend(|db| async move {
        admin_console_on(db).await;
    })
    .await;
}

async fn admin_console_on(db: Db) {
    let state = state_on(db, Config::default()).await;
    let app = crate::router(state.clone());
    let f = Fixture {
        state,
        _dir: tempfile::tempdir().unwrap(),
    };
    let (s, _, body) = send(&app, get_req("/admin?lang=en")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("Administrator token") && !body.contains("Platform keys"));

    let login = |token: &str| {
        Request::post("/admin/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}")))
            .unwrap()
    };
    let (s, _, _) = send(&app, login("wrong-token")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, h, _) = send(&app, login(TOKEN)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let cookie = h[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("saphan_admin="));

    let with_cookie = |c: &str| {
        Request::get("/admin?lang=en")
            .header(header::COOKIE, c)
            .body(Body::empty())
            .unwrap()
    };
    let (s, _, body) = send(&app, with_cookie(&cookie)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains("Platform keys") && body.contains("admin.sign-in"),
        "{body}"
    );

    let last = if cookie.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &cookie[..cookie.len() - 1]);
    let (_, _, body) = send(&app, with_cookie(&forged)).await;
    assert!(!body.contains("Platform keys"));

    // Sign-ins, failed and successful, are in the audit log.
    let records = saphan_audit::read_records(&f.state.db, 0, 10)
        .await
        .unwrap();
    let actions: Vec<_> = records.iter().map(|r| r.action.as_str()).collect();
    assert!(actions.contains(&"admin.sign-in-failed") && actions.contains(&"admin.sign-in"));

    // No token configured: closed for everyone.
    let closed = f.state.altered(|parts| parts.admin_token = None);
    let (s, _, _) = send(&crate::router(closed), get_req("/admin")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn public_keys_and_ca_are_published() {
    let (app, _f) = app().await;
    let (s, _, body) = send(&app, get_req("/api/v1/platform/jwks.json")).await;
    assert_eq!(s, StatusCode::OK);
    let jwks: serde_json::Value = serde_json::from_str(&body).unwrap();
    let kinds: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kty"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"EC".to_string()) && kinds.contains(&"RSA".to_string()));
    let (s, _, body) = send(&app, get_req("/api/v1/platform/ca.pem")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_before_they_flood_the_audit_log() {
    let (app, f) = app().await;
    let wrong = || {
        Request::post("/admin/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("token=guess"))
            .unwrap()
    };
    let mut statuses = Vec::new();
    for _ in 0..22 {
        statuses.push(send(&app, wrong()).await.0);
    }
    assert!(
        statuses[..20]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(statuses[21], StatusCode::TOO_MANY_REQUESTS);
    let records = saphan_audit::read_records(&f.state.db, 0, 100)
        .await
        .unwrap();
    assert_eq!(
        records
            .iter()
            .filter(|r| r.action == "admin.sign-in-failed")
            .count(),
        20
    );
}

#[tokio::test]
async fn only_the_demo_says_it_is_a_demo() {
    let (app, f) = app().await;
    assert!(!send(&app, get_req("/?lang=en"))
        .await
        .2
        .contains("synthetic demonstration data"));
    let demo = f.state.altered(|parts| parts.demo = true);
    assert!(send(&crate::router(demo), get_req("/?lang=en"))
        .await
        .2
        .contains("synthetic demonstration data"));
}

/// OpenSSL as an independent RFC 3161 client: it makes the queries and verifies the replies.
#[tokio::test]
async fn the_time_stamping_authority_answers_openssl() {
    let (app, f) = app().await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is installed");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let keys = f.state.keys.public_keys();
    let cert = |purpose| {
        keys.keys
            .iter()
            .find(|k| k.purpose == purpose && k.status == saphan_crypto::KeyStatus::Active)
            .and_then(|k| k.certificate_pem.clone())
            .unwrap()
    };
    std::fs::write(
        path("ca.pem"),
        cert(saphan_crypto::KeyPurpose::CertificateAuthority),
    )
    .unwrap();
    std::fs::write(
        path("tsa.pem"),
        cert(saphan_crypto::KeyPurpose::TimeStamping),
    )
    .unwrap();
    std::fs::write(path("data.txt"), "ข้อมูลที่ต้องการประทับเวลา / data to stamp").unwrap();

    let ask = |query: Vec<u8>| {
        let app = app.clone();
        async move {
            let request = Request::post("/api/v1/platform/timestamp")
                .header(header::CONTENT_TYPE, "application/timestamp-query")
                .body(Body::from(query))
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/timestamp-reply"
            );
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec()
        }
    };

    // With and without the TSA certificate requested; OpenSSL adds a nonce and checks it.
    for cert_flag in [Some("-cert"), None] {
        let query_path = path("q.tsq");
        let data_path = path("data.txt");
        let mut args = vec![
            "ts",
            "-query",
            "-data",
            &data_path,
            "-sha256",
            "-out",
            &query_path,
        ];
        args.extend(cert_flag);
        let (ok, text) = openssl(&args);
        assert!(ok, "{text}");
        let reply = ask(std::fs::read(&query_path).unwrap()).await;
        std::fs::write(path("r.tsr"), reply).unwrap();
        let (ok, text) = openssl(&[
            "ts",
            "-verify",
            "-queryfile",
            &query_path,
            "-in",
            &path("r.tsr"),
            "-CAfile",
            &path("ca.pem"),
            "-untrusted",
            &path("tsa.pem"),
        ]);
        assert!(
            ok && text.contains("Verification: OK"),
            "{cert_flag:?}: {text}"
        );
        let (_, text) = openssl(&["ts", "-reply", "-in", &path("r.tsr"), "-text"]);
        assert!(
            text.contains("Status: Granted") && text.contains("1.3.6.1.5.5.7.13.1"),
            "{text}"
        );
    }

    // SHA-1 is refused in-band, with the reason.
    let (ok, text) = openssl(&[
        "ts",
        "-query",
        "-data",
        &path("data.txt"),
        "-sha1",
        "-out",
        &path("sha1.tsq"),
    ]);
    assert!(ok, "{text}");
    std::fs::write(
        path("sha1.tsr"),
        ask(std::fs::read(path("sha1.tsq")).unwrap()).await,
    )
    .unwrap();
    let (_, text) = openssl(&["ts", "-reply", "-in", &path("sha1.tsr"), "-text"]);
    assert!(
        text.contains("Status: Rejected") && text.contains("unrecognized or unsupported algorithm"),
        "{text}"
    );

    // Garbage is a rejection too, never a crash; the wrong content type is a problem.
    let reply = ask(b"not DER".to_vec()).await;
    std::fs::write(path("junk.tsr"), reply).unwrap();
    let (_, text) = openssl(&["ts", "-reply", "-in", &path("junk.tsr"), "-text"]);
    assert!(text.contains("Status: Rejected"), "{text}");
    let wrong = Request::post("/api/v1/platform/timestamp")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (s, h, _) = send(&app, wrong).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(h[header::CONTENT_TYPE], "application/problem+json");
}
