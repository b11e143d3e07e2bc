//! The planner's measured incremental response per goal, from a real (SQLite) store: only
//! campaigns whose attribution window has closed count, and they count exactly as their own
//! reports say.

use chrono::DateTime;
use retain_core::{Customer, Order};
use retain_results::results::{measured_incremental_rates, sent_reports, MIN_MEASURED_RECIPIENTS};
use retain_store::{Claim, ConsentCheck, NewPlan, NewPlanCampaign, NewSend, PlanState, Store};

const DAY: i64 = 86_400;

fn order(c: &str, at: i64) -> Order {
    Order {
        order_id: format!("{c}-{at}"),
        customer_id: c.into(),
        ordered_at: DateTime::from_timestamp(at, 0).expect("ts").naive_utc(),
        amount: 20.0,
        items: 1,
        is_return: false,
        currency: None,
        email: None,
        product: None,
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:04}")).collect()
}

/// A campaign of `goal` (window `window` days): 1,200 recipients sent at `t`, 20% of whom buy
/// two days later, and a holdout of 400, 10% of whom do.
struct Setup {
    goal: &'static str,
    window: i64,
    t: i64,
}

impl Setup {
    fn recipients(&self) -> Vec<String> {
        ids(&format!("{}-r", self.goal), 1_200)
    }
    fn holdout(&self) -> Vec<String> {
        ids(&format!("{}-h", self.goal), 400)
    }
}

#[tokio::test]
async fn only_campaigns_with_closed_windows_are_measured() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open_sqlite(&dir.path().join("t.db"))
        .await
        .expect("open");
    let now = chrono::Utc::now().timestamp();
    let closed = Setup {
        goal: "winback",
        window: 14,
        t: now - 20 * DAY,
    };
    let open = Setup {
        goal: "upsell",
        window: 30,
        t: now - 5 * DAY,
    };
    let everyone: Vec<String> = [&closed, &open]
        .iter()
        .flat_map(|s| s.recipients().into_iter().chain(s.holdout()))
        .collect();
    let customers: Vec<Customer> = everyone
        .iter()
        .map(|id| Customer {
            id: id.clone(),
            email: Some(format!("{id}@example.com")),
            email_valid: true,
            subscribed: Some(true),
            ..Default::default()
        })
        .collect();
    let n = customers.len() as u64;
    store
        .import_customers("c.csv", &customers, (n, n, 0))
        .await
        .expect("customers");
    let mut orders = Vec::new();
    for s in [&closed, &open] {
        orders.extend(
            s.recipients()[..240]
                .iter()
                .map(|c| order(c, s.t + 2 * DAY)),
        );
        orders.extend(s.holdout()[..40].iter().map(|c| order(c, s.t + 2 * DAY)));
    }
    let n = orders.len() as u64;
    store
        .import_orders("o.csv", &orders, (n, n, 0), &|_| {})
        .await
        .expect("orders");
    for (i, s) in [&closed, &open].into_iter().enumerate() {
        let plan = store
            .save_plan(&NewPlan {
                budget: 1000.0,
                used: 10.0,
                expected_value: 1.0,
                holdout_fraction: 0.25,
                seed: 1,
                as_of: None,
                goals_file: None,
                document: "{}".into(),
                campaigns: vec![NewPlanCampaign {
                    local_id: format!("{}-1", s.goal),
                    goal: s.goal.into(),
                    template: s.goal.into(),
                    segments: vec!["All".into()],
                    expected_value: 1.0,
                    cost: 10.0,
                    recipients: s.recipients(),
                    holdout: s.holdout(),
                    details: format!(r#"{{"window_days":{}}}"#, s.window),
                }],
            })
            .await
            .expect("plan");
        assert_eq!(plan, format!("p{}", i + 1));
        store
            .set_plan_state(&plan, PlanState::Approved)
            .await
            .expect("approve");
        let campaign = format!("{plan}-{}-1", s.goal);
        let sends: Vec<NewSend> = s
            .recipients()
            .iter()
            .map(|id| NewSend {
                customer_id: id.clone(),
                email: format!("{id}@example.com"),
                message_id: format!("<{id}@x>"),
                suppressed: None,
            })
            .collect();
        store.queue_sends(&campaign, &sends).await.expect("queue");
        store
            .acquire_send_lease(&campaign, "t", 60)
            .await
            .expect("lease")
            .expect("free");
        let Claim::Claimed { sends, .. } = store
            .claim_sends(&campaign, "t", 60, 10_000, ConsentCheck::default())
            .await
            .expect("claim")
        else {
            panic!("not claimed")
        };
        assert_eq!(sends.len(), 1_200);
        store
            .mark_sent(&sends.iter().map(|x| (x.id, s.t)).collect::<Vec<_>>())
            .await
            .expect("sent");
    }

    // Both campaigns have sent, and both are reported; only the first one's window is over.
    let reports = sent_reports(&store).await.expect("reports");
    assert_eq!(reports.len(), 2);
    let closed_report = reports
        .iter()
        .find(|r| r.goal == "winback")
        .expect("winback");
    assert!(closed_report.window_closed);
    assert!(!reports
        .iter()
        .any(|r| r.goal == "upsell" && r.window_closed));
    assert!(closed_report.recipients >= MIN_MEASURED_RECIPIENTS);

    let rates = measured_incremental_rates(&store).await.expect("rates");
    assert_eq!(rates.keys().collect::<Vec<_>>(), vec!["winback"]);
    // 20% of recipients against 10% of the holdout: 0.1 incremental conversions per recipient,
    // the same figure the campaign's own report gives.
    let expected = closed_report.incremental_conversions.expect("incremental")
        / closed_report.recipients as f64;
    assert!((rates["winback"] - expected).abs() < 1e-12, "{rates:?}");
    assert!((rates["winback"] - 0.1).abs() < 1e-9, "{rates:?}");
}
