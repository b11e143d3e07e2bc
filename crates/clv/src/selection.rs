//! Choosing the purchase model by evidence (`retain predict --model auto`): fit BG/NBD, MBG/NBD
//! and Pareto/NBD on a calibration period, predict each customer's repeat purchases in the
//! holdout period that follows, and keep the model whose predictions were closest.
//!
//! Periods follow [`crate::validation`]: calibration is every purchase day up to and including
//! `calibration_end`, holdout is `calibration_end < day <= holdout_end`; customers whose first
//! purchase is after `calibration_end` are not scored.
//!
//! **Rule**: the lowest mean absolute error of the per-customer holdout purchases wins; models
//! within 0.5 % of the lowest MAE count as tied, and the tie goes to the smallest absolute error
//! of the cohort's total holdout purchases. A model whose fit fails is reported with its error and
//! not chosen. The evidence of every model (log-likelihood on the calibration period, holdout
//! MAE and RMSE, predicted vs actual total, predicted vs actual by decile of prediction) is
//! returned for the CLI to show.

use std::collections::HashMap;

use chrono::NaiveDate;
use rayon::prelude::*;
use retain_core::features::CustomerHistory;
use retain_core::model::{date_of, day_of};
use serde::{Deserialize, Serialize};

use crate::bgnbd::BgData;
use crate::error::ClvError;
use crate::model::{self, Model, ModelFit, ModelParams};
use crate::predict::{predict, PredictOptions, PredictionRun};
use crate::summary::{summarize, summarize_one, validate_for_fit, Period, Summary};

/// MAEs within this fraction of the best count as tied.
pub const MAE_TIE: f64 = 0.005;

/// One decile of customers ranked by predicted holdout purchases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecileRow {
    /// 1 (lowest predictions) … 10 (highest).
    pub decile: usize,
    pub customers: usize,
    pub predicted_mean: f64,
    pub actual_mean: f64,
}

/// How one model did on the holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEvidence {
    pub model: Model,
    /// The calibration-period fit; `None` when it failed (see `error`).
    pub fit: Option<ModelFit>,
    pub error: Option<String>,
    /// Calibration log-likelihood (comparable across models: same data, same unit).
    pub log_likelihood: Option<f64>,
    /// Mean absolute error of the per-customer holdout purchases.
    pub holdout_mae: Option<f64>,
    pub holdout_rmse: Option<f64>,
    pub predicted_total: Option<f64>,
    /// `predicted_total − actual_total`.
    pub total_error: Option<f64>,
    /// Predicted vs actual by decile of prediction: the calibration chart.
    pub deciles: Vec<DecileRow>,
}

/// The outcome of [`select_model`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSelection {
    pub period: Period,
    pub calibration_end: NaiveDate,
    pub holdout_end: NaiveDate,
    /// Holdout length in `period` units.
    pub holdout_length: f64,
    /// Customers scored (first purchase on or before `calibration_end`).
    pub customers: usize,
    /// Their distinct purchase days in the holdout.
    pub actual_total: f64,
    pub best: Model,
    /// The rule, in words.
    pub rule: String,
    /// Every model, in [`Model::ALL`] order.
    pub candidates: Vec<ModelEvidence>,
}

/// A default calibration end for `auto`: the holdout is the last third of the time from the
/// earliest first purchase to `as_of` (at least one day). `None` when that span is under three
/// days or there is no purchase on or before `as_of`.
pub fn default_calibration_end(
    histories: &[CustomerHistory],
    as_of: NaiveDate,
) -> Option<NaiveDate> {
    let end = day_of(as_of);
    let first = histories
        .iter()
        .filter_map(|h| h.purchase_days.first().map(|d| d.0))
        .filter(|&d| d <= end)
        .min()?;
    let span = end - first;
    if span < 3 {
        return None;
    }
    Some(date_of(end - (span / 3).max(1)))
}

/// Per-customer holdout predictions of `params` (each distinct `(x, t_x, T)` once).
fn holdout_predictions(
    params: &ModelParams,
    scored: &[(Summary, f64)],
    length: f64,
) -> Result<Vec<f64>, ClvError> {
    let mut first_of: HashMap<[u64; 3], u32> = HashMap::new();
    let mut distinct: Vec<usize> = Vec::new();
    let slots: Vec<u32> = scored
        .iter()
        .enumerate()
        .map(|(i, (s, _))| {
            let key = [s.frequency, s.recency, s.t].map(f64::to_bits);
            *first_of.entry(key).or_insert_with(|| {
                distinct.push(i);
                (distinct.len() - 1) as u32
            })
        })
        .collect();
    let values: Vec<f64> = distinct
        .par_iter()
        .with_min_len(64)
        .map(|&i| {
            let v = params.conditional_expected_purchases(length, &scored[i].0)?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(ClvError::NonFinitePrediction {
                    customer: format!("#{i}"),
                    what: "holdout purchases",
                })
            }
        })
        .collect::<Result<_, ClvError>>()?;
    Ok(slots.iter().map(|&k| values[k as usize]).collect())
}

fn deciles(predicted: &[f64], scored: &[(Summary, f64)]) -> Vec<DecileRow> {
    let mut order: Vec<usize> = (0..predicted.len()).collect();
    order.sort_by(|&a, &b| predicted[a].total_cmp(&predicted[b]));
    let n = order.len();
    (0..10)
        .filter_map(|d| {
            let (lo, hi) = (d * n / 10, (d + 1) * n / 10);
            let part = &order[lo..hi];
            if part.is_empty() {
                return None;
            }
            let k = part.len() as f64;
            Some(DecileRow {
                decile: d + 1,
                customers: part.len(),
                predicted_mean: part.iter().map(|&i| predicted[i]).sum::<f64>() / k,
                actual_mean: part.iter().map(|&i| scored[i].1).sum::<f64>() / k,
            })
        })
        .collect()
}

fn evidence(
    model: Model,
    data: &BgData,
    scored: &[(Summary, f64)],
    length: f64,
    actual_total: f64,
) -> ModelEvidence {
    let failed = |e: ClvError, fit: Option<ModelFit>| ModelEvidence {
        model,
        log_likelihood: fit.as_ref().map(|f| f.log_likelihood),
        fit,
        error: Some(e.to_string()),
        holdout_mae: None,
        holdout_rmse: None,
        predicted_total: None,
        total_error: None,
        deciles: Vec::new(),
    };
    let fit = match model::fit_validated(data, model) {
        Ok(f) => f,
        Err(e) => return failed(e, None),
    };
    let predicted = match holdout_predictions(&fit.params, scored, length) {
        Ok(p) => p,
        Err(e) => return failed(e, Some(fit)),
    };
    let n = scored.len() as f64;
    let (mut abs, mut sq, mut total) = (0.0, 0.0, 0.0);
    for (p, (_, a)) in predicted.iter().zip(scored) {
        abs += (p - a).abs();
        sq += (p - a) * (p - a);
        total += p;
    }
    ModelEvidence {
        model,
        log_likelihood: Some(fit.log_likelihood),
        fit: Some(fit),
        error: None,
        holdout_mae: Some(abs / n),
        holdout_rmse: Some((sq / n).sqrt()),
        predicted_total: Some(total),
        total_error: Some(total - actual_total),
        deciles: deciles(&predicted, scored),
    }
}

/// Fits each model on purchases up to `calibration_end` and scores it on
/// `(calibration_end, holdout_end]`; returns the evidence and the best model by the rule in the
/// module doc. `histories` must include the purchases dated `holdout_end`.
pub fn select_model(
    histories: &[CustomerHistory],
    calibration_end: NaiveDate,
    holdout_end: NaiveDate,
    period: Period,
) -> Result<ModelSelection, ClvError> {
    if holdout_end <= calibration_end {
        return Err(ClvError::InvalidOption(format!(
            "the holdout end ({holdout_end}) must be after the calibration end ({calibration_end})"
        )));
    }
    let (cal_day, end_day) = (day_of(calibration_end), day_of(holdout_end));
    let scored: Vec<(Summary, f64)> = histories
        .par_iter()
        .with_min_len(4096)
        .filter_map(|h| {
            let s = summarize_one(h, calibration_end, period)?;
            let actual = h
                .purchase_days
                .iter()
                .filter(|d| d.0 > cal_day && d.0 <= end_day)
                .count() as f64;
            Some((s, actual))
        })
        .collect();
    validate_for_fit(scored.iter().map(|r| &r.0), |i| format!("#{i}"))?;
    let data = BgData::new(scored.iter().map(|r| &r.0));
    let length = period.from_days(f64::from(end_day - cal_day));
    let actual_total: f64 = scored.iter().map(|r| r.1).sum();
    let candidates: Vec<ModelEvidence> = Model::ALL
        .iter()
        .map(|&m| evidence(m, &data, &scored, length, actual_total))
        .collect();
    let best_mae = candidates
        .iter()
        .filter_map(|c| c.holdout_mae)
        .fold(f64::INFINITY, f64::min);
    let best = candidates
        .iter()
        .filter(|c| {
            c.holdout_mae
                .is_some_and(|m| m <= best_mae * (1.0 + MAE_TIE))
        })
        .min_by(|a, b| {
            let e = |c: &ModelEvidence| c.total_error.map_or(f64::INFINITY, f64::abs);
            e(a).total_cmp(&e(b))
        })
        .map(|c| c.model);
    let Some(best) = best else {
        let reasons: Vec<String> = candidates
            .iter()
            .map(|c| {
                format!(
                    "{}: {}",
                    c.model.label(),
                    c.error.as_deref().unwrap_or("no score")
                )
            })
            .collect();
        return Err(ClvError::FitFailed {
            model: "every purchase model",
            reason: reasons.join("; "),
        });
    };
    Ok(ModelSelection {
        period,
        calibration_end,
        holdout_end,
        holdout_length: length,
        customers: scored.len(),
        actual_total,
        best,
        rule: format!(
            "lowest holdout MAE per customer; within {:.1} % of it, smallest |predicted − actual| \
             holdout total",
            MAE_TIE * 100.0
        ),
        candidates,
    })
}

/// `retain predict --model auto`: chooses the model with [`select_model`] on a
/// calibration/holdout split of the history up to `as_of` (`calibration_end`, or
/// [`default_calibration_end`]), then fits the chosen model on the whole history as of `as_of`
/// and predicts with it ([`predict`]); the run carries the evidence in
/// [`PredictionRun::selection`]. `options.model` is ignored. `histories` must include the
/// purchases dated `as_of`.
pub fn predict_auto(
    histories: &[CustomerHistory],
    as_of: NaiveDate,
    calibration_end: Option<NaiveDate>,
    options: &PredictOptions,
) -> Result<PredictionRun, ClvError> {
    let calibration_end = match calibration_end {
        Some(d) => d,
        None => default_calibration_end(histories, as_of).ok_or_else(|| {
            ClvError::InvalidOption(
                "too little history to split into calibration and holdout periods".into(),
            )
        })?,
    };
    let selection = select_model(histories, calibration_end, as_of, options.period)?;
    let summaries = summarize(histories, as_of, options.period);
    let chosen = PredictOptions {
        model: selection.best,
        ..*options
    };
    let mut run = predict(&summaries, &chosen)?;
    run.selection = Some(selection);
    Ok(run)
}
