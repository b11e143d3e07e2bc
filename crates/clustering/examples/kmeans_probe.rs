//! Temporary probe: time of init + n iterations.
use retain_clustering::kmeans::{kmeans, KMeansConfig, Precision};
use std::time::Instant;
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .expect("x")
        .split_whitespace()
        .collect();
    (f[11].parse::<f64>().expect("u") + f[12].parse::<f64>().expect("s")) / 100.0
}
fn main() {
    let bytes = std::fs::read("/work/main/bench-data/kmeans_1m_x3.f64").expect("file");
    let data: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
        .collect();
    for prec in [Precision::F64, Precision::F32] {
        for it in [1usize, 41] {
            let mut cfg = KMeansConfig::new(8);
            cfg.precision = prec;
            cfg.max_iter = it;
            cfg.tol = 0.0;
            let mut best = (f64::MAX, f64::MAX);
            for _ in 0..5 {
                let (t, c) = (Instant::now(), cpu());
                let f = kmeans(&data, 3, &cfg).expect("fit");
                assert_eq!(f.n_iter, it);
                let w = t.elapsed().as_secs_f64();
                best = (best.0.min(w), best.1.min(cpu() - c));
            }
            println!(
                "{prec:?} max_iter {it}: best wall {:.4}s cpu {:.3}s",
                best.0, best.1
            );
        }
    }
}
