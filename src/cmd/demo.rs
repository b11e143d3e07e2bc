//! `retain demo [DIR]`: the main job end to end on the embedded default, no server needed —
//! create a workspace, generate a seeded shop, import it, plan and send (win_back as an A/B test
//! with a follow-up step), simulate the weeks after, and report on it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args as ClapArgs;
use retain_core::import::ImportOptions;
use retain_core::metrics::Period;

use super::{import, init, stats, Context};

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  retain demo                 # into ./retain-demo
  retain demo /tmp/shop --customers 5000 --seed 7")]
pub struct Args {
    /// Workspace directory (created if missing; an existing demo workspace is reused).
    #[arg(default_value = "retain-demo")]
    pub dir: PathBuf,
    /// Customers in the generated shop (enough for campaigns whose uplift can be measured).
    #[arg(long, default_value_t = 20000)]
    pub customers: u64,
    /// Random seed of the generated shop.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, clap::Parser)]
struct SegmentArgs {
    #[command(flatten)]
    args: super::segment::Args,
}
#[derive(Debug, clap::Parser)]
struct PlanArgs {
    #[command(flatten)]
    args: super::plan::Args,
}

/// The demo's win_back goal as a multi-step, A/B-tested sequence: two variants (the starter
/// template and `win_back_b`, the same body under another subject line) and one follow-up step
/// to recipients who opened but have not bought. Only the demo's workspace gets it; `false` when its
/// goals.toml has no win_back goal or already has steps (a reused workspace keeps its file).
fn demo_sequence(dir: &std::path::Path) -> Result<bool> {
    use anyhow::Context as _;
    let templates = dir.join("templates");
    for ext in ["html", "txt"] {
        let to = templates.join(format!("win_back_b.{ext}"));
        if !to.exists() {
            std::fs::copy(templates.join(format!("win_back.{ext}")), &to)
                .with_context(|| format!("writing {}", to.display()))?;
        }
    }
    let subject = templates.join("win_back_b.subject");
    if !subject.exists() {
        std::fs::write(
            &subject,
            "{{ customer.first_name | default(value=\"Hello\", boolean=true) }}, \
             something to welcome you back to {{ company.name }}\n",
        )
        .with_context(|| format!("writing {}", subject.display()))?;
    }
    let path = dir.join("goals.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if text.contains("[[goal.steps]]") {
        return Ok(false);
    }
    let Some(goal) = text.find("id = \"win_back\"") else {
        return Ok(false);
    };
    let end = text[goal..]
        .find("\n[[goal]]")
        .map_or(text.len(), |i| goal + i);
    let block = format!(
        "\n# The demo's sequence: an A/B test of two subject lines, then a reminder.\n\
         [[goal.variants]]\nid = \"a\"\ntemplate = \"win_back\"\n\
         [[goal.variants]]\nid = \"b\"\ntemplate = \"win_back_b\"\n\
         [[goal.steps]]\nafter_days = {}\nwhen = \"opened and not converted and not unsubscribed\"\n\
         template = \"renewal_reminder\"\n",
        super::demo_results::STEP_AFTER_DAYS
    );
    let mut out = text.clone();
    out.insert_str(end, &block);
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// A command's arguments as if typed: the demo runs the real commands with their defaults.
fn parse<P: clap::Parser>(args: &[&str]) -> Result<P> {
    P::try_parse_from(std::iter::once("retain").chain(args.iter().copied()))
        .map_err(|e| anyhow::anyhow!("demo arguments: {e}"))
}

fn step(n: u32, what: &str) {
    println!("\n== {n}. {what}");
}

pub async fn run(args: Args) -> Result<()> {
    step(1, &format!("Workspace {}", args.dir.display()));
    let created = init::init(&args.dir, false).await?;
    println!(
        "  {} files created, {} kept",
        created.files.len(),
        created.kept.len()
    );

    match demo_sequence(&args.dir)? {
        true => println!(
            "  win_back: A/B test of two subject lines (win_back, win_back_b) and a reminder \
             (renewal_reminder) {} days later to recipients who opened but have not bought",
            super::demo_results::STEP_AFTER_DAYS
        ),
        false => println!("  goals.toml: win_back not found or already has steps; used as it is"),
    }

    step(2, "Sample shop");
    let data = args.dir.join("data");
    let s = super::demo_data::write(&data, args.customers, args.seed)?;
    println!(
        "  {} customers, {} orders ({} line items, {} returns), seed {} → {}",
        s.customers,
        s.orders,
        s.line_items,
        s.returns,
        args.seed,
        data.display()
    );

    let ctx = Context::open(&args.dir).await?;
    step(3, "Import");
    let opts = ImportOptions::default();
    let (c, _) = import::import_customers(&ctx, &data.join("customers.csv"), &opts, false).await?;
    println!(
        "  customers: {} imported, {} invalid emails",
        c.customers, c.invalid_emails
    );
    let (o, _) = import::import_orders(&ctx, &data.join("orders.csv"), &opts, true).await?;
    println!(
        "  orders: {} rows → {} orders, {} returns, net revenue {}",
        o.rows_read,
        o.orders,
        o.returns,
        crate::output::money(o.revenue)
    );

    step(4, "Statistics");
    let st = stats::compute(&ctx, None, Period::Month).await?;
    print!("{}", stats::render(&st));

    step(5, "Predicted customer value (BG/NBD + Gamma-Gamma)");
    let options = retain_clv::PredictOptions::default();
    if let Some((as_of, s)) = super::predict::load_summaries(&ctx, options.period).await? {
        let input = super::predict::Input::Summaries(s);
        match super::predict::fit_and_store(&ctx, input, as_of, &options, false).await {
            Ok((run, _)) => print!("{}", super::predict::render(&run, as_of)),
            Err(e) => println!("  skipped: {e:#}"),
        }
    }

    step(
        6,
        "Segments (k-means with k chosen by silhouette, then the named RFM segments)",
    );
    super::segment::run(
        &ctx,
        parse::<SegmentArgs>(&["--method", "kmeans", "--k", "auto", "--seed", "42"])?.args,
        true,
    )
    .await?;
    // The named segments last: the plan's goals speak of them (the newest run feeds the plan).
    super::segment::run(
        &ctx,
        parse::<SegmentArgs>(&["--method", "rfm", "--seed", "42"])?.args,
        true,
    )
    .await?;

    step(
        7,
        "Plan (goals.toml matched to the segments, then approved)",
    );
    super::plan::run(&ctx, parse::<PlanArgs>(&["--seed", "42"])?.args, true).await?;
    if let Some(id) = ctx.store.latest_plan_id().await? {
        super::plan::run(&ctx, parse::<PlanArgs>(&["approve", &id])?.args, true).await?;
    }

    step(8, "Send (to the workspace outbox, no server needed)");
    super::send::demo_step(&ctx).await?;
    step(
        9,
        "The weeks after the send (simulated orders, opens and clicks with a known true uplift)",
    );
    match super::demo_results::run(&ctx, args.seed).await? {
        Some(r) => print!("{}", super::demo_results::render(&r)),
        None => println!("  skipped: no approved plan"),
    }
    // STEP report (web/results): the campaign report.
    step(10, "Campaign report");
    super::report::demo_step(&ctx).await?;

    println!(
        "\nDone. Explore with: retain --workspace {} stats --format json",
        args.dir.display()
    );
    ctx.store.close().await;
    Ok(())
}
