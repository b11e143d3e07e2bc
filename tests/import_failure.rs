//! An import is one transaction: a database failure in the middle of `retain import orders`
//! (a trigger that raises once thousands of rows of the file are in) leaves every table of the
//! workspace's database exactly as it was, and the command fails with the database's error.

use std::path::Path;

use sqlx::{Connection, Row, SqliteConnection};

mod common;
use common::{retain, workspace};

/// `n` orders o<start>… of customers c0…c49, amounts `amount`.
fn orders_csv(path: &Path, start: usize, n: usize, amount: f64) {
    let mut s = String::from("customer_id,order_id,order_date,amount\n");
    for i in start..start + n {
        s.push_str(&format!(
            "c{},o{i},2024-{:02}-{:02},{amount}\n",
            i % 50,
            1 + i % 12,
            1 + i % 28
        ));
    }
    std::fs::write(path, s).expect("write csv");
}

async fn connect(ws: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", ws.join("retain.db").display()))
        .await
        .expect("open retain.db")
}

/// Every row of every table, as text, sorted: the database's whole content.
async fn dump(ws: &Path) -> Vec<String> {
    let mut c = connect(ws).await;
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut c)
    .await
    .expect("tables")
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    let mut out = Vec::new();
    for t in tables {
        let cols: Vec<String> = sqlx::query(&format!("PRAGMA table_info(\"{t}\")"))
            .fetch_all(&mut c)
            .await
            .expect("columns")
            .iter()
            .map(|r| r.get::<String, _>("name"))
            .collect();
        let expr = cols
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let rows = sqlx::query(&format!("SELECT {expr} AS r FROM \"{t}\" ORDER BY r"))
            .fetch_all(&mut c)
            .await
            .expect("rows");
        out.push(format!("{t}: {} rows", rows.len()));
        out.extend(
            rows.iter()
                .map(|r| format!("{t}: {}", r.get::<String, _>(0))),
        );
    }
    c.close().await.expect("close");
    out
}

async fn count(ws: &Path, sql: &str) -> i64 {
    let mut c = connect(ws).await;
    let n: i64 = sqlx::query_scalar(sql)
        .fetch_one(&mut c)
        .await
        .expect("count");
    c.close().await.expect("close");
    n
}

#[tokio::test]
async fn a_database_failure_mid_import_leaves_the_store_unchanged() {
    let (dir, ws) = workspace();
    let first = dir.path().join("first.csv");
    orders_csv(&first, 0, 200, 10.0);
    retain(&ws)
        .args(["import", "orders"])
        .arg(&first)
        .assert()
        .success();
    // The second file changes the 200 orders already there and adds 6,800.
    let second = dir.path().join("second.csv");
    orders_csv(&second, 0, 7000, 99.0);

    // The database refuses the 4,000th order: the failure comes after thousands of rows of
    // this import were written inside its transaction.
    let mut c = connect(&ws).await;
    sqlx::query(
        "CREATE TRIGGER retain_test_fail_mid_import BEFORE INSERT ON orders \
         WHEN (SELECT count(*) FROM orders) >= 4000 \
         BEGIN SELECT RAISE(ABORT, 'injected failure mid-import'); END",
    )
    .execute(&mut c)
    .await
    .expect("trigger");
    c.close().await.expect("close");

    let before = dump(&ws).await;
    assert!(
        before.contains(&"orders: 200 rows".to_string()),
        "{before:?}"
    );
    let out = retain(&ws)
        .args(["import", "orders"])
        .arg(&second)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a runtime failure: {stderr}");
    assert!(stderr.contains("injected failure mid-import"), "{stderr}");
    let after = dump(&ws).await;
    assert!(before == after, "the failed import changed the database");

    // Without the fault the same file imports: the equality above was not for lack of changes.
    let mut c = connect(&ws).await;
    sqlx::query("DROP TRIGGER retain_test_fail_mid_import")
        .execute(&mut c)
        .await
        .expect("drop trigger");
    c.close().await.expect("close");
    retain(&ws)
        .args(["import", "orders"])
        .arg(&second)
        .assert()
        .success();
    assert_eq!(count(&ws, "SELECT count(*) FROM orders").await, 7000);
    assert!(dump(&ws).await != before);
}
