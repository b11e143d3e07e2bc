//! `retain import orders|customers FILE`: reads a CSV, reports and saves rejected rows, and stores
//! the rest in one transaction (all or nothing; importing the same file twice changes nothing).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args as ClapArgs, Subcommand};
use retain_core::import::{self, ImportOptions, Reject};
use serde::Serialize;

use super::{exit, fail, progress, spinner, Context};
use crate::output::{count, money, print_json, Format};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import orders (one row per order or per line item).
    #[command(after_help = ORDERS_EXAMPLES)]
    Orders(FileArgs),
    /// Import customers: email, names, consent, signup date, locale, attributes.
    #[command(after_help = CUSTOMERS_EXAMPLES)]
    Customers(FileArgs),
}

const ORDERS_EXAMPLES: &str = "Examples:
  retain import orders shop-export.csv
  retain import orders online_retail.csv --format json
  retain import orders bestellungen.csv --delimiter ';' --decimal-comma --date-format '%d.%m.%Y'
  retain import orders export.csv --map customer_id='Client Ref' --map amount='Gross'

Columns are recognised by name (CustomerID, customer_id, InvoiceDate, Quantity, UnitPrice,
InvoiceNo, amount, total, …). Needed: a customer id (or email), an order date, and an amount or
quantity × unit price. Returns (negative quantity/amount, invoice ids like C536379, status
'refunded') reduce revenue. Rejected rows are listed with line and reason and saved to
rejects/ in the workspace.";

const CUSTOMERS_EXAMPLES: &str = "Examples:
  retain import customers customers.csv
  retain import customers crm.csv --map email='E-Mail Adresse' --map subscribed='Newsletter'";

#[derive(Debug, ClapArgs)]
pub struct FileArgs {
    /// The CSV file.
    pub file: PathBuf,
    /// Field delimiter (default: sniffed from the header: , ; tab |).
    #[arg(long, value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
    /// Date format, strftime-style, e.g. '%d.%m.%Y' or '%d/%m/%Y %H:%M' (default: detected).
    #[arg(long)]
    pub date_format: Option<String>,
    /// Numbers use a decimal comma: 1.234,56.
    #[arg(long)]
    pub decimal_comma: bool,
    /// Name the column of a field: --map customer_id=Kundennr (repeatable).
    #[arg(long = "map", value_name = "FIELD=COLUMN", value_parser = parse_mapping)]
    pub mapping: Vec<(String, String)>,
    /// Fail on the first bad row instead of rejecting it (nothing is imported).
    #[arg(long)]
    pub strict: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub(crate) fn parse_delimiter(s: &str) -> std::result::Result<u8, String> {
    match s {
        "\\t" | "tab" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(format!(
            "expected one ASCII character (or 'tab'), got '{s}'"
        )),
    }
}

pub(crate) fn parse_mapping(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("expected FIELD=COLUMN, got '{s}'"))
}

impl FileArgs {
    fn options(&self) -> ImportOptions {
        ImportOptions {
            delimiter: self.delimiter,
            date_format: self.date_format.clone(),
            decimal_comma: self.decimal_comma,
            mapping: self.mapping.clone(),
            strict: self.strict,
        }
    }
}

/// The summary printed after an import (`--format json` prints exactly this object).
#[derive(Debug, Serialize)]
pub struct Summary {
    pub kind: &'static str,
    pub file: String,
    pub import_id: i64,
    pub rows_read: u64,
    pub rows_imported: u64,
    pub rows_rejected: u64,
    pub rows_without_customer: u64,
    pub customers: u64,
    pub orders: u64,
    pub returns: u64,
    pub revenue: f64,
    pub invalid_emails: u64,
    pub rejects_file: Option<String>,
    pub date_format: Option<String>,
    pub delimiter: Option<String>,
    pub columns: Vec<(String, String)>,
    pub notes: Vec<String>,
}

pub async fn run(ctx: &Context, cmd: Command, quiet: bool) -> Result<()> {
    let (summary, rejects, format) = match cmd {
        Command::Orders(a) => {
            let (s, r) = import_orders(
                ctx,
                &a.file,
                &a.options(),
                !quiet && a.format == Format::Table,
            )
            .await?;
            (s, r, a.format)
        }
        Command::Customers(a) => {
            let (s, r) = import_customers(ctx, &a.file, &a.options()).await?;
            (s, r, a.format)
        }
    };
    match format {
        Format::Json => print_json(&summary)?,
        _ => {
            if !quiet {
                print_summary(&summary, &rejects);
            }
        }
    }
    Ok(())
}

/// Imports an orders file into the workspace; returns the summary and the rejected rows.
pub async fn import_orders(
    ctx: &Context,
    file: &Path,
    opts: &ImportOptions,
    show_progress: bool,
) -> Result<(Summary, Vec<Reject>)> {
    let bytes = import::read_file(file)?;
    let big = bytes.len() > 4 << 20;
    let sp = spinner(&format!("reading {}", file.display()), show_progress && big);
    let parsed = import::parse_orders(file, &bytes, opts)?;
    sp.finish_and_clear();
    drop(bytes);
    if parsed.orders.is_empty() {
        return Err(fail(
            exit::BAD_INPUT,
            format!(
                "{}: no order could be imported ({} rows read, {} rejected, {} without customer){}",
                file.display(),
                parsed.rows_read,
                parsed.rows_rejected,
                parsed.rows_without_customer,
                parsed
                    .rejects
                    .first()
                    .map(|r| format!("; first problem: {r}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let rejects_file = write_rejects(ctx, file, &parsed.rejects)?;
    let pb = progress(parsed.orders.len() as u64, "storing", show_progress && big);
    let record = ctx
        .store
        .import_orders(
            &file.display().to_string(),
            &parsed.orders,
            (
                parsed.rows_read,
                parsed.rows_imported,
                parsed.rows_rejected + parsed.rows_without_customer,
            ),
            &|n| pb.set_position(n),
        )
        .await
        .with_context(|| format!("storing the orders of {}", file.display()))?;
    pb.finish_and_clear();
    let customers: HashSet<&str> = parsed
        .orders
        .iter()
        .map(|o| o.customer_id.as_str())
        .collect();
    let summary = Summary {
        kind: "orders",
        file: file.display().to_string(),
        import_id: record.id,
        rows_read: parsed.rows_read,
        rows_imported: parsed.rows_imported,
        rows_rejected: parsed.rows_rejected,
        rows_without_customer: parsed.rows_without_customer,
        customers: customers.len() as u64,
        orders: parsed.orders.iter().filter(|o| !o.is_return).count() as u64,
        returns: parsed.returns,
        revenue: round2(parsed.orders.iter().map(|o| o.amount).sum()),
        invalid_emails: 0,
        rejects_file: rejects_file.map(|p| p.display().to_string()),
        date_format: Some(parsed.date_format.clone()),
        delimiter: Some(parsed.delimiter.escape_default().to_string()),
        columns: parsed.columns.clone(),
        notes: parsed.notes.clone(),
    };
    Ok((summary, parsed.rejects))
}

/// Imports a customers file into the workspace.
pub async fn import_customers(
    ctx: &Context,
    file: &Path,
    opts: &ImportOptions,
) -> Result<(Summary, Vec<Reject>)> {
    let bytes = import::read_file(file)?;
    let parsed = import::parse_customers(file, &bytes, opts)?;
    if parsed.customers.is_empty() {
        return Err(fail(
            exit::BAD_INPUT,
            format!(
                "{}: no customer could be imported ({} rows read){}",
                file.display(),
                parsed.rows_read,
                parsed
                    .rejects
                    .first()
                    .map(|r| format!("; first problem: {r}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let rejects_file = write_rejects(ctx, file, &parsed.rejects)?;
    let id = ctx
        .store
        .import_customers(
            &file.display().to_string(),
            &parsed.customers,
            (
                parsed.rows_read,
                parsed.customers.len() as u64,
                parsed.rows_rejected,
            ),
        )
        .await
        .with_context(|| format!("storing the customers of {}", file.display()))?;
    let summary = Summary {
        kind: "customers",
        file: file.display().to_string(),
        import_id: id,
        rows_read: parsed.rows_read,
        rows_imported: parsed.rows_read - parsed.rows_rejected,
        rows_rejected: parsed.rows_rejected,
        rows_without_customer: 0,
        customers: parsed.customers.len() as u64,
        orders: 0,
        returns: 0,
        revenue: 0.0,
        invalid_emails: parsed.invalid_emails,
        rejects_file: rejects_file.map(|p| p.display().to_string()),
        date_format: None,
        delimiter: None,
        columns: parsed.columns.clone(),
        notes: parsed.notes.clone(),
    };
    Ok((summary, parsed.rejects))
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Writes rejected rows to `rejects/<file stem>-<time>.csv` in the workspace.
fn write_rejects(ctx: &Context, file: &Path, rejects: &[Reject]) -> Result<Option<PathBuf>> {
    if rejects.is_empty() {
        return Ok(None);
    }
    let dir = ctx.path("rejects");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "import".into());
    let path = dir.join(format!(
        "{stem}-{}.csv",
        chrono::Local::now().format("%Y%m%dT%H%M%S%.3f")
    ));
    let mut w =
        csv::Writer::from_path(&path).with_context(|| format!("creating {}", path.display()))?;
    w.write_record(["line", "column", "reason", "record"])?;
    for r in rejects {
        w.write_record([
            r.line.to_string(),
            r.column
                .as_ref()
                .map(|(i, h)| format!("{i} ({h})"))
                .unwrap_or_default(),
            r.reason.clone(),
            r.record.clone(),
        ])?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(path))
}

fn print_summary(s: &Summary, rejects: &[Reject]) {
    println!("Imported {} from {}", s.kind, s.file);
    println!("  rows read          {:>12}", count(s.rows_read));
    println!("  rows imported      {:>12}", count(s.rows_imported));
    println!("  rows rejected      {:>12}", count(s.rows_rejected));
    if s.kind == "orders" {
        println!(
            "  without customer   {:>12}",
            count(s.rows_without_customer)
        );
        println!("  customers          {:>12}", count(s.customers));
        println!("  orders             {:>12}", count(s.orders));
        println!("  returns            {:>12}", count(s.returns));
        println!("  net revenue        {:>12}", money(s.revenue));
        if let (Some(df), Some(d)) = (&s.date_format, &s.delimiter) {
            println!("  date format        {df:>12}   delimiter '{d}'");
        }
    } else {
        println!("  customers          {:>12}", count(s.customers));
        println!("  invalid emails     {:>12}", count(s.invalid_emails));
    }
    let cols: Vec<String> = s.columns.iter().map(|(f, h)| format!("{f}←{h}")).collect();
    println!("  columns            {}", cols.join(", "));
    for n in &s.notes {
        println!("  note: {n}");
    }
    if !rejects.is_empty() {
        println!("\nSkipped rows (first {}):", rejects.len().min(10));
        for r in rejects.iter().take(10) {
            println!("  {r}");
        }
        if let Some(f) = &s.rejects_file {
            println!("All {} skipped rows: {f}", rejects.len());
        }
    }
}
