//! Criterion benchmarks of segmentation: the k-means engine (f64, f32, and linfa's own k-means for
//! comparison) on a seeded RFM-like matrix, RFM scoring, the silhouette of a sample, and whole
//! `segment` runs.
//!
//! The matrix imitates the scikit-learn baseline's (exponential recency, gamma-Poisson frequency,
//! log-normal spend, `log1p` and standardised); `scripts/bench-kmeans.sh` clusters the baseline's
//! exact matrix side by side with scikit-learn. Sizes: `RETAIN_BENCH_N` rows (default 200,000).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use retain_clustering::kmeans::{kmeans, linfa_kmeans, KMeansConfig, Precision};
use retain_clustering::rfm::score_customers;
use retain_clustering::silhouette::silhouette;
use retain_clustering::{segment, KChoice, Method, SegmentInput, SegmentParams};
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
fn customers(n: usize) -> Vec<CustomerFeatures> {
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
fn matrix(cs: &[CustomerFeatures]) -> Vec<f64> {
    let (_, x) = retain_clustering::Scaling::fit(&retain_clustering::Feature::RFM, cs, None)
        .expect("scaling");
    x
}

fn bench_n() -> usize {
    std::env::var("RETAIN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

fn kmeans_engines(c: &mut Criterion) {
    let n = bench_n();
    let x = matrix(&customers(n));
    let mut g = c.benchmark_group("kmeans_k8");
    g.sample_size(10);
    for (name, precision) in [
        ("retain_f64", Precision::F64),
        ("retain_f32", Precision::F32),
    ] {
        g.bench_with_input(BenchmarkId::new(name, n), &x, |b, x| {
            let mut cfg = KMeansConfig::new(8);
            cfg.precision = precision;
            b.iter(|| kmeans(x, 3, &cfg).expect("fit"))
        });
    }
    // linfa's tolerance bounds the unsquared centroid shift: 1e-2 here is scikit-learn's 1e-4.
    g.bench_with_input(BenchmarkId::new("linfa", n), &x, |b, x| {
        b.iter(|| linfa_kmeans(x, 3, 8, 1, 1e-2, 0).expect("fit"))
    });
    g.finish();
}

fn scoring(c: &mut Criterion) {
    let cs = customers(1_000_000);
    let mut g = c.benchmark_group("rfm");
    g.sample_size(10);
    g.bench_function("score_1m_customers", |b| {
        b.iter(|| score_customers(&cs).expect("scores"))
    });
    g.finish();

    let x = matrix(&cs[..3000]);
    let fit = kmeans(&x, 3, &KMeansConfig::new(6)).expect("fit");
    let mut g = c.benchmark_group("silhouette");
    g.sample_size(10);
    g.bench_function("sample_3000_k6", |b| {
        b.iter(|| silhouette(&x, 3, &fit.labels))
    });
    g.finish();
}

fn runs(c: &mut Criterion) {
    let cs = customers(100_000);
    let mut g = c.benchmark_group("segment_100k");
    g.sample_size(10);
    g.bench_function("rfm", |b| {
        b.iter(|| segment(&SegmentInput::new(&cs), &SegmentParams::default()).expect("run"))
    });
    let p = SegmentParams {
        k: KChoice::default(),
        ..SegmentParams::new(Method::Kmeans)
    };
    g.bench_function("kmeans_auto_2_10", |b| {
        b.iter(|| segment(&SegmentInput::new(&cs), &p).expect("run"))
    });
    g.finish();
}

criterion_group!(benches, kmeans_engines, scoring, runs);
criterion_main!(benches);
