//! Passkeys (WebAuthn, via webauthn-rs): registering one from a signed-in session, and signing
//! in with one without typing an identifier (discoverable credentials). The ceremony's server
//! state lives in the database between its two requests, so any node can finish what another
//! began, and each state is used once.

use saphan_store::sqlx::{self, Row};
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::throttle::Gate;
use crate::{Directory, IdentityError, SignInError};

/// How long a ceremony may take between its two requests.
const CEREMONY_SECS: i64 = 300;

/// The platform's WebAuthn relying party, for one public URL.
#[derive(Clone)]
pub struct Passkeys {
    webauthn: std::sync::Arc<Webauthn>,
    directory: Directory,
}

/// A started ceremony: its id (to send back with the answer) and the browser's options.
pub struct Ceremony {
    pub id: String,
    pub options: Value,
}

use saphan_core::clock::now_unix as now;

fn bad(what: &str) -> IdentityError {
    IdentityError::Invalid(format!("passkey: {what}"))
}

impl Passkeys {
    /// The relying party is the public URL's host (a domain: browsers refuse IP addresses).
    pub fn new(public_url: &str, directory: Directory) -> Result<Passkeys, IdentityError> {
        let origin = Url::parse(public_url)
            .map_err(|e| IdentityError::Config(format!("public_url: {e}")))?;
        let rp_id = origin
            .host_str()
            .ok_or_else(|| IdentityError::Config("public_url has no host".into()))?
            .to_string();
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| b.rp_name("Saphan").build())
            .map_err(|e| IdentityError::Config(format!("WebAuthn relying party: {e}")))?;
        Ok(Passkeys {
            webauthn: std::sync::Arc::new(webauthn),
            directory,
        })
    }

    async fn save_state(
        &self,
        kind: &str,
        identity_id: Option<&str>,
        state: &impl serde::Serialize,
    ) -> Result<String, IdentityError> {
        let id = saphan_core::random_id();
        let db = self.directory.db();
        sqlx::query("DELETE FROM id_webauthn_states WHERE expires_at < $1")
            .bind(now())
            .execute(db.pool())
            .await?;
        sqlx::query("INSERT INTO id_webauthn_states (id, kind, identity_id, state, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(kind)
            .bind(identity_id)
            .bind(serde_json::to_string(state).map_err(|e| IdentityError::Internal(e.to_string()))?)
            .bind(now() + CEREMONY_SECS)
            .execute(db.pool())
            .await?;
        Ok(id)
    }

    /// Takes a ceremony's state out (once): its owner and the state.
    async fn take_state<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<(Option<String>, T), IdentityError> {
        if id.len() != 32 {
            return Err(bad("unknown or expired ceremony"));
        }
        let db = self.directory.db();
        let row = sqlx::query("SELECT identity_id, state FROM id_webauthn_states WHERE id = $1 AND kind = $2 AND expires_at > $3")
            .bind(id)
            .bind(kind)
            .bind(now())
            .fetch_optional(db.pool())
            .await?
            .ok_or_else(|| bad("unknown or expired ceremony"))?;
        let deleted = sqlx::query("DELETE FROM id_webauthn_states WHERE id = $1")
            .bind(id)
            .execute(db.pool())
            .await?;
        if deleted.rows_affected() != 1 {
            return Err(bad("this ceremony was already used"));
        }
        let state = serde_json::from_str(&row.get::<String, _>(1))
            .map_err(|e| IdentityError::Internal(e.to_string()))?;
        Ok((row.get(0), state))
    }

    /// Starts registering a passkey for a signed-in person.
    pub async fn begin_registration(&self, identity_id: &str) -> Result<Ceremony, IdentityError> {
        let identity = self
            .directory
            .get(identity_id)
            .await?
            .ok_or(IdentityError::NoSuchIdentity)?;
        let uuid =
            Uuid::parse_str(&identity.id).map_err(|e| IdentityError::Internal(e.to_string()))?;
        let existing: Vec<_> = self
            .directory
            .passkeys(identity_id)
            .await?
            .iter()
            .filter_map(|p| serde_json::from_str::<Passkey>(&p.passkey).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        // The name the authenticator shows; the opaque id, not the national id, identifies them.
        let (options, state) = self
            .webauthn
            .start_passkey_registration(uuid, &identity.name.en, &identity.name.th, Some(existing))
            .map_err(|e| bad(&e.to_string()))?;
        let id = self
            .save_state("register", Some(identity_id), &state)
            .await?;
        let mut options =
            serde_json::to_value(options).map_err(|e| IdentityError::Internal(e.to_string()))?;
        // Sign-in starts without an identifier, so the authenticator must keep the credential
        // (a discoverable credential); webauthn-rs's passkey defaults leave that to it.
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(Value::as_object_mut)
        {
            selection.insert("residentKey".into(), "required".into());
            selection.insert("requireResidentKey".into(), true.into());
        }
        Ok(Ceremony { id, options })
    }

    /// Finishes a registration with the browser's answer; returns the new credential's id.
    pub async fn finish_registration(
        &self,
        identity_id: &str,
        ceremony: &str,
        credential: &Value,
        name: &str,
    ) -> Result<String, IdentityError> {
        let (owner, state): (Option<String>, PasskeyRegistration) =
            self.take_state("register", ceremony).await?;
        if owner.as_deref() != Some(identity_id) {
            return Err(bad("this ceremony belongs to another session"));
        }
        let credential: RegisterPublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|e| bad(&format!("malformed credential: {e}")))?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| bad(&e.to_string()))?;
        let credential_id = credential_id_text(passkey.cred_id().as_ref());
        let name = if name.trim().is_empty() {
            "passkey"
        } else {
            name.trim()
        };
        self.directory
            .add_passkey(
                identity_id,
                &credential_id,
                name,
                &serde_json::to_string(&passkey)
                    .map_err(|e| IdentityError::Internal(e.to_string()))?,
            )
            .await?;
        Ok(credential_id)
    }

    /// Starts a sign-in with any passkey the browser holds for this site.
    pub async fn begin_sign_in(&self) -> Result<Ceremony, IdentityError> {
        let (options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| bad(&e.to_string()))?;
        let id = self.save_state("sign-in", None, &state).await?;
        Ok(Ceremony {
            id,
            options: serde_json::to_value(options)
                .map_err(|e| IdentityError::Internal(e.to_string()))?,
        })
    }

    /// Finishes a passkey sign-in under the per-source throttle; returns the identity.
    pub async fn finish_sign_in(
        &self,
        ceremony: &str,
        credential: &Value,
        source: &str,
    ) -> Result<String, SignInError> {
        if let Gate::Locked { retry_after_secs } = self.directory.passkey_gate(source).await? {
            return Err(SignInError::Locked { retry_after_secs });
        }
        match self.verify_sign_in(ceremony, credential).await {
            Ok(identity_id) => Ok(identity_id),
            Err(e) => {
                tracing::info!(error = %e, "passkey sign-in refused");
                self.directory.passkey_failed(source).await?;
                Err(SignInError::Invalid)
            }
        }
    }

    async fn verify_sign_in(
        &self,
        ceremony: &str,
        credential: &Value,
    ) -> Result<String, IdentityError> {
        let (_, state): (_, DiscoverableAuthentication) =
            self.take_state("sign-in", ceremony).await?;
        let credential: PublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|e| bad(&format!("malformed credential: {e}")))?;
        let (user, cred_id) = self
            .webauthn
            .identify_discoverable_authentication(&credential)
            .map_err(|e| bad(&e.to_string()))?;
        let credential_id = credential_id_text(cred_id);
        let identity_id = user.to_string();
        if self
            .directory
            .passkey_owner(&credential_id)
            .await?
            .as_deref()
            != Some(identity_id.as_str())
        {
            return Err(bad("unknown credential"));
        }
        let mut stored: Vec<Passkey> = self
            .directory
            .passkeys(&identity_id)
            .await?
            .iter()
            .filter_map(|p| serde_json::from_str(&p.passkey).ok())
            .collect();
        let keys: Vec<DiscoverableKey> = stored.iter().map(DiscoverableKey::from).collect();
        let result = self
            .webauthn
            .finish_discoverable_authentication(&credential, state, &keys)
            .map_err(|e| bad(&e.to_string()))?;
        for passkey in stored.iter_mut() {
            if passkey.update_credential(&result).is_some() {
                let id = credential_id_text(passkey.cred_id().as_ref());
                let json = serde_json::to_string(&*passkey)
                    .map_err(|e| IdentityError::Internal(e.to_string()))?;
                self.directory
                    .passkey_used(&identity_id, &id, &json)
                    .await?;
            }
        }
        Ok(identity_id)
    }
}

/// base64url without padding, as credential ids travel in WebAuthn JSON.
fn credential_id_text(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
