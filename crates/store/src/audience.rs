//! One campaign's audience with everything its emails are personalised from: each member's
//! customer record, features (from the stored aggregates), latest prediction and segment with RFM
//! scores — joined in the database for the campaign's members only, never for the whole shop.

use retain_core::{Customer, CustomerFeatures, Prediction};

use crate::rows::OwnedVal;
use crate::stats::STATS_COLS;
use crate::{Result, Store};

/// One member of a campaign's frozen audience.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceMember {
    pub customer_id: String,
    pub holdout: bool,
    /// `None` when the customer has no record (a member whose row was removed).
    pub customer: Option<Customer>,
    /// Recency, frequency, monetary and tenure as of the day after the last order.
    pub features: Option<CustomerFeatures>,
    pub prediction: Option<Prediction>,
    /// Segment and RFM scores (r, f, m) in the newest segmentation run.
    pub segment: Option<(String, i64, i64, i64)>,
}

impl Store {
    /// The members of `campaign_id` (recipients and holdout, as frozen by the plan) with what
    /// the mailer needs of each, in customer id order.
    pub async fn campaign_audience(&self, campaign_id: &str) -> Result<Vec<AudienceMember>> {
        let as_of = self
            .last_order_day()
            .await?
            .map(|d| retain_core::date_of(d + 1));
        let run: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM segment_runs")
            .fetch_one(self.pool())
            .await?;
        let customer_cols = crate::customers::COLS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let stats_cols = STATS_COLS
            .split(", ")
            .map(|c| format!("s.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Columns: 0 member id, 1 holdout, 2–11 customer, 12–21 stats, 22–24 prediction,
        // 25–28 segment.
        let sql = format!(
            "SELECT c.id, m.holdout, {customer_cols}, {stats_cols}, \
                    p.p_alive, p.expected_purchases_90d, p.clv, a.segment, a.r, a.f, a.m \
             FROM plan_members m \
             JOIN customers c ON c.key = m.ckey \
             LEFT JOIN customer_stats s ON s.ckey = m.ckey \
             LEFT JOIN predictions p ON p.ckey = m.ckey \
             LEFT JOIN segment_assignments a ON a.run_id = $1 AND a.ckey = m.ckey \
             WHERE m.campaign_id = $2"
        );
        // On SQLite a native read connection (sqlx's per-column cost dominated the read). Its
        // `$N` are numbered in order of appearance, so they appear in order.
        let binds = vec![
            OwnedVal::Int(Some(run.unwrap_or(-1))),
            OwnedVal::Text(Some(campaign_id.to_string())),
        ];
        let mut out = self
            .read_rows(sql, binds, move |r| {
                let id = r.text(0)?;
                let customer = match r.opt_text(2)? {
                    Some(_) => Some(crate::customers::customer_from_row_at(r, 2)?),
                    None => None,
                };
                let features = match (r.opt_int(12)?, as_of) {
                    (Some(_), Some(as_of)) => {
                        Some(crate::stats::agg_any(r, 12)?.features(&id, as_of))
                    }
                    _ => None,
                };
                let prediction = match r.opt_real(22)? {
                    Some(p_alive) => Some(Prediction {
                        customer_id: id.clone(),
                        p_alive,
                        expected_purchases_90d: r.real(23)?,
                        clv: r.opt_real(24)?.unwrap_or(f64::NAN),
                    }),
                    None => None,
                };
                let segment = match r.opt_text(25)? {
                    Some(s) => Some((s, r.int(26)?, r.int(27)?, r.int(28)?)),
                    None => None,
                };
                Ok(AudienceMember {
                    holdout: r.int(1)? != 0,
                    customer_id: id,
                    customer,
                    features,
                    prediction,
                    segment,
                })
            })
            .await?;
        // Sorted here: text collation differs between the backends.
        out = retain_core::by_id::sort_by_id(out, |r| r.customer_id.as_str());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support;
    use crate::test_support::order;
    use crate::{NewPlan, NewPlanCampaign, Store};

    async fn audience(store: Store) {
        // Three buyers; a segmentation knows two of them; the campaign mails a and b and holds
        // out c; d is not in the campaign at all.
        let orders = [
            order("a", "2024-01-01", 10.0),
            order("a", "2024-02-01", 30.0),
            order("b", "2024-01-15", 5.0),
            order("c", "2024-01-20", 7.0),
            order("d", "2024-03-01", 9.0),
        ];
        store
            .import_orders("o.csv", &orders, (5, 5, 0), &|_| {})
            .await
            .expect("orders");
        test_support::segment_run(&store, &[("a", "Loyal", 5), ("c", "Lost", 1)]).await;
        let plan = store
            .save_plan(&NewPlan {
                budget: 10.0,
                used: 1.0,
                expected_value: 1.0,
                holdout_fraction: 0.3,
                seed: 1,
                as_of: None,
                goals_file: None,
                document: "{}".into(),
                campaigns: vec![NewPlanCampaign {
                    local_id: "win_back-1".into(),
                    goal: "win_back".into(),
                    template: "win_back".into(),
                    segments: vec![],
                    expected_value: 1.0,
                    cost: 1.0,
                    recipients: vec!["b".into(), "a".into()],
                    holdout: vec!["c".into()],
                    details: "{}".into(),
                }],
            })
            .await
            .expect("plan");
        let members = store
            .campaign_audience(&format!("{plan}-win_back-1"))
            .await
            .expect("audience");
        let ids: Vec<(&str, bool)> = members
            .iter()
            .map(|m| (m.customer_id.as_str(), m.holdout))
            .collect();
        assert_eq!(ids, [("a", false), ("b", false), ("c", true)]);
        let a = &members[0];
        assert_eq!(
            a.customer.as_ref().and_then(|c| c.email.as_deref()),
            Some("a@example.com")
        );
        let f = a.features.as_ref().expect("a's features");
        assert_eq!(f.frequency, 2);
        assert!((f.monetary_total - 40.0).abs() < 1e-9);
        // As of the day after the last order of the shop (d's, 2024-03-01).
        assert_eq!(f.recency_days, 30);
        assert_eq!(a.segment, Some(("Loyal".to_string(), 5, 2, 3)));
        assert!(a.prediction.is_none(), "no predictions yet");
        assert_eq!(members[1].segment, None, "b is in no segment");
        assert_eq!(
            members[2].segment.as_ref().map(|s| s.0.as_str()),
            Some("Lost")
        );
    }

    #[tokio::test]
    async fn a_campaigns_audience_sqlite() {
        let (store, _dir) = test_support::sqlite().await;
        audience(store).await;
    }

    #[tokio::test]
    async fn a_campaigns_audience_postgres() {
        if let Some((store, _db)) = test_support::postgres().await {
            audience(store).await;
        }
    }
}
