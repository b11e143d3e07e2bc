//! `retain mail preview|test`: look at a campaign's email before sending it — write the `.eml`
//! and `.html` of one recipient, or send one test copy to an address (never recorded as a send).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use retain_mailer::transport::{FileTransport, SmtpTransport};
use retain_mailer::Transport;

use super::send::{load, mailer_error, outbox, smtp_settings, MailOptions, TransportKind};
use super::{exit, fail, Context};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the email of one recipient as .eml and .html files.
    #[command(after_help = "Example:
  retain mail preview win_back-1 --customer C123 --out /tmp/preview")]
    Preview {
        campaign: String,
        /// The recipient (default: the campaign's first mailed member).
        #[arg(long)]
        customer: Option<String>,
        /// Directory of the files (default: <workspace>/preview).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        mail: MailOptions,
    },
    /// Send one test copy (rendered for a recipient of the campaign) to an address.
    #[command(after_help = "Example:
  retain mail test win_back-1 --to me@shop.example")]
    Test {
        campaign: String,
        /// Where the test copy goes.
        #[arg(long)]
        to: String,
        /// Render it for this recipient (default: the campaign's first mailed member).
        #[arg(long)]
        customer: Option<String>,
        /// smtp or file (default: smtp when smtp.url is configured, else file).
        #[arg(long, value_enum)]
        transport: Option<TransportKind>,
        #[command(flatten)]
        mail: MailOptions,
    },
}

pub async fn run(ctx: &Context, cmd: Command) -> Result<()> {
    match cmd {
        Command::Preview {
            campaign,
            customer,
            out,
            mail,
        } => {
            let loaded = load(ctx, &campaign, &mail).await?;
            let (r, send_id, message_id) =
                pick(ctx, &loaded, &campaign, customer.as_deref()).await?;
            let email = r.customer.email.clone().unwrap_or_default();
            let rendered = loaded
                .composer
                .render(send_id, &email, r)
                .map_err(mailer_error)?;
            let msg = loaded
                .composer
                .compose(send_id, &message_id, &email, r)
                .map_err(mailer_error)?;
            let dir = out.unwrap_or_else(|| ctx.path("preview"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let stem = format!("{campaign}-{}", r.customer.id)
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>();
            let eml = dir.join(format!("{stem}.eml"));
            let html = dir.join(format!("{stem}.html"));
            std::fs::write(&eml, &msg.raw).with_context(|| format!("writing {}", eml.display()))?;
            std::fs::write(&html, &rendered.html)
                .with_context(|| format!("writing {}", html.display()))?;
            println!("Subject: {}", rendered.subject);
            println!("To: {email} (customer {})", r.customer.id);
            println!("  {}", eml.display());
            println!("  {}", html.display());
        }
        Command::Test {
            campaign,
            to,
            customer,
            transport,
            mail,
        } => {
            if to
                .trim()
                .parse::<retain_mailer::message::Address>()
                .is_err()
            {
                return Err(fail(
                    exit::BAD_INPUT,
                    format!("'{to}' is not a valid email address"),
                ));
            }
            let loaded = load(ctx, &campaign, &mail).await?;
            let (r, _, _) = pick(ctx, &loaded, &campaign, customer.as_deref()).await?;
            // Send id 0: tracking links of a test copy record nothing.
            let message_id = loaded.composer.identity().new_message_id();
            let msg = loaded
                .composer
                .compose(0, &message_id, to.trim(), r)
                .map_err(mailer_error)?;
            let kind = transport.unwrap_or(if ctx.config.smtp.url.trim().is_empty() {
                TransportKind::File
            } else {
                TransportKind::Smtp
            });
            let delivery = match kind {
                TransportKind::Smtp => {
                    let t = Arc::new(SmtpTransport::new(smtp_settings(&ctx.config)?, 1));
                    let d = t.send(0, &msg).await;
                    t.close().await;
                    d
                }
                TransportKind::File => {
                    let dir = outbox(&ctx.dir, &campaign).join("test");
                    let t =
                        FileTransport::new(&dir).map_err(|e| fail(exit::FAILURE, e.to_string()))?;
                    t.send(0, &msg).await
                }
            }
            .map_err(|e| fail(exit::FAILURE, format!("test copy not sent: {e}")))?;
            println!(
                "test copy of {campaign} (rendered for customer {}) sent to {to}: {}",
                r.customer.id, delivery.response
            );
        }
    }
    Ok(())
}

/// The recipient to render for, with its send id and Message-ID when it is in the ledger.
async fn pick<'a>(
    ctx: &Context,
    loaded: &'a super::send::Loaded,
    campaign: &str,
    customer: Option<&str>,
) -> Result<(&'a retain_mailer::Recipient, i64, String)> {
    let id = match customer {
        Some(c) => c.to_string(),
        None => loaded
            .members
            .iter()
            .find(|m| !m.holdout && loaded.recipients.contains_key(&m.customer_id))
            .map(|m| m.customer_id.clone())
            .ok_or_else(|| {
                fail(
                    exit::PRECONDITION,
                    format!("campaign {campaign} has no mailed member to preview"),
                )
            })?,
    };
    let r = loaded.recipients.get(&id).ok_or_else(|| {
        fail(
            exit::PRECONDITION,
            format!("customer {id} is not a member of campaign {campaign}"),
        )
    })?;
    let row = ctx.store.send_of(campaign, &id).await?;
    Ok(match row {
        Some(row) => (r, row.id, row.message_id),
        None => (r, 0, loaded.composer.identity().new_message_id()),
    })
}
