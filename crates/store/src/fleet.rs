//! Several senders on one ledger: row claims, the workers that hold them, campaign schedules and
//! shared rate limits — all on the database's clock, never the machine's.
//!
//! The contract (migration 0016):
//! - A worker claims a batch of due `queued` rows in one statement ([`Store::claim_rows`];
//!   PostgreSQL `FOR UPDATE SKIP LOCKED`, SQLite inside `BEGIN IMMEDIATE`). A claimed row stays
//!   `queued`, carrying the worker id and a claim expiry; nobody else takes it until the expiry
//!   has passed on the database clock.
//! - Right before its own SMTP transaction a row becomes `sending` ([`Store::begin_send`]; the
//!   rows of several connections that are ready together in one statement,
//!   [`Store::begin_sends`]), and only if it is still claimed by that worker: a claim taken over
//!   after expiry can never be sent twice.
//! - Workers register and heartbeat ([`Store::heartbeat_worker`], which also extends their
//!   claims). A stopped worker's claims return to the queue at once; a dead one's when they
//!   expire, or at once when a worker on the same host finds its PID gone
//!   ([`Store::stop_worker`]). A `sending` row of a worker that is not alive is *unconfirmed*.
//! - Rate limits are pacing rows (`send_rate_limits`, one per key): reserving `n` slots at
//!   `rate` moves the key's next free slot forward atomically, so any number of workers together
//!   stay at the rate; a 421/451 answer pushes the key's next slot out for everyone.

use serde::Serialize;
use sqlx::{FromRow, Row};

use crate::sends::{ClaimedSend, ConsentCheck};
use crate::{in_list, Backend, Claim, Result, Store, StoreError};

/// Largest IN-list per statement.
const CHUNK: usize = 500;

/// A sending process as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerRecord {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub expires_at: i64,
    pub stopped_at: Option<i64>,
    /// Not stopped and its heartbeat has not expired (database clock).
    pub alive: bool,
}

/// When a campaign is to be sent by `retain worker`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ScheduleRecord {
    pub campaign_id: String,
    /// Unix seconds (UTC).
    pub send_at: i64,
    pub queued_at: Option<i64>,
}

/// What the send-time check found about one claimed row.
struct Exclusion {
    customer_exists: bool,
    subscribed: Option<i64>,
    valid: Option<i64>,
    /// The suppression list's reason for the address.
    suppressed: Option<String>,
    /// The address's hash is among the erased customers'.
    erased: bool,
}

impl Exclusion {
    /// Why the row may no longer be mailed, if so (the one rule of the send-time check).
    fn reason(&self, check: ConsentCheck) -> Option<String> {
        if let Some(reason) = &self.suppressed {
            Some(format!("suppressed: {reason}"))
        } else if self.erased {
            Some("suppressed: erased".to_string())
        } else if !self.customer_exists {
            Some("customer no longer exists".to_string())
        } else if self.subscribed == Some(0) {
            Some("unsubscribed".to_string())
        } else if self.subscribed.is_none() && check.require_opt_in {
            Some("no consent".to_string())
        } else if self.valid == Some(0) {
            Some("invalid email address".to_string())
        } else {
            None
        }
    }
}

/// The SQL of the claim statement (`$1` worker, `$2` TTL, `$3` campaign, `$4` limit).
fn claim_sql(now: &str, lock: &str) -> String {
    format!(
        "UPDATE sends SET claimed_by = $1, claim_expires_at = {now} + $2 \
         WHERE id IN (SELECT id FROM sends WHERE campaign_id = $3 AND state = 'queued' \
             AND id > $4 AND next_attempt_at <= {now} \
             AND (claimed_by IS NULL OR claim_expires_at IS NULL OR claim_expires_at < {now}) \
             ORDER BY id LIMIT $5{lock}) \
         RETURNING id, customer_id, email, message_id, attempts"
    )
}

const SQLITE_NOW: &str = "CAST(strftime('%s','now') AS INTEGER)";

/// [`Store::claim_rows`] on the native SQLite connection of a send run: the same statements in
/// one `BEGIN IMMEDIATE` transaction, the send-time check by point lookups per row.
pub(crate) fn claim_rows_native(
    conn: &mut rusqlite::Connection,
    campaign_id: &str,
    worker: &str,
    ttl_s: i64,
    limit: usize,
    check: ConsentCheck,
) -> Result<Claim> {
    use crate::native::err;
    use rusqlite::OptionalExtension;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    let state: Option<String> = tx
        .prepare_cached("SELECT state FROM send_campaigns WHERE campaign_id = ?1")
        .map_err(err)?
        .query_row([campaign_id], |r| r.get(0))
        .optional()
        .map_err(err)?;
    let state = match state {
        Some(s) => crate::CampaignSendState::parse(&s)
            .ok_or_else(|| StoreError::Corrupt(format!("campaign send state '{s}'")))?,
        None => crate::CampaignSendState::Active,
    };
    if state != crate::CampaignSendState::Active {
        return Ok(Claim::Stopped(state));
    }
    let mut claimed = Vec::with_capacity(limit);
    {
        let mut stmt = tx.prepare_cached(&claim_sql(SQLITE_NOW, "")).map_err(err)?;
        let mut rows = stmt
            .query(rusqlite::params![
                worker,
                ttl_s,
                campaign_id,
                0i64,
                limit as i64
            ])
            .map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            claimed.push(ClaimedSend {
                id: r.get(0).map_err(err)?,
                customer_id: r.get(1).map_err(err)?,
                email: r.get(2).map_err(err)?,
                message_id: r.get(3).map_err(err)?,
                attempts: r.get::<_, i64>(4).map_err(err)? + 1,
            });
        }
    }
    claimed.sort_by_key(|c| c.id);
    let mut sends = Vec::with_capacity(claimed.len());
    let mut suppressed = Vec::new();
    {
        let mut found = tx
            .prepare_cached(
                "SELECT c.id, c.subscribed, c.email_valid, sp.reason FROM sends s \
                 LEFT JOIN customers c ON c.id = s.customer_id \
                 LEFT JOIN suppressions sp ON sp.email = LOWER(s.email) WHERE s.id = ?1",
            )
            .map_err(err)?;
        let mut erased = tx
            .prepare_cached("SELECT 1 FROM erased_hashes WHERE hash = ?1")
            .map_err(err)?;
        for c in claimed {
            let hit = found
                .query_row([c.id], |r| {
                    Ok(Exclusion {
                        customer_exists: r.get::<_, Option<String>>(0)?.is_some(),
                        subscribed: r.get(1)?,
                        valid: r.get(2)?,
                        suppressed: r.get(3)?,
                        erased: false,
                    })
                })
                .optional()
                .map_err(err)?;
            let Some(mut hit) = hit else {
                sends.push(c);
                continue;
            };
            hit.erased = erased
                .exists([retain_core::email_hash(&c.email)])
                .map_err(err)?;
            match hit.reason(check) {
                Some(w) => suppressed.push((c.id, w)),
                None => sends.push(c),
            }
        }
    }
    {
        let mut stmt = tx
            .prepare_cached(&format!(
                "UPDATE sends SET state = 'suppressed', last_error = ?1, updated_at = {SQLITE_NOW}, \
                 claimed_by = NULL, claim_expires_at = NULL WHERE id = ?2"
            ))
            .map_err(err)?;
        for (id, why) in &suppressed {
            stmt.execute(rusqlite::params![why, id]).map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    Ok(Claim::Claimed { sends, suppressed })
}

impl Store {
    /// The database clock's now, integer Unix seconds, as an SQL expression.
    pub(crate) fn db_now_sql(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => SQLITE_NOW,
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)",
        }
    }

    /// The database clock's now, fractional Unix seconds, as an SQL expression.
    fn db_now_f_sql(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "((julianday('now') - 2440587.5) * 86400.0)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM now()) AS DOUBLE PRECISION)",
        }
    }

    /// The database's clock, Unix seconds.
    pub async fn db_now(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(&format!("SELECT {}", self.db_now_sql()))
            .fetch_one(self.pool())
            .await?)
    }

    /// The SQL of "this worker is alive" over a `send_workers` row aliased `w`.
    fn alive_sql(&self) -> String {
        format!(
            "w.stopped_at IS NULL AND w.expires_at >= {}",
            self.db_now_sql()
        )
    }

    // -----------------------------------------------------------------------------------------
    // Claims

    /// Claims up to `limit` due, unclaimed (or expired-claim) `queued` rows of a campaign for
    /// `worker` for `ttl_s` seconds (database clock), in one transaction that also re-checks
    /// suppression and consent (rows that may no longer be mailed become `suppressed`) and
    /// refuses when the campaign is paused or cancelled. Claimed rows stay `queued` until
    /// [`Store::begin_send`].
    pub async fn claim_rows(
        &self,
        campaign_id: &str,
        worker: &str,
        ttl_s: i64,
        limit: usize,
        check: ConsentCheck,
    ) -> Result<Claim> {
        self.claim_rows_after(campaign_id, worker, ttl_s, limit, check, 0)
            .await
    }

    /// [`Store::claim_rows`] of rows with ids above `after` only.
    pub(crate) async fn claim_rows_after(
        &self,
        campaign_id: &str,
        worker: &str,
        ttl_s: i64,
        limit: usize,
        check: ConsentCheck,
        after: i64,
    ) -> Result<Claim> {
        let mut conn = self.pool().acquire().await?;
        match self.backend() {
            // Takes the write lock first, so the check and the claim see one state.
            Backend::Sqlite => sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?,
            Backend::Postgres => sqlx::query("BEGIN").execute(&mut *conn).await?,
        };
        let r = self
            .claim_in(&mut conn, campaign_id, worker, (ttl_s, limit, after), check)
            .await;
        match r {
            Ok(c) => {
                sqlx::query("COMMIT").execute(&mut *conn).await?;
                Ok(c)
            }
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(e)
            }
        }
    }

    async fn claim_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        campaign_id: &str,
        worker: &str,
        (ttl_s, limit, after): (i64, usize, i64),
        check: ConsentCheck,
    ) -> Result<Claim> {
        let state = self.campaign_state_in(conn, campaign_id).await?;
        if state != crate::CampaignSendState::Active {
            return Ok(Claim::Stopped(state));
        }
        let now = self.db_now_sql();
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = claim_sql(now, lock);
        let rows = sqlx::query(&sql)
            .bind(worker)
            .bind(ttl_s)
            .bind(campaign_id)
            .bind(after)
            .bind(limit as i64)
            .fetch_all(&mut *conn)
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            claimed.push(ClaimedSend {
                id: r.try_get(0)?,
                customer_id: r.try_get(1)?,
                email: r.try_get(2)?,
                message_id: r.try_get(3)?,
                attempts: r.try_get::<i64, _>(4)? + 1,
            });
        }
        claimed.sort_by_key(|c| c.id);
        let why = self.send_time_exclusions(conn, &claimed, check).await?;
        let mut sends = Vec::with_capacity(claimed.len());
        let mut suppressed = Vec::new();
        for c in claimed {
            match why.get(&c.id) {
                Some(w) => suppressed.push((c.id, w.clone())),
                None => sends.push(c),
            }
        }
        for (id, why) in &suppressed {
            sqlx::query(&format!(
                "UPDATE sends SET state = 'suppressed', last_error = $1, updated_at = {now}, \
                 claimed_by = NULL, claim_expires_at = NULL WHERE id = $2"
            ))
            .bind(why.as_str())
            .bind(*id)
            .execute(&mut *conn)
            .await?;
        }
        Ok(Claim::Claimed { sends, suppressed })
    }

    async fn campaign_state_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        campaign_id: &str,
    ) -> Result<crate::CampaignSendState> {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM send_campaigns WHERE campaign_id = $1")
                .bind(campaign_id)
                .fetch_optional(&mut *conn)
                .await?;
        match state {
            Some(s) => crate::CampaignSendState::parse(&s)
                .ok_or_else(|| StoreError::Corrupt(format!("campaign send state '{s}'"))),
            None => Ok(crate::CampaignSendState::Active),
        }
    }

    /// Why each of these rows may no longer be mailed (suppressed, erased, gone, unsubscribed,
    /// no consent, invalid address), by send id.
    async fn send_time_exclusions(
        &self,
        conn: &mut sqlx::AnyConnection,
        rows: &[ClaimedSend],
        check: ConsentCheck,
    ) -> Result<std::collections::HashMap<i64, String>> {
        let mut out = std::collections::HashMap::new();
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "SELECT s.id, c.id, c.subscribed, c.email_valid, sp.reason FROM sends s \
                 LEFT JOIN customers c ON c.id = s.customer_id \
                 LEFT JOIN suppressions sp ON sp.email = LOWER(s.email) \
                 WHERE s.id IN ({})",
                in_list(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q.bind(r.id);
            }
            let found = q.fetch_all(&mut *conn).await?;
            let hashes: Vec<String> = chunk
                .iter()
                .map(|r| retain_core::email_hash(&r.email))
                .collect();
            let sql = format!(
                "SELECT hash FROM erased_hashes WHERE hash IN ({})",
                in_list(1, hashes.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for h in &hashes {
                q = q.bind(h.as_str());
            }
            let erased: std::collections::HashSet<String> =
                q.fetch_all(&mut *conn).await?.into_iter().collect();
            let erased_ids: std::collections::HashSet<i64> = chunk
                .iter()
                .zip(&hashes)
                .filter(|(_, h)| erased.contains(*h))
                .map(|(r, _)| r.id)
                .collect();
            for r in found {
                let id: i64 = r.try_get(0)?;
                let customer: Option<String> = r.try_get(1)?;
                let found = Exclusion {
                    customer_exists: customer.is_some(),
                    subscribed: r.try_get(2)?,
                    valid: r.try_get(3)?,
                    suppressed: r.try_get(4)?,
                    erased: erased_ids.contains(&id),
                };
                if let Some(w) = found.reason(check) {
                    out.insert(id, w);
                }
            }
        }
        Ok(out)
    }

    /// Right before a row's SMTP transaction: `queued → sending` (attempts + 1), only while
    /// `worker` still holds its claim. False: the claim was taken over (or the row changed):
    /// do not send it.
    pub async fn begin_send(&self, id: i64, worker: &str) -> Result<bool> {
        let now = self.db_now_sql();
        let r = sqlx::query(&format!(
            "UPDATE sends SET state = 'sending', attempts = attempts + 1, sending_at = {now}, \
             updated_at = {now}, claim_expires_at = NULL \
             WHERE id = $1 AND state = 'queued' AND claimed_by = $2"
        ))
        .bind(id)
        .bind(worker)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// [`Store::begin_send`] for several rows in one statement (one commit): each row whose
    /// SMTP transaction is about to start becomes `sending`, if `worker` still holds its claim.
    /// Returns the ids that did (the others were taken over: do not send them). The worker is
    /// compared through `COALESCE` so that the rows are found by id: an index scan of
    /// `sends_claimed_by` would visit every row the worker ever claimed.
    pub async fn begin_sends(&self, ids: &[i64], worker: &str) -> Result<Vec<i64>> {
        let now = self.db_now_sql();
        let mut started = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "UPDATE sends SET state = 'sending', attempts = attempts + 1, sending_at = {now}, \
                 updated_at = {now}, claim_expires_at = NULL \
                 WHERE state = 'queued' AND COALESCE(claimed_by, '') = $1 AND id IN ({}) \
                 RETURNING id",
                in_list(2, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(worker);
            for id in chunk {
                q = q.bind(*id);
            }
            started.extend(q.fetch_all(self.pool()).await?);
        }
        Ok(started)
    }

    /// Gives claimed, never-attempted rows back to the queue (a clean stop).
    pub async fn release_claims(&self, worker: &str, ids: &[i64]) -> Result<u64> {
        let mut n = 0;
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "UPDATE sends SET claimed_by = NULL, claim_expires_at = NULL \
                 WHERE state = 'queued' AND COALESCE(claimed_by, '') = $1 AND id IN ({})",
                in_list(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(worker);
            for id in chunk {
                q = q.bind(*id);
            }
            n += q.execute(self.pool()).await?.rows_affected();
        }
        Ok(n)
    }

    /// Rows of a campaign left `sending` by workers that are no longer alive (or by a sender
    /// from before claims): possibly sent, never sent again unless the operator asks.
    pub async fn unconfirmed_sends(&self, campaign_id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM sends s WHERE s.campaign_id = $1 AND s.state = 'sending' \
             AND NOT EXISTS (SELECT 1 FROM send_workers w WHERE w.id = s.claimed_by AND {})",
            self.alive_sql()
        ))
        .bind(campaign_id)
        .fetch_one(self.pool())
        .await?)
    }

    // -----------------------------------------------------------------------------------------
    // Workers

    /// Registers (or re-registers) a worker, alive for `ttl_s` seconds without a heartbeat.
    pub async fn register_worker(&self, id: &str, host: &str, pid: i64, ttl_s: i64) -> Result<()> {
        let now = self.db_now_sql();
        sqlx::query(&format!(
            "INSERT INTO send_workers (id, host, pid, started_at, heartbeat_at, expires_at) \
             VALUES ($1, $2, $3, {now}, {now}, {now} + $4) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, \
             expires_at = excluded.expires_at, stopped_at = NULL"
        ))
        .bind(id)
        .bind(host)
        .bind(pid)
        .bind(ttl_s)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A worker's heartbeat: alive for `ttl_s` more seconds, and so are its claims. False when
    /// the worker was stopped meanwhile (found dead by another): it must stop claiming.
    pub async fn heartbeat_worker(&self, id: &str, ttl_s: i64) -> Result<bool> {
        let now = self.db_now_sql();
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query(&format!(
            "UPDATE send_workers SET heartbeat_at = {now}, expires_at = {now} + $1 \
             WHERE id = $2 AND stopped_at IS NULL"
        ))
        .bind(ttl_s)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() > 0 {
            // On PostgreSQL the rows are locked in id order and the ones another statement
            // holds are skipped: a row being started (`begin_sends`, in the same worker) or
            // taken over needs no extension, and waiting for it while that statement waits for
            // a row locked here was a deadlock, which stopped the sender.
            let lock = match self.backend() {
                Backend::Postgres => " ORDER BY id FOR UPDATE SKIP LOCKED",
                Backend::Sqlite => "",
            };
            sqlx::query(&format!(
                "UPDATE sends SET claim_expires_at = {now} + $1 WHERE id IN (SELECT id FROM sends \
                 WHERE claimed_by = $2 AND state = 'queued' AND claim_expires_at >= {now}{lock})"
            ))
            .bind(ttl_s)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Marks a worker stopped (its clean exit, or found dead) and returns its claimed,
    /// never-attempted rows to the queue at once. Its `sending` rows stay: unconfirmed unless
    /// it is still finishing them. Returns the rows released.
    pub async fn stop_worker(&self, id: &str) -> Result<u64> {
        let now = self.db_now_sql();
        let mut tx = self.pool().begin().await?;
        sqlx::query(&format!(
            "UPDATE send_workers SET stopped_at = {now} WHERE id = $1 AND stopped_at IS NULL"
        ))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query(
            "UPDATE sends SET claimed_by = NULL, claim_expires_at = NULL \
             WHERE claimed_by = $1 AND state = 'queued'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Every worker ever registered (newest first), with whether it is alive now.
    pub async fn workers(&self) -> Result<Vec<WorkerRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT w.id, w.host, w.pid, w.started_at, w.heartbeat_at, w.expires_at, w.stopped_at, \
             CASE WHEN {} THEN 1 ELSE 0 END FROM send_workers w",
            self.alive_sql()
        ))
        .fetch_all(self.pool())
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(WorkerRecord {
                    id: r.try_get(0)?,
                    host: r.try_get(1)?,
                    pid: r.try_get(2)?,
                    started_at: r.try_get(3)?,
                    heartbeat_at: r.try_get(4)?,
                    expires_at: r.try_get(5)?,
                    stopped_at: r.try_get(6)?,
                    alive: r.try_get::<i64, _>(7)? != 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Workers on `host` that have not stopped (alive or not), as (id, pid): for finding the
    /// ones whose process is gone.
    pub async fn unstopped_workers_on(&self, host: &str) -> Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT id, pid FROM send_workers WHERE host = $1 AND stopped_at IS NULL")
                .bind(host)
                .fetch_all(self.pool())
                .await?;
        let mut out = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<(String, i64)>>>()?;
        out.sort();
        Ok(out)
    }

    /// Rows each live worker has `sending` right now (in flight), by worker id.
    pub async fn in_flight_by_worker(
        &self,
        campaign_id: &str,
    ) -> Result<std::collections::BTreeMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT claimed_by, COUNT(*) FROM sends WHERE campaign_id = $1 AND state = 'sending' \
             AND claimed_by IS NOT NULL GROUP BY claimed_by",
        )
        .bind(campaign_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // Schedules

    /// Schedules a campaign for `retain worker` at `send_at` (Unix seconds, UTC); rescheduling
    /// replaces the time.
    pub async fn schedule_campaign(&self, campaign_id: &str, send_at: i64) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO send_schedules (campaign_id, send_at, created_at) VALUES ($1, $2, {}) \
             ON CONFLICT (campaign_id) DO UPDATE SET send_at = excluded.send_at",
            self.db_now_sql()
        ))
        .bind(campaign_id)
        .bind(send_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes a campaign's schedule; false when it had none.
    pub async fn unschedule_campaign(&self, campaign_id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM send_schedules WHERE campaign_id = $1")
            .bind(campaign_id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Every schedule, by time then campaign.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRecord>> {
        self.schedule_rows("SELECT campaign_id, send_at, queued_at FROM send_schedules")
            .await
    }

    /// Scheduled campaigns whose time has come (database clock), not paused or cancelled, that
    /// still have work: never queued yet, or a due row nobody holds a live claim on.
    pub async fn due_campaigns(&self) -> Result<Vec<ScheduleRecord>> {
        let now = self.db_now_sql();
        self.schedule_rows(&format!(
            "SELECT s.campaign_id, s.send_at, s.queued_at FROM send_schedules s \
             WHERE s.send_at <= {now} \
             AND NOT EXISTS (SELECT 1 FROM send_campaigns c WHERE c.campaign_id = s.campaign_id \
                 AND c.state <> 'active') \
             AND (s.queued_at IS NULL OR EXISTS (SELECT 1 FROM sends x \
                 WHERE x.campaign_id = s.campaign_id AND x.state = 'queued' \
                 AND x.next_attempt_at <= {now} \
                 AND (x.claimed_by IS NULL OR x.claim_expires_at IS NULL OR x.claim_expires_at < {now})))"
        ))
        .await
    }

    /// The schedules `sql` selects (`campaign_id, send_at, queued_at`), by time then campaign
    /// (sorted here: text collation differs between the backends).
    async fn schedule_rows(&self, sql: &str) -> Result<Vec<ScheduleRecord>> {
        let mut out = crate::collect_rows(sqlx::query(sql), self.pool(), |r| {
            Ok(ScheduleRecord::from_row(r)?)
        })
        .await?;
        out.sort_by(|a, b| {
            a.send_at
                .cmp(&b.send_at)
                .then(a.campaign_id.cmp(&b.campaign_id))
        });
        Ok(out)
    }

    /// Records that a scheduled campaign's audience is in the ledger.
    pub async fn mark_schedule_queued(&self, campaign_id: &str) -> Result<()> {
        sqlx::query(&format!(
            "UPDATE send_schedules SET queued_at = {} WHERE campaign_id = $1 AND queued_at IS NULL",
            self.db_now_sql()
        ))
        .bind(campaign_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Shared rate limits

    /// Reserves `n` consecutive slots of `key` at `rate` per second: moves the key's next free
    /// slot by `n / rate` from max(next free slot, now) in one statement, and returns how long
    /// to wait (seconds, ≥ 0) before the first reserved slot. With `rate <= 0` nothing is
    /// reserved: only a back-off recorded for the key is waited for.
    pub async fn reserve_rate(&self, key: &str, rate: f64, n: u32) -> Result<f64> {
        let now = self.db_now_f_sql();
        if !(rate.is_finite() && rate > 0.0) {
            let wait: Option<f64> = sqlx::query_scalar(&format!(
                "SELECT next_at - {now} FROM send_rate_limits WHERE key = $1"
            ))
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
            return Ok(wait.unwrap_or(0.0).max(0.0));
        }
        let span = f64::from(n.max(1)) / rate;
        let greatest = match self.backend() {
            Backend::Sqlite => "MAX",
            Backend::Postgres => "GREATEST",
        };
        let start: f64 = sqlx::query_scalar(&format!(
            "INSERT INTO send_rate_limits (key, next_at, updated_at) VALUES ($1, {now} + $2, {now}) \
             ON CONFLICT (key) DO UPDATE SET \
             next_at = {greatest}(send_rate_limits.next_at, {now}) + $2, updated_at = {now} \
             RETURNING next_at - $2 - {now}"
        ))
        .bind(key)
        .bind(span)
        .fetch_one(self.pool())
        .await?;
        Ok(start.max(0.0))
    }

    /// A 421/451 for `key`: nobody gets a slot of it for `pause_s` seconds from now (database
    /// clock); counted in `throttled`.
    pub async fn throttle_rate(&self, key: &str, pause_s: f64) -> Result<()> {
        let now = self.db_now_f_sql();
        let greatest = match self.backend() {
            Backend::Sqlite => "MAX",
            Backend::Postgres => "GREATEST",
        };
        sqlx::query(&format!(
            "INSERT INTO send_rate_limits (key, next_at, throttled, updated_at) \
             VALUES ($1, {now} + $2, 1, {now}) \
             ON CONFLICT (key) DO UPDATE SET \
             next_at = {greatest}(send_rate_limits.next_at, {now} + $2), \
             throttled = send_rate_limits.throttled + 1, updated_at = {now}"
        ))
        .bind(key)
        .bind(pause_s)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Keys whose next free slot is in the future, with the seconds until then: what every
    /// worker must wait for (back-offs of keys it does not pace itself).
    pub async fn rate_waits(&self) -> Result<Vec<(String, f64)>> {
        let now = self.db_now_f_sql();
        let rows = sqlx::query(&format!(
            "SELECT key, next_at - {now} FROM send_rate_limits WHERE next_at > {now}"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// How often each key was throttled (421/451), by key.
    pub async fn rate_throttles(&self) -> Result<std::collections::BTreeMap<String, i64>> {
        let rows = sqlx::query("SELECT key, throttled FROM send_rate_limits WHERE throttled > 0")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;
    use crate::{CampaignSendState, NewSend};
    use retain_core::Customer;

    async fn setup(store: &Store, campaign: &str, n: usize) {
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
                email: format!("c{i}@x.io"),
                message_id: format!("<m{i}@x.io>"),
                suppressed: None,
            })
            .collect();
        store.queue_sends(campaign, &new).await.expect("queue");
    }

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

    async fn claim(store: &Store, worker: &str, ttl: i64, n: usize) -> Vec<ClaimedSend> {
        match store
            .claim_rows("k1", worker, ttl, n, ConsentCheck::default())
            .await
            .expect("claim")
        {
            Claim::Claimed { sends, .. } => sends,
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    async fn claim_expiry(store: &Store, id: i64) -> Option<i64> {
        sqlx::query_scalar("SELECT claim_expires_at FROM sends WHERE id = $1")
            .bind(id)
            .fetch_one(store.pool())
            .await
            .expect("expiry")
    }

    #[tokio::test]
    async fn claims_expire_on_the_database_clock_and_are_taken_over() {
        on_both(claims_expire_on_the_database_clock_and_are_taken_over_on).await;
    }

    /// A worker that claimed rows and died (no heartbeat, no stop): its claims expire after
    /// their TTL, counted on the database's clock, and another worker takes them over; the dead
    /// worker can no longer start them. Real time, polled with a generous deadline.
    async fn claims_expire_on_the_database_clock_and_are_taken_over_on(store: Store) {
        setup(&store, "k1", 3).await;
        store
            .register_worker("dead", "h1", 1, 1)
            .await
            .expect("register");
        let t0 = std::time::Instant::now();
        let db_t0 = store.db_now().await.expect("now");
        let dead = claim(&store, "dead", 1, 2).await;
        assert_eq!(dead.len(), 2);
        let expiry = claim_expiry(&store, dead[0].id).await.expect("claimed");
        assert!(
            (db_t0..=db_t0 + 2).contains(&expiry),
            "expiry {expiry} is the database's now {db_t0} + 1 s"
        );
        let live = claim(&store, "next", 60, 10).await;
        assert_eq!(live.len(), 1, "unexpired claims are not taken");
        let deadline = std::time::Duration::from_secs(30);
        let taken = loop {
            let got = claim(&store, "next", 60, 10).await;
            if !got.is_empty() {
                break got;
            }
            assert!(t0.elapsed() < deadline, "a 1 s claim still held");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert!(
            t0.elapsed() >= std::time::Duration::from_millis(500),
            "taken over before its TTL could have passed"
        );
        let mut ids: Vec<i64> = taken.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![dead[0].id, dead[1].id]);
        assert!(!store.begin_send(dead[0].id, "dead").await.expect("begin"));
        assert!(store.begin_send(dead[0].id, "next").await.expect("begin"));
        // The dead worker's heartbeat has expired: it is not alive.
        let workers = store.workers().await.expect("workers");
        let w = workers.iter().find(|w| w.id == "dead").expect("listed");
        assert!(!w.alive);
    }

    #[tokio::test]
    async fn stopped_workers_release_claims_and_leave_unconfirmed_rows() {
        on_both(stopped_workers_release_claims_and_leave_unconfirmed_rows_on).await;
    }

    /// A worker found dead (its PID gone on the same host) is stopped: its claimed rows return
    /// to the queue at once, its one row in flight is unconfirmed and is not requeued by
    /// `requeue_unconfirmed` while another live worker's in-flight row is left alone.
    async fn stopped_workers_release_claims_and_leave_unconfirmed_rows_on(store: Store) {
        setup(&store, "k1", 5).await;
        store.register_worker("a", "h1", 11, 60).await.expect("a");
        store.register_worker("b", "h1", 12, 60).await.expect("b");
        let a = claim(&store, "a", 600, 3).await;
        assert!(store.begin_send(a[0].id, "a").await.expect("begin"));
        let b = claim(&store, "b", 600, 10).await;
        assert_eq!(b.len(), 2);
        assert!(store.begin_send(b[0].id, "b").await.expect("begin"));
        // Both alive: nothing unconfirmed, nothing to requeue.
        assert_eq!(store.unconfirmed_sends("k1").await.expect("u"), 0);
        assert_eq!(store.requeue_unconfirmed("k1").await.expect("rq"), 0);
        assert_eq!(store.stop_worker("a").await.expect("stop"), 2);
        let again = claim(&store, "b", 600, 10).await;
        let mut ids: Vec<i64> = again.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            vec![a[1].id, a[2].id],
            "released at once, not after 600 s"
        );
        assert_eq!(store.unconfirmed_sends("k1").await.expect("u"), 1);
        let flight = store.in_flight_by_worker("k1").await.expect("flight");
        assert_eq!(flight.get("a"), Some(&1));
        assert_eq!(flight.get("b"), Some(&1));
        assert!(!store.heartbeat_worker("a", 60).await.expect("hb"));
        // The operator's requeue takes the dead worker's row only.
        assert_eq!(store.requeue_unconfirmed("k1").await.expect("rq"), 1);
        let r = store.send(a[0].id).await.expect("r").expect("row");
        assert_eq!(r.state, crate::SendState::Queued);
        let r = store.send(b[0].id).await.expect("r").expect("row");
        assert_eq!(r.state, crate::SendState::Sending);
    }

    #[tokio::test]
    async fn heartbeats_extend_claims() {
        on_both(heartbeats_extend_claims_on).await;
    }

    async fn heartbeats_extend_claims_on(store: Store) {
        setup(&store, "k1", 2).await;
        store.register_worker("w", "h1", 1, 5).await.expect("w");
        let got = claim(&store, "w", 5, 1).await;
        let before = claim_expiry(&store, got[0].id).await.expect("claimed");
        assert!(store.heartbeat_worker("w", 3600).await.expect("hb"));
        let after = claim_expiry(&store, got[0].id).await.expect("claimed");
        assert!(after >= before + 3000, "{before} → {after}");
        let w = store.workers().await.expect("w");
        assert!(w[0].alive && w[0].expires_at >= w[0].heartbeat_at + 3000);
        store.stop_worker("w").await.expect("stop");
        assert!(!store.workers().await.expect("w")[0].alive);
    }

    #[tokio::test]
    async fn rate_slots_are_shared_and_throttles_push_them_out() {
        on_both(rate_slots_are_shared_and_throttles_push_them_out_on).await;
    }

    async fn next_at(store: &Store, key: &str) -> f64 {
        sqlx::query_scalar("SELECT next_at FROM send_rate_limits WHERE key = $1")
            .bind(key)
            .fetch_one(store.pool())
            .await
            .expect("next_at")
    }

    /// Reservations at 10/s move one shared next-slot forward by 0.1 s per message whoever
    /// asks, so the slots handed out are never closer than the rate allows; a throttle makes
    /// every caller wait.
    async fn rate_slots_are_shared_and_throttles_push_them_out_on(store: Store) {
        let first = store.reserve_rate("k", 10.0, 1).await.expect("r");
        assert!(first < 1.0, "an idle key's first slot is now: {first}");
        let start = next_at(&store, "k").await - 0.1;
        let mut waits = Vec::new();
        for _ in 0..20 {
            waits.push(store.reserve_rate("k", 10.0, 2).await.expect("r"));
        }
        let end = next_at(&store, "k").await;
        assert!(
            end - start >= 4.1 - 1e-6,
            "41 slots at 10/s span 4.1 s: {start} → {end}"
        );
        assert!(
            waits.windows(2).all(|w| w[1] >= w[0] - 0.05),
            "later reservations wait longer: {waits:?}"
        );
        // Unlimited keys reserve nothing.
        assert_eq!(store.reserve_rate("free", 0.0, 1).await.expect("r"), 0.0);
        store.throttle_rate("domain:x.io", 30.0).await.expect("t");
        let w = store.reserve_rate("domain:x.io", 0.0, 1).await.expect("r");
        assert!(w > 20.0 && w <= 30.0, "{w}");
        let waits = store.rate_waits().await.expect("waits");
        assert!(waits.iter().any(|(k, _)| k == "domain:x.io"));
        store.throttle_rate("domain:x.io", 1.0).await.expect("t");
        assert!(
            store.reserve_rate("domain:x.io", 0.0, 1).await.expect("r") > 20.0,
            "a shorter throttle never shortens a longer one"
        );
        assert_eq!(
            store.rate_throttles().await.expect("t").get("domain:x.io"),
            Some(&2)
        );
    }

    #[tokio::test]
    async fn schedules_come_due_on_the_database_clock() {
        on_both(schedules_come_due_on_the_database_clock_on).await;
    }

    async fn schedules_come_due_on_the_database_clock_on(store: Store) {
        let now = store.db_now().await.expect("now");
        store
            .schedule_campaign("later", now + 3600)
            .await
            .expect("s");
        store.schedule_campaign("k1", now - 5).await.expect("s");
        let due: Vec<String> = store
            .due_campaigns()
            .await
            .expect("due")
            .into_iter()
            .map(|s| s.campaign_id)
            .collect();
        assert_eq!(due, vec!["k1".to_string()], "not yet queued: due");
        store.mark_schedule_queued("k1").await.expect("q");
        assert!(
            store.due_campaigns().await.expect("due").is_empty(),
            "queued, and no row left to send"
        );
        setup(&store, "k1", 2).await;
        assert_eq!(store.due_campaigns().await.expect("due").len(), 1);
        // Every row claimed by a live worker: nothing for another worker to do.
        claim(&store, "w", 600, 10).await;
        assert!(store.due_campaigns().await.expect("due").is_empty());
        store.stop_worker("w").await.expect("stop");
        assert_eq!(store.due_campaigns().await.expect("due").len(), 1);
        store
            .set_send_campaign_state("k1", CampaignSendState::Paused)
            .await
            .expect("pause");
        assert!(store.due_campaigns().await.expect("due").is_empty());
        let all = store.schedules().await.expect("all");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].campaign_id, "k1");
        assert!(all[0].queued_at.is_some());
        assert!(store.unschedule_campaign("later").await.expect("u"));
        assert!(!store.unschedule_campaign("later").await.expect("u"));
    }
}
