//! `retain demo` shows results: over several seeds, the 95% intervals of the measured uplift
//! cover the simulated true uplift for most campaigns.
//!
//! The rule: at least 80% of all campaigns' intervals over the seeds run cover their truth.
//! Nominal 95% intervals miss about one in twenty; with some twenty intervals, falling below 80%
//! by chance has a probability well under 1%, while a biased estimate (or a simulation whose
//! truth is not what the report estimates) misses far more often.
//!
//! The demo's win_back goal is an A/B test with a follow-up step: its report must show both
//! variants and the step's funnel with numbers.
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
        let step_sent = sequence_shown(&stdout);
        let steps = serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(ws.join("demo-results.json")).expect("results"),
        )
        .expect("json")["steps"]
            .clone();
        assert_eq!(steps[0]["sent"].as_u64(), Some(step_sent), "{steps}");
        assert!(steps[0]["true_added_conversions"].as_f64().expect("truth") > 0.0);
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

/// A number as the tables print it (`1,234`, `17.4%`, `+11.49`).
fn number(s: &str) -> Option<f64> {
    s.trim_end_matches(['%'])
        .replace([',', '+'], "")
        .parse()
        .ok()
}

/// Checks the printed report of the A/B-tested win_back campaign: both variants with
/// recipients, a conversion rate and an uplift interval, and the follow-up step's funnel with
/// emails sent and opened. Returns the step's sent count.
fn sequence_shown(stdout: &str) -> u64 {
    let lines: Vec<&str> = stdout.lines().collect();
    let ab = lines
        .iter()
        .position(|l| l.starts_with("A/B test ("))
        .unwrap_or_else(|| panic!("no A/B test in the report:\n{stdout}"));
    for (id, template) in [("a", "win_back"), ("b", "win_back_b")] {
        let row = lines[ab..]
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|t| t.len() >= 2 && t[0] == id && t[1] == template)
            .unwrap_or_else(|| panic!("no row for variant {id}:\n{stdout}"));
        // variant template recipients opens clicks conversion uplift pp lo to hi pp
        assert!(row.len() >= 11 && row[9] == "to", "{row:?}");
        assert!(number(row[2]).expect("recipients") > 100.0, "{row:?}");
        assert!(number(row[5]).expect("conversion") > 0.0, "{row:?}");
        let (lo, hi) = (number(row[8]).expect("lo"), number(row[10]).expect("hi"));
        assert!(lo < hi, "{row:?}");
    }
    let steps = lines
        .iter()
        .position(|l| *l == "Follow-up steps")
        .unwrap_or_else(|| panic!("no follow-up steps in the report:\n{stdout}"));
    // step template sent opened clicked converted
    let row: Vec<&str> = lines[steps + 3].split_whitespace().collect();
    assert_eq!(row.len(), 6, "{row:?}");
    assert_eq!(row[0], "1", "{row:?}");
    assert_eq!(row[1], "renewal_reminder", "{row:?}");
    let sent = number(row[2]).expect("sent");
    assert!(sent > 100.0, "{row:?}");
    assert!(number(row[3]).expect("opened") > 0.0, "{row:?}");
    assert!(stdout.contains("follow-up steps created"), "{stdout}");
    sent as u64
}
