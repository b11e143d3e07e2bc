//! `retain report CAMPAIGN | --plan PLAN`: what a sent campaign changed — delivery, human opens
//! and clicks, unsubscribes, conversions and revenue against the holdout, uplift with 95 %
//! intervals, incremental revenue and ROI — as a table, JSON, CSV or one self-contained HTML file.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args as ClapArgs;
use retain_results::report::CampaignReport;
use retain_results::results::{self, ResultsError};
use retain_web::views::{self, Views};

use super::{exit, fail, Context};
use crate::output::{count, money, pct, Format, Table};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  retain report winback-2024-06
  retain report --plan plan-7 --format json | jq '.[].uplift'
  retain report winback-2024-06 --format html --output report.html
  retain report --program                     # every campaign together against the global control

Conversions are purchases (not returns) within the goal's window after each recipient's send;
the holdout's purchases in the same window from the campaign's first send are the counterfactual.
Uplift = recipients' conversion rate - holdout's, with Newcombe's 95% interval (difference of
two proportions) and a pooled z-test; revenue per person uses Welch's t. ROI = (incremental
revenue - cost) / cost with cost = cost_per_recipient x sent.")]
pub struct Args {
    /// The campaign to report on.
    #[arg(required_unless_present_any = ["plan", "program"], conflicts_with_all = ["plan", "program"])]
    pub campaign: Option<String>,
    /// The whole programme against the global control group ([program] in goals.toml): revenue
    /// per customer in the current control period, with Welch's 95% interval.
    #[arg(long, conflicts_with = "plan")]
    pub program: bool,
    /// With --program: the control period holding this day (YYYY-MM-DD; default today).
    #[arg(long, requires = "program", value_name = "DATE")]
    pub period_of: Option<chrono::NaiveDate>,
    /// Report on every campaign of this plan instead.
    #[arg(long)]
    pub plan: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

fn not_found(e: ResultsError) -> anyhow::Error {
    match e {
        ResultsError::UnknownCampaign(_) | ResultsError::UnknownPlan(_) => {
            fail(exit::PRECONDITION, e.to_string())
        }
        other => anyhow::Error::new(other),
    }
}

fn ci(c: Option<[f64; 2]>) -> String {
    match c {
        Some([a, b]) => format!("{:+.2} to {:+.2} pp", a * 100.0, b * 100.0),
        None => "–".into(),
    }
}

fn opt_num(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

/// The text report of one campaign.
pub fn render_text(r: &CampaignReport) -> String {
    let mut out = format!(
        "Campaign {} ({}), plan {}\n",
        r.campaign_id, r.goal_name, r.plan_id
    );
    if !r.window_closed {
        out.push_str(&format!(
            "The {}-day attribution window is still open: conversions can still grow.\n",
            r.window_days
        ));
    }
    let mut t = Table::new(["", "recipients", "holdout"]);
    t.row([
        "people".to_string(),
        count(r.recipients),
        count(r.holdout.size),
    ]);
    t.row(["sent".to_string(), count(r.sent), String::new()]);
    t.row(["delivered".to_string(), count(r.delivered), String::new()]);
    t.row(["failed".to_string(), count(r.failed), String::new()]);
    t.row([
        "unique opens".to_string(),
        count(r.opens_unique),
        String::new(),
    ]);
    t.row([
        "unique clicks".to_string(),
        count(r.clicks_unique),
        String::new(),
    ]);
    t.row([
        "unsubscribes".to_string(),
        count(r.unsubscribes),
        String::new(),
    ]);
    t.row([
        "conversions".to_string(),
        count(r.conversions),
        count(r.holdout.conversions),
    ]);
    t.row([
        "conversion rate".to_string(),
        r.conversion_rate.map(pct).unwrap_or_default(),
        r.holdout.conversion_rate.map(pct).unwrap_or_default(),
    ]);
    t.row([
        "revenue".to_string(),
        money(r.revenue),
        money(r.holdout.revenue),
    ]);
    out.push_str(&t.render());
    out.push('\n');
    out.push_str(&format!(
        "Uplift: {} (95% CI {}), relative {}, p = {}\n",
        views::pp(r.uplift.absolute),
        ci(r.uplift.ci95),
        views::pct(r.uplift.relative),
        r.uplift
            .p_value
            .map(|p| format!("{p:.3}"))
            .unwrap_or_else(|| "–".into())
    ));
    out.push_str(&format!(
        "Incremental conversions {}, incremental revenue {}, cost {}, ROI {}\n",
        r.incremental_conversions
            .map(|v| format!("{v:+.1}"))
            .unwrap_or_else(|| "–".into()),
        r.incremental_revenue
            .map(money)
            .unwrap_or_else(|| "–".into()),
        money(r.cost),
        views::pct(r.roi)
    ));
    out.push_str(&views::verdict(r));
    out.push('\n');
    if let Some(seq) = &r.sequence {
        out.push_str(&render_sequence(seq));
    }
    if !r.segments.is_empty() {
        let mut s = Table::new([
            "segment",
            "recipients",
            "conversion",
            "holdout",
            "holdout conv.",
            "uplift",
            "95% CI",
        ]);
        for x in &r.segments {
            s.row([
                x.segment.clone(),
                count(x.result.recipients),
                views::pct(x.result.conversion_rate),
                count(x.result.holdout.size),
                views::pct(x.result.holdout.conversion_rate),
                views::pp(x.result.uplift.absolute),
                ci(x.result.uplift.ci95),
            ]);
        }
        out.push('\n');
        out.push_str(&s.render());
    }
    out
}

/// A campaign's A/B test, its follow-up steps' funnels and the whole sequence's uplift.
fn render_sequence(seq: &retain_results::sequence::SequenceReport) -> String {
    let mut out = String::new();
    if let Some(test) = &seq.variant_test {
        let mut t = Table::new([
            "variant",
            "template",
            "recipients",
            "opens",
            "clicks",
            "conversion",
            "uplift vs holdout",
            "95% CI",
        ]);
        for v in &test.variants {
            t.row([
                v.variant.clone(),
                v.template.clone(),
                count(v.result.recipients),
                count(v.result.opens_unique),
                count(v.result.clicks_unique),
                views::pct(v.result.conversion_rate),
                views::pp(v.result.uplift.absolute),
                ci(v.result.uplift.ci95),
            ]);
        }
        out.push_str(&format!("\nA/B test ({})\n", test.method));
        out.push_str(&t.render());
        for c in &test.comparisons {
            if let Some(d) = &c.diff {
                out.push_str(&format!(
                    "  {} − {}: {} (95% CI {}), p = {:.3}{}\n",
                    c.a,
                    c.b,
                    views::pp(Some(d.absolute)),
                    ci(Some(d.ci95)),
                    d.p_value,
                    if c.significant { ", significant" } else { "" }
                ));
            }
        }
        if let Some(n) = test.required_per_variant {
            out.push_str(&format!("  planned sample: {} per variant\n", count(n)));
        }
        out.push_str(&format!("  {}\n", test.verdict));
    }
    if !seq.steps.is_empty() {
        let mut t = Table::new(["step", "template", "sent", "opened", "clicked", "converted"]);
        for s in &seq.steps {
            t.row([
                s.step.to_string(),
                s.template.clone(),
                count(s.sent),
                count(s.opened),
                count(s.clicked),
                count(s.converted),
            ]);
        }
        out.push_str("\nFollow-up steps\n");
        out.push_str(&t.render());
    }
    if let Some(g) = &seq.sequence {
        out.push_str(&format!(
            "Whole sequence ({} days): uplift {} (95% CI {}), incremental revenue {}\n",
            seq.sequence_window_days,
            views::pp(g.uplift.absolute),
            ci(g.uplift.ci95),
            g.incremental_revenue
                .map(money)
                .unwrap_or_else(|| "–".into())
        ));
    }
    out
}

/// The programme report as text.
fn render_program(r: &retain_results::program::ProgramReport) -> String {
    let mut out = format!(
        "Programme, control period {} ({} customers, global control share {})\n",
        r.period,
        count(r.customers),
        pct(r.control_share)
    );
    let mut t = Table::new(["", "customers", "buyers", "revenue", "revenue per customer"]);
    for (name, g) in [("programme", &r.programme), ("global control", &r.control)] {
        t.row([
            name.to_string(),
            count(g.customers),
            count(g.buyers),
            money(g.revenue),
            g.revenue_per_customer
                .map(money)
                .unwrap_or_else(|| "–".into()),
        ]);
    }
    out.push_str(&t.render());
    match &r.incremental_per_customer {
        Some(d) => out.push_str(&format!(
            "Incremental revenue per customer {} (95% CI {} to {}), p = {:.3}; over the programme's customers {}\n",
            money(d.absolute),
            money(d.ci95[0]),
            money(d.ci95[1]),
            d.p_value,
            r.incremental_revenue.map(money).unwrap_or_else(|| "–".into())
        )),
        None => out.push_str("Incremental revenue per customer: –\n"),
    }
    if let Some(n) = &r.note {
        out.push_str(&format!("Note: {n}\n"));
    }
    out
}

/// The workspace's `[program]` (goals.toml); `None` without a goals file.
pub fn workspace_program(ctx: &Context) -> Result<Option<retain_planner::Program>> {
    let path = ctx.path("goals.toml");
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(read_program(ctx)?))
}

fn read_program(ctx: &Context) -> Result<retain_planner::Program> {
    let path = ctx.path("goals.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let vocab = retain_planner::Vocabulary {
        segments: None,
        templates: None,
        attributes: None,
    };
    let catalogue = retain_planner::parse_catalogue(&text, &path.display().to_string(), &vocab)
        .map_err(|e| fail(exit::BAD_INPUT, e.to_string()))?;
    Ok(catalogue.program)
}

/// `retain report --program`.
async fn program(ctx: &Context, args: &Args) -> Result<()> {
    let program = read_program(ctx)?;
    let at = match args.period_of {
        Some(d) => d
            .and_hms_opt(12, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp()),
        None => chrono::Utc::now().timestamp(),
    };
    let r = retain_results::program::program_report(&ctx.store, &program, at, None).await?;
    let text = match args.format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&r)?),
        _ => render_program(&r),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// One CSV row per campaign and segment (segment `all` for the campaign as a whole), header
/// first.
fn csv_rows(reports: &[CampaignReport]) -> Vec<Vec<String>> {
    let header = [
        "campaign_id",
        "segment",
        "recipients",
        "sent",
        "delivered",
        "failed",
        "opens_unique",
        "clicks_unique",
        "unsubscribes",
        "conversions",
        "conversion_rate",
        "revenue",
        "holdout_size",
        "holdout_conversions",
        "holdout_conversion_rate",
        "holdout_revenue",
        "uplift_absolute",
        "uplift_ci95_lo",
        "uplift_ci95_hi",
        "uplift_p_value",
        "incremental_revenue",
        "roi",
    ];
    let mut t = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for r in reports {
        let mut rows = vec![("all".to_string(), None)];
        rows.extend(
            r.segments
                .iter()
                .map(|s| (s.segment.clone(), Some(&s.result))),
        );
        for (seg, g) in rows {
            let (rec, sent, fail_, opens, clicks, unsub, conv, rate, rev, hold, uplift, inc, roi) =
                match g {
                    None => (
                        r.recipients,
                        r.sent,
                        r.failed,
                        r.opens_unique,
                        r.clicks_unique,
                        r.unsubscribes,
                        r.conversions,
                        r.conversion_rate,
                        r.revenue,
                        &r.holdout,
                        &r.uplift,
                        r.incremental_revenue,
                        r.roi,
                    ),
                    Some(g) => (
                        g.recipients,
                        g.sent,
                        g.failed,
                        g.opens_unique,
                        g.clicks_unique,
                        g.unsubscribes,
                        g.conversions,
                        g.conversion_rate,
                        g.revenue,
                        &g.holdout,
                        &g.uplift,
                        g.incremental_revenue,
                        None,
                    ),
                };
            t.push(vec![
                r.campaign_id.clone(),
                seg,
                rec.to_string(),
                sent.to_string(),
                sent.to_string(),
                fail_.to_string(),
                opens.to_string(),
                clicks.to_string(),
                unsub.to_string(),
                conv.to_string(),
                opt_num(rate),
                rev.to_string(),
                hold.size.to_string(),
                hold.conversions.to_string(),
                opt_num(hold.conversion_rate),
                hold.revenue.to_string(),
                opt_num(uplift.absolute),
                opt_num(uplift.ci95.map(|c| c[0])),
                opt_num(uplift.ci95.map(|c| c[1])),
                opt_num(uplift.p_value),
                opt_num(inc),
                opt_num(roi),
            ]);
        }
    }
    t
}

fn csv_string(rows: &[Vec<String>]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(r)?;
    }
    Ok(String::from_utf8(w.into_inner().context("writing CSV")?)?)
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    if args.program {
        return program(ctx, &args).await;
    }
    let (reports, single) = match (&args.campaign, &args.plan) {
        (Some(c), _) => (
            vec![results::campaign_report(&ctx.store, c, None)
                .await
                .map_err(not_found)?],
            true,
        ),
        (None, Some(p)) => (
            results::plan_reports(&ctx.store, p)
                .await
                .map_err(not_found)?,
            false,
        ),
        (None, None) => return Err(fail(2, "name a campaign or --plan PLAN")),
    };
    let text = match args.format {
        Format::Json => {
            let mut s = if single {
                serde_json::to_string_pretty(&reports[0])?
            } else {
                serde_json::to_string_pretty(&reports)?
            };
            s.push('\n');
            s
        }
        Format::Csv => csv_string(&csv_rows(&reports))?,
        Format::Html => views::report_html(
            &Views::new()?,
            &reports,
            &ctx.config.company.name,
            chrono::Utc::now().timestamp(),
        )?,
        Format::Table | Format::Markdown => reports
            .iter()
            .map(render_text)
            .collect::<Vec<_>>()
            .join("\n"),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// The demo's report step: the results of every sent campaign of the newest plan.
pub async fn demo_step(ctx: &Context) -> Result<()> {
    let Some(plan) = ctx.store.latest_plan_id().await? else {
        println!("  skipped: no plan");
        return Ok(());
    };
    let reports = results::plan_reports(&ctx.store, &plan)
        .await
        .map_err(not_found)?;
    let sent: Vec<&CampaignReport> = reports.iter().filter(|r| r.sent > 0).collect();
    if sent.is_empty() {
        println!("  skipped: nothing of plan {plan} has been sent");
    }
    for r in sent {
        print!("{}", render_text(r));
        println!(
            "  (the full report: retain --workspace {} report {} --format html --output report.html)",
            ctx.dir.display(),
            r.campaign_id
        );
    }
    Ok(())
}
