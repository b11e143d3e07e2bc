//! `scan_file` on one orders CSV, timed: what `retain rfm FILE` does without the CLI, for
//! profiling the scan on its own (`cargo run --release -p retain-core --example scan_file FILE`).

use std::path::Path;
use std::time::Instant;

use retain_core::import::{scan_file, ImportOptions};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: scan_file FILE");
        std::process::exit(2);
    };
    let t0 = Instant::now();
    match scan_file(Path::new(&path), &ImportOptions::default(), None) {
        Ok((features, stats)) => println!(
            "{} rows, {} customers, {} orders, revenue {:.2}, as of {:?} in {:.3}s",
            stats.rows_read,
            features.len(),
            stats.orders,
            stats.revenue,
            stats.as_of,
            t0.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
