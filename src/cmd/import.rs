//! `retain import orders|items|customers|products FILE`: reads a CSV, reports and saves rejected
//! rows, and stores the rest in one transaction (all or nothing; importing the same file twice
//! changes nothing). An order-lines file (order id, product, quantity, amount; no customer, no
//! date) given to `import orders` is recognised by its header and imported as `import items`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args as ClapArgs, Subcommand};
use retain_core::import::{self, ImportOptions, Reject};
use serde::Serialize;

use super::{exit, fail, progress, Context};
use crate::output::{count, money, print_json, Format};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import orders (one row per order or per line item).
    #[command(after_help = ORDERS_EXAMPLES)]
    Orders(FileArgs),
    /// Import order lines (order id, product, quantity, amount) of orders already imported.
    #[command(after_help = ITEMS_EXAMPLES)]
    Items(FileArgs),
    /// Import customers: email, names, consent, signup date, locale, attributes.
    #[command(after_help = CUSTOMERS_EXAMPLES)]
    Customers(FileArgs),
    /// Import the product catalogue: id/SKU, name, url, image url, price, in stock, category.
    #[command(after_help = PRODUCTS_EXAMPLES)]
    Products(FileArgs),
}

const PRODUCTS_EXAMPLES: &str = "Examples:
  retain import products catalogue.csv
  retain import products feed.csv --map id='Variant SKU' --map in_stock='Inventory'

Columns are recognised by name (sku, product_id, StockCode; name, title; url, link; image,
image_url; price; in_stock, availability, stock, inventory quantity; category, product type).
The id is the key order lines are matched on (a line's SKU, else its product name). Emails link
to the url and show the image; out-of-stock products are never recommended. Importing the same
file again replaces the products, it adds nothing.";

const ITEMS_EXAMPLES: &str = "Examples:
  retain import items order-lines.csv        (order_id,product,quantity,amount)
  retain import items lines.csv --map order_id='Order Ref' --map product='Article'

For exports that list what each order contained apart from the orders themselves: each line
names its order by the order id the orders file used (import the orders first), a product
(sku, product_id, StockCode, product; a name column too if there is one), the quantity and the
line amount (or a unit price). A negative quantity or amount is a return of that product.
Lines of one order and product add up; the file's lines replace the lines stored earlier for
the orders it names, so importing it again changes nothing. Lines whose order id is unknown are
rejected with their line and saved to rejects/; with --strict any such line stops the import and
nothing is written. `retain import orders` recognises such a file by its header too.";

const ORDERS_EXAMPLES: &str = "Examples:
  retain import orders shop-export.csv
  retain import orders online_retail.csv --format json
  retain import orders shopify-orders.csv            (Shopify and WooCommerce exports are recognised)
  retain import orders woo.csv --profile woocommerce
  retain import orders bestellungen.csv --delimiter ';' --decimal-comma --date-format '%d.%m.%Y'
  retain import orders export.csv --map customer_id='Client Ref' --map amount='Gross'
  retain import orders lines.csv   (customer_id,order_id,date,product,quantity,amount: product lines)
  retain import orders order-lines.csv   (order_id,product,quantity,amount: as `retain import items`)

Columns are recognised by name (CustomerID, customer_id, InvoiceDate, Quantity, UnitPrice,
InvoiceNo, amount, total, …). Needed: a customer id (or email), an order date, and an amount or
quantity × unit price. Returns (negative quantity/amount, invoice ids like C536379, status
'refunded') reduce revenue. Platform exports: the order total is the amount, refunds reduce it,
cancelled/voided/test orders are skipped and counted, line-item rows are never rejects. Product
lines (StockCode/Description, sku/product, Shopify's and WooCommerce's line items) are kept with
their quantity, amount and returns for recommendations. The file is streamed: any size, memory stays flat. Rejected rows are listed with line and reason and saved to
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
    /// The export's platform: shopify, woocommerce or generic (default: recognised by the header).
    #[arg(long, value_parser = parse_profile)]
    pub profile: Option<import::Profile>,
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

pub(crate) fn parse_profile(s: &str) -> std::result::Result<import::Profile, String> {
    import::Profile::parse(s)
        .ok_or_else(|| format!("expected shopify, woocommerce or generic, got '{s}'"))
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
            profile: self.profile,
        }
    }
}

/// The summary printed after an import (`--format json` prints exactly this object).
#[derive(Debug, Default, Serialize)]
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
    /// Orders: the export's platform profile (generic, shopify, woocommerce).
    pub profile: Option<String>,
    /// Orders: further line-item rows of orders already read (platform exports).
    pub line_items: u64,
    /// Orders: cancelled, voided, unpaid or test orders skipped.
    pub skipped_orders: u64,
    /// Customers first seen in this file.
    pub new_customers: u64,
    /// Orders: product lines stored (order lines of a product, for recommendations).
    pub product_lines: u64,
    /// Products: catalogue products stored; items: distinct products of the stored lines.
    pub products: u64,
    /// Items: lines rejected because the store holds no order with their order id (or holds
    /// it for several customers).
    pub unknown_orders: u64,
}

pub async fn run(ctx: &Context, cmd: Command, quiet: bool) -> Result<()> {
    let (summary, rejects, format) = match cmd {
        Command::Orders(a) if import::is_items_header(&a.file, &a.options()).unwrap_or(false) => {
            let (mut s, r) = import_items(
                ctx,
                &a.file,
                &a.options(),
                !quiet && a.format == Format::Table,
            )
            .await?;
            s.notes.insert(
                0,
                "no customer or date column: read as the lines of orders already imported (retain import items)".into(),
            );
            (s, r, a.format)
        }
        Command::Items(a) => {
            let (s, r) = import_items(
                ctx,
                &a.file,
                &a.options(),
                !quiet && a.format == Format::Table,
            )
            .await?;
            (s, r, a.format)
        }
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
            let (s, r) = import_customers(
                ctx,
                &a.file,
                &a.options(),
                !quiet && a.format == Format::Table,
            )
            .await?;
            (s, r, a.format)
        }
        Command::Products(a) => {
            let (s, r) = import_products(ctx, &a.file, &a.options()).await?;
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

/// How many skipped rows the summary lists (all of them go to the rejects file).
const REJECTS_SHOWN: usize = 10;

/// Where a streamed import reports the bytes it has read.
type ProgressFn = Box<dyn Fn(u64) + Send + Sync>;
/// Where a streamed import hands the rows it set aside.
type RejectsFn = Box<dyn FnMut(&[Reject]) -> std::io::Result<()> + Send>;

/// Runs a streamed import of `file` (`import`, given where to report progress and rejected
/// rows): a progress bar on files over 4 MiB when `show_progress`, every rejected row to the
/// workspace's rejects file. Returns what the import returned, the first rejected rows and the
/// rejects file, if one was written. `what` names the file's rows in errors.
async fn streamed<T, Fut>(
    ctx: &Context,
    file: &Path,
    show_progress: bool,
    what: &str,
    import: impl FnOnce(ProgressFn, RejectsFn) -> Fut,
) -> Result<(T, Vec<Reject>, Option<PathBuf>)>
where
    Fut: std::future::Future<Output = retain_store::Result<T>>,
{
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let pb = progress(len, "reading", show_progress && len > 4 << 20);
    let bar = pb.clone();
    let rejects = RejectsFile::new(ctx.path("rejects"), file);
    let sink = rejects.clone();
    let done = import(
        Box::new(move |n| bar.set_position(n)),
        Box::new(move |batch| sink.write(batch)),
    )
    .await
    .with_context(|| format!("importing the {what} of {}", file.display()))?;
    pb.finish_and_clear();
    let (shown, rejects_file) = rejects.finish()?;
    Ok((done, shown, rejects_file))
}

/// Imports an orders file into the workspace, streaming it; returns the summary and the first
/// skipped rows (all of them are written to the workspace's rejects file).
pub async fn import_orders(
    ctx: &Context,
    file: &Path,
    opts: &ImportOptions,
    show_progress: bool,
) -> Result<(Summary, Vec<Reject>)> {
    let (done, shown, rejects_file) =
        streamed(ctx, file, show_progress, "orders", |progress, rejects| {
            ctx.store.import_orders_file(file, opts, progress, rejects)
        })
        .await?;
    let s = &done.summary;
    if done.orders + done.returns == 0 {
        return Err(fail(
            exit::BAD_INPUT,
            format!(
                "{}: no order could be imported ({} rows read, {} rejected, {} without customer){}",
                file.display(),
                s.rows_read,
                s.rows_rejected,
                s.rows_without_customer,
                first_problem(&shown)
            ),
        ));
    }
    let mut notes = s.notes.clone();
    if s.line_items > 0 {
        notes.push(format!(
            "{} further line-item rows belong to orders already read",
            count(s.line_items)
        ));
    }
    for (why, n) in &s.skipped {
        notes.push(format!("{} orders skipped: {why}", count(*n)));
    }
    let summary = Summary {
        kind: "orders",
        file: file.display().to_string(),
        import_id: done.record.id,
        rows_read: s.rows_read,
        rows_imported: s.rows_imported,
        rows_rejected: s.rows_rejected,
        rows_without_customer: s.rows_without_customer,
        customers: done.customers,
        orders: done.orders,
        returns: done.returns,
        revenue: round2(done.revenue),
        rejects_file: rejects_file.map(|p| p.display().to_string()),
        date_format: Some(s.date_format.clone()),
        delimiter: Some(s.delimiter.escape_default().to_string()),
        columns: s.columns.clone(),
        notes,
        profile: Some(s.profile.as_str().to_string()),
        line_items: s.line_items,
        skipped_orders: s.skipped.iter().map(|(_, n)| n).sum(),
        new_customers: done.new_customers,
        product_lines: done.item_lines,
        ..Default::default()
    };
    Ok((summary, shown))
}

/// Imports an order-lines file (lines of orders already imported), streaming it; returns the
/// summary and the first rejected rows (all of them go to the workspace's rejects file).
pub async fn import_items(
    ctx: &Context,
    file: &Path,
    opts: &ImportOptions,
    show_progress: bool,
) -> Result<(Summary, Vec<Reject>)> {
    let (done, shown, rejects_file) = streamed(
        ctx,
        file,
        show_progress,
        "order lines",
        |progress, rejects| ctx.store.import_items_file(file, opts, progress, rejects),
    )
    .await?;
    let s = &done.summary;
    if done.item_lines == 0 {
        return Err(fail(
            exit::BAD_INPUT,
            format!(
                "{}: no order line could be imported ({} rows read, {} rejected, {} of unknown orders){}",
                file.display(),
                s.rows_read,
                s.rows_rejected,
                done.unknown_orders,
                first_problem(&shown)
            ),
        ));
    }
    let mut notes = s.notes.clone();
    if done.unknown_orders > 0 {
        notes.push(format!(
            "{} lines name orders the store does not hold: import those orders first",
            count(done.unknown_orders)
        ));
    }
    let summary = Summary {
        kind: "items",
        file: file.display().to_string(),
        import_id: done.record.id,
        rows_read: s.rows_read,
        rows_imported: done.record.rows_imported.max(0) as u64,
        rows_rejected: done.record.rows_rejected.max(0) as u64,
        orders: done.orders,
        returns: done.returns,
        rejects_file: rejects_file.map(|p| p.display().to_string()),
        delimiter: Some(s.delimiter.escape_default().to_string()),
        columns: s.columns.clone(),
        notes,
        product_lines: done.item_lines,
        products: done.products,
        unknown_orders: done.unknown_orders,
        ..Default::default()
    };
    Ok((summary, shown))
}

/// The rejects file of an import, written as skipped rows arrive; it keeps the first few for the
/// summary. Created only when there is something to write.
#[derive(Clone)]
struct RejectsFile(std::sync::Arc<std::sync::Mutex<RejectsState>>);

struct RejectsState {
    path: PathBuf,
    writer: Option<csv::Writer<std::fs::File>>,
    shown: Vec<Reject>,
    total: u64,
}

impl RejectsFile {
    fn new(dir: PathBuf, file: &Path) -> Self {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "import".into());
        let path = dir.join(format!(
            "{stem}-{}.csv",
            chrono::Local::now().format("%Y%m%dT%H%M%S%.3f")
        ));
        Self(std::sync::Arc::new(std::sync::Mutex::new(RejectsState {
            path,
            writer: None,
            shown: Vec::new(),
            total: 0,
        })))
    }

    fn write(&self, batch: &[Reject]) -> std::io::Result<()> {
        let mut st = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("rejects writer poisoned"))?;
        if st.writer.is_none() {
            if let Some(dir) = st.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut w = csv::Writer::from_path(&st.path)?;
            w.write_record(["line", "column", "reason", "record"])?;
            st.writer = Some(w);
        }
        let room = REJECTS_SHOWN.saturating_sub(st.shown.len());
        st.shown.extend(batch.iter().take(room).cloned());
        st.total += batch.len() as u64;
        if let Some(w) = st.writer.as_mut() {
            for r in batch {
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
        }
        Ok(())
    }

    /// The first rejects and the file they were all written to (if any).
    fn finish(&self) -> Result<(Vec<Reject>, Option<PathBuf>)> {
        let mut st = self
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("rejects writer poisoned"))?;
        let path = st.path.clone();
        match st.writer.take() {
            Some(mut w) => {
                w.flush()
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok((std::mem::take(&mut st.shown), Some(path)))
            }
            None => Ok((Vec::new(), None)),
        }
    }
}

/// Imports a customers file into the workspace, streaming it; returns the summary and the first
/// rows set aside (all of them are written to the workspace's rejects file).
pub async fn import_customers(
    ctx: &Context,
    file: &Path,
    opts: &ImportOptions,
    show_progress: bool,
) -> Result<(Summary, Vec<Reject>)> {
    let (done, shown, rejects_file) = streamed(
        ctx,
        file,
        show_progress,
        "customers",
        |progress, rejects| {
            ctx.store
                .import_customers_file(file, opts, progress, rejects)
        },
    )
    .await?;
    let s = &done.summary;
    if done.customers == 0 {
        return Err(fail(
            exit::BAD_INPUT,
            format!(
                "{}: no customer could be imported ({} rows read){}",
                file.display(),
                s.rows_read,
                first_problem(&shown)
            ),
        ));
    }
    let summary = Summary {
        kind: "customers",
        file: file.display().to_string(),
        import_id: done.import_id,
        rows_read: s.rows_read,
        rows_imported: s.rows_read - s.rows_rejected,
        rows_rejected: s.rows_rejected,
        customers: done.customers,
        invalid_emails: s.invalid_emails,
        rejects_file: rejects_file.map(|p| p.display().to_string()),
        columns: s.columns.clone(),
        notes: s.notes.clone(),
        ..Default::default()
    };
    Ok((summary, shown))
}

/// Imports a products (catalogue) file into the workspace.
pub async fn import_products(
    ctx: &Context,
    file: &Path,
    opts: &ImportOptions,
) -> Result<(Summary, Vec<Reject>)> {
    let bytes = import::read_file(file)?;
    let parsed = import::parse_products(file, &bytes, opts)?;
    if parsed.products.is_empty() {
        return Err(fail(
            exit::BAD_INPUT,
            format!(
                "{}: no product could be imported ({} rows read){}",
                file.display(),
                parsed.rows_read,
                first_problem(&parsed.rejects)
            ),
        ));
    }
    let rejects_file = write_rejects(ctx, file, &parsed.rejects)?;
    let record = ctx
        .store
        .import_products(
            &file.display().to_string(),
            &parsed.products,
            (parsed.rows_read, parsed.rows_rejected),
        )
        .await
        .with_context(|| format!("storing the products of {}", file.display()))?;
    let out_of_stock = parsed.products.iter().filter(|p| !p.in_stock).count();
    let summary = Summary {
        kind: "products",
        file: file.display().to_string(),
        import_id: record.id,
        rows_read: parsed.rows_read,
        rows_imported: parsed.rows_read - parsed.rows_rejected,
        rows_rejected: parsed.rows_rejected,
        rejects_file: rejects_file.map(|p| p.display().to_string()),
        columns: parsed.columns.clone(),
        notes: vec![format!(
            "{} products out of stock",
            count(out_of_stock as u64)
        )],
        products: parsed.products.len() as u64,
        ..Default::default()
    };
    Ok((summary, parsed.rejects))
}

/// "; first problem: …" naming the first rejected row, for a "nothing could be imported" error.
fn first_problem(rejects: &[Reject]) -> String {
    rejects
        .first()
        .map(|r| format!("; first problem: {r}"))
        .unwrap_or_default()
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Writes rejected rows to `rejects/<file stem>-<time>.csv` in the workspace.
fn write_rejects(ctx: &Context, file: &Path, rejects: &[Reject]) -> Result<Option<PathBuf>> {
    if rejects.is_empty() {
        return Ok(None);
    }
    let out = RejectsFile::new(ctx.path("rejects"), file);
    out.write(rejects)
        .with_context(|| format!("writing the rejected rows of {}", file.display()))?;
    Ok(out.finish()?.1)
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
        if s.product_lines > 0 {
            println!("  product lines      {:>12}", count(s.product_lines));
        }
        if let (Some(df), Some(d)) = (&s.date_format, &s.delimiter) {
            println!("  date format        {df:>12}   delimiter '{d}'");
        }
    } else if s.kind == "items" {
        println!("  orders             {:>12}", count(s.orders));
        println!("  product lines      {:>12}", count(s.product_lines));
        println!("  returned lines     {:>12}", count(s.returns));
        println!("  products           {:>12}", count(s.products));
        println!("  unknown orders     {:>12}", count(s.unknown_orders));
    } else if s.kind == "products" {
        println!("  products           {:>12}", count(s.products));
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
            println!(
                "All {} skipped rows: {f}",
                count(s.rows_rejected + s.rows_without_customer)
            );
        }
    }
}
