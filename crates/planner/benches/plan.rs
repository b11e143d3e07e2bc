//! Planning 1M customers across the 9 default goals (criterion).
//!
//! Inputs are generated once outside the timed loop; the measured time is `plan()` alone:
//! exclusions, eligibility of every customer for every goal, grouping, the optimiser, holdouts,
//! explanations and the audience/holdout id lists.

use criterion::{criterion_group, criterion_main, Criterion};
use retain_planner::expr::Vocabulary;
use retain_planner::{parse_goals, plan, PlanOptions, DEFAULT_GOALS, RFM_SEGMENTS};

#[path = "support/data.rs"]
mod data;
use data::{candidates, data, NOW};

fn bench(c: &mut Criterion) {
    let vocab = Vocabulary {
        segments: Some(RFM_SEGMENTS.iter().map(|s| s.to_string()).collect()),
        ..Vocabulary::default()
    };
    let goals = parse_goals(DEFAULT_GOALS, "goals.toml", &vocab).expect("default goals");
    let d = data(1_000_000);
    let cands = candidates(&d);
    let mut group = c.benchmark_group("plan_1m_customers_9_goals");
    group.sample_size(10);
    for (label, budget) in [("budget_binding_20k", 20_000.0), ("budget_ample", 1e9)] {
        let options = PlanOptions {
            seed: 7,
            ..PlanOptions::new(budget, NOW)
        };
        let p = plan(&goals, &cands, &options).expect("plans");
        eprintln!(
            "{label}: {} campaigns, {} recipients, used {:.2}, optimiser nodes {} (proven {})",
            p.campaigns.len(),
            p.campaigns.iter().map(|c| c.audience.len()).sum::<usize>(),
            p.budget.used,
            p.optimiser.nodes,
            p.optimiser.proven_optimal
        );
        group.bench_function(label, |b| {
            b.iter(|| plan(&goals, &cands, &options).expect("plans"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
