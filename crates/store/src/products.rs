//! Products, order lines as the recommender reads them, and the stored recommendations and
//! replenishment dues (migration 0017). The catalogue import replaces products by key; the order
//! lines are read customer by customer (`fold_customer_items`, key order, one customer in
//! memory); recommendations and dues are replaced whole by each `retain recommend` run and read
//! back for one campaign's audience.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use retain_core::import::Product;
use retain_core::{from_minor, Day, ItemFact};
use sqlx::Row;

use crate::orders::ImportRecord;
use crate::{now, Result, Store, StoreError};

/// A stored product as templates and listings show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProductRow {
    pub key: i64,
    pub id: String,
    pub name: Option<String>,
    pub url: Option<String>,
    pub image_url: Option<String>,
    pub price: Option<f64>,
    pub in_stock: bool,
    pub category: Option<String>,
    /// Listed by a products import (not only named by an order line).
    pub in_catalogue: bool,
}

/// A customer's product due to be bought again.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDue {
    pub ckey: i64,
    pub product: i64,
    pub last_day: Day,
    pub interval_days: i64,
    pub due_day: Day,
    pub own: bool,
}

/// One stored order line (tests and small fixtures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItemRow {
    pub customer_id: String,
    pub order_key: i64,
    pub product: i64,
    pub day: Day,
    pub quantity: i64,
    pub amount: i64,
    pub cancelled: bool,
}

const PRODUCT_COLS: &str =
    "p.key, p.id, p.name, p.url, p.image_url, p.price, p.in_stock, p.category, p.in_catalogue";

fn product_from_row(r: &sqlx::any::AnyRow, at: usize) -> Result<ProductRow> {
    Ok(ProductRow {
        key: r.try_get(at)?,
        id: r.try_get(at + 1)?,
        name: r.try_get(at + 2)?,
        url: r.try_get(at + 3)?,
        image_url: r.try_get(at + 4)?,
        price: r.try_get::<Option<i64>, _>(at + 5)?.map(from_minor),
        in_stock: r.try_get::<i64, _>(at + 6)? != 0,
        category: r.try_get(at + 7)?,
        in_catalogue: r.try_get::<i64, _>(at + 8)? != 0,
    })
}

/// Ids per `IN (…)` list.
const CHUNK: usize = 500;

impl Store {
    /// Stores a catalogue: one transaction, products replaced by key (an order line's product
    /// becomes a catalogue product), the import recorded. `counts`: (rows read, rows rejected).
    pub async fn import_products(
        &self,
        file: &str,
        products: &[Product],
        counts: (u64, u64),
    ) -> Result<ImportRecord> {
        let mut tx = self.pool().begin().await?;
        let created_at = now();
        const COLS: usize = 9;
        let sql = |rows: usize| {
            format!(
                "INSERT INTO products (key, id, name, url, image_url, price, in_stock, category, updated_at) \
                 VALUES {} ON CONFLICT (key) DO UPDATE SET id = excluded.id, name = excluded.name, \
                 url = excluded.url, image_url = excluded.image_url, price = excluded.price, \
                 in_stock = excluded.in_stock, category = excluded.category, in_catalogue = 1, \
                 updated_at = excluded.updated_at",
                self.bulk_values(rows, COLS)
            )
        };
        for chunk in products.chunks(200) {
            let sql = sql(chunk.len());
            let mut q = sqlx::query(&sql);
            for p in chunk {
                q = q
                    .bind(p.key)
                    .bind(p.id.as_str())
                    .bind(p.name.as_deref())
                    .bind(p.url.as_deref())
                    .bind(p.image_url.as_deref())
                    .bind(p.price)
                    .bind(i64::from(p.in_stock))
                    .bind(p.category.as_deref())
                    .bind(created_at);
            }
            q.execute(&mut *tx).await?;
        }
        // New rows get in_catalogue from the conflict branch only: mark this file's products.
        for chunk in products.chunks(CHUNK) {
            let keys: Vec<String> = chunk.iter().map(|p| p.key.to_string()).collect();
            sqlx::query(&format!(
                "UPDATE products SET in_catalogue = 1 WHERE key IN ({})",
                keys.join(",")
            ))
            .execute(&mut *tx)
            .await?;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO imports (kind, file, rows_read, rows_imported, rows_rejected, created_at) \
             VALUES ('products', $1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(file)
        .bind(counts.0 as i64)
        .bind(products.len() as i64)
        .bind(counts.1 as i64)
        .bind(created_at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ImportRecord {
            id,
            kind: "products".into(),
            file: file.to_string(),
            rows_read: counts.0 as i64,
            rows_imported: products.len() as i64,
            rows_rejected: counts.1 as i64,
            created_at,
        })
    }

    /// The products with these keys (unknown keys are left out), in key order.
    pub async fn products_by_keys(&self, keys: &[i64]) -> Result<Vec<ProductRow>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            let rows = sqlx::query(&format!(
                "SELECT {PRODUCT_COLS} FROM products p WHERE p.key IN ({})",
                list.join(",")
            ))
            .fetch_all(self.pool())
            .await?;
            for r in &rows {
                out.push(product_from_row(r, 0)?);
            }
        }
        out.sort_by_key(|p| p.key);
        out.dedup_by_key(|p| p.key);
        Ok(out)
    }

    /// Keys of the products marked out of stock.
    pub async fn unavailable_products(&self) -> Result<Vec<i64>> {
        Ok(
            sqlx::query_scalar("SELECT key FROM products WHERE in_stock = 0 ORDER BY key")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Number of stored products and order lines.
    pub async fn product_counts(&self) -> Result<(i64, i64)> {
        let products: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
            .fetch_one(self.pool())
            .await?;
        let lines: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_items")
            .fetch_one(self.pool())
            .await?;
        Ok((products, lines))
    }

    /// A customer's integer key by external id.
    pub async fn customer_key(&self, id: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT key FROM customers WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Folds every customer's order lines, customer by customer in key order: `f(state, key,
    /// lines)` with one customer's lines in memory at a time.
    pub async fn fold_customer_items<S, F>(&self, state: S, mut f: F) -> Result<S>
    where
        S: Send + 'static,
        F: FnMut(&mut S, i64, &[ItemFact]) + Send + 'static,
    {
        const SQL: &str = "SELECT ckey, pkey, day, quantity, amount, cancelled FROM order_items \
                           ORDER BY ckey, okey, pkey";
        let mut state = state;
        let mut group: (Option<i64>, Vec<ItemFact>) = (None, Vec::new());
        let mut push = move |state: &mut S, key: i64, fact: Option<ItemFact>| {
            if group.0 != Some(key) || fact.is_none() {
                if let Some(k) = group.0 {
                    f(state, k, &group.1);
                }
                group.1.clear();
                group.0 = Some(key);
            }
            if let Some(fact) = fact {
                group.1.push(fact);
            }
        };
        match self.sqlite_path() {
            Some(path) => {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || -> Result<S> {
                    let e = crate::native::err;
                    let conn = crate::native::open_read(&path)?;
                    let mut stmt = conn.prepare(SQL).map_err(e)?;
                    let mut rows = stmt.query([]).map_err(e)?;
                    while let Some(r) = rows.next().map_err(e)? {
                        let fact = ItemFact {
                            product: r.get(1).map_err(e)?,
                            day: r.get::<_, i64>(2).map_err(e)? as Day,
                            quantity: r.get(3).map_err(e)?,
                            amount: r.get(4).map_err(e)?,
                            cancelled: r.get::<_, i64>(5).map_err(e)? != 0,
                        };
                        push(&mut state, r.get(0).map_err(e)?, Some(fact));
                    }
                    push(&mut state, i64::MIN, None);
                    Ok(state)
                })
                .await
                .map_err(|e| StoreError::Corrupt(format!("reader task failed: {e}")))?
            }
            None => {
                let mut rows = sqlx::query(SQL).fetch(self.pool());
                while let Some(r) = rows.try_next().await? {
                    let fact = ItemFact {
                        product: r.try_get(1)?,
                        day: r.try_get::<i64, _>(2)? as Day,
                        quantity: r.try_get(3)?,
                        amount: r.try_get(4)?,
                        cancelled: r.try_get::<i64, _>(5)? != 0,
                    };
                    push(&mut state, r.try_get(0)?, Some(fact));
                }
                drop(rows);
                push(&mut state, i64::MIN, None);
                Ok(state)
            }
        }
    }

    /// Every stored order line with its customer's id (tests and small fixtures only).
    pub async fn order_items(&self) -> Result<Vec<OrderItemRow>> {
        let rows = sqlx::query(
            "SELECT c.id, i.okey, i.pkey, i.day, i.quantity, i.amount, i.cancelled \
             FROM order_items i JOIN customers c ON c.key = i.ckey ORDER BY i.ckey, i.okey, i.pkey",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(OrderItemRow {
                customer_id: r.try_get(0)?,
                order_key: r.try_get(1)?,
                product: r.try_get(2)?,
                day: r.try_get::<i64, _>(3)? as Day,
                quantity: r.try_get(4)?,
                amount: r.try_get(5)?,
                cancelled: r.try_get::<i64, _>(6)? != 0,
            });
        }
        out.sort_by(|a, b| {
            (&a.customer_id, a.order_key, a.product).cmp(&(&b.customer_id, b.order_key, b.product))
        });
        Ok(out)
    }

    /// Replaces the stored recommendations: (customer key, picks best first as (product,
    /// score)). One transaction, written by the bulk paths (prepared multi-row inserts on the
    /// native SQLite connection, `COPY` on PostgreSQL) straight from `rows`, without a copy.
    pub async fn save_recommendations(&self, rows: Vec<(i64, Vec<(i64, f32)>)>) -> Result<u64> {
        let made_at = now();
        match self.sqlite_path() {
            Some(path) => {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || -> Result<u64> {
                    use rusqlite::TransactionBehavior;
                    let e = crate::native::err;
                    const ROWS: usize = 200;
                    let mut conn = crate::native::open_write(&path)?;
                    let tx = conn
                        .transaction_with_behavior(TransactionBehavior::Immediate)
                        .map_err(e)?;
                    tx.execute("DELETE FROM recommendations", []).map_err(e)?;
                    let sql = |n: usize| {
                        format!(
                            "INSERT INTO recommendations (ckey, rank, pkey, score, made_at) VALUES {}",
                            vec!["(?,?,?,?,?)"; n].join(",")
                        )
                    };
                    let mut many = tx.prepare(&sql(ROWS)).map_err(e)?;
                    let mut one = tx.prepare(&sql(1)).map_err(e)?;
                    let mut batch: Vec<rusqlite::types::Value> = Vec::with_capacity(ROWS * 5);
                    let mut saved = 0u64;
                    for (c, picks) in &rows {
                        for (rank, (p, score)) in picks.iter().enumerate() {
                            use rusqlite::types::Value;
                            batch.extend([
                                Value::Integer(*c),
                                Value::Integer(rank as i64 + 1),
                                Value::Integer(*p),
                                Value::Real(f64::from(*score)),
                                Value::Integer(made_at),
                            ]);
                            saved += 1;
                            if batch.len() == ROWS * 5 {
                                many.execute(rusqlite::params_from_iter(batch.drain(..)))
                                    .map_err(e)?;
                            }
                        }
                    }
                    for row in batch.chunks(5) {
                        one.execute(rusqlite::params_from_iter(row.iter()))
                            .map_err(e)?;
                    }
                    drop((many, one));
                    tx.commit().map_err(e)?;
                    Ok(saved)
                })
                .await
                .map_err(|e| StoreError::Corrupt(format!("writer task failed: {e}")))?
            }
            None => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                let mut tx = conn.begin().await?;
                sqlx::query("DELETE FROM recommendations")
                    .execute(&mut *tx)
                    .await?;
                let mut saved = 0u64;
                {
                    let mut copy = (*tx)
                        .copy_in_raw(
                            "COPY recommendations (ckey, rank, pkey, score, made_at) FROM STDIN",
                        )
                        .await?;
                    let mut buf = String::with_capacity(1 << 20);
                    for (c, picks) in &rows {
                        for (rank, (p, score)) in picks.iter().enumerate() {
                            buf.push_str(&format!(
                                "{c}\t{}\t{p}\t{}\t{made_at}\n",
                                rank + 1,
                                f64::from(*score)
                            ));
                            saved += 1;
                        }
                        if buf.len() >= 1 << 20 {
                            copy.send(std::mem::take(&mut buf).into_bytes()).await?;
                        }
                    }
                    if !buf.is_empty() {
                        copy.send(buf.into_bytes()).await?;
                    }
                    copy.finish().await?;
                }
                tx.commit().await?;
                Ok(saved)
            }
        }
    }

    /// The stored recommendations of these customers (by external id), best first, products
    /// now out of stock left out. A known customer without picks of their own (no order lines)
    /// gets the stored popularity list; unknown ids are absent.
    pub async fn recommendations_of(
        &self,
        customer_ids: &[String],
    ) -> Result<HashMap<String, Vec<ProductRow>>> {
        if !self.any_row("recommendations").await? {
            // Nothing recommended yet: no need to look a whole audience up.
            return Ok(HashMap::new());
        }
        let mut ranked: HashMap<String, Vec<(i64, ProductRow)>> = HashMap::new();
        for chunk in customer_ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT c.id, r.rank, {PRODUCT_COLS} FROM customers c \
                 JOIN recommendations r ON r.ckey = c.key JOIN products p ON p.key = r.pkey \
                 WHERE p.in_stock = 1 AND c.id IN ({})",
                crate::in_list(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for r in q.fetch_all(self.pool()).await? {
                let id: String = r.try_get(0)?;
                let rank: i64 = r.try_get(1)?;
                ranked
                    .entry(id)
                    .or_default()
                    .push((rank, product_from_row(&r, 2)?));
            }
        }
        let missing: Vec<&String> = customer_ids
            .iter()
            .filter(|id| !ranked.contains_key(id.as_str()))
            .collect();
        if !missing.is_empty() {
            let rows = sqlx::query(&format!(
                "SELECT r.rank, {PRODUCT_COLS} FROM recommendations r                  JOIN products p ON p.key = r.pkey WHERE r.ckey = 0 AND p.in_stock = 1"
            ))
            .fetch_all(self.pool())
            .await?;
            let mut popular = Vec::with_capacity(rows.len());
            for r in &rows {
                popular.push((r.try_get::<i64, _>(0)?, product_from_row(r, 1)?));
            }
            if !popular.is_empty() {
                for chunk in missing.chunks(CHUNK) {
                    let sql = format!(
                        "SELECT id FROM customers WHERE id IN ({})",
                        crate::in_list(1, chunk.len())
                    );
                    let mut q = sqlx::query_scalar::<_, String>(&sql);
                    for id in chunk {
                        q = q.bind(id.as_str());
                    }
                    for id in q.fetch_all(self.pool()).await? {
                        ranked.insert(id, popular.clone());
                    }
                }
            }
        }
        Ok(ranked
            .into_iter()
            .map(|(id, mut v)| {
                v.sort_by_key(|(rank, _)| *rank);
                (id, v.into_iter().map(|(_, p)| p).collect())
            })
            .collect())
    }

    /// The stored due products of these customers (by external id): (due day, product).
    pub async fn replenishment_dues_of(
        &self,
        customer_ids: &[String],
    ) -> Result<HashMap<String, (Day, ProductRow)>> {
        let mut out = HashMap::new();
        if !self.any_row("replenishment_due").await? {
            return Ok(out);
        }
        for chunk in customer_ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT c.id, d.due_day, {PRODUCT_COLS} FROM replenishment_due d                  JOIN customers c ON c.key = d.ckey JOIN products p ON p.key = d.pkey                  WHERE c.id IN ({})",
                crate::in_list(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for r in q.fetch_all(self.pool()).await? {
                let id: String = r.try_get(0)?;
                let due: i64 = r.try_get(1)?;
                out.insert(id, (due as Day, product_from_row(&r, 2)?));
            }
        }
        Ok(out)
    }

    /// Whether `table` (a name of this schema, never user input) holds any row.
    async fn any_row(&self, table: &str) -> Result<bool> {
        // A count (an integer on both backends) of at most one row.
        let sql = format!("SELECT COUNT(*) FROM (SELECT 1 FROM {table} LIMIT 1) t");
        let found: i64 = sqlx::query_scalar(&sql).fetch_one(self.pool()).await?;
        Ok(found > 0)
    }

    /// Replaces the stored replenishment dues. One transaction.
    pub async fn save_replenishment(&self, dues: &[StoredDue]) -> Result<u64> {
        let made_at = now();
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM replenishment_due")
            .execute(&mut *tx)
            .await?;
        const COLS: usize = 7;
        for chunk in dues.chunks(250) {
            let sql = format!(
                "INSERT INTO replenishment_due (ckey, pkey, last_day, interval_days, due_day, own, made_at) VALUES {}",
                self.bulk_values(chunk.len(), COLS)
            );
            let mut q = sqlx::query(&sql);
            for d in chunk {
                q = q
                    .bind(d.ckey)
                    .bind(d.product)
                    .bind(i64::from(d.last_day))
                    .bind(d.interval_days)
                    .bind(i64::from(d.due_day))
                    .bind(i64::from(d.own))
                    .bind(made_at);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(dues.len() as u64)
    }

    /// Every customer's due day by external id, for the planner's `days_until_due`: one entry
    /// per customer with a due product.
    pub async fn replenishment_due_days(&self) -> Result<HashMap<String, Day>> {
        let mut out = HashMap::new();
        let mut rows = sqlx::query(
            "SELECT c.id, d.due_day FROM replenishment_due d JOIN customers c ON c.key = d.ckey",
        )
        .fetch(self.pool());
        while let Some(r) = rows.try_next().await? {
            let id: String = r.try_get(0)?;
            let due: i64 = r.try_get(1)?;
            out.insert(id, due as Day);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use retain_core::import::{parse_products, ImportOptions};
    use retain_core::{order_key, product_key};

    use super::*;
    use crate::test_support;

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

    async fn import(store: &Store, dir: &Path, name: &str, csv: &str) -> crate::OrdersImported {
        let path = dir.join(name);
        std::fs::write(&path, csv).expect("write");
        store
            .import_orders_file(&path, &ImportOptions::default(), |_| {}, |_| Ok(()))
            .await
            .expect("import")
    }

    const RETAIL: &str =
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID\n\
1,A,Apple,2,2024-01-01 10:00,1.50,c1\n\
1,B,Bread,1,2024-01-01 10:00,2.00,c1\n\
1,A,Apple,1,2024-01-01 10:00,1.50,c1\n\
C2,B,Bread,-1,2024-01-05 10:00,2.00,c1\n\
3,B,Bread,4,2024-01-02 10:00,2.00,c2\n";

    async fn line_items_are_stored_idempotently_on(store: Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = import(&store, dir.path(), "retail.csv", RETAIL).await;
        assert_eq!(first.orders, 2);
        let items = store.order_items().await.expect("items");
        let find = |c: &str, o: &str, p: &str| {
            items
                .iter()
                .find(|i| {
                    i.customer_id == c && i.order_key == order_key(o) && i.product == product_key(p)
                })
                .cloned()
        };
        assert_eq!(items.len(), 4, "{items:?}");
        // Two lines of the same product in one order add up.
        let apple = find("c1", "1", "A").expect("apple");
        assert_eq!((apple.quantity, apple.amount), (3, 450));
        let ret = find("c1", "C2", "B").expect("return");
        assert_eq!((ret.quantity, ret.amount, ret.cancelled), (-1, -200, true));
        let fact = ItemFact {
            product: ret.product,
            day: ret.day,
            quantity: ret.quantity,
            amount: ret.amount,
            cancelled: ret.cancelled,
        };
        assert!(fact.is_return());
        // Re-importing changes nothing.
        import(&store, dir.path(), "retail.csv", RETAIL).await;
        assert_eq!(store.order_items().await.expect("items"), items);
        // A corrected export replaces the lines of the orders it names.
        let corrected = RETAIL.replace("1,B,Bread,1,2024-01-01 10:00,2.00,c1\n", "");
        import(&store, dir.path(), "retail2.csv", &corrected).await;
        let after = store.order_items().await.expect("items");
        assert_eq!(after.len(), 3, "{after:?}");
        assert!(!after
            .iter()
            .any(|i| i.order_key == order_key("1") && i.product == product_key("B")));
        // Products named by the lines exist, named.
        let p = store
            .products_by_keys(&[product_key("A"), product_key("B")])
            .await
            .expect("products");
        assert_eq!(p.len(), 2);
        assert_eq!(
            p.iter()
                .find(|x| x.id == "A")
                .and_then(|x| x.name.clone())
                .as_deref(),
            Some("Apple")
        );
        // The fold sees each customer's lines once, in key order.
        let seen = store
            .fold_customer_items(Vec::new(), |v: &mut Vec<(i64, usize)>, k, lines| {
                v.push((k, lines.len()))
            })
            .await
            .expect("fold");
        assert_eq!(seen.iter().map(|x| x.1).sum::<usize>(), 3);
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[tokio::test]
    async fn line_items_are_stored_idempotently() {
        on_both(line_items_are_stored_idempotently_on).await;
    }

    async fn platform_lines_and_catalogue_on(store: Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
        for f in ["shopify_orders.csv", "woocommerce_orders.csv"] {
            let csv = std::fs::read_to_string(root.join(f)).expect("fixture");
            let r = import(&store, dir.path(), f, &csv).await;
            assert!(r.item_lines > 0, "{f}");
        }
        let items = store.order_items().await.expect("items");
        // Shopify #1001: the first row's line and the further line-item row's line.
        let of_1001: Vec<_> = items
            .iter()
            .filter(|i| i.order_key == order_key("#1001"))
            .collect();
        assert_eq!(of_1001.len(), 2, "{items:?}");
        // A catalogue names and prices products, and marks stock; order names never overwrite it.
        let csv = "sku,name,url,image,price,in_stock\n\
COFF,Coffee <b>beans</b>,https://shop.example/coffee,https://cdn.example/c.jpg,12.50,yes\n\
FILT,Filters,https://shop.example/filters,,3.00,no\n";
        let parsed = parse_products(
            Path::new("p.csv"),
            csv.as_bytes(),
            &ImportOptions::default(),
        )
        .expect("parse");
        let rec = store
            .import_products("p.csv", &parsed.products, (parsed.rows_read, 0))
            .await
            .expect("import");
        assert_eq!(rec.rows_imported, 2);
        let woo = std::fs::read_to_string(root.join("woocommerce_orders.csv")).expect("fixture");
        import(&store, dir.path(), "woo-again.csv", &woo).await;
        let p = store
            .products_by_keys(&[product_key("COFF")])
            .await
            .expect("products");
        assert_eq!(p[0].name.as_deref(), Some("Coffee <b>beans</b>"));
        assert_eq!(p[0].price, Some(12.5));
        assert!(p[0].in_catalogue);
        assert_eq!(
            store.unavailable_products().await.expect("stock"),
            vec![product_key("FILT")]
        );
        // Recommendations round-trip, out-of-stock products left out.
        let ckey = store
            .customer_key("xav@example.org")
            .await
            .expect("key")
            .expect("known");
        let asked = ["xav@example.org".to_string(), "nobody".to_string()];
        assert!(store
            .recommendations_of(&asked)
            .await
            .expect("recs")
            .is_empty());
        assert!(store
            .replenishment_dues_of(&asked)
            .await
            .expect("dues")
            .is_empty());
        store
            .save_replenishment(&[StoredDue {
                ckey,
                product: product_key("COFF"),
                last_day: 100,
                interval_days: 30,
                due_day: 130,
                own: true,
            }])
            .await
            .expect("dues");
        let dues = store.replenishment_dues_of(&asked).await.expect("dues");
        assert_eq!(dues.len(), 1);
        assert_eq!(dues["xav@example.org"].0, 130);
        assert_eq!(dues["xav@example.org"].1.id, "COFF");
        store
            .save_recommendations(vec![(
                ckey,
                vec![(product_key("FILT"), 2.0), (product_key("COFF"), 1.0)],
            )])
            .await
            .expect("save");
        let recs = store.recommendations_of(&asked).await.expect("recs");
        assert_eq!(recs.len(), 1);
        assert_eq!(
            recs["xav@example.org"]
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>(),
            vec!["COFF"]
        );
    }

    #[tokio::test]
    async fn platform_lines_and_catalogue() {
        on_both(platform_lines_and_catalogue_on).await;
    }
}
