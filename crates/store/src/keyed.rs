//! Bulk writes of per-customer rows (segment assignments, predictions, plan members) that the
//! callers name by external customer id and the tables key by the integer customer key: the rows
//! are staged in a temporary table, then the database resolves each id to its key and inserts
//! them in key order (one `INSERT … SELECT` joining `customers`); a row whose id names no customer
//! is an error, not a silent drop. Runs in a [`WriteTx`]. On SQLite the connection resolves the
//! ids itself instead: the rows, sorted by id, are merged with one scan of the customers' id index,
//! then inserted in key order by one prepared statement (no staging table, no SQL sort). Several
//! groups of rows written at once (the members of each campaign of a plan) share that one scan.

use crate::rows::{Val, WriteTx};
use crate::{Result, StoreError};

/// A table written by customer id: its name and the columns after `ckey`, with their SQL types
/// (of the staging table's columns; valid on both backends).
pub(crate) struct KeyedTable {
    pub table: &'static str,
    pub cols: &'static [(&'static str, &'static str)],
}

impl KeyedTable {
    /// Inserts `len` rows in `tx`: `id(i)` is row `i`'s customer id, `row(i, out)` pushes its
    /// other columns in `cols` order.
    ///
    /// The rows are appended to a temporary staging table first, then moved into the table in
    /// one statement that resolves the ids and inserts in key order: the table's B-tree grows at
    /// its end instead of taking a million inserts at random places.
    pub(crate) async fn insert<'v>(
        &self,
        tx: &mut WriteTx<'_>,
        len: usize,
        id: impl Fn(usize) -> &'v str + Sync,
        row: impl Fn(usize, &mut Vec<Val<'v>>),
    ) -> Result<()> {
        self.insert_groups(tx, &[len], |_, i| id(i), |_, i, out| row(i, out))
            .await
    }

    /// [`KeyedTable::insert`] of several groups of rows (the members of each campaign of a plan):
    /// group `g` has `sizes[g]` rows, `id(g, i)` and `row(g, i, out)` as in `insert`. A customer
    /// may appear in several groups, once in each. On SQLite the ids of every group are resolved
    /// by one scan of the customers' id index, and the rows inserted group by group in key order.
    pub(crate) async fn insert_groups<'v>(
        &self,
        tx: &mut WriteTx<'_>,
        sizes: &[usize],
        id: impl Fn(usize, usize) -> &'v str + Sync,
        row: impl Fn(usize, usize, &mut Vec<Val<'v>>),
    ) -> Result<()> {
        let at: Vec<(usize, usize)> = sizes
            .iter()
            .enumerate()
            .flat_map(|(g, &n)| (0..n).map(move |i| (g, i)))
            .collect();
        if at.is_empty() {
            return Ok(());
        }
        let native = tx.with_native(|conn| {
            self.insert_native(
                conn,
                at.len(),
                &|k: usize| id(at[k].0, at[k].1),
                &|k: usize| at[k].0,
                &|k: usize, out: &mut Vec<Val<'v>>| row(at[k].0, at[k].1, out),
            )
        })?;
        if native.is_some() {
            return Ok(());
        }
        for (g, &len) in sizes.iter().enumerate() {
            if len > 0 {
                self.insert_staged(tx, len, |i| id(g, i), |i, out| row(g, i, out))
                    .await?;
            }
        }
        Ok(())
    }

    /// The portable path of [`KeyedTable::insert`]: a staging table and one `INSERT … SELECT`.
    async fn insert_staged<'v>(
        &self,
        tx: &mut WriteTx<'_>,
        len: usize,
        id: impl Fn(usize) -> &'v str,
        row: impl Fn(usize, &mut Vec<Val<'v>>),
    ) -> Result<()> {
        let columns = self
            .cols
            .iter()
            .map(|(name, ty)| format!("{name} {ty}"))
            .collect::<Vec<_>>()
            .join(", ");
        tx.execute("DROP TABLE IF EXISTS keyed_stage", &[]).await?;
        tx.execute(
            &format!("CREATE TEMPORARY TABLE keyed_stage (id TEXT NOT NULL, {columns})"),
            &[],
        )
        .await?;
        tx.insert_many(
            "INSERT INTO keyed_stage",
            self.cols.len() + 1,
            len,
            |i, out| {
                out.push(Val::from(id(i)));
                row(i, out);
            },
        )
        .await?;
        let names = self.cols.iter().map(|c| c.0).collect::<Vec<_>>().join(", ");
        let picks = self
            .cols
            .iter()
            .map(|c| format!("s.{}", c.0))
            .collect::<Vec<_>>()
            .join(", ");
        let done = tx
            .execute(
                &format!(
                    "INSERT INTO {} (ckey, {names}) SELECT c.key, {picks} FROM keyed_stage s \
                     JOIN customers c ON c.id = s.id ORDER BY c.key",
                    self.table
                ),
                &[],
            )
            .await?;
        if done != len as u64 {
            let missing = tx
                .fetch_text(
                    "SELECT s.id FROM keyed_stage s LEFT JOIN customers c ON c.id = s.id \
                     WHERE c.key IS NULL LIMIT 1",
                    &[],
                )
                .await?;
            return Err(StoreError::UnknownCustomer(
                missing.unwrap_or_else(|| format!("{} of {len} rows", len as u64 - done)),
            ));
        }
        tx.execute("DROP TABLE keyed_stage", &[]).await?;
        Ok(())
    }

    /// The SQLite path of [`KeyedTable::insert_groups`] on the transaction's connection, over
    /// the rows of every group at once (`group(i)` is row `i`'s group).
    fn insert_native<'v>(
        &self,
        conn: &rusqlite::Connection,
        len: usize,
        id: &(impl Fn(usize) -> &'v str + Sync),
        group: &impl Fn(usize) -> usize,
        row: &impl Fn(usize, &mut Vec<Val<'v>>),
    ) -> Result<()> {
        let err = crate::native::err;
        // The rows by id (callers usually pass them sorted already: checked in one pass).
        let by_id: Vec<usize> = if (1..len).all(|i| id(i - 1) <= id(i)) {
            (0..len).collect()
        } else {
            retain_core::by_id::order_by_id(len, id)
        };
        // Merge them with the customers' id index (SQLite's text order is byte order, as
        // Rust's), then put the matches in (group, key) order.
        let mut order: Vec<(usize, i64, usize)> = Vec::with_capacity(len);
        {
            let mut scan = conn
                .prepare("SELECT id, key FROM customers ORDER BY id")
                .map_err(err)?;
            let mut rows = scan.raw_query();
            let mut next = by_id.iter().copied().peekable();
            while let Some(&i) = next.peek() {
                let Some(r) = rows.next().map_err(err)? else {
                    break;
                };
                let stored = match r.get_ref(0).map_err(err)? {
                    rusqlite::types::ValueRef::Text(t) => t,
                    _ => continue,
                };
                let mut want = id(i).as_bytes();
                // Rows whose id sorts before this customer's name no customer.
                while want < stored {
                    next.next();
                    match next.peek() {
                        Some(&j) => want = id(j).as_bytes(),
                        None => break,
                    }
                }
                if want == stored {
                    // Every row of this id (one per group it is written to).
                    let key: i64 = r.get(1).map_err(err)?;
                    while let Some(&j) = next.peek().filter(|&&j| id(j).as_bytes() == stored) {
                        order.push((group(j), key, j));
                        next.next();
                    }
                }
            }
        }
        order.sort_unstable_by_key(|o| (o.0, o.1));
        if let Some(w) = order
            .windows(2)
            .find(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1))
        {
            return Err(StoreError::Conflict(format!(
                "customer {} appears twice in one write to {}",
                id(w[0].2),
                self.table
            )));
        }
        if order.len() != len {
            let mut seen = vec![false; len];
            for &(_, _, i) in &order {
                seen[i] = true;
            }
            let missing = seen.iter().position(|s| !s).map(|i| id(i).to_string());
            return Err(StoreError::UnknownCustomer(
                missing.unwrap_or_else(|| format!("{} of {len} rows", len - order.len())),
            ));
        }
        let names = self.cols.iter().map(|c| c.0).collect::<Vec<_>>().join(", ");
        crate::rows::insert_native(
            conn,
            &format!("INSERT INTO {} (ckey, {names})", self.table),
            "",
            self.cols.len() + 1,
            order.len(),
            |k, out| {
                let (_, key, i) = order[k];
                out.push(Val::from(key));
                row(i, out);
            },
        )?;
        Ok(())
    }
}
