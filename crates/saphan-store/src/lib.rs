//! Saphan's database layer: one connection pool over an embedded SQLite file or PostgreSQL, the
//! migration runner, and (feature `testing`) throw-away test databases on both.
//!
//! Capability crates own their tables: each exports its [`Migration`]s and runs its own queries
//! through [`Db`]. SQL here is written once for both databases: `$1`-style parameters, `BIGINT`
//! and `TEXT` columns, and the `{blob}` token in migrations for binary columns. This crate must
//! never know any capability's tables.

mod db;
mod migrate;
#[cfg(feature = "testing")]
pub mod testing;

pub use db::{Backend, Db, StoreError};
pub use migrate::{Migration, SchemaStatus};
pub use sqlx;
