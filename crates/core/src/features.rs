//! Per-customer purchase histories and the features derived from them (recency, frequency,
//! monetary, tenure), as of a date.
//!
//! Everything here is computed from [`Order`]s alone; orders after the as-of date are ignored, so
//! a calibration period can be cut from a longer history. Returns reduce a customer's revenue but
//! never count as a purchase.

use std::collections::HashMap;

use chrono::NaiveDate;
use rayon::prelude::*;

use crate::model::{date_of, day_of, from_minor, CustomerFeatures, Day, Order, OrderFact};

/// A customer's purchases folded by day: what both RFM and the CLV models need.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerHistory {
    pub customer_id: String,
    /// Purchase days in ascending order with the day's purchase value (returns excluded).
    pub purchase_days: Vec<(Day, f64)>,
    /// Number of purchase orders (several on one day count separately).
    pub purchases: u32,
    /// Sum of returns on or before the as-of date (zero or negative).
    pub returns_total: f64,
}

impl CustomerHistory {
    pub fn first_day(&self) -> Option<Day> {
        self.purchase_days.first().map(|d| d.0)
    }
    pub fn last_day(&self) -> Option<Day> {
        self.purchase_days.last().map(|d| d.0)
    }
    /// Purchase value plus returns.
    pub fn net_revenue(&self) -> f64 {
        self.purchase_days.iter().map(|d| d.1).sum::<f64>() + self.returns_total
    }

    /// A customer's history from their stored orders (any order), keeping those before `cutoff`
    /// (all when `None`); `None` when no purchase is left.
    pub fn from_facts(customer_id: &str, facts: &[OrderFact], cutoff: Option<Day>) -> Option<Self> {
        let cut = cutoff.unwrap_or(Day::MAX);
        let mut days: Vec<(Day, f64)> = Vec::new();
        let mut purchases = 0u32;
        let mut returns_total = 0.0;
        for f in facts.iter().filter(|f| f.day < cut) {
            if f.is_return() {
                returns_total -= from_minor(f.amount.abs());
            } else {
                purchases += 1;
                days.push((f.day, from_minor(f.amount)));
            }
        }
        if days.is_empty() {
            return None;
        }
        Some(Self {
            customer_id: customer_id.to_string(),
            purchase_days: fold_days(days),
            purchases,
            returns_total,
        })
    }
}

/// Sorts purchase (day, value)s and adds up the values of each day, in place.
pub(crate) fn fold_days(mut days: Vec<(Day, f64)>) -> Vec<(Day, f64)> {
    days.sort_unstable_by_key(|d| d.0);
    days.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 += later.1;
        }
        same
    });
    days
}

/// The default as-of date: the day after the last order (purchase or return).
pub fn default_as_of(orders: &[Order]) -> Option<NaiveDate> {
    let last = orders.iter().map(Order::day).max()?;
    Some(date_of(last + 1))
}

/// Groups orders by customer, keeping those strictly before `as_of` (all when `None`).
///
/// Customers with returns only (no purchase) are dropped: they have no first purchase.
/// The result is sorted by customer id, so it is deterministic.
pub fn histories(orders: &[Order], as_of: Option<NaiveDate>) -> Vec<CustomerHistory> {
    let cutoff = as_of.map(day_of).unwrap_or(Day::MAX);
    // Per customer: purchase (day, value)s, purchase count, returns total.
    type Acc = (Vec<(Day, f64)>, u32, f64);
    let mut by_customer: HashMap<&str, Acc> = HashMap::new();
    for o in orders {
        let day = o.day();
        if day >= cutoff {
            continue;
        }
        let entry = by_customer.entry(o.customer_id.as_str()).or_default();
        if o.is_return {
            entry.2 -= o.amount.abs();
        } else {
            entry.0.push((day, o.amount));
            entry.1 += 1;
        }
    }
    let mut out: Vec<CustomerHistory> = by_customer
        .into_par_iter()
        .filter(|(_, (days, _, _))| !days.is_empty())
        .map(|(id, (days, purchases, returns_total))| CustomerHistory {
            customer_id: id.to_string(),
            purchase_days: fold_days(days),
            purchases,
            returns_total,
        })
        .collect();
    out.par_sort_unstable_by(|a, b| a.customer_id.cmp(&b.customer_id));
    out
}

/// Recency, frequency, monetary and tenure of one history as of `as_of`.
pub fn features_of(h: &CustomerHistory, as_of: NaiveDate) -> Option<CustomerFeatures> {
    let first = h.first_day()?;
    let last = h.last_day()?;
    let as_of = day_of(as_of);
    let monetary_total = h.net_revenue();
    Some(CustomerFeatures {
        customer_id: h.customer_id.clone(),
        first_order: date_of(first),
        last_order: date_of(last),
        recency_days: i64::from(as_of - last),
        frequency: h.purchases,
        repeat_purchases: (h.purchase_days.len() as u32).saturating_sub(1),
        monetary_total,
        avg_order_value: monetary_total / f64::from(h.purchases.max(1)),
        tenure_days: i64::from(as_of - first),
    })
}

/// Features of every customer with at least one purchase before `as_of`, sorted by customer id.
pub fn customer_features(orders: &[Order], as_of: NaiveDate) -> Vec<CustomerFeatures> {
    histories(orders, Some(as_of))
        .par_iter()
        .filter_map(|h| features_of(h, as_of))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;

    fn order(id: &str, cust: &str, date: &str, amount: f64) -> Order {
        let ordered_at =
            NaiveDateTime::parse_from_str(&format!("{date} 12:00:00"), "%Y-%m-%d %H:%M:%S")
                .expect("test date");
        Order {
            order_id: id.into(),
            customer_id: cust.into(),
            ordered_at,
            amount,
            items: 1,
            is_return: amount < 0.0,
            currency: None,
            email: None,
            product: None,
        }
    }

    #[test]
    fn rfm_counts_purchases_days_and_returns() {
        let orders = vec![
            order("1", "a", "2024-01-01", 10.0),
            order("2", "a", "2024-01-01", 5.0),
            order("3", "a", "2024-01-11", 20.0),
            order("4", "a", "2024-01-12", -4.0),
            order("5", "b", "2024-01-05", 7.0),
            order("6", "c", "2024-01-05", -7.0),
            order("7", "a", "2024-03-01", 99.0),
        ];
        let as_of = NaiveDate::from_ymd_opt(2024, 1, 21).expect("date");
        let f = customer_features(&orders, as_of);
        assert_eq!(f.len(), 2, "return-only customer c has no features");
        let a = &f[0];
        assert_eq!(a.customer_id, "a");
        assert_eq!(a.frequency, 3);
        assert_eq!(a.repeat_purchases, 1);
        assert!((a.monetary_total - 31.0).abs() < 1e-9);
        assert!((a.avg_order_value - 31.0 / 3.0).abs() < 1e-9);
        assert_eq!(a.recency_days, 10);
        assert_eq!(a.tenure_days, 20);
        assert_eq!(f[1].recency_days, 16);
    }

    #[test]
    fn default_as_of_is_day_after_last_order() {
        let orders = vec![
            order("1", "a", "2024-01-01", 1.0),
            order("2", "b", "2024-02-29", 1.0),
        ];
        assert_eq!(default_as_of(&orders), NaiveDate::from_ymd_opt(2024, 3, 1));
        assert_eq!(default_as_of(&[]), None);
    }

    #[test]
    fn day_round_trip() {
        let d = NaiveDate::from_ymd_opt(1997, 9, 30).expect("date");
        assert_eq!(date_of(day_of(d)), d);
        assert_eq!(
            day_of(NaiveDate::from_ymd_opt(1970, 1, 1).expect("date")),
            0
        );
    }
}
