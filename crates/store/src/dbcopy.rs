//! `retain db copy`: moves a whole workspace database to another one (SQLite ⇄ PostgreSQL)
//! losslessly. Both sides are migrated to the same version first; every table is streamed in
//! pages by its primary key (never a whole table in memory), inserted in batches, and then
//! checked: row counts and an order-independent checksum of every table's values, computed
//! on each side from what it holds.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Column, Row, TypeInfo, ValueRef};

use crate::{Backend, Result, Store, StoreError};

/// One table's copy, as checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCopy {
    pub table: String,
    pub source_rows: i64,
    pub target_rows: i64,
    /// Hex of the sum (mod 2^64) of every row's SHA-256 prefix: equal sets of rows, equal sums.
    pub source_checksum: String,
    pub target_checksum: String,
}

impl TableCopy {
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_checksum == self.target_checksum
    }
}

/// What a column holds, as the copy binds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Text,
    Blob,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Blob(Vec<u8>),
}

fn kind_of_decl(decl: &str) -> Kind {
    let d = decl.to_ascii_lowercase();
    if d.contains("int") || d.contains("serial") {
        Kind::Int
    } else if d.contains("real")
        || d.contains("double")
        || d.contains("float")
        || d.contains("numeric")
    {
        Kind::Float
    } else if d.contains("blob") || d.contains("bytea") {
        Kind::Blob
    } else {
        Kind::Text
    }
}

fn read(r: &AnyRow, i: usize, kind: Kind) -> Result<Value> {
    if r.try_get_raw(i)?.is_null() {
        return Ok(Value::Null);
    }
    let actual = r.column(i).type_info().name().to_ascii_lowercase();
    Ok(match kind {
        Kind::Int => match r.try_get::<i64, _>(i) {
            Ok(v) => Value::Int(v),
            Err(_) if actual.contains("real") || actual.contains("double") => {
                Value::Int(r.try_get::<f64, _>(i)? as i64)
            }
            Err(e) => return Err(e.into()),
        },
        Kind::Float => match r.try_get::<f64, _>(i) {
            Ok(v) => Value::Float(v),
            // SQLite stores whole REALs it was given as integers as INTEGER values.
            Err(_) => Value::Float(r.try_get::<i64, _>(i)? as f64),
        },
        Kind::Text => Value::Text(r.try_get::<String, _>(i)?),
        Kind::Blob => Value::Blob(r.try_get::<Vec<u8>, _>(i)?),
    })
}

/// A row's 64-bit digest (canonical over both backends).
fn digest(values: &[Value]) -> u64 {
    let mut h = Sha256::new();
    for v in values {
        match v {
            Value::Null => h.update([0u8]),
            Value::Int(i) => {
                h.update([1u8]);
                h.update(i.to_le_bytes());
            }
            Value::Float(f) => {
                h.update([2u8]);
                h.update(f.to_bits().to_le_bytes());
            }
            Value::Text(s) => {
                h.update([3u8]);
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            Value::Blob(b) => {
                h.update([4u8]);
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
        }
    }
    let out = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out[..8]);
    u64::from_le_bytes(first)
}

impl Store {
    /// User tables (not the migrations ledger), sorted by name.
    async fn user_tables(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = match self.backend() {
            Backend::Sqlite => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            ),
            Backend::Postgres => sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            ),
        }
        .fetch_all(self.pool())
        .await?;
        names.retain(|n| n != "retain_migrations");
        names.sort();
        Ok(names)
    }

    /// A table's columns (in order, with their kind) and primary-key columns.
    async fn table_shape(&self, table: &str) -> Result<(Vec<(String, Kind)>, Vec<String>)> {
        match self.backend() {
            Backend::Sqlite => {
                let rows = sqlx::query(&format!("PRAGMA table_info(\"{table}\")"))
                    .fetch_all(self.pool())
                    .await?;
                let mut cols = Vec::new();
                let mut pk: Vec<(i64, String)> = Vec::new();
                for r in rows {
                    let name: String = r.try_get(1)?;
                    let decl: String = r.try_get(2)?;
                    let k: i64 = r.try_get(5)?;
                    if k > 0 {
                        pk.push((k, name.clone()));
                    }
                    cols.push((name, kind_of_decl(&decl)));
                }
                pk.sort();
                let mut pk: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
                if pk.is_empty() {
                    pk.push("rowid".into());
                }
                Ok((cols, pk))
            }
            Backend::Postgres => {
                let rows = sqlx::query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(table)
                .fetch_all(self.pool())
                .await?;
                let cols = rows
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, kind_of_decl(&r.try_get::<String, _>(1)?))))
                    .collect::<Result<Vec<_>>>()?;
                let pk: Vec<String> = sqlx::query_scalar(
                    "SELECT a.attname::text FROM pg_index i \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = to_regclass($1) AND i.indisprimary \
                     ORDER BY array_position(i.indkey, a.attnum)",
                )
                .bind(table)
                .fetch_all(self.pool())
                .await?;
                if pk.is_empty() {
                    return Err(StoreError::Corrupt(format!(
                        "table {table} has no primary key: it cannot be copied in pages"
                    )));
                }
                Ok((cols, pk))
            }
        }
    }

    /// Reads a table page by page in primary-key order, calling `f` with each page's rows
    /// (values in `cols` order). The key columns' values drive the next page.
    async fn scan_table(
        &self,
        table: &str,
        cols: &[(String, Kind)],
        pk: &[String],
        page: usize,
        mut f: impl FnMut(Vec<Vec<Value>>) -> futures_util::future::BoxFuture<'static, Result<()>>,
    ) -> Result<()> {
        let list = cols
            .iter()
            .map(|(c, _)| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let keys = pk
            .iter()
            .map(|c| {
                if c == "rowid" {
                    c.clone()
                } else {
                    format!("\"{c}\"")
                }
            })
            .collect::<Vec<_>>();
        let key_kinds: Vec<Kind> = pk
            .iter()
            .map(|k| {
                cols.iter()
                    .find(|(c, _)| c == k)
                    .map(|(_, kind)| *kind)
                    .unwrap_or(Kind::Int)
            })
            .collect();
        let n = cols.len();
        let mut last: Option<Vec<Value>> = None;
        loop {
            let mut sql = format!("SELECT {list}, {} FROM \"{table}\"", keys.join(", "));
            if last.is_some() {
                let params = crate::in_list(1, keys.len());
                sql.push_str(&format!(" WHERE ({}) > ({params})", keys.join(", ")));
            }
            sql.push_str(&format!(" ORDER BY {} LIMIT {page}", keys.join(", ")));
            let mut q = sqlx::query(&sql);
            if let Some(l) = &last {
                for v in l {
                    q = bind(q, v);
                }
            }
            let rows = q.fetch_all(self.pool()).await?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let mut vals = Vec::with_capacity(n);
                for (i, (_, k)) in cols.iter().enumerate() {
                    vals.push(read(r, i, *k)?);
                }
                out.push(vals);
            }
            let r = &rows[rows.len() - 1];
            let mut key = Vec::with_capacity(keys.len());
            for (j, k) in key_kinds.iter().enumerate() {
                key.push(read(r, n + j, *k)?);
            }
            last = Some(key);
            let full = rows.len() == page;
            drop(rows);
            f(out).await?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Row count and checksum of a table, streamed.
    async fn table_checksum(
        &self,
        table: &str,
        cols: &[(String, Kind)],
        pk: &[String],
    ) -> Result<(i64, u64)> {
        let acc = std::sync::Arc::new(std::sync::Mutex::new((0i64, 0u64)));
        let a = acc.clone();
        self.scan_table(table, cols, pk, 5000, move |rows| {
            if let Ok(mut g) = a.lock() {
                for r in &rows {
                    g.0 += 1;
                    g.1 = g.1.wrapping_add(digest(r));
                }
            }
            Box::pin(async { Ok(()) })
        })
        .await?;
        let g = acc
            .lock()
            .map_err(|_| StoreError::Corrupt("checksum lock".into()))?;
        Ok(*g)
    }

    /// Copies every table of this database into `target`, which must be empty and migrated to
    /// the same versions. Returns each table's counts and checksums, read back from both sides.
    /// `progress(table, rows_copied)` is called after each page.
    pub async fn copy_to(
        &self,
        target: &Store,
        page: usize,
        mut progress: impl FnMut(&str, i64),
    ) -> Result<Vec<TableCopy>> {
        let mine = self.migration_status().await?;
        let theirs = target.migration_status().await?;
        let applied = |v: &[crate::MigrationStatus]| {
            v.iter()
                .filter(|m| m.applied_at.is_some())
                .map(|m| m.version)
                .collect::<Vec<_>>()
        };
        if applied(&mine) != applied(&theirs) {
            return Err(StoreError::Conflict(
                "source and target are at different migration versions: migrate both first".into(),
            ));
        }
        let tables = self.user_tables().await?;
        for t in &tables {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{t}\""))
                .fetch_one(target.pool())
                .await?;
            if n > 0 {
                return Err(StoreError::Conflict(format!(
                    "the target database is not empty (table {t} has {n} rows)"
                )));
            }
        }
        // Foreign keys are checked by the schema on both sides; rows are copied as they are, so
        // a consistent source gives a consistent target. Order: the referenced tables first.
        let order = ["customers", "plans", "segment_runs", "prediction_runs"];
        let mut sorted = tables.clone();
        sorted.sort_by_key(|t| {
            (
                order.iter().position(|o| o == t).unwrap_or(order.len()),
                t.clone(),
            )
        });
        let mut out = Vec::new();
        for t in &sorted {
            let (mut cols, pk) = self.table_shape(t).await?;
            // Columns by name: the backends may order them differently (ALTER TABLE history),
            // and the checksums must not depend on it.
            cols.sort_by(|a, b| a.0.cmp(&b.0));
            let (tcols, _) = target.table_shape(t).await?;
            // Bind by the target's declared kinds (the source's may be looser: SQLite).
            let kinds: Vec<(String, Kind)> = cols
                .iter()
                .map(|(c, k)| {
                    let tk = tcols.iter().find(|(tc, _)| tc == c).map(|(_, k)| *k);
                    (c.clone(), tk.unwrap_or(*k))
                })
                .collect();
            if tcols.len() != cols.len() {
                return Err(StoreError::Conflict(format!(
                    "table {t}: {} columns here, {} in the target",
                    cols.len(),
                    tcols.len()
                )));
            }
            let copied = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
            let tgt = target.clone();
            let table = t.clone();
            let colnames: Vec<String> = kinds.iter().map(|(c, _)| c.clone()).collect();
            let c2 = copied.clone();
            self.scan_table(t, &kinds, &pk, page, move |rows| {
                let tgt = tgt.clone();
                let table = table.clone();
                let colnames = colnames.clone();
                let c2 = c2.clone();
                Box::pin(async move { insert_rows(&tgt, &table, &colnames, rows, &c2).await })
            })
            .await?;
            progress(t, copied.load(std::sync::atomic::Ordering::Relaxed));
            if target.backend() == Backend::Postgres {
                target.fix_sequences(t).await?;
            }
            let (sn, sc) = self.table_checksum(t, &kinds, &pk).await?;
            let (tpk_cols, tpk) = target.table_shape(t).await?;
            let tk: Vec<(String, Kind)> = kinds.clone();
            let _ = tpk_cols;
            let (tn, tc) = target.table_checksum(t, &tk, &tpk).await?;
            out.push(TableCopy {
                table: t.clone(),
                source_rows: sn,
                target_rows: tn,
                source_checksum: format!("{sc:016x}"),
                target_checksum: format!("{tc:016x}"),
            });
        }
        out.sort_by(|a, b| a.table.cmp(&b.table));
        Ok(out)
    }

    /// After explicit ids were copied into PostgreSQL: serial columns continue after them.
    async fn fix_sequences(&self, table: &str) -> Result<()> {
        let serials: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() \
             AND table_name = $1 AND column_default LIKE 'nextval(%'",
        )
        .bind(table)
        .fetch_all(self.pool())
        .await?;
        for c in serials {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('\"{table}\"', '{c}'), COALESCE((SELECT MAX(\"{c}\") FROM \"{table}\"), 0) + 1, false)"
            ))
            .fetch_optional(self.pool())
            .await?;
        }
        Ok(())
    }
}

fn bind<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    v: &Value,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match v {
        Value::Null => q.bind(Option::<String>::None),
        Value::Int(i) => q.bind(*i),
        Value::Float(f) => q.bind(*f),
        Value::Text(s) => q.bind(s.clone()),
        Value::Blob(b) => q.bind(b.clone()),
    }
}

fn bind_typed<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    v: Value,
    kind: Kind,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match (v, kind) {
        (Value::Null, Kind::Int) => q.bind(Option::<i64>::None),
        (Value::Null, Kind::Float) => q.bind(Option::<f64>::None),
        (Value::Null, Kind::Blob) => q.bind(Option::<Vec<u8>>::None),
        (Value::Null, Kind::Text) => q.bind(Option::<String>::None),
        (Value::Int(i), _) => q.bind(i),
        (Value::Float(f), _) => q.bind(f),
        (Value::Text(s), _) => q.bind(s),
        (Value::Blob(b), _) => q.bind(b),
    }
}

async fn insert_rows(
    target: &Store,
    table: &str,
    cols: &[String],
    rows: Vec<Vec<Value>>,
    copied: &std::sync::atomic::AtomicI64,
) -> Result<()> {
    let (shape, _) = target.table_shape(table).await?;
    let kinds: Vec<Kind> = cols
        .iter()
        .map(|c| {
            shape
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, k)| *k)
                .unwrap_or(Kind::Text)
        })
        .collect();
    let list = cols
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let per = (900 / cols.len().max(1)).max(1);
    let mut tx = target.pool().begin().await?;
    let n = rows.len();
    let mut it = rows.into_iter().peekable();
    while it.peek().is_some() {
        let chunk: Vec<Vec<Value>> = it.by_ref().take(per).collect();
        let sql = format!(
            "INSERT INTO \"{table}\" ({list}) VALUES {}",
            target.bulk_values(chunk.len(), cols.len())
        );
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for (v, k) in row.into_iter().zip(&kinds) {
                q = bind_typed(q, v, *k);
            }
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    copied.fetch_add(n as i64, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;
    use crate::NewSend;

    /// A small workspace with rows in most tables: customers, orders (their aggregates),
    /// a segmentation run, suppressions, a ledger with a NULL-bearing row, a rate-limit row
    /// (a float), a worker and a schedule.
    async fn fill(store: &Store) {
        let orders: Vec<retain_core::Order> = (0..300)
            .map(|i| {
                test_support::order(
                    &format!("c{}", i % 40),
                    &format!("2024-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
                    10.0 + f64::from(i) * 0.37,
                )
            })
            .collect();
        store
            .import_orders("o.csv", &orders, (300, 300, 0), &|_| {})
            .await
            .expect("orders");
        test_support::segment_run(store, &[("c1", "champions", 5), ("c2", "lost", 1)]).await;
        store
            .suppress("x@y.io", retain_core::SuppressionReason::Complaint, "test")
            .await
            .expect("suppress");
        let sends: Vec<NewSend> = (0..25)
            .map(|i| NewSend {
                customer_id: format!("c{i}"),
                email: format!("c{i}@example.com"),
                message_id: format!("<m{i}@x>"),
                suppressed: (i == 3).then(|| "unsubscribed".to_string()),
            })
            .collect();
        store.queue_sends("k1", &sends).await.expect("queue");
        store.register_worker("w", "h", 1, 60).await.expect("w");
        store
            .reserve_rate("campaign:k1", 7.5, 3)
            .await
            .expect("rate");
        store
            .schedule_campaign("k1", 1_800_000_000)
            .await
            .expect("s");
    }

    #[tokio::test]
    async fn copies_sqlite_to_postgres_and_back_losslessly() {
        let (src, _dir) = test_support::sqlite().await;
        fill(&src).await;
        let Some((pg, _db)) = test_support::postgres().await else {
            return;
        };
        let mut pages = 0;
        let there = src
            .copy_to(&pg, 7, |_, _| pages += 1)
            .await
            .expect("copy to pg");
        assert!(pages > 5);
        for t in &there {
            assert!(t.matches(), "{t:?}");
        }
        let rows = |v: &[TableCopy], name: &str| {
            v.iter()
                .find(|t| t.table == name)
                .map(|t| t.target_rows)
                .unwrap_or(-1)
        };
        assert_eq!(rows(&there, "orders"), 300);
        assert_eq!(rows(&there, "sends"), 25);
        assert_eq!(rows(&there, "customers"), 40);
        // The copy is usable: the ledger reads the same, and new rows get new ids.
        assert_eq!(
            pg.send_counts("k1").await.expect("c"),
            src.send_counts("k1").await.expect("c")
        );
        let added = pg
            .queue_sends(
                "k2",
                &[NewSend {
                    customer_id: "c1".into(),
                    email: "c1@example.com".into(),
                    message_id: "<n@x>".into(),
                    suppressed: None,
                }],
            )
            .await
            .expect("new row after copy");
        assert_eq!(added, 1);
        // A non-empty target is refused.
        assert!(src.copy_to(&pg, 100, |_, _| {}).await.is_err());
        // And back into a fresh SQLite file: the same checksums as the original.
        let (back, _dir2) = test_support::sqlite().await;
        sqlx::query("DELETE FROM sends WHERE campaign_id = 'k2'")
            .execute(pg.pool())
            .await
            .expect("undo");
        let returned = pg.copy_to(&back, 1000, |_, _| {}).await.expect("copy back");
        for (a, b) in there.iter().zip(&returned) {
            assert_eq!(a.table, b.table);
            assert!(b.matches(), "{b:?}");
            assert_eq!(a.source_checksum, b.target_checksum, "{}", a.table);
        }
    }
}
