//! End-to-end tests of `retain segment` and `retain segments` on temporary workspaces holding the
//! CDNOW sample: every customer lands in exactly one segment, shares add up, runs are stored,
//! listed, shown, exported and compared, the same seed gives the same segments, and bad input
//! exits with the documented codes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::{repo, retain, workspace};

/// A workspace with the CDNOW orders imported.
fn cdnow_workspace() -> (tempfile::TempDir, PathBuf) {
    let (dir, ws) = workspace();
    let out = retain(&ws)
        .args(["import", "orders"])
        .arg(repo("data/cdnow/orders.csv"))
        .args(["--format", "json"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, ws)
}

/// Customer ids of `data/cdnow/orders.csv`, read here independently of retain's importer.
fn cdnow_customers() -> BTreeSet<String> {
    std::fs::read_to_string(repo("data/cdnow/orders.csv"))
        .expect("orders.csv")
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').next().expect("id").to_string())
        .collect()
}

fn stdout_of(ws: &Path, args: &[&str]) -> Vec<u8> {
    let out = retain(ws).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "retain {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn run_json(ws: &Path, args: &[&str]) -> Value {
    let out = stdout_of(ws, args);
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out)))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn segments(doc: &Value) -> &Vec<Value> {
    doc["segments"].as_array().expect("segments array")
}

/// Sizes sum to the customer count, shares and revenue shares to 1, names are unique.
fn check_segments(doc: &Value, customers: usize) {
    let segs = segments(doc);
    assert!(!segs.is_empty());
    let size: f64 = segs.iter().map(|s| f(&s["size"])).sum();
    assert_eq!(size as usize, customers);
    assert_eq!(doc["customers"].as_u64(), Some(customers as u64));
    let share: f64 = segs.iter().map(|s| f(&s["share"])).sum();
    assert!((share - 1.0).abs() < 1e-9, "shares sum to {share}");
    let revenue_share: f64 = segs.iter().map(|s| f(&s["revenue_share"])).sum();
    assert!(
        (revenue_share - 1.0).abs() < 1e-9,
        "revenue shares sum to {revenue_share}"
    );
    let names: BTreeSet<&str> = segs
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names.len(), segs.len());
    for s in segs {
        for key in ["recency_mean", "frequency_mean", "monetary_mean"] {
            assert!(f(&s[key]).is_finite(), "{key}");
        }
        assert!(f(&s["frequency_mean"]) >= 1.0);
    }
}

/// The export of a run: customer id → (segment, r, f, m), checking every id appears once.
fn export(ws: &Path, run: &str) -> BTreeMap<String, (String, u8, u8, u8)> {
    let csv = stdout_of(ws, &["segments", "export", run, "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(&csv[..]);
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header, ["customer_id", "email", "segment", "r", "f", "m"]);
    let mut out = BTreeMap::new();
    for rec in reader.records() {
        let rec = rec.expect("row");
        let score = |i: usize| -> u8 { rec[i].parse().expect("score") };
        let (r, fq, m) = (score(3), score(4), score(5));
        assert!([r, fq, m].iter().all(|s| (1..=5).contains(s)));
        let prev = out.insert(rec[0].to_string(), (rec[2].to_string(), r, fq, m));
        assert!(prev.is_none(), "customer {} exported twice", &rec[0]);
    }
    out
}

#[test]
fn rfm_run_covers_every_customer_once() {
    let (_dir, ws) = cdnow_workspace();
    let ids = cdnow_customers();
    let doc = run_json(&ws, &["segment", "--format", "json"]);
    assert_eq!(doc["method"], "rfm");
    assert_eq!(doc["run_id"].as_i64(), Some(1));
    assert!(doc["k_scores"].is_null());
    check_segments(&doc, ids.len());
    let names: BTreeSet<&str> = segments(&doc)
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    let known = [
        "Champions",
        "Loyal Customers",
        "Potential Loyalists",
        "New Customers",
        "Promising",
        "Need Attention",
        "About To Sleep",
        "At Risk",
        "Can't Lose Them",
        "Hibernating",
    ];
    assert!(names.iter().all(|n| known.contains(n)), "{names:?}");

    let exported = export(&ws, "latest");
    assert_eq!(exported.keys().cloned().collect::<BTreeSet<_>>(), ids);
    // Export and profiles agree on the segment sizes.
    for s in segments(&doc) {
        let name = s["name"].as_str().expect("name");
        let n = exported.values().filter(|v| v.0 == name).count();
        assert_eq!(n as f64, f(&s["size"]), "{name}");
    }
    // Table and CSV outputs exist and name the segments.
    let table = String::from_utf8(stdout_of(&ws, &["segments", "show", "1"])).expect("utf8");
    assert!(table.contains("Segmentation run 1") && table.contains("Hibernating"));
    let csv = String::from_utf8(stdout_of(
        &ws,
        &["segments", "show", "1", "--format", "csv"],
    ))
    .expect("utf8");
    assert!(csv.starts_with("segment,cluster,size,share"));
}

#[test]
fn kmeans_auto_runs_are_stored_listed_and_compared() {
    let (_dir, ws) = cdnow_workspace();
    let ids = cdnow_customers();
    let rfm = run_json(&ws, &["segment", "--format", "json"]);
    let km = run_json(&ws, &["segment", "--method", "kmeans", "--format", "json"]);
    assert_eq!(km["method"], "kmeans");
    assert_eq!(
        km["run_id"].as_i64(),
        Some(rfm["run_id"].as_i64().expect("id") + 1)
    );
    check_segments(&km, ids.len());
    // Every k of the default range is scored, and the chosen k has the best silhouette.
    let scores = km["k_scores"].as_array().expect("k_scores");
    let ks: Vec<i64> = scores.iter().map(|s| s["k"].as_i64().expect("k")).collect();
    assert_eq!(ks, (2..=10).collect::<Vec<_>>());
    let best = scores
        .iter()
        .filter_map(|s| s["silhouette"].as_f64())
        .fold(f64::MIN, f64::max);
    let k = km["k"].as_i64().expect("k");
    let chosen = scores
        .iter()
        .find(|s| s["k"].as_i64() == Some(k))
        .expect("chosen k scored");
    assert_eq!(f(&chosen["silhouette"]), best);
    assert_eq!(segments(&km).len() as i64, k);
    assert!(segments(&km)
        .iter()
        .all(|s| s["name"].as_str().is_some_and(|n| n.contains("-like"))));

    // The stored run reads back as it was printed.
    let shown = run_json(&ws, &["segments", "show", "latest", "--format", "json"]);
    assert_eq!(shown, km);
    let list = run_json(&ws, &["segments", "--format", "json"]);
    let listed: Vec<i64> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["run_id"].as_i64().expect("id"))
        .collect();
    assert_eq!(listed, vec![2, 1], "newest first");

    // Migration from the RFM run to the k-means run: everyone is in both.
    let d = run_json(&ws, &["segments", "diff", "1", "2", "--format", "json"]);
    let cells: u64 = d["counts"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|c| c.as_u64().expect("count"))
        })
        .sum();
    assert_eq!(cells as usize, ids.len());
    assert_eq!(d["common"].as_u64(), Some(ids.len() as u64));
    let only: u64 = ["only_in_from", "only_in_to"]
        .iter()
        .flat_map(|k| {
            d[*k]
                .as_array()
                .expect("array")
                .iter()
                .map(|c| c.as_u64().expect("n"))
        })
        .sum();
    assert_eq!(only, 0);
    // The matrix matches the two exports.
    let (a, b) = (export(&ws, "1"), export(&ws, "2"));
    let from: Vec<&str> = d["from"]
        .as_array()
        .expect("from")
        .iter()
        .map(|v| v.as_str().expect("s"))
        .collect();
    let to: Vec<&str> = d["to"]
        .as_array()
        .expect("to")
        .iter()
        .map(|v| v.as_str().expect("s"))
        .collect();
    for (i, fs) in from.iter().enumerate() {
        for (j, ts) in to.iter().enumerate() {
            let n = a
                .iter()
                .filter(|(id, v)| v.0 == *fs && b[*id].0 == *ts)
                .count();
            assert_eq!(d["counts"][i][j].as_u64(), Some(n as u64), "{fs} -> {ts}");
        }
    }
    let table =
        String::from_utf8(stdout_of(&ws, &["segments", "diff", "1", "latest"])).expect("utf8");
    assert!(table.contains("in the same segment"));
}

#[test]
fn same_seed_same_segments_and_gmm_works() {
    let (_dir, ws) = cdnow_workspace();
    let ids = cdnow_customers();
    let args = [
        "segment", "--method", "kmeans", "--k", "4", "--seed", "7", "--format", "json",
    ];
    let first = run_json(&ws, &args);
    let second = run_json(&ws, &args);
    assert_eq!(first["k"].as_i64(), Some(4));
    assert!(
        first["k_scores"].is_null(),
        "fixed k reports no candidate scores"
    );
    assert_eq!(segments(&first), segments(&second));
    assert_eq!(export(&ws, "1"), export(&ws, "2"));
    let gmm = run_json(
        &ws,
        &["segment", "--method", "gmm", "--k", "3", "--format", "json"],
    );
    assert_eq!(gmm["method"], "gmm");
    check_segments(&gmm, ids.len());
    // A past as-of date segments fewer customers.
    let early = run_json(
        &ws,
        &["segment", "--as-of", "1997-02-01", "--format", "json"],
    );
    let n = early["customers"].as_u64().expect("customers") as usize;
    assert!(n > 0 && n < ids.len());
    check_segments(&early, n);
    assert_eq!(early["as_of"], "1997-02-01");
}

#[test]
fn exit_codes() {
    let (_dir, ws) = workspace();
    // No orders yet: precondition.
    retain(&ws).args(["segment"]).assert().code(4);
    retain(&ws)
        .args(["segments", "show", "latest"])
        .assert()
        .code(4);
    let listed = String::from_utf8(stdout_of(&ws, &["segments"])).expect("utf8");
    assert!(listed.contains("no segmentation runs"));
    let (_dir2, ws) = cdnow_workspace();
    // Usage errors.
    retain(&ws)
        .args(["segment", "--method", "dbscan"])
        .assert()
        .code(2);
    retain(&ws)
        .args(["segment", "--method", "kmeans", "--k", "1"])
        .assert()
        .code(2);
    retain(&ws)
        .args(["segment", "--method", "kmeans", "--k", "many"])
        .assert()
        .code(2);
    retain(&ws)
        .args(["segment", "--method", "kmeans", "--features", "shoe_size"])
        .assert()
        .code(2);
    retain(&ws)
        .args(["segments", "show", "first"])
        .assert()
        .code(2);
    // Nothing before the as-of date, unknown runs: precondition.
    retain(&ws)
        .args(["segment", "--as-of", "1990-01-01"])
        .assert()
        .code(4);
    retain(&ws)
        .args(["segments", "show", "99"])
        .assert()
        .code(4);
    retain(&ws)
        .args(["segments", "diff", "1", "2"])
        .assert()
        .code(4);
    // CLV features without predictions: precondition.
    retain(&ws)
        .args(["segment", "--method", "kmeans", "--features", "recency,clv"])
        .assert()
        .code(4);
}
