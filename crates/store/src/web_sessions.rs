//! Dashboard sessions (migration 0009), so that restarting `retain serve` logs nobody out. A
//! session is keyed by the hash of its cookie token (the web crate hashes; the token itself is
//! never stored) and carries its role and CSRF token. Times are Unix seconds supplied by the
//! caller, so the web crate's clock (settable in tests) decides what has expired.

use sqlx::Row;

use crate::{Result, Store};

/// One stored dashboard session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSessionRecord {
    pub token_hash: String,
    /// What the web crate calls the role (`admin`, `viewer`); the store does not interpret it.
    pub role: String,
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Store {
    /// Stores a new session (a token hash already stored is replaced).
    pub async fn create_web_session(&self, s: &WebSessionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, role, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (token_hash) DO UPDATE SET role = excluded.role, csrf = excluded.csrf, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(&s.token_hash)
        .bind(&s.role)
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session with this token hash, unless it expired at or before `now`.
    pub async fn web_session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<WebSessionRecord>> {
        let row = sqlx::query(
            "SELECT token_hash, role, csrf, created_at, expires_at FROM web_sessions \
             WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(WebSessionRecord {
                token_hash: r.try_get(0)?,
                role: r.try_get(1)?,
                csrf: r.try_get(2)?,
                created_at: r.try_get(3)?,
                expires_at: r.try_get(4)?,
            })
        })
        .transpose()
    }

    /// Moves a live session's expiry to `expires_at`. Returns false when there was none.
    pub async fn touch_web_session(&self, token_hash: &str, expires_at: i64) -> Result<bool> {
        let r = sqlx::query("UPDATE web_sessions SET expires_at = $1 WHERE token_hash = $2")
            .bind(expires_at)
            .bind(token_hash)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Ends a session (logout). Returns false when there was none.
    pub async fn delete_web_session(&self, token_hash: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Deletes every session expired at or before `now`; returns how many.
    pub async fn delete_expired_web_sessions(&self, now: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    fn record(hash: &str, role: &str, expires_at: i64) -> WebSessionRecord {
        WebSessionRecord {
            token_hash: hash.into(),
            role: role.into(),
            csrf: format!("csrf-{hash}"),
            created_at: 1_000,
            expires_at,
        }
    }

    async fn sessions_live_until_they_expire_on(store: Store) {
        store
            .create_web_session(&record("a", "admin", 2_000))
            .await
            .expect("a");
        store
            .create_web_session(&record("b", "viewer", 1_500))
            .await
            .expect("b");
        assert_eq!(
            store.web_session("a", 1_999).await.expect("q"),
            Some(record("a", "admin", 2_000))
        );
        assert_eq!(store.web_session("a", 2_000).await.expect("q"), None);
        assert_eq!(store.web_session("nope", 0).await.expect("q"), None);
        assert_eq!(
            store
                .web_session("b", 1_000)
                .await
                .expect("q")
                .map(|s| s.role),
            Some("viewer".to_string())
        );
        assert!(store.touch_web_session("a", 3_000).await.expect("touch"));
        assert!(!store.touch_web_session("nope", 3_000).await.expect("touch"));
        assert!(store.web_session("a", 2_500).await.expect("q").is_some());
        // b expired at 1_500; a lives on.
        assert_eq!(
            store.delete_expired_web_sessions(2_000).await.expect("gc"),
            1
        );
        assert!(store.web_session("b", 0).await.expect("q").is_none());
        assert!(store.delete_web_session("a").await.expect("del"));
        assert!(!store.delete_web_session("a").await.expect("del"));
        assert!(store.web_session("a", 0).await.expect("q").is_none());
    }

    #[tokio::test]
    async fn sessions_live_until_they_expire() {
        let (store, _dir) = test_support::sqlite().await;
        sessions_live_until_they_expire_on(store).await;
        if let Some((pg, _db)) = test_support::postgres().await {
            sessions_live_until_they_expire_on(pg).await;
        }
    }
}
