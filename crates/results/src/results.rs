//! Campaign results from the store: a campaign's report inputs (campaign, audience, sends,
//! events, orders) loaded and computed, the reports of a plan or of every sent campaign, and the
//! observed response rates per goal that the planner can use as priors.

use std::collections::{HashMap, HashSet};

use retain_core::Order;
use retain_store::{Store, StoreError};

use crate::report::{self, CampaignInput, CampaignReport, Inputs, MemberInput, SendInput};

/// Errors loading results.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no campaign '{0}'")]
    UnknownCampaign(String),
    #[error("no plan '{0}'")]
    UnknownPlan(String),
    #[error("uplift model: {0}")]
    Model(String),
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A campaign as the results need it, read from the plans store.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignMeta {
    pub input: CampaignInput,
    /// The campaign's details JSON as the planner wrote it (variants' power, steps…).
    pub details: serde_json::Value,
    pub template: String,
    pub segments: Vec<String>,
    pub plan_state: String,
    pub recipients: i64,
    pub holdout: i64,
}

/// Reads goal name and attribution window from the campaign's details JSON (the planner writes
/// them there); the window defaults to 30 days when absent.
fn meta_of(c: &retain_store::PlanCampaignRecord, state: retain_store::PlanState) -> CampaignMeta {
    let details: serde_json::Value = serde_json::from_str(&c.details).unwrap_or_default();
    let goal_name = details
        .get("goal_name")
        .and_then(|v| v.as_str())
        .unwrap_or(&c.goal)
        .to_string();
    let window_days = details
        .get("window_days")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(DEFAULT_WINDOW_DAYS);
    CampaignMeta {
        details: details.clone(),
        input: CampaignInput {
            campaign_id: c.campaign_id.clone(),
            plan_id: c.plan_id.clone(),
            goal: c.goal.clone(),
            goal_name,
            window_days,
            cost_per_recipient: if c.recipients > 0 {
                c.cost / c.recipients as f64
            } else {
                0.0
            },
        },
        template: c.template.clone(),
        segments: c.segments.clone(),
        plan_state: state.as_str().to_string(),
        recipients: c.recipients,
        holdout: c.holdout,
    }
}

/// Attribution window when a campaign's details do not say.
pub const DEFAULT_WINDOW_DAYS: i64 = 30;

/// One campaign's description, or `None` when there is no such campaign.
pub async fn campaign_meta(
    store: &Store,
    campaign_id: &str,
) -> Result<Option<CampaignMeta>, ResultsError> {
    Ok(store
        .plan_campaign(campaign_id)
        .await?
        .map(|(c, state)| meta_of(&c, state)))
}

/// Every campaign of every plan, newest plan first.
pub async fn all_campaigns(store: &Store) -> Result<Vec<CampaignMeta>, ResultsError> {
    Ok(store
        .plans()
        .await?
        .iter()
        .flat_map(|p| p.campaigns.iter().map(|c| meta_of(c, p.state)))
        .collect())
}

/// The segment each member is counted in: the campaign's only segment, or else the customer's
/// segment in the latest segmentation (`(not segmented)` when it has none), or `all` when
/// nothing is segmented. `in_run`: `None` when nothing is segmented, else the member's segment in
/// the latest run, if any.
fn member_segment(segments: &[String], in_run: Option<Option<String>>) -> String {
    if let [only] = segments {
        return only.clone();
    }
    match in_run {
        Some(seg) => seg.unwrap_or_else(|| "(not segmented)".to_string()),
        None => "all".to_string(),
    }
}

/// Computes the report of one campaign from the store; `orders` may be passed in when reporting
/// on many campaigns at once.
pub async fn campaign_report(
    store: &Store,
    campaign_id: &str,
    orders: Option<&[Order]>,
) -> Result<CampaignReport, ResultsError> {
    let meta = campaign_meta(store, campaign_id)
        .await?
        .ok_or_else(|| ResultsError::UnknownCampaign(campaign_id.to_string()))?;
    report_of(store, &meta, orders).await
}

/// A ledger campaign's sends (a campaign or one of its steps) and the events recorded for them.
async fn sends_and_events(
    store: &Store,
    ledger_id: &str,
) -> Result<(Vec<SendInput>, Vec<retain_store::EventRecord>), ResultsError> {
    let sends: Vec<SendInput> = store
        .sends_of(ledger_id)
        .await?
        .into_iter()
        .map(|s| SendInput {
            id: s.id,
            customer_id: s.customer_id,
            state: s.state.as_str().to_string(),
            sent_at: s.sent_at,
        })
        .collect();
    let events = if sends.is_empty() {
        Vec::new()
    } else {
        store.events_of_campaign(ledger_id).await?
    };
    Ok((sends, events))
}

/// The earliest order time a campaign's report reads: one window before its first send (the
/// members' activity before it), or nothing at all before anything was sent.
fn attribution_start(campaign: &CampaignInput, sends: &[SendInput]) -> i64 {
    match report::first_send(sends) {
        Some(first) => first.saturating_sub(campaign.window_days.saturating_mul(86_400)),
        None => i64::MAX,
    }
}

/// The orders a campaign's report attributes: its members' (recipients and holdout) from
/// [`attribution_start`] on; none before anything was sent.
async fn members_orders(
    store: &Store,
    campaign_id: &str,
    campaign: &CampaignInput,
    sends: &[SendInput],
) -> Result<Vec<Order>, ResultsError> {
    match attribution_start(campaign, sends) {
        i64::MAX => Ok(Vec::new()),
        since => Ok(store.orders_of_members_since(campaign_id, since).await?),
    }
}

async fn report_of(
    store: &Store,
    meta: &CampaignMeta,
    orders: Option<&[Order]>,
) -> Result<CampaignReport, ResultsError> {
    let campaign_id = meta.input.campaign_id.as_str();
    // Members with their segment in the latest run, looked up member by member (a campaign of
    // several segments only).
    let run = match meta.segments.len() {
        1 => None,
        _ => store.latest_segment_run().await?.map(|r| r.id),
    };
    let with_segment = match run {
        Some(run) => store
            .plan_members_in_run(campaign_id, run)
            .await?
            .into_iter()
            .map(|(m, seg)| (m, Some(seg)))
            .collect::<Vec<_>>(),
        None => store
            .plan_members(campaign_id)
            .await?
            .into_iter()
            .map(|m| (m, None))
            .collect(),
    };
    let members: Vec<MemberInput> = with_segment
        .into_iter()
        .map(|(m, in_run)| MemberInput {
            segment: member_segment(&meta.segments, in_run),
            customer_id: m.customer_id,
            holdout: m.holdout,
        })
        .collect();
    let (sends, events) = sends_and_events(store, campaign_id).await?;
    let owned;
    let orders = match orders {
        Some(o) => o,
        None => {
            owned = members_orders(store, campaign_id, &meta.input, &sends).await?;
            &owned
        }
    };
    let mut rep = report::compute(Inputs {
        campaign: &meta.input,
        members: &members,
        sends: &sends,
        events: &events,
        orders,
        now: now(),
    });
    rep.sequence = sequence_of(store, meta, &members, &sends, &events, orders).await?;
    Ok(rep)
}

/// The campaign's variants and steps (see [`crate::sequence`]), when it has any.
async fn sequence_of(
    store: &Store,
    meta: &CampaignMeta,
    members: &[MemberInput],
    sends: &[SendInput],
    events: &[retain_store::EventRecord],
    orders: &[Order],
) -> Result<Option<crate::sequence::SequenceReport>, ResultsError> {
    let campaign_id = meta.input.campaign_id.as_str();
    let variants: HashMap<String, (String, String)> = store
        .campaign_variants(campaign_id)
        .await?
        .into_iter()
        .map(|v| (v.customer_id, (v.variant, v.template)))
        .collect();
    let records = store.campaign_steps(campaign_id).await?;
    let after_days = |step: i64| -> i64 {
        meta.details
            .get("steps")
            .and_then(serde_json::Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|s| s.get("number").and_then(serde_json::Value::as_i64) == Some(step))
            })
            .and_then(|s| s.get("after_days").and_then(serde_json::Value::as_i64))
            .unwrap_or(0)
    };
    let mut step_data = Vec::new();
    for r in &records {
        let (s, e) = sends_and_events(store, &r.ledger_id).await?;
        step_data.push((r, s, e));
    }
    // Events of the whole sequence count for its uplift's engagement figures.
    let mut all_events = events.to_vec();
    for (_, _, e) in &step_data {
        all_events.extend(e.iter().cloned());
    }
    let steps: Vec<crate::sequence::StepInput> = step_data
        .iter()
        .map(|(r, s, e)| crate::sequence::StepInput {
            step: r.step,
            ledger_id: &r.ledger_id,
            template: &r.template,
            after_days: after_days(r.step),
            sends: s,
            events: e,
        })
        .collect();
    let required = meta
        .details
        .get("variant_power")
        .and_then(|p| p.get("required_per_variant"))
        .and_then(serde_json::Value::as_u64);
    Ok(crate::sequence::compute(&crate::sequence::SequenceInputs {
        campaign: &meta.input,
        members,
        sends,
        events: &all_events,
        orders,
        now: now(),
        variants: &variants,
        required_per_variant: required,
        steps: &steps,
    }))
}

/// The verdict of a campaign's test on a share (`test_share`) at its fixed horizon: the variant
/// test over the tested recipients against the holdout, conversions counted within `days` of
/// each send, read at `now` (no winner while the horizon has not passed).
pub async fn share_test_verdict(
    store: &Store,
    campaign_id: &str,
    days: i64,
    now: i64,
) -> Result<crate::sequence::VariantTest, ResultsError> {
    let meta = campaign_meta(store, campaign_id)
        .await?
        .ok_or_else(|| ResultsError::UnknownCampaign(campaign_id.to_string()))?;
    let variants: HashMap<String, (String, String)> = store
        .campaign_variants(campaign_id)
        .await?
        .into_iter()
        .filter(|v| v.variant != retain_planner::variants::REST_VARIANT)
        .map(|v| (v.customer_id, (v.variant, v.template)))
        .collect();
    // The tested recipients and the holdout: the rest waits and is no part of the test.
    let members: Vec<MemberInput> = store
        .plan_members(campaign_id)
        .await?
        .into_iter()
        .filter(|m| m.holdout || variants.contains_key(&m.customer_id))
        .map(|m| MemberInput {
            segment: String::new(),
            customer_id: m.customer_id,
            holdout: m.holdout,
        })
        .collect();
    let (sends, events) = sends_and_events(store, campaign_id).await?;
    let campaign = CampaignInput {
        window_days: days,
        ..meta.input.clone()
    };
    // Every member's orders, then only the tested recipients' and the holdout's.
    let who: HashSet<&str> = members.iter().map(|m| m.customer_id.as_str()).collect();
    let mut orders = members_orders(store, campaign_id, &campaign, &sends).await?;
    orders.retain(|o| who.contains(o.customer_id.as_str()));
    let required = meta
        .details
        .get("variant_power")
        .and_then(|p| p.get("required_per_variant"))
        .and_then(serde_json::Value::as_u64);
    Ok(crate::sequence::variant_test(
        &crate::sequence::SequenceInputs {
            campaign: &campaign,
            members: &members,
            sends: &sends,
            events: &events,
            orders: &orders,
            now,
            variants: &variants,
            required_per_variant: required,
            steps: &[],
        },
    ))
}

/// The reports of every campaign of a plan.
pub async fn plan_reports(
    store: &Store,
    plan_id: &str,
) -> Result<Vec<CampaignReport>, ResultsError> {
    let plan = store
        .plan(plan_id)
        .await?
        .ok_or_else(|| ResultsError::UnknownPlan(plan_id.to_string()))?;
    let mut out = Vec::new();
    for c in &plan.campaigns {
        out.push(report_of(store, &meta_of(c, plan.state), None).await?);
    }
    Ok(out)
}

/// The reports of every campaign that has sent something, newest first.
pub async fn sent_reports(store: &Store) -> Result<Vec<CampaignReport>, ResultsError> {
    let counts = store.send_counts_all().await?;
    let mut out = Vec::new();
    for c in all_campaigns(store).await? {
        if counts.get(&c.input.campaign_id).is_some_and(|n| n.sent > 0) {
            out.push(report_of(store, &c, None).await?);
        }
    }
    Ok(out)
}

/// Closed campaigns (sent, and their conversion window over since their last accepted
/// message) need at least this many recipients per goal before their measured uplift is used.
pub const MIN_MEASURED_RECIPIENTS: u64 = 1_000;

/// Measured incremental response per goal, for the planner: Σ incremental conversions
/// (recipients vs holdout) / Σ recipients over the campaigns whose conversion window has
/// closed, for goals with at least [`MIN_MEASURED_RECIPIENTS`] such recipients, clamped to
/// [0, 1]. Only those campaigns are reported on: which windows are closed is read from the
/// ledger's per-campaign last acceptance, so campaigns still measuring cost nothing.
pub async fn measured_incremental_rates(
    store: &Store,
) -> Result<std::collections::BTreeMap<String, f64>, ResultsError> {
    let counts = store.send_counts_all().await?;
    let last_sent = store.last_sent_all().await?;
    let now = now();
    let mut acc: std::collections::BTreeMap<String, (f64, u64)> = Default::default();
    for c in all_campaigns(store).await? {
        let id = c.input.campaign_id.as_str();
        let closed = report::window_closed(last_sent.get(id).copied(), c.input.window_days, now);
        if !closed || counts.get(id).is_none_or(|n| n.sent <= 0) {
            continue;
        }
        let r = report_of(store, &c, None).await?;
        let Some(incremental) = r.incremental_conversions.filter(|x| x.is_finite()) else {
            continue;
        };
        if !r.window_closed || r.recipients == 0 {
            continue;
        }
        let e = acc.entry(r.goal.clone()).or_default();
        e.0 += incremental;
        e.1 += r.recipients;
    }
    Ok(acc
        .into_iter()
        .filter(|(_, (_, n))| *n >= MIN_MEASURED_RECIPIENTS)
        .map(|(goal, (x, n))| (goal, (x / n as f64).clamp(0.0, 1.0)))
        .collect())
}

/// Observed conversion rate of recipients per goal over every campaign sent so far:
/// `goal → (rate, recipients)`. The planner can use these as priors in place of its defaults.
pub async fn observed_response_rates(
    store: &Store,
) -> Result<HashMap<String, (f64, u64)>, ResultsError> {
    Ok(report::response_rates(&sent_reports(store).await?))
}
