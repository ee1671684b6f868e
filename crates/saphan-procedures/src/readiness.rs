//! Readiness for digital service: a score out of 100 that says which procedures can go fully
//! online first, as the programme ranked its 5,257 procedures to choose pilots. Every point is
//! explained, so an agency sees what to fix.

use saphan_core::Text;
use serde::Serialize;

use crate::document::{ChannelKind, Outcome, ProcedureDoc, Source};

/// One criterion: points earned of the points it is worth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Criterion {
    pub title: Text,
    pub points: u32,
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    pub score: u32,
    pub criteria: Vec<Criterion>,
}

/// Scores a procedure:
/// - 35: documents come from registries instead of uploads (no photocopies), by share;
/// - 20: it can be applied for online;
/// - 15: its fees can be paid electronically (none, or payment follows approval);
/// - 15: its outcome is electronic (an e-licence or e-receipt);
/// - 15: its time limit is short (full at 15 working days or less, none at 60 or more).
pub fn assess(p: &ProcedureDoc) -> Readiness {
    let (from_registries, uploads) =
        p.requirements
            .iter()
            .fold((0u32, 0u32), |(r, u), req| match req.source {
                Source::Registry { .. } => (r + 1, u),
                Source::Upload { .. } => (r, u + 1),
                Source::Applicant => (r, u),
            });
    // No documents at all is as good as all from registries.
    let documents = (35 * from_registries)
        .checked_div(from_registries + uploads)
        .unwrap_or(35);
    let online = if p.channels.iter().any(|c| c.kind == ChannelKind::Online) {
        20
    } else {
        0
    };
    let payment = if p.fees.is_empty() || p.workflow.on_approval.contains(&Outcome::Payment) {
        15
    } else {
        0
    };
    let outcome = if p
        .workflow
        .on_approval
        .iter()
        .any(|o| matches!(o, Outcome::Licence | Outcome::Receipt))
    {
        15
    } else {
        0
    };
    let speed = match p.time_limit_days {
        0..=15 => 15,
        60.. => 0,
        d => 15 * (60 - d) / 45,
    };
    let criteria = vec![
        Criterion {
            title: Text::new(
                "เอกสารได้จากทะเบียนผ่านการแลกเปลี่ยนข้อมูล ไม่ต้องอัปโหลดสำเนา",
                "Documents come from registries through the exchange, not uploaded copies",
            ),
            points: documents,
            max: 35,
        },
        Criterion {
            title: Text::new("ยื่นคำขอออนไลน์ได้", "Can be applied for online"),
            points: online,
            max: 20,
        },
        Criterion {
            title: Text::new(
                "ชำระค่าธรรมเนียมทางอิเล็กทรอนิกส์ได้",
                "Fees can be paid electronically",
            ),
            points: payment,
            max: 15,
        },
        Criterion {
            title: Text::new(
                "ผลเป็นใบอนุญาตหรือใบรับอิเล็กทรอนิกส์",
                "The outcome is an electronic licence or receipt",
            ),
            points: outcome,
            max: 15,
        },
        Criterion {
            title: Text::new(
                "ระยะเวลาพิจารณาสั้น (ไม่เกิน 15 วันทำการได้เต็ม)",
                "Short time limit (full points at 15 working days or less)",
            ),
            points: speed,
            max: 15,
        },
    ];
    Readiness {
        score: criteria.iter().map(|c| c.points).sum(),
        criteria,
    }
}
