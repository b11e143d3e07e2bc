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
    // Every k of the default range is scored (the scores themselves are checked against an
    // independent computation in `kmeans_picks_the_k_whose_silhouette_is_best`).
    let scores = km["k_scores"].as_array().expect("k_scores");
    let ks: Vec<i64> = scores.iter().map(|s| s["k"].as_i64().expect("k")).collect();
    assert_eq!(ks, (2..=10).collect::<Vec<_>>());
    let k = km["k"].as_i64().expect("k");
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

/// The clustering features of each CDNOW customer, computed here from the CSV: recency (days
/// from the last order to the day after the file's last order), frequency (rows: each row is an
/// order) and net revenue, each clamped at 0, `log1p`-ed and standardised with the population
/// mean and standard deviation.
fn cdnow_features() -> BTreeMap<String, [f64; 3]> {
    let text = std::fs::read_to_string(repo("data/cdnow/orders.csv")).expect("orders.csv");
    let mut per: BTreeMap<String, (chrono::NaiveDate, f64, f64)> = BTreeMap::new();
    let mut last_day = None;
    for l in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let c: Vec<&str> = l.split(',').collect();
        let day = chrono::NaiveDate::parse_from_str(c[1], "%Y-%m-%d").expect("date");
        let amount: f64 = c[3].parse().expect("amount");
        let e = per.entry(c[0].to_string()).or_insert((day, 0.0, 0.0));
        e.0 = e.0.max(day);
        e.1 += 1.0;
        e.2 += amount;
        last_day = last_day.max(Some(day));
    }
    let as_of = last_day.expect("orders") + chrono::Days::new(1);
    let raw: Vec<[f64; 3]> = per
        .values()
        .map(|(last, n, total)| [(as_of - *last).num_days() as f64, *n, *total])
        .map(|v| v.map(|x| x.max(0.0).ln_1p()))
        .collect();
    let n = raw.len() as f64;
    let mut scaled = raw.clone();
    for j in 0..3 {
        let mean = raw.iter().map(|r| r[j]).sum::<f64>() / n;
        let sd = (raw.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n).sqrt();
        for (s, r) in scaled.iter_mut().zip(&raw) {
            s[j] = if sd > 0.0 { (r[j] - mean) / sd } else { 0.0 };
        }
    }
    per.into_keys().zip(scaled).collect()
}

/// Mean silhouette (Euclidean; a point alone in its cluster scores 0) of `labels` given the
/// pairwise `dist`ances, written out plainly.
fn silhouette(dist: &[Vec<f64>], labels: &[usize]) -> f64 {
    let k = labels.iter().max().expect("labels") + 1;
    let mut size = vec![0usize; k];
    for &l in labels {
        size[l] += 1;
    }
    let mut total = 0.0;
    for (i, row) in dist.iter().enumerate() {
        let mut sum = vec![0.0; k];
        for (j, d) in row.iter().enumerate() {
            if j != i {
                sum[labels[j]] += d;
            }
        }
        let own = labels[i];
        if size[own] < 2 {
            continue;
        }
        let a = sum[own] / (size[own] - 1) as f64;
        let b = (0..k)
            .filter(|&c| c != own && size[c] > 0)
            .map(|c| sum[c] / size[c] as f64)
            .fold(f64::INFINITY, f64::min);
        let m = a.max(b);
        if m > 0.0 {
            total += (b - a) / m;
        }
    }
    total / labels.len() as f64
}

#[test]
fn kmeans_picks_the_k_whose_silhouette_is_best() {
    let (_dir, ws) = cdnow_workspace();
    let features = cdnow_features();
    let ids: Vec<&String> = features.keys().collect();
    let points: Vec<[f64; 3]> = features.values().copied().collect();
    let dist: Vec<Vec<f64>> = points
        .iter()
        .map(|p| {
            points
                .iter()
                .map(|q| (0..3).map(|j| (p[j] - q[j]).powi(2)).sum::<f64>().sqrt())
                .collect()
        })
        .collect();
    let auto = run_json(&ws, &["segment", "--method", "kmeans", "--format", "json"]);
    let reported: BTreeMap<i64, f64> = auto["k_scores"]
        .as_array()
        .expect("k_scores")
        .iter()
        .map(|s| (s["k"].as_i64().expect("k"), f(&s["silhouette"])))
        .collect();
    // Each k fitted on its own (same seed, so the same fit as the candidate), its assignment
    // exported, and its silhouette computed here.
    let mut mine: BTreeMap<i64, f64> = BTreeMap::new();
    for k in 2..=10i64 {
        let run = run_json(
            &ws,
            &[
                "segment",
                "--method",
                "kmeans",
                "--k",
                &k.to_string(),
                "--format",
                "json",
            ],
        );
        let exported = export(&ws, &run["run_id"].as_i64().expect("run").to_string());
        let names: BTreeSet<&str> = exported.values().map(|v| v.0.as_str()).collect();
        let names: Vec<&str> = names.into_iter().collect();
        let labels: Vec<usize> = ids
            .iter()
            .map(|id| {
                let seg = &exported.get(*id).expect("every customer exported").0;
                names.iter().position(|n| n == seg).expect("named")
            })
            .collect();
        assert_eq!(names.len() as i64, k);
        let s = silhouette(&dist, &labels);
        assert!(
            (s - reported[&k]).abs() < 1e-9,
            "k = {k}: silhouette {s} here, {} reported",
            reported[&k]
        );
        mine.insert(k, s);
    }
    let best = mine.iter().fold(
        (0i64, f64::MIN),
        |b, (&k, &s)| if s > b.1 { (k, s) } else { b },
    );
    assert_eq!(auto["k"].as_i64(), Some(best.0), "silhouettes: {mine:?}");
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
