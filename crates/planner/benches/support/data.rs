//! Synthetic customer bases for the planner's benchmark and timing example: seeded, with the
//! mix of segments, consent, suppressions and recent sends a real base has.

#![allow(dead_code)]

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use retain_core::{Customer, CustomerFeatures, Prediction, SuppressionReason};
use retain_planner::{Candidate, RfmScores, RFM_SEGMENTS};

pub const NOW: i64 = 1_700_000_000;

pub struct Data {
    customers: Vec<Customer>,
    features: Vec<CustomerFeatures>,
    predictions: Vec<Option<Prediction>>,
    segments: Vec<&'static str>,
    scores: Vec<RfmScores>,
    suppression: Vec<Option<SuppressionReason>>,
    last_sent: Vec<Option<i64>>,
}

pub fn data(n: usize) -> Data {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2024);
    let day = NaiveDate::from_ymd_opt(2023, 6, 1).expect("date");
    let mut d = Data {
        customers: Vec::with_capacity(n),
        features: Vec::with_capacity(n),
        predictions: Vec::with_capacity(n),
        segments: Vec::with_capacity(n),
        scores: Vec::with_capacity(n),
        suppression: Vec::with_capacity(n),
        last_sent: Vec::with_capacity(n),
    };
    for i in 0..n {
        let id = format!("C{i:07}");
        let r: f64 = rng.gen();
        d.customers.push(Customer {
            id: id.clone(),
            email: if r < 0.01 {
                None
            } else {
                Some(format!("{id}@example.com"))
            },
            email_valid: r > 0.02,
            subscribed: if r > 0.97 {
                Some(false)
            } else if r > 0.5 {
                Some(true)
            } else {
                None
            },
            locale: Some("en".into()),
            ..Customer::default()
        });
        let frequency = 1 + (rng.gen::<f64>().powi(3) * 20.0) as u32;
        let aov = 10.0 + rng.gen::<f64>() * 90.0;
        d.features.push(CustomerFeatures {
            customer_id: id.clone(),
            first_order: day,
            last_order: day,
            recency_days: rng.gen_range(0..700),
            frequency,
            repeat_purchases: frequency - 1,
            monetary_total: aov * f64::from(frequency),
            avg_order_value: aov,
            tenure_days: rng.gen_range(0..1500),
        });
        d.predictions
            .push((rng.gen::<f64>() > 0.05).then(|| Prediction {
                customer_id: id,
                p_alive: rng.gen(),
                expected_purchases_90d: rng.gen::<f64>() * 2.0,
                clv: rng.gen::<f64>().powi(2) * 600.0,
            }));
        d.segments
            .push(RFM_SEGMENTS[rng.gen_range(0..RFM_SEGMENTS.len())]);
        d.scores.push(RfmScores {
            r: rng.gen_range(1..=5),
            f: rng.gen_range(1..=5),
            m: rng.gen_range(1..=5),
        });
        d.suppression.push(if rng.gen::<f64>() < 0.01 {
            Some(SuppressionReason::HardBounce)
        } else {
            None
        });
        d.last_sent.push(if rng.gen::<f64>() < 0.1 {
            Some(NOW - rng.gen_range(0..30) * 86_400)
        } else {
            None
        });
    }
    d
}

pub fn candidates(d: &Data) -> Vec<Candidate<'_>> {
    (0..d.customers.len())
        .map(|i| Candidate {
            customer: &d.customers[i],
            features: &d.features[i],
            segment: d.segments[i],
            scores: Some(d.scores[i]),
            prediction: d.predictions[i].as_ref(),
            suppression: d.suppression[i],
            last_campaign_at: d.last_sent[i],
            due_day: None,
        })
        .collect()
}
