//! Platform exports end to end: Shopify and WooCommerce order exports are recognised by their
//! headers and imported with exact orders, customers and net revenue (refunds, cancelled/voided/
//! test orders, line items, UTC offsets), and re-importing changes nothing.

mod common;

use common::{repo, retain, workspace};
use serde_json::Value;

fn import(ws: &std::path::Path, file: &str, extra: &[&str]) -> Value {
    let out = retain(ws)
        .args(["import", "orders"])
        .arg(repo(file))
        .args(["--format", "json"])
        .args(extra)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn stats(ws: &std::path::Path, as_of: Option<&str>) -> Value {
    let mut c = retain(ws);
    c.args(["stats", "--format", "json"]);
    if let Some(d) = as_of {
        c.args(["--as-of", d]);
    }
    let out = c.output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn close(v: &Value, expected: f64) {
    let x = v.as_f64().expect("number");
    assert!((x - expected).abs() < 1e-6, "{x} != {expected}");
}

#[test]
fn shopify_export_imports_exact_orders_customers_and_net_revenue() {
    let (_d, ws) = workspace();
    let s = import(&ws, "tests/data/shopify_orders.csv", &[]);
    assert_eq!(s["profile"], "shopify");
    assert_eq!(s["rows_read"], 10);
    // Line items are never rejects; voided, cancelled and test orders are skipped and counted.
    assert_eq!(s["rows_rejected"], 0);
    assert_eq!(s["rows_without_customer"], 0);
    assert_eq!(s["line_items"], 3);
    assert_eq!(s["skipped_orders"], 3);
    // ana (#1001, #1003) and ben (#1002, #1007; BEN@ is the same address).
    assert_eq!(s["customers"], 2);
    // #1001, #1002, #1003, #1007 are purchases; the refunds of #1002 and #1003 are returns.
    assert_eq!(s["orders"], 4);
    assert_eq!(s["returns"], 2);
    close(&s["revenue"], 50.0 + 80.0 - 20.0 + 30.0 - 30.0 + 120.5);

    let all = stats(&ws, None);
    assert_eq!(all["customers"], 2);
    close(&all["revenue"], 230.5);
    // #1007 was placed at 23:30 −05:00 on March 6th: March 7th in UTC, so it is not before
    // March 7th.
    let before = stats(&ws, Some("2024-03-07"));
    assert_eq!(before["orders"], 3);
    close(&before["revenue"], 110.0);

    // Importing the same export again doubles nothing.
    let again = import(&ws, "tests/data/shopify_orders.csv", &[]);
    assert_eq!(again["orders"], 4);
    assert_eq!(again["customers"], 2);
    let all = stats(&ws, None);
    assert_eq!(all["orders"], 4);
    assert_eq!(all["returns"], 2);
    close(&all["revenue"], 230.5);
}

#[test]
fn woocommerce_export_imports_exact_orders_customers_and_net_revenue() {
    let (_d, ws) = workspace();
    let s = import(&ws, "tests/data/woocommerce_orders.csv", &[]);
    assert_eq!(s["profile"], "woocommerce");
    assert_eq!(s["rows_read"], 9);
    assert_eq!(s["rows_rejected"], 0);
    // Cancelled (504) and failed (505) orders are skipped.
    assert_eq!(s["skipped_orders"], 2);
    assert_eq!(s["customers"], 2);
    // 501, 502, 503, 506 are purchases; the refunds of 502 and 503 are returns. Item rows
    // repeat their order's total: it counts once.
    assert_eq!(s["orders"], 4);
    assert_eq!(s["returns"], 2);
    close(&s["revenue"], 45.90 + 20.0 - 20.0 + 15.50 - 5.0 + 99.99);
    let again = import(&ws, "tests/data/woocommerce_orders.csv", &[]);
    assert_eq!(again["orders"], 4);
    let all = stats(&ws, None);
    assert_eq!(all["orders"], 4);
    close(&all["revenue"], 156.39);
}

#[test]
fn generic_profile_reads_a_platform_export_column_by_column() {
    let (_d, ws) = workspace();
    // Read as a plain CSV, every line-item row of the export is a row of its own: the summary
    // says which profile was used, so the user can tell.
    let s = import(
        &ws,
        "tests/data/shopify_orders.csv",
        &["--profile", "generic", "--map", "amount=Total"],
    );
    assert_eq!(s["profile"], "generic");
    assert!(s["rows_rejected"].as_u64().expect("n") > 0, "{s}");
}
