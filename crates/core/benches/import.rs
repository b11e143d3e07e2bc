//! Criterion benchmarks of reading orders: the parallel quote-free path, the quoted (csv crate)
//! path, line-item collapse, and per-customer features straight from the file (`scan_features`,
//! behind `retain rfm`; with order ids, its line items collapse into orders).

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use retain_core::import::{parse_orders, scan_features, ImportOptions};

/// `rows` orders of `customers` customers, like the pandas baseline's file.
fn plain_csv(rows: usize, customers: usize) -> String {
    let mut s = String::with_capacity(rows * 28);
    s.push_str("customer_id,date,amount\n");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let c = x % customers as u64 + 1;
        let d = (x >> 20) % 730;
        let (y, doy) = (2023 + d / 365, d % 365);
        let (m, day) = (doy / 31 % 12 + 1, doy % 28 + 1);
        s.push_str(&format!(
            "{c},{y}-{m:02}-{day:02},{}.{:02}\n",
            (x >> 40) % 200,
            (x >> 8) % 100
        ));
    }
    s
}

/// The same orders with an order id column: every third row repeats the order id before it (a
/// line item of that order when the customer is the same, another order otherwise).
fn with_order_ids(plain: &str) -> String {
    let mut out = String::with_capacity(plain.len() * 5 / 4);
    let mut lines = plain.lines();
    if let Some(h) = lines.next() {
        out.push_str("order_id,");
        out.push_str(h);
        out.push('\n');
    }
    let mut order = 0u64;
    for (i, l) in lines.enumerate() {
        if i % 3 != 2 {
            order += 1;
        }
        out.push_str(&format!("o{order},{l}\n"));
    }
    out
}

fn bench(c: &mut Criterion) {
    let opts = ImportOptions::default();
    let mut g = c.benchmark_group("orders");
    for rows in [100_000usize, 1_000_000] {
        let plain = plain_csv(rows, rows / 10);
        g.throughput(Throughput::Elements(rows as u64));
        g.bench_with_input(
            BenchmarkId::new("scan_features_plain", rows),
            &plain,
            |b, s| {
                b.iter(|| {
                    scan_features(Path::new("b.csv"), s.as_bytes(), &opts, None).map(|r| r.0.len())
                })
            },
        );
        // Every third row repeats the order id before it.
        let keyed = with_order_ids(&plain);
        g.bench_with_input(
            BenchmarkId::new("scan_features_order_ids", rows),
            &keyed,
            |b, s| {
                b.iter(|| {
                    scan_features(Path::new("b.csv"), s.as_bytes(), &opts, None).map(|r| r.0.len())
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("parse_orders_plain", rows),
            &plain,
            |b, s| {
                b.iter(|| {
                    parse_orders(Path::new("b.csv"), s.as_bytes(), &opts).map(|r| r.orders.len())
                })
            },
        );
        if rows == 100_000 {
            // Quoted cells force the sequential csv-crate path.
            let quoted = plain.replacen(
                "customer_id,date,amount\n",
                "customer_id,date,amount\n\"1\",2023-01-01,\"1.00\"\n",
                1,
            );
            g.bench_with_input(
                BenchmarkId::new("parse_orders_quoted", rows),
                &quoted,
                |b, s| {
                    b.iter(|| {
                        parse_orders(Path::new("b.csv"), s.as_bytes(), &opts)
                            .map(|r| r.orders.len())
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
