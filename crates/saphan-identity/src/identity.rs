//! Who a person is to the platform: an identity, the identifier they sign in with, how they were
//! proofed, and what they may act for (juristic persons) or as (an agency's official).

use saphan_core::{NationalId, Text};
use serde::{Deserialize, Serialize};

use crate::assurance::Ial;
use crate::IdentityError;

/// Citizens and residents sign in with a national id; foreigners with passport + nationality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    Citizen,
    Foreigner,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Citizen => "citizen",
            IdentityKind::Foreigner => "foreigner",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<IdentityKind, IdentityError> {
        match s {
            "citizen" => Ok(IdentityKind::Citizen),
            "foreigner" => Ok(IdentityKind::Foreigner),
            other => Err(IdentityError::Internal(format!("identity kind `{other}`"))),
        }
    }
}

/// What a person types to sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginId {
    NationalId(NationalId),
    Passport {
        /// Upper-case letters and digits, 5–20 of them.
        number: String,
        /// ISO 3166-1 alpha-3, upper case.
        nationality: String,
    },
}

impl LoginId {
    /// Reads the sign-in form: a 13-digit number is a national id (its check digit must hold);
    /// anything else needs a nationality and is a passport number.
    pub fn parse(identifier: &str, nationality: &str) -> Result<LoginId, IdentityError> {
        let identifier = identifier.trim();
        let nationality = nationality.trim();
        let digits = identifier.chars().filter(|c| c.is_ascii_digit()).count();
        let only_digits = identifier
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == ' ');
        if identifier.is_empty() || identifier.len() > 64 {
            return Err(IdentityError::BadIdentifier);
        }
        if only_digits && digits == 13 && nationality.is_empty() {
            return identifier
                .parse::<NationalId>()
                .map(LoginId::NationalId)
                .map_err(IdentityError::NationalId);
        }
        if only_digits && nationality.is_empty() {
            return Err(IdentityError::NationalId(
                saphan_core::NationalIdError::Length,
            ));
        }
        Ok(LoginId::Passport {
            number: passport_number(identifier)?,
            nationality: nationality_code(nationality)?,
        })
    }

    /// The unique key the directory stores. National ids are looked up by their digits, which
    /// is why the key is never logged: log [`Identity::id`] instead.
    pub(crate) fn key(&self) -> String {
        match self {
            LoginId::NationalId(nid) => format!("nid:{}", nid.digits()),
            LoginId::Passport {
                number,
                nationality,
            } => format!("passport:{nationality}:{number}"),
        }
    }
}

pub(crate) fn passport_number(text: &str) -> Result<String, IdentityError> {
    let number: String = text
        .chars()
        .filter(|c| *c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !(5..=20).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(IdentityError::BadIdentifier);
    }
    Ok(number)
}

pub(crate) fn nationality_code(text: &str) -> Result<String, IdentityError> {
    let code = text.trim().to_ascii_uppercase();
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(IdentityError::BadNationality);
    }
    Ok(code)
}

/// A person known to the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Opaque and stable; what audit records and relying parties' pairwise ids derive from.
    pub id: String,
    pub kind: IdentityKind,
    pub national_id: Option<NationalId>,
    pub passport_number: Option<String>,
    pub nationality: Option<String>,
    pub name: Text,
    /// The assurance of the proofing, as recorded; see [`Identity::effective_ial`].
    pub ial: Ial,
    /// How the identity was proofed, e.g. `counter:chip-card` or `upstream:thaid`.
    pub proofing: String,
    /// Set by account recovery: the person must be proofed again before the recorded IAL counts.
    pub reproofing_required: bool,
    pub created_at: String,
}

impl Identity {
    /// The IAL sign-ins may assert now: IAL 1 while re-proofing is pending after a recovery, so
    /// that recovering an account never silently keeps a level its new credentials did not earn.
    pub fn effective_ial(&self) -> Ial {
        if self.reproofing_required {
            Ial::L1
        } else {
            self.ial
        }
    }
}

/// A new identity, as a registry, a counter officer or the demo seeds it.
#[derive(Debug, Clone)]
pub struct NewIdentity {
    pub login: LoginId,
    pub name: Text,
    pub ial: Ial,
    pub proofing: String,
}

/// The act-for relation: a person may act for a juristic person, in a capacity, because a
/// source (a registry, a power of attorney) says so, within a validity period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActFor {
    /// 13-digit juristic-person id.
    pub juristic_id: String,
    pub juristic_name: String,
    /// E.g. `director`, `authorised-signatory`, `attorney`.
    pub capacity: String,
    /// Where the relation comes from, e.g. `dbd:registry` or `poa:2026-000123`.
    pub source: String,
    pub valid_from: String,
    pub valid_until: Option<String>,
}
