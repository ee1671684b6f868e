//! The demo's procedures (`demo/*.json`): opening a restaurant (a bundle of a food-shop permit
//! from the local administration and a signboard permit), a certificate of residence, and the
//! foreigner's 90-day report (TM.47). They are published through [`crate::Catalogue::publish`]
//! like any agency's, and double as examples of the document format.

use crate::Document;

const FILES: [(&str, &str); 5] = [
    (
        "food-business-permit",
        include_str!("../demo/food-business-permit.json"),
    ),
    (
        "signboard-permit",
        include_str!("../demo/signboard-permit.json"),
    ),
    (
        "open-a-restaurant",
        include_str!("../demo/open-a-restaurant.json"),
    ),
    (
        "residence-certificate",
        include_str!("../demo/residence-certificate.json"),
    ),
    (
        "tm47-90-day-report",
        include_str!("../demo/tm47-90-day-report.json"),
    ),
];

/// The agencies the demo's procedures name, with their names in Thai and English.
pub const AGENCIES: [(&str, &str, &str); 5] = [
    (
        "dga",
        "สำนักงานพัฒนารัฐบาลดิจิทัล",
        "Digital Government Development Agency",
    ),
    (
        "dopa",
        "กรมการปกครอง",
        "Department of Provincial Administration",
    ),
    ("demo-city", "เทศบาลนครสาธิต", "Demo City Municipality"),
    (
        "dpt",
        "กรมโยธาธิการและผังเมือง",
        "Department of Public Works and Town & Country Planning",
    ),
    ("imm", "สำนักงานตรวจคนเข้าเมือง", "Immigration Bureau"),
];

/// The demo documents, procedures before the bundles that gather them.
pub fn documents() -> Vec<Document> {
    FILES
        .iter()
        .map(|(name, text)| {
            serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("demo/{name}.json does not parse: {e}"))
        })
        .collect()
}
