//! Segmentation runs (migration 0002): every `retain segment` run with its parameters and fitted
//! model, the profile of each of its segments and every customer's segment and RFM scores. Runs
//! are kept (not replaced), so two of them can be compared; the latest is the current one.
//!
//! The store does not know the clustering types: parameters, candidate-k scores and the model
//! are JSON text chosen by the caller.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use crate::keyed::KeyedTable;
use crate::rows::{Val, WriteTx};
use crate::{now, CustomerKeys, Result, Store, StoreError};

/// A run to record (the store assigns `id` and `created_at`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSegmentRun {
    /// `rfm`, `kmeans` or `gmm`.
    pub method: String,
    pub k: i64,
    /// The run's seed (a `u64` stored by its bits).
    pub seed: u64,
    /// `YYYY-MM-DD`.
    pub as_of: Option<String>,
    pub customers: i64,
    /// JSON.
    pub params: String,
    /// JSON array.
    pub k_scores: String,
    /// JSON.
    pub model: String,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentRunRecord {
    pub id: i64,
    pub method: String,
    pub k: i64,
    pub seed: u64,
    pub as_of: Option<String>,
    pub customers: i64,
    pub params: String,
    pub k_scores: String,
    pub model: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// The profile of one segment of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentProfileRow {
    pub cluster: i64,
    pub name: String,
    pub size: i64,
    pub share: f64,
    pub revenue: f64,
    pub revenue_share: f64,
    pub recency_mean: f64,
    pub recency_median: f64,
    pub frequency_mean: f64,
    pub frequency_median: f64,
    pub monetary_mean: f64,
    pub monetary_median: f64,
    pub clv_mean: Option<f64>,
    pub p_alive_mean: Option<f64>,
}

/// Where one customer landed in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SegmentAssignmentRow {
    pub customer_id: String,
    pub cluster: i64,
    pub segment: String,
    pub r: i64,
    pub f: i64,
    pub m: i64,
}

/// Where one customer landed in a run, for [`Store::save_segment_run_keyed`] (the customer is
/// given by position, the segment name borrowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedAssignment<'a> {
    pub cluster: i64,
    pub segment: &'a str,
    pub r: i64,
    pub f: i64,
    pub m: i64,
}

/// An assignment with the customer's email, for exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SegmentExportRow {
    pub customer_id: String,
    /// From the customers file, else from the customer's orders.
    pub email: Option<String>,
    pub segment: String,
    pub r: i64,
    pub f: i64,
    pub m: i64,
}

const RUN_COLS: &str = "id, method, k, seed, as_of, customers, params, k_scores, model, created_at";
const PROFILE_COLS: &str = "cluster, name, size, share, revenue, revenue_share, recency_mean, \
    recency_median, frequency_mean, frequency_median, monetary_mean, monetary_median, clv_mean, \
    p_alive_mean";

/// Assignments, written by customer id and keyed by the customer key.
const ASSIGNMENTS: KeyedTable = KeyedTable {
    table: "segment_assignments",
    cols: &[
        ("run_id", "BIGINT"),
        ("cluster", "BIGINT"),
        ("segment", "TEXT"),
        ("r", "BIGINT"),
        ("f", "BIGINT"),
        ("m", "BIGINT"),
    ],
};

impl Store {
    /// Stores a run with its profiles and assignments (customers by external id); returns its
    /// id. The run is refused whole when an id names no stored customer or comes twice.
    pub async fn save_segment_run(
        &self,
        run: &NewSegmentRun,
        profiles: &[SegmentProfileRow],
        assignments: &[SegmentAssignmentRow],
    ) -> Result<i64> {
        let mut tx = self.write_tx().await?;
        let id = insert_run(&mut tx, run, profiles).await?;
        ASSIGNMENTS
            .insert(
                &mut tx,
                assignments.len(),
                |i| assignments[i].customer_id.as_str(),
                |i, out| {
                    let a = &assignments[i];
                    out.extend([
                        Val::from(id),
                        a.cluster.into(),
                        a.segment.as_str().into(),
                        a.r.into(),
                        a.f.into(),
                        a.m.into(),
                    ]);
                },
            )
            .await?;
        tx.commit().await?;
        self.refresh_statistics(&["segment_assignments"]).await;
        Ok(id)
    }

    /// [`Store::save_segment_run`] for customers read with their keys
    /// ([`Store::customer_features_keyed`]): `row(i)` is the customer `keys` holds at `i`. No
    /// lookup by id; the rows go in key order, the order the table takes them fastest.
    pub async fn save_segment_run_keyed<'a>(
        &self,
        run: &NewSegmentRun,
        profiles: &[SegmentProfileRow],
        keys: &CustomerKeys,
        row: impl Fn(usize) -> KeyedAssignment<'a>,
    ) -> Result<i64> {
        let order = keys.key_order().map_err(|i| {
            StoreError::Conflict(format!(
                "customer key {} appears twice in one segmentation run",
                keys.0[i]
            ))
        })?;
        let mut tx = self.write_tx().await?;
        let id = insert_run(&mut tx, run, profiles).await?;
        tx.insert_many(
            "INSERT INTO segment_assignments (run_id, ckey, cluster, segment, r, f, m)",
            7,
            order.len(),
            |i, out| {
                let at = order[i];
                let a = row(at);
                out.extend([
                    Val::from(id),
                    keys.0[at].into(),
                    a.cluster.into(),
                    a.segment.into(),
                    a.r.into(),
                    a.f.into(),
                    a.m.into(),
                ]);
            },
        )
        .await?;
        tx.commit().await?;
        self.refresh_statistics(&["segment_assignments"]).await;
        Ok(id)
    }

    /// Every run, newest first.
    pub async fn segment_runs(&self) -> Result<Vec<SegmentRunRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM segment_runs ORDER BY id DESC"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// One run.
    pub async fn segment_run(&self, id: i64) -> Result<Option<SegmentRunRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM segment_runs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The most recent run: the customers' current segments.
    pub async fn latest_segment_run(&self) -> Result<Option<SegmentRunRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM segment_runs ORDER BY id DESC LIMIT 1"
        ))
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The profiles of a run, in cluster order.
    pub async fn segment_profiles(&self, run_id: i64) -> Result<Vec<SegmentProfileRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {PROFILE_COLS} FROM segment_profiles WHERE run_id = $1 ORDER BY cluster"
        ))
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SegmentProfileRow {
                    cluster: r.try_get(0)?,
                    name: r.try_get(1)?,
                    size: r.try_get(2)?,
                    share: r.try_get(3)?,
                    revenue: r.try_get(4)?,
                    revenue_share: r.try_get(5)?,
                    recency_mean: r.try_get(6)?,
                    recency_median: r.try_get(7)?,
                    frequency_mean: r.try_get(8)?,
                    frequency_median: r.try_get(9)?,
                    monetary_mean: r.try_get(10)?,
                    monetary_median: r.try_get(11)?,
                    clv_mean: r.try_get(12)?,
                    p_alive_mean: r.try_get(13)?,
                })
            })
            .collect()
    }

    /// The assignments of a run, by customer id.
    pub async fn segment_assignments(&self, run_id: i64) -> Result<Vec<SegmentAssignmentRow>> {
        let sql = "SELECT c.id AS customer_id, a.cluster, a.segment, a.r, a.f, a.m \
             FROM segment_assignments a JOIN customers c ON c.key = a.ckey WHERE a.run_id = $1 \
             ORDER BY a.ckey";
        let mut out = crate::collect_rows(sqlx::query(sql).bind(run_id), self.pool(), |r| {
            Ok(SegmentAssignmentRow::from_row(r)?)
        })
        .await?;
        // Sorted here: text collation differs between the backends.
        out = retain_core::by_id::sort_by_id(out, |r| r.customer_id.as_str());
        Ok(out)
    }

    /// The assignments of a run with each customer's email (from the customers file, else the
    /// first address their orders carried: imports keep it on the customer), by customer id.
    pub async fn segment_export(&self, run_id: i64) -> Result<Vec<SegmentExportRow>> {
        let sql = "SELECT c.id AS customer_id, c.email, a.segment, a.r, a.f, a.m \
             FROM segment_assignments a JOIN customers c ON c.key = a.ckey \
             WHERE a.run_id = $1 ORDER BY a.ckey";
        let mut out = crate::collect_rows(sqlx::query(sql).bind(run_id), self.pool(), |r| {
            Ok(SegmentExportRow::from_row(r)?)
        })
        .await?;
        // Sorted here: text collation differs between the backends.
        out = retain_core::by_id::sort_by_id(out, |r| r.customer_id.as_str());
        Ok(out)
    }
}

/// Inserts a run's row and its profiles; returns the run's id.
async fn insert_run(
    tx: &mut WriteTx<'_>,
    run: &NewSegmentRun,
    profiles: &[SegmentProfileRow],
) -> Result<i64> {
    let seed = run.seed as i64;
    let id = tx
        .fetch_int(
            "INSERT INTO segment_runs (method, k, seed, as_of, customers, params, k_scores, \
             model, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            &[
                run.method.as_str().into(),
                run.k.into(),
                seed.into(),
                run.as_of.as_deref().into(),
                run.customers.into(),
                run.params.as_str().into(),
                run.k_scores.as_str().into(),
                run.model.as_str().into(),
                now().into(),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("segment run inserted without an id".into()))?;
    tx.insert_many(
        &format!("INSERT INTO segment_profiles (run_id, {PROFILE_COLS})"),
        15,
        profiles.len(),
        |i, out| {
            let p = &profiles[i];
            out.extend([
                Val::from(id),
                p.cluster.into(),
                p.name.as_str().into(),
                p.size.into(),
                p.share.into(),
                p.revenue.into(),
                p.revenue_share.into(),
                p.recency_mean.into(),
                p.recency_median.into(),
                p.frequency_mean.into(),
                p.frequency_median.into(),
                p.monetary_mean.into(),
                p.monetary_median.into(),
                p.clv_mean.into(),
                p.p_alive_mean.into(),
            ]);
        },
    )
    .await?;
    Ok(id)
}

fn run_from_row(r: &AnyRow) -> Result<SegmentRunRecord> {
    let seed: i64 = r.try_get(3)?;
    let k: i64 = r.try_get(2)?;
    if k < 0 {
        return Err(StoreError::Corrupt(format!("segment run with k = {k}")));
    }
    Ok(SegmentRunRecord {
        id: r.try_get(0)?,
        method: r.try_get(1)?,
        k,
        seed: seed as u64,
        as_of: r.try_get(4)?,
        customers: r.try_get(5)?,
        params: r.try_get(6)?,
        k_scores: r.try_get(7)?,
        model: r.try_get(8)?,
        created_at: r.try_get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    fn new_run(method: &str, seed: u64) -> NewSegmentRun {
        NewSegmentRun {
            method: method.into(),
            k: 2,
            seed,
            as_of: Some("1998-07-01".into()),
            customers: 3,
            params: r#"{"method":"kmeans"}"#.into(),
            k_scores: r#"[{"k":2,"silhouette":0.5}]"#.into(),
            model: r#"{"kind":"kmeans"}"#.into(),
        }
    }

    fn profile(cluster: i64, name: &str, size: i64, clv: Option<f64>) -> SegmentProfileRow {
        SegmentProfileRow {
            cluster,
            name: name.into(),
            size,
            share: size as f64 / 3.0,
            revenue: 10.0 * size as f64,
            revenue_share: size as f64 / 3.0,
            recency_mean: 12.5,
            recency_median: 12.0,
            frequency_mean: 2.0,
            frequency_median: 2.0,
            monetary_mean: 10.0,
            monetary_median: 10.0,
            clv_mean: clv,
            p_alive_mean: clv.map(|_| 0.5),
        }
    }

    fn assignment(id: &str, cluster: i64, segment: &str) -> SegmentAssignmentRow {
        SegmentAssignmentRow {
            customer_id: id.into(),
            cluster,
            segment: segment.into(),
            r: 5,
            f: 4,
            m: 3,
        }
    }

    async fn round_trip(store: &Store) {
        assert_eq!(store.latest_segment_run().await.expect("read"), None);
        crate::test_support::customers(store, &["a", "b", "c"]).await;
        let profiles = [
            profile(0, "Champions-like", 2, Some(40.0)),
            profile(1, "At Risk-like", 1, None),
        ];
        let assignments = [
            assignment("b", 0, "Champions-like"),
            assignment("a", 0, "Champions-like"),
            assignment("c", 1, "At Risk-like"),
        ];
        let first = store
            .save_segment_run(&new_run("kmeans", u64::MAX - 1), &profiles, &assignments)
            .await
            .expect("save");
        let run = store.segment_run(first).await.expect("read").expect("run");
        assert_eq!(run.seed, u64::MAX - 1, "a u64 seed survives the round trip");
        assert_eq!(
            (run.method.as_str(), run.k, run.customers),
            ("kmeans", 2, 3)
        );
        assert_eq!(run.as_of.as_deref(), Some("1998-07-01"));
        assert_eq!(
            store.segment_profiles(first).await.expect("read"),
            profiles.to_vec()
        );
        let stored = store.segment_assignments(first).await.expect("read");
        assert_eq!(
            stored
                .iter()
                .map(|a| a.customer_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(stored[2], assignments[2]);

        // Many customers (several batches); runs are kept, newest first.
        let many: Vec<SegmentAssignmentRow> = (0..9001)
            .map(|i| assignment(&format!("c{i:05}"), i % 3, "Hibernating"))
            .collect();
        let ids: Vec<&str> = many.iter().map(|a| a.customer_id.as_str()).collect();
        crate::test_support::customers(store, &ids).await;
        // A run naming a customer the store does not hold is refused whole.
        let mut unknown = many.clone();
        unknown.push(assignment("nobody", 0, "Hibernating"));
        match store
            .save_segment_run(&new_run("rfm", 7), &[], &unknown)
            .await
        {
            Err(StoreError::UnknownCustomer(id)) => assert_eq!(id, "nobody"),
            other => panic!("expected an unknown customer, got {other:?}"),
        }
        assert_eq!(store.segment_runs().await.expect("runs").len(), 1);
        // Also when the rows come in no particular order and the unknown id sorts among known ones.
        let mut shuffled = many.clone();
        shuffled.reverse();
        shuffled.insert(4000, assignment("c00004x", 0, "Hibernating"));
        match store
            .save_segment_run(&new_run("rfm", 7), &[], &shuffled)
            .await
        {
            Err(StoreError::UnknownCustomer(id)) => assert_eq!(id, "c00004x"),
            other => panic!("expected an unknown customer, got {other:?}"),
        }
        // So is one naming a customer twice (a key conflict), and nothing of it is kept.
        let mut twice = many.clone();
        twice.push(assignment("c00007", 1, "Hibernating"));
        assert!(store
            .save_segment_run(&new_run("rfm", 7), &[], &twice)
            .await
            .is_err());
        assert_eq!(store.segment_runs().await.expect("runs").len(), 1);
        let second = store
            .save_segment_run(
                &new_run("rfm", 7),
                &[profile(0, "Hibernating", 9001, None)],
                &many,
            )
            .await
            .expect("save");
        assert!(second > first);
        assert_eq!(store.segment_assignments(second).await.expect("read"), many);
        let runs = store.segment_runs().await.expect("read");
        assert_eq!(
            runs.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![second, first]
        );
        assert_eq!(
            store
                .latest_segment_run()
                .await
                .expect("read")
                .map(|r| r.id),
            Some(second)
        );
        assert_eq!(store.segment_run(second + 100).await.expect("read"), None);
        assert!(store
            .segment_assignments(second + 100)
            .await
            .expect("read")
            .is_empty());

        // Exports carry emails from the customers table when known.
        sqlx::query("UPDATE customers SET email = 'a@example.com' WHERE id = 'a'")
            .execute(store.pool())
            .await
            .expect("insert customer");
        let export = store.segment_export(first).await.expect("export");
        assert_eq!(export.len(), 3);
        assert_eq!(export[0].email.as_deref(), Some("a@example.com"));
        assert_eq!(export[1].email, None);
        // ... else the address their orders carried.
        let order = |c: &str, id: &str, email: &str| retain_core::Order {
            order_id: id.into(),
            customer_id: c.into(),
            ordered_at: chrono::DateTime::from_timestamp(0, 0)
                .expect("t")
                .naive_utc(),
            amount: 5.0,
            items: 1,
            is_return: false,
            currency: None,
            email: Some(email.into()),
            product: None,
        };
        store
            .import_orders(
                "o.csv",
                &[
                    order("b", "o1", "b@example.com"),
                    order("a", "o2", "other@example.com"),
                ],
                (2, 2, 0),
                &|_| {},
            )
            .await
            .expect("import orders");
        let export = store.segment_export(first).await.expect("export");
        assert_eq!(
            export[0].email.as_deref(),
            Some("a@example.com"),
            "the customers file wins"
        );
        assert_eq!(export[1].email.as_deref(), Some("b@example.com"));
        assert_eq!(export[2].email, None);
        assert_eq!(
            (
                export[2].segment.as_str(),
                export[2].r,
                export[2].f,
                export[2].m
            ),
            ("At Risk-like", 5, 4, 3)
        );
    }

    /// Runs written by key: the keys the features came with put each row on its customer,
    /// whatever order the features are in; a key listed twice refuses the run whole.
    async fn keyed_round_trip(store: &Store) {
        let orders: Vec<retain_core::Order> = ["c3", "a1", "b2", "a1"]
            .iter()
            .enumerate()
            .map(|(i, c)| test_support::order(c, &format!("2024-01-0{}", i + 1), 10.0))
            .collect();
        store
            .import_orders("orders.csv", &orders, (0, 0, 0), &|_| {})
            .await
            .expect("orders");
        let (_, features, keys) = store
            .customer_features_keyed(None)
            .await
            .expect("features")
            .expect("orders");
        let ids: Vec<&str> = features.iter().map(|f| f.customer_id.as_str()).collect();
        assert_eq!(ids, ["a1", "b2", "c3"], "features come by id");
        assert_eq!(keys.len(), 3);
        // Each customer's segment named after them, their purchase count as r.
        let names: Vec<String> = ids.iter().map(|id| format!("seg-{id}")).collect();
        let row = |i: usize| KeyedAssignment {
            cluster: i as i64,
            segment: names[i].as_str(),
            r: features[i].frequency as i64,
            f: 1,
            m: 1,
        };
        let run = store
            .save_segment_run_keyed(&new_run("rfm", 1), &[], &keys, row)
            .await
            .expect("save");
        let stored = store.segment_assignments(run).await.expect("read");
        let got: Vec<(&str, &str, i64, i64)> = stored
            .iter()
            .map(|a| (a.customer_id.as_str(), a.segment.as_str(), a.cluster, a.r))
            .collect();
        assert_eq!(
            got,
            [
                ("a1", "seg-a1", 0, 2),
                ("b2", "seg-b2", 1, 1),
                ("c3", "seg-c3", 2, 1)
            ]
        );
        let twice = CustomerKeys(vec![keys.0[0], keys.0[1], keys.0[0]]);
        match store
            .save_segment_run_keyed(&new_run("rfm", 2), &[], &twice, row)
            .await
        {
            Err(StoreError::Conflict(why)) => assert!(why.contains("twice"), "{why}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(store.segment_runs().await.expect("runs").len(), 1);
    }

    #[tokio::test]
    async fn sqlite_keyed_round_trip() {
        let (store, _dir) = test_support::sqlite().await;
        keyed_round_trip(&store).await;
    }

    #[tokio::test]
    async fn postgres_keyed_round_trip() {
        if let Some((store, _db)) = test_support::postgres().await {
            keyed_round_trip(&store).await;
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
