//! End-to-end tests of `retain predict` on temporary workspaces: the CDNOW sample fitted through
//! the binary against python lifetimes' fits, the export, the holdout validation, and the exit
//! codes of degenerate data.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use chrono::NaiveDate;
use serde_json::Value;

mod common;
use common::{repo, retain, workspace};

fn import(ws: &Path, file: &Path) {
    let out = retain(ws)
        .args(["import", "orders"])
        .arg(file)
        .args(["--format", "json"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_json(ws: &Path, args: &[&str]) -> Value {
    let out = retain(ws).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "retain {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// `data/cdnow/orders.csv` parsed here, independently of retain's importer:
/// (customer, date, amount).
fn cdnow_rows() -> Vec<(String, NaiveDate, f64)> {
    std::fs::read_to_string(repo("data/cdnow/orders.csv"))
        .expect("orders.csv")
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[0].to_string(), date(c[1]), c[3].parse().expect("amount"))
        })
        .collect()
}

#[test]
fn predict_cdnow_matches_lifetimes() {
    let (_dir, ws) = workspace();
    import(&ws, &repo("data/cdnow/orders.csv"));
    let v = run_json(
        &ws,
        &[
            "predict",
            "--as-of",
            "1997-09-30",
            "--period",
            "week",
            "--format",
            "json",
        ],
    );
    assert_eq!(v["customers"], 2357);
    for key in [
        "bgnbd",
        "gamma_gamma",
        "gamma_gamma_reason",
        "clv_mean",
        "p_alive_mean",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert!(v["gamma_gamma_reason"].is_null());

    let bg = &v["bgnbd"];
    assert!(f(&bg["log_likelihood"]) < 0.0);
    assert_eq!(bg["converged"], true);
    // As of 1997-09-30 includes that day, as lifetimes' observation_period_end does: lifetimes
    // 0.11.3 fitted from the same transactions gives r=0.2425945, alpha=4.4136027, a=0.7929218,
    // b=2.4259057 (the published fit: 0.2426, 4.4136, 0.7929, 2.4259). Gamma-Gamma sees the
    // published (x, zbar) exactly: p, q, v as published.
    for (key, lifetimes) in [
        ("r", 0.242_594_5),
        ("alpha", 4.413_602_7),
        ("a", 0.792_921_8),
        ("b", 2.425_905_7),
    ] {
        assert!(rel(f(&bg[key]), lifetimes) < 1e-3, "{key}: {}", bg[key]);
    }
    for (key, published) in [("p", 6.248802), ("q", 3.744588), ("v", 15.447748)] {
        assert!(rel(f(&v["gamma_gamma"][key]), published) < 1e-3, "{key}");
    }

    // The export: every customer, the documented columns, consistent with the run.
    let out = retain(&ws)
        .args(["predict", "export", "--format", "csv"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = r
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(
        header,
        [
            "customer_id",
            "frequency",
            "recency",
            "T",
            "monetary",
            "p_alive",
            "expected_purchases_90d",
            "clv",
            "expected_purchases_90d_low",
            "expected_purchases_90d_high",
            "clv_low",
            "clv_high",
            "churn_risk",
            "next_order_date",
        ]
    );
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("row")).collect();
    assert_eq!(rows.len(), 2357);
    let col = |row: &csv::StringRecord, i: usize| -> f64 { row[i].parse().expect("number") };
    let mean = |i: usize| rows.iter().map(|row| col(row, i)).sum::<f64>() / rows.len() as f64;
    assert!(rel(mean(5), f(&v["p_alive_mean"])) < 1e-9);
    assert!(rel(mean(7), f(&v["clv_mean"])) < 1e-9);
    let one = rows.iter().find(|row| &row[0] == "1").expect("customer 1");
    // Customer 1 bought on 1997-01-01, 01-18 and 08-02 (and 12-12, after the as-of date).
    assert_eq!(col(one, 1), 2.0);
    assert!((col(one, 2) - 213.0 / 7.0).abs() < 1e-12);
    assert!((col(one, 3) - 272.0 / 7.0).abs() < 1e-12);
    assert!((col(one, 4) - (29.73 + 14.96) / 2.0).abs() < 1e-9);
    for row in &rows {
        let p = col(row, 5);
        assert!((0.0..=1.0).contains(&p) && col(row, 6) >= 0.0 && col(row, 7) >= 0.0);
    }

    // Intervals, churn-risk bands and next order dates for every customer.
    let as_of = date("1997-09-30");
    let mut bands: BTreeMap<String, usize> = BTreeMap::new();
    let mut widths = 0usize;
    for row in &rows {
        let (ep, ep_lo, ep_hi) = (col(row, 6), col(row, 8), col(row, 9));
        let (clv, clv_lo, clv_hi) = (col(row, 7), col(row, 10), col(row, 11));
        assert!(ep_lo <= ep && ep <= ep_hi, "customer {}: {row:?}", &row[0]);
        assert!(
            clv_lo <= clv && clv <= clv_hi,
            "customer {}: {row:?}",
            &row[0]
        );
        if clv_hi > clv_lo {
            widths += 1;
        }
        // The documented cut-offs: low when P(alive) >= 0.7, high below 0.3, medium between.
        let p = col(row, 5);
        let expected = if p >= 0.7 {
            "low"
        } else if p >= 0.3 {
            "medium"
        } else {
            "high"
        };
        assert_eq!(&row[12], expected, "customer {} with P(alive) {p}", &row[0]);
        *bands.entry(row[12].to_string()).or_default() += 1;
        assert!(date(&row[13]) > as_of, "customer {}: {}", &row[0], &row[13]);
    }
    // The fit has standard errors, so the intervals have width; every band occurs on CDNOW.
    assert_eq!(widths, rows.len());
    assert_eq!(bands.len(), 3, "{bands:?}");
    // The run's JSON counts the same bands.
    for (band, n) in &bands {
        assert_eq!(v["churn_risk"][band], *n as u64, "{band}");
    }
    assert_eq!(v["interval_level"], 0.9);
    let se = &v["fit"]["std_errors"]["bgnbd"];
    assert!(f(&se["r"]) > 0.0 && f(&se["b"]) > 0.0, "{}", v["fit"]);
}

#[test]
fn the_table_shows_errors_bands_and_dates_and_the_level_narrows_the_interval() {
    let (_dir, ws) = workspace();
    import(&ws, &repo("data/cdnow/orders.csv"));
    let out = retain(&ws)
        .args(["predict", "--as-of", "1997-09-30", "--model", "pareto-nbd"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // The predicting model with parameter ± standard error (published s.e. of r: 0.048).
    let line = text
        .lines()
        .find(|l| l.contains("Pareto/NBD") && l.contains("(predicts)"))
        .unwrap_or_else(|| panic!("no Pareto/NBD line: {text}"));
    assert!(
        line.contains("r=0.55") && line.contains(" ± 0.04"),
        "{line}"
    );
    assert!(
        line.contains("beta=") && line.matches('±').count() == 4,
        "{line}"
    );
    for needle in [
        "churn risk",
        "CLV 90% interval",
        "next order",
        "churn risk: low ",
    ] {
        assert!(text.contains(needle), "missing {needle}: {text}");
    }

    // A 50% interval is narrower than the 90% one, around the same point estimate.
    let width = |level: &str| -> (f64, f64) {
        let v = run_json(
            &ws,
            &[
                "predict",
                "--as-of",
                "1997-09-30",
                "--interval-level",
                level,
                "--format",
                "json",
            ],
        );
        assert_eq!(
            f(&v["interval_level"]),
            level.parse::<f64>().expect("level")
        );
        let out = retain(&ws)
            .args(["predict", "export", "--format", "json"])
            .output()
            .expect("runs");
        let rows: Value = serde_json::from_slice(&out.stdout).expect("json");
        let one = rows
            .as_array()
            .expect("array")
            .iter()
            .find(|r| r["customer_id"] == "1")
            .expect("customer 1")
            .clone();
        (f(&one["clv_high"]) - f(&one["clv_low"]), f(&one["clv"]))
    };
    let (w90, clv90) = width("0.9");
    let (w50, clv50) = width("0.5");
    assert!(w50 > 0.0 && w50 < w90, "50%: {w50}, 90%: {w90}");
    assert!(rel(clv50, clv90) < 1e-12);
    // A level outside (0, 1) is a usage error.
    retain(&ws)
        .args(["predict", "--interval-level", "1.5"])
        .assert()
        .code(2);
}

#[test]
fn auto_stores_the_chosen_model_its_errors_and_the_evidence() {
    let (_dir, ws) = workspace();
    import(&ws, &repo("data/cdnow/orders.csv"));
    let v = run_json(
        &ws,
        &[
            "predict",
            "--as-of",
            "1997-09-30",
            "--model",
            "auto",
            "--format",
            "json",
        ],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let run = rt.block_on(async {
        let store = retain_store::Store::open_sqlite(&ws.join("retain.db"))
            .await
            .expect("db");
        store
            .latest_prediction_run()
            .await
            .expect("read")
            .expect("a run")
    });
    let model = v["model"].as_str().expect("model");
    assert_eq!(run.model.as_deref(), Some(model));
    assert_eq!(run.interval_level, Some(0.9));
    let fit: retain_clv::ModelFit =
        serde_json::from_value(run.params.expect("params")).expect("a fit");
    assert_eq!(fit.model().as_str(), model);
    assert!(fit.std_errors.is_some());
    let sel: retain_clv::ModelSelection =
        serde_json::from_value(run.selection.expect("selection")).expect("a selection");
    assert_eq!(sel.best.as_str(), model);
    assert_eq!(sel.candidates.len(), 3);
    let chosen = sel
        .candidates
        .iter()
        .find(|c| c.model == sel.best)
        .expect("chosen");
    assert_eq!(chosen.deciles.len(), 10);
    // A later run without auto stores no selection.
    run_json(
        &ws,
        &["predict", "--as-of", "1997-09-30", "--format", "json"],
    );
    let run = rt.block_on(async {
        let store = retain_store::Store::open_sqlite(&ws.join("retain.db"))
            .await
            .expect("db");
        store
            .latest_prediction_run()
            .await
            .expect("read")
            .expect("run")
    });
    assert_eq!((run.model.as_deref(), run.selection), (Some("bgnbd"), None));
}

#[test]
fn day_period_is_the_same_model_in_days() {
    let (_dir, ws) = workspace();
    import(&ws, &repo("data/cdnow/orders.csv"));
    let week = run_json(
        &ws,
        &["predict", "--as-of", "1997-09-30", "--format", "json"],
    );
    let day = run_json(
        &ws,
        &[
            "predict",
            "--as-of",
            "1997-09-30",
            "--period",
            "day",
            "--format",
            "json",
        ],
    );
    assert_eq!(day["period"], "day");
    assert!(rel(f(&day["bgnbd"]["r"]), f(&week["bgnbd"]["r"])) < 1e-5);
    assert!(rel(f(&day["bgnbd"]["alpha"]), 7.0 * f(&week["bgnbd"]["alpha"])) < 1e-5);
    // 90 days is 90 days in either unit.
    assert!(
        rel(
            f(&day["expected_purchases_90d_mean"]),
            f(&week["expected_purchases_90d_mean"])
        ) < 1e-4
    );
}

#[test]
fn calibration_end_validates_on_the_holdout_without_storing() {
    let (_dir, ws) = workspace();
    import(&ws, &repo("data/cdnow/orders.csv"));
    let v = run_json(
        &ws,
        &[
            "predict",
            "--as-of",
            "1998-06-30",
            "--calibration-end",
            "1997-09-30",
            "--format",
            "json",
        ],
    );
    // Actual holdout repeat purchases counted here: distinct (customer, day) in the window, of
    // customers who bought before it.
    let rows = cdnow_rows();
    let first: HashMap<&str, NaiveDate> = rows.iter().fold(HashMap::new(), |mut m, (c, d, _)| {
        let e = m.entry(c.as_str()).or_insert(*d);
        *e = (*e).min(*d);
        m
    });
    let holdout: BTreeSet<(&str, NaiveDate)> = rows
        .iter()
        .filter(|(c, d, _)| {
            *d > date("1997-09-30")
                && *d <= date("1998-06-30")
                && first[c.as_str()] <= date("1997-09-30")
        })
        .map(|(c, d, _)| (c.as_str(), *d))
        .collect();
    assert_eq!(f(&v["actual_total"]), holdout.len() as f64);
    assert!(
        rel(f(&v["predicted_total"]), f(&v["actual_total"])) < 0.15,
        "{v}"
    );
    let buckets = v["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 8);
    assert_eq!(buckets[7]["frequency"], "7+");
    let by_bucket: BTreeMap<String, f64> = buckets
        .iter()
        .map(|b| {
            (
                b["frequency"].as_str().expect("label").to_string(),
                f(&b["predicted_mean"]),
            )
        })
        .collect();
    assert!(by_bucket["0"] < by_bucket["1"] && by_bucket["6"] < by_bucket["7+"]);
    // Validation leaves the stored predictions alone: there are none yet.
    retain(&ws).args(["predict", "export"]).assert().code(4);
}

#[test]
fn degenerate_data_is_a_precondition_error() {
    let (dir, ws) = workspace();
    // No orders at all.
    let out = retain(&ws).args(["predict"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(4));
    // Everybody bought exactly once: BG/NBD cannot be identified.
    let csv = dir.path().join("once.csv");
    let mut text = String::from("customer_id,order_date,amount\n");
    for i in 0..50 {
        text.push_str(&format!("c{i},2024-01-{:02},{}.50\n", 1 + i % 28, 10 + i));
    }
    std::fs::write(&csv, text).expect("write");
    import(&ws, &csv);
    let out = retain(&ws).args(["predict"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("repeat purchase"), "{err}");
    assert!(!err.contains("NaN"), "{err}");
}
