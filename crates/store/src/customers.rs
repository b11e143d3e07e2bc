//! Customers: the atomic, streamed upsert of an imported customers file and reading customers
//! back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::NaiveDate;
use retain_core::import::{
    stream_customers, CustomerFeed, CustomersSummary, ImportOptions, Reject,
};
use retain_core::Customer;
use sqlx::any::AnyRow;

use crate::rows::{DbRow, Val, WriteTx};
use crate::{now, Result, Store, StoreError};

/// A stored customer (alias kept for callers that want the storage view).
pub type CustomerRow = Customer;

pub(crate) const COLS: &str = "id, email, email_valid, first_name, last_name, subscribed, signup_date, locale, attributes, updated_at";

/// What [`Store::import_customers_file`] did.
#[derive(Debug, Clone, Default)]
pub struct CustomersImported {
    /// The import's id (0 when nothing was imported and nothing written).
    pub import_id: i64,
    /// Distinct customers of the file.
    pub customers: u64,
    pub summary: CustomersSummary,
}

impl Store {
    /// Records an import and upserts its customers in one transaction. Fields the file leaves
    /// empty keep their stored value; attributes are merged. `customers` has one entry per id
    /// (as [`retain_core::import::parse_customers`] gives them).
    pub async fn import_customers(
        &self,
        file: &str,
        customers: &[Customer],
        counts: (u64, u64, u64),
    ) -> Result<i64> {
        let t = now();
        let mut tx = self.write_tx().await?;
        let id = record_import(&mut tx, file, counts, t).await?;
        write_customers(&mut tx, customers, t).await?;
        tx.commit().await?;
        self.refresh_statistics(&["customers"]).await;
        Ok(id)
    }

    /// Imports a customers file of any size, streamed: all or nothing, in one transaction, with
    /// memory that does not grow with the file (the file is read a few blocks at a time; the
    /// stored attributes are read only for the customers of the block being written). Fields the
    /// file leaves empty keep their stored value; attributes are merged; a later row of the same
    /// customer is merged over an earlier one. `progress` gets the bytes read; `on_rejects` each
    /// batch of rows set aside. Nothing is written when no customer could be read.
    pub async fn import_customers_file<P, R>(
        &self,
        path: &Path,
        opts: &ImportOptions,
        progress: P,
        mut on_rejects: R,
    ) -> Result<CustomersImported>
    where
        P: Fn(u64) + Send + Sync + 'static,
        R: FnMut(&[Reject]) -> std::io::Result<()> + Send + 'static,
    {
        let (feeds, mut rx) = tokio::sync::mpsc::channel::<CustomerFeed>(1);
        let file = path.to_path_buf();
        let o = opts.clone();
        let producer = std::thread::spawn(move || {
            stream_customers(&file, &o, &progress, &mut |feed| {
                feeds.blocking_send(feed).is_ok()
            })
        });
        let t = now();
        let mut tx = self.write_tx().await?;
        let id = record_import(&mut tx, &path.display().to_string(), (0, 0, 0), t).await?;
        // Distinct customers, by a 64-bit hash of the id: 8 bytes each, not the ids.
        let mut seen: HashSet<u64> = HashSet::new();
        let mut failed = None;
        while let Some(feed) = rx.recv().await {
            if let Err(e) = on_rejects(&feed.rejects) {
                failed = Some(StoreError::Native(format!("writing rejected rows: {e}")));
                break;
            }
            seen.extend(feed.customers.iter().map(|c| id_hash(&c.id)));
            if let Err(e) = write_customers(&mut tx, &feed.customers, t).await {
                failed = Some(e);
                break;
            }
        }
        // The reader stops at its next block once nobody receives.
        drop(rx);
        let summary = match producer.join() {
            Ok(r) => r?,
            Err(_) => return Err(StoreError::Corrupt("the file reader panicked".into())),
        };
        if let Some(e) = failed {
            return Err(e);
        }
        let customers = seen.len() as u64;
        if customers == 0 {
            // Rolled back when `tx` drops: nothing was imported.
            return Ok(CustomersImported {
                import_id: 0,
                customers,
                summary,
            });
        }
        tx.execute(
            "UPDATE imports SET rows_read = $1, rows_imported = $2, rows_rejected = $3 WHERE id = $4",
            &[
                (summary.rows_read as i64).into(),
                ((summary.rows_read - summary.rows_rejected) as i64).into(),
                (summary.rows_rejected as i64).into(),
                id.into(),
            ],
        )
        .await?;
        tx.commit().await?;
        self.refresh_statistics(&["customers"]).await;
        Ok(CustomersImported {
            import_id: id,
            customers,
            summary,
        })
    }
}

/// A customer id's 64-bit hash (for counting distinct customers).
fn id_hash(id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

/// Records a customers import in the import's transaction `tx`; returns its id.
async fn record_import(
    tx: &mut WriteTx<'_>,
    file: &str,
    (read, imported, rejected): (u64, u64, u64),
    t: i64,
) -> Result<i64> {
    tx.fetch_int(
        crate::orders::IMPORT_SQL,
        &[
            "customers".into(),
            file.into(),
            (read as i64).into(),
            (imported as i64).into(),
            (rejected as i64).into(),
            t.into(),
        ],
    )
    .await?
    .ok_or_else(|| StoreError::Corrupt("no import id returned".into()))
}

/// Stored attributes read per statement when merging.
const ATTRIBUTES_PER_READ: usize = 1000;

/// Upserts `customers` (one entry per id) in `tx`: the stored attributes of those that carry
/// any are read first and merged under theirs; the others keep what is stored.
async fn write_customers(tx: &mut WriteTx<'_>, customers: &[Customer], t: i64) -> Result<()> {
    let with_attributes: Vec<&str> = customers
        .iter()
        .filter(|c| !c.attributes.is_empty())
        .map(|c| c.id.as_str())
        .collect();
    let mut existing: HashMap<String, String> = HashMap::new();
    for ids in with_attributes.chunks(ATTRIBUTES_PER_READ) {
        let sql = format!(
            "SELECT id, attributes FROM customers WHERE id IN ({})",
            crate::in_list(1, ids.len())
        );
        let vals: Vec<Val<'_>> = ids.iter().map(|&id| id.into()).collect();
        existing.extend(tx.fetch_text_pairs(&sql, &vals).await?);
    }
    let stored: Vec<Stored> = customers
        .iter()
        .map(|c| stored(c, existing.get(&c.id).map(String::as_str)))
        .collect();
    tx.insert_many_then(UPSERT_HEAD, UPSERT_TAIL, 10, customers.len(), |i, out| {
        let (c, v) = (&customers[i], &stored[i]);
        out.extend::<[Val<'_>; 10]>([
            c.id.as_str().into(),
            c.email.as_deref().into(),
            i64::from(c.email_valid).into(),
            c.first_name.as_deref().into(),
            c.last_name.as_deref().into(),
            c.subscribed.map(i64::from).into(),
            v.signup.as_deref().into(),
            c.locale.as_deref().into(),
            v.attributes.as_str().into(),
            t.into(),
        ]);
    })
    .await
}

impl Store {
    /// Every customer, by id.
    pub async fn customers(&self) -> Result<Vec<Customer>> {
        let sql = format!("SELECT {COLS} FROM customers");
        let mut out =
            crate::collect_rows(sqlx::query(&sql), self.pool(), customer_from_row).await?;
        // Sorted here: text collation differs between the backends.
        out = retain_core::by_id::sort_by_id(out, |c| c.id.as_str());
        Ok(out)
    }

    /// One customer.
    pub async fn customer(&self, id: &str) -> Result<Option<Customer>> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM customers WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(customer_from_row).transpose()
    }

    /// Number of customers.
    pub async fn customer_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM customers")
            .fetch_one(self.pool())
            .await?)
    }

    /// Records a customer's marketing consent (an unsubscribe sets it to false).
    pub async fn set_consent_by_email(&self, email: &str, subscribed: bool) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE customers SET subscribed = $1, updated_at = $2 WHERE LOWER(email) = $3",
        )
        .bind(i64::from(subscribed))
        .bind(now())
        .bind(email.to_lowercase())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }
}

const UPSERT_HEAD: &str = "INSERT INTO customers (id, email, email_valid, first_name, last_name, \
     subscribed, signup_date, locale, attributes, updated_at)";
/// Fields the file leaves empty keep their stored value; an email's validity goes with it; a
/// row without attributes keeps the stored ones (a row with some carries them merged already).
const UPSERT_TAIL: &str = "ON CONFLICT (id) DO UPDATE SET \
     email = COALESCE(excluded.email, customers.email), \
     email_valid = CASE WHEN excluded.email IS NULL THEN customers.email_valid ELSE excluded.email_valid END, \
     first_name = COALESCE(excluded.first_name, customers.first_name), \
     last_name = COALESCE(excluded.last_name, customers.last_name), \
     subscribed = COALESCE(excluded.subscribed, customers.subscribed), \
     signup_date = COALESCE(excluded.signup_date, customers.signup_date), \
     locale = COALESCE(excluded.locale, customers.locale), \
     attributes = CASE WHEN excluded.attributes = '{}' THEN customers.attributes ELSE excluded.attributes END, \
     updated_at = excluded.updated_at";

/// The stored form of a customer's signup day and attributes.
struct Stored {
    signup: Option<String>,
    attributes: String,
}

/// `c`'s stored form; its attributes merged over `existing` (the stored JSON, if any: a value
/// that is not a JSON object of strings is replaced).
fn stored(c: &Customer, existing: Option<&str>) -> Stored {
    let attributes = if c.attributes.is_empty() {
        "{}".to_string()
    } else {
        let mut attrs: BTreeMap<String, String> = existing
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_default();
        attrs.extend(c.attributes.clone());
        serde_json::to_string(&attrs).unwrap_or_else(|_| "{}".into())
    };
    Stored {
        signup: c.signup_date.map(|d| d.format("%Y-%m-%d").to_string()),
        attributes,
    }
}

pub(crate) fn customer_from_row(r: &AnyRow) -> Result<Customer> {
    customer_from_row_at(r, 0)
}

/// A customer from the [`COLS`] columns of a row, starting at column `at`.
pub(crate) fn customer_from_row_at(r: &dyn DbRow, at: usize) -> Result<Customer> {
    let attrs = r.text(at + 8)?;
    let signup = r.opt_text(at + 6)?;
    Ok(Customer {
        id: r.text(at)?,
        email: r.opt_text(at + 1)?,
        email_valid: r.int(at + 2)? != 0,
        first_name: r.opt_text(at + 3)?,
        last_name: r.opt_text(at + 4)?,
        subscribed: r.opt_int(at + 5)?.map(|v| v != 0),
        signup_date: signup.and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok()),
        locale: r.opt_text(at + 7)?,
        attributes: attributes_of(&attrs),
    })
}

/// The attributes of a customer from their stored JSON text (empty when there are none).
pub(crate) fn attributes_of(text: &str) -> std::collections::BTreeMap<String, String> {
    if text.is_empty() || text == "{}" {
        Default::default()
    } else {
        serde_json::from_str(text).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    /// On PostgreSQL a bulk write leaves the planner fresh statistics: the tables it filled
    /// are analyzed (`Store::refresh_statistics`), whether or not autovacuum runs.
    #[tokio::test]
    async fn bulk_writes_refresh_postgres_statistics() {
        let Some((store, _db)) = test_support::postgres().await else {
            return;
        };
        let analyzed = |table: &'static str| {
            let store = store.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COALESCE(analyze_count, 0) + COALESCE(autoanalyze_count, 0) \
                     FROM pg_stat_user_tables WHERE relname = $1",
                )
                .bind(table)
                .fetch_one(store.pool())
                .await
                .expect("stats")
            }
        };
        let (customers, orders) = (analyzed("customers").await, analyzed("orders").await);
        test_support::customers(&store, &["a", "b"]).await;
        assert!(
            analyzed("customers").await > customers,
            "customers analyzed"
        );
        store
            .import_orders(
                "o.csv",
                &[test_support::order("a", "2024-01-02", 5.0)],
                (1, 1, 0),
                &|_| {},
            )
            .await
            .expect("orders");
        assert!(analyzed("orders").await > orders, "orders analyzed");
    }

    #[tokio::test]
    async fn customers_upsert_merges_fields_and_attributes() {
        let (store, _dir) = test_support::sqlite().await;
        let mut a = Customer {
            id: "a".into(),
            email: Some("a@x.io".into()),
            email_valid: true,
            first_name: Some("Ann".into()),
            subscribed: Some(true),
            signup_date: NaiveDate::from_ymd_opt(2024, 1, 2),
            ..Default::default()
        };
        a.attributes.insert("tier".into(), "gold".into());
        store
            .import_customers("c.csv", &[a.clone()], (1, 1, 0))
            .await
            .expect("import");
        let mut update = Customer {
            id: "a".into(),
            subscribed: Some(false),
            ..Default::default()
        };
        update.attributes.insert("city".into(), "Oslo".into());
        store
            .import_customers("c2.csv", &[update], (1, 1, 0))
            .await
            .expect("import");
        let got = store.customer("a").await.expect("read").expect("exists");
        assert_eq!(got.email.as_deref(), Some("a@x.io"));
        assert!(got.email_valid);
        assert_eq!(got.first_name.as_deref(), Some("Ann"));
        assert_eq!(got.subscribed, Some(false));
        assert_eq!(got.signup_date, a.signup_date);
        assert_eq!(got.attributes.get("tier").map(String::as_str), Some("gold"));
        assert_eq!(got.attributes.get("city").map(String::as_str), Some("Oslo"));
        assert_eq!(
            store
                .set_consent_by_email("A@X.IO", true)
                .await
                .expect("consent"),
            1
        );
        assert_eq!(
            store.customer("a").await.expect("r").expect("e").subscribed,
            Some(true)
        );
    }

    /// The streamed import of customers files, on either backend.
    async fn streamed_files(store: Store) {
        let dir = tempfile::tempdir().expect("tmp");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        let opts = ImportOptions::default();
        let import = |p: std::path::PathBuf| {
            let store = store.clone();
            let opts = opts.clone();
            async move {
                let rejects = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                let sink = rejects.clone();
                let done = store
                    .import_customers_file(
                        &p,
                        &opts,
                        |_| {},
                        move |r: &[Reject]| {
                            sink.lock().expect("lock").extend(r.iter().map(|x| x.line));
                            Ok(())
                        },
                    )
                    .await;
                let lines = rejects.lock().expect("lock").clone();
                (done, lines)
            }
        };
        // Ann twice (the later row fills in her city and her consent), Bob with a bad email,
        // a row without id.
        let first = write(
            "c1.csv",
            "customer_id,email,first_name,subscribed,tier,city\n\
a,ann@x.io,Ann,yes,gold,\n\
b,bob(at)x.io,Bob,,,\n\
,nobody@x.io,No,yes,,\n\
a,,,no,,Oslo\n",
        );
        let (done, rejected) = import(first).await;
        let done = done.expect("imported");
        assert_eq!(done.customers, 2, "a and b");
        assert_eq!((done.summary.rows_read, done.summary.rows_rejected), (4, 1));
        assert_eq!(done.summary.invalid_emails, 1);
        assert_eq!(rejected, [3, 4], "the bad email's note, the row without id");
        let ann = store.customer("a").await.expect("read").expect("ann");
        assert_eq!(ann.email.as_deref(), Some("ann@x.io"));
        assert_eq!(ann.subscribed, Some(false));
        assert_eq!(ann.attributes.get("tier").map(String::as_str), Some("gold"));
        assert_eq!(ann.attributes.get("city").map(String::as_str), Some("Oslo"));
        assert!(
            !store
                .customer("b")
                .await
                .expect("read")
                .expect("bob")
                .email_valid
        );
        let recorded = store.imports().await.expect("imports");
        let last = recorded.last().expect("an import");
        assert_eq!(
            (last.rows_read, last.rows_imported, last.rows_rejected),
            (4, 3, 1)
        );

        // A file without attribute columns keeps the stored attributes.
        let (done, _) = import(write("c2.csv", "customer_id,first_name\na,Anna\n")).await;
        assert_eq!(done.expect("imported").customers, 1);
        let ann = store.customer("a").await.expect("read").expect("ann");
        assert_eq!(ann.first_name.as_deref(), Some("Anna"));
        assert_eq!(ann.attributes.get("tier").map(String::as_str), Some("gold"));
        assert_eq!(ann.email.as_deref(), Some("ann@x.io"));

        // Nothing importable: nothing written, not even the import's record.
        let before = store.imports().await.expect("imports").len();
        let (done, _) = import(write("c3.csv", "customer_id,email\n,\n,\n")).await;
        let done = done.expect("read");
        assert_eq!((done.customers, done.import_id), (0, 0));
        assert_eq!(store.imports().await.expect("imports").len(), before);

        // A file that turns out truncated (an unclosed quote at its end) writes nothing.
        let (done, _) = import(write("c4.csv", "customer_id,first_name\nz,Zed\na,\"Ann\n")).await;
        assert!(done.is_err(), "truncated file");
        assert!(store.customer("z").await.expect("read").is_none());
        assert_eq!(store.imports().await.expect("imports").len(), before);
        assert_eq!(store.customer_count().await.expect("count"), 2);
    }

    #[tokio::test]
    async fn streamed_customers_files_sqlite() {
        let (store, _dir) = test_support::sqlite().await;
        streamed_files(store).await;
    }

    #[tokio::test]
    async fn streamed_customers_files_postgres() {
        if let Some((store, _db)) = test_support::postgres().await {
            streamed_files(store).await;
        }
    }
}
