//! Deliverability: bounces and complaints that arrive after a send (DSN and ARF reports), each
//! recorded once against its send (`deliverability_events`, migration 0011); the lookups that
//! tie a report to its send (by Message-ID, by campaign and address); per-campaign and
//! per-recipient-domain rates; and the guardrail's pause, which records why.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use crate::{now, CampaignSendState, Result, SendRecord, Store, StoreError};

/// What a report said about a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverabilityKind {
    /// A permanent failure (DSN status 5.x.x).
    #[serde(rename = "bounce_hard")]
    HardBounce,
    /// A transient failure (DSN status 4.x.x).
    #[serde(rename = "bounce_soft")]
    SoftBounce,
    /// A spam complaint (ARF feedback report).
    Complaint,
    /// A policy or spam block (status 5.7.x): counts toward the guardrail, suppresses nothing.
    Block,
}

impl DeliverabilityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "bounce_hard",
            Self::SoftBounce => "bounce_soft",
            Self::Complaint => "complaint",
            Self::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "bounce_hard" => Self::HardBounce,
            "bounce_soft" => Self::SoftBounce,
            "complaint" => Self::Complaint,
            "block" => Self::Block,
            _ => return None,
        })
    }
}

impl std::fmt::Display for DeliverabilityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A report to record against its send.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeliverabilityEvent {
    pub send_id: i64,
    pub campaign_id: String,
    /// The send's address.
    pub email: String,
    pub kind: DeliverabilityKind,
    /// DSN status (`5.1.1`) or ARF feedback type (`abuse`).
    pub status: Option<String>,
    pub detail: Option<String>,
    /// Identifies the report: the same fingerprint is recorded once.
    pub fingerprint: String,
    /// Unix seconds.
    pub at: i64,
}

/// A recorded report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliverabilityEvent {
    pub id: i64,
    pub send_id: i64,
    pub campaign_id: String,
    pub email: String,
    pub domain: String,
    pub kind: DeliverabilityKind,
    pub status: Option<String>,
    pub detail: Option<String>,
    pub at: i64,
}

/// Delivered messages and the sends that bounced or complained, of a campaign or of one
/// recipient domain in it. Each send counts at most once per kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeliverabilityCounts {
    /// Messages the receiving server accepted (ledger state `sent`).
    pub delivered: i64,
    pub hard_bounces: i64,
    pub soft_bounces: i64,
    pub complaints: i64,
    /// Policy or spam blocks (5.7.x): counted with hard bounces by the guardrail.
    pub blocks: i64,
}

impl DeliverabilityCounts {
    fn rate(n: i64, of: i64) -> f64 {
        if of > 0 {
            n as f64 / of as f64
        } else {
            0.0
        }
    }
    /// Complaints per delivered message (0 when nothing was delivered).
    pub fn complaint_rate(&self) -> f64 {
        Self::rate(self.complaints, self.delivered)
    }
    /// Hard bounces per delivered message.
    pub fn hard_bounce_rate(&self) -> f64 {
        Self::rate(self.hard_bounces, self.delivered)
    }
    /// Blocks per delivered message.
    pub fn block_rate(&self) -> f64 {
        Self::rate(self.blocks, self.delivered)
    }
    /// Soft bounces per delivered message.
    pub fn soft_bounce_rate(&self) -> f64 {
        Self::rate(self.soft_bounces, self.delivered)
    }
    fn add(&mut self, kind: DeliverabilityKind, n: i64) {
        match kind {
            DeliverabilityKind::HardBounce => self.hard_bounces += n,
            DeliverabilityKind::SoftBounce => self.soft_bounces += n,
            DeliverabilityKind::Complaint => self.complaints += n,
            DeliverabilityKind::Block => self.blocks += n,
        }
    }
}

/// A campaign's deliverability: in total and per recipient domain (sorted by domain).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CampaignDeliverability {
    pub campaign_id: String,
    pub total: DeliverabilityCounts,
    pub domains: Vec<(String, DeliverabilityCounts)>,
}

/// The lowercase domain of an address ("" when it has none).
pub fn email_domain(email: &str) -> String {
    email
        .trim()
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

fn kind_of(s: &str) -> Result<DeliverabilityKind> {
    DeliverabilityKind::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("deliverability kind '{s}'")))
}

impl Store {
    /// Records a report against its send. Idempotent by fingerprint: returns false when that
    /// report was recorded before.
    pub async fn record_deliverability_event(&self, e: &NewDeliverabilityEvent) -> Result<bool> {
        let email = e.email.trim().to_lowercase();
        let r = sqlx::query(
            "INSERT INTO deliverability_events \
             (send_id, campaign_id, email, domain, kind, status, detail, fingerprint, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (fingerprint) DO NOTHING",
        )
        .bind(e.send_id)
        .bind(e.campaign_id.as_str())
        .bind(email.as_str())
        .bind(email_domain(&email))
        .bind(e.kind.as_str())
        .bind(e.status.as_deref())
        .bind(e.detail.as_deref())
        .bind(e.fingerprint.as_str())
        .bind(e.at)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Every report recorded for a campaign, oldest first.
    pub async fn deliverability_events_of(
        &self,
        campaign_id: &str,
    ) -> Result<Vec<DeliverabilityEvent>> {
        let rows = sqlx::query(
            "SELECT id, send_id, campaign_id, email, domain, kind, status, detail, at \
             FROM deliverability_events WHERE campaign_id = $1 ORDER BY at, id",
        )
        .bind(campaign_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get(5)?;
                Ok(DeliverabilityEvent {
                    id: r.try_get(0)?,
                    send_id: r.try_get(1)?,
                    campaign_id: r.try_get(2)?,
                    email: r.try_get(3)?,
                    domain: r.try_get(4)?,
                    kind: kind_of(&kind)?,
                    status: r.try_get(6)?,
                    detail: r.try_get(7)?,
                    at: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// How many different sends to `email` soft-bounced at or after `since` (Unix seconds): a
    /// message's repeated delay notices count once.
    pub async fn soft_bounced_sends(&self, email: &str, since: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(DISTINCT send_id) FROM deliverability_events \
             WHERE email = $1 AND kind = 'bounce_soft' AND at >= $2",
        )
        .bind(email.trim().to_lowercase())
        .bind(since)
        .fetch_one(self.pool())
        .await?)
    }

    /// The send whose email carried this Message-ID (with or without its angle brackets).
    pub async fn send_by_message_id(&self, message_id: &str) -> Result<Option<SendRecord>> {
        let inner = message_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        if inner.is_empty() {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {} FROM sends WHERE message_id = $1 ORDER BY id LIMIT 1",
            crate::sends::COLS
        ))
        .bind(format!("<{inner}>"))
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(crate::sends::record).transpose()
    }

    /// The send of a campaign to an address (case-insensitive), the latest if several.
    pub async fn send_by_campaign_email(
        &self,
        campaign_id: &str,
        email: &str,
    ) -> Result<Option<SendRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM sends WHERE campaign_id = $1 AND LOWER(email) = $2 \
             ORDER BY id DESC LIMIT 1",
            crate::sends::COLS
        ))
        .bind(campaign_id)
        .bind(email.trim().to_lowercase())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(crate::sends::record).transpose()
    }

    /// Delivered messages, bounces and complaints of a campaign, in total and per domain.
    pub async fn campaign_deliverability(
        &self,
        campaign_id: &str,
    ) -> Result<CampaignDeliverability> {
        let mut domains: BTreeMap<String, DeliverabilityCounts> = BTreeMap::new();
        let mut total = DeliverabilityCounts::default();
        // Every delivered address read on the native connection (a large campaign has hundreds
        // of thousands) and counted per `email_domain` here: the same normalisation as the
        // reports' domains, on both backends.
        let delivered = self
            .read_rows(
                "SELECT email FROM sends WHERE campaign_id = $1 AND state = 'sent'".to_string(),
                vec![crate::rows::OwnedVal::Text(Some(campaign_id.to_string()))],
                |r| Ok(email_domain(&r.text(0)?)),
            )
            .await?;
        total.delivered = delivered.len() as i64;
        for d in delivered {
            domains.entry(d).or_default().delivered += 1;
        }
        let rows = sqlx::query(
            "SELECT domain, kind, COUNT(DISTINCT send_id) FROM deliverability_events \
             WHERE campaign_id = $1 GROUP BY domain, kind",
        )
        .bind(campaign_id)
        .fetch_all(self.pool())
        .await?;
        for r in rows {
            let domain: String = r.try_get(0)?;
            let kind: String = r.try_get(1)?;
            let kind = kind_of(&kind)?;
            let n: i64 = r.try_get(2)?;
            domains.entry(domain).or_default().add(kind, n);
            total.add(kind, n);
        }
        Ok(CampaignDeliverability {
            campaign_id: campaign_id.to_string(),
            total,
            domains: domains.into_iter().collect(),
        })
    }

    /// The newest recorded report's id (0 before the first): a report changes a campaign's
    /// deliverability only by raising it.
    pub async fn latest_deliverability_event_id(&self) -> Result<i64> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM deliverability_events")
            .fetch_one(self.pool())
            .await?;
        Ok(id.unwrap_or(0))
    }

    /// A campaign's delivered messages and reports in total, counted in SQL (no per-domain
    /// split).
    pub async fn campaign_deliverability_totals(
        &self,
        campaign_id: &str,
    ) -> Result<DeliverabilityCounts> {
        let mut total = self.campaign_deliverability_reports(campaign_id).await?;
        total.delivered = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sends WHERE campaign_id = $1 AND state = 'sent'",
        )
        .bind(campaign_id)
        .fetch_one(self.pool())
        .await?;
        Ok(total)
    }

    /// A campaign's bounce, block and complaint reports in total (`delivered` left at 0): what
    /// the send engine asks between batches before it counts the delivered messages, which it
    /// needs only once a report exists.
    pub async fn campaign_deliverability_reports(
        &self,
        campaign_id: &str,
    ) -> Result<DeliverabilityCounts> {
        let mut total = DeliverabilityCounts::default();
        let rows = sqlx::query(
            "SELECT kind, COUNT(DISTINCT send_id) FROM deliverability_events \
             WHERE campaign_id = $1 GROUP BY kind",
        )
        .bind(campaign_id)
        .fetch_all(self.pool())
        .await?;
        for r in rows {
            let kind: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            total.add(kind_of(&kind)?, n);
        }
        Ok(total)
    }

    /// The guardrail's pause: an active campaign becomes `paused` with `reason`, unless its
    /// operator resumed it after an earlier guardrail pause (the override). Returns true when it
    /// paused now.
    pub async fn pause_send_campaign_for(&self, campaign_id: &str, reason: &str) -> Result<bool> {
        let t = now();
        // A campaign without a state row is active: create it paused.
        let inserted = sqlx::query(
            "INSERT INTO send_campaigns (campaign_id, state, updated_at, reason) \
             VALUES ($1, 'paused', $2, $3) ON CONFLICT (campaign_id) DO NOTHING",
        )
        .bind(campaign_id)
        .bind(t)
        .bind(reason)
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() > 0 {
            return Ok(true);
        }
        let r = sqlx::query(
            "UPDATE send_campaigns SET state = 'paused', reason = $1, updated_at = $2 \
             WHERE campaign_id = $3 AND state = 'active' AND guardrail_override = 0",
        )
        .bind(reason)
        .bind(t)
        .bind(campaign_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Why a campaign paused itself (`None`: it did not, or it was resumed since).
    pub async fn send_campaign_reason(&self, campaign_id: &str) -> Result<Option<String>> {
        let r: Option<Option<String>> =
            sqlx::query_scalar("SELECT reason FROM send_campaigns WHERE campaign_id = $1")
                .bind(campaign_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(r.flatten())
    }

    /// Whether the operator resumed the campaign after a guardrail pause (the guardrail then
    /// leaves it alone).
    pub async fn send_campaign_guardrail_overridden(&self, campaign_id: &str) -> Result<bool> {
        let r: Option<i64> = sqlx::query_scalar(
            "SELECT guardrail_override FROM send_campaigns WHERE campaign_id = $1",
        )
        .bind(campaign_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(r.unwrap_or(0) != 0)
    }

    /// The campaign's send state and, if it paused itself, why.
    pub async fn send_campaign_state_and_reason(
        &self,
        campaign_id: &str,
    ) -> Result<(CampaignSendState, Option<String>)> {
        Ok((
            self.send_campaign_state(campaign_id).await?,
            self.send_campaign_reason(campaign_id).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;
    use crate::NewSend;

    /// Queues one send of `campaign` per address (customers c0, c1, …), then marks every
    /// send `sent` but those to `unsent`.
    async fn delivered(store: &Store, campaign: &str, emails: &[&str], unsent: &str) {
        let sends: Vec<NewSend> = emails
            .iter()
            .enumerate()
            .map(|(i, e)| NewSend {
                customer_id: format!("c{i}"),
                email: e.to_string(),
                message_id: format!("<m{i}@shop.example>"),
                suppressed: None,
            })
            .collect();
        store.queue_sends(campaign, &sends).await.expect("queue");
        sqlx::query("UPDATE sends SET state = 'sent', sent_at = 1 WHERE email <> $1")
            .bind(unsent)
            .execute(store.pool())
            .await
            .expect("sent");
    }

    async fn ledger(store: &Store) {
        // All four delivered.
        let emails = [
            "C0@mail.example",
            "C1@mail.example",
            "C2@mail.example",
            "C3@other.example",
        ];
        delivered(store, "camp", &emails, "").await;
    }

    fn ev(
        send: &SendRecord,
        kind: DeliverabilityKind,
        fp: &str,
        at: i64,
    ) -> NewDeliverabilityEvent {
        NewDeliverabilityEvent {
            send_id: send.id,
            campaign_id: send.campaign_id.clone(),
            email: send.email.clone(),
            kind,
            status: Some("5.1.1".into()),
            detail: None,
            fingerprint: fp.into(),
            at,
        }
    }

    async fn scenario(store: Store) {
        ledger(&store).await;
        // Lookups: by Message-ID with or without brackets, by campaign and address.
        let s0 = store
            .send_by_message_id("m0@shop.example")
            .await
            .expect("q")
            .expect("found");
        assert_eq!(s0.customer_id, "c0");
        let again = store
            .send_by_message_id("<m0@shop.example>")
            .await
            .expect("q");
        assert_eq!(again.map(|s| s.id), Some(s0.id));
        assert!(store
            .send_by_message_id("<nope@x>")
            .await
            .expect("q")
            .is_none());
        assert!(store.send_by_message_id("<>").await.expect("q").is_none());
        let s1 = store
            .send_by_campaign_email("camp", "c1@MAIL.example")
            .await
            .expect("q")
            .expect("found");
        assert_eq!(s1.customer_id, "c1");
        assert!(store
            .send_by_campaign_email("other", "c1@mail.example")
            .await
            .expect("q")
            .is_none());
        let s3 = store.send_of("camp", "c3").await.expect("q").expect("c3");

        // Recording is idempotent by fingerprint.
        let hard = ev(&s0, DeliverabilityKind::HardBounce, "f-hard", 100);
        assert!(store.record_deliverability_event(&hard).await.expect("rec"));
        assert!(!store
            .record_deliverability_event(&hard)
            .await
            .expect("again"));
        assert!(store
            .record_deliverability_event(&ev(&s1, DeliverabilityKind::Complaint, "f-c", 100))
            .await
            .expect("rec"));
        // Two delay notices of one message, then another message: two sends.
        for (fp, at) in [("f-s1", 100), ("f-s2", 200)] {
            store
                .record_deliverability_event(&ev(&s3, DeliverabilityKind::SoftBounce, fp, at))
                .await
                .expect("soft");
        }
        assert_eq!(
            store
                .soft_bounced_sends("C3@other.example", 0)
                .await
                .expect("n"),
            1
        );
        assert_eq!(
            store
                .soft_bounced_sends("c3@other.example", 150)
                .await
                .expect("n"),
            1
        );
        assert_eq!(
            store
                .soft_bounced_sends("c3@other.example", 201)
                .await
                .expect("n"),
            0
        );
        assert_eq!(
            store
                .soft_bounced_sends("c0@mail.example", 0)
                .await
                .expect("n"),
            0
        );
        let events = store.deliverability_events_of("camp").await.expect("list");
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].email, "c0@mail.example");
        assert_eq!(events[0].domain, "mail.example");

        let d = store.campaign_deliverability("camp").await.expect("rates");
        assert_eq!(
            d.total,
            DeliverabilityCounts {
                delivered: 4,
                hard_bounces: 1,
                soft_bounces: 1,
                complaints: 1,
                blocks: 0,
            }
        );
        assert_eq!(
            store
                .campaign_deliverability_totals("camp")
                .await
                .expect("totals"),
            d.total
        );
        assert!((d.total.complaint_rate() - 0.25).abs() < 1e-12);
        assert_eq!(d.domains.len(), 2);
        assert_eq!(d.domains[0].0, "mail.example");
        assert_eq!(
            (
                d.domains[0].1.delivered,
                d.domains[0].1.hard_bounces,
                d.domains[0].1.soft_bounces
            ),
            (3, 1, 0)
        );
        assert_eq!(
            (d.domains[1].1.delivered, d.domains[1].1.soft_bounces),
            (1, 1)
        );
        let none = store.campaign_deliverability("none").await.expect("empty");
        assert_eq!(none.total.complaint_rate(), 0.0);

        // The guardrail's pause records why; resuming clears it and overrides the guardrail.
        assert!(store
            .pause_send_campaign_for("camp", "complaints 25%")
            .await
            .expect("p"));
        assert_eq!(
            store
                .send_campaign_state_and_reason("camp")
                .await
                .expect("s"),
            (CampaignSendState::Paused, Some("complaints 25%".into()))
        );
        assert!(!store
            .pause_send_campaign_for("camp", "again")
            .await
            .expect("p"));
        assert_eq!(
            store
                .send_campaign_reason("camp")
                .await
                .expect("r")
                .as_deref(),
            Some("complaints 25%")
        );
        store
            .set_send_campaign_state("camp", CampaignSendState::Active)
            .await
            .expect("resume");
        assert_eq!(store.send_campaign_reason("camp").await.expect("r"), None);
        assert!(store
            .send_campaign_guardrail_overridden("camp")
            .await
            .expect("o"));
        assert!(!store.pause_send_campaign_for("camp", "x").await.expect("p"));
        assert_eq!(
            store.send_campaign_state("camp").await.expect("s"),
            CampaignSendState::Active
        );
        // A campaign with no state row yet is paused by inserting one.
        assert!(store
            .pause_send_campaign_for("fresh", "hard bounces")
            .await
            .expect("p"));
        assert_eq!(
            store.send_campaign_state("fresh").await.expect("s"),
            CampaignSendState::Paused
        );
        assert!(!store
            .send_campaign_guardrail_overridden("fresh")
            .await
            .expect("o"));
        // A manual pause of an active campaign has no reason.
        store
            .set_send_campaign_state("manual", CampaignSendState::Paused)
            .await
            .expect("pause");
        assert_eq!(store.send_campaign_reason("manual").await.expect("r"), None);
    }

    async fn erasure_scrubs_reports(store: Store) {
        let c = retain_core::Customer {
            id: "c9".into(),
            email: Some("nine@mail.example".into()),
            email_valid: true,
            subscribed: Some(true),
            ..Default::default()
        };
        store
            .import_customers("c.csv", &[c], (1, 1, 0))
            .await
            .expect("customer");
        store
            .queue_sends(
                "camp9",
                &[NewSend {
                    customer_id: "c9".into(),
                    email: "nine@mail.example".into(),
                    message_id: "<m9@shop.example>".into(),
                    suppressed: None,
                }],
            )
            .await
            .expect("queue");
        let s = store.send_of("camp9", "c9").await.expect("q").expect("row");
        let mut e = ev(&s, DeliverabilityKind::HardBounce, "f9", 1);
        e.detail = Some("550 5.1.1 <nine@mail.example>: unknown".into());
        store.record_deliverability_event(&e).await.expect("rec");
        store
            .erase_customer("c9")
            .await
            .expect("erase")
            .expect("erased");
        let events = store.deliverability_events_of("camp9").await.expect("list");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].email, "erased");
        assert_eq!(events[0].detail, None);
        assert_eq!(events[0].domain, "mail.example", "kept for the rates");
    }

    #[tokio::test]
    async fn erasure_scrubs_reports_sqlite() {
        let (store, _dir) = test_support::sqlite().await;
        erasure_scrubs_reports(store).await;
    }

    #[tokio::test]
    async fn erasure_scrubs_reports_postgres() {
        if let Some((store, _db)) = test_support::postgres().await {
            erasure_scrubs_reports(store).await;
        }
    }

    #[tokio::test]
    async fn deliverability_sqlite() {
        let (store, _dir) = test_support::sqlite().await;
        scenario(store).await;
    }

    #[tokio::test]
    async fn deliverability_postgres() {
        if let Some((store, _db)) = test_support::postgres().await {
            scenario(store).await;
        }
    }

    /// Addresses whose domains differ in case, carry spaces, hold two '@' or none.
    const EMAILS: [&str; 7] = [
        "a@Example.COM",
        "b@example.com",
        "c@x.io",
        "\"d@e\"@Other.org ",
        "e@other.ORG",
        "no-domain",
        "f@x.io",
    ];

    async fn per_domain_counts_match_email_domain(store: Store) {
        // The last address stays queued: it must not count as delivered.
        delivered(&store, "k1", &EMAILS, "f@x.io").await;
        let bounced = store
            .send_by_campaign_email("k1", "b@example.com")
            .await
            .expect("lookup")
            .expect("b queued");
        store
            .record_deliverability_event(&ev(&bounced, DeliverabilityKind::HardBounce, "f1", 5))
            .await
            .expect("record");

        let mut want: BTreeMap<String, DeliverabilityCounts> = BTreeMap::new();
        for e in EMAILS.iter().filter(|e| **e != "f@x.io") {
            want.entry(email_domain(e)).or_default().delivered += 1;
        }
        want.entry("example.com".into()).or_default().hard_bounces = 1;
        let got = store.campaign_deliverability("k1").await.expect("counts");
        assert_eq!(
            got.domains,
            want.into_iter().collect::<Vec<_>>(),
            "{:?}",
            store.backend()
        );
        let names: Vec<&str> = got.domains.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(names, ["", "example.com", "other.org", "x.io"]);
        assert_eq!((got.total.delivered, got.total.hard_bounces), (6, 1));
        let totals = store
            .campaign_deliverability_totals("k1")
            .await
            .expect("totals");
        assert_eq!(totals, got.total);
    }

    #[tokio::test]
    async fn per_domain_counts_sqlite() {
        let (store, _dir) = test_support::sqlite().await;
        per_domain_counts_match_email_domain(store).await;
    }

    #[tokio::test]
    async fn per_domain_counts_postgres() {
        if let Some((store, _db)) = test_support::postgres().await {
            per_domain_counts_match_email_domain(store).await;
        }
    }
}
