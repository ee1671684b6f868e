//! A registry's definition: its name and version, its JSON Schema and what the engine needs to
//! know about its fields.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::RegistryError;

/// What an agency submits to create or change a registry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDefinition {
    /// Lower-case letters, digits and `-`, e.g. `person`.
    pub name: String,
    /// Digits and dots, e.g. `1.0`.
    pub version: String,
    /// The exchange service code the registry is published as, e.g. `person-v1`.
    pub service_code: String,
    pub title_th: String,
    pub title_en: String,
    #[serde(default)]
    pub description: String,
    /// A JSON Schema (draft 2020-12) of one record: an object whose `properties` name every
    /// top-level field.
    pub schema: Value,
    /// The field that identifies a record (a string).
    pub id_field: String,
    /// Fields that are personal data (PDPA).
    #[serde(default)]
    pub personal: Vec<String>,
    /// Personal data of special categories, or data whose release needs a specific right.
    #[serde(default)]
    pub sensitive: Vec<String>,
    /// Fields searchable with `query.<field>` and `search` (strings, integers or booleans).
    #[serde(default)]
    pub indexed: Vec<String>,
    /// Fields kept only as a keyed hash (e.g. an ID card's laser code): written in clear,
    /// stored as `hmac:<hex>`, matched by hashing the question (`exists`, `read`), never
    /// returned. Optional string properties, neither the id nor indexed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashed: Vec<String>,
    /// The field holding the national id of the person a record is about, if any: reads of
    /// such records show in that person's data-usage history.
    #[serde(default)]
    pub subject_field: Option<String>,
}

/// A registry as stored, with its compiled schema.
#[derive(Debug, Clone)]
pub struct Definition {
    pub id: i64,
    /// The exchange subsystem (`CLASS/MEMBER/SUBSYSTEM`) that publishes it.
    pub provider: String,
    pub spec: NewDefinition,
    pub modified_at: String,
    pub modified_by: String,
    pub(crate) validator: Arc<jsonschema::Validator>,
}

impl Definition {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn version(&self) -> &str {
        &self.spec.version
    }

    /// `name/version`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.spec.name, self.spec.version)
    }

    /// The top-level fields of a record, in schema order.
    pub fn fields(&self) -> Vec<String> {
        top_level_fields(&self.spec.schema)
    }

    pub fn has_field(&self, field: &str) -> bool {
        self.spec
            .schema
            .get("properties")
            .and_then(|p| p.get(field))
            .is_some()
    }

    pub fn is_indexed(&self, field: &str) -> bool {
        self.spec.indexed.iter().any(|f| f == field) || field == self.spec.id_field
    }

    pub fn is_hashed(&self, field: &str) -> bool {
        self.spec.hashed.iter().any(|f| f == field)
    }

    /// Every problem with `record` against the schema, one line each (up to ten). Hashed
    /// fields already stored as hashes are not checked again (their clear value was). Only a
    /// caller who may see every field (`show_values`) is told the values at fault: the others
    /// learn where, not what.
    pub fn validate(&self, record: &Value, show_values: bool) -> Result<(), RegistryError> {
        let mut record = record.clone();
        if let Value::Object(map) = &mut record {
            map.retain(|k, v| {
                !(self.is_hashed(k) && v.as_str().is_some_and(|s| s.starts_with(HASH_PREFIX)))
            });
        }
        let problems: Vec<String> = self
            .validator
            .iter_errors(&record)
            .take(10)
            .map(|e| {
                let at = e.instance_path.to_string();
                match (at.is_empty(), show_values) {
                    (true, true) => e.to_string(),
                    (false, true) => format!("{at}: {e}"),
                    (true, false) => "the record as a whole".to_string(),
                    (false, false) => format!("{at} is not valid"),
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RegistryError::invalid(format!(
                "the record does not match the schema of {}: {}",
                self.key(),
                problems.join("; ")
            )))
        }
    }

    pub(crate) fn compile(
        id: i64,
        provider: String,
        spec: NewDefinition,
        modified_at: String,
        modified_by: String,
    ) -> Result<Definition, RegistryError> {
        let validator = jsonschema::validator_for(&spec.schema)
            .map_err(|e| RegistryError::invalid(format!("schema: {e}")))?;
        Ok(Definition {
            id,
            provider,
            spec,
            modified_at,
            modified_by,
            validator: Arc::new(validator),
        })
    }
}

/// How a hashed field's stored value starts.
pub(crate) const HASH_PREFIX: &str = "hmac:";

fn top_level_fields(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn is_name(text: &str, max: usize, extra: &[char]) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c))
}

/// Checks a definition before it is stored; the messages name the field.
pub(crate) fn check(spec: &NewDefinition) -> Result<(), RegistryError> {
    if !is_name(&spec.name, 40, &['-']) {
        return Err(RegistryError::invalid(
            "name: 1 to 40 lower-case letters, digits and -",
        ));
    }
    if !(spec.version.len() <= 20
        && spec
            .version
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
    {
        return Err(RegistryError::invalid("version: digits and dots, e.g. 1.0"));
    }
    if !is_name(&spec.service_code, 60, &['-', '.', '_']) {
        return Err(RegistryError::invalid(
            "service_code: 1 to 60 lower-case letters, digits, -, . and _",
        ));
    }
    for (field, value) in [("title_th", &spec.title_th), ("title_en", &spec.title_en)] {
        if value.trim().is_empty() || value.chars().count() > 200 {
            return Err(RegistryError::invalid(format!(
                "{field}: 1 to 200 characters"
            )));
        }
    }
    if spec.description.chars().count() > 2000 {
        return Err(RegistryError::invalid(
            "description: at most 2000 characters",
        ));
    }
    if spec.schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(RegistryError::invalid(
            "schema: a record must be an object (\"type\": \"object\")",
        ));
    }
    let fields = top_level_fields(&spec.schema);
    if fields.is_empty() {
        return Err(RegistryError::invalid(
            "schema: name the record's fields in \"properties\"",
        ));
    }
    if let Some(bad) = fields.iter().find(|f| {
        f.is_empty()
            || f.len() > 64
            || !f
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }) {
        return Err(RegistryError::invalid(format!(
            "schema: field `{bad}`: letters, digits, _ and - only (up to 64)"
        )));
    }
    let property = |f: &str| spec.schema["properties"].get(f);
    let id_type = property(&spec.id_field).and_then(|p| p.get("type"));
    if id_type.and_then(Value::as_str) != Some("string") {
        return Err(RegistryError::invalid(format!(
            "id_field: `{}` must be a string property of the schema",
            spec.id_field
        )));
    }
    for (list, fields_named) in [
        ("personal", &spec.personal),
        ("sensitive", &spec.sensitive),
        ("indexed", &spec.indexed),
    ] {
        if let Some(missing) = fields_named.iter().find(|f| property(f).is_none()) {
            return Err(RegistryError::invalid(format!(
                "{list}: `{missing}` is not a property of the schema"
            )));
        }
    }
    if let Some(bad) = spec.indexed.iter().find(|f| {
        !matches!(
            property(f)
                .and_then(|p| p.get("type"))
                .and_then(Value::as_str),
            Some("string" | "integer" | "boolean")
        )
    }) {
        return Err(RegistryError::invalid(format!(
            "indexed: `{bad}` must be a string, integer or boolean property"
        )));
    }
    let required: Vec<&str> = spec
        .schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(bad) = spec.hashed.iter().find(|f| {
        property(f)
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            != Some("string")
            || **f == spec.id_field
            || spec.indexed.contains(f)
            || required.contains(&f.as_str())
    }) {
        return Err(RegistryError::invalid(format!(
            "hashed: `{bad}` must be an optional string property, neither the id nor indexed"
        )));
    }
    if let Some(subject) = &spec.subject_field {
        if property(subject).is_none() {
            return Err(RegistryError::invalid(format!(
                "subject_field: `{subject}` is not a property of the schema"
            )));
        }
    }
    jsonschema::validator_for(&spec.schema)
        .map_err(|e| RegistryError::invalid(format!("schema: {e}")))?;
    Ok(())
}
