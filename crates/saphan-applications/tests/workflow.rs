//! Applications through the demo procedures' workflows, on both databases: drafts and answers,
//! verified registry values the applicant cannot change, submission validated against the
//! forms, role- and agency-guarded tasks, the ask-only-once rule, parallel sign-off by two
//! agencies in a bundle, decisions and the timeline.

use std::collections::BTreeMap;

use saphan_applications::{ApplicationError, Applications, Decision, Status, TaskStatus, Verified};
use saphan_audit::AuditLog;
use saphan_core::config::{AuditConfig, IdentityConfig};
use saphan_crypto::testing::shared_keys;
use saphan_identity::{
    ActFor, Agency, AgencyRole, Directory, Ial, LoginId, NewIdentity, Role, Subject,
};
use saphan_procedures::{demo, Catalogue};
use saphan_store::testing::for_each_backend;
use saphan_store::Db;
use serde_json::{json, Map, Value};

async fn applications(db: &Db) -> (Applications, Catalogue, Directory) {
    let migrations: Vec<_> = [
        saphan_audit::MIGRATIONS,
        saphan_identity::MIGRATIONS,
        saphan_procedures::MIGRATIONS,
        saphan_applications::MIGRATIONS,
    ]
    .concat();
    db.migrate(&migrations).await.unwrap();
    let audit = AuditLog::start(db.clone(), shared_keys(), &AuditConfig::default());
    let directory = Directory::new(db.clone(), audit.clone(), &IdentityConfig::default()).unwrap();
    for (code, th, en) in demo::AGENCIES {
        directory
            .upsert_agency(
                "test",
                &Agency {
                    code: code.into(),
                    name: saphan_core::Text::new(th, en),
                },
            )
            .await
            .unwrap();
    }
    let catalogue = Catalogue::new(db.clone(), audit.clone(), directory.clone());
    for d in demo::documents() {
        catalogue.publish(&Subject::Operator, d).await.unwrap();
    }
    (
        Applications::new(db.clone(), audit, catalogue.clone(), directory.clone()),
        catalogue,
        directory,
    )
}

fn official(agency: &str, role: Role) -> Subject {
    Subject::Person {
        identity_id: format!("{agency}-{role}"),
        roles: vec![AgencyRole {
            agency: agency.into(),
            role,
        }],
    }
}

fn answers(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn verified(fields: &[(&str, &str)], source: &str) -> BTreeMap<String, Verified> {
    fields
        .iter()
        .map(|(f, v)| {
            (
                f.to_string(),
                Verified {
                    value: json!(v),
                    source: source.into(),
                    message_id: "test-message".into(),
                    at: "2026-11-22T00:00:00.000000Z".into(),
                },
            )
        })
        .collect()
}

const HOUSE: &str = "TH/GOV/DOPA/CIVREG/house-v1";
const PERSON: &str = "TH/GOV/DOPA/CIVREG/person-v1";

fn person_and_house() -> BTreeMap<String, Verified> {
    let mut v = verified(
        &[
            ("title", "นาย"),
            ("firstName", "สมชาย"),
            ("lastName", "ใจดี"),
        ],
        PERSON,
    );
    v.extend(verified(
        &[
            ("houseNo", "12"),
            ("subdistrict", "บางรัก"),
            ("district", "บางรัก"),
            ("province", "กรุงเทพมหานคร"),
            ("postcode", "10500"),
        ],
        HOUSE,
    ));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_residence_is_sent_back_once_then_approved() {
    for_each_backend(|db| async move {
        let (apps, _, _) = applications(&db).await;
        let me = "citizen-1";
        let app = apps.start(me, "residence-certificate", None).await.unwrap();
        assert_eq!(app.status, Status::Draft);
        assert!(
            app.tracking.starts_with("SP-") && app.tracking.len() == 14,
            "{}",
            app.tracking
        );
        // Someone else sees nothing.
        assert!(matches!(
            apps.of_applicant("citizen-2", &app.id).await.unwrap_err(),
            ApplicationError::NotFound(_)
        ));
        apps.record_verified(me, &app.id, person_and_house(), &[])
            .await
            .unwrap();
        // A verified value cannot be overwritten, nor an unknown field given.
        let refused = apps
            .save(
                me,
                &app.id,
                answers(json!({"firstName": "Mallory", "isAdmin": true})),
                None,
            )
            .await
            .unwrap_err();
        let ApplicationError::Answers(errors) = refused else {
            panic!("{refused:?}")
        };
        assert_eq!(errors.len(), 2);
        // A page is validated on its own, with the field's label.
        let refused = apps
            .save(
                me,
                &app.id,
                answers(json!({"purpose": "lottery"})),
                Some("purpose"),
            )
            .await
            .unwrap_err();
        let ApplicationError::Answers(errors) = refused else {
            panic!("{refused:?}")
        };
        assert_eq!(errors[0].message.en, "Choose Purpose from the list");
        apps.save(
            me,
            &app.id,
            answers(json!({"purpose": "bank"})),
            Some("purpose"),
        )
        .await
        .unwrap();
        let submitted = apps.submit(me, &app.id).await.unwrap();
        assert_eq!(submitted.status, Status::Submitted);
        assert!(matches!(
            apps.save(me, &app.id, answers(json!({"purpose": "school"})), None)
                .await
                .unwrap_err(),
            ApplicationError::Conflict(_)
        ));

        let tasks = apps.tasks(&app.id).await.unwrap();
        assert_eq!(tasks.len(), 1);
        let review = &tasks[0];
        assert_eq!(
            (review.agency.as_str(), review.role.as_str()),
            ("dopa", "reviewer")
        );
        // Another agency's reviewer, and a DOPA official without the role, may not act.
        for who in [
            official("dpt", Role::Reviewer),
            official("dopa", Role::Signer),
        ] {
            assert!(matches!(
                apps.complete(&who, &review.id, Decision::Approve { note: None })
                    .await
                    .unwrap_err(),
                ApplicationError::Forbidden(_)
            ));
        }
        assert!(apps
            .inbox(&official("dpt", Role::Reviewer))
            .await
            .unwrap()
            .is_empty());
        let reviewer = official("dopa", Role::Reviewer);
        assert_eq!(apps.inbox(&reviewer).await.unwrap().len(), 1);
        let back = apps
            .complete(
                &reviewer,
                &review.id,
                Decision::RequestMissing {
                    items: vec!["ระบุชื่อธนาคาร".into(), "ระบุสาขา".into()],
                },
            )
            .await
            .unwrap();
        assert_eq!(back.status, Status::SentBack);
        assert_eq!(back.missing.len(), 2);
        assert_eq!(
            apps.task(&review.id).await.unwrap().status,
            TaskStatus::Paused
        );
        assert!(apps.inbox(&reviewer).await.unwrap().is_empty());

        apps.save(
            me,
            &app.id,
            answers(json!({"purposeOther": "ธนาคารสาธิต สาขาบางรัก"})),
            None,
        )
        .await
        .unwrap();
        let again = apps.submit(me, &app.id).await.unwrap();
        assert_eq!(again.status, Status::Submitted);
        assert_eq!(
            apps.task(&review.id).await.unwrap().status,
            TaskStatus::Open
        );
        // Asked once already: the Act allows no second request.
        let refused = apps
            .complete(
                &reviewer,
                &review.id,
                Decision::RequestMissing {
                    items: vec!["อีกอย่าง".into()],
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(refused, ApplicationError::Conflict(_)),
            "{refused:?}"
        );
        apps.complete(&reviewer, &review.id, Decision::Approve { note: None })
            .await
            .unwrap();
        // The second stage is the approver's.
        let approve = apps
            .tasks(&app.id)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.status == TaskStatus::Open)
            .unwrap();
        assert_eq!(approve.role, "approver");
        assert!(matches!(
            apps.complete(&reviewer, &approve.id, Decision::Approve { note: None })
                .await
                .unwrap_err(),
            ApplicationError::Forbidden(_)
        ));
        let done = apps
            .complete(
                &official("dopa", Role::Approver),
                &approve.id,
                Decision::Approve { note: None },
            )
            .await
            .unwrap();
        assert_eq!(done.status, Status::Approved);
        assert!(done.decided_at.is_some());
        assert!(matches!(
            apps.complete(
                &official("dopa", Role::Approver),
                &approve.id,
                Decision::Approve { note: None }
            )
            .await
            .unwrap_err(),
            ApplicationError::Conflict(_)
        ));
        let kinds: Vec<String> = apps
            .timeline(&app.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                "started",
                "submitted",
                "sent-back",
                "submitted",
                "approved",
                "approved",
                "next-step",
                "next-step"
            ]
        );
        // The final step's hook: the payment (10 baht) and the e-licence wait for their
        // services.
        let follow = apps.followups_of(&app.id).await.unwrap();
        let mut kinds: Vec<(&str, &str)> = follow
            .iter()
            .map(|f| (f.kind.as_str(), f.state.as_str()))
            .collect();
        kinds.sort();
        assert_eq!(kinds, [("licence", "pending"), ("payment", "pending")]);
        let payment = follow.iter().find(|f| f.kind == "payment").unwrap();
        assert_eq!(payment.amount_satang, Some(1000));
        let queue = apps.pending_followups("payment", 10).await.unwrap();
        assert!(queue.iter().any(|f| f.application_id == app.id));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restaurant_bundle_is_signed_off_by_two_agencies_in_parallel() {
    for_each_backend(|db| async move {
        let (apps, catalogue, directory) = applications(&db).await;
        let owner = directory
            .create(
                "test",
                NewIdentity {
                    login: LoginId::NationalId("1101700230708".parse().unwrap()),
                    name: saphan_core::Text::new("เจ้าของร้าน", "Restaurant owner"),
                    ial: Ial::L2_3,
                    proofing: "test".into(),
                },
            )
            .await
            .unwrap();
        let me = owner.id.as_str();
        // A business service needs the company, and only one the applicant acts for.
        let needs = apps.start(me, "open-a-restaurant", None).await.unwrap_err();
        assert!(matches!(needs, ApplicationError::Invalid(_)), "{needs:?}");
        let company = "0105550123451";
        let stranger = apps
            .start(me, "open-a-restaurant", Some(company))
            .await
            .unwrap_err();
        assert!(
            matches!(stranger, ApplicationError::Forbidden(_)),
            "{stranger:?}"
        );
        directory
            .add_act_for(
                "test",
                me,
                &ActFor {
                    juristic_id: company.into(),
                    juristic_name: "บริษัท ครัวดี จำกัด".into(),
                    capacity: "director".into(),
                    source: "dbd:registry".into(),
                    valid_from: "2024-01-01T00:00:00.000000Z".into(),
                    valid_until: None,
                },
            )
            .await
            .unwrap();
        let app = apps
            .start(me, "open-a-restaurant", Some(company))
            .await
            .unwrap();
        assert_eq!(app.on_behalf_of.as_deref(), Some(company));
        assert_eq!(app.on_behalf_of_name.as_deref(), Some("บริษัท ครัวดี จำกัด"));
        // The DPT drops its review stage after this application started: the application keeps
        // the version it started under.
        let saphan_procedures::Document::Procedure(mut sign) = demo::documents()
            .into_iter()
            .find(|d| d.code() == "signboard-permit")
            .unwrap()
        else {
            unreachable!()
        };
        sign.workflow.stages.remove(0);
        catalogue
            .publish(
                &Subject::Operator,
                saphan_procedures::Document::Procedure(sign),
            )
            .await
            .unwrap();
        let mut values = person_and_house();
        values.extend(verified(
            &[
                ("companyId", "0105561012345"),
                ("companyName", "บริษัท สาธิต จำกัด"),
            ],
            "TH/GOV/DBD/REGISTRY/juristic-v1",
        ));
        apps.record_verified(me, &app.id, values, &[])
            .await
            .unwrap();
        // Incomplete: every missing field of both forms is listed at once, each once.
        let ApplicationError::Answers(errors) = apps.submit(me, &app.id).await.unwrap_err() else {
            panic!()
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "shopName",
            "premisesAddress",
            "areaSqm",
            "floorPlan",
            "phone",
            "signText",
            "mounting",
        ] {
            assert_eq!(
                fields.iter().filter(|x| **x == f).count(),
                1,
                "{f}: {fields:?}"
            );
        }
        // Uploads are judged by content; a document named in a form must be the applicant's.
        let html = apps.upload(me, "plan.pdf", b"<html>").await.unwrap_err();
        assert!(matches!(html, ApplicationError::Invalid(_)), "{html:?}");
        let plan = apps
            .upload(me, "plan.pdf", b"%PDF-1.4\n%%EOF\n")
            .await
            .unwrap();
        let someone_elses = apps
            .upload("someone-else", "plan.pdf", b"%PDF-1.4\n%%EOF\n")
            .await
            .unwrap();
        apps.save(
            me,
            &app.id,
            answers(json!({"floorPlan": someone_elses.id, "shopName": "ครัวสาธิต"})),
            None,
        )
        .await
        .unwrap();
        let Err(ApplicationError::Answers(problems)) = apps.submit(me, &app.id).await else {
            panic!("another person's upload was accepted");
        };
        assert!(problems.iter().any(|p| p.field == "floorPlan"));
        apps.save(
            me,
            &app.id,
            answers(json!({
                "shopName": "ครัวสาธิต", "premisesAddress": "99 ถนนสาธิต", "areaSqm": 250,
                "floorPlan": plan.id, "phone": "0812345678",
                "signText": "ครัวสาธิต", "widthM": 3, "heightM": 1, "mounting": "wall"
            })),
            None,
        )
        .await
        .unwrap();
        apps.submit(me, &app.id).await.unwrap();
        let mut open: Vec<(String, String)> = apps
            .tasks(&app.id)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.agency, t.role))
            .collect();
        open.sort();
        let both = |a: &str, b: &str| {
            vec![
                (a.to_string(), "reviewer".to_string()),
                (b.to_string(), "reviewer".to_string()),
            ]
        };
        assert_eq!(
            open,
            both("demo-city", "dpt"),
            "both agencies start at once"
        );
        for (agency, role) in [
            ("demo-city", Role::Reviewer),
            ("dpt", Role::Reviewer),
            ("demo-city", Role::Approver),
        ] {
            let who = official(agency, role);
            let task = apps.inbox(&who).await.unwrap().remove(0);
            let app = apps
                .complete(&who, &task.id, Decision::Approve { note: None })
                .await
                .unwrap();
            assert_eq!(app.status, Status::Submitted, "one procedure is still open");
        }
        let who = official("dpt", Role::Approver);
        let task = apps.inbox(&who).await.unwrap().remove(0);
        assert!(matches!(
            apps.complete(
                &who,
                &task.id,
                Decision::Reject {
                    reason: "  ".into()
                }
            )
            .await
            .unwrap_err(),
            ApplicationError::Invalid(_)
        ));
        let decided = apps
            .complete(
                &who,
                &task.id,
                Decision::Reject {
                    reason: "ป้ายบังทางเดินเท้า".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(decided.status, Status::PartlyApproved);
        assert_eq!(decided.decisions["food-business-permit"], "approved");
        assert_eq!(decided.decisions["signboard-permit"], "rejected");
        let last = apps.timeline(&app.id).await.unwrap().pop().unwrap();
        assert!(last.text.th.contains("ป้ายบังทางเดินเท้า"), "{}", last.text.th);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applicants_hear_at_least_every_seven_days_and_late_tasks_are_marked_once() {
    for_each_backend(|db| async move {
        let (apps, _, _) = applications(&db).await;
        let me = "citizen-7";
        let app = apps.start(me, "residence-certificate", None).await.unwrap();
        apps.record_verified(me, &app.id, person_and_house(), &[])
            .await
            .unwrap();
        apps.save(
            me,
            &app.id,
            answers(json!({"purpose": "bank", "email": "somchai@example.org"})),
            None,
        )
        .await
        .ok();
        apps.save(me, &app.id, answers(json!({"purpose": "bank"})), None)
            .await
            .unwrap();
        apps.submit(me, &app.id).await.unwrap();
        let received = apps.notices(me, 10).await.unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].kind, "submitted");
        assert!(received[0].text.en.starts_with(&app.tracking));
        // Nothing is due yet.
        assert_eq!(apps.sweep().await.unwrap(), Default::default());
        // Eight days pass without news, and the review is late.
        let long_ago = "2020-01-01T00:00:00.000000Z";
        saphan_store::sqlx::query(
            "UPDATE ap_applications SET last_notice_at = $1, submitted_at = $1 WHERE id = $2",
        )
        .bind(long_ago)
        .bind(&app.id)
        .execute(db.pool())
        .await
        .unwrap();
        saphan_store::sqlx::query("UPDATE ap_tasks SET due_at = $1 WHERE application_id = $2")
            .bind(long_ago)
            .bind(&app.id)
            .execute(db.pool())
            .await
            .unwrap();
        let swept = apps.sweep().await.unwrap();
        assert_eq!((swept.updates, swept.overdue), (1, 1));
        let notices = apps.notices(me, 10).await.unwrap();
        assert_eq!(notices[0].kind, "update");
        assert!(notices[0].text.en.contains("still being considered"));
        assert!(apps
            .timeline(&app.id)
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == "update"));
        // Once each: the next sweep finds nothing new.
        let again = apps.sweep().await.unwrap();
        assert_eq!((again.updates, again.overdue), (0, 0));
        apps.mark_notices_read(me).await.unwrap();
        assert!(apps.notices(me, 10).await.unwrap().iter().all(|n| n.read));
        // Nobody else's.
        assert!(apps.notices("citizen-8", 10).await.unwrap().is_empty());
    })
    .await;
}
