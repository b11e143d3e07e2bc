//! Customer lifetime value: expected purchases (BG/NBD) × expected average profit (Gamma-Gamma),
//! month by month over a horizon, discounted.
//!
//! Computed exactly as python lifetimes' `customer_lifetime_value` does, so the figures can be
//! compared: for month `i = 1..=horizon`, the increment of the conditional expected purchases
//! between `(i−1)·M` and `i·M` (`M` = [`Period::month`], 30 days or 4.345 weeks) times the expected
//! average profit, divided by `(1 + discount)^i`.

use crate::bgnbd::BgNbdParams;
use crate::error::ClvError;
use crate::gamma_gamma::GammaGammaParams;
use crate::summary::{Period, Summary};

/// Checks a horizon and a monthly discount rate.
pub(crate) fn check_clv_options(horizon_months: u32, discount: f64) -> Result<(), ClvError> {
    if !(discount.is_finite() && discount >= 0.0) {
        return Err(ClvError::InvalidOption(format!(
            "the monthly discount rate must be a finite number >= 0, got {discount}"
        )));
    }
    if horizon_months > 1200 {
        return Err(ClvError::InvalidOption(format!(
            "a horizon of {horizon_months} months is beyond what the model can say (max 1200)"
        )));
    }
    Ok(())
}

/// The discounted value of `profit` per purchase over `horizon_months` for the customer `s`.
pub fn lifetime_value_with_profit(
    bg: &BgNbdParams,
    profit: f64,
    s: &Summary,
    period: Period,
    horizon_months: u32,
    discount: f64,
) -> Result<f64, ClvError> {
    check_clv_options(horizon_months, discount)?;
    let ts = month_ends(period, horizon_months);
    let cumulative = bg.conditional_expected_purchases_many(&ts, s)?;
    Ok(discounted_value(profit, &cumulative, discount))
}

/// The ends of months `1..=horizon_months`, in `period` units.
pub(crate) fn month_ends(period: Period, horizon_months: u32) -> Vec<f64> {
    (1..=horizon_months)
        .map(|i| f64::from(i) * period.month())
        .collect()
}

/// `Σ_i profit · (E_i − E_{i−1}) / (1 + discount)^i` over cumulative expected purchases `E_i` at
/// the ends of months `i = 1, 2, …`.
pub(crate) fn discounted_value(profit: f64, cumulative: &[f64], discount: f64) -> f64 {
    let mut previous = 0.0;
    let mut value = 0.0;
    let mut factor = 1.0;
    for &e in cumulative {
        factor *= 1.0 + discount;
        value += profit * (e - previous) / factor;
        previous = e;
    }
    value
}

/// CLV of the customer `s` over `horizon_months` at a monthly `discount` rate, in the currency of
/// the summaries' monetary values.
pub fn customer_lifetime_value(
    bg: &BgNbdParams,
    gg: &GammaGammaParams,
    s: &Summary,
    period: Period,
    horizon_months: u32,
    discount: f64,
) -> Result<f64, ClvError> {
    let profit = gg.conditional_expected_average_profit(s.frequency, s.monetary)?;
    lifetime_value_with_profit(bg, profit, s, period, horizon_months, discount)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BG: BgNbdParams = BgNbdParams {
        r: 0.242593,
        alpha: 4.413532,
        a: 0.792886,
        b: 2.425752,
    };
    const GG: GammaGammaParams = GammaGammaParams {
        p: 6.248802,
        q: 3.744588,
        v: 15.447748,
    };

    #[test]
    fn clv_without_discount_is_purchases_times_profit() {
        let s = Summary {
            frequency: 2.0,
            recency: 30.43,
            t: 38.86,
            monetary: 22.35,
        };
        let clv = customer_lifetime_value(&BG, &GG, &s, Period::Week, 12, 0.0).expect("clv");
        let purchases = BG
            .conditional_expected_purchases(12.0 * 4.345, &s)
            .expect("e");
        let profit = GG
            .conditional_expected_average_profit(2.0, 22.35)
            .expect("profit");
        assert!((clv - purchases * profit).abs() < 1e-9 * clv);
        let discounted =
            customer_lifetime_value(&BG, &GG, &s, Period::Week, 12, 0.01).expect("clv");
        assert!(discounted < clv && discounted > clv / 1.01f64.powi(12));
        assert_eq!(
            customer_lifetime_value(&BG, &GG, &s, Period::Week, 0, 0.01),
            Ok(0.0)
        );
    }

    #[test]
    fn day_and_week_units_agree_up_to_the_month_convention() {
        // A model fitted in days has α in days; the same customer in days. lifetimes' months are
        // 30 days but 4.345 weeks (30.415 days), so the two differ by that ratio only.
        let s_w = Summary {
            frequency: 3.0,
            recency: 20.0,
            t: 30.0,
            monetary: 40.0,
        };
        let s_d = Summary {
            recency: 140.0,
            t: 210.0,
            ..s_w
        };
        let bg_d = BgNbdParams {
            alpha: BG.alpha * 7.0,
            ..BG
        };
        let week = lifetime_value_with_profit(&BG, 1.0, &s_w, Period::Week, 1, 0.0).expect("w");
        let day = lifetime_value_with_profit(&bg_d, 1.0, &s_d, Period::Day, 1, 0.0).expect("d");
        let day_long = BG
            .conditional_expected_purchases(30.0 / 7.0, &s_w)
            .expect("e");
        assert!((day - day_long).abs() < 1e-12 && week > day);
    }

    #[test]
    fn bad_options_are_errors() {
        let s = Summary {
            frequency: 0.0,
            recency: 0.0,
            t: 10.0,
            monetary: 0.0,
        };
        assert!(customer_lifetime_value(&BG, &GG, &s, Period::Week, 12, f64::NAN).is_err());
        assert!(customer_lifetime_value(&BG, &GG, &s, Period::Week, 12, -0.1).is_err());
    }
}
