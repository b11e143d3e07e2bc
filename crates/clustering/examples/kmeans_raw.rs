//! Clusters a raw little-endian f64 row-major matrix (as written by the scikit-learn baseline's
//! `--write`) and prints one JSON line per engine: retain's k-means in f64 and f32, and linfa's.
//!
//! usage: kmeans_raw FILE [--dim 3] [--k 8] [--repeat 3] [--engines native64,native32,linfa]

use std::time::Instant;

use retain_clustering::kmeans::{kmeans, linfa_kmeans, KMeansConfig, Precision};

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
    let n = data.len() / dim;
    for engine in engines.split(',') {
        let mut times = Vec::new();
        let mut last = (0.0, 0usize);
        for _ in 0..repeat.max(1) {
            let t = Instant::now();
            match engine {
                "native64" | "native32" => {
                    let mut cfg = KMeansConfig::new(k);
                    cfg.precision = if engine == "native32" {
                        Precision::F32
                    } else {
                        Precision::F64
                    };
                    let fit = kmeans(&data, dim, &cfg)?;
                    last = (fit.inertia, fit.n_iter);
                }
                "linfa" => {
                    // scikit-learn's tol=1e-4 bounds the *squared* centre shift (the data are
                    // standardised, so the variance scale is 1); linfa compares the unsquared one.
                    let (_, sse, _) = linfa_kmeans(&data, dim, k, 1, 1e-2, 0)?;
                    last = (sse, 0);
                }
                other => return Err(format!("unknown engine {other}").into()),
            }
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let median = times[times.len() / 2];
        println!(
            "{{\"tool\": \"retain-{engine}\", \"n\": {n}, \"k\": {k}, \"seconds\": {median:.4}, \"n_iter\": {}, \"inertia\": {:.3}, \"threads\": {}}}",
            last.1,
            last.0,
            rayon::current_num_threads()
        );
    }
    Ok(())
}
