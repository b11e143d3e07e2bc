//! `retain stats`: customers, revenue, repeat-purchase rate, retention and churn, new vs
//! returning customers per period, and the cohort retention matrix.

use anyhow::Result;
use chrono::NaiveDate;
use clap::Args as ClapArgs;
use retain_core::metrics::{Period, ShopStats};

use super::{exit, fail, Context};
use crate::output::{count, money, pct, print_json, Format, Table};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  retain stats
  retain stats --period quarter --as-of 2011-12-01
  retain stats --format json | jq .retention

Definitions: a customer is active in a period when they purchased in it. Retention rate of the
last complete period P = (E - N) / S with S = active in P-1, E = active in P, N = new in P;
churn = 1 - retention. --format csv prints the per-period table.")]
pub struct Args {
    /// Compute as of this date (orders on or after it are ignored). Default: the day after the last order.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Period for retention, new-vs-returning and cohorts.
    #[arg(long, value_parser = ["week", "month", "quarter"], default_value = "month")]
    pub period: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Computes the workspace's statistics.
pub async fn compute(ctx: &Context, as_of: Option<NaiveDate>, period: Period) -> Result<ShopStats> {
    ctx.store.shop_stats(as_of, period).await?.ok_or_else(|| {
        fail(
            exit::PRECONDITION,
            "no orders yet: import some with `retain import orders FILE`",
        )
    })
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    let period = Period::parse(&args.period).unwrap_or(Period::Month);
    let stats = compute(ctx, args.as_of, period).await?;
    match args.format {
        Format::Json => print_json(&stats),
        Format::Csv => periods_table(&stats, usize::MAX).print_csv(),
        _ => {
            print!("{}", render(&stats));
            Ok(())
        }
    }
}

fn periods_table(s: &ShopStats, last: usize) -> Table {
    let mut t = Table::new(["period", "active", "new", "returning", "orders", "revenue"]);
    let skip = s.periods.len().saturating_sub(last);
    for p in s.periods.iter().skip(skip) {
        t.row([
            p.period.clone(),
            count(p.active_customers),
            count(p.new_customers),
            count(p.returning_customers),
            count(p.orders),
            money(p.revenue),
        ]);
    }
    t
}

/// The human-readable report.
pub fn render(s: &ShopStats) -> String {
    let mut out = String::new();
    let period = match s.period {
        Period::Week => "week",
        Period::Month => "month",
        Period::Quarter => "quarter",
    };
    out.push_str(&format!("As of {} (period: {period})\n\n", s.as_of));
    let lines = [
        ("customers", count(s.customers)),
        ("orders", count(s.orders)),
        ("returns", count(s.returns)),
        ("net revenue", money(s.revenue)),
        ("average order value", money(s.average_order_value)),
        ("repeat-purchase rate", pct(s.repeat_purchase_rate)),
        ("revenue from repeaters", pct(s.repeat_revenue_share)),
    ];
    for (label, value) in lines {
        out.push_str(&format!("  {label:<25}{value:>14}\n"));
    }
    match &s.retention {
        Some(r) => {
            out.push_str(&format!(
                "  {:<25}{:>14}   (S={} active before, {} kept, {} new, {} reactivated)\n",
                format!("retention {}", r.period),
                r.retention_rate.map(pct).unwrap_or_else(|| "n/a".into()),
                count(r.customers_at_start),
                count(r.customers_at_end - r.new_customers),
                count(r.new_customers),
                count(r.reactivated_customers)
            ));
            out.push_str(&format!(
                "  {:<25}{:>14}\n",
                format!("churn {}", r.period),
                r.churn_rate.map(pct).unwrap_or_else(|| "n/a".into())
            ));
        }
        None => out.push_str("  retention                n/a (needs two complete periods)\n"),
    }
    out.push_str("\nNew vs returning customers (last 12 periods)\n");
    out.push_str(&periods_table(s, 12).render());
    out.push_str(
        "\nCohort retention (share of each cohort active N periods after its first purchase)\n",
    );
    let shown: Vec<_> = s.cohorts.iter().rev().take(12).rev().collect();
    let width = shown
        .iter()
        .map(|c| c.retention.len())
        .max()
        .unwrap_or(0)
        .min(12);
    let mut t = Table::new(
        ["cohort".to_string(), "size".to_string()]
            .into_iter()
            .chain((0..width).map(|i| format!("+{i}"))),
    );
    for c in shown {
        t.row(
            [c.cohort.clone(), count(c.customers)]
                .into_iter()
                .chain((0..width).map(|i| {
                    c.retention
                        .get(i)
                        .map(|v| format!("{:.0}%", v * 100.0))
                        .unwrap_or_default()
                })),
        );
    }
    out.push_str(&t.render());
    out
}
