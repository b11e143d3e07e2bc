//! The order-lines import (`retain import items`): a file of `order_id,product,quantity,amount`
//! lines with no customer column, for orders already imported. The file is streamed
//! ([`retain_core::import::stream_items`], parsing on its own thread) into a staging table; then,
//! set-based in the database, each line's order is found by its order key — the key the orders
//! import stored, [`retain_core::order_key`] of the export's order id — in one pass over the
//! orders, lines of unknown orders (or of an id that names orders of several customers) are
//! rejected with their line, the order id column and why, and the named orders' lines are
//! replaced by the file's (lines of one order and product add up). One transaction: a failed
//! import, or `--strict` with any rejected line, leaves the store as it was; importing the same
//! file again changes nothing. Memory: a few blocks of the file and one entry per product.

use std::path::Path;
use std::sync::mpsc;

use retain_core::import::{
    stream_items, ImportError, ImportOptions, ItemsFeed, ItemsSummary, Reject,
};
use retain_core::ItemFact;
use rustc_hash::FxHashMap;

use crate::orders::ImportRecord;
use crate::{native, now, Backend, Result, Store, StoreError};

/// What an order-lines import stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemsImported {
    pub record: ImportRecord,
    pub summary: ItemsSummary,
    /// Records whose order id the store does not hold, or holds for several customers.
    pub unknown_orders: u64,
    /// Orders whose lines the file gave (their earlier lines replaced).
    pub orders: u64,
    /// Order lines stored (one per order and product) and how many of them are returns.
    pub item_lines: u64,
    pub returns: u64,
    /// Distinct products of the stored lines.
    pub products: u64,
}

type Producer = std::thread::JoinHandle<std::result::Result<ItemsSummary, ImportError>>;

/// Rejects handed to the caller at a time.
const REJECT_BATCH: usize = 1000;
/// Rows per multi-row insert into the staging table (8 parameters each).
const STAGE_ROWS: usize = 100;

impl Store {
    /// Imports an order-lines file: all or nothing, idempotent. `progress` gets the bytes read;
    /// `on_rejects` each batch of rejected records — unreadable ones as the file is read, then
    /// those of unknown orders in line order.
    pub async fn import_items_file<P, R>(
        &self,
        path: &Path,
        opts: &ImportOptions,
        progress: P,
        on_rejects: R,
    ) -> Result<ItemsImported>
    where
        P: Fn(u64) + Send + Sync + 'static,
        R: FnMut(&[Reject]) -> std::io::Result<()> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<ItemsFeed>(1);
        let file = path.to_path_buf();
        let o = opts.clone();
        let producer: Producer = std::thread::spawn(move || {
            stream_items(&file, &o, &progress, &mut |feed| tx.send(feed).is_ok())
        });
        let name = path.display().to_string();
        let strict = opts.strict;
        match self.backend {
            Backend::Sqlite => {
                let db = self
                    .sqlite_file
                    .clone()
                    .ok_or_else(|| StoreError::Corrupt("no SQLite file".into()))?;
                tokio::task::spawn_blocking(move || {
                    sqlite_items(&db, &name, strict, rx, producer, on_rejects)
                })
                .await
                .map_err(|e| StoreError::Corrupt(format!("import task failed: {e}")))?
            }
            Backend::Postgres => {
                postgres_items(&self.url, &name, strict, rx, producer, on_rejects).await
            }
        }
    }
}

fn join(producer: Producer) -> Result<ItemsSummary> {
    match producer.join() {
        Ok(r) => Ok(r?),
        Err(_) => Err(StoreError::Corrupt("the file reader panicked".into())),
    }
}

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::Native(format!("writing rejected rows: {e}"))
}

/// The reject of a line whose order is unknown (`customers` = 0) or names orders of several
/// customers.
fn unknown_order(
    summary: &ItemsSummary,
    line: i64,
    order_ref: &str,
    record: String,
    customers: i64,
) -> Reject {
    let reason = if customers == 0 {
        format!(
            "no order '{order_ref}' in the store: import the orders first (retain import orders)"
        )
    } else {
        format!("order id '{order_ref}' names orders of {customers} customers: the line cannot be attributed")
    };
    Reject {
        line: line.max(0) as u64,
        column: Some(summary.order_column.clone()),
        reason,
        record,
    }
}

/// Collects rejects into batches for `on_rejects`; under `strict` the first one is the error.
struct Rejected<'a, R> {
    file: &'a str,
    strict: bool,
    batch: Vec<Reject>,
    count: u64,
    on_rejects: &'a mut R,
}

impl<R: FnMut(&[Reject]) -> std::io::Result<()>> Rejected<'_, R> {
    fn push(&mut self, r: Reject) -> Result<()> {
        if self.strict {
            return Err(ImportError::Strict {
                file: self.file.into(),
                reject: r,
            }
            .into());
        }
        self.count += 1;
        self.batch.push(r);
        if self.batch.len() == REJECT_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.batch.is_empty() {
            (self.on_rejects)(&self.batch).map_err(io_err)?;
            self.batch.clear();
        }
        Ok(())
    }
}

fn record(id: i64, file: &str, created_at: i64, s: &ItemsSummary, unknown: u64) -> ImportRecord {
    ImportRecord {
        id,
        kind: "items".into(),
        file: file.to_string(),
        rows_read: s.rows_read as i64,
        rows_imported: s.rows_parsed.saturating_sub(unknown) as i64,
        rows_rejected: (s.rows_rejected + unknown) as i64,
        created_at,
    }
}

/// The named orders, from one pass over the orders: okey → (customer, how many customers, day).
const ITEM_ORDERS: &str =
    "SELECT okey, MIN(ckey) AS ckey, COUNT(*) AS n, MIN(day) AS day FROM orders \
     WHERE order_ref IS NOT NULL AND okey IN (SELECT okey FROM item_keys) GROUP BY okey";

fn sqlite_items<R>(
    db: &Path,
    file: &str,
    strict: bool,
    rx: mpsc::Receiver<ItemsFeed>,
    producer: Producer,
    mut on_rejects: R,
) -> Result<ItemsImported>
where
    R: FnMut(&[Reject]) -> std::io::Result<()>,
{
    use rusqlite::{params, TransactionBehavior};
    let e = native::err;
    let mut conn = native::open_write(db)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(e)?;
    let created_at = now();
    tx.execute(
        "INSERT INTO imports (kind, file, rows_read, rows_imported, rows_rejected, created_at) \
         VALUES ('items', ?1, 0, 0, 0, ?2)",
        params![file, created_at],
    )
    .map_err(e)?;
    let import_id = tx.last_insert_rowid();
    tx.execute_batch(
        "CREATE TEMP TABLE items_stage (line INTEGER NOT NULL, okey INTEGER NOT NULL, \
         pkey INTEGER NOT NULL, quantity INTEGER NOT NULL, amount INTEGER NOT NULL, \
         cancelled INTEGER NOT NULL, oref TEXT NOT NULL, record TEXT NOT NULL)",
    )
    .map_err(e)?;
    // Each product's id and name as the file first gives them.
    let mut products: FxHashMap<i64, (String, Option<String>)> = FxHashMap::default();
    {
        let row = "(?,?,?,?,?,?,?,?)";
        let mut stage_one = tx
            .prepare(&format!("INSERT INTO temp.items_stage VALUES {row}"))
            .map_err(e)?;
        let mut stage_many = tx
            .prepare(&format!(
                "INSERT INTO temp.items_stage VALUES {}",
                vec![row; STAGE_ROWS].join(",")
            ))
            .map_err(e)?;
        let mut staged = Vec::with_capacity(STAGE_ROWS);
        for feed in rx {
            if !feed.rejects.is_empty() {
                on_rejects(&feed.rejects).map_err(io_err)?;
            }
            for l in feed.lines {
                let i = &l.item;
                match products.get_mut(&i.product_key) {
                    Some((_, name)) => {
                        if name.is_none() && i.name.is_some() {
                            name.clone_from(&i.name);
                        }
                    }
                    None => {
                        products.insert(i.product_key, (i.product_id.clone(), i.name.clone()));
                    }
                }
                staged.push(l);
                if staged.len() == STAGE_ROWS {
                    let cancelled: Vec<i64> =
                        staged.iter().map(|l| i64::from(l.item.cancelled)).collect();
                    let lines: Vec<i64> = staged.iter().map(|l| l.line as i64).collect();
                    let mut ps: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(STAGE_ROWS * 8);
                    for (k, l) in staged.iter().enumerate() {
                        let row: [&dyn rusqlite::ToSql; 8] = [
                            &lines[k],
                            &l.order_key,
                            &l.item.product_key,
                            &l.item.quantity,
                            &l.item.amount,
                            &cancelled[k],
                            &l.order_ref,
                            &l.record,
                        ];
                        ps.extend(row);
                    }
                    stage_many.execute(ps.as_slice()).map_err(e)?;
                    drop(ps);
                    staged.clear();
                }
            }
        }
        for l in staged.drain(..) {
            stage_one
                .execute(params![
                    l.line as i64,
                    l.order_key,
                    l.item.product_key,
                    l.item.quantity,
                    l.item.amount,
                    i64::from(l.item.cancelled),
                    l.order_ref,
                    l.record
                ])
                .map_err(e)?;
        }
    }
    let summary = join(producer)?;

    // The orders the file names, found in one pass over the orders.
    tx.execute_batch(&format!(
        "CREATE TEMP TABLE item_keys (okey INTEGER PRIMARY KEY); \
         INSERT INTO temp.item_keys SELECT DISTINCT okey FROM temp.items_stage; \
         CREATE TEMP TABLE item_orders (okey INTEGER PRIMARY KEY, ckey INTEGER NOT NULL, \
           n INTEGER NOT NULL, day INTEGER NOT NULL); \
         INSERT INTO temp.item_orders {ITEM_ORDERS};"
    ))
    .map_err(e)?;
    // Lines of unknown orders, in line order.
    let mut rejected = Rejected {
        file,
        strict,
        batch: Vec::new(),
        count: 0,
        on_rejects: &mut on_rejects,
    };
    {
        let mut stmt = tx
            .prepare(
                "SELECT s.line, s.oref, s.record, COALESCE(m.n, 0) FROM temp.items_stage s \
                 LEFT JOIN temp.item_orders m ON m.okey = s.okey \
                 WHERE m.okey IS NULL OR m.n > 1 ORDER BY s.rowid",
            )
            .map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let oref: String = r.get(1).map_err(e)?;
            rejected.push(unknown_order(
                &summary,
                r.get(0).map_err(e)?,
                &oref,
                r.get(2).map_err(e)?,
                r.get(3).map_err(e)?,
            ))?;
        }
    }
    rejected.flush()?;
    let unknown = rejected.count;

    // The file's lines of known orders, one per order and product.
    tx.execute_batch(
        "CREATE TEMP TABLE item_lines AS \
         SELECT m.ckey AS ckey, s.okey AS okey, s.pkey AS pkey, MIN(m.day) AS day, \
                SUM(s.quantity) AS quantity, SUM(s.amount) AS amount, MAX(s.cancelled) AS cancelled \
         FROM temp.items_stage s JOIN temp.item_orders m ON m.okey = s.okey \
         WHERE m.n = 1 GROUP BY m.ckey, s.okey, s.pkey",
    )
    .map_err(e)?;
    let mut returns = 0u64;
    let mut used: Vec<i64> = Vec::new();
    {
        let mut stmt = tx
            .prepare("SELECT quantity, amount, cancelled FROM temp.item_lines")
            .map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let fact = ItemFact {
                product: 0,
                day: 0,
                quantity: r.get(0).map_err(e)?,
                amount: r.get(1).map_err(e)?,
                cancelled: r.get::<_, i64>(2).map_err(e)? != 0,
            };
            returns += u64::from(fact.is_return());
        }
        let mut stmt = tx
            .prepare("SELECT DISTINCT pkey FROM temp.item_lines")
            .map_err(e)?;
        let keys = stmt.query_map([], |r| r.get(0)).map_err(e)?;
        for k in keys {
            used.push(k.map_err(e)?);
        }
    }
    {
        let mut product = tx
            .prepare(
                "INSERT INTO products (key, id, name, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (key) DO UPDATE SET \
                 name = CASE WHEN products.in_catalogue = 1 THEN products.name \
                             ELSE COALESCE(excluded.name, products.name) END",
            )
            .map_err(e)?;
        for k in &used {
            if let Some((id, name)) = products.get(k) {
                product
                    .execute(params![k, id, name, created_at])
                    .map_err(e)?;
            }
        }
    }
    // The named orders' lines are the file's: earlier lines of those orders go.
    tx.execute(
        "DELETE FROM order_items WHERE (ckey, okey) IN \
         (SELECT ckey, okey FROM temp.item_orders WHERE n = 1)",
        [],
    )
    .map_err(e)?;
    let stored = tx
        .execute(
            // In the grouping's (key) order, as written: the table's B-tree front to back.
            "INSERT INTO order_items (ckey, okey, pkey, day, quantity, amount, cancelled, import_id) \
             SELECT ckey, okey, pkey, day, quantity, amount, cancelled, ?1 FROM temp.item_lines \
             ORDER BY rowid",
            [import_id],
        )
        .map_err(e)? as u64;
    let orders: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM temp.item_orders WHERE n = 1",
            [],
            |r| r.get(0),
        )
        .map_err(e)?;
    tx.execute_batch(
        "DROP TABLE temp.items_stage; DROP TABLE temp.item_keys; DROP TABLE temp.item_orders; \
         DROP TABLE temp.item_lines;",
    )
    .map_err(e)?;
    let rec = record(import_id, file, created_at, &summary, unknown);
    tx.execute(
        "UPDATE imports SET rows_read = ?1, rows_imported = ?2, rows_rejected = ?3 WHERE id = ?4",
        params![
            rec.rows_read,
            rec.rows_imported,
            rec.rows_rejected,
            import_id
        ],
    )
    .map_err(e)?;
    tx.commit().map_err(e)?;
    Ok(ItemsImported {
        record: rec,
        summary,
        unknown_orders: unknown,
        orders: orders as u64,
        item_lines: stored,
        returns,
        products: used.len() as u64,
    })
}

async fn postgres_items<R>(
    url: &str,
    file: &str,
    strict: bool,
    rx: mpsc::Receiver<ItemsFeed>,
    producer: Producer,
    on_rejects: R,
) -> Result<ItemsImported>
where
    R: FnMut(&[Reject]) -> std::io::Result<()> + Send + 'static,
{
    use crate::import::copy_field;
    use futures_util::TryStreamExt;
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let mut tx = conn.begin().await?;
    let created_at = now();
    let import_id: i64 = sqlx::query_scalar(
        "INSERT INTO imports (kind, file, rows_read, rows_imported, rows_rejected, created_at) \
         VALUES ('items', $1, 0, 0, 0, $2) RETURNING id",
    )
    .bind(file)
    .bind(created_at)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "CREATE TEMP TABLE items_stage (line BIGINT NOT NULL, okey BIGINT NOT NULL, \
         pkey BIGINT NOT NULL, pid TEXT NOT NULL, pname TEXT, quantity BIGINT NOT NULL, \
         amount BIGINT NOT NULL, cancelled BIGINT NOT NULL, oref TEXT NOT NULL, \
         record TEXT NOT NULL) ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await?;
    // The receiver blocks: a blocking thread turns batches into COPY text and hands the
    // rejects callback back when the file is read.
    let (btx, mut brx) = tokio::sync::mpsc::channel::<std::result::Result<String, StoreError>>(2);
    let forward = tokio::task::spawn_blocking(move || {
        let mut on_rejects = on_rejects;
        for feed in rx {
            if !feed.rejects.is_empty() {
                if let Err(err) = on_rejects(&feed.rejects) {
                    let _ = btx.blocking_send(Err(io_err(err)));
                    return on_rejects;
                }
            }
            let mut buf = String::with_capacity(feed.lines.len() * 96);
            for l in &feed.lines {
                let i = &l.item;
                buf.push_str(&format!("{}\t{}\t{}\t", l.line, l.order_key, i.product_key));
                copy_field(&mut buf, Some(&i.product_id));
                buf.push('\t');
                copy_field(&mut buf, i.name.as_deref());
                buf.push_str(&format!(
                    "\t{}\t{}\t{}\t",
                    i.quantity,
                    i.amount,
                    i64::from(i.cancelled)
                ));
                copy_field(&mut buf, Some(&l.order_ref));
                buf.push('\t');
                copy_field(&mut buf, Some(&l.record));
                buf.push('\n');
            }
            if btx.blocking_send(Ok(buf)).is_err() {
                return on_rejects;
            }
        }
        on_rejects
    });
    {
        let mut copy = (*tx).copy_in_raw("COPY items_stage FROM STDIN").await?;
        while let Some(chunk) = brx.recv().await {
            match chunk {
                Ok(text) => {
                    copy.send(text.into_bytes()).await?;
                }
                Err(err) => {
                    let _ = copy.abort("rejects could not be written").await;
                    return Err(err);
                }
            }
        }
        copy.finish().await?;
    }
    let mut on_rejects = forward
        .await
        .map_err(|e| StoreError::Corrupt(format!("import task failed: {e}")))?;
    let summary = join(producer)?;

    sqlx::query("ANALYZE items_stage").execute(&mut *tx).await?;
    sqlx::query(
        "CREATE TEMP TABLE item_keys ON COMMIT DROP AS SELECT DISTINCT okey FROM items_stage",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "CREATE TEMP TABLE item_orders ON COMMIT DROP AS {ITEM_ORDERS}"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query("CREATE UNIQUE INDEX ON item_orders (okey)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("ANALYZE item_orders").execute(&mut *tx).await?;
    let mut rejected = Rejected {
        file,
        strict,
        batch: Vec::new(),
        count: 0,
        on_rejects: &mut on_rejects,
    };
    {
        let mut rows = sqlx::query(
            "SELECT s.line, s.oref, s.record, COALESCE(m.n, 0) FROM items_stage s \
             LEFT JOIN item_orders m ON m.okey = s.okey \
             WHERE m.okey IS NULL OR m.n > 1 ORDER BY s.line",
        )
        .fetch(&mut *tx);
        while let Some(r) = rows.try_next().await? {
            let oref: String = r.try_get(1)?;
            rejected.push(unknown_order(
                &summary,
                r.try_get(0)?,
                &oref,
                r.try_get(2)?,
                r.try_get(3)?,
            ))?;
        }
    }
    rejected.flush()?;
    let unknown = rejected.count;

    sqlx::query(
        "CREATE TEMP TABLE item_lines ON COMMIT DROP AS \
         SELECT m.ckey AS ckey, s.okey AS okey, s.pkey AS pkey, MIN(m.day) AS day, \
                SUM(s.quantity)::BIGINT AS quantity, SUM(s.amount)::BIGINT AS amount, \
                MAX(s.cancelled) AS cancelled \
         FROM items_stage s JOIN item_orders m ON m.okey = s.okey \
         WHERE m.n = 1 GROUP BY m.ckey, s.okey, s.pkey",
    )
    .execute(&mut *tx)
    .await?;
    let mut returns = 0u64;
    {
        let mut rows =
            sqlx::query("SELECT quantity, amount, cancelled FROM item_lines").fetch(&mut *tx);
        while let Some(r) = rows.try_next().await? {
            let fact = ItemFact {
                product: 0,
                day: 0,
                quantity: r.try_get(0)?,
                amount: r.try_get(1)?,
                cancelled: r.try_get::<i64, _>(2)? != 0,
            };
            returns += u64::from(fact.is_return());
        }
    }
    let products = sqlx::query(
        "INSERT INTO products (key, id, name, updated_at) \
         SELECT pkey, (ARRAY_AGG(pid ORDER BY line))[1], \
                (ARRAY_AGG(pname ORDER BY line) FILTER (WHERE pname IS NOT NULL))[1], $1 \
         FROM items_stage WHERE pkey IN (SELECT pkey FROM item_lines) GROUP BY pkey \
         ON CONFLICT (key) DO UPDATE SET \
           name = CASE WHEN products.in_catalogue = 1 THEN products.name \
                       ELSE COALESCE(excluded.name, products.name) END",
    )
    .bind(created_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM order_items i USING item_orders m \
         WHERE m.n = 1 AND i.ckey = m.ckey AND i.okey = m.okey",
    )
    .execute(&mut *tx)
    .await?;
    let stored = sqlx::query(
        "INSERT INTO order_items (ckey, okey, pkey, day, quantity, amount, cancelled, import_id) \
         SELECT ckey, okey, pkey, day, quantity, amount, cancelled, $1 FROM item_lines",
    )
    .bind(import_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM item_orders WHERE n = 1")
        .fetch_one(&mut *tx)
        .await?;
    let rec = record(import_id, file, created_at, &summary, unknown);
    sqlx::query(
        "UPDATE imports SET rows_read = $1, rows_imported = $2, rows_rejected = $3 WHERE id = $4",
    )
    .bind(rec.rows_read)
    .bind(rec.rows_imported)
    .bind(rec.rows_rejected)
    .bind(import_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ItemsImported {
        record: rec,
        summary,
        unknown_orders: unknown,
        orders: orders as u64,
        item_lines: stored,
        returns,
        products,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use retain_core::import::ImportOptions;
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

    fn write(dir: &Path, name: &str, csv: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, csv).expect("write");
        path
    }

    async fn import_orders(store: &Store, dir: &Path, name: &str, csv: &str) {
        store
            .import_orders_file(
                &write(dir, name, csv),
                &ImportOptions::default(),
                |_| {},
                |_| Ok(()),
            )
            .await
            .expect("orders import");
    }

    /// Imports an order-lines file; returns what was stored and every reject handed over.
    async fn import_items(
        store: &Store,
        dir: &Path,
        name: &str,
        csv: &str,
        strict: bool,
    ) -> (Result<ItemsImported>, Vec<Reject>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let opts = ImportOptions {
            strict,
            ..Default::default()
        };
        let r = store
            .import_items_file(
                &write(dir, name, csv),
                &opts,
                |_| {},
                move |b| {
                    sink.lock().expect("lock").extend_from_slice(b);
                    Ok(())
                },
            )
            .await;
        let rejects = seen.lock().expect("lock").clone();
        (r, rejects)
    }

    /// Orders without product columns: c1 has A1 and A2, c2 has B1; X is an order id of both.
    const ORDERS: &str = "customer_id,order_id,date,amount\n\
c1,A1,2024-01-01,14.50\n\
c1,A2,2024-01-09,-5.00\n\
c2,B1,2024-01-03,8.00\n\
c1,X,2024-01-04,1.00\n\
c2,X,2024-01-05,1.00\n";

    const LINES: &str = "order_id,product,quantity,amount\n\
A1,SKU-1,1,5.00\n\
A1,SKU-2,1,4.50\n\
A1,SKU-1,1,5.00\n\
A2,SKU-2,-1,-5.00\n\
B1,SKU-3,2,8.00\n\
Z9,SKU-9,1,1.00\n\
X,SKU-1,1,1.00\n\
A1,SKU-1,x,1.00\n";

    async fn lines_of_known_orders_on(store: Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        import_orders(&store, dir.path(), "orders.csv", ORDERS).await;
        let orders_before = store.orders().await.expect("orders");
        let (done, rejects) = import_items(&store, dir.path(), "lines.csv", LINES, false).await;
        let done = done.expect("items import");
        assert_eq!(done.summary.rows_read, 8);
        assert_eq!(done.unknown_orders, 2);
        assert_eq!(done.record.rows_rejected, 3);
        assert_eq!(done.record.rows_imported, 5);
        assert_eq!((done.orders, done.item_lines, done.returns), (3, 4, 1));
        assert_eq!(done.products, 3);
        // Every reject has its line, the column at fault and why; unknown orders in line order.
        let why: Vec<(u64, Option<usize>, bool)> = rejects
            .iter()
            .map(|r| (r.line, r.column.as_ref().map(|c| c.0), r.reason.is_empty()))
            .collect();
        assert_eq!(
            why,
            vec![
                (9, Some(3), false),
                (7, Some(1), false),
                (8, Some(1), false)
            ]
        );
        assert!(
            rejects[1].reason.contains("no order 'Z9'"),
            "{:?}",
            rejects[1]
        );
        assert!(rejects[1].record.starts_with("Z9,SKU-9"));
        assert!(
            rejects[2].reason.contains("2 customers"),
            "{:?}",
            rejects[2]
        );
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
        // Lines of one order and product add up; the line has the order's day.
        let a1 = find("c1", "A1", "SKU-1").expect("A1 SKU-1");
        assert_eq!((a1.quantity, a1.amount), (2, 1000));
        assert_eq!(
            a1.day,
            retain_core::day_of(chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"))
        );
        let ret = find("c1", "A2", "SKU-2").expect("return line");
        let fact = ItemFact {
            product: ret.product,
            day: ret.day,
            quantity: ret.quantity,
            amount: ret.amount,
            cancelled: ret.cancelled,
        };
        assert!(fact.is_return());
        assert!(find("c2", "B1", "SKU-3").is_some());
        // Products of stored lines exist; a product named only by a rejected line does not.
        assert_eq!(
            store
                .products_by_keys(&[product_key("SKU-1"), product_key("SKU-9")])
                .await
                .expect("products")
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>(),
            vec!["SKU-1"]
        );
        // The orders themselves are untouched.
        assert_eq!(store.orders().await.expect("orders"), orders_before);

        // Importing the same file again changes nothing.
        let (again, _) = import_items(&store, dir.path(), "lines.csv", LINES, false).await;
        assert_eq!(again.expect("again").item_lines, 4);
        assert_eq!(store.order_items().await.expect("items"), items);
        // Re-importing the orders file (no product columns) keeps the lines.
        import_orders(&store, dir.path(), "orders.csv", ORDERS).await;
        assert_eq!(store.order_items().await.expect("items"), items);
        // A corrected file replaces the lines of the orders it names.
        let corrected = LINES.replace("A1,SKU-2,1,4.50\n", "");
        let (fixed, _) = import_items(&store, dir.path(), "lines2.csv", &corrected, false).await;
        assert_eq!(fixed.expect("corrected").item_lines, 3);
        let after = store.order_items().await.expect("items");
        assert_eq!(after.len(), 3, "{after:?}");
        assert!(!after
            .iter()
            .any(|i| i.order_key == order_key("A1") && i.product == product_key("SKU-2")));
    }

    #[tokio::test]
    async fn lines_of_known_orders() {
        on_both(lines_of_known_orders_on).await;
    }

    async fn strict_unknown_order_writes_nothing_on(store: Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        import_orders(&store, dir.path(), "orders.csv", ORDERS).await;
        let imports = store.imports().await.expect("imports").len();
        let good = "order_id,product,quantity,amount\nA1,SKU-1,1,5.00\nZ9,SKU-9,1,1.00\n";
        let (r, _) = import_items(&store, dir.path(), "lines.csv", good, true).await;
        let err = r.expect_err("strict refuses an unknown order").to_string();
        assert!(
            err.contains("line 3") && err.contains("no order 'Z9'"),
            "{err}"
        );
        assert!(store.order_items().await.expect("items").is_empty());
        assert_eq!(store.imports().await.expect("imports").len(), imports);
        assert!(store
            .products_by_keys(&[product_key("SKU-1")])
            .await
            .expect("products")
            .is_empty());
        // A file-level problem is an error too, and writes nothing.
        let (r, _) = import_items(
            &store,
            dir.path(),
            "bad.csv",
            "order_id,quantity\nA1,1\n",
            false,
        )
        .await;
        assert!(r.is_err());
        assert!(store.order_items().await.expect("items").is_empty());
    }

    #[tokio::test]
    async fn strict_unknown_order_writes_nothing() {
        on_both(strict_unknown_order_writes_nothing_on).await;
    }

    async fn orders_import_lines_replace_items_file_lines_on(store: Store) {
        // Orders with product lines, then an order-lines file for one of them, then the orders
        // file again: the latest file that gives an order's lines decides them.
        let dir = tempfile::tempdir().expect("tempdir");
        let retail = "customer_id,order_id,date,sku,quantity,amount\n\
c1,A1,2024-01-01,SKU-1,1,5.00\n\
c1,A1,2024-01-01,SKU-2,1,9.50\n";
        import_orders(&store, dir.path(), "retail.csv", retail).await;
        let (r, _) = import_items(
            &store,
            dir.path(),
            "lines.csv",
            "order_id,product,quantity,amount\nA1,SKU-7,3,14.50\n",
            false,
        )
        .await;
        r.expect("items");
        let items = store.order_items().await.expect("items");
        assert_eq!(
            items.iter().map(|i| i.product).collect::<Vec<_>>(),
            vec![product_key("SKU-7")]
        );
        import_orders(&store, dir.path(), "retail.csv", retail).await;
        let mut products: Vec<i64> = store
            .order_items()
            .await
            .expect("items")
            .iter()
            .map(|i| i.product)
            .collect();
        products.sort_unstable();
        let mut want = vec![product_key("SKU-1"), product_key("SKU-2")];
        want.sort_unstable();
        assert_eq!(products, want);
    }

    #[tokio::test]
    async fn orders_import_lines_replace_items_file_lines() {
        on_both(orders_import_lines_replace_items_file_lines_on).await;
    }
}
