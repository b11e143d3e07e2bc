//! Bulk writes of per-customer rows (segment assignments, predictions, plan members) that the
//! callers name by external customer id and the tables key by the integer customer key: the rows
//! are staged in a temporary table, then the database resolves each id to its key and inserts
//! them in key order (one `INSERT … SELECT` joining `customers`); a row whose id names no customer
//! is an error, not a silent drop.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

use crate::{Result, Store, StoreError};

/// A table written by customer id: its name and the columns after `ckey`, with their SQL types
/// (of the staging table's columns; valid on both backends).
pub(crate) struct KeyedTable {
    pub table: &'static str,
    pub cols: &'static [(&'static str, &'static str)],
}

/// SQLite's limit on parameters per statement, with room to spare.
const MAX_PARAMS: usize = 32_000;

impl KeyedTable {
    /// Rows per staging statement.
    fn batch(&self) -> usize {
        MAX_PARAMS / (self.cols.len() + 1)
    }

    /// Inserts `rows` on `conn` (normally inside the caller's transaction): `id` gives a row's
    /// customer id (bound first), `bind` binds the row's other columns in `cols` order.
    ///
    /// The rows are appended to a temporary staging table first, then moved into the table in
    /// one statement that resolves the ids and inserts in key order: the table's B-tree grows at
    /// its end instead of taking a million inserts at random places.
    pub(crate) async fn insert<T>(
        &self,
        conn: &mut sqlx::AnyConnection,
        store: &Store,
        rows: &[T],
        id: impl for<'q> Fn(&'q T) -> &'q str,
        bind: impl for<'q> Fn(
            Query<'q, Any, AnyArguments<'q>>,
            &'q T,
        ) -> Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let columns = self
            .cols
            .iter()
            .map(|(name, ty)| format!("{name} {ty}"))
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query("DROP TABLE IF EXISTS keyed_stage")
            .execute(&mut *conn)
            .await?;
        sqlx::query(&format!(
            "CREATE TEMPORARY TABLE keyed_stage (id TEXT NOT NULL, {columns})"
        ))
        .execute(&mut *conn)
        .await?;
        let batch = self.batch();
        let width = self.cols.len() + 1;
        let stage_sql = |rows| {
            format!(
                "INSERT INTO keyed_stage VALUES {}",
                store.bulk_values(rows, width)
            )
        };
        let full = stage_sql(batch);
        for chunk in rows.chunks(batch) {
            let partial;
            let sql = if chunk.len() == batch {
                &full
            } else {
                partial = stage_sql(chunk.len());
                &partial
            };
            let mut q = sqlx::query(sql);
            for row in chunk {
                q = bind(q.bind(id(row)), row);
            }
            q.execute(&mut *conn).await?;
        }
        let names = self.cols.iter().map(|c| c.0).collect::<Vec<_>>().join(", ");
        let picks = self
            .cols
            .iter()
            .map(|c| format!("s.{}", c.0))
            .collect::<Vec<_>>()
            .join(", ");
        let done = sqlx::query(&format!(
            "INSERT INTO {} (ckey, {names}) SELECT c.key, {picks} FROM keyed_stage s \
             JOIN customers c ON c.id = s.id ORDER BY c.key",
            self.table
        ))
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if done != rows.len() as u64 {
            let missing: Option<String> = sqlx::query_scalar(
                "SELECT s.id FROM keyed_stage s LEFT JOIN customers c ON c.id = s.id \
                 WHERE c.key IS NULL LIMIT 1",
            )
            .fetch_optional(&mut *conn)
            .await?;
            return Err(StoreError::UnknownCustomer(missing.unwrap_or_else(|| {
                format!("{} of {} rows", rows.len() as u64 - done, rows.len())
            })));
        }
        sqlx::query("DROP TABLE keyed_stage")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
