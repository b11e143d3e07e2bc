//! A/B variants and follow-up steps end to end through the `retain` binary and an independent
//! SMTP server (Python's aiosmtpd into a Maildir): each recipient gets their variant's email once,
//! the holdout nothing; `retain followups run` sends the due step only to the recipients its rule
//! matches (here: those who did not unsubscribe), once, however often it runs.
//!
//! Needs a Python with aiosmtpd (`RETAIN_TEST_PYTHON`, else `<repo>/.venv/bin/python`, else
//! `python3`); skipped with a message without one unless `RETAIN_REQUIRE_AIOSMTPD=1`.

use std::path::Path;

use retain_store::{NewPlan, NewPlanCampaign, PlanState, Store, VariantAssignment};

mod common;
use common::smtp::{delivered, maildir_server, python_or_skip};
use common::{database_url, retain, workspace};

fn write_template(ws: &Path, name: &str, subject: &str) {
    let t = ws.join("templates");
    std::fs::copy(t.join("win_back.html"), t.join(format!("{name}.html"))).expect("html");
    std::fs::copy(t.join("win_back.txt"), t.join(format!("{name}.txt"))).expect("txt");
    std::fs::write(t.join(format!("{name}.subject")), subject).expect("subject");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_and_a_follow_up_step_reach_the_smtp_server_once() {
    let Some(py) = python_or_skip("variants_and_a_follow_up_step") else {
        return;
    };
    let (dir, ws) = workspace();
    let maildir = dir.path().join("Maildir");
    let (_server, port) = maildir_server(&py, &maildir);
    let smtp = format!("smtp://127.0.0.1:{port}");
    write_template(&ws, "offer_a", "Variant A subject");
    write_template(&ws, "offer_b", "Variant B subject");
    write_template(&ws, "reminder", "Reminder subject");

    // Ten customers: c0..c7 recipients (even: variant a, odd: b), c8 and c9 the holdout.
    let mut csv = String::from("customer_id,email,first_name,subscribed\n");
    for i in 0..10 {
        csv.push_str(&format!("c{i},c{i}@mail.example,N{i},yes\n"));
    }
    std::fs::write(dir.path().join("customers.csv"), csv).expect("csv");
    retain(&ws)
        .args(["import", "customers"])
        .arg(dir.path().join("customers.csv"))
        .assert()
        .success();
    let store = Store::open(&database_url(&ws)).await.expect("db");
    let recipients: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    let variants: Vec<VariantAssignment> = recipients
        .iter()
        .enumerate()
        .map(|(i, id)| VariantAssignment {
            customer_id: id.clone(),
            variant: if i % 2 == 0 { "a" } else { "b" }.into(),
            template: if i % 2 == 0 { "offer_a" } else { "offer_b" }.into(),
        })
        .collect();
    let details = serde_json::json!({
        "goal_name": "Win-back",
        "window_days": 30,
        "steps": [{"number": 1, "after_days": 3, "when_text": "not unsubscribed", "template": "reminder"}],
        "approve": "sequence",
    });
    let plan_id = store
        .save_plan_with_variants(
            &NewPlan {
                budget: 10.0,
                used: 1.0,
                expected_value: 1.0,
                holdout_fraction: 0.2,
                seed: 1,
                as_of: None,
                goals_file: None,
                document: "{}".into(),
                campaigns: vec![NewPlanCampaign {
                    local_id: "win_back-1".into(),
                    goal: "win_back".into(),
                    template: "offer_a".into(),
                    segments: vec!["At Risk".into()],
                    expected_value: 1.0,
                    cost: 1.0,
                    recipients: recipients.clone(),
                    holdout: vec!["c8".into(), "c9".into()],
                    details: details.to_string(),
                }],
            },
            &[("win_back-1".into(), variants)],
        )
        .await
        .expect("plan");
    store
        .set_plan_state(&plan_id, PlanState::Approved)
        .await
        .expect("approve");
    let campaign = format!("{plan_id}-win_back-1");

    retain(&ws)
        .env("RETAIN_SMTP_URL", &smtp)
        .args(["send", &campaign, "--rate", "0"])
        .assert()
        .success();
    let first = delivered(&maildir);
    assert_eq!(first.len(), 8, "{first:?}");
    for (to, subject) in &first {
        // "N3 <c3@mail.example>"
        let i: usize = to
            .split_once("<c")
            .and_then(|(_, rest)| rest.split('@').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{to}"));
        let want = if i % 2 == 0 {
            "Variant A subject"
        } else {
            "Variant B subject"
        };
        assert_eq!(subject, want, "{to}");
    }

    // Not due yet: nothing happens.
    retain(&ws)
        .env("RETAIN_SMTP_URL", &smtp)
        .args(["followups", "run"])
        .assert()
        .success();
    assert_eq!(delivered(&maildir).len(), 8);

    // c3 unsubscribes; four days later the step is due and goes to the seven others.
    retain(&ws)
        .args(["suppress", "add", "c3@mail.example"])
        .assert()
        .success();
    let later = (chrono::Utc::now().timestamp() + 4 * 86_400).to_string();
    let dry = retain(&ws)
        .env("RETAIN_TEST_NOW", &later)
        .args(["followups", "run", "--dry-run", "--format", "json"])
        .output()
        .expect("dry run");
    let v: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("json");
    assert_eq!(v["created"][0]["matched"], 8, "{v}");
    assert_eq!(v["created"][0]["queued"], 7, "{v}");
    assert_eq!(delivered(&maildir).len(), 8, "a dry run sends nothing");
    for _ in 0..2 {
        retain(&ws)
            .env("RETAIN_SMTP_URL", &smtp)
            .env("RETAIN_TEST_NOW", &later)
            .args(["followups", "run"])
            .assert()
            .success();
    }
    let all = delivered(&maildir);
    let reminders: Vec<&String> = all
        .iter()
        .filter(|(_, s)| s == "Reminder subject")
        .map(|(to, _)| to)
        .collect();
    assert_eq!(reminders.len(), 7, "{all:?}");
    assert!(!reminders.iter().any(|to| to.contains("c3@")));
    assert!(!all
        .iter()
        .any(|(to, _)| to.contains("c8@") || to.contains("c9@")));

    // The report shows the variants and the step's funnel.
    let out = retain(&ws)
        .args(["report", &campaign, "--format", "json"])
        .output()
        .expect("report");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let seq = &r["sequence"];
    assert_eq!(
        seq["variant_test"]["variants"][0]["result"]["recipients"],
        4
    );
    assert_eq!(seq["steps"][0]["sent"], 7, "{seq}");
    store.close().await;
}

/// `retain worker` runs the whole sequence by itself: it sends the scheduled first emails, and
/// once a step's day has come it creates the step and sends it — to the recipients whose events
/// and customer fields the rule matches, never the holdout, not to a suppressed address nor to a
/// recipient another campaign mailed within the frequency cap; a goal approving each step waits
/// for `retain followups approve`; each email goes once, however often the worker runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_creates_and_sends_due_steps() {
    let Some(py) = python_or_skip("the_worker_creates_and_sends_due_steps") else {
        return;
    };
    let (dir, ws) = workspace();
    let maildir = dir.path().join("Maildir");
    let (_server, port) = maildir_server(&py, &maildir);
    let smtp = format!("smtp://127.0.0.1:{port}");
    write_template(&ws, "offer", "Offer subject");
    write_template(&ws, "reminder", "Reminder subject");
    write_template(&ws, "welcome", "Welcome subject");
    write_template(&ws, "nudge", "Nudge subject");

    // c0..c4 gold, the rest silver.
    let mut csv = String::from("customer_id,email,first_name,subscribed,tier\n");
    for i in 0..14 {
        let tier = if i < 5 { "gold" } else { "silver" };
        csv.push_str(&format!("c{i},c{i}@mail.example,N{i},yes,{tier}\n"));
    }
    std::fs::write(dir.path().join("customers.csv"), csv).expect("csv");
    retain(&ws)
        .args(["import", "customers"])
        .arg(dir.path().join("customers.csv"))
        .assert()
        .success();
    let ids = |r: std::ops::Range<usize>| r.map(|i| format!("c{i}")).collect::<Vec<_>>();
    let campaign = |local: &str,
                    goal: &str,
                    template: &str,
                    recipients,
                    holdout,
                    details: serde_json::Value| {
        NewPlanCampaign {
            local_id: local.into(),
            goal: goal.into(),
            template: template.into(),
            segments: vec!["At Risk".into()],
            expected_value: 1.0,
            cost: 1.0,
            recipients,
            holdout,
            details: details.to_string(),
        }
    };
    // Win-back: c0..c7, holdout c8 c9; its step goes to gold recipients who did not unsubscribe,
    // approved with the plan. Welcome: c10..c12 and c0 (so c0 is within the frequency cap of
    // both), holdout c13; its step waits for its own approval.
    let win_back = campaign(
        "win_back-1",
        "win_back",
        "offer",
        ids(0..8),
        ids(8..10),
        serde_json::json!({"window_days": 30, "approve": "sequence", "steps": [
            {"number": 1, "after_days": 3, "when_text": "not unsubscribed and attr.tier = \"gold\"", "template": "reminder"}]}),
    );
    let mut welcome_to = ids(10..13);
    welcome_to.push("c0".into());
    let welcome = campaign(
        "welcome-1",
        "welcome",
        "welcome",
        welcome_to,
        vec!["c13".into()],
        serde_json::json!({"window_days": 30, "approve": "each_step", "steps": [
            {"number": 1, "after_days": 3, "when_text": "not converted", "template": "nudge"}]}),
    );
    let store = Store::open(&database_url(&ws)).await.expect("db");
    let plan_id = store
        .save_plan(&NewPlan {
            budget: 10.0,
            used: 1.0,
            expected_value: 1.0,
            holdout_fraction: 0.2,
            seed: 1,
            as_of: None,
            goals_file: None,
            document: "{}".into(),
            campaigns: vec![win_back, welcome],
        })
        .await
        .expect("plan");
    store
        .set_plan_state(&plan_id, PlanState::Approved)
        .await
        .expect("approve");
    store.close().await;
    let (a, b) = (
        format!("{plan_id}-win_back-1"),
        format!("{plan_id}-welcome-1"),
    );
    for c in [&a, &b] {
        retain(&ws)
            .args(["campaign", "schedule", c, "--at", "now"])
            .assert()
            .success();
    }
    let worker = |now: Option<i64>| {
        let mut cmd = retain(&ws);
        cmd.env("RETAIN_SMTP_URL", &smtp).args([
            "worker",
            "--until-idle",
            "--poll",
            "0.1",
            "--format",
            "json",
        ]);
        if let Some(now) = now {
            cmd.env("RETAIN_TEST_NOW", now.to_string());
        }
        let out = cmd.output().expect("worker");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("worker json")
    };
    let count = |subject: &str| {
        delivered(&maildir)
            .into_iter()
            .filter(|(_, s)| s == subject)
            .map(|(to, _)| to)
            .collect::<Vec<_>>()
    };

    // The first emails; no step is due yet.
    let rep = worker(None);
    assert_eq!(
        rep["steps_created"].as_array().map(Vec::len),
        Some(0),
        "{rep}"
    );
    assert_eq!(count("Offer subject").len(), 8);
    assert_eq!(count("Welcome subject").len(), 4);
    worker(None);
    assert_eq!(delivered(&maildir).len(), 12, "nothing is sent twice");

    // c3 unsubscribes by hand; four days later both steps are due.
    retain(&ws)
        .args(["suppress", "add", "c3@mail.example"])
        .assert()
        .success();
    let later = chrono::Utc::now().timestamp() + 4 * 86_400;
    let rep = worker(Some(later));
    let created = rep["steps_created"].as_array().expect("steps").clone();
    assert_eq!(created.len(), 2, "{rep}");
    let step_of = |c: &str| {
        created
            .iter()
            .find(|s| s["campaign_id"] == c)
            .unwrap_or_else(|| panic!("no step of {c}: {rep}"))
            .clone()
    };
    let (sa, sb) = (step_of(&a), step_of(&b));
    // Gold and not unsubscribed: c0..c4; c0 held back by the frequency cap, c3 suppressed.
    assert_eq!(sa["matched"], 5, "{sa}");
    assert_eq!(sa["queued"], 3, "{sa}");
    assert_eq!(sa["excluded"]["frequency cap"], 1, "{sa}");
    assert_eq!(sa["approved"], true);
    assert_eq!(sb["matched"], 4, "{sb}");
    assert_eq!(sb["queued"], 3, "{sb}");
    assert_eq!(sb["approved"], false);
    let mut reminders = count("Reminder subject");
    reminders.sort();
    assert_eq!(reminders.len(), 3, "{reminders:?}");
    for (to, i) in reminders.iter().zip([1, 2, 4]) {
        assert!(to.contains(&format!("<c{i}@")), "{to}");
    }
    assert!(count("Nudge subject").is_empty(), "waits for its approval");

    // Running again creates and sends nothing more.
    let rep = worker(Some(later));
    assert_eq!(
        rep["steps_created"].as_array().map(Vec::len),
        Some(0),
        "{rep}"
    );
    assert_eq!(delivered(&maildir).len(), 15);

    // Approved on its own, the welcome step goes out with the next run.
    retain(&ws)
        .args(["followups", "approve", &b, "1"])
        .assert()
        .success();
    worker(Some(later));
    let mut nudges = count("Nudge subject");
    nudges.sort();
    assert_eq!(nudges.len(), 3, "{nudges:?}");
    for (to, i) in nudges.iter().zip([10, 11, 12]) {
        assert!(to.contains(&format!("<c{i}@")), "{to}");
    }
    let all = delivered(&maildir);
    assert_eq!(all.len(), 18, "{all:?}");
    for holdout in ["c8@", "c9@", "c13@"] {
        assert!(
            !all.iter().any(|(to, _)| to.contains(holdout)),
            "{holdout} is in a holdout"
        );
    }
    assert_eq!(
        all.iter().filter(|(to, _)| to.contains("<c0@")).count(),
        2,
        "c0: the two first emails, no step within the frequency cap"
    );
}

/// "Test on a share, then send the winner to the rest": the first send reaches only the tested
/// share (split between the variants), never the rest or the holdout; until the test's horizon
/// nothing more happens; then the rest gets the variant that won the fixed-horizon test — or,
/// when the test has no valid winner, the documented default variant, and the run says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_on_a_share_sends_the_winner_to_the_rest() {
    let Some(py) = python_or_skip("a_test_on_a_share_sends_the_winner_to_the_rest") else {
        return;
    };
    let (dir, ws) = workspace();
    let maildir = dir.path().join("Maildir");
    let (_server, port) = maildir_server(&py, &maildir);
    let smtp = format!("smtp://127.0.0.1:{port}");
    write_template(&ws, "offer_a", "Variant A subject");
    write_template(&ws, "offer_b", "Variant B subject");

    let id = |i: usize| format!("s{i:03}");
    let mut csv = String::from("customer_id,email,first_name,subscribed\n");
    for i in 0..200 {
        csv.push_str(&format!("{},{}@mail.example,N{i},yes\n", id(i), id(i)));
    }
    std::fs::write(dir.path().join("customers.csv"), csv).expect("csv");
    retain(&ws)
        .args(["import", "customers"])
        .arg(dir.path().join("customers.csv"))
        .assert()
        .success();
    // Two campaigns of 100: 20 get variant a, 20 variant b, 50 wait (the rest), 10 are held out.
    // In the first, variant a's recipients all buy (a clear winner); in the second nobody buys
    // and its default is b.
    let mut campaigns = Vec::new();
    let mut variants = Vec::new();
    for (c, (local, default)) in [("win_back-1", "a"), ("welcome-1", "b")]
        .into_iter()
        .enumerate()
    {
        let base = c * 100;
        let range = |r: std::ops::Range<usize>| r.map(|i| id(base + i)).collect::<Vec<_>>();
        let mut assignments = Vec::new();
        for (variant, template, r) in [
            ("a", "offer_a", 0..20),
            ("b", "offer_b", 20..40),
            (
                "rest",
                if default == "a" { "offer_a" } else { "offer_b" },
                40..90,
            ),
        ] {
            for customer_id in range(r) {
                assignments.push(VariantAssignment {
                    customer_id,
                    variant: variant.into(),
                    template: template.into(),
                });
            }
        }
        variants.push((local.to_string(), assignments));
        campaigns.push(NewPlanCampaign {
            local_id: local.into(),
            goal: local.trim_end_matches("-1").into(),
            template: "offer_a".into(),
            segments: vec!["At Risk".into()],
            expected_value: 1.0,
            cost: 1.0,
            recipients: range(0..90),
            holdout: range(90..100),
            details: serde_json::json!({
                "window_days": 30,
                "approve": "sequence",
                "share_test": {"share": 0.44, "days": 7, "default_variant": default},
            })
            .to_string(),
        });
    }
    let store = Store::open(&database_url(&ws)).await.expect("db");
    let plan_id = store
        .save_plan_with_variants(
            &NewPlan {
                budget: 10.0,
                used: 1.0,
                expected_value: 1.0,
                holdout_fraction: 0.1,
                seed: 1,
                as_of: None,
                goals_file: None,
                document: "{}".into(),
                campaigns,
            },
            &variants,
        )
        .await
        .expect("plan");
    store
        .set_plan_state(&plan_id, PlanState::Approved)
        .await
        .expect("approve");
    store.close().await;
    let (x, y) = (
        format!("{plan_id}-win_back-1"),
        format!("{plan_id}-welcome-1"),
    );
    for c in [&x, &y] {
        retain(&ws)
            .env("RETAIN_SMTP_URL", &smtp)
            .args(["send", c, "--rate", "0", "-q"])
            .assert()
            .success();
    }
    let first = delivered(&maildir);
    assert_eq!(first.len(), 80, "only the tested share: {first:?}");
    let number = |to: &str| -> usize {
        to.split_once("<s")
            .and_then(|(_, rest)| rest.split('@').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{to}"))
    };
    assert!(
        first.iter().all(|(to, _)| number(to) % 100 < 40),
        "{first:?}"
    );

    // Variant a of the first campaign converts: each of its recipients orders two days later.
    let day = chrono::Utc::now().date_naive() + chrono::Duration::days(2);
    let mut orders = String::from("order_id,customer_id,email,order_date,amount\n");
    for i in 0..20 {
        orders.push_str(&format!(
            "o{i},{},{}@mail.example,{day},50.00\n",
            id(i),
            id(i)
        ));
    }
    std::fs::write(dir.path().join("orders.csv"), orders).expect("orders");
    retain(&ws)
        .args(["import", "orders"])
        .arg(dir.path().join("orders.csv"))
        .assert()
        .success();

    // Before the test's horizon the rest waits.
    let now = chrono::Utc::now().timestamp();
    let run = |at: i64| {
        let out = retain(&ws)
            .env("RETAIN_SMTP_URL", &smtp)
            .env("RETAIN_TEST_NOW", at.to_string())
            .args(["followups", "run", "--format", "json"])
            .output()
            .expect("followups");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    let v = run(now + 3 * 86_400);
    assert_eq!(v["created"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(delivered(&maildir).len(), 80);

    // After it: the winner to the first campaign's rest, the default to the second's.
    let v = run(now + 8 * 86_400);
    let created = v["created"].as_array().expect("created").clone();
    assert_eq!(created.len(), 2, "{v}");
    let of = |c: &str| {
        created
            .iter()
            .find(|s| s["campaign_id"] == c)
            .unwrap_or_else(|| panic!("{c}: {v}"))
            .clone()
    };
    let (sx, sy) = (of(&x), of(&y));
    assert_eq!(
        (sx["step"].clone(), sx["template"].clone()),
        (0.into(), "offer_a".into()),
        "{sx}"
    );
    assert_eq!(sx["queued"], 50, "{sx}");
    assert!(
        sx["note"]
            .as_str()
            .is_some_and(|n| n.contains("variant a won")),
        "{sx}"
    );
    assert_eq!(sy["template"], "offer_b", "{sy}");
    assert!(
        sy["note"]
            .as_str()
            .is_some_and(|n| n.contains("no valid winner") && n.contains("default variant b")),
        "{sy}"
    );
    run(now + 9 * 86_400);
    let all = delivered(&maildir);
    assert_eq!(all.len(), 180, "each waiting recipient once");
    for (to, subject) in &all {
        let n = number(to);
        assert!(n % 100 < 90, "{to} is held out");
        let want = match (n / 100, n % 100) {
            (_, 0..=19) => "Variant A subject",
            (_, 20..=39) => "Variant B subject",
            (0, _) => "Variant A subject", // the winner
            _ => "Variant B subject",      // the default
        };
        assert_eq!(subject, want, "{to}");
    }
    // The report's test is over the tested share only.
    let out = retain(&ws)
        .args(["report", &x, "--format", "json"])
        .output()
        .expect("report");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let test = &r["sequence"]["variant_test"];
    assert_eq!(test["variants"].as_array().map(Vec::len), Some(2), "{test}");
    assert_eq!(test["variants"][0]["result"]["recipients"], 20, "{test}");
}
