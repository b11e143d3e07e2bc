//! `retain recommend`: trains the item-to-item model on the stored order lines (read customer by
//! customer), saves every customer's top picks — what emails show as `recommendations` — and
//! every customer's product due to be bought again (`days_until_due`), and prints one customer's
//! picks or a summary. `retain recommend evaluate --split-date D`: the model against the
//! popularity baseline on a time split.

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use clap::{Args as ClapArgs, Subcommand};
use retain_core::{date_of, day_of, Day, ItemFact};
use retain_recommend::{Line, ModelBuilder, Options, ReplenishmentBuilder, Split};
use retain_store::{ProductRow, StoredDue};
use serde::Serialize;

use super::{exit, fail, Context};
use crate::output::{count, money, print_json, Format, Table};

const EXAMPLES: &str = "Examples:
  retain recommend                         (train, save every customer's picks, print a summary)
  retain recommend --customer 17850 --top 5
  retain recommend --format json
  retain recommend evaluate --split-date 2011-09-01 --format json

The model learns which products are bought by the same customers (shrunk cosine similarity of
co-purchases) from the order lines imported with `retain import orders`. A customer's picks
never repeat what they bought or returned, never offer a product marked out of stock by
`retain import products`, and are filled from the most popular products (all a new customer
gets). Saved picks are what campaign emails show as `recommendations`; each customer's product
due to be bought again (from typical repurchase intervals) feeds the `days_until_due` goal field
and the templates' `due_product`.";

#[derive(Debug, ClapArgs)]
#[command(after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Show this customer's picks (by id).
    #[arg(long)]
    pub customer: Option<String>,
    /// Picks per customer.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub top: u16,
    /// Replenishment "today" (YYYY-MM-DD; default: the day after the newest order line).
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Train on the orders before a date, score the purchases from it on, against popularity.
    Evaluate(EvalArgs),
}

#[derive(Debug, ClapArgs)]
pub struct EvalArgs {
    /// The split: lines before this date train, lines from it on are scored.
    #[arg(long)]
    pub split_date: NaiveDate,
    /// Picks per customer (the @N of hit rate and recall).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub top: u16,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// One customer's lines as the recommender reads them: the returns rule decided by core.
fn lines_of(facts: &[ItemFact], out: &mut Vec<Line>) {
    out.clear();
    out.extend(facts.iter().map(|f| Line {
        product: f.product,
        day: f.day,
        quantity: f.quantity,
        returned: f.is_return(),
    }));
}

#[derive(Debug, Serialize)]
struct PickRow {
    rank: usize,
    product_id: String,
    name: Option<String>,
    price: Option<f64>,
    url: Option<String>,
    score: f32,
    source: &'static str,
}

#[derive(Debug, Serialize)]
struct Summary {
    customers: u64,
    products: u64,
    order_lines: u64,
    recommendations_saved: u64,
    customers_due: u64,
    as_of: String,
    most_popular: Vec<PickRow>,
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    if let Some(Sub::Evaluate(e)) = args.command {
        return evaluate(ctx, e).await;
    }
    let top = usize::from(args.top);
    let (products, lines) = ctx.store.product_counts().await?;
    if lines == 0 {
        return Err(fail(
            exit::PRECONDITION,
            "no order lines yet: import orders with product columns (retain import orders FILE) or their lines (retain import items FILE) first",
        ));
    }
    let unavailable = ctx.store.unavailable_products().await?;
    // Pass 1: the model and the repurchase intervals, customer by customer.
    let (builder, repl, last_day, _) = ctx
        .store
        .fold_customer_items(
            (
                ModelBuilder::new(Options::default()),
                ReplenishmentBuilder::new(),
                Day::MIN,
                Vec::new(),
            ),
            |(b, r, last, buf): &mut (ModelBuilder, ReplenishmentBuilder, Day, Vec<Line>),
             key,
             facts| {
                lines_of(facts, buf);
                b.add_customer(key, buf);
                r.add_customer(buf);
                *last = (*last).max(facts.iter().map(|f| f.day).max().unwrap_or(Day::MIN));
            },
        )
        .await
        .context("reading the order lines")?;
    let mut model = builder.build();
    model.set_unavailable(unavailable.iter().copied());
    let mut rows: Vec<(i64, Vec<(i64, f32)>)> = model
        .recommend_all(top)
        .into_iter()
        .map(|(c, picks)| (c, picks.iter().map(|p| (p.product, p.score)).collect()))
        .collect();
    // Key 0 (no customer): the popularity list, for customers without lines of their own.
    let popular = model.recommend(0, top);
    rows.push((0, popular.iter().map(|p| (p.product, 0.0)).collect()));
    let saved = ctx
        .store
        .save_recommendations(rows)
        .await
        .context("saving the recommendations")?;
    // Pass 2: each customer's product due soonest.
    let as_of = args.as_of.map(day_of).unwrap_or(last_day.saturating_add(1));
    let repl = repl.build(3, 3);
    let (dues, _) = ctx
        .store
        .fold_customer_items(
            (Vec::<StoredDue>::new(), Vec::new()),
            move |(dues, buf): &mut (Vec<StoredDue>, Vec<Line>), key, facts| {
                lines_of(facts, buf);
                if let Some(d) = repl.due(buf, as_of) {
                    dues.push(StoredDue {
                        ckey: key,
                        product: d.product,
                        last_day: d.last_day,
                        interval_days: i64::from(d.interval_days),
                        due_day: d.last_day.saturating_add(d.interval_days as Day),
                        own: d.own,
                    });
                }
            },
        )
        .await
        .context("reading the order lines")?;
    ctx.store
        .save_replenishment(&dues)
        .await
        .context("saving the replenishment dues")?;

    let show = |picks: &[retain_recommend::Pick], catalogue: &[ProductRow]| -> Vec<PickRow> {
        picks
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let row = catalogue.iter().find(|c| c.key == p.product);
                PickRow {
                    rank: i + 1,
                    product_id: row.map_or_else(|| p.product.to_string(), |r| r.id.clone()),
                    name: row.and_then(|r| r.name.clone()),
                    price: row.and_then(|r| r.price),
                    url: row.and_then(|r| r.url.clone()),
                    score: (p.score * 1000.0).round() / 1000.0,
                    source: if p.popular { "popular" } else { "co-purchase" },
                }
            })
            .collect()
    };
    let picks = match &args.customer {
        Some(id) => {
            let key = ctx
                .store
                .customer_key(id)
                .await?
                .ok_or_else(|| fail(exit::BAD_INPUT, format!("no customer with id '{id}'")))?;
            model.recommend(key, top)
        }
        None => popular,
    };
    let keys: Vec<i64> = picks.iter().map(|p| p.product).collect();
    let catalogue = ctx.store.products_by_keys(&keys).await?;
    let rows = show(&picks, &catalogue);
    if args.customer.is_some() {
        return print_picks(&rows, args.format);
    }
    let summary = Summary {
        customers: model.customers().len() as u64,
        products: products as u64,
        order_lines: lines as u64,
        recommendations_saved: saved,
        customers_due: dues.len() as u64,
        as_of: date_of(as_of).format("%Y-%m-%d").to_string(),
        most_popular: rows,
    };
    match args.format {
        Format::Json => print_json(&summary),
        Format::Csv => print_picks(&summary.most_popular, Format::Csv),
        _ => {
            println!(
                "Recommendations for {} customers from {} order lines ({} products)",
                count(summary.customers),
                count(summary.order_lines),
                count(summary.products)
            );
            println!(
                "  picks saved        {:>12}",
                count(summary.recommendations_saved)
            );
            println!(
                "  customers due      {:>12}   (a product to buy again, as of {})",
                count(summary.customers_due),
                summary.as_of
            );
            println!("\nMost popular (a new customer's picks):");
            print_picks(&summary.most_popular, Format::Table)
        }
    }
}

fn print_picks(rows: &[PickRow], format: Format) -> Result<()> {
    if format == Format::Json {
        return print_json(rows);
    }
    let mut t = Table::new(["rank", "product", "name", "price", "score", "source"]);
    for r in rows {
        t.row([
            r.rank.to_string(),
            r.product_id.clone(),
            r.name.clone().unwrap_or_default(),
            r.price.map(money).unwrap_or_default(),
            format!("{:.3}", r.score),
            r.source.to_string(),
        ]);
    }
    if format == Format::Csv {
        return t.print_csv();
    }
    print!("{}", t.render());
    Ok(())
}

async fn evaluate(ctx: &Context, args: EvalArgs) -> Result<()> {
    let split_day = day_of(args.split_date);
    let unavailable = ctx.store.unavailable_products().await?;
    let (split, _) = ctx
        .store
        .fold_customer_items(
            (Split::new(split_day, Options::default()), Vec::new()),
            |(s, buf): &mut (Split, Vec<Line>), key, facts| {
                lines_of(facts, buf);
                s.add_customer(key, buf);
            },
        )
        .await
        .context("reading the order lines")?;
    let report = split.evaluate(usize::from(args.top), &unavailable);
    if report.customers_evaluated == 0 {
        return Err(fail(
            exit::PRECONDITION,
            format!(
                "no customer bought anything new on or after {}: choose an earlier --split-date",
                args.split_date
            ),
        ));
    }
    #[derive(Serialize)]
    struct Out<'a> {
        split_date: String,
        #[serde(flatten)]
        report: &'a retain_recommend::EvaluationReport,
    }
    let out = Out {
        split_date: args.split_date.format("%Y-%m-%d").to_string(),
        report: &report,
    };
    match args.format {
        Format::Json => print_json(&out),
        f => {
            let pct = |v: f64| format!("{:.1}%", v * 100.0);
            let mut t = Table::new(["measure", "model", "popularity"]);
            t.row([
                format!("hit rate@{}", report.top),
                pct(report.hit_rate_at_10),
                pct(report.baseline_hit_rate_at_10),
            ]);
            t.row([
                format!("recall@{}", report.top),
                pct(report.recall_at_10),
                pct(report.baseline_recall_at_10),
            ]);
            t.row([
                "catalogue coverage".to_string(),
                pct(report.coverage),
                pct(report.baseline_coverage),
            ]);
            if f == Format::Csv {
                return t.print_csv();
            }
            println!(
                "Trained on {} customers' lines before {}; scored {} customers' later purchases",
                count(report.customers_trained),
                out.split_date,
                count(report.customers_evaluated)
            );
            print!("{}", t.render());
            Ok(())
        }
    }
}
