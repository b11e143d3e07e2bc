//! `retain plan` end to end on a generated shop: plan, show, approve, discard, bad goals files.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn retain(ws: &Path) -> Command {
    let mut c = Command::cargo_bin("retain").expect("binary");
    c.arg("--workspace").arg(ws).arg("--quiet");
    c
}

/// A workspace with a generated shop imported and segmented.
fn shop() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let data = dir.path().join("data");
    Command::cargo_bin("retain")
        .expect("bin")
        .args(["--quiet", "init"])
        .arg(&ws)
        .assert()
        .success();
    Command::cargo_bin("retain")
        .expect("bin")
        .args([
            "--quiet",
            "demo-data",
            "--customers",
            "400",
            "--seed",
            "5",
            "--out",
        ])
        .arg(&data)
        .assert()
        .success();
    retain(&ws)
        .args(["import", "customers"])
        .arg(data.join("customers.csv"))
        .assert()
        .success();
    retain(&ws)
        .args(["import", "orders"])
        .arg(data.join("orders.csv"))
        .assert()
        .success();
    retain(&ws).arg("segment").assert().success();
    dir
}

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out).expect("one JSON document")
}

#[test]
fn plan_show_approve_discard() {
    let dir = shop();
    let ws = dir.path().join("ws");
    let out = retain(&ws)
        .args([
            "plan",
            "--budget",
            "40",
            "--seed",
            "7",
            "--holdout",
            "0.2",
            "--format",
            "json",
        ])
        .args(["--stage", "growth", "--marketing-budget", "1000"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = json(&out.stdout);
    let id = p["plan_id"].as_str().expect("plan_id").to_string();
    assert_eq!(p["state"], "draft");
    for key in ["campaigns", "excluded", "budget", "balance"] {
        assert!(p.get(key).is_some(), "missing {key}");
    }
    assert_eq!(p["budget"]["total"], 40.0);
    assert!(p["budget"]["used"].as_f64().expect("used") <= 40.0);
    assert_eq!(p["balance"]["recommended_retention_share"], 0.4);
    assert!(p["balance"]["planned_retention_share"].as_f64().is_some());
    let campaigns = p["campaigns"].as_array().expect("campaigns");
    assert!(
        !campaigns.is_empty(),
        "a generated shop has someone worth mailing: {p}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for c in campaigns {
        for key in [
            "campaign_id",
            "goal",
            "segments",
            "template",
            "audience",
            "holdout",
            "expected_value",
            "cost",
        ] {
            assert!(c.get(key).is_some(), "campaign missing {key}");
        }
        let cid = c["campaign_id"].as_str().expect("id");
        assert!(cid.starts_with(&format!("{id}-")), "{cid}");
        for m in c["audience"]
            .as_array()
            .expect("a")
            .iter()
            .chain(c["holdout"].as_array().expect("h"))
        {
            assert!(
                seen.insert(m.as_str().expect("id").to_string()),
                "{m} in two campaigns"
            );
        }
    }

    // Same seed, same inputs: the same plan (new id).
    let again = json(
        &retain(&ws)
            .args([
                "plan",
                "--budget",
                "40",
                "--seed",
                "7",
                "--holdout",
                "0.2",
                "--format",
                "json",
            ])
            .args(["--stage", "growth", "--marketing-budget", "1000"])
            .output()
            .expect("runs")
            .stdout,
    );
    assert_ne!(again["plan_id"], p["plan_id"]);
    let strip = |v: &Value| {
        v["campaigns"]
            .as_array()
            .expect("c")
            .iter()
            .map(|c| {
                (
                    c["goal"].clone(),
                    c["audience"].clone(),
                    c["holdout"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&again), strip(&p));

    // Show returns what was stored.
    let shown = json(
        &retain(&ws)
            .args(["plan", "show", &id, "--format", "json"])
            .output()
            .expect("runs")
            .stdout,
    );
    assert_eq!(strip(&shown), strip(&p));
    assert_eq!(
        shown["campaigns"][0]["campaign_id"],
        p["campaigns"][0]["campaign_id"]
    );
    retain(&ws)
        .args(["plan", "show", &id, "--format", "markdown"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("# Plan {id} (draft)")));
    retain(&ws)
        .args(["plan", "show", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains("expected incremental value"));

    // Life cycle.
    retain(&ws)
        .args(["plan", "approve", &id])
        .assert()
        .success();
    let shown = json(
        &retain(&ws)
            .args(["plan", "show", &id, "--format", "json"])
            .output()
            .expect("runs")
            .stdout,
    );
    assert_eq!(shown["state"], "approved");
    retain(&ws)
        .args(["plan", "discard", &id])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("approved"));
    let other = again["plan_id"].as_str().expect("id").to_string();
    retain(&ws)
        .args(["plan", "discard", &other])
        .assert()
        .success();
    retain(&ws)
        .args(["plan", "approve", &other])
        .assert()
        .code(4);
    retain(&ws).args(["plan", "show", "p999"]).assert().code(4);
}

#[test]
fn without_a_budget_everyone_worth_it_is_planned() {
    let dir = shop();
    let ws = dir.path().join("ws");
    let run = |args: &[&str]| {
        let out = retain(&ws).args(args).output().expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&out.stdout)
    };
    let all = run(&["plan", "--seed", "1", "--format", "json"]);
    assert!(all["budget"]["total"].is_null(), "{}", all["budget"]);
    let some = run(&["plan", "--seed", "1", "--budget", "20", "--format", "json"]);
    let ev = |v: &Value| v["expected_value"].as_f64().expect("expected_value");
    let used = |v: &Value| v["budget"]["used"].as_f64().expect("used");
    assert!(ev(&all) >= ev(&some), "{} < {}", ev(&all), ev(&some));
    assert!(used(&all) >= used(&some));
    // The recommended retention share of a marketing budget is the default budget.
    let rec = run(&[
        "plan",
        "--seed",
        "1",
        "--marketing-budget",
        "50",
        "--stage",
        "startup",
        "--format",
        "json",
    ]);
    assert_eq!(rec["budget"]["total"], 10.0);
}

#[test]
fn a_cautious_plan_counts_on_no_more_than_the_normal_one() {
    let dir = shop();
    let ws = dir.path().join("ws");
    let run = |args: &[&str]| {
        let out = retain(&ws).args(args).output().expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&out.stdout)
    };
    // Without predictions --cautious has nothing to read: it says so.
    let bare = run(&["plan", "--seed", "1", "--cautious", "--format", "json"]);
    let warned = bare["warnings"].to_string();
    assert!(warned.contains("no predictions"), "{warned}");

    retain(&ws).arg("predict").assert().success();
    let ev = |v: &Value| v["expected_value"].as_f64().expect("expected_value");
    for budget in [None, Some("20")] {
        let mut args = vec!["plan", "--seed", "1", "--format", "json"];
        if let Some(b) = budget {
            args.extend(["--budget", b]);
        }
        let normal = run(&args);
        args.push("--cautious");
        let cautious = run(&args);
        assert_eq!(cautious["cautious"], true);
        assert_eq!(normal["cautious"], false);
        assert!(
            !cautious["warnings"].to_string().contains("--cautious"),
            "{}",
            cautious["warnings"]
        );
        // The default goals value win-backs and VIP care by CLV, whose lower bound is below the
        // point estimate for every customer with a spend model: strictly less is counted on.
        assert!(
            ev(&cautious) < ev(&normal),
            "budget {budget:?}: cautious {} vs normal {}",
            ev(&cautious),
            ev(&normal)
        );
        assert!(ev(&cautious) > 0.0, "{cautious}");
    }
    // The table says the plan is cautious.
    let out = retain(&ws)
        .args(["plan", "--seed", "1", "--cautious"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("Cautious: customers valued at the lower bounds"));
}

#[test]
fn zero_budget_is_an_empty_plan_not_an_error() {
    let dir = shop();
    let ws = dir.path().join("ws");
    let out = retain(&ws)
        .args(["plan", "--budget", "0", "--format", "json"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = json(&out.stdout);
    assert_eq!(p["campaigns"].as_array().map(Vec::len), Some(0));
    assert!(
        p["empty_reason"]
            .as_str()
            .is_some_and(|r| r.contains("budget")),
        "{p}"
    );
}

#[test]
fn bad_goals_files_exit_3_with_a_position() {
    let dir = shop();
    let ws = dir.path().join("ws");
    let goals = std::fs::read_to_string(ws.join("goals.toml")).expect("goals.toml");
    let bad = goals.replacen("\"At Risk\"", "\"At Rsk\"", 1);
    let line = bad
        .lines()
        .position(|l| l.contains("At Rsk"))
        .expect("line")
        + 1;
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, bad).expect("write");
    retain(&ws)
        .args(["plan", "--budget", "10", "--goals"])
        .arg(&file)
        .assert()
        .code(3)
        .stderr(predicate::str::contains(format!("bad.toml:{line}:")))
        .stderr(predicate::str::contains("unknown segment \"At Rsk\""));
    retain(&ws)
        .args(["plan", "--budget", "10", "--holdout", "0.9"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("holdout"));
}

#[test]
fn nothing_imported_is_a_precondition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    Command::cargo_bin("retain")
        .expect("bin")
        .args(["--quiet", "init"])
        .arg(&ws)
        .assert()
        .success();
    retain(&ws)
        .args(["plan", "--budget", "10"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("no orders"));
}

/// A ten-customer shop (issue 12 item 7): no infinite budget, no "-0.00", campaigns formed, and
/// a plain note that nothing will be measurable.
#[test]
fn a_ten_customer_shop_plans_and_says_what_it_cannot_measure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let data = dir.path().join("data");
    Command::cargo_bin("retain")
        .expect("bin")
        .args(["--quiet", "init"])
        .arg(&ws)
        .assert()
        .success();
    Command::cargo_bin("retain")
        .expect("bin")
        .args([
            "--quiet",
            "demo-data",
            "--customers",
            "10",
            "--seed",
            "3",
            "--out",
        ])
        .arg(&data)
        .assert()
        .success();
    for kind in ["customers", "orders"] {
        retain(&ws)
            .args(["import", kind])
            .arg(data.join(format!("{kind}.csv")))
            .assert()
            .success();
    }
    retain(&ws).arg("segment").assert().success();
    for stage in ["startup", "growth"] {
        let out = retain(&ws)
            .args(["plan", "--seed", "1", "--stage", stage])
            .output()
            .expect("runs");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("797693") && !text.contains("e308"), "{text}");
        assert!(!text.contains("-0.00"), "{text}");
        assert!(text.contains("no budget limit"), "{text}");
        assert!(text.contains("small shop:"), "{text}");
        assert!(
            text.contains("no campaign's uplift will be measurable"),
            "{text}"
        );
    }
    let out = retain(&ws)
        .args(["plan", "--seed", "1", "--holdout", "0", "--format", "json"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out.stdout);
    let campaigns = v["campaigns"].as_array().expect("campaigns");
    assert!(!campaigns.is_empty(), "{v}");
    assert!(campaigns
        .iter()
        .all(|c| c["holdout"].as_array().is_some_and(Vec::is_empty)));
    assert!(v["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .any(|w| w.as_str().is_some_and(|w| w.starts_with("holdout 0"))));
    // Out of range is still a usage error.
    retain(&ws)
        .args(["plan", "--holdout", "0.7"])
        .assert()
        .failure()
        .code(2);
}
