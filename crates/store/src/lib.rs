//! `retain-store`: persistence. The only crate that knows SQL.
//!
//! [`Store`] wraps an `sqlx` `Any` pool so one set of queries runs on the embedded SQLite file
//! (the default) and on PostgreSQL (a shared workspace). Each domain keeps its queries in its own
//! module with its own `impl Store` block; schema changes are numbered SQL files per backend
//! under `migrations/`, applied in order by [`migrate`]. Writes that belong together run in one
//! transaction, so a failed import or send leaves nothing half-written.

mod audience;
mod candidates;
mod customers;
mod dbcopy;
mod deliverability;
mod events;
mod fleet;
mod idmap;
mod import;
mod items;
mod items_file;
mod keyed;
mod migrate;
mod native;
mod orders;
mod plans;
mod predictions;
mod products;
mod profile;
mod rows;
mod segments;
mod sends;
mod sequences;
mod spill;
mod stats;
mod suppressions;
mod uplift;
mod web_sessions;

use std::path::Path;
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

pub use audience::AudienceMember;
pub use candidates::{PlanCandidate, PlanCandidates};
pub use customers::{CustomerRow, CustomersImported};
pub use dbcopy::TableCopy;
pub use deliverability::{
    email_domain, CampaignDeliverability, DeliverabilityCounts, DeliverabilityEvent,
    DeliverabilityKind, NewDeliverabilityEvent,
};
pub use events::{EventKind, EventRecord, NewEvent};
pub use fleet::{ScheduleRecord, WorkerRecord};
pub use import::OrdersImported;
pub use items_file::ItemsImported;
pub use migrate::MigrationStatus;
pub use orders::ImportRecord;
pub use plans::{NewPlan, NewPlanCampaign, PlanCampaignRecord, PlanMember, PlanRecord, PlanState};
pub use predictions::{
    NewPredictionRun, PredictionBound, PredictionPoint, PredictionRunRecord, StoredPrediction,
};
pub use products::{OrderItemRow, ProductRow, StoredDue};
pub use profile::{
    CampaignReceived, CustomerProfile, Erasure, ProfileEvent, ProfilePrediction,
    SegmentHistoryEntry, ERASED_PREFIX,
};
pub use segments::{
    KeyedAssignment, NewSegmentRun, SegmentAssignmentRow, SegmentExportRow, SegmentProfileRow,
    SegmentRunRecord,
};
pub use sends::{
    CampaignSendState, Claim, ClaimedSend, ConsentCheck, NewSend, SendCounts, SendFailure,
    SendLease, SendLedger, SendRecord, SendState,
};
pub use sequences::{step_ledger_id, RecipientActivity, StepRecord, VariantAssignment};
pub use stats::{CustomerKeys, CustomerStats};
pub use suppressions::{Suppression, SuppressionList};
pub use uplift::{UpliftCampaign, UpliftMemberRow, UpliftModelRecord};
pub use web_sessions::WebSessionRecord;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("unsupported database URL '{0}': expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Native(String),
    #[error(transparent)]
    Import(#[from] retain_core::import::ImportError),
    #[error("no customer {0}: rows name customers by an id the store does not hold")]
    UnknownCustomer(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The database of a workspace.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The database URL as opened (PostgreSQL's bulk path opens its own connection with it).
    url: String,
    /// The SQLite file, for the native bulk paths.
    sqlite_file: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens (creating and migrating if needed) the database at `url`: `sqlite://PATH` or
    /// `postgres://…`.
    pub async fn open(url: &str) -> Result<Self> {
        let store = Self::open_without_migrating(url).await?;
        migrate::run(&store).await?;
        Ok(store)
    }

    /// Opens the database at `url` (creating an empty SQLite file if needed) without applying
    /// migrations: for `retain db status`, which reports what is pending.
    pub async fn open_without_migrating(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_string(),
        };
        let sqlite_file = match backend {
            Backend::Sqlite => {
                let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
                let path = rest.split('?').next().unwrap_or(rest);
                Some(std::path::PathBuf::from(path))
            }
            Backend::Postgres => None,
        };
        let opts = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        Ok(Self {
            pool,
            backend,
            url,
            sqlite_file,
        })
    }

    /// Applies pending migrations (what [`Store::open`] does).
    pub async fn migrate(&self) -> Result<()> {
        migrate::run(self).await
    }

    /// Opens the embedded SQLite database at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        Self::open(&format!("sqlite://{}", path.display())).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for the store's own modules.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// After a bulk write on PostgreSQL: fresh planner statistics for `tables` (`ANALYZE`), so
    /// the next statements are planned for the rows just written rather than for the table as
    /// it was (with autovacuum off, or before it comes round, a table filled since its last
    /// `ANALYZE` is planned as if nearly empty: `plan` on 10M orders took 12.9 s instead of
    /// 8.8 s). Best effort: the data is committed before, so a failure here changes nothing and
    /// is not reported. Nothing to do on SQLite, whose plans here do not rest on statistics.
    pub(crate) async fn refresh_statistics(&self, tables: &[&str]) {
        if self.backend == Backend::Postgres && !tables.is_empty() {
            let _ = sqlx::query(&format!("ANALYZE {}", tables.join(", ")))
                .execute(&self.pool)
                .await;
        }
    }

    /// Closes all connections (flushes SQLite's WAL on the last one).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Collects a query's rows through `f` as they stream in, so the raw rows of a large table are
/// never all held at once (a million customers' rows take several times their mapped size).
pub(crate) async fn collect_rows<'q, T>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    pool: &AnyPool,
    mut f: impl FnMut(&sqlx::any::AnyRow) -> Result<T>,
) -> Result<Vec<T>> {
    use futures_util::TryStreamExt;
    let mut out = Vec::new();
    let mut rows = q.fetch(pool);
    while let Some(r) = rows.try_next().await? {
        out.push(f(&r)?);
    }
    Ok(out)
}

/// Now as Unix seconds.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Store {
    /// The VALUES list of a multi-row insert in this backend's fastest placeholder style: `?` on
    /// SQLite (binding `$N` names costs SQLite a linear lookup per parameter, quadratic for a
    /// large batch), `$N` on PostgreSQL. Only for statements whose parameters are all in it.
    pub(crate) fn bulk_values(&self, rows: usize, cols: usize) -> String {
        match self.backend {
            Backend::Postgres => values_clause(rows, cols),
            Backend::Sqlite => {
                let row = format!("({})", vec!["?"; cols].join(","));
                vec![row; rows].join(",")
            }
        }
    }
}

/// `$start, $start+1, …` (`n` placeholders), for an `IN (…)` list or a row value.
pub(crate) fn in_list(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Builds `($1, $2, …), (…)` for a multi-row insert of `rows` rows of `cols` columns. Prefer
/// [`Store::bulk_values`] for large batches on SQLite.
pub(crate) fn values_clause(rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            s.push('$');
            s.push_str(&n.to_string());
            n += 1;
        }
        s.push(')');
    }
    s
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Stores for the unit tests: a fresh SQLite file, and a fresh PostgreSQL database per test
    //! (dropped when its guard goes) when `RETAIN_TEST_POSTGRES` names a server. With
    //! `RETAIN_REQUIRE_POSTGRES=1` (the test script sets it on machines that run PostgreSQL) a
    //! missing server fails the test; otherwise the test prints `SKIP: <test>: <why>`, which the
    //! test script lists in its summary.
    use super::*;

    /// A fresh SQLite store in a temp dir (kept alive by the returned guard).
    pub async fn sqlite() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(&dir.path().join("t.db"))
            .await
            .expect("open");
        (store, dir)
    }

    /// An order of one item at 10:00 on `day` (`YYYY-MM-DD`), with the customer's address.
    pub fn order(c: &str, day: &str, amount: f64) -> retain_core::Order {
        retain_core::Order {
            order_id: format!("{c}-{day}"),
            customer_id: c.into(),
            ordered_at: chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .expect("day")
                .and_hms_opt(10, 0, 0)
                .expect("time"),
            amount,
            items: 1,
            is_return: false,
            currency: None,
            email: Some(format!("{c}@example.com")),
            product: None,
        }
    }

    /// Creates customers with these ids (no orders), for rows that name customers.
    pub async fn customers(store: &Store, ids: &[&str]) {
        let rows: Vec<retain_core::Customer> = ids
            .iter()
            .map(|id| retain_core::Customer {
                id: id.to_string(),
                ..retain_core::Customer::default()
            })
            .collect();
        store
            .import_customers("customers.csv", &rows, (0, 0, 0))
            .await
            .expect("customers");
    }

    /// Stores an RFM segmentation run assigning `(customer, segment, r)` (f = 2, m = 3);
    /// creates the customers the store does not hold yet.
    pub async fn segment_run(store: &Store, assigned: &[(&str, &str, i64)]) -> i64 {
        let ids: Vec<&str> = assigned.iter().map(|a| a.0).collect();
        customers(store, &ids).await;
        let run = NewSegmentRun {
            method: "rfm".into(),
            k: 2,
            seed: 1,
            as_of: None,
            customers: assigned.len() as i64,
            params: "{}".into(),
            k_scores: "[]".into(),
            model: "{}".into(),
        };
        let rows: Vec<SegmentAssignmentRow> = assigned
            .iter()
            .map(|(c, seg, r)| SegmentAssignmentRow {
                customer_id: c.to_string(),
                cluster: 0,
                segment: seg.to_string(),
                r: *r,
                f: 2,
                m: 3,
            })
            .collect();
        store
            .save_segment_run(&run, &[], &rows)
            .await
            .expect("segments")
    }

    /// Whether PostgreSQL must be there (`RETAIN_REQUIRE_POSTGRES=1`).
    pub fn postgres_required() -> bool {
        std::env::var("RETAIN_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
    }

    /// Reports a skipped (part of a) test: panics when PostgreSQL is required, else writes
    /// `SKIP: <test>: <why>` straight to stderr (past the test harness's capture, so the test
    /// script sees it).
    pub fn skip(why: &str) {
        let test = std::thread::current()
            .name()
            .unwrap_or("<unnamed test>")
            .to_string();
        if postgres_required() {
            panic!("{test}: {why}, but RETAIN_REQUIRE_POSTGRES=1");
        }
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "SKIP: {test}: {why}");
    }

    /// Drops its test database (`WITH (FORCE)`: the store's connections may still be open).
    #[derive(Debug)]
    pub struct PgDb {
        base: String,
        name: String,
    }

    impl PgDb {
        /// The database's URL.
        pub fn url(&self) -> String {
            format!("{}/{}", self.base, self.name)
        }
    }

    impl Drop for PgDb {
        fn drop(&mut self) {
            let (base, name) = (self.base.clone(), self.name.clone());
            // Drop runs inside the test's runtime: use a thread with its own.
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let admin = AnyPoolOptions::new()
                        .max_connections(1)
                        .connect(&format!("{base}/postgres"))
                        .await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await?;
                    admin.close().await;
                    Ok::<_, sqlx::Error>(())
                })
            })
            .join();
            match dropped {
                Ok(Ok(())) => {}
                Ok(Err(e)) if !std::thread::panicking() => {
                    panic!("dropping test database {}: {e}", self.name)
                }
                _ => {}
            }
        }
    }

    /// A fresh PostgreSQL store in its own database, when `RETAIN_TEST_POSTGRES` names a server
    /// (e.g. `postgres://postgres@127.0.0.1:5432`); `None` otherwise (after [`skip`], which
    /// panics when PostgreSQL is required). The database is dropped with the returned guard.
    pub async fn postgres() -> Option<(Store, PgDb)> {
        let guard = postgres_database().await?;
        let store = Store::open(&guard.url()).await.expect("open pg");
        Some((store, guard))
    }

    /// A fresh, empty PostgreSQL database (no store opened on it yet), dropped with its guard.
    pub async fn postgres_database() -> Option<PgDb> {
        let Some(base) = std::env::var("RETAIN_TEST_POSTGRES")
            .ok()
            .filter(|b| !b.is_empty())
        else {
            skip("RETAIN_TEST_POSTGRES is not set, PostgreSQL not tested");
            return None;
        };
        let base = base.trim_end_matches('/').to_string();
        sqlx::any::install_default_drivers();
        let name = format!("retain_test_{}_{}", std::process::id(), rand_suffix());
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{base}/postgres"))
            .await
            .unwrap_or_else(|e| panic!("connect to RETAIN_TEST_POSTGRES ({base}): {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create db");
        admin.close().await;
        Some(PgDb { base, name })
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
        t * 1000 + N.fetch_add(1, Ordering::Relaxed)
    }
}
