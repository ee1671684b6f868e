//! Brute-force throttling, kept in the database so every node and every restart sees it.
//!
//! Policy (documented in `docs/architecture.md`):
//! - **Per account**: after `account_lock_after` failures in a row, the account refuses attempts
//!   for 30 s, doubling with each further failure up to `account_lock_max_secs`. A success resets
//!   it. Devices that signed in to the account before (they hold a device token) are exempt, so
//!   an attacker who knows someone's identifier cannot lock that person out of their own phone.
//!   They pass the per-source lock too, so one guesser behind a shared address (a carrier's NAT)
//!   cannot lock out everyone there either.
//! - **Per source**: one network source may fail `source_failures_per_window` times per window;
//!   then it is refused until the window ends, whichever accounts it tries.
//! - While locked, the password is not evaluated and the answer is the same for accounts that
//!   exist and accounts that do not.

use saphan_core::config::IdentityConfig;
use saphan_store::sqlx::{self, Row};
use saphan_store::Db;

use crate::IdentityError;

const FIRST_LOCK_SECS: u64 = 30;

#[derive(Debug, Clone)]
pub struct ThrottlePolicy {
    pub account_lock_after: u32,
    pub account_lock_max_secs: u64,
    pub source_failures_per_window: u32,
    pub source_window_secs: u64,
}

impl ThrottlePolicy {
    pub fn from_config(config: &IdentityConfig) -> ThrottlePolicy {
        ThrottlePolicy {
            account_lock_after: config.account_lock_after,
            account_lock_max_secs: config.account_lock_max_secs,
            source_failures_per_window: config.source_failures_per_window,
            source_window_secs: config.source_window_secs,
        }
    }

    /// How long an account stays locked after `failures` failures in a row.
    pub fn account_lock_secs(&self, failures: u32) -> u64 {
        if failures < self.account_lock_after {
            return 0;
        }
        let doublings = (failures - self.account_lock_after).min(20);
        (FIRST_LOCK_SECS << doublings).min(self.account_lock_max_secs)
    }
}

/// Whether an attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    Locked { retry_after_secs: u64 },
}

#[derive(Clone)]
pub struct Throttle {
    db: Db,
    policy: ThrottlePolicy,
}

fn account_key(account: &str) -> String {
    format!("account:{account}")
}

fn source_key(source: &str) -> String {
    format!("source:{source}")
}

impl Throttle {
    pub fn new(db: Db, policy: ThrottlePolicy) -> Throttle {
        Throttle { db, policy }
    }

    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    /// `account` is a pseudonymous key for the account (never the identifier itself).
    pub async fn check(
        &self,
        account: &str,
        source: &str,
        known_device: bool,
        now: i64,
    ) -> Result<Gate, IdentityError> {
        Ok(self
            .check_counting(account, source, known_device, now)
            .await?
            .0)
    }

    /// [`Throttle::check`], also saying whether the account has failures on record (so that a
    /// success need not write when there is nothing to clear).
    pub async fn check_counting(
        &self,
        account: &str,
        source: &str,
        known_device: bool,
        now: i64,
    ) -> Result<(Gate, bool), IdentityError> {
        let rows =
            sqlx::query("SELECT key, locked_until FROM id_throttle WHERE key = $1 OR key = $2")
                .bind(account_key(account))
                .bind(source_key(source))
                .fetch_all(self.db.pool())
                .await?;
        let mut until = 0i64;
        let mut account_failures = false;
        for row in rows {
            let key: String = row.get(0);
            let locked_until: i64 = row.get(1);
            if key.starts_with("account:") {
                account_failures = true;
            }
            // A device that signed in to this account before passes both locks: neither a
            // guesser of the identifier nor a neighbour behind the same address shuts it out.
            if known_device {
                continue;
            }
            until = until.max(locked_until);
        }
        let gate = if until > now {
            Gate::Locked {
                retry_after_secs: (until - now) as u64,
            }
        } else {
            Gate::Open
        };
        Ok((gate, account_failures))
    }

    pub async fn record_failure(
        &self,
        account: &str,
        source: &str,
        now: i64,
    ) -> Result<(), IdentityError> {
        let failures: i64 = sqlx::query(
            "INSERT INTO id_throttle (key, failures, window_start, locked_until) VALUES ($1, 1, $2, 0) \
             ON CONFLICT (key) DO UPDATE SET failures = id_throttle.failures + 1 RETURNING failures",
        )
        .bind(account_key(account))
        .bind(now)
        .fetch_one(self.db.pool())
        .await?
        .get(0);
        let lock = self.policy.account_lock_secs(failures as u32);
        if lock > 0 {
            sqlx::query("UPDATE id_throttle SET locked_until = $1 WHERE key = $2")
                .bind(now + lock as i64)
                .bind(account_key(account))
                .execute(self.db.pool())
                .await?;
        }

        let window = self.policy.source_window_secs as i64;
        let row = sqlx::query(
            "INSERT INTO id_throttle (key, failures, window_start, locked_until) VALUES ($1, 1, $2, 0) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN id_throttle.window_start + $3 <= $2 THEN 1 ELSE id_throttle.failures + 1 END, \
               window_start = CASE WHEN id_throttle.window_start + $3 <= $2 THEN $2 ELSE id_throttle.window_start END \
             RETURNING failures, window_start",
        )
        .bind(source_key(source))
        .bind(now)
        .bind(window)
        .fetch_one(self.db.pool())
        .await?;
        let (failures, window_start): (i64, i64) = (row.get(0), row.get(1));
        if failures >= i64::from(self.policy.source_failures_per_window) {
            sqlx::query("UPDATE id_throttle SET locked_until = $1 WHERE key = $2")
                .bind(window_start + window)
                .bind(source_key(source))
                .execute(self.db.pool())
                .await?;
        }
        Ok(())
    }

    /// A success clears the account's failures (not the source's: one good password from a
    /// source does not excuse its other failures).
    pub async fn record_success(&self, account: &str) -> Result<(), IdentityError> {
        sqlx::query("DELETE FROM id_throttle WHERE key = $1")
            .bind(account_key(account))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            account_lock_after: 3,
            account_lock_max_secs: 100,
            source_failures_per_window: 5,
            source_window_secs: 60,
        }
    }

    #[test]
    fn account_locks_double_and_are_capped() {
        let p = policy();
        assert_eq!(p.account_lock_secs(2), 0);
        assert_eq!(p.account_lock_secs(3), 30);
        assert_eq!(p.account_lock_secs(4), 60);
        assert_eq!(p.account_lock_secs(5), 100);
        assert_eq!(p.account_lock_secs(500), 100);
    }

    #[tokio::test]
    async fn locks_per_account_and_per_source_on_both_databases() {
        saphan_store::testing::for_each_backend(|db| async move {
            db.migrate(crate::MIGRATIONS).await.unwrap();
            let throttle = Throttle::new(db.clone(), policy());
            let now = 1_000_000;
            for _ in 0..3 {
                assert_eq!(
                    throttle.check("a", "10.0.0.1", false, now).await.unwrap(),
                    Gate::Open
                );
                throttle.record_failure("a", "10.0.0.1", now).await.unwrap();
            }
            // The account is locked for unknown devices, from any source...
            assert_eq!(
                throttle.check("a", "10.0.0.2", false, now).await.unwrap(),
                Gate::Locked {
                    retry_after_secs: 30
                }
            );
            // ...but not for a device that signed in before, nor for another account.
            assert_eq!(
                throttle.check("a", "10.0.0.2", true, now).await.unwrap(),
                Gate::Open
            );
            assert_eq!(
                throttle.check("b", "10.0.0.2", false, now).await.unwrap(),
                Gate::Open
            );
            // The lock runs out.
            assert_eq!(
                throttle
                    .check("a", "10.0.0.2", false, now + 31)
                    .await
                    .unwrap(),
                Gate::Open
            );

            // A source spraying many accounts is locked even for accounts it never tried.
            for i in 0..2 {
                throttle
                    .record_failure(&format!("spray{i}"), "10.0.0.1", now)
                    .await
                    .unwrap();
            }
            assert_eq!(
                throttle
                    .check("fresh", "10.0.0.1", false, now)
                    .await
                    .unwrap(),
                Gate::Locked {
                    retry_after_secs: 60
                }
            );
            // A device that signed in to an account before is not shut out by its neighbours.
            assert_eq!(
                throttle
                    .check("fresh", "10.0.0.1", true, now)
                    .await
                    .unwrap(),
                Gate::Open
            );
            // The window ends and counting starts again.
            assert_eq!(
                throttle
                    .check("fresh", "10.0.0.1", false, now + 61)
                    .await
                    .unwrap(),
                Gate::Open
            );
            throttle
                .record_failure("x", "10.0.0.1", now + 61)
                .await
                .unwrap();
            assert_eq!(
                throttle
                    .check("fresh", "10.0.0.1", false, now + 61)
                    .await
                    .unwrap(),
                Gate::Open
            );

            throttle.record_success("a").await.unwrap();
            throttle
                .record_failure("a", "10.0.0.3", now + 100)
                .await
                .unwrap();
            assert_eq!(
                throttle
                    .check("a", "10.0.0.3", false, now + 100)
                    .await
                    .unwrap(),
                Gate::Open
            );
        })
        .await;
    }
}
