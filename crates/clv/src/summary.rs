//! The per-customer summary the CLV models are fitted on — frequency, recency, age and mean
//! repeat spend — built from purchase histories, with its time unit ([`Period`]) and validation.
//!
//! # The as-of convention: "as of D" includes D
//!
//! A summary as of date `D` takes in every purchase dated on or before `D` — orders placed on
//! `D` itself count — and measures ages to `D`: purchase days are points on the day axis, so the
//! first purchase day, the last one and `D` are compared day to day, which is the same as
//! measuring each from the end of its day. A customer first seen on `D` has `T = 0`; one who
//! bought last on `D` has `t_x = T`. This is exactly python `lifetimes`'
//! `summary_data_from_transaction_data(..., observation_period_end=D, freq='D')` (with
//! `freq_multiplier=7` for weeks): transactions `<= D` are kept and `T = (D − first) / unit`.
//! The CDNOW test (`tests/cdnow.rs`) checks that `summarize(CDNOW, 1997-09-30)` reproduces the
//! published summary for all 2,357 customers.
//!
//! Histories passed in must contain the purchases dated `D`: cut them after `D` (for
//! [`retain_core::features::histories`], whose cut-off is exclusive, pass `D + 1`), or not at
//! all — later purchases are ignored here.

use chrono::NaiveDate;
use rayon::prelude::*;
use retain_core::features::CustomerHistory;
use retain_core::model::day_of;
use serde::{Deserialize, Serialize};

use crate::error::ClvError;

/// The time unit of a summary and of every duration given to or returned by the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    #[default]
    Week,
}

impl Period {
    /// Days in one unit.
    pub fn days(self) -> f64 {
        match self {
            Period::Day => 1.0,
            Period::Week => 7.0,
        }
    }

    /// A number of days expressed in this unit.
    pub fn from_days(self, days: f64) -> f64 {
        days / self.days()
    }

    /// The length of a month in this unit as python lifetimes' `customer_lifetime_value` counts it
    /// (30 days, or 4.345 weeks), kept identical so that CLV figures agree with it.
    pub fn month(self) -> f64 {
        match self {
            Period::Day => 30.0,
            Period::Week => 4.345,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
        }
    }

    /// Parses `day`/`days`/`d` or `week`/`weeks`/`w`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "day" | "days" | "d" => Some(Period::Day),
            "week" | "weeks" | "w" => Some(Period::Week),
            _ => None,
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One customer as the BG/NBD and Gamma-Gamma models see them, in a [`Period`] unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `x`: distinct purchase days after the first one.
    pub frequency: f64,
    /// `t_x`: time from the first to the last purchase day.
    pub recency: f64,
    /// `T`: time from the first purchase day to the as-of date.
    #[serde(rename = "T")]
    pub t: f64,
    /// Mean value of the repeat purchase days (the first day excluded); 0 when `frequency` is 0.
    pub monetary: f64,
}

impl Summary {
    /// Checks what the likelihoods rely on: finite values, `frequency` a whole number ≥ 0,
    /// `0 <= recency <= T`. `customer` names the customer in the error.
    pub fn validate(&self, customer: &str) -> Result<(), ClvError> {
        self.check(|| customer.to_string())
    }

    /// [`Self::validate`] with the customer's name built only when there is an error.
    pub(crate) fn check(&self, customer: impl Fn() -> String) -> Result<(), ClvError> {
        for (field, value) in [
            ("frequency", self.frequency),
            ("recency", self.recency),
            ("T", self.t),
            ("monetary", self.monetary),
        ] {
            if !value.is_finite() {
                return Err(ClvError::NonFinite {
                    customer: customer(),
                    field,
                    value,
                });
            }
        }
        let invalid = |reason: String| ClvError::InvalidSummary {
            customer: customer(),
            reason,
        };
        if self.frequency < 0.0 || self.frequency.fract() != 0.0 {
            return Err(invalid(format!(
                "frequency must be a whole number >= 0, got {}",
                self.frequency
            )));
        }
        if self.recency < 0.0 {
            return Err(invalid(format!(
                "recency must be >= 0, got {}",
                self.recency
            )));
        }
        if self.recency > self.t {
            return Err(invalid(format!(
                "recency ({}) is larger than T ({})",
                self.recency, self.t
            )));
        }
        Ok(())
    }
}

/// Validates a set of summaries for fitting: at least two customers, all valid, at least one
/// repeat purchase. `name(i)` names the i-th customer in errors.
pub(crate) fn validate_for_fit<'a>(
    summaries: impl ExactSizeIterator<Item = &'a Summary>,
    name: impl Fn(usize) -> String,
) -> Result<(), ClvError> {
    match summaries.len() {
        0 => return Err(ClvError::NoCustomers),
        1 => return Err(ClvError::SingleCustomer),
        _ => {}
    }
    let mut any_repeat = false;
    for (i, s) in summaries.enumerate() {
        s.check(|| name(i))?;
        any_repeat |= s.frequency > 0.0;
    }
    if any_repeat {
        Ok(())
    } else {
        Err(ClvError::NoRepeatPurchases)
    }
}

/// Names customers by position when no id is known.
pub(crate) fn by_index(i: usize) -> String {
    format!("#{i}")
}

/// Summarises one history as of `as_of`, inclusive: purchase days after it are ignored, those on
/// it count; `None` when no purchase is left.
pub fn summarize_one(h: &CustomerHistory, as_of: NaiveDate, period: Period) -> Option<Summary> {
    let cutoff = day_of(as_of);
    let days: &[(i32, f64)] = {
        let end = h.purchase_days.partition_point(|d| d.0 <= cutoff);
        &h.purchase_days[..end]
    };
    let (first, _) = *days.first()?;
    let (last, _) = *days.last()?;
    let repeats = &days[1..];
    let monetary = if repeats.is_empty() {
        0.0
    } else {
        repeats.iter().map(|d| d.1).sum::<f64>() / repeats.len() as f64
    };
    let unit = period.days();
    Some(Summary {
        frequency: repeats.len() as f64,
        recency: f64::from(last - first) / unit,
        t: f64::from(cutoff - first) / unit,
        monetary,
    })
}

/// The summary of a customer's stored aggregate (which must hold only orders dated on or before
/// `as_of`), by the convention of [`summarize_one`]: `T` runs from the first purchase day to
/// `as_of`, and the monetary value is the mean of the repeat purchase days.
pub fn summarize_aggregate(
    a: &retain_core::CustomerAggregate,
    as_of: NaiveDate,
    period: Period,
) -> Summary {
    let unit = period.days();
    Summary {
        frequency: f64::from(a.purchase_days.saturating_sub(1)),
        recency: f64::from(a.last_day - a.first_day) / unit,
        t: f64::from(day_of(as_of) - a.first_day) / unit,
        monetary: a.repeat_day_mean(),
    }
}

/// Summaries of every history with a purchase on or before `as_of`, in the histories' order.
///
/// Histories from [`retain_core::features::histories`] are folded by day and sorted by customer
/// id; purchase days after `as_of` are ignored here, so histories cut at a later date (or not
/// at all) can be reused. See the module doc for the convention.
pub fn summarize(
    histories: &[CustomerHistory],
    as_of: NaiveDate,
    period: Period,
) -> Vec<(String, Summary)> {
    histories
        .par_iter()
        .with_min_len(4096)
        .filter_map(|h| summarize_one(h, as_of, period).map(|s| (h.customer_id.clone(), s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use retain_core::model::date_of;

    fn history(id: &str, days: &[(&str, f64)]) -> CustomerHistory {
        let purchase_days: Vec<(i32, f64)> = days
            .iter()
            .map(|(d, v)| {
                let date = NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("test date");
                (day_of(date), *v)
            })
            .collect();
        CustomerHistory {
            customer_id: id.into(),
            purchases: purchase_days.len() as u32,
            purchase_days,
            returns_total: 0.0,
        }
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    #[test]
    fn summary_counts_repeat_days_and_averages_repeat_spend() {
        let h = history(
            "a",
            &[
                ("2024-01-01", 10.0),
                ("2024-01-08", 20.0),
                ("2024-01-15", 40.0),
            ],
        );
        let s = summarize_one(&h, date("2024-01-29"), Period::Day).expect("summary");
        assert_eq!(s.frequency, 2.0);
        assert_eq!(s.recency, 14.0);
        assert_eq!(s.t, 28.0);
        assert_eq!(s.monetary, 30.0, "first day excluded from the mean");
        let w = summarize_one(&h, date("2024-01-29"), Period::Week).expect("summary");
        assert_eq!((w.frequency, w.recency, w.t), (2.0, 2.0, 4.0));
    }

    #[test]
    fn as_of_includes_its_own_day_and_later_days_are_ignored() {
        let h = history("a", &[("2024-01-01", 10.0), ("2024-01-10", 5.0)]);
        // The order on the as-of day counts, and T is measured to that day.
        let s = summarize_one(&h, date("2024-01-10"), Period::Day).expect("summary");
        assert_eq!(
            (s.frequency, s.recency, s.t, s.monetary),
            (1.0, 9.0, 9.0, 5.0)
        );
        let s = summarize_one(&h, date("2024-01-09"), Period::Day).expect("summary");
        assert_eq!(
            (s.frequency, s.recency, s.t, s.monetary),
            (0.0, 0.0, 8.0, 0.0)
        );
        // First seen on the as-of day: T = 0.
        let s = summarize_one(&h, date("2024-01-01"), Period::Day).expect("summary");
        assert_eq!((s.frequency, s.recency, s.t), (0.0, 0.0, 0.0));
        assert!(summarize_one(&h, date("2023-12-31"), Period::Day).is_none());
        let all = summarize(
            &[h.clone(), history("b", &[("2024-02-01", 1.0)])],
            date("2024-01-31"),
            Period::Day,
        );
        assert_eq!(all.len(), 1, "b has no purchase on or before as_of");
        assert_eq!(all[0].0, "a");
        assert_eq!(date_of(day_of(date("2024-01-11"))), date("2024-01-11"));
    }

    #[test]
    fn validation_rejects_what_the_likelihood_cannot_take() {
        let ok = Summary {
            frequency: 2.0,
            recency: 3.0,
            t: 5.0,
            monetary: 1.0,
        };
        assert!(ok.validate("a").is_ok());
        let bad = [
            Summary {
                frequency: f64::NAN,
                ..ok
            },
            Summary {
                t: f64::INFINITY,
                ..ok
            },
            Summary {
                frequency: -1.0,
                ..ok
            },
            Summary {
                frequency: 1.5,
                ..ok
            },
            Summary { recency: 6.0, ..ok },
            Summary {
                recency: -1.0,
                ..ok
            },
            Summary {
                monetary: f64::NAN,
                ..ok
            },
        ];
        for s in bad {
            assert!(s.validate("a").is_err(), "{s:?}");
        }
        assert_eq!(
            validate_for_fit([ok].iter(), by_index),
            Err(ClvError::SingleCustomer)
        );
        assert_eq!(
            validate_for_fit([].iter(), by_index),
            Err(ClvError::NoCustomers)
        );
        let once = Summary {
            frequency: 0.0,
            recency: 0.0,
            ..ok
        };
        assert_eq!(
            validate_for_fit([once, once].iter(), by_index),
            Err(ClvError::NoRepeatPurchases)
        );
        let nan = Summary {
            recency: f64::NAN,
            ..ok
        };
        assert!(matches!(
            validate_for_fit([ok, nan].iter(), by_index),
            Err(ClvError::NonFinite { customer, field: "recency", .. }) if customer == "#1"
        ));
    }

    #[test]
    fn period_parsing_and_units() {
        assert_eq!(Period::parse("Week"), Some(Period::Week));
        assert_eq!(Period::parse("d"), Some(Period::Day));
        assert_eq!(Period::parse("month"), None);
        assert_eq!(Period::Week.from_days(91.0), 13.0);
        assert_eq!(Period::Day.month(), 30.0);
    }
}
