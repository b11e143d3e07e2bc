//! The streaming orders import: the file is read and parsed block by block on its own thread
//! ([`retain_core::import::stream_orders`]) while one writer stores the rows; memory stays a few
//! blocks plus one key per customer, whatever the file's size.
//!
//! SQLite: a native connection, one `BEGIN IMMEDIATE` transaction; the order rows are sorted in
//! bounded runs spilled to disk ([`crate::spill`]) and merged back in key order, where line items
//! are added up and repeated id-less rows numbered, then written by one prepared upsert, front to
//! back; customers without earlier orders get their aggregates from that same pass.
//! PostgreSQL: `COPY` into a temporary table, then one set-based merge. Both then recompute the
//! aggregates of the (other) customers the file touched, record the import, and commit —
//! or, on any error (a bad file, `--strict`, the database), roll back and leave the store as it
//! was. Rows of an earlier import are replaced, never added to, so re-importing doubles nothing.

use std::path::Path;
use std::sync::mpsc;

use retain_core::import::customers::is_valid_email;
use retain_core::import::{
    stream_orders, ImportOptions, LineMode, OrderFeed, Reject, StreamSummary,
};
use retain_core::{from_minor, CustomerAggregate, Day, OrderFact};
use rustc_hash::FxHashMap;

use crate::orders::ImportRecord;
use crate::spill::{Sorter, SpillRow, RUN_ROWS};
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
        match self.backend {
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
        }
    }
}

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
    let mut keys: FxHashMap<String, i64> = FxHashMap::default();
    let mut has_email: Vec<bool> = Vec::new();
    let mut next_key = 1i64;
    {
        let mut stmt = tx
            .prepare("SELECT key, id, email IS NOT NULL FROM customers")
            .map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let key: i64 = r.get(0).map_err(e)?;
            let id: String = r.get(1).map_err(e)?;
            let em: bool = r.get(2).map_err(e)?;
            set(&mut has_email, key, em);
            next_key = next_key.max(key + 1);
            keys.insert(id, key);
        }
    }
    let mut touched: Vec<bool> = Vec::new();
    let mut written = Written::default();
    let mut items = crate::items::SqliteItems::new(&tx, created_at)?;
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
    let spill_err = |err: std::io::Error| StoreError::Native(format!("sorting the orders: {err}"));
    let mut seq = 0i64;
    {
        let mut ins_customer = tx
            .prepare("INSERT INTO customers (key, id, email, email_valid, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(e)?;
        let mut set_email = tx
            .prepare("UPDATE customers SET email = ?1, email_valid = ?2 WHERE key = ?3 AND email IS NULL")
            .map_err(e)?;
        for feed in rx {
            if !feed.rejects.is_empty() {
                on_rejects(&feed.rejects).map_err(io_err)?;
            }
            for l in feed.lines {
                let key = match keys.get(l.customer.as_str()) {
                    Some(&k) => k,
                    None => {
                        let k = next_key;
                        next_key += 1;
                        let valid = l.email.as_deref().is_some_and(is_valid_email);
                        ins_customer
                            .execute(params![k, l.customer, l.email, valid as i64, created_at])
                            .map_err(e)?;
                        set(&mut has_email, k, l.email.is_some());
                        keys.insert(l.customer.clone(), k);
                        written.new_customers += 1;
                        k
                    }
                };
                if let Some(em) = &l.email {
                    if !get(&has_email, key) {
                        set_email
                            .execute(params![em, is_valid_email(em) as i64, key])
                            .map_err(e)?;
                        set(&mut has_email, key, true);
                    }
                }
                if !get(&touched, key) {
                    set(&mut touched, key, true);
                    written.customers += 1;
                }
                if l.mode == LineMode::ItemOnly {
                    items.push(key, &l, None)?;
                    continue;
                }
                seq += 1;
                items.push(key, &l, Some(seq))?;
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
    }
    drop(keys);
    let summary = join(producer)?;

    // The rows in key order: line items add up into their order (within this import), id-less
    // rows that repeat get the next occurrence number, everything else replaces the rows of
    // earlier imports (what two set-based upserts did before, in the same order).
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
    {
        let mut upsert = tx
            .prepare(&format!(
                "INSERT INTO orders ({ORDER_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11) \
                 ON CONFLICT (ckey, okey) DO UPDATE SET order_ref = excluded.order_ref, \
                 day = excluded.day, at = excluded.at, amount = excluded.amount, \
                 items = excluded.items, cancelled = excluded.cancelled, \
                 currency = excluded.currency, product = excluded.product, import_id = excluded.import_id"
            ))
            .map_err(e)?;
        let mut distinct = tx
            .prepare("INSERT OR REPLACE INTO temp.import_distinct (srow, okey) VALUES (?1, ?2)")
            .map_err(e)?;
        let mut merged = sorter.finish().map_err(spill_err)?;
        let mut group: Vec<SpillRow> = Vec::new();
        let mut customer = CustomerRows::default();
        loop {
            let next = merged.next_row().map_err(spill_err)?;
            let ends = match (&next, group.first()) {
                (Some(n), Some(g)) => n.ckey != g.ckey || n.okey != g.okey,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if ends {
                let ckey = group[0].ckey;
                if customer.key != Some(ckey) {
                    customer.finish(
                        &mut written,
                        &mut recompute,
                        max_order_ckey,
                        &mut ins_stats,
                    )?;
                    customer.key = Some(ckey);
                }
                let mut write = |okey: i64, r: &SpillRow| -> Result<()> {
                    upsert
                        .execute(params![
                            r.ckey,
                            okey,
                            r.order_ref,
                            i64::from(r.day),
                            r.at,
                            r.amount,
                            i64::from(r.items),
                            r.cancelled as i64,
                            r.currency,
                            r.product,
                            import_id
                        ])
                        .map_err(e)?;
                    customer.add(
                        okey,
                        OrderFact {
                            day: r.day,
                            amount: r.amount,
                            cancelled: r.cancelled,
                        },
                    );
                    Ok(())
                };
                if let Some(sum) = sum_lines(&group) {
                    write(sum.okey, &sum)?;
                }
                let mut n = 0i64;
                for r in group.iter().filter(|r| r.mode != SUM) {
                    n += 1;
                    let okey = if r.mode == DISTINCT {
                        r.okey.wrapping_add(n - 1)
                    } else {
                        r.okey
                    };
                    write(okey, r)?;
                    if r.mode == DISTINCT && r.has_item {
                        distinct.execute([r.seq, okey]).map_err(e)?;
                    }
                }
                group.clear();
            }
            match next {
                Some(r) => group.push(r),
                None => break,
            }
        }
        customer.finish(&mut written, &mut recompute, max_order_ckey, &mut ins_stats)?;
    }
    written.item_lines = items.finish(&tx, import_id)?;
    tx.execute_batch("DROP TABLE temp.import_distinct")
        .map_err(e)?;

    // The aggregates of the customers who had orders before: recomputed from all their orders.
    {
        let pending = recompute.iter().filter(|t| **t).count() as u64;
        let few = pending * 10 < next_key.max(1) as u64;
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

/// The orders this import wrote for one customer, by order key (a later row with the same key
/// replaces an earlier one, as in the table).
#[derive(Default)]
struct CustomerRows {
    key: Option<i64>,
    facts: Vec<(i64, OrderFact)>,
}

impl CustomerRows {
    fn add(&mut self, okey: i64, fact: OrderFact) {
        match self.facts.last() {
            Some((last, _)) if *last >= okey => {
                match self.facts.iter_mut().find(|(k, _)| *k == okey) {
                    Some(slot) => slot.1 = fact,
                    None => {
                        self.facts.push((okey, fact));
                        self.facts.sort_unstable_by_key(|(k, _)| *k);
                    }
                }
            }
            _ => self.facts.push((okey, fact)),
        }
    }

    /// Counts the customer's orders of this import; stores the aggregates of a customer without
    /// earlier orders (the others are left in `recompute`).
    fn finish(
        &mut self,
        written: &mut Written,
        recompute: &mut Vec<bool>,
        max_order_ckey: i64,
        ins_stats: &mut rusqlite::Statement<'_>,
    ) -> Result<()> {
        let Some(key) = self.key.take() else {
            return Ok(());
        };
        let facts: Vec<OrderFact> = self.facts.drain(..).map(|(_, f)| f).collect();
        for f in &facts {
            written.count(f);
        }
        if key > max_order_ckey {
            if let Some(a) = CustomerAggregate::fold(&facts, None) {
                ins_stats
                    .execute(rusqlite::params_from_iter(stats_values(key, &a)))
                    .map_err(native::err)?;
                set(recompute, key, false);
            }
        }
        Ok(())
    }
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
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let mut tx = conn.begin().await?;
    let created_at = now();
    let import_id: i64 = sqlx::query_scalar(
        "INSERT INTO imports (kind, file, rows_read, rows_imported, rows_rejected, created_at) \
         VALUES ('orders', $1, 0, 0, 0, $2) RETURNING id",
    )
    .bind(file)
    .bind(created_at)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "CREATE TEMP TABLE import_stage (cid TEXT NOT NULL, email TEXT, email_valid BIGINT NOT NULL, \
         okey BIGINT NOT NULL, mode BIGINT NOT NULL, seq BIGINT NOT NULL, order_ref TEXT, \
         day BIGINT NOT NULL, at BIGINT NOT NULL, amount BIGINT NOT NULL, items BIGINT NOT NULL, \
         cancelled BIGINT NOT NULL, currency TEXT, product TEXT{}) ON COMMIT DROP",
        crate::items::PG_STAGE_ITEM_COLS
    ))
    .execute(&mut *tx)
    .await?;
    // The receiver blocks: take it to a blocking thread that forwards batches as COPY text.
    let (btx, mut brx) = tokio::sync::mpsc::channel::<std::result::Result<String, StoreError>>(2);
    let forward = tokio::task::spawn_blocking(move || {
        let mut seq = 0i64;
        for feed in rx {
            if !feed.rejects.is_empty() {
                if let Err(err) = on_rejects(&feed.rejects) {
                    let _ = btx.blocking_send(Err(io_err(err)));
                    return;
                }
            }
            let mut buf = String::with_capacity(feed.lines.len() * 96);
            for l in &feed.lines {
                seq += 1;
                let mode = l.mode.code();
                copy_field(&mut buf, Some(&l.customer));
                buf.push('\t');
                copy_field(&mut buf, l.email.as_deref());
                let valid = l.email.as_deref().is_some_and(is_valid_email) as i64;
                buf.push_str(&format!("\t{valid}\t{}\t{mode}\t{seq}\t", l.order_key));
                copy_field(&mut buf, l.order_ref.as_deref());
                buf.push_str(&format!(
                    "\t{}\t{}\t{}\t{}\t{}\t",
                    l.day,
                    l.at.and_utc().timestamp(),
                    l.amount,
                    l.items,
                    l.cancelled as i64
                ));
                copy_field(&mut buf, l.currency.as_deref());
                buf.push('\t');
                copy_field(&mut buf, l.product.as_deref());
                crate::items::copy_item_fields(&mut buf, l);
                buf.push('\n');
            }
            if btx.blocking_send(Ok(buf)).is_err() {
                return;
            }
        }
    });
    {
        let mut copy = (*tx).copy_in_raw("COPY import_stage FROM STDIN").await?;
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
    forward
        .await
        .map_err(|e| StoreError::Corrupt(format!("import task failed: {e}")))?;
    let summary = join(producer)?;
    let mut written = Written::default();

    let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers")
        .fetch_one(&mut *tx)
        .await?;
    let new = sqlx::query(
        "INSERT INTO customers (id, email, email_valid, updated_at) \
         SELECT cid, (ARRAY_AGG(email ORDER BY seq) FILTER (WHERE email IS NOT NULL))[1], \
                COALESCE((ARRAY_AGG(email_valid ORDER BY seq) FILTER (WHERE email IS NOT NULL))[1], 0), $1 \
         FROM import_stage GROUP BY cid \
         ON CONFLICT (id) DO UPDATE SET \
           email_valid = CASE WHEN customers.email IS NULL THEN excluded.email_valid ELSE customers.email_valid END, \
           email = COALESCE(customers.email, excluded.email)",
    )
    .bind(created_at)
    .execute(&mut *tx)
    .await?;
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers")
        .fetch_one(&mut *tx)
        .await?;
    written.new_customers = (after - known).max(0) as u64;
    let _ = new;
    let last = |c: &str| format!("(ARRAY_AGG({c} ORDER BY seq DESC))[1]");
    let pick =
        |c: &str, agg: &str| format!("CASE WHEN MAX(mode) = 2 THEN {} ELSE {agg} END", last(c));
    let merge = format!(
        "WITH s AS (SELECT c.key AS ckey, st.*, ROW_NUMBER() OVER (PARTITION BY c.key, st.okey ORDER BY st.seq) AS rn \
                    FROM import_stage st JOIN customers c ON c.id = st.cid WHERE st.mode <> 3), \
              k AS (SELECT ckey, CASE WHEN mode = 0 THEN okey + rn - 1 ELSE okey END AS okey, mode, seq, order_ref, \
                           day, at, amount, items, cancelled, currency, product FROM s) \
         INSERT INTO orders ({ORDER_COLS}) \
         SELECT ckey, okey, {ref_}, {day}, {at}, {amount}, {items}, {cancelled}, \
                (ARRAY_AGG(currency ORDER BY seq) FILTER (WHERE currency IS NOT NULL))[1], \
                (ARRAY_AGG(product ORDER BY seq) FILTER (WHERE product IS NOT NULL))[1], $1 \
         FROM k GROUP BY ckey, okey \
         ON CONFLICT (ckey, okey) DO UPDATE SET order_ref = excluded.order_ref, day = excluded.day, at = excluded.at, \
           amount = excluded.amount, items = excluded.items, cancelled = excluded.cancelled, \
           currency = excluded.currency, product = excluded.product, import_id = excluded.import_id",
        ref_ = last("order_ref"),
        day = pick("day", "MIN(day)"),
        at = pick("at", "MIN(at)"),
        amount = pick("amount", "SUM(amount)::BIGINT"),
        items = pick("items", "SUM(items)::BIGINT"),
        cancelled = pick("cancelled", "MAX(cancelled)"),
    );
    sqlx::query(&merge)
        .bind(import_id)
        .execute(&mut *tx)
        .await?;
    written.item_lines = crate::items::pg_merge(&mut tx, import_id, created_at).await?;

    // Aggregates of the touched customers.
    sqlx::query(
        "CREATE TEMP TABLE import_touched ON COMMIT DROP AS \
         SELECT DISTINCT c.key FROM import_stage st JOIN customers c ON c.id = st.cid",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM customer_stats WHERE ckey IN (SELECT key FROM import_touched)")
        .execute(&mut *tx)
        .await?;
    let mut stats = String::new();
    {
        let mut rows = sqlx::query(
            "SELECT o.ckey, o.day, o.amount, o.cancelled, o.import_id FROM orders o \
             JOIN import_touched t ON t.key = o.ckey ORDER BY o.ckey, o.okey",
        )
        .fetch(&mut *tx);
        let mut cur: Option<i64> = None;
        let mut facts: Vec<OrderFact> = Vec::new();
        let mut customers = 0u64;
        let mut fold = |key: Option<i64>, facts: &mut Vec<OrderFact>, out: &mut String| {
            if let Some(k) = key {
                customers += 1;
                if let Some(a) = CustomerAggregate::fold(facts, None) {
                    let v = stats_values(k, &a);
                    let line: Vec<String> = v.iter().map(i64::to_string).collect();
                    out.push_str(&line.join("\t"));
                    out.push('\n');
                }
            }
            facts.clear();
        };
        while let Some(r) = rows.try_next().await? {
            let key: i64 = r.try_get(0)?;
            if cur != Some(key) {
                fold(cur, &mut facts, &mut stats);
                cur = Some(key);
            }
            let f = OrderFact {
                day: r.try_get::<i64, _>(1)? as Day,
                amount: r.try_get(2)?,
                cancelled: r.try_get::<i64, _>(3)? != 0,
            };
            if r.try_get::<i64, _>(4)? == import_id {
                written.count(&f);
            }
            facts.push(f);
        }
        fold(cur, &mut facts, &mut stats);
        written.customers = customers;
    }
    if !stats.is_empty() {
        let mut copy = (*tx)
            .copy_in_raw(&format!("COPY customer_stats ({STATS_COLS}) FROM STDIN"))
            .await?;
        copy.send(stats.into_bytes()).await?;
        copy.finish().await?;
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
