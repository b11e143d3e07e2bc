//! End-to-end tests of `retain report` on a workspace with a hand-built campaign whose results
//! are counted by hand here: 30 recipients (9 buy within the window, one after it, one only
//! returns), 10 in the holdout (2 buy), engagement with a prefetch, a click and an unsubscribe.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use chrono::DateTime;
use retain_core::{Customer, Order};
use retain_store::{
    Claim, ConsentCheck, EventKind, NewEvent, NewPlan, NewPlanCampaign, NewSend, PlanState, Store,
};
use serde_json::Value;

const DAY: i64 = 86_400;

fn retain(ws: &Path) -> Command {
    let mut c = Command::cargo_bin("retain").expect("binary");
    c.arg("--workspace").arg(ws);
    c.env_remove("RETAIN_DATABASE_URL")
        .env_remove("RETAIN_WORKSPACE");
    c
}

fn id(i: usize) -> String {
    format!("c{i:02}")
}

fn order(c: &str, at: i64, amount: f64) -> Order {
    Order {
        order_id: format!("{c}-{at}"),
        customer_id: c.into(),
        ordered_at: DateTime::from_timestamp(at, 0).expect("ts").naive_utc(),
        amount,
        items: 1,
        is_return: amount < 0.0,
        currency: None,
        email: None,
        product: None,
    }
}

/// The workspace and the first send's time.
fn fixture() -> (tempfile::TempDir, PathBuf, i64) {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    Command::cargo_bin("retain")
        .expect("binary")
        .arg("init")
        .arg(&ws)
        .arg("-q")
        .assert()
        .success();
    let t = chrono::Utc::now().timestamp() - 20 * DAY;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = Store::open_sqlite(&ws.join("retain.db"))
            .await
            .expect("open");
        let customers: Vec<Customer> = (0..40)
            .map(|i| Customer {
                id: id(i),
                email: Some(format!("{}@example.com", id(i))),
                email_valid: true,
                subscribed: Some(true),
                ..Default::default()
            })
            .collect();
        store
            .import_customers("c.csv", &customers, (40, 40, 0))
            .await
            .expect("customers");
        let mut orders = vec![
            order("c09", t + 15 * DAY, 50.0),
            order("c10", t + DAY, -30.0),
        ];
        orders.extend((0..9).map(|i| order(&id(i), t + 2 * DAY, 20.0)));
        orders.extend((30..32).map(|i| order(&id(i), t + 3 * DAY, 20.0)));
        orders.push(order("c35", t - DAY, 99.0)); // before the campaign
        store
            .import_orders("o.csv", &orders, (14, 14, 0), &|_| {})
            .await
            .expect("orders");
        let plan = store
            .save_plan(&NewPlan {
                budget: 100.0,
                used: 15.0,
                expected_value: 10.0,
                holdout_fraction: 0.25,
                seed: 7,
                as_of: None,
                goals_file: None,
                document: "{}".into(),
                campaigns: vec![NewPlanCampaign {
                    local_id: "winback-1".into(),
                    goal: "winback".into(),
                    template: "winback".into(),
                    segments: vec!["At Risk".into()],
                    expected_value: 10.0,
                    cost: 15.0,
                    recipients: (0..30).map(id).collect(),
                    holdout: (30..40).map(id).collect(),
                    details: r#"{"goal_name":"Win back","window_days":14}"#.into(),
                }],
            })
            .await
            .expect("plan");
        assert_eq!(plan, "p1");
        store
            .set_plan_state("p1", PlanState::Approved)
            .await
            .expect("approve");
        let campaign = "p1-winback-1";
        let sends: Vec<NewSend> = (0..30)
            .map(|i| NewSend {
                customer_id: id(i),
                email: format!("{}@example.com", id(i)),
                message_id: format!("<{i}@x>"),
                suppressed: None,
            })
            .collect();
        store.queue_sends(campaign, &sends).await.expect("queue");
        store
            .acquire_send_lease(campaign, "t", 60)
            .await
            .expect("lease")
            .expect("free");
        let Claim::Claimed { sends, .. } = store
            .claim_sends(campaign, "t", 60, 100, ConsentCheck::default())
            .await
            .expect("claim")
        else {
            panic!("not claimed")
        };
        assert_eq!(sends.len(), 30);
        store
            .mark_sent(&sends.iter().map(|s| (s.id, t)).collect::<Vec<_>>())
            .await
            .expect("sent");
        let send_of = |c: &str| sends.iter().find(|s| s.customer_id == c).expect("send").id;
        let mut events: Vec<NewEvent> = (0..5)
            .map(|i| NewEvent {
                send_id: send_of(&id(i)),
                kind: EventKind::Open,
                at: t + 3600,
                bot: false,
                url: None,
                user_agent: None,
            })
            .collect();
        let ev = |c: &str, kind, at, bot| NewEvent {
            send_id: send_of(c),
            kind,
            at,
            bot,
            url: None,
            user_agent: None,
        };
        events.push(ev("c05", EventKind::Open, t + 1, false)); // prefetch
        events.push(ev("c06", EventKind::Open, t + 5000, true)); // proxy
        events.push(ev("c00", EventKind::Click, t + 4000, false));
        events.push(ev("c29", EventKind::Unsubscribe, t + 9000, false));
        store.record_events(&events).await.expect("events");
        store.close().await;
    });
    (dir, ws, t)
}

#[test]
fn report_json_matches_hand_counts() {
    let (_dir, ws, t) = fixture();
    let out = retain(&ws)
        .args(["report", "p1-winback-1", "--format", "json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("json");
    let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k}: {}", r[k]));
    assert_eq!(r["campaign_id"], "p1-winback-1");
    assert_eq!(r["started_at"], t);
    assert_eq!((f("sent"), f("delivered"), f("failed")), (30.0, 30.0, 0.0));
    assert_eq!(
        (f("opens_unique"), f("clicks_unique"), f("unsubscribes")),
        (5.0, 1.0, 1.0)
    );
    assert_eq!(f("conversions"), 9.0);
    assert!((f("conversion_rate") - 0.3).abs() < 1e-12);
    assert!((f("revenue") - 180.0).abs() < 1e-9);
    let h = &r["holdout"];
    assert_eq!(h["size"], 10);
    assert_eq!(h["conversions"], 2);
    assert!((h["conversion_rate"].as_f64().expect("rate") - 0.2).abs() < 1e-12);
    assert!((h["revenue"].as_f64().expect("rev") - 40.0).abs() < 1e-9);
    let u = &r["uplift"];
    assert!((u["absolute"].as_f64().expect("abs") - 0.1).abs() < 1e-12);
    assert!((u["relative"].as_f64().expect("rel") - 0.5).abs() < 1e-12);
    let ci: Vec<f64> = u["ci95"]
        .as_array()
        .expect("ci")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert_eq!(ci.len(), 2);
    assert!(ci[0] < 0.1 && 0.1 < ci[1] && ci[0] < 0.0, "{ci:?}");
    // Pooled z-test by hand: p = 11/40, se = sqrt(p(1-p)(1/30 + 1/10)) = 0.16304, z = 0.6133,
    // two-sided p ≈ 0.540.
    let p = u["p_value"].as_f64().expect("p");
    assert!((p - 0.540).abs() < 0.005, "{p}");
    // Revenue per person 6.00 vs 4.00: +2.00 × 30 recipients; cost 0.50 × 30 sent; ROI 3.
    assert!((f("incremental_revenue") - 60.0).abs() < 1e-9);
    assert!((f("cost") - 15.0).abs() < 1e-9);
    assert!((f("roi") - 3.0).abs() < 1e-9);
    assert!(r["sample_note"]
        .as_str()
        .unwrap_or("")
        .contains("too small"));
    assert_eq!(r["window_closed"], true);
}

#[test]
fn report_formats_plan_and_errors() {
    let (dir, ws, _) = fixture();
    let out = retain(&ws)
        .args(["report", "p1-winback-1"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("Uplift: +10.00 pp") && text.contains("sample too small"),
        "{text}"
    );
    let out = retain(&ws)
        .args(["report", "p1-winback-1", "--format", "csv"])
        .output()
        .expect("run");
    let mut rdr = csv::Reader::from_reader(out.stdout.as_slice());
    let header = rdr.headers().expect("header").clone();
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 2, "all + the one segment");
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    assert_eq!(&rows[0][col("segment")], "all");
    assert_eq!(&rows[1][col("segment")], "At Risk");
    assert_eq!(&rows[0][col("conversions")], "9");
    assert_eq!(&rows[0][col("holdout_conversions")], "2");
    let html = dir.path().join("r.html");
    retain(&ws)
        .args(["report", "p1-winback-1", "--format", "html", "--output"])
        .arg(&html)
        .assert()
        .success();
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("<svg") && page.contains("Win back") && !page.contains("<script"));
    let out = retain(&ws)
        .args(["report", "--plan", "p1", "--format", "json"])
        .output()
        .expect("run");
    let all: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    retain(&ws).args(["report", "nope"]).assert().code(4);
    retain(&ws)
        .args(["report", "--plan", "p9"])
        .assert()
        .code(4);
    retain(&ws).args(["report"]).assert().code(2);
}
