//! One planning run: exclusions, eligibility, grouping, optimisation, holdouts, explanations —
//! producing the serialisable [`Plan`].
//!
//! Customer groups are segment × the set of goals a customer is eligible for, so one goal per
//! group still lets a high-value slice of a segment get a different goal than the rest. Every
//! selected customer is in exactly one campaign. The holdout is part of each (campaign, segment)
//! stratum: the optimiser selects members as if all were mailed and the budget it works with is
//! `budget / (1 − holdout)`; the holdout (`ceil(fraction × stratum)`) is then drawn at random
//! from the selection, so the mailed spend never exceeds the budget.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;
use serde::Serialize;

use crate::balance::{balance, Balance};
use crate::error::PlanError;
use crate::expr::Compiled;
use crate::goals::{Approval, Goal, Step, ValueBasis};
use crate::holdout::{self, PowerEstimate, DEFAULT_BASELINE_RATE};
use crate::input::{Candidate, ConsentPolicy, ExclusionReason, PlanOptions};
use crate::optimise::{self, Curve, GoalSpec, OptionSpec, Problem};
use crate::variants::{self, VariantPower};

/// Most goals one plan can weigh (eligibility is kept as a 64-bit set).
pub const MAX_GOALS: usize = 64;

/// A planned campaign: one goal, the segments it reaches, who gets it and who is held out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    /// `<goal>-<n>`, unique within the plan.
    pub campaign_id: String,
    pub goal: String,
    pub goal_name: String,
    pub segments: Vec<String>,
    pub template: String,
    /// Customer ids to mail.
    pub audience: Vec<String>,
    /// Customer ids held out as the control group.
    pub holdout: Vec<String>,
    /// Σ over the audience of (response rate × value − cost).
    pub expected_value: f64,
    /// Audience × cost per recipient.
    pub cost: f64,
    pub response_rate: f64,
    /// `prior` (from the goals file) or `observed` (from past campaigns).
    pub response_source: String,
    pub window_days: u32,
    pub power: PowerEstimate,
    pub rationale: Rationale,
    /// A/B variants with their recipients (empty: no test; every recipient gets `template`).
    pub variants: Vec<CampaignVariant>,
    /// The variant test's sample size and power, fixed now.
    pub variant_power: Option<VariantPower>,
    /// Tested on a share first: the recipients of the `rest` variant
    /// ([`variants::REST_VARIANT`]) wait for the winner.
    pub share_test: Option<crate::goals::ShareTest>,
    /// Follow-up steps to the recipients (never the holdout).
    pub steps: Vec<Step>,
    /// What approving the plan approves of the steps.
    pub approve: Approval,
}

/// One variant of a campaign and the recipients drawn for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignVariant {
    pub id: String,
    pub template: String,
    /// Customer ids, a subset of the campaign's audience.
    pub recipients: Vec<String>,
}

/// Why a campaign looks the way it does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rationale {
    pub summary: String,
    /// One part per customer group the campaign reaches.
    pub parts: Vec<RationalePart>,
}

/// The score of one customer group under the campaign's goal, and what it was weighed against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RationalePart {
    pub segment: String,
    /// Every goal the group's customers are eligible for.
    pub eligible_goals: Vec<String>,
    /// The goal's eligibility rule, as written.
    pub rule: String,
    /// Customers in the group.
    pub customers: usize,
    /// Of those, customers worth more than they cost under this goal.
    pub positive_value: usize,
    pub selected: usize,
    pub audience: usize,
    pub holdout: usize,
    pub response_rate: f64,
    pub value_basis: ValueBasis,
    /// Mean value (CLV or average order value) of the audience.
    pub mean_value: f64,
    pub cost_per_recipient: f64,
    /// audience × response_rate × mean_value − audience × cost_per_recipient.
    pub expected_value: f64,
    pub alternatives: Vec<AlternativeScore>,
    pub text: String,
}

/// Another goal the group could have had.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlternativeScore {
    pub goal: String,
    /// The alternative on its own: all its positive-value members of the group selected, no
    /// budget, the holdout share not mailed.
    pub standalone_value: Option<f64>,
    /// Change of the plan's expected value had the group taken it (None: it had no
    /// positive-value member).
    pub plan_delta: Option<f64>,
}

/// Customers of a segment left without a campaign, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unassigned {
    pub segment: String,
    pub reason: UnassignedReason,
    pub customers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnassignedReason {
    /// No goal's rule matches them.
    NoEligibleGoal,
    /// Eligible, but expected value ≤ cost under every goal they qualify for.
    NoPositiveValue,
    /// Worth targeting, but the budget ran out.
    Budget,
    /// Worth targeting, but the goal's audience cap was reached.
    AudienceCap,
}

impl UnassignedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoEligibleGoal => "no_eligible_goal",
            Self::NoPositiveValue => "no_positive_value",
            Self::Budget => "budget",
            Self::AudienceCap => "audience_cap",
        }
    }
}

/// Money available and spent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BudgetUse {
    pub total: f64,
    pub used: f64,
}

/// How the optimiser fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimiserReport {
    /// The goal assignment is optimal (the search finished).
    pub proven_optimal: bool,
    pub nodes: usize,
    /// Proven upper bound on the (relaxed) expected value of any plan on this budget.
    pub upper_bound: f64,
}

/// The result of a planning run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub campaigns: Vec<Campaign>,
    /// Customers left out before matching, by reason.
    pub excluded: BTreeMap<String, usize>,
    pub unassigned: Vec<Unassigned>,
    pub budget: BudgetUse,
    pub balance: Balance,
    /// Σ of the campaigns' expected values.
    pub expected_value: f64,
    pub holdout_fraction: f64,
    pub seed: u64,
    /// Customers handed to the planner.
    pub customers: usize,
    pub optimiser: OptimiserReport,
    pub warnings: Vec<String>,
    /// Set when the plan has no campaign: why.
    pub empty_reason: Option<String>,
}

/// What grouping sorts: an eligible customer's group key and values.
#[derive(Debug, Clone, Copy)]
struct Key {
    index: u32,
    segment: u32,
    mask: u64,
    clv: f64,
    aov: f64,
}

/// Per-candidate values the campaign assembly reads, dense by candidate index.
#[derive(Debug, Clone, Copy, Default)]
struct Dense {
    clv: f64,
    aov: f64,
    /// Predicted purchases in 90 days, NaN without a prediction.
    ep90: f64,
    clv_fallback: bool,
    unknown_consent: bool,
}

/// Segment id of excluded customers in the grouping sort.
const EXCLUDED: u32 = u32::MAX;

struct Group {
    segment: u32,
    /// Members by decreasing CLV value, then by decreasing average order value.
    by_clv: Vec<u32>,
    by_aov: Vec<u32>,
    clv: Curve,
    aov: Curve,
    /// Goal index of each option, in option order.
    options: Vec<usize>,
    /// For goals ranked by predicted uplift: (goal index, members by decreasing
    /// uplift × value, those values).
    by_uplift: Vec<(usize, Vec<u32>, Curve)>,
}

/// Plans campaigns for `candidates` from `goals` under `options`.
///
/// A budget that covers nobody, no eligible customer or no goal worth its cost yields an empty
/// plan with `empty_reason` set, not an error. Errors are invalid options only.
pub fn plan(
    goals: &[Goal],
    candidates: &[Candidate<'_>],
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    options.validate()?;
    if goals.len() > MAX_GOALS {
        return Err(PlanError::Rule {
            goal: goals[MAX_GOALS].id.clone(),
            message: format!("a plan can weigh at most {MAX_GOALS} goals"),
        });
    }
    let mut warnings = Vec::new();
    let f = options.holdout_fraction;

    for goal in options.observed_rates.keys() {
        if !goals.iter().any(|g| &g.id == goal) {
            warnings.push(format!(
                "observed response rate for unknown goal `{goal}` ignored"
            ));
        }
    }
    let rates: Vec<(f64, &'static str)> = goals
        .iter()
        .map(|g| match options.observed_rates.get(&g.id) {
            Some(&r) => (r, "observed"),
            None => (g.response_prior, "prior"),
        })
        .collect();
    // Goals ranked by predicted uplift instead of a response rate.
    for (goal, u) in &options.uplift {
        if u.len() != candidates.len() {
            return Err(PlanError::UpliftLength {
                goal: goal.clone(),
                expected: candidates.len(),
                found: u.len(),
            });
        }
        if !goals.iter().any(|g| &g.id == goal) {
            warnings.push(format!(
                "predicted uplift for unknown goal `{goal}` ignored"
            ));
        }
    }
    let uplift_of: Vec<Option<&[f64]>> = goals
        .iter()
        .map(|g| options.uplift.get(&g.id).map(Vec::as_slice))
        .collect();

    // Exclusions.
    let reasons: Vec<Option<ExclusionReason>> = candidates
        .par_iter()
        .map(|c| ExclusionReason::of(c, options))
        .collect();
    let mut excluded: BTreeMap<String, usize> = BTreeMap::new();
    for r in reasons.iter().flatten() {
        *excluded.entry(r.as_str().to_string()).or_default() += 1;
    }

    // Segments: interned in name order so ids (and everything after) do not depend on input order.
    let mut names: Vec<&str> = {
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        candidates
            .iter()
            .map(|c| c.segment)
            .filter(|s| seen.insert(s))
            .collect()
    };
    names.sort_unstable();
    let seg_id: HashMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, i as u32))
        .collect();
    let lookup = |s: &str| seg_id.get(s).copied();
    let compiled: Vec<Compiled> = goals
        .iter()
        .map(|g| Compiled::new(&g.rule, &lookup))
        .collect();

    // Values of every customer (dense by input position), in parallel.
    let dense: Vec<Dense> = candidates
        .par_iter()
        .map(|c| {
            let aov = finite_or_zero(c.features.avg_order_value);
            let prediction = c.prediction;
            let (clv, clv_fallback) = match prediction.map(|p| p.clv).filter(|v| v.is_finite()) {
                Some(v) => (v, false),
                None => (aov, true),
            };
            let ep90 = prediction
                .map(|p| p.expected_purchases_90d)
                .filter(|x| x.is_finite() && *x >= 0.0)
                .unwrap_or(f64::NAN);
            Dense {
                clv,
                aov,
                ep90,
                clv_fallback,
                unknown_consent: c.customer.subscribed.is_none(),
            }
        })
        .collect();

    // Eligibility of every customer for every goal, in parallel. Excluded customers get a
    // segment no real one has, so they sort last and are cut off.
    let now = options.now;
    let segment_of = |name: &str| -> u32 {
        if names.len() <= 32 {
            names
                .iter()
                .position(|n| *n == name)
                .map_or(EXCLUDED, |i| i as u32)
        } else {
            seg_id.get(name).copied().unwrap_or(EXCLUDED)
        }
    };
    let mut keyed: Vec<Key> = candidates
        .par_iter()
        .enumerate()
        .map(|(i, c)| {
            let d = &dense[i];
            if reasons[i].is_some() {
                return Key {
                    index: i as u32,
                    segment: EXCLUDED,
                    mask: 0,
                    clv: d.clv,
                    aov: d.aov,
                };
            }
            let segment = segment_of(c.segment);
            let row = c.row(now, segment);
            let mut mask = 0u64;
            for (j, rule) in compiled.iter().enumerate() {
                if rule.matches(&row) {
                    mask |= 1 << j;
                }
            }
            Key {
                index: i as u32,
                segment,
                mask,
                clv: d.clv,
                aov: d.aov,
            }
        })
        .collect();
    keyed.par_sort_unstable_by(|a, b| {
        (a.segment, a.mask)
            .cmp(&(b.segment, b.mask))
            .then(b.clv.total_cmp(&a.clv))
            .then(a.index.cmp(&b.index))
    });
    keyed.truncate(keyed.partition_point(|k| k.segment != EXCLUDED));

    let uses_clv = goals.iter().any(|g| g.value == ValueBasis::Clv);
    let fallbacks = keyed
        .iter()
        .filter(|k| k.mask != 0 && dense[k.index as usize].clv_fallback)
        .count();
    if uses_clv && fallbacks > 0 {
        warnings.push(format!(
            "{fallbacks} eligible customers have no CLV prediction; their average order value stands in for CLV"
        ));
    }

    // Groups: segment × eligibility set; customers eligible for nothing are counted aside.
    let mut unassigned: BTreeMap<(u32, UnassignedReason), usize> = BTreeMap::new();
    let mut bounds = Vec::new();
    let mut start = 0;
    for i in 1..=keyed.len() {
        if i == keyed.len()
            || (keyed[i].segment, keyed[i].mask) != (keyed[start].segment, keyed[start].mask)
        {
            if keyed[start].mask == 0 {
                *unassigned
                    .entry((keyed[start].segment, UnassignedReason::NoEligibleGoal))
                    .or_default() += i - start;
            } else {
                bounds.push(start..i);
            }
            start = i;
        }
    }
    let groups: Vec<Group> = bounds
        .into_par_iter()
        .map(|range| {
            let members = &keyed[range];
            let mask = members[0].mask;
            let options: Vec<usize> = (0..goals.len()).filter(|j| mask & (1 << j) != 0).collect();
            let by_clv: Vec<u32> = members.iter().map(|e| e.index).collect();
            let clv = Curve::from_sorted(members.iter().map(|e| e.clv).collect());
            let needs_aov = options
                .iter()
                .any(|&j| goals[j].value == ValueBasis::AvgOrderValue);
            let (by_aov, aov) = if needs_aov {
                let mut m: Vec<&Key> = members.iter().collect();
                m.sort_unstable_by(|a, b| b.aov.total_cmp(&a.aov).then(a.index.cmp(&b.index)));
                (
                    m.iter().map(|e| e.index).collect(),
                    Curve::from_sorted(m.iter().map(|e| e.aov).collect()),
                )
            } else {
                (Vec::new(), Curve::from_sorted(Vec::new()))
            };
            let by_uplift = options
                .iter()
                .filter_map(|&j| {
                    let u = uplift_of[j]?;
                    let mut m: Vec<(f64, u32)> = members
                        .iter()
                        .map(|e| {
                            let v = match goals[j].value {
                                ValueBasis::Clv => e.clv,
                                ValueBasis::AvgOrderValue => e.aov,
                            };
                            (
                                finite_or_zero(finite_or_zero(u[e.index as usize]) * v),
                                e.index,
                            )
                        })
                        .collect();
                    m.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    Some((
                        j,
                        m.iter().map(|e| e.1).collect(),
                        Curve::from_sorted(m.iter().map(|e| e.0).collect()),
                    ))
                })
                .collect();
            Group {
                segment: members[0].segment,
                by_clv,
                by_aov,
                clv,
                aov,
                options,
                by_uplift,
            }
        })
        .collect();

    // The optimisation problem, in selection units.
    let specs: Vec<GoalSpec> = goals
        .iter()
        .zip(&rates)
        .zip(&uplift_of)
        .map(|((g, &(rate, _)), u)| GoalSpec {
            // Under uplift the members' values already carry their own effect.
            rate: if u.is_some() { 1.0 } else { rate },
            cost: g.cost_per_recipient,
            cap: g
                .audience_cap
                .map(|c| (c as f64 / (1.0 - f) + 1e-9).floor() as u64),
            priority: g.priority,
        })
        .collect();
    let problem = Problem {
        goals: &specs,
        groups: groups
            .iter()
            .map(|g| {
                g.options
                    .iter()
                    .map(|&j| OptionSpec {
                        goal: j,
                        curve: g.curve_for(j, goals[j].value),
                    })
                    .collect()
            })
            .collect(),
        // Finite even for a budget of f64::MAX ("unlimited").
        budget: (options.budget / (1.0 - f)).min(f64::MAX),
    };
    let solution = optimise::solve(&problem);
    if !solution.proven {
        warnings.push(format!(
            "the goal assignment search stopped after {} nodes; the plan may be up to {:.2} below the best",
            solution.nodes,
            (solution.upper_bound - solution.relaxed_value).max(0.0) * (1.0 - f)
        ));
    }

    // Unassigned counts for every group.
    for (gi, g) in groups.iter().enumerate() {
        let size = g.by_clv.len();
        match solution.chosen[gi] {
            None => {
                *unassigned
                    .entry((g.segment, UnassignedReason::NoPositiveValue))
                    .or_default() += size;
            }
            Some(o) => {
                let positive = solution.positive[gi][o];
                let selected = solution.selected[gi];
                if size > positive {
                    *unassigned
                        .entry((g.segment, UnassignedReason::NoPositiveValue))
                        .or_default() += size - positive;
                }
                if positive > selected {
                    // Selections stop at a goal's cap only when the whole goal reached it.
                    let j = g.options[o];
                    let goal_selected: usize = (0..groups.len())
                        .filter(|&h| {
                            solution.chosen[h].is_some_and(|oo| groups[h].options[oo] == j)
                        })
                        .map(|h| solution.selected[h])
                        .sum();
                    let capped = specs[j].cap.is_some_and(|c| goal_selected as u64 >= c);
                    let reason = if capped {
                        UnassignedReason::AudienceCap
                    } else {
                        UnassignedReason::Budget
                    };
                    *unassigned.entry((g.segment, reason)).or_default() += positive - selected;
                }
            }
        }
    }

    // Campaigns: one per goal that selected anyone, strata per segment.
    let mut campaigns = Vec::new();
    let mut unknown_consent = 0usize;
    // Mailed members (campaigns are disjoint, so one flag per candidate serves them all).
    let mut mailed = vec![false; candidates.len()];
    let mut underpowered = Vec::new();
    // Goals in order; a campaign too small to keep a holdout comes back at the end without one
    // (`true`), when the budget still covers mailing all of it.
    let mut queue: std::collections::VecDeque<(usize, bool)> =
        (0..goals.len()).map(|j| (j, false)).collect();
    let mut spent = 0.0;
    let mut no_holdout_notes = Vec::new();
    while let Some((j, without_holdout)) = queue.pop_front() {
        let goal = &goals[j];
        let chosen: Vec<usize> = (0..groups.len())
            .filter(|&h| {
                solution.selected[h] > 0
                    && solution.chosen[h].is_some_and(|o| groups[h].options[o] == j)
            })
            .collect();
        if chosen.is_empty() {
            continue;
        }
        let campaign_id = format!("{}-1", goal.id);
        let (prior_rate, prior_source) = rates[j];
        let uplift = uplift_of[j];
        let source = if uplift.is_some() {
            "uplift"
        } else {
            prior_source
        };
        // A member's response rate: the goal's, or their own predicted uplift.
        let rate_of = |i: u32| -> f64 {
            match uplift {
                Some(u) => finite_or_zero(u[i as usize]),
                None => prior_rate,
            }
        };
        let basis = goal.value;
        // Strata by segment (in segment-name order).
        let mut strata: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &h in &chosen {
            let g = &groups[h];
            let order = g.order_for(j, basis);
            strata
                .entry(g.segment)
                .or_default()
                .extend_from_slice(&order[..solution.selected[h]]);
        }
        let mut audience_idx: Vec<u32> = Vec::new();
        let mut holdout_idx: Vec<u32> = Vec::new();
        // Variant of each audience member, stratified like the holdout.
        let k = goal.variants.len();
        let mut variant_idx: Vec<Vec<u32>> = vec![Vec::new(); k];
        // Tested on a share: the rest of each stratum's audience waits for the winner.
        let mut rest_idx: Vec<u32> = Vec::new();
        let mut segments = Vec::new();
        let mut stratum_sizes = Vec::new();
        for (seg, mut members) in strata {
            members.sort_unstable();
            let seed = holdout::stratum_seed(options.seed, &campaign_id, names[seg as usize]);
            let (a, h) = if without_holdout {
                (members.clone(), Vec::new())
            } else {
                holdout::split(&members, f, seed)
            };
            if k >= 2 {
                let vseed = holdout::stratum_seed(
                    options.seed ^ 0x5641_5249_414e_5453,
                    &campaign_id,
                    names[seg as usize],
                );
                let (tested, rest) = match &goal.share_test {
                    Some(t) => variants::share_split(&a, t.share, vseed ^ 0x5245_5354),
                    None => (a.clone(), Vec::new()),
                };
                for (&i, v) in tested.iter().zip(variants::split(tested.len(), k, vseed)) {
                    variant_idx[usize::from(v)].push(i);
                }
                rest_idx.extend(rest);
            }
            audience_idx.extend(a);
            holdout_idx.extend(h);
            segments.push(names[seg as usize].to_string());
            stratum_sizes.push((seg, members.len()));
        }
        if audience_idx.is_empty() {
            // Too few selected to mail anyone once the holdout is kept (one per segment): mail
            // them all without a holdout, after the other campaigns, if the budget allows.
            queue.push_back((j, true));
            continue;
        }
        let all_cost = goal.cost_per_recipient * audience_idx.len() as f64;
        if without_holdout && spent + all_cost > options.budget {
            for (seg, n) in stratum_sizes {
                *unassigned
                    .entry((seg, UnassignedReason::Budget))
                    .or_default() += n;
            }
            continue;
        }
        spent += all_cost;
        if without_holdout {
            no_holdout_notes.push(format!(
                "campaign {campaign_id}: only {} selected, too few for a holdout (a segment needs at least 2 selected to keep one): all are mailed, with no control group, so its uplift cannot be measured",
                audience_idx.len()
            ));
        }
        for &i in &audience_idx {
            mailed[i as usize] = true;
        }
        let value_of = |i: u32| -> f64 {
            let d = &dense[i as usize];
            match basis {
                ValueBasis::AvgOrderValue => d.aov,
                ValueBasis::Clv => d.clv,
            }
        };
        let cost_per = goal.cost_per_recipient;
        let expected_value: f64 = audience_idx
            .iter()
            .map(|&i| rate_of(i) * value_of(i) - cost_per)
            .sum();
        // The campaign's rate: the goal's, or the audience's mean predicted uplift.
        let rate = match uplift {
            Some(_) if !audience_idx.is_empty() => {
                audience_idx.iter().map(|&i| rate_of(i)).sum::<f64>() / audience_idx.len() as f64
            }
            _ => prior_rate,
        };
        let cost = cost_per * audience_idx.len() as f64;
        if options.consent == ConsentPolicy::AllowUnknown {
            unknown_consent += audience_idx
                .iter()
                .filter(|&&i| dense[i as usize].unknown_consent)
                .count();
        }

        // Rationale parts, one per group.
        let mut parts = Vec::new();
        for &h in &chosen {
            let g = &groups[h];
            let Some(o) = solution.chosen[h] else {
                continue;
            };
            let order = g.order_for(j, basis);
            let sel = &order[..solution.selected[h]];
            let aud: Vec<u32> = sel
                .iter()
                .copied()
                .filter(|&i| mailed[i as usize])
                .collect();
            let n_aud = aud.len();
            let mean_value = if n_aud == 0 {
                0.0
            } else {
                aud.iter().map(|&i| value_of(i)).sum::<f64>() / n_aud as f64
            };
            let part_ev: f64 = aud
                .iter()
                .map(|&i| rate_of(i) * value_of(i) - cost_per)
                .sum();
            let rate = if uplift.is_some() && n_aud > 0 {
                aud.iter().map(|&i| rate_of(i)).sum::<f64>() / n_aud as f64
            } else {
                rate
            };
            let alternatives: Vec<AlternativeScore> = solution.alternatives[h]
                .iter()
                .map(|a| {
                    let has = solution.positive[h][a.option] > 0;
                    AlternativeScore {
                        goal: goals[g.options[a.option]].id.clone(),
                        standalone_value: has.then_some(a.standalone_value * (1.0 - f)),
                        plan_delta: (has && a.plan_delta.is_finite())
                            .then_some(a.plan_delta * (1.0 - f)),
                    }
                })
                .collect();
            let seg_name = names[g.segment as usize].to_string();
            let eligible_goals: Vec<String> =
                g.options.iter().map(|&jj| goals[jj].id.clone()).collect();
            let selected = solution.selected[h];
            let below = g.by_clv.len() - solution.positive[h][o];
            let over = solution.positive[h][o] - selected;
            let mut text = format!(
                "{} \"{seg_name}\" customers eligible by `{}`; {n_aud} mailed, {} held out{}: {} × {mean_value:.2} ({}) − {n_aud} × {cost_per:.4} = {part_ev:.2}",
                g.by_clv.len(),
                goal.rule_text.trim(),
                selected - n_aud,
                match (below, over) {
                    (0, 0) => String::new(),
                    (b, 0) => format!(", {b} worth less than the cost"),
                    (0, v) => format!(", {v} over the budget or cap"),
                    (b, v) => format!(", {b} worth less than the cost, {v} over the budget or cap"),
                },
                if uplift.is_some() {
                    format!("Σ own predicted uplift (mean {rate:.4}) × value, about {n_aud} × {rate:.4}")
                } else {
                    format!("{n_aud} × {rate:.4} ({source})")
                },
                basis.as_str(),
            );
            if alternatives.is_empty() {
                text.push_str("; no other goal applies");
            } else {
                for a in &alternatives {
                    match (a.standalone_value, a.plan_delta) {
                        (Some(sv), Some(d)) => text.push_str(&format!(
                            "; `{}` lost: alone worth {:.2}, the plan would change by {:.2}",
                            a.goal, sv, d
                        )),
                        _ => text
                            .push_str(&format!("; `{}` lost: no customer worth its cost", a.goal)),
                    }
                }
            }
            parts.push(RationalePart {
                segment: seg_name,
                eligible_goals,
                rule: goal.rule_text.trim().to_string(),
                customers: g.by_clv.len(),
                positive_value: solution.positive[h][o],
                selected: solution.selected[h],
                audience: n_aud,
                holdout: solution.selected[h] - n_aud,
                response_rate: rate,
                value_basis: basis,
                mean_value,
                cost_per_recipient: cost_per,
                expected_value: part_ev,
                alternatives,
                text,
            });
        }

        let baseline = goal
            .baseline_rate
            .unwrap_or_else(|| baseline_from_predictions(&dense, &audience_idx, goal));
        let power = holdout::estimate(baseline, rate, audience_idx.len(), holdout_idx.len());
        if !power.adequate && !holdout_idx.is_empty() {
            underpowered.push(format!(
                "campaign {campaign_id}: a holdout of {} cannot reliably detect the expected {:.2}-point uplift (power {:.2} < 0.80){}",
                holdout_idx.len(),
                rate * 100.0,
                power.power,
                match power.required_holdout_fraction {
                    Some(need) => format!("; a holdout fraction of {need:.2} would"),
                    None => "; the campaign is too small to measure it at any holdout up to 0.5".into(),
                }
            ));
        }
        let variant_power = (k >= 2).then(|| {
            let smallest = variant_idx.iter().map(Vec::len).min().unwrap_or(0);
            let min_difference = goal.min_difference.unwrap_or(rate / 2.0);
            let vp = variants::power(k, smallest, baseline + rate, min_difference);
            if !vp.adequate {
                underpowered.push(format!(
                    "campaign {campaign_id}: {k} variants of {smallest} recipients cannot reliably detect a {:.2}-point difference (power {:.2} < 0.80){}",
                    min_difference * 100.0,
                    vp.power,
                    match vp.required_per_variant {
                        Some(n) => format!("; it needs {n} recipients per variant"),
                        None => String::new(),
                    }
                ));
            }
            vp
        });
        let mut campaign_variants: Vec<CampaignVariant> = goal
            .variants
            .iter()
            .zip(&variant_idx)
            .filter(|_| k >= 2)
            .map(|(v, idx)| {
                let mut idx = idx.clone();
                idx.sort_unstable();
                CampaignVariant {
                    id: v.id.clone(),
                    template: v.template.clone(),
                    recipients: ids_of(candidates, &idx),
                }
            })
            .collect();
        let share_test = goal.share_test.clone().filter(|_| k >= 2);
        if let Some(t) = &share_test {
            rest_idx.sort_unstable();
            let template = goal
                .variants
                .iter()
                .find(|v| v.id == t.default_variant)
                .map_or_else(|| goal.template.clone(), |v| v.template.clone());
            campaign_variants.push(CampaignVariant {
                id: variants::REST_VARIANT.to_string(),
                template,
                recipients: ids_of(candidates, &rest_idx),
            });
        }
        let summary = format!(
            "{} to {} customers in {} ({} held out): expected incremental value {:.2} for {:.2}",
            goal.name,
            audience_idx.len(),
            segments.join(", "),
            holdout_idx.len(),
            expected_value,
            cost
        );
        campaigns.push(Campaign {
            campaign_id,
            goal: goal.id.clone(),
            goal_name: goal.name.clone(),
            segments,
            template: goal.template.clone(),
            audience: ids_of(candidates, &audience_idx),
            holdout: ids_of(candidates, &holdout_idx),
            expected_value,
            cost,
            response_rate: rate,
            response_source: source.to_string(),
            window_days: goal.window_days,
            power,
            rationale: Rationale { summary, parts },
            variants: campaign_variants,
            variant_power,
            share_test,
            steps: goal.steps.clone(),
            approve: goal.approve,
        });
    }
    campaigns.sort_by(|a, b| {
        b.expected_value
            .total_cmp(&a.expected_value)
            .then(a.goal.cmp(&b.goal))
    });
    warnings.extend(underpowered);
    warnings.extend(no_holdout_notes);
    if f == 0.0 && !campaigns.is_empty() {
        warnings.push(
            "holdout 0: every selected customer is mailed and no control group is kept, so no campaign of this plan can measure its uplift".into(),
        );
    }
    let plannable = reasons.iter().filter(|r| r.is_none()).count();
    if let Some(note) = small_shop_note(plannable, goals, &rates, f) {
        warnings.push(note);
    }
    if unknown_consent > 0 {
        warnings.push(format!(
            "{unknown_consent} recipients have no recorded consent; they are mailed as existing customers (soft opt-in)"
        ));
    }

    // `+ 0.0`: the sum of nothing is -0.0 in IEEE arithmetic, which prints as "-0.00".
    let used: f64 = campaigns.iter().map(|c| c.cost).sum::<f64>() + 0.0;
    let expected_value: f64 = campaigns.iter().map(|c| c.expected_value).sum::<f64>() + 0.0;
    let (balance, balance_warnings) = balance(options.stage, options.marketing_budget, used);
    warnings.extend(balance_warnings);

    let empty_reason = campaigns.is_empty().then(|| {
        empty_reason(
            goals,
            candidates.len(),
            &reasons,
            &groups,
            &solution,
            &specs,
            options.budget,
        )
    });
    let unassigned = unassigned
        .into_iter()
        .map(|((seg, reason), customers)| Unassigned {
            segment: names[seg as usize].to_string(),
            reason,
            customers,
        })
        .collect();

    Ok(Plan {
        campaigns,
        excluded,
        unassigned,
        budget: BudgetUse {
            total: options.budget,
            used,
        },
        balance,
        expected_value,
        holdout_fraction: f,
        seed: options.seed,
        customers: candidates.len(),
        optimiser: OptimiserReport {
            proven_optimal: solution.proven,
            nodes: solution.nodes,
            upper_bound: solution.upper_bound * (1.0 - f),
        },
        warnings,
        empty_reason,
    })
}

/// Customer ids of the candidates at `indices` (in parallel: a million clones add up).
fn ids_of(candidates: &[Candidate<'_>], indices: &[u32]) -> Vec<String> {
    indices
        .par_iter()
        .map(|&i| candidates[i as usize].customer.id.clone())
        .collect()
}

impl Group {
    /// The members' values under goal `j` (value basis `basis`).
    fn curve_for(&self, j: usize, basis: ValueBasis) -> &Curve {
        if let Some((_, _, c)) = self.by_uplift.iter().find(|(g, _, _)| *g == j) {
            return c;
        }
        match basis {
            ValueBasis::Clv => &self.clv,
            ValueBasis::AvgOrderValue => &self.aov,
        }
    }

    /// The members in the order goal `j` selects them.
    fn order_for(&self, j: usize, basis: ValueBasis) -> &[u32] {
        if let Some((_, o, _)) = self.by_uplift.iter().find(|(g, _, _)| *g == j) {
            return o;
        }
        match basis {
            ValueBasis::Clv => &self.by_clv,
            ValueBasis::AvgOrderValue => &self.by_aov,
        }
    }
}

fn finite_or_zero(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// Mean chance of a purchase within the goal's window without the email, from the predictions of
/// the audience (`1 − exp(−expected purchases in the window)`), or the default rate.
fn baseline_from_predictions(dense: &[Dense], audience: &[u32], goal: &Goal) -> f64 {
    let scale = f64::from(goal.window_days) / 90.0;
    let (sum, n) = audience
        .iter()
        .map(|&i| dense[i as usize].ep90)
        .filter(|x| !x.is_nan())
        .fold((0.0, 0usize), |(s, n), x| {
            (s + (1.0 - (-x * scale).exp()), n + 1)
        });
    if n == 0 {
        DEFAULT_BASELINE_RATE
    } else {
        sum / n as f64
    }
}

fn empty_reason(
    goals: &[Goal],
    customers: usize,
    reasons: &[Option<ExclusionReason>],
    groups: &[Group],
    solution: &optimise::Solution,
    specs: &[GoalSpec],
    budget: f64,
) -> String {
    if goals.is_empty() {
        return "no goals to plan".into();
    }
    if customers == 0 {
        return "no customers to plan for".into();
    }
    if reasons.iter().all(Option::is_some) {
        return format!("all {customers} customers are excluded (see `excluded`)");
    }
    if groups.is_empty() {
        return "no customer is eligible for any goal".into();
    }
    if solution.positive.iter().flatten().all(|&p| p == 0) {
        return "no eligible customer is worth a goal's cost at its response rate".into();
    }
    let cheapest = solution
        .positive
        .iter()
        .enumerate()
        .flat_map(|(g, row)| {
            row.iter()
                .enumerate()
                .filter(|(_, &p)| p > 0)
                .map(move |(o, _)| groups[g].options[o])
        })
        .map(|j| specs[j].cost)
        .fold(f64::INFINITY, f64::min);
    if budget <= 0.0 {
        return "the budget is zero: it covers no recipient".into();
    }
    if budget >= crate::input::UNLIMITED_BUDGET {
        return "with no budget limit, no campaign could be formed: every worthwhile selection was too small to mail anyone".into();
    }
    format!(
        "the budget of {budget:.2} covers no recipient: the cheapest worthwhile goal costs {cheapest:.4} per recipient and every selection keeps a holdout"
    )
}

/// Fewest customers a campaign needs before its uplift can be measured: the smallest audience
/// whose holdout (`ceil(fraction × n)`) gives power 0.8 to detect the best response rate among
/// the goals at the default baseline. `None` without a holdout or when no size up to ten
/// million would do.
pub fn measurable_size(best_rate: f64, fraction: f64) -> Option<usize> {
    if fraction <= 0.0 || best_rate <= 0.0 {
        return None;
    }
    let adequate = |n: usize| {
        let h = holdout::holdout_size(n, fraction);
        holdout::estimate(DEFAULT_BASELINE_RATE, best_rate, n - h, h).adequate
    };
    let (mut lo, mut hi) = (2usize, 10_000_000usize);
    if !adequate(hi) {
        return None;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if adequate(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

/// What a small shop should know, when fewer customers can be mailed than one measurable
/// campaign needs: campaigns are still planned and may be sent, but their results are
/// anecdotes, not measurements.
fn small_shop_note(
    plannable: usize,
    goals: &[Goal],
    rates: &[(f64, &'static str)],
    fraction: f64,
) -> Option<String> {
    if goals.is_empty() || plannable == 0 {
        return None;
    }
    let best = rates.iter().map(|r| r.0).fold(0.0, f64::max);
    if fraction == 0.0 {
        return None; // said by the holdout-0 warning
    }
    let need = measurable_size(best, fraction);
    if need.is_some_and(|n| plannable >= n) {
        return None;
    }
    Some(format!(
        "small shop: {plannable} customers can be mailed; {} A segment needs at least 2 selected customers to keep a holdout (smaller selections are mailed without one). Campaigns are still planned and may be sent; `--holdout 0` mails everyone selected.",
        match need {
            Some(n) => format!(
                "measuring even the best expected uplift ({:.1} points) with a {:.0}% holdout needs about {n} in one campaign, so no campaign's uplift will be measurable.",
                best * 100.0,
                fraction * 100.0
            ),
            None => "no campaign's uplift will be measurable at any size this shop has.".into(),
        }
    ))
}
