//! Uplift modelling's reads and writes (migration 0014): the past campaigns an uplift model can
//! learn from, one campaign's members with what was known of them and what they bought
//! (a page), and the fitted models per goal.
//!
//! All SQL over `plan_members`, `predictions` and `orders` that the uplift learner needs is here,
//! so the customer-key migration of those tables has one place to adapt. The store returns
//! facts; the features (`CustomerAggregate::fold`) and the attribution of purchases to the
//! campaign (`retain_results::report::attribute`) are computed by their one implementation each,
//! outside the store.

use std::collections::{BTreeMap, HashMap};

use futures_util::TryStreamExt;
use retain_core::{Day, OrderFact};
use sqlx::Row;

use crate::{Result, Store};

/// A past campaign a model can learn from: sent, with a holdout.
#[derive(Debug, Clone, PartialEq)]
pub struct UpliftCampaign {
    pub campaign_id: String,
    pub goal: String,
    /// The plan's as-of date (`YYYY-MM-DD`), when it recorded one.
    pub as_of: Option<String>,
    /// When the plan was made, Unix seconds.
    pub planned_at: i64,
    /// The campaign's details JSON (the planner writes the attribution window there).
    pub details: String,
    pub members: i64,
    pub holdout: i64,
}

/// One member of a past campaign, as the uplift learner needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct UpliftMemberRow {
    pub customer_id: String,
    pub holdout: bool,
    /// The customer's attributes (text values).
    pub attributes: BTreeMap<String, String>,
    /// The stored prediction `(p_alive, clv)` and its run's as-of date, when there is one.
    pub prediction: Option<(f64, Option<f64>, String)>,
    /// The customer's orders dated before the page's `until` day: `(fact, Unix seconds)`, by time.
    pub orders: Vec<(OrderFact, i64)>,
}

/// A stored uplift model.
#[derive(Debug, Clone, PartialEq)]
pub struct UpliftModelRecord {
    pub goal: String,
    pub learner: String,
    pub seed: u64,
    pub examples: i64,
    pub campaigns: i64,
    pub evaluation: Option<String>,
    pub model: String,
    pub fitted_at: i64,
}

impl Store {
    /// Campaigns (of `goal`, or of every goal) with at least one sent email and one holdout
    /// member, by campaign id.
    pub async fn uplift_campaigns(&self, goal: Option<&str>) -> Result<Vec<UpliftCampaign>> {
        let sql = "SELECT pc.campaign_id, pc.goal, p.as_of, p.created_at, pc.details, \
                   pc.recipients + pc.holdout, pc.holdout \
                   FROM plan_campaigns pc JOIN plans p ON p.id = pc.plan_id \
                   WHERE pc.holdout > 0 AND ($1 = '' OR pc.goal = $1) \
                   AND EXISTS (SELECT 1 FROM sends s WHERE s.campaign_id = pc.campaign_id \
                               AND s.state = 'sent')";
        let mut out = crate::collect_rows(
            sqlx::query(sql).bind(goal.unwrap_or("")),
            self.pool(),
            |r| {
                Ok(UpliftCampaign {
                    campaign_id: r.try_get(0)?,
                    goal: r.try_get(1)?,
                    as_of: r.try_get(2)?,
                    planned_at: r.try_get(3)?,
                    details: r.try_get(4)?,
                    members: r.try_get(5)?,
                    holdout: r.try_get(6)?,
                })
            },
        )
        .await?;
        out.sort_by(|a, b| a.campaign_id.cmp(&b.campaign_id));
        Ok(out)
    }

    /// One page of training data: every member of `campaign_id` with their attributes, stored
    /// prediction and orders dated before day `until` (the end of the campaign's attribution
    /// windows), sorted by customer id. Memory: one campaign's members and their orders.
    pub async fn uplift_members(
        &self,
        campaign_id: &str,
        until: Day,
    ) -> Result<Vec<UpliftMemberRow>> {
        let members = "SELECT c.id, m.holdout, c.attributes, p.p_alive, p.clv, r.as_of \
                       FROM plan_members m \
                       JOIN customers c ON c.key = m.ckey \
                       LEFT JOIN predictions p ON p.ckey = m.ckey \
                       LEFT JOIN prediction_runs r ON r.id = p.run_id \
                       WHERE m.campaign_id = $1";
        let mut rows =
            crate::collect_rows(sqlx::query(members).bind(campaign_id), self.pool(), |r| {
                let attrs: Option<String> = r.try_get(2)?;
                let p_alive: Option<f64> = r.try_get(3)?;
                let clv: Option<f64> = r.try_get(4)?;
                let run_as_of: Option<String> = r.try_get(5)?;
                Ok(UpliftMemberRow {
                    customer_id: r.try_get(0)?,
                    holdout: r.try_get::<i64, _>(1)? != 0,
                    attributes: attrs
                        .and_then(|a| serde_json::from_str(&a).ok())
                        .unwrap_or_default(),
                    prediction: match (p_alive, run_as_of) {
                        (Some(p), Some(at)) => Some((p, clv, at)),
                        _ => None,
                    },
                    orders: Vec::new(),
                })
            })
            .await?;
        rows = retain_core::by_id::sort_by_id(rows, |r| r.customer_id.as_str());
        let index: HashMap<String, usize> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.customer_id.clone(), i))
            .collect();
        let orders = "SELECT c.id, o.day, o.amount, o.cancelled, o.at \
                      FROM plan_members m JOIN customers c ON c.key = m.ckey \
                      JOIN orders o ON o.ckey = m.ckey \
                      WHERE m.campaign_id = $1 AND o.day < $2";
        let mut stream = sqlx::query(orders)
            .bind(campaign_id)
            .bind(i64::from(until))
            .fetch(self.pool());
        while let Some(r) = stream.try_next().await? {
            let id: String = r.try_get(0)?;
            let Some(&i) = index.get(&id) else { continue };
            let fact = OrderFact {
                day: r.try_get::<i64, _>(1)? as Day,
                amount: r.try_get(2)?,
                cancelled: r.try_get::<i64, _>(3)? != 0,
            };
            rows[i].orders.push((fact, r.try_get(4)?));
        }
        for r in &mut rows {
            r.orders.sort_by_key(|(f, at)| (*at, f.day, f.amount));
        }
        Ok(rows)
    }

    /// Stores a goal's fitted model, replacing the previous one.
    pub async fn save_uplift_model(&self, m: &UpliftModelRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO uplift_models (goal, learner, seed, examples, campaigns, evaluation, model, fitted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (goal) DO UPDATE SET learner = excluded.learner, seed = excluded.seed, \
             examples = excluded.examples, campaigns = excluded.campaigns, \
             evaluation = excluded.evaluation, model = excluded.model, fitted_at = excluded.fitted_at",
        )
        .bind(&m.goal)
        .bind(&m.learner)
        .bind(m.seed as i64)
        .bind(m.examples)
        .bind(m.campaigns)
        .bind(m.evaluation.as_deref())
        .bind(&m.model)
        .bind(m.fitted_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every stored model, by goal.
    pub async fn uplift_models(&self) -> Result<Vec<UpliftModelRecord>> {
        let mut out = crate::collect_rows(
            sqlx::query(
                "SELECT goal, learner, seed, examples, campaigns, evaluation, model, fitted_at \
                 FROM uplift_models",
            ),
            self.pool(),
            |r| {
                Ok(UpliftModelRecord {
                    goal: r.try_get(0)?,
                    learner: r.try_get(1)?,
                    seed: r.try_get::<i64, _>(2)? as u64,
                    examples: r.try_get(3)?,
                    campaigns: r.try_get(4)?,
                    evaluation: r.try_get(5)?,
                    model: r.try_get(6)?,
                    fitted_at: r.try_get(7)?,
                })
            },
        )
        .await?;
        out.sort_by(|a, b| a.goal.cmp(&b.goal));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{self, order};
    use crate::{NewPlan, NewPlanCampaign, PlanState, Store, UpliftModelRecord};

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

    fn campaign(goal: &str, recipients: &[&str], holdout: &[&str]) -> NewPlanCampaign {
        NewPlanCampaign {
            local_id: format!("{goal}-1"),
            goal: goal.into(),
            template: "t".into(),
            segments: vec!["S".into()],
            expected_value: 1.0,
            cost: 0.1,
            recipients: recipients.iter().map(|s| s.to_string()).collect(),
            holdout: holdout.iter().map(|s| s.to_string()).collect(),
            details: r#"{"window_days": 10}"#.into(),
        }
    }

    async fn scenario(store: Store) {
        // a, b mailed; c held out; d never in a campaign.
        let orders = [
            order("a", "2024-01-01", 10.0),
            order("a", "2024-02-10", 25.0),
            order("b", "2024-01-05", 7.0),
            order("c", "2024-01-20", 9.0),
            order("c", "2024-02-12", 4.0),
            order("c", "2024-06-01", 99.0),
            order("d", "2024-01-01", 1.0),
        ];
        store
            .import_orders("o.csv", &orders, (7, 7, 0), &|_| {})
            .await
            .expect("orders");
        let plan = NewPlan {
            budget: 10.0,
            used: 1.0,
            expected_value: 1.0,
            holdout_fraction: 0.3,
            seed: 1,
            as_of: Some("2024-02-01".into()),
            goals_file: None,
            document: "{}".into(),
            campaigns: vec![
                campaign("win_back", &["a", "b"], &["c"]),
                campaign("vip", &["d"], &[]),
            ],
        };
        let id = store.save_plan(&plan).await.expect("plan");
        store
            .set_plan_state(&id, PlanState::Approved)
            .await
            .expect("approve");
        // Nothing sent yet: nothing to learn from.
        assert!(store.uplift_campaigns(None).await.expect("c").is_empty());
        let cid = format!("{id}-win_back-1");
        let members: Vec<crate::NewSend> = ["a", "b"]
            .iter()
            .map(|c| crate::NewSend {
                customer_id: c.to_string(),
                email: format!("{c}@example.com"),
                message_id: format!("<{c}@shop.example>"),
                suppressed: None,
            })
            .collect();
        store.queue_sends(&cid, &members).await.expect("queue");
        // Delivered (the send engine's claim → sent, done directly here).
        sqlx::query("UPDATE sends SET state = 'sent', sent_at = $1 WHERE campaign_id = $2")
            .bind(1_707_000_000_i64)
            .bind(&cid)
            .execute(store.pool())
            .await
            .expect("sent");
        let all = store.uplift_campaigns(None).await.expect("campaigns");
        assert_eq!(
            all.len(),
            1,
            "the vip campaign has no holdout and was not sent"
        );
        assert_eq!(all[0].campaign_id, cid);
        assert_eq!(all[0].goal, "win_back");
        assert_eq!(all[0].as_of.as_deref(), Some("2024-02-01"));
        assert_eq!((all[0].members, all[0].holdout), (3, 1));
        assert!(store
            .uplift_campaigns(Some("vip"))
            .await
            .expect("vip")
            .is_empty());
        assert_eq!(
            store
                .uplift_campaigns(Some("win_back"))
                .await
                .expect("wb")
                .len(),
            1
        );

        // Orders before 2024-03-01 only: c's June order is beyond the page.
        let until = retain_core::day_of(chrono::NaiveDate::from_ymd_opt(2024, 3, 1).expect("date"));
        let rows = store.uplift_members(&cid, until).await.expect("members");
        let ids: Vec<&str> = rows.iter().map(|r| r.customer_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(
            rows.iter().map(|r| r.holdout).collect::<Vec<_>>(),
            [false, false, true]
        );
        let amounts =
            |i: usize| -> Vec<i64> { rows[i].orders.iter().map(|o| o.0.amount).collect() };
        assert_eq!(amounts(0), [1000, 2500]);
        assert_eq!(amounts(1), [700]);
        assert_eq!(amounts(2), [900, 400]);
        assert!(rows[0].orders[0].1 < rows[0].orders[1].1, "by time");
        assert!(rows.iter().all(|r| r.prediction.is_none()));

        // Models: upsert per goal.
        let mut m = UpliftModelRecord {
            goal: "win_back".into(),
            learner: "x".into(),
            seed: u64::MAX,
            examples: 3,
            campaigns: 1,
            evaluation: None,
            model: "{}".into(),
            fitted_at: 5,
        };
        store.save_uplift_model(&m).await.expect("save");
        m.learner = "t".into();
        m.evaluation = Some("{\"qini\":1}".into());
        store.save_uplift_model(&m).await.expect("replace");
        let got = store.uplift_models().await.expect("models");
        assert_eq!(got, vec![m]);
    }

    #[tokio::test]
    async fn uplift_training_pages_and_models() {
        on_both(scenario).await;
    }
}
