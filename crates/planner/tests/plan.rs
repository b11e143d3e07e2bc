//! End-to-end planning over small hand-made customer bases: exclusions, budget edges, holdouts,
//! explanations, and the default goals catalogue.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use retain_core::{Customer, CustomerFeatures, Prediction, SuppressionReason};
use retain_planner::expr::Vocabulary;
use retain_planner::plan::UnassignedReason;
use retain_planner::{
    parse_goals, plan, Candidate, ConsentPolicy, Goal, PlanError, PlanOptions, RfmScores, Stage,
    DEFAULT_GOALS, RFM_SEGMENTS,
};

const NOW: i64 = 1_700_000_000;
const DAY: i64 = 86_400;

/// Owned data the borrowed candidates point into.
struct Base {
    customers: Vec<Customer>,
    features: Vec<CustomerFeatures>,
    predictions: Vec<Option<Prediction>>,
    segments: Vec<String>,
    suppression: Vec<Option<SuppressionReason>>,
    last_sent: Vec<Option<i64>>,
}

impl Base {
    fn new() -> Self {
        Self {
            customers: vec![],
            features: vec![],
            predictions: vec![],
            segments: vec![],
            suppression: vec![],
            last_sent: vec![],
        }
    }

    /// Adds a mailable, opted-in customer; returns its index.
    fn add(&mut self, segment: &str, clv: Option<f64>, aov: f64) -> usize {
        let i = self.customers.len();
        let id = format!("c{i:05}");
        let d = NaiveDate::from_ymd_opt(2023, 1, 1).expect("date");
        self.customers.push(Customer {
            id: id.clone(),
            email: Some(format!("{id}@example.com")),
            email_valid: true,
            subscribed: Some(true),
            ..Customer::default()
        });
        self.features.push(CustomerFeatures {
            customer_id: id.clone(),
            first_order: d,
            last_order: d,
            recency_days: 40,
            frequency: 3,
            repeat_purchases: 2,
            monetary_total: aov * 3.0,
            avg_order_value: aov,
            tenure_days: 300,
        });
        self.predictions.push(clv.map(|clv| Prediction {
            customer_id: id,
            p_alive: 0.5,
            expected_purchases_90d: 0.3,
            clv,
        }));
        self.segments.push(segment.to_string());
        self.suppression.push(None);
        self.last_sent.push(None);
        i
    }

    fn candidates(&self) -> Vec<Candidate<'_>> {
        (0..self.customers.len())
            .map(|i| Candidate {
                customer: &self.customers[i],
                features: &self.features[i],
                segment: &self.segments[i],
                scores: Some(RfmScores { r: 3, f: 3, m: 3 }),
                prediction: self.predictions[i].as_ref(),
                suppression: self.suppression[i],
                last_campaign_at: self.last_sent[i],
                due_day: None,
            })
            .collect()
    }
}

fn vocab() -> Vocabulary {
    Vocabulary {
        segments: Some(RFM_SEGMENTS.iter().map(|s| s.to_string()).collect()),
        templates: None,
        attributes: None,
    }
}

fn goals(text: &str) -> Vec<Goal> {
    parse_goals(text, "test.toml", &vocab()).expect("goals parse")
}

const TWO_GOALS: &str = r#"
[[goal]]
id = "win_back"
name = "Win-back"
rule = 'segment in ["At Risk", "Hibernating"]'
window_days = 30
response_prior = 0.05
cost_per_recipient = 1.0
value = "clv"

[[goal]]
id = "upsell"
name = "Upsell"
rule = 'segment = "Champions"'
window_days = 30
response_prior = 0.10
cost_per_recipient = 0.5
value = "avg_order_value"
"#;

fn options(budget: f64) -> PlanOptions {
    PlanOptions::new(budget, NOW)
}

#[test]
fn exclusions_are_counted_once_by_first_reason() {
    let mut b = Base::new();
    let oks: Vec<usize> = (0..20)
        .map(|_| b.add("At Risk", Some(500.0), 50.0))
        .collect();
    let unsub = b.add("At Risk", Some(500.0), 50.0);
    b.suppression[unsub] = Some(SuppressionReason::Unsubscribed);
    let opted_out = b.add("At Risk", Some(500.0), 50.0);
    b.customers[opted_out].subscribed = Some(false);
    let bounced = b.add("At Risk", Some(500.0), 50.0);
    b.suppression[bounced] = Some(SuppressionReason::HardBounce);
    b.customers[bounced].email_valid = false; // bounced wins over invalid: first reason
    let invalid = b.add("At Risk", Some(500.0), 50.0);
    b.customers[invalid].email_valid = false;
    let missing = b.add("At Risk", Some(500.0), 50.0);
    b.customers[missing].email = None;
    let unknown = b.add("At Risk", Some(500.0), 50.0);
    b.customers[unknown].subscribed = None;
    let recent = b.add("At Risk", Some(500.0), 50.0);
    b.last_sent[recent] = Some(NOW - 3 * DAY);
    let old_send = b.add("At Risk", Some(500.0), 50.0);
    b.last_sent[old_send] = Some(NOW - 8 * DAY);

    let g = goals(TWO_GOALS);
    let p = plan(&g, &b.candidates(), &options(1000.0)).expect("plans");
    let expected: BTreeMap<String, usize> = [
        ("unsubscribed_or_suppressed", 2),
        ("bounced", 1),
        ("invalid_or_missing_email", 2),
        ("frequency_cap", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(p.excluded, expected);
    let targeted: BTreeSet<&str> = p
        .campaigns
        .iter()
        .flat_map(|c| c.audience.iter().chain(&c.holdout))
        .map(String::as_str)
        .collect();
    let ids = |is: &[usize]| {
        is.iter()
            .map(|&i| b.customers[i].id.as_str())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        targeted,
        ids(&[oks.as_slice(), &[unknown, old_send]].concat())
    );
    assert!(
        p.warnings.iter().any(|w| w.contains("no recorded consent")) || {
            // the unknown-consent customer may have landed in the holdout
            p.campaigns
                .iter()
                .all(|c| !c.audience.contains(&b.customers[unknown].id))
        }
    );

    // Strict consent excludes unknown consent; a longer cap excludes the 8-day-old send too.
    let mut strict = options(1000.0);
    strict.consent = ConsentPolicy::RequireOptIn;
    strict.frequency_cap_days = 10;
    let p = plan(&g, &b.candidates(), &strict).expect("plans");
    assert_eq!(p.excluded.get("no_consent"), Some(&1));
    assert_eq!(p.excluded.get("frequency_cap"), Some(&2));
    let targeted: BTreeSet<&str> = p
        .campaigns
        .iter()
        .flat_map(|c| c.audience.iter().chain(&c.holdout))
        .map(String::as_str)
        .collect();
    assert_eq!(targeted, ids(&oks));
}

#[test]
fn each_customer_gets_at_most_one_campaign_and_the_best_goal() {
    let mut b = Base::new();
    for i in 0..200 {
        b.add(RFM_SEGMENTS[i % 10], Some(100.0 + i as f64), 40.0);
    }
    let g = goals(DEFAULT_GOALS);
    let p = plan(&g, &b.candidates(), &options(1e9)).expect("plans");
    let mut seen = BTreeSet::new();
    for c in &p.campaigns {
        for id in c.audience.iter().chain(&c.holdout) {
            assert!(seen.insert(id.clone()), "{id} in two campaigns");
        }
    }
    // With money no object, each group takes the goal worth most for it.
    for c in &p.campaigns {
        for part in &c.rationale.parts {
            for alt in &part.alternatives {
                if let Some(d) = alt.plan_delta {
                    assert!(
                        d <= 1e-6,
                        "{} in {}: switching to {} would gain {d}",
                        c.goal,
                        part.segment,
                        alt.goal
                    );
                }
            }
        }
    }
}

#[test]
fn budget_edges() {
    let mut b = Base::new();
    for _ in 0..100 {
        b.add("At Risk", Some(200.0), 50.0);
    }
    let g = goals(TWO_GOALS);

    let zero = plan(&g, &b.candidates(), &options(0.0)).expect("zero budget is not an error");
    assert!(zero.campaigns.is_empty());
    assert!(
        zero.empty_reason
            .as_deref()
            .is_some_and(|r| r.contains("budget is zero")),
        "{:?}",
        zero.empty_reason
    );
    assert_eq!(
        zero.unassigned
            .iter()
            .find(|u| u.reason == UnassignedReason::Budget)
            .map(|u| u.customers),
        Some(100)
    );

    let tiny = plan(&g, &b.candidates(), &options(0.5)).expect("plans");
    assert!(tiny.campaigns.is_empty(), "0.5 buys no 1.00 recipient");
    assert!(
        tiny.empty_reason
            .as_deref()
            .is_some_and(|r| r.contains("covers no recipient")),
        "{:?}",
        tiny.empty_reason
    );

    // 30.00 at 1.00 per recipient: never more than 30 mailed, and the holdout comes on top.
    let some = plan(&g, &b.candidates(), &options(30.0)).expect("plans");
    let c = &some.campaigns[0];
    assert!(
        c.audience.len() <= 30 && c.audience.len() >= 29,
        "{}",
        c.audience.len()
    );
    assert!(some.budget.used <= 30.0 + 1e-9);
    assert_eq!(some.budget.total, 30.0);
    assert!(!c.holdout.is_empty());
    let left = some
        .unassigned
        .iter()
        .find(|u| u.reason == UnassignedReason::Budget)
        .map(|u| u.customers);
    assert_eq!(left, Some(100 - c.audience.len() - c.holdout.len()));

    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            plan(&g, &b.candidates(), &options(bad)),
            Err(PlanError::InvalidBudget(_))
        ));
    }
    let mut o = options(10.0);
    o.holdout_fraction = 0.6;
    assert!(matches!(
        plan(&g, &b.candidates(), &o),
        Err(PlanError::InvalidHoldout(_))
    ));
    o.holdout_fraction = 0.005;
    assert!(matches!(
        plan(&g, &b.candidates(), &o),
        Err(PlanError::InvalidHoldout(_))
    ));
}

#[test]
fn nothing_to_plan_is_an_empty_plan_with_a_reason() {
    let g = goals(TWO_GOALS);
    let empty = Base::new();
    let p = plan(&g, &empty.candidates(), &options(100.0)).expect("plans");
    assert_eq!(p.empty_reason.as_deref(), Some("no customers to plan for"));

    let mut b = Base::new();
    b.add("Promising", Some(100.0), 10.0);
    let p = plan(&g, &b.candidates(), &options(100.0)).expect("plans");
    assert_eq!(
        p.empty_reason.as_deref(),
        Some("no customer is eligible for any goal")
    );
    assert_eq!(p.unassigned[0].reason, UnassignedReason::NoEligibleGoal);

    // CLV 10 × 5% = 0.50 < 1.00 cost: not worth it.
    let mut b = Base::new();
    b.add("At Risk", Some(10.0), 10.0);
    let p = plan(&g, &b.candidates(), &options(100.0)).expect("plans");
    assert!(
        p.empty_reason
            .as_deref()
            .is_some_and(|r| r.contains("worth")),
        "{:?}",
        p.empty_reason
    );
}

#[test]
fn holdouts_are_seeded_sized_and_stratified() {
    let mut b = Base::new();
    for i in 0..600 {
        b.add(
            if i % 3 == 0 { "Hibernating" } else { "At Risk" },
            Some(100.0 + (i % 7) as f64),
            30.0,
        );
    }
    let g = goals(TWO_GOALS);
    let mut o = options(1e6);
    o.seed = 99;
    o.holdout_fraction = 0.2;
    let a = plan(&g, &b.candidates(), &o).expect("plans");
    let again = plan(&g, &b.candidates(), &o).expect("plans");
    assert_eq!(a, again, "same seed, same plan");
    o.seed = 100;
    let other = plan(&g, &b.candidates(), &o).expect("plans");
    assert_ne!(a.campaigns[0].holdout, other.campaigns[0].holdout);

    let c = &a.campaigns[0];
    assert_eq!(c.goal, "win_back");
    assert_eq!(
        c.segments,
        vec!["At Risk".to_string(), "Hibernating".to_string()]
    );
    // Stratified: each segment holds out exactly ceil(20%) of its selected members.
    let seg_of = |id: &String| -> &str {
        let i: usize = id[1..].parse().expect("id");
        &b.segments[i]
    };
    for (segment, size) in [("At Risk", 400usize), ("Hibernating", 200)] {
        let held = c.holdout.iter().filter(|id| seg_of(id) == segment).count();
        let mailed = c.audience.iter().filter(|id| seg_of(id) == segment).count();
        assert_eq!(held + mailed, size);
        assert_eq!(held, (size as f64 * 0.2).ceil() as usize, "{segment}");
    }
    let audience: BTreeSet<&String> = c.audience.iter().collect();
    assert!(c.holdout.iter().all(|h| !audience.contains(h)));
}

#[test]
fn holdout_does_not_depend_on_other_campaigns() {
    // Adding an unrelated campaign leaves win_back's draw unchanged.
    let mut b = Base::new();
    for _ in 0..300 {
        b.add("At Risk", Some(120.0), 30.0);
    }
    let g = goals(TWO_GOALS);
    let p1 = plan(&g, &b.candidates(), &options(1e6)).expect("plans");
    for _ in 0..50 {
        b.add("Champions", Some(120.0), 80.0);
    }
    let p2 = plan(&g, &b.candidates(), &options(1e6)).expect("plans");
    let wb = |p: &retain_planner::Plan| {
        p.campaigns
            .iter()
            .find(|c| c.goal == "win_back")
            .expect("win_back")
            .clone()
    };
    assert_eq!(wb(&p1).holdout, wb(&p2).holdout);
    assert_eq!(p2.campaigns.len(), 2);
}

#[test]
fn partial_budget_takes_the_most_valuable_customers() {
    let mut b = Base::new();
    for i in 0..100 {
        b.add("At Risk", Some(100.0 + 10.0 * i as f64), 30.0);
    }
    let g = goals(TWO_GOALS);
    let mut o = options(18.0);
    o.holdout_fraction = 0.1;
    let p = plan(&g, &b.candidates(), &o).expect("plans");
    let c = &p.campaigns[0];
    // 18 / 0.9 = 20 selected: the 20 highest CLVs (indices 80..99), 2 held out.
    let selected: BTreeSet<usize> = c
        .audience
        .iter()
        .chain(&c.holdout)
        .map(|id| id[1..].parse::<usize>().expect("id"))
        .collect();
    assert_eq!(selected, (80..100).collect());
    assert_eq!(c.holdout.len(), 2);
    assert_eq!(c.audience.len(), 18);
    assert!((c.cost - 18.0).abs() < 1e-9);
    let ev: f64 = c
        .audience
        .iter()
        .map(|id| {
            0.05 * b.predictions[id[1..].parse::<usize>().expect("id")]
                .as_ref()
                .expect("p")
                .clv
                - 1.0
        })
        .sum();
    assert!((c.expected_value - ev).abs() < 1e-6);
}

#[test]
fn observed_rates_override_priors_and_are_explained() {
    let mut b = Base::new();
    for _ in 0..50 {
        b.add("At Risk", Some(100.0), 30.0);
    }
    let g = goals(TWO_GOALS);
    let p = plan(&g, &b.candidates(), &options(1e6)).expect("plans");
    assert_eq!(p.campaigns[0].response_source, "prior");
    let mut o = options(1e6);
    o.observed_rates.insert("win_back".into(), 0.005); // 0.5 < 1.0 cost: no longer worth it
    o.observed_rates.insert("nonexistent".into(), 0.1);
    let p = plan(&g, &b.candidates(), &o).expect("plans");
    assert!(p.campaigns.is_empty());
    assert!(p.warnings.iter().any(|w| w.contains("nonexistent")));
    o.observed_rates.insert("win_back".into(), 0.2);
    let p = plan(&g, &b.candidates(), &o).expect("plans");
    let c = &p.campaigns[0];
    assert_eq!(
        (c.response_source.as_str(), c.response_rate),
        ("observed", 0.2)
    );
    let part = &c.rationale.parts[0];
    assert!(part.text.contains("(observed)"), "{}", part.text);
    assert!(
        part.text.contains("segment in"),
        "the rule is quoted: {}",
        part.text
    );
    assert!((part.expected_value - c.expected_value).abs() < 1e-6);
    o.observed_rates.insert("win_back".into(), 1.5);
    assert!(matches!(
        plan(&g, &b.candidates(), &o),
        Err(PlanError::InvalidObservedRate { .. })
    ));
}

#[test]
fn explanations_name_the_losing_alternative() {
    // Champions qualify for both goals; upsell (AOV 80 × 10% − 0.5 = 7.5) beats loyalty
    // (CLV 100 × 2% − 0.25 = 1.75).
    let text = format!(
        "{TWO_GOALS}\n{}",
        r#"
[[goal]]
id = "loyalty"
name = "Loyalty"
rule = 'segment = "Champions"'
window_days = 30
response_prior = 0.02
cost_per_recipient = 0.25
value = "clv"
"#
    );
    let g = goals(&text);
    let mut b = Base::new();
    for _ in 0..100 {
        b.add("Champions", Some(100.0), 80.0);
    }
    let p = plan(&g, &b.candidates(), &options(1e6)).expect("plans");
    assert_eq!(p.campaigns.len(), 1);
    let c = &p.campaigns[0];
    assert_eq!(c.goal, "upsell");
    let part = &c.rationale.parts[0];
    assert_eq!(
        part.eligible_goals,
        vec!["upsell".to_string(), "loyalty".to_string()]
    );
    let alt = &part.alternatives[0];
    assert_eq!(alt.goal, "loyalty");
    // 90 mailed either way: (1.75 − 7.5) × 90.
    let delta = alt.plan_delta.expect("priced");
    assert!((delta - (1.75 - 7.5) * 90.0).abs() < 1e-6, "{delta}");
    assert!(part.text.contains("`loyalty` lost"), "{}", part.text);
}

#[test]
fn audience_caps_limit_recipients() {
    let text = TWO_GOALS.replace("value = \"clv\"", "value = \"clv\"\naudience_cap = 25");
    let g = goals(&text);
    let mut b = Base::new();
    for i in 0..100 {
        b.add("At Risk", Some(100.0 + i as f64), 30.0);
    }
    let p = plan(&g, &b.candidates(), &options(1e6)).expect("plans");
    let c = &p.campaigns[0];
    assert!(c.audience.len() <= 25, "{}", c.audience.len());
    assert!(c.audience.len() >= 24);
    assert!(p
        .unassigned
        .iter()
        .any(|u| u.reason == UnassignedReason::AudienceCap));
}

#[test]
fn missing_predictions_fall_back_to_order_value_with_a_warning() {
    let mut b = Base::new();
    for _ in 0..20 {
        b.add("At Risk", None, 60.0); // 0.05 × 60 − 1 = 2 > 0
    }
    let p = plan(&goals(TWO_GOALS), &b.candidates(), &options(1e6)).expect("plans");
    assert_eq!(p.campaigns.len(), 1);
    assert!((p.campaigns[0].rationale.parts[0].mean_value - 60.0).abs() < 1e-9);
    assert!(p.warnings.iter().any(|w| w.contains("no CLV prediction")));
}

#[test]
fn small_holdouts_warn_about_power() {
    let mut b = Base::new();
    for _ in 0..200 {
        b.add("At Risk", Some(200.0), 30.0);
    }
    let p = plan(&goals(TWO_GOALS), &b.candidates(), &options(1e6)).expect("plans");
    let power = &p.campaigns[0].power;
    assert!(!power.adequate);
    assert_eq!(power.control, 20);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("win_back-1") && w.contains("power")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn balance_reports_where_the_spend_lands() {
    let mut b = Base::new();
    for _ in 0..100 {
        b.add("At Risk", Some(200.0), 30.0);
    }
    let mut o = options(1e6);
    o.stage = Some(Stage::Mature);
    o.marketing_budget = Some(900.0);
    let p = plan(&goals(TWO_GOALS), &b.candidates(), &o).expect("plans");
    assert_eq!(p.balance.recommended_retention_share, 0.6);
    assert_eq!(p.budget.used, 90.0);
    assert_eq!(p.balance.planned_retention_share, Some(0.1));
    assert!(p.balance.reasoning.contains("mature"));
}

#[test]
fn plans_serialise_with_the_documented_keys() {
    let mut b = Base::new();
    for _ in 0..30 {
        b.add("At Risk", Some(200.0), 30.0);
    }
    let p = plan(&goals(TWO_GOALS), &b.candidates(), &options(1e6)).expect("plans");
    let v = serde_json::to_value(&p).expect("serialises");
    for key in [
        "campaigns",
        "excluded",
        "unassigned",
        "budget",
        "balance",
        "warnings",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let c = &v["campaigns"][0];
    for key in [
        "campaign_id",
        "goal",
        "segments",
        "template",
        "audience",
        "holdout",
        "expected_value",
        "cost",
        "rationale",
    ] {
        assert!(c.get(key).is_some(), "campaign missing {key}");
    }
    assert_eq!(c["campaign_id"], "win_back-1");
    for key in ["total", "used"] {
        assert!(v["budget"].get(key).is_some());
    }
    for key in [
        "recommended_retention_share",
        "planned_retention_share",
        "reasoning",
    ] {
        assert!(v["balance"].get(key).is_some());
    }
}

#[test]
fn the_default_catalogue_parses_and_names_only_known_segments() {
    let templates: Vec<String> = [
        "win_back",
        "loyalty_reward",
        "vip_exclusive",
        "upsell_cross_sell",
        "onboarding_nurture",
        "renewal_reminder",
        "satisfaction_survey",
        "referral_request",
        "launch_awareness",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let vocab = Vocabulary {
        segments: Some(RFM_SEGMENTS.iter().map(|s| s.to_string()).collect()),
        templates: Some(templates.clone()),
        attributes: Some(vec![]),
    };
    let goals =
        parse_goals(DEFAULT_GOALS, "templates/goals.toml", &vocab).expect("default goals parse");
    assert_eq!(
        goals.iter().map(|g| g.id.clone()).collect::<Vec<_>>(),
        templates
    );
    let mut covered = BTreeSet::new();
    for g in &goals {
        assert_eq!(g.template, g.id, "template names are goal ids");
        let segs = g.rule.segments();
        assert!(!segs.is_empty(), "{} names segments", g.id);
        for s in segs {
            assert!(
                RFM_SEGMENTS.contains(&s.as_str()),
                "{}: unknown segment {s}",
                g.id
            );
            covered.insert(s);
        }
        assert!(!g.description.is_empty());
    }
    assert_eq!(
        covered.len(),
        RFM_SEGMENTS.len(),
        "every segment has a goal"
    );
    // A segment set without "Can't Lose Them" rejects the catalogue, at the right line.
    let fewer = Vocabulary {
        segments: Some(
            RFM_SEGMENTS
                .iter()
                .filter(|s| !s.starts_with("Can't"))
                .map(|s| s.to_string())
                .collect(),
        ),
        ..vocab
    };
    let e = parse_goals(DEFAULT_GOALS, "goals.toml", &fewer).expect_err("unknown segment");
    let line = DEFAULT_GOALS
        .lines()
        .nth(e.position.line - 1)
        .expect("line");
    let at: String = line.chars().skip(e.position.column - 1).collect();
    assert!(at.starts_with("\"Can't Lose Them\""), "{e}: {at}");
}

#[test]
fn one_recipient_budget_mails_one_without_a_holdout_and_says_so() {
    let mut b = Base::new();
    for _ in 0..10 {
        b.add("At Risk", Some(200.0), 30.0);
    }
    // 1.00 buys one selection; its holdout would be ceil(0.1) = 1, leaving nobody to mail: the
    // one is mailed without a holdout instead, and the plan says its uplift is not measurable.
    let p = plan(&goals(TWO_GOALS), &b.candidates(), &options(1.0)).expect("plans");
    assert_eq!(p.campaigns.len(), 1);
    let c = &p.campaigns[0];
    assert_eq!((c.audience.len(), c.holdout.len()), (1, 0));
    assert_eq!(p.budget.used, 1.0);
    assert!(p.empty_reason.is_none());
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("win_back-1") && w.contains("too few for a holdout")),
        "{:?}",
        p.warnings
    );
    let budget_left: usize = p
        .unassigned
        .iter()
        .filter(|u| u.reason == UnassignedReason::Budget)
        .map(|u| u.customers)
        .sum();
    assert_eq!(budget_left, 9);
    // A budget below one recipient's cost still forms nothing, and never spends -0.00.
    let p = plan(&goals(TWO_GOALS), &b.candidates(), &options(0.5)).expect("plans");
    assert!(p.campaigns.is_empty());
    assert!(p.empty_reason.is_some());
    assert!(p.budget.used == 0.0 && p.budget.used.is_sign_positive());
}

#[test]
fn a_ten_customer_shop_still_plans_and_says_what_it_cannot_measure() {
    let mut b = Base::new();
    // Ten customers over five segments: two per segment, one per (segment, goal) group at most.
    for (i, seg) in [
        "Champions",
        "At Risk",
        "Hibernating",
        "Champions",
        "At Risk",
    ]
    .iter()
    .cycle()
    .take(10)
    .enumerate()
    {
        b.add(seg, Some(100.0 + i as f64), 40.0);
    }
    // One customer alone in a segment: selected, no holdout possible.
    b.segments[9] = "Hibernating".into();
    b.segments[2] = "Hibernating".into();
    let g = goals(TWO_GOALS);
    let p = plan(
        &g,
        &b.candidates(),
        &options(retain_planner::UNLIMITED_BUDGET),
    )
    .expect("plans");
    let mailed: usize = p.campaigns.iter().map(|c| c.audience.len()).sum();
    let held: usize = p.campaigns.iter().map(|c| c.holdout.len()).sum();
    assert_eq!(mailed + held, 10, "everyone worth it is planned: {p:#?}");
    assert!(
        mailed >= 5,
        "at most one held out per segment stratum: {p:#?}"
    );
    assert!(p.budget.used > 0.0);
    let reason = p.empty_reason.clone().unwrap_or_default();
    assert!(
        !reason.contains("e308") && !reason.contains("797693"),
        "{reason}"
    );
    let note = p
        .warnings
        .iter()
        .find(|w| w.starts_with("small shop"))
        .unwrap_or_else(|| panic!("a small-shop note: {:?}", p.warnings));
    assert!(note.contains("10 customers can be mailed"), "{note}");
    assert!(
        note.contains("no campaign's uplift will be measurable"),
        "{note}"
    );
    let need = retain_planner::plan::measurable_size(0.10, 0.1).expect("a size");
    assert!(
        need > 10 && note.contains(&format!("about {need}")),
        "{need}: {note}"
    );
    // Holdout 0: everyone selected is mailed, and the plan says nothing can be measured.
    let mut o = options(retain_planner::UNLIMITED_BUDGET);
    o.holdout_fraction = 0.0;
    let p = plan(&g, &b.candidates(), &o).expect("holdout 0 is allowed");
    let mailed: usize = p.campaigns.iter().map(|c| c.audience.len()).sum();
    assert_eq!(mailed, 10);
    assert!(p.campaigns.iter().all(|c| c.holdout.is_empty()));
    assert!(
        p.warnings.iter().any(|w| w.starts_with("holdout 0")),
        "{:?}",
        p.warnings
    );
    // A large shop gets no small-shop note.
    let mut big = Base::new();
    for i in 0..40_000 {
        big.add(["Champions", "At Risk"][i % 2], Some(100.0), 40.0);
    }
    let p = plan(
        &g,
        &big.candidates(),
        &options(retain_planner::UNLIMITED_BUDGET),
    )
    .expect("plans");
    assert!(
        !p.warnings.iter().any(|w| w.starts_with("small shop")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn random_bases_keep_every_invariant() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
    let g = goals(DEFAULT_GOALS);
    for round in 0..40 {
        let mut b = Base::new();
        let n = rng.gen_range(1..400);
        for _ in 0..n {
            let seg = RFM_SEGMENTS[rng.gen_range(0..RFM_SEGMENTS.len())];
            let clv = rng.gen_bool(0.9).then(|| rng.gen_range(0.0..500.0));
            let i = b.add(seg, clv, rng.gen_range(5.0..120.0));
            b.features[i].recency_days = rng.gen_range(0..400);
            b.features[i].frequency = rng.gen_range(1..10);
            if rng.gen_bool(0.1) {
                b.customers[i].subscribed = None;
            }
            if rng.gen_bool(0.05) {
                b.last_sent[i] = Some(NOW - rng.gen_range(0..20) * DAY);
            }
        }
        let budget = [0.0, 0.3, 2.0, 15.0, 1e6][rng.gen_range(0..5)];
        let mut o = options(budget);
        o.holdout_fraction = [0.01, 0.1, 0.25, 0.5][rng.gen_range(0..4)];
        o.seed = rng.gen();
        let p = plan(&g, &b.candidates(), &o).expect("plans");

        assert!(
            p.budget.used <= budget + 1e-9,
            "round {round}: {} > {budget}",
            p.budget.used
        );
        let mut seen = BTreeSet::new();
        let mut accounted = 0usize;
        for c in &p.campaigns {
            assert!(!c.audience.is_empty());
            let goal = g.iter().find(|x| x.id == c.goal).expect("goal");
            assert!((c.cost - goal.cost_per_recipient * c.audience.len() as f64).abs() < 1e-9);
            for id in c.audience.iter().chain(&c.holdout) {
                assert!(seen.insert(id.clone()), "round {round}: {id} twice");
                let i: usize = id[1..].parse().expect("id");
                assert!(c.segments.contains(&b.segments[i]));
                assert!(
                    goal.rule.evaluate(&b.candidates()[i].subject(NOW)),
                    "{id} not eligible for {}",
                    c.goal
                );
            }
            // Holdout per segment stratum is ceil(fraction × selected), except in a campaign too
            // small to keep one, which mails everyone selected and says so.
            if c.holdout.is_empty() {
                assert!(
                    p.warnings
                        .iter()
                        .any(|w| w.starts_with(&format!("campaign {}:", c.campaign_id))
                            && w.contains("too few for a holdout")),
                    "round {round}: {} has no holdout and no note: {:?}",
                    c.campaign_id,
                    p.warnings
                );
                accounted += c.audience.len();
                continue;
            }
            for seg in &c.segments {
                let of = |ids: &Vec<String>| {
                    ids.iter()
                        .filter(|id| &b.segments[id[1..].parse::<usize>().expect("id")] == seg)
                        .count()
                };
                let (a, h) = (of(&c.audience), of(&c.holdout));
                assert_eq!(
                    h,
                    ((a + h) as f64 * o.holdout_fraction - 1e-9).ceil() as usize,
                    "round {round} {seg}"
                );
            }
            accounted += c.audience.len() + c.holdout.len();
        }
        accounted += p.excluded.values().sum::<usize>();
        accounted += p.unassigned.iter().map(|u| u.customers).sum::<usize>();
        assert_eq!(
            accounted, n,
            "round {round}: every customer is in a campaign, excluded or unassigned"
        );
        assert_eq!(p.campaigns.is_empty(), p.empty_reason.is_some());
    }
}

#[test]
fn an_unlimited_budget_plans_everyone_worth_it() {
    let mut b = Base::new();
    for i in 0..300 {
        let i = b.add(
            RFM_SEGMENTS[i % 10],
            Some(20.0 + (i % 17) as f64 * 30.0),
            10.0 + (i % 5) as f64 * 20.0,
        );
        b.features[i].frequency = 1 + (i % 4) as u32;
    }
    let g = goals(DEFAULT_GOALS);
    let ample = plan(&g, &b.candidates(), &options(1e12)).expect("plans");
    let unlimited = plan(&g, &b.candidates(), &options(f64::MAX)).expect("plans");
    assert_eq!(ample.campaigns, unlimited.campaigns);
    assert!(unlimited.expected_value > 0.0);
    assert!(unlimited.optimiser.upper_bound.is_finite());
    assert!(unlimited.optimiser.proven_optimal);
}
