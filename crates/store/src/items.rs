//! Order lines and products written by the orders import, in the import's own transaction: a
//! line-items writer beside the orders writer of [`crate::import`]. Each product line of the file
//! is staged, then merged into `order_items` keyed by (customer key, order key, product key) with
//! the orders' rules — lines of one order and product add up within an import, rows of earlier
//! imports are replaced, never added to, and the lines an earlier import stored for an order this
//! import rewrote are removed when the file has product lines at all — and every product named gets a `products` row (the catalogue's
//! own fields are never overwritten by an order's product name).

use retain_core::import::{LineItem, LineMode, OrderLine};
use rustc_hash::FxHashSet;

use crate::{native, Result};

/// Rows per multi-row insert into the item staging table (8 parameters each).
const ITEM_ROWS: usize = 100;

/// One staged product line, in the staging table's column order (both backends): customer key,
/// order key, the orders staging row of an id-less line (-1 for any other: only id-less rows
/// take their order key from the occurrence numbering), product key, day, quantity, amount,
/// cancelled.
fn staged_line(ckey: i64, line: &OrderLine, item: &LineItem, srow: Option<i64>) -> [i64; 8] {
    let srow = if line.mode == LineMode::Distinct {
        srow.unwrap_or(-1)
    } else {
        -1
    };
    [
        ckey,
        line.order_key,
        srow,
        item.product_key,
        i64::from(line.day),
        item.quantity,
        item.amount,
        i64::from(item.cancelled),
    ]
}

/// The SQLite line-items writer: prepared statements on the import's transaction.
pub(crate) struct SqliteItems<'c> {
    stage_many: rusqlite::Statement<'c>,
    stage_one: rusqlite::Statement<'c>,
    product: rusqlite::Statement<'c>,
    staged: Vec<[i64; 8]>,
    seen: FxHashSet<i64>,
    now: i64,
    /// A product line was staged: the file has product lines, so it says what its orders hold.
    any: bool,
}

impl<'c> SqliteItems<'c> {
    pub(crate) fn new(tx: &'c rusqlite::Transaction<'_>, now: i64) -> Result<Self> {
        let e = native::err;
        // srow: the orders staging row of an id-less line (its order key gets that row's
        // occurrence number); NULL otherwise.
        tx.execute_batch(
            "CREATE TEMP TABLE item_stage (ckey INTEGER NOT NULL, okey INTEGER NOT NULL, \
             srow INTEGER, pkey INTEGER NOT NULL, day INTEGER NOT NULL, quantity INTEGER NOT NULL, \
             amount INTEGER NOT NULL, cancelled INTEGER NOT NULL)",
        )
        .map_err(e)?;
        let row = "(?,?,?,?,?,?,?,?)";
        Ok(Self {
            stage_one: tx
                .prepare(&format!("INSERT INTO temp.item_stage VALUES {row}"))
                .map_err(e)?,
            stage_many: tx
                .prepare(&format!(
                    "INSERT INTO temp.item_stage VALUES {}",
                    vec![row; ITEM_ROWS].join(",")
                ))
                .map_err(e)?,
            product: tx
                .prepare(
                    "INSERT INTO products (key, id, name, updated_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (key) DO UPDATE SET \
                     name = CASE WHEN products.in_catalogue = 1 THEN products.name \
                                 ELSE COALESCE(excluded.name, products.name) END",
                )
                .map_err(e)?,
            staged: Vec::with_capacity(ITEM_ROWS),
            seen: FxHashSet::default(),
            now,
            any: false,
        })
    }

    /// Stages the product line of `line` (customer `ckey`); `srow` is the orders staging row
    /// of an id-less line.
    pub(crate) fn push(&mut self, ckey: i64, line: &OrderLine, srow: Option<i64>) -> Result<()> {
        let Some(item) = &line.item else {
            return Ok(());
        };
        let e = native::err;
        self.any = true;
        if self.seen.insert(item.product_key) {
            self.product
                .execute(rusqlite::params![
                    item.product_key,
                    item.product_id,
                    item.name,
                    self.now
                ])
                .map_err(e)?;
        }
        self.staged.push(staged_line(ckey, line, item, srow));
        if self.staged.len() == ITEM_ROWS {
            self.stage_many
                .execute(rusqlite::params_from_iter(self.staged.iter().flatten()))
                .map_err(e)?;
            self.staged.clear();
        }
        Ok(())
    }

    /// Merges the staged lines into `order_items` (after the orders are written, before
    /// `temp.import_distinct`, the order keys the id-less rows with a product line were given, is
    /// dropped). Returns the lines stored.
    pub(crate) fn finish(mut self, tx: &rusqlite::Transaction<'_>, import_id: i64) -> Result<u64> {
        let e = native::err;
        for one in std::mem::take(&mut self.staged) {
            self.stage_one
                .execute(rusqlite::params_from_iter(one.iter()))
                .map_err(e)?;
        }
        let any = self.any;
        drop(self);
        let earlier: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM order_items WHERE import_id <> ?1)",
                [import_id],
                |r| r.get(0),
            )
            .map_err(e)?;
        // An id-less line's order key is the one its order row was given (the occurrence numbering).
        let stored = tx.execute(
            "INSERT INTO order_items (ckey, okey, pkey, day, quantity, amount, cancelled, import_id) \
             SELECT i.ckey, COALESCE(d.okey, i.okey) AS k, i.pkey, MIN(i.day), SUM(i.quantity), \
                    SUM(i.amount), MAX(i.cancelled), ?1 \
             FROM temp.item_stage i \
             LEFT JOIN temp.import_distinct d ON d.srow = i.srow \
             WHERE EXISTS (SELECT 1 FROM orders o WHERE o.ckey = i.ckey AND o.okey = COALESCE(d.okey, i.okey)) \
             GROUP BY i.ckey, k, i.pkey ORDER BY i.ckey, k, i.pkey \
             ON CONFLICT (ckey, okey, pkey) DO UPDATE SET day = excluded.day, \
               quantity = excluded.quantity, amount = excluded.amount, \
               cancelled = excluded.cancelled, import_id = excluded.import_id",
            [import_id],
        )
        .map_err(e)?;
        // A file without product lines says nothing about its orders' lines (they may come from
        // an order-lines import): only a file with lines replaces the lines of its orders.
        if earlier && any {
            tx.execute(
                "DELETE FROM order_items WHERE import_id <> ?1 AND EXISTS (SELECT 1 FROM orders o \
                 WHERE o.ckey = order_items.ckey AND o.okey = order_items.okey AND o.import_id = ?1)",
                [import_id],
            )
            .map_err(e)?;
        }
        tx.execute_batch("DROP TABLE temp.item_stage").map_err(e)?;
        Ok(stored as u64)
    }
}

/// The PostgreSQL staging table of an import's product lines (the columns of SQLite's
/// `temp.item_stage`), and of the products they name.
pub(crate) const PG_STAGE: &str = "CREATE TEMP TABLE item_stage (ckey BIGINT NOT NULL, \
     okey BIGINT NOT NULL, srow BIGINT NOT NULL, pkey BIGINT NOT NULL, day BIGINT NOT NULL, \
     quantity BIGINT NOT NULL, amount BIGINT NOT NULL, cancelled BIGINT NOT NULL) ON COMMIT DROP; \
     CREATE TEMP TABLE item_products (key BIGINT NOT NULL, id TEXT NOT NULL, name TEXT) ON COMMIT DROP";

/// The columns of `item_stage`, in COPY order.
pub(crate) const PG_STAGE_COLS: &str = "ckey, okey, srow, pkey, day, quantity, amount, cancelled";

/// The PostgreSQL line-items writer of the import's reading thread: product lines as COPY text
/// handed to the staging COPY in chunks; the products named, first time seen, kept for
/// [`pg_finish`].
pub(crate) struct PgItems {
    buf: String,
    out: tokio::sync::mpsc::Sender<String>,
    products: Vec<(i64, String, Option<String>)>,
    seen: FxHashSet<i64>,
    any: bool,
}

/// What [`PgItems`] leaves for [`pg_finish`].
pub(crate) struct PgItemsRead {
    products: Vec<(i64, String, Option<String>)>,
    any: bool,
}

impl PgItems {
    pub(crate) fn new(out: tokio::sync::mpsc::Sender<String>) -> Self {
        Self {
            buf: String::new(),
            out,
            products: Vec::new(),
            seen: FxHashSet::default(),
            any: false,
        }
    }

    /// [`SqliteItems::push`], as COPY text.
    pub(crate) fn push(&mut self, ckey: i64, line: &OrderLine, srow: Option<i64>) -> Result<()> {
        use std::fmt::Write as _;
        let Some(item) = &line.item else {
            return Ok(());
        };
        self.any = true;
        if self.seen.insert(item.product_key) {
            self.products
                .push((item.product_key, item.product_id.clone(), item.name.clone()));
        }
        for (i, v) in staged_line(ckey, line, item, srow).iter().enumerate() {
            let _ = write!(self.buf, "{}{v}", if i == 0 { "" } else { "\t" });
        }
        self.buf.push('\n');
        if self.buf.len() >= 1 << 20 {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<()> {
        self.out
            .blocking_send(std::mem::take(&mut self.buf))
            .map_err(|_| crate::StoreError::Corrupt("the import's connection stopped".into()))
    }

    /// Hands over the last lines; the staging COPY ends when this is dropped.
    pub(crate) fn finish(mut self) -> Result<PgItemsRead> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(PgItemsRead {
            products: self.products,
            any: self.any,
        })
    }
}

/// [`SqliteItems::finish`] on PostgreSQL (after the orders and `import_distinct` are written):
/// the products named, then the staged lines merged into `order_items`. Returns the lines stored.
pub(crate) async fn pg_finish(
    tx: &mut sqlx::PgConnection,
    import_id: i64,
    now: i64,
    read: PgItemsRead,
) -> Result<u64> {
    if !read.products.is_empty() {
        let mut text = String::new();
        for (key, id, name) in &read.products {
            text.push_str(&key.to_string());
            text.push('\t');
            crate::import::copy_field(&mut text, Some(id));
            text.push('\t');
            crate::import::copy_field(&mut text, name.as_deref());
            text.push('\n');
        }
        let mut copy = tx
            .copy_in_raw("COPY item_products (key, id, name) FROM STDIN")
            .await?;
        copy.send(text.into_bytes()).await?;
        copy.finish().await?;
        sqlx::query(
            "INSERT INTO products (key, id, name, updated_at) \
             SELECT key, id, name, $1 FROM item_products \
             ON CONFLICT (key) DO UPDATE SET \
               name = CASE WHEN products.in_catalogue = 1 THEN products.name \
                           ELSE COALESCE(excluded.name, products.name) END",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    if !read.any {
        return Ok(0);
    }
    let earlier: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM order_items WHERE import_id <> $1)")
            .bind(import_id)
            .fetch_one(&mut *tx)
            .await?;
    // An id-less line's order key is the one its order row was given (the occurrence numbering).
    let stored = sqlx::query(
        "INSERT INTO order_items (ckey, okey, pkey, day, quantity, amount, cancelled, import_id) \
         SELECT i.ckey, COALESCE(d.okey, i.okey), i.pkey, MIN(i.day), SUM(i.quantity)::BIGINT, \
                SUM(i.amount)::BIGINT, MAX(i.cancelled), $1 \
         FROM item_stage i \
         LEFT JOIN import_distinct d ON d.srow = i.srow \
         WHERE EXISTS (SELECT 1 FROM orders o WHERE o.ckey = i.ckey AND o.okey = COALESCE(d.okey, i.okey)) \
         GROUP BY i.ckey, COALESCE(d.okey, i.okey), i.pkey \
         ON CONFLICT (ckey, okey, pkey) DO UPDATE SET day = excluded.day, \
           quantity = excluded.quantity, amount = excluded.amount, \
           cancelled = excluded.cancelled, import_id = excluded.import_id",
    )
    .bind(import_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // A file without product lines says nothing about its orders' lines (see SQLite's).
    if earlier {
        sqlx::query(
            "DELETE FROM order_items i USING orders o \
             WHERE o.ckey = i.ckey AND o.okey = i.okey AND o.import_id = $1 AND i.import_id <> $1",
        )
        .bind(import_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(stored)
}
