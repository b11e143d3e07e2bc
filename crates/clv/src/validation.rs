//! Calibration/holdout validation of the BG/NBD model: fit on the history before a calibration
//! date, predict the repeat purchases of a later holdout window, and compare with what the
//! customers actually did — per customer, in total and by calibration frequency (0–6, 7+), the
//! table of Fader, Hardie & Lee (2005, figure 4).
//!
//! Dates follow the as-of convention of [`crate::summary`] (an end date includes its own day), as
//! lifetimes' `calibration_and_holdout_data` does: the calibration period is every purchase day
//! up to and including `calibration_end`, the holdout is `calibration_end < day <= holdout_end`,
//! and its length is `holdout_end − calibration_end`. Only customers whose first purchase falls
//! in the calibration period are scored.

use chrono::NaiveDate;
use rayon::prelude::*;
use retain_core::features::CustomerHistory;
use retain_core::model::day_of;
use serde::{Deserialize, Serialize};

use crate::bgnbd::{self, BgData, BgNbdFit};
use crate::error::ClvError;
use crate::summary::{summarize_one, validate_for_fit, Period, Summary};

/// Calibration frequency buckets: 0, 1, …, 6 and 7+.
pub const BUCKETS: usize = 8;

/// One customer's calibration summary, actual and predicted holdout repeat purchases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutRow {
    pub customer_id: String,
    pub calibration: Summary,
    /// Distinct purchase days in the holdout window.
    pub actual: f64,
    pub predicted: f64,
}

/// Actual vs predicted holdout purchases of the customers with one calibration frequency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketRow {
    /// `"0"` … `"6"`, `"7+"`.
    pub frequency: String,
    pub customers: usize,
    pub actual_total: f64,
    pub predicted_total: f64,
    /// Per customer; 0 for an empty bucket.
    pub actual_mean: f64,
    pub predicted_mean: f64,
}

/// The result of [`calibration_holdout`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutValidation {
    pub period: Period,
    pub calibration_end: NaiveDate,
    pub holdout_end: NaiveDate,
    /// Holdout length in `period` units.
    pub holdout_length: f64,
    pub fit: BgNbdFit,
    pub rows: Vec<HoldoutRow>,
    pub actual_total: f64,
    pub predicted_total: f64,
    pub mean_absolute_error: f64,
    pub rmse: f64,
    pub buckets: Vec<BucketRow>,
}

/// Fits BG/NBD on purchases up to `calibration_end` (inclusive) and scores its predictions for
/// the holdout window `(calibration_end, holdout_end]`.
pub fn calibration_holdout(
    histories_all: &[CustomerHistory],
    calibration_end: NaiveDate,
    holdout_end: NaiveDate,
    period: Period,
) -> Result<HoldoutValidation, ClvError> {
    if holdout_end <= calibration_end {
        return Err(ClvError::InvalidOption(format!(
            "the holdout end ({holdout_end}) must be after the calibration end ({calibration_end})"
        )));
    }
    let (cal_day, end_day) = (day_of(calibration_end), day_of(holdout_end));
    let scored: Vec<(&str, Summary, f64)> = histories_all
        .par_iter()
        .with_min_len(4096)
        .filter_map(|h| {
            let s = summarize_one(h, calibration_end, period)?;
            let actual = h
                .purchase_days
                .iter()
                .filter(|d| d.0 > cal_day && d.0 <= end_day)
                .count() as f64;
            Some((h.customer_id.as_str(), s, actual))
        })
        .collect();
    validate_for_fit(scored.iter().map(|r| &r.1), |i| scored[i].0.to_string())?;
    let fit = bgnbd::fit_validated(&BgData::new(scored.iter().map(|r| &r.1)))?;
    let holdout_length = period.from_days(f64::from(end_day - cal_day));
    let rows: Vec<HoldoutRow> = scored
        .par_iter()
        .map(|(id, s, actual)| {
            let predicted = fit
                .params
                .conditional_expected_purchases(holdout_length, s)?;
            if !predicted.is_finite() {
                return Err(ClvError::NonFinitePrediction {
                    customer: id.to_string(),
                    what: "holdout purchases",
                });
            }
            Ok(HoldoutRow {
                customer_id: id.to_string(),
                calibration: *s,
                actual: *actual,
                predicted,
            })
        })
        .collect::<Result<_, ClvError>>()?;

    let n = rows.len() as f64;
    let actual_total: f64 = rows.iter().map(|r| r.actual).sum();
    let predicted_total: f64 = rows.iter().map(|r| r.predicted).sum();
    let mean_absolute_error = rows
        .iter()
        .map(|r| (r.actual - r.predicted).abs())
        .sum::<f64>()
        / n;
    let rmse = (rows
        .iter()
        .map(|r| (r.actual - r.predicted).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let mut sums = [(0usize, 0.0f64, 0.0f64); BUCKETS];
    for r in &rows {
        let k = (r.calibration.frequency as usize).min(BUCKETS - 1);
        sums[k].0 += 1;
        sums[k].1 += r.actual;
        sums[k].2 += r.predicted;
    }
    let buckets = sums
        .iter()
        .enumerate()
        .map(|(k, &(count, actual, predicted))| {
            let per = |v: f64| if count == 0 { 0.0 } else { v / count as f64 };
            BucketRow {
                frequency: if k == BUCKETS - 1 {
                    format!("{k}+")
                } else {
                    k.to_string()
                },
                customers: count,
                actual_total: actual,
                predicted_total: predicted,
                actual_mean: per(actual),
                predicted_mean: per(predicted),
            }
        })
        .collect();
    Ok(HoldoutValidation {
        period,
        calibration_end,
        holdout_end,
        holdout_length,
        fit,
        rows,
        actual_total,
        predicted_total,
        mean_absolute_error,
        rmse,
        buckets,
    })
}
