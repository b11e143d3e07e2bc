//! Fixture of the browser test (tests/browser/run.sh): in the workspace database DB, with the
//! demo shop imported, makes plan p1 (approved) whose campaign was sent ten days ago to 75% of
//! its audience (the rest held out), with opens, clicks, an unsubscribe and purchases after the
//! send; and plan p2, a draft to approve through the dashboard. Prints
//! `<approved plan> <sent campaign> <draft plan> <view-in-browser path of one send>` (the
//! tracking secret comes from RETAIN_SECRET).

use retain_core::Order;
use retain_store::{
    Claim, ConsentCheck, EventKind, NewEvent, NewPlan, NewPlanCampaign, NewSend, PlanState, Store,
};

const DAY: i64 = 86_400;

fn plan(local: &str, goal: &str, name: &str, members: &[String]) -> NewPlan {
    let cut = members.len() * 3 / 4;
    NewPlan {
        budget: 1000.0,
        used: cut as f64 * 0.05,
        expected_value: 100.0,
        holdout_fraction: 0.25,
        seed: 1,
        as_of: None,
        goals_file: None,
        document: "{}".into(),
        campaigns: vec![NewPlanCampaign {
            local_id: local.into(),
            goal: goal.into(),
            template: goal.into(),
            segments: vec!["At Risk".into(), "Loyal".into()],
            expected_value: 100.0,
            cost: cut as f64 * 0.05,
            recipients: members[..cut].to_vec(),
            holdout: members[cut..].to_vec(),
            details: format!(r#"{{"goal_name":"{name}","window_days":30}}"#),
        }],
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = std::env::args().nth(1).ok_or("usage: browser_fixture DB")?;
    let store = Store::open_sqlite(std::path::Path::new(&db)).await?;
    let customers: Vec<_> = store
        .customers()
        .await?
        .into_iter()
        .filter(|c| c.email_valid && c.subscribed != Some(false) && c.email.is_some())
        .collect();
    let ids: Vec<String> = customers.iter().take(400).map(|c| c.id.clone()).collect();
    if ids.len() < 40 {
        return Err("import the demo shop first".into());
    }
    let p1 = store
        .save_plan(&plan("win_back-1", "win_back", "Win back", &ids))
        .await?;
    store.set_plan_state(&p1, PlanState::Approved).await?;
    let record = store.plan(&p1).await?.ok_or("plan")?;
    let campaign = record.campaigns[0].campaign_id.clone();
    let cut = ids.len() * 3 / 4;
    let sends: Vec<NewSend> = customers[..cut]
        .iter()
        .map(|c| NewSend {
            customer_id: c.id.clone(),
            email: c.email.clone().unwrap_or_default(),
            message_id: format!("<{}@fixture>", c.id),
            suppressed: None,
        })
        .collect();
    store.queue_sends(&campaign, &sends).await?;
    store
        .acquire_send_lease(&campaign, "fixture", 600)
        .await?
        .map_err(|_| "lease")?;
    let claimed = match store
        .claim_sends(&campaign, "fixture", 600, 10_000, ConsentCheck::default())
        .await?
    {
        Claim::Claimed { sends, .. } => sends,
        other => return Err(format!("claim: {other:?}").into()),
    };
    let t = chrono::Utc::now().timestamp() - 10 * DAY;
    store
        .mark_sent(&claimed.iter().map(|s| (s.id, t)).collect::<Vec<_>>())
        .await?;
    store.release_send_lease(&campaign, "fixture").await?;
    // Reports after the send: two hard bounces, a policy block and a complaint; the guardrail
    // paused the campaign and said why.
    for (i, kind) in [
        retain_store::DeliverabilityKind::HardBounce,
        retain_store::DeliverabilityKind::HardBounce,
        retain_store::DeliverabilityKind::Block,
        retain_store::DeliverabilityKind::Complaint,
    ]
    .into_iter()
    .enumerate()
    {
        let s = claimed.get(i * 7).ok_or("too few sends")?;
        store
            .record_deliverability_event(&retain_store::NewDeliverabilityEvent {
                send_id: s.id,
                campaign_id: campaign.clone(),
                email: s.email.clone(),
                kind,
                status: Some(if i == 2 { "5.7.1" } else { "5.1.1" }.into()),
                detail: None,
                fingerprint: format!("fixture-{i}"),
                at: t + 3600,
            })
            .await?;
    }
    store
        .pause_send_campaign_for(
            &campaign,
            "complaint rate reached the 0.10% limit (fixture)",
        )
        .await?;
    let mut events = Vec::new();
    let mut orders = Vec::new();
    for (i, s) in claimed.iter().enumerate() {
        let at = t + 600 + (i as i64 % 48) * 3600;
        if i % 5 < 2 {
            events.push(NewEvent {
                send_id: s.id,
                kind: EventKind::Open,
                at,
                bot: false,
                url: None,
                user_agent: None,
            });
        }
        if i % 5 == 0 {
            events.push(NewEvent {
                send_id: s.id,
                kind: EventKind::Click,
                at: at + 60,
                bot: false,
                url: Some("https://shop.example/".into()),
                user_agent: None,
            });
        }
        if i % 7 == 0 {
            events.push(NewEvent {
                send_id: s.id,
                kind: EventKind::Open,
                at: t + 1,
                bot: true,
                url: None,
                user_agent: None,
            });
        }
        if i % 6 == 0 {
            orders.push((
                s.customer_id.clone(),
                t + (1 + i as i64 % 9) * DAY,
                40.0 + (i % 5) as f64 * 10.0,
            ));
        }
    }
    if let Some(s) = claimed.last() {
        events.push(NewEvent {
            send_id: s.id,
            kind: EventKind::Unsubscribe,
            at: t + DAY,
            bot: false,
            url: None,
            user_agent: None,
        });
    }
    for (i, h) in ids[cut..].iter().enumerate() {
        if i % 10 == 0 {
            orders.push((h.clone(), t + (2 + i as i64 % 7) * DAY, 45.0));
        }
    }
    store.record_events(&events).await?;
    let orders: Vec<Order> = orders
        .into_iter()
        .map(|(c, at, amount)| Order {
            order_id: format!("fixture-{c}-{at}"),
            customer_id: c,
            ordered_at: chrono::DateTime::from_timestamp(at, 0)
                .map(|d| d.naive_utc())
                .unwrap_or_default(),
            amount,
            items: 1,
            is_return: false,
            currency: None,
            email: None,
            product: None,
        })
        .collect();
    let n = orders.len() as u64;
    store
        .import_orders("fixture", &orders, (n, n, 0), &|_| {})
        .await?;
    let draft_ids: Vec<String> = customers
        .iter()
        .skip(400)
        .take(200)
        .map(|c| c.id.clone())
        .collect();
    let p2 = store
        .save_plan(&plan(
            "vip_exclusive-1",
            "vip_exclusive",
            "VIP exclusive",
            if draft_ids.len() >= 4 {
                &draft_ids
            } else {
                &ids
            },
        ))
        .await?;
    let secret = retain_core::tracking::load_secret(std::path::Path::new("."))?;
    let view = retain_core::tracking::Links {
        base_url: "",
        secret: &secret,
        send_id: claimed.first().map(|s| s.id).ok_or("no send")?,
    }
    .view();
    println!("{p1} {campaign} {p2} {view}");
    store.close().await;
    Ok(())
}
