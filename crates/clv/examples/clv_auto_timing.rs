//! Times `predict --model auto` (model selection on a calibration/holdout split, then the chosen
//! model's fit and every customer's predictions with intervals) on simulated purchase histories.
//!
//! usage: clv_auto_timing [CUSTOMERS]   (default 1,000,000)
//!
//! Customers follow Pareto/NBD (r=0.55, α=70 days, s=0.6, β=84 days) with first purchases
//! spread over one year and purchases in whole days, observed for two years; each purchase has
//! a Gamma-distributed value. Prints one JSON line with the wall times.

use std::time::Instant;

use chrono::NaiveDate;
use retain_clv::simulate::Rng;
use retain_clv::{predict_auto, Period, PredictOptions};
use retain_core::features::CustomerHistory;
use retain_core::model::day_of;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("CUSTOMERS must be a number"))
        .unwrap_or(1_000_000);
    let start = NaiveDate::from_ymd_opt(2023, 1, 1).expect("date");
    let as_of = NaiveDate::from_ymd_opt(2024, 12, 31).expect("date");
    let (d0, d1) = (day_of(start), day_of(as_of));
    let t0 = Instant::now();
    let mut rng = Rng::new(7);
    let histories: Vec<CustomerHistory> = (0..n)
        .map(|i| {
            let first = d0 + (365.0 * rng.uniform()) as i32;
            let lambda = rng.gamma(0.55) / 70.0;
            let mu = rng.gamma(0.6) / 84.0;
            let death = f64::from(first) + rng.exponential() / mu;
            let end = death.min(f64::from(d1) + 1.0);
            let mut days = vec![(first, 20.0 + 10.0 * rng.gamma(2.0))];
            let mut now = f64::from(first);
            loop {
                now += rng.exponential() / lambda;
                if now >= end {
                    break;
                }
                let day = now.floor() as i32;
                let value = 20.0 + 10.0 * rng.gamma(2.0);
                match days.last_mut() {
                    Some(last) if last.0 == day => last.1 += value,
                    _ => days.push((day, value)),
                }
            }
            CustomerHistory {
                customer_id: format!("c{i:07}"),
                purchases: days.len() as u32,
                purchase_days: days,
                returns_total: 0.0,
            }
        })
        .collect();
    let generated = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let options = PredictOptions {
        period: Period::Week,
        ..PredictOptions::default()
    };
    let run = predict_auto(&histories, as_of, None, &options).expect("auto");
    let auto = t1.elapsed().as_secs_f64();
    let sel = run.selection.as_ref().expect("selection");
    let evidence: Vec<String> = sel
        .candidates
        .iter()
        .map(|c| {
            format!(
                "{{\"model\":\"{}\",\"mae\":{:?},\"total_error\":{:?}}}",
                c.model, c.holdout_mae, c.total_error
            )
        })
        .collect();
    println!(
        "{{\"customers\":{n},\"generate_s\":{generated:.3},\"auto_s\":{auto:.3},\"chosen\":\"{}\",\
         \"distinct_rows\":{},\"evidence\":[{}]}}",
        run.model,
        run.fit.distinct_rows,
        evidence.join(",")
    );
}
