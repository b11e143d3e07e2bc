//! CLV predictions (migration 0003): every `retain predict` run with its fitted parameters and
//! means, and the current per-customer predictions, which each run replaces as a whole in one
//! transaction.

use retain_core::Prediction;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{now, Result, Store};

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
}

/// One customer's stored prediction with the summary it was made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
}

const RUN_COLS: &str = "id, as_of, period, horizon_months, discount, customers, bgnbd_r, \
    bgnbd_alpha, bgnbd_a, bgnbd_b, bgnbd_log_likelihood, bgnbd_converged, gg_p, gg_q, gg_v, \
    gg_reason, p_alive_mean, expected_purchases_90d_mean, clv_mean, created_at";

const PREDICTION_COLS: &str = "customer_id, run_id, frequency, recency, t, monetary, p_alive, \
    expected_purchases_90d, clv";

/// Rows per multi-row INSERT (9 columns each stays under SQLite's 32,766 parameters).
const BATCH: usize = 3000;

impl Store {
    /// Records a run and replaces the current predictions with `rows`, in one transaction.
    /// Returns the run id.
    pub async fn save_predictions(
        &self,
        run: &NewPredictionRun,
        rows: &[StoredPrediction],
    ) -> Result<i64> {
        let mut tx = self.pool().begin().await?;
        let (gg_p, gg_q, gg_v) = match run.gamma_gamma {
            Some((p, q, v)) => (Some(p), Some(q), Some(v)),
            None => (None, None, None),
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO prediction_runs (as_of, period, horizon_months, discount, customers, \
             bgnbd_r, bgnbd_alpha, bgnbd_a, bgnbd_b, bgnbd_log_likelihood, bgnbd_converged, \
             gg_p, gg_q, gg_v, gg_reason, p_alive_mean, expected_purchases_90d_mean, clv_mean, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, $17, $18, $19) RETURNING id",
        )
        .bind(run.as_of.as_str())
        .bind(run.period.as_str())
        .bind(run.horizon_months)
        .bind(run.discount)
        .bind(run.customers)
        .bind(run.bgnbd_r)
        .bind(run.bgnbd_alpha)
        .bind(run.bgnbd_a)
        .bind(run.bgnbd_b)
        .bind(run.bgnbd_log_likelihood)
        .bind(i64::from(run.bgnbd_converged))
        .bind(gg_p)
        .bind(gg_q)
        .bind(gg_v)
        .bind(run.gamma_gamma_reason.as_deref())
        .bind(run.p_alive_mean)
        .bind(run.expected_purchases_90d_mean)
        .bind(run.clv_mean)
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM predictions")
            .execute(&mut *tx)
            .await?;
        let full = insert_sql(&self.bulk_values(BATCH, 9));
        for chunk in rows.chunks(BATCH) {
            let sql = if chunk.len() == BATCH {
                full.clone()
            } else {
                insert_sql(&self.bulk_values(chunk.len(), 9))
            };
            let mut q = sqlx::query(&sql);
            for p in chunk {
                q = q
                    .bind(p.customer_id.as_str())
                    .bind(id)
                    .bind(p.frequency)
                    .bind(p.recency)
                    .bind(p.t)
                    .bind(p.monetary)
                    .bind(p.p_alive)
                    .bind(p.expected_purchases_90d)
                    .bind(p.clv);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
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

    /// The current predictions with their summaries, by customer id.
    pub async fn stored_predictions(&self) -> Result<Vec<StoredPrediction>> {
        let rows = sqlx::query(&format!(
            "SELECT {PREDICTION_COLS} FROM predictions ORDER BY customer_id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredPrediction {
                    customer_id: r.try_get(0)?,
                    frequency: r.try_get(2)?,
                    recency: r.try_get(3)?,
                    t: r.try_get(4)?,
                    monetary: r.try_get(5)?,
                    p_alive: r.try_get(6)?,
                    expected_purchases_90d: r.try_get(7)?,
                    clv: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// The current predictions as the planner and the segmentation read them, by customer id;
    /// `clv` is NaN (read as "no value") when the run had no spend model.
    pub async fn predictions(&self) -> Result<Vec<Prediction>> {
        let rows = sqlx::query(
            "SELECT customer_id, p_alive, expected_purchases_90d, clv FROM predictions \
             ORDER BY customer_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Prediction {
                    customer_id: r.try_get(0)?,
                    p_alive: r.try_get(1)?,
                    expected_purchases_90d: r.try_get(2)?,
                    clv: r.try_get::<Option<f64>, _>(3)?.unwrap_or(f64::NAN),
                })
            })
            .collect()
    }
}

fn insert_sql(values: &str) -> String {
    format!("INSERT INTO predictions ({PREDICTION_COLS}) VALUES {values}")
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
    })
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
        }
    }

    async fn round_trip(store: &Store) {
        assert_eq!(store.latest_prediction_run().await.expect("read"), None);
        let first = store
            .save_predictions(&run(true), &[row("b", Some(36.3)), row("a", Some(4.6))])
            .await
            .expect("save");
        let stored = store.stored_predictions().await.expect("read");
        assert_eq!(stored, vec![row("a", Some(4.6)), row("b", Some(36.3))]);
        let latest = store
            .latest_prediction_run()
            .await
            .expect("read")
            .expect("run");
        assert_eq!(latest.id, first);
        assert_eq!(latest.gamma_gamma, Some((6.2, 3.7, 15.4)));
        assert!(latest.bgnbd_converged && latest.gamma_gamma_reason.is_none());

        // A second run replaces every prediction; without a spend model CLV is unknown.
        let many: Vec<StoredPrediction> =
            (0..7001).map(|i| row(&format!("c{i:05}"), None)).collect();
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
        let current = store.predictions().await.expect("read");
        assert_eq!(current.len(), 7001);
        assert!(current
            .iter()
            .all(|p| p.clv.is_nan() && p.customer_id.starts_with('c')));
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
