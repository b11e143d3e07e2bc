//! The one-call API the CLI uses: fit both models on a set of customer summaries and predict,
//! per customer, P(alive), the expected purchases in the next 90 days and the CLV.
//!
//! The BG/NBD fit is required (its failure is the run's failure). The Gamma-Gamma fit is
//! optional: when it cannot be made (no repeat customer with a positive spend, a failed fit, or
//! `q <= 1` so that the mean spend is infinite) the run carries the reason and no CLV. Every
//! number that leaves this module is finite — a NaN or infinity is an error naming the customer.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bgnbd::{self, BgData, BgNbdFit};
use crate::clv::{check_clv_options, discounted_value, month_ends};
use crate::error::ClvError;
use crate::gamma_gamma::{self, GammaGammaFit, IndependenceCheck};
use crate::summary::{validate_for_fit, Period, Summary};

/// How [`predict`] should predict. The summaries passed with it must be in `period` units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PredictOptions {
    pub period: Period,
    /// CLV horizon in months (lifetimes' months: 30 days or 4.345 weeks).
    pub horizon_months: u32,
    /// Monthly discount rate.
    pub discount: f64,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self {
            period: Period::Week,
            horizon_months: 12,
            discount: 0.01,
        }
    }
}

/// What the models say about one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerPrediction {
    pub customer_id: String,
    pub summary: Summary,
    pub p_alive: f64,
    /// Expected purchases in the next 90 days.
    pub expected_purchases_90d: f64,
    /// Gamma-Gamma's expected average purchase value; `None` without a spend model.
    pub expected_average_profit: Option<f64>,
    /// Discounted value over the horizon; `None` without a spend model.
    pub clv: Option<f64>,
}

/// A complete prediction run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRun {
    pub options: PredictOptions,
    pub customers: usize,
    pub bgnbd: BgNbdFit,
    pub gamma_gamma: Option<GammaGammaFit>,
    /// Why there is no Gamma-Gamma model (and no CLV), when there is none.
    pub gamma_gamma_reason: Option<String>,
    /// Frequency–monetary correlation of the repeat customers (the spend model assumes none).
    pub independence: Option<IndependenceCheck>,
    pub predictions: Vec<CustomerPrediction>,
    pub p_alive_mean: f64,
    pub expected_purchases_90d_mean: f64,
    pub clv_mean: Option<f64>,
}

/// The predictions of one distinct summary.
struct Values {
    p_alive: f64,
    expected_purchases_90d: f64,
    profit: Option<f64>,
    clv: Option<f64>,
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

/// Fits BG/NBD (and Gamma-Gamma when possible) on `summaries` and predicts for every customer.
pub fn predict(
    summaries: &[(String, Summary)],
    options: &PredictOptions,
) -> Result<PredictionRun, ClvError> {
    check_clv_options(options.horizon_months, options.discount)?;
    validate_for_fit(summaries.iter().map(|(_, s)| s), |i| summaries[i].0.clone())?;
    let bgnbd = bgnbd::fit_validated(&BgData::new(summaries.iter().map(|(_, s)| s)))?;

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

    let bg = bgnbd.params;
    let horizon_90d = options.period.from_days(90.0);
    let gg = gamma_gamma.as_ref().map(|f| f.params);
    let months = if gg.is_some() {
        month_ends(options.period, options.horizon_months)
    } else {
        Vec::new()
    };

    // Identical summaries get identical predictions (every one-time buyer of the same first
    // day, for one): compute each distinct summary once, for the first customer who has it.
    let mut first_of: HashMap<[u64; 4], u32> = HashMap::with_capacity(summaries.len() / 2);
    let mut distinct: Vec<usize> = Vec::new();
    let slots: Vec<u32> = summaries
        .iter()
        .enumerate()
        .map(|(i, (_, s))| {
            let key = [s.frequency, s.recency, s.t, s.monetary].map(f64::to_bits);
            *first_of.entry(key).or_insert_with(|| {
                distinct.push(i);
                (distinct.len() - 1) as u32
            })
        })
        .collect();
    drop(first_of);
    let values: Vec<Values> = distinct
        .par_iter()
        .with_min_len(256)
        .map(|&i| {
            let (id, s) = &summaries[i];
            let p_alive = finite(bg.p_alive(s), id, "P(alive)")?;
            // One series pass for the 90-day horizon and every month end.
            let mut ts = Vec::with_capacity(months.len() + 1);
            ts.push(horizon_90d);
            ts.extend_from_slice(&months);
            let expected = bg.conditional_expected_purchases_many(&ts, s)?;
            let expected_purchases_90d = finite(expected[0], id, "expected purchases")?;
            let (profit, clv) = match &gg {
                Some(gg) => {
                    let profit = gg.conditional_expected_average_profit(s.frequency, s.monetary)?;
                    let profit = finite(profit, id, "expected average profit")?;
                    let clv = discounted_value(profit, &expected[1..], options.discount);
                    (Some(profit), Some(finite(clv, id, "CLV")?))
                }
                None => (None, None),
            };
            Ok(Values {
                p_alive,
                expected_purchases_90d,
                profit,
                clv,
            })
        })
        .collect::<Result<_, ClvError>>()?;
    let predictions: Vec<CustomerPrediction> = summaries
        .par_iter()
        .zip(slots.par_iter())
        .with_min_len(4096)
        .map(|((id, s), &slot)| {
            let v = &values[slot as usize];
            CustomerPrediction {
                customer_id: id.clone(),
                summary: *s,
                p_alive: v.p_alive,
                expected_purchases_90d: v.expected_purchases_90d,
                expected_average_profit: v.profit,
                clv: v.clv,
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
        bgnbd,
        gamma_gamma,
        gamma_gamma_reason,
        independence,
        predictions,
        p_alive_mean,
        expected_purchases_90d_mean,
        clv_mean,
    })
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
            assert_eq!(p.clv, Some(clv));
        }
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
