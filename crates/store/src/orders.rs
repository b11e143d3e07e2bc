//! Orders and import records: atomic, idempotent bulk upserts keyed by (customer, order id), and
//! reading the history back for features and metrics.

use chrono::DateTime;
use retain_core::import::customers::is_valid_email;
use retain_core::Order;
use serde::Serialize;
use sqlx::Row;

use crate::{now, Result, Store, StoreError};

/// One recorded import.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportRecord {
    pub id: i64,
    pub kind: String,
    pub file: String,
    pub rows_read: i64,
    pub rows_imported: i64,
    pub rows_rejected: i64,
    pub created_at: i64,
}

/// Rows per multi-row INSERT (10 columns each stays under SQLite's 32,766 parameters).
const BATCH: usize = 3000;

impl Store {
    /// Records an import and upserts its orders (and the customers they name) in one
    /// transaction: all or nothing. Re-importing the same orders replaces them, never doubles them.
    pub async fn import_orders(
        &self,
        file: &str,
        orders: &[Order],
        counts: (u64, u64, u64),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<ImportRecord> {
        let mut tx = self.pool().begin().await?;
        let created_at = now();
        let id = record_import(&mut tx, "orders", file, counts, created_at).await?;
        let sql_full = orders_sql(&self.bulk_values(BATCH, 10));
        let mut done = 0u64;
        // Inserting in primary-key order keeps the B-tree appends local.
        let mut sorted: Vec<&Order> = orders.iter().collect();
        sorted.sort_unstable_by(|a, b| {
            (&a.customer_id, &a.order_id).cmp(&(&b.customer_id, &b.order_id))
        });
        for chunk in sorted.chunks(BATCH) {
            let sql = if chunk.len() == BATCH {
                sql_full.clone()
            } else {
                orders_sql(&self.bulk_values(chunk.len(), 10))
            };
            let mut q = sqlx::query(&sql);
            for o in chunk {
                q = q
                    .bind(o.customer_id.as_str())
                    .bind(o.order_id.as_str())
                    .bind(o.ordered_at.and_utc().timestamp())
                    .bind(o.amount)
                    .bind(i64::from(o.items))
                    .bind(i64::from(o.is_return))
                    .bind(o.currency.as_deref())
                    .bind(o.email.as_deref())
                    .bind(o.product.as_deref())
                    .bind(id);
            }
            q.execute(&mut *tx).await?;
            done += chunk.len() as u64;
            progress(done);
        }
        // Every customer named by an order exists, with the order's email when none is known.
        let mut seen = std::collections::BTreeMap::<&str, Option<&str>>::new();
        for o in &sorted {
            let e = seen.entry(o.customer_id.as_str()).or_insert(None);
            if e.is_none() {
                *e = o.email.as_deref();
            }
        }
        let custs: Vec<(&str, Option<&str>)> = seen.into_iter().collect();
        for chunk in custs.chunks(BATCH) {
            let sql = format!(
                "INSERT INTO customers (id, email, email_valid, updated_at) VALUES {} \
                 ON CONFLICT (id) DO UPDATE SET \
                 email_valid = CASE WHEN customers.email IS NULL THEN excluded.email_valid ELSE customers.email_valid END, \
                 email = COALESCE(customers.email, excluded.email)",
                self.bulk_values(chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for (cid, email) in chunk {
                q = q
                    .bind(*cid)
                    .bind(*email)
                    .bind(i64::from(email.is_some_and(is_valid_email)))
                    .bind(created_at);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ImportRecord {
            id,
            kind: "orders".into(),
            file: file.to_string(),
            rows_read: counts.0 as i64,
            rows_imported: counts.1 as i64,
            rows_rejected: counts.2 as i64,
            created_at,
        })
    }

    /// Every stored order, oldest first.
    pub async fn orders(&self) -> Result<Vec<Order>> {
        let rows = sqlx::query(
            "SELECT customer_id, order_id, ordered_at, amount, items, is_return, currency, email, product \
             FROM orders ORDER BY ordered_at, customer_id, order_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let ts: i64 = r.try_get(2)?;
                let ordered_at = DateTime::from_timestamp(ts, 0)
                    .ok_or_else(|| StoreError::Corrupt(format!("order time {ts} out of range")))?
                    .naive_utc();
                Ok(Order {
                    customer_id: r.try_get(0)?,
                    order_id: r.try_get(1)?,
                    ordered_at,
                    amount: r.try_get(3)?,
                    items: u32::try_from(r.try_get::<i64, _>(4)?).unwrap_or(u32::MAX),
                    is_return: r.try_get::<i64, _>(5)? != 0,
                    currency: r.try_get(6)?,
                    email: r.try_get(7)?,
                    product: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// (orders, net revenue, customers with orders).
    pub async fn order_totals(&self) -> Result<(i64, f64, i64)> {
        let r = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(amount), 0.0), COUNT(DISTINCT customer_id) FROM orders",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
    }

    /// Recorded imports, newest first.
    pub async fn imports(&self) -> Result<Vec<ImportRecord>> {
        let rows = sqlx::query(
            "SELECT id, kind, file, rows_read, rows_imported, rows_rejected, created_at FROM imports ORDER BY id DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ImportRecord {
                    id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    file: r.try_get(2)?,
                    rows_read: r.try_get(3)?,
                    rows_imported: r.try_get(4)?,
                    rows_rejected: r.try_get(5)?,
                    created_at: r.try_get(6)?,
                })
            })
            .collect()
    }
}

/// Records an import (inside the import's own transaction) and returns its id.
pub(crate) async fn record_import(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    kind: &str,
    file: &str,
    (read, imported, rejected): (u64, u64, u64),
    created_at: i64,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO imports (kind, file, rows_read, rows_imported, rows_rejected, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(kind)
    .bind(file)
    .bind(read as i64)
    .bind(imported as i64)
    .bind(rejected as i64)
    .bind(created_at)
    .fetch_one(&mut **tx)
    .await?)
}

fn orders_sql(values: &str) -> String {
    format!(
        "INSERT INTO orders (customer_id, order_id, ordered_at, amount, items, is_return, currency, email, product, import_id) \
         VALUES {} ON CONFLICT (customer_id, order_id) DO UPDATE SET \
         ordered_at = excluded.ordered_at, amount = excluded.amount, items = excluded.items, \
         is_return = excluded.is_return, currency = excluded.currency, email = excluded.email, \
         product = excluded.product, import_id = excluded.import_id",
        values
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;
    use chrono::NaiveDateTime;

    fn order(c: &str, id: &str, amount: f64) -> Order {
        Order {
            order_id: id.into(),
            customer_id: c.into(),
            ordered_at: NaiveDateTime::parse_from_str("2024-01-02 03:04:05", "%Y-%m-%d %H:%M:%S")
                .expect("d"),
            amount,
            items: 2,
            is_return: amount < 0.0,
            currency: Some("EUR".into()),
            email: Some(format!("{c}@example.com")),
            product: None,
        }
    }

    async fn round_trip(store: Store) {
        let orders: Vec<Order> = (0..7000)
            .map(|i| order(&format!("c{}", i % 900), &format!("o{i}"), i as f64 - 10.0))
            .collect();
        let rec = store
            .import_orders("a.csv", &orders, (7000, 7000, 0), &|_| {})
            .await
            .expect("import");
        assert!(rec.id > 0);
        // Same file again: nothing doubles.
        store
            .import_orders("a.csv", &orders, (7000, 7000, 0), &|_| {})
            .await
            .expect("import again");
        let back = store.orders().await.expect("read");
        assert_eq!(back.len(), 7000);
        let mut sorted = orders.clone();
        sorted.sort_by(|a, b| {
            (a.ordered_at, &a.customer_id, &a.order_id).cmp(&(
                b.ordered_at,
                &b.customer_id,
                &b.order_id,
            ))
        });
        assert_eq!(back, sorted);
        let (n, revenue, customers) = store.order_totals().await.expect("totals");
        assert_eq!(n, 7000);
        assert_eq!(customers, 900);
        let expected: f64 = orders.iter().map(|o| o.amount).sum();
        assert!((revenue - expected).abs() < 1e-6);
        assert_eq!(store.imports().await.expect("imports").len(), 2);
        let custs = store.customers().await.expect("customers");
        assert_eq!(custs.len(), 900);
        assert!(custs.iter().all(|c| c.email_valid));
    }

    #[tokio::test]
    async fn orders_round_trip_sqlite() {
        let (store, _dir) = test_support::sqlite().await;
        round_trip(store).await;
    }

    #[tokio::test]
    async fn orders_round_trip_postgres() {
        if let Some(store) = test_support::postgres().await {
            round_trip(store).await;
        }
    }
}
