//! `retain predict`: fit a purchase model (BG/NBD, MBG/NBD, Pareto/NBD or the best of them) and
//! Gamma-Gamma on the imported orders, store P(alive) and its churn-risk band, the expected
//! purchases in the next 90 days and the CLV of every customer with their intervals, and the
//! expected date of the next order; `--calibration-end` validates the model on a holdout instead;
//! `retain predict export` writes the stored predictions.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use clap::{Args as ClapArgs, Subcommand};
use retain_clv::selection::predict_auto;
use retain_clv::{
    calibration_holdout, predict, summarize, summarize_aggregate, ChurnRisk, ClvError,
    HoldoutValidation, Model, Period, PredictOptions, PredictionRun, Summary,
};
use retain_core::features::CustomerHistory;
use retain_store::{NewPredictionRun, StoredPrediction};
use serde_json::json;

use super::{exit, fail, spinner, Context};
use crate::output::{count, money, pct, print_json, Format, Table};

#[derive(Debug, ClapArgs)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  retain predict
  retain predict --period day --horizon-months 24 --discount 0.008
  retain predict --model auto          # fit BG/NBD, MBG/NBD and Pareto/NBD; keep the best on a holdout
  retain predict --model pareto-nbd --as-of 2011-12-09
  retain predict --calibration-end 2011-06-01 --format json   # validate on a holdout
  retain predict export --format csv > predictions.csv

The purchase model is BG/NBD (Fader, Hardie & Lee 2005), fitted on each customer's repeat
purchase days, the span from first to last purchase and the age; the spend model is Gamma-Gamma,
fitted on the customers with repeat purchases. CLV = expected purchases per month x expected
average spend, discounted monthly, over the horizon (months of 30 days or 4.345 weeks, as in
python lifetimes). As of D includes the orders dated D, and T runs to D, as lifetimes counts.
--model chooses BG/NBD, MBG/NBD or Pareto/NBD; auto fits the three on a calibration period (the
first two thirds of the history) and keeps the one with the lowest holdout error, reporting the
evidence. Every prediction carries an interval (delta method, --interval-level, default 90%): the
uncertainty of the expected value from the parameter estimates, not the range of purchases the
customer will actually make. Churn risk: low when P(alive) >= 0.7, medium from 0.3, high below
0.3. The next order date is the median waiting time to the next purchase of a customer who is
still active, counted from the as-of date. With --calibration-end DATE
the model is fitted on the orders up to DATE and its predictions for the days after it up to
as-of are compared with what the customers did; stored predictions are left as they are."
)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Predict as of this date: orders dated on or before it count. Default: the last order's date.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// The purchase model: bgnbd, mbgnbd, pareto-nbd, or auto (the best of the three on a holdout).
    #[arg(long, default_value = "bgnbd", value_parser = parse_model)]
    pub model: ModelChoice,
    /// Time unit of the model: day or week.
    #[arg(long, value_parser = ["day", "week"], default_value = "week")]
    pub period: String,
    /// CLV horizon in months.
    #[arg(long, default_value_t = 12)]
    pub horizon_months: u32,
    /// Monthly discount rate of the CLV.
    #[arg(long, default_value_t = 0.01)]
    pub discount: f64,
    /// Coverage of the per-customer intervals of expected purchases and CLV, in (0, 1).
    #[arg(long, default_value_t = 0.9)]
    pub interval_level: f64,
    /// Validate instead: fit on orders before this date, compare with DATE..as-of.
    #[arg(long)]
    pub calibration_end: Option<NaiveDate>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Write the stored predictions (customer_id, frequency, recency, T, monetary, p_alive,
    /// expected_purchases_90d, clv, expected_purchases_90d_low/high, clv_low/high, churn_risk,
    /// next_order_date) to stdout or a file.
    Export {
        /// csv or json.
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        /// Write to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// A model, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelChoice {
    One(Model),
    Auto,
}

fn parse_model(s: &str) -> std::result::Result<ModelChoice, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(ModelChoice::Auto);
    }
    Model::parse(s)
        .map(ModelChoice::One)
        .ok_or_else(|| format!("expected bgnbd, mbgnbd, pareto-nbd or auto, got '{s}'"))
}

/// What the models are fitted on: the stored aggregates' summaries (the default date), or the
/// purchase histories (another date, validation, `auto`).
pub enum Input {
    Summaries(Vec<(String, Summary)>),
    Histories(Vec<CustomerHistory>),
}

/// The exit code a model error deserves: not enough (usable) data is a precondition.
fn model_error(e: ClvError, what: &str) -> anyhow::Error {
    let code = match e {
        ClvError::NoCustomers | ClvError::SingleCustomer | ClvError::NoRepeatPurchases => {
            exit::PRECONDITION
        }
        ClvError::NonFinite { .. } | ClvError::InvalidSummary { .. } => exit::BAD_INPUT,
        ClvError::InvalidOption(_) => 2,
        _ => exit::FAILURE,
    };
    fail(code, format!("{what}: {e}"))
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    if let Some(Action::Export { format, output }) = args.action {
        return export(ctx, format, output).await;
    }
    let period = Period::parse(&args.period).unwrap_or_default();
    if !(args.discount.is_finite() && args.discount >= 0.0) {
        return Err(fail(
            2,
            "--discount must be a number >= 0 (a monthly rate, e.g. 0.01)",
        ));
    }
    if !(args.interval_level > 0.0 && args.interval_level < 1.0) {
        return Err(fail(
            2,
            "--interval-level must be between 0 and 1 (e.g. 0.9 for 90% intervals)",
        ));
    }
    let show = std::io::stderr().is_terminal();
    let sp = spinner("loading", show);
    let needs_histories =
        args.as_of.is_some() || args.calibration_end.is_some() || args.model == ModelChoice::Auto;
    let loaded = if needs_histories {
        load_histories(ctx, args.as_of)
            .await?
            .map(|(d, h)| (d, Input::Histories(h)))
    } else {
        load_summaries(ctx, period)
            .await?
            .map(|(d, s)| (d, Input::Summaries(s)))
    };
    sp.finish_and_clear();
    let Some((as_of, input)) = loaded else {
        return Err(fail(
            exit::PRECONDITION,
            "no orders yet: import some with `retain import orders FILE`",
        ));
    };

    if let Some(calibration_end) = args.calibration_end {
        if calibration_end >= as_of {
            return Err(fail(
                2,
                format!(
                    "--calibration-end ({calibration_end}) must be before the as-of date ({as_of})"
                ),
            ));
        }
        let Input::Histories(hist) = &input else {
            return Err(fail(
                exit::FAILURE,
                "validation needs the purchase histories",
            ));
        };
        let sp = spinner("validating", show);
        let v = calibration_holdout(hist, calibration_end, as_of, period)
            .map_err(|e| model_error(e, "cannot validate the CLV model"))?;
        sp.finish_and_clear();
        return print_validation(&v, args.format);
    }

    let options = PredictOptions {
        period,
        horizon_months: args.horizon_months,
        discount: args.discount,
        model: match args.model {
            ModelChoice::One(m) => m,
            ModelChoice::Auto => Model::BgNbd,
        },
        interval_level: args.interval_level,
    };
    let sp = spinner("fitting", show);
    let fitted = fit_and_store(ctx, input, as_of, &options, args.model == ModelChoice::Auto).await;
    sp.finish_and_clear();
    let (run, run_id) = fitted?;
    warn(&run);

    let printed = match args.format {
        Format::Json => print_json(&summary_json(&run, as_of, run_id)),
        Format::Csv => {
            let mut rows = stored_rows(&run, as_of);
            rows.sort_unstable_by(|a, b| a.customer_id.cmp(&b.customer_id));
            predictions_table(&rows).print_csv()
        }
        _ => {
            print!("{}", render(&run, as_of));
            Ok(())
        }
    };
    // A million predictions are freed on another thread (the process may exit first).
    super::free_apart(run);
    printed
}

/// Every customer's purchase history up to and including `as_of` (default: the last order's
/// date); `None` without orders.
pub async fn load_histories(
    ctx: &Context,
    as_of: Option<NaiveDate>,
) -> Result<Option<(NaiveDate, Vec<CustomerHistory>)>> {
    let Some(last) = ctx.store.last_order_day().await? else {
        return Ok(None);
    };
    let as_of = as_of.unwrap_or_else(|| retain_core::date_of(last));
    let cutoff = retain_core::date_of(retain_core::day_of(as_of) + 1);
    Ok(Some((
        as_of,
        ctx.store.customer_histories(Some(cutoff)).await?,
    )))
}

/// Every customer's model summary as of the last order's date, from the stored aggregates (no
/// order is read), in customer key order (the same on both backends); `None` without orders.
/// Also the demo's.
pub async fn load_summaries(
    ctx: &Context,
    period: Period,
) -> Result<Option<(NaiveDate, Vec<(String, Summary)>)>> {
    let Some(last) = ctx.store.last_order_day().await? else {
        return Ok(None);
    };
    let as_of = retain_core::date_of(last);
    let out: Vec<(String, Summary)> = ctx
        .store
        .customer_stats_with(move |_, id, agg| {
            let s = summarize_aggregate(&agg, as_of, period);
            (id, s)
        })
        .await?;
    Ok(Some((as_of, out)))
}

/// Fits both models on `hist` as of `as_of` and stores the run and its predictions (replacing
/// the previous ones). Returns the run and its id. Also the demo's predict step.
pub async fn fit_and_store(
    ctx: &Context,
    input: Input,
    as_of: NaiveDate,
    options: &PredictOptions,
    auto: bool,
) -> Result<(PredictionRun, i64)> {
    let run = match &input {
        Input::Histories(hist) if auto => predict_auto(hist, as_of, None, options),
        Input::Histories(hist) => predict(&summarize(hist, as_of, options.period), options),
        Input::Summaries(s) => predict(s, options),
    };
    // The customers' histories are freed on another thread while the predictions are stored.
    let freeing = super::free_apart(input);
    let run = run.map_err(|e| model_error(e, "cannot fit the CLV models"))?;
    let record = NewPredictionRun {
        as_of: as_of.format("%Y-%m-%d").to_string(),
        period: options.period.as_str().to_string(),
        horizon_months: i64::from(options.horizon_months),
        discount: options.discount,
        customers: run.customers as i64,
        bgnbd_r: run.bgnbd.params.r,
        bgnbd_alpha: run.bgnbd.params.alpha,
        bgnbd_a: run.bgnbd.params.a,
        bgnbd_b: run.bgnbd.params.b,
        bgnbd_log_likelihood: run.bgnbd.log_likelihood,
        bgnbd_converged: run.bgnbd.converged,
        gamma_gamma: run
            .gamma_gamma
            .as_ref()
            .map(|g| (g.params.p, g.params.q, g.params.v)),
        gamma_gamma_reason: run.gamma_gamma_reason.clone(),
        p_alive_mean: run.p_alive_mean,
        expected_purchases_90d_mean: run.expected_purchases_90d_mean,
        clv_mean: run.clv_mean,
        model: run.model.as_str().to_string(),
        params: serde_json::to_value(&run.fit).context("the fit as JSON")?,
        selection: run
            .selection
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .context("the model selection as JSON")?,
        interval_level: run.options.interval_level,
    };
    let rows = stored_rows(&run, as_of);
    let run_id = ctx
        .store
        .save_predictions(&record, &rows)
        .await
        .context("storing the predictions")?;
    super::free_apart(rows);
    let _ = freeing.join();
    Ok((run, run_id))
}

/// The run's per-customer predictions as the store keeps them.
fn stored_rows(run: &PredictionRun, as_of: NaiveDate) -> Vec<StoredPrediction> {
    run.predictions
        .iter()
        .map(|p| StoredPrediction {
            customer_id: p.customer_id.clone(),
            frequency: p.summary.frequency,
            recency: p.summary.recency,
            t: p.summary.t,
            monetary: p.summary.monetary,
            p_alive: p.p_alive,
            expected_purchases_90d: p.expected_purchases_90d,
            clv: p.clv,
            expected_purchases_90d_low: Some(p.expected_purchases_90d_low),
            expected_purchases_90d_high: Some(p.expected_purchases_90d_high),
            clv_low: p.clv_low,
            clv_high: p.clv_high,
            churn_risk: Some(p.churn_risk.as_str().to_string()),
            next_order_date: p
                .next_order_date(as_of)
                .map(|d| d.format("%Y-%m-%d").to_string()),
        })
        .collect()
}

/// Warnings that do not stop the run.
fn warn(run: &PredictionRun) {
    if !run.bgnbd.converged {
        eprintln!(
            "warning: the BG/NBD fit stopped before converging ({} iterations); treat the predictions with care",
            run.bgnbd.iterations
        );
    }
    if let Some(c) = run.independence.filter(|c| c.warning) {
        eprintln!(
            "warning: purchase frequency and spend are correlated (Pearson {:.2} over {} repeat customers); \
             the Gamma-Gamma spend model assumes they are not, so CLV may be biased",
            c.pearson, c.customers
        );
    }
    if let Some(reason) = &run.gamma_gamma_reason {
        eprintln!("warning: no spend model, so no CLV: {reason}");
    }
}

/// The JSON document of a run: parameters, means and what could not be fitted.
fn summary_json(run: &PredictionRun, as_of: NaiveDate, run_id: i64) -> serde_json::Value {
    let bg = &run.bgnbd;
    json!({
        "run_id": run_id,
        "as_of": as_of.format("%Y-%m-%d").to_string(),
        "period": run.options.period.as_str(),
        "horizon_months": run.options.horizon_months,
        "discount": run.options.discount,
        "customers": run.customers,
        "bgnbd": {
            "r": bg.params.r,
            "alpha": bg.params.alpha,
            "a": bg.params.a,
            "b": bg.params.b,
            "log_likelihood": bg.log_likelihood,
            "converged": bg.converged,
        },
        "gamma_gamma": run.gamma_gamma.as_ref().map(|g| json!({
            "p": g.params.p,
            "q": g.params.q,
            "v": g.params.v,
            "customers": g.customers,
        })),
        "gamma_gamma_reason": run.gamma_gamma_reason,
        "frequency_monetary_correlation": run.independence.map(|c| json!({
            "pearson": c.pearson,
            "warning": c.warning,
        })),
        "p_alive_mean": run.p_alive_mean,
        "expected_purchases_90d_mean": run.expected_purchases_90d_mean,
        "clv_mean": run.clv_mean,
        "model": run.model.as_str(),
        "fit": run.fit,
        "selection": run.selection,
        "interval_level": run.options.interval_level,
        "churn_risk": churn_counts(run),
    })
}

/// Customers per churn-risk band.
fn churn_counts(run: &PredictionRun) -> serde_json::Value {
    let n = |r: ChurnRisk| run.predictions.iter().filter(|p| p.churn_risk == r).count();
    json!({
        "low": n(ChurnRisk::Low),
        "medium": n(ChurnRisk::Medium),
        "high": n(ChurnRisk::High),
    })
}

fn num(v: f64) -> String {
    format!("{v:.4}")
}

/// `name=value ± standard error` for each parameter of a fit (without the `±` part when the fit
/// has no standard errors).
fn parameters_with_errors(fit: &retain_clv::ModelFit) -> Vec<String> {
    let names = fit.model().parameter_names();
    let values = fit.params.values();
    let errors = fit.std_errors.map(|e| e.values());
    names
        .iter()
        .enumerate()
        .map(|(k, n)| match errors {
            Some(e) => format!("{n}={:.4} ± {:.4}", values[k], e[k]),
            None => format!("{n}={:.4}", values[k]),
        })
        .collect()
}

/// The human-readable report: parameters, means and the most valuable customers.
pub fn render(run: &PredictionRun, as_of: NaiveDate) -> String {
    let bg = &run.bgnbd;
    let unit = run.options.period.as_str();
    let mut out = format!(
        "CLV models as of {as_of} ({} customers, time unit: {unit})\n\n",
        count(run.customers as i64)
    );
    if run.model != Model::BgNbd {
        out.push_str(&format!(
            "  BG/NBD        r={:.4}  alpha={:.4}  a={:.4}  b={:.4}  log-likelihood {:.2}   (reference)\n",
            bg.params.r, bg.params.alpha, bg.params.a, bg.params.b, bg.log_likelihood
        ));
    }
    out.push_str(&format!(
        "  {:<13} {}  log-likelihood {:.2}   (predicts)\n",
        run.model.label(),
        parameters_with_errors(&run.fit).join("  "),
        run.fit.log_likelihood
    ));
    if run.fit.std_errors.is_none() {
        out.push_str(
            "                no standard errors: the likelihood is flat at the optimum, so the intervals are the point estimates\n",
        );
    }
    if let Some(sel) = &run.selection {
        out.push_str(&format!(
            "\n  model chosen on a holdout ({} to {}, {} customers): {}\n",
            sel.calibration_end,
            sel.holdout_end,
            count(sel.customers as i64),
            sel.best.label()
        ));
        for c in &sel.candidates {
            match (c.holdout_mae, c.predicted_total) {
                (Some(mae), Some(total)) => out.push_str(&format!(
                    "    {:<11} holdout MAE {mae:.4}   predicted {total:.0} vs actual {:.0} purchases\n",
                    c.model.label(),
                    sel.actual_total,
                )),
                _ => out.push_str(&format!(
                    "    {:<11} not fitted: {}\n",
                    c.model.label(),
                    c.error.as_deref().unwrap_or("unknown reason")
                )),
            }
        }
    }
    match (&run.gamma_gamma, &run.gamma_gamma_reason) {
        (Some(g), _) => out.push_str(&format!(
            "  Gamma-Gamma   p={:.4}  q={:.4}  v={:.4}  ({} repeat customers)\n",
            g.params.p,
            g.params.q,
            g.params.v,
            count(g.customers as i64)
        )),
        (None, reason) => out.push_str(&format!(
            "  Gamma-Gamma   not fitted: {}\n",
            reason.as_deref().unwrap_or("unknown reason")
        )),
    }
    out.push_str(&format!(
        "\n  mean P(alive)                      {:>12}\n",
        pct(run.p_alive_mean)
    ));
    out.push_str(&format!(
        "  mean expected purchases, 90 days   {:>12}\n",
        num(run.expected_purchases_90d_mean)
    ));
    let band = |r: ChurnRisk| run.predictions.iter().filter(|p| p.churn_risk == r).count() as i64;
    out.push_str(&format!(
        "  churn risk: low {}, medium {}, high {}   (P(alive) >= 0.7 low, < 0.3 high)\n",
        count(band(ChurnRisk::Low)),
        count(band(ChurnRisk::Medium)),
        count(band(ChurnRisk::High))
    ));
    if let Some(clv) = run.clv_mean {
        out.push_str(&format!(
            "  mean CLV, {:>2} months, {}/month   {:>12}\n",
            run.options.horizon_months,
            pct(run.options.discount),
            money(clv)
        ));
        // The ten highest: a selection, then a sort of those ten (a total order, so the same
        // ten in the same order as sorting every customer).
        let by_clv = |a: &&retain_clv::CustomerPrediction, b: &&retain_clv::CustomerPrediction| {
            b.clv
                .unwrap_or(0.0)
                .total_cmp(&a.clv.unwrap_or(0.0))
                .then_with(|| a.customer_id.cmp(&b.customer_id))
        };
        let mut top: Vec<&retain_clv::CustomerPrediction> = run.predictions.iter().collect();
        if top.len() > 10 {
            top.select_nth_unstable_by(9, by_clv);
            top.truncate(10);
        }
        top.sort_by(by_clv);
        let level = format!("CLV {:.0}% interval", 100.0 * run.options.interval_level);
        let mut t = Table::new([
            "customer",
            "repeat days",
            "P(alive)",
            "churn risk",
            "purchases 90d",
            "CLV",
            level.as_str(),
            "next order",
        ]);
        for p in top.iter().take(10) {
            let interval = match (p.clv_low, p.clv_high) {
                (Some(lo), Some(hi)) => format!("{} – {}", money(lo), money(hi)),
                _ => "–".into(),
            };
            t.row([
                p.customer_id.clone(),
                format!("{}", p.summary.frequency),
                pct(p.p_alive),
                p.churn_risk.as_str().to_string(),
                num(p.expected_purchases_90d),
                money(p.clv.unwrap_or(0.0)),
                interval,
                p.next_order_date(as_of)
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .unwrap_or_else(|| "–".into()),
            ]);
        }
        out.push_str("\nMost valuable customers\n\n");
        out.push_str(&t.render());
    }
    out.push_str("\nAll customers: `retain predict export --format csv`.\n");
    out
}

const EXPORT_HEADER: [&str; 14] = [
    "customer_id",
    "frequency",
    "recency",
    "T",
    "monetary",
    "p_alive",
    "expected_purchases_90d",
    "clv",
    "expected_purchases_90d_low",
    "expected_purchases_90d_high",
    "clv_low",
    "clv_high",
    "churn_risk",
    "next_order_date",
];

/// One export row; numbers in full precision, CLV empty without a spend model, intervals, band
/// and date empty for predictions stored before they were kept.
fn cells(p: &StoredPrediction) -> [String; 14] {
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    [
        p.customer_id.clone(),
        p.frequency.to_string(),
        p.recency.to_string(),
        p.t.to_string(),
        p.monetary.to_string(),
        p.p_alive.to_string(),
        p.expected_purchases_90d.to_string(),
        opt(p.clv),
        opt(p.expected_purchases_90d_low),
        opt(p.expected_purchases_90d_high),
        opt(p.clv_low),
        opt(p.clv_high),
        p.churn_risk.clone().unwrap_or_default(),
        p.next_order_date.clone().unwrap_or_default(),
    ]
}

fn predictions_table(rows: &[StoredPrediction]) -> Table {
    let mut t = Table::new(EXPORT_HEADER);
    for p in rows {
        t.row(cells(p));
    }
    t
}

async fn export(ctx: &Context, format: Format, output: Option<PathBuf>) -> Result<()> {
    if ctx.store.latest_prediction_run().await?.is_none() {
        return Err(fail(
            exit::PRECONDITION,
            "no predictions yet: run `retain predict` first",
        ));
    }
    let rows = ctx.store.stored_predictions().await?;
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&rows)? + "\n",
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(EXPORT_HEADER)?;
            for p in &rows {
                w.write_record(cells(p))?;
            }
            String::from_utf8(w.into_inner().context("writing CSV")?)?
        }
        other => {
            return Err(fail(
                2,
                format!("predict export writes csv or json, not {other:?}"),
            ))
        }
    };
    match output {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            use std::io::Write;
            match std::io::stdout().lock().write_all(text.as_bytes()) {
                // `retain predict export | head` is fine.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            }
        }
    }
}

fn print_validation(v: &HoldoutValidation, format: Format) -> Result<()> {
    match format {
        Format::Json => print_json(&json!({
            "period": v.period.as_str(),
            "calibration_end": v.calibration_end.format("%Y-%m-%d").to_string(),
            "holdout_end": v.holdout_end.format("%Y-%m-%d").to_string(),
            "holdout_length": v.holdout_length,
            "customers": v.rows.len(),
            "bgnbd": {
                "r": v.fit.params.r,
                "alpha": v.fit.params.alpha,
                "a": v.fit.params.a,
                "b": v.fit.params.b,
                "log_likelihood": v.fit.log_likelihood,
                "converged": v.fit.converged,
            },
            "actual_total": v.actual_total,
            "predicted_total": v.predicted_total,
            "mean_absolute_error": v.mean_absolute_error,
            "rmse": v.rmse,
            "buckets": v.buckets,
        })),
        f => {
            let mut t = Table::new([
                "repeat days before",
                "customers",
                "actual (mean)",
                "predicted (mean)",
            ]);
            for b in &v.buckets {
                t.row([
                    b.frequency.clone(),
                    count(b.customers as i64),
                    num(b.actual_mean),
                    num(b.predicted_mean),
                ]);
            }
            if f == Format::Csv {
                return t.print_csv();
            }
            println!(
                "Holdout validation: fitted on orders before {}, predicted {}..{} ({:.2} {}s)\n",
                v.calibration_end,
                v.calibration_end,
                v.holdout_end,
                v.holdout_length,
                v.period.as_str()
            );
            println!(
                "  repeat purchase days: actual {}, predicted {:.1} ({:+.1} %)",
                count(v.actual_total as i64),
                v.predicted_total,
                100.0 * (v.predicted_total - v.actual_total) / v.actual_total.max(1.0)
            );
            println!(
                "  per customer: mean absolute error {:.3}, RMSE {:.3}\n",
                v.mean_absolute_error, v.rmse
            );
            print!("{}", t.render());
            Ok(())
        }
    }
}
