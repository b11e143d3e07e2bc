//! Order lines and products written by the orders import, in the import's own transaction: a
//! line-items writer beside the orders writer of [`crate::import`]. Each product line of the file
//! is staged, then merged into `order_items` keyed by (customer key, order key, product key) with
//! the orders' rules — lines of one order and product add up within an import, rows of earlier
//! imports are replaced, never added to, and the lines an earlier import stored for an order this
//! import rewrote are removed when the file has product lines at all — and every product named gets a `products` row (the catalogue's
//! own fields are never overwritten by an order's product name).

use retain_core::import::{LineMode, OrderLine};
use rustc_hash::FxHashSet;

use crate::{native, Result};

/// Rows per multi-row insert into the item staging table (8 parameters each).
const ITEM_ROWS: usize = 100;

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
        let srow = if line.mode == LineMode::Distinct {
            srow.unwrap_or(-1)
        } else {
            -1
        };
        self.staged.push([
            ckey,
            line.order_key,
            srow,
            item.product_key,
            i64::from(line.day),
            item.quantity,
            item.amount,
            i64::from(item.cancelled),
        ]);
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

/// The PostgreSQL staging columns of a line's product line, in COPY text (after a tab):
/// pkey, product id, name, quantity, amount, cancelled — `\N` when the line has none.
pub(crate) fn copy_item_fields(buf: &mut String, line: &OrderLine) {
    match &line.item {
        None => buf.push_str("\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N"),
        Some(i) => {
            buf.push('\t');
            buf.push_str(&i.product_key.to_string());
            buf.push('\t');
            crate::import::copy_field(buf, Some(&i.product_id));
            buf.push('\t');
            crate::import::copy_field(buf, i.name.as_deref());
            buf.push_str(&format!(
                "\t{}\t{}\t{}",
                i.quantity, i.amount, i.cancelled as i64
            ));
        }
    }
}

/// The PostgreSQL staging table's product-line columns.
pub(crate) const PG_STAGE_ITEM_COLS: &str = ", pkey BIGINT, pid TEXT, pname TEXT, iqty BIGINT, \
     iamount BIGINT, icancelled BIGINT";

/// Merges the staged product lines on PostgreSQL (after the orders merge): products, then
/// order lines with the orders' occurrence numbering for id-less rows, then the lines earlier
/// imports stored for orders this import rewrote. Returns the lines stored.
pub(crate) async fn pg_merge(tx: &mut sqlx::PgConnection, import_id: i64, now: i64) -> Result<u64> {
    sqlx::query(
        "INSERT INTO products (key, id, name, updated_at) \
         SELECT pkey, (ARRAY_AGG(pid ORDER BY seq DESC))[1], \
                (ARRAY_AGG(pname ORDER BY seq DESC) FILTER (WHERE pname IS NOT NULL))[1], $1 \
         FROM import_stage WHERE pkey IS NOT NULL GROUP BY pkey \
         ON CONFLICT (key) DO UPDATE SET \
           name = CASE WHEN products.in_catalogue = 1 THEN products.name \
                       ELSE COALESCE(excluded.name, products.name) END",
    )
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let stored = sqlx::query(
        "WITH s AS (SELECT c.key AS ckey, \
                     CASE WHEN st.mode = 0 \
                          THEN st.okey + ROW_NUMBER() OVER (PARTITION BY c.key, st.okey, st.mode = 3 ORDER BY st.seq) - 1 \
                          ELSE st.okey END AS okey, \
                     st.pkey, st.day, st.iqty, st.iamount, st.icancelled \
                   FROM import_stage st JOIN customers c ON c.id = st.cid) \
         INSERT INTO order_items (ckey, okey, pkey, day, quantity, amount, cancelled, import_id) \
         SELECT s.ckey, s.okey, s.pkey, MIN(s.day), SUM(s.iqty)::BIGINT, SUM(s.iamount)::BIGINT, \
                MAX(s.icancelled), $1 \
         FROM s WHERE s.pkey IS NOT NULL \
           AND EXISTS (SELECT 1 FROM orders o WHERE o.ckey = s.ckey AND o.okey = s.okey) \
         GROUP BY s.ckey, s.okey, s.pkey \
         ON CONFLICT (ckey, okey, pkey) DO UPDATE SET day = excluded.day, \
           quantity = excluded.quantity, amount = excluded.amount, \
           cancelled = excluded.cancelled, import_id = excluded.import_id",
    )
    .bind(import_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM order_items i USING orders o \
         WHERE o.ckey = i.ckey AND o.okey = i.okey AND o.import_id = $1 AND i.import_id <> $1 \
           AND EXISTS (SELECT 1 FROM import_stage WHERE pkey IS NOT NULL)",
    )
    .bind(import_id)
    .execute(&mut *tx)
    .await?;
    Ok(stored)
}
