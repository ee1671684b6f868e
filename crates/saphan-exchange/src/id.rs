//! X-Road identifiers: clients `INSTANCE/CLASS/MEMBER[/SUBSYSTEM]` and services
//! `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICECODE`. Each part is 1-255 of
//! `A-Z a-z 0-9 ' ( ) + , - . = ?`, and is percent-encoded separately inside a header.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Member classes a platform may hold; the instance decides which it uses.
pub const MEMBER_CLASSES: &[&str] = &["GOV", "COM", "NGO", "NEE", "ORG", "PRIV"];

/// Why an identifier was refused; the message names the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an identifier needs {expected} parts separated by `/`, found {found}")]
    Parts {
        expected: &'static str,
        found: usize,
    },
    #[error("identifier part `{0}` is empty, longer than 255 or has a character outside A-Z a-z 0-9 ' ( ) + , - . = ?")]
    BadPart(String),
    #[error("`{0}` is not a member class ({classes})", classes = MEMBER_CLASSES.join(", "))]
    BadClass(String),
}

/// Whether `part` may be one part of an identifier.
pub fn valid_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 255
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "'()+,-.=?".contains(c))
}

fn part(raw: &str) -> Result<String, IdError> {
    let decoded = percent_decode(raw).ok_or_else(|| IdError::BadPart(shorten(raw)))?;
    if valid_part(&decoded) {
        Ok(decoded)
    } else {
        Err(IdError::BadPart(shorten(&decoded)))
    }
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn encode(part: &str) -> String {
    // Only characters outside the allowed set need encoding, and valid parts have none but
    // those that are reserved in paths and headers.
    part.chars()
        .map(|c| match c {
            '\'' | '(' | ')' | '+' | ',' | '=' | '?' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// A member (`subsystem` none) or one of its subsystems.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientId {
    pub instance: String,
    pub class: String,
    pub member: String,
    pub subsystem: Option<String>,
}

impl ClientId {
    pub fn subsystem(instance: &str, class: &str, member: &str, subsystem: &str) -> ClientId {
        ClientId {
            instance: instance.into(),
            class: class.into(),
            member: member.into(),
            subsystem: Some(subsystem.into()),
        }
    }

    /// Parses `INSTANCE/CLASS/MEMBER/SUBSYSTEM` (or without the subsystem when `allow_member`),
    /// each part percent-decoded.
    pub fn parse(text: &str, allow_member: bool) -> Result<ClientId, IdError> {
        let parts: Vec<&str> = text.trim().split('/').collect();
        let expected = if allow_member { "3 or 4" } else { "4" };
        if !(parts.len() == 4 || allow_member && parts.len() == 3) {
            return Err(IdError::Parts {
                expected,
                found: parts.len(),
            });
        }
        let class = part(parts[1])?;
        if !MEMBER_CLASSES.contains(&class.as_str()) {
            return Err(IdError::BadClass(shorten(&class)));
        }
        Ok(ClientId {
            instance: part(parts[0])?,
            class,
            member: part(parts[2])?,
            subsystem: parts.get(3).map(|p| part(p)).transpose()?,
        })
    }

    /// The member this client belongs to (itself when it is a member).
    pub fn member_id(&self) -> MemberId {
        MemberId {
            class: self.class.clone(),
            code: self.member.clone(),
        }
    }

    /// The subsystem key used in the registry tables: `CLASS/MEMBER/SUBSYSTEM`.
    pub fn key(&self) -> String {
        match &self.subsystem {
            Some(s) => format!("{}/{}/{}", self.class, self.member, s),
            None => format!("{}/{}", self.class, self.member),
        }
    }

    /// Percent-encoded per part, for headers.
    pub fn encoded(&self) -> String {
        let mut s = format!(
            "{}/{}/{}",
            encode(&self.instance),
            encode(&self.class),
            encode(&self.member)
        );
        if let Some(sub) = &self.subsystem {
            s.push('/');
            s.push_str(&encode(sub));
        }
        s
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.instance, self.class, self.member)?;
        if let Some(s) = &self.subsystem {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

/// A member inside this instance: `CLASS/CODE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemberId {
    pub class: String,
    pub code: String,
}

impl MemberId {
    pub fn parse(text: &str) -> Result<MemberId, IdError> {
        let parts: Vec<&str> = text.trim().split('/').collect();
        if parts.len() != 2 {
            return Err(IdError::Parts {
                expected: "2 (CLASS/CODE)",
                found: parts.len(),
            });
        }
        let class = part(parts[0])?;
        if !MEMBER_CLASSES.contains(&class.as_str()) {
            return Err(IdError::BadClass(shorten(&class)));
        }
        Ok(MemberId {
            class,
            code: part(parts[1])?,
        })
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.class, self.code)
    }
}

/// A service: a subsystem and a service code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceId {
    pub provider: ClientId,
    pub code: String,
}

impl ServiceId {
    /// Parses `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICECODE`.
    pub fn parse(text: &str) -> Result<ServiceId, IdError> {
        let (provider, code) = text.trim().rsplit_once('/').ok_or(IdError::Parts {
            expected: "5",
            found: 1,
        })?;
        let provider = ClientId::parse(provider, false).map_err(|e| match e {
            IdError::Parts { found, .. } => IdError::Parts {
                expected: "5",
                found: found + 1,
            },
            e => e,
        })?;
        Ok(ServiceId {
            provider,
            code: part(code)?,
        })
    }

    /// The service key used in the registry tables: `CLASS/MEMBER/SUBSYSTEM/CODE`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.provider.key(), self.code)
    }

    pub fn encoded(&self) -> String {
        format!("{}/{}", self.provider.encoded(), encode(&self.code))
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_parse_and_print() {
        let c = ClientId::parse("TH/GOV/0994000165501/CIVREG", false).unwrap();
        assert_eq!(c.subsystem.as_deref(), Some("CIVREG"));
        assert_eq!(c.to_string(), "TH/GOV/0994000165501/CIVREG");
        assert_eq!(c.key(), "GOV/0994000165501/CIVREG");
        assert_eq!(c.member_id().to_string(), "GOV/0994000165501");
        let member = ClientId::parse("TH/GOV/DOPA", true).unwrap();
        assert!(member.subsystem.is_none());
        assert!(matches!(
            ClientId::parse("TH/GOV/DOPA", false),
            Err(IdError::Parts { found: 3, .. })
        ));
    }

    #[test]
    fn parts_are_percent_decoded_and_checked() {
        let c = ClientId::parse("TH/COM/A%2BB/SUB%3D1", false).unwrap();
        assert_eq!(c.member, "A+B");
        assert_eq!(c.subsystem.as_deref(), Some("SUB=1"));
        assert_eq!(c.encoded(), "TH/COM/A%2BB/SUB%3D1");
        assert_eq!(ClientId::parse(&c.encoded(), false).unwrap(), c);
        for bad in [
            "TH/GOV//SUB",
            "TH/GOV/A B/SUB",
            "TH/GOV/ก/SUB",
            "TH/GOV/A%2FB/SUB",
            "TH/GOV/A%zz/SUB",
            "TH/XXX/A/SUB",
        ] {
            assert!(ClientId::parse(bad, false).is_err(), "{bad}");
        }
        assert!(ClientId::parse(&format!("TH/GOV/{}/S", "A".repeat(256)), false).is_err());
    }

    #[test]
    fn services_parse() {
        let s = ServiceId::parse("TH/GOV/DOPA/CIVREG/person").unwrap();
        assert_eq!(s.provider.to_string(), "TH/GOV/DOPA/CIVREG");
        assert_eq!(s.code, "person");
        assert_eq!(s.key(), "GOV/DOPA/CIVREG/person");
        assert!(ServiceId::parse("TH/GOV/DOPA/person").is_err());
        assert!(ServiceId::parse("person").is_err());
    }
}
