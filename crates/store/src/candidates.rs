//! The planner's candidates: every buyer of the newest segmentation with their customer record,
//! features, segment and RFM scores, prediction and last mailing — joined in the database and
//! merged with the features on the integer customer key (both read in key order), and handed out
//! in customer id order (a permutation, not a sort of the large rows), so `retain plan` holds one row per customer instead of several
//! whole-shop maps. Each customer's last mailing is read apart (one `GROUP BY` over the sends,
//! as integer pairs) and merged by key: joined to the candidates in SQL, it cost a lookup by text
//! id per candidate.

use std::sync::Arc;

use chrono::NaiveDate;
use retain_core::{Customer, CustomerFeatures, Prediction};

use crate::predictions::PredictionBound;
use crate::rows::OwnedVal;
use crate::{Result, Store};

/// One buyer the plan may target.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanCandidate {
    /// The fields planning reads: id, email, email_valid, subscribed, locale and attributes.
    /// Names and the signup date are not read (left empty).
    pub customer: Customer,
    pub features: CustomerFeatures,
    /// Shared by every candidate of the segment.
    pub segment: Arc<str>,
    /// RFM scores (r, f, m) as stored with the assignment.
    pub scores: (i64, i64, i64),
    pub prediction: Option<Prediction>,
    /// When the customer was last mailed by any campaign (Unix seconds).
    pub last_mailed_at: Option<i64>,
}

/// What `retain plan` plans over.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanCandidates {
    pub as_of: NaiveDate,
    /// Whether any segmentation run exists.
    pub segmented: bool,
    /// In customer key order; [`PlanCandidates::by_id`] gives them in id order.
    pub candidates: Vec<PlanCandidate>,
    /// Positions in `candidates` in customer id order (the candidates are large: a permutation
    /// costs less than moving them).
    pub(crate) id_order: Vec<usize>,
    /// Buyers with features but no segment in the newest run.
    pub unsegmented: usize,
}

impl PlanCandidates {
    /// The candidates in customer id order: the order planning takes them in, the same on both
    /// backends.
    pub fn by_id(&self) -> impl ExactSizeIterator<Item = &PlanCandidate> + '_ {
        self.id_order.iter().map(|&i| &self.candidates[i])
    }
}

impl Store {
    /// Every buyer of the newest segmentation run with what the planner needs, as of `as_of`
    /// (default: the day after the last order); predictions at their point estimates or lower
    /// bounds (`bound`). `None` without orders.
    pub async fn plan_candidates(
        &self,
        as_of: Option<NaiveDate>,
        bound: PredictionBound,
    ) -> Result<Option<PlanCandidates>> {
        let run: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM segment_runs")
            .fetch_one(self.pool())
            .await?;
        let Some(run) = run else {
            return Ok(self
                .customer_features_by_key(as_of)
                .await?
                .map(|(as_of, features)| PlanCandidates {
                    as_of,
                    segmented: false,
                    unsegmented: features.len(),
                    candidates: Vec::new(),
                    id_order: Vec::new(),
                }));
        };
        let (ep, clv) = match bound {
            PredictionBound::Point => ("p.expected_purchases_90d", "p.clv"),
            PredictionBound::Low => (
                "COALESCE(p.expected_purchases_90d_low, p.expected_purchases_90d)",
                "CASE WHEN p.clv IS NULL THEN NULL ELSE COALESCE(p.clv_low, p.clv) END",
            ),
        };
        // Columns: 0–3 segment and scores, 4–9 customer, 10–12 prediction, 13 key.
        let sql = format!(
            "SELECT a.segment, a.r, a.f, a.m, c.id, c.email, c.email_valid, c.subscribed, \
             c.locale, c.attributes, p.p_alive, {ep}, {clv}, a.ckey \
             FROM segment_assignments a \
             JOIN customers c ON c.key = a.ckey \
             LEFT JOIN predictions p ON p.ckey = a.ckey \
             WHERE a.run_id = $1 ORDER BY a.ckey"
        );
        /// A segmented customer as read, waiting for their features.
        struct Row {
            key: i64,
            features: Option<CustomerFeatures>,
            segment: Arc<str>,
            scores: (i64, i64, i64),
            customer: Customer,
            prediction: Option<Prediction>,
            last_mailed_at: Option<i64>,
        }
        // The segments' names, each allocated once (a run has a handful).
        let names = std::sync::Mutex::new(Vec::<Arc<str>>::new());
        // The features, the joined rows and the last mailings are read at once.
        let rows = self.read_rows(sql, vec![OwnedVal::Int(Some(run))], move |r| {
            let segment = r.text(0)?;
            let segment = {
                let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
                match names.iter().find(|n| ***n == *segment) {
                    Some(n) => n.clone(),
                    None => {
                        let n: Arc<str> = segment.into();
                        names.push(n.clone());
                        n
                    }
                }
            };
            let attrs = r.text(9)?;
            let customer = Customer {
                id: r.text(4)?,
                email: r.opt_text(5)?,
                email_valid: r.int(6)? != 0,
                subscribed: r.opt_int(7)?.map(|v| v != 0),
                locale: r.opt_text(8)?,
                attributes: crate::customers::attributes_of(&attrs),
                ..Customer::default()
            };
            let prediction = match r.opt_real(10)? {
                Some(p_alive) => Some(Prediction {
                    customer_id: customer.id.clone(),
                    p_alive,
                    expected_purchases_90d: r.real(11)?,
                    clv: r.opt_real(12)?.unwrap_or(f64::NAN),
                }),
                None => None,
            };
            Ok(Row {
                key: r.int(13)?,
                features: None,
                segment,
                scores: (r.int(1)?, r.int(2)?, r.int(3)?),
                customer,
                prediction,
                last_mailed_at: None,
            })
        });
        // (key, last mailing) of every customer mailed.
        let mailed = self.read_rows(
            "SELECT MAX(c.key), MAX(COALESCE(s.sent_at, s.sending_at)) FROM sends s \
             JOIN customers c ON c.id = s.customer_id \
             WHERE s.state IN ('sent', 'sending') GROUP BY s.customer_id"
                .to_string(),
            Vec::new(),
            |r| Ok((r.int(0)?, r.opt_int(1)?)),
        );
        let (features, mut rows, mut mailed): (_, Vec<Row>, Vec<(i64, Option<i64>)>) =
            tokio::try_join!(self.customer_features_by_key(as_of), rows, mailed)?;
        mailed.sort_unstable();
        merge_by_key(
            &mut rows,
            |r| r.key,
            mailed,
            |r, last| r.last_mailed_at = last,
        );
        let Some((as_of, features)) = features else {
            return Ok(None);
        };
        // Both in key order: each row takes its features in place, and the rows become the
        // candidates in the same allocation (a million customers are a few hundred MiB: a
        // second vector of them would double that).
        let mut unsegmented = features.len();
        merge_by_key(
            &mut rows,
            |r| r.key,
            features,
            |r, f| {
                r.features = Some(f);
                unsegmented -= 1;
            },
        );
        let candidates: Vec<PlanCandidate> = rows
            .into_iter()
            .filter_map(|r| {
                Some(PlanCandidate {
                    features: r.features?,
                    customer: r.customer,
                    segment: r.segment,
                    scores: r.scores,
                    prediction: r.prediction,
                    last_mailed_at: r.last_mailed_at,
                })
            })
            .collect();
        let id_order = retain_core::by_id::order_by_id(candidates.len(), |i| {
            candidates[i].customer.id.as_str()
        });
        Ok(Some(PlanCandidates {
            as_of,
            segmented: true,
            candidates,
            id_order,
            unsegmented,
        }))
    }

    /// The names of every customer attribute held (for the goals' rules).
    pub async fn customer_attribute_names(&self) -> Result<std::collections::BTreeSet<String>> {
        // Natively on SQLite: a scan of every customer through sqlx costs more than the query.
        let names = self
            .read_rows(
                "SELECT attributes FROM customers WHERE attributes <> '{}'".to_string(),
                Vec::new(),
                |r| {
                    Ok(crate::customers::attributes_of(&r.text(0)?)
                        .into_keys()
                        .collect::<Vec<_>>())
                },
            )
            .await?;
        Ok(names.into_iter().flatten().collect())
    }
}

/// Hands each `(key, value)` of `values` to the row of that key (`apply`); both in ascending
/// key order, keys unique on each side. Values whose key has no row are dropped.
fn merge_by_key<R, V>(
    rows: &mut [R],
    key_of: impl Fn(&R) -> i64,
    values: impl IntoIterator<Item = (i64, V)>,
    mut apply: impl FnMut(&mut R, V),
) {
    let mut at = 0;
    for (key, value) in values {
        while rows.get(at).is_some_and(|r| key_of(r) < key) {
            at += 1;
        }
        if let Some(r) = rows.get_mut(at).filter(|r| key_of(r) == key) {
            apply(r, value);
            at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::predictions::PredictionBound;
    use crate::test_support;
    use crate::test_support::order;
    use crate::Store;

    async fn candidates(store: Store) {
        let none = store
            .plan_candidates(None, PredictionBound::Point)
            .await
            .expect("empty");
        assert!(none.is_none(), "no orders, no candidates");
        // Keys in the file's order (c, b, a, d), not the ids'.
        let orders = [
            order("c", "2024-01-20", 7.0),
            order("b", "2024-01-15", 5.0),
            order("a", "2024-01-01", 10.0),
            order("a", "2024-02-01", 30.0),
            order("d", "2024-03-01", 9.0),
        ];
        store
            .import_orders("o.csv", &orders, (5, 5, 0), &|_| {})
            .await
            .expect("orders");
        let unsegmented = store
            .plan_candidates(None, PredictionBound::Point)
            .await
            .expect("read")
            .expect("orders");
        assert!(!unsegmented.segmented);
        assert_eq!(unsegmented.unsegmented, 4);
        test_support::segment_run(&store, &[("a", "Loyal", 5), ("c", "Lost", 1)]).await;
        let got = store
            .plan_candidates(None, PredictionBound::Point)
            .await
            .expect("read")
            .expect("orders");
        assert!(got.segmented);
        assert_eq!(got.as_of.to_string(), "2024-03-02");
        let in_key_order: Vec<&str> = got
            .candidates
            .iter()
            .map(|c| c.customer.id.as_str())
            .collect();
        assert_eq!(in_key_order, ["c", "a"]);
        let ids: Vec<&str> = got.by_id().map(|c| c.customer.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(got.unsegmented, 2, "b and d have orders but no segment");
        let a = got.by_id().next().expect("a");
        assert_eq!(a.features.customer_id, "a");
        assert_eq!(a.features.frequency, 2);
        assert_eq!((&*a.segment, a.scores), ("Loyal", (5, 2, 3)));
        assert_eq!(a.customer.email.as_deref(), Some("a@example.com"));
        assert!(a.prediction.is_none() && a.last_mailed_at.is_none());
        // Last mailings: the latest sent or sending email of each customer; queued ones and
        // customers who are not candidates do not count.
        for (n, (campaign, customer, state, at)) in [
            ("x", "c", "sent", 100),
            ("y", "c", "sending", 200),
            ("z", "c", "sent", 150),
            ("x", "a", "queued", 300),
            ("x", "zz", "sent", 400),
        ]
        .into_iter()
        .enumerate()
        {
            sqlx::query(
                "INSERT INTO sends (campaign_id, customer_id, email, state, message_id, queued_at, \
                 sending_at, sent_at, updated_at) VALUES ($1, $2, 'e@x.io', $3, $4, 0, $5, $6, 0)",
            )
            .bind(campaign)
            .bind(customer)
            .bind(state)
            .bind(format!("m{n}"))
            .bind(at)
            .bind((state == "sent").then_some(at))
            .execute(store.pool())
            .await
            .expect("send");
        }
        let mailed = store
            .plan_candidates(None, PredictionBound::Point)
            .await
            .expect("read")
            .expect("orders");
        let last: Vec<(&str, Option<i64>)> = mailed
            .by_id()
            .map(|c| (c.customer.id.as_str(), c.last_mailed_at))
            .collect();
        assert_eq!(last, [("a", None), ("c", Some(200))]);
        // An earlier date: c bought on 2024-01-20, so as of 2024-01-10 only a is a buyer.
        let early = store
            .plan_candidates(
                chrono::NaiveDate::from_ymd_opt(2024, 1, 10),
                PredictionBound::Low,
            )
            .await
            .expect("read")
            .expect("orders");
        let ids: Vec<&str> = early.by_id().map(|c| c.customer.id.as_str()).collect();
        assert_eq!(ids, ["a"]);
        assert_eq!(early.candidates[0].features.frequency, 1);
    }

    #[tokio::test]
    async fn plan_candidates_sqlite() {
        let (store, _dir) = test_support::sqlite().await;
        candidates(store).await;
    }

    #[tokio::test]
    async fn plan_candidates_postgres() {
        if let Some((store, _db)) = test_support::postgres().await {
            candidates(store).await;
        }
    }
}
