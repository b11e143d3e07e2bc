//! Past campaigns as the uplift learner's training data, and the fitted models' life cycle.
//!
//! For every sent campaign with a holdout, each member becomes one row: treated (mailed) or
//! control (held out), the customer's features at the plan's as-of date — recency, frequency,
//! monetary value and tenure folded from the orders before that date by
//! `CustomerAggregate::fold`, the stored prediction (CLV, P(alive)) when its run was as of that
//! date or earlier (a later run has seen the outcome), numeric attributes — and the outcome by
//! the reports' attribution rule ([`crate::report::attribute`]): a purchase within the window,
//! and its revenue. The store hands the rows over one campaign at a time
//! (`Store::uplift_members`); the whole orders table is never read.
//!
//! [`fit_goals`] fits a model per goal (`retain-uplift`), measures it on campaigns left out of
//! the fit, refits on all of them and stores the model; [`evaluate_goals`] reports the stored
//! models' evaluations, and measures them again on campaigns sent since they were fitted.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use retain_core::{day_of, from_minor, CustomerAggregate, CustomerFeatures, Prediction};
use retain_store::{Store, UpliftModelRecord};
use retain_uplift::{
    evaluate, fit, split_by_campaign, Evaluation, Example, FitOptions, Schema, UpliftModel,
};
use serde::Serialize;

use crate::report::{attribute, first_send, SendInput};
use crate::results::{ResultsError, DEFAULT_WINDOW_DAYS};

/// Share of a goal's campaigns held out of the fit for its evaluation.
pub const HELD_OUT_SHARE: f64 = 0.3;

/// Qini curves are kept and shown at this many steps (101 points).
pub const CURVE_POINTS: usize = 100;

/// Attributes numeric for at least this share of the members become features.
const ATTRIBUTE_SHARE: f64 = 0.5;

/// One past campaign member.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRow {
    pub campaign: String,
    pub goal: String,
    pub customer_id: String,
    pub treated: bool,
    /// Features at the plan's date (None: no purchase before it).
    pub features: Option<CustomerFeatures>,
    pub prediction: Option<Prediction>,
    pub attributes: BTreeMap<String, String>,
    pub converted: bool,
    pub revenue: f64,
}

fn window_of(details: &str) -> i64 {
    serde_json::from_str::<serde_json::Value>(details)
        .ok()
        .and_then(|d| d.get("window_days").and_then(serde_json::Value::as_i64))
        .unwrap_or(DEFAULT_WINDOW_DAYS)
}

/// The training rows of every usable campaign of `goal` (all goals: `None`), campaign by
/// campaign; `progress` is told each campaign's id and member count.
pub async fn training_rows(
    store: &Store,
    goal: Option<&str>,
    mut progress: impl FnMut(&str, usize),
) -> Result<Vec<TrainingRow>, ResultsError> {
    let mut out = Vec::new();
    for c in store.uplift_campaigns(goal).await? {
        let window = window_of(&c.details);
        let as_of = c
            .as_of
            .as_deref()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .or_else(|| chrono::DateTime::from_timestamp(c.planned_at, 0).map(|t| t.date_naive()));
        let Some(as_of) = as_of else { continue };
        let cutoff = day_of(as_of);
        let sends: Vec<SendInput> = store
            .sends_of(&c.campaign_id)
            .await?
            .into_iter()
            .map(|s| SendInput {
                id: s.id,
                customer_id: s.customer_id,
                state: s.state.as_str().to_string(),
                sent_at: s.sent_at,
            })
            .collect();
        let started_at = first_send(&sends);
        let Some(last) = sends.iter().filter_map(|s| s.sent_at).max() else {
            continue;
        };
        // Orders up to the end of the last window (a day of margin for the time of day).
        let until = chrono::DateTime::from_timestamp(last + window.max(0) * 86_400, 0)
            .map_or(i32::MAX, |t| day_of(t.date_naive()).saturating_add(1));
        let sent_at: BTreeMap<&str, Option<i64>> = sends
            .iter()
            .map(|s| (s.customer_id.as_str(), s.sent_at))
            .collect();
        let members = store.uplift_members(&c.campaign_id, until).await?;
        progress(&c.campaign_id, members.len());
        for m in members {
            let facts: Vec<_> = m.orders.iter().map(|(f, _)| *f).collect();
            let features = CustomerAggregate::fold(&facts, Some(cutoff))
                .map(|a| a.features(&m.customer_id, as_of));
            let purchases: Vec<(i64, f64)> = m
                .orders
                .iter()
                .filter(|(f, _)| !f.is_return())
                .map(|(f, at)| (*at, from_minor(f.amount)))
                .collect();
            let (converted, revenue) = attribute(
                Some(&purchases),
                m.holdout,
                sent_at.get(m.customer_id.as_str()).copied().flatten(),
                started_at,
                window,
            );
            let prediction = m.prediction.and_then(|(p_alive, clv, run_as_of)| {
                NaiveDate::parse_from_str(&run_as_of, "%Y-%m-%d")
                    .ok()
                    .filter(|d| *d <= as_of)
                    .map(|_| Prediction {
                        customer_id: m.customer_id.clone(),
                        p_alive,
                        expected_purchases_90d: f64::NAN,
                        clv: clv.unwrap_or(f64::NAN),
                    })
            });
            out.push(TrainingRow {
                campaign: c.campaign_id.clone(),
                goal: c.goal.clone(),
                customer_id: m.customer_id,
                treated: !m.holdout,
                features,
                prediction,
                attributes: m.attributes,
                converted,
                revenue,
            });
        }
    }
    Ok(out)
}

/// The feature schema for `rows` and their examples.
pub fn examples_of(rows: &[TrainingRow], schema: &Schema) -> Vec<Example> {
    rows.iter()
        .map(|r| Example {
            campaign: r.campaign.clone(),
            treated: r.treated,
            features: schema.vector(
                r.features.as_ref(),
                r.prediction.as_ref(),
                Some(&r.attributes),
            ),
            converted: r.converted,
            revenue: r.revenue,
        })
        .collect()
}

/// What fitting one goal gave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoalFit {
    pub goal: String,
    pub learner: &'static str,
    pub seed: u64,
    pub campaigns: usize,
    pub members: usize,
    pub treated: usize,
    pub control: usize,
    /// Measured on campaigns left out of the fit (None: fewer than two campaigns).
    pub evaluation: Option<Evaluation>,
    /// Whether a model was stored.
    pub stored: bool,
    /// Why the goal has no evaluation or no model.
    pub note: Option<String>,
}

/// Fits, evaluates and stores a model per goal (`goal`, or every goal with usable campaigns).
/// A goal whose data cannot be fitted (one arm too small) is reported with a note, not stored.
pub async fn fit_goals(
    store: &Store,
    goal: Option<&str>,
    options: &FitOptions,
    progress: impl FnMut(&str, usize),
) -> Result<Vec<GoalFit>, ResultsError> {
    let rows = training_rows(store, goal, progress).await?;
    let mut by_goal: BTreeMap<String, Vec<TrainingRow>> = BTreeMap::new();
    for r in rows {
        by_goal.entry(r.goal.clone()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (goal, rows) in by_goal {
        let schema = Schema::from_attributes(rows.iter().map(|r| &r.attributes), ATTRIBUTE_SHARE);
        let examples = examples_of(&rows, &schema);
        let campaigns: BTreeSet<&str> = rows.iter().map(|r| r.campaign.as_str()).collect();
        let treated = rows.iter().filter(|r| r.treated).count();
        let mut summary = GoalFit {
            goal: goal.clone(),
            learner: options.learner.as_str(),
            seed: options.seed,
            campaigns: campaigns.len(),
            members: rows.len(),
            treated,
            control: rows.len() - treated,
            evaluation: None,
            stored: false,
            note: None,
        };
        let mut notes = Vec::new();
        match split_by_campaign(examples.clone(), HELD_OUT_SHARE, options.seed) {
            Ok((train, held)) => match fit(&train, &schema, options) {
                Ok(m) => summary.evaluation = Some(evaluate(&m, &held).compact(CURVE_POINTS)),
                Err(e) => notes.push(format!("not evaluated: {e}")),
            },
            Err(e) => notes.push(format!("not evaluated: {e}")),
        }
        match fit(&examples, &schema, options) {
            Ok(model) => {
                store
                    .save_uplift_model(&UpliftModelRecord {
                        goal: goal.clone(),
                        learner: options.learner.as_str().to_string(),
                        seed: options.seed,
                        examples: examples.len() as i64,
                        campaigns: campaigns.len() as i64,
                        evaluation: summary
                            .evaluation
                            .as_ref()
                            .and_then(|e| serde_json::to_string(e).ok()),
                        model: serde_json::to_string(&model)
                            .map_err(|e| ResultsError::Model(e.to_string()))?,
                        fitted_at: chrono::Utc::now().timestamp(),
                    })
                    .await?;
                summary.stored = true;
            }
            Err(e) => notes.push(format!("no model stored: {e}")),
        }
        if !notes.is_empty() {
            summary.note = Some(notes.join("; "));
        }
        out.push(summary);
    }
    Ok(out)
}

/// A stored model, parsed.
#[derive(Debug, Clone)]
pub struct StoredModel {
    pub goal: String,
    pub learner: String,
    pub seed: u64,
    pub examples: i64,
    pub campaigns: i64,
    pub fitted_at: i64,
    /// The evaluation made when it was fitted (JSON of [`Evaluation`]).
    pub evaluation: Option<serde_json::Value>,
    pub model: UpliftModel,
}

/// Every stored model, by goal. A model that no longer parses is an error naming its goal.
pub async fn stored_models(store: &Store) -> Result<Vec<StoredModel>, ResultsError> {
    store
        .uplift_models()
        .await?
        .into_iter()
        .map(|r| {
            let model: UpliftModel = serde_json::from_str(&r.model)
                .map_err(|e| ResultsError::Model(format!("goal {}: {e}", r.goal)))?;
            Ok(StoredModel {
                evaluation: r
                    .evaluation
                    .as_deref()
                    .and_then(|e| serde_json::from_str(e).ok()),
                goal: r.goal,
                learner: r.learner,
                seed: r.seed,
                examples: r.examples,
                campaigns: r.campaigns,
                fitted_at: r.fitted_at,
                model,
            })
        })
        .collect()
}

/// One goal's evaluation report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoalEvaluation {
    pub goal: String,
    pub learner: String,
    pub fitted_at: i64,
    /// Made at fit time on the campaigns left out of the fit.
    pub at_fit: Option<serde_json::Value>,
    /// On the campaigns sent since the model was fitted (None: there are none).
    pub since_fit: Option<Evaluation>,
}

/// The stored models' evaluations, and each measured again on campaigns it was not fitted on.
pub async fn evaluate_goals(
    store: &Store,
    goal: Option<&str>,
) -> Result<Vec<GoalEvaluation>, ResultsError> {
    let mut out = Vec::new();
    for m in stored_models(store).await? {
        if goal.is_some_and(|g| g != m.goal) {
            continue;
        }
        let fitted: BTreeSet<&str> = m.model.campaigns.iter().map(String::as_str).collect();
        let rows: Vec<TrainingRow> = training_rows(store, Some(&m.goal), |_, _| {})
            .await?
            .into_iter()
            .filter(|r| !fitted.contains(r.campaign.as_str()))
            .collect();
        let since_fit = (!rows.is_empty()).then(|| {
            let examples = examples_of(&rows, &m.model.schema);
            evaluate(&m.model, &examples).compact(CURVE_POINTS)
        });
        out.push(GoalEvaluation {
            goal: m.goal,
            learner: m.learner,
            fitted_at: m.fitted_at,
            at_fit: m.evaluation,
            since_fit,
        });
    }
    Ok(out)
}
