//! What a campaign's sequence changed, beyond its first email: each A/B variant's results against
//! the holdout and against the other variants (with the fixed-horizon test's verdict), each
//! follow-up step's funnel, and the whole sequence's uplift against the holdout. Pure: computed
//! from the same inputs as [`crate::report::compute`], split by variant or step.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::report::{self, CampaignInput, GroupResult, Inputs, MemberInput, SendInput};
use crate::stats::{two_proportions, ProportionDiff};
use retain_core::Order;
use retain_planner::variants::REST_VARIANT;
use retain_store::EventRecord;

/// Significance level of the whole variant test (split between its pairs, Bonferroni).
pub const ALPHA: f64 = 0.05;

/// One variant's results; `result.uplift` compares its recipients with the whole holdout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantResult {
    pub variant: String,
    pub template: String,
    pub result: GroupResult,
}

/// One pair of variants compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantComparison {
    pub a: String,
    pub b: String,
    /// Conversion rate of `a` minus that of `b`, with the Newcombe interval and the z-test.
    pub diff: Option<ProportionDiff>,
    /// p below 0.05 / pairs.
    pub significant: bool,
}

/// The A/B test of a campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantTest {
    pub method: &'static str,
    pub variants: Vec<VariantResult>,
    pub comparisons: Vec<VariantComparison>,
    /// Recipients per variant the plan fixed for power 0.8, when it could.
    pub required_per_variant: Option<u64>,
    /// The variant that beat every other significantly, once the test is complete.
    pub winner: Option<String>,
    pub verdict: String,
}

/// One follow-up step's funnel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepFunnel {
    pub step: i64,
    pub ledger_id: String,
    pub template: String,
    pub sent: u64,
    pub opened: u64,
    pub clicked: u64,
    /// Recipients of the step who bought within the campaign's window after the step's email.
    pub converted: u64,
}

/// The whole sequence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequenceReport {
    pub variant_test: Option<VariantTest>,
    pub steps: Vec<StepFunnel>,
    /// Recipients (every email of the sequence) against the holdout, over the window after the
    /// first email extended by the last step's day.
    pub sequence_window_days: i64,
    pub sequence: Option<GroupResult>,
}

/// A step's sends and their events.
pub struct StepInput<'a> {
    pub step: i64,
    pub ledger_id: &'a str,
    pub template: &'a str,
    pub after_days: i64,
    pub sends: &'a [SendInput],
    pub events: &'a [EventRecord],
}

/// Everything a sequence report reads.
pub struct SequenceInputs<'a> {
    pub campaign: &'a CampaignInput,
    pub members: &'a [MemberInput],
    pub sends: &'a [SendInput],
    pub events: &'a [EventRecord],
    pub orders: &'a [Order],
    pub now: i64,
    /// Customer id → (variant, template); empty without a test.
    pub variants: &'a HashMap<String, (String, String)>,
    pub required_per_variant: Option<u64>,
    pub steps: &'a [StepInput<'a>],
}

/// The sequence report, or `None` for a campaign with neither variants nor steps.
pub fn compute(inp: &SequenceInputs<'_>) -> Option<SequenceReport> {
    if inp.variants.is_empty() && inp.steps.is_empty() {
        return None;
    }
    let variant_test = (!inp.variants.is_empty()).then(|| variant_test(inp));
    let mut steps = Vec::new();
    let window = inp.campaign.window_days.max(0) * 86_400;
    let mut bought: HashMap<&str, Vec<i64>> = HashMap::new();
    for o in inp.orders.iter().filter(|o| !o.is_return) {
        bought
            .entry(o.customer_id.as_str())
            .or_default()
            .push(o.ordered_at.and_utc().timestamp());
    }
    for s in inp.steps {
        let sent: Vec<&SendInput> = s.sends.iter().filter(|x| x.state == "sent").collect();
        let sent_at: HashMap<i64, Option<i64>> = sent.iter().map(|x| (x.id, x.sent_at)).collect();
        let human = |kind: retain_store::EventKind| -> u64 {
            s.events
                .iter()
                .filter(|e| e.kind == kind)
                .filter(|e| report::is_human(e, sent_at.get(&e.send_id).copied().flatten()))
                .map(|e| e.send_id)
                .collect::<HashSet<_>>()
                .len() as u64
        };
        let converted = sent
            .iter()
            .filter(|x| {
                let Some(at) = x.sent_at else { return false };
                bought
                    .get(x.customer_id.as_str())
                    .is_some_and(|ts| ts.iter().any(|&t| t >= at && t < at + window))
            })
            .count() as u64;
        steps.push(StepFunnel {
            step: s.step,
            ledger_id: s.ledger_id.to_string(),
            template: s.template.to_string(),
            sent: sent.len() as u64,
            opened: human(retain_store::EventKind::Open),
            clicked: human(retain_store::EventKind::Click),
            converted,
        });
    }
    let last_day = inp.steps.iter().map(|s| s.after_days).max().unwrap_or(0);
    let sequence_window_days = inp.campaign.window_days + last_day;
    let sequence = (!inp.steps.is_empty()).then(|| {
        let campaign = CampaignInput {
            window_days: sequence_window_days,
            ..inp.campaign.clone()
        };
        report::compute(Inputs {
            campaign: &campaign,
            members: inp.members,
            sends: inp.sends,
            events: inp.events,
            orders: inp.orders,
            now: inp.now,
        })
        .overall()
    });
    Some(SequenceReport {
        variant_test,
        steps,
        sequence_window_days,
        sequence,
    })
}

/// The variant test (each variant against the holdout and the others, and the winner once the
/// window has closed). Recipients of [`REST_VARIANT`] — waiting for the winner of a test on a
/// share — are no variant of the test.
pub(crate) fn variant_test(inp: &SequenceInputs<'_>) -> VariantTest {
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    for (v, t) in inp.variants.values() {
        if v != REST_VARIANT {
            names.insert(v.as_str(), t.as_str());
        }
    }
    let mut variants = Vec::new();
    let mut window_closed = true;
    for (&v, &template) in &names {
        let in_v = |id: &str| inp.variants.get(id).is_some_and(|(x, _)| x == v);
        let members: Vec<MemberInput> = inp
            .members
            .iter()
            .filter(|m| m.holdout || in_v(&m.customer_id))
            .cloned()
            .collect();
        let sends: Vec<SendInput> = inp
            .sends
            .iter()
            .filter(|s| in_v(&s.customer_id))
            .cloned()
            .collect();
        let r = report::compute(Inputs {
            campaign: inp.campaign,
            members: &members,
            sends: &sends,
            events: inp.events,
            orders: inp.orders,
            now: inp.now,
        });
        window_closed &= r.window_closed;
        variants.push(VariantResult {
            variant: v.to_string(),
            template: template.to_string(),
            result: r.overall(),
        });
    }
    let k = variants.len();
    let pairs = (k * k.saturating_sub(1) / 2).max(1);
    let alpha = ALPHA / pairs as f64;
    let mut comparisons = Vec::new();
    for i in 0..k {
        for j in i + 1..k {
            let (a, b) = (&variants[i], &variants[j]);
            let diff = two_proportions(
                a.result.conversions,
                a.result.recipients,
                b.result.conversions,
                b.result.recipients,
            );
            comparisons.push(VariantComparison {
                a: a.variant.clone(),
                b: b.variant.clone(),
                significant: diff.as_ref().is_some_and(|d| d.p_value < alpha),
                diff,
            });
        }
    }
    let reached = inp
        .required_per_variant
        .map(|n| variants.iter().all(|v| v.result.recipients >= n));
    // The winner beats every other variant significantly, in its favour.
    let beats = |v: &str| {
        comparisons.iter().all(|c| {
            if c.a == v || c.b == v {
                let Some(d) = &c.diff else { return false };
                let sign = if c.a == v { 1.0 } else { -1.0 };
                c.significant && sign * d.absolute > 0.0
            } else {
                true
            }
        })
    };
    let best = variants
        .iter()
        .map(|v| v.variant.as_str())
        .find(|v| beats(v));
    let (winner, verdict) = if !window_closed {
        (
            None,
            "test running: the conversion window is still open (a fixed-horizon test is read once, at its end)".to_string(),
        )
    } else {
        match (best, reached) {
            (Some(w), Some(true)) | (Some(w), None) => (
                Some(w.to_string()),
                format!("variant {w} wins: it converts better than every other at α {alpha:.4} per pair"),
            ),
            (Some(w), Some(false)) => (
                None,
                format!("variant {w} looks best, but the variants are smaller than the planned sample size: no winner declared"),
            ),
            (None, _) => (
                None,
                "no significant difference between the variants".to_string(),
            ),
        }
    };
    VariantTest {
        method: "fixed-horizon two-proportion z-tests, Bonferroni over the pairs",
        variants,
        comparisons,
        required_per_variant: inp.required_per_variant,
        winner,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000;
    const DAY: i64 = 86_400;

    fn campaign() -> CampaignInput {
        CampaignInput {
            campaign_id: "p1-x-1".into(),
            plan_id: "p1".into(),
            goal: "x".into(),
            goal_name: "X".into(),
            window_days: 30,
            cost_per_recipient: 0.0,
        }
    }

    /// Members, sends, orders and each recipient's (variant, template).
    type World = (
        Vec<MemberInput>,
        Vec<SendInput>,
        Vec<Order>,
        HashMap<String, (String, String)>,
    );

    /// 1000 recipients per variant (a converts `ra` of them, b `rb`), 400 holdout (10% convert).
    fn world(ra: usize, rb: usize) -> World {
        let (mut members, mut sends, mut orders, mut variants) =
            (vec![], vec![], vec![], HashMap::new());
        let order = |id: &str| Order {
            order_id: format!("o-{id}"),
            customer_id: id.to_string(),
            ordered_at: chrono::DateTime::from_timestamp(T0 + 2 * DAY, 0)
                .expect("ts")
                .naive_utc(),
            amount: 10.0,
            items: 1,
            is_return: false,
            currency: None,
            email: None,
            product: None,
        };
        for i in 0..2000 {
            let id = format!("r{i}");
            let (v, converts) = if i < 1000 {
                ("a", i < ra)
            } else {
                ("b", i - 1000 < rb)
            };
            members.push(MemberInput {
                customer_id: id.clone(),
                holdout: false,
                segment: "all".into(),
            });
            sends.push(SendInput {
                id: i as i64,
                customer_id: id.clone(),
                state: "sent".into(),
                sent_at: Some(T0),
            });
            if converts {
                orders.push(order(&id));
            }
            variants.insert(id, (v.to_string(), format!("t_{v}")));
        }
        for i in 0..400 {
            let id = format!("h{i}");
            members.push(MemberInput {
                customer_id: id.clone(),
                holdout: true,
                segment: "all".into(),
            });
            if i < 40 {
                orders.push(order(&id));
            }
        }
        (members, sends, orders, variants)
    }

    fn test_of(ra: usize, rb: usize, now: i64, required: Option<u64>) -> VariantTest {
        let (members, sends, orders, variants) = world(ra, rb);
        let c = campaign();
        compute(&SequenceInputs {
            campaign: &c,
            members: &members,
            sends: &sends,
            events: &[],
            orders: &orders,
            now,
            variants: &variants,
            required_per_variant: required,
            steps: &[],
        })
        .and_then(|s| s.variant_test)
        .expect("a test")
    }

    #[test]
    fn a_winner_only_when_complete_and_significant() {
        let closed = T0 + 31 * DAY;
        // 20% against 10% of 1000 each: z ≈ 6, far past 0.05.
        let t = test_of(200, 100, closed, Some(500));
        assert_eq!(t.winner.as_deref(), Some("a"), "{}", t.verdict);
        assert_eq!(t.variants[0].result.recipients, 1000);
        // Each variant against the whole holdout (10%).
        let a = &t.variants[0].result.uplift;
        assert!((a.absolute.expect("uplift") - 0.10).abs() < 1e-9);
        let d = t.comparisons[0].diff.as_ref().expect("diff");
        assert!((d.absolute - 0.10).abs() < 1e-9);
        // The window still open: no verdict yet, however clear the data.
        assert_eq!(test_of(200, 100, T0 + 5 * DAY, Some(500)).winner, None);
        // Smaller than the planned sample: no winner.
        assert_eq!(test_of(200, 100, closed, Some(5000)).winner, None);
        // No real difference: no winner.
        assert_eq!(test_of(105, 100, closed, Some(500)).winner, None);
        // b wins when it is the better one.
        assert_eq!(
            test_of(100, 200, closed, Some(500)).winner.as_deref(),
            Some("b")
        );
    }
}
