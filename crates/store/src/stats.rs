//! Per-customer aggregates (`customer_stats`) and per-customer order streams: what segmentation,
//! the CLV models, planning and the dashboard read instead of the orders table.
//!
//! `customer_stats` holds every customer's orders folded by [`CustomerAggregate::fold`] (no
//! cutoff); imports recompute the rows of the customers they touch, in their own transaction.
//! An analysis as of an earlier date streams the orders customer by customer
//! ([`Store::for_each_customer_orders`]) in key order: memory is one customer's orders at a time.
//! On SQLite both read through a native connection (sqlx's per-row cost dominates at 10⁷ rows).

use futures_util::TryStreamExt;
use retain_core::{CustomerAggregate, Day, OrderFact};
use sqlx::Row;

use crate::{Backend, Result, Store, StoreError};

/// One customer's aggregate with their keys.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerStats {
    pub key: i64,
    pub id: String,
    pub agg: CustomerAggregate,
}

/// The keys of customers read from the store, position by position in the list they came with
/// ([`Store::customer_features_keyed`]). Only the store makes them, so every key names a stored
/// customer (unless erased since: rows written for an erased key are never read, as every read
/// joins `customers`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerKeys(pub(crate) Vec<i64>);

impl CustomerKeys {
    /// How many customers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The positions `0..len` in key order (the order a table keyed by customer takes its rows
    /// fastest), or a conflict naming the position of a key listed twice.
    pub(crate) fn key_order(&self) -> std::result::Result<Vec<usize>, usize> {
        let keys = &self.0;
        let mut order: Vec<usize> = (0..keys.len()).collect();
        if !keys.windows(2).all(|w| w[0] <= w[1]) {
            order.sort_unstable_by_key(|&i| keys[i]);
        }
        match order.windows(2).find(|w| keys[w[0]] == keys[w[1]]) {
            Some(w) => Err(w[1]),
            None => Ok(order),
        }
    }
}

pub(crate) const STATS_COLS: &str = "ckey, first_day, last_day, purchase_days, purchases, returns, purchase_total, returns_total, first_day_total, last_order_day";

impl Store {
    /// Every customer with a purchase, with their aggregate, by key.
    pub async fn customer_stats(&self) -> Result<Vec<CustomerStats>> {
        self.customer_stats_with(|key, id, agg| CustomerStats { key, id, agg })
            .await
    }

    /// Every customer's aggregates as `f(key, id, aggregates)` gives them, in key order: the
    /// rows are mapped as they are read, so no list of [`CustomerStats`] is held beside the
    /// result.
    pub async fn customer_stats_with<T, F>(&self, f: F) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(i64, String, CustomerAggregate) -> T + Send + 'static,
    {
        let sql = format!(
            "SELECT c.id, s.{} FROM customer_stats s JOIN customers c ON c.key = s.ckey ORDER BY s.ckey",
            STATS_COLS.replace(", ", ", s.")
        );
        match self.sqlite_path() {
            Some(path) => {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || -> Result<Vec<T>> {
                    let conn = crate::native::open_read(&path)?;
                    let mut stmt = conn.prepare(&sql).map_err(crate::native::err)?;
                    let rows = stmt
                        .query_map([], |r| Ok(f(r.get(1)?, r.get(0)?, agg_native(r, 1)?)))
                        .map_err(crate::native::err)?;
                    rows.collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(crate::native::err)
                })
                .await
                .map_err(|e| StoreError::Corrupt(format!("reader task failed: {e}")))?
            }
            None => {
                let mut out = Vec::new();
                let mut rows = sqlx::query(&sql).fetch(self.pool());
                while let Some(r) = rows.try_next().await? {
                    out.push(f(r.try_get(1)?, r.try_get(0)?, agg_any(&r, 1)?));
                }
                Ok(out)
            }
        }
    }

    /// The last day with any order of a customer with a purchase (`None` without orders).
    pub async fn last_order_day(&self) -> Result<Option<Day>> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(last_order_day) FROM customer_stats")
            .fetch_one(self.pool())
            .await?;
        Ok(v.map(|d| d as Day))
    }

    /// Folds every customer's orders into `state`, one customer at a time in key order: `f` gets
    /// the state, the customer's key and id, and their orders as facts. Customers without orders
    /// are not visited. Memory: one customer's orders and the ids of all customers.
    pub async fn fold_customer_orders<S, F>(&self, state: S, mut f: F) -> Result<S>
    where
        S: Send + 'static,
        F: FnMut(&mut S, i64, &str, &[OrderFact]) + Send + 'static,
    {
        const SQL: &str = "SELECT ckey, day, amount, cancelled FROM orders ORDER BY ckey, okey";
        let mut state = state;
        match self.sqlite_path() {
            Some(path) => {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || -> Result<S> {
                    let e = crate::native::err;
                    let conn = crate::native::open_read(&path)?;
                    let ids = crate::native::customer_ids(&conn)?;
                    let mut stmt = conn.prepare(SQL).map_err(e)?;
                    let mut rows = stmt.query([]).map_err(e)?;
                    let mut group = Group::default();
                    while let Some(r) = rows.next().map_err(e)? {
                        let key: i64 = r.get(0).map_err(e)?;
                        let fact = OrderFact {
                            day: r.get::<_, i64>(1).map_err(e)? as Day,
                            amount: r.get(2).map_err(e)?,
                            cancelled: r.get::<_, i64>(3).map_err(e)? != 0,
                        };
                        group.push(key, fact, &ids, &mut |k, id, facts| {
                            f(&mut state, k, id, facts)
                        });
                    }
                    group.flush(&ids, &mut |k, id, facts| f(&mut state, k, id, facts));
                    Ok(state)
                })
                .await
                .map_err(|e| StoreError::Corrupt(format!("reader task failed: {e}")))?
            }
            None => {
                let ids = self.customer_ids().await?;
                let mut group = Group::default();
                let mut rows = sqlx::query(SQL).fetch(self.pool());
                while let Some(r) = rows.try_next().await? {
                    let key: i64 = r.try_get(0)?;
                    let fact = OrderFact {
                        day: r.try_get::<i64, _>(1)? as Day,
                        amount: r.try_get(2)?,
                        cancelled: r.try_get::<i64, _>(3)? != 0,
                    };
                    group.push(key, fact, &ids, &mut |k, id, facts| {
                        f(&mut state, k, id, facts)
                    });
                }
                group.flush(&ids, &mut |k, id, facts| f(&mut state, k, id, facts));
                Ok(state)
            }
        }
    }

    /// Every customer's (key, id), by key.
    pub(crate) async fn customer_ids(&self) -> Result<Vec<(i64, String)>> {
        let mut out = Vec::new();
        let mut rows = sqlx::query("SELECT key, id FROM customers ORDER BY key").fetch(self.pool());
        while let Some(r) = rows.try_next().await? {
            out.push((r.try_get(0)?, r.try_get(1)?));
        }
        Ok(out)
    }
}

/// Collects consecutive orders of one customer.
#[derive(Default)]
struct Group {
    key: Option<i64>,
    facts: Vec<OrderFact>,
}

impl Group {
    fn push<F: FnMut(i64, &str, &[OrderFact])>(
        &mut self,
        key: i64,
        fact: OrderFact,
        ids: &[(i64, String)],
        f: &mut F,
    ) {
        if self.key != Some(key) {
            self.flush(ids, f);
            self.key = Some(key);
        }
        self.facts.push(fact);
    }

    fn flush<F: FnMut(i64, &str, &[OrderFact])>(&mut self, ids: &[(i64, String)], f: &mut F) {
        if let Some(key) = self.key.take() {
            let id = ids
                .binary_search_by_key(&key, |(k, _)| *k)
                .map_or("", |i| ids[i].1.as_str());
            f(key, id, &self.facts);
        }
        self.facts.clear();
    }
}

fn agg_native(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<CustomerAggregate> {
    Ok(CustomerAggregate {
        first_day: r.get::<_, i64>(at + 1)? as Day,
        last_day: r.get::<_, i64>(at + 2)? as Day,
        purchase_days: r.get::<_, i64>(at + 3)? as u32,
        purchases: r.get::<_, i64>(at + 4)? as u32,
        returns: r.get::<_, i64>(at + 5)? as u32,
        purchase_total: r.get(at + 6)?,
        returns_total: r.get(at + 7)?,
        first_day_total: r.get(at + 8)?,
        last_order_day: r.get::<_, i64>(at + 9)? as Day,
    })
}

pub(crate) fn agg_any(r: &dyn crate::rows::DbRow, at: usize) -> Result<CustomerAggregate> {
    let g = |i: usize| -> Result<i64> { r.int(at + i) };
    Ok(CustomerAggregate {
        first_day: g(1)? as Day,
        last_day: g(2)? as Day,
        purchase_days: g(3)? as u32,
        purchases: g(4)? as u32,
        returns: g(5)? as u32,
        purchase_total: g(6)?,
        returns_total: g(7)?,
        first_day_total: g(8)?,
        last_order_day: g(9)? as Day,
    })
}

/// The values of a stats row in [`STATS_COLS`] order.
pub(crate) fn stats_values(key: i64, a: &CustomerAggregate) -> [i64; 10] {
    [
        key,
        i64::from(a.first_day),
        i64::from(a.last_day),
        i64::from(a.purchase_days),
        i64::from(a.purchases),
        i64::from(a.returns),
        a.purchase_total,
        a.returns_total,
        a.first_day_total,
        i64::from(a.last_order_day),
    ]
}

/// Recomputes every customer's aggregate through an sqlx connection (the migration, and
/// PostgreSQL imports): orders are read customer by customer.
pub(crate) async fn recompute_all(store: &Store, conn: &mut sqlx::AnyConnection) -> Result<()> {
    sqlx::query("DELETE FROM customer_stats")
        .execute(&mut *conn)
        .await?;
    let mut batch: Vec<[i64; 10]> = Vec::new();
    {
        let mut rows =
            sqlx::query("SELECT ckey, day, amount, cancelled FROM orders ORDER BY ckey, okey")
                .fetch(&mut *conn);
        let mut cur: Option<i64> = None;
        let mut facts: Vec<OrderFact> = Vec::new();
        let finish = |key: Option<i64>, facts: &mut Vec<OrderFact>, batch: &mut Vec<[i64; 10]>| {
            if let Some(k) = key {
                if let Some(a) = CustomerAggregate::fold(facts, None) {
                    batch.push(stats_values(k, &a));
                }
            }
            facts.clear();
        };
        while let Some(r) = rows.try_next().await? {
            let key: i64 = r.try_get(0)?;
            if cur != Some(key) {
                finish(cur, &mut facts, &mut batch);
                cur = Some(key);
            }
            facts.push(OrderFact {
                day: r.try_get::<i64, _>(1)? as Day,
                amount: r.try_get(2)?,
                cancelled: r.try_get::<i64, _>(3)? != 0,
            });
        }
        finish(cur, &mut facts, &mut batch);
    }
    insert_stats(store, conn, &batch).await
}

/// Inserts stats rows through an sqlx connection.
pub(crate) async fn insert_stats(
    store: &Store,
    conn: &mut sqlx::AnyConnection,
    rows: &[[i64; 10]],
) -> Result<()> {
    for chunk in rows.chunks(3000) {
        let sql = format!(
            "INSERT INTO customer_stats ({STATS_COLS}) VALUES {}",
            store.bulk_values(chunk.len(), 10)
        );
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = q.bind(*v);
            }
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    /// The SQLite file of this store, when it is SQLite.
    pub(crate) fn sqlite_path(&self) -> Option<&std::path::Path> {
        match self.backend {
            Backend::Sqlite => self.sqlite_file.as_deref(),
            Backend::Postgres => None,
        }
    }
}

impl Store {
    /// Every customer's recency, frequency, monetary and tenure as of `as_of` (default: the day
    /// after the last order), sorted by customer id; `None` without orders. At the default date
    /// the stored aggregates answer; an earlier date streams the orders customer by customer.
    pub async fn customer_features(
        &self,
        as_of: Option<chrono::NaiveDate>,
    ) -> Result<Option<(chrono::NaiveDate, Vec<retain_core::CustomerFeatures>)>> {
        Ok(self
            .customer_features_keyed(as_of)
            .await?
            .map(|(as_of, features, _)| (as_of, features)))
    }

    /// [`Store::customer_features`] with the customers' keys (`keys` holds `features[i]`'s key
    /// at `i`), to write rows of these customers back by key ([`Store::save_segment_run_keyed`])
    /// without looking their ids up again.
    pub async fn customer_features_keyed(
        &self,
        as_of: Option<chrono::NaiveDate>,
    ) -> Result<
        Option<(
            chrono::NaiveDate,
            Vec<retain_core::CustomerFeatures>,
            CustomerKeys,
        )>,
    > {
        let Some((as_of, keyed)) = self.customer_features_by_key(as_of).await? else {
            return Ok(None);
        };
        let sorted =
            retain_core::by_id::sort_by_id(keyed, |f: &(i64, retain_core::CustomerFeatures)| {
                f.1.customer_id.as_str()
            });
        let (keys, features) = sorted.into_iter().unzip();
        Ok(Some((as_of, features, CustomerKeys(keys))))
    }

    /// [`Store::customer_features`] with each customer's key, in key order (no sort).
    pub(crate) async fn customer_features_by_key(
        &self,
        as_of: Option<chrono::NaiveDate>,
    ) -> Result<Option<(chrono::NaiveDate, Vec<(i64, retain_core::CustomerFeatures)>)>> {
        let Some(last) = self.last_order_day().await? else {
            return Ok(None);
        };
        let as_of = as_of.unwrap_or_else(|| retain_core::date_of(last + 1));
        let cutoff = retain_core::day_of(as_of);
        let out = if cutoff > last {
            self.customer_stats_with(move |key, id, agg| (key, agg.features(&id, as_of)))
                .await?
        } else {
            self.fold_customer_orders(Vec::new(), move |out, key, id, facts| {
                if let Some(a) = CustomerAggregate::fold(facts, Some(cutoff)) {
                    out.push((key, a.features(id, as_of)));
                }
            })
            .await?
        };
        Ok(Some((as_of, out)))
    }

    /// Every customer's purchase history (purchase days with their value, returns total) before
    /// `cutoff` (all when `None`), sorted by customer id: for model validation, which needs the
    /// days themselves. Memory grows with distinct purchase days, not with rows read.
    pub async fn customer_histories(
        &self,
        cutoff: Option<chrono::NaiveDate>,
    ) -> Result<Vec<retain_core::features::CustomerHistory>> {
        let cut = cutoff.map(retain_core::day_of).unwrap_or(Day::MAX);
        let out = self
            .fold_customer_orders(Vec::new(), move |out, _, id, facts| {
                if let Some(h) =
                    retain_core::features::CustomerHistory::from_facts(id, facts, Some(cut))
                {
                    out.push(h);
                }
            })
            .await?;
        Ok(retain_core::by_id::sort_by_id(
            out,
            |h: &retain_core::features::CustomerHistory| h.customer_id.as_str(),
        ))
    }
}

impl Store {
    /// The shop's metrics as of `as_of` (default: the day after the last order), folded customer
    /// by customer; `None` without orders.
    pub async fn shop_stats(
        &self,
        as_of: Option<chrono::NaiveDate>,
        period: retain_core::metrics::Period,
    ) -> Result<Option<retain_core::metrics::ShopStats>> {
        let Some(last) = self.last_order_day().await? else {
            return Ok(None);
        };
        let as_of = as_of.unwrap_or_else(|| retain_core::date_of(last + 1));
        let b = retain_core::metrics::ShopStatsBuilder::new(as_of, period);
        let b = self
            .fold_customer_orders(b, |b, _, _, facts| b.add_customer(facts))
            .await?;
        Ok(Some(b.finish()))
    }
}

impl Store {
    /// Per customer with a purchase in `[start, end)`: the number of distinct purchase days in
    /// it (what the CLV models predict), by customer key, folded customer by customer.
    pub async fn purchase_days_between(
        &self,
        start: Day,
        end: Day,
    ) -> Result<std::collections::HashMap<i64, u32>> {
        self.fold_customer_orders(
            std::collections::HashMap::new(),
            move |out, key, _, facts| {
                let mut days: Vec<Day> = facts
                    .iter()
                    .filter(|f| f.day >= start && f.day < end && !f.is_return())
                    .map(|f| f.day)
                    .collect();
                if !days.is_empty() {
                    days.sort_unstable();
                    days.dedup();
                    out.insert(key, days.len() as u32);
                }
            },
        )
        .await
    }
}

impl Store {
    /// What whole-shop views depend on: the newest import, segmentation run and prediction run.
    /// A cached view computed at the same version is still true.
    pub async fn data_version(&self) -> Result<(i64, i64, i64)> {
        let r = sqlx::query(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM imports), \
                    (SELECT COALESCE(MAX(id), 0) FROM segment_runs), \
                    (SELECT COALESCE(MAX(id), 0) FROM prediction_runs)",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support;

    #[tokio::test]
    async fn data_version_moves_with_imports_and_runs() {
        let (store, _dir) = test_support::sqlite().await;
        let v0 = store.data_version().await.expect("version");
        assert_eq!(v0, (0, 0, 0));
        store
            .import_orders("a.csv", &[], (0, 0, 0), &|_| {})
            .await
            .expect("import");
        let v1 = store.data_version().await.expect("version");
        assert!(v1.0 > v0.0, "an import changes the version");
        assert_eq!((v1.1, v1.2), (0, 0));
    }
}
