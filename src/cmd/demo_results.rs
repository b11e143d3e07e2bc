//! `retain demo`'s weeks after the send: simulates who buys, opens and clicks with a known true
//! uplift per goal ([`retain_core::response`]), imports the simulated orders through the normal
//! import, replays the opens and clicks through the real tracking handlers
//! ([`retain_web::replay`]), then sets each campaign's measured uplift and 95 % interval beside
//! the truth, and the whole programme beside its truth against the global control group.
//! A week into the window (the simulated clock) it creates and sends the due follow-up steps as
//! `retain followups run` does, simulates the responses to them with a known effect
//! ([`retain_core::response::simulate_step`]) and adds that effect to the campaign's truth.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use anyhow::{Context as _, Result};
use retain_core::import::ImportOptions;
use retain_core::response::{
    simulate, simulate_step, CampaignTruth, Person, ResponseSpec, SimOrder, StepSpec,
};
use retain_core::tracking::{load_secret, Links};
use retain_store::{PlanState, SendState};
use serde::Serialize;

use super::Context;
use crate::output::{money, Table};

/// The true uplift of a goal in the demo: twice its prior response rate (the goals file's guess
/// is cautious), at average responsiveness.
pub const TRUE_UPLIFT_FACTOR: f64 = 2.0;

/// The demo's follow-up step: this many days after the first send (goals.toml's `after_days`).
pub const STEP_AFTER_DAYS: i64 = 7;

/// A follow-up step's true effect, relative to its goal's true uplift: a reminder adds half as
/// much as the first email, for those who had not bought.
pub const STEP_UPLIFT_SHARE: f64 = 0.5;

/// One follow-up step the demo created and sent, and what it truly added.
#[derive(Debug, Clone, Serialize)]
pub struct StepTruthCheck {
    pub campaign_id: String,
    pub step: i64,
    pub ledger_id: String,
    pub template: String,
    pub sent: u64,
    /// Expected conversions the step added (the sum of its recipients' added probabilities).
    pub true_added_conversions: f64,
    pub orders: usize,
    pub opens: usize,
    pub clicks: usize,
}

/// One campaign: measured against true.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignTruthCheck {
    pub campaign_id: String,
    pub recipients: u64,
    pub holdout: u64,
    pub true_uplift: f64,
    pub measured_uplift: Option<f64>,
    pub ci95: Option<[f64; 2]>,
    pub covered: bool,
}

/// What the demo's results step found.
#[derive(Debug, Clone, Serialize)]
pub struct DemoResults {
    pub seed: u64,
    pub orders: usize,
    pub opens: usize,
    pub clicks: usize,
    pub events_recorded: u64,
    pub campaigns: Vec<CampaignTruthCheck>,
    pub steps: Vec<StepTruthCheck>,
    pub program_true_per_customer: f64,
    pub program_measured_per_customer: Option<f64>,
    pub program_ci95: Option<[f64; 2]>,
    pub program_covered: bool,
}

/// Simulates the weeks after the newest approved plan's sends, feeds them through import and
/// tracking, and compares the reports with the truth. Writes `demo-results.json`.
pub async fn run(ctx: &Context, seed: u64) -> Result<Option<DemoResults>> {
    let Some(plan_id) = ctx.store.latest_plan_id().await? else {
        return Ok(None);
    };
    let Some(plan) = ctx.store.plan(&plan_id).await? else {
        return Ok(None);
    };
    if plan.state != PlanState::Approved {
        return Ok(None);
    }
    let mut truths = Vec::new();
    let mut member_of: HashMap<String, (usize, bool)> = HashMap::new();
    let mut sent: HashMap<String, (i64, i64)> = HashMap::new();
    let mut first_sent: Vec<Option<i64>> = vec![None; plan.campaigns.len()];
    for (i, c) in plan.campaigns.iter().enumerate() {
        let details: serde_json::Value = serde_json::from_str(&c.details).unwrap_or_default();
        let rate = details
            .get("response_rate")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.03);
        truths.push(CampaignTruth {
            window_days: details
                .get("window_days")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(30),
            uplift: rate * TRUE_UPLIFT_FACTOR,
        });
        for m in ctx.store.plan_members(&c.campaign_id).await? {
            member_of.insert(m.customer_id, (i, m.holdout));
        }
        for s in ctx.store.sends_of(&c.campaign_id).await? {
            if let (SendState::Sent, Some(at)) = (s.state, s.sent_at) {
                first_sent[i] = Some(first_sent[i].map_or(at, |f: i64| f.min(at)));
                sent.insert(s.customer_id, (s.id, at));
            }
        }
    }
    let start = sent
        .values()
        .map(|s| s.1)
        .min()
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    let features: HashMap<String, retain_core::CustomerFeatures> = ctx
        .store
        .customer_features(None)
        .await?
        .map(|(_, f)| f.into_iter().map(|f| (f.customer_id.clone(), f)).collect())
        .unwrap_or_default();
    let people: Vec<Person> = ctx
        .store
        .customers()
        .await?
        .into_iter()
        .map(|c| {
            let f = features.get(&c.id);
            let m = member_of.get(&c.id).copied();
            Person {
                email: c.email.clone().unwrap_or_default(),
                recency_days: f.map_or(730.0, |f| f.recency_days as f64),
                frequency: f.map_or(0, |f| f.frequency),
                avg_order_value: f.map_or(20.0, |f| f.avg_order_value),
                campaign: m.map(|m| m.0),
                holdout: m.is_some_and(|m| m.1),
                sent: sent.get(&c.id).copied(),
                customer_id: c.id,
            }
        })
        .collect();
    let spec = ResponseSpec {
        seed,
        start,
        window_days: 30,
        campaigns: truths,
    };
    let sim = simulate(&spec, &people);

    // The orders, through the normal import.
    import_sim_orders(ctx, "orders_after_send.csv", &sim.orders).await?;
    // Opens and clicks, through the tracking handlers (before the steps: a step's rule may
    // read who opened).
    let recorded = replay(ctx, &sim.opens, &sim.clicks).await?;
    let mut sim = sim;

    // The follow-up steps due a week after the send, on the simulated clock (what
    // `retain followups run` does on that day), and the responses to them.
    let now = start + STEP_AFTER_DAYS * 86_400 + 3_600;
    println!(
        "  day {STEP_AFTER_DAYS} (simulated clock {}): retain followups run",
        chrono::DateTime::from_timestamp(now, 0)
            .unwrap_or_default()
            .format("%Y-%m-%d %H:%M")
    );
    super::followups::run_due(
        ctx,
        now,
        false,
        false,
        Some(super::send::TransportKind::File),
        crate::output::Format::Table,
    )
    .await?;
    let by_id: HashMap<&str, &Person> =
        people.iter().map(|p| (p.customer_id.as_str(), p)).collect();
    let bought: HashSet<&str> = sim.orders.iter().map(|o| o.customer_id.as_str()).collect();
    let mut steps = Vec::new();
    let mut step_orders = Vec::new();
    let (mut step_opens, mut step_clicks) = (Vec::new(), Vec::new());
    for (i, c) in plan.campaigns.iter().enumerate() {
        let recipients = people
            .iter()
            .filter(|p| p.campaign == Some(i) && !p.holdout)
            .count()
            .max(1) as f64;
        let first_sent = first_sent[i].unwrap_or(start);
        for st in ctx.store.campaign_steps(&c.campaign_id).await? {
            let sends: Vec<(&Person, i64)> = ctx
                .store
                .sends_of(&st.ledger_id)
                .await?
                .into_iter()
                .filter(|s| s.state == SendState::Sent)
                .filter_map(|s| by_id.get(s.customer_id.as_str()).map(|p| (*p, s.id)))
                .collect();
            let step_spec = StepSpec {
                seed: seed ^ (st.step as u64).wrapping_mul(0x9E37_79B9),
                at: now,
                window_end: first_sent + spec.campaigns[i].window_days * 86_400,
                uplift: spec.campaigns[i].uplift * STEP_UPLIFT_SHARE,
            };
            let r = simulate_step(&step_spec, &sends, &bought);
            sim.true_uplift[i] += r.true_added_conversions / recipients;
            sim.true_incremental_revenue[i] += r.true_incremental_revenue;
            steps.push(StepTruthCheck {
                campaign_id: c.campaign_id.clone(),
                step: st.step,
                ledger_id: st.ledger_id.clone(),
                template: st.template.clone(),
                sent: sends.len() as u64,
                true_added_conversions: r.true_added_conversions,
                orders: r.orders.len(),
                opens: r.opens.len(),
                clicks: r.clicks.len(),
            });
            step_orders.extend(r.orders);
            step_opens.extend(r.opens);
            step_clicks.extend(r.clicks);
        }
    }
    if !step_orders.is_empty() {
        import_sim_orders(ctx, "orders_after_steps.csv", &step_orders).await?;
    }
    let (orders, opens, clicks) = (
        sim.orders.len() + step_orders.len(),
        sim.opens.len() + step_opens.len(),
        sim.clicks.len() + step_clicks.len(),
    );

    // The step's opens and clicks, through the tracking handlers.
    let recorded = recorded + replay(ctx, &step_opens, &step_clicks).await?;

    // Measured against true.
    let mut campaigns = Vec::new();
    for (i, c) in plan.campaigns.iter().enumerate() {
        let r = retain_results::results::campaign_report(&ctx.store, &c.campaign_id, None).await?;
        let truth = sim.true_uplift[i];
        let covered = r
            .uplift
            .ci95
            .is_some_and(|[lo, hi]| lo <= truth && truth <= hi);
        campaigns.push(CampaignTruthCheck {
            campaign_id: c.campaign_id.clone(),
            recipients: r.recipients,
            holdout: r.holdout.size,
            true_uplift: truth,
            measured_uplift: r.uplift.absolute,
            ci95: r.uplift.ci95,
            covered,
        });
    }
    let program = program_of(ctx)?;
    let report = retain_results::program::program_report(&ctx.store, &program, start, None).await?;
    let control = retain_planner::GlobalControl::of(&program, start);
    let programme_customers = people
        .iter()
        .filter(|p| !control.contains(&p.customer_id))
        .count()
        .max(1);
    let true_per_customer =
        sim.true_incremental_revenue.iter().sum::<f64>() / programme_customers as f64;
    let d = report.incremental_per_customer.as_ref();
    let out = DemoResults {
        seed,
        orders,
        opens,
        clicks,
        events_recorded: recorded,
        campaigns,
        steps,
        program_true_per_customer: true_per_customer,
        program_measured_per_customer: d.map(|d| d.absolute),
        program_ci95: d.map(|d| d.ci95),
        program_covered: d
            .is_some_and(|d| d.ci95[0] <= true_per_customer && true_per_customer <= d.ci95[1]),
    };
    std::fs::write(
        ctx.path("demo-results.json"),
        serde_json::to_string_pretty(&out)?,
    )?;
    Ok(Some(out))
}

/// Simulated opens and clicks ((send id, time) each), as requests to the tracking handlers;
/// returns the events recorded.
async fn replay(ctx: &Context, opens: &[(i64, i64)], clicks: &[(i64, i64)]) -> Result<u64> {
    let secret = load_secret(&ctx.dir).context("the workspace's secret key")?;
    let base = ctx
        .config
        .tracking
        .base_url
        .trim_end_matches('/')
        .to_string();
    let path_of = |url: String| url.strip_prefix(&base).map(str::to_string).unwrap_or(url);
    let mut visits: Vec<retain_web::replay::Visit> = Vec::new();
    let links = |send_id| Links {
        base_url: &base,
        secret: &secret,
        send_id,
    };
    for &(send_id, at) in opens {
        visits.push(retain_web::replay::Visit {
            at,
            path: path_of(links(send_id).open_pixel()),
        });
    }
    for &(send_id, at) in clicks {
        visits.push(retain_web::replay::Visit {
            at,
            path: path_of(links(send_id).click("https://shop.example.com/")),
        });
    }
    visits.sort_by_key(|v| v.at);
    let r =
        retain_web::replay::replay_visits(&ctx.store, ctx.config.clone(), secret, &visits).await?;
    Ok(r.recorded)
}

/// Simulated orders, through the normal import (a CSV under `data/`).
async fn import_sim_orders(ctx: &Context, file: &str, orders: &[SimOrder]) -> Result<()> {
    let path = ctx.path("data").join(file);
    {
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        writeln!(
            w,
            "order_id,customer_id,email,order_date,product,category,quantity,unit_price"
        )?;
        for o in orders {
            let at = chrono::DateTime::from_timestamp(o.at, 0)
                .unwrap_or_default()
                .format("%Y-%m-%d %H:%M:%S");
            writeln!(
                w,
                "{},{},{},{at},Espresso beans 1kg,coffee,1,{:.2}",
                o.order_id, o.customer_id, o.email, o.amount
            )?;
        }
        w.flush()?;
    }
    super::import::import_orders(ctx, &path, &ImportOptions::default(), false).await?;
    Ok(())
}

fn program_of(ctx: &Context) -> Result<retain_planner::Program> {
    let text = std::fs::read_to_string(ctx.path("goals.toml")).unwrap_or_default();
    let vocab = retain_planner::Vocabulary {
        segments: None,
        templates: None,
        attributes: None,
    };
    Ok(retain_planner::parse_catalogue(&text, "goals.toml", &vocab)
        .map(|c| c.program)
        .unwrap_or_default())
}

/// The comparison as printed by the demo.
pub fn render(r: &DemoResults) -> String {
    let pp = |v: f64| format!("{:+.2} pp", v * 100.0);
    let mut t = Table::new([
        "campaign",
        "recipients",
        "holdout",
        "true uplift",
        "measured",
        "95% CI",
        "covers truth",
    ]);
    for c in &r.campaigns {
        t.row([
            c.campaign_id.clone(),
            c.recipients.to_string(),
            c.holdout.to_string(),
            pp(c.true_uplift),
            c.measured_uplift.map(pp).unwrap_or_else(|| "–".into()),
            c.ci95
                .map(|[a, b]| format!("{} to {}", pp(a), pp(b)))
                .unwrap_or_else(|| "–".into()),
            if c.covered { "yes" } else { "no" }.into(),
        ]);
    }
    let mut out = format!(
        "  simulated {} orders, {} opens and {} clicks ({} events recorded by the tracking handlers)\n",
        r.orders, r.opens, r.clicks, r.events_recorded
    );
    out.push_str(&t.render());
    for st in &r.steps {
        out.push_str(&format!(
            "  step {} of {} ({}): {} sent, true added conversions {:.1}; simulated {} orders, {} opens, {} clicks\n",
            st.step,
            st.campaign_id,
            st.template,
            st.sent,
            st.true_added_conversions,
            st.orders,
            st.opens,
            st.clicks
        ));
    }
    out.push_str(&format!(
        "  programme vs global control: incremental revenue per customer true {}, measured {} (95% CI {}) — {}\n",
        money(r.program_true_per_customer),
        r.program_measured_per_customer
            .map(money)
            .unwrap_or_else(|| "–".into()),
        r.program_ci95
            .map(|[a, b]| format!("{} to {}", money(a), money(b)))
            .unwrap_or_else(|| "–".into()),
        if r.program_covered {
            "covers the truth"
        } else {
            "misses the truth"
        }
    ));
    out
}
