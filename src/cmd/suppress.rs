//! `retain suppress list|add|remove|import|export`: the addresses that are never mailed.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use retain_core::import::customers::is_valid_email;
use retain_core::SuppressionReason;

use super::{exit, fail, Context};
use crate::output::{print_json, Format, Table};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List suppressed addresses.
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Suppress an address.
    Add {
        email: String,
        /// unsubscribed | hard_bounce | complaint | manual
        #[arg(long, default_value = "manual")]
        reason: String,
    },
    /// Remove an address from the list.
    Remove { email: String },
    /// Suppress every address of a CSV (a column named email; an optional reason column).
    Import { file: PathBuf },
    /// Write the list as CSV (email,reason,source,created_at) to a file or stdout.
    Export {
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

fn reason(s: &str) -> Result<SuppressionReason> {
    SuppressionReason::parse(s).ok_or_else(|| {
        fail(
            exit::BAD_INPUT,
            format!(
                "unknown reason '{s}': expected unsubscribed, hard_bounce, complaint or manual"
            ),
        )
    })
}

pub async fn run(ctx: &Context, cmd: Command) -> Result<()> {
    match cmd {
        Command::List { format } => {
            let list = ctx.store.suppressions().await?;
            match format {
                Format::Json => print_json(&list)?,
                f => {
                    let mut t = Table::new(["email", "reason", "source", "since"]);
                    for s in &list {
                        t.row([
                            s.email.clone(),
                            s.reason.as_str().to_string(),
                            s.source.clone(),
                            chrono::DateTime::from_timestamp(s.created_at, 0)
                                .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                                .unwrap_or_default(),
                        ]);
                    }
                    if f == Format::Csv {
                        t.print_csv()?;
                    } else {
                        print!("{}", t.render());
                        println!("{} suppressed", list.len());
                    }
                }
            }
        }
        Command::Add { email, reason: r } => {
            if !is_valid_email(email.trim()) {
                return Err(fail(
                    exit::BAD_INPUT,
                    format!("'{email}' is not a valid email address"),
                ));
            }
            let added = ctx.store.suppress(&email, reason(&r)?, "cli").await?;
            println!(
                "{} {}",
                if added {
                    "suppressed"
                } else {
                    "already suppressed:"
                },
                email.trim().to_lowercase()
            );
        }
        Command::Remove { email } => {
            if !ctx.store.unsuppress(&email).await? {
                return Err(fail(
                    exit::PRECONDITION,
                    format!("{email} is not suppressed"),
                ));
            }
            println!("removed {}", email.trim().to_lowercase());
        }
        Command::Import { file } => {
            let mut rdr = csv::ReaderBuilder::new()
                .flexible(true)
                .from_path(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let headers = rdr
                .headers()
                .with_context(|| format!("{}: reading the header", file.display()))?
                .clone();
            let find = |names: &[&str]| {
                headers.iter().position(|h| {
                    names.contains(&retain_core::import::columns::normalize(h).as_str())
                })
            };
            let email_col = find(&["email", "emailaddress", "mail"])
                .or(if headers.len() == 1 { Some(0) } else { None })
                .ok_or_else(|| {
                    fail(
                        exit::BAD_INPUT,
                        format!("{}: no email column in the header", file.display()),
                    )
                })?;
            let reason_col = find(&["reason"]);
            let mut entries = Vec::new();
            for (i, rec) in rdr.records().enumerate() {
                let rec = rec.with_context(|| format!("{}: line {}", file.display(), i + 2))?;
                let email = rec.get(email_col).unwrap_or("").trim();
                if !is_valid_email(email) {
                    return Err(fail(
                        exit::BAD_INPUT,
                        format!("{}: line {}: '{email}' is not a valid email address; nothing was imported", file.display(), i + 2),
                    ));
                }
                let r = match reason_col
                    .and_then(|c| rec.get(c))
                    .filter(|s| !s.trim().is_empty())
                {
                    Some(s) => reason(s.trim())?,
                    None => SuppressionReason::Manual,
                };
                entries.push((email.to_string(), r));
            }
            let added = ctx
                .store
                .suppress_many(&entries, &format!("import:{}", file.display()))
                .await?;
            println!("{} addresses read, {added} newly suppressed", entries.len());
        }
        Command::Export { output } => {
            let list = ctx.store.suppressions().await?;
            let sink: Box<dyn std::io::Write> = match &output {
                Some(p) => Box::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut w = csv::Writer::from_writer(sink);
            w.write_record(["email", "reason", "source", "created_at"])?;
            for s in list {
                w.write_record([
                    s.email,
                    s.reason.as_str().to_string(),
                    s.source,
                    s.created_at.to_string(),
                ])?;
            }
            w.flush()?;
        }
    }
    Ok(())
}
