//! The catalogue on both databases: publishing with the editor's role, versions kept for
//! applications, bundles of published procedures, search, withdrawal; and the demo documents'
//! forms validating answers with field-level Thai and English messages.

use saphan_audit::AuditLog;
use saphan_core::config::{AuditConfig, IdentityConfig};
use saphan_crypto::testing::shared_keys;
use saphan_identity::{Agency, AgencyRole, Directory, Role, Subject};
use saphan_procedures::{demo, Audience, Catalogue, Document, Filter, ProcedureError, Sort};
use saphan_store::testing::for_each_backend;
use saphan_store::Db;
use serde_json::json;

async fn catalogue(db: &Db) -> Catalogue {
    let migrations: Vec<_> = [
        saphan_audit::MIGRATIONS,
        saphan_identity::MIGRATIONS,
        saphan_procedures::MIGRATIONS,
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
    Catalogue::new(db.clone(), audit, directory)
}

fn editor(agency: &str) -> Subject {
    Subject::Person {
        identity_id: format!("editor-{agency}"),
        roles: vec![AgencyRole {
            agency: agency.into(),
            role: Role::ProcedureEditor,
        }],
    }
}

fn doc(code: &str) -> Document {
    demo::documents()
        .into_iter()
        .find(|d| d.code() == code)
        .unwrap()
}

async fn publish_demo(c: &Catalogue) {
    for d in demo::documents() {
        c.publish(&Subject::Operator, d).await.unwrap();
    }
}

#[test]
fn the_demo_documents_pass_their_own_checks() {
    let docs = demo::documents();
    assert_eq!(docs.len(), 5);
    for d in &docs {
        d.check().unwrap_or_else(|e| panic!("{}: {e}", d.code()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_needs_the_procedure_editor_role_in_every_agency_involved() {
    for_each_backend(|db| async move {
        let c = catalogue(&db).await;
        let citizen = Subject::Person {
            identity_id: "c".into(),
            roles: vec![],
        };
        let food = doc("food-business-permit");
        for who in [
            citizen,
            editor("dopa"),
            Subject::Person {
                identity_id: "r".into(),
                roles: vec![AgencyRole {
                    agency: "demo-city".into(),
                    role: Role::Reviewer,
                }],
            },
        ] {
            let refused = c.publish(&who, food.clone()).await.unwrap_err();
            assert!(matches!(refused, ProcedureError::Forbidden(_)), "{refused}");
        }
        let (entry, new) = c.publish(&editor("demo-city"), food.clone()).await.unwrap();
        assert_eq!((entry.version, new), (1, true));
        // An editor of the city cannot give tasks to another agency's officials.
        let Document::Procedure(mut p) = food.clone() else {
            unreachable!()
        };
        p.workflow.stages[0].tasks[0].agency = "dopa".into();
        let refused = c
            .publish(&editor("demo-city"), Document::Procedure(p))
            .await
            .unwrap_err();
        assert!(matches!(refused, ProcedureError::Forbidden(_)), "{refused}");
        // An unknown agency is refused even to the operator.
        let Document::Procedure(mut p) = food else {
            unreachable!()
        };
        p.code = "elsewhere".into();
        p.agency = "nowhere".into();
        let refused = c
            .publish(&Subject::Operator, Document::Procedure(p))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, ProcedureError::Invalid { .. }),
            "{refused}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_kept_and_an_unchanged_document_publishes_nothing() {
    for_each_backend(|db| async move {
        let c = catalogue(&db).await;
        let (first, new) = c
            .publish(&editor("dopa"), doc("residence-certificate"))
            .await
            .unwrap();
        assert!(new, "first");
        let (again, new) = c
            .publish(&editor("dopa"), doc("residence-certificate"))
            .await
            .unwrap();
        assert!(!new, "again");
        assert_eq!((again.version, &again.eform_id), (1, &first.eform_id));
        let Document::Procedure(mut p) = doc("residence-certificate") else {
            unreachable!()
        };
        p.time_limit_days = 5;
        let (second, new) = c
            .publish(&editor("dopa"), Document::Procedure(p))
            .await
            .unwrap();
        assert!(new, "second");
        assert_eq!((second.id.as_str(), second.version), (first.id.as_str(), 2));
        assert_ne!(second.eform_id, first.eform_id);
        // The first version is still there, as applications made under it need.
        let old = c.version(&first.id, 1).await.unwrap();
        assert_eq!(old.document, doc("residence-certificate"));
        let (of_form, latest) = c.eform(&first.eform_id).await.unwrap();
        assert_eq!((of_form.version, latest), (1, false));
        let (_, latest) = c.eform(&second.eform_id).await.unwrap();
        assert!(latest);
        assert_eq!(c.versions(&first.id).await.unwrap().len(), 2);
        let snap = c.snapshot().await.unwrap();
        assert_eq!(snap.by_code("residence-certificate").unwrap().version, 2);
        // The owning agency and the kind cannot change.
        let Document::Procedure(mut p) = doc("residence-certificate") else {
            unreachable!()
        };
        p.agency = "demo-city".into();
        p.workflow.stages.iter_mut().for_each(|s| {
            s.tasks
                .iter_mut()
                .for_each(|t| t.agency = "demo-city".into())
        });
        let refused = c
            .publish(&Subject::Operator, Document::Procedure(p))
            .await
            .unwrap_err();
        assert!(matches!(refused, ProcedureError::Conflict(_)), "{refused}");
        assert!(matches!(
            c.version(&first.id, 9).await.unwrap_err(),
            ProcedureError::NotFound(_)
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_gather_published_procedures_and_hold_them_in_the_catalogue() {
    for_each_backend(|db| async move {
        let c = catalogue(&db).await;
        let refused = c
            .publish(&Subject::Operator, doc("open-a-restaurant"))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, ProcedureError::Invalid { .. }),
            "{refused}"
        );
        publish_demo(&c).await;
        // Gathering another agency's procedure needs a role there too: a bundle of the DGA's
        // own editor is refused, since the procedures belong to the city and the DPT.
        let Document::Bundle(mut other) = doc("open-a-restaurant") else {
            unreachable!()
        };
        other.code = "dga-bundle".into();
        let refused = c
            .publish(&editor("dga"), Document::Bundle(other))
            .await
            .unwrap_err();
        assert!(matches!(refused, ProcedureError::Forbidden(_)), "{refused}");
        let snap = c.snapshot().await.unwrap();
        let bundle = snap.by_code("open-a-restaurant").unwrap();
        let members: Vec<&str> = snap.members(bundle).iter().map(|m| m.code()).collect();
        assert_eq!(members, ["food-business-permit", "signboard-permit"]);
        // Fees add up; the procedures run side by side, so the longest time limit counts.
        assert_eq!(snap.fee_and_days(bundle), (200_000 + 50_000, 30));
        let refused = c
            .withdraw(&editor("dpt"), "signboard-permit")
            .await
            .unwrap_err();
        assert!(matches!(refused, ProcedureError::Conflict(_)), "{refused}");
        c.withdraw(&editor("imm"), "tm47-90-day-report")
            .await
            .unwrap();
        let tm47 = c
            .versions(&snap.by_code("tm47-90-day-report").unwrap().id)
            .await
            .unwrap();
        let (_, latest) = c.eform(&tm47[0].eform_id).await.unwrap();
        assert!(
            !latest,
            "a withdrawn procedure's form is no longer the latest"
        );
        let snap = c.snapshot().await.unwrap();
        assert!(snap.by_code("tm47-90-day-report").is_none());
        assert_eq!(snap.all().len(), 4);
        // Publishing it again brings it back as a new version.
        let (back, new) = c
            .publish(&editor("imm"), doc("tm47-90-day-report"))
            .await
            .unwrap();
        assert!(!new, "back");
        assert_eq!(
            back.version, 1,
            "an unchanged document comes back as it was"
        );
        assert!(c
            .snapshot()
            .await
            .unwrap()
            .by_code("tm47-90-day-report")
            .is_some());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_thai_and_english_words_and_filters_by_audience() {
    for_each_backend(|db| async move {
        let c = catalogue(&db).await;
        publish_demo(&c).await;
        let snap = c.snapshot().await.unwrap();
        let codes = |filter: Filter, sort: Sort| -> Vec<String> {
            snap.list(&filter, sort)
                .iter()
                .map(|e| e.code().to_string())
                .collect()
        };
        let q = |s: &str| Filter {
            query: Some(s.into()),
            ..Filter::default()
        };
        assert_eq!(
            codes(q("ร้านอาหาร"), Sort::Title),
            ["food-business-permit", "open-a-restaurant"]
        );
        assert_eq!(
            codes(q("90-DAY report"), Sort::Title),
            ["tm47-90-day-report"]
        );
        assert_eq!(
            codes(q("ป้าย"), Sort::Title),
            ["signboard-permit", "open-a-restaurant"]
        );
        assert!(codes(q("nothing like this"), Sort::Title).is_empty());
        let foreigners = codes(
            Filter {
                audience: Some(Audience::Foreigner),
                ..Filter::default()
            },
            Sort::Title,
        );
        assert_eq!(foreigners, ["tm47-90-day-report"]);
        let by_readiness = codes(Filter::default(), Sort::Readiness);
        assert_eq!(by_readiness.last().unwrap(), "open-a-restaurant");
        let scores: Vec<u32> = snap
            .list(&Filter::default(), Sort::Readiness)
            .iter()
            .filter_map(|e| e.readiness.as_ref().map(|r| r.score))
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
        // The food-shop permit asks for one upload (its floor plan) beside three registries.
        let food = snap.by_code("food-business-permit").unwrap();
        let readiness = food.readiness.as_ref().unwrap();
        assert_eq!(readiness.criteria[0].points, 35 * 3 / 4);
        assert!(readiness.score < 100);
    })
    .await;
}

#[test]
fn answers_are_validated_with_messages_by_the_fields_label_in_both_languages() {
    let Document::Procedure(food) = doc("food-business-permit") else {
        unreachable!()
    };
    let form = &food.form;
    let good = json!({
        "title": "นาย", "firstName": "สมชาย", "lastName": "ใจดี",
        "houseNo": "12/3", "subdistrict": "บางรัก", "district": "บางรัก", "province": "กรุงเทพมหานคร", "postcode": "10500",
        "companyId": "0105561012345", "companyName": "บริษัท สาธิต จำกัด",
        "shopName": "ครัวสาธิต", "premisesAddress": "99 ถนนสาธิต", "areaSqm": 250, "seats": 80,
        "floorPlan": "0b6f4a52-3a39-4d5e-9a53-1d1f1c2b3a4d", "phone": "0812345678"
    });
    form.validate(&good).unwrap();
    let mut bad = good.clone();
    let o = bad.as_object_mut().unwrap();
    o.remove("shopName");
    o.insert("areaSqm".into(), json!(150));
    o.insert("phone".into(), json!("12345"));
    o.insert("email".into(), json!("not an address"));
    let errors = form.validate(&bad).unwrap_err();
    let by: Vec<(&str, &str, &str)> = errors
        .iter()
        .map(|e| {
            (
                e.field.as_str(),
                e.message.th.as_ref(),
                e.message.en.as_ref(),
            )
        })
        .collect();
    assert_eq!(
        by,
        [
            ("shopName", "กรุณากรอกชื่อร้าน", "Enter Name of the restaurant"),
            (
                "areaSqm",
                "พื้นที่ (ตารางเมตร)ต้องไม่น้อยกว่า 201",
                "Area (square metres) must be at least 201"
            ),
            (
                "phone",
                "หมายเลขโทรศัพท์ไม่อยู่ในรูปแบบที่กำหนด",
                "Phone number is not in the expected format"
            ),
            (
                "email",
                "อีเมลต้องเป็นอีเมล เช่น name@example.com",
                "E-mail address must be an e-mail address, like name@example.com"
            ),
        ]
    );
    // A page is checked alone: the business page's problems, not the contact page's.
    let page = form.validate_page("business", &bad).unwrap_err();
    let fields: Vec<&str> = page.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["shopName", "areaSqm"]);
    form.validate_page("applicant", &bad).unwrap();
    // Unknown fields and answers that are not an object are refused, not ignored.
    let mut extra = good.clone();
    extra["isAdmin"] = json!(true);
    assert_eq!(form.validate(&extra).unwrap_err()[0].field, "");
    assert!(form.validate(&json!([1, 2])).is_err());
    // Registry fields are marked verified.
    let verified: Vec<&str> = form.verified_fields().map(|(f, _, _)| f).collect();
    assert!(verified.contains(&"companyName") && !verified.contains(&"shopName"));
}

#[test]
fn inconsistent_documents_are_refused_with_the_field_named() {
    type Change = Box<dyn Fn(&mut saphan_procedures::ProcedureDoc)>;
    let cases: Vec<(&str, Change)> = vec![
        ("time_limit_days", Box::new(|p| p.time_limit_days = 2)),
        ("title.en", Box::new(|p| p.title.en = " ".into())),
        (
            "form.ui.pages",
            Box::new(|p| p.form.ui.pages.pop().map(|_| ()).unwrap()),
        ),
        (
            "workflow",
            Box::new(|p| p.workflow.stages.pop().map(|_| ()).unwrap()),
        ),
        (
            "requirements",
            Box::new(|p| {
                let again = p.requirements[0].clone();
                p.requirements.push(again)
            }),
        ),
        ("code", Box::new(|p| p.code = "Food Permit".into())),
    ];
    for (field, change) in cases {
        let Document::Procedure(mut p) = doc("food-business-permit") else {
            unreachable!()
        };
        change(&mut p);
        let checked = Document::Procedure(p).check();
        match checked {
            Err(ProcedureError::Invalid {
                field: named,
                message,
            }) => {
                assert!(
                    named.starts_with(field),
                    "{field}: named {named}: {}",
                    message.en
                );
                assert!(!message.th.is_empty() && !message.en.is_empty());
            }
            other => panic!("{field}: {other:?}"),
        }
    }
}
