//! The suppression list: addresses that must never be mailed (unsubscribes, hard bounces,
//! complaints, manual entries), keyed by lowercase address; and the erased addresses, kept only
//! as SHA-256 hashes (`erased_hashes`, [`retain_core::email_hash`]). [`SuppressionList`] answers
//! both at once for whoever decides who may be mailed (the planner's exclusions, the mailer's
//! queue); the send-time check in `sends.rs` consults both tables too.

use std::collections::{HashMap, HashSet};

use retain_core::SuppressionReason;
use serde::Serialize;
use sqlx::Row;

use crate::{now, Result, Store, StoreError};

/// One suppressed address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppression {
    pub email: String,
    pub reason: SuppressionReason,
    pub source: String,
    pub created_at: i64,
}

/// Every address that may not be mailed: the suppression list and the erased hashes.
#[derive(Debug, Clone, Default)]
pub struct SuppressionList {
    by_email: HashMap<String, SuppressionReason>,
    erased: HashSet<String>,
}

impl SuppressionList {
    /// Why `email` may not be mailed, if it may not (case and surrounding space ignored).
    pub fn get(&self, email: &str) -> Option<SuppressionReason> {
        if self.is_empty() {
            return None;
        }
        // Most addresses are stored lower-case already: no copy for them.
        let trimmed = email.trim();
        let email: std::borrow::Cow<'_, str> =
            if trimmed.is_ascii() && !trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
                trimmed.into()
            } else {
                trimmed.to_lowercase().into()
            };
        if let Some(r) = self.by_email.get(email.as_ref()) {
            return Some(*r);
        }
        if !self.erased.is_empty() && self.erased.contains(&retain_core::email_hash(&email)) {
            return Some(SuppressionReason::Erased);
        }
        None
    }

    /// Listed addresses plus erased hashes.
    pub fn len(&self) -> usize {
        self.by_email.len() + self.erased.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Store {
    /// The suppression list and the erased hashes, for checking a whole audience at once.
    pub async fn suppression_list(&self) -> Result<SuppressionList> {
        Ok(SuppressionList {
            by_email: self.suppression_map().await?,
            erased: self.erased_hashes().await?,
        })
    }

    /// The hashes of every erased address.
    pub async fn erased_hashes(&self) -> Result<HashSet<String>> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT hash FROM erased_hashes")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Whether `email` belongs to an erased customer.
    pub async fn is_erased_email(&self, email: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM erased_hashes WHERE hash = $1")
            .bind(retain_core::email_hash(email))
            .fetch_one(self.pool())
            .await?;
        Ok(n > 0)
    }

    /// Suppresses `email` (idempotent: the first reason is kept). Returns true when newly added.
    pub async fn suppress(
        &self,
        email: &str,
        reason: SuppressionReason,
        source: &str,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO suppressions (email, reason, source, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(email.trim().to_lowercase())
        .bind(reason.as_str())
        .bind(source)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Suppresses many addresses in one transaction; returns how many were new.
    pub async fn suppress_many(
        &self,
        entries: &[(String, SuppressionReason)],
        source: &str,
    ) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        let mut added = 0;
        let t = now();
        for (email, reason) in entries {
            let r = sqlx::query(
                "INSERT INTO suppressions (email, reason, source, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (email) DO NOTHING",
            )
            .bind(email.trim().to_lowercase())
            .bind(reason.as_str())
            .bind(source)
            .bind(t)
            .execute(&mut *tx)
            .await?;
            added += r.rows_affected();
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Removes a suppression (e.g. a manual entry made by mistake). Returns true when one existed.
    pub async fn unsuppress(&self, email: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM suppressions WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The reason `email` is suppressed, if it is.
    pub async fn suppression_of(&self, email: &str) -> Result<Option<SuppressionReason>> {
        let r: Option<String> =
            sqlx::query_scalar("SELECT reason FROM suppressions WHERE email = $1")
                .bind(email.trim().to_lowercase())
                .fetch_optional(self.pool())
                .await?;
        r.map(|s| {
            SuppressionReason::parse(&s)
                .ok_or_else(|| StoreError::Corrupt(format!("suppression reason '{s}'")))
        })
        .transpose()
    }

    /// Every suppressed address with its reason.
    pub async fn suppressions(&self) -> Result<Vec<Suppression>> {
        let rows = sqlx::query(
            "SELECT email, reason, source, created_at FROM suppressions ORDER BY email",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let reason: String = r.try_get(1)?;
                Ok(Suppression {
                    email: r.try_get(0)?,
                    reason: SuppressionReason::parse(&reason).ok_or_else(|| {
                        StoreError::Corrupt(format!("suppression reason '{reason}'"))
                    })?,
                    source: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Suppressed addresses as a map, for checking a whole audience at once.
    pub async fn suppression_map(&self) -> Result<HashMap<String, SuppressionReason>> {
        Ok(self
            .suppressions()
            .await?
            .into_iter()
            .map(|s| (s.email, s.reason))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    #[tokio::test]
    async fn suppress_is_case_insensitive_and_idempotent() {
        let (store, _dir) = test_support::sqlite().await;
        assert!(store
            .suppress("Bob@X.io", SuppressionReason::HardBounce, "smtp")
            .await
            .expect("add"));
        assert!(!store
            .suppress("bob@x.io ", SuppressionReason::Manual, "cli")
            .await
            .expect("again"));
        assert_eq!(
            store.suppression_of("BOB@x.io").await.expect("q"),
            Some(SuppressionReason::HardBounce)
        );
        assert_eq!(store.suppression_of("other@x.io").await.expect("q"), None);
        let n = store
            .suppress_many(
                &[
                    ("a@x.io".into(), SuppressionReason::Unsubscribed),
                    ("bob@x.io".into(), SuppressionReason::Manual),
                ],
                "file",
            )
            .await
            .expect("many");
        assert_eq!(n, 1);
        assert_eq!(store.suppressions().await.expect("list").len(), 2);
        assert!(store.unsuppress("A@x.io").await.expect("rm"));
        assert_eq!(store.suppression_map().await.expect("map").len(), 1);

        // The whole list, as audiences check it: case and surrounding space ignored, non-ASCII
        // addresses lower-cased too.
        store
            .suppress("Ärger@X.io", SuppressionReason::Complaint, "cli")
            .await
            .expect("add");
        let list = store.suppression_list().await.expect("list");
        for (email, want) in [
            ("bob@x.io", Some(SuppressionReason::HardBounce)),
            ("  BOB@x.IO ", Some(SuppressionReason::HardBounce)),
            ("ärger@x.io", Some(SuppressionReason::Complaint)),
            ("ÄRGER@x.io", Some(SuppressionReason::Complaint)),
            ("a@x.io", None),
            ("", None),
        ] {
            assert_eq!(list.get(email), want, "{email:?}");
        }
        let (empty, _dir) = test_support::sqlite().await;
        assert!(empty
            .suppression_list()
            .await
            .expect("list")
            .get("bob@x.io")
            .is_none());
    }
}
