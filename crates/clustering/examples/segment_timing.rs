//! Wall and CPU time of whole segmentation runs on seeded synthetic customers (the benchmark's
//! generator): RFM, k-means with k chosen automatically and fixed, and a Gaussian mixture.
//!
//! usage: segment_timing [N=1000000] [methods=rfm,kmeans-auto,kmeans-8,gmm-auto]

#[path = "../benches/support/data.rs"]
mod data;

use std::time::Instant;

use retain_clustering::{segment, KChoice, Method, SegmentInput, SegmentParams};

/// CPU seconds (user + system) of this process so far, from /proc (Linux); 0 elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let methods = args
        .next()
        .unwrap_or_else(|| "rfm,kmeans-auto,kmeans-8,gmm-auto".to_string());
    let customers = data::customers(n);
    for m in methods.split(',') {
        let params = match m {
            "rfm" => SegmentParams::default(),
            "kmeans-auto" => SegmentParams::new(Method::Kmeans),
            "gmm-auto" => SegmentParams::new(Method::Gmm),
            other => {
                let (method, k) = other.split_once('-').ok_or("method-k expected")?;
                SegmentParams {
                    k: KChoice::Fixed(k.parse()?),
                    ..SegmentParams::new(Method::parse(method).ok_or("unknown method")?)
                }
            }
        };
        let (t, c) = (Instant::now(), cpu_seconds());
        let run = segment(&SegmentInput::new(&customers), &params)?;
        println!(
            "{{\"run\": \"{m}\", \"customers\": {n}, \"seconds\": {:.3}, \"cpu_seconds\": {:.2}, \"k\": {}, \"segments\": {}}}",
            t.elapsed().as_secs_f64(),
            cpu_seconds() - c,
            run.k,
            run.profiles.len()
        );
    }
    Ok(())
}
