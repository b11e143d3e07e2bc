//! `retain rfm FILE`: per-customer recency, frequency, monetary and tenure straight from an orders
//! CSV, without importing it — a quick look at a large export (and the import benchmark).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use clap::Args as ClapArgs;
use retain_core::import::{self, ImportOptions};
use serde::Serialize;

use super::spinner;
use crate::output::{count, money, print_json, Format};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  retain rfm orders.csv
  retain rfm big-export.csv --output rfm.csv --format json

Reads the file with the same rules as `retain import orders` (columns, dates, returns, line items)
but keeps nothing: no workspace is needed. --output writes one row per customer with a purchase
before the as-of date, sorted by customer id (byte order).")]
pub struct Args {
    /// The orders CSV.
    pub file: PathBuf,
    /// Features as of this date (default: the day after the last order).
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Write per-customer features as CSV to this file.
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[arg(long, value_parser = super::import::parse_delimiter)]
    pub delimiter: Option<u8>,
    #[arg(long)]
    pub date_format: Option<String>,
    #[arg(long)]
    pub decimal_comma: bool,
    #[arg(long = "map", value_name = "FIELD=COLUMN", value_parser = super::import::parse_mapping)]
    pub mapping: Vec<(String, String)>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Serialize)]
struct Summary {
    file: String,
    rows: u64,
    rows_rejected: u64,
    rows_without_customer: u64,
    customers: u64,
    orders: u64,
    revenue: f64,
    as_of: Option<NaiveDate>,
    seconds: f64,
    output: Option<String>,
}

pub fn run(args: Args, quiet: bool) -> Result<()> {
    let t0 = Instant::now();
    let sp = spinner(
        &format!("reading {}", args.file.display()),
        !quiet && args.format == Format::Table,
    );
    let opts = ImportOptions {
        delimiter: args.delimiter,
        date_format: args.date_format.clone(),
        decimal_comma: args.decimal_comma,
        mapping: args.mapping.clone(),
        strict: false,
        profile: None,
    };
    let (features, stats) = import::scan_file(&args.file, &opts, args.as_of)?;
    sp.finish_and_clear();
    if let Some(out) = &args.output {
        let mut w =
            csv::Writer::from_path(out).with_context(|| format!("creating {}", out.display()))?;
        w.write_record([
            "customer_id",
            "first_order",
            "last_order",
            "recency_days",
            "frequency",
            "repeat_purchases",
            "monetary_total",
            "avg_order_value",
            "tenure_days",
        ])?;
        for f in &features {
            w.write_record([
                f.customer_id.as_str(),
                &f.first_order.to_string(),
                &f.last_order.to_string(),
                &f.recency_days.to_string(),
                &f.frequency.to_string(),
                &f.repeat_purchases.to_string(),
                &format!("{:.2}", f.monetary_total),
                &format!("{:.2}", f.avg_order_value),
                &f.tenure_days.to_string(),
            ])?;
        }
        w.flush()
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let s = Summary {
        file: args.file.display().to_string(),
        rows: stats.rows_read,
        rows_rejected: stats.rows_rejected,
        rows_without_customer: stats.rows_without_customer,
        customers: features.len() as u64,
        orders: stats.orders,
        revenue: (stats.revenue * 100.0).round() / 100.0,
        as_of: stats.as_of,
        seconds: t0.elapsed().as_secs_f64(),
        output: args.output.as_ref().map(|p| p.display().to_string()),
    };
    if args.format == Format::Json {
        print_json(&s)?;
    } else if !quiet {
        println!(
            "{} rows ({} rejected, {} without customer) → {} customers, {} orders, net revenue {} as of {} in {:.2}s",
            count(s.rows),
            count(s.rows_rejected),
            count(s.rows_without_customer),
            count(s.customers),
            count(s.orders),
            money(s.revenue),
            s.as_of.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
            s.seconds
        );
    }
    Ok(())
}
