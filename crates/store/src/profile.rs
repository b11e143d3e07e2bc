//! One customer, whole: the view a marketer looks up (`retain customer show`, the dashboard's
//! customer page), everything held about the person (a GDPR access request: the same view,
//! exported), and erasure (a GDPR erasure request).
//!
//! Erasure deletes the personal data — address, names, attributes, locale, signup date, the user
//! agents of their tracking events, the address on their send rows — and keeps what is needed
//! anonymously: the customer row (renamed `erased-<key>`, with its orders and aggregate), their
//! segment history, prediction, plan memberships and send states under that id. The address
//! survives only as a SHA-256 hash in `erased_hashes`, which the planner's exclusions and the
//! send-time check consult, so a later import of the same address cannot make it mailable again.

use retain_core::{email_hash, Customer, Order, SuppressionReason};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::events::EventKind;
use crate::plans::PlanState;
use crate::sends::SendRecord;
use crate::{now, Result, Store, StoreError};

/// Prefix of the id an erased customer keeps.
pub const ERASED_PREFIX: &str = "erased-";

/// Everything the store holds about one customer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerProfile {
    /// The store's integer key.
    pub key: i64,
    /// Attributes and consent (`subscribed`).
    pub customer: Customer,
    /// The personal data was erased.
    pub erased: bool,
    /// Why the customer may not be mailed, when the address is suppressed or was erased.
    pub suppression: Option<SuppressionReason>,
    /// Oldest first.
    pub orders: Vec<Order>,
    /// The customer's segment in every segmentation run that included them, oldest run first.
    pub segments: Vec<SegmentHistoryEntry>,
    /// The current prediction, when the latest prediction run included the customer.
    pub prediction: Option<ProfilePrediction>,
    /// Every campaign the customer was planned into (mailed or held out), oldest plan first,
    /// with the send row when one was queued.
    pub campaigns: Vec<CampaignReceived>,
    /// Tracking events of the customer's emails, oldest first.
    pub events: Vec<ProfileEvent>,
}

/// The customer's segment in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentHistoryEntry {
    pub run_id: i64,
    pub method: String,
    pub as_of: Option<String>,
    pub created_at: i64,
    pub segment: String,
    pub r: i64,
    pub f: i64,
    pub m: i64,
}

/// The customer's current prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfilePrediction {
    pub run_id: i64,
    pub as_of: String,
    pub p_alive: f64,
    pub expected_purchases_90d: f64,
    /// `None` when the run had no spend model.
    pub clv: Option<f64>,
    pub frequency: f64,
    pub recency: f64,
    #[serde(rename = "T")]
    pub t: f64,
    pub monetary: f64,
}

/// One campaign the customer was a member of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignReceived {
    pub campaign_id: String,
    /// The plan, goal and template ("" for a ledger row whose campaign has no stored plan).
    pub plan_id: String,
    pub plan_state: Option<PlanState>,
    pub goal: String,
    pub template: String,
    /// Held out (never mailed, the control group).
    pub holdout: bool,
    /// The ledger row, once the campaign was queued for sending.
    pub send: Option<SendRecord>,
}

/// One tracking event of the customer's emails.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileEvent {
    pub id: i64,
    pub send_id: i64,
    pub campaign_id: String,
    pub kind: EventKind,
    pub at: i64,
    pub bot: bool,
    pub url: Option<String>,
    pub user_agent: Option<String>,
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Erasure {
    pub key: i64,
    /// The id the customer keeps: `erased-<key>`.
    pub new_id: String,
    /// Distinct addresses now remembered only as hashes.
    pub addresses_hashed: u64,
    /// Orders kept (anonymously).
    pub orders_kept: i64,
    pub sends_anonymised: u64,
    pub events_anonymised: u64,
    /// Queued emails withdrawn (moved to `suppressed`).
    pub queued_withdrawn: u64,
}

/// The address an erased send row carries instead of the recipient's.
const ERASED_EMAIL: &str = "erased";

impl Store {
    /// The store key and external id of the customer named by `id_or_email`: an exact external
    /// id first, else an address (case-insensitive). `Conflict` when an address belongs to more
    /// than one customer (the caller must then name one by id).
    async fn resolve_customer(&self, id_or_email: &str) -> Result<Option<(i64, Customer)>> {
        let q = id_or_email.trim();
        let sql = format!(
            "SELECT {}, key FROM customers WHERE id = $1",
            crate::customers::COLS
        );
        if let Some(r) = sqlx::query(&sql)
            .bind(q)
            .fetch_optional(self.pool())
            .await?
        {
            return Ok(Some(keyed(&r)?));
        }
        if !q.contains('@') {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {}, key FROM customers WHERE LOWER(email) = $1 ORDER BY key",
            crate::customers::COLS
        );
        let rows = sqlx::query(&sql)
            .bind(q.to_lowercase())
            .fetch_all(self.pool())
            .await?;
        match rows.len() {
            0 => Ok(None),
            1 => Ok(Some(keyed(&rows[0])?)),
            n => {
                let mut ids = rows
                    .iter()
                    .map(|r| r.try_get::<String, _>(0))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                ids.sort();
                Err(StoreError::Conflict(format!(
                    "{n} customers have the address {q}: name one by id ({})",
                    ids.join(", ")
                )))
            }
        }
    }

    /// Everything held about the customer named by `id_or_email` (an external id, or an address
    /// that belongs to exactly one customer): attributes and consent, orders, segment history,
    /// the current prediction, campaigns with their send state, tracking events and whether the
    /// address may be mailed. `None` when no customer matches.
    pub async fn customer_profile(&self, id_or_email: &str) -> Result<Option<CustomerProfile>> {
        let Some((key, customer)) = self.resolve_customer(id_or_email).await? else {
            return Ok(None);
        };
        let id = customer.id.clone();
        let erased = id.starts_with(ERASED_PREFIX) && customer.email.is_none();
        let suppression = match customer.email.as_deref().filter(|e| !e.trim().is_empty()) {
            Some(email) => match self.suppression_of(email).await? {
                Some(r) => Some(r),
                None if self.is_erased_email(email).await? => Some(SuppressionReason::Erased),
                None => None,
            },
            None if erased => Some(SuppressionReason::Erased),
            None => None,
        };
        let orders = self.orders_of_customers(&[id.as_str()]).await?;

        let rows = sqlx::query(
            // Run by run through the assignments' primary key (run_id, ckey).
            "SELECT a.run_id, r.method, r.as_of, r.created_at, a.segment, a.r, a.f, a.m \
             FROM segment_runs r JOIN segment_assignments a ON a.run_id = r.id \
               AND a.ckey = (SELECT key FROM customers WHERE id = $1) ORDER BY r.id",
        )
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?;
        let segments = rows
            .iter()
            .map(|r| {
                Ok(SegmentHistoryEntry {
                    run_id: r.try_get(0)?,
                    method: r.try_get(1)?,
                    as_of: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    segment: r.try_get(4)?,
                    r: r.try_get(5)?,
                    f: r.try_get(6)?,
                    m: r.try_get(7)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let prediction = sqlx::query(
            "SELECT p.run_id, r.as_of, p.p_alive, p.expected_purchases_90d, p.clv, p.frequency, \
             p.recency, p.t, p.monetary \
             FROM predictions p JOIN prediction_runs r ON r.id = p.run_id \
             WHERE p.ckey = (SELECT key FROM customers WHERE id = $1)",
        )
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await?
        .map(|r| {
            Ok::<_, StoreError>(ProfilePrediction {
                run_id: r.try_get(0)?,
                as_of: r.try_get(1)?,
                p_alive: r.try_get(2)?,
                expected_purchases_90d: r.try_get(3)?,
                clv: r.try_get(4)?,
                frequency: r.try_get(5)?,
                recency: r.try_get(6)?,
                t: r.try_get(7)?,
                monetary: r.try_get(8)?,
            })
        })
        .transpose()?;

        let sends: Vec<SendRecord> = sqlx::query(&format!(
            "SELECT {} FROM sends WHERE customer_id = $1 ORDER BY id",
            crate::sends::COLS
        ))
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(crate::sends::record)
        .collect::<Result<_>>()?;
        let rows = sqlx::query(
            "SELECT m.campaign_id, m.holdout, c.plan_id, c.goal, c.template, p.state, p.seq \
             FROM plan_members m JOIN plan_campaigns c ON c.campaign_id = m.campaign_id \
             JOIN plans p ON p.id = c.plan_id \
             WHERE m.ckey = (SELECT key FROM customers WHERE id = $1)",
        )
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut campaigns = Vec::with_capacity(rows.len());
        for r in &rows {
            let campaign_id: String = r.try_get(0)?;
            let state: String = r.try_get(5)?;
            let seq: i64 = r.try_get(6)?;
            campaigns.push((
                seq,
                CampaignReceived {
                    send: sends.iter().find(|s| s.campaign_id == campaign_id).cloned(),
                    campaign_id,
                    holdout: r.try_get::<i64, _>(1)? != 0,
                    plan_id: r.try_get(2)?,
                    goal: r.try_get(3)?,
                    template: r.try_get(4)?,
                    plan_state: Some(
                        PlanState::parse(&state)
                            .ok_or_else(|| StoreError::Corrupt(format!("plan state '{state}'")))?,
                    ),
                },
            ));
        }
        // Ledger rows of campaigns the customer is no plan member of (sent outside a plan).
        for send in &sends {
            if campaigns
                .iter()
                .any(|(_, c)| c.campaign_id == send.campaign_id)
            {
                continue;
            }
            let plan = sqlx::query(
                "SELECT c.plan_id, c.goal, c.template, p.state, p.seq FROM plan_campaigns c \
                 JOIN plans p ON p.id = c.plan_id WHERE c.campaign_id = $1",
            )
            .bind(send.campaign_id.as_str())
            .fetch_optional(self.pool())
            .await?;
            let mut c = CampaignReceived {
                campaign_id: send.campaign_id.clone(),
                plan_id: String::new(),
                plan_state: None,
                goal: String::new(),
                template: String::new(),
                holdout: false,
                send: Some(send.clone()),
            };
            let mut seq = i64::MAX;
            if let Some(r) = plan {
                let state: String = r.try_get(3)?;
                c.plan_id = r.try_get(0)?;
                c.goal = r.try_get(1)?;
                c.template = r.try_get(2)?;
                c.plan_state = PlanState::parse(&state);
                seq = r.try_get(4)?;
            }
            campaigns.push((seq, c));
        }
        // Sorted here (plan order, then id): text collation differs between the backends.
        campaigns.sort_by(|a, b| (a.0, &a.1.campaign_id).cmp(&(b.0, &b.1.campaign_id)));
        let campaigns = campaigns.into_iter().map(|(_, c)| c).collect();

        let rows = sqlx::query(
            "SELECT e.id, e.send_id, s.campaign_id, e.kind, e.at, e.bot, e.url, e.user_agent \
             FROM events e JOIN sends s ON s.id = e.send_id WHERE s.customer_id = $1 \
             ORDER BY e.at, e.id",
        )
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?;
        let events = rows
            .iter()
            .map(|r| {
                let kind: String = r.try_get(3)?;
                Ok(ProfileEvent {
                    id: r.try_get(0)?,
                    send_id: r.try_get(1)?,
                    campaign_id: r.try_get(2)?,
                    kind: EventKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("event kind '{kind}'")))?,
                    at: r.try_get(4)?,
                    bot: r.try_get::<i64, _>(5)? != 0,
                    url: r.try_get(6)?,
                    user_agent: r.try_get(7)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;

        Ok(Some(CustomerProfile {
            key,
            customer,
            erased,
            suppression,
            orders,
            segments,
            prediction,
            campaigns,
            events,
        }))
    }

    /// Erases the personal data of the customer named by `id_or_email`, in one transaction (see
    /// the module doc for what is deleted and what is kept). Idempotent: erasing an erased
    /// customer changes nothing. `None` when no customer matches.
    pub async fn erase_customer(&self, id_or_email: &str) -> Result<Option<Erasure>> {
        let Some((key, customer)) = self.resolve_customer(id_or_email).await? else {
            return Ok(None);
        };
        let old_id = customer.id.clone();
        let new_id = if old_id.starts_with(ERASED_PREFIX) {
            old_id.clone()
        } else {
            format!("{ERASED_PREFIX}{key}")
        };
        let t = now();
        let mut tx = self.pool().begin().await?;
        // Every address the customer was known or mailed by.
        let mut addresses: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT email FROM sends WHERE customer_id = $1")
                .bind(old_id.as_str())
                .fetch_all(&mut *tx)
                .await?;
        addresses.extend(customer.email.clone());
        let mut addresses: Vec<String> = addresses
            .into_iter()
            .map(|a| a.trim().to_lowercase())
            .filter(|a| !a.is_empty() && a != ERASED_EMAIL)
            .collect();
        addresses.sort();
        addresses.dedup();
        for a in &addresses {
            sqlx::query(
                "INSERT INTO erased_hashes (hash, erased_at) VALUES ($1, $2) \
                 ON CONFLICT (hash) DO NOTHING",
            )
            .bind(email_hash(a))
            .bind(t)
            .execute(&mut *tx)
            .await?;
            // The hash replaces the plain address on the suppression list.
            sqlx::query("DELETE FROM suppressions WHERE email = $1")
                .bind(a.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE customers SET id = $1, email = NULL, email_valid = 0, first_name = NULL, \
             last_name = NULL, subscribed = 0, signup_date = NULL, locale = NULL, \
             attributes = '{}', updated_at = $2 WHERE key = $3",
        )
        .bind(new_id.as_str())
        .bind(t)
        .bind(key)
        .execute(&mut *tx)
        .await?;
        let queued_withdrawn = sqlx::query(
            "UPDATE sends SET state = 'suppressed', last_error = 'suppressed: erased', \
             updated_at = $1 WHERE customer_id = $2 AND state = 'queued'",
        )
        .bind(t)
        .bind(old_id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let events_anonymised = sqlx::query(
            "UPDATE events SET user_agent = NULL WHERE user_agent IS NOT NULL AND send_id IN \
             (SELECT id FROM sends WHERE customer_id = $1)",
        )
        .bind(old_id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Bounce and complaint reports keep their kind, status and domain (the campaign's rates),
        // not the address or the diagnostic text that may quote it.
        sqlx::query(
            "UPDATE deliverability_events SET email = $1, detail = NULL WHERE send_id IN \
             (SELECT id FROM sends WHERE customer_id = $2)",
        )
        .bind(ERASED_EMAIL)
        .bind(old_id.as_str())
        .execute(&mut *tx)
        .await?;
        let sends_anonymised =
            sqlx::query("UPDATE sends SET customer_id = $1, email = $2 WHERE customer_id = $3")
                .bind(new_id.as_str())
                .bind(ERASED_EMAIL)
                .bind(old_id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        // Segment assignments, predictions and plan members follow the customer key.
        let orders_kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE ckey = $1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Erasure {
            key,
            new_id,
            addresses_hashed: addresses.len() as u64,
            orders_kept,
            sends_anonymised,
            events_anonymised,
            queued_withdrawn,
        }))
    }
}

fn keyed(r: &AnyRow) -> Result<(i64, Customer)> {
    Ok((r.try_get(10)?, crate::customers::customer_from_row(r)?))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::test_support;
    use crate::{
        ConsentCheck, NewEvent, NewPlan, NewPlanCampaign, NewPredictionRun, NewSegmentRun, NewSend,
        SegmentAssignmentRow, SendLease, StoredPrediction,
    };

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

    fn customer(id: &str, email: &str, first: &str) -> Customer {
        let mut c = Customer {
            id: id.into(),
            email: Some(email.into()),
            email_valid: true,
            first_name: Some(first.into()),
            last_name: Some("Lovelace".into()),
            subscribed: Some(true),
            signup_date: NaiveDate::from_ymd_opt(2023, 5, 1),
            locale: Some("en-GB".into()),
            ..Default::default()
        };
        c.attributes.insert("city".into(), "London".into());
        c
    }

    fn order(customer: &str, id: &str, day: u32, amount: f64) -> Order {
        Order {
            order_id: id.into(),
            customer_id: customer.into(),
            ordered_at: NaiveDate::from_ymd_opt(2024, 3, day)
                .and_then(|d| d.and_hms_opt(10, 0, 0))
                .expect("date"),
            amount,
            items: 1,
            is_return: false,
            currency: None,
            email: None,
            product: Some("tea".into()),
        }
    }

    /// A customer with everything: orders, two segmentation runs, a prediction, a campaign with
    /// a sent email and events, and a second campaign still queued. Returns the send id.
    async fn everything(store: &Store) -> i64 {
        store
            .import_customers(
                "c.csv",
                &[
                    customer("ada", "Ada@Example.com", "Ada"),
                    customer("bob", "bob@example.com", "Bob"),
                ],
                (2, 2, 0),
            )
            .await
            .expect("customers");
        store
            .import_orders(
                "o.csv",
                &[
                    order("ada", "o1", 1, 20.0),
                    order("ada", "o2", 9, 35.5),
                    order("bob", "o3", 2, 10.0),
                ],
                (3, 3, 0),
                &|_| {},
            )
            .await
            .expect("orders");
        for (i, seg) in ["New Customers", "Champions"].iter().enumerate() {
            let run = NewSegmentRun {
                method: "rfm".into(),
                k: 1,
                seed: i as u64,
                as_of: Some(format!("2024-03-1{i}")),
                customers: 2,
                params: "{}".into(),
                k_scores: "[]".into(),
                model: "{}".into(),
            };
            let a = [
                SegmentAssignmentRow {
                    customer_id: "ada".into(),
                    cluster: 0,
                    segment: seg.to_string(),
                    r: 5,
                    f: 4,
                    m: 3,
                },
                SegmentAssignmentRow {
                    customer_id: "bob".into(),
                    cluster: 0,
                    segment: "Hibernating".into(),
                    r: 1,
                    f: 1,
                    m: 1,
                },
            ];
            store.save_segment_run(&run, &[], &a).await.expect("run");
        }
        let run = NewPredictionRun {
            as_of: "2024-03-20".into(),
            period: "day".into(),
            horizon_months: 12,
            discount: 0.01,
            customers: 2,
            bgnbd_r: 1.0,
            bgnbd_alpha: 1.0,
            bgnbd_a: 1.0,
            bgnbd_b: 1.0,
            bgnbd_log_likelihood: -1.0,
            bgnbd_converged: true,
            gamma_gamma: None,
            gamma_gamma_reason: Some("too few".into()),
            p_alive_mean: 0.5,
            expected_purchases_90d_mean: 0.5,
            clv_mean: None,
            model: "bgnbd".into(),
            params: serde_json::json!({}),
            selection: None,
            interval_level: 0.9,
        };
        let p = |id: &str, p_alive: f64| StoredPrediction {
            customer_id: id.into(),
            frequency: 1.0,
            recency: 8.0,
            t: 19.0,
            monetary: 35.5,
            p_alive,
            expected_purchases_90d: 0.7,
            clv: Some(123.0),
            expected_purchases_90d_low: Some(0.5),
            expected_purchases_90d_high: Some(0.9),
            clv_low: Some(100.0),
            clv_high: Some(150.0),
            churn_risk: Some(if p_alive >= 0.7 { "low" } else { "high" }.into()),
            next_order_date: None,
        };
        store
            .save_predictions(&run, &[p("ada", 0.83), p("bob", 0.2)])
            .await
            .expect("predictions");
        let campaign =
            |local: &str, recipients: Vec<String>, holdout: Vec<String>| NewPlanCampaign {
                local_id: local.into(),
                goal: local.trim_end_matches("-1").into(),
                template: "t".into(),
                segments: vec![],
                expected_value: 1.0,
                cost: 0.1,
                recipients,
                holdout,
                details: "{}".into(),
            };
        let plan = NewPlan {
            budget: -1.0,
            used: 0.2,
            expected_value: 2.0,
            holdout_fraction: 0.5,
            seed: 1,
            as_of: None,
            goals_file: None,
            document: "{}".into(),
            campaigns: vec![
                campaign("win_back-1", vec!["ada".into()], vec!["bob".into()]),
                campaign("survey-1", vec!["ada".into(), "bob".into()], vec![]),
            ],
        };
        let plan_id = store.save_plan(&plan).await.expect("plan");
        let send = |c: &str, email: &str| NewSend {
            customer_id: c.into(),
            email: email.into(),
            // As the mailer makes them: random, naming nobody.
            message_id: format!("<{}@x>", email.len() * 7 + c.len()),
            suppressed: None,
        };
        let first = format!("{plan_id}-win_back-1");
        store
            .queue_sends(&first, &[send("ada", "Ada@Example.com")])
            .await
            .expect("queue");
        let id = store.sends_of(&first).await.expect("sends")[0].id;
        assert!(store
            .acquire_send_lease(&first, "setup", 60)
            .await
            .expect("lease")
            .is_ok());
        store
            .claim_sends(&first, "setup", 60, 10, ConsentCheck::default())
            .await
            .expect("claim");
        assert_eq!(
            store.mark_sent(&[(id, 1_710_000_000)]).await.expect("sent"),
            1
        );
        let second = format!("{plan_id}-survey-1");
        store
            .queue_sends(
                &second,
                &[
                    send("ada", "ada@example.com"),
                    send("bob", "bob@example.com"),
                ],
            )
            .await
            .expect("queue");
        store
            .record_events(&[NewEvent {
                send_id: id,
                kind: EventKind::Click,
                at: 1_710_000_100,
                bot: false,
                url: Some("https://shop.example/tea".into()),
                user_agent: Some("Mozilla/5.0 (Ada's laptop)".into()),
            }])
            .await
            .expect("events");
        id
    }

    #[tokio::test]
    async fn profile_gathers_everything_held() {
        on_both(profile_gathers_everything_held_on).await;
    }

    async fn profile_gathers_everything_held_on(store: Store) {
        let send_id = everything(&store).await;
        assert_eq!(store.customer_profile("nobody").await.expect("q"), None);
        // By address, case-insensitively; by id.
        let p = store
            .customer_profile("ADA@example.com")
            .await
            .expect("q")
            .expect("found by address");
        assert_eq!(
            p,
            store
                .customer_profile("ada")
                .await
                .expect("q")
                .expect("by id")
        );
        assert_eq!(p.customer.first_name.as_deref(), Some("Ada"));
        assert_eq!(p.customer.subscribed, Some(true));
        assert!(!p.erased);
        assert_eq!(p.suppression, None);
        assert_eq!(
            p.orders
                .iter()
                .map(|o| o.order_id.as_str())
                .collect::<Vec<_>>(),
            ["o1", "o2"]
        );
        assert_eq!(
            p.segments
                .iter()
                .map(|s| s.segment.as_str())
                .collect::<Vec<_>>(),
            ["New Customers", "Champions"]
        );
        let pred = p.prediction.as_ref().expect("prediction");
        assert!((pred.p_alive - 0.83).abs() < 1e-12);
        assert_eq!(pred.clv, Some(123.0));
        assert_eq!(p.campaigns.len(), 2);
        let sent = p
            .campaigns
            .iter()
            .find(|c| c.goal == "win_back")
            .expect("wb");
        assert!(!sent.holdout);
        let row = sent.send.as_ref().expect("send row");
        assert_eq!((row.id, row.state), (send_id, crate::SendState::Sent));
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].kind, EventKind::Click);
        assert_eq!(
            p.events[0].user_agent.as_deref(),
            Some("Mozilla/5.0 (Ada's laptop)")
        );
        // Bob was held out of the first campaign.
        let bob = store
            .customer_profile("bob")
            .await
            .expect("q")
            .expect("bob");
        assert!(bob
            .campaigns
            .iter()
            .any(|c| c.holdout && c.goal == "win_back"));
        // Suppression shows.
        store
            .suppress("bob@example.com", SuppressionReason::Complaint, "test")
            .await
            .expect("s");
        let bob = store
            .customer_profile("bob")
            .await
            .expect("q")
            .expect("bob");
        assert_eq!(bob.suppression, Some(SuppressionReason::Complaint));
        // An address shared by two customers names neither.
        sqlx::query("UPDATE customers SET email = 'ada@example.com' WHERE id = 'bob'")
            .execute(store.pool())
            .await
            .expect("share");
        assert!(matches!(
            store.customer_profile("ada@example.com").await,
            Err(StoreError::Conflict(_))
        ));
    }

    #[tokio::test]
    async fn erasure_keeps_aggregates_and_only_a_hash() {
        on_both(erasure_keeps_aggregates_and_only_a_hash_on).await;
    }

    async fn erasure_keeps_aggregates_and_only_a_hash_on(store: Store) {
        everything(&store).await;
        store
            .suppress("ada@example.com", SuppressionReason::Unsubscribed, "test")
            .await
            .expect("s");
        let (orders_before, revenue_before, _) = store.order_totals().await.expect("t");
        let e = store
            .erase_customer("ada@example.com")
            .await
            .expect("erase")
            .expect("found");
        assert_eq!(e.new_id, format!("erased-{}", e.key));
        assert_eq!(e.orders_kept, 2);
        assert_eq!(
            e.addresses_hashed, 1,
            "Ada@Example.com and ada@… are one address"
        );
        assert_eq!(e.queued_withdrawn, 1);
        assert_eq!(e.events_anonymised, 1);
        assert_eq!(e.sends_anonymised, 2);
        // Gone under the old id and address; kept under the new id.
        assert_eq!(store.customer_profile("ada").await.expect("q"), None);
        assert_eq!(
            store.customer_profile("ada@example.com").await.expect("q"),
            None
        );
        let p = store
            .customer_profile(&e.new_id)
            .await
            .expect("q")
            .expect("kept");
        assert!(p.erased);
        assert_eq!(p.suppression, Some(SuppressionReason::Erased));
        assert_eq!(
            p.customer,
            Customer {
                id: e.new_id.clone(),
                subscribed: Some(false),
                ..Default::default()
            }
        );
        assert_eq!(p.orders.len(), 2, "orders kept");
        assert_eq!(p.segments.len(), 2, "segment history kept");
        assert!(p.prediction.is_some());
        assert_eq!(p.campaigns.len(), 2);
        assert!(p.events.iter().all(|ev| ev.user_agent.is_none()));
        let everything = serde_json::to_string(&p).expect("json").to_lowercase();
        for personal in ["ada", "lovelace", "london", "en-gb", "2023-05-01", "laptop"] {
            assert!(!everything.contains(personal), "{personal} in {everything}");
        }
        // Aggregates untouched.
        let (orders_after, revenue_after, _) = store.order_totals().await.expect("t");
        assert_eq!(
            (orders_after, revenue_after),
            (orders_before, revenue_before)
        );
        // The address is no longer on the suppression list in clear, only as a hash.
        assert!(store.suppressions().await.expect("s").is_empty());
        let list = store.suppression_list().await.expect("list");
        assert_eq!(
            list.get(" ADA@example.com"),
            Some(SuppressionReason::Erased)
        );
        assert_eq!(list.get("bob@example.com"), None);
        // Erasing again changes nothing.
        let again = store
            .erase_customer(&e.new_id)
            .await
            .expect("again")
            .expect("found");
        assert_eq!(again.new_id, e.new_id);
        assert_eq!(again.addresses_hashed, 0);

        // A later import of the same address: the send-time check still refuses it.
        store
            .import_customers(
                "again.csv",
                &[customer("ada2", "ada@example.com", "Ada")],
                (1, 1, 0),
            )
            .await
            .expect("re-import");
        store
            .queue_sends(
                "k9",
                &[
                    NewSend {
                        customer_id: "ada2".into(),
                        email: "ada@example.com".into(),
                        message_id: "<a2@x>".into(),
                        suppressed: None,
                    },
                    NewSend {
                        customer_id: "bob".into(),
                        email: "bob@example.com".into(),
                        message_id: "<b2@x>".into(),
                        suppressed: None,
                    },
                ],
            )
            .await
            .expect("queue");
        let lease: std::result::Result<(), SendLease> = store
            .acquire_send_lease("k9", "me", 60)
            .await
            .expect("lease");
        assert!(lease.is_ok());
        match store
            .claim_sends("k9", "me", 60, 10, ConsentCheck::default())
            .await
            .expect("claim")
        {
            crate::Claim::Claimed { sends, suppressed } => {
                assert_eq!(
                    sends
                        .iter()
                        .map(|s| s.customer_id.as_str())
                        .collect::<Vec<_>>(),
                    ["bob"]
                );
                assert_eq!(suppressed.len(), 1);
                assert_eq!(suppressed[0].1, "suppressed: erased");
            }
            other => panic!("{other:?}"),
        }
    }
}
