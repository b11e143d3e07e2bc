//! Schema migrations: numbered SQL files per backend, embedded in the binary and applied in
//! order, each in its own transaction, recorded in `retain_migrations`.

use sqlx::Row;

use crate::{now, Backend, Result, Store, StoreError};

/// (version, name, SQLite SQL, PostgreSQL SQL). Append new migrations; never edit applied ones.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "core",
        include_str!("../migrations/sqlite/0001_core.sql"),
        include_str!("../migrations/postgres/0001_core.sql"),
    ),
    (
        2,
        "segments",
        include_str!("../migrations/sqlite/0002_segments.sql"),
        include_str!("../migrations/postgres/0002_segments.sql"),
    ),
    (
        3,
        "predictions",
        include_str!("../migrations/sqlite/0003_predictions.sql"),
        include_str!("../migrations/postgres/0003_predictions.sql"),
    ),
    (
        4,
        "plans",
        include_str!("../migrations/sqlite/0004_plans.sql"),
        include_str!("../migrations/postgres/0004_plans.sql"),
    ),
    (
        5,
        "sends",
        include_str!("../migrations/sqlite/0005_sends.sql"),
        include_str!("../migrations/postgres/0005_sends.sql"),
    ),
    (
        6,
        "events",
        include_str!("../migrations/sqlite/0006_events.sql"),
        include_str!("../migrations/postgres/0006_events.sql"),
    ),
];

pub(crate) async fn run(store: &Store) -> Result<()> {
    let pool = store.pool();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS retain_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM retain_migrations")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<std::result::Result<_, _>>()?;
    for (version, name, sqlite, postgres) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let sql = match store.backend() {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        };
        let wrap = |source| StoreError::Migration {
            version: *version,
            name: name.to_string(),
            source,
        };
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(wrap)?;
        let inserted = sqlx::query(
            "INSERT INTO retain_migrations (version, name, applied_at) VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
        )
        .bind(*version)
        .bind(*name)
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(wrap)?;
        if inserted.rows_affected() == 0 {
            // Another process applied it concurrently: drop our copy.
            tx.rollback().await?;
            continue;
        }
        tx.commit().await.map_err(wrap)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::test_support;

    #[tokio::test]
    async fn migrations_are_idempotent() {
        let (store, dir) = test_support::sqlite().await;
        store.close().await;
        let again = crate::Store::open_sqlite(&dir.path().join("t.db"))
            .await
            .expect("reopen");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM retain_migrations")
            .fetch_one(again.pool())
            .await
            .expect("count");
        assert_eq!(n as usize, super::MIGRATIONS.len());
    }
}
