//! Campaign results from the store: a campaign's report inputs (campaign, audience, sends,
//! events, orders) loaded and computed, the reports of a plan or of every sent campaign, and the
//! observed response rates per goal that the planner can use as priors.

use std::collections::HashMap;

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
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Computes the report of one campaign from the store; `orders` may be passed in when reporting
/// on many campaigns at once.
pub async fn campaign_report(
    store: &Store,
    campaign_id: &str,
    orders: Option<&[Order]>,
) -> Result<CampaignReport, ResultsError> {
    let c = store
        .campaign(campaign_id)
        .await?
        .ok_or_else(|| ResultsError::UnknownCampaign(campaign_id.to_string()))?;
    let members: Vec<MemberInput> = store
        .campaign_members(campaign_id)
        .await?
        .into_iter()
        .map(|m| MemberInput {
            customer_id: m.customer_id,
            holdout: m.holdout,
            segment: m.segment,
        })
        .collect();
    let sends: Vec<SendInput> = store
        .sends_of(campaign_id)
        .await?
        .into_iter()
        .map(|s| SendInput {
            id: s.id,
            customer_id: s.customer_id,
            state: s.state.as_str().to_string(),
            sent_at: s.sent_at,
        })
        .collect();
    let ids: Vec<i64> = sends.iter().map(|s| s.id).collect();
    let events = store.events_of_sends(&ids).await?;
    let owned;
    let orders = match orders {
        Some(o) => o,
        None => {
            owned = store.orders().await?;
            &owned
        }
    };
    let input = CampaignInput {
        campaign_id: c.campaign_id,
        plan_id: c.plan_id,
        goal: c.goal,
        goal_name: c.goal_name,
        window_days: c.window_days,
        cost_per_recipient: c.cost_per_recipient,
    };
    Ok(report::compute(Inputs {
        campaign: &input,
        members: &members,
        sends: &sends,
        events: &events,
        orders,
        now: now(),
    }))
}

/// The reports of every campaign of a plan.
pub async fn plan_reports(store: &Store, plan_id: &str) -> Result<Vec<CampaignReport>, ResultsError> {
    let campaigns: Vec<String> = store
        .campaigns()
        .await?
        .into_iter()
        .filter(|c| c.plan_id == plan_id)
        .map(|c| c.campaign_id)
        .collect();
    if campaigns.is_empty() {
        return Err(ResultsError::UnknownPlan(plan_id.to_string()));
    }
    let orders = store.orders().await?;
    let mut out = Vec::new();
    for id in campaigns {
        out.push(campaign_report(store, &id, Some(&orders)).await?);
    }
    Ok(out)
}

/// The reports of every campaign that has sent something, newest first.
pub async fn sent_reports(store: &Store) -> Result<Vec<CampaignReport>, ResultsError> {
    let counts = store.send_counts_all().await?;
    let orders = store.orders().await?;
    let mut out = Vec::new();
    for c in store.campaigns().await? {
        if counts.get(&c.campaign_id).is_some_and(|n| n.sent > 0) {
            out.push(campaign_report(store, &c.campaign_id, Some(&orders)).await?);
        }
    }
    Ok(out)
}

/// Observed conversion rate of recipients per goal over every campaign sent so far:
/// `goal → (rate, recipients)`. The planner can use these as priors in place of its defaults.
pub async fn observed_response_rates(
    store: &Store,
) -> Result<HashMap<String, (f64, u64)>, ResultsError> {
    Ok(report::response_rates(&sent_reports(store).await?))
}
