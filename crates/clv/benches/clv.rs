//! Criterion benchmarks of the CLV fits: BG/NBD and Gamma-Gamma on the CDNOW summary, and BG/NBD
//! on the summary replicated to ~100k and ~1M customers (with and without a per-customer jitter
//! that makes every row distinct, so the merged-row reduction cannot help); Pareto/NBD and
//! MBG/NBD on the CDNOW summary and on 100,000 simulated customers (Pareto/NBD truth
//! r=0.55, α=10, s=0.6, β=12; ages 30–78 weeks), once with whole days (rows repeat) and once
//! with continuous times (every row distinct).

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use retain_clv::model::{self, Model, ModelParams};
use retain_clv::simulate::{cohort, Cohort};
use retain_clv::{bgnbd, gamma_gamma, ParetoNbdParams, Summary};

fn cdnow() -> Vec<Summary> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/cdnow/cdnow_customers_summary_with_transactions.csv");
    let text = std::fs::read_to_string(&path).expect("CDNOW summary");
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<f64> = line
                .split(',')
                .map(|v| v.trim().parse().expect("number"))
                .collect();
            Summary {
                frequency: f[1],
                recency: f[2],
                t: f[3],
                monetary: f[4],
            }
        })
        .collect()
}

/// `k` copies; with `jitter`, copy `j` has its times scaled by `1 + j·1e-6` so rows are distinct.
fn replicate(base: &[Summary], k: usize, jitter: bool) -> Vec<Summary> {
    (0..k)
        .flat_map(|j| {
            let f = if jitter { 1.0 + j as f64 * 1e-6 } else { 1.0 };
            base.iter().map(move |s| Summary {
                recency: s.recency * f,
                t: s.t * f,
                ..*s
            })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let base = cdnow();
    let mut g = c.benchmark_group("bgnbd_fit");
    g.sample_size(10);
    for (k, jitter) in [
        (1, false),
        (43, false),
        (425, false),
        (43, true),
        (425, true),
    ] {
        let data = replicate(&base, k, jitter);
        let label = format!("{}{}", data.len(), if jitter { "_distinct" } else { "" });
        g.bench_with_input(BenchmarkId::from_parameter(label), &data, |b, d| {
            b.iter(|| bgnbd::fit(d).expect("fit"))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("pareto_nbd_fit");
    g.sample_size(10);
    g.bench_function("cdnow", |b| {
        b.iter(|| model::fit(&base, Model::ParetoNbd).expect("fit"))
    });
    let truth = ModelParams::ParetoNbd(ParetoNbdParams {
        r: 0.55,
        alpha: 10.0,
        s: 0.6,
        beta: 12.0,
    });
    for (label, tick) in [("100000_days", Some(1.0 / 7.0)), ("100000_distinct", None)] {
        let shape = Cohort {
            customers: 100_000,
            t_min: 30.0,
            t_max: 78.0,
            tick,
        };
        let data = cohort(&truth, &shape, 1);
        g.bench_with_input(BenchmarkId::from_parameter(label), &data, |b, d| {
            b.iter(|| model::fit(d, Model::ParetoNbd).expect("fit"))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("mbgnbd_fit");
    g.sample_size(10);
    g.bench_function("cdnow", |b| {
        b.iter(|| model::fit(&base, Model::MbgNbd).expect("fit"))
    });
    g.finish();
    let pairs = gamma_gamma::repeat_customers(&base);
    c.bench_function("gamma_gamma_fit/cdnow", |b| {
        b.iter(|| gamma_gamma::fit(&pairs).expect("fit"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
