//! The directory on both databases: identities, sign-in under the throttle, TOTP once-only,
//! recovery lowering assurance visibly, roles through the authorization layer, act-for, and
//! every change in the audit log.

use saphan_audit::AuditLog;
use saphan_core::config::{AuditConfig, IdentityConfig};
use saphan_core::{NationalId, Text};
use saphan_identity::{
    totp, ActFor, Agency, Directory, Ial, LoginId, NewIdentity, PasswordAttempt, Role, SignInError,
    Subject,
};
use saphan_store::Db;

use saphan_crypto::testing::shared_keys as keys;

async fn directory(db: &Db) -> Directory {
    let migrations: Vec<_> = saphan_audit::MIGRATIONS
        .iter()
        .chain(saphan_identity::MIGRATIONS)
        .copied()
        .collect();
    db.migrate(&migrations).await.unwrap();
    let audit = AuditLog::start(db.clone(), keys(), &AuditConfig::default());
    let config = IdentityConfig {
        account_lock_after: 3,
        ..IdentityConfig::default()
    };
    Directory::new(db.clone(), audit, &config).unwrap()
}

fn citizen(nid: &str) -> NewIdentity {
    NewIdentity {
        login: LoginId::NationalId(nid.parse::<NationalId>().unwrap()),
        name: Text::owned("สมชาย ใจดี", "Somchai Jaidee"),
        ial: Ial::L2_3,
        proofing: "counter:chip-card".into(),
    }
}

async fn actions(db: &Db) -> Vec<String> {
    saphan_audit::read_records(db, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect()
}

#[tokio::test]
async fn password_sign_in_throttle_and_audit() {
    saphan_store::testing::for_each_backend(|db| async move {
        let dir = directory(&db).await;
        let person = dir.create("seed", citizen("1101700000001")).await.unwrap();
        assert!(matches!(
            dir.create("seed", citizen("1-1017-00000-00-1")).await,
            Err(saphan_identity::IdentityError::Duplicate)
        ));
        dir.set_password("seed", &person.id, "correct horse battery")
            .await
            .unwrap();
        let login = LoginId::parse("1101700000001", "").unwrap();
        let attempt = |password: &'static str, device: Option<&'static str>| PasswordAttempt {
            login: &login,
            password,
            source: "192.0.2.1",
            device_token: device,
        };
        let ok = dir
            .sign_in_password(attempt("correct horse battery", None))
            .await
            .unwrap();
        assert_eq!(ok.identity.id, person.id);
        assert!(!ok.second_factor_required);

        // Unknown accounts and wrong passwords get the same answer.
        let unknown = LoginId::parse("1234567890121", "").unwrap();
        let err = dir
            .sign_in_password(PasswordAttempt {
                login: &unknown,
                password: "whatever123",
                source: "192.0.2.9",
                device_token: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, SignInError::Invalid));

        let device = dir.device_token(&person.id).await.unwrap();
        for _ in 0..3 {
            assert!(matches!(
                dir.sign_in_password(attempt("wrong password!", None)).await,
                Err(SignInError::Invalid)
            ));
        }
        // Locked for unknown devices, even with the right password...
        assert!(matches!(
            dir.sign_in_password(attempt("correct horse battery", None))
                .await,
            Err(SignInError::Locked { .. })
        ));
        // ...but the person's own device still gets in.
        let device: &'static str = Box::leak(device.into_boxed_str());
        assert!(dir
            .sign_in_password(attempt("correct horse battery", Some(device)))
            .await
            .is_ok());
        // A device token for someone else does not help.
        let forged: &'static str =
            Box::leak(format!("{}.{}", "0".repeat(32), "0".repeat(64)).into_boxed_str());
        assert!(matches!(
            dir.sign_in_password(attempt("wrong password!", Some(forged)))
                .await,
            Err(SignInError::Invalid) | Err(SignInError::Locked { .. })
        ));

        let recorded = actions(&db).await;
        assert!(recorded.iter().any(|a| a == "identity.created"));
        assert!(recorded.iter().filter(|a| *a == "identity.sign-in").count() >= 2);
        assert!(
            recorded
                .iter()
                .filter(|a| *a == "identity.sign-in.failed")
                .count()
                >= 4
        );
        assert!(recorded.iter().any(|a| a == "identity.sign-in.refused"));
        dir.audit().shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn totp_second_factor_works_once() {
    saphan_store::testing::for_each_backend(|db| async move {
        let dir = directory(&db).await;
        let person = dir.create("seed", citizen("1111111111119")).await.unwrap();
        dir.set_password("seed", &person.id, "correct horse battery")
            .await
            .unwrap();
        assert_eq!(
            dir.methods(&person.id).await.unwrap().max_aal(),
            saphan_identity::Aal::L1
        );
        let secret = dir.begin_totp(&person.id).await.unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        // Enrol with the previous step's code, so the current one is still fresh for sign-in.
        assert!(dir
            .confirm_totp(&person.id, &totp::code_at(&secret, now - 30))
            .await
            .unwrap());
        assert_eq!(
            dir.methods(&person.id).await.unwrap().max_aal(),
            saphan_identity::Aal::L2
        );
        assert!(
            dir.begin_totp(&person.id).await.is_err(),
            "a confirmed secret is not replaced silently"
        );

        let login = LoginId::parse("1111111111119", "").unwrap();
        let first = dir
            .sign_in_password(PasswordAttempt {
                login: &login,
                password: "correct horse battery",
                source: "s",
                device_token: None,
            })
            .await
            .unwrap();
        assert!(first.second_factor_required);
        let code = totp::code_at(&secret, now);
        dir.sign_in_totp(&person.id, &code, "s", None)
            .await
            .unwrap();
        assert!(
            matches!(
                dir.sign_in_totp(&person.id, &code, "s", None).await,
                Err(SignInError::Invalid)
            ),
            "a code works once"
        );
        assert!(matches!(
            dir.sign_in_totp(&person.id, "12x456", "s", None).await,
            Err(SignInError::Invalid)
        ));
        dir.audit().shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn recovery_removes_second_factors_and_requires_reproofing() {
    saphan_store::testing::for_each_backend(|db| async move {
        let dir = directory(&db).await;
        let person = dir.create("seed", citizen("1234545678781")).await.unwrap();
        dir.set_password("seed", &person.id, "lost password 1")
            .await
            .unwrap();
        dir.store_totp_secret(&person.id, b"12345678901234567890")
            .await
            .unwrap();
        let codes = dir.new_recovery_codes(&person.id).await.unwrap();
        assert_eq!(codes.len(), 10);
        let login = LoginId::parse("1234545678781", "").unwrap();
        assert!(matches!(
            dir.recover(&login, "AAAAA-AAAAA", "new password 22", "s")
                .await,
            Err(SignInError::Invalid)
        ));
        let recovered = dir
            .recover(&login, &codes[3].to_lowercase(), "new password 22", "s")
            .await
            .unwrap();
        assert!(recovered.reproofing_required);
        assert_eq!(recovered.effective_ial(), Ial::L1);
        assert_eq!(
            recovered.ial,
            Ial::L2_3,
            "the recorded proofing is kept, not erased"
        );
        let methods = dir.methods(&person.id).await.unwrap();
        assert!(!methods.totp);
        assert_eq!(methods.recovery_codes_left, 9);
        assert!(
            matches!(
                dir.recover(&login, &codes[3], "new password 33", "s").await,
                Err(SignInError::Invalid)
            ),
            "codes work once"
        );
        dir.reproof(&person.id, Ial::L2_3, "upstream:thaid")
            .await
            .unwrap();
        assert_eq!(
            dir.get(&person.id).await.unwrap().unwrap().effective_ial(),
            Ial::L2_3
        );
        let recorded = actions(&db).await;
        assert!(recorded.iter().any(|a| a == "identity.recovered"));
        assert!(recorded.iter().any(|a| a == "identity.reproofed"));
        dir.audit().shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn roles_are_granted_through_the_authorization_layer() {
    saphan_store::testing::for_each_backend(|db| async move {
        let dir = directory(&db).await;
        for code in ["dopa", "dbd"] {
            dir.upsert_agency(
                "seed",
                &Agency {
                    code: code.into(),
                    name: Text::owned(code, code),
                },
            )
            .await
            .unwrap();
        }
        let admin = dir.create("seed", citizen("1101700000001")).await.unwrap();
        let clerk = dir.create("seed", citizen("1111111111119")).await.unwrap();
        assert!(dir
            .grant_role(&Subject::Operator, &admin.id, "dopa", Role::AgencyAdmin)
            .await
            .unwrap());
        let admin_subject = dir.subject(&admin.id).await.unwrap();
        assert!(dir
            .grant_role(&admin_subject, &clerk.id, "dopa", Role::Reviewer)
            .await
            .unwrap());
        assert!(
            !dir.grant_role(&admin_subject, &clerk.id, "dopa", Role::Reviewer)
                .await
                .unwrap(),
            "idempotent"
        );
        for (agency, role) in [("dbd", Role::Reviewer), ("dopa", Role::PlatformAdmin)] {
            assert!(matches!(
                dir.grant_role(&admin_subject, &clerk.id, agency, role)
                    .await,
                Err(saphan_identity::IdentityError::Forbidden(_))
            ));
        }
        assert!(matches!(
            dir.grant_role(&admin_subject, &admin.id, "dopa", Role::Signer)
                .await,
            Err(saphan_identity::IdentityError::Forbidden(_))
        ));
        assert!(matches!(
            dir.grant_role(&Subject::Operator, &clerk.id, "nowhere", Role::Signer)
                .await,
            Err(saphan_identity::IdentityError::NoSuchAgency(_))
        ));
        let clerk_subject = dir.subject(&clerk.id).await.unwrap();
        assert!(clerk_subject.may(
            &saphan_identity::Action::ReviewApplications,
            &saphan_identity::Resource::Agency("dopa".into())
        ));
        let officials = dir.officials("dopa").await.unwrap();
        assert_eq!(officials.len(), 2);
        assert!(dir
            .revoke_role(&admin_subject, &clerk.id, "dopa", Role::Reviewer)
            .await
            .unwrap());
        assert!(dir.roles_of(&clerk.id).await.unwrap().is_empty());
        let recorded = actions(&db).await;
        assert_eq!(
            recorded
                .iter()
                .filter(|a| *a == "identity.role.granted")
                .count(),
            2
        );
        assert_eq!(
            recorded
                .iter()
                .filter(|a| *a == "identity.role.revoked")
                .count(),
            1
        );
        assert!(
            recorded
                .iter()
                .filter(|a| *a == "identity.role.denied")
                .count()
                >= 3
        );
        dir.audit().shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn act_for_relations_carry_source_and_validity() {
    saphan_store::testing::for_each_backend(|db| async move {
        let dir = directory(&db).await;
        let rep = dir.create("seed", citizen("1101700000001")).await.unwrap();
        let relation = |until: Option<&str>| ActFor {
            juristic_id: "0105500000003".into(),
            juristic_name: "Demo Trading Co., Ltd.".into(),
            capacity: "director".into(),
            source: "dbd:registry".into(),
            valid_from: "2020-01-01T00:00:00.000000Z".into(),
            valid_until: until.map(String::from),
        };
        dir.add_act_for("seed", &rep.id, &relation(None))
            .await
            .unwrap();
        dir.add_act_for(
            "seed",
            &rep.id,
            &relation(Some("2021-01-01T00:00:00.000000Z")),
        )
        .await
        .unwrap();
        let valid = dir.act_for(&rep.id).await.unwrap();
        assert_eq!(valid.len(), 1, "expired relations do not count");
        assert_eq!(valid[0].source, "dbd:registry");
        let mut bad = relation(None);
        bad.juristic_id = "0105500000006".into();
        assert!(dir.add_act_for("seed", &rep.id, &bad).await.is_err());
        let mut bad_time = relation(None);
        bad_time.valid_from = "yesterday".into();
        assert!(dir.add_act_for("seed", &rep.id, &bad_time).await.is_err());
        dir.audit().shutdown().await;
    })
    .await;
}

#[test]
fn login_ids_parse_national_ids_and_passports() {
    assert!(matches!(
        LoginId::parse("1-1017-00000-00-1", ""),
        Ok(LoginId::NationalId(_))
    ));
    assert!(
        LoginId::parse("1101700000002", "").is_err(),
        "bad check digit"
    );
    assert!(
        LoginId::parse("12345", "").is_err(),
        "digits without nationality"
    );
    match LoginId::parse(" ab 123456 ", "gbr").unwrap() {
        LoginId::Passport {
            number,
            nationality,
        } => {
            assert_eq!(number, "AB123456");
            assert_eq!(nationality, "GBR");
        }
        other => panic!("{other:?}"),
    }
    assert!(LoginId::parse("AB123456", "").is_err());
    assert!(LoginId::parse("AB123456", "GB").is_err());
    assert!(LoginId::parse("AB-123456", "GBR").is_err());
    assert!(LoginId::parse(&"A".repeat(100), "GBR").is_err());
    assert!(LoginId::parse("", "").is_err());
}

#[tokio::test]
async fn a_guesser_cannot_lock_the_owner_out_at_the_second_factor() {
    saphan_store::testing::for_each_backend(|db| async move {
        let dir = directory(&db).await;
        let person = dir.create("seed", citizen("1101700000001")).await.unwrap();
        dir.set_password("seed", &person.id, "correct horse battery")
            .await
            .unwrap();
        dir.store_totp_secret(&person.id, b"12345678901234567890")
            .await
            .unwrap();
        let device = dir.device_token(&person.id).await.unwrap();
        let login = LoginId::parse("1101700000001", "").unwrap();
        for _ in 0..4 {
            let _ = dir
                .sign_in_password(PasswordAttempt {
                    login: &login,
                    password: "wrong password!",
                    source: "203.0.113.9",
                    device_token: None,
                })
                .await;
        }
        // The owner's own device passes the password step and then the code step.
        let ok = dir
            .sign_in_password(PasswordAttempt {
                login: &login,
                password: "correct horse battery",
                source: "198.51.100.1",
                device_token: Some(&device),
            })
            .await
            .unwrap();
        assert!(ok.second_factor_required);
        let code = totp::code_at(
            b"12345678901234567890",
            time::OffsetDateTime::now_utc().unix_timestamp(),
        );
        dir.sign_in_totp(&person.id, &code, "198.51.100.1", Some(&device))
            .await
            .unwrap();
        dir.audit().shutdown().await;
    })
    .await;
}
