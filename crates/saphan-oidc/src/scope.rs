//! Scopes the provider knows, what each releases, and how the consent page describes it.

use saphan_core::Text;

pub struct ScopeInfo {
    pub name: &'static str,
    /// What the person is told the client will receive.
    pub consent: Text,
    pub claims: &'static [&'static str],
}

pub const SCOPES: &[ScopeInfo] = &[
    ScopeInfo {
        name: "openid",
        consent: Text::new(
            "รหัสประจำตัวสำหรับบริการนี้ (ไม่ใช่เลขประจำตัวประชาชน) และระดับความน่าเชื่อถือของการยืนยันตัวตน",
            "An identifier for this service only (not your national id) and how surely you were identified",
        ),
        claims: &["sub", "acr", "amr", "auth_time"],
    },
    ScopeInfo {
        name: "profile",
        consent: Text::new("ชื่อ-นามสกุลของคุณ (ภาษาไทยและภาษาอังกฤษ)", "Your full name (in Thai and English)"),
        claims: &["name", "name#en", "name#th"],
    },
    ScopeInfo {
        name: "pid",
        consent: Text::new("เลขประจำตัวประชาชน 13 หลักของคุณ", "Your 13-digit national id number"),
        claims: &["pid"],
    },
    ScopeInfo {
        name: "passport",
        consent: Text::new("เลขหนังสือเดินทางและสัญชาติของคุณ", "Your passport number and nationality"),
        claims: &["passport_number", "nationality"],
    },
    ScopeInfo {
        name: "act_for",
        consent: Text::new(
            "นิติบุคคลที่คุณมีอำนาจกระทำการแทน พร้อมที่มาและระยะเวลา",
            "The companies you may act for, with the source and validity of that authority",
        ),
        claims: &["act_for"],
    },
    ScopeInfo {
        name: "roles",
        consent: Text::new(
            "หน่วยงานที่คุณสังกัดและบทบาทของคุณในฐานะเจ้าหน้าที่",
            "The agencies you work for and your roles there as an official",
        ),
        claims: &["roles"],
    },
    ScopeInfo {
        name: "applications",
        consent: Text::new(
            "ยื่นคำขอรับบริการภาครัฐในนามของคุณ และติดตามคำขอของคุณ",
            "Apply for government services in your name, and follow your applications",
        ),
        claims: &[],
    },
];

pub fn info(name: &str) -> Option<&'static ScopeInfo> {
    SCOPES.iter().find(|s| s.name == name)
}

pub fn names() -> Vec<&'static str> {
    SCOPES.iter().map(|s| s.name).collect()
}

pub fn claims_supported() -> Vec<&'static str> {
    let mut claims: Vec<&str> = vec!["iss", "aud", "exp", "iat", "nonce", "sid", "at_hash", "azp"];
    for scope in SCOPES {
        claims.extend(scope.claims.iter().copied());
    }
    claims
}

/// Splits a space-delimited scope parameter, keeping order and dropping duplicates.
pub fn parse(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}
