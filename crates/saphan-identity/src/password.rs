//! Passwords: argon2id hashes in PHC string form, a length policy, and a constant-cost answer for
//! unknown accounts so that timing does not tell which accounts exist.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use saphan_core::config::IdentityConfig;

use crate::IdentityError;

/// Shortest password accepted (NIST SP 800-63B asks for at least 8; more for single-factor use).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest accepted, so hashing cost cannot be driven up by the caller.
pub const MAX_PASSWORD_BYTES: usize = 256;

/// Hashes and verifies passwords with one set of argon2id parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the account does not exist.
    decoy: String,
}

impl PasswordHasher {
    pub fn new(config: &IdentityConfig) -> Result<PasswordHasher, IdentityError> {
        let params = Params::new(
            config.password_memory_kib,
            config.password_iterations,
            config.password_parallelism,
            None,
        )
        .map_err(|e| IdentityError::Config(format!("argon2 parameters: {e}")))?;
        let mut hasher = PasswordHasher {
            params,
            decoy: String::new(),
        };
        hasher.decoy = hasher.hash_unchecked(&saphan_core::random_id())?;
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Checks the policy, then hashes.
    pub fn hash(&self, password: &str) -> Result<String, IdentityError> {
        check_policy(password)?;
        self.hash_unchecked(password)
    }

    fn hash_unchecked(&self, password: &str) -> Result<String, IdentityError> {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| IdentityError::Internal(format!("argon2: {e}")))
    }

    /// True when `password` matches `stored`. Runs in the hash's own parameters, so hashes made
    /// before a parameter change still verify.
    pub fn verify(&self, password: &str, stored: &str) -> bool {
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        match PasswordHash::new(stored) {
            Ok(parsed) => self
                .argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Spends the same work as a real verification, for accounts that do not exist.
    pub fn verify_decoy(&self, password: &str) {
        let _ = self.verify(password, &self.decoy);
    }
}

impl PasswordHasher {
    /// [`PasswordHasher::verify`] on the blocking pool: argon2 takes tens of milliseconds of CPU
    /// and must not stall the async workers that serve every other request.
    pub async fn verify_off_thread(&self, password: &str, stored: Option<String>) -> bool {
        let hasher = self.clone();
        let password = zeroize::Zeroizing::new(password.to_string());
        tokio::task::spawn_blocking(move || match stored {
            Some(hash) => hasher.verify(&password, &hash),
            None => {
                hasher.verify_decoy(&password);
                false
            }
        })
        .await
        .unwrap_or(false)
    }

    /// [`PasswordHasher::hash`] on the blocking pool.
    pub async fn hash_off_thread(&self, password: &str) -> Result<String, IdentityError> {
        check_policy(password)?;
        let hasher = self.clone();
        let password = zeroize::Zeroizing::new(password.to_string());
        tokio::task::spawn_blocking(move || hasher.hash_unchecked(&password))
            .await
            .map_err(|e| IdentityError::Internal(format!("hashing task: {e}")))?
    }
}

pub fn check_policy(password: &str) -> Result<(), IdentityError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(IdentityError::WeakPassword);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_wrong_passwords_do_not() {
        let hasher = PasswordHasher::new(&IdentityConfig::default()).unwrap();
        let hash = hasher.hash("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify("correct horse battery", &hash));
        assert!(!hasher.verify("correct horse batterx", &hash));
        assert!(!hasher.verify("correct horse battery", "not a hash"));
    }

    #[test]
    fn policy_refuses_short_and_huge_passwords() {
        let hasher = PasswordHasher::new(&IdentityConfig::default()).unwrap();
        assert!(matches!(
            hasher.hash("short"),
            Err(IdentityError::WeakPassword)
        ));
        assert!(hasher.hash(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        // Thai characters count as characters, not bytes.
        assert!(hasher.hash("รหัสผ่านยาวพอ").is_ok());
    }
}
