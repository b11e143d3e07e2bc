//! `retain worker`: a long-running sender. It registers itself in the database, then sends every
//! approved campaign whose scheduled time has come (`retain campaign schedule`) and creates and
//! sends the follow-up steps that fall due (as `retain followups run` does), alongside any
//! number of other workers on any number of machines; SIGTERM or Ctrl-C finishes the messages
//! in flight and exits 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args as ClapArgs;
use retain_mailer::transport::{FileTransport, SmtpTransport};
use retain_mailer::{
    Identity, LoadedCampaign, MailerError, StepWork, Transport, WorkerOptions, WorkerReport,
};
use retain_store::{ConsentCheck, PlanState};

use super::send::{self, MailOptions, TransportKind};
use super::{exit, fail, Context};
use crate::output::{print_json, Format, Table};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  retain campaign schedule p1-win_back-1 --at 2026-12-01T09:00:00Z
  retain worker                      # runs until SIGTERM / Ctrl-C
  retain worker --until-idle         # sends what is due, then exits
  RETAIN_DATABASE_URL=postgres://… retain worker   # one per machine, as many as you like

Only scheduled campaigns are sent by workers: an approved campaign without a schedule is sent
by `retain send` (or once it is scheduled). Follow-up steps are the workers' too: a step whose
day has come is created (its rule matched against what each recipient did, the holdout never
included, suppression, consent and the frequency cap applied) and sent once approved — with the
plan (approve = \"sequence\") or by `retain followups approve` (approve = \"each_step\"). Workers share the campaign's smtp.rate and the
[smtp.domain_rates] limits through the database; a recipient a dead worker had in flight is
reported as unconfirmed, never sent twice.")]
pub struct Args {
    /// smtp or file (default: smtp when smtp.url is configured, else file).
    #[arg(long, value_enum)]
    pub transport: Option<TransportKind>,
    /// Parallel SMTP connections of this worker (default: smtp.concurrency).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Seconds between looks for due campaigns when idle.
    #[arg(long, default_value_t = 5.0)]
    pub poll: f64,
    /// Exit when nothing is due instead of waiting.
    #[arg(long)]
    pub until_idle: bool,
    /// Mail only customers who opted in (not those whose consent is unknown).
    #[arg(long)]
    pub require_opt_in: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

fn as_mailer(e: anyhow::Error) -> MailerError {
    MailerError::Config(format!("{e:#}"))
}

pub async fn run(ctx: &Context, args: Args, quiet: bool) -> Result<()> {
    let kind = send::transport_kind(&ctx.config, args.transport);
    let mut base = send::base_options(&ctx.config, kind);
    if let Some(c) = args.concurrency {
        base.concurrency = c.clamp(1, 256) as usize;
    }
    base.consent = ConsentCheck {
        require_opt_in: args.require_opt_in,
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if term.recv().await.is_some() {
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    let identity = Identity::new(&ctx.config.sender.from, &ctx.config.sender.reply_to)
        .map_err(send::mailer_error)?;
    let wopts = WorkerOptions {
        poll: Duration::from_secs_f64(args.poll.clamp(0.1, 3600.0)),
        until_idle: args.until_idle,
        steps: Some(StepWork {
            identity,
            frequency_cap_days: ctx.config.planner.frequency_cap_days,
            now: super::followups::test_now(),
        }),
    };
    if !quiet && args.format != Format::Json {
        eprintln!("worker {} started", base.owner);
    }
    let report = match kind {
        TransportKind::Smtp => {
            let settings = send::smtp_settings(&ctx.config)?;
            let load = |id: String| {
                let base = base.clone();
                let settings = settings.clone();
                async move {
                    let t = Arc::new(SmtpTransport::new(settings, base.concurrency));
                    load_campaign(ctx, &id, base, t).await
                }
            };
            retain_mailer::run_worker(&ctx.store, &base, &wopts, stop.clone(), load).await
        }
        TransportKind::File => {
            let load = |id: String| {
                let base = base.clone();
                async move {
                    let t = Arc::new(
                        FileTransport::new(&send::outbox(&ctx.dir, &id))
                            .map_err(|e| MailerError::Config(e.to_string()))?,
                    );
                    load_campaign(ctx, &id, base, t).await
                }
            };
            retain_mailer::run_worker(&ctx.store, &base, &wopts, stop.clone(), load).await
        }
    }
    .map_err(send::mailer_error)?;
    print_report(&report, args.format, quiet)
}

/// A due campaign (or a follow-up step, by its ledger id `<campaign>.s<n>`) with its composer
/// and audience; `None` when its plan is not approved.
async fn load_campaign<T: Transport>(
    ctx: &Context,
    id: &str,
    opts: retain_mailer::SendOptions,
    transport: Arc<T>,
) -> Result<Option<LoadedCampaign<T>>, MailerError> {
    let step = send::find_step(ctx, id).await.map_err(as_mailer)?;
    let loaded = match &step {
        Some(step) => send::load_step(ctx, step).await,
        None => {
            send::load(
                ctx,
                id,
                &MailOptions {
                    discount: None,
                    code_prefix: None,
                    shop_url: None,
                },
            )
            .await
        }
    }
    .map_err(as_mailer)?;
    if loaded.plan_state != PlanState::Approved {
        eprintln!(
            "skipping campaign {id}: its plan is {}, not approved",
            loaded.plan_state
        );
        return Ok(None);
    }
    Ok(Some(LoadedCampaign {
        composer: Arc::new(loaded.composer),
        transport,
        recipients: Arc::new(loaded.recipients),
        members: loaded.members,
        opts,
    }))
}

fn print_report(rep: &WorkerReport, format: Format, quiet: bool) -> Result<()> {
    if format == Format::Json {
        return print_json(rep);
    }
    for (campaign, why) in &rep.errors {
        eprintln!("campaign {campaign}: {why}");
    }
    if quiet {
        return Ok(());
    }
    for d in &rep.steps_created {
        println!(
            "Step {} of {} created: {} matched, {} queued{}{}",
            d.step,
            d.campaign_id,
            d.matched,
            d.queued,
            if d.approved {
                ""
            } else {
                " (waits for `retain followups approve`)"
            },
            d.note
                .as_deref()
                .map(|n| format!(" — {n}"))
                .unwrap_or_default()
        );
    }
    let mut t = Table::new(["campaign", "sent", "failed", "unconfirmed", "still queued"]);
    let mut rows: Vec<_> = rep.runs.iter().collect();
    rows.sort_by(|a, b| a.campaign_id.cmp(&b.campaign_id));
    for r in rows {
        t.row([
            r.campaign_id.clone(),
            r.sent.to_string(),
            r.failed.to_string(),
            r.unconfirmed.to_string(),
            r.remaining.to_string(),
        ]);
    }
    println!("Worker {}", rep.worker);
    print!("{}", t.render());
    if !rep.errors.is_empty() && rep.runs.is_empty() {
        return Err(fail(
            exit::FAILURE,
            format!("{} campaigns could not be sent", rep.errors.len()),
        ));
    }
    Ok(())
}
