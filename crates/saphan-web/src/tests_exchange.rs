//! The exchange's admin page through the router, on both databases: who may see it, and each
//! form making the same change (with the same authorization) as the admin API.

use axum::http::StatusCode;
use saphan_core::Text;
use saphan_identity::{Aal, Ial, LoginId, NewIdentity, Role, Subject};

use super::tests::TOKEN;
use super::tests_identity::{enc, world, Browser, World, NID};

const PERSON_OPENAPI: &str = r#"{"openapi":"3.0.3","info":{"title":"civreg","version":"1"},"paths":{"/persons/{id}":{"get":{"responses":{"200":{"description":"a person"}}}}}}"#;

/// Posts one admin-page form; returns the status and the page.
async fn post(w: &World, browser: &mut Browser, fields: &[(&str, &str)]) -> (StatusCode, String) {
    let mut form = format!("csrf={}", browser.csrf());
    for (k, v) in fields {
        form.push_str(&format!("&{k}={}", enc(v)));
    }
    let (s, _, page) = browser
        .go(&w.app, "POST", "/admin/exchange?lang=en", Some(form))
        .await;
    (s, page)
}

async fn signed_in(w: &World, identity_id: &str) -> Browser {
    let (cookie, _) = w
        .state
        .oidc
        .start_session(identity_id, Aal::L2, &["pwd", "otp"], "t")
        .await
        .unwrap();
    let mut browser = Browser::new();
    browser.jar.insert("saphan_session".into(), cookie);
    browser
}

#[tokio::test]
async fn exchange_administrators_run_the_exchange_from_its_admin_page() {
    saphan_store::testing::for_each_backend(|db| async move {
        let w = world(db.clone()).await;
        let registry = w.state.exchange.registry();

        // The platform's operator: the admin console's session.
        let mut operator = Browser::new();
        let (s, _, _) = operator
            .go(&w.app, "POST", "/admin/login", Some(format!("token={TOKEN}")))
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let (s, _, page) = operator.go(&w.app, "GET", "/admin/exchange?lang=en", None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page.contains("Onboard a member"));

        for (code, agency, subsystem) in [("DOPA", "dopa", "CIVREG"), ("DBD", "", "REGISTRY")] {
            let (s, page) = post(&w, &mut operator, &[
                ("action", "member"), ("class", "GOV"), ("code", code),
                ("name_th", "หน่วยงาน"), ("name_en", code), ("agency", agency),
            ]).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            assert!(page.contains("Member added"), "{page}");
            let (s, page) = post(&w, &mut operator, &[
                ("action", "subsystem"), ("member", &format!("GOV/{code}")), ("code", subsystem),
            ]).await;
            assert_eq!(s, StatusCode::OK, "{page}");
        }
        let (s, page) = post(&w, &mut operator, &[
            ("action", "member"), ("class", "GOV"), ("code", "DOPA"), ("name_th", "ซ้ำ"), ("name_en", "again"),
        ]).await;
        assert_eq!(s, StatusCode::CONFLICT, "a duplicate is refused with a reason: {page}");
        assert!(page.contains("It already exists"), "{page}");

        // Someone signed in without a role sees nothing, on the page or through the API.
        let dir = &w.state.directory;
        let clerk = dir
            .create("seed", NewIdentity {
                login: LoginId::NationalId("1111111111119".parse().unwrap()),
                name: Text::new("วิภา ศรีสุข", "Wipa Srisuk"),
                ial: Ial::L2_3,
                proofing: "counter:chip-card".into(),
            })
            .await
            .unwrap();
        let mut clerk_browser = signed_in(&w, &clerk.id).await;
        let (s, _, _) = clerk_browser.go(&w.app, "GET", "/admin/exchange", None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = post(&w, &mut clerk_browser, &[("action", "subsystem"), ("member", "GOV/DBD"), ("code", "X")]).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        for path in ["/api/v1/exchange/services", "/api/v1/exchange/members", "/api/v1/exchange/subsystems", "/api/v1/exchange/usage"] {
            let (s, _, _) = clerk_browser.go(&w.app, "GET", path, None).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}: the registry is for exchange administrators");
        }

        // DOPA's exchange administrator publishes a service and decides on a request for it.
        let admin = dir.find(&LoginId::parse(NID, "").unwrap()).await.unwrap().unwrap();
        dir.grant_role(&Subject::Operator, &admin.id, "dopa", Role::ExchangeAdmin).await.unwrap();
        let mut dopa = signed_in(&w, &admin.id).await;
        let (s, _, page) = dopa.go(&w.app, "GET", "/admin/exchange?lang=en", None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(!page.contains("Onboard a member"), "onboarding is the platform's");
        let (s, page) = post(&w, &mut dopa, &[
            ("action", "service"), ("subsystem", "TH/GOV/DOPA/CIVREG"), ("code", "person"),
            ("title_th", "ข้อมูลบุคคล"), ("title_en", "Person"),
            ("backend_url", "https://civreg.example.go.th/api"), ("openapi", PERSON_OPENAPI),
            ("classification", "confidential"), ("personal_data", "on"), ("consent_required", "on"),
            ("purposes", "licence-check, tax"), ("rate_limit_per_min", "600"),
        ]).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let service_id = registry.parse_service("TH/GOV/DOPA/CIVREG/person").unwrap();
        let service = registry.service(&service_id).await.unwrap().unwrap();
        assert!(service.consent_required && service.personal_data && !service.log_bodies);
        assert_eq!(service.purposes, ["licence-check", "tax"]);
        assert_eq!(service.endpoints.len(), 1);
        let juristic = [
            ("action", "service"), ("subsystem", "TH/GOV/DBD/REGISTRY"), ("code", "juristic"),
            ("title_th", "นิติบุคคล"), ("title_en", "Juristic"), ("backend_url", "https://dbd.example.go.th"),
            ("endpoints", "GET /juristic/{id}\nget /juristic/{id}/directors"),
        ];
        let (s, page) = post(&w, &mut dopa, &juristic).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "not DOPA's subsystem: {page}");
        let (s, page) = post(&w, &mut operator, &juristic).await;
        assert_eq!(s, StatusCode::OK, "endpoints without OpenAPI: {page}");
        let juristic_id = registry.parse_service("TH/GOV/DBD/REGISTRY/juristic").unwrap();
        let endpoints = registry.service(&juristic_id).await.unwrap().unwrap().endpoints.clone();
        assert_eq!(endpoints.len(), 2);
        assert_eq!(endpoints[1].method, "GET");
        let (s, page) = post(&w, &mut dopa, &[("action", "member"), ("class", "GOV"), ("code", "X"), ("name_th", "x"), ("name_en", "x")]).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{page}");

        // Backend addresses: the operator sees every one, an agency only its own.
        let (_, _, page) = operator.go(&w.app, "GET", "/admin/exchange?lang=en", None).await;
        assert!(page.contains("civreg.example.go.th") && page.contains("dbd.example.go.th"));
        let (_, _, page) = dopa.go(&w.app, "GET", "/admin/exchange?lang=en", None).await;
        assert!(page.contains("civreg.example.go.th") && !page.contains("dbd.example.go.th"), "{page}");
        let (s, _, listed) = dopa.go(&w.app, "GET", "/api/v1/exchange/services", None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(listed.contains("civreg.example.go.th") && !listed.contains("dbd.example.go.th"), "{listed}");

        // Another agency's subsystem is out of reach whichever form is used.
        for form in [
            vec![("action", "gdx_key"), ("subsystem", "TH/GOV/DBD/REGISTRY")],
            vec![("action", "certificate"), ("subsystem", "TH/GOV/DBD/REGISTRY")],
            vec![("action", "subsystem_status"), ("subsystem", "TH/GOV/DBD/REGISTRY"), ("active", "false")],
            vec![("action", "keys"), ("subsystem", "TH/GOV/DBD/REGISTRY"), ("jwks", r#"{"keys":[]}"#)],
        ] {
            let (s, page) = post(&w, &mut dopa, &form).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{form:?}: {page}");
        }
        let (s, page) = post(&w, &mut dopa, &[("action", "subsystem_status"), ("subsystem", "TH/GOV/DOPA/CIVREG")]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "a missing choice is not a default: {page}");

        let (s, page) = post(&w, &mut operator, &[
            ("action", "request"), ("consumer", "TH/GOV/DBD/REGISTRY"), ("service", "TH/GOV/DOPA/CIVREG/person"),
            ("method", "GET"), ("path", "/persons/{id}"), ("purpose", "licence-check"), ("legal_basis", "letter DBD 0001 of 2569"),
        ]).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let request = registry.access_requests(Some("pending")).await.unwrap().remove(0);
        let (_, _, page) = dopa.go(&w.app, "GET", "/admin/exchange?lang=en", None).await;
        assert!(page.contains(&request.id) && page.contains("letter DBD 0001 of 2569"));
        let (s, page) = post(&w, &mut dopa, &[("action", "decide"), ("request", &request.id), ("approve", "false")]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "refusing needs a reason: {page}");
        let (s, page) = post(&w, &mut dopa, &[("action", "decide"), ("request", &request.id)]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "a missing choice is not a refusal: {page}");
        let (s, page) = post(&w, &mut dopa, &[("action", "decide"), ("request", &request.id), ("approve", "true"), ("valid_until", "2030-13-01")]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{page}");
        assert!(page.contains("Valid through: must be a date, YYYY-MM-DD"), "{page}");
        let thai_form = format!("csrf={}&action=decide&request={}&approve=true&valid_until=soon", dopa.csrf(), request.id);
        let (_, _, thai) = dopa.go(&w.app, "POST", "/admin/exchange?lang=th", Some(thai_form)).await;
        assert!(thai.contains("ใช้ได้ถึง: ต้องเป็นวันที่"), "errors in Thai on the Thai page: {thai}");
        let year = time::OffsetDateTime::now_utc().year() + 2;
        let until = format!("{year}-01-01");
        let (s, page) = post(&w, &mut dopa, &[("action", "decide"), ("request", &request.id), ("approve", "true"), ("valid_until", &until)]).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page.contains("Request approved"), "{page}");
        let rights = registry.rights(&service_id).await.unwrap();
        assert_eq!(rights.len(), 1);
        let end_of_day = time::Date::from_calendar_date(year, time::Month::January, 2)
            .unwrap()
            .midnight()
            .assume_utc()
            .unix_timestamp();
        assert_eq!(rights[0].valid_until, Some(end_of_day), "through the end of {until} UTC");
        assert_eq!((rights[0].method.as_str(), rights[0].path.as_str()), ("GET", "/persons/{id}"));
        assert!(page.contains("letter DBD 0001 of 2569"), "the right is listed under its service");

        let (s, page) = post(&w, &mut dopa, &[("action", "revoke"), ("right", &rights[0].id)]).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(registry.rights(&service_id).await.unwrap()[0].revoked_at.is_some());
        let (s, page) = post(&w, &mut dopa, &[
            ("action", "grant"), ("service", "TH/GOV/DOPA/CIVREG/person"), ("grantee", "TH/GOV/DBD/REGISTRY"),
            ("legal_basis", "Digital Government Act s.13"),
        ]).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(registry.may_call(&registry.parse_subsystem("TH/GOV/DBD/REGISTRY").unwrap(), &service, "GET", "/persons/1").await.unwrap());

        let (s, page) = post(&w, &mut dopa, &[("action", "service_status"), ("service", "TH/GOV/DOPA/CIVREG/person"), ("active", "false")]).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(registry.service(&service_id).await.unwrap().unwrap().status, "suspended");

        // Credentials: shown once, on the page that made them.
        let (s, page) = post(&w, &mut dopa, &[("action", "certificate"), ("subsystem", "TH/GOV/DOPA/CIVREG")]).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page.contains("BEGIN CERTIFICATE") && page.contains("PRIVATE KEY"), "{page}");
        let (s, page) = post(&w, &mut dopa, &[("action", "gdx_key"), ("subsystem", "TH/GOV/DOPA/CIVREG")]).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page.contains("Consumer-Secret"), "{page}");
        let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        let (s, page) = post(&w, &mut dopa, &[("action", "keys"), ("subsystem", "TH/GOV/DOPA/CIVREG"), ("jwks", jwks)]).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let civreg = registry.parse_subsystem("TH/GOV/DOPA/CIVREG").unwrap();
        assert!(registry.subsystem(&civreg).await.unwrap().unwrap().oauth_keys);
        let (s, _, page) = dopa.go(&w.app, "GET", "/admin/exchange?lang=en", None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(!page.contains("PRIVATE KEY") && !page.contains("Consumer-Secret:"));

        // Bad posts: a forged CSRF token, an unknown action.
        let (s, _, _) = dopa
            .go(&w.app, "POST", "/admin/exchange", Some("csrf=forged&action=revoke&right=x".into()))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, page) = post(&w, &mut dopa, &[("action", "drop-everything")]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{page}");
        w.state.audit.shutdown().await;
    })
    .await;
}
