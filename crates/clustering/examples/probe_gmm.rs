//! Temporary probe: GMM timing per k.
use std::time::Instant;
fn main() {
    let bytes = std::fs::read("/work/main/bench-data/kmeans_1000000_x3.f64").expect("file");
    let data: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
        .collect();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2357);
    let data = &data[..n * 3];
    for k in 2..=10 {
        let t = Instant::now();
        let r = retain_clustering::gmm::gmm(data, 3, k, 4, 42);
        println!("k={k}: {:.3}s ok={}", t.elapsed().as_secs_f64(), r.is_ok());
    }
}
