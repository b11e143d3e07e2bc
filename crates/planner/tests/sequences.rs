//! Planning with the programme's global control group, A/B variants and follow-up steps.

use chrono::NaiveDate;
use retain_core::{Customer, CustomerFeatures, Prediction};
use retain_planner::expr::Vocabulary;
use retain_planner::{
    parse_catalogue, plan, Approval, Candidate, ControlPeriod, GlobalControl, PlanOptions,
    RfmScores, RFM_SEGMENTS,
};

const NOW: i64 = 1_795_780_800; // 2026-11-27 12:00 UTC

const GOALS: &str = r#"
[program]
control_share = 0.1
control_period = "month"
control_seed = 3

[[goal]]
id = "win_back"
name = "Win-back"
rule = 'segment in ["At Risk", "Hibernating"]'
window_days = 30
response_prior = 0.05
cost_per_recipient = 0.1
value = "clv"
approve = "each_step"

[[goal.variants]]
id = "a"
template = "win_back"

[[goal.variants]]
id = "b"
template = "win_back_short"

[[goal.steps]]
after_days = 7
when = "not converted and not unsubscribed"
template = "win_back_reminder"
"#;

struct Base {
    customers: Vec<Customer>,
    features: Vec<CustomerFeatures>,
    predictions: Vec<Prediction>,
    segments: Vec<String>,
}

fn base(n: usize) -> Base {
    let d = NaiveDate::from_ymd_opt(2023, 1, 1).expect("date");
    let mut b = Base {
        customers: vec![],
        features: vec![],
        predictions: vec![],
        segments: vec![],
    };
    for i in 0..n {
        let id = format!("c{i:05}");
        b.customers.push(Customer {
            id: id.clone(),
            email: Some(format!("{id}@example.com")),
            email_valid: true,
            subscribed: Some(true),
            ..Customer::default()
        });
        b.features.push(CustomerFeatures {
            customer_id: id.clone(),
            first_order: d,
            last_order: d,
            recency_days: 200,
            frequency: 2,
            repeat_purchases: 1,
            monetary_total: 100.0,
            avg_order_value: 50.0,
            tenure_days: 400,
        });
        b.predictions.push(Prediction {
            customer_id: id,
            p_alive: 0.5,
            expected_purchases_90d: 0.2,
            clv: 200.0,
        });
        b.segments
            .push(if i % 3 == 0 { "Hibernating" } else { "At Risk" }.to_string());
    }
    b
}

fn candidates(b: &Base) -> Vec<Candidate<'_>> {
    (0..b.customers.len())
        .map(|i| Candidate {
            customer: &b.customers[i],
            features: &b.features[i],
            segment: &b.segments[i],
            scores: Some(RfmScores { r: 2, f: 2, m: 2 }),
            prediction: Some(&b.predictions[i]),
            suppression: None,
            last_campaign_at: None,
            due_day: None,
        })
        .collect()
}

fn vocab() -> Vocabulary {
    Vocabulary {
        segments: Some(RFM_SEGMENTS.iter().map(|s| s.to_string()).collect()),
        templates: Some(vec![
            "win_back".into(),
            "win_back_short".into(),
            "win_back_reminder".into(),
        ]),
        attributes: None,
    }
}

#[test]
fn control_variants_and_steps_flow_into_the_plan() {
    let cat = parse_catalogue(GOALS, "goals.toml", &vocab()).expect("parses");
    assert_eq!(cat.program.control_share, 0.1);
    assert_eq!(cat.program.control_period, ControlPeriod::Month);
    let b = base(6000);
    let cands = candidates(&b);
    let mut options = PlanOptions::new(f64::MAX, NOW);
    options.seed = 11;
    options.control = Some(GlobalControl::of(&cat.program, NOW));
    let p = plan(&cat.goals, &cands, &options).expect("plans");
    let control = options.control.as_ref().expect("control");
    let in_control: Vec<&str> = b
        .customers
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| control.contains(id))
        .collect();
    // The control is excluded and counted, and no campaign member is in it.
    assert_eq!(p.excluded.get("global_control"), Some(&in_control.len()));
    assert!(
        (in_control.len() as f64 - 600.0).abs() < 120.0,
        "{}",
        in_control.len()
    );
    let c = &p.campaigns[0];
    assert!(c
        .audience
        .iter()
        .chain(&c.holdout)
        .all(|id| !control.contains(id)));
    // Variants: a partition of the audience, balanced within each segment, holdout apart.
    assert_eq!(c.variants.len(), 2);
    let mut all: Vec<&String> = c.variants.iter().flat_map(|v| &v.recipients).collect();
    all.sort();
    let mut aud: Vec<&String> = c.audience.iter().collect();
    aud.sort();
    assert_eq!(all, aud);
    assert!(c
        .variants
        .iter()
        .flat_map(|v| &v.recipients)
        .all(|id| !c.holdout.contains(id)));
    for seg in ["Hibernating", "At Risk"] {
        let n = |v: usize| {
            c.variants[v]
                .recipients
                .iter()
                .filter(|id| {
                    let i: usize = id[1..].parse().expect("index");
                    b.segments[i] == seg
                })
                .count()
        };
        assert!(n(0).abs_diff(n(1)) <= 1, "{seg}: {} vs {}", n(0), n(1));
    }
    // Reproducible by seed, different with another.
    let again = plan(&cat.goals, &cands, &options).expect("plans");
    assert_eq!(again.campaigns[0].variants, c.variants);
    options.seed = 12;
    let other = plan(&cat.goals, &cands, &options).expect("plans");
    assert_ne!(
        other.campaigns[0].variants[0].recipients,
        c.variants[0].recipients
    );
    // The test's sample size was fixed now.
    let vp = c.variant_power.as_ref().expect("power");
    assert_eq!(vp.variants, 2);
    assert!(vp.per_variant >= c.audience.len() / 2 - 2);
    assert!(vp.required_per_variant.is_some());
    // Steps and approval travel with the campaign.
    assert_eq!(c.steps.len(), 1);
    assert_eq!(c.steps[0].after_days, 7);
    assert_eq!(c.approve, Approval::EachStep);
}

#[test]
fn bad_sequences_are_reported_at_their_place() {
    let err = |text: &str| {
        parse_catalogue(text, "goals.toml", &vocab())
            .expect_err("rejected")
            .to_string()
    };
    let e = err(&GOALS.replace("not converted", "not convertd"));
    assert!(e.contains("unknown event `convertd`"), "{e}");
    // Line 27 of GOALS, column 13: the `c` after `when = "not `.
    assert!(e.starts_with("goals.toml:27:13:"), "{e}");
    let e = err(&GOALS.replace("win_back_short", "nope"));
    assert!(e.contains("unknown template \"nope\""), "{e}");
    let e = err(&GOALS.replace("control_share = 0.1", "control_share = 0.9"));
    assert!(e.contains("control_share 0.9"), "{e}");
    let e = err(&GOALS.replace("\"each_step\"", "\"never\""));
    assert!(e.contains("expected \"sequence\" or \"each_step\""), "{e}");
    let one_variant = GOALS.replace(
        "[[goal.variants]]\nid = \"b\"\ntemplate = \"win_back_short\"\n",
        "",
    );
    assert!(err(&one_variant).contains("expected 2 to 4 variants"));
    let e = err(&GOALS.replace("after_days = 7", "after_days = 0"));
    assert!(e.contains("after_days 0"), "{e}");
}

#[test]
fn a_test_on_a_share_leaves_the_rest_waiting() {
    let goals = GOALS.replace(
        "approve = \"each_step\"\n",
        "approve = \"each_step\"\ntest_share = 0.25\ntest_days = 10\ndefault_variant = \"b\"\n",
    );
    let cat = parse_catalogue(&goals, "goals.toml", &vocab()).expect("parses");
    let b = base(6000);
    let cands = candidates(&b);
    let mut options = PlanOptions::new(f64::MAX, NOW);
    options.seed = 11;
    let p = plan(&cat.goals, &cands, &options).expect("plans");
    let c = &p.campaigns[0];
    let t = c.share_test.as_ref().expect("share test");
    assert_eq!((t.days, t.default_variant.as_str()), (10, "b"));
    // Variants a, b and the rest: a partition of the audience; the holdout apart.
    let ids: Vec<&str> = c.variants.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", retain_planner::variants::REST_VARIANT]);
    let mut all: Vec<&String> = c.variants.iter().flat_map(|v| &v.recipients).collect();
    all.sort();
    let mut aud: Vec<&String> = c.audience.iter().collect();
    aud.sort();
    assert_eq!(all, aud);
    assert!(!c.holdout.is_empty());
    assert!(all.iter().all(|id| !c.holdout.contains(id)));
    // A quarter of the recipients is tested (rounded up per segment), the rest gets the default
    // variant's template until the winner is known.
    let tested = c.variants[0].recipients.len() + c.variants[1].recipients.len();
    let share = tested as f64 / c.audience.len() as f64;
    assert!((share - 0.25).abs() < 0.01, "{share}");
    assert_eq!(c.variants[2].template, "win_back_short");
    // The power analysis is over the tested share.
    let vp = c.variant_power.as_ref().expect("power");
    assert!(vp.per_variant <= tested / 2 + 1, "{vp:?}");
}
