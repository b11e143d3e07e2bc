//! `retain customer show|export|erase` end to end: a small shop imported, segmented and
//! planned; one customer looked up by id and address, exported, erased; then the same files
//! imported again and planned — the erased address stays excluded, and nothing personal is
//! left in the export.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{retain, workspace};

/// Ten customers (Ann is `c01`, opted in), two to four orders each.
fn write_shop(dir: &Path) {
    let mut customers =
        String::from("customer_id,email,first_name,last_name,subscribed,signup_date,locale,city\n");
    let mut orders = String::from("order_id,customer_id,email,order_date,amount\n");
    let mut n = 0;
    for i in 1..=10 {
        let (email, first) = if i == 1 {
            ("Ann.Lee@example.com".to_string(), "Ann".to_string())
        } else {
            (format!("person{i}@example.com"), format!("Person{i}"))
        };
        customers.push_str(&format!(
            "c{i:02},{email},{first},Surname{i},yes,2023-0{}-1{},de-CH,Zurich{i}\n",
            1 + i % 9,
            i % 9
        ));
        for k in 0..(2 + i % 3) {
            n += 1;
            orders.push_str(&format!(
                "o{n},c{i:02},{email},2024-{:02}-{:02},{}.50\n",
                1 + (i + 3 * k) % 12,
                1 + (7 * i + k) % 27,
                10 + 3 * i + k
            ));
        }
    }
    std::fs::write(dir.join("customers.csv"), customers).expect("customers");
    std::fs::write(dir.join("orders.csv"), orders).expect("orders");
}

fn ok(ws: &Path, args: &[&str]) -> String {
    let out = retain(ws).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(ws: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(ws, args)).expect("one JSON document")
}

fn import_and_segment(ws: &Path, dir: &Path) {
    let customers = dir.join("customers.csv");
    let orders = dir.join("orders.csv");
    ok(
        ws,
        &[
            "-q",
            "import",
            "customers",
            customers.to_str().expect("path"),
        ],
    );
    ok(
        ws,
        &["-q", "import", "orders", orders.to_str().expect("path")],
    );
    ok(ws, &["-q", "segment"]);
}

fn excluded(plan: &Value) -> i64 {
    plan["excluded"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_i64).sum())
        .unwrap_or(0)
}

fn planned_ids(plan: &Value) -> Vec<String> {
    plan["campaigns"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c["audience"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(c["holdout"].as_array().into_iter().flatten())
        })
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

#[test]
fn show_export_erase_and_the_address_stays_excluded() {
    let (dir, ws) = workspace();
    write_shop(dir.path());
    import_and_segment(&ws, dir.path());
    let plan = json(
        &ws,
        &["plan", "--seed", "3", "--holdout", "0", "--format", "json"],
    );
    assert!(
        planned_ids(&plan).contains(&"c01".to_string()),
        "Ann is planned before the erasure: {plan}"
    );
    let excluded_before = excluded(&plan);

    // Show, by address (any case) and by id: the same customer.
    let by_mail = json(
        &ws,
        &[
            "customer",
            "show",
            "ann.lee@EXAMPLE.com",
            "--format",
            "json",
        ],
    );
    let by_id = json(&ws, &["customer", "show", "c01", "--format", "json"]);
    assert_eq!(by_mail, by_id);
    assert_eq!(by_id["customer"]["first_name"], "Ann");
    assert_eq!(by_id["customer"]["subscribed"], true);
    assert_eq!(by_id["orders"].as_array().map(Vec::len), Some(3));
    assert_eq!(by_id["segments"].as_array().map(Vec::len), Some(1));
    assert_eq!(by_id["campaigns"].as_array().map(Vec::len), Some(1));
    assert_eq!(by_id["suppression"], Value::Null);
    let table = ok(&ws, &["customer", "show", "c01"]);
    assert!(table.contains("Ann Surname1"), "{table}");
    assert!(table.contains("mailable"), "{table}");
    assert!(table.contains("Segment history"), "{table}");
    // Unknown customers are a precondition failure.
    let out = retain(&ws)
        .args(["customer", "show", "nobody@example.com"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(4));

    // Export: one JSON document with everything, personal data included.
    let export = ok(&ws, &["customer", "export", "c01"]);
    let doc: Value = serde_json::from_str(&export).expect("json");
    assert!(doc["exported_at"].is_string());
    assert_eq!(doc["customer"]["email"], "Ann.Lee@example.com");
    assert_eq!(doc["customer"]["attributes"]["city"], "Zurich1");

    // Erase: refused without --yes when nobody can be asked.
    let out = retain(&ws)
        .args(["customer", "erase", "c01"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        json(&ws, &["customer", "show", "c01", "--format", "json"])["customer"]["first_name"],
        "Ann",
        "nothing erased without --yes"
    );
    let said = ok(&ws, &["customer", "erase", "ann.lee@example.com", "--yes"]);
    assert!(said.contains("erased-"), "{said}");
    let gone = retain(&ws)
        .args(["customer", "show", "c01"])
        .output()
        .expect("runs");
    assert_eq!(gone.status.code(), Some(4), "the old id names nobody now");
    let key = by_id["key"].as_i64().expect("key");
    let erased_id = format!("erased-{key}");
    let after = ok(&ws, &["customer", "export", &erased_id]);
    let doc: Value = serde_json::from_str(&after).expect("json");
    assert_eq!(doc["erased"], true);
    assert_eq!(doc["suppression"], "erased");
    assert_eq!(
        doc["orders"].as_array().map(Vec::len),
        Some(3),
        "orders kept"
    );
    let lower = after.to_lowercase();
    for personal in ["ann", "lee@", "surname1", "zurich1", "de-ch", "c01"] {
        assert!(!lower.contains(personal), "'{personal}' left in {after}");
    }

    // The same files again: Ann comes back as a new customer, with her address — never mailed.
    import_and_segment(&ws, dir.path());
    let back = json(&ws, &["customer", "show", "c01", "--format", "json"]);
    assert_eq!(back["customer"]["subscribed"], true);
    assert_eq!(back["suppression"], "erased");
    let plan = json(
        &ws,
        &["plan", "--seed", "3", "--holdout", "0", "--format", "json"],
    );
    let ids = planned_ids(&plan);
    assert!(!ids.contains(&"c01".to_string()), "{plan}");
    assert!(!ids.contains(&erased_id), "{plan}");
    // Both the erased row and the re-imported Ann are excluded.
    assert_eq!(excluded(&plan), excluded_before + 2, "{plan}");
}
