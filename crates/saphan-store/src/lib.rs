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
pub use rusqlite;
pub use sqlx;

/// `($1,$2,…,$c),($c+1,…),…` for a multi-row `INSERT … VALUES` of `rows` rows of `columns`
/// columns, numbered for both databases.
pub fn values_placeholders(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ",(" });
        for c in 0..columns {
            if c > 0 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&(r * columns + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(super::values_placeholders(2, 3), "($1,$2,$3),($4,$5,$6)");
        assert_eq!(super::values_placeholders(1, 1), "($1)");
    }
}
