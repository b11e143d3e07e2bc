//! Uplift training rows from a real (SQLite) store: features at the plan's date, outcomes by the
//! reports' attribution rule, treated = mailed.

use chrono::DateTime;
use retain_core::{Customer, Order};
use retain_results::uplift::training_rows;
use retain_store::{Claim, ConsentCheck, NewPlan, NewPlanCampaign, NewSend, PlanState, Store};

const DAY: i64 = 86_400;

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

#[tokio::test]
async fn rows_carry_features_at_the_plan_date_and_attributed_outcomes() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open_sqlite(&dir.path().join("t.db"))
        .await
        .expect("open");
    // The plan is as of 2024-03-01; the campaign is sent on 2024-03-02 12:00 (t).
    let t = 1_709_380_800;
    let ids = ["m1", "m2", "m3", "m4", "h1", "h2"];
    let customers: Vec<Customer> = ids
        .iter()
        .map(|id| Customer {
            id: id.to_string(),
            email: Some(format!("{id}@example.com")),
            email_valid: true,
            subscribed: Some(true),
            ..Default::default()
        })
        .collect();
    store
        .import_customers("c.csv", &customers, (6, 6, 0))
        .await
        .expect("customers");
    let orders = vec![
        // History: before the plan date.
        order("m1", t - 40 * DAY, 10.0),
        order("m1", t - 20 * DAY, 30.0),
        order("m2", t - 100 * DAY, 5.0),
        order("m3", t - 10 * DAY, 8.0),
        order("m4", t - 10 * DAY, 8.0),
        order("h1", t - 60 * DAY, 12.0),
        order("h2", t - 60 * DAY, 12.0),
        // After the send: m1 buys in the window; m2 only after it (window 14 days); m3 returns.
        order("m1", t + 2 * DAY, 25.0),
        order("m2", t + 20 * DAY, 40.0),
        order("m3", t + 3 * DAY, -8.0),
        // A purchase after the plan date but before the send: neither a feature nor an outcome.
        order("m4", t - DAY / 4, 15.0),
        // The holdout: h1 buys within the window from the campaign's first send.
        order("h1", t + 5 * DAY, 60.0),
    ];
    store
        .import_orders("o.csv", &orders, (12, 12, 0), &|_| {})
        .await
        .expect("orders");
    store
        .save_plan(&NewPlan {
            budget: 10.0,
            used: 4.0,
            expected_value: 1.0,
            holdout_fraction: 0.3,
            seed: 1,
            as_of: Some("2024-03-01".into()),
            goals_file: None,
            document: "{}".into(),
            campaigns: vec![NewPlanCampaign {
                local_id: "nudge-1".into(),
                goal: "nudge".into(),
                template: "nudge".into(),
                segments: vec!["All".into()],
                expected_value: 1.0,
                cost: 4.0,
                recipients: ids[..4].iter().map(|s| s.to_string()).collect(),
                holdout: ids[4..].iter().map(|s| s.to_string()).collect(),
                details: r#"{"window_days":14}"#.into(),
            }],
        })
        .await
        .expect("plan");
    store
        .set_plan_state("p1", PlanState::Approved)
        .await
        .expect("approve");
    let campaign = "p1-nudge-1";
    let sends: Vec<NewSend> = ids[..4]
        .iter()
        .map(|id| NewSend {
            customer_id: id.to_string(),
            email: format!("{id}@example.com"),
            message_id: format!("<{id}@x>"),
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
    store
        .mark_sent(&sends.iter().map(|s| (s.id, t)).collect::<Vec<_>>())
        .await
        .expect("sent");

    let mut seen = Vec::new();
    let rows = training_rows(&store, Some("nudge"), |c, n| seen.push((c.to_string(), n)))
        .await
        .expect("rows");
    assert_eq!(seen, vec![(campaign.to_string(), 6)]);
    assert!(training_rows(&store, Some("other"), |_, _| {})
        .await
        .expect("none")
        .is_empty());
    let row = |id: &str| rows.iter().find(|r| r.customer_id == id).expect("row");
    assert!(rows
        .iter()
        .all(|r| r.goal == "nudge" && r.campaign == campaign));
    assert_eq!(
        ids.iter().map(|id| row(id).treated).collect::<Vec<_>>(),
        [true, true, true, true, false, false]
    );
    // Features as of 2024-03-01: m1's two orders, the last on 2024-02-11, 19 days before.
    let f1 = row("m1").features.as_ref().expect("m1 features");
    assert_eq!(f1.frequency, 2);
    assert_eq!(f1.monetary_total, 40.0);
    assert_eq!(f1.recency_days, 19);
    // m4's order the day before the send is after the plan date: not a feature.
    assert_eq!(row("m4").features.as_ref().expect("m4").frequency, 1);
    // Outcomes: the window is 14 days from the send (recipients) or the first send (holdout).
    let outcome = |id: &str| (row(id).converted, row(id).revenue);
    assert_eq!(outcome("m1"), (true, 25.0));
    assert_eq!(outcome("m2"), (false, 0.0), "after the window");
    assert_eq!(outcome("m3"), (false, 0.0), "a return is no purchase");
    assert_eq!(outcome("m4"), (false, 0.0), "before the send");
    assert_eq!(outcome("h1"), (true, 60.0));
    assert_eq!(outcome("h2"), (false, 0.0));
}
