//! The one-call API the CLI uses: fit a purchase model (BG/NBD by default, or MBG/NBD or
//! Pareto/NBD, see [`PredictOptions::model`]) and the Gamma-Gamma spend model on a set of
//! customer summaries and predict, per customer, P(alive) and its churn-risk band, the expected
//! purchases in the next 90 days, the CLV, intervals for both, and the expected time to the next
//! order.
//!
//! The purchase model's fit is required (its failure is the run's failure); BG/NBD is always
//! fitted too and reported in [`PredictionRun::bgnbd`], whichever model predicts. The
//! Gamma-Gamma fit is optional: when it cannot be made (no repeat customer with a positive
//! spend, a failed fit, or `q <= 1` so that the mean spend is infinite) the run carries the
//! reason and no CLV. Every number that leaves this module is finite — a NaN or infinity is an
//! error naming the customer.
//!
//! # Intervals
//!
//! `expected_purchases_90d_low/high` and `clv_low/high` are delta-method intervals at
//! [`PredictOptions::interval_level`] (default 90 %) for the *expected* value given the
//! customer's history, from the uncertainty of the fitted parameters: the covariance of the
//! log-parameters (inverse observed information, [`ModelFit::log_covariance`]) propagated
//! through the gradient of `ln E` (forward differences on the log-parameters), and mapped back
//! as `E·exp(±z·sd)`, so the interval is positive and asymmetric. For CLV the spend model's
//! parameter covariance is added, taking the two fits as independent. They do not include the
//! Poisson noise of how many purchases the customer will actually make. When the information
//! matrix is not positive definite the interval collapses to the point estimate.

use std::collections::HashMap;

use chrono::NaiveDate;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bgnbd::{BgData, BgNbdFit};
use crate::clv::{check_clv_options, discounted_value, month_ends};
use crate::error::ClvError;
use crate::gamma_gamma::{self, GammaGammaFit, GammaGammaParams, IndependenceCheck};
use crate::model::{
    self, normal_quantile_two_sided, quadratic_form, ChurnRisk, Model, ModelFit, ModelParams,
};
use crate::selection::ModelSelection;
use crate::summary::{validate_for_fit, Period, Summary};

/// How [`predict`] should predict. The summaries passed with it must be in `period` units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PredictOptions {
    pub period: Period,
    /// CLV horizon in months (lifetimes' months: 30 days or 4.345 weeks).
    pub horizon_months: u32,
    /// Monthly discount rate.
    pub discount: f64,
    /// The purchase model that predicts (default BG/NBD). For `auto`, see
    /// [`crate::selection::predict_auto`].
    #[serde(default)]
    pub model: Model,
    /// Coverage of the per-customer intervals, in (0, 1); default 0.9.
    #[serde(default = "default_level")]
    pub interval_level: f64,
}

fn default_level() -> f64 {
    0.9
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self {
            period: Period::Week,
            horizon_months: 12,
            discount: 0.01,
            model: Model::BgNbd,
            interval_level: default_level(),
        }
    }
}

/// What the models say about one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerPrediction {
    pub customer_id: String,
    pub summary: Summary,
    pub p_alive: f64,
    /// Churn-risk band from `p_alive` (cut-offs in [`ChurnRisk`]).
    pub churn_risk: ChurnRisk,
    /// Expected purchases in the next 90 days.
    pub expected_purchases_90d: f64,
    /// Interval for `expected_purchases_90d` at [`PredictOptions::interval_level`].
    pub expected_purchases_90d_low: f64,
    pub expected_purchases_90d_high: f64,
    /// Expected time to the next order, in days after the as-of date, if the customer is still
    /// active: the median waiting time of [`ModelParams::next_order_in`].
    pub next_order_days: f64,
    /// Gamma-Gamma's expected average purchase value; `None` without a spend model.
    pub expected_average_profit: Option<f64>,
    /// Discounted value over the horizon; `None` without a spend model.
    pub clv: Option<f64>,
    /// Interval for `clv` at [`PredictOptions::interval_level`].
    pub clv_low: Option<f64>,
    pub clv_high: Option<f64>,
}

impl CustomerPrediction {
    /// The expected date of the next order: `as_of` plus [`Self::next_order_days`], rounded to
    /// the nearest day; `None` beyond the calendar.
    pub fn next_order_date(&self, as_of: NaiveDate) -> Option<NaiveDate> {
        let days = self.next_order_days.round();
        if !(days.is_finite() && days < 1e6) {
            return None;
        }
        as_of.checked_add_days(chrono::Days::new(days as u64))
    }
}

/// A complete prediction run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRun {
    pub options: PredictOptions,
    pub customers: usize,
    /// The model whose predictions these are (`options.model`, or the choice of `auto`).
    pub model: Model,
    /// Its fit: parameters (`{"bgnbd": {...}}`, `{"mbgnbd": {...}}` or
    /// `{"pareto_nbd": {...}}`), log-likelihood, standard errors.
    pub fit: ModelFit,
    /// The BG/NBD fit, always made (the reference model), whichever model predicts.
    pub bgnbd: BgNbdFit,
    pub gamma_gamma: Option<GammaGammaFit>,
    /// Why there is no Gamma-Gamma model (and no CLV), when there is none.
    pub gamma_gamma_reason: Option<String>,
    /// Frequency–monetary correlation of the repeat customers (the spend model assumes none).
    pub independence: Option<IndependenceCheck>,
    /// How `auto` chose the model, when it did.
    pub selection: Option<ModelSelection>,
    pub predictions: Vec<CustomerPrediction>,
    pub p_alive_mean: f64,
    pub expected_purchases_90d_mean: f64,
    pub clv_mean: Option<f64>,
}

fn finite(v: f64, customer: &str, what: &'static str) -> Result<f64, ClvError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ClvError::NonFinitePrediction {
            customer: customer.to_string(),
            what,
        })
    }
}

/// Step on the log-parameters for the forward differences of the intervals.
const DELTA_STEP: f64 = 1e-6;

/// The purchase-model predictions of one distinct `(x, t_x, T)`.
struct Purchases {
    p_alive: f64,
    e90: f64,
    /// Variance of ln E90 from the parameters.
    var_ln_e90: f64,
    /// Discounted expected purchases over the CLV horizon (CLV per unit of profit).
    value: f64,
    var_ln_value: f64,
    next_order_in: f64,
}

/// The spend-model predictions of one distinct `(x, m)`.
struct Spend {
    profit: f64,
    var_ln_profit: f64,
}

/// `(E90, V)` at `params` for summary `s`.
fn purchase_values(
    params: &ModelParams,
    s: &Summary,
    ts: &[f64],
    discount: f64,
    months: bool,
) -> Result<(f64, f64), ClvError> {
    let expected = params.conditional_expected_purchases_many(ts, s)?;
    let value = if months {
        discounted_value(1.0, &expected[1..], discount)
    } else {
        0.0
    };
    Ok((expected[0], value))
}

/// Variance of `ln f` from forward differences `(ln f(θ+h·e_k) − ln f(θ)) / h`.
fn log_variance<const N: usize>(base: f64, shifted: &[f64; N], cov: &[[f64; N]; N]) -> f64 {
    if base.is_nan() || base <= 0.0 {
        return 0.0;
    }
    let lb = base.ln();
    let g: [f64; N] = std::array::from_fn(|k| {
        if shifted[k] > 0.0 {
            (shifted[k].ln() - lb) / DELTA_STEP
        } else {
            0.0
        }
    });
    quadratic_form(&g, cov).max(0.0)
}

fn purchases_of(
    fit: &ModelFit,
    s: &Summary,
    ts: &[f64],
    discount: f64,
    months: bool,
) -> Result<Purchases, ClvError> {
    let params = fit.params;
    if let (ModelParams::ParetoNbd(pp), Some(cov)) = (&params, &fit.log_covariance) {
        // Pareto/NBD: P(alive) needs a quadrature, the rest is closed form, so the shifted
        // values use the analytic gradient of ln P(alive) instead of four more quadratures.
        let (p_alive, g) = pp.p_alive_and_log_gradient(s);
        let at = |q: &crate::ParetoNbdParams, alive: f64| {
            let e: Vec<f64> = ts
                .iter()
                .map(|&t| alive * q.expected_if_alive(t, s.frequency, s.t))
                .collect();
            let value = if months {
                discounted_value(1.0, &e[1..], discount)
            } else {
                0.0
            };
            (e[0], value)
        };
        let (e90, value) = at(pp, p_alive);
        let logs = params.to_log();
        let mut e_shift = [0.0; 4];
        let mut v_shift = [0.0; 4];
        for k in 0..4 {
            let mut v = logs;
            v[k] += DELTA_STEP;
            if let ModelParams::ParetoNbd(q) = ModelParams::from_log(Model::ParetoNbd, &v) {
                (e_shift[k], v_shift[k]) = at(&q, p_alive * (g[k] * DELTA_STEP).exp());
            }
        }
        return Ok(Purchases {
            p_alive,
            e90,
            var_ln_e90: log_variance(e90, &e_shift, cov),
            value,
            var_ln_value: log_variance(value, &v_shift, cov),
            next_order_in: params.next_order_in(s),
        });
    }
    let (e90, value) = purchase_values(&params, s, ts, discount, months)?;
    let (mut var_ln_e90, mut var_ln_value) = (0.0, 0.0);
    if let Some(cov) = &fit.log_covariance {
        let logs = params.to_log();
        let mut e_shift = [0.0; 4];
        let mut v_shift = [0.0; 4];
        for k in 0..4 {
            let mut v = logs;
            v[k] += DELTA_STEP;
            let p = ModelParams::from_log(params.model(), &v);
            (e_shift[k], v_shift[k]) = purchase_values(&p, s, ts, discount, months)?;
        }
        var_ln_e90 = log_variance(e90, &e_shift, cov);
        var_ln_value = log_variance(value, &v_shift, cov);
    }
    Ok(Purchases {
        p_alive: params.p_alive(s),
        e90,
        var_ln_e90,
        value,
        var_ln_value,
        next_order_in: params.next_order_in(s),
    })
}

fn spend_of(
    gg: &GammaGammaParams,
    cov: Option<&[[f64; 3]; 3]>,
    x: f64,
    m: f64,
) -> Result<Spend, ClvError> {
    let profit = gg.conditional_expected_average_profit(x, m)?;
    let mut var_ln_profit = 0.0;
    if let Some(cov) = cov {
        let logs = [gg.p.ln(), gg.q.ln(), gg.v.ln()];
        let mut shifted = [0.0; 3];
        for (k, out) in shifted.iter_mut().enumerate() {
            let mut v = logs;
            v[k] += DELTA_STEP;
            *out = GammaGammaParams::from_log(&v)
                .conditional_expected_average_profit(x, m)
                .unwrap_or(profit);
        }
        var_ln_profit = log_variance(profit, &shifted, cov);
    }
    Ok(Spend {
        profit,
        var_ln_profit,
    })
}

/// `v·exp(∓z·sd)`.
fn interval(v: f64, var_ln: f64, z: f64) -> (f64, f64) {
    let sd = var_ln.sqrt();
    (v * (-z * sd).exp(), v * (z * sd).exp())
}

/// Fits the purchase model `options.model` (and BG/NBD, and Gamma-Gamma when possible) on
/// `summaries` and predicts for every customer.
pub fn predict(
    summaries: &[(String, Summary)],
    options: &PredictOptions,
) -> Result<PredictionRun, ClvError> {
    check_clv_options(options.horizon_months, options.discount)?;
    let z = normal_quantile_two_sided(options.interval_level).ok_or_else(|| {
        ClvError::InvalidOption(format!(
            "the interval level must be between 0 and 1 (exclusive), got {}",
            options.interval_level
        ))
    })?;
    validate_for_fit(summaries.iter().map(|(_, s)| s), |i| summaries[i].0.clone())?;
    let data = BgData::new(summaries.iter().map(|(_, s)| s));
    let fit = model::fit_validated(&data, options.model)?;
    let bgnbd = match options.model {
        Model::BgNbd => bgnbd_fit_of(&fit),
        _ => crate::bgnbd::fit_validated(&data)?,
    };
    drop(data);

    let pairs = gamma_gamma::repeat_customers(summaries.iter().map(|(_, s)| s));
    let independence = gamma_gamma::independence_check(&pairs);
    let (gamma_gamma, gamma_gamma_reason) = match gamma_gamma::fit(&pairs) {
        Ok(fit) if fit.params.q <= 1.0 => {
            let reason = format!(
                "the fitted spend distribution has q = {:.4} <= 1, so its mean is infinite",
                fit.params.q
            );
            (None, Some(reason))
        }
        Ok(fit) => (Some(fit), None),
        Err(ClvError::NoPositiveMonetary) => (
            None,
            Some("no repeat customer with a positive monetary value".to_string()),
        ),
        Err(ClvError::SingleCustomer) => (
            None,
            Some("only one repeat customer with a positive monetary value".to_string()),
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let gg = gamma_gamma.as_ref().map(|f| f.params);
    let gg_cov = gg.and_then(|p| gamma_gamma::log_covariance(&pairs, &p));
    drop(pairs);

    let horizon_90d = options.period.from_days(90.0);
    let months = gg.is_some();
    let mut ts = vec![horizon_90d];
    if months {
        ts.extend(month_ends(options.period, options.horizon_months));
    }

    // Identical (x, t_x, T) get identical purchase predictions and identical (x, m) identical
    // spend predictions: compute each distinct one once, for the first customer who has it.
    let mut first_of: HashMap<[u64; 3], u32> = HashMap::with_capacity(summaries.len() / 2);
    let mut distinct: Vec<usize> = Vec::new();
    let slots: Vec<u32> = summaries
        .iter()
        .enumerate()
        .map(|(i, (_, s))| {
            let key = [s.frequency, s.recency, s.t].map(f64::to_bits);
            *first_of.entry(key).or_insert_with(|| {
                distinct.push(i);
                (distinct.len() - 1) as u32
            })
        })
        .collect();
    drop(first_of);
    let purchases: Vec<Purchases> = distinct
        .par_iter()
        .with_min_len(64)
        .map(|&i| {
            let (id, s) = &summaries[i];
            let p = purchases_of(&fit, s, &ts, options.discount, months)?;
            finite(p.p_alive, id, "P(alive)")?;
            finite(p.e90, id, "expected purchases")?;
            finite(p.value, id, "CLV")?;
            finite(p.next_order_in, id, "next order time")?;
            Ok(p)
        })
        .collect::<Result<_, ClvError>>()?;
    let (spend_slots, spend): (Vec<u32>, Vec<Spend>) = match &gg {
        Some(gg) => {
            let mut first_of: HashMap<[u64; 2], u32> = HashMap::new();
            let mut distinct: Vec<usize> = Vec::new();
            let slots: Vec<u32> = summaries
                .iter()
                .enumerate()
                .map(|(i, (_, s))| {
                    let key = [s.frequency, s.monetary].map(f64::to_bits);
                    *first_of.entry(key).or_insert_with(|| {
                        distinct.push(i);
                        (distinct.len() - 1) as u32
                    })
                })
                .collect();
            let spend = distinct
                .par_iter()
                .with_min_len(256)
                .map(|&i| {
                    let (id, s) = &summaries[i];
                    let sp = spend_of(gg, gg_cov.as_ref(), s.frequency, s.monetary)?;
                    finite(sp.profit, id, "expected average profit")?;
                    Ok(sp)
                })
                .collect::<Result<_, ClvError>>()?;
            (slots, spend)
        }
        None => (Vec::new(), Vec::new()),
    };
    let unit_days = options.period.days();
    let predictions: Vec<CustomerPrediction> = summaries
        .par_iter()
        .enumerate()
        .with_min_len(4096)
        .map(|(i, (id, s))| {
            let p = &purchases[slots[i] as usize];
            let (e_low, e_high) = interval(p.e90, p.var_ln_e90, z);
            let (profit, clv, clv_low, clv_high) =
                match spend.get(spend_slots.get(i).map_or(usize::MAX, |&k| k as usize)) {
                    Some(sp) => {
                        let clv = sp.profit * p.value;
                        let (lo, hi) = interval(clv, p.var_ln_value + sp.var_ln_profit, z);
                        (Some(sp.profit), Some(clv), Some(lo), Some(hi))
                    }
                    None => (None, None, None, None),
                };
            CustomerPrediction {
                customer_id: id.clone(),
                summary: *s,
                p_alive: p.p_alive,
                churn_risk: ChurnRisk::from_p_alive(p.p_alive),
                expected_purchases_90d: p.e90,
                expected_purchases_90d_low: e_low,
                expected_purchases_90d_high: e_high,
                next_order_days: p.next_order_in * unit_days,
                expected_average_profit: profit,
                clv,
                clv_low,
                clv_high,
            }
        })
        .collect();

    let n = predictions.len() as f64;
    let mean = |f: &dyn Fn(&CustomerPrediction) -> f64| predictions.iter().map(f).sum::<f64>() / n;
    let p_alive_mean = mean(&|p| p.p_alive);
    let expected_purchases_90d_mean = mean(&|p| p.expected_purchases_90d);
    let clv_mean = gg.is_some().then(|| mean(&|p| p.clv.unwrap_or(0.0)));
    Ok(PredictionRun {
        options: *options,
        customers: predictions.len(),
        model: fit.model(),
        fit,
        bgnbd,
        gamma_gamma,
        gamma_gamma_reason,
        independence,
        selection: None,
        predictions,
        p_alive_mean,
        expected_purchases_90d_mean,
        clv_mean,
    })
}

/// The BG/NBD fit record of a [`ModelFit`] of BG/NBD.
fn bgnbd_fit_of(fit: &ModelFit) -> BgNbdFit {
    let [r, alpha, a, b] = fit.params.values();
    BgNbdFit {
        params: crate::bgnbd::BgNbdParams { r, alpha, a, b },
        log_likelihood: fit.log_likelihood,
        customers: fit.customers,
        distinct_rows: fit.distinct_rows,
        iterations: fit.iterations,
        evaluations: fit.evaluations,
        converged: fit.converged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64, tx: f64, t: f64, m: f64) -> Summary {
        Summary {
            frequency: x,
            recency: tx,
            t,
            monetary: m,
        }
    }

    fn population() -> Vec<(String, Summary)> {
        (0..400)
            .map(|i| {
                let x = [0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 7.0][i % 7];
                let t = 10.0 + (i % 29) as f64;
                let tx = if x > 0.0 {
                    t * ((i % 4) as f64 + 1.0) / 5.0
                } else {
                    0.0
                };
                let m = if x > 0.0 {
                    10.0 + ((i * 13) % 41) as f64
                } else {
                    0.0
                };
                (format!("c{i}"), s(x, tx, t, m))
            })
            .collect()
    }

    #[test]
    fn predicts_everyone_with_finite_values() {
        let run = predict(&population(), &PredictOptions::default()).expect("run");
        assert_eq!(run.customers, 400);
        assert!(run.gamma_gamma.is_some(), "{:?}", run.gamma_gamma_reason);
        for p in &run.predictions {
            assert!((0.0..=1.0).contains(&p.p_alive));
            assert!(p.expected_purchases_90d >= 0.0);
            assert!(p.clv.expect("spend model") >= 0.0);
        }
        let mean: f64 = run.predictions.iter().map(|p| p.p_alive).sum::<f64>() / 400.0;
        assert!((mean - run.p_alive_mean).abs() < 1e-12);
        assert!(run.clv_mean.expect("clv") > 0.0);
    }

    #[test]
    fn identical_customers_get_identical_predictions() {
        let pop = population();
        let run = predict(&pop, &PredictOptions::default()).expect("run");
        let bg = run.bgnbd.params;
        let gg = run.gamma_gamma.as_ref().expect("spend").params;
        for (p, (id, s)) in run.predictions.iter().zip(&pop) {
            assert_eq!(&p.customer_id, id);
            assert_eq!(p.p_alive, bg.p_alive(s));
            let clv = crate::clv::customer_lifetime_value(&bg, &gg, s, Period::Week, 12, 0.01)
                .expect("clv");
            let got = p.clv.expect("clv");
            assert!((got - clv).abs() <= 1e-12 * clv, "{got} vs {clv}");
        }
    }

    /// A BG/NBD cohort with Gamma-Gamma spend, in weeks.
    fn simulated() -> Vec<(String, Summary)> {
        let truth = ModelParams::BgNbd(crate::BgNbdParams {
            r: 0.5,
            alpha: 5.0,
            a: 0.8,
            b: 2.5,
        });
        let shape = crate::simulate::Cohort {
            customers: 1500,
            t_min: 20.0,
            t_max: 40.0,
            tick: Some(1.0 / 7.0),
        };
        let mut pop = crate::simulate::cohort(&truth, &shape, 5);
        let gg = GammaGammaParams {
            p: 6.0,
            q: 4.0,
            v: 15.0,
        };
        crate::simulate::add_spend(&mut pop, &gg, 6);
        pop.into_iter()
            .enumerate()
            .map(|(i, s)| (format!("c{i}"), s))
            .collect()
    }

    #[test]
    fn every_prediction_has_an_interval_a_band_and_a_next_order() {
        let pop = simulated();
        for model in Model::ALL {
            let opts = PredictOptions {
                model,
                ..PredictOptions::default()
            };
            let run = predict(&pop, &opts).expect("run");
            assert_eq!(run.model, model);
            assert_eq!(run.fit.params.model(), model);
            assert!(run.fit.std_errors.is_some(), "{model}: {:?}", run.fit);
            let mut widths = 0.0;
            for p in &run.predictions {
                let e = p.expected_purchases_90d;
                assert!(p.expected_purchases_90d_low <= e && e <= p.expected_purchases_90d_high);
                widths += p.expected_purchases_90d_high - p.expected_purchases_90d_low;
                let clv = p.clv.expect("clv");
                let (lo, hi) = (p.clv_low.expect("low"), p.clv_high.expect("high"));
                assert!(lo <= clv && clv <= hi && lo > 0.0, "{p:?}");
                assert_eq!(p.churn_risk, ChurnRisk::from_p_alive(p.p_alive));
                assert!(p.next_order_days > 0.0 && p.next_order_days.is_finite());
            }
            assert!(widths > 0.0, "{model}: intervals have width");
            // A wider level gives wider intervals.
            let wide = predict(
                &pop,
                &PredictOptions {
                    interval_level: 0.99,
                    ..opts
                },
            )
            .expect("run");
            let (a, b) = (&run.predictions[10], &wide.predictions[10]);
            assert!(b.expected_purchases_90d_high > a.expected_purchases_90d_high);
            assert!(b.expected_purchases_90d_low < a.expected_purchases_90d_low);
            // One-time buyers: certainly alive under BG/NBD only.
            let one_time = run
                .predictions
                .iter()
                .find(|p| p.summary.frequency == 0.0)
                .expect("one-time buyer");
            assert_eq!(one_time.p_alive == 1.0, model == Model::BgNbd, "{model}");
        }
        let bad = PredictOptions {
            interval_level: 1.0,
            ..PredictOptions::default()
        };
        assert!(matches!(
            predict(&pop, &bad),
            Err(ClvError::InvalidOption(_))
        ));
    }

    #[test]
    fn next_order_date_adds_days_to_the_as_of_date() {
        let run = predict(&population(), &PredictOptions::default()).expect("run");
        let p = &run.predictions[4];
        let as_of = NaiveDate::from_ymd_opt(2024, 1, 31).expect("date");
        let d = p.next_order_date(as_of).expect("date");
        assert_eq!((d - as_of).num_days(), p.next_order_days.round() as i64);
        let json = serde_json::to_value(&run).expect("json");
        assert!(
            json["fit"]["params"]["bgnbd"]["alpha"].is_f64(),
            "{}",
            json["fit"]
        );
        assert_eq!(json["model"], "bgnbd");
    }

    #[test]
    fn without_spend_the_run_explains_why() {
        let pop: Vec<(String, Summary)> = population()
            .into_iter()
            .map(|(id, s)| (id, Summary { monetary: 0.0, ..s }))
            .collect();
        let run = predict(&pop, &PredictOptions::default()).expect("run");
        assert!(run.gamma_gamma.is_none() && run.clv_mean.is_none());
        assert!(run
            .gamma_gamma_reason
            .as_deref()
            .is_some_and(|r| r.contains("positive monetary")));
        assert!(run.predictions.iter().all(|p| p.clv.is_none()));
    }

    #[test]
    fn degenerate_input_is_an_error_never_nan() {
        let opts = PredictOptions::default();
        assert_eq!(predict(&[], &opts), Err(ClvError::NoCustomers));
        let one = [("a".to_string(), s(1.0, 1.0, 2.0, 3.0))];
        assert_eq!(predict(&one, &opts), Err(ClvError::SingleCustomer));
        let once = [
            ("a".to_string(), s(0.0, 0.0, 2.0, 0.0)),
            ("b".to_string(), s(0.0, 0.0, 5.0, 0.0)),
        ];
        assert_eq!(predict(&once, &opts), Err(ClvError::NoRepeatPurchases));
        let mut pop = population();
        pop[5].1.t = f64::INFINITY;
        assert!(matches!(
            predict(&pop, &opts),
            Err(ClvError::NonFinite { customer, .. }) if customer == "c5"
        ));
        let bad = PredictOptions {
            discount: f64::NAN,
            ..opts
        };
        assert!(predict(&population(), &bad).is_err());
    }
}
