//! `retain campaign list|show|schedule|pause|resume|cancel`: the campaigns of all plans with where their
//! sending stands, one campaign's ledger with its deliverability (complaint and bounce rates in
//! total and per recipient domain, and why the guardrail paused it), and pausing, resuming or cancelling its sending (a
//! running `retain send` stops after the messages in flight).

use anyhow::Result;
use clap::Subcommand;
use retain_store::{CampaignSendState, SendState};
use serde::Serialize;

use super::{exit, fail, Context};
use crate::output::{print_json, Format, Table};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every campaign: plan state, send state and ledger counts.
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// One campaign's deliverability (complaint and bounce rates, per recipient domain too; why it
    /// paused itself) and recipients: state, attempts, last error (failed and unconfirmed first).
    Show {
        campaign: String,
        /// Only rows in this state (queued, sending, sent, failed, suppressed).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Schedule an approved campaign: `retain worker` processes send it from --at on.
    #[command(after_help = "Examples:
  retain campaign schedule p1-win_back-1 --at 2026-12-01T09:00:00Z
  retain campaign schedule p1-win_back-1 --at '2026-12-01 09:00'   # UTC
  retain campaign schedule p1-win_back-1 --at now
  retain campaign schedule p1-win_back-1 --clear

Unscheduled campaigns are never sent by workers, only by `retain send`.")]
    Schedule {
        campaign: String,
        /// When (UTC): RFC 3339, `YYYY-MM-DD HH:MM[:SS]`, or `now`.
        #[arg(long, required_unless_present = "clear")]
        at: Option<String>,
        /// Remove the schedule.
        #[arg(long, conflicts_with = "at")]
        clear: bool,
    },
    /// Stop sending a campaign (a running send stops after the messages in flight).
    Pause { campaign: String },
    /// Allow a paused campaign to send again (then run `retain send`).
    Resume { campaign: String },
    /// Stop a campaign for good: nothing more is sent.
    Cancel { campaign: String },
}

#[derive(Serialize)]
struct Row {
    campaign_id: String,
    plan_id: String,
    goal: String,
    plan_state: String,
    send_state: String,
    queued: i64,
    unconfirmed: i64,
    sent: i64,
    failed: i64,
    suppressed: i64,
}

async fn must_exist(ctx: &Context, campaign: &str) -> Result<()> {
    super::send::find_campaign(ctx, campaign).await.map(|_| ())
}

async fn set(ctx: &Context, campaign: &str, state: CampaignSendState) -> Result<()> {
    must_exist(ctx, campaign).await?;
    ctx.store
        .set_send_campaign_state(campaign, state)
        .await
        .map_err(|e| match e {
            retain_store::StoreError::Conflict(m) => fail(exit::PRECONDITION, m),
            other => other.into(),
        })?;
    println!("campaign {campaign}: {state}");
    Ok(())
}

/// Parses `--at`: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (UTC) or `now` (`None`: now).
fn parse_at(at: &str) -> Option<Option<i64>> {
    let at = at.trim();
    if at.eq_ignore_ascii_case("now") {
        return Some(None);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(at) {
        return Some(Some(t.timestamp()));
    }
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(at, f).ok())
    .map(|t| Some(t.and_utc().timestamp()))
}

async fn schedule(ctx: &Context, campaign: &str, at: Option<&str>, clear: bool) -> Result<()> {
    let (_, plan_state) = super::send::find_campaign(ctx, campaign).await?;
    if clear {
        let had = ctx.store.unschedule_campaign(campaign).await?;
        println!(
            "campaign {campaign}: {}",
            if had {
                "schedule removed"
            } else {
                "was not scheduled"
            }
        );
        return Ok(());
    }
    if plan_state != retain_store::PlanState::Approved {
        return Err(fail(
            exit::PRECONDITION,
            format!(
                "campaign {campaign}: its plan is {plan_state}, not approved; approve it first"
            ),
        ));
    }
    let at = at.unwrap_or("now");
    let when = parse_at(at).ok_or_else(|| {
        fail(
            exit::BAD_INPUT,
            format!("--at '{at}': expected RFC 3339 (2026-12-01T09:00:00Z), 'YYYY-MM-DD HH:MM' (UTC) or 'now'"),
        )
    })?;
    let when = match when {
        Some(t) => t,
        None => ctx.store.db_now().await?,
    };
    ctx.store.schedule_campaign(campaign, when).await?;
    let shown = chrono::DateTime::from_timestamp(when, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| when.to_string());
    println!("campaign {campaign}: scheduled for {shown}; `retain worker` sends it from then on");
    Ok(())
}

pub async fn run(ctx: &Context, cmd: Command) -> Result<()> {
    match cmd {
        Command::List { format } => {
            let plans = ctx.store.plans().await?;
            let counts = ctx.store.send_counts_all().await?;
            let states = ctx.store.send_campaign_states().await?;
            let rows: Vec<Row> = plans
                .into_iter()
                .flat_map(|p| {
                    let state = p.state.to_string();
                    p.campaigns.into_iter().map(move |c| (c, state.clone()))
                })
                .map(|(c, plan_state)| {
                    let n = counts.get(&c.campaign_id).copied().unwrap_or_default();
                    Row {
                        send_state: states
                            .get(&c.campaign_id)
                            .copied()
                            .unwrap_or(CampaignSendState::Active)
                            .to_string(),
                        campaign_id: c.campaign_id,
                        plan_id: c.plan_id,
                        goal: c.goal,
                        plan_state,
                        queued: n.queued,
                        unconfirmed: n.sending,
                        sent: n.sent,
                        failed: n.failed,
                        suppressed: n.suppressed,
                    }
                })
                .collect();
            if format == Format::Json {
                return print_json(&rows);
            }
            let mut t = Table::new([
                "campaign",
                "plan",
                "goal",
                "plan state",
                "sending",
                "queued",
                "unconfirmed",
                "sent",
                "failed",
                "suppressed",
            ]);
            for r in &rows {
                t.row([
                    r.campaign_id.clone(),
                    r.plan_id.clone(),
                    r.goal.clone(),
                    r.plan_state.clone(),
                    r.send_state.clone(),
                    r.queued.to_string(),
                    r.unconfirmed.to_string(),
                    r.sent.to_string(),
                    r.failed.to_string(),
                    r.suppressed.to_string(),
                ]);
            }
            if format == Format::Csv {
                t.print_csv()?;
            } else {
                print!("{}", t.render());
                if rows.is_empty() {
                    println!("no campaigns yet: `retain plan` proposes them");
                }
            }
        }
        Command::Show {
            campaign,
            state,
            format,
        } => {
            must_exist(ctx, &campaign).await?;
            let filter = state
                .as_deref()
                .map(|s| {
                    SendState::parse(s).ok_or_else(|| {
                        fail(
                            exit::BAD_INPUT,
                            format!(
                                "unknown state '{s}': queued, sending, sent, failed or suppressed"
                            ),
                        )
                    })
                })
                .transpose()?;
            let mut rows = ctx.store.sends_of(&campaign).await?;
            rows.retain(|r| filter.is_none_or(|f| r.state == f));
            let rank = |s: SendState| match s {
                SendState::Failed => 0,
                SendState::Sending => 1,
                SendState::Queued => 2,
                SendState::Suppressed => 3,
                SendState::Sent => 4,
            };
            rows.sort_by_key(|r| (rank(r.state), r.id));
            let (send_state, paused_reason) =
                ctx.store.send_campaign_state_and_reason(&campaign).await?;
            let d = ctx.store.campaign_deliverability(&campaign).await?;
            if format == Format::Json {
                #[derive(Serialize)]
                struct Rates<'a> {
                    #[serde(flatten)]
                    counts: &'a retain_store::DeliverabilityCounts,
                    complaint_rate: f64,
                    hard_bounce_rate: f64,
                    soft_bounce_rate: f64,
                }
                #[derive(Serialize)]
                struct Domain<'a> {
                    domain: &'a str,
                    #[serde(flatten)]
                    rates: Rates<'a>,
                }
                #[derive(Serialize)]
                struct Show<'a> {
                    campaign_id: &'a str,
                    send_state: CampaignSendState,
                    paused_reason: Option<String>,
                    deliverability: Rates<'a>,
                    domains: Vec<Domain<'a>>,
                    sends: &'a [retain_store::SendRecord],
                }
                let rates = |c| Rates {
                    counts: c,
                    complaint_rate: c.complaint_rate(),
                    hard_bounce_rate: c.hard_bounce_rate(),
                    soft_bounce_rate: c.soft_bounce_rate(),
                };
                return print_json(&Show {
                    campaign_id: &campaign,
                    send_state,
                    paused_reason,
                    deliverability: rates(&d.total),
                    domains: d
                        .domains
                        .iter()
                        .map(|(domain, c)| Domain {
                            domain,
                            rates: rates(c),
                        })
                        .collect(),
                    sends: &rows,
                });
            }
            if format != Format::Csv {
                let pct = |r: f64| format!("{:.2}%", r * 100.0);
                println!("campaign {campaign}: {send_state}");
                if let Some(why) = &paused_reason {
                    println!("paused by the guardrail: {why}");
                }
                let c = &d.total;
                println!(
                    "{} delivered; complaints {} ({}), hard bounces {} ({}), soft bounces {} ({})",
                    c.delivered,
                    c.complaints,
                    pct(c.complaint_rate()),
                    c.hard_bounces,
                    pct(c.hard_bounce_rate()),
                    c.soft_bounces,
                    pct(c.soft_bounce_rate())
                );
                if d.domains
                    .iter()
                    .any(|(_, c)| c.complaints + c.hard_bounces + c.soft_bounces > 0)
                {
                    let mut t = Table::new([
                        "domain",
                        "delivered",
                        "complaints",
                        "hard bounces",
                        "soft bounces",
                    ]);
                    for (domain, c) in &d.domains {
                        t.row([
                            domain.clone(),
                            c.delivered.to_string(),
                            pct(c.complaint_rate()),
                            pct(c.hard_bounce_rate()),
                            pct(c.soft_bounce_rate()),
                        ]);
                    }
                    print!("{}", t.render());
                }
                println!();
            }
            let mut t = Table::new([
                "send",
                "customer",
                "email",
                "state",
                "attempts",
                "sent at",
                "message id",
                "last error",
            ]);
            for r in &rows {
                t.row([
                    r.id.to_string(),
                    r.customer_id.clone(),
                    r.email.clone(),
                    r.state.to_string(),
                    r.attempts.to_string(),
                    r.sent_at
                        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default(),
                    r.message_id.clone(),
                    r.last_error.clone().unwrap_or_default(),
                ]);
            }
            if format == Format::Csv {
                t.print_csv()?;
            } else {
                print!("{}", t.render());
            }
        }
        Command::Schedule {
            campaign,
            at,
            clear,
        } => schedule(ctx, &campaign, at.as_deref(), clear).await?,
        Command::Pause { campaign } => set(ctx, &campaign, CampaignSendState::Paused).await?,
        Command::Resume { campaign } => set(ctx, &campaign, CampaignSendState::Active).await?,
        Command::Cancel { campaign } => set(ctx, &campaign, CampaignSendState::Cancelled).await?,
    }
    Ok(())
}
