//! Thai 13-digit identification numbers: national ids of persons and juristic-person ids share
//! the format. The last digit is a check digit: (11 − Σ dᵢ·(14 − i) mod 11) mod 10 over the first
//! twelve digits; the first digit is never 0 or 9 for a person.
//!
//! Fixtures and demo data must never use real people's numbers: [`NationalId::synthetic`] makes
//! valid ones from a random source.

use std::fmt;
use std::str::FromStr;

use crate::{Problem, ProblemKind, Text};

/// A 13-digit identification number with a valid check digit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NationalId([u8; 13]);

/// Why a text is not a national id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NationalIdError {
    #[error("a national id has 13 digits (dashes and spaces allowed between them)")]
    Length,
    #[error("a national id does not start with 0 or 9")]
    FirstDigit,
    #[error("the check digit does not match: the number was mistyped")]
    CheckDigit,
}

impl NationalIdError {
    pub fn problem(self) -> Problem {
        let detail = match self {
            NationalIdError::Length => {
                Text::new("เลขประจำตัวประชาชนมี 13 หลัก", "A national id has 13 digits")
            }
            NationalIdError::FirstDigit => Text::new(
                "เลขประจำตัวประชาชนไม่ขึ้นต้นด้วย 0 หรือ 9",
                "A national id does not start with 0 or 9",
            ),
            NationalIdError::CheckDigit => Text::new(
                "เลขประจำตัวประชาชนไม่ถูกต้อง โปรดตรวจสอบอีกครั้ง",
                "This national id is not valid; please check it",
            ),
        };
        Problem::new(
            ProblemKind::BadRequest,
            "invalid-national-id",
            Text::new("เลขประจำตัวประชาชนไม่ถูกต้อง", "Invalid national id"),
        )
        .with_detail(detail)
    }
}

fn check_digit(first_twelve: &[u8]) -> u8 {
    let sum: u32 = first_twelve
        .iter()
        .enumerate()
        .map(|(i, d)| u32::from(*d) * (13 - i as u32))
        .sum();
    ((11 - sum % 11) % 10) as u8
}

impl NationalId {
    /// A valid, synthetic number: first digit 1–8, eleven random digits, then the check digit.
    pub fn synthetic(rng: &mut impl rand::Rng) -> NationalId {
        let mut digits = [0u8; 13];
        digits[0] = rng.gen_range(1..=8);
        for d in &mut digits[1..12] {
            *d = rng.gen_range(0..=9);
        }
        digits[12] = check_digit(&digits[..12]);
        NationalId(digits)
    }

    /// The number with first digit `first` (1–8) and `body` as the next eleven digits, with
    /// its check digit: distinct bodies give distinct numbers (for generated populations).
    pub fn from_parts(first: u8, body: u64) -> Option<NationalId> {
        if !(1..=8).contains(&first) || body >= 100_000_000_000 {
            return None;
        }
        let mut digits = [0u8; 13];
        digits[0] = first;
        let mut rest = body;
        for d in digits[1..12].iter_mut().rev() {
            *d = (rest % 10) as u8;
            rest /= 10;
        }
        digits[12] = check_digit(&digits[..12]);
        Some(NationalId(digits))
    }

    /// The 13 digits, no separators.
    pub fn digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }

    /// As printed on the ID card: `1-2345-67890-12-1`.
    pub fn formatted(&self) -> String {
        let d = self.digits();
        format!(
            "{}-{}-{}-{}-{}",
            &d[0..1],
            &d[1..5],
            &d[5..10],
            &d[10..12],
            &d[12..13]
        )
    }
}

/// Thirteen digits (dashes and spaces allowed between them); the check digit is not yet checked.
fn parse_digits(text: &str) -> Result<[u8; 13], NationalIdError> {
    let mut digits = [0u8; 13];
    let mut n = 0;
    for c in text.trim().chars() {
        match c {
            '0'..='9' if n < 13 => {
                digits[n] = c as u8 - b'0';
                n += 1;
            }
            '-' | ' ' if n > 0 => {}
            _ => return Err(NationalIdError::Length),
        }
    }
    if n != 13 {
        return Err(NationalIdError::Length);
    }
    Ok(digits)
}

fn verify_check_digit(digits: &[u8; 13]) -> Result<(), NationalIdError> {
    if check_digit(&digits[..12]) != digits[12] {
        return Err(NationalIdError::CheckDigit);
    }
    Ok(())
}

/// A juristic-person id (13 digits, same check digit; the Department of Business Development's
/// numbers start with 0), as its 13 digits without separators.
pub fn parse_juristic_id(text: &str) -> Result<String, NationalIdError> {
    let digits = parse_digits(text)?;
    verify_check_digit(&digits)?;
    Ok(digits.iter().map(|d| char::from(b'0' + d)).collect())
}

impl FromStr for NationalId {
    type Err = NationalIdError;

    fn from_str(text: &str) -> Result<NationalId, NationalIdError> {
        let digits = parse_digits(text)?;
        if digits[0] == 0 || digits[0] == 9 {
            return Err(NationalIdError::FirstDigit);
        }
        verify_check_digit(&digits)?;
        Ok(NationalId(digits))
    }
}

impl fmt::Display for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits())
    }
}

/// Debug output never shows the number: ids are personal data and debug output reaches logs.
impl fmt::Debug for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NationalId(*************)")
    }
}

impl serde::Serialize for NationalId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.digits())
    }
}

impl<'de> serde::Deserialize<'de> for NationalId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<NationalId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn reference_vectors() {
        // shared/refs/identity.md
        for valid in [
            "1111111111119",
            "1101700000001",
            "1234567890121",
            "1234545678781",
        ] {
            assert!(valid.parse::<NationalId>().is_ok(), "{valid}");
        }
        assert_eq!(
            "1234545678789".parse::<NationalId>(),
            Err(NationalIdError::CheckDigit)
        );
        assert_eq!(
            "0234545678781".parse::<NationalId>(),
            Err(NationalIdError::FirstDigit)
        );
        assert_eq!(
            "123454567878".parse::<NationalId>(),
            Err(NationalIdError::Length)
        );
        assert_eq!(
            "12345456787812".parse::<NationalId>(),
            Err(NationalIdError::Length)
        );
        assert_eq!(
            "12345x5678781".parse::<NationalId>(),
            Err(NationalIdError::Length)
        );
    }

    #[test]
    fn card_formatting_round_trips_and_debug_hides_the_number() {
        let id: NationalId = "1-2345-67890-12-1".parse().unwrap();
        assert_eq!(id.formatted(), "1-2345-67890-12-1");
        assert_eq!(id.to_string(), "1234567890121");
        assert!(!format!("{id:?}").contains("1234"));
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"1234567890121\"");
        let back: NationalId = serde_json::from_str("\"1-2345-67890-12-1\"").unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<NationalId>("\"1234567890122\"").is_err());
    }

    #[test]
    fn synthetic_numbers_are_valid_and_deterministic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let ids: Vec<NationalId> = (0..1000).map(|_| NationalId::synthetic(&mut rng)).collect();
        for id in &ids {
            assert_eq!(id.digits().parse::<NationalId>().as_ref(), Ok(id));
        }
        let mut again = rand::rngs::StdRng::seed_from_u64(7);
        assert_eq!(NationalId::synthetic(&mut again), ids[0]);
    }

    /// `11 − (Σ mod 11)`, in 1..=11, before the final `mod 10`.
    fn raw_check(digits: &[u8]) -> u32 {
        let sum: u32 = digits[..12]
            .iter()
            .enumerate()
            .map(|(i, d)| u32::from(*d) * (13 - i as u32))
            .sum();
        11 - sum % 11
    }

    #[test]
    /// The checksum's two blind spots, so that nobody relies on it for more: the third digit has
    /// weight 11 ≡ 0 (mod 11), so a typo there never changes the check; and `mod 10` folds the
    /// raw values 11 and 1 onto the same check digit. Every other single-digit typo is caught.
    fn single_digit_typos_pass_only_in_the_checksums_blind_spots() {
        let id: Vec<u8> = "1101700000001".bytes().map(|b| b - b'0').collect();
        let (mut caught, mut folded) = (0, 0);
        for i in 1..12 {
            for d in 0..=9u8 {
                if id[i] == d {
                    continue;
                }
                let mut typo = id.clone();
                typo[i] = d;
                let text: String = typo.iter().map(|d| char::from(b'0' + d)).collect();
                if text.parse::<NationalId>().is_err() {
                    caught += 1;
                } else {
                    let pair = [raw_check(&id), raw_check(&typo)];
                    let folded_pair = pair.contains(&1) && pair.contains(&11);
                    assert!(i == 2 || folded_pair, "{text}");
                    folded += 1;
                }
            }
        }
        // For this number: 9 typos in the third digit and 10 folds pass, 80 are caught.
        assert_eq!((caught, folded), (80, 19));
    }
}
