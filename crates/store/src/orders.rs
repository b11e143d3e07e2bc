//! Orders and import records: atomic, idempotent bulk upserts keyed by (customer, order id), and
//! reading the history back for features and metrics.

use chrono::DateTime;
use retain_core::{from_minor, is_return, Order};
use serde::Serialize;
use sqlx::Row;

use crate::rows::{DbRow, OwnedVal};
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
            &format!("SELECT {ORDER_COLS} FROM orders o JOIN customers c ON c.key = o.ckey ORDER BY o.at, o.ckey, o.okey"),
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| order_from_row(r)).collect()
    }

    /// The orders of these customers (by external id), oldest first: one campaign's audience,
    /// never the whole table.
    pub async fn orders_of_customers(&self, ids: &[&str]) -> Result<Vec<Order>> {
        self.orders_of_customers_since(ids, i64::MIN).await
    }

    /// [`Store::orders_of_customers`] placed at or after `since` (Unix seconds). A campaign's
    /// report reads its members' orders with [`Store::orders_of_members_since`] instead: one
    /// query joined to the members, not lists of ids.
    pub async fn orders_of_customers_since(&self, ids: &[&str], since: i64) -> Result<Vec<Order>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let list = crate::values_clause(1, chunk.len());
            let sql = format!(
                "SELECT {ORDER_COLS} FROM customers c JOIN orders o ON o.ckey = c.key \
                 WHERE c.id IN {list} AND o.at >= ${}",
                chunk.len() + 1
            );
            let mut binds: Vec<OwnedVal> = chunk
                .iter()
                .map(|id| OwnedVal::Text(Some((*id).to_string())))
                .collect();
            binds.push(OwnedVal::Int(Some(since)));
            out.extend(self.read_rows(sql, binds, order_from_row).await?);
        }
        sort_orders(&mut out);
        Ok(out)
    }

    /// The orders placed at or after `since` (Unix seconds) by the members (recipients and
    /// holdout) of plan campaign `campaign_id`, oldest first: what the campaign's report
    /// attributes, joined to its members in the database (one query, however large the
    /// campaign).
    pub async fn orders_of_members_since(
        &self,
        campaign_id: &str,
        since: i64,
    ) -> Result<Vec<Order>> {
        let sql = format!(
            "SELECT {ORDER_COLS} FROM plan_members m JOIN customers c ON c.key = m.ckey \
             JOIN orders o ON o.ckey = m.ckey WHERE m.campaign_id = $1 AND o.at >= $2"
        );
        let binds = vec![
            OwnedVal::Text(Some(campaign_id.to_string())),
            OwnedVal::Int(Some(since)),
        ];
        let mut out = self.read_rows(sql, binds, order_from_row).await?;
        sort_orders(&mut out);
        Ok(out)
    }

    /// (orders, net revenue, customers with orders), counted over the orders table: a whole-table
    /// scan, for tests and checks.
    pub async fn order_totals(&self) -> Result<(i64, f64, i64)> {
        let r = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT), COUNT(DISTINCT ckey) FROM orders",
        )
        .fetch_one(self.pool())
        .await?;
        let minor: i64 = r.try_get(1)?;
        Ok((r.try_get(0)?, from_minor(minor), r.try_get(2)?))
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

/// An order read back: (customer id, order reference, time, amount, items, cancelled, currency,
/// email, product).
/// The columns [`order_from_row`] reads, of `customers c` and `orders o`.
const ORDER_COLS: &str = "c.id, COALESCE(o.order_ref, CAST(o.okey AS TEXT)), o.at, o.amount, \
     o.items, o.cancelled, o.currency, c.email, o.product";

fn order_from_row(r: &dyn DbRow) -> Result<Order> {
    let ts = r.int(2)?;
    let ordered_at = DateTime::from_timestamp(ts, 0)
        .ok_or_else(|| StoreError::Corrupt(format!("order time {ts} out of range")))?
        .naive_utc();
    let amount = r.int(3)?;
    let cancelled = r.int(5)? != 0;
    Ok(Order {
        customer_id: r.text(0)?,
        order_id: r.text(1)?,
        ordered_at,
        amount: from_minor(amount),
        items: u32::try_from(r.int(4)?).unwrap_or(u32::MAX),
        is_return: is_return(amount, cancelled),
        currency: r.opt_text(6)?,
        email: r.opt_text(7)?,
        product: r.opt_text(8)?,
    })
}

/// Oldest first, then by customer and order id: the same order on both backends.
fn sort_orders(orders: &mut [Order]) {
    orders.sort_by(|a, b| {
        (a.ordered_at, &a.customer_id, &a.order_id).cmp(&(
            b.ordered_at,
            &b.customer_id,
            &b.order_id,
        ))
    });
}

/// Records an import: kind, file, rows read, imported and rejected, time; returns its id.
pub(crate) const IMPORT_SQL: &str = "INSERT INTO imports (kind, file, rows_read, rows_imported, \
     rows_rejected, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

#[cfg(test)]
mod tests {
    use std::io::Write;

    use crate::test_support;
    use crate::Store;

    /// 7,000 orders of 900 customers, a tenth of them returns.
    fn file(dir: &std::path::Path) -> (std::path::PathBuf, f64) {
        let path = dir.join("orders.csv");
        let mut f = std::fs::File::create(&path).expect("create");
        writeln!(f, "customer_id,order_id,date,amount,email").expect("write");
        let mut total = 0.0;
        for i in 0..7000 {
            let amount = if i % 10 == 0 {
                -(i as f64) / 4.0 - 1.0
            } else {
                i as f64 / 4.0 + 1.0
            };
            total += amount;
            writeln!(
                f,
                "c{},o{i},2024-{:02}-{:02},{amount},c{}@example.com",
                i % 900,
                1 + i % 12,
                1 + i % 28,
                i % 900
            )
            .expect("write");
        }
        (path, total)
    }

    async fn round_trip(store: Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, total) = file(dir.path());
        let opts = retain_core::import::ImportOptions::default();
        let done = store
            .import_orders_file(&path, &opts, |_| {}, |_| Ok(()))
            .await
            .expect("import");
        assert_eq!(done.orders + done.returns, 7000);
        assert_eq!(done.returns, 700);
        assert_eq!(done.customers, 900);
        assert_eq!(done.new_customers, 900);
        // Same file again: nothing doubles.
        let again = store
            .import_orders_file(&path, &opts, |_| {}, |_| Ok(()))
            .await
            .expect("import again");
        assert_eq!(again.new_customers, 0);
        let back = store.orders().await.expect("read");
        assert_eq!(back.len(), 7000);
        assert_eq!(back.iter().filter(|o| o.is_return).count(), 700);
        let (n, revenue, customers) = store.order_totals().await.expect("totals");
        assert_eq!(n, 7000);
        assert_eq!(customers, 900);
        assert!((revenue - total).abs() < 1e-6, "{revenue} vs {total}");
        assert_eq!(store.imports().await.expect("imports").len(), 2);
        let custs = store.customers().await.expect("customers");
        assert_eq!(custs.len(), 900);
        assert!(custs.iter().all(|c| c.email_valid));
        // The aggregates agree with the orders read back.
        let stats = store.customer_stats().await.expect("stats");
        let purchases: u32 = stats.iter().map(|s| s.agg.purchases).sum();
        assert_eq!(purchases, 6300);
        let some: Vec<&str> = vec!["c1", "c2"];
        let theirs = store.orders_of_customers(&some).await.expect("orders of");
        assert_eq!(
            theirs.len(),
            back.iter()
                .filter(|o| some.contains(&o.customer_id.as_str()))
                .count()
        );
        // From a time on: exactly their orders placed at or after it.
        let mid = theirs[theirs.len() / 2].ordered_at.and_utc().timestamp();
        let later = store
            .orders_of_customers_since(&some, mid)
            .await
            .expect("orders since");
        let expected: Vec<_> = theirs
            .iter()
            .filter(|o| o.ordered_at.and_utc().timestamp() >= mid)
            .cloned()
            .collect();
        assert!(!expected.is_empty() && expected.len() < theirs.len());
        assert_eq!(later, expected);
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
