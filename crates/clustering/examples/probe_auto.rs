//! Temporary probe.
use retain_clustering::kmeans::{kmeans, KMeansConfig};
use std::time::Instant;
fn main() {
    let bytes = std::fs::read("/work/main/bench-data/kmeans_1m_x3.f64").expect("file");
    let data: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
        .collect();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let data = &data[..n * 3];
    for k in 2..=10 {
        let mut cfg = KMeansConfig::new(k);
        cfg.n_runs = 4;
        let t = Instant::now();
        let f = kmeans(data, 3, &cfg).expect("fit");
        println!(
            "k={k}: {:.3}s n_iter {} inertia {:.1}",
            t.elapsed().as_secs_f64(),
            f.n_iter,
            f.inertia
        );
    }
}
