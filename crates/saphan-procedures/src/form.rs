//! E-forms: a JSON Schema (draft 2020-12) says what valid answers are; a UI schema says how to
//! ask for them (one topic per page, labels and hints in Thai and English, which answers come
//! from a registry and which are uploads). The server validates every answer and explains each
//! problem by the field's label, in both languages.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, OnceLock};

use jsonschema::error::ValidationErrorKind;
use saphan_core::Text;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::{check_count, check_text, invalid, Requirement, Source};
use crate::ProcedureError;

/// The custom format for a Thai national id (13 digits and a valid check digit).
pub const NATIONAL_ID_FORMAT: &str = "th-national-id";

/// How a field is asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Widget {
    #[default]
    Text,
    Textarea,
    Number,
    Date,
    Email,
    Tel,
    Select,
    Radio,
    Checkbox,
    NationalId,
    Upload,
}

/// A choice of a select or radio field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub value: String,
    pub label: Text,
}

/// Where a field's answer comes from when the applicant does not type it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FieldSource {
    /// Read from a registry requirement's record (RFC 6901 pointer into it); shown as verified
    /// and not editable by the applicant.
    Registry {
        requirement: String,
        pointer: String,
    },
    /// The id of a document uploaded for an upload requirement.
    Upload { requirement: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldUi {
    pub label: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<Text>,
    #[serde(default)]
    pub widget: Widget,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FieldSource>,
}

/// One topic per page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub key: String,
    pub title: Text,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiSchema {
    pub pages: Vec<Page>,
    pub fields: BTreeMap<String, FieldUi>,
}

/// A form: the schema of the answers and how to ask for them.
#[derive(Serialize, Deserialize)]
pub struct Form {
    pub schema: Value,
    pub ui: UiSchema,
    #[serde(skip)]
    compiled: OnceLock<Arc<jsonschema::Validator>>,
}

impl Clone for Form {
    fn clone(&self) -> Form {
        Form {
            schema: self.schema.clone(),
            ui: self.ui.clone(),
            compiled: self.compiled.clone(),
        }
    }
}

impl PartialEq for Form {
    fn eq(&self, other: &Form) -> bool {
        self.schema == other.schema && self.ui == other.ui
    }
}

impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Form")
            .field("schema", &self.schema)
            .field("ui", &self.ui)
            .finish()
    }
}

/// One problem with one field's answer, explained by the field's label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// The top-level field (empty for the form as a whole).
    pub field: String,
    pub message: Text,
}

fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .should_validate_formats(true)
        .with_format(NATIONAL_ID_FORMAT, |s: &str| {
            s.parse::<saphan_core::NationalId>().is_ok()
        })
        .build(schema)
        .map_err(|e| e.to_string())
}

impl Form {
    pub fn new(schema: Value, ui: UiSchema) -> Form {
        Form {
            schema,
            ui,
            compiled: OnceLock::new(),
        }
    }

    fn validator(&self) -> Result<Arc<jsonschema::Validator>, ProcedureError> {
        if let Some(v) = self.compiled.get() {
            return Ok(v.clone());
        }
        let v = Arc::new(compile(&self.schema).map_err(|e| {
            invalid(
                "form.schema",
                &format!("JSON Schema ไม่ถูกต้อง: {e}"),
                &format!("not a valid JSON Schema: {e}"),
            )
        })?);
        Ok(self.compiled.get_or_init(|| v).clone())
    }

    /// The schema's top-level properties, in the schema's order.
    pub fn properties(&self) -> Vec<&str> {
        self.schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    pub fn required(&self) -> BTreeSet<&str> {
        self.schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    pub fn label(&self, field: &str) -> Text {
        self.ui
            .fields
            .get(field)
            .map(|f| f.label.clone())
            .unwrap_or_else(|| Text::owned(field.to_string(), field.to_string()))
    }

    /// The fields the applicant fills with an uploaded document's id, with their requirement.
    pub fn upload_fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.ui
            .fields
            .iter()
            .filter_map(|(name, f)| match &f.source {
                Some(FieldSource::Upload { requirement }) => {
                    Some((name.as_str(), requirement.as_str()))
                }
                _ => None,
            })
    }

    /// Fields whose answers come from a registry (verified; the applicant cannot edit them).
    pub fn verified_fields(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.ui
            .fields
            .iter()
            .filter_map(|(name, f)| match &f.source {
                Some(FieldSource::Registry {
                    requirement,
                    pointer,
                }) => Some((name.as_str(), requirement.as_str(), pointer.as_str())),
                _ => None,
            })
    }

    pub fn page(&self, key: &str) -> Option<&Page> {
        self.ui.pages.iter().find(|p| p.key == key)
    }

    /// The form is consistent: the schema compiles and describes an object; every property is
    /// on exactly one page and has a label; sources name requirements of the right kind.
    pub(crate) fn check(&self, requirements: &[Requirement]) -> Result<(), ProcedureError> {
        if self.schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(invalid(
                "form.schema.type",
                "แบบฟอร์มต้องเป็น object",
                "a form's schema describes an object",
            ));
        }
        if self.schema.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Err(invalid(
                "form.schema.additionalProperties",
                "แบบฟอร์มต้องกำหนด additionalProperties เป็น false เพื่อไม่รับข้อมูลที่ไม่ได้ถาม",
                "a form's schema sets additionalProperties to false, so that nothing unasked is kept",
            ));
        }
        self.validator()?;
        let properties: BTreeSet<&str> = self.properties().into_iter().collect();
        if properties.len() > 2 * crate::document::MAX_LIST {
            return Err(invalid(
                "form.schema.properties",
                "แบบฟอร์มมีช่องได้ไม่เกิน 200 ช่อง",
                "a form has at most 200 fields",
            ));
        }
        check_count("form.ui.pages", self.ui.pages.len())?;
        if properties.is_empty() {
            return Err(invalid(
                "form.schema.properties",
                "แบบฟอร์มต้องมีช่องอย่างน้อยหนึ่งช่อง",
                "a form has at least one field",
            ));
        }
        for required in self.required() {
            if !properties.contains(required) {
                return Err(invalid(
                    "form.schema.required",
                    &format!("ช่อง {required} ไม่มีในแบบฟอร์ม"),
                    &format!("required field {required} is not a property"),
                ));
            }
        }
        let mut placed = BTreeSet::new();
        let mut page_keys = BTreeSet::new();
        if self.ui.pages.is_empty() {
            return Err(invalid(
                "form.ui.pages",
                "แบบฟอร์มต้องมีอย่างน้อยหนึ่งหน้า",
                "a form has at least one page",
            ));
        }
        for (i, page) in self.ui.pages.iter().enumerate() {
            check_text(&format!("form.ui.pages[{i}].title"), &page.title, 200)?;
            check_count(&format!("form.ui.pages[{i}].fields"), page.fields.len())?;
            let key_ok = !page.key.is_empty()
                && page.key.len() <= 64
                && page
                    .key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !page_keys.insert(page.key.as_str()) || !key_ok {
                return Err(invalid(
                    &format!("form.ui.pages[{i}].key"),
                    "ชื่อหน้าต้องไม่ซ้ำ ใช้อักษรอังกฤษตัวเล็ก ตัวเลข และ - ไม่เกิน 64 ตัว",
                    "page keys are unique: lowercase letters, digits and -, at most 64",
                ));
            }
            if page.fields.is_empty() {
                return Err(invalid(
                    &format!("form.ui.pages[{i}].fields"),
                    "หน้าต้องมีอย่างน้อยหนึ่งช่อง",
                    "a page asks at least one question",
                ));
            }
            for field in &page.fields {
                if !properties.contains(field.as_str()) {
                    return Err(invalid(
                        &format!("form.ui.pages[{i}].fields"),
                        &format!("ช่อง {field} ไม่มีใน schema"),
                        &format!("field {field} is not a property of the schema"),
                    ));
                }
                if !placed.insert(field.as_str()) {
                    return Err(invalid(
                        &format!("form.ui.pages[{i}].fields"),
                        &format!("ช่อง {field} อยู่มากกว่าหนึ่งหน้า"),
                        &format!("field {field} is on more than one page"),
                    ));
                }
            }
        }
        if let Some(missing) = properties.iter().find(|p| !placed.contains(*p)) {
            return Err(invalid(
                "form.ui.pages",
                &format!("ช่อง {missing} ไม่อยู่ในหน้าใด"),
                &format!("field {missing} is on no page"),
            ));
        }
        for (name, field) in &self.ui.fields {
            let at = format!("form.ui.fields.{name}");
            if !properties.contains(name.as_str()) {
                return Err(invalid(
                    &at,
                    "ช่องนี้ไม่มีใน schema",
                    "this field is not a property of the schema",
                ));
            }
            check_text(&format!("{at}.label"), &field.label, 200)?;
            if let Some(hint) = &field.hint {
                check_text(&format!("{at}.hint"), hint, 500)?;
            }
            check_count(&format!("{at}.choices"), field.choices.len())?;
            for (j, choice) in field.choices.iter().enumerate() {
                check_text(&format!("{at}.choices[{j}].label"), &choice.label, 200)?;
            }
            if matches!(field.widget, Widget::Select | Widget::Radio) && field.choices.is_empty() {
                return Err(invalid(
                    &format!("{at}.choices"),
                    "ช่องแบบเลือกต้องมีตัวเลือก",
                    "a select or radio field lists its choices",
                ));
            }
            let requirement = |key: &str| requirements.iter().find(|r| r.key == key);
            match &field.source {
                Some(FieldSource::Registry {
                    requirement: key,
                    pointer,
                }) => {
                    let Some(Requirement {
                        source: Source::Registry { fields, .. },
                        ..
                    }) = requirement(key)
                    else {
                        return Err(invalid(
                            &format!("{at}.source"),
                            &format!("{key} ไม่ใช่ข้อมูลจากทะเบียนในรายการที่ต้องใช้"),
                            &format!("{key} is not a registry requirement"),
                        ));
                    };
                    let first = pointer
                        .strip_prefix('/')
                        .and_then(|p| p.split('/').next())
                        .unwrap_or_default();
                    if !fields.iter().any(|f| f == first) {
                        return Err(invalid(
                            &format!("{at}.source.pointer"),
                            &format!("{pointer} ไม่อยู่ในข้อมูลที่ขอจาก {key}"),
                            &format!("{pointer} is not among the fields asked of {key}"),
                        ));
                    }
                }
                Some(FieldSource::Upload { requirement: key })
                    if field.widget != Widget::Upload
                        || !matches!(
                            requirement(key),
                            Some(Requirement {
                                source: Source::Upload { .. },
                                ..
                            })
                        ) =>
                {
                    return Err(invalid(
                        &format!("{at}.source"),
                        &format!("{key} ต้องเป็นเอกสารที่อัปโหลด และช่องต้องเป็นแบบอัปโหลด"),
                        &format!(
                            "{key} must be an upload requirement, asked with the upload widget"
                        ),
                    ));
                }
                Some(FieldSource::Upload { .. }) => {}
                None => {}
            }
        }
        if let Some(unlabelled) = properties
            .iter()
            .find(|p| !self.ui.fields.contains_key(**p))
        {
            return Err(invalid(
                "form.ui.fields",
                &format!("ช่อง {unlabelled} ไม่มีป้ายชื่อ"),
                &format!("field {unlabelled} has no label"),
            ));
        }
        Ok(())
    }

    /// Validates a whole application's answers. Errors come one per field, in page order.
    pub fn validate(&self, answers: &Value) -> Result<(), Vec<FieldError>> {
        self.validate_fields(answers, None)
    }

    /// Validates only the fields of one page (the others may still be unanswered).
    pub fn validate_page(&self, page: &str, answers: &Value) -> Result<(), Vec<FieldError>> {
        let fields: BTreeSet<&str> = self
            .page(page)
            .map(|p| p.fields.iter().map(String::as_str).collect())
            .unwrap_or_default();
        self.validate_fields(answers, Some(&fields))
    }

    fn validate_fields(
        &self,
        answers: &Value,
        only: Option<&BTreeSet<&str>>,
    ) -> Result<(), Vec<FieldError>> {
        let validator = match self.validator() {
            Ok(v) => v,
            Err(ProcedureError::Invalid { message, .. }) => {
                return Err(vec![FieldError {
                    field: String::new(),
                    message,
                }])
            }
            Err(_) => {
                return Err(vec![FieldError {
                    field: String::new(),
                    message: Text::new("แบบฟอร์มนี้ใช้ไม่ได้", "This form cannot be used"),
                }]);
            }
        };
        let mut by_field: BTreeMap<String, Text> = BTreeMap::new();
        for error in validator.iter_errors(answers) {
            let path = error.instance_path.to_string();
            let top = path
                .strip_prefix('/')
                .and_then(|p| p.split('/').next())
                .map(unescape_pointer);
            let field = match (&error.kind, top) {
                (ValidationErrorKind::Required { property }, None) => {
                    property.as_str().unwrap_or_default().to_string()
                }
                (_, Some(top)) => top,
                (_, None) => String::new(),
            };
            if let Some(only) = only {
                if !only.contains(field.as_str()) {
                    continue;
                }
            }
            if by_field.contains_key(&field) {
                continue;
            }
            let message = self.explain(&field, &error.kind, path.matches('/').count() > 1);
            by_field.insert(field, message);
        }
        if by_field.is_empty() {
            return Ok(());
        }
        let order: Vec<&str> = self
            .ui
            .pages
            .iter()
            .flat_map(|p| p.fields.iter().map(String::as_str))
            .collect();
        let mut errors: Vec<FieldError> = by_field
            .into_iter()
            .map(|(field, message)| FieldError { field, message })
            .collect();
        errors.sort_by_key(|e| {
            order
                .iter()
                .position(|f| *f == e.field)
                .unwrap_or(usize::MAX)
        });
        Err(errors)
    }

    fn explain(&self, field: &str, kind: &ValidationErrorKind, nested: bool) -> Text {
        let label = self.label(field);
        let (th, en) = (label.th.as_ref(), label.en.as_ref());
        let text = |t: String, e: String| Text::owned(t, e);
        if field.is_empty() {
            return match kind {
                ValidationErrorKind::AdditionalProperties { unexpected } => text(
                    format!("แบบฟอร์มไม่มีช่อง: {}", unexpected.join(", ")),
                    format!("the form has no field: {}", unexpected.join(", ")),
                ),
                ValidationErrorKind::Type { .. } => text(
                    "คำตอบต้องเป็น JSON object".into(),
                    "the answers must be a JSON object".into(),
                ),
                _ => text(
                    "คำตอบไม่ตรงกับแบบฟอร์ม".into(),
                    "the answers do not match the form".into(),
                ),
            };
        }
        if nested {
            return text(
                format!("{th}: ข้อมูลบางส่วนไม่ครบหรือไม่ถูกต้อง"),
                format!("{en}: part of it is missing or not valid"),
            );
        }
        match kind {
            ValidationErrorKind::Required { .. } => {
                text(format!("กรุณากรอก{th}"), format!("Enter {en}"))
            }
            ValidationErrorKind::MinLength { limit: 1 } => {
                text(format!("กรุณากรอก{th}"), format!("Enter {en}"))
            }
            ValidationErrorKind::MinLength { limit } => text(
                format!("{th}ต้องมีอย่างน้อย {limit} ตัวอักษร"),
                format!("{en} must be at least {limit} characters"),
            ),
            ValidationErrorKind::MaxLength { limit } => text(
                format!("{th}ต้องไม่เกิน {limit} ตัวอักษร"),
                format!("{en} must be {limit} characters or fewer"),
            ),
            ValidationErrorKind::Minimum { limit }
            | ValidationErrorKind::ExclusiveMinimum { limit } => text(
                format!("{th}ต้องไม่น้อยกว่า {limit}"),
                format!("{en} must be at least {limit}"),
            ),
            ValidationErrorKind::Maximum { limit }
            | ValidationErrorKind::ExclusiveMaximum { limit } => text(
                format!("{th}ต้องไม่เกิน {limit}"),
                format!("{en} must be at most {limit}"),
            ),
            ValidationErrorKind::Enum { .. } | ValidationErrorKind::Constant { .. } => text(
                format!("เลือก{th}จากรายการ"),
                format!("Choose {en} from the list"),
            ),
            ValidationErrorKind::Format { format } if format == NATIONAL_ID_FORMAT => text(
                format!("{th}ไม่ถูกต้อง: ต้องเป็นตัวเลข 13 หลักและหลักสุดท้ายต้องถูกต้อง"),
                format!("{en} is not a valid national id: 13 digits with a valid check digit"),
            ),
            ValidationErrorKind::Format { format } if format == "date" => text(
                format!("{th}ต้องเป็นวันที่ในรูปแบบ ปปปป-ดด-วว (ค.ศ.)"),
                format!("{en} must be a date as YYYY-MM-DD"),
            ),
            ValidationErrorKind::Format { format } if format == "email" => text(
                format!("{th}ต้องเป็นอีเมล เช่น name@example.com"),
                format!("{en} must be an e-mail address, like name@example.com"),
            ),
            ValidationErrorKind::Pattern { .. } | ValidationErrorKind::Format { .. } => text(
                format!("{th}ไม่อยู่ในรูปแบบที่กำหนด"),
                format!("{en} is not in the expected format"),
            ),
            ValidationErrorKind::Type { .. } => text(
                format!("{th}: ชนิดข้อมูลไม่ถูกต้อง"),
                format!("{en} is not the right kind of answer"),
            ),
            _ => text(format!("{th}ไม่ถูกต้อง"), format!("{en} is not valid")),
        }
    }
}

fn unescape_pointer(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}
