//! The send ledger: one row per (campaign, recipient) that moves `queued → sending → sent |
//! failed | suppressed`, with attempts, the last error, the Message-ID and timestamps; the
//! per-campaign send state (`active | paused | cancelled`). Claims, workers, schedules and
//! shared rate limits (several senders on one campaign) are in `fleet.rs`.
//!
//! Exactly-once rests on three rules kept here: a row is `sending` (durably) before its SMTP
//! transaction starts, it becomes `sent` only from `sending`, and rows found `sending` by a later
//! run are *unconfirmed* — never sent again unless the operator asks
//! ([`Store::requeue_unconfirmed`]). A row becomes `sending` only while its worker holds the
//! claim on it, so a claim taken over after expiry is never sent twice. The campaign lease
//! (`send_leases`) is advisory since migration 0016: claims do not consult it.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{in_list, now, Result, Store, StoreError};

/// Where one (campaign, recipient) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendState {
    /// Waiting to be sent (or to be retried at `next_attempt_at`).
    Queued,
    /// Claimed by a sender: its SMTP transaction may have happened. Unconfirmed after a crash.
    Sending,
    /// The server accepted it (250).
    Sent,
    /// Given up: a permanent rejection, or transient ones until the retry budget ran out.
    Failed,
    /// Never sent: suppressed, unsubscribed, no consent or no valid address.
    Suppressed,
}

impl SendState {
    pub const ALL: [SendState; 5] = [
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Failed,
        Self::Suppressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Suppressed => "suppressed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "failed" => Self::Failed,
            "suppressed" => Self::Suppressed,
            _ => return None,
        })
    }
}

impl std::fmt::Display for SendState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for SendState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Whether a campaign may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignSendState {
    Active,
    Paused,
    Cancelled,
}

impl CampaignSendState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Self::Active,
            "paused" => Self::Paused,
            "cancelled" | "canceled" => Self::Cancelled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for CampaignSendState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendRecord {
    /// The send id: tracking tokens name it.
    pub id: i64,
    pub campaign_id: String,
    pub customer_id: String,
    pub email: String,
    pub state: SendState,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The last error was permanent (a 5xx answer).
    pub permanent: bool,
    /// The Message-ID header of the email (without angle brackets' meaning changing: as sent).
    pub message_id: String,
    pub queued_at: i64,
    pub sending_at: Option<i64>,
    pub sent_at: Option<i64>,
}

/// A recipient to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSend {
    pub customer_id: String,
    pub email: String,
    /// The Message-ID the email will carry (e.g. `<uuid@shop.example>`).
    pub message_id: String,
    /// `Some(reason)`: recorded as `suppressed` straight away, never sent.
    pub suppressed: Option<String>,
}

/// A row claimed for sending (now `sending`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedSend {
    pub id: i64,
    pub customer_id: String,
    pub email: String,
    pub message_id: String,
    /// Attempts including this one.
    pub attempts: i64,
}

/// Which recipients the send-time check lets through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsentCheck {
    /// Customers whose consent is unknown are suppressed too (only explicit opt-ins are mailed).
    pub require_opt_in: bool,
}

/// The outcome of [`Store::claim_sends`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Rows now claimed (or `sending`, from [`Store::claim_sends`]), and rows the send-time
    /// check moved to `suppressed` (id, reason).
    /// Both empty: nothing is due.
    Claimed {
        sends: Vec<ClaimedSend>,
        suppressed: Vec<(i64, String)>,
    },
    /// The campaign was paused or cancelled: stop.
    Stopped(CampaignSendState),
}

/// Rows of a campaign per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SendCounts {
    pub queued: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
    pub suppressed: i64,
}

impl SendCounts {
    pub fn total(&self) -> i64 {
        self.queued + self.sending + self.sent + self.failed + self.suppressed
    }

    /// Sending has finished: the campaign has rows and none is `queued` or `sending`.
    pub fn finished(&self) -> bool {
        self.total() > 0 && self.queued == 0 && self.sending == 0
    }

    fn add(&mut self, state: SendState, n: i64) {
        match state {
            SendState::Queued => self.queued += n,
            SendState::Sending => self.sending += n,
            SendState::Sent => self.sent += n,
            SendState::Failed => self.failed += n,
            SendState::Suppressed => self.suppressed += n,
        }
    }
}

/// Who holds a campaign's send lease, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendLease {
    pub campaign_id: String,
    pub owner: String,
    pub expires_at: i64,
}

/// A failed attempt to record.
#[derive(Debug, Clone, PartialEq)]
pub struct SendFailure {
    pub id: i64,
    pub error: String,
    /// A permanent rejection (5xx): never retried automatically.
    pub permanent: bool,
}

pub(crate) const COLS: &str =
    "id, campaign_id, customer_id, email, state, attempts, last_error, permanent, \
                    message_id, queued_at, sending_at, sent_at";

/// Largest IN-list / multi-row statement, well under every backend's bind limit.
const CHUNK: usize = 500;

pub(crate) fn record(r: &AnyRow) -> Result<SendRecord> {
    record_of(r)
}

/// A send of [`COLS`], from either backend's row.
fn record_of(r: &dyn crate::rows::DbRow) -> Result<SendRecord> {
    let state = r.text(4)?;
    Ok(SendRecord {
        id: r.int(0)?,
        campaign_id: r.text(1)?,
        customer_id: r.text(2)?,
        email: r.text(3)?,
        state: SendState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("send state '{state}'")))?,
        attempts: r.int(5)?,
        last_error: r.opt_text(6)?,
        permanent: r.int(7)? != 0,
        message_id: r.text(8)?,
        queued_at: r.int(9)?,
        sending_at: r.opt_int(10)?,
        sent_at: r.opt_int(11)?,
    })
}

impl Store {
    /// Queues recipients of a campaign. Idempotent: a (campaign, customer) already in the ledger
    /// keeps its row and state. Returns how many rows were added.
    pub async fn queue_sends(&self, campaign_id: &str, sends: &[NewSend]) -> Result<u64> {
        let t = now();
        if self.sqlite_path().is_some() {
            // One prepared single-row insert per recipient on the native connection.
            let mut tx = self.write_tx().await?;
            let added = tx.with_native(|conn| {
                let mut stmt = conn
                    .prepare(
                        "INSERT INTO sends (campaign_id, customer_id, email, state, last_error, \
                         message_id, queued_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
                         ON CONFLICT (campaign_id, customer_id) DO NOTHING",
                    )
                    .map_err(crate::native::err)?;
                let mut added = 0u64;
                for s in sends {
                    let state = if s.suppressed.is_some() {
                        SendState::Suppressed
                    } else {
                        SendState::Queued
                    };
                    added += stmt
                        .execute(rusqlite::params![
                            campaign_id,
                            s.customer_id,
                            s.email,
                            state.as_str(),
                            s.suppressed,
                            s.message_id,
                            t
                        ])
                        .map_err(crate::native::err)? as u64;
                }
                Ok(added)
            })?;
            tx.commit().await?;
            return Ok(added.unwrap_or(0));
        }
        let mut tx = self.pool().begin().await?;
        let mut added = 0;
        for chunk in sends.chunks(CHUNK / 8) {
            let sql = format!(
                "INSERT INTO sends (campaign_id, customer_id, email, state, last_error, message_id, \
                 queued_at, updated_at) VALUES {} ON CONFLICT (campaign_id, customer_id) DO NOTHING",
                self.bulk_values(chunk.len(), 8)
            );
            let mut q = sqlx::query(&sql);
            for s in chunk {
                let state = if s.suppressed.is_some() {
                    SendState::Suppressed
                } else {
                    SendState::Queued
                };
                q = q
                    .bind(campaign_id)
                    .bind(s.customer_id.as_str())
                    .bind(s.email.as_str())
                    .bind(state.as_str())
                    .bind(s.suppressed.as_deref())
                    .bind(s.message_id.as_str())
                    .bind(t)
                    .bind(t);
            }
            added += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        // A large campaign just queued: fresh statistics, or PostgreSQL plans every claim
        // (`claim_rows`) as if the campaign had a handful of rows and sorts all of its queued
        // rows each time, instead of walking `sends_campaign_state` in id order.
        if added >= 1000 {
            self.refresh_statistics(&["sends"]).await;
        }
        Ok(added)
    }

    /// Takes the campaign's send lease for `ttl_s` seconds when it is free, expired or already
    /// ours. `Err(holder)` (inside `Ok`) when another live sender holds it.
    pub async fn acquire_send_lease(
        &self,
        campaign_id: &str,
        owner: &str,
        ttl_s: i64,
    ) -> Result<std::result::Result<(), SendLease>> {
        let t = now();
        let r = sqlx::query(
            "INSERT INTO send_leases (campaign_id, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (campaign_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE send_leases.expires_at < $4 OR send_leases.owner = excluded.owner",
        )
        .bind(campaign_id)
        .bind(owner)
        .bind(t + ttl_s)
        .bind(t)
        .execute(self.pool())
        .await?;
        if r.rows_affected() > 0 {
            return Ok(Ok(()));
        }
        match self.send_lease(campaign_id).await? {
            Some(holder) => Ok(Err(holder)),
            // Released between our insert and the read: try once more.
            None => Box::pin(self.acquire_send_lease(campaign_id, owner, ttl_s)).await,
        }
    }

    /// Extends our lease; false when it is no longer ours.
    pub async fn renew_send_lease(
        &self,
        campaign_id: &str,
        owner: &str,
        ttl_s: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE send_leases SET expires_at = $1 WHERE campaign_id = $2 AND owner = $3",
        )
        .bind(now() + ttl_s)
        .bind(campaign_id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Gives the lease up (no-op when it is not ours).
    pub async fn release_send_lease(&self, campaign_id: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM send_leases WHERE campaign_id = $1 AND owner = $2")
            .bind(campaign_id)
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The current lease holder of a campaign, expired or not.
    pub async fn send_lease(&self, campaign_id: &str) -> Result<Option<SendLease>> {
        let row = sqlx::query(
            "SELECT campaign_id, owner, expires_at FROM send_leases WHERE campaign_id = $1",
        )
        .bind(campaign_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(SendLease {
                campaign_id: r.try_get(0)?,
                owner: r.try_get(1)?,
                expires_at: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Claims up to `limit` due rows for `owner` ([`Store::claim_rows`]) and starts sending all
    /// of them at once (`sending`, attempts + 1): for callers that attempt every claimed row
    /// straight away. The send engine claims with [`Store::claim_rows`] and moves each row to
    /// `sending` only right before its own SMTP transaction ([`Store::begin_send`]).
    pub async fn claim_sends(
        &self,
        campaign_id: &str,
        owner: &str,
        claim_ttl_s: i64,
        limit: usize,
        check: ConsentCheck,
    ) -> Result<Claim> {
        let claim = self
            .claim_rows(campaign_id, owner, claim_ttl_s, limit, check)
            .await?;
        let Claim::Claimed { sends, suppressed } = claim else {
            return Ok(claim);
        };
        let now = self.db_now_sql();
        let mut started = Vec::with_capacity(sends.len());
        let mut tx = self.pool().begin().await?;
        for chunk in sends.chunks(CHUNK) {
            let sql = format!(
                "UPDATE sends SET state = 'sending', attempts = attempts + 1, sending_at = {now}, \
                 updated_at = {now}, claim_expires_at = NULL \
                 WHERE state = 'queued' AND claimed_by = $1 AND id IN ({}) RETURNING id",
                in_list(2, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(owner);
            for s in chunk {
                q = q.bind(s.id);
            }
            started.extend(q.fetch_all(&mut *tx).await?);
        }
        tx.commit().await?;
        let started: std::collections::HashSet<i64> = started.into_iter().collect();
        Ok(Claim::Claimed {
            sends: sends
                .into_iter()
                .filter(|s| started.contains(&s.id))
                .collect(),
            suppressed,
        })
    }

    /// On PostgreSQL, lets the transaction that records attempts' outcomes (`sending → sent`
    /// or `failed`) commit without waiting for its WAL flush, so a sender does not wait a disk
    /// flush per batch of outcomes. This is safe for exactly-once: if the server crashes before
    /// the flush, the rows stay `sending` — reported unconfirmed, never sent again by
    /// themselves. The `sending` mark itself, which exactly-once rests on, always commits
    /// synchronously.
    async fn outcome_commit_async(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
        if self.backend() == crate::Backend::Postgres {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Records accepted messages: `sending → sent` with their acceptance time. Rows not in
    /// `sending` are left alone. Returns how many changed.
    pub async fn mark_sent(&self, sent: &[(i64, i64)]) -> Result<u64> {
        if sent.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool().begin().await?;
        self.outcome_commit_async(&mut tx).await?;
        let mut changed = 0;
        // Group by time so one statement covers many rows.
        let mut by_time: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (id, at) in sent {
            by_time.entry(*at).or_default().push(*id);
        }
        let t = now();
        for (at, ids) in by_time {
            for chunk in ids.chunks(CHUNK) {
                let sql = format!(
                    "UPDATE sends SET state = 'sent', sent_at = $1, updated_at = $2, last_error = NULL, \
                     permanent = 0 WHERE state = 'sending' AND id IN ({})",
                    in_list(3, chunk.len())
                );
                let mut q = sqlx::query(&sql).bind(at).bind(t);
                for id in chunk {
                    q = q.bind(*id);
                }
                changed += q.execute(&mut *tx).await?.rows_affected();
            }
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Records attempts that were definitely not accepted and are given up: `sending → failed`.
    pub async fn mark_failed(&self, failures: &[SendFailure]) -> Result<u64> {
        if failures.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool().begin().await?;
        self.outcome_commit_async(&mut tx).await?;
        let t = now();
        let mut changed = 0;
        for f in failures {
            changed += sqlx::query(
                "UPDATE sends SET state = 'failed', last_error = $1, permanent = $2, updated_at = $3 \
                 WHERE id = $4 AND state = 'sending'",
            )
            .bind(f.error.as_str())
            .bind(i64::from(f.permanent))
            .bind(t)
            .bind(f.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// An attempt that was definitely not accepted goes back to the queue, due at
    /// `next_attempt_at` (Unix seconds): `sending → queued`.
    pub async fn retry_send_later(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE sends SET state = 'queued', last_error = $1, permanent = 0, next_attempt_at = $2, \
             updated_at = $3, claimed_by = NULL, claim_expires_at = NULL \
             WHERE id = $4 AND state = 'sending'",
        )
        .bind(error)
        .bind(next_attempt_at)
        .bind(now())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Counts retries made within one claim (the claim itself counted one attempt).
    pub async fn add_send_attempts(&self, id: i64, extra: i64) -> Result<()> {
        sqlx::query("UPDATE sends SET attempts = attempts + $1 WHERE id = $2")
            .bind(extra)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Claimed rows whose transaction never started go back to the queue, their attempt
    /// uncounted (a clean stop).
    pub async fn unclaim_sends(&self, ids: &[i64]) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        let mut n = 0;
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "UPDATE sends SET state = 'queued', attempts = attempts - 1, updated_at = $1, \
                 claimed_by = NULL, claim_expires_at = NULL WHERE state = 'sending' AND id IN ({})",
                in_list(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(now());
            for id in chunk {
                q = q.bind(*id);
            }
            n += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Operator's decision after a crash: unconfirmed rows of a campaign (`sending`, their
    /// worker no longer alive) are queued again, accepting that some recipients may get the
    /// email twice. Rows a live worker is sending right now are left alone.
    pub async fn requeue_unconfirmed(&self, campaign_id: &str) -> Result<u64> {
        let now = self.db_now_sql();
        let r = sqlx::query(&format!(
            "UPDATE sends SET state = 'queued', next_attempt_at = 0, updated_at = {now}, \
             claimed_by = NULL, claim_expires_at = NULL, \
             last_error = 'unconfirmed: queued again by the operator' \
             WHERE campaign_id = $1 AND state = 'sending' AND NOT EXISTS (SELECT 1 FROM send_workers w \
                 WHERE w.id = sends.claimed_by AND w.stopped_at IS NULL AND w.expires_at >= {now})"
        ))
        .bind(campaign_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// Queues `failed` rows again: the transient failures, and the permanent ones too when
    /// `include_permanent`.
    pub async fn requeue_failed(&self, campaign_id: &str, include_permanent: bool) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE sends SET state = 'queued', next_attempt_at = 0, updated_at = $1 \
             WHERE campaign_id = $2 AND state = 'failed' AND (permanent = 0 OR $3 = 1)",
        )
        .bind(now())
        .bind(campaign_id)
        .bind(i64::from(include_permanent))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// Rows of a campaign per state.
    pub async fn send_counts(&self, campaign_id: &str) -> Result<SendCounts> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) FROM sends WHERE campaign_id = $1 GROUP BY state")
                .bind(campaign_id)
                .fetch_all(self.pool())
                .await?;
        let mut c = SendCounts::default();
        for r in rows {
            let s: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            c.add(
                SendState::parse(&s)
                    .ok_or_else(|| StoreError::Corrupt(format!("send state '{s}'")))?,
                n,
            );
        }
        Ok(c)
    }

    /// Rows per state of every campaign that has a ledger.
    pub async fn send_counts_all(&self) -> Result<BTreeMap<String, SendCounts>> {
        let rows = sqlx::query(
            "SELECT campaign_id, state, COUNT(*) FROM sends GROUP BY campaign_id, state",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out: BTreeMap<String, SendCounts> = BTreeMap::new();
        for r in rows {
            let id: String = r.try_get(0)?;
            let s: String = r.try_get(1)?;
            let n: i64 = r.try_get(2)?;
            out.entry(id).or_default().add(
                SendState::parse(&s)
                    .ok_or_else(|| StoreError::Corrupt(format!("send state '{s}'")))?,
                n,
            );
        }
        Ok(out)
    }

    /// When each campaign's last accepted message was accepted (Unix seconds), for the
    /// campaigns with one: aggregated in the database, one row per campaign.
    pub async fn last_sent_all(&self) -> Result<BTreeMap<String, i64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT campaign_id, MAX(sent_at) FROM sends WHERE sent_at IS NOT NULL \
             GROUP BY campaign_id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// The earliest time a queued row of the campaign is due, if any row is queued.
    pub async fn next_send_due(&self, campaign_id: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM sends WHERE campaign_id = $1 AND state = 'queued'",
        )
        .bind(campaign_id)
        .fetch_one(self.pool())
        .await?)
    }

    /// One ledger row by send id.
    pub async fn send(&self, id: i64) -> Result<Option<SendRecord>> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM sends WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// The first `queued` row of a campaign (by send id), if any.
    pub async fn first_queued_send(&self, campaign_id: &str) -> Result<Option<SendRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLS} FROM sends WHERE campaign_id = $1 AND state = 'queued' ORDER BY id LIMIT 1"
        ))
        .bind(campaign_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(record).transpose()
    }

    /// Every ledger row of a campaign, by send id.
    pub async fn sends_of(&self, campaign_id: &str) -> Result<Vec<SendRecord>> {
        let sql = format!("SELECT {COLS} FROM sends WHERE campaign_id = $1 ORDER BY id");
        let binds = vec![crate::rows::OwnedVal::Text(Some(campaign_id.to_string()))];
        self.read_rows(sql, binds, record_of).await
    }

    /// The ledger row of one recipient of a campaign.
    pub async fn send_of(
        &self,
        campaign_id: &str,
        customer_id: &str,
    ) -> Result<Option<SendRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLS} FROM sends WHERE campaign_id = $1 AND customer_id = $2"
        ))
        .bind(campaign_id)
        .bind(customer_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(record).transpose()
    }

    /// When each customer was last mailed (sent, or possibly sent: unconfirmed), Unix seconds.
    /// For frequency caps.
    pub async fn last_mailed_at(&self) -> Result<HashMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT customer_id, MAX(COALESCE(sent_at, sending_at)) FROM sends \
             WHERE state IN ('sent', 'sending') GROUP BY customer_id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let at: Option<i64> = r.try_get(1)?;
            if let Some(at) = at {
                out.insert(r.try_get(0)?, at);
            }
        }
        Ok(out)
    }

    /// A campaign's send state (`active` when never set).
    pub async fn send_campaign_state(&self, campaign_id: &str) -> Result<CampaignSendState> {
        let s: Option<String> =
            sqlx::query_scalar("SELECT state FROM send_campaigns WHERE campaign_id = $1")
                .bind(campaign_id)
                .fetch_optional(self.pool())
                .await?;
        match s {
            None => Ok(CampaignSendState::Active),
            Some(s) => CampaignSendState::parse(&s)
                .ok_or_else(|| StoreError::Corrupt(format!("campaign send state '{s}'"))),
        }
    }

    /// Every campaign whose send state was set.
    pub async fn send_campaign_states(&self) -> Result<HashMap<String, CampaignSendState>> {
        let rows = sqlx::query("SELECT campaign_id, state FROM send_campaigns")
            .fetch_all(self.pool())
            .await?;
        let mut out = HashMap::new();
        for r in rows {
            let s: String = r.try_get(1)?;
            out.insert(
                r.try_get(0)?,
                CampaignSendState::parse(&s)
                    .ok_or_else(|| StoreError::Corrupt(format!("campaign send state '{s}'")))?,
            );
        }
        Ok(out)
    }

    /// Pauses, resumes or cancels a campaign's sending. A cancelled campaign stays cancelled:
    /// changing it is a [`StoreError::Conflict`]. Resuming a campaign the guardrail paused
    /// clears its reason and overrides the guardrail for it
    /// ([`Store::pause_send_campaign_for`]).
    pub async fn set_send_campaign_state(
        &self,
        campaign_id: &str,
        state: CampaignSendState,
    ) -> Result<()> {
        let current = self.send_campaign_state(campaign_id).await?;
        if current == CampaignSendState::Cancelled && state != CampaignSendState::Cancelled {
            return Err(StoreError::Conflict(format!(
                "campaign {campaign_id} was cancelled; it cannot be {}",
                match state {
                    CampaignSendState::Active => "resumed",
                    _ => "paused",
                }
            )));
        }
        sqlx::query(
            "INSERT INTO send_campaigns (campaign_id, state, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (campaign_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, \
             guardrail_override = CASE WHEN excluded.state = 'active' AND send_campaigns.reason IS NOT NULL \
                 THEN 1 ELSE send_campaigns.guardrail_override END, \
             reason = CASE WHEN excluded.state = 'active' THEN NULL ELSE send_campaigns.reason END",
        )
        .bind(campaign_id)
        .bind(state.as_str())
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// The hot statements of one send run (claims, `sending`, outcomes), on the connection that
/// suits the backend: on SQLite one native connection held for the run (each statement a
/// prepared point update inside its own `BEGIN IMMEDIATE` transaction: sqlx's SQLite driver
/// hands every statement, value and row to its worker thread, which cost more than the writes
/// themselves); on PostgreSQL the pool, exactly as the [`Store`] methods of the same names. The
/// contract is theirs ([`Store::claim_rows`], [`Store::begin_sends`], [`Store::mark_sent`],
/// [`Store::mark_failed`], [`Store::release_claims`]).
///
/// On PostgreSQL each run claims in id order from where its previous claim ended
/// ([`ClaimCursor`]), not from the campaign's first row.
#[derive(Clone)]
pub struct SendLedger {
    store: Store,
    native: Option<std::sync::Arc<std::sync::Mutex<rusqlite::Connection>>>,
    cursors: std::sync::Arc<std::sync::Mutex<HashMap<String, ClaimCursor>>>,
}

/// Where a run's next claim of a campaign starts on PostgreSQL: past the highest id it
/// claimed. PostgreSQL plans the claim as a walk of the primary key in id order whenever its
/// statistics say most of the campaign is queued (as they do right after queueing): from the
/// first row, that walk passes every row already sent, so a claim cost time in proportion to
/// the campaign's progress (183 ms a claim at 190k of 255k rows sent). From the cursor it
/// starts at the rows still queued. Rows behind the cursor that become claimable again (a
/// retry come due, a claim released or expired) are found by a claim from the start, made
/// when a claim from the cursor comes back short and at least every [`RESCAN`].
#[derive(Debug, Clone, Copy)]
struct ClaimCursor {
    after: i64,
    rescanned: std::time::Instant,
}

/// How often a run's claims start again from a campaign's first row (see [`ClaimCursor`]).
const RESCAN: std::time::Duration = std::time::Duration::from_secs(30);

impl std::fmt::Debug for SendLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendLedger")
            .field("native", &self.native.is_some())
            .finish()
    }
}

impl Store {
    /// A ledger handle for one send run ([`SendLedger`]); its native connection (SQLite)
    /// closes when the last clone is dropped.
    pub fn send_ledger(&self) -> Result<SendLedger> {
        let native = match self.sqlite_path() {
            Some(path) => Some(std::sync::Arc::new(std::sync::Mutex::new(
                crate::native::open_small_writes(path)?,
            ))),
            None => None,
        };
        Ok(SendLedger {
            store: self.clone(),
            native,
            cursors: Default::default(),
        })
    }
}

/// One `BEGIN IMMEDIATE` transaction running `f` on a native connection.
fn immediate<R>(
    conn: &mut rusqlite::Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<R>,
) -> Result<R> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(crate::native::err)?;
    let r = f(&tx)?;
    tx.commit().map_err(crate::native::err)?;
    Ok(r)
}

/// Runs `sql` once per item of `items` (bound by `bind`) with one prepared statement; returns
/// the rows changed per item.
fn each<T>(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    items: &[T],
    mut run: impl FnMut(&mut rusqlite::CachedStatement<'_>, &T) -> rusqlite::Result<usize>,
) -> Result<Vec<usize>> {
    let mut stmt = tx.prepare_cached(sql).map_err(crate::native::err)?;
    items
        .iter()
        .map(|i| run(&mut stmt, i).map_err(crate::native::err))
        .collect()
}

const BEGIN_ONE: &str = "UPDATE sends SET state = 'sending', attempts = attempts + 1, \
     sending_at = CAST(strftime('%s','now') AS INTEGER), \
     updated_at = CAST(strftime('%s','now') AS INTEGER), claim_expires_at = NULL \
     WHERE id = ?1 AND state = 'queued' AND claimed_by = ?2";
const SENT_ONE: &str = "UPDATE sends SET state = 'sent', sent_at = ?1, updated_at = ?2, \
     last_error = NULL, permanent = 0 WHERE id = ?3 AND state = 'sending'";
const FAILED_ONE: &str = "UPDATE sends SET state = 'failed', last_error = ?1, permanent = ?2, \
     updated_at = ?3 WHERE id = ?4 AND state = 'sending'";
const RELEASE_ONE: &str = "UPDATE sends SET claimed_by = NULL, claim_expires_at = NULL \
     WHERE id = ?1 AND state = 'queued' AND claimed_by = ?2";

impl SendLedger {
    /// The store this ledger writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `f` on the native connection on a blocking thread; `None` on PostgreSQL.
    async fn native<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<R> + Send + 'static,
    ) -> Option<Result<R>> {
        let conn = self.native.clone()?;
        let r = tokio::task::spawn_blocking(move || {
            let mut c = conn
                .lock()
                .map_err(|_| StoreError::Corrupt("the ledger connection was poisoned".into()))?;
            f(&mut c)
        })
        .await;
        Some(match r {
            Ok(r) => r,
            Err(e) => Err(StoreError::Corrupt(format!("ledger task failed: {e}"))),
        })
    }

    /// [`Store::claim_rows`].
    pub async fn claim_rows(
        &self,
        campaign_id: &str,
        worker: &str,
        ttl_s: i64,
        limit: usize,
        check: ConsentCheck,
    ) -> Result<Claim> {
        let (c, w) = (campaign_id.to_string(), worker.to_string());
        let native = self
            .native(move |conn| crate::fleet::claim_rows_native(conn, &c, &w, ttl_s, limit, check))
            .await;
        if let Some(r) = native {
            return r;
        }
        let cursor = self
            .cursors
            .lock()
            .ok()
            .and_then(|c| c.get(campaign_id).copied());
        let after = cursor
            .filter(|c| c.rescanned.elapsed() < RESCAN)
            .map_or(0, |c| c.after);
        let mut claim = self
            .store
            .claim_rows_after(campaign_id, worker, ttl_s, limit, check, after)
            .await?;
        // A claim from the cursor that comes back short goes on from the first row: rows
        // behind the cursor claimable again. (Stopped by now: the rows claimed above are still
        // this run's to send.)
        let mut from_start = after == 0;
        if let Claim::Claimed { sends, suppressed } = &mut claim {
            let got = sends.len() + suppressed.len();
            if !from_start && got < limit {
                if let Claim::Claimed {
                    sends: more,
                    suppressed: more_suppressed,
                } = self
                    .store
                    .claim_rows_after(campaign_id, worker, ttl_s, limit - got, check, 0)
                    .await?
                {
                    sends.extend(more);
                    suppressed.extend(more_suppressed);
                }
                from_start = true;
            }
            let top = sends
                .iter()
                .map(|s| s.id)
                .chain(suppressed.iter().map(|(id, _)| *id))
                .max();
            if let (Some(top), Ok(mut cursors)) = (top, self.cursors.lock()) {
                let now = std::time::Instant::now();
                let c = cursors
                    .entry(campaign_id.to_string())
                    .or_insert(ClaimCursor {
                        after: 0,
                        rescanned: now,
                    });
                // From the start, the cursor follows this claim; past the cursor it only moves on.
                c.after = if after == 0 { top } else { c.after.max(top) };
                if from_start {
                    c.rescanned = now;
                }
            }
        }
        Ok(claim)
    }

    /// [`Store::begin_sends`].
    pub async fn begin_sends(&self, ids: &[i64], worker: &str) -> Result<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (owned, w) = (ids.to_vec(), worker.to_string());
        let native = self
            .native(move |conn| {
                immediate(conn, |tx| {
                    let changed = each(tx, BEGIN_ONE, &owned, |st, id| {
                        st.execute(rusqlite::params![id, w])
                    })?;
                    Ok(owned
                        .iter()
                        .zip(changed)
                        .filter(|(_, n)| *n > 0)
                        .map(|(id, _)| *id)
                        .collect())
                })
            })
            .await;
        match native {
            Some(r) => r,
            None => self.store.begin_sends(ids, worker).await,
        }
    }

    /// [`Store::mark_sent`].
    pub async fn mark_sent(&self, sent: &[(i64, i64)]) -> Result<u64> {
        if sent.is_empty() {
            return Ok(0);
        }
        let owned = sent.to_vec();
        let native = self
            .native(move |conn| {
                let t = now();
                immediate(conn, |tx| {
                    let n = each(tx, SENT_ONE, &owned, |st, (id, at)| {
                        st.execute(rusqlite::params![at, t, id])
                    })?;
                    Ok(n.into_iter().sum::<usize>() as u64)
                })
            })
            .await;
        match native {
            Some(r) => r,
            None => self.store.mark_sent(sent).await,
        }
    }

    /// [`Store::mark_failed`].
    pub async fn mark_failed(&self, failures: &[SendFailure]) -> Result<u64> {
        if failures.is_empty() {
            return Ok(0);
        }
        let owned = failures.to_vec();
        let native = self
            .native(move |conn| {
                let t = now();
                immediate(conn, |tx| {
                    let n = each(tx, FAILED_ONE, &owned, |st, f| {
                        st.execute(rusqlite::params![f.error, i64::from(f.permanent), t, f.id])
                    })?;
                    Ok(n.into_iter().sum::<usize>() as u64)
                })
            })
            .await;
        match native {
            Some(r) => r,
            None => self.store.mark_failed(failures).await,
        }
    }

    /// [`Store::release_claims`].
    pub async fn release_claims(&self, worker: &str, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let (owned, w) = (ids.to_vec(), worker.to_string());
        let native = self
            .native(move |conn| {
                immediate(conn, |tx| {
                    let n = each(tx, RELEASE_ONE, &owned, |st, id| {
                        st.execute(rusqlite::params![id, w])
                    })?;
                    Ok(n.into_iter().sum::<usize>() as u64)
                })
            })
            .await;
        match native {
            Some(r) => r,
            None => self.store.release_claims(worker, ids).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;
    use retain_core::{Customer, SuppressionReason};

    async fn setup(store: &Store, n: usize) {
        let customers: Vec<Customer> = (0..n)
            .map(|i| Customer {
                id: format!("c{i}"),
                email: Some(format!("c{i}@x.io")),
                email_valid: true,
                subscribed: Some(true),
                ..Default::default()
            })
            .collect();
        store
            .import_customers("c.csv", &customers, (n as u64, n as u64, 0))
            .await
            .expect("customers");
        let new: Vec<NewSend> = (0..n)
            .map(|i| NewSend {
                customer_id: format!("c{i}"),
                email: format!("C{i}@x.io"),
                message_id: format!("<m{i}@x.io>"),
                suppressed: None,
            })
            .collect();
        assert_eq!(
            store.queue_sends("k1", &new).await.expect("queue"),
            n as u64
        );
    }

    /// Runs a scenario on SQLite and on PostgreSQL (`test_support::postgres`: a failure when
    /// `RETAIN_REQUIRE_POSTGRES=1` and no server answers, else a reported skip).
    async fn on_both<F, Fut>(scenario: F)
    where
        F: Fn(Store) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let (store, _dir) = test_support::sqlite().await;
        scenario(store).await;
        if let Some((pg, _db)) = test_support::postgres().await {
            scenario(pg).await;
        }
    }

    fn claimed(c: Claim) -> (Vec<ClaimedSend>, Vec<(i64, String)>) {
        match c {
            Claim::Claimed { sends, suppressed } => (sends, suppressed),
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn queue_is_idempotent_and_claims_are_exclusive() {
        on_both(queue_is_idempotent_and_claims_are_exclusive_on).await;
    }

    async fn queue_is_idempotent_and_claims_are_exclusive_on(store: Store) {
        setup(&store, 5).await;
        let again = vec![NewSend {
            customer_id: "c0".into(),
            email: "other@x.io".into(),
            message_id: "<other@x.io>".into(),
            suppressed: None,
        }];
        assert_eq!(store.queue_sends("k1", &again).await.expect("q"), 0);
        let (mine, supp) = claimed(
            store
                .claim_rows("k1", "me", 60, 3, ConsentCheck::default())
                .await
                .expect("claim"),
        );
        assert_eq!(mine.len(), 3);
        assert!(supp.is_empty());
        assert!(mine.iter().all(|s| s.attempts == 1));
        // Claimed rows stay queued until their own transaction starts.
        let c = store.send_counts("k1").await.expect("counts");
        assert_eq!((c.queued, c.sending), (5, 0));
        // Another worker gets only the unclaimed rest, and cannot start ours.
        let (yours, _) = claimed(
            store
                .claim_rows("k1", "you", 60, 10, ConsentCheck::default())
                .await
                .expect("claim"),
        );
        assert_eq!(yours.len(), 2);
        assert!(yours.iter().all(|y| mine.iter().all(|m| m.id != y.id)));
        assert!(!store.begin_send(mine[0].id, "you").await.expect("begin"));
        assert!(store.begin_send(mine[0].id, "me").await.expect("begin"));
        assert!(
            !store.begin_send(mine[0].id, "me").await.expect("begin"),
            "a row starts once"
        );
        let c = store.send_counts("k1").await.expect("counts");
        assert_eq!((c.queued, c.sending), (4, 1));
        // Released claims are claimable again at once.
        assert_eq!(
            store
                .release_claims("me", &[mine[1].id, mine[2].id, mine[0].id])
                .await
                .expect("release"),
            2
        );
        let (again, _) = claimed(
            store
                .claim_rows("k1", "you", 60, 10, ConsentCheck::default())
                .await
                .expect("claim"),
        );
        assert_eq!(
            again.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![mine[1].id, mine[2].id]
        );
    }

    #[tokio::test]
    async fn the_run_ledger_keeps_the_contract() {
        on_both(the_run_ledger_keeps_the_contract_on).await;
    }

    #[tokio::test]
    async fn the_run_ledger_claims_every_row_once_past_its_cursor() {
        on_both(the_run_ledger_claims_every_row_once_past_its_cursor_on).await;
    }

    /// Claims from where the previous one ended, and still finds rows behind it that became
    /// claimable again (here: released claims) once a claim comes back short.
    async fn the_run_ledger_claims_every_row_once_past_its_cursor_on(store: Store) {
        setup(&store, 10).await;
        let ledger = store.send_ledger().expect("ledger");
        let claim = |n: usize| {
            let ledger = ledger.clone();
            async move {
                let (rows, supp) = claimed(
                    ledger
                        .claim_rows("k1", "me", 60, n, ConsentCheck::default())
                        .await
                        .expect("claim"),
                );
                assert!(supp.is_empty());
                rows.iter().map(|r| r.id).collect::<Vec<i64>>()
            }
        };
        let first = claim(3).await;
        let mut ids: Vec<i64> = store
            .sends_of("k1")
            .await
            .expect("sends")
            .iter()
            .map(|s| s.id)
            .collect();
        ids.sort_unstable();
        assert_eq!(first, ids[..3]);
        // Given back: claimable again, behind the cursor.
        assert_eq!(
            store.release_claims("me", &first).await.expect("release"),
            3
        );
        let mut all = Vec::new();
        let mut claims = Vec::new();
        loop {
            let got = claim(3).await;
            if got.is_empty() {
                break;
            }
            all.extend(got.iter().copied());
            claims.push(got);
        }
        if store.backend() == crate::Backend::Postgres {
            // Past the cursor first; the released rows once the rest runs short.
            assert_eq!(claims[0], ids[3..6], "{claims:?}");
            assert_eq!(claims[2], [ids[9], ids[0], ids[1]], "{claims:?}");
        }
        all.sort_unstable();
        assert_eq!(all, ids, "every row claimed exactly once: {claims:?}");
    }

    async fn the_run_ledger_keeps_the_contract_on(store: Store) {
        setup(&store, 6).await;
        store
            .suppress("c5@x.io", SuppressionReason::Complaint, "t")
            .await
            .expect("suppress");
        let ledger = store.send_ledger().expect("ledger");
        let (mine, supp) = claimed(
            ledger
                .claim_rows("k1", "me", 60, 4, ConsentCheck::default())
                .await
                .expect("claim"),
        );
        assert_eq!(mine.len(), 4);
        assert!(supp.is_empty());
        let (yours, supp) = claimed(
            ledger
                .claim_rows("k1", "you", 60, 10, ConsentCheck::default())
                .await
                .expect("claim"),
        );
        assert_eq!(yours.len(), 1, "the rest, less the suppressed address");
        assert_eq!(supp.len(), 1);
        assert!(supp[0].1.contains("complaint"), "{supp:?}");
        // Only my claimed rows start, once.
        let mut started = ledger
            .begin_sends(&[mine[0].id, yours[0].id, mine[1].id, mine[2].id], "me")
            .await
            .expect("begin");
        started.sort_unstable();
        assert_eq!(started, vec![mine[0].id, mine[1].id, mine[2].id]);
        assert!(ledger
            .begin_sends(&[mine[0].id], "me")
            .await
            .expect("begin")
            .is_empty());
        // Outcomes only from `sending`.
        assert_eq!(
            ledger
                .mark_sent(&[(mine[0].id, 100), (mine[3].id, 100)])
                .await
                .expect("sent"),
            1
        );
        assert_eq!(
            ledger
                .mark_failed(&[SendFailure {
                    id: mine[1].id,
                    error: "550 no".into(),
                    permanent: true,
                }])
                .await
                .expect("failed"),
            1
        );
        assert_eq!(ledger.mark_sent(&[(mine[1].id, 100)]).await.expect("s"), 0);
        // Releasing gives back only my unstarted claims.
        assert_eq!(
            ledger
                .release_claims("me", &[mine[3].id, mine[2].id, yours[0].id])
                .await
                .expect("release"),
            1
        );
        let c = store.send_counts("k1").await.expect("counts");
        assert_eq!(
            (c.queued, c.sending, c.sent, c.failed, c.suppressed),
            (2, 1, 1, 1, 1)
        );
        let r = store.send(mine[0].id).await.expect("r").expect("row");
        assert_eq!(
            (r.state, r.attempts, r.sent_at),
            (SendState::Sent, 1, Some(100))
        );
        let r = store.send(mine[1].id).await.expect("r").expect("row");
        assert_eq!(r.last_error.as_deref(), Some("550 no"));
        assert!(r.permanent);
        // The released row is claimable at once; the other worker's claim is still theirs.
        let (again, _) = claimed(
            ledger
                .claim_rows("k1", "me", 60, 10, ConsentCheck::default())
                .await
                .expect("claim"),
        );
        assert_eq!(
            again.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![mine[3].id]
        );
        let first = store.first_queued_send("k1").await.expect("first");
        assert_eq!(first.map(|f| f.id), Some(mine[3].id));
        store
            .set_send_campaign_state("k1", CampaignSendState::Paused)
            .await
            .expect("pause");
        assert_eq!(
            ledger
                .claim_rows("k1", "me", 60, 10, ConsentCheck::default())
                .await
                .expect("claim"),
            Claim::Stopped(CampaignSendState::Paused)
        );
    }

    #[tokio::test]
    async fn rows_start_together_only_while_claimed() {
        on_both(rows_start_together_only_while_claimed_on).await;
    }

    async fn rows_start_together_only_while_claimed_on(store: Store) {
        setup(&store, 5).await;
        let (mine, _) = claimed(
            store
                .claim_rows("k1", "me", 60, 3, ConsentCheck::default())
                .await
                .expect("claim"),
        );
        let (yours, _) = claimed(
            store
                .claim_rows("k1", "you", 60, 10, ConsentCheck::default())
                .await
                .expect("claim"),
        );
        assert_eq!((mine.len(), yours.len()), (3, 2));
        // One statement: my two rows start, yours (claimed by another worker) do not.
        let ask = vec![mine[0].id, yours[0].id, mine[2].id];
        let mut started = store.begin_sends(&ask, "me").await.expect("begin");
        started.sort_unstable();
        assert_eq!(started, vec![mine[0].id, mine[2].id]);
        let c = store.send_counts("k1").await.expect("counts");
        assert_eq!((c.queued, c.sending), (3, 2));
        // A row starts once; an empty request changes nothing.
        assert!(store
            .begin_sends(&[mine[0].id], "me")
            .await
            .expect("begin")
            .is_empty());
        assert!(store
            .begin_sends(&[], "me")
            .await
            .expect("begin")
            .is_empty());
        let row = store.send(mine[0].id).await.expect("row").expect("exists");
        assert_eq!(row.state, SendState::Sending);
        assert_eq!(row.attempts, 1);
    }

    #[tokio::test]
    async fn sent_only_from_sending_and_unconfirmed_rows_are_kept() {
        on_both(sent_only_from_sending_and_unconfirmed_rows_are_kept_on).await;
    }

    async fn sent_only_from_sending_and_unconfirmed_rows_are_kept_on(store: Store) {
        setup(&store, 4).await;
        let (sends, _) = claimed(
            store
                .claim_sends("k1", "me", 60, 10, ConsentCheck::default())
                .await
                .expect("claim"),
        );
        let ids: Vec<i64> = sends.iter().map(|s| s.id).collect();
        assert_eq!(
            store
                .mark_sent(&[(ids[0], 100), (ids[1], 101)])
                .await
                .expect("sent"),
            2
        );
        // A second mark is a no-op: sent stays sent.
        assert_eq!(store.mark_sent(&[(ids[0], 200)]).await.expect("sent"), 0);
        // The campaign's last acceptance, as the database aggregates it.
        assert_eq!(
            store
                .last_sent_all()
                .await
                .expect("last")
                .into_iter()
                .collect::<Vec<_>>(),
            vec![("k1".to_string(), 101)]
        );
        assert_eq!(
            store
                .mark_failed(&[SendFailure {
                    id: ids[2],
                    error: "550 5.1.1 no such user".into(),
                    permanent: true,
                }])
                .await
                .expect("failed"),
            1
        );
        // Failing a sent row does nothing.
        assert_eq!(
            store
                .mark_failed(&[SendFailure {
                    id: ids[0],
                    error: "x".into(),
                    permanent: true,
                }])
                .await
                .expect("failed"),
            0
        );
        let r0 = store.send(ids[0]).await.expect("r").expect("exists");
        assert_eq!(r0.state, SendState::Sent);
        assert!(r0.state == "sent");
        assert_eq!(r0.sent_at, Some(100));
        assert_eq!(r0.message_id, "<m0@x.io>");
        // ids[3] is left `sending`: a crash. A new run does not claim it.
        let (sends, _) = claimed(
            store
                .claim_sends("k1", "run2", 60, 10, ConsentCheck::default())
                .await
                .expect("claim"),
        );
        assert!(sends.is_empty());
        let c = store.send_counts("k1").await.expect("c");
        assert_eq!((c.sent, c.failed, c.sending, c.queued), (2, 1, 1, 0));
        // Until the operator requeues it; the permanent failure stays unless asked.
        assert_eq!(store.requeue_unconfirmed("k1").await.expect("rq"), 1);
        assert_eq!(store.requeue_failed("k1", false).await.expect("rf"), 0);
        let (sends, _) = claimed(
            store
                .claim_sends("k1", "run2", 60, 10, ConsentCheck::default())
                .await
                .expect("claim"),
        );
        assert_eq!(sends.len(), 1);
        assert_eq!(sends[0].id, ids[3]);
        assert_eq!(sends[0].attempts, 2);
        let last = store.last_mailed_at().await.expect("last");
        assert_eq!(last.get("c0"), Some(&100));
        assert!(last.contains_key("c3"), "unconfirmed counts as mailed");
        assert!(!last.contains_key("c2"));
    }

    #[tokio::test]
    async fn send_time_checks_suppress_and_retries_wait() {
        on_both(send_time_checks_suppress_and_retries_wait_on).await;
    }

    async fn send_time_checks_suppress_and_retries_wait_on(store: Store) {
        setup(&store, 6).await;
        store
            .suppress("c1@X.io", SuppressionReason::HardBounce, "smtp")
            .await
            .expect("s");
        store
            .set_consent_by_email("c2@x.io", false)
            .await
            .expect("c");
        let unknown = Customer {
            id: "c3".into(),
            email: Some("c3@x.io".into()),
            email_valid: true,
            subscribed: None,
            ..Default::default()
        };
        // Consent unknown: re-import with subscribed NULL keeps the old value, so edit directly.
        sqlx::query("UPDATE customers SET subscribed = NULL WHERE id = $1")
            .bind(unknown.id.as_str())
            .execute(store.pool())
            .await
            .expect("null");
        let (sends, supp) = claimed(
            store
                .claim_sends(
                    "k1",
                    "me",
                    60,
                    10,
                    ConsentCheck {
                        require_opt_in: true,
                    },
                )
                .await
                .expect("claim"),
        );
        let supp_ids: Vec<i64> = supp.iter().map(|(id, _)| *id).collect();
        assert_eq!(supp.len(), 3, "{supp:?}");
        assert!(supp[0].1.contains("hard_bounce"));
        assert_eq!(supp[1].1, "unsubscribed");
        assert_eq!(supp[2].1, "no consent");
        assert_eq!(sends.len(), 3);
        assert!(sends.iter().all(|s| !supp_ids.contains(&s.id)));
        // A transient failure goes back to the queue, not due yet.
        assert!(store
            .retry_send_later(sends[0].id, "451 try later", now() + 3600)
            .await
            .expect("retry"));
        // A clean stop returns never-attempted rows uncounted.
        assert_eq!(store.unclaim_sends(&[sends[1].id]).await.expect("un"), 1);
        let (again, _) = claimed(
            store
                .claim_sends(
                    "k1",
                    "me",
                    60,
                    10,
                    ConsentCheck {
                        require_opt_in: true,
                    },
                )
                .await
                .expect("claim"),
        );
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, sends[1].id);
        assert_eq!(again[0].attempts, 1);
        assert!(store
            .next_send_due("k1")
            .await
            .expect("due")
            .is_some_and(|d| d > now()));
        let rec = store.send(sends[0].id).await.expect("r").expect("e");
        assert_eq!(rec.state, SendState::Queued);
        assert_eq!(rec.last_error.as_deref(), Some("451 try later"));
    }

    #[tokio::test]
    async fn paused_and_cancelled_campaigns_stop_claims() {
        on_both(paused_and_cancelled_campaigns_stop_claims_on).await;
    }

    async fn paused_and_cancelled_campaigns_stop_claims_on(store: Store) {
        setup(&store, 2).await;
        store
            .set_send_campaign_state("k1", CampaignSendState::Paused)
            .await
            .expect("pause");
        assert_eq!(
            store
                .claim_sends("k1", "me", 60, 10, ConsentCheck::default())
                .await
                .expect("c"),
            Claim::Stopped(CampaignSendState::Paused)
        );
        store
            .set_send_campaign_state("k1", CampaignSendState::Active)
            .await
            .expect("resume");
        let (s, _) = claimed(
            store
                .claim_sends("k1", "me", 60, 1, ConsentCheck::default())
                .await
                .expect("c"),
        );
        assert_eq!(s.len(), 1);
        store
            .set_send_campaign_state("k1", CampaignSendState::Cancelled)
            .await
            .expect("cancel");
        assert!(store
            .set_send_campaign_state("k1", CampaignSendState::Active)
            .await
            .is_err());
        assert_eq!(
            store.send_campaign_states().await.expect("s").get("k1"),
            Some(&CampaignSendState::Cancelled)
        );
        let all = store.send_counts_all().await.expect("all");
        assert_eq!(all.get("k1").map(|c| c.total()), Some(2));
        assert_eq!(store.sends_of("k1").await.expect("of").len(), 2);
        assert!(store.send_of("k1", "c1").await.expect("of").is_some());
    }
}
