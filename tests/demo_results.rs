//! `retain demo` shows results: over several seeds, the 95% intervals of the measured uplift
//! cover the simulated true uplift for most campaigns.
//!
//! The rule: at least 80% of all campaigns' intervals over the seeds run cover their truth.
//! Nominal 95% intervals miss about one in twenty; with some twenty intervals, falling below 80%
//! by chance has a probability well under 1%, while a biased estimate (or a simulation whose
//! truth is not what the report estimates) misses far more often.
//!
//! The seeds' demos run at once, as separate processes, so the test takes about as long as the
//! slowest of them rather than their sum.

use std::process::{Command, Stdio};

mod common;

#[test]
fn measured_uplift_intervals_cover_the_simulated_truth() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut covered, mut total, mut program_covered) = (0usize, 0usize, 0usize);
    let seeds = [1u64, 2, 3];
    let runs: Vec<(u64, std::path::PathBuf, std::process::Child)> = seeds
        .iter()
        .map(|&seed| {
            let ws = dir.path().join(format!("demo-{seed}"));
            // Files, not pipes: a full pipe would stall a demo while another is waited for.
            let log = |name: &str| {
                std::fs::File::create(dir.path().join(format!("demo-{seed}.{name}"))).expect("log")
            };
            let child = Command::new(env!("CARGO_BIN_EXE_retain"))
                .args(["demo"])
                .arg(&ws)
                .args(["--customers", "12000", "--seed", &seed.to_string()])
                .env_remove("RETAIN_DATABASE_URL")
                .env_remove("RETAIN_WORKSPACE")
                .stdout(Stdio::from(log("out")))
                .stderr(Stdio::from(log("err")))
                .spawn()
                .expect("run demo");
            (seed, ws, child)
        })
        .collect();
    for (seed, ws, mut child) in runs {
        let status = child.wait().expect("demo");
        let read = |name: &str| {
            std::fs::read_to_string(dir.path().join(format!("demo-{seed}.{name}")))
                .unwrap_or_default()
        };
        assert!(status.success(), "seed {seed}: {}", read("err"));
        let stdout = read("out");
        assert!(stdout.contains("true uplift"), "{stdout}");
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(ws.join("demo-results.json")).expect("results"),
        )
        .expect("json");
        let campaigns = v["campaigns"].as_array().expect("campaigns");
        assert!(campaigns.len() >= 3, "{v}");
        for c in campaigns {
            let truth = c["true_uplift"].as_f64().expect("truth");
            let lo = c["ci95"][0].as_f64().expect("lo");
            let hi = c["ci95"][1].as_f64().expect("hi");
            total += 1;
            if lo <= truth && truth <= hi {
                covered += 1;
            }
        }
        // Every sent email was really opened through the tracking handlers.
        assert!(v["events_recorded"].as_u64().expect("events") > 0);
        if v["program_covered"].as_bool() == Some(true) {
            program_covered += 1;
        }
    }
    let share = covered as f64 / total as f64;
    assert!(
        share >= 0.8,
        "{covered} of {total} campaign intervals cover the truth ({share:.2})"
    );
    assert!(
        program_covered + 1 >= seeds.len(),
        "the programme interval covered the truth in {program_covered} of {} seeds",
        seeds.len()
    );
}
