//! A procedure's citizen's manual (คู่มือสำหรับประชาชน, as the Licensing Facilitation Act
//! B.E. 2558 requires), its e-form and its workflow: one JSON document per version. Bundles
//! gather procedures of several agencies into one application.

use std::collections::BTreeSet;

use saphan_core::Text;
use serde::{Deserialize, Serialize};

use crate::form::Form;
use crate::ProcedureError;

/// Who a procedure serves; the portal lists procedures by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Audience {
    Citizen,
    Business,
    Foreigner,
}

impl Audience {
    pub fn title(self) -> Text {
        match self {
            Audience::Citizen => Text::new("ประชาชน", "Citizens"),
            Audience::Business => Text::new("ผู้ประกอบการ", "Businesses"),
            Audience::Foreigner => Text::new("ชาวต่างชาติ", "Foreigners"),
        }
    }
}

/// One step of the manual: which unit does what, in how many working days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub title: Text,
    pub unit: Text,
    pub days: u32,
}

/// Where a piece of required data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Source {
    /// An authoritative registry, read through the exchange with the applicant's consent: the
    /// applicant never uploads a copy of it.
    Registry {
        /// The exchange service, `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`.
        service: String,
        /// Who holds it, for the consent page ("the Department of Provincial Administration
        /// will send your house registration to ...").
        provider: Text,
        /// The fields the procedure needs, and no more.
        fields: Vec<String>,
        /// Which record to read (absent: the requirement cannot be prefilled, and the portal
        /// asks the applicant to type it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lookup: Option<Lookup>,
    },
    /// A document no registry holds, uploaded by the applicant.
    Upload {
        /// Accepted media types, checked against the file's content, not its name.
        media_types: Vec<String>,
        max_bytes: u64,
    },
    /// Typed by the applicant in the form.
    Applicant,
}

/// How the portal finds the applicant's record in a registry: the registry's `field` equals
/// the value `from` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    pub field: String,
    pub from: LookupFrom,
}

/// Where a lookup's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupFrom {
    /// The applicant's own id: a Thai national id, or `NATIONALITY-PASSPORT` for a foreigner.
    Applicant,
    /// The juristic person the applicant applies for (an act-for relation, checked).
    Business,
    /// A field of another registry requirement's record, read first (`person.houseId`).
    Requirement { key: String, field: String },
}

impl Serialize for LookupFrom {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LookupFrom::Applicant => s.serialize_str("applicant"),
            LookupFrom::Business => s.serialize_str("business"),
            LookupFrom::Requirement { key, field } => s.serialize_str(&format!("{key}.{field}")),
        }
    }
}

impl<'de> Deserialize<'de> for LookupFrom {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "applicant" => Ok(LookupFrom::Applicant),
            "business" => Ok(LookupFrom::Business),
            other => match other.split_once('.') {
                Some((key, field)) if !key.is_empty() && !field.is_empty() => {
                    Ok(LookupFrom::Requirement {
                        key: key.to_string(),
                        field: field.to_string(),
                    })
                }
                _ => Err(serde::de::Error::custom(
                    "lookup.from is applicant, business or REQUIREMENT.FIELD",
                )),
            },
        }
    }
}

/// A filing window counted from a date the registry holds (the foreigner's 90-day report:
/// due 90 days after the last report, or after arrival for the first; open from 15 days before
/// the due date until the due date online).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilingWindow {
    /// Form fields holding the date counted from, the first present wins (`lastReport`).
    pub from_fields: Vec<String>,
    /// Whether a first filing (none of `from_fields` but the last present) may be made here.
    #[serde(default)]
    pub first_filing_online: bool,
    pub every_days: u32,
    pub opens_days_before: u32,
    pub closes_days_after: u32,
    /// The rule in words, stated when a filing is refused.
    pub rule: Text,
}

/// A piece of data or document the procedure requires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// Referenced by the form's prefill (`key`), e.g. `house`.
    pub key: String,
    pub title: Text,
    pub source: Source,
}

/// A fee, in satang (1/100 baht) so that amounts are exact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fee {
    pub title: Text,
    pub amount_satang: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelKind {
    Online,
    Counter,
    Post,
}

/// Where and when people can apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub kind: ChannelKind,
    pub title: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<Text>,
}

/// What an official's task decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskRole {
    /// Checks completeness and may ask for what is missing.
    Reviewer,
    /// Approves or rejects.
    Approver,
}

impl TaskRole {
    pub fn role(self) -> saphan_identity::Role {
        match self {
            TaskRole::Reviewer => saphan_identity::Role::Reviewer,
            TaskRole::Approver => saphan_identity::Role::Approver,
        }
    }
}

/// One official's task in a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub key: String,
    pub title: Text,
    /// The agency whose officials hold the task.
    pub agency: String,
    pub role: TaskRole,
    /// Working days the task may take (its SLA).
    pub sla_days: u32,
}

/// Stages run one after another; the tasks of a stage run in parallel (several agencies sign
/// off side by side), and the stage ends when every task in it is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub key: String,
    pub title: Text,
    pub tasks: Vec<Task>,
}

/// What follows an approval; the payment and e-licence capabilities act on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Payment,
    Licence,
    Receipt,
}

/// The data-driven workflow of a procedure version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub on_approval: Vec<Outcome>,
}

impl Workflow {
    /// Working days along the longest path: stages in sequence, tasks of a stage in parallel.
    pub fn days(&self) -> u32 {
        self.stages
            .iter()
            .map(|s| s.tasks.iter().map(|t| t.sla_days).max().unwrap_or(0))
            .sum()
    }

    pub fn agencies(&self) -> BTreeSet<&str> {
        self.stages
            .iter()
            .flat_map(|s| s.tasks.iter().map(|t| t.agency.as_str()))
            .collect()
    }
}

/// A procedure as its owning agency publishes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureDoc {
    /// Stable across versions: lowercase letters, digits and dashes.
    pub code: String,
    /// The owning agency's code (an agency of the digital ID's directory).
    pub agency: String,
    pub unit: Text,
    pub title: Text,
    pub summary: Text,
    pub category: Text,
    pub audience: Vec<Audience>,
    pub legal_basis: Vec<Text>,
    pub criteria: Vec<Text>,
    pub steps: Vec<Step>,
    /// The manual's total time limit, in working days.
    pub time_limit_days: u32,
    pub requirements: Vec<Requirement>,
    #[serde(default)]
    pub fees: Vec<Fee>,
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub service_points: Vec<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complaints: Option<Text>,
    pub form: Form,
    pub workflow: Workflow,
    /// When filings are accepted, for procedures repeated on a cycle (TM.47).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filing_window: Option<FilingWindow>,
}

/// A bundle (a life event, or a business type as on Biz Portal): one application covering the
/// procedures of several agencies, with one form and one set of uploads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleDoc {
    pub code: String,
    /// The agency that curates the bundle.
    pub agency: String,
    pub title: Text,
    pub summary: Text,
    pub category: Text,
    pub audience: Vec<Audience>,
    /// The procedures' codes.
    pub procedures: Vec<String>,
}

/// What is published: a procedure or a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Document {
    Procedure(Box<ProcedureDoc>),
    Bundle(Box<BundleDoc>),
}

impl Document {
    pub fn code(&self) -> &str {
        match self {
            Document::Procedure(p) => &p.code,
            Document::Bundle(b) => &b.code,
        }
    }

    pub fn agency(&self) -> &str {
        match self {
            Document::Procedure(p) => &p.agency,
            Document::Bundle(b) => &b.agency,
        }
    }

    pub fn title(&self) -> &Text {
        match self {
            Document::Procedure(p) => &p.title,
            Document::Bundle(b) => &b.title,
        }
    }

    pub fn summary(&self) -> &Text {
        match self {
            Document::Procedure(p) => &p.summary,
            Document::Bundle(b) => &b.summary,
        }
    }

    pub fn category(&self) -> &Text {
        match self {
            Document::Procedure(p) => &p.category,
            Document::Bundle(b) => &b.category,
        }
    }

    pub fn audience(&self) -> &[Audience] {
        match self {
            Document::Procedure(p) => &p.audience,
            Document::Bundle(b) => &b.audience,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Document::Procedure(_) => "procedure",
            Document::Bundle(_) => "bundle",
        }
    }

    pub fn as_procedure(&self) -> Option<&ProcedureDoc> {
        match self {
            Document::Procedure(p) => Some(p),
            Document::Bundle(_) => None,
        }
    }

    /// Rules that need no other document: names, both languages, consistent days, a form
    /// that compiles and a workflow that can end.
    pub fn check(&self) -> Result<(), ProcedureError> {
        check_code("code", self.code())?;
        check_code("agency", self.agency())?;
        check_text("title", self.title(), 200)?;
        check_text("summary", self.summary(), 2000)?;
        check_text("category", self.category(), 100)?;
        if self.audience().is_empty() {
            return Err(invalid(
                "audience",
                "ระบุกลุ่มผู้ใช้บริการอย่างน้อยหนึ่งกลุ่ม",
                "name at least one audience",
            ));
        }
        match self {
            Document::Procedure(p) => p.check(),
            Document::Bundle(b) => {
                check_count("procedures", b.procedures.len())?;
                if b.procedures.len() < 2 {
                    return Err(invalid(
                        "procedures",
                        "ชุดบริการต้องรวมอย่างน้อยสองกระบวนงาน",
                        "a bundle gathers at least two procedures",
                    ));
                }
                let mut seen = BTreeSet::new();
                for code in &b.procedures {
                    check_code("procedures", code)?;
                    if !seen.insert(code) {
                        return Err(invalid(
                            "procedures",
                            &format!("กระบวนงาน {code} ซ้ำ"),
                            &format!("procedure {code} is listed twice"),
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

impl ProcedureDoc {
    fn check(&self) -> Result<(), ProcedureError> {
        check_text("unit", &self.unit, 200)?;
        for (field, len) in [
            ("legal_basis", self.legal_basis.len()),
            ("criteria", self.criteria.len()),
            ("steps", self.steps.len()),
            ("requirements", self.requirements.len()),
            ("fees", self.fees.len()),
            ("channels", self.channels.len()),
            ("service_points", self.service_points.len()),
            ("workflow.stages", self.workflow.stages.len()),
        ] {
            check_count(field, len)?;
        }
        for (i, t) in self.legal_basis.iter().enumerate() {
            check_text(&format!("legal_basis[{i}]"), t, 500)?;
        }
        for (i, t) in self.criteria.iter().enumerate() {
            check_text(&format!("criteria[{i}]"), t, 1000)?;
        }
        for (i, fee) in self.fees.iter().enumerate() {
            check_text(&format!("fees[{i}].title"), &fee.title, 300)?;
            if fee.amount_satang > MAX_FEE_SATANG {
                return Err(invalid(
                    &format!("fees[{i}].amount_satang"),
                    "ค่าธรรมเนียมเกินขีดจำกัด (1,000 ล้านบาท)",
                    "a fee is at most 1,000 million baht",
                ));
            }
        }
        for (i, c) in self.channels.iter().enumerate() {
            check_text(&format!("channels[{i}].title"), &c.title, 300)?;
            if let Some(hours) = &c.hours {
                check_text(&format!("channels[{i}].hours"), hours, 200)?;
            }
        }
        for (i, t) in self.service_points.iter().enumerate() {
            check_text(&format!("service_points[{i}]"), t, 300)?;
        }
        if let Some(c) = &self.complaints {
            check_text("complaints", c, 1000)?;
        }
        check_days("time_limit_days", self.time_limit_days)?;
        if self.legal_basis.is_empty() {
            return Err(invalid(
                "legal_basis",
                "ระบุกฎหมายที่ให้อำนาจ",
                "name the legal basis",
            ));
        }
        if self.steps.is_empty() {
            return Err(invalid(
                "steps",
                "ระบุขั้นตอนอย่างน้อยหนึ่งขั้นตอน",
                "list at least one step",
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            check_text(&format!("steps[{i}].title"), &step.title, 300)?;
            check_text(&format!("steps[{i}].unit"), &step.unit, 200)?;
            check_days(&format!("steps[{i}].days"), step.days)?;
        }
        // Each step is capped, and so is their number: the sum cannot overflow.
        let steps_days: u32 = self.steps.iter().map(|s| s.days).sum();
        if steps_days > self.time_limit_days {
            return Err(invalid(
                "time_limit_days",
                &format!(
                    "ขั้นตอนรวม {steps_days} วัน เกินระยะเวลาทั้งหมด {} วัน",
                    self.time_limit_days
                ),
                &format!(
                    "the steps take {steps_days} days, more than the time limit of {}",
                    self.time_limit_days
                ),
            ));
        }
        let mut keys = BTreeSet::new();
        for (i, r) in self.requirements.iter().enumerate() {
            check_code(&format!("requirements[{i}].key"), &r.key)?;
            check_text(&format!("requirements[{i}].title"), &r.title, 300)?;
            if !keys.insert(r.key.as_str()) {
                return Err(invalid(
                    "requirements",
                    &format!("รายการ {} ซ้ำ", r.key),
                    &format!("requirement {} is listed twice", r.key),
                ));
            }
            match &r.source {
                Source::Registry {
                    service,
                    fields,
                    provider,
                    lookup,
                } => {
                    if let Some(lookup) = lookup {
                        self.check_lookup(i, lookup)?;
                    }
                    check_text(&format!("requirements[{i}].source.provider"), provider, 200)?;
                    check_count(&format!("requirements[{i}].source.fields"), fields.len())?;
                    if fields.iter().any(|f| f.is_empty() || f.len() > 64) {
                        return Err(invalid(
                            &format!("requirements[{i}].source.fields"),
                            "ชื่อข้อมูลต้องยาว 1–64 ตัวอักษร",
                            "field names are 1 to 64 characters",
                        ));
                    }
                    if service.len() > 300
                        || service.split('/').count() != 5
                        || service.split('/').any(str::is_empty)
                    {
                        return Err(invalid(
                            &format!("requirements[{i}].source.service"),
                            "บริการต้องอยู่ในรูป INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE",
                            "the service must read INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE",
                        ));
                    }
                    if fields.is_empty() {
                        return Err(invalid(
                            &format!("requirements[{i}].source.fields"),
                            "ระบุข้อมูลที่ต้องการจากทะเบียน",
                            "name the registry fields needed",
                        ));
                    }
                }
                Source::Upload {
                    media_types,
                    max_bytes,
                } => {
                    let known = ["application/pdf", "image/jpeg", "image/png"];
                    if media_types.is_empty()
                        || media_types.iter().any(|m| !known.contains(&m.as_str()))
                    {
                        return Err(invalid(
                            &format!("requirements[{i}].source.media_types"),
                            "ชนิดไฟล์ที่รับได้คือ application/pdf, image/jpeg, image/png",
                            "accepted media types are application/pdf, image/jpeg, image/png",
                        ));
                    }
                    if *max_bytes == 0 || *max_bytes > crate::MAX_UPLOAD_BYTES {
                        return Err(invalid(
                            &format!("requirements[{i}].source.max_bytes"),
                            "ขนาดไฟล์สูงสุดต้องอยู่ระหว่าง 1 ไบต์ ถึง 20 MB",
                            "the size limit must be between 1 byte and 20 MB",
                        ));
                    }
                }
                Source::Applicant => {}
            }
        }
        if self.channels.is_empty() {
            return Err(invalid(
                "channels",
                "ระบุช่องทางการยื่นคำขออย่างน้อยหนึ่งช่องทาง",
                "list at least one channel",
            ));
        }
        self.form.check(&self.requirements)?;
        if let Some(window) = &self.filing_window {
            self.check_window(window)?;
        }
        self.check_workflow()
    }

    /// A lookup names a field the right will release, and a value the portal can know.
    fn check_lookup(&self, i: usize, lookup: &Lookup) -> Result<(), ProcedureError> {
        let at = format!("requirements[{i}].source.lookup");
        if lookup.field.is_empty() || lookup.field.len() > 64 {
            return Err(invalid(
                &at,
                "ชื่อข้อมูลที่ใช้ค้นต้องยาว 1–64 ตัวอักษร",
                "the lookup field is 1 to 64 characters",
            ));
        }
        if let LookupFrom::Requirement { key, field } = &lookup.from {
            let earlier = self.requirements[..i].iter().find(|r| &r.key == key);
            let names_it = matches!(
                earlier.map(|r| &r.source),
                Some(Source::Registry { fields, .. }) if fields.contains(field)
            );
            if !names_it {
                return Err(invalid(
                    &at,
                    &format!("{key}.{field} ต้องเป็นข้อมูลของรายการจากทะเบียนที่อยู่ก่อนหน้า"),
                    &format!("{key}.{field} must be a field of an earlier registry requirement"),
                ));
            }
        }
        Ok(())
    }

    fn check_window(&self, w: &FilingWindow) -> Result<(), ProcedureError> {
        check_text("filing_window.rule", &w.rule, 500)?;
        check_count("filing_window.from_fields", w.from_fields.len())?;
        let properties = &self.form.schema["properties"];
        if w.from_fields.is_empty() || w.from_fields.iter().any(|f| properties.get(f).is_none()) {
            return Err(invalid(
                "filing_window.from_fields",
                "ระบุช่องในแบบฟอร์มที่เก็บวันที่ใช้นับ",
                "name the form fields holding the dates counted from",
            ));
        }
        if w.every_days == 0
            || w.every_days > MAX_DAYS
            || w.opens_days_before > w.every_days
            || w.closes_days_after > w.every_days
        {
            return Err(invalid(
                "filing_window",
                "รอบและช่วงเวลายื่นต้องอยู่ระหว่าง 1 ถึงจำนวนวันของรอบ",
                "the cycle is 1 to 3650 days and the window lies within it",
            ));
        }
        Ok(())
    }

    fn check_workflow(&self) -> Result<(), ProcedureError> {
        let w = &self.workflow;
        if w.stages.is_empty() {
            return Err(invalid(
                "workflow.stages",
                "ระบุขั้นการพิจารณาอย่างน้อยหนึ่งขั้น",
                "list at least one stage",
            ));
        }
        let mut keys = BTreeSet::new();
        for (i, stage) in w.stages.iter().enumerate() {
            check_code(&format!("workflow.stages[{i}].key"), &stage.key)?;
            check_text(&format!("workflow.stages[{i}].title"), &stage.title, 200)?;
            check_count(&format!("workflow.stages[{i}].tasks"), stage.tasks.len())?;
            if stage.tasks.is_empty() {
                return Err(invalid(
                    &format!("workflow.stages[{i}].tasks"),
                    "แต่ละขั้นต้องมีงานอย่างน้อยหนึ่งงาน",
                    "every stage has at least one task",
                ));
            }
            for (j, task) in stage.tasks.iter().enumerate() {
                let at = format!("workflow.stages[{i}].tasks[{j}]");
                check_code(&format!("{at}.key"), &task.key)?;
                check_code(&format!("{at}.agency"), &task.agency)?;
                check_text(&format!("{at}.title"), &task.title, 200)?;
                if !keys.insert(task.key.as_str()) {
                    return Err(invalid(
                        &format!("{at}.key"),
                        &format!("งาน {} ซ้ำ", task.key),
                        &format!("task {} appears twice", task.key),
                    ));
                }
                check_days(&format!("{at}.sla_days"), task.sla_days)?;
                if task.sla_days == 0 {
                    return Err(invalid(
                        &format!("{at}.sla_days"),
                        "ระยะเวลาของงานต้องมากกว่า 0 วัน",
                        "a task's SLA is at least one day",
                    ));
                }
            }
        }
        if !w
            .stages
            .iter()
            .flat_map(|s| &s.tasks)
            .any(|t| t.role == TaskRole::Approver)
        {
            return Err(invalid(
                "workflow",
                "ต้องมีผู้อนุมัติอย่างน้อยหนึ่งงาน",
                "at least one task is an approver's",
            ));
        }
        if w.days() > self.time_limit_days {
            return Err(invalid(
                "workflow",
                &format!(
                    "การพิจารณาใช้ {} วัน เกินระยะเวลาทั้งหมด {} วัน",
                    w.days(),
                    self.time_limit_days
                ),
                &format!(
                    "the workflow takes {} days, more than the time limit of {}",
                    w.days(),
                    self.time_limit_days
                ),
            ));
        }
        Ok(())
    }

    /// Every fee, in satang (saturating: sums must not panic whatever is stored).
    pub fn total_fee_satang(&self) -> u64 {
        self.fees
            .iter()
            .fold(0u64, |sum, f| sum.saturating_add(f.amount_satang))
    }
}

/// The longest list a document may hold (steps, requirements, pages, tasks...).
pub const MAX_LIST: usize = 100;
/// The longest time limit, step or SLA: ten years of working days is already absurd.
pub const MAX_DAYS: u32 = 3650;
/// The largest fee: 1,000 million baht.
pub const MAX_FEE_SATANG: u64 = 100_000_000_000;

pub(crate) fn check_count(field: &str, len: usize) -> Result<(), ProcedureError> {
    if len > MAX_LIST {
        return Err(invalid(
            field,
            &format!("รายการยาวเกิน {MAX_LIST} รายการ"),
            &format!("lists hold at most {MAX_LIST} items"),
        ));
    }
    Ok(())
}

fn check_days(field: &str, days: u32) -> Result<(), ProcedureError> {
    if days > MAX_DAYS {
        return Err(invalid(
            field,
            &format!("จำนวนวันต้องไม่เกิน {MAX_DAYS}"),
            &format!("at most {MAX_DAYS} days"),
        ));
    }
    Ok(())
}

pub(crate) fn invalid(field: &str, th: &str, en: &str) -> ProcedureError {
    ProcedureError::Invalid {
        field: field.to_string(),
        message: Text::owned(th, en),
    }
}

fn check_code(field: &str, code: &str) -> Result<(), ProcedureError> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !code.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "ใช้ได้เฉพาะอักษรอังกฤษตัวเล็ก ตัวเลข - และ _ ไม่เกิน 64 ตัว",
            "use lowercase letters, digits, - and _ only, at most 64",
        ))
    }
}

pub(crate) fn check_text(field: &str, text: &Text, max_chars: usize) -> Result<(), ProcedureError> {
    for (lang, value) in [("th", &text.th), ("en", &text.en)] {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(invalid(
                &format!("{field}.{lang}"),
                "ต้องมีข้อความทั้งภาษาไทยและภาษาอังกฤษ",
                "needs text in both Thai and English",
            ));
        }
        // Control characters, and the bidirectional overrides that make text read other than
        // it is stored.
        let hidden = |c: char| {
            (c.is_control() && c != '\n')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        };
        if value.chars().count() > max_chars || value.chars().any(hidden) {
            return Err(invalid(
                &format!("{field}.{lang}"),
                &format!("ข้อความยาวเกิน {max_chars} ตัวอักษร หรือมีอักขระควบคุม"),
                &format!("longer than {max_chars} characters, or holds control characters"),
            ));
        }
    }
    Ok(())
}
