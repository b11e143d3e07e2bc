//! End-to-end tests of the `retain` binary on temporary workspaces: init, import (good, messy and
//! bad files), stats checked against figures computed independently here, exit codes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn retain(ws: &Path) -> Command {
    let mut c = Command::cargo_bin("retain").expect("binary");
    c.arg("--workspace").arg(ws);
    c.env_remove("RETAIN_DATABASE_URL")
        .env_remove("RETAIN_WORKSPACE");
    c
}

fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    Command::cargo_bin("retain")
        .expect("binary")
        .args(["init"])
        .arg(&ws)
        .assert()
        .success();
    (dir, ws)
}

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn import_json(ws: &Path, kind: &str, file: &Path, extra: &[&str]) -> Value {
    let out = retain(ws)
        .args(["import", kind])
        .arg(file)
        .args(extra)
        .args(["--format", "json"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out.stdout)
}

fn stats_json(ws: &Path, extra: &[&str]) -> Value {
    let out = retain(ws)
        .args(["stats", "--format", "json"])
        .args(extra)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "stats failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out.stdout)
}

/// CDNOW purchases parsed here, independently of retain: (customer, yyyymmdd, dollars).
fn cdnow_rows() -> Vec<(String, String, f64)> {
    std::fs::read_to_string(repo("data/cdnow/CDNOW_sample.txt"))
        .expect("sample")
        .lines()
        .filter_map(|l| {
            let p: Vec<&str> = l.split_whitespace().collect();
            (p.len() == 5).then(|| {
                (
                    p[1].trim_start_matches('0').to_string(),
                    p[2].to_string(),
                    p[4].parse().expect("amount"),
                )
            })
        })
        .collect()
}

#[test]
fn init_creates_a_complete_workspace() {
    let (_d, ws) = workspace();
    for f in ["retain.toml", "goals.toml", "retain.db", "secret.key"] {
        assert!(ws.join(f).is_file(), "{f} missing");
    }
    assert!(ws.join("templates").is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ws.join("secret.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let toml = std::fs::read_to_string(ws.join("retain.toml")).expect("toml");
    assert!(toml.contains("[smtp]") && toml.contains("RETAIN_SMTP_PASSWORD"));
    // Running init again keeps what exists.
    Command::cargo_bin("retain")
        .expect("bin")
        .arg("init")
        .arg(&ws)
        .assert()
        .success();
}

#[test]
fn cdnow_import_and_stats_match_independent_computation() {
    let (_d, ws) = workspace();
    let rows = cdnow_rows();
    let r = import_json(&ws, "orders", &repo("data/cdnow/orders.csv"), &[]);
    assert_eq!(r["rows_read"], rows.len() as u64);
    assert_eq!(r["rows_imported"], rows.len() as u64);
    assert_eq!(r["rows_rejected"], 0);
    assert_eq!(r["rows_without_customer"], 0);
    let mut per_customer: HashMap<&str, u32> = HashMap::new();
    for (c, _, _) in &rows {
        *per_customer.entry(c.as_str()).or_default() += 1;
    }
    assert_eq!(r["customers"], per_customer.len() as u64);
    let revenue: f64 = rows.iter().map(|r| r.2).sum();
    assert!((r["revenue"].as_f64().expect("revenue") - revenue).abs() < 0.01);
    assert_eq!(r["rejects_file"], Value::Null);

    let s = stats_json(&ws, &["--as-of", "1998-07-01"]);
    assert_eq!(s["customers"], per_customer.len() as u64);
    assert_eq!(s["orders"], rows.len() as u64);
    assert!((s["revenue"].as_f64().expect("rev") - revenue).abs() < 0.01);
    let repeaters = per_customer.values().filter(|n| **n >= 2).count() as f64;
    assert!(
        (s["repeat_purchase_rate"].as_f64().expect("rate") - repeaters / per_customer.len() as f64)
            .abs()
            < 1e-9
    );

    // Monthly active and new customers, computed here.
    let mut first: HashMap<&str, &str> = HashMap::new();
    let mut active: BTreeMap<String, std::collections::HashSet<&str>> = BTreeMap::new();
    for (c, d, _) in &rows {
        let m = format!("{}-{}", &d[..4], &d[4..6]);
        active.entry(m).or_default().insert(c);
        let f = first.entry(c).or_insert(d);
        if d.as_str() < *f {
            *f = d;
        }
    }
    let periods = s["periods"].as_array().expect("periods");
    assert_eq!(periods.len(), active.len());
    for p in periods {
        let m = p["period"].as_str().expect("label");
        assert_eq!(p["active_customers"], active[m].len() as u64, "{m}");
        let new = first
            .values()
            .filter(|d| format!("{}-{}", &d[..4], &d[4..6]) == m)
            .count();
        assert_eq!(p["new_customers"], new as u64, "{m}");
    }
    // Retention of June 1998: the share of May's active customers also active in June.
    let kept = active["1998-05"].intersection(&active["1998-06"]).count() as f64;
    let ret = &s["retention"];
    assert_eq!(ret["period"], "1998-06");
    assert_eq!(ret["new_customers"], 0, "no new customers after March 1997");
    assert!(
        (ret["retention_rate"].as_f64().expect("crr") - kept / active["1998-05"].len() as f64)
            .abs()
            < 1e-9
    );
    assert_eq!(
        ret["reactivated_customers"],
        (active["1998-06"].len() as f64 - kept) as u64
    );
    // Cohorts: CDNOW customers all arrived in 1997-Q1.
    let cohorts = s["cohorts"].as_array().expect("cohorts");
    assert_eq!(cohorts.len(), 3);
    assert_eq!(
        cohorts
            .iter()
            .map(|c| c["customers"].as_u64().expect("n"))
            .sum::<u64>(),
        per_customer.len() as u64
    );
}

#[test]
fn online_retail_line_items_with_cancellations_and_missing_customers() {
    let (dir, ws) = workspace();
    let f = dir.path().join("online_retail.csv");
    // Line items: (invoice, qty, date, price, customer)
    let lines: Vec<(&str, i32, &str, f64, &str)> = vec![
        ("536365", 6, "12/1/2010 8:26", 2.55, "17850.0"),
        ("536365", 8, "12/1/2010 8:26", 3.39, "17850.0"),
        ("536366", 6, "12/1/2010 8:28", 1.85, "17850.0"),
        ("536367", 32, "12/1/2010 8:34", 1.69, "13047.0"),
        ("C536379", -1, "12/1/2010 9:41", 27.50, "14527.0"),
        ("536380", 24, "12/13/2010 9:41", 1.45, ""),
        ("536381", 2, "12/14/2010 10:00", 4.95, "14527.0"),
    ];
    let mut text = String::from("\u{feff}InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\r\n");
    for (inv, q, d, p, c) in &lines {
        text.push_str(&format!(
            "{inv},85123A,\"HEART, WHITE\",{q},{d},{p},{c},United Kingdom\r\n"
        ));
    }
    std::fs::write(&f, text).expect("write");
    let r = import_json(&ws, "orders", &f, &[]);
    let attributable: Vec<_> = lines.iter().filter(|l| !l.4.is_empty()).collect();
    let revenue: f64 = attributable.iter().map(|l| f64::from(l.1) * l.3).sum();
    assert_eq!(r["rows_read"], 7);
    assert_eq!(r["rows_without_customer"], 1);
    assert_eq!(r["orders"], 4, "536365 collapses; C536379 is a return");
    assert_eq!(r["returns"], 1);
    assert_eq!(r["customers"], 3);
    assert!((r["revenue"].as_f64().expect("rev") - revenue).abs() < 1e-6);
    let rejects = r["rejects_file"].as_str().expect("rejects file written");
    let rej = std::fs::read_to_string(rejects).expect("rejects");
    assert!(
        rej.contains("no customer id") && rej.lines().nth(1).expect("row").starts_with("7,"),
        "{rej}"
    );
    // Importing the same file again doubles nothing.
    import_json(&ws, "orders", &f, &[]);
    let s = stats_json(&ws, &[]);
    assert_eq!(s["orders"], 4);
    assert_eq!(s["returns"], 1);
    assert!((s["revenue"].as_f64().expect("rev") - revenue).abs() < 1e-6);
}

#[test]
fn day_first_semicolon_decimal_comma_export() {
    let (dir, ws) = workspace();
    let f = dir.path().join("bestellungen.csv");
    std::fs::write(
        &f,
        "Kundennummer;Bestelldatum;Betrag;Bestellnummer\n\
         K-1;31.01.2024;1.234,56;B1\n\
         K-1;01.02.2024;10,00;B2\n\
         K-2;13.02.2024;-5,50;B3\n\
         K-2;12.02.2024;99,99;B4\n",
    )
    .expect("write");
    let r = import_json(
        &ws,
        "orders",
        &f,
        &[
            "--decimal-comma",
            "--date-format",
            "%d.%m.%Y",
            "--map",
            "customer_id=Kundennummer",
            "--map",
            "order_date=Bestelldatum",
        ],
    );
    assert_eq!(r["orders"], 3);
    assert_eq!(r["returns"], 1);
    assert!((r["revenue"].as_f64().expect("rev") - (1234.56 + 10.0 - 5.5 + 99.99)).abs() < 1e-6);
    let s = stats_json(&ws, &["--as-of", "2024-03-01"]);
    assert_eq!(s["customers"], 2);
    assert_eq!(s["periods"].as_array().expect("p").len(), 2);
}

#[test]
fn bad_files_fail_cleanly_and_leave_the_store_untouched() {
    let (dir, ws) = workspace();
    import_json(&ws, "orders", &repo("data/cdnow/orders.csv"), &[]);
    let before = stats_json(&ws, &[]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.csv", Vec::new(), "empty"),
        (
            "image.png",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0".to_vec(),
            "not a CSV",
        ),
        (
            "nocols.csv",
            b"foo,bar\n1,2\n".to_vec(),
            "no usable columns",
        ),
        (
            "truncated.csv",
            b"customer_id,order_date,amount\n1,2024-01-01,5\n2,2024-0".to_vec(),
            "truncated",
        ),
        (
            "baddates.csv",
            b"customer_id,order_date,amount\n1,someday,5\n2,never,3\n".to_vec(),
            "date format",
        ),
    ];
    for (name, bytes, expect) in cases {
        let f = dir.path().join(name);
        std::fs::write(&f, bytes).expect("write");
        let out = retain(&ws)
            .args(["import", "orders"])
            .arg(&f)
            .output()
            .expect("runs");
        assert_eq!(
            out.status.code(),
            Some(3),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(name),
            "{name}: error must name the file: {err}"
        );
        assert!(
            err.contains(expect),
            "{name}: expected '{expect}' in: {err}"
        );
    }
    // --strict stops at the first bad row, naming line and column; nothing is imported.
    let f = dir.path().join("strict.csv");
    std::fs::write(
        &f,
        "customer_id,order_date,amount\nnew-1,2024-01-01,5\nnew-2,2024-01-02,five\n",
    )
    .expect("write");
    let out = retain(&ws)
        .args(["import", "orders", "--strict"])
        .arg(&f)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("column 3 (amount)") && err.contains("'five'"),
        "{err}"
    );
    assert_eq!(
        stats_json(&ws, &[]),
        before,
        "the store is exactly as it was"
    );
    let missing = retain(&ws)
        .args(["import", "orders"])
        .arg(dir.path().join("nope.csv"))
        .output()
        .expect("runs");
    assert_ne!(missing.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.csv"));
}

#[test]
fn customers_import_reports_invalid_emails() {
    let (dir, ws) = workspace();
    let f = dir.path().join("customers.csv");
    std::fs::write(&f, "id,email,first_name,subscribed,tier\n1,a@example.com,Ann,yes,gold\n2,broken@,Bob,no,\n3,c@example.com,Cy,,silver\n").expect("write");
    let r = import_json(&ws, "customers", &f, &[]);
    assert_eq!(r["customers"], 3);
    assert_eq!(r["invalid_emails"], 1);
    assert!(r["rejects_file"].is_string());
}

#[test]
fn commands_outside_a_workspace_exit_4_and_env_selects_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = retain(dir.path()).arg("stats").output().expect("runs");
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("retain init"));
    let (_d, ws) = workspace();
    let out = retain(&ws).arg("stats").output().expect("runs");
    assert_eq!(out.status.code(), Some(4), "no orders yet");
    // RETAIN_DATABASE_URL overrides the embedded file.
    let other = dir.path().join("other.db");
    let mut c = retain(&ws);
    c.env(
        "RETAIN_DATABASE_URL",
        format!("sqlite://{}", other.display()),
    );
    c.args(["import", "orders"])
        .arg(repo("data/cdnow/orders.csv"))
        .assert()
        .success();
    assert!(other.is_file());
    let out = retain(&ws).arg("stats").output().expect("runs");
    assert_eq!(
        out.status.code(),
        Some(4),
        "the workspace's own database is still empty"
    );
}

#[test]
fn usage_errors_exit_2_and_help_has_examples() {
    let out = Command::cargo_bin("retain")
        .expect("bin")
        .args(["import", "orders"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let help = Command::cargo_bin("retain")
        .expect("bin")
        .args(["import", "orders", "--help"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:"));
}
