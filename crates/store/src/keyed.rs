//! Bulk writes of per-customer rows (segment assignments, predictions, plan members) that the
//! callers name by external customer id and the tables key by the integer customer key: the
//! database resolves each id to its key as it inserts (one multi-row `INSERT … SELECT` joining
//! the `customers` table), and a row whose id names no customer is an error, not a silent drop.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

use crate::{Backend, Result, StoreError};

/// A table written by customer id: its name and the columns after `ckey`, with the SQL type each
/// value is cast to on PostgreSQL (whose `VALUES` lists would otherwise type parameters as text).
pub(crate) struct KeyedTable {
    pub table: &'static str,
    pub cols: &'static [(&'static str, &'static str)],
}

/// SQLite's limit on parameters per statement, with room to spare.
const MAX_PARAMS: usize = 32_000;

impl KeyedTable {
    /// Rows per statement.
    fn batch(&self) -> usize {
        MAX_PARAMS / (self.cols.len() + 1)
    }

    fn sql(&self, backend: Backend, rows: usize) -> String {
        let width = self.cols.len() + 1;
        let row = match backend {
            Backend::Sqlite => format!("({})", vec!["?"; width].join(",")),
            Backend::Postgres => String::new(),
        };
        let mut values = String::with_capacity(rows * (row.len() + 1).max(width * 24));
        let mut n = 1;
        for r in 0..rows {
            if r > 0 {
                values.push(',');
            }
            match backend {
                Backend::Sqlite => values.push_str(&row),
                Backend::Postgres => {
                    values.push('(');
                    let types = std::iter::once("TEXT").chain(self.cols.iter().map(|c| c.1));
                    for (i, ty) in types.enumerate() {
                        if i > 0 {
                            values.push(',');
                        }
                        values.push_str(&format!("CAST(${n} AS {ty})"));
                        n += 1;
                    }
                    values.push(')');
                }
            }
        }
        let names = self.cols.iter().map(|c| c.0).collect::<Vec<_>>().join(", ");
        let picks = (2..=width)
            .map(|i| format!("v.column{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {} (ckey, {names}) SELECT c.key, {picks} FROM (VALUES {values}) AS v \
             JOIN customers c ON c.id = v.column1",
            self.table
        )
    }

    /// Inserts `rows` on `conn` (normally inside the caller's transaction): `id` gives a row's
    /// customer id (bound first), `bind` binds the row's other columns in `cols` order.
    pub(crate) async fn insert<T>(
        &self,
        conn: &mut sqlx::AnyConnection,
        backend: Backend,
        rows: &[T],
        id: impl for<'q> Fn(&'q T) -> &'q str,
        bind: impl for<'q> Fn(
            Query<'q, Any, AnyArguments<'q>>,
            &'q T,
        ) -> Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<()> {
        let batch = self.batch();
        let full = self.sql(backend, batch);
        for chunk in rows.chunks(batch) {
            let partial;
            let sql = if chunk.len() == batch {
                &full
            } else {
                partial = self.sql(backend, chunk.len());
                &partial
            };
            let mut q = sqlx::query(sql);
            for row in chunk {
                q = bind(q.bind(id(row)), row);
            }
            let done = q.execute(&mut *conn).await?.rows_affected();
            if done != chunk.len() as u64 {
                // Name one of the missing customers (rare path: a second lookup is fine).
                let mut missing = None;
                for row in chunk {
                    let found: Option<i64> =
                        sqlx::query_scalar("SELECT key FROM customers WHERE id = $1")
                            .bind(id(row))
                            .fetch_optional(&mut *conn)
                            .await?;
                    if found.is_none() {
                        missing = Some(id(row).to_string());
                        break;
                    }
                }
                return Err(StoreError::UnknownCustomer(missing.unwrap_or_else(|| {
                    format!("{} of {} rows", chunk.len() as u64 - done, chunk.len())
                })));
            }
        }
        Ok(())
    }
}
