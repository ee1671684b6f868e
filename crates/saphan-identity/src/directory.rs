//! The directory: identities and their sign-in methods, roles and act-for relations in the
//! database, every change and every sign-in attempt in the audit log.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use rand::RngCore;
use saphan_audit::{AuditEntry, AuditLog};
use saphan_core::config::IdentityConfig;
use saphan_core::{NationalId, Text};
use saphan_store::sqlx::{self, any::AnyRow, Row};
use saphan_store::Db;
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::OnceCell;

use crate::assurance::{Aal, Ial};
use crate::authz::{Action, AgencyRole, Resource, Role, Subject};
use crate::identity::{ActFor, Identity, IdentityKind, LoginId, NewIdentity};
use crate::password::PasswordHasher;
use crate::throttle::{Gate, Throttle, ThrottlePolicy};
use crate::{totp, IdentityError};

const IDENTITY_COLUMNS: &str = "id, kind, national_id, passport_number, nationality, name_th, \
     name_en, ial, proofing, reproofing_required, created_at";

/// An agency whose officials hold roles and whose systems are OpenID clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agency {
    pub code: String,
    pub name: Text,
}

/// Which sign-in methods an identity has, and so the highest AAL it can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Methods {
    pub password: bool,
    pub totp: bool,
    pub passkeys: usize,
    pub recovery_codes_left: usize,
}

impl Methods {
    pub fn max_aal(&self) -> Aal {
        if self.totp || self.passkeys > 0 {
            Aal::L2
        } else {
            Aal::L1
        }
    }
}

/// One password sign-in attempt, as the sign-in page collects it.
pub struct PasswordAttempt<'a> {
    pub login: &'a LoginId,
    pub password: &'a str,
    /// The network source (client address), for the per-source throttle. Never audited in clear.
    pub source: &'a str,
    /// The device token this browser holds from an earlier sign-in, if any.
    pub device_token: Option<&'a str>,
}

/// A password that matched.
#[derive(Debug, Clone)]
pub struct PasswordOutcome {
    pub identity: Identity,
    /// A TOTP code must follow before the sign-in counts.
    pub second_factor_required: bool,
}

/// Why a sign-in did not succeed. Deliberately coarse: it never says whether the account exists.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the identifier or the password is wrong")]
    Invalid,
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    Locked { retry_after_secs: u64 },
    #[error(transparent)]
    Other(#[from] IdentityError),
}

impl From<sqlx::Error> for SignInError {
    fn from(e: sqlx::Error) -> Self {
        SignInError::Other(e.into())
    }
}

/// A passkey as stored: the WebAuthn library's own serialised credential.
#[derive(Debug, Clone, Serialize)]
pub struct StoredPasskey {
    pub credential_id: String,
    pub name: String,
    #[serde(skip)]
    pub passkey: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[derive(Clone)]
pub struct Directory {
    db: Db,
    audit: AuditLog,
    hasher: PasswordHasher,
    throttle: Throttle,
    secret: Arc<OnceCell<[u8; 32]>>,
}

use saphan_core::clock::{now_text, now_unix};

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

fn identity_from_row(row: &AnyRow) -> Result<Identity, IdentityError> {
    let national_id: Option<String> = row.get(2);
    let ial: String = row.get(7);
    Ok(Identity {
        id: row.get(0),
        kind: IdentityKind::parse(&row.get::<String, _>(1))?,
        national_id: national_id
            .map(|n| n.parse::<NationalId>())
            .transpose()
            .map_err(|e| IdentityError::Internal(format!("stored national id: {e}")))?,
        passport_number: row.get(3),
        nationality: row.get(4),
        name: Text::owned(row.get::<String, _>(5), row.get::<String, _>(6)),
        ial: ial
            .parse()
            .map_err(|e| IdentityError::Internal(format!("stored ial: {e}")))?,
        proofing: row.get(8),
        reproofing_required: row.get::<i64, _>(9) != 0,
        created_at: row.get(10),
    })
}

impl Directory {
    pub fn new(
        db: Db,
        audit: AuditLog,
        config: &IdentityConfig,
    ) -> Result<Directory, IdentityError> {
        Ok(Directory {
            throttle: Throttle::new(db.clone(), ThrottlePolicy::from_config(config)),
            hasher: PasswordHasher::new(config)?,
            db,
            audit,
            secret: Arc::new(OnceCell::new()),
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    async fn record(
        &self,
        actor: impl Into<String>,
        action: &str,
        subject: impl Into<String>,
        payload: &impl Serialize,
    ) -> Result<(), IdentityError> {
        self.audit
            .append(AuditEntry::new(actor, action, subject, payload))
            .await?;
        Ok(())
    }

    /// A platform secret kept in the database (so every node shares it), made on first use.
    pub async fn platform_secret(&self, name: &str) -> Result<[u8; 32], IdentityError> {
        sqlx::query(
            "INSERT INTO id_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(random_hex(32))
        .execute(self.db.pool())
        .await?;
        let value: String = sqlx::query("SELECT value FROM id_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(self.db.pool())
            .await?
            .get(0);
        let bytes = hex::decode(value)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| IdentityError::Internal(format!("secret `{name}` is damaged")))?;
        Ok(bytes)
    }

    /// HMAC-SHA-256 (hex) under the platform's identity secret, separated by `label`: for
    /// pseudonyms, device tokens and short-lived signed cookies.
    pub async fn mac(&self, label: &str, message: &str) -> Result<String, IdentityError> {
        let secret = *self
            .secret
            .get_or_try_init(|| self.platform_secret("identity"))
            .await?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("any key length");
        mac.update(label.as_bytes());
        mac.update(b"\0");
        mac.update(message.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// A keyed pseudonym for an account, for throttling and for auditing attempts on identifiers
    /// that may not exist, without storing the identifier.
    async fn account_pseudonym(&self, login: &LoginId) -> Result<String, IdentityError> {
        Ok(self.mac("account", &login.key()).await?[..32].to_string())
    }

    // ---- identities -------------------------------------------------------------------------

    pub async fn create(&self, actor: &str, new: NewIdentity) -> Result<Identity, IdentityError> {
        let id = uuid::Uuid::new_v4().to_string();
        let (kind, national_id, passport, nationality) = match &new.login {
            LoginId::NationalId(nid) => (IdentityKind::Citizen, Some(nid.digits()), None, None),
            LoginId::Passport {
                number,
                nationality,
            } => (
                IdentityKind::Foreigner,
                None,
                Some(number.clone()),
                Some(nationality.clone()),
            ),
        };
        let created_at = now_text();
        let inserted = sqlx::query(&format!(
            "INSERT INTO id_identities (login_key, {IDENTITY_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11) ON CONFLICT (login_key) DO NOTHING"
        ))
        .bind(new.login.key())
        .bind(&id)
        .bind(kind.as_str())
        .bind(&national_id)
        .bind(&passport)
        .bind(&nationality)
        .bind(new.name.th.as_ref())
        .bind(new.name.en.as_ref())
        .bind(new.ial.as_str())
        .bind(&new.proofing)
        .bind(&created_at)
        .execute(self.db.pool())
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(IdentityError::Duplicate);
        }
        self.record(
            actor,
            "identity.created",
            format!("identity:{id}"),
            &serde_json::json!({ "kind": kind.as_str(), "ial": new.ial.as_str(), "proofing": new.proofing }),
        )
        .await?;
        self.get(&id).await?.ok_or(IdentityError::NoSuchIdentity)
    }

    pub async fn get(&self, id: &str) -> Result<Option<Identity>, IdentityError> {
        let row = sqlx::query(&format!(
            "SELECT {IDENTITY_COLUMNS} FROM id_identities WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(identity_from_row).transpose()
    }

    pub async fn find(&self, login: &LoginId) -> Result<Option<Identity>, IdentityError> {
        let row = sqlx::query(&format!(
            "SELECT {IDENTITY_COLUMNS} FROM id_identities WHERE login_key = $1"
        ))
        .bind(login.key())
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(identity_from_row).transpose()
    }

    /// Records a fresh proofing (e.g. a ThaID sign-in at a higher level): the IAL rises to it
    /// and any pending re-proofing after a recovery is satisfied.
    pub async fn reproof(
        &self,
        identity_id: &str,
        ial: Ial,
        proofing: &str,
    ) -> Result<(), IdentityError> {
        let current = self
            .get(identity_id)
            .await?
            .ok_or(IdentityError::NoSuchIdentity)?;
        let new_ial = if current.reproofing_required {
            ial
        } else {
            current.ial.max(ial)
        };
        sqlx::query(
            "UPDATE id_identities SET ial = $1, proofing = $2, reproofing_required = 0 WHERE id = $3",
        )
        .bind(new_ial.as_str())
        .bind(proofing)
        .bind(identity_id)
        .execute(self.db.pool())
        .await?;
        self.record(
            format!("identity:{identity_id}"),
            "identity.reproofed",
            format!("identity:{identity_id}"),
            &serde_json::json!({ "ial": new_ial.as_str(), "proofing": proofing }),
        )
        .await
    }

    // ---- passwords and TOTP -----------------------------------------------------------------

    pub async fn set_password(
        &self,
        actor: &str,
        identity_id: &str,
        password: &str,
    ) -> Result<(), IdentityError> {
        let hash = self.hasher.hash_off_thread(password).await?;
        self.store_password_hash(identity_id, &hash).await?;
        self.record(
            actor,
            "identity.password.set",
            format!("identity:{identity_id}"),
            &(),
        )
        .await
    }

    /// Stores a hash made elsewhere (seeding many identities hashes once and shares the hash).
    pub async fn store_password_hash(
        &self,
        identity_id: &str,
        hash: &str,
    ) -> Result<(), IdentityError> {
        sqlx::query(
            "INSERT INTO id_passwords (identity_id, hash, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (identity_id) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
        )
        .bind(identity_id)
        .bind(hash)
        .bind(now_text())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Starts TOTP enrolment: a new secret, not used for sign-in until confirmed with a code.
    pub async fn begin_totp(&self, identity_id: &str) -> Result<Vec<u8>, IdentityError> {
        let mut secret = vec![0u8; 20];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        sqlx::query(
            "INSERT INTO id_totp (identity_id, secret, confirmed, last_step) VALUES ($1, $2, 0, 0) \
             ON CONFLICT (identity_id) DO UPDATE SET secret = excluded.secret, confirmed = 0, last_step = 0 \
             WHERE id_totp.confirmed = 0",
        )
        .bind(identity_id)
        .bind(totp::base32_encode(&secret))
        .execute(self.db.pool())
        .await?;
        let stored = self.totp_secret(identity_id, false).await?;
        match stored {
            Some((s, false)) if s == secret => Ok(secret),
            _ => Err(IdentityError::Invalid(
                "TOTP is already set up; remove it before setting it up again".into(),
            )),
        }
    }

    /// Finishes TOTP enrolment with a code from the app.
    pub async fn confirm_totp(&self, identity_id: &str, code: &str) -> Result<bool, IdentityError> {
        let Some((secret, false)) = self.totp_secret(identity_id, false).await? else {
            return Ok(false);
        };
        let Some(step) = totp::matching_step(&secret, code, now_unix()) else {
            return Ok(false);
        };
        sqlx::query("UPDATE id_totp SET confirmed = 1, last_step = $1 WHERE identity_id = $2")
            .bind(step)
            .bind(identity_id)
            .execute(self.db.pool())
            .await?;
        self.record(
            format!("identity:{identity_id}"),
            "identity.totp.enrolled",
            format!("identity:{identity_id}"),
            &(),
        )
        .await?;
        Ok(true)
    }

    /// Removes the authenticator app (the person asked; the caller checked their sign-in).
    pub async fn remove_totp(&self, identity_id: &str) -> Result<bool, IdentityError> {
        let removed = sqlx::query("DELETE FROM id_totp WHERE identity_id = $1")
            .bind(identity_id)
            .execute(self.db.pool())
            .await?
            .rows_affected()
            == 1;
        if removed {
            let subject = format!("identity:{identity_id}");
            self.record(subject.clone(), "identity.totp.removed", subject, &())
                .await?;
        }
        Ok(removed)
    }

    /// The secret of an enrolment not yet confirmed, to show again after a mistyped code.
    pub async fn pending_totp_secret(
        &self,
        identity_id: &str,
    ) -> Result<Option<Vec<u8>>, IdentityError> {
        Ok(match self.totp_secret(identity_id, false).await? {
            Some((secret, false)) => Some(secret),
            _ => None,
        })
    }

    /// Sets a confirmed TOTP secret directly (seeding and migration from another system).
    pub async fn store_totp_secret(
        &self,
        identity_id: &str,
        secret: &[u8],
    ) -> Result<(), IdentityError> {
        sqlx::query(
            "INSERT INTO id_totp (identity_id, secret, confirmed, last_step) VALUES ($1, $2, 1, 0) \
             ON CONFLICT (identity_id) DO UPDATE SET secret = excluded.secret, confirmed = 1, last_step = 0",
        )
        .bind(identity_id)
        .bind(totp::base32_encode(secret))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn totp_secret(
        &self,
        identity_id: &str,
        confirmed_only: bool,
    ) -> Result<Option<(Vec<u8>, bool)>, IdentityError> {
        let row = sqlx::query("SELECT secret, confirmed FROM id_totp WHERE identity_id = $1")
            .bind(identity_id)
            .fetch_optional(self.db.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let confirmed = row.get::<i64, _>(1) != 0;
        if confirmed_only && !confirmed {
            return Ok(None);
        }
        let secret = totp::base32_decode(&row.get::<String, _>(0))
            .ok_or_else(|| IdentityError::Internal("stored TOTP secret is damaged".into()))?;
        Ok(Some((secret, confirmed)))
    }

    pub async fn methods(&self, identity_id: &str) -> Result<Methods, IdentityError> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM id_passwords WHERE identity_id = $1), \
               (SELECT COUNT(*) FROM id_totp WHERE identity_id = $1 AND confirmed = 1), \
               (SELECT COUNT(*) FROM id_passkeys WHERE identity_id = $1), \
               (SELECT COUNT(*) FROM id_recovery_codes WHERE identity_id = $1 AND used_at IS NULL)",
        )
        .bind(identity_id)
        .fetch_one(self.db.pool())
        .await?;
        Ok(Methods {
            password: row.get::<i64, _>(0) > 0,
            totp: row.get::<i64, _>(1) > 0,
            passkeys: row.get::<i64, _>(2) as usize,
            recovery_codes_left: row.get::<i64, _>(3) as usize,
        })
    }

    // ---- sign-in ----------------------------------------------------------------------------

    /// A device token for the browser that just signed in to `identity_id`: it exempts that
    /// device from the per-account lock (see [`crate::throttle`]).
    pub async fn device_token(&self, identity_id: &str) -> Result<String, IdentityError> {
        let nonce = random_hex(16);
        let mac = self
            .mac("device", &format!("{identity_id}.{nonce}"))
            .await?;
        Ok(format!("{nonce}.{mac}"))
    }

    async fn device_is_known(
        &self,
        identity_id: &str,
        token: Option<&str>,
    ) -> Result<bool, IdentityError> {
        let Some((nonce, mac)) = token.and_then(|t| t.split_once('.')) else {
            return Ok(false);
        };
        if nonce.len() != 32 || mac.len() != 64 {
            return Ok(false);
        }
        let expected = self
            .mac("device", &format!("{identity_id}.{nonce}"))
            .await?;
        Ok(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), mac.as_bytes()).into())
    }

    async fn audit_subject(&self, identity: Option<&Identity>, pseudonym: &str) -> String {
        match identity {
            Some(i) => format!("identity:{}", i.id),
            None => format!("account:{pseudonym}"),
        }
    }

    /// Checks a password, under the brute-force throttle. The work done and the answer are the
    /// same whether or not the account exists.
    pub async fn sign_in_password(
        &self,
        attempt: PasswordAttempt<'_>,
    ) -> Result<PasswordOutcome, SignInError> {
        let pseudonym = self.account_pseudonym(attempt.login).await?;
        // The identity, its password hash and whether a second factor follows, in one query.
        let columns: Vec<String> = IDENTITY_COLUMNS
            .split(", ")
            .map(|c| format!("i.{}", c.trim()))
            .collect();
        let row = sqlx::query(&format!(
            "SELECT {}, p.hash, \
               (SELECT COUNT(*) FROM id_totp t WHERE t.identity_id = i.id AND t.confirmed = 1) \
             FROM id_identities i LEFT JOIN id_passwords p ON p.identity_id = i.id \
             WHERE i.login_key = $1",
            columns.join(", ")
        ))
        .bind(attempt.login.key())
        .fetch_optional(self.db.pool())
        .await?;
        let identity = row.as_ref().map(identity_from_row).transpose()?;
        let (stored, second_factor_required) = match &row {
            Some(r) => (r.get::<Option<String>, _>(11), r.get::<i64, _>(12) > 0),
            None => (None, false),
        };
        let known_device = match &identity {
            Some(i) => self.device_is_known(&i.id, attempt.device_token).await?,
            None => false,
        };
        let now = now_unix();
        let subject = self.audit_subject(identity.as_ref(), &pseudonym).await;
        let source = self.mac("source", attempt.source).await?;
        let (gate, had_failures) = self
            .throttle
            .check_counting(&pseudonym, &source, known_device, now)
            .await?;
        if let Gate::Locked { retry_after_secs } = gate {
            self.record("anonymous", "identity.sign-in.refused", subject, &serde_json::json!({ "method": "pwd", "reason": "locked", "source": &source[..16] }))
                .await?;
            return Err(SignInError::Locked { retry_after_secs });
        }
        let matched = self
            .hasher
            .verify_off_thread(attempt.password, stored)
            .await;
        let identity = match (matched, identity) {
            (true, Some(identity)) => identity,
            _ => {
                self.throttle
                    .record_failure(&pseudonym, &source, now)
                    .await?;
                self.record(
                    "anonymous",
                    "identity.sign-in.failed",
                    subject,
                    &serde_json::json!({ "method": "pwd", "source": &source[..16] }),
                )
                .await?;
                return Err(SignInError::Invalid);
            }
        };
        if !second_factor_required {
            if had_failures {
                self.throttle.record_success(&pseudonym).await?;
            }
            self.record(
                format!("identity:{}", identity.id),
                "identity.sign-in",
                subject,
                &serde_json::json!({ "amr": ["pwd"] }),
            )
            .await?;
        }
        Ok(PasswordOutcome {
            identity,
            second_factor_required,
        })
    }

    async fn pseudonym_of(&self, identity_id: &str) -> Result<String, IdentityError> {
        let key: String = sqlx::query("SELECT login_key FROM id_identities WHERE id = $1")
            .bind(identity_id)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or(IdentityError::NoSuchIdentity)?
            .get(0);
        Ok(self.mac("account", &key).await?[..32].to_string())
    }

    /// The second step after a password: a TOTP code, once only, under the same throttle.
    pub async fn sign_in_totp(
        &self,
        identity_id: &str,
        code: &str,
        source: &str,
        device_token: Option<&str>,
    ) -> Result<(), SignInError> {
        let known_device = self.device_is_known(identity_id, device_token).await?;
        let pseudonym = self.pseudonym_of(identity_id).await?;
        let source = self.mac("source", source).await?;
        let now = now_unix();
        let subject = format!("identity:{identity_id}");
        if let Gate::Locked { retry_after_secs } = self
            .throttle
            .check(&pseudonym, &source, known_device, now)
            .await?
        {
            self.record(
                "anonymous",
                "identity.sign-in.refused",
                &subject,
                &serde_json::json!({ "method": "otp", "reason": "locked" }),
            )
            .await?;
            return Err(SignInError::Locked { retry_after_secs });
        }
        let accepted = match self.totp_secret(identity_id, true).await? {
            Some((secret, _)) => match totp::matching_step(&secret, code, now) {
                // A code works once: the step must be newer than the last one used.
                Some(step) => sqlx::query(
                    "UPDATE id_totp SET last_step = $1 WHERE identity_id = $2 AND last_step < $1",
                )
                .bind(step)
                .bind(identity_id)
                .execute(self.db.pool())
                .await?
                .rows_affected()
                    == 1,
                None => false,
            },
            None => false,
        };
        if !accepted {
            self.throttle
                .record_failure(&pseudonym, &source, now)
                .await?;
            self.record(
                "anonymous",
                "identity.sign-in.failed",
                &subject,
                &serde_json::json!({ "method": "otp" }),
            )
            .await?;
            return Err(SignInError::Invalid);
        }
        self.throttle.record_success(&pseudonym).await?;
        self.record(
            subject.clone(),
            "identity.sign-in",
            subject,
            &serde_json::json!({ "amr": ["pwd", "otp", "mfa"] }),
        )
        .await?;
        Ok(())
    }

    // ---- recovery ---------------------------------------------------------------------------

    /// Ten fresh one-time recovery codes (the old ones stop working). Shown once.
    pub async fn new_recovery_codes(
        &self,
        identity_id: &str,
    ) -> Result<Vec<String>, IdentityError> {
        let mut codes = Vec::new();
        let mut hashes = Vec::new();
        for _ in 0..10 {
            let mut raw = [0u8; 7];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let text = totp::base32_encode(&raw)[..10].to_string();
            hashes.push(
                self.mac("recovery", &format!("{identity_id}.{text}"))
                    .await?,
            );
            codes.push(format!("{}-{}", &text[..5], &text[5..]));
        }
        // Nothing else may touch the database inside the transaction: on SQLite a second
        // connection would wait for this one's write lock.
        let mut tx = self.db.pool().begin().await?;
        sqlx::query("DELETE FROM id_recovery_codes WHERE identity_id = $1")
            .bind(identity_id)
            .execute(&mut *tx)
            .await?;
        for hash in hashes {
            sqlx::query("INSERT INTO id_recovery_codes (identity_id, code_hash, used_at) VALUES ($1, $2, NULL)")
                .bind(identity_id)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.record(
            format!("identity:{identity_id}"),
            "identity.recovery-codes.issued",
            format!("identity:{identity_id}"),
            &(),
        )
        .await?;
        Ok(codes)
    }

    /// Account recovery with a one-time code: sets a new password, removes the second factors
    /// (they may be what was lost), and marks the identity for re-proofing so its sign-ins assert
    /// IAL 1 until it is proofed again. The caller must end the identity's sessions.
    pub async fn recover(
        &self,
        login: &LoginId,
        code: &str,
        new_password: &str,
        source: &str,
    ) -> Result<Identity, SignInError> {
        crate::password::check_policy(new_password)?;
        let pseudonym = self.account_pseudonym(login).await?;
        let source = self.mac("source", source).await?;
        let now = now_unix();
        let identity = self.find(login).await?;
        let subject = self.audit_subject(identity.as_ref(), &pseudonym).await;
        if let Gate::Locked { retry_after_secs } =
            self.throttle.check(&pseudonym, &source, false, now).await?
        {
            return Err(SignInError::Locked { retry_after_secs });
        }
        let normalized: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let used = match &identity {
            Some(i) if normalized.len() == 10 => {
                let hash = self
                    .mac("recovery", &format!("{}.{normalized}", i.id))
                    .await?;
                sqlx::query(
                    "UPDATE id_recovery_codes SET used_at = $1 \
                     WHERE identity_id = $2 AND code_hash = $3 AND used_at IS NULL",
                )
                .bind(now_text())
                .bind(&i.id)
                .bind(hash)
                .execute(self.db.pool())
                .await?
                .rows_affected()
                    == 1
            }
            _ => false,
        };
        let identity = match (used, identity) {
            (true, Some(i)) => i,
            _ => {
                self.hasher.verify_off_thread(new_password, None).await;
                self.throttle
                    .record_failure(&pseudonym, &source, now)
                    .await?;
                self.record("anonymous", "identity.recovery.failed", subject, &())
                    .await?;
                return Err(SignInError::Invalid);
            }
        };
        let hash = self.hasher.hash_off_thread(new_password).await?;
        let mut tx = self.db.pool().begin().await.map_err(IdentityError::from)?;
        for sql in [
            "DELETE FROM id_totp WHERE identity_id = $1",
            "DELETE FROM id_passkeys WHERE identity_id = $1",
            "UPDATE id_identities SET reproofing_required = 1 WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(&identity.id)
                .execute(&mut *tx)
                .await
                .map_err(IdentityError::from)?;
        }
        tx.commit().await.map_err(IdentityError::from)?;
        self.store_password_hash(&identity.id, &hash).await?;
        self.throttle.record_success(&pseudonym).await?;
        self.record(
            format!("identity:{}", identity.id),
            "identity.recovered",
            format!("identity:{}", identity.id),
            &serde_json::json!({ "reproofing_required": true, "removed": ["totp", "passkeys"] }),
        )
        .await?;
        Ok(self
            .get(&identity.id)
            .await?
            .ok_or(IdentityError::NoSuchIdentity)?)
    }

    // ---- passkeys (storage; the WebAuthn ceremonies live with the sign-in pages) ------------

    pub async fn passkeys(&self, identity_id: &str) -> Result<Vec<StoredPasskey>, IdentityError> {
        let rows = sqlx::query(
            "SELECT credential_id, name, passkey, created_at, last_used_at FROM id_passkeys \
             WHERE identity_id = $1 ORDER BY created_at",
        )
        .bind(identity_id)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| StoredPasskey {
                credential_id: r.get(0),
                name: r.get(1),
                passkey: r.get(2),
                created_at: r.get(3),
                last_used_at: r.get(4),
            })
            .collect())
    }

    /// The identity a passkey credential belongs to.
    pub async fn passkey_owner(
        &self,
        credential_id: &str,
    ) -> Result<Option<String>, IdentityError> {
        Ok(
            sqlx::query("SELECT identity_id FROM id_passkeys WHERE credential_id = $1")
                .bind(credential_id)
                .fetch_optional(self.db.pool())
                .await?
                .map(|r| r.get(0)),
        )
    }

    pub async fn add_passkey(
        &self,
        identity_id: &str,
        credential_id: &str,
        name: &str,
        passkey: &str,
    ) -> Result<(), IdentityError> {
        let inserted = sqlx::query(
            "INSERT INTO id_passkeys (credential_id, identity_id, name, passkey, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT (credential_id) DO NOTHING",
        )
        .bind(credential_id)
        .bind(identity_id)
        .bind(name.chars().take(80).collect::<String>())
        .bind(passkey)
        .bind(now_text())
        .execute(self.db.pool())
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(IdentityError::Invalid(
                "this passkey is already registered".into(),
            ));
        }
        self.record(
            format!("identity:{identity_id}"),
            "identity.passkey.added",
            format!("identity:{identity_id}"),
            &serde_json::json!({ "credential": credential_id }),
        )
        .await
    }

    /// After a passkey sign-in: the library's updated credential (its counter) and the time.
    pub async fn passkey_used(
        &self,
        identity_id: &str,
        credential_id: &str,
        passkey: &str,
    ) -> Result<(), IdentityError> {
        sqlx::query(
            "UPDATE id_passkeys SET passkey = $1, last_used_at = $2 WHERE credential_id = $3 AND identity_id = $4",
        )
        .bind(passkey)
        .bind(now_text())
        .bind(credential_id)
        .bind(identity_id)
        .execute(self.db.pool())
        .await?;
        let subject = format!("identity:{identity_id}");
        self.record(
            subject.clone(),
            "identity.sign-in",
            subject,
            &serde_json::json!({ "amr": ["hwk", "user"], "credential": credential_id }),
        )
        .await
    }

    /// Records a failed passkey assertion (unknown credential, bad signature).
    pub async fn passkey_failed(&self, source: &str) -> Result<(), IdentityError> {
        let source = self.mac("source", source).await?;
        self.throttle
            .record_failure("passkey", &source, now_unix())
            .await?;
        self.record(
            "anonymous",
            "identity.sign-in.failed",
            "account:passkey",
            &serde_json::json!({ "method": "hwk", "source": &source[..16] }),
        )
        .await
    }

    /// Whether a source may try a passkey now (the per-source throttle only: a passkey names no
    /// account before it verifies).
    pub async fn passkey_gate(&self, source: &str) -> Result<Gate, IdentityError> {
        let source = self.mac("source", source).await?;
        self.throttle
            .check("passkey", &source, true, now_unix())
            .await
    }

    pub async fn remove_passkey(
        &self,
        identity_id: &str,
        credential_id: &str,
    ) -> Result<bool, IdentityError> {
        let removed =
            sqlx::query("DELETE FROM id_passkeys WHERE credential_id = $1 AND identity_id = $2")
                .bind(credential_id)
                .bind(identity_id)
                .execute(self.db.pool())
                .await?
                .rows_affected()
                == 1;
        if removed {
            self.record(
                format!("identity:{identity_id}"),
                "identity.passkey.removed",
                format!("identity:{identity_id}"),
                &serde_json::json!({ "credential": credential_id }),
            )
            .await?;
        }
        Ok(removed)
    }

    // ---- agencies and roles -----------------------------------------------------------------

    pub async fn upsert_agency(&self, actor: &str, agency: &Agency) -> Result<(), IdentityError> {
        if agency.code.is_empty()
            || agency.code.len() > 32
            || !agency
                .code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(IdentityError::Invalid(
                "an agency code is 1–32 lowercase letters, digits and -".into(),
            ));
        }
        sqlx::query(
            "INSERT INTO id_agencies (code, name_th, name_en) VALUES ($1, $2, $3) \
             ON CONFLICT (code) DO UPDATE SET name_th = excluded.name_th, name_en = excluded.name_en",
        )
        .bind(&agency.code)
        .bind(agency.name.th.as_ref())
        .bind(agency.name.en.as_ref())
        .execute(self.db.pool())
        .await?;
        self.record(
            actor,
            "identity.agency.saved",
            format!("agency:{}", agency.code),
            agency,
        )
        .await
    }

    pub async fn agency(&self, code: &str) -> Result<Option<Agency>, IdentityError> {
        Ok(
            sqlx::query("SELECT code, name_th, name_en FROM id_agencies WHERE code = $1")
                .bind(code)
                .fetch_optional(self.db.pool())
                .await?
                .map(|r| Agency {
                    code: r.get(0),
                    name: Text::owned(r.get::<String, _>(1), r.get::<String, _>(2)),
                }),
        )
    }

    pub async fn agencies(&self) -> Result<Vec<Agency>, IdentityError> {
        Ok(
            sqlx::query("SELECT code, name_th, name_en FROM id_agencies ORDER BY code")
                .fetch_all(self.db.pool())
                .await?
                .iter()
                .map(|r| Agency {
                    code: r.get(0),
                    name: Text::owned(r.get::<String, _>(1), r.get::<String, _>(2)),
                })
                .collect(),
        )
    }

    pub async fn roles_of(&self, identity_id: &str) -> Result<Vec<AgencyRole>, IdentityError> {
        let rows = sqlx::query(
            "SELECT agency, role FROM id_roles WHERE identity_id = $1 ORDER BY agency, role",
        )
        .bind(identity_id)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AgencyRole {
                    agency: r.get(0),
                    role: r.get::<String, _>(1).parse().map_err(
                        |e: crate::authz::UnknownRole| IdentityError::Internal(e.to_string()),
                    )?,
                })
            })
            .collect()
    }

    /// The authorization subject for a signed-in person.
    pub async fn subject(&self, identity_id: &str) -> Result<Subject, IdentityError> {
        Ok(Subject::Person {
            identity_id: identity_id.to_string(),
            roles: self.roles_of(identity_id).await?,
        })
    }

    /// Grants `role` in `agency` to an identity, if `by` may (see [`crate::authz`]).
    pub async fn grant_role(
        &self,
        by: &Subject,
        identity_id: &str,
        agency: &str,
        role: Role,
    ) -> Result<bool, IdentityError> {
        self.authorize_role_change(by, identity_id, agency, role)
            .await?;
        let added = sqlx::query(
            "INSERT INTO id_roles (identity_id, agency, role, granted_by, granted_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (identity_id, agency, role) DO NOTHING",
        )
        .bind(identity_id)
        .bind(agency)
        .bind(role.as_str())
        .bind(by.actor())
        .bind(now_text())
        .execute(self.db.pool())
        .await?
        .rows_affected()
            == 1;
        if added {
            self.record(
                by.actor(),
                "identity.role.granted",
                format!("identity:{identity_id}"),
                &serde_json::json!({ "agency": agency, "role": role }),
            )
            .await?;
        }
        Ok(added)
    }

    pub async fn revoke_role(
        &self,
        by: &Subject,
        identity_id: &str,
        agency: &str,
        role: Role,
    ) -> Result<bool, IdentityError> {
        self.authorize_role_change(by, identity_id, agency, role)
            .await?;
        let removed = sqlx::query(
            "DELETE FROM id_roles WHERE identity_id = $1 AND agency = $2 AND role = $3",
        )
        .bind(identity_id)
        .bind(agency)
        .bind(role.as_str())
        .execute(self.db.pool())
        .await?
        .rows_affected()
            == 1;
        if removed {
            self.record(
                by.actor(),
                "identity.role.revoked",
                format!("identity:{identity_id}"),
                &serde_json::json!({ "agency": agency, "role": role }),
            )
            .await?;
        }
        Ok(removed)
    }

    async fn authorize_role_change(
        &self,
        by: &Subject,
        identity_id: &str,
        agency: &str,
        role: Role,
    ) -> Result<(), IdentityError> {
        if self.agency(agency).await?.is_none() {
            return Err(IdentityError::NoSuchAgency(agency.to_string()));
        }
        let action = Action::GrantRole(role);
        let resource = Resource::Identity {
            id: identity_id.to_string(),
            agency: agency.to_string(),
        };
        if !by.may(&action, &resource) {
            self.record(
                by.actor(),
                "identity.role.denied",
                format!("identity:{identity_id}"),
                &serde_json::json!({ "agency": agency, "role": role }),
            )
            .await?;
            return Err(IdentityError::Forbidden(format!(
                "{} in {agency}",
                action.name()
            )));
        }
        if self.get(identity_id).await?.is_none() {
            return Err(IdentityError::NoSuchIdentity);
        }
        Ok(())
    }

    /// Officials of an agency with their roles there.
    pub async fn officials(
        &self,
        agency: &str,
    ) -> Result<Vec<(Identity, Vec<Role>)>, IdentityError> {
        let rows = sqlx::query(&format!(
            "SELECT {IDENTITY_COLUMNS} FROM id_identities WHERE id IN \
             (SELECT identity_id FROM id_roles WHERE agency = $1) ORDER BY name_en"
        ))
        .bind(agency)
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            let identity = identity_from_row(row)?;
            let roles = self
                .roles_of(&identity.id)
                .await?
                .into_iter()
                .filter(|r| r.agency == agency)
                .map(|r| r.role)
                .collect();
            out.push((identity, roles));
        }
        Ok(out)
    }

    // ---- act-for ----------------------------------------------------------------------------

    pub async fn add_act_for(
        &self,
        actor: &str,
        identity_id: &str,
        relation: &ActFor,
    ) -> Result<(), IdentityError> {
        let juristic_id = saphan_core::parse_juristic_id(&relation.juristic_id)
            .map_err(|e| IdentityError::Invalid(format!("juristic-person id: {e}")))?;
        for (field, value) in [
            ("juristic_name", &relation.juristic_name),
            ("capacity", &relation.capacity),
            ("source", &relation.source),
        ] {
            if value.trim().is_empty() || value.len() > 200 {
                return Err(IdentityError::Invalid(format!(
                    "{field} must be 1–200 characters"
                )));
            }
        }
        for instant in std::iter::once(&relation.valid_from).chain(relation.valid_until.iter()) {
            saphan_core::clock::parse_instant(instant).map_err(|_| {
                IdentityError::Invalid(format!("`{instant}` is not an RFC 3339 time"))
            })?;
        }
        if self.get(identity_id).await?.is_none() {
            return Err(IdentityError::NoSuchIdentity);
        }
        sqlx::query(
            "INSERT INTO id_act_for (id, identity_id, juristic_id, juristic_name, capacity, source, valid_from, valid_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(identity_id)
        .bind(&juristic_id)
        .bind(&relation.juristic_name)
        .bind(&relation.capacity)
        .bind(&relation.source)
        .bind(&relation.valid_from)
        .bind(&relation.valid_until)
        .execute(self.db.pool())
        .await?;
        self.record(
            actor,
            "identity.act-for.added",
            format!("identity:{identity_id}"),
            relation,
        )
        .await
    }

    /// The relations valid now.
    pub async fn act_for(&self, identity_id: &str) -> Result<Vec<ActFor>, IdentityError> {
        let now = now_text();
        let rows = sqlx::query(
            "SELECT juristic_id, juristic_name, capacity, source, valid_from, valid_until FROM id_act_for \
             WHERE identity_id = $1 AND valid_from <= $2 AND (valid_until IS NULL OR valid_until > $2) \
             ORDER BY juristic_name",
        )
        .bind(identity_id)
        .bind(&now)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| ActFor {
                juristic_id: r.get(0),
                juristic_name: r.get(1),
                capacity: r.get(2),
                source: r.get(3),
                valid_from: r.get(4),
                valid_until: r.get(5),
            })
            .collect())
    }
}
