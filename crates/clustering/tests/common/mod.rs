//! Shared test helpers: seeded Gaussian blobs, the adjusted Rand index, customer builders.
#![allow(dead_code)]

use std::collections::HashMap;

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use retain_core::CustomerFeatures;

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// `per` points around each of `centers` (row-major matrix, true labels), spread `sd`.
pub fn blobs(centers: &[Vec<f64>], per: usize, sd: f64, seed: u64) -> (Vec<f64>, Vec<usize>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for i in 0..per {
        for (c, center) in centers.iter().enumerate() {
            let _ = i;
            for &m in center {
                data.push(m + sd * normal(&mut rng));
            }
            labels.push(c);
        }
    }
    (data, labels)
}

fn comb2(x: u64) -> f64 {
    (x * x.saturating_sub(1)) as f64 / 2.0
}

/// Adjusted Rand index (Hubert & Arabie) of two labelings of the same points.
pub fn ari(a: &[usize], b: &[usize]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut table: HashMap<(usize, usize), u64> = HashMap::new();
    let mut rows: HashMap<usize, u64> = HashMap::new();
    let mut cols: HashMap<usize, u64> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1;
        *rows.entry(x).or_default() += 1;
        *cols.entry(y).or_default() += 1;
    }
    let index: f64 = table.values().map(|&v| comb2(v)).sum();
    let sum_rows: f64 = rows.values().map(|&v| comb2(v)).sum();
    let sum_cols: f64 = cols.values().map(|&v| comb2(v)).sum();
    let total = comb2(a.len() as u64);
    let expected = sum_rows * sum_cols / total;
    let max = (sum_rows + sum_cols) / 2.0;
    if max == expected {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

pub fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 30).expect("date")
}

/// A customer with the given recency (days), frequency and monetary total.
pub fn customer(id: &str, recency: i64, frequency: u32, monetary: f64) -> CustomerFeatures {
    let as_of = as_of();
    let tenure = recency + 30 * i64::from(frequency);
    CustomerFeatures {
        customer_id: id.to_string(),
        first_order: as_of - chrono::Duration::days(tenure),
        last_order: as_of - chrono::Duration::days(recency),
        recency_days: recency,
        frequency,
        repeat_purchases: frequency.saturating_sub(1),
        monetary_total: monetary,
        avg_order_value: monetary / f64::from(frequency.max(1)),
        tenure_days: tenure,
    }
}

/// Customers in well-separated groups: each group is (recency, frequency, monetary) around which
/// values vary by a few percent. Returns the customers and their true group.
pub fn customer_groups(
    groups: &[(f64, f64, f64)],
    per: usize,
    seed: u64,
) -> (Vec<CustomerFeatures>, Vec<usize>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut truth = Vec::new();
    for i in 0..per {
        for (g, &(r, f, m)) in groups.iter().enumerate() {
            let jitter = |rng: &mut Xoshiro256PlusPlus, v: f64| v * (1.0 + 0.05 * normal(rng));
            let rec = jitter(&mut rng, r).round().max(0.0) as i64;
            let freq = jitter(&mut rng, f).round().max(1.0) as u32;
            let mon = jitter(&mut rng, m).max(1.0);
            out.push(customer(&format!("g{g}-{i:05}"), rec, freq, mon));
            truth.push(g);
        }
    }
    (out, truth)
}
