//! Orders and import records: atomic, idempotent bulk upserts keyed by (customer, order id), and
//! reading the history back for features and metrics.

use chrono::DateTime;
use retain_core::{from_minor, is_return, Order};
use serde::Serialize;
use sqlx::Row;

use crate::{Result, Store, StoreError};

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

impl Store {
    /// Every stored order, oldest first. Loads the whole table: for tests and small shops only;
    /// analyses read [`Store::customer_stats`] or [`Store::for_each_customer_orders`].
    pub async fn orders(&self) -> Result<Vec<Order>> {
        let rows = sqlx::query(
            "SELECT c.id, o.order_ref, o.at, o.amount, o.items, o.cancelled, o.currency, c.email, o.product \
             FROM orders o JOIN customers c ON c.key = o.ckey ORDER BY o.at, o.ckey, o.okey",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let ts: i64 = r.try_get(2)?;
                let ordered_at = DateTime::from_timestamp(ts, 0)
                    .ok_or_else(|| StoreError::Corrupt(format!("order time {ts} out of range")))?
                    .naive_utc();
                let amount: i64 = r.try_get(3)?;
                let cancelled = r.try_get::<i64, _>(5)? != 0;
                Ok(Order {
                    customer_id: r.try_get(0)?,
                    order_id: r.try_get(1)?,
                    ordered_at,
                    amount: from_minor(amount),
                    items: u32::try_from(r.try_get::<i64, _>(4)?).unwrap_or(u32::MAX),
                    is_return: is_return(amount, cancelled),
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
            "SELECT COALESCE(SUM(purchases + returns), 0), COALESCE(SUM(purchase_total + returns_total), 0), COUNT(*) \
             FROM customer_stats",
        )
        .fetch_one(self.pool())
        .await?;
        let n: i64 = r.try_get(0)?;
        let minor: i64 = r.try_get(1)?;
        Ok((n, from_minor(minor), r.try_get(2)?))
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
        if let Some((store, _db)) = test_support::postgres().await {
            round_trip(store).await;
        }
    }
}
