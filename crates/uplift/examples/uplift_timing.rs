//! Fit time and held-out Qini of the T- and X-learners on a seeded simulation, and the same data
//! written as CSV for the Python baseline (`benches/baselines/uplift_sklearn.py`).
//!
//! usage: uplift_timing N SEED OUT.csv   → one JSON line per learner on stdout

use std::io::Write;
use std::time::Instant;

use retain_uplift::simulate::{simulate, Scenario};
use retain_uplift::{evaluate, fit, split_by_campaign, FitOptions, LearnerKind, Schema};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(Ok(200_000), |s| s.parse())?;
    let seed: u64 = args.get(2).map_or(Ok(7), |s| s.parse())?;
    let xs = simulate(n, 10, 0.9, Scenario::Heterogeneous, seed);
    let (train, held) = split_by_campaign(xs, 0.3, seed)?;
    if let Some(path) = args.get(3) {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(
            w,
            "split,campaign,treated,converted,revenue,{}",
            Schema::default().names().join(",")
        )?;
        for (split, rows) in [("train", &train), ("test", &held)] {
            for e in rows.iter() {
                let f: Vec<String> = e.features.iter().map(|x| format!("{x}")).collect();
                writeln!(
                    w,
                    "{split},{},{},{},{},{}",
                    e.campaign,
                    u8::from(e.treated),
                    u8::from(e.converted),
                    e.revenue,
                    f.join(",")
                )?;
            }
        }
    }
    for learner in [LearnerKind::T, LearnerKind::X] {
        let options = FitOptions {
            learner,
            seed: 1,
            ..FitOptions::default()
        };
        let mut times = Vec::new();
        let mut model = None;
        for _ in 0..3 {
            let t = Instant::now();
            model = Some(fit(&train, &Schema::default(), &options)?);
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let model = model.ok_or("no fit")?;
        let t = Instant::now();
        let e = evaluate(&model, &held);
        let eval_s = t.elapsed().as_secs_f64();
        println!(
            "{{\"tool\":\"retain-{}\",\"train\":{},\"test\":{},\"fit_s\":{:.3},\"evaluate_s\":{:.3},\"qini\":{:.5},\"uplift_at_10\":{:.5}}}",
            learner.as_str(),
            train.len(),
            held.len(),
            times[1],
            eval_s,
            e.qini.coefficient,
            e.uplift_at[0].uplift.unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
