//! Seeded synthetic customers shaped like the scikit-learn baseline's matrix (exponential
//! recency, gamma-Poisson frequency, log-normal spend), shared by the benchmark and the timing
//! example.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use retain_core::CustomerFeatures;

fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Gamma(shape < 1) by Marsaglia–Tsang on shape + 1 with the usual power correction.
fn gamma(rng: &mut impl Rng, shape: f64, scale: f64) -> f64 {
    let d = shape + 1.0 - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    let g = loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.gen_range(f64::EPSILON..1.0);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            break d * v;
        }
    };
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    g * u.powf(1.0 / shape) * scale
}

fn poisson(rng: &mut impl Rng, lambda: f64) -> u32 {
    let l = (-lambda).exp();
    let (mut k, mut p) = (0u32, 1.0);
    loop {
        p *= rng.gen::<f64>();
        if p <= l || k > 10_000 {
            return k;
        }
        k += 1;
    }
}

/// Seeded customers shaped like the baseline's matrix.
pub fn customers(n: usize) -> Vec<CustomerFeatures> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
    let as_of = chrono::NaiveDate::from_ymd_opt(2024, 12, 31).expect("date");
    (0..n)
        .map(|i| {
            let recency = (-90.0 * rng.gen_range(f64::EPSILON..1.0f64).ln()) as i64 + 1;
            let rate = gamma(&mut rng, 0.8, 3.0);
            let frequency = 1 + poisson(&mut rng, rate);
            let monetary = f64::from(frequency) * (3.5 + 0.9 * normal(&mut rng)).exp();
            let tenure = recency + 20 * i64::from(frequency);
            CustomerFeatures {
                customer_id: format!("C{i:07}"),
                first_order: as_of - chrono::Duration::days(tenure),
                last_order: as_of - chrono::Duration::days(recency),
                recency_days: recency,
                frequency,
                repeat_purchases: frequency - 1,
                monetary_total: monetary,
                avg_order_value: monetary / f64::from(frequency),
                tenure_days: tenure,
            }
        })
        .collect()
}

/// The `log1p`-standardised recency/frequency/monetary matrix of `cs`, row-major.
#[allow(dead_code)] // used by the benchmark, not by the timing example
pub fn matrix(cs: &[CustomerFeatures]) -> Vec<f64> {
    let (_, x) = retain_clustering::Scaling::fit(&retain_clustering::Feature::RFM, cs, None)
        .expect("scaling");
    x
}
