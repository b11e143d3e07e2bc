//! `retain demo-data`: writes a seeded, realistic shop (orders as line items, and customers) as
//! CSV files, for demos and benchmarks.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Args as ClapArgs;
use retain_core::demo::{generate, DemoSpec, DemoSummary};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  retain demo-data --customers 2000 --seed 42 --out shop/
  retain demo-data --customers 1000000 --out bench-data/

Writes orders.csv (order_id, customer_id, email, order_date, product, category, quantity,
unit_price; returns as invoices C<order>) and customers.csv (customer_id, email, first_name,
last_name, subscribed, signup_date, locale). The same seed always writes the same files.")]
pub struct Args {
    /// Number of customers.
    #[arg(long, default_value_t = 2000)]
    pub customers: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

pub fn run(args: Args, quiet: bool) -> Result<()> {
    let s = write(&args.out, args.customers, args.seed)?;
    if !quiet {
        println!(
            "Wrote {} customers, {} orders ({} line items, {} returns) to {} and {}",
            s.customers,
            s.orders,
            s.line_items,
            s.returns,
            args.out.join("orders.csv").display(),
            args.out.join("customers.csv").display()
        );
    }
    Ok(())
}

/// Writes `orders.csv` and `customers.csv` into `dir`.
pub fn write(dir: &Path, customers: u64, seed: u64) -> Result<DemoSummary> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let o = dir.join("orders.csv");
    let c = dir.join("customers.csv");
    let spec = DemoSpec {
        customers,
        seed,
        ..Default::default()
    };
    let of = File::create(&o).with_context(|| format!("creating {}", o.display()))?;
    let cf = File::create(&c).with_context(|| format!("creating {}", c.display()))?;
    generate(
        &spec,
        BufWriter::with_capacity(1 << 20, of),
        BufWriter::new(cf),
    )
    .with_context(|| format!("writing {}", dir.display()))
}
