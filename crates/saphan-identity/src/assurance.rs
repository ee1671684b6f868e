//! Assurance levels: how sure the platform is of who a person is (Thai IAL 1–3, from how the
//! identity was proofed) and of who is at the keyboard (AAL 1–3, from how they signed in).
//!
//! An OpenID `acr` value carries both: `urn:saphan:ial-2.3:aal-2`. A request for a level is met
//! by any sign-in at that level or higher in both dimensions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Identity-assurance level (ETDA guideline; DGA standard DGS 1-1:2564).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ial {
    /// Self-asserted.
    L1,
    /// Evidence checked remotely against an authoritative source.
    L2_1,
    /// Evidence checked remotely, with a biometric or document-chip comparison.
    L2_2,
    /// Evidence checked in person, or remotely with the chip and a liveness check.
    L2_3,
    /// In person, with biometrics enrolled.
    L3,
}

/// Authenticator-assurance level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Aal {
    /// One factor (a password).
    L1,
    /// Two factors (password + TOTP), or a passkey.
    L2,
    /// A hardware-bound, phishing-resistant authenticator.
    L3,
}

impl Ial {
    pub const ALL: [Ial; 5] = [Ial::L1, Ial::L2_1, Ial::L2_2, Ial::L2_3, Ial::L3];

    pub fn as_str(self) -> &'static str {
        match self {
            Ial::L1 => "1",
            Ial::L2_1 => "2.1",
            Ial::L2_2 => "2.2",
            Ial::L2_3 => "2.3",
            Ial::L3 => "3",
        }
    }
}

impl Aal {
    pub const ALL: [Aal; 3] = [Aal::L1, Aal::L2, Aal::L3];

    pub fn as_str(self) -> &'static str {
        match self {
            Aal::L1 => "1",
            Aal::L2 => "2",
            Aal::L3 => "3",
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Aal::L1 => 1,
            Aal::L2 => 2,
            Aal::L3 => 3,
        }
    }

    pub fn from_number(n: u8) -> Option<Aal> {
        Aal::ALL.into_iter().find(|a| a.number() == n)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an assurance level (IAL 1, 2.1, 2.2, 2.3, 3; AAL 1, 2, 3; acr urn:saphan:ial-X:aal-Y)")]
pub struct BadLevel(pub String);

impl FromStr for Ial {
    type Err = BadLevel;
    fn from_str(s: &str) -> Result<Ial, BadLevel> {
        Ial::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| BadLevel(s.to_string()))
    }
}

impl FromStr for Aal {
    type Err = BadLevel;
    fn from_str(s: &str) -> Result<Aal, BadLevel> {
        Aal::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| BadLevel(s.to_string()))
    }
}

impl fmt::Display for Ial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Aal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Both levels together: what a sign-in achieved, or what a relying party asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Assurance {
    pub ial: Ial,
    pub aal: Aal,
}

const ACR_PREFIX: &str = "urn:saphan:ial-";

impl Assurance {
    pub fn new(ial: Ial, aal: Aal) -> Assurance {
        Assurance { ial, aal }
    }

    /// The OpenID `acr` value, e.g. `urn:saphan:ial-2.3:aal-2`.
    pub fn acr(self) -> String {
        format!("{ACR_PREFIX}{}:aal-{}", self.ial, self.aal)
    }

    pub fn parse_acr(acr: &str) -> Result<Assurance, BadLevel> {
        let bad = || BadLevel(acr.chars().take(80).collect());
        let rest = acr.strip_prefix(ACR_PREFIX).ok_or_else(bad)?;
        let (ial, aal) = rest.split_once(":aal-").ok_or_else(bad)?;
        Ok(Assurance {
            ial: ial.parse().map_err(|_| bad())?,
            aal: aal.parse().map_err(|_| bad())?,
        })
    }

    /// True when this assurance is at least `wanted` in both dimensions.
    pub fn satisfies(self, wanted: Assurance) -> bool {
        self.ial >= wanted.ial && self.aal >= wanted.aal
    }

    /// Every `acr` value the platform can assert, lowest first, for discovery.
    pub fn all_acr_values() -> Vec<String> {
        let mut all = Vec::new();
        for ial in Ial::ALL {
            for aal in Aal::ALL {
                all.push(Assurance::new(ial, aal).acr());
            }
        }
        all
    }
}

impl Serialize for Ial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Ial {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ial, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_round_trips_for_every_level() {
        for acr in Assurance::all_acr_values() {
            assert_eq!(Assurance::parse_acr(&acr).unwrap().acr(), acr);
        }
        assert_eq!(Assurance::all_acr_values().len(), 15);
        assert_eq!(
            Assurance::new(Ial::L2_3, Aal::L2).acr(),
            "urn:saphan:ial-2.3:aal-2"
        );
    }

    #[test]
    fn malformed_acr_is_refused() {
        for bad in [
            "",
            "urn:saphan:ial-4:aal-1",
            "urn:saphan:ial-2.3",
            "urn:saphan:ial-2.3:aal-0",
            "urn:other:ial-1:aal-1",
            "urn:saphan:ial-1:aal-1:extra",
        ] {
            assert!(Assurance::parse_acr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn satisfaction_needs_both_dimensions() {
        let got = Assurance::new(Ial::L2_3, Aal::L2);
        assert!(got.satisfies(Assurance::new(Ial::L2_1, Aal::L1)));
        assert!(got.satisfies(got));
        assert!(!got.satisfies(Assurance::new(Ial::L3, Aal::L1)));
        assert!(!got.satisfies(Assurance::new(Ial::L1, Aal::L3)));
    }
}
