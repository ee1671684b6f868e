//! The exchange's registry, consents, gateway and message log on both databases: who may
//! change what, rights by endpoint, group and time, access requests, consent checks, and a
//! call through the gateway to a real HTTP backend whose record carries its evidence.

use std::sync::Arc;

use futures::StreamExt;
use saphan_audit::AuditLog;
use saphan_core::config::{AuditConfig, ExchangeConfig, IdentityConfig};
use saphan_core::{NationalId, Text};
use saphan_exchange::consent::{ConsentRefusal, NewConsent};
use saphan_exchange::credentials::Credentials;
use saphan_exchange::gateway::{BodyStream, Gateway, Presented};
use saphan_exchange::registry::{Decision, NewAccessRequest, NewMember, NewRight, ServiceSpec};
use saphan_exchange::{Endpoint, ExchangeError, MemberId, Registry};
use saphan_identity::{AgencyRole, Directory, Ial, LoginId, NewIdentity, Role, Subject};
use saphan_store::Db;

use saphan_crypto::testing::shared_keys as keys;

struct World {
    registry: Registry,
    directory: Directory,
    audit: AuditLog,
}

async fn world(db: &Db) -> World {
    let migrations: Vec<_> = [
        saphan_audit::MIGRATIONS,
        saphan_identity::MIGRATIONS,
        saphan_oidc::MIGRATIONS,
        saphan_exchange::MIGRATIONS,
    ]
    .concat();
    db.migrate(&migrations).await.unwrap();
    let audit = AuditLog::start(db.clone(), keys(), &AuditConfig::default());
    let directory = Directory::new(db.clone(), audit.clone(), &IdentityConfig::default()).unwrap();
    World {
        registry: Registry::new(db.clone(), audit.clone(), "TH"),
        directory,
        audit,
    }
}

fn admin_of(agency: &str) -> Subject {
    Subject::Person {
        identity_id: format!("admin-{agency}"),
        roles: vec![AgencyRole {
            agency: agency.into(),
            role: Role::ExchangeAdmin,
        }],
    }
}

async fn onboard(w: &World) {
    for (code, agency) in [("DOPA", "dopa"), ("DBD", "dbd"), ("RD", "rd")] {
        w.registry
            .create_member(
                &Subject::Operator,
                &NewMember {
                    class: "GOV".into(),
                    code: code.into(),
                    name_th: format!("หน่วยงาน {code}"),
                    name_en: format!("Agency {code}"),
                    agency: Some(agency.into()),
                },
            )
            .await
            .unwrap();
    }
    let sub = |m: &str, s: &str, agency: &str| {
        let registry = w.registry.clone();
        let (m, s, agency) = (m.to_string(), s.to_string(), agency.to_string());
        async move {
            registry
                .create_subsystem(
                    &admin_of(&agency),
                    &MemberId::parse(&format!("GOV/{m}")).unwrap(),
                    &s,
                )
                .await
                .unwrap()
        }
    };
    sub("DOPA", "CIVREG", "dopa").await;
    sub("DBD", "REGISTRY", "dbd").await;
    sub("RD", "TAX", "rd").await;
}

fn person_service(backend: &str, consent: bool) -> ServiceSpec {
    ServiceSpec {
        code: "person".into(),
        title_th: "ข้อมูลบุคคล".into(),
        title_en: "Person".into(),
        backend_url: backend.into(),
        openapi: Some(serde_json::json!({
            "openapi": "3.0.3",
            "info": {"title": "person", "version": "1"},
            "paths": {"/persons/{id}": {"get": {}}, "/persons/export": {"get": {}}, "/persons": {"post": {}}}
        })),
        endpoints: vec![],
        classification: "confidential".into(),
        personal_data: true,
        consent_required: consent,
        purposes: vec!["business-registration".into()],
        rate_limit_per_min: 0,
        timeout_secs: 2,
        log_bodies: false,
    }
}

#[tokio::test]
async fn administration_is_authorised_and_audited() {
    saphan_store::testing::for_each_backend(|db| async move {
        let w = world(&db).await;
        onboard(&w).await;
        let reg = &w.registry;
        // Only the central administrator onboards members.
        let refused = reg
            .create_member(
                &admin_of("dopa"),
                &NewMember {
                    class: "GOV".into(),
                    code: "X".into(),
                    name_th: "x".into(),
                    name_en: "x".into(),
                    agency: None,
                },
            )
            .await;
        assert!(matches!(refused, Err(ExchangeError::Forbidden(_))));
        // An agency administers only its own subsystems.
        let civreg = reg.parse_subsystem("TH/GOV/DOPA/CIVREG").unwrap();
        let other = reg
            .put_service(
                &admin_of("dbd"),
                &civreg,
                &person_service("http://127.0.0.1:9/", false),
            )
            .await;
        assert!(matches!(other, Err(ExchangeError::Forbidden(_))));
        // An agency may publish its own backends, but not point the exchange at the platform's
        // network (loopback, private, link-local): that takes the central administrator.
        for internal in [
            "http://127.0.0.1:9/",
            "http://localhost/",
            "http://10.0.0.5/",
            "http://169.254.169.254/",
            "http://[::1]/",
        ] {
            assert!(
                matches!(
                    reg.put_service(&admin_of("dopa"), &civreg, &person_service(internal, false))
                        .await,
                    Err(ExchangeError::Forbidden(_))
                ),
                "{internal}"
            );
        }
        reg.put_service(
            &admin_of("dopa"),
            &civreg,
            &person_service("https://civreg.dopa.example/api", false),
        )
        .await
        .unwrap();
        let service = reg
            .put_service(
                &Subject::Operator,
                &civreg,
                &person_service("http://127.0.0.1:9/", false),
            )
            .await
            .unwrap();
        assert_eq!(
            service.endpoints,
            vec![
                Endpoint::new("GET", "/persons/export").unwrap(),
                Endpoint::new("GET", "/persons/{id}").unwrap(),
                Endpoint::new("POST", "/persons").unwrap()
            ]
        );
        // Bad input is refused with a message naming the field.
        let mut bad = person_service("ftp://x/", false);
        assert!(matches!(
            reg.put_service(&Subject::Operator, &civreg, &bad).await,
            Err(ExchangeError::Invalid(m)) if m.contains("backend_url")
        ));
        bad = person_service("http://x/", true);
        bad.personal_data = false;
        assert!(reg
            .put_service(&Subject::Operator, &civreg, &bad)
            .await
            .is_err());
        let actions: Vec<String> = saphan_audit::read_records(&db, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        for a in [
            "exchange.member.create",
            "exchange.subsystem.create",
            "exchange.service.publish",
        ] {
            assert!(
                actions.iter().any(|x| x == a),
                "{a} missing from {actions:?}"
            );
        }
        w.audit.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn rights_by_endpoint_group_time_and_requests() {
    saphan_store::testing::for_each_backend(|db| async move {
        let w = world(&db).await;
        onboard(&w).await;
        let reg = &w.registry;
        let civreg = reg.parse_subsystem("GOV/DOPA/CIVREG").unwrap();
        let dbd = reg.parse_subsystem("TH/GOV/DBD/REGISTRY").unwrap();
        let rd = reg.parse_subsystem("TH/GOV/RD/TAX").unwrap();
        reg.put_service(
            &Subject::Operator,
            &civreg,
            &person_service("http://127.0.0.1:9/", false),
        )
        .await
        .unwrap();
        let sid = reg.parse_service("TH/GOV/DOPA/CIVREG/person").unwrap();
        let service = reg.service(&sid).await.unwrap().unwrap();
        assert!(!reg
            .may_call(&dbd, &service, "GET", "/persons/1")
            .await
            .unwrap());

        // A consumer asks; the provider refuses without a reason: no; approves: yes.
        let request = reg
            .request_access(
                &admin_of("dbd"),
                &NewAccessRequest {
                    consumer: "TH/GOV/DBD/REGISTRY".into(),
                    service: sid.to_string(),
                    method: "GET".into(),
                    path: "/persons/{id}".into(),
                    purpose: "verify founders".into(),
                    legal_basis: "Digital Government Act s.13".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(request.status, "pending");
        let no_reason = Decision {
            approve: false,
            reason: None,
            valid_until: None,
            fields: None,
        };
        assert!(reg
            .decide_access(&admin_of("dopa"), &request.id, &no_reason)
            .await
            .is_err());
        assert!(matches!(
            reg.decide_access(
                &admin_of("dbd"),
                &request.id,
                &Decision {
                    approve: true,
                    reason: None,
                    valid_until: None,
                    fields: None,
                }
            )
            .await,
            Err(ExchangeError::Forbidden(_))
        ));
        let approved = reg
            .decide_access(
                &admin_of("dopa"),
                &request.id,
                &Decision {
                    approve: true,
                    reason: None,
                    valid_until: None,
                    fields: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(approved.status, "approved");
        assert!(matches!(
            reg.decide_access(
                &admin_of("dopa"),
                &request.id,
                &Decision {
                    approve: true,
                    reason: None,
                    valid_until: None,
                    fields: None,
                }
            )
            .await,
            Err(ExchangeError::Conflict(_))
        ));
        assert!(reg
            .may_call(&dbd, &service, "GET", "/persons/1101700000001")
            .await
            .unwrap());
        assert!(
            !reg.may_call(&dbd, &service, "POST", "/persons")
                .await
                .unwrap(),
            "only the endpoint asked for"
        );
        assert!(
            !reg.may_call(&dbd, &service, "GET", "/admin").await.unwrap(),
            "not an endpoint"
        );
        assert!(
            !reg.may_call(&dbd, &service, "GET", "/persons/export")
                .await
                .unwrap(),
            "a right on /persons/{{id}} does not open the literal /persons/export"
        );
        // Revocation takes effect at once on this node.
        reg.revoke_right(&admin_of("dopa"), approved.right_id.as_deref().unwrap())
            .await
            .unwrap();
        assert!(!reg
            .may_call(&dbd, &service, "GET", "/persons/1")
            .await
            .unwrap());

        // A right to a group reaches its members only.
        reg.create_group(
            &Subject::Operator,
            "tax-agencies",
            "Agencies that assess tax",
        )
        .await
        .unwrap();
        reg.add_to_group(&Subject::Operator, "tax-agencies", &rd)
            .await
            .unwrap();
        reg.grant_right(
            &admin_of("dopa"),
            &sid,
            &NewRight {
                grantee: "group:tax-agencies".into(),
                method: "*".into(),
                path: "*".into(),
                legal_basis: "Revenue Code s.3".into(),
                valid_until: None,
                fields: None,
            },
        )
        .await
        .unwrap();
        assert!(reg
            .may_call(&rd, &service, "POST", "/persons")
            .await
            .unwrap());
        assert!(!reg
            .may_call(&dbd, &service, "POST", "/persons")
            .await
            .unwrap());

        // Field-limited rights: the fields of every covering right together; none = all.
        let grant_fields = |fields: Option<Vec<&str>>| NewRight {
            grantee: "GOV/DBD/REGISTRY".into(),
            method: "GET".into(),
            path: "/persons/{id}".into(),
            legal_basis: "letter DGA 0002/2569".into(),
            valid_until: None,
            fields: fields.map(|f| f.into_iter().map(String::from).collect()),
        };
        assert!(reg
            .grant_right(
                &admin_of("dopa"),
                &sid,
                &grant_fields(Some(vec!["bad name!"]))
            )
            .await
            .is_err());
        assert!(reg
            .grant_right(&admin_of("dopa"), &sid, &grant_fields(Some(vec![])))
            .await
            .is_err());
        let names = reg
            .grant_right(
                &admin_of("dopa"),
                &sid,
                &grant_fields(Some(vec!["lastName", "firstName"])),
            )
            .await
            .unwrap();
        assert_eq!(
            names.fields.as_deref(),
            Some(&["firstName".to_string(), "lastName".to_string()][..])
        );
        let status = reg
            .grant_right(
                &admin_of("dopa"),
                &sid,
                &grant_fields(Some(vec!["status", "firstName"])),
            )
            .await
            .unwrap();
        assert_eq!(
            reg.access(&dbd, &service, "GET", "/persons/1")
                .await
                .unwrap(),
            Some(saphan_exchange::registry::Fields::Only(
                ["firstName", "lastName", "status"]
                    .map(String::from)
                    .to_vec()
            ))
        );
        assert_eq!(
            reg.access(&dbd, &service, "POST", "/persons")
                .await
                .unwrap(),
            None
        );
        let all = reg
            .grant_right(&admin_of("dopa"), &sid, &grant_fields(None))
            .await
            .unwrap();
        assert_eq!(
            reg.access(&dbd, &service, "GET", "/persons/1")
                .await
                .unwrap(),
            Some(saphan_exchange::registry::Fields::All)
        );
        for right in [&names.id, &status.id, &all.id] {
            reg.revoke_right(&admin_of("dopa"), right).await.unwrap();
        }
        // Stored and read back (the rights list shows the fields).
        assert!(reg.rights(&sid).await.unwrap().iter().any(|r| r
            .fields
            .as_deref()
            .is_some_and(|f| f.contains(&"status".to_string()))));

        // A time-bounded right ends by itself.
        let until = time::OffsetDateTime::now_utc().unix_timestamp() + 2;
        reg.grant_right(
            &admin_of("dopa"),
            &sid,
            &NewRight {
                grantee: "GOV/DBD/REGISTRY".into(),
                method: "GET".into(),
                path: "/persons/{id}".into(),
                legal_basis: "letter DGA 0001/2569".into(),
                valid_until: Some(until),
                fields: None,
            },
        )
        .await
        .unwrap();
        assert!(reg
            .may_call(&dbd, &service, "GET", "/persons/1")
            .await
            .unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        assert!(!reg
            .may_call(&dbd, &service, "GET", "/persons/1")
            .await
            .unwrap());
        // A right on an endpoint the service does not have is refused.
        assert!(reg
            .grant_right(
                &admin_of("dopa"),
                &sid,
                &NewRight {
                    grantee: "GOV/DBD/REGISTRY".into(),
                    method: "GET".into(),
                    path: "/secret".into(),
                    legal_basis: "x".into(),
                    valid_until: None,
                    fields: None,
                }
            )
            .await
            .is_err());
        w.audit.shutdown().await;
    })
    .await;
}

async fn citizen(w: &World, nid: &str) -> saphan_identity::Identity {
    w.directory
        .create(
            "test",
            NewIdentity {
                login: LoginId::NationalId(nid.parse::<NationalId>().unwrap()),
                name: Text::owned("สมหญิง", "Somying"),
                ial: Ial::L2_3,
                proofing: "counter:chip-card".into(),
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn consents_are_scoped_revocable_and_pseudonymous() {
    saphan_store::testing::for_each_backend(|db| async move {
        let w = world(&db).await;
        onboard(&w).await;
        let reg = &w.registry;
        let civreg = reg.parse_subsystem("GOV/DOPA/CIVREG").unwrap();
        reg.put_service(
            &Subject::Operator,
            &civreg,
            &person_service("http://127.0.0.1:9/", true),
        )
        .await
        .unwrap();
        let person = citizen(&w, "1101700000001").await;
        let later = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        let ask = |purpose: &str, until: i64| NewConsent {
            consumer: "TH/GOV/DBD/REGISTRY".into(),
            service: "TH/GOV/DOPA/CIVREG/person".into(),
            purpose: purpose.into(),
            valid_until: until,
        };
        assert!(reg
            .give_consent(&w.directory, &person, &ask("marketing", later))
            .await
            .is_err());
        assert!(reg
            .give_consent(
                &w.directory,
                &person,
                &ask("business-registration", later + 400 * 86_400)
            )
            .await
            .is_err());
        let consent = reg
            .give_consent(&w.directory, &person, &ask("business-registration", later))
            .await
            .unwrap();
        let ok = reg
            .check_consent(
                &w.directory,
                &consent.id,
                "GOV/DBD/REGISTRY",
                "GOV/DOPA/CIVREG/person",
                Some("business-registration"),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(ok.subject.starts_with("ds:"));
        assert!(!ok.subject.contains("1101700000001"));
        assert_eq!(
            reg.check_consent(
                &w.directory,
                &consent.id,
                "GOV/RD/TAX",
                "GOV/DOPA/CIVREG/person",
                None
            )
            .await
            .unwrap()
            .unwrap_err(),
            ConsentRefusal::OtherScope
        );
        assert_eq!(
            reg.check_consent(
                &w.directory,
                "nope",
                "GOV/DBD/REGISTRY",
                "GOV/DOPA/CIVREG/person",
                None
            )
            .await
            .unwrap()
            .unwrap_err(),
            ConsentRefusal::Unknown
        );
        let someone_else = citizen(&w, "3100117581929").await;
        assert!(
            reg.revoke_consent(&someone_else, &consent.id)
                .await
                .is_err(),
            "only its giver revokes it"
        );
        reg.revoke_consent(&person, &consent.id).await.unwrap();
        assert_eq!(
            reg.check_consent(
                &w.directory,
                &consent.id,
                "GOV/DBD/REGISTRY",
                "GOV/DOPA/CIVREG/person",
                None
            )
            .await
            .unwrap()
            .unwrap_err(),
            ConsentRefusal::Revoked
        );
        assert_eq!(reg.consents_of(&person).await.unwrap().len(), 1);
        w.audit.shutdown().await;
    })
    .await;
}

/// A backend answering `{"ok":true,"path":...}`, on a random port, in this process.
async fn backend() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let body = format!("{{\"ok\":true,\"path\":\"{path}\"}}");
                let _ = socket
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    format!("http://{addr}/base")
}

fn empty() -> BodyStream {
    Box::pin(futures::stream::empty())
}

#[tokio::test]
async fn calls_are_forwarded_logged_and_provable() {
    saphan_store::testing::for_each_backend(|db| async move {
        let w = world(&db).await;
        onboard(&w).await;
        let reg = &w.registry;
        let civreg = reg.parse_subsystem("GOV/DOPA/CIVREG").unwrap();
        reg.put_service(
            &Subject::Operator,
            &civreg,
            &person_service(&backend().await, false),
        )
        .await
        .unwrap();
        let sid = reg.parse_service("TH/GOV/DOPA/CIVREG/person").unwrap();
        reg.grant_right(
            &admin_of("dopa"),
            &sid,
            &NewRight {
                grantee: "GOV/DBD/REGISTRY".into(),
                method: "GET".into(),
                path: "/persons/{id}".into(),
                legal_basis: "s.13".into(),
                valid_until: None,
                fields: None,
            },
        )
        .await
        .unwrap();
        let config = ExchangeConfig::default();
        let credentials = Arc::new(Credentials::new(
            reg.clone(),
            w.directory.clone(),
            keys(),
            "https://saphan.test",
            &config,
        ));
        let dbd = reg.parse_subsystem("GOV/DBD/REGISTRY").unwrap();
        let cert = credentials
            .issue_certificate(&admin_of("dbd"), &dbd, None, 30)
            .await
            .unwrap();
        let der = x509_der(&cert.certificate_pem);
        let gateway = Gateway::new(
            reg.clone(),
            credentials,
            w.directory.clone(),
            keys(),
            "https://saphan.test",
            &config,
        )
        .unwrap();
        let headers = |purpose: Option<&str>| {
            let mut h = http::HeaderMap::new();
            h.insert("x-road-client", "TH/GOV/DBD/REGISTRY".parse().unwrap());
            h.insert("saphan-data-subject", "TH1101700000001".parse().unwrap());
            if let Some(p) = purpose {
                h.insert("saphan-purpose", p.parse().unwrap());
            }
            h
        };
        let call = |h: http::HeaderMap, path: &str| {
            gateway.call(saphan_exchange::gateway::Inbound {
                method: http::Method::GET,
                service: sid.clone(),
                path: path.to_string(),
                query: None,
                headers: h,
                body: empty(),
                presented: Presented::Certificate(der.clone()),
                request_id: "req-1".into(),
            })
        };
        // No purpose: refused with a typed error, and recorded.
        let refused = call(headers(None), "/persons/1101700000001").await;
        assert_eq!(refused.status(), 403);
        assert_eq!(
            refused.headers()["x-road-error"],
            "Server.ServerProxy.PurposeNotAllowed"
        );
        // With it: forwarded.
        let ok = call(
            headers(Some("business-registration")),
            "/persons/1101700000001",
        )
        .await;
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["x-road-client"], "TH/GOV/DBD/REGISTRY");
        assert_eq!(ok.headers()["x-road-request-hash"].len(), 88);
        let body: Vec<u8> = ok
            .into_body()
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"ok":true,"path":"/base/persons/1101700000001"}"#
        );
        // Wrong client header: refused.
        let mut wrong = headers(Some("business-registration"));
        wrong.insert("x-road-client", "TH/GOV/RD/TAX".parse().unwrap());
        assert_eq!(call(wrong, "/persons/1").await.status(), 403);

        // A service that asks for it keeps bodies, encrypted; they decrypt to what passed.
        let mut keeping = person_service(&backend().await, false);
        keeping.code = "person-kept".into();
        keeping.log_bodies = true;
        reg.put_service(&Subject::Operator, &civreg, &keeping)
            .await
            .unwrap();
        let kept_id = reg.parse_service("TH/GOV/DOPA/CIVREG/person-kept").unwrap();
        reg.grant_right(
            &admin_of("dopa"),
            &kept_id,
            &NewRight {
                grantee: "GOV/DBD/REGISTRY".into(),
                method: "*".into(),
                path: "*".into(),
                legal_basis: "s.13".into(),
                valid_until: None,
                fields: None,
            },
        )
        .await
        .unwrap();
        let kept = gateway
            .call(saphan_exchange::gateway::Inbound {
                method: http::Method::GET,
                service: kept_id.clone(),
                path: "/persons/7".into(),
                query: None,
                headers: headers(Some("business-registration")),
                body: empty(),
                presented: Presented::Certificate(der.clone()),
                request_id: "req-2".into(),
            })
            .await;
        assert_eq!(kept.status(), 200);
        let logged = saphan_exchange::log::search(
            &gateway,
            &w.directory,
            &saphan_exchange::log::LogSearch {
                service: Some(kept_id.to_string()),
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let body_id = logged[0].call["response_body_id"]
            .as_str()
            .unwrap()
            .to_string();
        let clear = gateway.read_body(&body_id).await.unwrap().unwrap();
        assert_eq!(
            String::from_utf8(clear).unwrap(),
            r#"{"ok":true,"path":"/base/persons/7"}"#
        );
        let stored: String =
            saphan_store::sqlx::query_scalar("SELECT ciphertext FROM xr_bodies WHERE id = $1")
                .bind(&body_id)
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert!(!stored.contains("persons"), "bodies are stored encrypted");
        assert!(
            logged[0].call["request_body_id"].is_null(),
            "an empty body is not kept"
        );

        // The log: both calls for this data subject, with no national id in clear.
        let found = saphan_exchange::log::search(
            &gateway,
            &w.directory,
            &saphan_exchange::log::LogSearch {
                national_id: Some("1101700000001".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            found.len(),
            3,
            "the refusal and the two calls, not the impostor: {found:?}"
        );
        assert!(found.iter().all(|e| e.detail_intact));
        assert!(!serde_json::to_string(&found)
            .unwrap()
            .contains("1101700000001"));
        assert_eq!(found[0].call["status"], 200);
        assert_eq!(found[0].call["endpoint"], "GET /persons/{id}");
        // Evidence for the successful call verifies offline once checkpointed.
        w.audit.checkpoint_now().await.unwrap();
        let evidence =
            saphan_exchange::log::evidence(&gateway, &keys().public_keys(), found[0].seq)
                .await
                .unwrap();
        evidence.verify(None).unwrap();
        let mut forged = evidence.clone();
        forged.detail = forged.detail.replace("\"status\":200", "\"status\":404");
        assert!(forged.verify(None).is_err());
        w.audit.shutdown().await;
    })
    .await;
}

fn x509_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}
