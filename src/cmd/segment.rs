//! `retain segment`: segments the imported customers — the ten named RFM segments, k-means or a
//! Gaussian mixture on their scaled recency, frequency and spend — stores the run and prints its
//! segments. `retain segments`: lists the stored runs, shows one, exports its customers, and
//! compares two (how many customers moved from each segment to each other).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use clap::{Args as ClapArgs, Subcommand};
use indicatif::ProgressBar;
use retain_clustering::{
    migration, segment_with_progress, ClusteringError, Feature, KChoice, Method, MigrationMatrix,
    Progress, SegmentInput, SegmentParams, SegmentationRun,
};
use retain_store::{
    CustomerKeys, KeyedAssignment, NewSegmentRun, SegmentProfileRow, SegmentRunRecord,
};
use serde_json::{json, Value};

use super::{exit, fail, progress, spinner, Context};
use crate::output::{count, money, pct, print_json, Format, Table};

/// Runs with at least this many customers show a progress bar (on a terminal).
const PROGRESS_FROM: usize = 20_000;

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  retain segment                                  # the ten named RFM segments
  retain segment --method kmeans                  # k chosen by silhouette in 2..10
  retain segment --method kmeans --k 5 --seed 7 --format json
  retain segment --method gmm --k auto:3-6 --as-of 2011-12-01
  retain segments                                 # the stored runs
  retain segments diff 1 2                        # who moved where

RFM scores are quintiles 1-5 of recency (fewer days scores higher), frequency (ties split evenly
by customer id) and net revenue; the recency x frequency grid names ten segments (Champions,
Loyal Customers, Potential Loyalists, New Customers, Promising, Need Attention, About To Sleep,
At Risk, Can't Lose Them, Hibernating). kmeans and gmm cluster the log1p-transformed,
standardised features and name each cluster after the RFM segment most common in it
(\"Champions-like\"). Every run is stored; the latest is the customers' current segmentation.")]
pub struct Args {
    /// rfm, kmeans or gmm.
    #[arg(long, value_parser = ["rfm", "kmeans", "gmm"], default_value = "rfm")]
    pub method: String,
    /// Number of clusters (kmeans, gmm): auto (best silhouette in 2..10), auto:MIN-MAX, or a number.
    #[arg(long, default_value = "auto")]
    pub k: String,
    /// Seed of the initialisations: the same seed on the same data gives the same segments.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Segment as of this date (orders on or after it are ignored). Default: the day after the last order.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Clustering features, comma-separated: recency, frequency, monetary, tenure,
    /// avg_order_value, clv, p_alive (the last two need `retain predict`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "recency,frequency,monetary"
    )]
    pub features: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, ClapArgs)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  retain segments
  retain segments show latest --format json
  retain segments export 3 --output segments.csv
  retain segments diff 2 latest

RUN is a run id (from `retain segments`) or `latest`."
)]
pub struct SegmentsArgs {
    #[command(subcommand)]
    pub action: Option<SegmentsAction>,
    /// Output format of the list.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum SegmentsAction {
    /// A stored run's segments and their profiles.
    Show {
        run: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Every customer of a run: customer_id, email, segment, r, f, m.
    Export {
        run: String,
        /// csv or json.
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        /// Write to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// The migration matrix: customers per (segment in RUN_A, segment in RUN_B), and those in one run only.
    Diff {
        run_a: String,
        run_b: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

/// The exit code a segmentation error deserves.
fn clustering_error(e: ClusteringError) -> anyhow::Error {
    use ClusteringError as E;
    let code = match &e {
        E::NoCustomers
        | E::NoVariation
        | E::TooFewCustomers { .. }
        | E::TooFewDistinct { .. }
        | E::TooFewForAutoK { .. }
        | E::MissingPrediction(_) => exit::PRECONDITION,
        E::NonFinite { .. } | E::DuplicateCustomer(_) => exit::BAD_INPUT,
        E::KOutOfRange { .. } | E::InvalidKRange { .. } | E::InvalidParameter { .. } => 2,
        _ => exit::FAILURE,
    };
    let hint = if matches!(e, E::MissingPrediction(_)) {
        " (the predictions are older than the orders: run `retain predict` again)"
    } else {
        ""
    };
    fail(code, format!("cannot segment the customers: {e}{hint}"))
}

/// Progress of a run on an indicatif bar.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn update(&self, stage: &str, done: usize, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
        self.0.set_message(stage.to_string());
    }
}

fn params(args: &Args) -> Result<SegmentParams> {
    let method = Method::parse(&args.method)
        .ok_or_else(|| fail(2, format!("unknown --method {}", args.method)))?;
    let k = KChoice::parse(&args.k).ok_or_else(|| {
        fail(
            2,
            format!(
                "--k must be auto, auto:MIN-MAX or a number, not {:?}",
                args.k
            ),
        )
    })?;
    let features = args
        .features
        .iter()
        .map(|f| {
            Feature::parse(f.trim()).ok_or_else(|| {
                fail(
                    2,
                    format!(
                        "unknown feature {f:?}: choose from recency, frequency, monetary, tenure, avg_order_value, clv, p_alive"
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SegmentParams {
        method,
        k,
        seed: args.seed,
        features,
        ..SegmentParams::default()
    })
}

pub async fn run(ctx: &Context, args: Args, quiet: bool) -> Result<()> {
    let params = params(&args)?;
    let show = !quiet && std::io::stderr().is_terminal();
    let (id, mut run) = fit_and_store(ctx, &params, args.as_of, show).await?;
    if !quiet {
        for note in &run.notes {
            eprintln!("note: {note}");
        }
    }
    // The run is stored: its million assignments are freed on another thread while the run is
    // printed from the store (the process may exit before that thread is done).
    let assignments = std::mem::take(&mut run.assignments);
    super::free_apart(assignments);
    print_run(ctx, id, args.format).await
}

/// Segments the workspace's customers as of `as_of` (default: the day after the last order) with
/// the current predictions, if any, and stores the run; returns its id and the run. Shared by the
/// command and the demo. `show` draws progress on stderr for large runs.
pub async fn fit_and_store(
    ctx: &Context,
    params: &SegmentParams,
    as_of: Option<NaiveDate>,
    show: bool,
) -> Result<(i64, SegmentationRun)> {
    let sp = spinner("loading", show);
    // The features and the predictions are read at once, on two connections.
    let (features, predictions) = tokio::try_join!(
        ctx.store.customer_features_keyed(as_of),
        ctx.store.predictions()
    )?;
    let Some((as_of, customers, keys)) = features else {
        sp.finish_and_clear();
        return Err(fail(
            exit::PRECONDITION,
            "no orders yet: import some with `retain import orders FILE`",
        ));
    };
    if customers.is_empty() {
        sp.finish_and_clear();
        return Err(fail(
            exit::PRECONDITION,
            format!("no customer has a purchase before {as_of}: nothing to segment"),
        ));
    }
    sp.finish_and_clear();
    if predictions.is_empty() && params.features.iter().any(|f| f.needs_prediction()) {
        return Err(fail(
            exit::PRECONDITION,
            "the features clv and p_alive need predictions: run `retain predict` first",
        ));
    }
    let input = SegmentInput {
        customers: &customers,
        predictions: (!predictions.is_empty()).then_some(&predictions[..]),
        as_of: Some(as_of),
    };
    let bar = Bar(progress(
        1,
        "segmenting",
        show && customers.len() >= PROGRESS_FROM,
    ));
    let result = segment_with_progress(&input, params, &bar);
    bar.0.finish_and_clear();
    let large = customers.len() >= PROGRESS_FROM;
    // The customers are freed on another thread while the run is stored.
    let freeing = super::free_apart((customers, predictions));
    let run = result.map_err(clustering_error)?;
    let sp = spinner("storing", show && large);
    let id = save(ctx, &run, &keys)
        .await
        .context("storing the segmentation run")?;
    sp.finish_and_clear();
    let _ = freeing.join();
    Ok((id, run))
}

/// Stores a run with its profiles and assignments (`keys` holds the key of the customer of each
/// assignment, position by position); returns its id.
async fn save(ctx: &Context, run: &SegmentationRun, keys: &CustomerKeys) -> Result<i64> {
    let record = NewSegmentRun {
        method: run.method.as_str().to_string(),
        k: run.k as i64,
        seed: run.seed,
        as_of: run.as_of.map(|d| d.format("%Y-%m-%d").to_string()),
        customers: run.assignments.len() as i64,
        params: serde_json::to_string(&run.params)?,
        k_scores: serde_json::to_string(&run.k_scores)?,
        model: serde_json::to_string(&json!({
            "scaling": run.scaling,
            "boundaries": run.boundaries,
            "model": run.model,
            "segment_names": run.segment_names,
            "inertia": run.inertia,
            "notes": run.notes,
        }))?,
    };
    let profiles: Vec<SegmentProfileRow> = run
        .profiles
        .iter()
        .map(|p| SegmentProfileRow {
            cluster: p.cluster as i64,
            name: p.name.clone(),
            size: p.size as i64,
            share: p.share,
            revenue: p.revenue,
            revenue_share: p.revenue_share,
            recency_mean: p.recency_mean,
            recency_median: p.recency_median,
            frequency_mean: p.frequency_mean,
            frequency_median: p.frequency_median,
            monetary_mean: p.monetary_mean,
            monetary_median: p.monetary_median,
            clv_mean: p.clv_mean,
            p_alive_mean: p.p_alive_mean,
        })
        .collect();
    let assignments = &run.assignments;
    let names = &run.segment_names;
    Ok(ctx
        .store
        .save_segment_run_keyed(&record, &profiles, keys, |i| {
            let a = &assignments[i];
            KeyedAssignment {
                cluster: a.cluster as i64,
                // The run's name of the cluster, which the assignment's copy is: one string
                // per cluster read, not one per customer.
                segment: names
                    .get(a.cluster)
                    .map_or(a.segment.as_str(), String::as_str),
                r: i64::from(a.r),
                f: i64::from(a.f),
                m: i64::from(a.m),
            }
        })
        .await?)
}

/// Resolves `latest` or a run id to a stored run.
async fn find_run(ctx: &Context, run: &str) -> Result<SegmentRunRecord> {
    let found = if run.eq_ignore_ascii_case("latest") {
        ctx.store.latest_segment_run().await?
    } else {
        let id: i64 = run
            .parse()
            .map_err(|_| fail(2, format!("RUN must be a run id or `latest`, not {run:?}")))?;
        ctx.store.segment_run(id).await?
    };
    found.ok_or_else(|| {
        fail(
            exit::PRECONDITION,
            format!("no segmentation run {run}: list them with `retain segments`, make one with `retain segment`"),
        )
    })
}

/// Whether a run chose k automatically, from its stored parameters.
fn auto_k(record: &SegmentRunRecord) -> bool {
    serde_json::from_str::<Value>(&record.params)
        .ok()
        .and_then(|p| p.get("k").map(|k| k.get("auto").is_some()))
        .unwrap_or(false)
}

fn stored_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn profile_json(p: &SegmentProfileRow) -> Value {
    json!({
        "name": p.name,
        "cluster": p.cluster,
        "size": p.size,
        "share": p.share,
        "revenue": p.revenue,
        "revenue_share": p.revenue_share,
        "recency_mean": p.recency_mean,
        "recency_median": p.recency_median,
        "frequency_mean": p.frequency_mean,
        "frequency_median": p.frequency_median,
        "monetary_mean": p.monetary_mean,
        "monetary_median": p.monetary_median,
        "clv_mean": p.clv_mean,
        "p_alive_mean": p.p_alive_mean,
    })
}

/// The JSON document of a stored run.
fn run_json(record: &SegmentRunRecord, profiles: &[SegmentProfileRow]) -> Value {
    let auto = auto_k(record) && record.method != "rfm";
    let model = stored_json(&record.model);
    json!({
        "run_id": record.id,
        "method": record.method,
        "k": record.k,
        "k_auto": auto,
        "k_scores": if auto { stored_json(&record.k_scores) } else { Value::Null },
        "seed": record.seed,
        "as_of": record.as_of,
        "customers": record.customers,
        "created_at": record.created_at,
        "notes": model.get("notes").cloned().unwrap_or(Value::Array(Vec::new())),
        "segments": profiles.iter().map(profile_json).collect::<Vec<_>>(),
    })
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_default()
}

fn profiles_table(profiles: &[SegmentProfileRow]) -> Table {
    let mut t = Table::new([
        "segment",
        "customers",
        "share",
        "revenue share",
        "recency (days)",
        "orders",
        "spend",
        "median spend",
        "CLV",
        "P(alive)",
    ]);
    for p in profiles {
        t.row([
            p.name.clone(),
            count(p.size),
            pct(p.share),
            pct(p.revenue_share),
            format!("{:.0}", p.recency_mean),
            format!("{:.1}", p.frequency_mean),
            money(p.monetary_mean),
            money(p.monetary_median),
            opt(p.clv_mean, money),
            opt(p.p_alive_mean, |v| format!("{v:.2}")),
        ]);
    }
    t
}

fn profiles_csv(profiles: &[SegmentProfileRow]) -> Result<()> {
    let mut t = Table::new([
        "segment",
        "cluster",
        "size",
        "share",
        "revenue",
        "revenue_share",
        "recency_mean",
        "recency_median",
        "frequency_mean",
        "frequency_median",
        "monetary_mean",
        "monetary_median",
        "clv_mean",
        "p_alive_mean",
    ]);
    for p in profiles {
        t.row([
            p.name.clone(),
            p.cluster.to_string(),
            p.size.to_string(),
            p.share.to_string(),
            p.revenue.to_string(),
            p.revenue_share.to_string(),
            p.recency_mean.to_string(),
            p.recency_median.to_string(),
            p.frequency_mean.to_string(),
            p.frequency_median.to_string(),
            p.monetary_mean.to_string(),
            p.monetary_median.to_string(),
            opt(p.clv_mean, |v| v.to_string()),
            opt(p.p_alive_mean, |v| v.to_string()),
        ]);
    }
    t.print_csv()
}

fn render_run(record: &SegmentRunRecord, profiles: &[SegmentProfileRow]) -> String {
    let auto = auto_k(record) && record.method != "rfm";
    let mut out = format!(
        "Segmentation run {} — {}, {} segments{}, {} customers, as of {}, seed {}\n\n",
        record.id,
        record.method,
        record.k,
        if auto {
            " (k chosen by silhouette)"
        } else {
            ""
        },
        count(record.customers),
        record.as_of.as_deref().unwrap_or("-"),
        record.seed
    );
    out.push_str(&profiles_table(profiles).render());
    if auto {
        if let Value::Array(scores) = stored_json(&record.k_scores) {
            let cells: Vec<String> = scores
                .iter()
                .map(|s| {
                    let k = s.get("k").and_then(Value::as_i64).unwrap_or(0);
                    let sil = s
                        .get("silhouette")
                        .and_then(Value::as_f64)
                        .map_or("-".to_string(), |v| format!("{v:.3}"));
                    format!("{k}: {sil}{}", if k == record.k { " *" } else { "" })
                })
                .collect();
            out.push_str(&format!("\nsilhouette by k: {}\n", cells.join(", ")));
        }
    }
    if let Some(Value::Array(notes)) = stored_json(&record.model).get("notes") {
        for n in notes.iter().filter_map(Value::as_str) {
            out.push_str(&format!("note: {n}\n"));
        }
    }
    out
}

async fn print_run(ctx: &Context, id: i64, format: Format) -> Result<()> {
    let record = find_run(ctx, &id.to_string()).await?;
    let profiles = ctx.store.segment_profiles(record.id).await?;
    match format {
        Format::Json => print_json(&run_json(&record, &profiles)),
        Format::Csv => profiles_csv(&profiles),
        _ => {
            print!("{}", render_run(&record, &profiles));
            Ok(())
        }
    }
}

pub async fn run_segments(ctx: &Context, args: SegmentsArgs) -> Result<()> {
    match args.action {
        None => list(ctx, args.format).await,
        Some(SegmentsAction::Show { run, format }) => {
            let record = find_run(ctx, &run).await?;
            print_run(ctx, record.id, format).await
        }
        Some(SegmentsAction::Export {
            run,
            format,
            output,
        }) => export(ctx, &run, format, output).await,
        Some(SegmentsAction::Diff {
            run_a,
            run_b,
            format,
        }) => diff(ctx, &run_a, &run_b, format).await,
    }
}

async fn list(ctx: &Context, format: Format) -> Result<()> {
    let runs = ctx.store.segment_runs().await?;
    let created = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    match format {
        Format::Json => print_json(
            &runs
                .iter()
                .map(|r| {
                    json!({
                        "run_id": r.id,
                        "created_at": r.created_at,
                        "method": r.method,
                        "k": r.k,
                        "customers": r.customers,
                        "as_of": r.as_of,
                        "seed": r.seed,
                    })
                })
                .collect::<Vec<_>>(),
        ),
        _ => {
            let mut t = Table::new([
                "run",
                "created (UTC)",
                "method",
                "k",
                "customers",
                "as of",
                "seed",
            ]);
            for r in &runs {
                t.row([
                    r.id.to_string(),
                    created(r.created_at),
                    r.method.clone(),
                    r.k.to_string(),
                    if format == Format::Csv {
                        r.customers.to_string()
                    } else {
                        count(r.customers)
                    },
                    r.as_of.clone().unwrap_or_default(),
                    r.seed.to_string(),
                ]);
            }
            if format == Format::Csv {
                t.print_csv()
            } else if runs.is_empty() {
                println!("no segmentation runs yet: make one with `retain segment`");
                Ok(())
            } else {
                print!("{}", t.render());
                Ok(())
            }
        }
    }
}

async fn export(ctx: &Context, run: &str, format: Format, output: Option<PathBuf>) -> Result<()> {
    let record = find_run(ctx, run).await?;
    let rows = ctx.store.segment_export(record.id).await?;
    let mut out: Box<dyn Write> = match &output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(["customer_id", "email", "segment", "r", "f", "m"])?;
            for r in &rows {
                w.write_record([
                    r.customer_id.as_str(),
                    r.email.as_deref().unwrap_or(""),
                    r.segment.as_str(),
                    &r.r.to_string(),
                    &r.f.to_string(),
                    &r.m.to_string(),
                ])?;
            }
            w.flush()?;
        }
        other => {
            return Err(fail(
                2,
                format!("segments export writes csv or json, not {other:?}"),
            ))
        }
    }
    out.flush()?;
    Ok(())
}

async fn diff(ctx: &Context, run_a: &str, run_b: &str, format: Format) -> Result<()> {
    let a = find_run(ctx, run_a).await?;
    let b = find_run(ctx, run_b).await?;
    let from = ctx.store.segment_assignments(a.id).await?;
    let to = ctx.store.segment_assignments(b.id).await?;
    let m = migration(
        from.iter()
            .map(|x| (x.customer_id.as_str(), x.segment.as_str())),
        to.iter()
            .map(|x| (x.customer_id.as_str(), x.segment.as_str())),
    )
    .map_err(|e| fail(exit::FAILURE, format!("stored runs are inconsistent: {e}")))?;
    match format {
        Format::Json => print_json(&json!({
            "from_run": a.id,
            "to_run": b.id,
            "from": m.from,
            "to": m.to,
            "counts": m.counts,
            "only_in_from": m.only_in_from,
            "only_in_to": m.only_in_to,
            "common": m.common,
            "unchanged": m.unchanged,
        })),
        Format::Csv => {
            let mut t = Table::new(["from_segment", "to_segment", "customers"]);
            for (i, f) in m.from.iter().enumerate() {
                for (j, to) in m.to.iter().enumerate() {
                    if m.counts[i][j] > 0 {
                        t.row([f.clone(), to.clone(), m.counts[i][j].to_string()]);
                    }
                }
                if m.only_in_from[i] > 0 {
                    t.row([f.clone(), String::new(), m.only_in_from[i].to_string()]);
                }
            }
            for (j, to) in m.to.iter().enumerate() {
                if m.only_in_to[j] > 0 {
                    t.row([String::new(), to.clone(), m.only_in_to[j].to_string()]);
                }
            }
            t.print_csv()
        }
        _ => {
            print!("{}", render_diff(&a, &b, &m));
            Ok(())
        }
    }
}

fn render_diff(a: &SegmentRunRecord, b: &SegmentRunRecord, m: &MigrationMatrix) -> String {
    let mut header = vec![format!("run {} \\ run {}", a.id, b.id)];
    header.extend(m.to.iter().cloned());
    header.push("(not in run ".to_string() + &b.id.to_string() + ")");
    let mut t = Table::new(header);
    for (i, f) in m.from.iter().enumerate() {
        let mut row = vec![f.clone()];
        row.extend(m.counts[i].iter().map(|&c| count(c as i64)));
        row.push(count(m.only_in_from[i] as i64));
        t.row(row);
    }
    let mut joined = vec![format!("(not in run {})", a.id)];
    joined.extend(m.only_in_to.iter().map(|&c| count(c as i64)));
    joined.push(String::new());
    t.row(joined);
    let stayed = if m.common > 0 {
        m.unchanged as f64 / m.common as f64
    } else {
        0.0
    };
    format!(
        "{}\n{} customers in both runs, {} ({}) in the same segment.\n",
        t.render(),
        count(m.common as i64),
        count(m.unchanged as i64),
        pct(stayed)
    )
}
