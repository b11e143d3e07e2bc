//! Times `plan()` on a synthetic base, reporting wall-clock and process CPU time per plan.
//!
//! CPU time is what the planning costs whatever else the machine is doing; on an otherwise idle
//! machine the wall time is at most that (less when both cores work).
//!
//! `cargo run --release -p retain-planner --example plan_timing -- [customers] [budget] [runs]`

use std::time::Instant;

use retain_planner::expr::Vocabulary;
use retain_planner::{parse_goals, plan, PlanOptions, DEFAULT_GOALS, RFM_SEGMENTS};

#[path = "../benches/support/data.rs"]
mod data;

/// User + system CPU seconds of this process so far (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Clock ticks are 100 per second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let budget: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20_000.0);
    let runs: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);
    let vocab = Vocabulary {
        segments: Some(RFM_SEGMENTS.iter().map(|s| s.to_string()).collect()),
        ..Vocabulary::default()
    };
    let goals = match parse_goals(DEFAULT_GOALS, "goals.toml", &vocab) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(3);
        }
    };
    let d = data::data(n);
    let cands = data::candidates(&d);
    let options = PlanOptions {
        seed: 7,
        ..PlanOptions::new(budget, data::NOW)
    };
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..runs {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let p = match plan(&goals, &cands, &options) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        walls.push(t0.elapsed().as_secs_f64());
        cpus.push(cpu_seconds() - c0);
        std::hint::black_box(p);
    }
    walls.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    println!(
        "customers={n} goals={} budget={budget} runs={runs} wall_median={:.3}s wall_min={:.3}s cpu_median={:.3}s threads={}",
        goals.len(),
        walls[walls.len() / 2],
        walls[0],
        cpus[cpus.len() / 2],
        rayon::current_num_threads()
    );
}
