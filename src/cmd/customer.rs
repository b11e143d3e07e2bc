//! `retain customer show|export|erase`: one customer looked up by id or address — everything the
//! store holds about them (`Store::customer_profile`), exported as one JSON document for an
//! access request, or erased for an erasure request (`Store::erase_customer`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use retain_store::{CustomerProfile, StoreError};
use serde::Serialize;

use super::{exit, fail, Context};
use crate::output::{count, money, print_json, Format, Table};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// A customer's attributes, consent, orders, segment history, prediction, campaigns, events
    /// and whether they may be mailed.
    #[command(after_help = "Examples:
  retain customer show C000042
  retain customer show ann@example.com --format json")]
    Show {
        /// The customer's id, or an address that belongs to one customer.
        customer: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Everything held about the customer as one JSON document (a GDPR access request).
    #[command(after_help = "Examples:
  retain customer export ann@example.com > ann.json
  retain customer export C000042 --output C000042.json")]
    Export {
        customer: String,
        /// Write to this file instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Delete the customer's personal data (a GDPR erasure request): address, names,
    /// attributes, locale, signup date, the user agents of their events and the address on
    /// their send rows. Orders, aggregates, segment history and campaign results stay, under
    /// the id erased-<key>; the address is kept only as a SHA-256 hash, so a later import of it
    /// is never mailed.
    #[command(after_help = "Examples:
  retain customer erase ann@example.com           # asks first
  retain customer erase C000042 --yes             # no question (scripts)")]
    Erase {
        customer: String,
        /// Erase without asking.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(ctx: &Context, cmd: Command, quiet: bool) -> Result<()> {
    match cmd {
        Command::Show { customer, format } => {
            let p = profile(ctx, &customer).await?;
            match format {
                Format::Json => print_json(&p),
                Format::Table => {
                    print!("{}", table(&p));
                    Ok(())
                }
                other => Err(fail(
                    2,
                    format!("--format {other:?} is not offered here: use table or json")
                        .to_lowercase(),
                )),
            }
        }
        Command::Export { customer, output } => {
            let p = profile(ctx, &customer).await?;
            let doc = Export {
                exported_at: chrono::Utc::now().to_rfc3339(),
                profile: &p,
            };
            match output {
                None => print_json(&doc),
                Some(path) => {
                    let text = serde_json::to_string_pretty(&doc)?;
                    std::fs::write(&path, text + "\n")
                        .with_context(|| format!("writing {}", path.display()))?;
                    if !quiet {
                        eprintln!(
                            "Wrote everything held about {customer} to {}",
                            path.display()
                        );
                    }
                    Ok(())
                }
            }
        }
        Command::Erase { customer, yes } => erase(ctx, &customer, yes, quiet).await,
    }
}

/// The access-request document: the profile and when it was taken.
#[derive(Debug, Serialize)]
struct Export<'a> {
    exported_at: String,
    #[serde(flatten)]
    profile: &'a CustomerProfile,
}

async fn profile(ctx: &Context, customer: &str) -> Result<CustomerProfile> {
    match ctx.store.customer_profile(customer).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(fail(
            exit::PRECONDITION,
            format!("no customer '{customer}' (give an id or an address)"),
        )),
        Err(StoreError::Conflict(why)) => Err(fail(2, why)),
        Err(e) => Err(e.into()),
    }
}

async fn erase(ctx: &Context, customer: &str, yes: bool, quiet: bool) -> Result<()> {
    let p = profile(ctx, customer).await?;
    if p.erased {
        if !quiet {
            println!("Customer {} is already erased.", p.customer.id);
        }
        return Ok(());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(fail(
                2,
                format!("erasing {customer} cannot be undone: pass --yes to erase without asking"),
            ));
        }
        eprint!(
            "Erase the personal data of {} ({} orders, {} campaigns)? This cannot be undone. [y/N] ",
            p.customer.id,
            p.orders.len(),
            p.campaigns.len()
        );
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .context("reading the answer")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            return Err(fail(exit::PRECONDITION, "not erased"));
        }
    }
    let e = match ctx.store.erase_customer(&p.customer.id).await? {
        Some(e) => e,
        None => {
            return Err(fail(
                exit::PRECONDITION,
                format!("no customer '{customer}'"),
            ))
        }
    };
    if !quiet {
        println!(
            "Erased {customer}: now {}. Kept anonymously: {} orders, segment history, predictions, {} send rows ({} queued emails withdrawn). {} address(es) kept only as a hash, never mailed again.",
            e.new_id,
            count(e.orders_kept),
            count(e.sends_anonymised as i64),
            count(e.queued_withdrawn as i64),
            e.addresses_hashed
        );
        println!(
            "Not touched: files outside the database (rejects/, outbox/, your exports) may still hold this person's rows."
        );
    }
    Ok(())
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn table(p: &CustomerProfile) -> String {
    let c = &p.customer;
    let mut out = format!("Customer {} (key {})", c.id, p.key);
    if p.erased {
        out.push_str(" — personal data erased");
    }
    out.push('\n');
    let mailable = match p.suppression {
        Some(r) => format!("not mailable: suppressed ({})", r.as_str()),
        None if c.subscribed == Some(false) => "not mailable: opted out".into(),
        None if c.email.is_none() => "not mailable: no address".into(),
        None if !c.email_valid => "not mailable: invalid address".into(),
        None => "mailable".into(),
    };
    let name = [c.first_name.as_deref(), c.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let consent = match c.subscribed {
        Some(true) => "opted in",
        Some(false) => "opted out",
        None => "unknown",
    };
    let mut facts = vec![
        ("email", c.email.clone().unwrap_or_else(|| "-".into())),
        ("name", if name.is_empty() { "-".into() } else { name }),
        ("consent", consent.to_string()),
        ("status", mailable),
    ];
    if let Some(d) = c.signup_date {
        facts.push(("signup", d.to_string()));
    }
    if let Some(l) = &c.locale {
        facts.push(("locale", l.clone()));
    }
    if !c.attributes.is_empty() {
        facts.push((
            "attributes",
            c.attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    for (k, v) in facts {
        out.push_str(&format!("  {k:<11} {v}\n"));
    }

    let purchases: Vec<_> = p.orders.iter().filter(|o| !o.is_return).collect();
    let revenue: f64 = p.orders.iter().map(|o| o.amount).sum::<f64>() + 0.0;
    out.push_str(&format!(
        "\nOrders: {} ({} purchases, {} returns), net revenue {}\n",
        count(p.orders.len() as i64),
        count(purchases.len() as i64),
        count((p.orders.len() - purchases.len()) as i64),
        money(revenue)
    ));
    if !p.orders.is_empty() {
        let mut t = Table::new(["date", "order", "amount", "items", "product"]);
        for o in &p.orders {
            t.row([
                o.ordered_at.format("%Y-%m-%d").to_string(),
                o.order_id.clone(),
                money(o.amount),
                o.items.to_string(),
                o.product.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&t.render());
    }

    out.push_str("\nSegment history:");
    if p.segments.is_empty() {
        out.push_str(" none (not segmented yet)\n");
    } else {
        out.push('\n');
        let mut t = Table::new(["run", "method", "as of", "segment", "R", "F", "M"]);
        for s in &p.segments {
            t.row([
                s.run_id.to_string(),
                s.method.clone(),
                s.as_of.clone().unwrap_or_default(),
                s.segment.clone(),
                s.r.to_string(),
                s.f.to_string(),
                s.m.to_string(),
            ]);
        }
        out.push_str(&t.render());
    }

    match &p.prediction {
        Some(x) => out.push_str(&format!(
            "\nPrediction (run {}, as of {}): P(alive) {:.2}, expected purchases in 90 days {:.2}, CLV {}\n",
            x.run_id,
            x.as_of,
            x.p_alive,
            x.expected_purchases_90d,
            x.clv.map(money).unwrap_or_else(|| "- (no spend model)".into())
        )),
        None => out.push_str("\nPrediction: none (run `retain predict`)\n"),
    }

    out.push_str("\nCampaigns:");
    if p.campaigns.is_empty() {
        out.push_str(" none\n");
    } else {
        out.push('\n');
        let mut t = Table::new(["campaign", "plan", "goal", "role", "send", "sent at"]);
        for c in &p.campaigns {
            let (state, sent) = match &c.send {
                Some(s) => (
                    s.state.as_str().to_string(),
                    s.sent_at.map(date).unwrap_or_default(),
                ),
                None if c.holdout => ("-".into(), String::new()),
                None => ("not queued".into(), String::new()),
            };
            t.row([
                c.campaign_id.clone(),
                match c.plan_state {
                    Some(state) => format!("{} ({})", c.plan_id, state.as_str()),
                    None => "-".into(),
                },
                c.goal.clone(),
                if c.holdout { "held out" } else { "recipient" }.to_string(),
                state,
                sent,
            ]);
        }
        out.push_str(&t.render());
    }

    out.push_str("\nTracking events:");
    if p.events.is_empty() {
        out.push_str(" none\n");
    } else {
        out.push('\n');
        let mut t = Table::new(["time", "campaign", "event", "url", "bot"]);
        for e in &p.events {
            t.row([
                date(e.at),
                e.campaign_id.clone(),
                e.kind.as_str().to_string(),
                e.url.clone().unwrap_or_default(),
                if e.bot { "yes" } else { "" }.to_string(),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}
