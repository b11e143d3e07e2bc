//! Schema migrations: numbered SQL files per backend, embedded in the binary and applied in
//! order, each in its own transaction, recorded in `retain_migrations`.

use sqlx::Row;

use crate::{now, Backend, Result, Store, StoreError};

/// (version, name, SQLite SQL, PostgreSQL SQL). Append new migrations; never edit applied ones.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "core",
        include_str!("../migrations/sqlite/0001_core.sql"),
        include_str!("../migrations/postgres/0001_core.sql"),
    ),
    (
        2,
        "segments",
        include_str!("../migrations/sqlite/0002_segments.sql"),
        include_str!("../migrations/postgres/0002_segments.sql"),
    ),
    (
        3,
        "predictions",
        include_str!("../migrations/sqlite/0003_predictions.sql"),
        include_str!("../migrations/postgres/0003_predictions.sql"),
    ),
    (
        4,
        "plans",
        include_str!("../migrations/sqlite/0004_plans.sql"),
        include_str!("../migrations/postgres/0004_plans.sql"),
    ),
    (
        5,
        "sends",
        include_str!("../migrations/sqlite/0005_sends.sql"),
        include_str!("../migrations/postgres/0005_sends.sql"),
    ),
    (
        6,
        "events",
        include_str!("../migrations/sqlite/0006_events.sql"),
        include_str!("../migrations/postgres/0006_events.sql"),
    ),
    (
        7,
        "keys",
        include_str!("../migrations/sqlite/0007_keys.sql"),
        include_str!("../migrations/postgres/0007_keys.sql"),
    ),
    (
        8,
        "erasures",
        include_str!("../migrations/sqlite/0008_erasures.sql"),
        include_str!("../migrations/postgres/0008_erasures.sql"),
    ),
    (
        9,
        "web_sessions",
        include_str!("../migrations/sqlite/0009_web_sessions.sql"),
        include_str!("../migrations/postgres/0009_web_sessions.sql"),
    ),
    (
        10,
        "prediction_intervals",
        include_str!("../migrations/sqlite/0010_prediction_intervals.sql"),
        include_str!("../migrations/postgres/0010_prediction_intervals.sql"),
    ),
    (
        11,
        "deliverability",
        include_str!("../migrations/sqlite/0011_deliverability.sql"),
        include_str!("../migrations/postgres/0011_deliverability.sql"),
    ),
    (
        12,
        "member_keys",
        include_str!("../migrations/sqlite/0012_member_keys.sql"),
        include_str!("../migrations/postgres/0012_member_keys.sql"),
    ),
    (
        14,
        "uplift_models",
        include_str!("../migrations/sqlite/0014_uplift_models.sql"),
        include_str!("../migrations/postgres/0014_uplift_models.sql"),
    ),
    (
        15,
        "sequences",
        include_str!("../migrations/sqlite/0015_sequences.sql"),
        include_str!("../migrations/postgres/0015_sequences.sql"),
    ),
    (
        16,
        "fleet",
        include_str!("../migrations/sqlite/0016_fleet.sql"),
        include_str!("../migrations/postgres/0016_fleet.sql"),
    ),
    (
        17,
        "products",
        include_str!("../migrations/sqlite/0017_products.sql"),
        include_str!("../migrations/postgres/0017_products.sql"),
    ),
    (
        18,
        "assignment_index",
        include_str!("../migrations/sqlite/0018_assignment_index.sql"),
        include_str!("../migrations/postgres/0018_assignment_index.sql"),
    ),
];

/// Any number of processes may open a fresh database at once: migrations run in one transaction
/// that holds the database's write lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory
/// lock), so the first applies them and the others find them applied.
const PG_MIGRATION_LOCK: i64 = 0x7265_7461_696e;

/// One known migration and when it was applied to this database (`None`: pending).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStatus {
    pub version: i64,
    pub name: String,
    pub applied_at: Option<i64>,
}

impl Store {
    /// Every migration this build knows, by version, with when it was applied here; plus any
    /// applied version this build does not know (a newer build migrated the database).
    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>> {
        let exists: i64 = match self.backend() {
            Backend::Sqlite => sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'retain_migrations'",
            ),
            Backend::Postgres => sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'retain_migrations'",
            ),
        }
        .fetch_one(self.pool())
        .await?;
        let mut applied = std::collections::BTreeMap::new();
        if exists > 0 {
            for r in sqlx::query("SELECT version, name, applied_at FROM retain_migrations")
                .fetch_all(self.pool())
                .await?
            {
                let v: i64 = r.try_get(0)?;
                applied.insert(v, (r.try_get::<String, _>(1)?, r.try_get::<i64, _>(2)?));
            }
        }
        let mut out: Vec<MigrationStatus> = MIGRATIONS
            .iter()
            .map(|(v, name, _, _)| MigrationStatus {
                version: *v,
                name: name.to_string(),
                applied_at: applied.get(v).map(|(_, at)| *at),
            })
            .collect();
        for (v, (name, at)) in &applied {
            if !out.iter().any(|m| m.version == *v) {
                out.push(MigrationStatus {
                    version: *v,
                    name: name.clone(),
                    applied_at: Some(*at),
                });
            }
        }
        out.sort_by_key(|m| m.version);
        Ok(out)
    }
}

pub(crate) async fn run(store: &Store) -> Result<()> {
    let mut conn = store.pool().acquire().await?;
    match store.backend() {
        Backend::Sqlite => {
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        }
        Backend::Postgres => {
            sqlx::query("BEGIN").execute(&mut *conn).await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PG_MIGRATION_LOCK)
                .fetch_optional(&mut *conn)
                .await?;
        }
    }
    let result = apply(store, &mut conn).await;
    match result {
        Ok(()) => {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            Ok(())
        }
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}

async fn apply(store: &Store, conn: &mut sqlx::AnyConnection) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS retain_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM retain_migrations")
        .fetch_all(&mut *conn)
        .await?;
    for (version, name, sqlite, postgres) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let sql = match store.backend() {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        };
        let wrap = |source| StoreError::Migration {
            version: *version,
            name: name.to_string(),
            source,
        };
        sqlx::raw_sql(sql).execute(&mut *conn).await.map_err(wrap)?;
        if *version == 7 {
            upgrade_orders(store, conn).await.map_err(|e| match e {
                StoreError::Sql(source) => wrap(source),
                other => other,
            })?;
        }
        sqlx::query(
            "INSERT INTO retain_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(*version)
        .bind(*name)
        .bind(now())
        .execute(&mut *conn)
        .await
        .map_err(wrap)?;
    }
    Ok(())
}

/// Version 7: copies the text-keyed orders into the integer-keyed table (customers named only by
/// orders are created), amounts to minor units, then computes every customer's aggregate.
async fn upgrade_orders(store: &Store, conn: &mut sqlx::AnyConnection) -> Result<()> {
    use retain_core::import::orders::stored_order_key;
    sqlx::query(
        "INSERT INTO customers (id, email, email_valid, updated_at) \
         SELECT DISTINCT o.customer_id, NULL, 0, 0 FROM orders_v6 o \
         WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id)",
    )
    .execute(&mut *conn)
    .await?;
    let rows = sqlx::query(
        "SELECT c.key, o.order_id, o.ordered_at, o.amount, o.items, o.is_return, o.currency, o.product, o.import_id \
         FROM orders_v6 o JOIN customers c ON c.id = o.customer_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    const COLS: usize = 11;
    for chunk in rows.chunks(2000) {
        let sql = format!(
            "INSERT INTO orders (ckey, okey, order_ref, day, at, amount, items, cancelled, currency, product, import_id) VALUES {} \
             ON CONFLICT (ckey, okey) DO NOTHING",
            store.bulk_values(chunk.len(), COLS)
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            let order_id: String = r.try_get(1)?;
            let at: i64 = r.try_get(2)?;
            let amount: f64 = r.try_get(3)?;
            q = q
                .bind(r.try_get::<i64, _>(0)?)
                .bind(stored_order_key(&order_id))
                .bind(order_id)
                .bind(at.div_euclid(86_400))
                .bind(at)
                .bind(retain_core::to_minor(amount).unwrap_or(0))
                .bind(r.try_get::<i64, _>(4)?)
                .bind(r.try_get::<i64, _>(5)?)
                .bind(r.try_get::<Option<String>, _>(6)?)
                .bind(r.try_get::<Option<String>, _>(7)?)
                .bind(r.try_get::<i64, _>(8)?);
        }
        q.execute(&mut *conn).await?;
    }
    drop(rows);
    sqlx::query("DROP TABLE orders_v6")
        .execute(&mut *conn)
        .await?;
    crate::stats::recompute_all(store, conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::test_support;

    #[tokio::test]
    async fn migrations_are_idempotent() {
        let (store, dir) = test_support::sqlite().await;
        store.close().await;
        let again = crate::Store::open_sqlite(&dir.path().join("t.db"))
            .await
            .expect("reopen");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM retain_migrations")
            .fetch_one(again.pool())
            .await
            .expect("count");
        assert_eq!(n as usize, super::MIGRATIONS.len());
    }
}

#[cfg(test)]
mod upgrade_tests {
    //! A workspace made by the previous schema (version 6: text keys, float amounts, synthetic
    //! order ids) upgrades in place, losing nothing, and a re-import of its file afterwards finds
    //! the same orders.
    use std::io::Write;

    use sqlx::Executor;

    use crate::Store;

    async fn old_workspace(path: &std::path::Path) {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("open");
        pool.execute(
            "CREATE TABLE retain_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await
        .expect("table");
        for (version, name, sqlite, _) in &super::MIGRATIONS[..6] {
            sqlx::raw_sql(sqlite)
                .execute(&pool)
                .await
                .expect("old schema");
            sqlx::query("INSERT INTO retain_migrations VALUES ($1, $2, 0)")
                .bind(*version)
                .bind(*name)
                .execute(&pool)
                .await
                .expect("record");
        }
        pool.execute(
            "INSERT INTO imports VALUES (1, 'orders', 'old.csv', 4, 4, 0, 0);
             INSERT INTO customers (id, email, email_valid, subscribed, attributes, updated_at)
                 VALUES ('c1', 'one@example.com', 1, 1, '{\"tier\":\"gold\"}', 0);
             INSERT INTO orders VALUES ('c1', '20240101T000000/12.5', 1704067200, 12.5, 1, 0, NULL, NULL, NULL, 1);
             INSERT INTO orders VALUES ('c1', '20240101T000000/12.5/1', 1704067200, 12.5, 1, 0, NULL, NULL, NULL, 1);
             INSERT INTO orders VALUES ('c1', '20240201T000000/-5', 1706745600, -5.0, 1, 1, NULL, NULL, NULL, 1);
             INSERT INTO orders VALUES ('c2', '20240115T000000/7.25', 1705276800, 7.25, 1, 0, NULL, 'two@example.com', NULL, 1);
             INSERT INTO suppressions VALUES ('x@example.com', 'manual', 'test', 0);
             INSERT INTO prediction_runs VALUES (1, '2024-02-01', 'week', 12, 0.01, 2, 0.24, 4.4,
                 0.79, 2.4, -10.5, 1, 6.2, 3.7, 15.4, NULL, 0.8, 0.3, 30.0, 0);
             INSERT INTO predictions VALUES ('c1', 1, 1.0, 4.0, 4.5, 12.5, 0.8, 0.3, 30.0);
             INSERT INTO segment_runs VALUES (1, 'rfm', 10, 42, '2024-02-02', 2, '{}', '[]', '{}', 0);
             INSERT INTO segment_assignments VALUES (1, 'c1', 0, 'Champions', 5, 5, 5);
             INSERT INTO segment_assignments VALUES (1, 'c2', 9, 'Hibernating', 1, 1, 2);
             INSERT INTO plans VALUES ('p1', 1, 'approved', 100.0, 1.0, 2.0, 0.5, 7, '2024-02-02',
                 NULL, '{}', 0, 0);
             INSERT INTO plan_campaigns VALUES ('p1-winback-1', 'p1', 0, 'winback', 'winback',
                 '[\"Hibernating\"]', 2.0, 1.0, 1, 1, '{}');
             INSERT INTO plan_members VALUES ('p1-winback-1', 'c2', 0);
             INSERT INTO plan_members VALUES ('p1-winback-1', 'c1', 1);",
        )
        .await
        .expect("old data");
        pool.close().await;
    }

    #[tokio::test]
    async fn a_version_6_workspace_upgrades_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("old.db");
        old_workspace(&db).await;
        let store = Store::open_sqlite(&db).await.expect("upgrade");
        // Nothing lost: every order, customer (c2 was only named by an order), attribute and
        // suppression.
        let (orders, revenue, customers) = store.order_totals().await.expect("totals");
        assert_eq!(orders, 4);
        assert!(
            (revenue - (12.5 + 12.5 - 5.0 + 7.25)).abs() < 1e-9,
            "{revenue}"
        );
        assert_eq!(customers, 2);
        let c1 = store.customer("c1").await.expect("read").expect("c1");
        assert_eq!(c1.email.as_deref(), Some("one@example.com"));
        assert_eq!(c1.attributes.get("tier").map(String::as_str), Some("gold"));
        assert_eq!(store.suppression_map().await.expect("s").len(), 1);
        let stats = store.customer_stats().await.expect("stats");
        let one = stats.iter().find(|s| s.id == "c1").expect("c1 stats");
        assert_eq!(one.agg.purchases, 2);
        assert_eq!(one.agg.returns, 1);
        assert_eq!(one.agg.purchase_days, 1);
        // Predictions stored before version 10 have no model, intervals, band or date; the
        // cautious reading falls back to their point estimates.
        let run = store
            .latest_prediction_run()
            .await
            .expect("read")
            .expect("run");
        assert_eq!(
            (run.model, run.params, run.selection, run.interval_level),
            (None, None, None, None)
        );
        let stored = store.stored_predictions().await.expect("read");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].clv, Some(30.0));
        assert!(stored[0].clv_low.is_none() && stored[0].churn_risk.is_none());
        let low = store
            .predictions_at(crate::PredictionBound::Low)
            .await
            .expect("read");
        assert_eq!((low[0].clv, low[0].expected_purchases_90d), (30.0, 0.3));
        // Assignments and plan members moved to the customer key (version 12), including c2's,
        // a customer only orders had named before version 7.
        let assigned = store.segment_assignments(1).await.expect("assignments");
        assert_eq!(
            assigned
                .iter()
                .map(|a| (a.customer_id.as_str(), a.segment.as_str(), a.m))
                .collect::<Vec<_>>(),
            [("c1", "Champions", 5), ("c2", "Hibernating", 2)]
        );
        let members = store.plan_members("p1-winback-1").await.expect("members");
        assert_eq!(
            members
                .iter()
                .map(|m| (m.customer_id.as_str(), m.holdout))
                .collect::<Vec<_>>(),
            [("c2", false), ("c1", true)]
        );
        // The file those orders came from, imported again: the same orders, nothing doubled.
        let csv = dir.path().join("old.csv");
        let mut f = std::fs::File::create(&csv).expect("csv");
        writeln!(
            f,
            "customer_id,date,amount\nc1,2024-01-01,12.5\nc1,2024-01-01,12.5\nc1,2024-02-01,-5\nc2,2024-01-15,7.25"
        )
        .expect("write");
        drop(f);
        store
            .import_orders_file(
                &csv,
                &retain_core::import::ImportOptions::default(),
                |_| {},
                |_| Ok(()),
            )
            .await
            .expect("re-import");
        let (orders, revenue, _) = store.order_totals().await.expect("totals");
        assert_eq!(orders, 4, "re-importing the old file doubles nothing");
        assert!((revenue - 27.25).abs() < 1e-9);
    }
}

#[cfg(test)]
mod concurrency_tests {
    /// Two processes opening a fresh database at once both succeed: the migrations run under the
    /// database's write lock, so the second finds them applied. (Two pools in one process stand
    /// in for the two processes: each has its own connections.)
    #[tokio::test]
    async fn two_stores_opening_a_fresh_sqlite_file_at_once_both_succeed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("fresh.db");
        let (a, b) = tokio::join!(
            crate::Store::open_sqlite(&db),
            crate::Store::open_sqlite(&db)
        );
        let (a, b) = (a.expect("first"), b.expect("second"));
        for store in [&a, &b] {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM retain_migrations")
                .fetch_one(store.pool())
                .await
                .expect("count");
            assert_eq!(n as usize, super::MIGRATIONS.len());
        }
    }

    #[tokio::test]
    async fn two_stores_opening_a_fresh_postgres_database_at_once_both_succeed() {
        let Some(db) = crate::test_support::postgres_database().await else {
            return;
        };
        let url = db.url();
        let (a, b) = tokio::join!(crate::Store::open(&url), crate::Store::open(&url));
        let (a, b) = (a.expect("first"), b.expect("second"));
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM retain_migrations")
            .fetch_one(a.pool())
            .await
            .expect("count");
        assert_eq!(n as usize, super::MIGRATIONS.len());
        b.close().await;
        a.close().await;
    }
}
