//! The `retain` command-line interface: parses arguments, opens the workspace and dispatches to
//! the command modules in [`cmd`]. Errors are printed with their causes and mapped to exit codes.

mod cmd;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "retain",
    version,
    about = "Keep the customers you have: segment them from their purchases, plan retention campaigns, send them, measure what they changed.",
    after_help = "Examples:
  retain demo                                   # the whole job on a generated shop, no server
  retain init myshop && cd myshop
  retain import customers customers.csv
  retain import orders orders.csv --decimal-comma --date-format '%d.%m.%Y'
  retain stats --format json

Exit codes: 0 ok, 1 failure, 2 usage error, 3 bad input data, 4 precondition not met.
Settings: retain.toml in the workspace, each overridable as RETAIN_<SECTION>_<KEY>."
)]
struct Cli {
    /// Workspace directory (default: the current directory).
    #[arg(long, short = 'w', global = true, env = "RETAIN_WORKSPACE")]
    workspace: Option<PathBuf>,
    /// Print only errors and requested output.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a workspace: retain.toml, templates, goals.toml, secret key, database.
    Init(cmd::init::Args),
    /// Run the whole job on a generated sample shop (no server needed).
    Demo(cmd::demo::Args),
    /// Write a seeded, realistic sample shop as CSV files.
    DemoData(cmd::demo_data::Args),
    /// Import orders, customers or the product catalogue from CSV.
    #[command(subcommand)]
    Import(cmd::import::Command),
    /// Fit the CLV models: P(alive), expected purchases and CLV per customer.
    Predict(cmd::predict::Args),
    /// Segment customers: named RFM segments, k-means or a Gaussian mixture.
    Segment(cmd::segment::Args),
    /// Stored segmentation runs: list, show, export, diff.
    Segments(cmd::segment::SegmentsArgs),
    /// Plan retention campaigns: goals matched to customers under a budget, with holdouts.
    Plan(cmd::plan::Args),
    /// Product recommendations: train, save every customer's picks, evaluate against popularity.
    Recommend(cmd::recommend::Args),
    /// Per-customer RFM straight from an orders CSV, without importing it.
    Rfm(cmd::rfm::Args),
    /// Customers, revenue, retention, churn, new vs returning, cohorts.
    Stats(cmd::stats::Args),
    /// Uplift models: learn from past campaigns whom a goal's email moves; evaluate them.
    #[command(subcommand)]
    Uplift(cmd::uplift::Command),
    /// Manage the suppression list (never mailed).
    #[command(subcommand)]
    Suppress(cmd::suppress::Command),
    /// Serve the tracking endpoints and the dashboard.
    Serve(cmd::serve::Args),
    /// What a sent campaign changed: engagement, conversions and uplift against its holdout.
    Report(cmd::report::Args),
    /// Send an approved campaign's emails, exactly once per recipient.
    Send(cmd::send::Args),
    /// Follow-up steps of sent campaigns: create the due ones and send them.
    #[command(subcommand)]
    Followups(cmd::followups::Command),
    /// Run a sender that sends every scheduled campaign when its time comes (any number of them).
    Worker(cmd::worker::Args),
    /// The database: migrate, status (backend, migrations), copy a workspace to another database.
    #[command(subcommand)]
    Db(cmd::db::Command),
    /// Preview a campaign's email, or send a test copy.
    #[command(subcommand)]
    Mail(cmd::mail::Command),
    /// Bounce (DSN) and complaint (ARF) reports: ingest a file, a maildir or an MTA pipe.
    #[command(subcommand)]
    Bounces(cmd::bounces::Command),
    /// Check the sending setup: From, DKIM and alignment, https unsubscribe links, TLS, bounces.
    Doctor(cmd::doctor::Args),
    /// Campaigns and their sending: list, show, schedule, pause, resume, cancel.
    #[command(subcommand)]
    Campaign(cmd::campaign::Command),
    /// One customer: show everything held about them, export it (access request), erase it.
    #[command(subcommand)]
    Customer(cmd::customer::Command),
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ws = cli.workspace.clone().unwrap_or_else(|| PathBuf::from("."));
    match cli.command {
        Command::Init(a) => cmd::init::run(a, cli.quiet).await,
        Command::Demo(a) => cmd::demo::run(a).await,
        Command::DemoData(a) => cmd::demo_data::run(a, cli.quiet),
        Command::Import(c) => cmd::import::run(&cmd::Context::open(&ws).await?, c, cli.quiet).await,
        Command::Predict(a) => cmd::predict::run(&cmd::Context::open(&ws).await?, a).await,
        Command::Segment(a) => {
            cmd::segment::run(&cmd::Context::open(&ws).await?, a, cli.quiet).await
        }
        Command::Segments(a) => {
            cmd::segment::run_segments(&cmd::Context::open(&ws).await?, a).await
        }
        Command::Plan(a) => cmd::plan::run(&cmd::Context::open(&ws).await?, a, cli.quiet).await,
        Command::Recommend(a) => cmd::recommend::run(&cmd::Context::open(&ws).await?, a).await,
        Command::Rfm(a) => cmd::rfm::run(a, cli.quiet),
        Command::Stats(a) => cmd::stats::run(&cmd::Context::open(&ws).await?, a).await,
        Command::Uplift(c) => cmd::uplift::run(&cmd::Context::open(&ws).await?, c, cli.quiet).await,
        Command::Suppress(c) => cmd::suppress::run(&cmd::Context::open(&ws).await?, c).await,
        Command::Serve(a) => cmd::serve::run(&ws, a, cli.quiet).await,
        Command::Report(a) => cmd::report::run(&cmd::Context::open(&ws).await?, a).await,
        Command::Send(a) => cmd::send::run(&cmd::Context::open(&ws).await?, a, cli.quiet).await,
        Command::Followups(c) => cmd::followups::run(&cmd::Context::open(&ws).await?, c).await,
        Command::Worker(a) => cmd::worker::run(&cmd::Context::open(&ws).await?, a, cli.quiet).await,
        Command::Db(c) => cmd::db::run(&ws, c).await,
        Command::Mail(c) => cmd::mail::run(&cmd::Context::open(&ws).await?, c).await,
        Command::Bounces(c) => cmd::bounces::run(&cmd::Context::open(&ws).await?, c).await,
        Command::Doctor(a) => cmd::doctor::run(&cmd::Context::open(&ws).await?, a).await,
        Command::Campaign(c) => cmd::campaign::run(&cmd::Context::open(&ws).await?, c).await,
        Command::Customer(c) => {
            cmd::customer::run(&cmd::Context::open(&ws).await?, c, cli.quiet).await
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cmd::exit::FAILURE);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(cmd::exit_code(&err))
        }
    }
}
