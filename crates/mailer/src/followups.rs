//! Follow-up steps of sent campaigns: [`create_due_steps`] finds the steps of approved
//! campaigns whose day has come, picks the recipients their `when` rule matches (from what each
//! did since the first email), and queues them in the send ledger under the step's own ledger
//! id (`<campaign>.s<step>`), where the send engine sends them like any campaign: once each.
//!
//! Only the campaign's recipients who were sent the first email can get a step (the holdout never
//! does); suppression, consent and address validity are checked when the step is queued (and
//! again by the engine at claim time), and the frequency cap holds back anyone another campaign
//! mailed within it (the sequence's own emails do not count).
//!
//! A campaign tested on a share (`test_share`) has a step 0: once the test's horizon
//! (`test_days` after the first send) has passed, the recipients who waited (variant
//! [`REST_VARIANT`]) are queued under `<campaign>.s0` with the template of the variant that won
//! the fixed-horizon test ([`retain_results::results::share_test_verdict`]) — or, without a valid winner,
//! the goal's `default_variant`, and the step says so. The holdout is never among them.

use std::collections::{BTreeMap, HashMap, HashSet};

use retain_planner::expr::{NumField, Subject, NUM_FIELDS};
use retain_planner::followup::{parse_step_rule, unknown_customer, Activity};
use retain_planner::input::{Candidate, RfmScores};
use retain_store::{step_ledger_id, ConsentCheck, NewSend, PlanState, Store};
use serde::Serialize;

use retain_planner::variants::REST_VARIANT;

use crate::context::Recipient;
use crate::engine::queue_time_exclusion;
use crate::error::MailerError;
use crate::message::Identity;

/// What the follow-up run may do.
#[derive(Debug, Clone)]
pub struct FollowupOptions {
    /// Unix seconds: which steps are due, and the frequency cap's reference.
    pub now: i64,
    pub frequency_cap_days: u32,
    pub consent: ConsentCheck,
    /// Decide and count, write nothing.
    pub dry_run: bool,
}

/// One step that was due (created now, or found when `dry_run`).
#[derive(Debug, Clone, Serialize)]
pub struct DueStep {
    pub campaign_id: String,
    pub step: u32,
    pub ledger_id: String,
    pub template: String,
    pub when: String,
    /// Recipients of the first email considered.
    pub considered: u64,
    /// Of those, matched by the rule.
    pub matched: u64,
    /// Of the matched, queued to be sent.
    pub queued: u64,
    /// Matched but not queued, by reason (frequency cap, suppressed, unsubscribed…).
    pub excluded: BTreeMap<String, u64>,
    /// `false` when the goal approves each step and this one waits for its approval.
    pub approved: bool,
    /// Step 0 of a test on a share: which variant the rest gets and why (the winner, or the
    /// default when the test found no valid winner by its horizon).
    pub note: Option<String>,
}

/// A test on a share as the planner stored it in the campaign's details.
#[derive(Debug, Clone, serde::Deserialize)]
struct StoredShareTest {
    days: u32,
    default_variant: String,
}

/// A step as the planner stored it in the campaign's details.
#[derive(Debug, Clone, serde::Deserialize)]
struct StoredStep {
    number: u32,
    after_days: u32,
    when_text: String,
    template: String,
}

/// Creates the due steps of every approved campaign (see the module docs) and returns them;
/// steps created before are left alone, so running it again (or from two processes) adds
/// nothing. `identity` gives the queued rows their Message-IDs.
pub async fn create_due_steps(
    store: &Store,
    identity: &Identity,
    opts: &FollowupOptions,
) -> Result<Vec<DueStep>, MailerError> {
    let mut out = Vec::new();
    let suppressions = store.suppression_list().await?;
    for plan in store.plans().await? {
        if plan.state != PlanState::Approved {
            continue;
        }
        for c in &plan.campaigns {
            let details: serde_json::Value = serde_json::from_str(&c.details).unwrap_or_default();
            let steps: Vec<StoredStep> = details
                .get("steps")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok())
                .unwrap_or_default();
            let share_test: Option<StoredShareTest> = details
                .get("share_test")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok());
            if steps.is_empty() && share_test.is_none() {
                continue;
            }
            if store.send_campaign_state(&c.campaign_id).await?
                == retain_store::CampaignSendState::Cancelled
            {
                continue;
            }
            let each_step = details.get("approve").and_then(|a| a.as_str()) == Some("each_step");
            let window_days = details
                .get("window_days")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(30);
            let created: HashSet<i64> = store
                .campaign_steps(&c.campaign_id)
                .await?
                .iter()
                .map(|s| s.step)
                .collect();
            // Every step created already: nothing to read (a worker asks on every pass).
            let pending = steps
                .iter()
                .any(|s| !created.contains(&i64::from(s.number)))
                || (share_test.is_some() && !created.contains(&0));
            if !pending {
                continue;
            }
            let activity = store.recipient_activity(&c.campaign_id).await?;
            let Some(first_sent) = activity.iter().map(|a| a.sent_at).min() else {
                continue; // not sent yet
            };
            if let Some(test) = &share_test {
                if !created.contains(&0)
                    && retain_planner::followup::is_due(first_sent, test.days, opts.now)
                {
                    let due = queue_winner(
                        store,
                        identity,
                        &suppressions,
                        opts,
                        &c.campaign_id,
                        test,
                        !each_step,
                    )
                    .await?;
                    out.push(due);
                }
            }
            for step in &steps {
                if created.contains(&i64::from(step.number)) {
                    continue;
                }
                // Steps go in order: a later one waits for the earlier one.
                if step.number > 1 && !created.contains(&i64::from(step.number - 1)) {
                    break;
                }
                if !retain_planner::followup::is_due(first_sent, step.after_days, opts.now) {
                    break;
                }
                let rule = parse_step_rule(&step.when_text).map_err(|e| {
                    MailerError::Config(format!(
                        "campaign {}: step {} rule `{}`: {}",
                        c.campaign_id, step.number, step.when_text, e.message
                    ))
                })?;
                let due = queue_step(
                    store,
                    identity,
                    &suppressions,
                    opts,
                    &c.campaign_id,
                    step,
                    &rule,
                    &activity,
                    window_days,
                    !each_step,
                )
                .await?;
                out.push(due);
                if opts.dry_run {
                    break;
                }
            }
        }
    }
    out.sort_by(|a, b| (a.campaign_id.as_str(), a.step).cmp(&(b.campaign_id.as_str(), b.step)));
    Ok(out)
}

/// A recipient as a step rule's customer conditions read them: their fields as the store holds
/// them now (features at the newest order day, the stored prediction, the newest segmentation).
fn subject_of(m: &retain_store::AudienceMember, now: i64) -> Subject<'_> {
    let scores = m.segment.as_ref().map(|(_, r, f, mo)| RfmScores {
        r: (*r).clamp(0, 255) as u8,
        f: (*f).clamp(0, 255) as u8,
        m: (*mo).clamp(0, 255) as u8,
    });
    let segment = m.segment.as_ref().map_or("", |s| s.0.as_str());
    let numbers = match (&m.customer, &m.features) {
        (Some(customer), Some(features)) => Candidate {
            customer,
            features,
            segment,
            scores,
            prediction: m.prediction.as_ref(),
            suppression: None,
            last_campaign_at: None,
            due_day: None,
        }
        .numbers(now),
        _ => {
            // No orders (or no record): only what the models and segmentation say.
            let mut n = [f64::NAN; NUM_FIELDS];
            if let Some(p) = &m.prediction {
                n[NumField::PAlive.index()] = p.p_alive;
                n[NumField::Clv.index()] = p.clv;
                n[NumField::ExpectedPurchases90d.index()] = p.expected_purchases_90d;
            }
            if let Some(s) = scores {
                n[NumField::RScore.index()] = f64::from(s.r);
                n[NumField::FScore.index()] = f64::from(s.f);
                n[NumField::MScore.index()] = f64::from(s.m);
            }
            n.map(|x| if x.is_finite() { x } else { f64::NAN })
        }
    };
    Subject {
        segment,
        numbers,
        locale: m.customer.as_ref().and_then(|c| c.locale.as_deref()),
        attributes: m.customer.as_ref().map(|c| &c.attributes),
    }
}

/// Step 0 of a test on a share: the recipients who waited get the winner (or the default).
async fn queue_winner(
    store: &Store,
    identity: &Identity,
    suppressions: &retain_store::SuppressionList,
    opts: &FollowupOptions,
    campaign_id: &str,
    test: &StoredShareTest,
    approved: bool,
) -> Result<DueStep, MailerError> {
    let verdict = retain_results::results::share_test_verdict(
        store,
        campaign_id,
        i64::from(test.days),
        opts.now,
    )
    .await
    .map_err(|e| MailerError::Config(format!("campaign {campaign_id}: {e}")))?;
    let assignments = store.campaign_variants(campaign_id).await?;
    let template_of = |variant: &str| {
        assignments
            .iter()
            .find(|a| a.variant == variant)
            .map(|a| a.template.clone())
    };
    let (variant, note) = match &verdict.winner {
        Some(w) => (
            w.clone(),
            format!("variant {w} won the test: {}", verdict.verdict),
        ),
        None => (
            test.default_variant.clone(),
            format!(
                "no valid winner after {} days ({}): the default variant {} is sent",
                test.days, verdict.verdict, test.default_variant
            ),
        ),
    };
    let template = template_of(&variant).ok_or_else(|| {
        MailerError::Config(format!(
            "campaign {campaign_id}: variant {variant} has no template"
        ))
    })?;
    let waiting: HashSet<&str> = assignments
        .iter()
        .filter(|a| a.variant == REST_VARIANT)
        .map(|a| a.customer_id.as_str())
        .collect();
    let since = opts.now - i64::from(opts.frequency_cap_days) * 86_400;
    let last_mailed = store.last_mailed_at().await?;
    let mut excluded: BTreeMap<String, u64> = BTreeMap::new();
    let mut rows = Vec::new();
    for m in store.campaign_audience(campaign_id).await? {
        if m.holdout || !waiting.contains(m.customer_id.as_str()) {
            continue;
        }
        if last_mailed.get(&m.customer_id).is_some_and(|&t| t >= since) {
            *excluded.entry("frequency cap".into()).or_default() += 1;
            continue;
        }
        let r = m.customer.map(|customer| Recipient {
            customer,
            ..Default::default()
        });
        if let Some(why) = queue_time_exclusion(r.as_ref(), suppressions, opts.consent) {
            *excluded.entry(why).or_default() += 1;
            continue;
        }
        let email = r
            .as_ref()
            .and_then(|r| r.customer.email.as_deref())
            .map(str::trim)
            .unwrap_or("")
            .to_string();
        rows.push(NewSend {
            customer_id: m.customer_id,
            email,
            message_id: identity.new_message_id(),
            suppressed: None,
        });
    }
    let ledger_id = step_ledger_id(campaign_id, 0);
    let queued = rows.len() as u64;
    let considered = waiting.len() as u64;
    if !opts.dry_run {
        store.queue_sends(&ledger_id, &rows).await?;
        if !approved {
            store
                .set_send_campaign_state(&ledger_id, retain_store::CampaignSendState::Paused)
                .await?;
        }
        store
            .create_step(campaign_id, 0, &template, approved, considered as i64)
            .await?;
    }
    Ok(DueStep {
        campaign_id: campaign_id.to_string(),
        step: 0,
        ledger_id,
        template,
        when: format!("the rest, after the test ({} days)", test.days),
        considered,
        matched: considered,
        queued,
        excluded,
        approved,
        note: Some(note),
    })
}

/// The created steps that may be sent now: approved (with the plan, or on their own), of an
/// approved plan, not paused or cancelled, with recipients still queued; in ledger id order.
pub async fn sendable_steps(store: &Store) -> Result<Vec<retain_store::StepRecord>, MailerError> {
    let mut out = Vec::new();
    for plan in store.plans().await? {
        if plan.state != PlanState::Approved {
            continue;
        }
        for c in &plan.campaigns {
            for step in store.campaign_steps(&c.campaign_id).await? {
                if !step.approved
                    || store.send_campaign_state(&step.ledger_id).await?
                        != retain_store::CampaignSendState::Active
                    || store.send_counts(&step.ledger_id).await?.queued == 0
                {
                    continue;
                }
                out.push(step);
            }
        }
    }
    out.sort_by(|a, b| a.ledger_id.cmp(&b.ledger_id));
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn queue_step(
    store: &Store,
    identity: &Identity,
    suppressions: &retain_store::SuppressionList,
    opts: &FollowupOptions,
    campaign_id: &str,
    step: &StoredStep,
    rule: &retain_planner::followup::StepRule,
    activity: &[retain_store::RecipientActivity],
    window_days: i64,
    approved: bool,
) -> Result<DueStep, MailerError> {
    // Conversions: a purchase (not a return) from the first email until now, within the window.
    let ids: Vec<&str> = activity.iter().map(|a| a.customer_id.as_str()).collect();
    let mut bought: HashMap<&str, Vec<i64>> = HashMap::new();
    let orders = store.orders_of_customers(&ids).await?;
    for o in orders.iter().filter(|o| !o.is_return) {
        if let Some(id) = ids.iter().find(|i| **i == o.customer_id) {
            bought
                .entry(id)
                .or_default()
                .push(o.ordered_at.and_utc().timestamp());
        }
    }
    let window = window_days.max(0) * 86_400;
    let capped: HashSet<String> = store
        .mailed_outside_sequence(
            campaign_id,
            opts.now - i64::from(opts.frequency_cap_days) * 86_400,
        )
        .await?
        .into_iter()
        .collect();
    let audience: HashMap<String, retain_store::AudienceMember> = store
        .campaign_audience(campaign_id)
        .await?
        .into_iter()
        .map(|m| (m.customer_id.clone(), m))
        .collect();
    let nobody = unknown_customer();
    let mut excluded: BTreeMap<String, u64> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut matched = 0;
    for a in activity {
        let converted = bought.get(a.customer_id.as_str()).is_some_and(|ts| {
            ts.iter()
                .any(|&t| t >= a.sent_at && t < (a.sent_at + window).min(opts.now + 1))
        });
        let act = Activity {
            opened: a.opened,
            clicked: a.clicked,
            converted,
            unsubscribed: a.unsubscribed,
            bounced: a.bounced,
        };
        let member = audience.get(&a.customer_id);
        let subject = match member {
            Some(m) if rule.reads_customer() => subject_of(m, opts.now),
            _ => nobody.clone(),
        };
        if !rule.matches(&act, &subject) {
            continue;
        }
        matched += 1;
        if capped.contains(&a.customer_id) {
            *excluded.entry("frequency cap".into()).or_default() += 1;
            continue;
        }
        let r = member.and_then(|m| m.customer.as_ref()).map(|c| Recipient {
            customer: c.clone(),
            ..Default::default()
        });
        if let Some(why) = queue_time_exclusion(r.as_ref(), suppressions, opts.consent) {
            *excluded.entry(why).or_default() += 1;
            continue;
        }
        let email = r
            .as_ref()
            .and_then(|r| r.customer.email.as_deref())
            .map(str::trim)
            .unwrap_or("")
            .to_string();
        rows.push(NewSend {
            customer_id: a.customer_id.clone(),
            email,
            message_id: identity.new_message_id(),
            suppressed: None,
        });
    }
    let ledger_id = step_ledger_id(campaign_id, i64::from(step.number));
    let queued = rows.len() as u64;
    if !opts.dry_run {
        // Queued first, then recorded: a crash in between queues again (idempotent), never
        // leaves a recorded step without its rows.
        store.queue_sends(&ledger_id, &rows).await?;
        if !approved {
            store
                .set_send_campaign_state(&ledger_id, retain_store::CampaignSendState::Paused)
                .await?;
        }
        store
            .create_step(
                campaign_id,
                i64::from(step.number),
                &step.template,
                approved,
                matched as i64,
            )
            .await?;
    }
    Ok(DueStep {
        campaign_id: campaign_id.to_string(),
        step: step.number,
        ledger_id,
        template: step.template.clone(),
        when: step.when_text.clone(),
        considered: activity.len() as u64,
        matched,
        queued,
        excluded,
        approved,
        note: None,
    })
}
