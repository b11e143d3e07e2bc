//! Fit and evaluation time of the uplift learners on simulated campaign histories.

use criterion::{criterion_group, criterion_main, Criterion};
use retain_uplift::simulate::{simulate, Scenario};
use retain_uplift::{evaluate, fit, split_by_campaign, FitOptions, LearnerKind, Schema};

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("UPLIFT_BENCH_MEMBERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let xs = simulate(n, 10, 0.9, Scenario::Heterogeneous, 7);
    let (train, held) = split_by_campaign(xs, 0.3, 7).expect("split");
    let mut g = c.benchmark_group(format!("uplift_{n}"));
    g.sample_size(10);
    for learner in [LearnerKind::T, LearnerKind::X] {
        let options = FitOptions {
            learner,
            seed: 1,
            ..FitOptions::default()
        };
        g.bench_function(format!("fit_{}", learner.as_str()), |b| {
            b.iter(|| fit(&train, &Schema::default(), &options).expect("fit"))
        });
        let model = fit(&train, &Schema::default(), &options).expect("fit");
        let e = evaluate(&model, &held);
        eprintln!(
            "{}-learner: qini {:.4}, uplift@10 {:?}, held out {} members",
            learner.as_str(),
            e.qini.coefficient,
            e.uplift_at[0].uplift,
            e.members
        );
        g.bench_function(format!("evaluate_{}", learner.as_str()), |b| {
            b.iter(|| evaluate(&model, &held))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
