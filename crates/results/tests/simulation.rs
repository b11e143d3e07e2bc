//! Coverage of the uplift intervals: 1,000 seeded campaigns with a known true effect on the
//! conversion rate and on revenue per person, pushed through the whole report computation. A 95 %
//! interval must cover the true effect in at least 93 % of them.

use chrono::DateTime;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};
use rand_xoshiro::Xoshiro256PlusPlus;
use retain_core::Order;
use retain_results::report::{compute, CampaignInput, Inputs, MemberInput, SendInput};

const T: i64 = 1_700_000_000;
const DAY: i64 = 86_400;

#[test]
fn ninety_five_percent_intervals_cover_the_true_effect() {
    let (recipients, holdout) = (1500usize, 500usize);
    let (p0, effect) = (0.08, 0.03);
    let mean_basket = 40.0;
    // Revenue per person = P(buy) × mean basket: the true difference is effect × 40.
    let true_revenue_effect = effect * mean_basket;
    let basket = Exp::new(1.0 / mean_basket).expect("rate");
    let campaign = CampaignInput {
        campaign_id: "sim".into(),
        plan_id: "p".into(),
        goal: "g".into(),
        goal_name: "G".into(),
        window_days: 14,
        cost_per_recipient: 0.1,
    };
    let members: Vec<MemberInput> = (0..recipients + holdout)
        .map(|i| MemberInput {
            customer_id: format!("c{i}"),
            holdout: i >= recipients,
            segment: if i % 2 == 0 { "a" } else { "b" }.into(),
        })
        .collect();
    let sends: Vec<SendInput> = (0..recipients)
        .map(|i| SendInput {
            id: i as i64,
            customer_id: format!("c{i}"),
            state: "sent".into(),
            sent_at: Some(T),
        })
        .collect();
    let (mut covered, mut covered_rev, mut significant) = (0, 0, 0);
    let runs = 1000;
    for seed in 0..runs {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut orders = Vec::new();
        for m in &members {
            let p = if m.holdout { p0 } else { p0 + effect };
            if rng.gen::<f64>() < p {
                let at = T + rng.gen_range(0..13 * DAY);
                orders.push(Order {
                    order_id: format!("{}-o", m.customer_id),
                    customer_id: m.customer_id.clone(),
                    ordered_at: DateTime::from_timestamp(at, 0).expect("ts").naive_utc(),
                    amount: basket.sample(&mut rng),
                    items: 1,
                    is_return: false,
                    currency: None,
                    email: None,
                    product: None,
                });
            }
        }
        let r = compute(Inputs {
            campaign: &campaign,
            members: &members,
            sends: &sends,
            events: &[],
            orders: &orders,
            now: T + 30 * DAY,
        });
        let ci = r.uplift.ci95.expect("both groups");
        if ci[0] <= effect && effect <= ci[1] {
            covered += 1;
        }
        let rci = r.revenue_uplift.ci95.expect("both groups");
        if rci[0] <= true_revenue_effect && true_revenue_effect <= rci[1] {
            covered_rev += 1;
        }
        if r.significant {
            significant += 1;
        }
    }
    let cov = covered as f64 / runs as f64;
    let cov_rev = covered_rev as f64 / runs as f64;
    assert!(cov >= 0.93, "conversion uplift coverage {cov}");
    assert!(cov_rev >= 0.93, "revenue uplift coverage {cov_rev}");
    // Not a degenerate (infinitely wide) interval: with this effect and size it detects often.
    assert!(
        significant > runs / 4,
        "significant in {significant} of {runs}"
    );
    eprintln!("coverage: conversion {cov}, revenue {cov_rev}; significant {significant}/{runs}");
}
