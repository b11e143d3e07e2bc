//! Backend-neutral statements for the store's bulk paths: bound values ([`Val`]), rows read by
//! position ([`DbRow`]), whole-result reads ([`Store::read_rows`]) and write transactions
//! ([`WriteTx`]).
//!
//! On PostgreSQL reads go through the sqlx pool, and a write transaction holds a connection of
//! its own, whose bulk inserts go by `COPY`. On the embedded SQLite file the same SQL
//! runs on a native rusqlite connection: sqlx's SQLite driver hands every row and every bound
//! value across threads one at a time, which at 10⁶ customers costs more than the work itself.
//! A query is written once, its values listed once, its rows mapped once; only the executor
//! differs. SQL uses `$N` placeholders in order of first use, which both backends accept.

use futures_util::TryStreamExt;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Connection as _, Postgres, Row};

use crate::{Result, Store, StoreError};

/// A value bound to a statement. Nulls are typed (PostgreSQL checks parameter types).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val<'a> {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<&'a str>),
}

impl From<i64> for Val<'_> {
    fn from(v: i64) -> Self {
        Val::Int(Some(v))
    }
}
impl From<Option<i64>> for Val<'_> {
    fn from(v: Option<i64>) -> Self {
        Val::Int(v)
    }
}
impl From<f64> for Val<'_> {
    fn from(v: f64) -> Self {
        Val::Real(Some(v))
    }
}
impl From<Option<f64>> for Val<'_> {
    fn from(v: Option<f64>) -> Self {
        Val::Real(v)
    }
}
impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Val<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Val::Text(v)
    }
}

/// An owned [`Val`], for reads that run on another thread.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OwnedVal {
    Int(Option<i64>),
    Text(Option<String>),
}

impl OwnedVal {
    fn as_val(&self) -> Val<'_> {
        match self {
            OwnedVal::Int(v) => Val::Int(*v),
            OwnedVal::Text(v) => Val::Text(v.as_deref()),
        }
    }
}

fn bind_pg<'q>(
    q: Query<'q, Postgres, sqlx::postgres::PgArguments>,
    v: Val<'q>,
) -> Query<'q, Postgres, sqlx::postgres::PgArguments> {
    match v {
        Val::Int(v) => q.bind(v),
        Val::Real(v) => q.bind(v),
        Val::Text(v) => q.bind(v),
    }
}

fn bind_sqlx<'q>(
    q: Query<'q, Any, AnyArguments<'q>>,
    v: Val<'q>,
) -> Query<'q, Any, AnyArguments<'q>> {
    match v {
        Val::Int(v) => q.bind(v),
        Val::Real(v) => q.bind(v),
        Val::Text(v) => q.bind(v),
    }
}

pub(crate) fn bind_native(stmt: &mut rusqlite::Statement<'_>, at: usize, v: Val<'_>) -> Result<()> {
    let r = match v {
        Val::Int(v) => stmt.raw_bind_parameter(at, v),
        Val::Real(v) => stmt.raw_bind_parameter(at, v),
        Val::Text(v) => stmt.raw_bind_parameter(at, v),
    };
    r.map_err(crate::native::err)
}

/// A result row read by column position, whichever backend produced it.
pub(crate) trait DbRow {
    fn int(&self, i: usize) -> Result<i64>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn real(&self, i: usize) -> Result<f64>;
    fn opt_real(&self, i: usize) -> Result<Option<f64>>;
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
}

impl DbRow for AnyRow {
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn real(&self, i: usize) -> Result<f64> {
        Ok(self.try_get(i)?)
    }
    fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        Ok(self.try_get(i)?)
    }
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
}

impl DbRow for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<i64> {
        self.get(i).map_err(crate::native::err)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.get(i).map_err(crate::native::err)
    }
    fn real(&self, i: usize) -> Result<f64> {
        self.get(i).map_err(crate::native::err)
    }
    fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        self.get(i).map_err(crate::native::err)
    }
    fn text(&self, i: usize) -> Result<String> {
        self.get(i).map_err(crate::native::err)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.get(i).map_err(crate::native::err)
    }
}

impl Store {
    /// Every row of `sql` (with `binds`), mapped by `map`, in the order the database returns
    /// them. On SQLite the query runs on a native read connection on a blocking thread, where
    /// `$N` placeholders are numbered by first appearance: write them in order.
    pub(crate) async fn read_rows<T, F>(
        &self,
        sql: String,
        binds: Vec<OwnedVal>,
        map: F,
    ) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(&dyn DbRow) -> Result<T> + Send + 'static,
    {
        match self.sqlite_path() {
            Some(path) => {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || -> Result<Vec<T>> {
                    let conn = crate::native::open_read(&path)?;
                    let mut stmt = conn.prepare(&sql).map_err(crate::native::err)?;
                    for (i, v) in binds.iter().enumerate() {
                        bind_native(&mut stmt, i + 1, v.as_val())?;
                    }
                    let mut rows = stmt.raw_query();
                    let mut out = Vec::new();
                    while let Some(r) = rows.next().map_err(crate::native::err)? {
                        out.push(map(r)?);
                    }
                    Ok(out)
                })
                .await
                .map_err(|e| StoreError::Corrupt(format!("reader task failed: {e}")))?
            }
            None => {
                let mut q = sqlx::query(&sql);
                for v in &binds {
                    q = bind_sqlx(q, v.as_val());
                }
                let mut out = Vec::new();
                let mut rows = q.fetch(self.pool());
                while let Some(r) = rows.try_next().await? {
                    out.push(map(&r)?);
                }
                Ok(out)
            }
        }
    }

    /// Starts a write transaction: on SQLite a native connection holding the write lock
    /// (`BEGIN IMMEDIATE`), on PostgreSQL a connection of its own (not the pool's: `COPY` needs
    /// the PostgreSQL driver), rolled back by the server if it is dropped uncommitted. The SQLite connection keeps its
    /// temporary storage in memory: a statement's journal (the pages one statement changed, so
    /// it can be undone alone) otherwise goes to a temporary file once it has spilled, one
    /// `pwrite` per page changed by every later statement — 6 s of system time in a 1M-row
    /// customers import. These transactions create no large temporary tables.
    pub(crate) async fn write_tx(&self) -> Result<WriteTx<'_>> {
        match self.sqlite_path() {
            Some(path) => {
                let conn = crate::native::open_write(path)?;
                blocking(|| conn.execute_batch("PRAGMA temp_store = MEMORY; BEGIN IMMEDIATE"))
                    .map_err(crate::native::err)?;
                Ok(WriteTx {
                    _store: std::marker::PhantomData,
                    inner: Some(Inner::Native(conn)),
                })
            }
            None => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                sqlx::query("BEGIN").execute(&mut conn).await?;
                Ok(WriteTx {
                    _store: std::marker::PhantomData,
                    inner: Some(Inner::Pg(Box::new(conn), 0)),
                })
            }
        }
    }
}

/// Runs blocking database work from async code: on a multi-threaded runtime the worker thread
/// hands its other tasks off first; on a current-thread runtime (tests) it just runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

enum Inner {
    /// The connection in its transaction, and how many staging tables it has made.
    Pg(Box<sqlx::PgConnection>, u32),
    Native(rusqlite::Connection),
}

/// A write transaction on either backend; rolled back when dropped without [`WriteTx::commit`].
pub(crate) struct WriteTx<'c> {
    /// Borrowed for the transaction's life, as its statements are the store's.
    _store: std::marker::PhantomData<&'c Store>,
    /// `None` once committed.
    inner: Option<Inner>,
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        if let Some(Inner::Native(conn)) = &self.inner {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
}

impl<'c> WriteTx<'c> {
    fn inner(&mut self) -> Result<&mut Inner> {
        self.inner
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("write transaction used after commit".into()))
    }

    /// Runs `f` on the native SQLite connection of this transaction, or returns `None` on
    /// PostgreSQL: for bulk paths that SQLite serves better with its own plan.
    pub(crate) fn with_native<R>(
        &mut self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<R>,
    ) -> Result<Option<R>> {
        match self.inner()? {
            Inner::Native(conn) => blocking(|| f(conn)).map(Some),
            Inner::Pg(..) => Ok(None),
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub(crate) async fn execute(&mut self, sql: &str, vals: &[Val<'_>]) -> Result<u64> {
        match self.inner()? {
            Inner::Pg(conn, _) => {
                let mut q = sqlx::query(sql);
                for v in vals {
                    q = bind_pg(q, *v);
                }
                Ok(q.execute(&mut **conn).await?.rows_affected())
            }
            Inner::Native(conn) => blocking(|| {
                let mut stmt = conn.prepare_cached(sql).map_err(crate::native::err)?;
                for (i, v) in vals.iter().enumerate() {
                    bind_native(&mut stmt, i + 1, *v)?;
                }
                Ok(stmt.raw_execute().map_err(crate::native::err)? as u64)
            }),
        }
    }

    /// The first column of the first row of `sql` as an integer (a count, a `RETURNING id`);
    /// `None` for no row or NULL.
    pub(crate) async fn fetch_int(&mut self, sql: &str, vals: &[Val<'_>]) -> Result<Option<i64>> {
        match self.inner()? {
            Inner::Pg(conn, _) => {
                let mut q = sqlx::query(sql);
                for v in vals {
                    q = bind_pg(q, *v);
                }
                match q.fetch_optional(&mut **conn).await? {
                    Some(r) => Ok(r.try_get::<Option<i64>, _>(0)?),
                    None => Ok(None),
                }
            }
            Inner::Native(conn) => blocking(|| {
                let mut stmt = conn.prepare_cached(sql).map_err(crate::native::err)?;
                for (i, v) in vals.iter().enumerate() {
                    bind_native(&mut stmt, i + 1, *v)?;
                }
                let mut rows = stmt.raw_query();
                match rows.next().map_err(crate::native::err)? {
                    Some(r) => r.get::<_, Option<i64>>(0).map_err(crate::native::err),
                    None => Ok(None),
                }
            }),
        }
    }

    /// Every row of `sql` as its first two columns, text.
    pub(crate) async fn fetch_text_pairs(
        &mut self,
        sql: &str,
        vals: &[Val<'_>],
    ) -> Result<Vec<(String, String)>> {
        match self.inner()? {
            Inner::Pg(conn, _) => {
                let mut q = sqlx::query(sql);
                for v in vals {
                    q = bind_pg(q, *v);
                }
                let rows = q.fetch_all(&mut **conn).await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect()
            }
            Inner::Native(conn) => blocking(|| {
                let mut stmt = conn.prepare_cached(sql).map_err(crate::native::err)?;
                for (i, v) in vals.iter().enumerate() {
                    bind_native(&mut stmt, i + 1, *v)?;
                }
                let mut rows = stmt.raw_query();
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(crate::native::err)? {
                    out.push((
                        r.get::<_, String>(0).map_err(crate::native::err)?,
                        r.get::<_, String>(1).map_err(crate::native::err)?,
                    ));
                }
                Ok(out)
            }),
        }
    }

    /// The first column of the first row of `sql` as text; `None` for no row or NULL.
    pub(crate) async fn fetch_text(
        &mut self,
        sql: &str,
        vals: &[Val<'_>],
    ) -> Result<Option<String>> {
        match self.inner()? {
            Inner::Pg(conn, _) => {
                let mut q = sqlx::query(sql);
                for v in vals {
                    q = bind_pg(q, *v);
                }
                match q.fetch_optional(&mut **conn).await? {
                    Some(r) => Ok(r.try_get::<Option<String>, _>(0)?),
                    None => Ok(None),
                }
            }
            Inner::Native(conn) => blocking(|| {
                let mut stmt = conn.prepare_cached(sql).map_err(crate::native::err)?;
                for (i, v) in vals.iter().enumerate() {
                    bind_native(&mut stmt, i + 1, *v)?;
                }
                let mut rows = stmt.raw_query();
                match rows.next().map_err(crate::native::err)? {
                    Some(r) => r.get::<_, Option<String>>(0).map_err(crate::native::err),
                    None => Ok(None),
                }
            }),
        }
    }

    /// Inserts many rows into `head` (`INSERT INTO table (columns…)`) of `width` columns:
    /// `row(i, out)` pushes row `i`'s values. On SQLite prepared multi-row statements
    /// ([`insert_native`]); on PostgreSQL by `COPY` ([`copy_insert`]).
    pub(crate) async fn insert_many<'v>(
        &mut self,
        head: &str,
        width: usize,
        len: usize,
        row: impl Fn(usize, &mut Vec<Val<'v>>),
    ) -> Result<()> {
        self.insert_many_then(head, "", width, len, row).await
    }

    /// [`WriteTx::insert_many`] with `tail` after the values (an `ON CONFLICT` clause).
    pub(crate) async fn insert_many_then<'v>(
        &mut self,
        head: &str,
        tail: &str,
        width: usize,
        len: usize,
        row: impl Fn(usize, &mut Vec<Val<'v>>),
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        match self.inner()? {
            Inner::Pg(conn, staged) => {
                *staged += 1;
                copy_insert(conn, *staged, head, tail, width, len, row).await
            }
            Inner::Native(conn) => blocking(|| insert_native(conn, head, tail, width, len, row)),
        }
    }

    pub(crate) async fn commit(mut self) -> Result<()> {
        match self.inner.take() {
            Some(Inner::Pg(mut conn, _)) => {
                sqlx::query("COMMIT").execute(&mut *conn).await?;
                // Closed cleanly: the server need not notice a dropped socket.
                Ok(conn.close().await?)
            }
            Some(Inner::Native(conn)) => {
                blocking(|| conn.execute_batch("COMMIT")).map_err(crate::native::err)
            }
            None => Ok(()),
        }
    }
}

/// Inserts `len` rows of `width` values (`row(i, out)` pushes row `i`'s) on a native SQLite
/// connection: `{head} VALUES (…), (…) {tail}`, NATIVE_ROWS rows to a statement (each execution
/// of a statement costs more than binding its values), the remainder one by one.
pub(crate) fn insert_native<'v>(
    conn: &rusqlite::Connection,
    head: &str,
    tail: &str,
    width: usize,
    len: usize,
    mut row: impl FnMut(usize, &mut Vec<Val<'v>>),
) -> Result<()> {
    let one = format!("({})", vec!["?"; width].join(","));
    let prepare = |rows: usize| {
        let values = vec![one.as_str(); rows].join(",");
        // Cached: the orders import calls this once per batch of merged rows.
        conn.prepare_cached(&format!("{head} VALUES {values} {tail}"))
            .map_err(crate::native::err)
    };
    let per = NATIVE_ROWS.min(MAX_PARAMS / width.max(1)).max(1);
    let mut vals = Vec::with_capacity(width * per);
    let mut run = |stmt: &mut rusqlite::CachedStatement<'_>, from: usize, to: usize| {
        vals.clear();
        for i in from..to {
            row(i, &mut vals);
        }
        for (j, v) in vals.iter().enumerate() {
            bind_native(stmt, j + 1, *v)?;
        }
        stmt.raw_execute().map_err(crate::native::err)?;
        Ok::<(), StoreError>(())
    };
    let whole = len - len % per;
    if whole > 0 {
        let mut stmt = prepare(per)?;
        for from in (0..whole).step_by(per) {
            run(&mut stmt, from, from + per)?;
        }
    }
    if whole < len {
        let mut stmt = prepare(1)?;
        for i in whole..len {
            run(&mut stmt, i, i + 1)?;
        }
    }
    Ok(())
}

/// Rows per statement of the native SQLite bulk insert.
const NATIVE_ROWS: usize = 32;

/// Parameters per multi-row statement (under SQLite's limit, with room; PostgreSQL's is 65,535).
pub(crate) const MAX_PARAMS: usize = 32_000;

/// [`WriteTx::insert_many_then`] on PostgreSQL: the rows go by `COPY` (text format) straight
/// into their table, or, with a `tail` (an `ON CONFLICT` rule), into a temporary table shaped
/// like the statement's columns and then into their table with one `{head} SELECT … {tail}`:
/// one round trip for the rows instead of one statement per few hundred rows. The staging table
/// (number `n` of this transaction) is dropped after.
async fn copy_insert<'v>(
    conn: &mut sqlx::PgConnection,
    n: u32,
    head: &str,
    tail: &str,
    width: usize,
    len: usize,
    row: impl Fn(usize, &mut Vec<Val<'v>>),
) -> Result<()> {
    let (table, columns) = insert_target(head)
        .ok_or_else(|| StoreError::Corrupt(format!("not a bulk insert: {head}")))?;
    // A plain insert copies straight into its table; an upsert through a staging table.
    let direct = tail.trim().is_empty();
    let stage = format!("bulk_stage_{n}");
    let picks = columns.as_deref().unwrap_or("*");
    if !direct {
        sqlx::query(&format!(
            "CREATE TEMPORARY TABLE {stage} AS SELECT {picks} FROM {table} WITH NO DATA"
        ))
        .execute(&mut *conn)
        .await?;
    }
    let cols = columns
        .as_deref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let into = if direct { table } else { stage.as_str() };
    let mut copy = conn
        .copy_in_raw(&format!("COPY {into}{cols} FROM STDIN"))
        .await?;
    use std::fmt::Write as _;
    let mut text = String::with_capacity(COPY_CHUNK + 4096);
    let mut vals = Vec::with_capacity(width);
    for i in 0..len {
        vals.clear();
        row(i, &mut vals);
        for (k, v) in vals.iter().enumerate() {
            if k > 0 {
                text.push('\t');
            }
            match *v {
                Val::Int(Some(x)) => {
                    let _ = write!(text, "{x}");
                }
                // Rust prints the shortest text that reads back as the same f64.
                Val::Real(Some(x)) if x.is_finite() => {
                    let _ = write!(text, "{x}");
                }
                Val::Real(Some(x)) if x.is_nan() => text.push_str("NaN"),
                Val::Real(Some(x)) if x > 0.0 => text.push_str("Infinity"),
                Val::Real(Some(_)) => text.push_str("-Infinity"),
                Val::Text(t) => crate::import::copy_field(&mut text, t),
                Val::Int(None) | Val::Real(None) => text.push_str("\\N"),
            }
        }
        text.push('\n');
        if text.len() >= COPY_CHUNK {
            copy.send(text.as_bytes()).await?;
            text.clear();
        }
    }
    if !text.is_empty() {
        copy.send(text.as_bytes()).await?;
    }
    copy.finish().await?;
    if !direct {
        sqlx::query(&format!("{head} SELECT {picks} FROM {stage} {tail}"))
            .execute(&mut *conn)
            .await?;
        sqlx::query(&format!("DROP TABLE {stage}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// COPY text is handed over at about this size.
const COPY_CHUNK: usize = 1 << 20;

/// The table and column list of `INSERT INTO table (a, b, …)` (`None` for the columns when the
/// statement lists none).
fn insert_target(head: &str) -> Option<(&str, Option<String>)> {
    let rest = head.trim().strip_prefix("INSERT INTO ")?.trim();
    match rest.split_once('(') {
        Some((table, cols)) => {
            let cols = cols.trim().strip_suffix(')')?;
            let list: Vec<&str> = cols.split(',').map(str::trim).collect();
            Some((table.trim(), Some(list.join(", "))))
        }
        None => Some((rest, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    #[test]
    fn insert_targets() {
        assert_eq!(
            insert_target("INSERT INTO t (a,b , c)"),
            Some(("t", Some("a, b, c".to_string())))
        );
        assert_eq!(
            insert_target("INSERT INTO keyed_stage"),
            Some(("keyed_stage", None))
        );
        assert_eq!(insert_target("UPDATE t SET a = 1"), None);
    }

    /// A row of the round-trip table: (i, r, t, n).
    type Stored = (Option<i64>, Option<f64>, Option<String>, i64);

    /// Values that COPY's text format must escape or spell specially, through `insert_many` and
    /// back: the same on both backends.
    async fn bulk_values_round_trip(store: Store) {
        let texts = [
            Some("tab\there"),
            Some("line\nbreak\r\n"),
            Some("back\\slash"),
            Some("\\N"),
            Some(""),
            None,
            Some("ünïcödé ✓"),
        ];
        let reals = [
            Some(0.1),
            Some(1e300),
            Some(-2.5e-10),
            None,
            Some(123456.789),
            Some(0.0),
            Some(f64::MIN_POSITIVE),
        ];
        let ints = [
            Some(i64::MIN),
            Some(i64::MAX),
            None,
            Some(0),
            Some(-1),
            Some(7),
            Some(42),
        ];
        let mut tx = store.write_tx().await.expect("tx");
        tx.execute(
            "CREATE TABLE bulk_t (i BIGINT, r DOUBLE PRECISION, t TEXT, n BIGINT NOT NULL)",
            &[],
        )
        .await
        .expect("create");
        tx.insert_many(
            "INSERT INTO bulk_t (n, t, r, i)",
            4,
            texts.len(),
            |k, out| {
                out.extend([
                    Val::from(k as i64),
                    Val::from(texts[k]),
                    Val::from(reals[k]),
                    Val::from(ints[k]),
                ]);
            },
        )
        .await
        .expect("insert");
        // An upsert in the same transaction (through a staging table on PostgreSQL): the
        // conflicting row takes the new text, the new row is added.
        tx.execute("CREATE UNIQUE INDEX bulk_t_n ON bulk_t (n)", &[])
            .await
            .expect("index");
        tx.insert_many_then(
            "INSERT INTO bulk_t (n, t)",
            "ON CONFLICT (n) DO UPDATE SET t = excluded.t",
            2,
            2,
            |k, out| {
                out.extend([
                    Val::from([6i64, 99][k]),
                    Val::from(["upserted", "again"][k]),
                ])
            },
        )
        .await
        .expect("upsert");
        tx.commit().await.expect("commit");
        let got = store
            .read_rows(
                "SELECT i, r, t, n FROM bulk_t ORDER BY n".to_string(),
                Vec::new(),
                |r| Ok((r.opt_int(0)?, r.opt_real(1)?, r.opt_text(2)?, r.int(3)?)),
            )
            .await
            .expect("read");
        let mut want: Vec<Stored> = (0..texts.len())
            .map(|k| (ints[k], reals[k], texts[k].map(String::from), k as i64))
            .collect();
        want[6].2 = Some("upserted".into());
        want.push((None, None, Some("again".into()), 99));
        assert_eq!(got, want, "{:?}", store.backend());
    }

    #[tokio::test]
    async fn bulk_values_round_trip_sqlite() {
        let (store, _dir) = test_support::sqlite().await;
        bulk_values_round_trip(store).await;
    }

    #[tokio::test]
    async fn bulk_values_round_trip_postgres() {
        if let Some((store, _db)) = test_support::postgres().await {
            bulk_values_round_trip(store).await;
        }
    }
}
