//! The streaming orders import: the file is read and parsed block by block on its own thread
//! ([`retain_core::import::stream_orders`]) while one writer stores the rows; memory stays a few
//! blocks plus one key per customer, whatever the file's size.
//!
//! SQLite: a native connection, one `BEGIN IMMEDIATE` transaction; the order rows are sorted in
//! bounded runs spilled to disk ([`crate::spill`]) and merged back in key order, where line items
//! are added up and repeated id-less rows numbered, then written by the shared native bulk insert
//! (32 rows a statement), front to back; customers without earlier orders get their aggregates from that same pass.
//! PostgreSQL: `COPY` into a temporary table, then one set-based merge. Both then recompute the
//! aggregates of the (other) customers the file touched, record the import, and commit —
//! or, on any error (a bad file, `--strict`, the database), roll back and leave the store as it
//! was. Rows of an earlier import are replaced, never added to, so re-importing doubles nothing.

use std::path::Path;
use std::sync::mpsc;

use retain_core::import::customers::is_valid_email;
use retain_core::import::{
    stream_orders, ImportOptions, LineMode, OrderFeed, OrderLine, Reject, StreamSummary,
};
use retain_core::{from_minor, CustomerAggregate, Day, OrderFact};

use crate::idmap::IdKeys;
use crate::orders::ImportRecord;
use crate::rows::Val;
use crate::spill::{Merged, Sorter, SpillRow, RUN_ROWS};
use crate::stats::{stats_values, STATS_COLS};
use crate::{native, now, Backend, Result, Store, StoreError};

/// What an orders import stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrdersImported {
    pub record: ImportRecord,
    pub summary: StreamSummary,
    /// Customers with an order in the file, and how many of them are new.
    pub customers: u64,
    pub new_customers: u64,
    /// Purchases and returns of the file (orders, line items collapsed), and their net revenue.
    pub orders: u64,
    pub returns: u64,
    pub revenue: f64,
    /// Product lines read from the file (stored in `order_items`, with their products).
    pub item_lines: u64,
}

/// Counts of the orders an import wrote.
#[derive(Default)]
struct Written {
    customers: u64,
    new_customers: u64,
    orders: u64,
    returns: u64,
    revenue_minor: i64,
    item_lines: u64,
}

impl Written {
    /// Adds the order counts of `other` (the merge's).
    fn add_orders(&mut self, other: &Written) {
        self.orders += other.orders;
        self.returns += other.returns;
        self.revenue_minor += other.revenue_minor;
    }

    /// Counts one order of this import: a purchase or a return, and its net amount.
    fn count(&mut self, f: &OrderFact) {
        if f.is_return() {
            self.returns += 1;
        } else {
            self.orders += 1;
        }
        self.revenue_minor += f.amount;
    }
}

type Producer =
    std::thread::JoinHandle<std::result::Result<StreamSummary, retain_core::import::ImportError>>;

impl Store {
    /// Imports an orders file: all or nothing, idempotent. `progress` gets the bytes read;
    /// `on_rejects` each batch of skipped rows (e.g. to write them to a file).
    pub async fn import_orders_file<P, R>(
        &self,
        path: &Path,
        opts: &ImportOptions,
        progress: P,
        on_rejects: R,
    ) -> Result<OrdersImported>
    where
        P: Fn(u64) + Send + Sync + 'static,
        R: FnMut(&[Reject]) -> std::io::Result<()> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<OrderFeed>(1);
        let file = path.to_path_buf();
        let o = opts.clone();
        let producer: Producer = std::thread::spawn(move || {
            stream_orders(&file, &o, &progress, &mut |feed| tx.send(feed).is_ok())
        });
        let name = path.display().to_string();
        let imported = match self.backend {
            Backend::Sqlite => {
                let db = self
                    .sqlite_file
                    .clone()
                    .ok_or_else(|| StoreError::Corrupt("no SQLite file".into()))?;
                tokio::task::spawn_blocking(move || {
                    sqlite_import(&db, &name, rx, producer, on_rejects)
                })
                .await
                .map_err(|e| StoreError::Corrupt(format!("import task failed: {e}")))?
            }
            Backend::Postgres => postgres_import(&self.url, &name, rx, producer, on_rejects).await,
        }?;
        self.refresh_statistics(ORDER_TABLES).await;
        Ok(imported)
    }
}

/// The tables an orders import writes.
const ORDER_TABLES: &[&str] = &["orders", "customer_stats", "customers"];

impl Store {
    /// Stores whole orders that are already in memory (tests, fixtures, generated shops) through
    /// the same writer as [`Store::import_orders_file`]: one transaction, re-imports replace.
    /// `counts` are the (read, imported, rejected) rows to record.
    pub async fn import_orders(
        &self,
        file: &str,
        orders: &[retain_core::Order],
        counts: (u64, u64, u64),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<ImportRecord> {
        use retain_core::import::orders::stored_order_key;
        let lines: Vec<retain_core::import::OrderLine> = orders
            .iter()
            .map(|o| retain_core::import::OrderLine {
                customer: o.customer_id.clone(),
                order_key: stored_order_key(&o.order_id),
                order_ref: Some(o.order_id.clone()),
                at: o.ordered_at,
                day: o.day(),
                amount: retain_core::to_minor(o.amount).unwrap_or(0),
                items: o.items,
                cancelled: o.is_return,
                email: o.email.clone(),
                currency: o.currency.clone(),
                product: o.product.clone(),
                mode: LineMode::Replace,
                item: None,
            })
            .collect();
        let (tx, rx) = mpsc::sync_channel::<OrderFeed>(1);
        let producer: Producer = std::thread::spawn(move || {
            let _ = tx.send(OrderFeed {
                lines,
                rejects: Vec::new(),
            });
            Ok(StreamSummary {
                rows_read: counts.0,
                rows_imported: counts.1,
                rows_rejected: counts.2,
                ..Default::default()
            })
        });
        let name = file.to_string();
        let done = match self.backend {
            Backend::Sqlite => {
                let db = self
                    .sqlite_file
                    .clone()
                    .ok_or_else(|| StoreError::Corrupt("no SQLite file".into()))?;
                tokio::task::spawn_blocking(move || {
                    sqlite_import(&db, &name, rx, producer, |_| Ok(()))
                })
                .await
                .map_err(|e| StoreError::Corrupt(format!("import task failed: {e}")))??
            }
            Backend::Postgres => {
                postgres_import(&self.url, &name, rx, producer, |_| Ok(())).await?
            }
        };
        self.refresh_statistics(ORDER_TABLES).await;
        progress(orders.len() as u64);
        Ok(done.record)
    }
}

fn join(producer: Producer) -> Result<StreamSummary> {
    match producer.join() {
        Ok(r) => Ok(r?),
        Err(_) => Err(StoreError::Corrupt("the file reader panicked".into())),
    }
}

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::Native(format!("writing rejected rows: {e}"))
}

fn spill_err(err: std::io::Error) -> StoreError {
    StoreError::Native(format!("sorting the orders: {err}"))
}

/// What reading the file does that differs by backend: store a new customer, fill in the email
/// of a known one, stage a product line.
trait ReadSink {
    fn new_customer(&mut self, key: i64, line: &OrderLine, email_valid: bool) -> Result<()>;
    fn set_email(&mut self, key: i64, email: &str, valid: bool) -> Result<()>;
    /// `srow`: the row's position among the file's order rows (`None`: a line-item-only row).
    fn item(&mut self, key: i64, line: &OrderLine, srow: Option<i64>) -> Result<()>;
}

/// The store's customers as an import starts: keys by id, whether an email is known, and the
/// next free key.
struct Customers {
    keys: IdKeys,
    has_email: Vec<bool>,
    next_key: i64,
}

impl Default for Customers {
    fn default() -> Self {
        Self {
            keys: IdKeys::default(),
            has_email: Vec::new(),
            next_key: 1,
        }
    }
}

impl Customers {
    fn known(&mut self, id: &str, key: i64, has_email: bool) {
        set(&mut self.has_email, key, has_email);
        self.next_key = self.next_key.max(key + 1);
        self.keys.insert(id, key);
    }
}

/// Reads the parsed rows: every customer gets its key (a new one the next free key, stored
/// through `sink`), missing emails are filled in, product lines go to `sink` and order rows to
/// `sorter`. Counts customers in `written`; returns the customers the file touched, by key.
fn read_rows<S: ReadSink, R>(
    rx: mpsc::Receiver<OrderFeed>,
    customers: &mut Customers,
    sink: &mut S,
    sorter: &mut Sorter,
    on_rejects: &mut R,
    written: &mut Written,
) -> Result<Vec<bool>>
where
    R: FnMut(&[Reject]) -> std::io::Result<()>,
{
    let mut touched: Vec<bool> = Vec::new();
    let mut seq = 0i64;
    for feed in rx {
        if !feed.rejects.is_empty() {
            on_rejects(&feed.rejects).map_err(io_err)?;
        }
        for l in feed.lines {
            let key = match customers.keys.get(&l.customer) {
                Some(k) => k,
                None => {
                    let k = customers.next_key;
                    let valid = l.email.as_deref().is_some_and(is_valid_email);
                    sink.new_customer(k, &l, valid)?;
                    customers.known(&l.customer, k, l.email.is_some());
                    written.new_customers += 1;
                    k
                }
            };
            if let Some(em) = &l.email {
                if !get(&customers.has_email, key) {
                    sink.set_email(key, em, is_valid_email(em))?;
                    set(&mut customers.has_email, key, true);
                }
            }
            if !get(&touched, key) {
                set(&mut touched, key, true);
                written.customers += 1;
            }
            if l.mode == LineMode::ItemOnly {
                sink.item(key, &l, None)?;
                continue;
            }
            seq += 1;
            sink.item(key, &l, Some(seq))?;
            sorter
                .push(SpillRow {
                    ckey: key,
                    okey: l.order_key,
                    seq,
                    mode: l.mode.code() as u8,
                    cancelled: l.cancelled,
                    has_item: l.item.is_some(),
                    day: l.day,
                    at: l.at.and_utc().timestamp(),
                    amount: l.amount,
                    items: l.items,
                    order_ref: l.order_ref,
                    currency: l.currency,
                    product: l.product,
                })
                .map_err(spill_err)?;
        }
    }
    Ok(touched)
}

/// Merges the sorted order rows on a thread of its own and hands each batch of rows to write
/// to `write`, on this thread. Returns the merge's order counts.
fn write_merged(
    sorter: Sorter,
    max_order_ckey: i64,
    mut write: impl FnMut(Vec<Write>) -> Result<()>,
) -> Result<Written> {
    let merged = sorter.finish().map_err(spill_err)?;
    std::thread::scope(|scope| {
        let (wtx, wrx) = mpsc::sync_channel::<Vec<Write>>(4);
        let merger = scope.spawn(move || merge_orders(merged, max_order_ckey, &wtx));
        // On an error the receiver is dropped here, which stops the merge.
        let stored = wrx.into_iter().try_for_each(&mut write);
        let counted = merger
            .join()
            .map_err(|_| StoreError::Corrupt("the merge of the sorted orders panicked".into()));
        stored?;
        counted?.map_err(spill_err)
    })
}

/// The SQLite side of [`read_rows`]: prepared statements on the import's transaction.
struct SqliteRead<'c> {
    ins_customer: rusqlite::Statement<'c>,
    set_email: rusqlite::Statement<'c>,
    items: crate::items::SqliteItems<'c>,
    created_at: i64,
}

impl ReadSink for SqliteRead<'_> {
    fn new_customer(&mut self, key: i64, l: &OrderLine, valid: bool) -> Result<()> {
        self.ins_customer
            .execute(rusqlite::params![
                key,
                l.customer,
                l.email,
                valid as i64,
                self.created_at
            ])
            .map_err(native::err)?;
        Ok(())
    }

    fn set_email(&mut self, key: i64, email: &str, valid: bool) -> Result<()> {
        self.set_email
            .execute(rusqlite::params![email, valid as i64, key])
            .map_err(native::err)?;
        Ok(())
    }

    fn item(&mut self, key: i64, line: &OrderLine, srow: Option<i64>) -> Result<()> {
        self.items.push(key, line, srow)
    }
}

const ORDER_COLS: &str =
    "ckey, okey, order_ref, day, at, amount, items, cancelled, currency, product, import_id";

fn sqlite_import<R>(
    db: &Path,
    file: &str,
    rx: mpsc::Receiver<OrderFeed>,
    producer: Producer,
    mut on_rejects: R,
) -> Result<OrdersImported>
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
        "INSERT INTO imports (kind, file, rows_read, rows_imported, rows_rejected, created_at) VALUES ('orders', ?1, 0, 0, 0, ?2)",
        params![file, created_at],
    )
    .map_err(e)?;
    let import_id = tx.last_insert_rowid();

    // Customers: key by external id, and whether an email is known.
    let mut customers = Customers::default();
    {
        let mut stmt = tx
            .prepare("SELECT key, id, email IS NOT NULL FROM customers")
            .map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let id: String = r.get(1).map_err(e)?;
            customers.known(&id, r.get(0).map_err(e)?, r.get(2).map_err(e)?);
        }
    }
    let mut written = Written::default();
    // Customers above this key have no orders yet: their aggregates come straight from this
    // import's rows; the others' are recomputed from the orders table afterwards.
    let max_order_ckey: i64 = tx
        .query_row("SELECT COALESCE(MAX(ckey), 0) FROM orders", [], |r| {
            r.get(0)
        })
        .map_err(e)?;
    // Order rows are sorted in runs spilled beside the database and merged back in key order:
    // the orders B-tree is then written front to back once.
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| std::path::PathBuf::from("."), Path::to_path_buf);
    let mut sorter = Sorter::new(dir, RUN_ROWS);
    let (touched, items) = {
        let mut sink = SqliteRead {
            ins_customer: tx
                .prepare("INSERT INTO customers (key, id, email, email_valid, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(e)?,
            set_email: tx
                .prepare("UPDATE customers SET email = ?1, email_valid = ?2 WHERE key = ?3 AND email IS NULL")
                .map_err(e)?,
            items: crate::items::SqliteItems::new(&tx, created_at)?,
            created_at,
        };
        let touched = read_rows(
            rx,
            &mut customers,
            &mut sink,
            &mut sorter,
            &mut on_rejects,
            &mut written,
        )?;
        (touched, sink.items)
    };
    let customer_count = customers.next_key;
    drop(customers);
    let summary = join(producer)?;

    tx.execute_batch(
        "CREATE TEMP TABLE import_distinct (srow INTEGER PRIMARY KEY, okey INTEGER NOT NULL)",
    )
    .map_err(e)?;
    let mut recompute = touched;
    // One customer's aggregates: stored from the merge for customers without earlier orders,
    // from the orders table for the others.
    let mut ins_stats = tx
        .prepare(&format!(
            "INSERT OR REPLACE INTO customer_stats ({STATS_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"
        ))
        .map_err(e)?;
    // This thread only writes; the merge runs on its own. `OR REPLACE` on the orders' primary
    // key (their only index) is the upsert of every column but the key.
    {
        let upsert = format!("INSERT OR REPLACE INTO orders ({ORDER_COLS})");
        let mut distinct = tx
            .prepare("INSERT OR REPLACE INTO temp.import_distinct (srow, okey) VALUES (?1, ?2)")
            .map_err(e)?;
        let counted = write_merged(sorter, max_order_ckey, |batch| {
            let mut orders: Vec<&SpillRow> = Vec::with_capacity(batch.len());
            for w in &batch {
                match w {
                    Write::Order(r) => {
                        orders.push(r);
                        Ok(())
                    }
                    Write::Distinct { seq, okey } => distinct.execute([seq, okey]).map(|_| ()),
                    Write::Stats(key, a) => {
                        set(&mut recompute, *key, false);
                        ins_stats
                            .execute(rusqlite::params_from_iter(stats_values(*key, a)))
                            .map(|_| ())
                    }
                }
                .map_err(e)?;
            }
            // The batch's orders, in their order, through the shared native bulk insert.
            crate::rows::insert_native(&tx, &upsert, "", 11, orders.len(), |i, out| {
                let r = orders[i];
                out.extend([
                    Val::from(r.ckey),
                    r.okey.into(),
                    r.order_ref.as_deref().into(),
                    i64::from(r.day).into(),
                    r.at.into(),
                    r.amount.into(),
                    i64::from(r.items).into(),
                    (r.cancelled as i64).into(),
                    r.currency.as_deref().into(),
                    r.product.as_deref().into(),
                    import_id.into(),
                ]);
            })
        })?;
        written.add_orders(&counted);
    }
    written.item_lines = items.finish(&tx, import_id)?;
    tx.execute_batch("DROP TABLE temp.import_distinct")
        .map_err(e)?;

    // The aggregates of the customers who had orders before: recomputed from all their orders.
    {
        let pending = recompute.iter().filter(|t| **t).count() as u64;
        let few = pending * 10 < customer_count.max(1) as u64;
        let mut del = tx
            .prepare("DELETE FROM customer_stats WHERE ckey = ?1")
            .map_err(e)?;
        let mut store_stats = |key: i64, facts: &[OrderFact]| -> Result<()> {
            match CustomerAggregate::fold(facts, None) {
                Some(a) => ins_stats.execute(rusqlite::params_from_iter(stats_values(key, &a))),
                None => del.execute([key]),
            }
            .map_err(e)?;
            Ok(())
        };
        let read = |r: &rusqlite::Row<'_>, at: usize| -> rusqlite::Result<OrderFact> {
            Ok(OrderFact {
                day: r.get::<_, i64>(at)? as Day,
                amount: r.get(at + 1)?,
                cancelled: r.get::<_, i64>(at + 2)? != 0,
            })
        };
        if pending > 0 && few {
            let mut stmt = tx
                .prepare("SELECT day, amount, cancelled FROM orders WHERE ckey = ?1")
                .map_err(e)?;
            for (key, _) in recompute.iter().enumerate().filter(|(_, t)| **t) {
                let facts = stmt
                    .query_map([key as i64], |r| read(r, 0))
                    .map_err(e)?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(e)?;
                store_stats(key as i64, &facts)?;
            }
        } else if pending > 0 {
            let mut stmt = tx
                .prepare("SELECT ckey, day, amount, cancelled FROM orders ORDER BY ckey, okey")
                .map_err(e)?;
            let mut rows = stmt.query([]).map_err(e)?;
            let mut cur: Option<i64> = None;
            let mut facts: Vec<OrderFact> = Vec::new();
            while let Some(r) = rows.next().map_err(e)? {
                let key: i64 = r.get(0).map_err(e)?;
                if cur != Some(key) {
                    if let Some(k) = cur {
                        if get(&recompute, k) {
                            store_stats(k, &facts)?;
                        }
                    }
                    facts.clear();
                    cur = Some(key);
                }
                if get(&recompute, key) {
                    facts.push(read(r, 1).map_err(e)?);
                }
            }
            if let Some(k) = cur {
                if get(&recompute, k) {
                    store_stats(k, &facts)?;
                }
            }
        }
    }
    drop(ins_stats);
    let rejected = summary.rows_rejected + summary.rows_without_customer;
    tx.execute(
        "UPDATE imports SET rows_read = ?1, rows_imported = ?2, rows_rejected = ?3 WHERE id = ?4",
        params![
            summary.rows_read as i64,
            summary.rows_imported as i64,
            rejected as i64,
            import_id
        ],
    )
    .map_err(e)?;
    tx.commit().map_err(e)?;
    Ok(finish(import_id, file, created_at, summary, written))
}

/// [`LineMode::code`]s of the rows that add up and of the id-less rows.
const DISTINCT: u8 = 0;
const SUM: u8 = 1;

/// The line items (mode sum) of one order key added up, as the orders table keeps them: the
/// earliest day and time, amounts and quantities summed, cancelled if any line was, the first
/// currency and product given, the last order reference. `None` when the key has no such row.
fn sum_lines(group: &[SpillRow]) -> Option<SpillRow> {
    let mut lines = group.iter().filter(|r| r.mode == SUM);
    let mut acc = lines.next()?.clone();
    for r in lines {
        acc.day = acc.day.min(r.day);
        acc.at = acc.at.min(r.at);
        acc.amount = acc.amount.saturating_add(r.amount);
        acc.items = acc.items.saturating_add(r.items);
        acc.cancelled |= r.cancelled;
        if acc.currency.is_none() {
            acc.currency.clone_from(&r.currency);
        }
        if acc.product.is_none() {
            acc.product.clone_from(&r.product);
        }
        acc.order_ref.clone_from(&r.order_ref);
    }
    Some(acc)
}

/// One customer's order rows of this import, by order key: a later row with the key of an
/// earlier one replaces it, as in the table, so each (customer, order key) is written once.
/// Memory is one customer's orders.
#[derive(Default)]
struct CustomerRows {
    key: Option<i64>,
    rows: Vec<SpillRow>,
}

impl CustomerRows {
    fn add(&mut self, r: SpillRow) {
        match self.rows.last() {
            Some(last) if last.okey >= r.okey => {
                match self.rows.binary_search_by_key(&r.okey, |x| x.okey) {
                    Ok(i) => self.rows[i] = r,
                    Err(i) => self.rows.insert(i, r),
                }
            }
            _ => self.rows.push(r),
        }
    }

    /// Hands the customer's rows to `out` and counts them; with the customer's aggregates when
    /// it had no earlier orders (the others' are recomputed from the orders table).
    fn finish(&mut self, written: &mut Written, max_order_ckey: i64, out: &mut Vec<Write>) {
        let Some(key) = self.key.take() else {
            return;
        };
        let facts: Vec<OrderFact> = self
            .rows
            .iter()
            .map(|r| OrderFact {
                day: r.day,
                amount: r.amount,
                cancelled: r.cancelled,
            })
            .collect();
        for f in &facts {
            written.count(f);
        }
        if key > max_order_ckey {
            if let Some(a) = CustomerAggregate::fold(&facts, None) {
                out.push(Write::Stats(key, a));
            }
        }
        out.extend(self.rows.drain(..).map(Write::Order));
    }
}

/// What the merge hands the writer, in customer key order.
enum Write {
    /// An order row, with its final order key; one per (customer, order key).
    Order(SpillRow),
    /// An id-less row with a product line: its position in the file and the order key it got.
    Distinct { seq: i64, okey: i64 },
    /// The aggregates of a customer without earlier orders, from this import's rows.
    Stats(i64, CustomerAggregate),
}

/// Rows per batch handed from the merge to the writer.
const WRITE_BATCH: usize = 4096;

/// Merges the sorted runs into the rows the orders table keeps: line items of one order key add
/// up, id-less rows that repeat get the next occurrence number, everything else replaces the
/// rows of earlier imports. Returns the counts of the orders written; stops early, without
/// error, if the writer stopped (its error is the one reported).
fn merge_orders(
    mut merged: Merged,
    max_order_ckey: i64,
    out: &mpsc::SyncSender<Vec<Write>>,
) -> std::io::Result<Written> {
    let mut written = Written::default();
    let mut batch: Vec<Write> = Vec::with_capacity(WRITE_BATCH);
    let mut group: Vec<SpillRow> = Vec::new();
    let mut customer = CustomerRows::default();
    loop {
        let next = merged.next_row()?;
        let ends = match (&next, group.first()) {
            (Some(n), Some(g)) => n.ckey != g.ckey || n.okey != g.okey,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if ends {
            let ckey = group[0].ckey;
            if customer.key != Some(ckey) {
                customer.finish(&mut written, max_order_ckey, &mut batch);
                customer.key = Some(ckey);
            }
            if let Some(sum) = sum_lines(&group) {
                customer.add(sum);
            }
            let mut n = 0i64;
            for mut r in group.drain(..).filter(|r| r.mode != SUM) {
                n += 1;
                if r.mode == DISTINCT {
                    r.okey = r.okey.wrapping_add(n - 1);
                    if r.has_item {
                        batch.push(Write::Distinct {
                            seq: r.seq,
                            okey: r.okey,
                        });
                    }
                }
                customer.add(r);
            }
            if batch.len() >= WRITE_BATCH
                && out
                    .send(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(WRITE_BATCH),
                    ))
                    .is_err()
            {
                return Ok(written);
            }
        }
        match next {
            Some(r) => group.push(r),
            None => break,
        }
    }
    customer.finish(&mut written, max_order_ckey, &mut batch);
    if !batch.is_empty() {
        let _ = out.send(batch);
    }
    Ok(written)
}

fn finish(
    id: i64,
    file: &str,
    created_at: i64,
    summary: StreamSummary,
    w: Written,
) -> OrdersImported {
    OrdersImported {
        record: ImportRecord {
            id,
            kind: "orders".into(),
            file: file.to_string(),
            rows_read: summary.rows_read as i64,
            rows_imported: summary.rows_imported as i64,
            rows_rejected: (summary.rows_rejected + summary.rows_without_customer) as i64,
            created_at,
        },
        summary,
        customers: w.customers,
        new_customers: w.new_customers,
        orders: w.orders,
        returns: w.returns,
        revenue: from_minor(w.revenue_minor),
        item_lines: w.item_lines,
    }
}

fn get(v: &[bool], key: i64) -> bool {
    usize::try_from(key)
        .ok()
        .and_then(|i| v.get(i))
        .copied()
        .unwrap_or(false)
}

fn set(v: &mut Vec<bool>, key: i64, value: bool) {
    if let Ok(i) = usize::try_from(key) {
        if i >= v.len() {
            v.resize(i + 1, false);
        }
        v[i] = value;
    }
}

/// One field of PostgreSQL's COPY text format.
pub(crate) fn copy_field(out: &mut String, v: Option<&str>) {
    match v {
        None => out.push_str("\\N"),
        Some(s) => {
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
    }
}

/// The PostgreSQL side of [`read_rows`]: new customers and emails are kept as COPY text and
/// statements for after the read (memory: one line per new customer), product lines stream to
/// the staging COPY that runs meanwhile.
struct PgRead {
    customers: String,
    emails: Vec<(i64, String, i64)>,
    items: crate::items::PgItems,
    created_at: i64,
}

impl ReadSink for PgRead {
    fn new_customer(&mut self, key: i64, l: &OrderLine, valid: bool) -> Result<()> {
        use std::fmt::Write as _;
        let c = &mut self.customers;
        let _ = write!(c, "{key}\t");
        copy_field(c, Some(&l.customer));
        c.push('\t');
        copy_field(c, l.email.as_deref());
        let _ = writeln!(c, "\t{}\t{}", valid as i64, self.created_at);
        Ok(())
    }

    fn set_email(&mut self, key: i64, email: &str, valid: bool) -> Result<()> {
        self.emails.push((key, email.to_string(), valid as i64));
        Ok(())
    }

    fn item(&mut self, key: i64, line: &OrderLine, srow: Option<i64>) -> Result<()> {
        self.items.push(key, line, srow)
    }
}

/// Order rows as COPY text, for the table they go to: the staging table (customers with
/// earlier orders: upserted) or `orders` itself (customers without: nothing to conflict with).
enum Chunk {
    Stage(String),
    Orders(String),
}

impl Chunk {
    fn of(staged: bool, text: String) -> Self {
        if staged {
            Chunk::Stage(text)
        } else {
            Chunk::Orders(text)
        }
    }
}

/// One customer's aggregates as a line of COPY text, in [`STATS_COLS`] order.
fn stats_copy_line(key: i64, a: &CustomerAggregate) -> String {
    let mut line = stats_values(key, a).map(|x| x.to_string()).join("\t");
    line.push('\n');
    line
}

/// COPY text chunks are handed over at about this size.
const COPY_CHUNK: usize = 1 << 20;

/// Sends a file of COPY text written by this import to `COPY … FROM STDIN`.
async fn copy_file(tx: &mut sqlx::PgConnection, sql: &str, file: std::fs::File) -> Result<()> {
    use std::io::Read;
    let mut copy = tx.copy_in_raw(sql).await?;
    let mut r = std::io::BufReader::new(file);
    let mut buf = vec![0u8; COPY_CHUNK];
    loop {
        let n = r.read(&mut buf).map_err(spill_err)?;
        if n == 0 {
            break;
        }
        copy.send(&buf[..n]).await?;
    }
    copy.finish().await?;
    Ok(())
}

fn rewound(w: std::io::BufWriter<std::fs::File>) -> std::io::Result<std::fs::File> {
    use std::io::{Seek, SeekFrom};
    let mut f = w.into_inner().map_err(|e| e.into_error())?;
    f.seek(SeekFrom::Start(0))?;
    Ok(f)
}

/// The PostgreSQL import: the same reader, sort and merge as SQLite's, written with `COPY`.
/// Imports take the customers table's SHARE ROW EXCLUSIVE lock (readers go on; other writers of
/// customers, and other imports, wait), so keys are given out here, in file order, as on SQLite.
/// Rows of customers with earlier orders are staged and upserted; the others are copied
/// straight into `orders` (one row per key: the merge already applied the replace rule).
async fn postgres_import<R>(
    url: &str,
    file: &str,
    rx: mpsc::Receiver<OrderFeed>,
    producer: Producer,
    mut on_rejects: R,
) -> Result<OrdersImported>
where
    R: FnMut(&[Reject]) -> std::io::Result<()> + Send + 'static,
{
    use futures_util::TryStreamExt;
    use sqlx::{Connection, Row};
    use std::io::Write as _;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("LOCK TABLE customers IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let created_at = now();
    let import_id: i64 = sqlx::query_scalar(
        "INSERT INTO imports (kind, file, rows_read, rows_imported, rows_rejected, created_at) \
         VALUES ('orders', $1, 0, 0, 0, $2) RETURNING id",
    )
    .bind(file)
    .bind(created_at)
    .fetch_one(&mut *tx)
    .await?;
    let mut customers = Customers::default();
    {
        let mut rows =
            sqlx::query("SELECT key, id, email IS NOT NULL FROM customers").fetch(&mut *tx);
        while let Some(r) = rows.try_next().await? {
            let id: String = r.try_get(1)?;
            customers.known(&id, r.try_get(0)?, r.try_get(2)?);
        }
    }
    // Keys the identity sequence gave out before (to customers since erased) are not reused.
    let seq_last: Option<i64> = sqlx::query_scalar(
        "SELECT pg_sequence_last_value(pg_get_serial_sequence('customers', 'key')::regclass)",
    )
    .fetch_one(&mut *tx)
    .await?;
    customers.next_key = customers.next_key.max(seq_last.unwrap_or(0) + 1);
    let max_order_ckey: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(ckey), 0) FROM orders")
        .fetch_one(&mut *tx)
        .await?;
    sqlx::raw_sql(&format!(
        "CREATE TEMP TABLE import_orders (LIKE orders) ON COMMIT DROP; \
         CREATE TEMP TABLE import_distinct (srow BIGINT PRIMARY KEY, okey BIGINT NOT NULL) ON COMMIT DROP; \
         CREATE TEMP TABLE import_touched (key BIGINT NOT NULL) ON COMMIT DROP; {}",
        crate::items::PG_STAGE
    ))
    .execute(&mut *tx)
    .await?;

    // Read the file on a blocking thread; product lines stream into their staging table.
    let (itx, mut irx) = tokio::sync::mpsc::channel::<String>(4);
    let reader = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut sink = PgRead {
            customers: String::new(),
            emails: Vec::new(),
            items: crate::items::PgItems::new(itx),
            created_at,
        };
        let mut sorter = Sorter::new(std::env::temp_dir(), RUN_ROWS);
        let mut written = Written::default();
        let touched = read_rows(
            rx,
            &mut customers,
            &mut sink,
            &mut sorter,
            &mut on_rejects,
            &mut written,
        )?;
        let items = sink.items.finish()?;
        let customer_count = customers.next_key;
        Ok((
            touched,
            customer_count,
            sink.customers,
            sink.emails,
            items,
            sorter,
            written,
        ))
    });
    {
        let mut copy = (*tx)
            .copy_in_raw(&format!(
                "COPY item_stage ({}) FROM STDIN",
                crate::items::PG_STAGE_COLS
            ))
            .await?;
        while let Some(chunk) = irx.recv().await {
            copy.send(chunk.into_bytes()).await?;
        }
        copy.finish().await?;
    }
    let (touched, next_key, new_customers, emails, items, sorter, mut written) = reader
        .await
        .map_err(|e| StoreError::Corrupt(format!("import task failed: {e}")))??;
    let summary = join(producer)?;

    if !new_customers.is_empty() {
        let mut copy = (*tx)
            .copy_in_raw("COPY customers (key, id, email, email_valid, updated_at) FROM STDIN")
            .await?;
        copy.send(new_customers.into_bytes()).await?;
        copy.finish().await?;
        sqlx::query("SELECT setval(pg_get_serial_sequence('customers', 'key'), $1)")
            .bind(next_key - 1)
            .execute(&mut *tx)
            .await?;
    }
    if !emails.is_empty() {
        let (keys, (addrs, valid)): (Vec<i64>, (Vec<String>, Vec<i64>)) =
            emails.into_iter().map(|(k, e, v)| (k, (e, v))).unzip();
        sqlx::query(
            "UPDATE customers c SET email = u.email, email_valid = u.valid \
             FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[]) AS u(key, email, valid) \
             WHERE c.key = u.key AND c.email IS NULL",
        )
        .bind(keys)
        .bind(addrs)
        .bind(valid)
        .execute(&mut *tx)
        .await?;
    }

    // The merged rows: converted to COPY text on a blocking thread, sent from here.
    let (otx, mut orx) = tokio::sync::mpsc::channel::<Chunk>(4);
    let converter = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut recompute = touched;
        let mut distinct = std::io::BufWriter::new(tempfile::tempfile().map_err(spill_err)?);
        let mut stats = std::io::BufWriter::new(tempfile::tempfile().map_err(spill_err)?);
        let mut buf = String::new();
        let mut staged = true;
        let gone = || StoreError::Corrupt("the import's connection stopped".into());
        let counted = write_merged(sorter, max_order_ckey, |batch| {
            for w in batch {
                match w {
                    Write::Order(r) => {
                        let stage = r.ckey <= max_order_ckey;
                        if (stage != staged && !buf.is_empty()) || buf.len() >= COPY_CHUNK {
                            let text = std::mem::take(&mut buf);
                            otx.blocking_send(Chunk::of(staged, text))
                                .map_err(|_| gone())?;
                        }
                        staged = stage;
                        order_copy_line(&mut buf, &r, import_id);
                    }
                    Write::Distinct { seq, okey } => {
                        writeln!(distinct, "{seq}\t{okey}").map_err(spill_err)?;
                    }
                    Write::Stats(key, a) => {
                        set(&mut recompute, key, false);
                        stats
                            .write_all(stats_copy_line(key, &a).as_bytes())
                            .map_err(spill_err)?;
                    }
                }
            }
            Ok(())
        })?;
        if !buf.is_empty() {
            otx.blocking_send(Chunk::of(staged, buf))
                .map_err(|_| gone())?;
        }
        let distinct = rewound(distinct).map_err(spill_err)?;
        let stats = rewound(stats).map_err(spill_err)?;
        Ok((recompute, distinct, stats, counted))
    });
    // Customers with earlier orders come first (keys ascending): staged, upserted, then the
    // rest copied into `orders`.
    let mut first_new: Option<String> = None;
    let mut any_staged = false;
    {
        let mut copy = (*tx)
            .copy_in_raw(&format!("COPY import_orders ({ORDER_COLS}) FROM STDIN"))
            .await?;
        while let Some(chunk) = orx.recv().await {
            match chunk {
                Chunk::Stage(text) => {
                    any_staged = true;
                    copy.send(text.into_bytes()).await?;
                }
                Chunk::Orders(text) => {
                    first_new = Some(text);
                    break;
                }
            }
        }
        copy.finish().await?;
    }
    if any_staged {
        sqlx::query(&format!(
            "INSERT INTO orders ({ORDER_COLS}) SELECT {ORDER_COLS} FROM import_orders \
             ON CONFLICT (ckey, okey) DO UPDATE SET order_ref = excluded.order_ref, day = excluded.day, \
             at = excluded.at, amount = excluded.amount, items = excluded.items, \
             cancelled = excluded.cancelled, currency = excluded.currency, product = excluded.product, \
             import_id = excluded.import_id"
        ))
        .execute(&mut *tx)
        .await?;
    }
    if let Some(first) = first_new {
        let mut copy = (*tx)
            .copy_in_raw(&format!("COPY orders ({ORDER_COLS}) FROM STDIN"))
            .await?;
        copy.send(first.into_bytes()).await?;
        while let Some(chunk) = orx.recv().await {
            match chunk {
                Chunk::Orders(text) => {
                    copy.send(text.into_bytes()).await?;
                }
                Chunk::Stage(_) => {
                    let _ = copy.abort("rows out of key order").await;
                    return Err(StoreError::Corrupt(
                        "the merged orders came out of key order".into(),
                    ));
                }
            }
        }
        copy.finish().await?;
    }
    let (recompute, distinct, stats, counted) = converter
        .await
        .map_err(|e| StoreError::Corrupt(format!("import task failed: {e}")))??;
    written.add_orders(&counted);
    copy_file(
        &mut tx,
        "COPY import_distinct (srow, okey) FROM STDIN",
        distinct,
    )
    .await?;
    sqlx::query("DELETE FROM customer_stats WHERE ckey > $1")
        .bind(max_order_ckey)
        .execute(&mut *tx)
        .await?;
    copy_file(
        &mut tx,
        &format!("COPY customer_stats ({STATS_COLS}) FROM STDIN"),
        stats,
    )
    .await?;
    written.item_lines = crate::items::pg_finish(&mut tx, import_id, created_at, items).await?;

    // The aggregates of the customers who had orders before: recomputed from all their orders.
    let pending: String = recompute
        .iter()
        .enumerate()
        .filter(|(_, t)| **t)
        .map(|(k, _)| format!("{k}\n"))
        .collect();
    if !pending.is_empty() {
        let mut copy = (*tx)
            .copy_in_raw("COPY import_touched (key) FROM STDIN")
            .await?;
        copy.send(pending.into_bytes()).await?;
        copy.finish().await?;
        sqlx::query("DELETE FROM customer_stats WHERE ckey IN (SELECT key FROM import_touched)")
            .execute(&mut *tx)
            .await?;
        let mut out = String::new();
        {
            let mut rows = sqlx::query(
                "SELECT o.ckey, o.day, o.amount, o.cancelled FROM orders o \
                 JOIN import_touched t ON t.key = o.ckey ORDER BY o.ckey, o.okey",
            )
            .fetch(&mut *tx);
            let mut cur: Option<i64> = None;
            let mut facts: Vec<OrderFact> = Vec::new();
            let fold = |key: Option<i64>, facts: &mut Vec<OrderFact>, out: &mut String| {
                if let Some(k) = key {
                    if let Some(a) = CustomerAggregate::fold(facts, None) {
                        out.push_str(&stats_copy_line(k, &a));
                    }
                }
                facts.clear();
            };
            while let Some(r) = rows.try_next().await? {
                let key: i64 = r.try_get(0)?;
                if cur != Some(key) {
                    fold(cur, &mut facts, &mut out);
                    cur = Some(key);
                }
                facts.push(OrderFact {
                    day: r.try_get::<i64, _>(1)? as Day,
                    amount: r.try_get(2)?,
                    cancelled: r.try_get::<i64, _>(3)? != 0,
                });
            }
            fold(cur, &mut facts, &mut out);
        }
        if !out.is_empty() {
            let mut copy = (*tx)
                .copy_in_raw(&format!("COPY customer_stats ({STATS_COLS}) FROM STDIN"))
                .await?;
            copy.send(out.into_bytes()).await?;
            copy.finish().await?;
        }
    }
    let rejected = summary.rows_rejected + summary.rows_without_customer;
    sqlx::query(
        "UPDATE imports SET rows_read = $1, rows_imported = $2, rows_rejected = $3 WHERE id = $4",
    )
    .bind(summary.rows_read as i64)
    .bind(summary.rows_imported as i64)
    .bind(rejected as i64)
    .bind(import_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(finish(import_id, file, created_at, summary, written))
}

/// One order row as a line of COPY text, in [`ORDER_COLS`] order.
fn order_copy_line(buf: &mut String, r: &SpillRow, import_id: i64) {
    use std::fmt::Write as _;
    let _ = write!(buf, "{}\t{}\t", r.ckey, r.okey);
    copy_field(buf, r.order_ref.as_deref());
    let _ = write!(
        buf,
        "\t{}\t{}\t{}\t{}\t{}\t",
        r.day, r.at, r.amount, r.items, r.cancelled as i64
    );
    copy_field(buf, r.currency.as_deref());
    buf.push('\t');
    copy_field(buf, r.product.as_deref());
    let _ = writeln!(buf, "\t{import_id}");
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use retain_core::import::ImportOptions;
    use sqlx::Row;

    use crate::{test_support, Store};

    /// Every table an orders import writes, as text rows in one order (customers by id: keys
    /// may differ between backends only if the key rule did).
    async fn dump(store: &Store) -> Vec<String> {
        let queries = [
            "SELECT 'order', c.id, c.key, o.okey, o.order_ref, o.day, o.at, o.amount, o.items, \
             o.cancelled, o.currency, o.product, o.import_id FROM orders o JOIN customers c ON c.key = o.ckey",
            "SELECT 'stats', c.id, s.first_day, s.last_day, s.purchase_days, s.purchases, s.returns, \
             s.purchase_total, s.returns_total, s.first_day_total, s.last_order_day \
             FROM customer_stats s JOIN customers c ON c.key = s.ckey",
            "SELECT 'customer', id, key, email, email_valid FROM customers",
            "SELECT 'item', c.id, i.okey, i.pkey, i.day, i.quantity, i.amount, i.cancelled, i.import_id \
             FROM order_items i JOIN customers c ON c.key = i.ckey",
            "SELECT 'product', key, id, name FROM products",
            "SELECT 'import', id, rows_read, rows_imported, rows_rejected FROM imports",
        ];
        let mut out = Vec::new();
        for q in queries {
            let rows = sqlx::query(q)
                .fetch_all(store.pool())
                .await
                .expect("a dump query");
            for r in rows {
                let fields: Vec<String> = (0..r.len())
                    .map(|i| {
                        r.try_get::<Option<i64>, _>(i)
                            .map(|v| v.map_or("NULL".to_string(), |v| v.to_string()))
                            .or_else(|_| {
                                r.try_get::<Option<String>, _>(i)
                                    .map(|v| v.unwrap_or_else(|| "NULL".into()))
                            })
                            .expect("an integer or text column")
                    })
                    .collect();
                out.push(fields.join("|"));
            }
        }
        out.sort();
        out
    }

    async fn import(store: &Store, path: &Path) {
        store
            .import_orders_file(path, &ImportOptions::default(), |_| {}, |_| Ok(()))
            .await
            .expect("an import");
    }

    /// Both backends store the same rows, import after import: line items added up, id-less
    /// repeats numbered, returns, emails filled in later, re-imports replacing (customers with
    /// earlier orders go through PostgreSQL's upsert, new ones straight into `orders`), and the
    /// platform exports with their product lines and refunds.
    #[tokio::test]
    async fn sqlite_and_postgres_store_the_same_rows() {
        let Some((pg, _db)) = test_support::postgres().await else {
            return;
        };
        let (lite, _dir) = test_support::sqlite().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let first = dir.path().join("first.csv");
        std::fs::write(
            &first,
            "customer_id,order_id,date,amount,product,email\n\
             c1,o1,2024-01-02,10.00,apple,c1@example.com\n\
             c1,o1,2024-01-02,5.50,pear,\n\
             c2,,2024-01-03,7.00,apple,\n\
             c2,,2024-01-03,7.00,apple,\n\
             c2,,2024-01-04,3.00,,\n\
             c3,o3,2024-02-01,-4.00,apple,c3@example\n\
             c1,o4,2024-03-01,20.00,,\n",
        )
        .expect("write");
        let second = dir.path().join("second.csv");
        std::fs::write(
            &second,
            "customer_id,order_id,date,amount,email\n\
             c1,o4,2024-03-02,25.00,\n\
             c2,o9,2024-04-01,12.00,c2@example.com\n\
             c4,o10,2024-04-02,30.00,c4@example.com\n\
             c4,o10,2024-04-02,30.00,\n\
             c5,,2024-04-03,1.00,\n",
        )
        .expect("write");
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
        let steps = [
            first.clone(),
            second,
            data.join("shopify_orders.csv"),
            data.join("woocommerce_orders.csv"),
            first,
        ];
        for (i, file) in steps.iter().enumerate() {
            import(&lite, file).await;
            import(&pg, file).await;
            let (a, b) = (dump(&lite).await, dump(&pg).await);
            let kinds = |d: &[String], k: &str| d.iter().filter(|r| r.starts_with(k)).count();
            assert!(
                kinds(&a, "order|") >= 5,
                "step {i}: too few orders to compare"
            );
            if i >= 2 {
                assert!(
                    kinds(&a, "item|") > 0,
                    "step {i}: no product lines to compare"
                );
            }
            let diff: Vec<_> = a
                .iter()
                .filter(|r| !b.contains(r))
                .chain(b.iter().filter(|r| !a.contains(r)))
                .collect();
            assert!(diff.is_empty(), "step {i} ({}): {diff:#?}", file.display());
        }
    }
}
