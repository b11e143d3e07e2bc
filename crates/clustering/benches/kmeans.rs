//! Criterion benchmarks of segmentation: the k-means engine (f64, f32, and linfa's own k-means for
//! comparison) on a seeded RFM-like matrix, RFM scoring, the silhouette of a sample, and whole
//! `segment` runs.
//!
//! The matrix imitates the scikit-learn baseline's (exponential recency, gamma-Poisson frequency,
//! log-normal spend, `log1p` and standardised); `scripts/bench-kmeans.sh` clusters the baseline's
//! exact matrix side by side with scikit-learn. Sizes: `RETAIN_BENCH_N` rows (default 200,000).

mod support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use retain_clustering::kmeans::{kmeans, linfa_kmeans, KMeansConfig, Precision};
use retain_clustering::rfm::score_customers;
use retain_clustering::silhouette::silhouette;
use retain_clustering::{segment, KChoice, Method, SegmentInput, SegmentParams};
use support::data::{customers, matrix};

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
