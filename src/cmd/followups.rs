//! `retain followups`: the follow-up steps of sent campaigns — `run` creates the steps whose day
//! has come (their recipients queued in the ledger) and sends the approved ones through the same
//! engine as `retain send`; `approve` releases a step of a goal that approves each step; `list`
//! shows the steps created so far.

use anyhow::Result;
use clap::Subcommand;
use retain_mailer::{create_due_steps, FollowupOptions, Identity};
use retain_store::{CampaignSendState, ConsentCheck};
use serde_json::json;

use super::send::{mailer_error, TransportKind};
use super::{exit, fail, Context};
use crate::output::{print_json, Format, Table};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the due steps of approved campaigns and send the approved ones.
    #[command(after_help = "Examples:
  retain followups run --dry-run     # which steps are due and whom they would reach
  retain followups run               # create them and send (SMTP if smtp.url is set, else .eml files)
  retain followups run --format json

A step goes to the campaign's recipients whose `when` rule matches what they did (opened,
clicked, converted, unsubscribed, bounced) and who they are (customer conditions such as
`clv > 100` or `segment = \"At Risk\"`); the holdout never gets one. A campaign tested on a
share (test_share) sends the winner to the rest once the test's days have passed (step 0), or,
without a valid winner by then, its default_variant. Suppression, consent and the
frequency cap apply when the step is created. Each recipient gets each step at most once:
running it again sends only what is still queued.")]
    Run {
        /// Decide and count; create, queue and send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Mail only customers who opted in.
        #[arg(long)]
        require_opt_in: bool,
        /// smtp or file (default: smtp when smtp.url is configured, else file).
        #[arg(long, value_enum)]
        transport: Option<TransportKind>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Approve a created step of a goal with `approve = "each_step"`.
    #[command(after_help = "Example:
  retain followups approve p1-win_back-1 1")]
    Approve { campaign: String, step: i64 },
    /// The steps created so far for a campaign.
    List {
        campaign: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

pub async fn run(ctx: &Context, cmd: Command) -> Result<()> {
    match cmd {
        Command::Run {
            dry_run,
            require_opt_in,
            transport,
            format,
        } => {
            let now = test_now().unwrap_or_else(|| chrono::Utc::now().timestamp());
            run_due(ctx, now, dry_run, require_opt_in, transport, format).await
        }
        Command::Approve { campaign, step } => {
            if !ctx.store.approve_step(&campaign, step).await? {
                return Err(fail(
                    exit::PRECONDITION,
                    format!("campaign {campaign} has no step {step} yet: see `retain followups list {campaign}`"),
                ));
            }
            let ledger = retain_store::step_ledger_id(&campaign, step);
            ctx.store
                .set_send_campaign_state(&ledger, CampaignSendState::Active)
                .await?;
            println!("Step {step} of {campaign} approved: `retain followups run` sends it.");
            Ok(())
        }
        Command::List { campaign, format } => {
            let steps = ctx.store.campaign_steps(&campaign).await?;
            let mut rows = Vec::new();
            for s in &steps {
                let c = ctx.store.send_counts(&s.ledger_id).await?;
                rows.push((s, c));
            }
            if format == Format::Json {
                return print_json(&json!(rows
                    .iter()
                    .map(|(s, c)| json!({"step": s, "sends": c}))
                    .collect::<Vec<_>>()));
            }
            let mut t = Table::new([
                "step", "ledger", "template", "approved", "matched", "queued", "sent",
            ]);
            for (s, c) in rows {
                t.row([
                    s.step.to_string(),
                    s.ledger_id.clone(),
                    s.template.clone(),
                    if s.approved { "yes" } else { "no" }.into(),
                    s.recipients.to_string(),
                    c.queued.to_string(),
                    c.sent.to_string(),
                ]);
            }
            if format == Format::Csv {
                t.print_csv()
            } else {
                print!("{}", t.render());
                Ok(())
            }
        }
    }
}

/// `RETAIN_TEST_NOW` (Unix seconds): the time `followups run` and `worker` take as now when
/// deciding which steps are due, so an end-to-end test can reach a step's day without waiting.
pub fn test_now() -> Option<i64> {
    std::env::var("RETAIN_TEST_NOW")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
}

/// Creates the steps due at `now` (Unix seconds), sends the approved ones and prints what was
/// done; `retain demo` calls it with its simulated clock.
pub async fn run_due(
    ctx: &Context,
    now: i64,
    dry_run: bool,
    require_opt_in: bool,
    transport: Option<TransportKind>,
    format: Format,
) -> Result<()> {
    let identity = Identity::new(&ctx.config.sender.from, &ctx.config.sender.reply_to)
        .map_err(mailer_error)?;
    let opts = FollowupOptions {
        now,
        frequency_cap_days: ctx.config.planner.frequency_cap_days,
        consent: ConsentCheck { require_opt_in },
        dry_run,
    };
    let due = create_due_steps(&ctx.store, &identity, &opts)
        .await
        .map_err(mailer_error)?;
    let mut sent = Vec::new();
    if !dry_run {
        sent = send_approved(ctx, transport).await?;
    }
    if format == Format::Json {
        return print_json(&json!({"dry_run": dry_run, "created": due, "sent": sent}));
    }
    if due.is_empty() {
        println!("No follow-up step is due.");
    } else {
        println!(
            "{} follow-up steps {}:",
            due.len(),
            if dry_run {
                "due (dry run: nothing written)"
            } else {
                "created"
            }
        );
        let mut t = Table::new([
            "campaign",
            "step",
            "template",
            "when",
            "recipients",
            "matched",
            "queued",
            "held back",
            "approved",
        ]);
        for d in &due {
            t.row([
                d.campaign_id.clone(),
                d.step.to_string(),
                d.template.clone(),
                d.when.clone(),
                d.considered.to_string(),
                d.matched.to_string(),
                d.queued.to_string(),
                d.excluded
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if d.approved { "yes" } else { "waits" }.into(),
            ]);
        }
        print!("{}", t.render());
        for d in &due {
            if let Some(note) = &d.note {
                println!("  {}: {note}", d.ledger_id);
            }
        }
    }
    for (ledger, n) in &sent {
        println!("  {ledger}: {n} sent");
    }
    Ok(())
}

/// Sends every approved step that still has queued rows.
async fn send_approved(
    ctx: &Context,
    transport: Option<TransportKind>,
) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for step in retain_mailer::sendable_steps(&ctx.store)
        .await
        .map_err(mailer_error)?
    {
        let rep = super::send::send_step(ctx, &step, transport).await?;
        out.push((step.ledger_id.clone(), rep.sent));
    }
    Ok(out)
}
