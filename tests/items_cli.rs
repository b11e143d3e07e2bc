//! Order-lines files end to end through the real binary: orders imported without products, then
//! their lines from a plain `order_id,product,quantity,amount` file (`retain import items`, and
//! `retain import orders` recognising the file by its header), unknown order ids rejected with
//! line, column and reason into rejects/, `--strict` writing nothing, re-imports changing
//! nothing, and `retain recommend` learning from the lines.

use std::path::Path;

mod common;
use common::{retain, workspace};

fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
}

/// 40 customers with two orders each (no product columns); the lines file: everyone's first
/// order has the kettle, the first 20 then buy tea, the others a mug; `c099` bought the kettle
/// only. One line names an order that was never imported, one returns a mug.
fn write_shop(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut orders = String::from("customer_id,order_id,order_date,amount\n");
    let mut lines = String::from("order_id,product,quantity,amount\n");
    for i in 0..40 {
        let c = format!("c{i:03}");
        orders.push_str(&format!(
            "{c},K{i},2024-03-01,20.00\n{c},S{i},2024-03-05,8.00\n"
        ));
        lines.push_str(&format!("K{i},KETTLE,1,20.00\n"));
        let second = if i < 20 { "TEA" } else { "MUG" };
        lines.push_str(&format!("S{i},{second},1,8.00\n"));
    }
    orders.push_str("c099,K99,2024-03-02,20.00\nc099,R99,2024-03-03,-8.00\n");
    lines.push_str("K99,KETTLE,1,20.00\nR99,MUG,-1,-8.00\nNOPE-1,TEA,1,8.00\n");
    let (of, lf) = (dir.join("orders.csv"), dir.join("order-lines.csv"));
    std::fs::write(&of, orders).expect("write");
    std::fs::write(&lf, lines).expect("write");
    (of, lf)
}

#[test]
fn order_lines_of_imported_orders() {
    let (dir, ws) = workspace();
    let (of, lf) = write_shop(dir.path());
    let o = retain(&ws)
        .args(["import", "orders", "--format", "json"])
        .arg(&of)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&o.stdout)["product_lines"], 0);

    // --strict: the unknown order stops the import, nothing is written.
    let o = retain(&ws)
        .args(["import", "items", "--strict"])
        .arg(&lf)
        .output()
        .expect("run");
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 84") && err.contains("NOPE-1"), "{err}");
    let o = retain(&ws).args(["recommend"]).output().expect("run");
    assert_eq!(
        o.status.code(),
        Some(4),
        "no order lines yet after --strict"
    );

    let o = retain(&ws)
        .args(["import", "items", "--format", "json"])
        .arg(&lf)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = json(&o.stdout);
    assert_eq!(s["kind"], "items", "{s}");
    assert_eq!(s["rows_read"], 83, "{s}");
    assert_eq!(s["product_lines"], 82, "{s}");
    assert_eq!(s["orders"], 82, "{s}");
    assert_eq!(s["returns"], 1, "{s}");
    assert_eq!(s["products"], 3, "{s}");
    assert_eq!(s["unknown_orders"], 1, "{s}");
    assert_eq!(s["rows_rejected"], 1, "{s}");
    // The reject is in rejects/ with its line, the order id column and why.
    let rejects = std::fs::read_to_string(s["rejects_file"].as_str().expect("rejects file"))
        .expect("read rejects");
    let row = rejects.lines().nth(1).expect("one reject");
    assert!(row.starts_with("84,1 (order_id),"), "{rejects}");
    assert!(
        row.contains("no order 'NOPE-1'") && row.contains("NOPE-1,TEA,1,8.00"),
        "{rejects}"
    );

    // `import orders` recognises the file by its header; importing it again changes nothing.
    let o = retain(&ws)
        .args(["import", "orders", "--format", "json"])
        .arg(&lf)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = json(&o.stdout);
    assert_eq!(again["kind"], "items", "{again}");
    assert_eq!(again["product_lines"], 82, "{again}");
    // Re-importing the orders (no product columns) keeps the lines.
    retain(&ws)
        .args(["import", "orders", "-q"])
        .arg(&of)
        .assert()
        .success();

    let o = retain(&ws)
        .args(["recommend", "--format", "json"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = json(&o.stdout);
    assert_eq!(summary["order_lines"], 82, "{summary}");
    assert_eq!(summary["customers"], 41, "{summary}");
    // c099 bought the kettle and returned a mug: tea is their pick, never the mug or kettle.
    let o = retain(&ws)
        .args([
            "recommend",
            "--customer",
            "c099",
            "--top",
            "2",
            "--format",
            "json",
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let picks = json(&o.stdout);
    let ids: Vec<&str> = picks
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["product_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["TEA"], "{picks}");
}
