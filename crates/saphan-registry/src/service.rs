//! How a registry appears on the exchange: one service per registry, described in OpenAPI with
//! the GovStack Digital Registries operations at the registry's own paths (camelCase as
//! specified, and the older kebab-case ones), plus one `databases` service per provider
//! subsystem for the Database API.

use saphan_exchange::registry::ServiceSpec;
use saphan_identity::Subject;
use serde_json::{json, Value};

use crate::{Definition, NewDefinition, Registries, RegistryError};

/// The code of a provider subsystem's Database API service.
pub const DATABASES_SERVICE: &str = "databases";

/// `(method, path template, operationId)` of a registry's operations, relative to the service.
pub fn operations(def: &Definition) -> Vec<(&'static str, String, &'static str)> {
    let base = format!("/data/{}/{}", def.name(), def.version());
    vec![
        ("GET", base.clone(), "list"),
        ("POST", format!("{base}/create"), "create"),
        ("POST", format!("{base}/exists"), "exists"),
        ("POST", format!("{base}/read"), "read"),
        ("PUT", format!("{base}/update"), "update"),
        ("PUT", format!("{base}/updateEntries"), "updateEntries"),
        (
            "PUT",
            format!("{base}/update-entries"),
            "updateEntriesKebab",
        ),
        ("POST", format!("{base}/updateOrCreate"), "updateOrCreate"),
        (
            "POST",
            format!("{base}/update-or-create"),
            "updateOrCreateKebab",
        ),
        ("DELETE", format!("{base}/{{ID}}/delete"), "delete"),
        (
            "GET",
            format!("{base}/{{uuid}}/readValue/{{field}}.{{ext}}"),
            "readValue",
        ),
        (
            "GET",
            format!("{base}/{{uuid}}/read-value/{{field}}.{{ext}}"),
            "readValueKebab",
        ),
        ("GET", format!("{base}/{{uuid}}/history"), "history"),
        (
            "GET",
            "/data/myPersonalDataUsage".into(),
            "myPersonalDataUsage",
        ),
        // The spec's JSON edition spells it so.
        (
            "GET",
            "/data/mypersonalDataUsage".into(),
            "myPersonalDataUsageLower",
        ),
        (
            "GET",
            "/data/MyPersonalDataUsage/1.0".into(),
            "myPersonalDataUsageKebab",
        ),
    ]
}

/// The registry's OpenAPI 3.0 description: its operations, with the record schema.
pub fn openapi(def: &Definition) -> Value {
    let record = def.spec.schema.clone();
    let content = |schema: Value| json!({"application/json": {"schema": schema}});
    // A question names some fields (never all required ones); a new record may leave its id to
    // the registry.
    let mut question = json!({"type": "object", "properties": record.get("properties").cloned().unwrap_or(json!({}))});
    if let Some(p) = question["properties"].as_object_mut() {
        for hashed in &def.spec.hashed {
            // Asked in clear, stored hashed: any string.
            p.insert(hashed.clone(), json!({"type": "string"}));
        }
    }
    let mut new_record = record.clone();
    if let Some(required) = new_record.get_mut("required").and_then(Value::as_array_mut) {
        required.retain(|f| f.as_str() != Some(def.spec.id_field.as_str()));
    }
    let envelope = |key: &str| {
        let schema = if key == "write" { "NewRecord" } else { "Query" };
        json!({"type": "object", "required": [key], "properties": {
            key: {"type": "object", "required": ["content"], "properties": {"content": {"$ref": format!("#/components/schemas/{schema}")}}}
        }})
    };
    let query_write = json!({"type": "object", "required": ["write"], "properties": {
        "query": {"type": "object", "required": ["content"], "properties": {"content": {"type": "object"}}},
        "write": {"type": "object", "required": ["content"], "properties": {"content": {"type": "object"}}}
    }});
    let problem = json!({"description": "Refused (problem+json; X-Road-Error at the gateway)"});
    let mut paths = serde_json::Map::new();
    for (method, path, op) in operations(def) {
        let mut operation = json!({
            "operationId": op,
            "summary": op.trim_end_matches("Kebab").trim_end_matches("Lower"),
            "parameters": [{"name": "Information-Mediator-Client", "in": "header", "required": false, "schema": {"type": "string"}}],
            "responses": {"400": problem, "403": problem}
        });
        let responses = operation["responses"].as_object_mut().expect("object");
        match op.trim_end_matches("Kebab").trim_end_matches("Lower") {
            "list" => {
                responses.insert("200".into(), json!({"description": "A page of records", "content": content(json!({
                    "type": "object", "required": ["count", "results"],
                    "properties": {"count": {"type": "integer"}, "next": {"type": "string", "format": "uri"},
                        "previous": {"type": "string", "format": "uri"},
                        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}}}}))}));
            }
            "create" => {
                operation["requestBody"] =
                    json!({"required": true, "content": content(envelope("write"))});
                operation["responses"]["200"] = json!({"description": "Created", "content": content(json!({"type": "object", "properties": {"content": {"$ref": "#/components/schemas/Record"}}}))});
                operation["responses"]["409"] = problem.clone();
            }
            "exists" => {
                operation["requestBody"] =
                    json!({"required": true, "content": content(envelope("query"))});
                operation["responses"]["200"] = json!({"description": "Whether a record matches", "content": content(json!({"type": "object", "required": ["answer"], "properties": {"answer": {"type": "object", "required": ["status"], "properties": {"status": {"type": "boolean"}, "message": {"type": "string"}}}}}))});
            }
            "read" => {
                operation["requestBody"] =
                    json!({"required": true, "content": content(envelope("query"))});
                operation["responses"]["200"] = json!({"description": "The record (only the fields your right releases)", "content": content(json!({"type": "object", "properties": {"content": {"$ref": "#/components/schemas/Record"}}}))});
                operation["responses"]["404"] = json!({"description": "Record not found", "content": content(json!({"type": "object", "properties": {"detail": {"type": "string", "enum": ["no record found"]}}}))});
            }
            "update" | "updateEntries" | "updateOrCreate" => {
                operation["requestBody"] =
                    json!({"required": true, "content": content(query_write.clone())});
                operation["responses"]["200"] = json!({"description": "Changed"});
                operation["responses"]["404"] = problem.clone();
            }
            "delete" => {
                operation["parameters"].as_array_mut().expect("array").push(json!({"name": "ID", "in": "path", "required": true, "schema": {"type": "string"}}));
                operation["responses"]["204"] = json!({"description": "Deleted"});
                operation["responses"]["404"] = problem.clone();
            }
            "readValue" => {
                let params = operation["parameters"].as_array_mut().expect("array");
                for name in ["uuid", "field", "ext"] {
                    params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
                }
                operation["responses"]["200"] = json!({"description": "One field's value", "content": content(json!({"type": "object", "properties": {"value": {}}}))});
                operation["responses"]["404"] = problem.clone();
            }
            "history" => {
                operation["parameters"].as_array_mut().expect("array").push(json!({"name": "uuid", "in": "path", "required": true, "schema": {"type": "string"}}));
                operation["responses"]["200"] = json!({"description": "The record's changes: who, when, why (Saphan extension)", "content": content(json!({"type": "array", "items": {"type": "object"}}))});
                operation["responses"]["404"] = problem.clone();
            }
            _ => {
                let params = operation["parameters"].as_array_mut().expect("array");
                params.push(json!({"name": "userId", "in": "query", "required": true, "schema": {"type": "string"}}));
                params.push(json!({"name": "databaseId", "in": "query", "required": true, "schema": {"type": "string"}}));
                operation["responses"]["200"] = json!({"description": "Who read this person's data", "content": content(json!({"type": "array", "items": {"type": "object"}}))});
                operation["responses"]["404"] = problem.clone();
            }
        }
        paths
            .entry(path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object")
            .insert(method.to_ascii_lowercase(), operation);
    }
    json!({
        // 3.1: its schemas are JSON Schema 2020-12, as the registry's own.
        "openapi": "3.1.0",
        "info": {
            "title": format!("{} / {}", def.spec.title_th, def.spec.title_en),
            "version": def.version(),
            "description": format!("{}\n\nGovStack Digital Registries Data API for the registry {} (id field: {}). Callers receive only the fields their access right releases.", def.spec.description, def.key(), def.spec.id_field),
        },
        "paths": paths,
        "components": {"schemas": {"Record": record, "NewRecord": new_record, "Query": question}},
    })
}

/// The exchange service that publishes `def`, its backend at `backend_url`.
pub fn service_spec(def: &Definition, backend_url: &str) -> ServiceSpec {
    let personal = !def.spec.personal.is_empty();
    ServiceSpec {
        code: def.spec.service_code.clone(),
        title_th: def.spec.title_th.clone(),
        title_en: def.spec.title_en.clone(),
        backend_url: backend_url.to_string(),
        openapi: Some(openapi(def)),
        endpoints: vec![],
        classification: if personal { "confidential" } else { "internal" }.into(),
        personal_data: personal,
        consent_required: false,
        purposes: vec![],
        rate_limit_per_min: 0,
        timeout_secs: 10,
        log_bodies: false,
    }
}

/// The Database API service of a provider subsystem.
pub fn databases_spec(backend_url: &str) -> ServiceSpec {
    let param =
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}]);
    let openapi = json!({
        "openapi": "3.0.3",
        "info": {"title": "ฐานข้อมูลทะเบียน / Registry databases", "version": "1.1.0",
                 "description": "GovStack Digital Registries Database API: the registries this subsystem hosts."},
        "paths": {
            "/databases": {"get": {"operationId": "databases", "responses": {"200": {"description": "The registries"}}}},
            "/database/modify": {"post": {"operationId": "modify", "responses": {"200": {"description": "Created or changed"}}}},
            "/database/{id}": {
                "get": {"operationId": "database", "parameters": param, "responses": {"200": {"description": "One registry"}}},
                "delete": {"operationId": "deleteDatabase", "parameters": param, "responses": {"200": {"description": "Retired"}}}
            }
        }
    });
    ServiceSpec {
        code: DATABASES_SERVICE.into(),
        title_th: "ฐานข้อมูลทะเบียน".into(),
        title_en: "Registry databases".into(),
        backend_url: backend_url.to_string(),
        openapi: Some(openapi),
        endpoints: vec![],
        classification: "internal".into(),
        personal_data: false,
        consent_required: false,
        purposes: vec![],
        rate_limit_per_min: 0,
        timeout_secs: 10,
        log_bodies: false,
    }
}

/// Creates or changes a registry of `provider` and publishes it on the exchange (with the
/// provider's `databases` service), its backend at `backend_url`. The platform publishes on the
/// provider's behalf: whoever asked was let through by a right the provider granted.
pub async fn define_and_publish(
    registries: &Registries,
    exchange: &saphan_exchange::Registry,
    provider: &str,
    spec: NewDefinition,
    by: &str,
    backend_url: &str,
) -> Result<Definition, RegistryError> {
    let subsystem = exchange.parse_subsystem(provider)?;
    if exchange.subsystem(&subsystem).await?.is_none() {
        return Err(RegistryError::NotFound(format!("subsystem {provider}")));
    }
    // The service code must be this registry's own: never another service of the subsystem
    // (whose rights, consent and purposes would otherwise open the registry).
    let service_id = exchange.parse_service(&format!("{provider}/{}", spec.service_code))?;
    let existing = exchange.service(&service_id).await?;
    if let Some(service) = &existing {
        let ours = registries
            .published_as(provider, &spec.service_code)
            .await?
            .is_some_and(|d| d.spec.name == spec.name && d.spec.version == spec.version);
        if !ours || service.backend_url != backend_url {
            return Err(RegistryError::Duplicate(format!(
                "{service_id} is already a service of {provider}; choose another service_code"
            )));
        }
    }
    let def = registries.define(provider, spec, by).await?;
    let mut published = service_spec(&def, backend_url);
    if let Some(service) = existing {
        // What the provider's administrator set on the service since stays as they set it.
        published.consent_required = service.consent_required;
        published.purposes = service.purposes.clone();
        published.rate_limit_per_min = service.rate_limit_per_min;
        published.timeout_secs = service.timeout_secs;
        published.log_bodies = service.log_bodies;
        published.classification = service.classification.clone();
    }
    exchange
        .put_service(&Subject::Operator, &subsystem, &published)
        .await?;
    exchange
        .put_service(&Subject::Operator, &subsystem, &databases_spec(backend_url))
        .await?;
    Ok(def)
}

/// What a card check asks: the card's national id, Thai names, birth date and laser code.
#[derive(Debug, Clone)]
pub struct IdCard {
    pub national_id: String,
    pub first_name_th: String,
    pub last_name_th: String,
    pub birth_date: String,
    pub laser_code: String,
}

/// Asks a card-check service (a registry answering GovStack `exists`, such as the demo's
/// `idcard-v1`) through the exchange, as the platform's subsystem `as_subsystem`: whether a card
/// in force matches all of `card`.
pub async fn check_idcard(
    gateway: &saphan_exchange::gateway::Gateway,
    as_subsystem: &str,
    service: &str,
    card: &IdCard,
) -> Result<bool, RegistryError> {
    let exchange = gateway.registry();
    let subsystem = exchange.parse_subsystem(as_subsystem)?;
    let service_id = exchange.parse_service(service)?;
    let registry = format!("/data/{}/exists", IDCARD_REGISTRY);
    let body = json!({"query": {"content": {
        "nationalId": card.national_id,
        "firstNameTh": card.first_name_th,
        "lastNameTh": card.last_name_th,
        "birthDate": card.birth_date,
        "laserCode": card.laser_code,
        "status": "valid",
    }}});
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::HeaderName::from_static("saphan-purpose"),
        http::HeaderValue::from_static("identity-proofing"),
    );
    // Declared, so that the call shows in the person's own data-access history.
    if let Ok(subject) = http::HeaderValue::from_str(&format!("TH{}", card.national_id)) {
        headers.insert(
            http::HeaderName::from_static("saphan-data-subject"),
            subject,
        );
    }
    let (status, _, answer) = gateway
        .call_as_platform(
            &subsystem,
            http::Method::POST,
            service_id,
            &registry,
            headers,
            bytes::Bytes::from(body.to_string()),
        )
        .await
        .map_err(|e| RegistryError::invalid(format!("the card check failed: {}", e.message)))?;
    let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(RegistryError::invalid(format!(
            "the card check answered {status}: {}",
            answer["detail"]
                .as_str()
                .or(answer["message"].as_str())
                .unwrap_or("")
        )));
    }
    answer["answer"]["status"]
        .as_bool()
        .ok_or_else(|| RegistryError::invalid("the card check's answer has no answer.status"))
}

/// The card registry a card-check service answers for (`name/version`).
pub const IDCARD_REGISTRY: &str = "idcard/1.0";
