//! Uplift targeting end to end through the `retain` binary: two past campaigns with random
//! holdouts are planned, approved and sent (file transport); purchases after the sends are
//! imported from a CSV in which the email moved only recent, frequent buyers; `retain uplift
//! fit` learns that, `uplift evaluate` reports it, and `retain plan --target uplift` then targets
//! those customers in a fresh cohort, where ranking by response rate × value does not.

use std::path::Path;

mod common;
use common::{retain, workspace};
use serde_json::Value;

const DAY: i64 = 86_400;

/// Customer `i` of a cohort: persuadable (recent, 5 orders of 20) when `i % 3 == 0`; else a
/// recent one- or two-time buyer of 80, or a lapsed buyer of 5 orders of 80.
fn kind(i: usize) -> u8 {
    (i % 3) as u8
}

fn persuadable(id: &str) -> bool {
    id[2..]
        .parse::<usize>()
        .map(|i| kind(i) == 0)
        .unwrap_or(false)
}

/// A deterministic coin with probability `p` for `(id, salt)`.
fn coin(id: &str, salt: u64, p: f64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x1000_0000_01b3);
    }
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    (h % 10_000) as f64 / 10_000.0 < p
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .expect("time")
        .format("%Y-%m-%d")
        .to_string()
}

/// Customers of cohorts a, b (past campaigns) and c (the next plan), and their history up to
/// today.
fn write_history(dir: &Path, today: i64) {
    let mut customers = String::from("customer_id,email,subscribed,cohort\n");
    let mut orders = String::from("order_id,customer_id,email,order_date,amount\n");
    let mut n = 0;
    for (cohort, size) in [("a", 600), ("b", 600), ("c", 300)] {
        for i in 0..size {
            let id = format!("{cohort}-{i:04}");
            let email = format!("{id}@example.com");
            customers.push_str(&format!("{id},{email},yes,{cohort}\n"));
            let (count, last_days_ago, amount) = match kind(i) {
                0 => (5, 10 + (i % 30) as i64, 20.0),
                1 => (1 + (i % 2), 10 + (i % 30) as i64, 80.0),
                _ => (5, 200 + (i % 100) as i64, 80.0),
            };
            for k in 0..count {
                n += 1;
                let at = today - (last_days_ago + 25 * k as i64) * DAY;
                orders.push_str(&format!("o{n},{id},{email},{},{amount:.2}\n", date(at)));
            }
        }
    }
    std::fs::write(dir.join("customers.csv"), customers).expect("customers");
    std::fs::write(dir.join("orders.csv"), orders).expect("orders");
}

fn goals(cohort: &str, cost: f64) -> String {
    format!(
        r#"
# No global control group here: every customer of the cohort is a campaign member.
[program]
control_share = 0.0

[[goal]]
id = "nudge"
name = "Nudge"
rule = 'attr.cohort = "{cohort}"'
template = "win_back"
window_days = 30
response_prior = 0.05
cost_per_recipient = {cost}
value = "avg_order_value"
"#
    )
}

fn ok(ws: &Path, args: &[&str]) -> Vec<u8> {
    let out = retain(ws).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "retain {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out).expect("one JSON document")
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("id").to_string())
        .collect()
}

#[test]
fn uplift_fit_evaluate_and_plan_target_the_customers_the_email_moves() {
    let (dir, ws) = workspace();
    let today = chrono::Utc::now().timestamp();
    write_history(dir.path(), today);
    let ws = ws.as_path();
    ok(
        ws,
        &[
            "-q",
            "import",
            "customers",
            dir.path().join("customers.csv").to_str().expect("p"),
        ],
    );
    ok(
        ws,
        &[
            "-q",
            "import",
            "orders",
            dir.path().join("orders.csv").to_str().expect("p"),
        ],
    );
    ok(ws, &["-q", "segment"]);

    // Nothing to learn from yet.
    let none = retain(ws)
        .args(["-q", "uplift", "fit"])
        .output()
        .expect("runs");
    assert_eq!(none.status.code(), Some(4));
    let none = retain(ws)
        .args(["-q", "plan", "--target", "uplift"])
        .output()
        .expect("runs");
    assert_eq!(
        none.status.code(),
        Some(4),
        "--target uplift without a model"
    );

    // Two past campaigns, half held out, every eligible customer selected; sent as files.
    let mut members: Vec<(String, bool)> = Vec::new();
    for (k, cohort) in ["a", "b"].iter().enumerate() {
        let file = dir.path().join(format!("goals-{cohort}.toml"));
        std::fs::write(&file, goals(cohort, 0.01)).expect("goals");
        let plan = json(&ok(
            ws,
            &[
                "-q",
                "plan",
                "--goals",
                file.to_str().expect("p"),
                "--holdout",
                "0.5",
                "--seed",
                &k.to_string(),
                "--format",
                "json",
            ],
        ));
        let plan_id = plan["plan_id"].as_str().expect("id").to_string();
        let c = &plan["campaigns"][0];
        let campaign = c["campaign_id"].as_str().expect("campaign").to_string();
        let audience = ids(&c["audience"]);
        let holdout = ids(&c["holdout"]);
        assert_eq!(
            audience.len() + holdout.len(),
            600,
            "the whole cohort selected"
        );
        members.extend(audience.into_iter().map(|m| (m, true)));
        members.extend(holdout.into_iter().map(|m| (m, false)));
        ok(ws, &["-q", "plan", "approve", &plan_id]);
        ok(
            ws,
            &[
                "-q",
                "send",
                &campaign,
                "--transport",
                "file",
                "--rate",
                "0",
            ],
        );
    }

    // What happened next: everyone buys with 10% chance anyway; the email makes persuadable
    // recipients buy with 60%. Orders two days after the sends, inside the 30-day window.
    let mut orders = String::from("order_id,customer_id,email,order_date,amount\n");
    let when = date(today + 2 * DAY);
    for (id, mailed) in &members {
        let p = if *mailed && persuadable(id) { 0.6 } else { 0.1 };
        if coin(id, 7, p) {
            orders.push_str(&format!("after-{id},{id},{id}@example.com,{when},30.00\n"));
        }
    }
    let after = dir.path().join("after.csv");
    std::fs::write(&after, orders).expect("orders after");
    ok(ws, &["-q", "import", "orders", after.to_str().expect("p")]);

    // Fit: one model for the goal, evaluated on the campaign held out of the fit.
    let fits = json(&ok(
        ws,
        &[
            "-q",
            "uplift",
            "fit",
            "--learner",
            "x",
            "--seed",
            "3",
            "--format",
            "json",
        ],
    ));
    let fits = fits.as_array().expect("fits");
    assert_eq!(fits.len(), 1);
    let f = &fits[0];
    assert_eq!(f["goal"], "nudge");
    assert_eq!(f["campaigns"], 2);
    assert_eq!(f["members"], 1200);
    assert_eq!(f["stored"], true);
    let e = &f["evaluation"];
    assert_eq!(e["campaigns"].as_array().expect("held out").len(), 1);
    assert_eq!(e["members"], 600);
    // A third of the held-out campaign gains ~50 points, the rest nothing: the Qini area of a
    // ranking that finds them is far above random (0).
    let qini = e["qini"]["coefficient"].as_f64().expect("qini");
    assert!(qini > 0.03, "qini {qini}");
    let top = e["uplift_at"][0]["uplift"].as_f64().expect("uplift@10");
    assert!(top > 0.3, "uplift@10 {top}");

    // Evaluate: the stored evaluation in every format, with the curve's points in JSON.
    let ev = json(&ok(ws, &["-q", "uplift", "evaluate", "--format", "json"]));
    let g = &ev[0];
    assert_eq!(g["goal"], "nudge");
    assert_eq!(g["learner"], "x");
    assert!(g["since_fit"].is_null(), "nothing sent since the fit");
    assert!((g["at_fit"]["qini"].as_f64().expect("qini") - qini).abs() < 1e-12);
    let curve = g["at_fit"]["qini_curve"].as_array().expect("curve");
    assert_eq!(curve.len(), 101);
    assert_eq!(curve[0]["share"], 0.0);
    let csv =
        String::from_utf8(ok(ws, &["-q", "uplift", "evaluate", "--format", "csv"])).expect("utf8");
    assert!(csv.starts_with("goal,learner,evaluated_on"));
    assert!(csv.contains("nudge,x,held out at fit"));
    let table = String::from_utf8(ok(ws, &["-q", "uplift", "evaluate"])).expect("utf8");
    assert!(table.contains("nudge"));

    // The next plan: cohort c, never mailed, a budget for ~40 recipients at 1.00 each.
    let file = dir.path().join("goals-c.toml");
    std::fs::write(&file, goals("c", 1.0)).expect("goals");
    let plan_of = |target: &str| {
        json(&ok(
            ws,
            &[
                "-q",
                "plan",
                "--goals",
                file.to_str().expect("p"),
                "--budget",
                "40",
                "--holdout",
                "0.1",
                "--seed",
                "1",
                "--target",
                target,
                "--format",
                "json",
            ],
        ))
    };
    let by_uplift = plan_of("uplift");
    let c = &by_uplift["campaigns"][0];
    assert_eq!(c["response_source"], "uplift");
    assert_eq!(by_uplift["target"], "uplift");
    let chosen: Vec<String> = ids(&c["audience"])
        .into_iter()
        .chain(ids(&c["holdout"]))
        .collect();
    assert!(ids(&c["audience"]).len() <= 40 && !chosen.is_empty());
    assert!(!ids(&c["holdout"]).is_empty(), "the random holdout is kept");
    assert!(chosen.iter().all(|id| id.starts_with("c-")));
    let hit = chosen.iter().filter(|id| persuadable(id)).count();
    assert!(
        hit as f64 >= 0.9 * chosen.len() as f64,
        "uplift targeting chose {hit} persuadable of {}",
        chosen.len()
    );
    // Automatic: the model is used without asking.
    let auto = plan_of("auto");
    assert_eq!(auto["campaigns"][0]["response_source"], "uplift");
    // By response rate × value: the big spenders, whom the email does not move.
    let by_prior = plan_of("prior");
    let c = &by_prior["campaigns"][0];
    assert_eq!(by_prior["target"], "prior");
    let chosen: Vec<String> = ids(&c["audience"])
        .into_iter()
        .chain(ids(&c["holdout"]))
        .collect();
    let hit = chosen.iter().filter(|id| persuadable(id)).count();
    assert!(
        hit * 2 < chosen.len(),
        "prior targeting chose {hit} persuadable of {}",
        chosen.len()
    );
}
