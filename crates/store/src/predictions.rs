//! CLV predictions (migrations 0003 and 0010): every `retain predict` run with its fitted
//! parameters and means (and, since 0010, the predicting model, its fit with standard errors as
//! JSON and the evidence of `--model auto`), and the current per-customer predictions with their
//! intervals, churn-risk band and expected next order date, which each run replaces as a whole in
//! one transaction. The store keeps the JSON documents as given; it does not interpret them.

use std::collections::BTreeMap;

use retain_core::Prediction;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use crate::keyed::KeyedTable;
use crate::rows::Val;
use crate::{now, Result, Store, StoreError};

/// A prediction run as stored: what was fitted, on what, with which options.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionRunRecord {
    pub id: i64,
    /// `YYYY-MM-DD`; orders on or after it were ignored.
    pub as_of: String,
    /// `day` or `week`: the time unit of the BG/NBD parameters and of the summaries.
    pub period: String,
    pub horizon_months: i64,
    pub discount: f64,
    pub customers: i64,
    pub bgnbd_r: f64,
    pub bgnbd_alpha: f64,
    pub bgnbd_a: f64,
    pub bgnbd_b: f64,
    pub bgnbd_log_likelihood: f64,
    pub bgnbd_converged: bool,
    /// Gamma-Gamma `(p, q, v)`, when a spend model was fitted.
    pub gamma_gamma: Option<(f64, f64, f64)>,
    /// Why there is no spend model, when there is none.
    pub gamma_gamma_reason: Option<String>,
    pub p_alive_mean: f64,
    pub expected_purchases_90d_mean: f64,
    pub clv_mean: Option<f64>,
    /// The model that predicted (`bgnbd`, `mbgnbd`, `pareto_nbd`); `None` for runs stored before
    /// migration 0010.
    pub model: Option<String>,
    /// Its fit as JSON (parameters, standard errors, log-likelihood); `None` before 0010.
    pub params: Option<serde_json::Value>,
    /// How `--model auto` chose the model (JSON), when it did.
    pub selection: Option<serde_json::Value>,
    /// Coverage of the per-customer intervals (e.g. 0.9); `None` before 0010.
    pub interval_level: Option<f64>,
    pub created_at: i64,
}

/// A run to record (the store assigns `id` and `created_at`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewPredictionRun {
    pub as_of: String,
    pub period: String,
    pub horizon_months: i64,
    pub discount: f64,
    pub customers: i64,
    pub bgnbd_r: f64,
    pub bgnbd_alpha: f64,
    pub bgnbd_a: f64,
    pub bgnbd_b: f64,
    pub bgnbd_log_likelihood: f64,
    pub bgnbd_converged: bool,
    pub gamma_gamma: Option<(f64, f64, f64)>,
    pub gamma_gamma_reason: Option<String>,
    pub p_alive_mean: f64,
    pub expected_purchases_90d_mean: f64,
    pub clv_mean: Option<f64>,
    /// The model that predicted: `bgnbd`, `mbgnbd` or `pareto_nbd`.
    pub model: String,
    /// Its fit (parameters, standard errors, log-likelihood) as a JSON document.
    pub params: serde_json::Value,
    /// The evidence of `--model auto`, when the model was chosen that way.
    pub selection: Option<serde_json::Value>,
    /// Coverage of the per-customer intervals, in (0, 1).
    pub interval_level: f64,
}

/// One customer's stored prediction with the summary it was made from.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredPrediction {
    pub customer_id: String,
    pub frequency: f64,
    pub recency: f64,
    #[serde(rename = "T")]
    pub t: f64,
    pub monetary: f64,
    pub p_alive: f64,
    pub expected_purchases_90d: f64,
    /// `None` when the run had no spend model.
    pub clv: Option<f64>,
    /// Interval for `expected_purchases_90d` at the run's `interval_level`; `None` for rows
    /// stored before migration 0010.
    pub expected_purchases_90d_low: Option<f64>,
    pub expected_purchases_90d_high: Option<f64>,
    /// Interval for `clv`; `None` without a spend model or before 0010.
    pub clv_low: Option<f64>,
    pub clv_high: Option<f64>,
    /// `low`, `medium` or `high` (from P(alive)); `None` before 0010.
    pub churn_risk: Option<String>,
    /// Expected date of the next order, `YYYY-MM-DD`; `None` beyond the calendar or before 0010.
    pub next_order_date: Option<String>,
}

/// One customer's current prediction, by customer key ([`Store::prediction_points`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictionPoint {
    pub key: i64,
    pub p_alive: f64,
    pub expected_purchases_90d: f64,
    /// `None` when the run had no spend model.
    pub clv: Option<f64>,
}

/// Which value of each prediction [`Store::predictions_at`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PredictionBound {
    /// The point estimates.
    #[default]
    Point,
    /// The interval's lower bounds of CLV and expected purchases (a cautious plan); a row without
    /// an interval (stored before migration 0010) reads its point estimate.
    Low,
}

const RUN_COLS: &str = "id, as_of, period, horizon_months, discount, customers, bgnbd_r, \
    bgnbd_alpha, bgnbd_a, bgnbd_b, bgnbd_log_likelihood, bgnbd_converged, gg_p, gg_q, gg_v, \
    gg_reason, p_alive_mean, expected_purchases_90d_mean, clv_mean, created_at, model, params, \
    selection, interval_level";

/// The per-customer columns read back into a [`StoredPrediction`] (the table's `p`).
const PREDICTION_COLS: &str = "p.frequency, p.recency, p.t, p.monetary, p.p_alive, \
    p.expected_purchases_90d, p.clv, p.expected_purchases_90d_low, \
    p.expected_purchases_90d_high, p.clv_low, p.clv_high, p.churn_risk, p.next_order_date";

/// Predictions, written by customer id and keyed by the customer key.
const PREDICTIONS: KeyedTable = KeyedTable {
    table: "predictions",
    cols: &[
        ("run_id", "BIGINT"),
        ("frequency", "DOUBLE PRECISION"),
        ("recency", "DOUBLE PRECISION"),
        ("t", "DOUBLE PRECISION"),
        ("monetary", "DOUBLE PRECISION"),
        ("p_alive", "DOUBLE PRECISION"),
        ("expected_purchases_90d", "DOUBLE PRECISION"),
        ("clv", "DOUBLE PRECISION"),
        ("expected_purchases_90d_low", "DOUBLE PRECISION"),
        ("expected_purchases_90d_high", "DOUBLE PRECISION"),
        ("clv_low", "DOUBLE PRECISION"),
        ("clv_high", "DOUBLE PRECISION"),
        ("churn_risk", "TEXT"),
        ("next_order_date", "TEXT"),
    ],
};

impl Store {
    /// Records a run and replaces the current predictions with `rows`, in one transaction.
    /// Returns the run id.
    pub async fn save_predictions(
        &self,
        run: &NewPredictionRun,
        rows: &[StoredPrediction],
    ) -> Result<i64> {
        let mut tx = self.write_tx().await?;
        let (gg_p, gg_q, gg_v) = match run.gamma_gamma {
            Some((p, q, v)) => (Some(p), Some(q), Some(v)),
            None => (None, None, None),
        };
        let params = run.params.to_string();
        let selection = run.selection.as_ref().map(|v| v.to_string());
        let t = now();
        let id = tx
            .fetch_int(
                "INSERT INTO prediction_runs (as_of, period, horizon_months, discount, customers, \
                 bgnbd_r, bgnbd_alpha, bgnbd_a, bgnbd_b, bgnbd_log_likelihood, bgnbd_converged, \
                 gg_p, gg_q, gg_v, gg_reason, p_alive_mean, expected_purchases_90d_mean, clv_mean, \
                 created_at, model, params, selection, interval_level) VALUES ($1, $2, $3, $4, $5, \
                 $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
                 $23) RETURNING id",
                &[
                    run.as_of.as_str().into(),
                    run.period.as_str().into(),
                    run.horizon_months.into(),
                    run.discount.into(),
                    run.customers.into(),
                    run.bgnbd_r.into(),
                    run.bgnbd_alpha.into(),
                    run.bgnbd_a.into(),
                    run.bgnbd_b.into(),
                    run.bgnbd_log_likelihood.into(),
                    i64::from(run.bgnbd_converged).into(),
                    gg_p.into(),
                    gg_q.into(),
                    gg_v.into(),
                    run.gamma_gamma_reason.as_deref().into(),
                    run.p_alive_mean.into(),
                    run.expected_purchases_90d_mean.into(),
                    run.clv_mean.into(),
                    t.into(),
                    run.model.as_str().into(),
                    params.as_str().into(),
                    selection.as_deref().into(),
                    run.interval_level.into(),
                ],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("prediction run inserted without an id".into()))?;
        tx.execute("DELETE FROM predictions", &[]).await?;
        PREDICTIONS
            .insert(
                &mut tx,
                rows.len(),
                |i| rows[i].customer_id.as_str(),
                |i, out| {
                    let p = &rows[i];
                    out.extend([
                        Val::from(id),
                        p.frequency.into(),
                        p.recency.into(),
                        p.t.into(),
                        p.monetary.into(),
                        p.p_alive.into(),
                        p.expected_purchases_90d.into(),
                        p.clv.into(),
                        p.expected_purchases_90d_low.into(),
                        p.expected_purchases_90d_high.into(),
                        p.clv_low.into(),
                        p.clv_high.into(),
                        p.churn_risk.as_deref().into(),
                        p.next_order_date.as_deref().into(),
                    ]);
                },
            )
            .await?;
        tx.commit().await?;
        self.refresh_statistics(&["predictions"]).await;
        Ok(id)
    }

    /// The most recent run, if any.
    pub async fn latest_prediction_run(&self) -> Result<Option<PredictionRunRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM prediction_runs ORDER BY id DESC LIMIT 1"
        ))
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The current predictions' values as the predictions page summarises them, by customer key:
    /// four numbers per customer, read on the native connection (no ids, no summaries).
    pub async fn prediction_points(&self) -> Result<Vec<PredictionPoint>> {
        self.read_rows(
            "SELECT ckey, p_alive, expected_purchases_90d, clv FROM predictions ORDER BY ckey"
                .to_string(),
            Vec::new(),
            |r| {
                Ok(PredictionPoint {
                    key: r.int(0)?,
                    p_alive: r.real(1)?,
                    expected_purchases_90d: r.real(2)?,
                    clv: r.opt_real(3)?,
                })
            },
        )
        .await
    }

    /// Current predictions per churn-risk band (`None`: rows stored before the bands were
    /// kept), counted in the database.
    pub async fn churn_risk_counts(&self) -> Result<BTreeMap<Option<String>, u64>> {
        let rows = sqlx::query("SELECT churn_risk, COUNT(*) FROM predictions GROUP BY churn_risk")
            .fetch_all(self.pool())
            .await?;
        let mut out = BTreeMap::new();
        for r in rows {
            let band: Option<String> = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            out.insert(band, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    /// The current predictions with their summaries, by customer id.
    pub async fn stored_predictions(&self) -> Result<Vec<StoredPrediction>> {
        let sql = format!(
            "SELECT c.id AS customer_id, {PREDICTION_COLS} FROM predictions p \
             JOIN customers c ON c.key = p.ckey ORDER BY p.ckey"
        );
        let mut out = crate::collect_rows(sqlx::query(&sql), self.pool(), |r| {
            Ok(StoredPrediction::from_row(r)?)
        })
        .await?;
        // Sorted here: text collation differs between the backends.
        out = retain_core::by_id::sort_by_id(out, |r| r.customer_id.as_str());
        Ok(out)
    }

    /// The current predictions as the planner and the segmentation read them, by customer id;
    /// `clv` is NaN (read as "no value") when the run had no spend model.
    pub async fn predictions(&self) -> Result<Vec<Prediction>> {
        self.predictions_at(PredictionBound::Point).await
    }

    /// [`Store::predictions`] with the point estimates or the lower bounds of CLV and expected
    /// purchases (`bound`); P(alive) is always the point estimate.
    pub async fn predictions_at(&self, bound: PredictionBound) -> Result<Vec<Prediction>> {
        let sql = match bound {
            PredictionBound::Point => {
                "SELECT c.id, p.p_alive, p.expected_purchases_90d, p.clv \
                 FROM predictions p JOIN customers c ON c.key = p.ckey ORDER BY p.ckey"
            }
            PredictionBound::Low => {
                "SELECT c.id, p.p_alive, \
                 COALESCE(p.expected_purchases_90d_low, p.expected_purchases_90d), \
                 CASE WHEN p.clv IS NULL THEN NULL ELSE COALESCE(p.clv_low, p.clv) END \
                 FROM predictions p JOIN customers c ON c.key = p.ckey ORDER BY p.ckey"
            }
        };
        let out = self
            .read_rows(sql.to_string(), Vec::new(), |r| {
                Ok(Prediction {
                    customer_id: r.text(0)?,
                    p_alive: r.real(1)?,
                    expected_purchases_90d: r.real(2)?,
                    clv: r.opt_real(3)?.unwrap_or(f64::NAN),
                })
            })
            .await?;
        // Sorted here: text collation differs between the backends.
        Ok(retain_core::by_id::sort_by_id(out, |p: &Prediction| {
            p.customer_id.as_str()
        }))
    }
}

fn run_from_row(r: &AnyRow) -> Result<PredictionRunRecord> {
    let gg: (Option<f64>, Option<f64>, Option<f64>) =
        (r.try_get(12)?, r.try_get(13)?, r.try_get(14)?);
    Ok(PredictionRunRecord {
        id: r.try_get(0)?,
        as_of: r.try_get(1)?,
        period: r.try_get(2)?,
        horizon_months: r.try_get(3)?,
        discount: r.try_get(4)?,
        customers: r.try_get(5)?,
        bgnbd_r: r.try_get(6)?,
        bgnbd_alpha: r.try_get(7)?,
        bgnbd_a: r.try_get(8)?,
        bgnbd_b: r.try_get(9)?,
        bgnbd_log_likelihood: r.try_get(10)?,
        bgnbd_converged: r.try_get::<i64, _>(11)? != 0,
        gamma_gamma: match gg {
            (Some(p), Some(q), Some(v)) => Some((p, q, v)),
            _ => None,
        },
        gamma_gamma_reason: r.try_get(15)?,
        p_alive_mean: r.try_get(16)?,
        expected_purchases_90d_mean: r.try_get(17)?,
        clv_mean: r.try_get(18)?,
        created_at: r.try_get(19)?,
        model: r.try_get(20)?,
        params: json_column(r, 21)?,
        selection: json_column(r, 22)?,
        interval_level: r.try_get(23)?,
    })
}

/// A JSON text column; a document that does not parse is a [`StoreError::Corrupt`] naming it.
fn json_column(r: &AnyRow, i: usize) -> Result<Option<serde_json::Value>> {
    let text: Option<String> = r.try_get(i)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            StoreError::Corrupt(format!("prediction_runs column {i} is not JSON: {e}"))
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    fn run(gg: bool) -> NewPredictionRun {
        NewPredictionRun {
            as_of: "1997-10-01".into(),
            period: "week".into(),
            horizon_months: 12,
            discount: 0.01,
            customers: 2,
            bgnbd_r: 0.24,
            bgnbd_alpha: 4.4,
            bgnbd_a: 0.79,
            bgnbd_b: 2.4,
            bgnbd_log_likelihood: -9582.4,
            bgnbd_converged: true,
            gamma_gamma: gg.then_some((6.2, 3.7, 15.4)),
            gamma_gamma_reason: (!gg).then(|| "no repeat customer".to_string()),
            p_alive_mean: 0.8,
            expected_purchases_90d_mean: 0.3,
            clv_mean: gg.then_some(30.0),
            model: if gg { "pareto_nbd" } else { "bgnbd" }.into(),
            params: serde_json::json!({
                "params": {"pareto_nbd": {"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67}},
                "std_errors": {"pareto_nbd": {"r": 0.05, "alpha": 0.8, "s": 0.19, "beta": 6.6}},
            }),
            selection: gg.then(|| serde_json::json!({"best": "pareto_nbd", "candidates": []})),
            interval_level: 0.9,
        }
    }

    fn row(id: &str, clv: Option<f64>) -> StoredPrediction {
        StoredPrediction {
            customer_id: id.into(),
            frequency: 2.0,
            recency: 30.43,
            t: 38.86,
            monetary: 22.35,
            p_alive: 0.72,
            expected_purchases_90d: 0.45,
            clv,
            expected_purchases_90d_low: Some(0.41),
            expected_purchases_90d_high: Some(0.5),
            clv_low: clv.map(|v| v * 0.8),
            clv_high: clv.map(|v| v * 1.25),
            churn_risk: Some("low".into()),
            next_order_date: Some("1997-12-24".into()),
        }
    }

    async fn round_trip(store: &Store) {
        assert_eq!(store.latest_prediction_run().await.expect("read"), None);
        crate::test_support::customers(store, &["a", "b"]).await;
        let first = store
            .save_predictions(&run(true), &[row("b", Some(36.3)), row("a", Some(4.6))])
            .await
            .expect("save");
        let stored = store.stored_predictions().await.expect("read");
        assert_eq!(stored, vec![row("a", Some(4.6)), row("b", Some(36.3))]);
        // The page's reads: values by customer key (a before b: imported first), bands counted.
        let key = |id: &str| {
            let id = id.to_string();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT key FROM customers WHERE id = $1")
                    .bind(id)
                    .fetch_one(store.pool())
                    .await
                    .expect("key")
            }
        };
        let (ka, kb) = (key("a").await, key("b").await);
        let points = store.prediction_points().await.expect("points");
        let point = |key, clv| PredictionPoint {
            key,
            p_alive: 0.72,
            expected_purchases_90d: 0.45,
            clv,
        };
        assert_eq!(points, [point(ka, Some(4.6)), point(kb, Some(36.3))]);
        let bands = store.churn_risk_counts().await.expect("bands");
        assert_eq!(bands, BTreeMap::from([(Some("low".to_string()), 2)]));
        let latest = store
            .latest_prediction_run()
            .await
            .expect("read")
            .expect("run");
        assert_eq!(latest.id, first);
        assert_eq!(latest.gamma_gamma, Some((6.2, 3.7, 15.4)));
        assert!(latest.bgnbd_converged && latest.gamma_gamma_reason.is_none());
        assert_eq!(latest.model.as_deref(), Some("pareto_nbd"));
        assert_eq!(latest.params.as_ref(), Some(&run(true).params));
        assert_eq!(latest.selection, run(true).selection);
        assert_eq!(latest.interval_level, Some(0.9));

        // The cautious reading takes the lower bounds; P(alive) stays the point estimate.
        let low = store
            .predictions_at(PredictionBound::Low)
            .await
            .expect("read");
        let point = store.predictions().await.expect("read");
        assert_eq!(low.len(), 2);
        assert_eq!(
            (low[0].clv, low[0].expected_purchases_90d),
            (4.6 * 0.8, 0.41)
        );
        assert_eq!((point[0].clv, point[0].expected_purchases_90d), (4.6, 0.45));
        assert_eq!(low[1].p_alive, point[1].p_alive);

        // A second run replaces every prediction; without a spend model CLV is unknown.
        let many: Vec<StoredPrediction> = (0..7001)
            .map(|i| StoredPrediction {
                next_order_date: None,
                ..row(&format!("c{i:05}"), None)
            })
            .collect();
        let ids: Vec<&str> = many.iter().map(|p| p.customer_id.as_str()).collect();
        crate::test_support::customers(store, &ids).await;
        let second = store
            .save_predictions(&run(false), &many)
            .await
            .expect("save");
        assert!(second > first);
        let latest = store
            .latest_prediction_run()
            .await
            .expect("read")
            .expect("run");
        assert_eq!(
            (latest.id, latest.gamma_gamma, latest.clv_mean),
            (second, None, None)
        );
        assert_eq!(
            latest.gamma_gamma_reason.as_deref(),
            Some("no repeat customer")
        );
        assert_eq!(
            (latest.model.as_deref(), latest.selection),
            (Some("bgnbd"), None)
        );
        let stored = store.stored_predictions().await.expect("read");
        assert_eq!(stored.len(), 7001);
        assert_eq!(stored[7000], many[7000]);
        let points = store.prediction_points().await.expect("points");
        assert_eq!(points.len(), 7001);
        assert!(points.windows(2).all(|w| w[0].key < w[1].key));
        assert!(points.iter().all(|p| p.clv.is_none()));
        for bound in [PredictionBound::Point, PredictionBound::Low] {
            let current = store.predictions_at(bound).await.expect("read");
            assert_eq!(current.len(), 7001);
            assert!(current
                .iter()
                .all(|p| p.clv.is_nan() && p.customer_id.starts_with('c')));
        }
    }

    #[tokio::test]
    async fn sqlite_round_trip() {
        let (store, _dir) = test_support::sqlite().await;
        round_trip(&store).await;
    }

    #[tokio::test]
    async fn postgres_round_trip() {
        if let Some((store, _db)) = test_support::postgres().await {
            round_trip(&store).await;
        }
    }
}
