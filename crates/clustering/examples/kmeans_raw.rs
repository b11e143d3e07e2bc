//! Clusters a raw little-endian f64 row-major matrix (as written by the scikit-learn baseline's
//! `--write`) and prints one JSON line per engine: retain's k-means with f64 and with f32
//! distances, and linfa-clustering's own `KMeans`. Used by `scripts/bench-kmeans.sh`.
//!
//! usage: kmeans_raw FILE [--dim 3] [--k 8] [--repeat 3] [--engines native64,native32,linfa]

use std::time::Instant;

use retain_clustering::kmeans::{kmeans, linfa_kmeans, KMeansConfig, Precision};

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
    // utime and stime, in clock ticks (100 per second on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let (mut dim, mut k, mut repeat) = (3usize, 8usize, 3usize);
    let mut engines = "native64,native32,linfa".to_string();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dim" => dim = args.next().ok_or("--dim needs a value")?.parse()?,
            "--k" => k = args.next().ok_or("--k needs a value")?.parse()?,
            "--repeat" => repeat = args.next().ok_or("--repeat needs a value")?.parse()?,
            "--engines" => engines = args.next().ok_or("--engines needs a value")?,
            _ => file = Some(a),
        }
    }
    let file =
        file.ok_or("usage: kmeans_raw FILE [--dim 3] [--k 8] [--repeat 3] [--engines ...]")?;
    let bytes = std::fs::read(&file)?;
    let data: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    let n = data.len() / dim.max(1);
    for engine in engines.split(',') {
        let mut times = Vec::new();
        let mut cpu = Vec::new();
        let mut last: (f64, Option<usize>) = (0.0, None);
        for _ in 0..repeat.max(1) {
            let t = Instant::now();
            let c = cpu_seconds();
            match engine {
                "native64" | "native32" => {
                    let mut cfg = KMeansConfig::new(k);
                    cfg.precision = if engine == "native32" {
                        Precision::F32
                    } else {
                        Precision::F64
                    };
                    let fit = kmeans(&data, dim, &cfg)?;
                    last = (fit.inertia, Some(fit.n_iter));
                }
                "linfa" => {
                    // scikit-learn's tol=1e-4 bounds the *squared* centre shift (the data are
                    // standardised, so the variance scale is 1); linfa compares the unsquared one.
                    let (_, sse, _) = linfa_kmeans(&data, dim, k, 1, 1e-2, 0)?;
                    last = (sse, None);
                }
                other => return Err(format!("unknown engine {other}").into()),
            }
            times.push(t.elapsed().as_secs_f64());
            cpu.push(cpu_seconds() - c);
        }
        let iterations = last.1.map_or("null".to_string(), |i| i.to_string());
        println!(
            "{{\"tool\": \"retain-{engine}\", \"n\": {n}, \"k\": {k}, \"seconds\": {:.4}, \"cpu_seconds\": {:.2}, \"n_iter\": {iterations}, \"inertia\": {:.3}, \"threads\": {}}}",
            median(times),
            median(cpu),
            last.0,
            rayon::current_num_threads()
        );
    }
    Ok(())
}
