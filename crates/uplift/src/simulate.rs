//! Seeded campaign histories with a known treatment effect, for tests and benchmarks.
//!
//! Each member has the base features (recency, frequency, monetary, average order value, tenure,
//! CLV, P(alive)). The chance to buy unmailed rises with the average order value and tenure (the
//! "would buy anyway" customers a response model ranks first); the effect of the mail is
//! [`Scenario::effect`] of recency and frequency. Members are mailed with probability
//! `treated_share`, the rest held out.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::features::BASE_FEATURES;
use crate::learner::Example;

/// What the mail does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scenario {
    /// +0.25 for recent (< 60 days) frequent (≥ 5 orders) buyers; otherwise −0.1 for big
    /// spenders (average order > 150), who buy often anyway and are put off by the mail; nothing
    /// for the rest. A response model ranks the big spenders first — the wrong ones.
    Heterogeneous,
    /// No effect on anyone.
    None,
}

impl Scenario {
    /// The true conversion effect for a feature vector (the base features' order).
    pub fn effect(self, x: &[f64]) -> f64 {
        match self {
            Scenario::None => 0.0,
            Scenario::Heterogeneous => {
                let (recency, frequency, aov) = (x[0], x[1], x[3]);
                if recency < 60.0 && frequency >= 5.0 {
                    0.25
                } else if aov > 150.0 {
                    -0.1
                } else {
                    0.0
                }
            }
        }
    }
}

/// `n` members spread over `campaigns` campaigns (`c0`, `c1`, …).
pub fn simulate(
    n: usize,
    campaigns: usize,
    treated_share: f64,
    scenario: Scenario,
    seed: u64,
) -> Vec<Example> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let campaigns = campaigns.max(1);
    (0..n)
        .map(|i| {
            let recency = rng.gen_range(0.0..400.0_f64).floor();
            let frequency = f64::from(rng.gen_range(1..=10u32));
            let aov = rng.gen_range(20.0..200.0_f64);
            let tenure = recency + rng.gen_range(0.0..700.0_f64).floor();
            let p_alive = (1.0 - recency / 450.0).clamp(0.01, 1.0);
            let clv = aov * frequency * p_alive * 0.5;
            let x = vec![
                recency,
                frequency,
                aov * frequency,
                aov,
                tenure,
                clv,
                p_alive,
            ];
            debug_assert_eq!(x.len(), BASE_FEATURES.len());
            let base = 0.03 + 0.5 * (aov - 20.0) / 180.0 + 0.05 * (tenure / 1100.0);
            let treated = rng.gen_bool(treated_share.clamp(0.0, 1.0));
            let p = if treated {
                base + scenario.effect(&x)
            } else {
                base
            }
            .clamp(0.0, 1.0);
            let converted = rng.gen_bool(p);
            Example {
                campaign: format!("c{}", i % campaigns),
                treated,
                features: x,
                converted,
                revenue: if converted { aov } else { 0.0 },
            }
        })
        .collect()
}
