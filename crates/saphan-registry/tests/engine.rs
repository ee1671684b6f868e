//! The registry engine on both databases: definitions, schema validation, writes with history,
//! the GovStack operations' semantics, indexed search with cursors, field-level minimisation
//! (including through readValue, search and history) and the data-usage history.

use saphan_audit::AuditLog;
use saphan_core::config::{AuditConfig, IdentityConfig};
use saphan_identity::Directory;
use saphan_registry::{Caller, ListQuery, NewDefinition, Registries, RegistryError};
use saphan_store::Db;
use serde_json::{json, Map, Value};

use saphan_crypto::testing::shared_keys as keys;

async fn registries(db: &Db) -> Registries {
    let migrations: Vec<_> = [
        saphan_audit::MIGRATIONS,
        saphan_identity::MIGRATIONS,
        saphan_exchange::MIGRATIONS,
        saphan_registry::MIGRATIONS,
    ]
    .concat();
    db.migrate(&migrations).await.unwrap();
    let audit = AuditLog::start(db.clone(), keys(), &AuditConfig::default());
    let directory = Directory::new(db.clone(), audit.clone(), &IdentityConfig::default()).unwrap();
    Registries::new(db.clone(), audit, directory)
}

fn person_definition() -> NewDefinition {
    serde_json::from_value(json!({
        "name": "person", "version": "1.0", "service_code": "person-v1",
        "title_th": "ทะเบียนบุคคล", "title_en": "Persons",
        "schema": {
            "type": "object",
            "required": ["nationalId", "firstName", "lastName"],
            "additionalProperties": false,
            "properties": {
                "nationalId": {"type": "string", "pattern": "^[0-9]{13}$"},
                "firstName": {"type": "string"},
                "lastName": {"type": "string"},
                "birthDate": {"type": "string", "format": "date"},
                "houseId": {"type": "string"}
            }
        },
        "id_field": "nationalId",
        "personal": ["firstName", "lastName", "birthDate"],
        "indexed": ["lastName", "houseId"],
        "subject_field": "nationalId"
    }))
    .unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn names_only() -> Caller {
    Caller {
        consumer: "TH/GOV/DBD/REGISTRY".into(),
        user: None,
        reason: Some("test".into()),
        fields: Some(vec!["firstName".into(), "lastName".into()]),
    }
}

const A: &str = "1101700000001";
const B: &str = "1111111111119";
const C: &str = "1234567890121";

async fn seeded(db: &Db) -> (Registries, saphan_registry::Definition) {
    let regs = registries(db).await;
    let def = regs
        .define("GOV/DOPA/CIVREG", person_definition(), "operator")
        .await
        .unwrap();
    let platform = Caller::platform("seed");
    regs.create_many(
        &def,
        &platform,
        vec![
            json!({"nationalId": A, "firstName": "สมชาย", "lastName": "ใจดี", "birthDate": "1980-01-02", "houseId": "H1"}),
            json!({"nationalId": B, "firstName": "สมหญิง", "lastName": "ใจดี", "birthDate": "1982-03-04", "houseId": "H1"}),
            json!({"nationalId": C, "firstName": "วิภา", "lastName": "ศรีสุข", "birthDate": "1990-05-06", "houseId": "H2"}),
        ],
    )
    .await
    .unwrap();
    (regs, def)
}

#[tokio::test]
async fn definitions_are_checked_and_owned() {
    saphan_store::testing::for_each_backend(|db| async move {
        let regs = registries(&db).await;
        let mut bad = person_definition();
        bad.indexed = vec!["nope".into()];
        assert!(matches!(
            regs.define("GOV/DOPA/CIVREG", bad, "op").await,
            Err(RegistryError::Invalid(m)) if m.contains("nope")
        ));
        let mut bad = person_definition();
        bad.schema = json!({"type": "object", "properties": {"x": {"type": 5}}});
        assert!(regs.define("GOV/DOPA/CIVREG", bad, "op").await.is_err());
        let def = regs
            .define("GOV/DOPA/CIVREG", person_definition(), "op")
            .await
            .unwrap();
        assert_eq!(def.id, 1);
        // Another provider cannot take it over; its owner can change it.
        assert!(matches!(
            regs.define("GOV/DBD/REGISTRY", person_definition(), "op")
                .await,
            Err(RegistryError::Forbidden(_))
        ));
        let again = regs
            .define("GOV/DOPA/CIVREG", person_definition(), "op")
            .await
            .unwrap();
        assert_eq!(again.id, def.id);
        assert_eq!(
            regs.definitions(Some("GOV/DOPA/CIVREG"))
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(regs
            .definitions(Some("GOV/DBD/REGISTRY"))
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn records_are_validated_and_keep_their_history() {
    saphan_store::testing::for_each_backend(|db| async move {
        let (regs, def) = seeded(&db).await;
        let officer = Caller {
            consumer: "TH/GOV/DOPA/CIVREG".into(),
            user: Some("user:abc".into()),
            reason: Some("name change, request 12/2569".into()),
            fields: None,
        };
        // Schema violations name the field.
        let e = regs
            .create(
                &def,
                &officer,
                json!({"nationalId": "12", "firstName": "x", "lastName": "y"}),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, RegistryError::Invalid(m) if m.contains("/nationalId")),
            "{e}"
        );
        // Duplicates are refused, and nothing of the batch is written.
        let e = regs
            .create_many(
                &def,
                &officer,
                vec![
                    json!({"nationalId": "1234545678781", "firstName": "a", "lastName": "b"}),
                    json!({"nationalId": A, "firstName": "a", "lastName": "b"}),
                ],
            )
            .await
            .unwrap_err();
        assert!(matches!(e, RegistryError::Duplicate(_)), "{e}");
        assert!(!regs
            .exists(&def, &officer, &obj(json!({"nationalId": "1234545678781"})))
            .await
            .unwrap());
        // update: merge, validate, history.
        let changed = regs
            .update(
                &def,
                &officer,
                None,
                &obj(json!({"nationalId": A, "lastName": "รักไทย"})),
            )
            .await
            .unwrap();
        assert_eq!(changed["lastName"], "รักไทย");
        assert_eq!(changed["firstName"], "สมชาย");
        assert!(regs
            .update(
                &def,
                &officer,
                None,
                &obj(json!({"nationalId": A, "birthDate": 5}))
            )
            .await
            .is_err());
        let history = regs.history(&def, &officer, A).await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].operation, "create");
        assert_eq!(history[0].content.as_ref().unwrap()["lastName"], "ใจดี");
        assert_eq!(history[1].content.as_ref().unwrap()["lastName"], "รักไทย");
        assert_eq!(history[1].actor, "TH/GOV/DOPA/CIVREG");
        assert_eq!(
            history[1].reason.as_deref(),
            Some("name change, request 12/2569")
        );
        // The index follows the change.
        let by_name = |name: &str| ListQuery {
            equals: vec![("lastName".into(), name.into())],
            page_size: 10,
            ..ListQuery::default()
        };
        assert_eq!(
            regs.list(&def, &officer, &by_name("รักไทย"))
                .await
                .unwrap()
                .count,
            1
        );
        assert_eq!(
            regs.list(&def, &officer, &by_name("ใจดี"))
                .await
                .unwrap()
                .count,
            1
        );
        // updateEntries over an indexed field; updateOrCreate both ways.
        let n = regs
            .update_entries(
                &def,
                &officer,
                &obj(json!({"houseId": "H1"})),
                &obj(json!({"houseId": "H9"})),
            )
            .await
            .unwrap();
        assert_eq!(n, 2);
        let made = regs
            .update_or_create(
                &def,
                &officer,
                Some(&obj(json!({"nationalId": "1234545678781"}))),
                &obj(json!({"firstName": "ใหม่", "lastName": "มา"})),
            )
            .await
            .unwrap();
        assert!(made.created);
        let again = regs
            .update_or_create(
                &def,
                &officer,
                Some(&obj(json!({"nationalId": "1234545678781"}))),
                &obj(json!({"firstName": "เก่า"})),
            )
            .await
            .unwrap();
        assert!(!again.created);
        assert_eq!(again.record["lastName"], "มา");
        // delete keeps the history and the content as it was.
        regs.delete(&def, &officer, C).await.unwrap();
        assert!(matches!(
            regs.delete(&def, &officer, C).await,
            Err(RegistryError::NotFound(_))
        ));
        let history = regs.history(&def, &officer, C).await.unwrap();
        assert_eq!(history.last().unwrap().operation, "delete");
        assert_eq!(history[0].content.as_ref().unwrap()["firstName"], "วิภา");
        // A deleted id can be created again; its history goes on.
        regs.create(
            &def,
            &officer,
            json!({"nationalId": C, "firstName": "วิภา", "lastName": "กลับมา"}),
        )
        .await
        .unwrap();
        let history = regs.history(&def, &officer, C).await.unwrap();
        let operations: Vec<&str> = history.iter().map(|h| h.operation.as_str()).collect();
        assert_eq!(operations, ["create", "delete", "create"]);
        assert_eq!(history[2].content.as_ref().unwrap()["lastName"], "กลับมา");
        // Indexed fields cannot change under stored records.
        let mut more_indexed = person_definition();
        more_indexed.indexed.push("firstName".into());
        assert!(matches!(
            regs.define("GOV/DOPA/CIVREG", more_indexed, "op").await,
            Err(RegistryError::Invalid(m)) if m.contains("cannot change")
        ));
        let mut other_code = person_definition();
        other_code.service_code = "person-v9".into();
        assert!(regs
            .define("GOV/DOPA/CIVREG", other_code, "op")
            .await
            .is_err());
        // Retiring refuses while records remain.
        assert!(regs.retire(&def, "op").await.is_err());
    })
    .await;
}

#[tokio::test]
async fn a_names_only_right_never_yields_the_birth_date() {
    saphan_store::testing::for_each_backend(|db| async move {
        let (regs, def) = seeded(&db).await;
        let caller = names_only();
        let read = regs
            .read(&def, &caller, &obj(json!({"nationalId": A})))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            read,
            json!({"nationalId": A, "firstName": "สมชาย", "lastName": "ใจดี"})
        );
        // readValue, questions about the field, search, filter and history.
        assert!(matches!(
            regs.read_value(&def, &caller, A, "birthDate").await,
            Err(RegistryError::Forbidden(_))
        ));
        assert_eq!(
            regs.read_value(&def, &caller, A, "firstName")
                .await
                .unwrap(),
            json!("สมชาย")
        );
        assert!(matches!(
            regs.exists(
                &def,
                &caller,
                &obj(json!({"nationalId": A, "birthDate": "1980-01-02"}))
            )
            .await,
            Err(RegistryError::Forbidden(_))
        ));
        assert!(matches!(
            regs.read(&def, &caller, &obj(json!({"houseId": "H1"})))
                .await,
            Err(RegistryError::Forbidden(_))
        ));
        let page = regs
            .list(
                &def,
                &caller,
                &ListQuery {
                    search: Some("ใจ".into()),
                    page_size: 10,
                    ..ListQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.count, 2);
        for r in &page.results {
            assert!(
                r.get("birthDate").is_none() && r.get("houseId").is_none(),
                "{r}"
            );
        }
        assert!(matches!(
            regs.list(
                &def,
                &caller,
                &ListQuery {
                    search: Some("H".into()),
                    filter: Some("houseId".into()),
                    page_size: 10,
                    ..ListQuery::default()
                }
            )
            .await,
            Err(RegistryError::Forbidden(_))
        ));
        for entry in regs.history(&def, &caller, A).await.unwrap() {
            let c = entry.content.unwrap();
            assert!(c.get("birthDate").is_none(), "{c}");
        }
        // A rejected write tells a field-limited caller where, never the value.
        let e = regs
            .update(&def, &caller, None, &obj(json!({"nationalId": A, "firstName": 12345})))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, RegistryError::Invalid(m) if m.contains("/firstName") && !m.contains("12345")),
            "{e}"
        );
        // Writes outside the released fields are refused too.
        assert!(matches!(
            regs.update(
                &def,
                &caller,
                None,
                &obj(json!({"nationalId": A, "birthDate": "2000-01-01"}))
            )
            .await,
            Err(RegistryError::Forbidden(_))
        ));
        assert!(matches!(
            regs.delete(&def, &caller, A).await,
            Err(RegistryError::Forbidden(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn pages_follow_stable_cursors_and_reads_show_in_usage() {
    saphan_store::testing::for_each_backend(|db| async move {
        let (regs, def) = seeded(&db).await;
        let platform = Caller::platform("seed");
        let more: Vec<Value> = (0..25)
            .map(|i| {
                let nid = saphan_core::NationalId::from_parts(1, i + 1000).unwrap();
                json!({"nationalId": nid.digits(), "firstName": format!("n{i}"), "lastName": "เพิ่ม", "houseId": "H3"})
            })
            .collect();
        regs.create_many(&def, &platform, more).await.unwrap();
        let reader = Caller {
            consumer: "TH/GOV/DBD/REGISTRY".into(),
            user: Some("user:x".into()),
            reason: Some("company registration".into()),
            fields: None,
        };
        let mut q = ListQuery {
            equals: vec![("houseId".into(), "H3".into())],
            page_size: 10,
            ..ListQuery::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = regs.list(&def, &reader, &q).await.unwrap();
            assert_eq!(page.count, 25);
            seen.extend(page.results.iter().map(|r| r["nationalId"].as_str().unwrap().to_string()));
            // A record added between pages does not shift the next page.
            if seen.len() == 10 {
                regs.create(
                    &def,
                    &platform,
                    json!({"nationalId": "1000000000009", "firstName": "x", "lastName": "y", "houseId": "H0"}),
                )
                .await
                .unwrap();
            }
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, seen);
        assert_eq!(seen.len(), 25);
        assert!(matches!(
            regs.list(&def, &reader, &ListQuery { cursor: Some("!!".into()), page_size: 5, ..ListQuery::default() }).await,
            Err(RegistryError::Invalid(_))
        ));
        // Indexed fields only.
        assert!(matches!(
            regs.list(&def, &reader, &ListQuery { equals: vec![("firstName".into(), "x".into())], page_size: 5, ..ListQuery::default() }).await,
            Err(RegistryError::Invalid(_))
        ));
        // Reads of A's record show in A's usage, with who and why; B's stays empty.
        regs.read(&def, &reader, &obj(json!({"nationalId": A}))).await.unwrap();
        regs.read_value(&def, &reader, A, "lastName").await.unwrap();
        let usage = regs.personal_data_usage(A, 50).await.unwrap();
        assert_eq!(usage.len(), 2, "{usage:?}");
        assert_eq!(usage[0].reader, "TH/GOV/DBD/REGISTRY");
        assert_eq!(usage[0].registry, "person/1.0");
        assert_eq!(usage[0].reason.as_deref(), Some("company registration"));
        assert!(regs.personal_data_usage(B, 50).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn hashed_fields_are_matched_but_never_stored_or_returned_in_clear() {
    saphan_store::testing::for_each_backend(|db| async move {
        let regs = registries(&db).await;
        let mut spec = person_definition();
        spec.name = "card".into();
        spec.service_code = "card-v1".into();
        spec.schema["properties"]["laserCode"] =
            json!({"type": "string", "pattern": "^[A-Z]{2}[0-9]{10}$"});
        spec.hashed = vec!["laserCode".into()];
        // A hashed field cannot be indexed.
        let mut bad = spec.clone();
        bad.indexed.push("laserCode".into());
        assert!(regs.define("GOV/DOPA/CIVREG", bad, "op").await.is_err());
        let def = regs.define("GOV/DOPA/CIVREG", spec, "op").await.unwrap();
        let caller = Caller::platform("test");
        // The clear value is checked against the schema.
        assert!(regs
            .create(&def, &caller, json!({"nationalId": A, "firstName": "ก", "lastName": "ข", "laserCode": "bad"}))
            .await
            .is_err());
        let created = regs
            .create(&def, &caller, json!({"nationalId": A, "firstName": "ก", "lastName": "ข", "laserCode": "JT1234567890"}))
            .await
            .unwrap();
        assert_ne!(created["laserCode"], "JT1234567890");
        let stored: String = saphan_store::sqlx::query_scalar("SELECT content FROM rg_records")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert!(!stored.contains("JT1234567890"), "{stored}");
        let ask = |code: &str| obj(json!({"nationalId": A, "firstName": "ก", "laserCode": code}));
        assert!(regs.exists(&def, &caller, &ask("JT1234567890")).await.unwrap());
        assert!(!regs.exists(&def, &caller, &ask("JT1234567891")).await.unwrap());
        let read = regs.read(&def, &caller, &ask("JT1234567890")).await.unwrap().unwrap();
        assert!(read.get("laserCode").is_none(), "{read}");
        assert!(matches!(
            regs.read_value(&def, &caller, A, "laserCode").await,
            Err(RegistryError::Forbidden(_))
        ));
        // A new card: the new code matches, the old one no longer; the history shows neither.
        regs.update(&def, &caller, None, &obj(json!({"nationalId": A, "laserCode": "AB0000000001"})))
            .await
            .unwrap();
        assert!(regs.exists(&def, &caller, &ask("AB0000000001")).await.unwrap());
        assert!(!regs.exists(&def, &caller, &ask("JT1234567890")).await.unwrap());
        for entry in regs.history(&def, &caller, A).await.unwrap() {
            assert!(entry.content.unwrap().get("laserCode").is_none());
        }
    })
    .await;
}

#[tokio::test]
async fn imports_can_be_repeated_and_resumed() {
    saphan_store::testing::for_each_backend(|db| async move {
        let (regs, def) = seeded(&db).await;
        let platform = Caller::platform("bulk load");
        let batch = |from: u64, to: u64| -> Vec<Value> {
            (from..to)
                .map(|i| {
                    let nid = saphan_core::NationalId::from_parts(2, i).unwrap();
                    json!({"nationalId": nid.digits(), "firstName": "ก", "lastName": "ข", "houseId": "H5"})
                })
                .collect()
        };
        assert_eq!(regs.import(&def, &platform, batch(0, 40)).await.unwrap(), 40);
        // Cut off after 40: the rerun adds only what is missing, with A already there too.
        let mut again = batch(0, 70);
        again.push(json!({"nationalId": A, "firstName": "x", "lastName": "y"}));
        assert_eq!(regs.import(&def, &platform, again).await.unwrap(), 30);
        let page = regs
            .list(
                &def,
                &platform,
                &ListQuery {
                    equals: vec![("houseId".into(), "H5".into())],
                    page_size: 5,
                    ..ListQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.count, 70);
        // The existing record was left as it was, and each record has one creation.
        let a = regs.read(&def, &platform, &obj(json!({"nationalId": A}))).await.unwrap().unwrap();
        assert_eq!(a["firstName"], "สมชาย");
        let first = saphan_core::NationalId::from_parts(2, 0).unwrap().digits();
        assert_eq!(regs.history(&def, &platform, &first).await.unwrap().len(), 1);
    })
    .await;
}
