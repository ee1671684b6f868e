//! The shared vocabulary of Saphan: configuration loading, bilingual (Thai/English) text, the
//! problem descriptions that every capability's errors turn into, a clock, and redaction of
//! personal data for logs.
//!
//! This crate owns no state and does no I/O beyond reading the configuration file. It must never
//! depend on HTTP, the database or any capability crate: everything else depends on it.

pub mod clock;
pub mod config;
pub mod national_id;
pub mod problem;
pub mod redact;
pub mod text;

pub use clock::{Clock, SystemClock};
pub use config::{Config, ConfigError};
pub use national_id::{parse_juristic_id, NationalId, NationalIdError};
pub use problem::{Problem, ProblemKind};
pub use text::{Lang, Text};

/// A fresh random identifier: 128 bits, lowercase hex. For request ids, nonces and file names;
/// never for anything whose ordering matters.
pub fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}
