//! `retain send CAMPAIGN`: sends the emails of an approved campaign exactly once — queue the
//! audience in the ledger, check every template, then send over SMTP (or to `.eml` files in
//! the outbox) with a progress bar; Ctrl-C stops cleanly after the messages in flight. Also
//! what `mail` and `campaign` share: loading a campaign with its audience and personalisation
//! data and building its composer and transport.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args as ClapArgs;
use retain_core::config::Config;
use retain_core::tracking::load_secret;
use retain_mailer::transport::{FileTransport, SmtpSettings, SmtpTransport};
use retain_mailer::{
    CampaignInfo, Composer, Dkim, Identity, MailerError, Member, Offer, Progress, Recipient,
    Scores, SendOptions, SendReport, Shared, StopReason, TemplateSet,
};
use retain_store::{ConsentCheck, PlanCampaignRecord, PlanState};

use super::{exit, fail, Context};
use crate::output::{print_json, Format, Table};

/// Where messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportKind {
    /// The SMTP server of smtp.url / RETAIN_SMTP_URL.
    Smtp,
    /// `.eml` files in <workspace>/outbox/<campaign>/.
    File,
}

/// Options that shape the emails (shared by `send` and `mail`).
#[derive(Debug, Clone, ClapArgs)]
pub struct MailOptions {
    /// Percent off offered in the email (`offer.discount_pct` in templates).
    #[arg(long, value_name = "PCT")]
    pub discount: Option<f64>,
    /// Prefix of the per-recipient offer codes (default: from the goal id).
    #[arg(long, value_name = "TEXT")]
    pub code_prefix: Option<String>,
    /// The shop's site for call-to-action links (`urls.shop`; default https://<sender domain>).
    #[arg(long, value_name = "URL")]
    pub shop_url: Option<String>,
}

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  retain send win_back-1 --dry-run            # who would get it, every message rendered, nothing sent
  retain send win_back-1                      # send (SMTP if smtp.url is set, else .eml files)
  retain send win_back-1 --rate 5 --limit 100 # a slow first batch
  retain send win_back-1 --format json

Exactly once: every recipient is recorded before and after its SMTP transaction. After a crash,
recipients whose transaction may have happened are reported as unconfirmed and not sent again
unless --resend-unconfirmed. Several `retain send` or `retain worker` processes, on any
machines sharing a PostgreSQL database, may send one campaign together: they claim recipients
in batches and share smtp.rate and the per-domain limits through the database. Suppressed, unsubscribed and holdout recipients never get mail.
DKIM: set RETAIN_DKIM_SELECTOR and RETAIN_DKIM_KEY_FILE (PKCS#1 PEM; RETAIN_DKIM_DOMAIN defaults
to the sender's domain).")]
pub struct Args {
    /// The campaign id (see `retain campaign list`).
    pub campaign: String,
    /// smtp or file (default: smtp when smtp.url is configured, else file).
    #[arg(long, value_enum)]
    pub transport: Option<TransportKind>,
    /// Messages per second (default: smtp.rate); 0 for no limit.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Parallel SMTP connections (default: smtp.concurrency), or messages written at once to
    /// the file outbox (default: 64).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Send at most this many emails in this run.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Check everything and render every email, send nothing, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Send again to recipients left unconfirmed by an interrupted run (they may get it twice).
    #[arg(long)]
    pub resend_unconfirmed: bool,
    /// Queue again the recipients whose earlier attempts failed temporarily.
    #[arg(long)]
    pub retry_failed: bool,
    /// Mail only customers who opted in (not those whose consent is unknown).
    #[arg(long)]
    pub require_opt_in: bool,
    #[command(flatten)]
    pub mail: MailOptions,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// A campaign with everything needed to write its emails.
pub struct Loaded {
    pub campaign: PlanCampaignRecord,
    /// The state of the campaign's plan: only `approved` campaigns send.
    pub plan_state: PlanState,
    pub members: Vec<Member>,
    pub recipients: HashMap<String, Recipient>,
    pub composer: Composer,
}

/// A campaign and its plan's state, or a precondition error naming where to look.
pub async fn find_campaign(
    ctx: &Context,
    campaign_id: &str,
) -> Result<(PlanCampaignRecord, PlanState)> {
    ctx.store.plan_campaign(campaign_id).await?.ok_or_else(|| {
        fail(
            exit::PRECONDITION,
            format!("no campaign '{campaign_id}': see `retain campaign list`"),
        )
    })
}

/// Maps mailer errors to exit codes: template and configuration problems are bad input (3),
/// a paused or cancelled campaign is a precondition (4).
pub fn mailer_error(e: MailerError) -> anyhow::Error {
    let code = match &e {
        MailerError::Template { .. }
        | MailerError::TemplateMissing { .. }
        | MailerError::Config(_)
        | MailerError::Header { .. } => exit::BAD_INPUT,
        MailerError::CampaignStopped { .. } => exit::PRECONDITION,
        MailerError::Secret(_) => exit::PRECONDITION,
        _ => exit::FAILURE,
    };
    fail(code, e.to_string())
}

/// Reads `RETAIN_DKIM_*` from the environment: `None` when DKIM is not configured.
fn dkim_from_env(sender_domain: &str) -> Result<Option<Dkim>> {
    let Ok(selector) = std::env::var("RETAIN_DKIM_SELECTOR") else {
        return Ok(None);
    };
    let file = std::env::var("RETAIN_DKIM_KEY_FILE").map_err(|_| {
        fail(
            exit::BAD_INPUT,
            "RETAIN_DKIM_SELECTOR is set but RETAIN_DKIM_KEY_FILE is not",
        )
    })?;
    let key = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
    let domain = std::env::var("RETAIN_DKIM_DOMAIN").unwrap_or_else(|_| sender_domain.to_string());
    let ed25519 = !key.contains("-----BEGIN");
    Dkim::new(&selector, &domain, &key, ed25519)
        .map(Some)
        .map_err(mailer_error)
}

/// Loads a campaign, its audience and the data its templates use, and builds its composer.
pub async fn load(ctx: &Context, campaign_id: &str, opts: &MailOptions) -> Result<Loaded> {
    let (campaign, plan_state) = find_campaign(ctx, campaign_id).await?;
    // Each member with their record, features, prediction and segment: one store call over the
    // campaign's members, not the whole shop. Without a segmentation run, a campaign aimed at a
    // single segment names it.
    let audience = ctx.store.campaign_audience(campaign_id).await?;
    let segment = match campaign.segments.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    };
    let score = |v: i64| v.clamp(0, 255) as u8;
    let variant_rows = ctx.store.campaign_variants(campaign_id).await?;
    // Tested on a share: the recipients waiting for the winner are not sent the first email
    // (the winner goes to them later, as the campaign's step 0).
    let waiting: std::collections::HashSet<&str> = variant_rows
        .iter()
        .filter(|v| v.variant == retain_planner::variants::REST_VARIANT)
        .map(|v| v.customer_id.as_str())
        .collect();
    let mut members = Vec::with_capacity(audience.len());
    let mut recipients: HashMap<String, Recipient> = HashMap::with_capacity(audience.len());
    for m in audience {
        if !waiting.contains(m.customer_id.as_str()) {
            members.push(Member {
                customer_id: m.customer_id.clone(),
                holdout: m.holdout,
            });
        }
        let Some(customer) = m.customer else { continue };
        let (seg, scores) = match m.segment {
            Some((s, r, f, mm)) => (
                Some(s),
                Some(Scores {
                    r: score(r),
                    f: score(f),
                    m: score(mm),
                }),
            ),
            None => (segment.clone(), None),
        };
        recipients.insert(
            m.customer_id,
            Recipient {
                segment: seg,
                scores,
                features: m.features,
                prediction: m.prediction,
                customer,
                ..Default::default()
            },
        );
    }
    add_products(ctx, &mut recipients).await?;
    let composer = composer(ctx, &ctx.config, &campaign, opts)?;
    let composer = with_variants(ctx, composer, variant_rows)?;
    Ok(Loaded {
        campaign,
        plan_state,
        members,
        recipients,
        composer,
    })
}

/// The audience's stored recommendations and due products (`retain recommend`), as the
/// templates show them.
async fn add_products(ctx: &Context, recipients: &mut HashMap<String, Recipient>) -> Result<()> {
    let ids: Vec<String> = recipients.keys().cloned().collect();
    let recs = ctx.store.recommendations_of(&ids).await?;
    let dues = ctx.store.replenishment_dues_of(&ids).await?;
    let today = retain_core::day_of(chrono::Utc::now().date_naive());
    let card = |p: &retain_store::ProductRow| retain_mailer::ProductCard {
        id: p.id.clone(),
        name: p.name.clone().unwrap_or_else(|| p.id.clone()),
        url: p.url.clone(),
        image: p.image_url.clone(),
        price: p.price,
    };
    for (id, r) in recipients.iter_mut() {
        if let Some(list) = recs.get(id) {
            r.recommendations = list.iter().map(card).collect();
        }
        if let Some((due_day, p)) = dues.get(id) {
            r.due = Some((card(p), i64::from(*due_day) - i64::from(today)));
        }
    }
    Ok(())
}

fn composer(
    ctx: &Context,
    config: &Config,
    campaign: &PlanCampaignRecord,
    opts: &MailOptions,
) -> Result<Composer> {
    let secret = load_secret(&ctx.dir).map_err(|e| fail(exit::PRECONDITION, e.to_string()))?;
    let identity = Identity::new(&config.sender.from, &config.sender.reply_to)
        .and_then(|i| i.with_bounce_domain(&config.sending.bounce_domain))
        .map_err(mailer_error)?;
    let templates = TemplateSet::load(
        &ctx.path("templates"),
        &campaign.template,
        &config.tracking.base_url,
        &secret,
    )
    .map_err(mailer_error)?;
    let shop_url = opts
        .shop_url
        .clone()
        .unwrap_or_else(|| format!("https://{}", identity.domain));
    if !(shop_url.starts_with("https://") || shop_url.starts_with("http://")) {
        return Err(fail(
            exit::BAD_INPUT,
            format!("--shop-url '{shop_url}' must be an http(s) URL"),
        ));
    }
    let dkim = dkim_from_env(&identity.domain)?;
    Ok(Composer::new(
        templates,
        identity,
        Shared {
            campaign: CampaignInfo {
                id: campaign.campaign_id.clone(),
                goal: campaign.goal.clone(),
                goal_name: goal_name(&ctx.dir, &campaign.goal),
                template: campaign.template.clone(),
            },
            company_name: config.company.name.clone(),
            company_address: config.company.address.clone(),
            from: config.sender.from.clone(),
            reply_to: config.sender.reply_to.clone(),
            shop_url,
            tracking_base_url: config.tracking.base_url.clone(),
            offer: Offer {
                discount_pct: opts.discount,
                code_prefix: opts.code_prefix.clone(),
            },
            today: chrono::Local::now().format("%Y-%m-%d").to_string(),
        },
        secret,
        dkim,
    ))
}

/// Adds the campaign's A/B variants (each recipient's template, drawn when the plan was made) to
/// its composer; a campaign without variants is returned as it is.
fn with_variants(
    ctx: &Context,
    composer: Composer,
    rows: Vec<retain_store::VariantAssignment>,
) -> Result<Composer> {
    if rows.is_empty() {
        return Ok(composer);
    }
    let secret = load_secret(&ctx.dir).map_err(|e| fail(exit::PRECONDITION, e.to_string()))?;
    let mut sets = HashMap::new();
    let mut assignment = HashMap::with_capacity(rows.len());
    for r in rows {
        if !sets.contains_key(&r.template) {
            let set = TemplateSet::load(
                &ctx.path("templates"),
                &r.template,
                &ctx.config.tracking.base_url,
                &secret,
            )
            .map_err(mailer_error)?;
            sets.insert(r.template.clone(), set);
        }
        assignment.insert(r.customer_id, r.template);
    }
    Ok(composer.with_variants(sets, assignment))
}

/// A created follow-up step ready to send: the campaign's recipients and composer, rendering the
/// step's template under the step's ledger id. The plan's state is the campaign's.
pub async fn load_step(ctx: &Context, step: &retain_store::StepRecord) -> Result<Loaded> {
    let mail = MailOptions {
        discount: None,
        code_prefix: None,
        shop_url: None,
    };
    let loaded = load(ctx, &step.campaign_id, &mail).await?;
    let record = PlanCampaignRecord {
        campaign_id: step.ledger_id.clone(),
        template: step.template.clone(),
        ..loaded.campaign.clone()
    };
    let composer = composer(ctx, &ctx.config, &record, &mail)?;
    Ok(Loaded {
        campaign: record,
        composer,
        ..loaded
    })
}

/// The created step a ledger id (`<campaign>.s<n>`) names, if any.
pub async fn find_step(ctx: &Context, ledger_id: &str) -> Result<Option<retain_store::StepRecord>> {
    let Some((campaign, n)) = ledger_id.rsplit_once(".s") else {
        return Ok(None);
    };
    let Ok(n) = n.parse::<i64>() else {
        return Ok(None);
    };
    Ok(ctx
        .store
        .campaign_steps(campaign)
        .await?
        .into_iter()
        .find(|s| s.step == n))
}

/// Sends the queued rows of a follow-up step (its own ledger id, its own template) through the
/// same engine as `retain send`.
pub async fn send_step(
    ctx: &Context,
    step: &retain_store::StepRecord,
    transport: Option<TransportKind>,
) -> Result<SendReport> {
    let loaded = load_step(ctx, step).await?;
    let composer = Arc::new(loaded.composer);
    let kind = transport_kind(&ctx.config, transport);
    let opts = SendOptions {
        rate: match kind {
            TransportKind::Smtp => ctx.config.smtp.rate,
            TransportKind::File => 0.0,
        },
        concurrency: (ctx.config.smtp.concurrency).clamp(1, 256) as usize,
        ..Default::default()
    };
    let recipients = Arc::new(loaded.recipients);
    let (progress, stop) = (
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
    );
    let result = match kind {
        TransportKind::Smtp => {
            let settings = smtp_settings(&ctx.config)?;
            let t = Arc::new(SmtpTransport::new(settings, opts.concurrency));
            retain_mailer::send_campaign(
                &ctx.store, composer, t, recipients, &opts, progress, stop, 0,
            )
            .await
        }
        TransportKind::File => {
            let t = Arc::new(
                FileTransport::new(&outbox(&ctx.dir, &step.ledger_id))
                    .map_err(|e| fail(exit::FAILURE, e.to_string()))?,
            );
            retain_mailer::send_campaign(
                &ctx.store, composer, t, recipients, &opts, progress, stop, 0,
            )
            .await
        }
    };
    result.map_err(mailer_error)
}

/// The goal's name from the workspace's goals.toml (the id when it cannot be found).
fn goal_name(dir: &Path, goal: &str) -> String {
    let text = std::fs::read_to_string(dir.join("goals.toml")).unwrap_or_default();
    text.parse::<toml::Table>()
        .ok()
        .and_then(|t| {
            t.get("goal")?.as_array()?.iter().find_map(|g| {
                let g = g.as_table()?;
                (g.get("id")?.as_str()? == goal)
                    .then(|| g.get("name")?.as_str().map(str::to_string))?
            })
        })
        .unwrap_or_else(|| goal.to_string())
}

/// The configured SMTP settings, or a precondition error when no URL is set.
pub fn smtp_settings(config: &Config) -> Result<SmtpSettings> {
    if config.smtp.url.trim().is_empty() {
        return Err(fail(
            exit::PRECONDITION,
            "smtp.url is not set: put the server in retain.toml or RETAIN_SMTP_URL (e.g. smtp://127.0.0.1:2525), or use --transport file",
        ));
    }
    let username = (!config.smtp.username.is_empty()).then_some(config.smtp.username.as_str());
    let password = Config::smtp_password();
    SmtpSettings::from_url(config.smtp.url.trim(), username, password.as_deref())
        .map_err(|e| fail(exit::BAD_INPUT, e.to_string()))
}

/// The send options every sender of this workspace shares: the campaign's rate (`smtp.rate`
/// for SMTP, none for files), per-domain limits and the throttle pause from the configuration.
pub fn base_options(config: &Config, kind: TransportKind) -> SendOptions {
    SendOptions {
        // Files need no pacing: smtp.rate applies to SMTP only.
        rate: match kind {
            TransportKind::Smtp => config.smtp.rate,
            TransportKind::File => 0.0,
        },
        domain_rates: match kind {
            TransportKind::Smtp => retain_mailer::throttle::domain_rates(&config.smtp.domain_rates),
            TransportKind::File => Vec::new(),
        },
        throttle_pause: Duration::from_secs_f64(config.smtp.throttle_pause_s.clamp(0.0, 3600.0)),
        concurrency: match kind {
            TransportKind::Smtp => config.smtp.concurrency.clamp(1, 256) as usize,
            TransportKind::File => FILE_WRITERS,
        },
        ..Default::default()
    }
}

/// Messages written to the file outbox at once: each is marked `sending` just before its file
/// is written, and the marks of the writers that reach that point together share one commit,
/// so more writers mean fewer commits. (A crash leaves at most this many rows unconfirmed.)
const FILE_WRITERS: usize = 64;

pub fn transport_kind(config: &Config, asked: Option<TransportKind>) -> TransportKind {
    asked.unwrap_or(if config.smtp.url.trim().is_empty() {
        TransportKind::File
    } else {
        TransportKind::Smtp
    })
}

pub async fn run(ctx: &Context, args: Args, quiet: bool) -> Result<()> {
    let loaded = load(ctx, &args.campaign, &args.mail).await?;
    if loaded.plan_state != PlanState::Approved {
        return Err(fail(
            exit::PRECONDITION,
            format!(
                "campaign {} belongs to plan {}, which is {}, not approved: only campaigns of approved plans are sent",
                args.campaign, loaded.campaign.plan_id, loaded.plan_state
            ),
        ));
    }
    let check = ConsentCheck {
        require_opt_in: args.require_opt_in,
    };
    if args.dry_run {
        let rep = retain_mailer::dry_run(
            &ctx.store,
            &loaded.composer,
            &loaded.members,
            &loaded.recipients,
            check,
        )
        .await
        .map_err(mailer_error)?;
        if args.format == Format::Json {
            print_json(&rep)?;
        } else {
            println!(
                "Dry run of {} (nothing sent, nothing written)",
                rep.campaign_id
            );
            let mut t = Table::new(["", "recipients"]);
            t.row(["would send".to_string(), rep.would_send.to_string()]);
            t.row([
                "  rendered without error".to_string(),
                rep.rendered.to_string(),
            ]);
            for (why, n) in &rep.would_suppress {
                t.row([format!("not mailed: {why}"), n.to_string()]);
            }
            t.row([
                "holdout (never mailed)".to_string(),
                rep.skipped_holdout.to_string(),
            ]);
            t.row(["already sent".to_string(), rep.already_sent.to_string()]);
            t.row(["unconfirmed".to_string(), rep.unconfirmed.to_string()]);
            t.row(["failed earlier".to_string(), rep.failed.to_string()]);
            print!("{}", t.render());
        }
        return Ok(());
    }

    let queued = retain_mailer::queue_campaign(
        &ctx.store,
        &loaded.composer,
        &loaded.members,
        &loaded.recipients,
        check,
    )
    .await
    .map_err(mailer_error)?;
    let kind = transport_kind(&ctx.config, args.transport);
    let base = base_options(&ctx.config, kind);
    let opts = SendOptions {
        rate: args.rate.unwrap_or(base.rate),
        concurrency: args
            .concurrency
            .map_or(base.concurrency, |c| c.clamp(1, 256) as usize),
        limit: args.limit,
        resend_unconfirmed: args.resend_unconfirmed,
        retry_failed: args.retry_failed,
        consent: check,
        guardrail: Some(retain_mailer::GuardrailLimits {
            complaint_rate: ctx.config.sending.complaint_rate_limit,
            hard_bounce_rate: ctx.config.sending.hard_bounce_rate_limit,
            min_delivered: i64::from(ctx.config.sending.guardrail_min_delivered),
        }),
        ..base
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let quiet_json = args.format == Format::Json;
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop2.store(true, Ordering::SeqCst);
            eprintln!("\nstopping after the messages in flight… (Ctrl-C again to abort now)");
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    // A service manager's SIGTERM stops as cleanly as Ctrl-C.
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        let stop3 = stop.clone();
        tokio::spawn(async move {
            if term.recv().await.is_some() {
                stop3.store(true, Ordering::SeqCst);
            }
        });
    }
    let progress = Arc::new(Progress::default());
    let bar = super::progress(0, "sending", !quiet_json && !quiet);
    let ticker = {
        let p = progress.clone();
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                let total = p.total.load(Ordering::Relaxed);
                bar.set_length(total);
                bar.set_position(p.done().min(total));
                bar.set_message(format!(
                    "sent {} failed {} left {}",
                    p.sent.load(Ordering::Relaxed),
                    p.failed.load(Ordering::Relaxed),
                    total.saturating_sub(p.done())
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let recipients = Arc::new(loaded.recipients);
    let composer = Arc::new(loaded.composer);
    let skipped = queued.holdout;
    let result = match kind {
        TransportKind::Smtp => {
            let settings = smtp_settings(&ctx.config)?;
            if !retain_mailer::transport::is_loopback(&settings.host)
                && !ctx.config.tracking.base_url.starts_with("https://")
            {
                eprintln!(
                    "warning: tracking.base_url ({}) is not https: mailbox providers ignore one-click unsubscribe links that are not https",
                    ctx.config.tracking.base_url
                );
            }
            let t = Arc::new(SmtpTransport::new(settings, opts.concurrency));
            retain_mailer::send_campaign(
                &ctx.store,
                composer,
                t,
                recipients,
                &opts,
                progress.clone(),
                stop,
                skipped,
            )
            .await
        }
        TransportKind::File => {
            let dir = outbox(&ctx.dir, &args.campaign);
            let t =
                Arc::new(FileTransport::new(&dir).map_err(|e| fail(exit::FAILURE, e.to_string()))?);
            retain_mailer::send_campaign(
                &ctx.store,
                composer,
                t,
                recipients,
                &opts,
                progress.clone(),
                stop,
                skipped,
            )
            .await
        }
    };
    ticker.abort();
    bar.finish_and_clear();
    let rep = result.map_err(mailer_error)?;
    print_report(&rep, args.format, quiet)?;
    match &rep.stopped {
        Some(StopReason::TransportFailed(why)) => {
            Err(fail(exit::FAILURE, format!("sending stopped: {why}")))
        }
        // Paused mid-send (by its operator or by the guardrail): the same code as sending a
        // paused campaign.
        Some(StopReason::Paused) => Err(fail(
            exit::PRECONDITION,
            match &rep.pause_reason {
                Some(why) => format!("campaign {} paused itself: {why}", rep.campaign_id),
                None => format!("campaign {} was paused", rep.campaign_id),
            },
        )),
        _ => Ok(()),
    }
}

/// For `retain demo`'s send step: sends an approved campaign to `.eml` files in
/// `<workspace>/outbox/<campaign>/` (no server needed), through the same ledger as a real send.
pub async fn send_to_outbox(ctx: &Context, campaign: &str) -> Result<SendReport> {
    let loaded = load(
        ctx,
        campaign,
        &MailOptions {
            discount: None,
            code_prefix: None,
            shop_url: None,
        },
    )
    .await?;
    if loaded.plan_state != PlanState::Approved {
        return Err(fail(
            exit::PRECONDITION,
            format!(
                "campaign {campaign}: its plan is {}, not approved",
                loaded.plan_state
            ),
        ));
    }
    let check = ConsentCheck::default();
    let queued = retain_mailer::queue_campaign(
        &ctx.store,
        &loaded.composer,
        &loaded.members,
        &loaded.recipients,
        check,
    )
    .await
    .map_err(mailer_error)?;
    let t = Arc::new(
        FileTransport::new(&outbox(&ctx.dir, campaign))
            .map_err(|e| fail(exit::FAILURE, e.to_string()))?,
    );
    retain_mailer::send_campaign(
        &ctx.store,
        Arc::new(loaded.composer),
        t,
        Arc::new(loaded.recipients),
        &SendOptions {
            rate: 0.0,
            ..Default::default()
        },
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
        queued.holdout,
    )
    .await
    .map_err(mailer_error)
}

/// `retain demo`'s send step: every campaign of every approved plan goes to the outbox.
pub async fn demo_step(ctx: &Context) -> Result<()> {
    let mut any = false;
    for plan in ctx.store.plans().await? {
        if plan.state != PlanState::Approved {
            continue;
        }
        for c in &plan.campaigns {
            any = true;
            let rep = send_to_outbox(ctx, &c.campaign_id).await?;
            println!(
                "  {}: {} emails written to {}, {} not mailed (suppressed, unsubscribed, no consent), {} held out",
                c.campaign_id,
                rep.totals.sent,
                outbox(&ctx.dir, &c.campaign_id).display(),
                rep.suppressed,
                rep.skipped_holdout
            );
        }
    }
    if !any {
        println!("  no approved plan: nothing to send");
    }
    Ok(())
}

/// `<workspace>/outbox/<campaign>`.
pub fn outbox(dir: &Path, campaign: &str) -> std::path::PathBuf {
    let safe: String = campaign
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join("outbox").join(safe)
}

/// Prints the outcome of a run; `quiet` (`-q`) leaves only what went wrong (failures, a lost
/// lease), on stderr.
fn print_report(rep: &SendReport, format: Format, quiet: bool) -> Result<()> {
    if format == Format::Json {
        return print_json(rep);
    }
    if quiet {
        if matches!(rep.stopped, Some(StopReason::WorkerLost)) {
            eprintln!("another sender found this one unresponsive and took its claims; stopped");
        }
        if rep.failed > 0 {
            eprintln!(
                "{} failed: see `retain campaign show {}`",
                rep.failed, rep.campaign_id
            );
        }
        return Ok(());
    }
    println!("Campaign {} via {}", rep.campaign_id, rep.transport);
    let mut t = Table::new(["", "recipients"]);
    t.row(["sent now".to_string(), rep.sent.to_string()]);
    t.row(["failed now".to_string(), rep.failed.to_string()]);
    t.row([
        "suppressed (never mailed)".to_string(),
        rep.suppressed.to_string(),
    ]);
    t.row([
        "holdout (never mailed)".to_string(),
        rep.skipped_holdout.to_string(),
    ]);
    t.row(["unconfirmed".to_string(), rep.unconfirmed.to_string()]);
    if rep.in_flight_elsewhere > 0 {
        t.row([
            "being sent by other senders".to_string(),
            rep.in_flight_elsewhere.to_string(),
        ]);
    }
    t.row(["still queued".to_string(), rep.remaining.to_string()]);
    t.row(["sent in total".to_string(), rep.totals.sent.to_string()]);
    print!("{}", t.render());
    println!(
        "{:.1} s{}{}",
        rep.elapsed_s,
        if rep.retries > 0 {
            format!(", {} retries", rep.retries)
        } else {
            String::new()
        },
        if rep.hard_bounces > 0 {
            format!(
                ", {} hard bounces added to the suppression list",
                rep.hard_bounces
            )
        } else {
            String::new()
        }
    );
    if rep.unconfirmed > 0 {
        eprintln!(
            "note: {} recipients are unconfirmed: an earlier run stopped during their SMTP transaction, so they may or may not have the email. They are not sent again; `retain send {} --resend-unconfirmed` sends them anyway.",
            rep.unconfirmed, rep.campaign_id
        );
    }
    match &rep.stopped {
        Some(StopReason::Interrupted) => eprintln!(
            "stopped on request; `retain send {}` continues where it stopped",
            rep.campaign_id
        ),
        Some(StopReason::Paused) => eprintln!(
            "campaign paused; `retain campaign resume {}` then `retain send {}`",
            rep.campaign_id, rep.campaign_id
        ),
        Some(StopReason::Cancelled) => eprintln!("campaign cancelled"),
        Some(StopReason::WorkerLost) => {
            eprintln!("another sender found this one unresponsive and took its claims; stopped")
        }
        Some(StopReason::Limit) => eprintln!(
            "--limit reached; `retain send {}` sends the rest",
            rep.campaign_id
        ),
        Some(StopReason::TransportFailed(_)) | None => {}
    }
    if rep.failed > 0 {
        eprintln!(
            "{} failed: see `retain campaign show {}`; temporary failures can be retried with --retry-failed",
            rep.failed, rep.campaign_id
        );
    }
    Ok(())
}
