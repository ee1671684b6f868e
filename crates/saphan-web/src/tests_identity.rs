//! The digital ID through the router, on both databases: the whole code flow with a browser's
//! cookie jar, the protocol's refusals, bad input at every edge, and the audit trail.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use saphan_core::{Config, NationalId, Text};
use saphan_identity::{totp, Agency, Ial, LoginId, NewIdentity, Role, Subject};
use saphan_oidc::ClientRegistration;
use saphan_store::Db;
use sha2::Digest;

use super::tests::{keys, send, TOKEN};
use crate::{AdminToken, AppState};

const PASSWORD: &str = "correct horse battery";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
pub(crate) const NID: &str = "1101700000001";
const TOTP_SECRET: &[u8] = b"12345678901234567890";

pub(crate) struct World {
    pub(crate) app: Router,
    pub(crate) state: AppState,
    client_id: String,
    basic: String,
}

pub(crate) async fn world(db: Db) -> World {
    let migrations: Vec<_> = [
        saphan_audit::MIGRATIONS,
        saphan_identity::MIGRATIONS,
        saphan_oidc::MIGRATIONS,
        saphan_exchange::MIGRATIONS,
        saphan_registry::MIGRATIONS,
    ]
    .concat();
    db.migrate(&migrations).await.unwrap();
    let config = Config::default();
    let keys = keys();
    let audit = saphan_audit::AuditLog::start(db.clone(), keys.clone(), &config.audit);
    let state = AppState::new(
        config,
        db,
        keys,
        audit,
        Some(AdminToken::new(TOKEN)),
        Vec::new(),
        migrations.len(),
        false,
    );
    let dir = &state.directory;
    dir.upsert_agency(
        "seed",
        &Agency {
            code: "dopa".into(),
            name: Text::new("กรมการปกครอง", "DOPA"),
        },
    )
    .await
    .unwrap();
    let person = dir
        .create(
            "seed",
            NewIdentity {
                login: LoginId::NationalId(NID.parse::<NationalId>().unwrap()),
                name: Text::new("สมชาย ใจดี", "Somchai Jaidee"),
                ial: Ial::L2_3,
                proofing: "counter:chip-card".into(),
            },
        )
        .await
        .unwrap();
    dir.set_password("seed", &person.id, PASSWORD)
        .await
        .unwrap();
    dir.store_totp_secret(&person.id, TOTP_SECRET)
        .await
        .unwrap();
    let registered = state
        .oidc
        .register_client(
            &Subject::Operator,
            registration(&["openid", "profile", "pid"]),
        )
        .await
        .unwrap();
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        registered.client.client_id,
        registered.client_secret.unwrap()
    ));
    World {
        app: crate::router(state.clone()),
        state,
        client_id: registered.client.client_id,
        basic,
    }
}

fn registration(scopes: &[&str]) -> ClientRegistration {
    ClientRegistration {
        name: Text::new("บริการทดสอบ", "Test service"),
        agency: "dopa".into(),
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec!["http://127.0.0.1:9/bye".into()],
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        token_endpoint_auth_method: "client_secret_basic".into(),
        jwks: None,
        id_token_signed_response_alg: "RS256".into(),
        min_acr: None,
    }
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn query_value(url: &str, key: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// A browser: a cookie jar over the in-process router.
pub(crate) struct Browser {
    pub(crate) jar: HashMap<String, String>,
}

impl Browser {
    pub(crate) fn new() -> Browser {
        let mut jar = HashMap::new();
        jar.insert(
            "saphan_csrf".into(),
            "0123456789abcdef0123456789abcdef".into(),
        );
        Browser { jar }
    }

    pub(crate) fn csrf(&self) -> String {
        self.jar["saphan_csrf"].clone()
    }

    pub(crate) async fn go(
        &mut self,
        app: &Router,
        method: &str,
        uri: &str,
        form: Option<String>,
    ) -> (StatusCode, Option<String>, String) {
        let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::COOKIE, cookies.join("; "));
        if form.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let response = send(
            app,
            request
                .body(form.map(Body::from).unwrap_or_else(Body::empty))
                .unwrap(),
        )
        .await;
        for value in response.1.get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, attrs) = text.split_once(';').unwrap_or((text, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.to_string(), v.to_string());
            }
        }
        let location = response
            .1
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        (response.0, location, response.2)
    }
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = b64url(&rand::random::<[u8; 32]>());
    let challenge = b64url(&sha2::Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

fn authorize_url(client_id: &str, pkce: &Pkce, extra: &str) -> String {
    format!(
        "/oidc/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20profile%20pid&state=st&nonce=no&code_challenge={}&code_challenge_method=S256{extra}",
        enc(REDIRECT),
        pkce.challenge
    )
}

/// Signs in (password + TOTP at the current step, so once per step) and allows; returns the
/// callback URL.
async fn sign_in(w: &World, browser: &mut Browser, url: &str, totp_at: i64) -> String {
    let (s, loc, body) = browser.go(&w.app, "GET", url, None).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    let signin = loc.unwrap();
    let request = query_value(&signin, "request").unwrap();
    let form = format!(
        "request={request}&csrf={}&identifier={NID}&nationality=&password={}",
        browser.csrf(),
        enc(PASSWORD)
    );
    let (s, loc, body) = browser.go(&w.app, "POST", "/signin", Some(form)).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    assert!(loc.unwrap().starts_with("/signin/totp"));
    let code = totp::code_at(TOTP_SECRET, totp_at);
    let form = format!("request={request}&csrf={}&code={code}", browser.csrf());
    let (s, loc, body) = browser.go(&w.app, "POST", "/signin/totp", Some(form)).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    let next = loc.unwrap();
    if next.starts_with(REDIRECT) {
        return next;
    }
    assert!(next.starts_with("/consent"), "{next}");
    let (s, _, body) = browser.go(&w.app, "GET", &next, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains("เลขประจำตัวประชาชน 13 หลัก"),
        "consent says the national id goes out"
    );
    let form = format!("request={request}&csrf={}&decision=allow", browser.csrf());
    let (s, loc, _) = browser.go(&w.app, "POST", "/consent", Some(form)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    loc.unwrap()
}

async fn token(w: &World, form: &str) -> (StatusCode, serde_json::Value) {
    let (s, h, body) = send(
        &w.app,
        Request::post("/oidc/token")
            .header(header::AUTHORIZATION, format!("Basic {}", w.basic))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    (
        s,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn code_form(code: &str, verifier: &str) -> String {
    format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={verifier}",
        enc(code),
        enc(REDIRECT)
    )
}

async fn userinfo(w: &World, access: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    send(
        &w.app,
        Request::get("/oidc/userinfo")
            .header(header::AUTHORIZATION, format!("Bearer {access}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn code_flow_refresh_rotation_replay_and_logout() {
    saphan_store::testing::for_each_backend(|db| async move {
        let w = world(db.clone()).await;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut browser = Browser::new();
        let p = pkce();
        let callback = sign_in(&w, &mut browser, &authorize_url(&w.client_id, &p, ""), now).await;
        assert!(callback.starts_with(REDIRECT), "{callback}");
        assert_eq!(query_value(&callback, "state").as_deref(), Some("st"));
        assert_eq!(
            query_value(&callback, "iss").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        let code = query_value(&callback, "code").unwrap();

        let (s, wrong) = token(&w, &code_form(&code, &pkce().verifier)).await;
        assert_eq!(
            (s, wrong["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
        // The failed attempt used the code up: the right verifier is now too late.
        let (s, again) = token(&w, &code_form(&code, &p.verifier)).await;
        assert_eq!(
            (s, again["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );

        // A fresh sign-in: the session is reused, consent remembered, straight to the callback.
        let p = pkce();
        let (s, loc, _) = browser
            .go(&w.app, "GET", &authorize_url(&w.client_id, &p, ""), None)
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let callback = loc.unwrap();
        assert!(
            callback.starts_with(REDIRECT),
            "session and consent are reused: {callback}"
        );
        let code = query_value(&callback, "code").unwrap();
        let (s, tokens) = token(&w, &code_form(&code, &p.verifier)).await;
        assert_eq!(s, StatusCode::OK, "{tokens}");
        let id_token =
            saphan_oidc::jose::Unverified::parse(tokens["id_token"].as_str().unwrap()).unwrap();
        assert!(id_token.verify_platform(&w.state.keys.public_keys()));
        let claims = &id_token.claims;
        assert_eq!(claims["acr"], "urn:saphan:ial-2.3:aal-2");
        assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
        assert_eq!(claims["nonce"], "no");
        assert_eq!(claims["aud"], w.client_id.as_str());
        assert_eq!(claims["pid"], NID);
        assert!(!claims["sub"].as_str().unwrap().contains(NID));

        let access = tokens["access_token"].as_str().unwrap();
        let (s, _, body) = userinfo(&w, access).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let info: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(info["sub"], claims["sub"]);
        assert_eq!(info["name#en"], "Somchai Jaidee");

        // Replaying the code revokes what it gave.
        let (_, replay) = token(&w, &code_form(&code, &p.verifier)).await;
        assert_eq!(replay["error"], "invalid_grant");
        assert_eq!(userinfo(&w, access).await.0, StatusCode::UNAUTHORIZED);

        // Refresh rotation and reuse detection, from a third sign-in.
        let p = pkce();
        let (_, loc, _) = browser
            .go(&w.app, "GET", &authorize_url(&w.client_id, &p, ""), None)
            .await;
        let code = query_value(&loc.unwrap(), "code").unwrap();
        let (_, tokens) = token(&w, &code_form(&code, &p.verifier)).await;
        let first = tokens["refresh_token"].as_str().unwrap().to_string();
        let (s, rotated) = token(
            &w,
            &format!("grant_type=refresh_token&refresh_token={first}"),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{rotated}");
        let second = rotated["refresh_token"].as_str().unwrap().to_string();
        assert_ne!(first, second);
        let (_, reused) = token(
            &w,
            &format!("grant_type=refresh_token&refresh_token={first}"),
        )
        .await;
        assert_eq!(reused["error"], "invalid_grant");
        let (_, family) = token(
            &w,
            &format!("grant_type=refresh_token&refresh_token={second}"),
        )
        .await;
        assert_eq!(
            family["error"], "invalid_grant",
            "the whole family is revoked"
        );
        assert_eq!(
            userinfo(&w, rotated["access_token"].as_str().unwrap())
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );

        // acr_values above what this person can reach.
        let p = pkce();
        let (_, loc, _) = browser
            .go(
                &w.app,
                "GET",
                &authorize_url(&w.client_id, &p, "&acr_values=urn:saphan:ial-3:aal-3"),
                None,
            )
            .await;
        assert_eq!(
            query_value(&loc.unwrap(), "error").as_deref(),
            Some("unmet_authentication_requirements")
        );

        // RP-initiated logout with the hint, then the session is gone.
        let hint = tokens["id_token"].as_str().unwrap();
        let (s, loc, _) = browser
            .go(
                &w.app,
                "GET",
                &format!(
                    "/oidc/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye",
                    enc("http://127.0.0.1:9/bye")
                ),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(loc.as_deref(), Some("http://127.0.0.1:9/bye?state=bye"));
        let (_, loc, _) = browser
            .go(
                &w.app,
                "GET",
                &authorize_url(&w.client_id, &pkce(), ""),
                None,
            )
            .await;
        assert!(loc.unwrap().starts_with("/signin"), "signed out");

        let actions: Vec<String> = saphan_audit::read_records(&db, 0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        for expected in [
            "identity.sign-in",
            "oidc.consent.granted",
            "oidc.client.registered",
            "oidc.token.issued",
            "oidc.code.replayed",
            "oidc.refresh.reused",
            "oidc.session.ended",
        ] {
            assert!(
                actions.iter().any(|a| a == expected),
                "{expected} missing from {actions:?}"
            );
        }
        w.state.audit.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn bad_input_gets_standard_errors_never_a_panic() {
    saphan_store::testing::for_each_backend(|db| async move {
        let w = world(db.clone()).await;
        let p = pkce();
        // Authorization requests that cannot be trusted are shown, not redirected.
        for url in [
            authorize_url(&w.client_id, &p, &format!("&state={}", "x".repeat(3000))),
            authorize_url(&w.client_id, &p, "&scope=openid"),
            authorize_url("no-such-client", &p, ""),
            authorize_url(&w.client_id, &p, "").replace(&enc(REDIRECT), &enc("http://127.0.0.1:9/other")),
        ] {
            let (s, h, body) = send(&w.app, Request::get(&url).body(Body::empty()).unwrap()).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{url}: {body}");
            assert!(h.get(header::LOCATION).is_none());
        }
        // Ones from a trusted client get the error at its redirect URI.
        for (extra, error) in [
            ("&code_challenge_method=plain", "invalid_request"),
            ("&response_type=token", "unsupported_response_type"),
            ("&scope=openid%20roles", "invalid_scope"),
            ("&prompt=none", "login_required"),
            ("&max_age=-1", "invalid_request"),
        ] {
            let url = if extra.starts_with("&code_challenge_method") {
                authorize_url(&w.client_id, &p, "").replace("code_challenge_method=S256", &extra[1..])
            } else if extra.starts_with("&response_type") {
                authorize_url(&w.client_id, &p, "").replace("response_type=code", &extra[1..])
            } else if extra.starts_with("&scope") {
                authorize_url(&w.client_id, &p, "").replace("scope=openid%20profile%20pid", &extra[1..])
            } else {
                authorize_url(&w.client_id, &p, extra)
            };
            let (s, h, _) = send(&w.app, Request::get(&url).body(Body::empty()).unwrap()).await;
            assert_eq!(s, StatusCode::SEE_OTHER, "{extra}");
            let loc = h[header::LOCATION].to_str().unwrap();
            assert_eq!(query_value(loc, "error").as_deref(), Some(error), "{extra}: {loc}");
        }

        // The token endpoint: content type, client authentication, grant types.
        let post = |ct: &str, auth: Option<String>, body: &str| {
            let mut r = Request::post("/oidc/token").header(header::CONTENT_TYPE, ct);
            if let Some(a) = auth {
                r = r.header(header::AUTHORIZATION, a);
            }
            r.body(Body::from(body.to_string())).unwrap()
        };
        let basic = Some(format!("Basic {}", w.basic));
        for (request, status, error) in [
            (post("application/json", basic.clone(), "{}"), 400, "invalid_request"),
            (post("application/x-www-form-urlencoded", Some("Basic !!!".into()), "grant_type=refresh_token"), 401, "invalid_client"),
            (post("application/x-www-form-urlencoded", None, "grant_type=refresh_token&client_id=x&client_secret=y"), 401, "invalid_client"),
            (post("application/x-www-form-urlencoded", None, "grant_type=refresh_token"), 401, "invalid_client"),
            (post("application/x-www-form-urlencoded", basic.clone(), "grant_type=password"), 400, "unsupported_grant_type"),
            (post("application/x-www-form-urlencoded", basic.clone(), "grant_type=refresh_token&grant_type=refresh_token"), 400, "invalid_request"),
            (post("application/x-www-form-urlencoded", basic.clone(), "grant_type=authorization_code&code=x&code_verifier=short"), 400, "invalid_request"),
            (post("application/x-www-form-urlencoded", basic.clone(), &format!("grant_type=refresh_token&refresh_token={}", "a".repeat(5000))), 400, "invalid_request"),
            (post("application/x-www-form-urlencoded", None, "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.&grant_type=refresh_token"), 401, "invalid_client"),
        ] {
            let (s, h, body) = send(&w.app, request).await;
            assert_eq!(s.as_u16(), status, "{body}");
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(json["error"], error, "{body}");
            if status == 401 {
                assert!(h.get(header::WWW_AUTHENTICATE).is_some());
            }
        }

        // UserInfo with no, malformed or tampered tokens.
        for auth in [None, Some("Bearer nonsense".to_string()), Some(format!("Bearer {}", "x".repeat(300)))] {
            let mut r = Request::get("/oidc/userinfo");
            if let Some(a) = auth {
                r = r.header(header::AUTHORIZATION, a);
            }
            let (s, h, _) = send(&w.app, r.body(Body::empty()).unwrap()).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
            assert!(h[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Bearer"));
        }

        // A tampered id_token_hint is refused at logout.
        let header_b64 = b64url(br#"{"alg":"RS256","kid":"nope"}"#);
        let claims_b64 = b64url(br#"{"aud":"x","sub":"y"}"#);
        let (s, _, _) = send(&w.app, Request::get(format!("/oidc/logout?id_token_hint={header_b64}.{claims_b64}.AAAA")).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);

        // The sign-in form: a mistyped national id is explained; unknown and wrong look alike.
        let mut browser = Browser::new();
        let (_, loc, _) = browser.go(&w.app, "GET", &authorize_url(&w.client_id, &p, ""), None).await;
        let request = query_value(&loc.unwrap(), "request").unwrap();
        let csrf = browser.csrf();
        let attempt = |identifier: &str, password: &str| format!("request={request}&csrf={csrf}&identifier={identifier}&nationality=&password={password}");
        let (s, _, body) = browser.go(&w.app, "POST", "/signin", Some(attempt("1101700000002", "x"))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(body.contains("role=\"alert\"") && body.contains("13"));
        let (s1, _, unknown) = browser.go(&w.app, "POST", "/signin", Some(attempt("1234567890121", "wrong password 1"))).await;
        let (s2, _, wrong) = browser.go(&w.app, "POST", "/signin", Some(attempt(NID, "wrong password 1"))).await;
        assert_eq!((s1, s2), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
        assert_eq!(unknown.replace("1234567890121", "ID"), wrong.replace(NID, "ID"), "no account enumeration");
        let (s, _, _) = browser.go(&w.app, "POST", "/signin", Some(format!("request={request}&csrf=forged&identifier={NID}&password=x"))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "CSRF");

        // The administration API.
        let api = |ct: &str, auth: Option<&str>, body: &str| {
            let mut r = Request::post("/api/v1/identity/clients").header(header::CONTENT_TYPE, ct);
            if let Some(a) = auth {
                r = r.header(header::AUTHORIZATION, a);
            }
            r.body(Body::from(body.to_string())).unwrap()
        };
        let bearer = format!("Bearer {TOKEN}");
        let good = serde_json::to_string(&registration(&["openid"])).unwrap();
        for (request, status, slug) in [
            (api("application/json", None, &good), 401, "authentication-required"),
            (api("application/json", Some("Bearer wrong-token-123456"), &good), 401, "authentication-required"),
            (api("text/plain", Some(&bearer), &good), 415, ""),
            (api("application/json", Some(&bearer), "{not json"), 400, "invalid-json"),
            (api("application/json", Some(&bearer), &good.replace("\"agency\"", "\"extra\":1,\"agency\"")), 400, "invalid-json"),
            (api("application/json", Some(&bearer), &good.replace(REDIRECT, "http://example.com/cb")), 400, "invalid-client-registration"),
            (api("application/json", Some(&bearer), &good.replace("\"dopa\"", "\"nowhere\"")), 400, "no-such-agency"),
        ] {
            let (s, h, body) = send(&w.app, request).await;
            assert_eq!(s.as_u16(), status, "{body}");
            assert_eq!(h[header::CONTENT_TYPE], "application/problem+json");
            assert!(body.contains(slug), "{body}");
        }
        let (s, _, body) = send(&w.app, api("application/json", Some(&bearer), &good)).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        w.state.audit.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn roles_change_through_the_api_only_for_those_allowed() {
    saphan_store::testing::for_each_backend(|db| async move {
        let w = world(db.clone()).await;
        let person = w
            .state
            .directory
            .find(&LoginId::parse(NID, "").unwrap())
            .await
            .unwrap()
            .unwrap();
        let change = |auth: &str, role: &str| {
            Request::post("/api/v1/identity/roles")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, auth.to_string())
                .body(Body::from(
                    serde_json::json!({ "identity_id": person.id, "agency": "dopa", "role": role })
                        .to_string(),
                ))
                .unwrap()
        };
        let bearer = format!("Bearer {TOKEN}");
        let (s, _, body) = send(&w.app, change(&bearer, "reviewer")).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert!(body.contains("true"));
        let (s, _, body) = send(&w.app, change(&bearer, "root")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("unknown-role"));
        assert_eq!(
            w.state.directory.roles_of(&person.id).await.unwrap()[0].role,
            Role::Reviewer
        );
        let actions: Vec<String> = saphan_audit::read_records(&db, 0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert!(actions.iter().any(|a| a == "identity.role.granted"));
        w.state.audit.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn recovery_signs_out_everywhere_and_shows_the_lowered_assurance() {
    saphan_store::testing::for_each_backend(|db| async move {
        let w = world(db.clone()).await;
        let person = w
            .state
            .directory
            .find(&LoginId::parse(NID, "").unwrap())
            .await
            .unwrap()
            .unwrap();
        let codes = w
            .state
            .directory
            .new_recovery_codes(&person.id)
            .await
            .unwrap();
        // Another device holds a session before the recovery.
        let (old_cookie, _) = w
            .state
            .oidc
            .start_session(
                &person.id,
                saphan_identity::Aal::L2,
                &["pwd", "otp"],
                "old phone",
            )
            .await
            .unwrap();
        let mut browser = Browser::new();
        let form = |code: &str| {
            format!(
                "csrf={}&identifier={NID}&nationality=&code={code}&password={}",
                "0123456789abcdef0123456789abcdef",
                enc("brand new password")
            )
        };
        let (s, _, body) = browser
            .go(&w.app, "POST", "/recover", Some(form("AAAAA-BBBBB")))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.contains("role=\"alert\""));
        let (s, loc, _) = browser
            .go(&w.app, "POST", "/recover", Some(form(&codes[0])))
            .await;
        assert_eq!(
            (s, loc.as_deref()),
            (StatusCode::SEE_OTHER, Some("/account"))
        );
        assert!(
            w.state.oidc.session(&old_cookie).await.unwrap().is_none(),
            "other sessions end"
        );
        let (s, _, page) = browser.go(&w.app, "GET", "/account?lang=en", None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            page.contains("IAL 1") && page.contains("Identity check needed"),
            "{page}"
        );
        assert!(!w.state.directory.methods(&person.id).await.unwrap().totp);
        w.state.audit.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn agency_administrators_manage_clients_and_roles_on_the_admin_page() {
    saphan_store::testing::for_each_backend(|db| async move {
        let w = world(db.clone()).await;
        let dir = &w.state.directory;
        let admin = dir.find(&LoginId::parse(NID, "").unwrap()).await.unwrap().unwrap();
        let clerk = dir
            .create("seed", NewIdentity {
                login: LoginId::NationalId("1111111111119".parse().unwrap()),
                name: Text::new("วิภา ศรีสุข", "Wipa Srisuk"),
                ial: Ial::L2_3,
                proofing: "counter:chip-card".into(),
            })
            .await
            .unwrap();
        let (clerk_cookie, _) = w.state.oidc.start_session(&clerk.id, saphan_identity::Aal::L2, &["pwd"], "t").await.unwrap();
        let mut clerk_browser = Browser::new();
        clerk_browser.jar.insert("saphan_session".into(), clerk_cookie);
        let (s, _, _) = clerk_browser.go(&w.app, "GET", "/admin/identity", None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "no roles, no admin page");

        dir.grant_role(&Subject::Operator, &admin.id, "dopa", Role::AgencyAdmin).await.unwrap();
        let (cookie, _) = w.state.oidc.start_session(&admin.id, saphan_identity::Aal::L2, &["pwd", "otp"], "t").await.unwrap();
        let mut browser = Browser::new();
        browser.jar.insert("saphan_session".into(), cookie);
        let (s, _, page) = browser.go(&w.app, "GET", "/admin/identity?lang=en", None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains(&w.client_id), "the agency's clients are listed");
        let csrf = browser.csrf();
        let form = format!("csrf={csrf}&identifier=1111111111119&agency=dopa&role=reviewer&change=grant");
        let (s, _, page) = browser.go(&w.app, "POST", "/admin/identity/roles?lang=en", Some(form)).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(dir.roles_of(&clerk.id).await.unwrap()[0].role, Role::Reviewer);
        let form = format!("csrf={csrf}&identifier=1111111111119&agency=dopa&role=platform-admin&change=grant");
        let (s, _, _) = browser.go(&w.app, "POST", "/admin/identity/roles?lang=en", Some(form)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "an agency administrator cannot make platform administrators");
        let form = format!("csrf={csrf}&name_th=%E0%B8%9A%E0%B8%A3%E0%B8%B4%E0%B8%81%E0%B8%B2%E0%B8%A3&name_en=Service&agency=dopa&redirect_uris={}&scopes=openid+profile&alg=ES256", enc("https://service.example.go.th/cb"));
        let (s, _, page) = browser.go(&w.app, "POST", "/admin/identity/clients?lang=en", Some(form)).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page.contains("client_secret"), "the secret is shown once");
        w.state.audit.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn totp_enrolment_and_the_console_for_platform_administrators() {
    saphan_store::testing::for_each_backend(|db| async move {
        let w = world(db.clone()).await;
        let dir = &w.state.directory;
        let person = dir
            .create(
                "seed",
                NewIdentity {
                    login: LoginId::NationalId("1234545678781".parse().unwrap()),
                    name: Text::new("กมล มั่นคง", "Kamon Mankhong"),
                    ial: Ial::L2_3,
                    proofing: "counter:chip-card".into(),
                },
            )
            .await
            .unwrap();
        let (cookie, _) = w
            .state
            .oidc
            .start_session(&person.id, saphan_identity::Aal::L1, &["pwd"], "t")
            .await
            .unwrap();
        let mut browser = Browser::new();
        browser.jar.insert("saphan_session".into(), cookie);
        let csrf = browser.csrf();
        let (s, _, page) = browser
            .go(
                &w.app,
                "POST",
                "/account/totp?lang=en",
                Some(format!("csrf={csrf}")),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let secret = page
            .split("<span class=\"mono\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_string();
        let secret = totp::base32_decode(&secret).unwrap();
        let (s, _, _) = browser
            .go(
                &w.app,
                "POST",
                "/account/totp/confirm",
                Some(format!("csrf={csrf}&code=000000")),
            )
            .await;
        assert!(
            s == StatusCode::BAD_REQUEST
                || totp::code_at(&secret, time::OffsetDateTime::now_utc().unix_timestamp())
                    == "000000"
        );
        let code = totp::code_at(&secret, time::OffsetDateTime::now_utc().unix_timestamp());
        let (s, loc, _) = browser
            .go(
                &w.app,
                "POST",
                "/account/totp/confirm",
                Some(format!("csrf={csrf}&code={code}")),
            )
            .await;
        assert_eq!(
            (s, loc.as_deref()),
            (StatusCode::SEE_OTHER, Some("/account"))
        );
        assert!(dir.methods(&person.id).await.unwrap().totp);

        // The admin console: closed to a citizen, open to a platform administrator.
        let (s, _, page) = browser.go(&w.app, "GET", "/admin?lang=en", None).await;
        assert!(
            page.contains("Administrator sign-in") && s == StatusCode::OK,
            "the token form, not the console"
        );
        dir.grant_role(&Subject::Operator, &person.id, "dopa", Role::PlatformAdmin)
            .await
            .unwrap();
        let (s, _, page) = browser.go(&w.app, "GET", "/admin?lang=en", None).await;
        assert!(
            s == StatusCode::OK && page.contains("Administrator sign-in"),
            "a password-only session is not enough"
        );
        let (strong, _) = w
            .state
            .oidc
            .start_session(&person.id, saphan_identity::Aal::L2, &["pwd", "otp"], "t")
            .await
            .unwrap();
        browser.jar.insert("saphan_session".into(), strong);
        let (s, _, page) = browser.go(&w.app, "GET", "/admin?lang=en", None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(page.contains("Platform status"), "{page}");
        w.state.audit.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn prompt_values_max_age_and_rotated_refresh_tokens() {
    saphan_store::testing::for_each_backend(|db| async move {
        let w = world(db.clone()).await;
        let person = w
            .state
            .directory
            .find(&LoginId::parse(NID, "").unwrap())
            .await
            .unwrap()
            .unwrap();
        // A password-only session on an account that has TOTP.
        let (cookie, _) = w
            .state
            .oidc
            .start_session(&person.id, saphan_identity::Aal::L1, &["pwd"], "t")
            .await
            .unwrap();
        let mut browser = Browser::new();
        browser.jar.insert("saphan_session".into(), cookie);
        // The session must predate the request (a sign-in made for a request is final).
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let p = pkce();
        let (_, loc, _) = browser
            .go(
                &w.app,
                "GET",
                &authorize_url(
                    &w.client_id,
                    &p,
                    "&prompt=none&acr_values=urn:saphan:ial-2.1:aal-2",
                ),
                None,
            )
            .await;
        assert_eq!(
            query_value(&loc.unwrap(), "error").as_deref(),
            Some("login_required"),
            "a step-up is possible but prompt=none forbids it"
        );
        let (_, loc, _) = browser
            .go(
                &w.app,
                "GET",
                &authorize_url(&w.client_id, &p, "&prompt=none"),
                None,
            )
            .await;
        assert_eq!(
            query_value(&loc.unwrap(), "error").as_deref(),
            Some("consent_required")
        );

        // prompt=consent shows the consent page once, then the code comes.
        let (_, loc, _) = browser
            .go(
                &w.app,
                "GET",
                &authorize_url(&w.client_id, &p, "&prompt=consent"),
                None,
            )
            .await;
        let consent = loc.unwrap();
        assert!(consent.starts_with("/consent"), "{consent}");
        let request = query_value(&consent, "request").unwrap();
        let form = format!("request={request}&csrf={}&decision=allow", browser.csrf());
        let (_, loc, _) = browser.go(&w.app, "POST", "/consent", Some(form)).await;
        let callback = loc.unwrap();
        assert!(
            callback.starts_with(REDIRECT) && callback.contains("code="),
            "{callback}"
        );

        // max_age=0 sends the person to sign in again.
        let (_, loc, _) = browser
            .go(
                &w.app,
                "GET",
                &authorize_url(&w.client_id, &p, "&max_age=0"),
                None,
            )
            .await;
        assert!(loc.unwrap().starts_with("/signin"));

        // A rotated refresh token introspects as inactive.
        let code = query_value(&callback, "code").unwrap();
        let (_, tokens) = token(&w, &code_form(&code, &p.verifier)).await;
        let first = tokens["refresh_token"].as_str().unwrap().to_string();
        let (s, _) = token(
            &w,
            &format!("grant_type=refresh_token&refresh_token={first}&scope=openid"),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, body) = send(
            &w.app,
            Request::post("/oidc/introspect")
                .header(header::AUTHORIZATION, format!("Basic {}", w.basic))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("token={first}")))
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.contains("\"active\":false"), "{body}");

        // Page titles are text, not markup.
        let (_, _, page) = browser.go(&w.app, "GET", "/signin?lang=en", None).await;
        let title = page
            .split("<title>")
            .nth(1)
            .unwrap()
            .split("</title>")
            .next()
            .unwrap();
        assert!(!title.contains('<'), "{title}");
        w.state.audit.shutdown().await;
    })
    .await;
}
