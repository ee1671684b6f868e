//! Browser sessions at the provider: what lets a person who signed in once go through the next
//! authorization without typing their password again, and what "my sessions" lists.

use saphan_identity::Aal;
use saphan_store::sqlx::{self, Row};
use serde::Serialize;

use crate::{now_unix, random_token, sha256_hex, OAuthError, Provider};

/// A live session. `id` is the SHA-256 of the cookie value; the cookie itself is never stored.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// Safe to show and to put in `sid` claims; names the session without granting it.
    pub public_id: String,
    pub identity_id: String,
    pub auth_time: i64,
    pub aal: Aal,
    pub amr: Vec<String>,
    pub expires_at: i64,
}

/// A session as the account page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    pub public_id: String,
    pub created_at: String,
    pub user_agent: String,
    pub amr: Vec<String>,
    pub current: bool,
}

impl Provider {
    /// Starts a session after a successful sign-in; returns the cookie value and the session.
    pub async fn start_session(
        &self,
        identity_id: &str,
        aal: Aal,
        amr: &[&str],
        user_agent: &str,
    ) -> Result<(String, Session), OAuthError> {
        let token = random_token();
        let now = now_unix();
        let session = Session {
            id: sha256_hex(&token),
            public_id: saphan_core::random_id(),
            identity_id: identity_id.to_string(),
            auth_time: now,
            aal,
            amr: amr.iter().map(|s| s.to_string()).collect(),
            expires_at: now + self.lifetimes.session_secs,
        };
        let agent: String = user_agent
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        sqlx::query(
            "INSERT INTO oidc_sessions (id, public_id, identity_id, auth_time, aal, amr, user_agent, created_at, expires_at, ended) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)",
        )
        .bind(&session.id)
        .bind(&session.public_id)
        .bind(identity_id)
        .bind(now)
        .bind(aal.as_str())
        .bind(serde_json::to_string(&session.amr).expect("json"))
        .bind(agent)
        .bind(saphan_core::clock::now_text())
        .bind(session.expires_at)
        .execute(self.db.pool())
        .await?;
        Ok((token, session))
    }

    /// The live session a cookie names, if any.
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>, OAuthError> {
        if cookie.is_empty() || cookie.len() > 100 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT id, public_id, identity_id, auth_time, aal, amr, expires_at FROM oidc_sessions \
             WHERE id = $1 AND ended = 0 AND expires_at > $2",
        )
        .bind(sha256_hex(cookie))
        .bind(now_unix())
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Session {
            id: row.get(0),
            public_id: row.get(1),
            identity_id: row.get(2),
            auth_time: row.get(3),
            aal: row.get::<String, _>(4).parse().unwrap_or(Aal::L1),
            amr: serde_json::from_str(&row.get::<String, _>(5)).unwrap_or_default(),
            expires_at: row.get(6),
        }))
    }

    /// Ends a session and revokes the tokens issued through it.
    pub async fn end_session(&self, session: &Session, why: &str) -> Result<(), OAuthError> {
        sqlx::query("UPDATE oidc_sessions SET ended = 1 WHERE id = $1")
            .bind(&session.id)
            .execute(self.db.pool())
            .await?;
        sqlx::query("UPDATE oidc_tokens SET revoked = 1 WHERE session_id = $1")
            .bind(&session.id)
            .execute(self.db.pool())
            .await?;
        let who = format!("identity:{}", session.identity_id);
        self.record(
            &who,
            "oidc.session.ended",
            &who,
            &serde_json::json!({ "session": session.public_id, "why": why }),
        )
        .await
    }

    /// Ends one of a person's sessions by its public id (from "my sessions").
    pub async fn end_session_of(
        &self,
        identity_id: &str,
        public_id: &str,
    ) -> Result<bool, OAuthError> {
        let row = sqlx::query(
            "SELECT id FROM oidc_sessions WHERE public_id = $1 AND identity_id = $2 AND ended = 0",
        )
        .bind(public_id)
        .bind(identity_id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(false) };
        let session = Session {
            id: row.get(0),
            public_id: public_id.to_string(),
            identity_id: identity_id.to_string(),
            auth_time: 0,
            aal: Aal::L1,
            amr: vec![],
            expires_at: 0,
        };
        self.end_session(&session, "ended by its owner").await?;
        Ok(true)
    }

    /// Ends every session and revokes every token of a person (after account recovery).
    pub async fn end_all_sessions(&self, identity_id: &str, why: &str) -> Result<(), OAuthError> {
        sqlx::query("UPDATE oidc_sessions SET ended = 1 WHERE identity_id = $1")
            .bind(identity_id)
            .execute(self.db.pool())
            .await?;
        sqlx::query("UPDATE oidc_tokens SET revoked = 1 WHERE identity_id = $1")
            .bind(identity_id)
            .execute(self.db.pool())
            .await?;
        let who = format!("identity:{identity_id}");
        self.record(
            &who,
            "oidc.session.ended-all",
            &who,
            &serde_json::json!({ "why": why }),
        )
        .await
    }

    pub async fn sessions_of(
        &self,
        identity_id: &str,
        current: Option<&Session>,
    ) -> Result<Vec<SessionInfo>, OAuthError> {
        let rows = sqlx::query(
            "SELECT public_id, created_at, user_agent, amr FROM oidc_sessions \
             WHERE identity_id = $1 AND ended = 0 AND expires_at > $2 ORDER BY created_at DESC",
        )
        .bind(identity_id)
        .bind(now_unix())
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let public_id: String = r.get(0);
                SessionInfo {
                    current: current.is_some_and(|c| c.public_id == public_id),
                    public_id,
                    created_at: r.get(1),
                    user_agent: r.get(2),
                    amr: serde_json::from_str(&r.get::<String, _>(3)).unwrap_or_default(),
                }
            })
            .collect())
    }
}
