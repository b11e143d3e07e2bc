//! Customers: atomic upsert of an imported customers file and reading customers back.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use retain_core::Customer;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::rows::DbRow;
use crate::{now, Result, Store, StoreError};

/// A stored customer (alias kept for callers that want the storage view).
pub type CustomerRow = Customer;

pub(crate) const COLS: &str = "id, email, email_valid, first_name, last_name, subscribed, signup_date, locale, attributes, updated_at";

impl Store {
    /// Records an import and upserts its customers in one transaction. Fields the file leaves
    /// empty keep their stored value; attributes are merged.
    pub async fn import_customers(
        &self,
        file: &str,
        customers: &[Customer],
        counts: (u64, u64, u64),
    ) -> Result<i64> {
        let t = now();
        if self.sqlite_path().is_some() {
            // One prepared single-row upsert per customer on the native connection, in the
            // import's one transaction (sqlx's per-parameter cost dominated multi-row upserts).
            let mut tx = self.write_tx().await?;
            let (read, imported, rejected) = counts;
            let id = tx
                .fetch_int(
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
                .ok_or_else(|| StoreError::Corrupt("no import id returned".into()))?;
            tx.with_native(|conn| {
                let existing = if any_attributes(customers) {
                    let mut stmt = conn.prepare(ATTRIBUTES_SQL).map_err(crate::native::err)?;
                    let rows = stmt
                        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                        .map_err(crate::native::err)?;
                    attributes_by_id(rows.map(|r| r.map_err(crate::native::err)))?
                } else {
                    BTreeMap::new()
                };
                let mut stmt = conn
                    .prepare(&format!(
                        "{UPSERT_HEAD} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) {UPSERT_TAIL}"
                    ))
                    .map_err(crate::native::err)?;
                for c in customers {
                    let v = stored(c, &existing);
                    stmt.execute(rusqlite::params![
                        c.id,
                        c.email,
                        i64::from(c.email_valid),
                        c.first_name,
                        c.last_name,
                        c.subscribed.map(i64::from),
                        v.signup,
                        c.locale,
                        v.attributes,
                        t
                    ])
                    .map_err(crate::native::err)?;
                }
                Ok(())
            })?;
            tx.commit().await?;
            return Ok(id);
        }
        let mut tx = self.pool().begin().await?;
        let id = crate::orders::record_import(&mut tx, "customers", file, counts, t).await?;
        let existing = load_attributes(&mut tx, customers).await?;
        for chunk in customers.chunks(2000) {
            let sql = format!(
                "{UPSERT_HEAD} VALUES {} {UPSERT_TAIL}",
                self.bulk_values(chunk.len(), 10)
            );
            let mut q = sqlx::query(&sql);
            for c in chunk {
                let v = stored(c, &existing);
                q = q
                    .bind(c.id.as_str())
                    .bind(c.email.as_deref())
                    .bind(i64::from(c.email_valid))
                    .bind(c.first_name.as_deref())
                    .bind(c.last_name.as_deref())
                    .bind(c.subscribed.map(i64::from))
                    .bind(v.signup)
                    .bind(c.locale.as_deref())
                    .bind(v.attributes)
                    .bind(t);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

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

const ATTRIBUTES_SQL: &str = "SELECT id, attributes FROM customers WHERE attributes <> '{}'";
const UPSERT_HEAD: &str = "INSERT INTO customers (id, email, email_valid, first_name, last_name, \
     subscribed, signup_date, locale, attributes, updated_at)";
/// Fields the file leaves empty keep their stored value; an email's validity goes with it.
const UPSERT_TAIL: &str = "ON CONFLICT (id) DO UPDATE SET \
     email = COALESCE(excluded.email, customers.email), \
     email_valid = CASE WHEN excluded.email IS NULL THEN customers.email_valid ELSE excluded.email_valid END, \
     first_name = COALESCE(excluded.first_name, customers.first_name), \
     last_name = COALESCE(excluded.last_name, customers.last_name), \
     subscribed = COALESCE(excluded.subscribed, customers.subscribed), \
     signup_date = COALESCE(excluded.signup_date, customers.signup_date), \
     locale = COALESCE(excluded.locale, customers.locale), \
     attributes = excluded.attributes, updated_at = excluded.updated_at";

/// The stored form of a customer's signup day and attributes (merged over `existing`).
struct Stored {
    signup: Option<String>,
    attributes: String,
}

fn stored(c: &Customer, existing: &BTreeMap<String, BTreeMap<String, String>>) -> Stored {
    let attributes = match (existing.get(&c.id), c.attributes.is_empty()) {
        (None, true) => "{}".to_string(),
        (old, _) => {
            let mut attrs = old.cloned().unwrap_or_default();
            attrs.extend(c.attributes.clone());
            serde_json::to_string(&attrs).unwrap_or_else(|_| "{}".into())
        }
    };
    Stored {
        signup: c.signup_date.map(|d| d.format("%Y-%m-%d").to_string()),
        attributes,
    }
}

async fn load_attributes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    customers: &[Customer],
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    if !any_attributes(customers) {
        return Ok(BTreeMap::new());
    }
    let rows = sqlx::query(ATTRIBUTES_SQL).fetch_all(&mut **tx).await?;
    attributes_by_id(rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))))
}

/// Whether the file carries any attribute: only then are the stored ones read to merge into.
fn any_attributes(customers: &[Customer]) -> bool {
    customers.iter().any(|c| !c.attributes.is_empty())
}

/// The stored attributes by customer id, from ([`ATTRIBUTES_SQL`]) rows of (id, JSON); a value
/// that is not a JSON object of strings is left out (the file's attributes replace it).
fn attributes_by_id(
    rows: impl Iterator<Item = Result<(String, String)>>,
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut out = BTreeMap::new();
    for r in rows {
        let (id, a) = r?;
        if let Ok(map) = serde_json::from_str(&a) {
            out.insert(id, map);
        }
    }
    Ok(out)
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
        attributes: if attrs.is_empty() || attrs == "{}" {
            Default::default()
        } else {
            serde_json::from_str(&attrs).unwrap_or_default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

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
}
