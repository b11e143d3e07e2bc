//! Planning with predicted uplift: a goal given per-candidate uplift ranks by uplift × value
//! instead of response rate × value, and the budget, consent and holdout still hold.

use chrono::NaiveDate;
use retain_core::{Customer, CustomerFeatures, Prediction};
use retain_planner::expr::Vocabulary;
use retain_planner::{
    parse_goals, plan, Candidate, PlanError, PlanOptions, RfmScores, RFM_SEGMENTS,
};

const NOW: i64 = 1_700_000_000;

const GOAL: &str = r#"
[[goal]]
id = "win_back"
name = "Win-back"
rule = 'segment = "At Risk"'
window_days = 30
response_prior = 0.05
cost_per_recipient = 1.0
value = "clv"
"#;

struct Base {
    customers: Vec<Customer>,
    features: Vec<CustomerFeatures>,
    predictions: Vec<Prediction>,
}

impl Base {
    /// `n` customers; customer i has CLV 100 + i, so CLV ranks the last ones first.
    fn new(n: usize) -> Self {
        let d = NaiveDate::from_ymd_opt(2023, 1, 1).expect("date");
        let mut b = Base {
            customers: vec![],
            features: vec![],
            predictions: vec![],
        };
        for i in 0..n {
            let id = format!("c{i:04}");
            b.customers.push(Customer {
                id: id.clone(),
                email: Some(format!("{id}@example.com")),
                email_valid: true,
                subscribed: if i % 10 == 9 { Some(false) } else { Some(true) },
                ..Customer::default()
            });
            b.features.push(CustomerFeatures {
                customer_id: id.clone(),
                first_order: d,
                last_order: d,
                recency_days: 40,
                frequency: 3,
                repeat_purchases: 2,
                monetary_total: 90.0,
                avg_order_value: 30.0,
                tenure_days: 300,
            });
            b.predictions.push(Prediction {
                customer_id: id,
                p_alive: 0.5,
                expected_purchases_90d: 0.3,
                clv: 100.0 + i as f64,
            });
        }
        b
    }

    fn candidates(&self) -> Vec<Candidate<'_>> {
        (0..self.customers.len())
            .map(|i| Candidate {
                customer: &self.customers[i],
                features: &self.features[i],
                segment: "At Risk",
                scores: Some(RfmScores { r: 2, f: 3, m: 3 }),
                prediction: Some(&self.predictions[i]),
                suppression: None,
                last_campaign_at: None,
                due_day: None,
            })
            .collect()
    }
}

fn goals() -> Vec<retain_planner::Goal> {
    let vocab = Vocabulary {
        segments: Some(RFM_SEGMENTS.iter().map(|s| s.to_string()).collect()),
        templates: None,
        attributes: None,
    };
    parse_goals(GOAL, "goals.toml", &vocab).expect("goals")
}

#[test]
fn uplift_ranks_by_effect_times_value_within_budget() {
    let base = Base::new(200);
    let cands = base.candidates();
    // The first 40 customers (the lowest CLVs) are moved by the mail; the rest not at all, and
    // the 40 highest-CLV customers are put off by it.
    let uplift: Vec<f64> = (0..200)
        .map(|i| match i {
            0..40 => 0.2,
            160.. => -0.05,
            _ => 0.0,
        })
        .collect();
    let mut options = PlanOptions::new(20.0, NOW);
    options.holdout_fraction = 0.2;
    options.seed = 3;

    // By prior × CLV: the highest CLVs are chosen.
    let prior = plan(&goals(), &cands, &options).expect("plan");
    let prior_ids: Vec<&String> = prior.campaigns[0].audience.iter().collect();
    assert!(prior_ids.iter().all(|id| id.as_str() >= "c0160"));

    options.uplift.insert("win_back".into(), uplift.clone());
    let p = plan(&goals(), &cands, &options).expect("plan");
    let c = &p.campaigns[0];
    assert_eq!(c.response_source, "uplift");
    let chosen: Vec<usize> = c
        .audience
        .iter()
        .chain(&c.holdout)
        .map(|id| id[1..].parse().expect("index"))
        .collect();
    // Only customers with a positive effect, never an opted-out one.
    assert!(chosen.iter().all(|&i| i < 40), "{chosen:?}");
    assert!(chosen.iter().all(|&i| i % 10 != 9));
    // Within the budget (20 recipients at 1.0), with a holdout kept.
    assert!(
        c.cost <= 20.0 + 1e-9 && c.audience.len() == 20,
        "{}",
        c.audience.len()
    );
    assert!(!c.holdout.is_empty());
    // Expected value: Σ uplift × CLV − cost over the audience.
    let ev: f64 = c
        .audience
        .iter()
        .map(|id| {
            let i: usize = id[1..].parse().expect("index");
            0.2 * (100.0 + i as f64) - 1.0
        })
        .sum();
    assert!((c.expected_value - ev).abs() < 1e-6);
    // Of the 36 persuadable, mailable customers the highest uplift × CLV are selected: every
    // chosen one is worth at least any left out.
    let mailable: Vec<usize> = (0..40).filter(|i| i % 10 != 9).collect();
    let worst_chosen = chosen.iter().min().copied().expect("some");
    let best_left = mailable.iter().filter(|i| !chosen.contains(i)).max();
    if let Some(&l) = best_left {
        assert!(l < worst_chosen, "left {l} over chosen {worst_chosen}");
    }
}

#[test]
fn uplift_of_the_wrong_length_is_an_error() {
    let base = Base::new(10);
    let mut options = PlanOptions::new(20.0, NOW);
    options.uplift.insert("win_back".into(), vec![0.1; 3]);
    assert!(matches!(
        plan(&goals(), &base.candidates(), &options),
        Err(PlanError::UpliftLength {
            expected: 10,
            found: 3,
            ..
        })
    ));
}
