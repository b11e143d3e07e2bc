//! Campaign sequences (migration 0015): the A/B variant drawn for each recipient when the plan
//! was made (`campaign_variants`), the follow-up steps created so far (`campaign_steps`, each sent
//! under its own ledger campaign id `<campaign>.s<step>`), what each recipient did since the first
//! email (for the steps' rules), and the per-customer revenue of a period (the programme report).
//!
//! The SQL over plan members, sends and orders of this module is kept in these few functions.

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::Row;

use crate::plans::NewPlan;
use crate::rows::Val;
use crate::{now, Result, Store};

/// The variant (and its template) of one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantAssignment {
    pub customer_id: String,
    pub variant: String,
    pub template: String,
}

/// A follow-up step that has been created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub campaign_id: String,
    pub step: i64,
    /// The ledger campaign id its sends are queued under.
    pub ledger_id: String,
    pub template: String,
    pub approved: bool,
    pub recipients: i64,
    pub created_at: i64,
}

/// What one recipient of a campaign did since its first email (across the sequence's emails).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientActivity {
    pub customer_id: String,
    /// When the first email was accepted.
    pub sent_at: i64,
    pub opened: bool,
    pub clicked: bool,
    pub unsubscribed: bool,
    pub bounced: bool,
}

/// The ledger campaign id of step `step` of `campaign_id`.
pub fn step_ledger_id(campaign_id: &str, step: i64) -> String {
    format!("{campaign_id}.s{step}")
}

impl Store {
    /// Stores a plan (see [`Store::save_plan`]) and the variant of every recipient of its
    /// campaigns, keyed by the campaign's local id, in one transaction.
    pub async fn save_plan_with_variants(
        &self,
        plan: &NewPlan,
        variants: &[(String, Vec<VariantAssignment>)],
    ) -> Result<String> {
        let mut tx = self.write_tx().await?;
        let id = crate::plans::save_plan_in(&mut tx, plan).await?;
        for (local, rows) in variants {
            let campaign_id = format!("{id}-{local}");
            tx.insert_many(
                "INSERT INTO campaign_variants (campaign_id, customer_id, variant, template)",
                4,
                rows.len(),
                |i, out| {
                    let r = &rows[i];
                    out.extend([
                        Val::from(campaign_id.as_str()),
                        r.customer_id.as_str().into(),
                        r.variant.as_str().into(),
                        r.template.as_str().into(),
                    ]);
                },
            )
            .await?;
        }
        tx.commit().await?;
        self.refresh_statistics(&["plan_members", "plan_campaigns", "campaign_variants"])
            .await;
        Ok(id)
    }

    /// Every recipient's variant of a campaign, by customer id (empty: no A/B test).
    pub async fn campaign_variants(&self, campaign_id: &str) -> Result<Vec<VariantAssignment>> {
        let rows = sqlx::query(
            "SELECT customer_id, variant, template FROM campaign_variants WHERE campaign_id = $1",
        )
        .bind(campaign_id)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(VariantAssignment {
                    customer_id: r.try_get(0)?,
                    variant: r.try_get(1)?,
                    template: r.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out = retain_core::by_id::sort_by_id(out, |r| r.customer_id.as_str());
        Ok(out)
    }

    /// Records a follow-up step; `false` when it already exists (nothing changes).
    pub async fn create_step(
        &self,
        campaign_id: &str,
        step: i64,
        template: &str,
        approved: bool,
        recipients: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO campaign_steps (campaign_id, step, ledger_id, template, approved, recipients, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (campaign_id, step) DO NOTHING",
        )
        .bind(campaign_id)
        .bind(step)
        .bind(step_ledger_id(campaign_id, step))
        .bind(template)
        .bind(i64::from(approved))
        .bind(recipients)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Approves a created step; `false` when there is no such step.
    pub async fn approve_step(&self, campaign_id: &str, step: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE campaign_steps SET approved = 1 WHERE campaign_id = $1 AND step = $2",
        )
        .bind(campaign_id)
        .bind(step)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The created steps of a campaign, in step order.
    pub async fn campaign_steps(&self, campaign_id: &str) -> Result<Vec<StepRecord>> {
        let rows = sqlx::query(
            "SELECT campaign_id, step, ledger_id, template, approved, recipients, created_at \
             FROM campaign_steps WHERE campaign_id = $1 ORDER BY step",
        )
        .bind(campaign_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StepRecord {
                    campaign_id: r.try_get(0)?,
                    step: r.try_get(1)?,
                    ledger_id: r.try_get(2)?,
                    template: r.try_get(3)?,
                    approved: r.try_get::<i64, _>(4)? != 0,
                    recipients: r.try_get(5)?,
                    created_at: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// What each recipient who was sent the first email of `campaign_id` did since, across the
    /// first email and the steps sent so far: human opens and clicks, unsubscribes, bounces.
    /// Sorted by customer id.
    pub async fn recipient_activity(&self, campaign_id: &str) -> Result<Vec<RecipientActivity>> {
        let rows = sqlx::query(
            "SELECT f.customer_id, f.sent_at, \
               MAX(CASE WHEN e.kind = 'open' AND e.bot = 0 THEN 1 ELSE 0 END), \
               MAX(CASE WHEN e.kind = 'click' AND e.bot = 0 THEN 1 ELSE 0 END), \
               MAX(CASE WHEN e.kind = 'unsubscribe' THEN 1 ELSE 0 END), \
               MAX(CASE WHEN d.kind IN ('bounce_hard', 'bounce_soft') THEN 1 ELSE 0 END) \
             FROM sends f \
             JOIN sends s ON s.customer_id = f.customer_id \
               AND (s.campaign_id = f.campaign_id \
                    OR substr(s.campaign_id, 1, length(f.campaign_id) + 2) = f.campaign_id || '.s') \
             LEFT JOIN events e ON e.send_id = s.id \
             LEFT JOIN deliverability_events d ON d.send_id = s.id \
             WHERE f.campaign_id = $1 AND f.state = 'sent' AND f.sent_at IS NOT NULL \
             GROUP BY f.customer_id, f.sent_at",
        )
        .bind(campaign_id)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(RecipientActivity {
                    customer_id: r.try_get(0)?,
                    sent_at: r.try_get(1)?,
                    opened: r.try_get::<i64, _>(2)? != 0,
                    clicked: r.try_get::<i64, _>(3)? != 0,
                    unsubscribed: r.try_get::<i64, _>(4)? != 0,
                    bounced: r.try_get::<i64, _>(5)? != 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out = retain_core::by_id::sort_by_id(out, |r| r.customer_id.as_str());
        Ok(out)
    }

    /// Of `customer_ids`, those mailed since `since` (Unix seconds) by any campaign outside the
    /// sequence of `campaign_id` (its first email and its steps): the frequency cap at step time.
    pub async fn mailed_outside_sequence(
        &self,
        campaign_id: &str,
        since: i64,
    ) -> Result<Vec<String>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT o.customer_id FROM sends f \
             JOIN sends o ON o.customer_id = f.customer_id \
             WHERE f.campaign_id = $1 AND o.sent_at IS NOT NULL AND o.sent_at >= $2 \
               AND o.campaign_id <> $1 \
               AND substr(o.campaign_id, 1, length($1) + 2) <> $1 || '.s'",
        )
        .bind(campaign_id)
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        let mut rows = rows;
        rows.sort_unstable();
        Ok(rows)
    }

    /// Folds every customer's net revenue (minor units) and order count in `[from, to)` (Unix
    /// seconds), one customer at a time and never the orders themselves: the programme report's
    /// input.
    pub async fn fold_period_revenue<S>(
        &self,
        from: i64,
        to: i64,
        mut state: S,
        mut f: impl FnMut(&mut S, &str, i64, i64),
    ) -> Result<S> {
        let mut rows = sqlx::query(
            "SELECT c.id, CAST(COALESCE(SUM(o.amount), 0) AS BIGINT), COUNT(o.ckey) \
             FROM customers c LEFT JOIN orders o ON o.ckey = c.key AND o.at >= $1 AND o.at < $2 \
             GROUP BY c.key, c.id",
        )
        .bind(from)
        .bind(to)
        .fetch(self.pool());
        while let Some(r) = rows.try_next().await? {
            let id: String = r.try_get(0)?;
            f(&mut state, &id, r.try_get(1)?, r.try_get(2)?);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plans::NewPlanCampaign;
    use crate::test_support;
    use crate::{EventKind, NewEvent, NewSend};

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

    /// Marks a send sent at `at` (the engine's path needs a lease and a claim).
    async fn sent_at(store: &Store, id: i64, at: i64) {
        sqlx::query("UPDATE sends SET state = 'sent', sent_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(store.pool())
            .await
            .expect("mark sent");
    }

    fn plan() -> NewPlan {
        NewPlan {
            budget: 10.0,
            used: 1.0,
            expected_value: 2.0,
            holdout_fraction: 0.1,
            seed: 1,
            as_of: None,
            goals_file: None,
            document: "{}".into(),
            campaigns: vec![NewPlanCampaign {
                local_id: "win_back-1".into(),
                goal: "win_back".into(),
                template: "win_back".into(),
                segments: vec![],
                expected_value: 2.0,
                cost: 1.0,
                recipients: (0..6).map(|i| format!("c{i}")).collect(),
                holdout: vec!["h".into()],
                details: "{}".into(),
            }],
        }
    }

    /// The customers [`plan`] names.
    async fn plan_customers(store: &Store) {
        crate::test_support::customers(store, &["c0", "c1", "c2", "c3", "c4", "c5", "h"]).await;
    }

    #[tokio::test]
    async fn variants_are_saved_with_the_plan() {
        on_both(|store| async move {
            plan_customers(&store).await;
            let rows: Vec<VariantAssignment> = (0..6)
                .rev()
                .map(|i| VariantAssignment {
                    customer_id: format!("c{i}"),
                    variant: if i % 2 == 0 { "a" } else { "b" }.into(),
                    template: if i % 2 == 0 { "win_back" } else { "win_back_b" }.into(),
                })
                .collect();
            let id = store
                .save_plan_with_variants(&plan(), &[("win_back-1".into(), rows)])
                .await
                .expect("save");
            let campaign = format!("{id}-win_back-1");
            let v = store.campaign_variants(&campaign).await.expect("read");
            assert_eq!(v.len(), 6);
            assert_eq!(v[0].customer_id, "c0");
            assert_eq!(v[1].template, "win_back_b");
            assert_eq!(store.plan_members(&campaign).await.expect("m").len(), 7);
            assert!(store.campaign_variants("nope").await.expect("r").is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn steps_activity_and_the_cap_outside_the_sequence() {
        on_both(|store| async move {
            plan_customers(&store).await;
            let id = store.save_plan(&plan()).await.expect("save");
            let campaign = format!("{id}-win_back-1");
            let sends: Vec<NewSend> = (0..4)
                .map(|i| NewSend {
                    customer_id: format!("c{i}"),
                    email: format!("c{i}@x.io"),
                    message_id: format!("<m{i}@x.io>"),
                    suppressed: None,
                })
                .collect();
            store.queue_sends(&campaign, &sends).await.expect("queue");
            let all = store.sends_of(&campaign).await.expect("sends");
            for s in &all[..3] {
                sent_at(&store, s.id, 1_000).await;
            }
            let by = |c: &str| all.iter().find(|s| s.customer_id == c).expect("send").id;
            store
                .record_events(&[
                    NewEvent {
                        send_id: by("c0"),
                        kind: EventKind::Open,
                        at: 1_100,
                        bot: false,
                        url: None,
                        user_agent: None,
                    },
                    NewEvent {
                        send_id: by("c1"),
                        kind: EventKind::Open,
                        at: 1_100,
                        bot: true,
                        url: None,
                        user_agent: None,
                    },
                ])
                .await
                .expect("events");
            // Step 1 sent to c2, who unsubscribes from it.
            assert!(store
                .create_step(&campaign, 1, "reminder", true, 1)
                .await
                .expect("step"));
            assert!(!store
                .create_step(&campaign, 1, "reminder", true, 1)
                .await
                .expect("again"));
            let ledger = step_ledger_id(&campaign, 1);
            store
                .queue_sends(&ledger, &sends[2..3])
                .await
                .expect("queue step");
            let step_send = store.sends_of(&ledger).await.expect("s")[0].id;
            sent_at(&store, step_send, 2_000).await;
            store
                .record_events(&[NewEvent {
                    send_id: step_send,
                    kind: EventKind::Unsubscribe,
                    at: 2_100,
                    bot: false,
                    url: None,
                    user_agent: None,
                }])
                .await
                .expect("events");
            let act = store.recipient_activity(&campaign).await.expect("activity");
            // c3 was never sent: not a recipient of the sequence.
            assert_eq!(
                act.iter()
                    .map(|a| (a.customer_id.as_str(), a.opened, a.unsubscribed))
                    .collect::<Vec<_>>(),
                vec![
                    ("c0", true, false),
                    ("c1", false, false),
                    ("c2", false, true)
                ]
            );
            assert!(act.iter().all(|a| a.sent_at == 1_000));
            // Another campaign mailed c1 recently: the cap holds it back; the own step does not.
            store.queue_sends("other", &sends[1..2]).await.expect("q");
            let other = store.sends_of("other").await.expect("o")[0].id;
            sent_at(&store, other, 1_500).await;
            assert_eq!(
                store
                    .mailed_outside_sequence(&campaign, 1_200)
                    .await
                    .expect("cap"),
                vec!["c1".to_string()]
            );
            assert!(store
                .mailed_outside_sequence(&campaign, 1_600)
                .await
                .expect("cap")
                .is_empty());
            let steps = store.campaign_steps(&campaign).await.expect("steps");
            assert_eq!(steps.len(), 1);
            assert_eq!(steps[0].ledger_id, format!("{campaign}.s1"));
        })
        .await;
    }

    #[tokio::test]
    async fn period_revenue_is_folded_per_customer() {
        on_both(|store| async move {
            use crate::test_support::order;
            let orders = [
                order("a", "2024-01-01", 10.0),
                order("a", "2024-02-10", 30.5),
                order("b", "2024-02-15", 5.0),
                order("c", "2023-12-31", 7.0),
            ];
            store
                .import_orders("o.csv", &orders, (4, 4, 0), &|_| {})
                .await
                .expect("orders");
            // [2024-01-15, 2024-03-01): a's second order and b's; c has none in it.
            let from = 1_705_276_800;
            let to = 1_709_251_200;
            let mut rows = store
                .fold_period_revenue(from, to, Vec::new(), |v, id, minor, n| {
                    v.push((id.to_string(), minor, n))
                })
                .await
                .expect("fold");
            rows.sort();
            assert_eq!(
                rows,
                vec![
                    ("a".to_string(), 3050, 1),
                    ("b".to_string(), 500, 1),
                    ("c".to_string(), 0, 0)
                ]
            );
        })
        .await;
    }
}
