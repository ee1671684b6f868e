//! Who is asking, as the exchange vouched for them, and what they may see.

use serde_json::{Map, Value};

use crate::{Definition, RegistryError};

/// A caller of a registry: the consumer subsystem the gateway authenticated, from the signed
/// assertion the gateway put on the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `INSTANCE/CLASS/MEMBER/SUBSYSTEM`, or `platform` for the platform's own seeding.
    pub consumer: String,
    /// The end user, as a pseudonym (never an identifier in clear).
    pub user: Option<String>,
    /// Why: the call's `X-Road-Issue` or purpose.
    pub reason: Option<String>,
    /// The only top-level fields this caller may receive or write; `None`: every field.
    pub fields: Option<Vec<String>>,
}

impl Caller {
    /// The platform itself (seeding, the command line): every field.
    pub fn platform(reason: &str) -> Caller {
        Caller {
            consumer: "platform".into(),
            user: None,
            reason: Some(reason.into()),
            fields: None,
        }
    }

    /// Whether this caller may see `field` of a record of `def`. A record's id is always
    /// visible: the caller names it to ask.
    pub fn may_see(&self, def: &Definition, field: &str) -> bool {
        field == def.spec.id_field
            || self
                .fields
                .as_ref()
                .is_none_or(|only| only.iter().any(|f| f == field))
    }

    /// Refuses a question about a field the caller may not see: asking "is the birth date X?"
    /// would reveal it as surely as reading it.
    pub fn check_fields<'a>(
        &self,
        def: &Definition,
        fields: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), RegistryError> {
        for field in fields {
            if !def.has_field(field) {
                return Err(RegistryError::invalid(format!(
                    "`{field}` is not a field of {}",
                    def.key()
                )));
            }
            if !self.may_see(def, field) {
                return Err(RegistryError::Forbidden(format!(
                    "your right to {} does not release the field `{field}`",
                    def.key()
                )));
            }
        }
        Ok(())
    }

    /// The record as this caller may see it: only released top-level fields, and never a
    /// hashed one.
    pub fn minimise(&self, def: &Definition, record: Value) -> Value {
        match record {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(k, _)| self.may_see(def, k) && !def.is_hashed(k))
                    .collect::<Map<String, Value>>(),
            ),
            record => record,
        }
    }
}
