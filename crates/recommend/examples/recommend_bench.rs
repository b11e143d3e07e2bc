//! The recommendation benchmark: a seeded shop of order lines (default 10M lines, 1M customers,
//! 50,000 products), the model built from it customer by customer, top-10 for every customer,
//! and the process's peak memory. `--csv FILE` also writes the same lines as CSV for the pandas
//! baseline (benches/baselines/recommend_scipy.py); `--csv-only` stops after writing it.
//!
//! The shop: 500 taste groups of 100 products; each customer belongs to one group and draws 70%
//! of their lines from it (Zipf-like within the group) and 30% from the whole catalogue's
//! popularity (Zipf-like); ~3% of lines are returns; days ascend within a customer over two years.
//!
//! Run: `cargo run --release -p retain-recommend --example recommend_bench -- [--lines N]
//! [--customers N] [--products N] [--seed S] [--csv FILE] [--csv-only]`.

use std::io::Write;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use retain_recommend::{Line, ModelBuilder, Options};

struct Params {
    lines: u64,
    customers: u64,
    products: u64,
    seed: u64,
    csv: Option<String>,
    csv_only: bool,
}

fn params() -> Params {
    let mut p = Params {
        lines: 10_000_000,
        customers: 1_000_000,
        products: 50_000,
        seed: 42,
        csv: None,
        csv_only: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--lines" => p.lines = v.parse().unwrap_or(p.lines),
            "--customers" => p.customers = v.parse().unwrap_or(p.customers),
            "--products" => p.products = v.parse().unwrap_or(p.products),
            "--seed" => p.seed = v.parse().unwrap_or(p.seed),
            "--csv" => p.csv = Some(v),
            "--csv-only" => {
                p.csv_only = true;
                i += 1;
                continue;
            }
            _ => {}
        }
        i += 2;
    }
    p
}

/// A Zipf-like draw from 0..n (exponent ~1): floor(n^u) - 1 with u uniform.
fn zipf(rng: &mut Xoshiro256PlusPlus, n: u64) -> u64 {
    let u: f64 = rng.gen();
    (((n as f64 + 1.0).powf(u)) as u64)
        .saturating_sub(1)
        .min(n - 1)
}

/// Generates every customer's lines, in customer order, into `f(customer, lines)`.
fn generate(p: &Params, mut f: impl FnMut(i64, &[Line])) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
    let groups = (p.products / 100).max(1);
    let group_size = p.products / groups;
    let mean = p.lines as f64 / p.customers as f64;
    let mut left = p.lines;
    let mut lines = Vec::new();
    for c in 0..p.customers {
        let remaining_customers = p.customers - c;
        let n = if remaining_customers == 1 {
            left
        } else {
            // Geometric-ish around the mean, at least one line.
            let x: f64 = rng.gen();
            ((-(1.0 - x).ln() * mean).round() as u64)
                .clamp(1, left.saturating_sub(remaining_customers - 1).max(1))
        };
        left = left.saturating_sub(n);
        let group = rng.gen_range(0..groups);
        let mut day = rng.gen_range(0..200);
        lines.clear();
        for _ in 0..n {
            let product = if rng.gen_bool(0.7) {
                group * group_size + zipf(&mut rng, group_size)
            } else {
                zipf(&mut rng, p.products)
            };
            day += rng.gen_range(0..(730 / (n as i32 + 1)).max(1));
            let returned = rng.gen_bool(0.03);
            lines.push(Line {
                product: product as i64,
                day,
                quantity: if returned { -1 } else { 1 },
                returned,
            });
        }
        f(c as i64, &lines);
    }
}

/// CPU seconds (user + system) of this process so far.
fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = after.split_whitespace().collect();
            let u: f64 = f.get(11)?.parse().ok()?;
            let k: f64 = f.get(12)?.parse().ok()?;
            Some((u + k) / 100.0)
        })
        .unwrap_or(0.0)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> std::io::Result<()> {
    let p = params();
    if let Some(path) = &p.csv {
        let t = Instant::now();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        writeln!(out, "customer_id,order_id,order_date,sku,quantity,amount")?;
        let mut err = None;
        generate(&p, |c, lines| {
            for (k, l) in lines.iter().enumerate() {
                let date = chrono_date(l.day);
                if let Err(e) = writeln!(
                    out,
                    "c{c},o{c}-{k},{date},P{},{},{}",
                    l.product,
                    l.quantity,
                    if l.returned { "-10.00" } else { "10.00" }
                ) {
                    err = Some(e);
                }
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        out.flush()?;
        eprintln!("wrote {path} in {:.1} s", t.elapsed().as_secs_f64());
        if p.csv_only {
            return Ok(());
        }
    }
    let (t, c0) = (Instant::now(), cpu_s());
    let mut builder = ModelBuilder::new(Options::default());
    generate(&p, |c, lines| builder.add_customer(c, lines));
    let collected = t.elapsed().as_secs_f64();
    let (t, c1) = (Instant::now(), cpu_s());
    let model = builder.build();
    let build = t.elapsed().as_secs_f64();
    let (t, c2) = (Instant::now(), cpu_s());
    let all = model.recommend_all(10);
    let top10 = t.elapsed().as_secs_f64();
    let c3 = cpu_s();
    let picks: usize = all.iter().map(|(_, p)| p.len()).sum();
    println!(
        "{{\"lines\": {}, \"customers\": {}, \"products\": {}, \"generate_and_collect_s\": {collected:.2}, \"build_s\": {build:.2}, \"build_cpu_s\": {:.2}, \"top10_all_s\": {top10:.2}, \"top10_cpu_s\": {:.2}, \"collect_cpu_s\": {:.2}, \"picks\": {picks}, \"peak_rss_mib\": {:.0}, \"threads\": {}}}",
        p.lines,
        model.customers().len(),
        model.products().len(),
        c2 - c1,
        c3 - c2,
        c1 - c0,
        peak_rss_mib(),
        rayon::current_num_threads()
    );
    Ok(())
}

/// YYYY-MM-DD of a day offset from 2023-01-01 (civil-from-days, no date library needed).
fn chrono_date(day: i32) -> String {
    let z = 19_358 + i64::from(day) + 719_468; // 2023-01-01 is day 19358 since 1970-01-01
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{:02}-{:02}", if m <= 2 { y + 1 } else { y }, m, d)
}
