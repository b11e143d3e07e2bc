//! Shop-level retention metrics over calendar periods: revenue, repeat-purchase rate, retention
//! and churn of the last complete period, new vs returning customers per period, and the cohort
//! retention matrix.
//!
//! Definitions (also in docs/cli.md): a customer is *active* in a period when they made a purchase
//! in it. For a period P with previous period P−1: S = customers active in P−1, N = customers
//! whose first purchase is in P, E = N + the customers of S still active in P; retention rate
//! CRR = (E − N) / S and churn = 1 − CRR. Customers who come back in P after skipping P−1 are
//! *reactivated*: counted separately, not in E, so the rate stays within 0–1.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::model::{date_of, day_of, Order};

/// The calendar unit of periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Week,
    Month,
    Quarter,
}

impl Period {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            "quarter" => Some(Self::Quarter),
            _ => None,
        }
    }

    /// A sortable index of the period containing `d`.
    fn index(self, d: NaiveDate) -> i64 {
        match self {
            // ISO weeks start on Monday; 1970-01-05 was a Monday.
            Self::Week => (i64::from(day_of(d)) - 4).div_euclid(7),
            Self::Month => i64::from(d.year()) * 12 + i64::from(d.month0()),
            Self::Quarter => i64::from(d.year()) * 4 + i64::from(d.month0() / 3),
        }
    }

    fn start(self, index: i64) -> NaiveDate {
        match self {
            Self::Week => date_of((index * 7 + 4) as i32),
            Self::Month => ymd(index.div_euclid(12), index.rem_euclid(12) + 1),
            Self::Quarter => ymd(index.div_euclid(4), index.rem_euclid(4) * 3 + 1),
        }
    }

    /// A label such as `2024-03`, `2024-Q1` or `2024-03-04` (week start).
    fn label(self, index: i64) -> String {
        match self {
            Self::Week => self.start(index).format("%Y-%m-%d").to_string(),
            Self::Month => format!("{}-{:02}", index.div_euclid(12), index.rem_euclid(12) + 1),
            Self::Quarter => format!("{}-Q{}", index.div_euclid(4), index.rem_euclid(4) + 1),
        }
    }
}

fn ymd(y: i64, m: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(y as i32, m as u32, 1).unwrap_or(NaiveDate::MIN)
}

/// New and returning customers in one period: the acquisition/retention balance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodRow {
    pub period: String,
    pub active_customers: u64,
    pub new_customers: u64,
    pub returning_customers: u64,
    pub orders: u64,
    pub revenue: f64,
}

/// Retention of the last complete period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retention {
    pub period: String,
    pub customers_at_start: u64,
    pub customers_at_end: u64,
    pub new_customers: u64,
    /// Active in the period, not new, but not active in the previous one.
    pub reactivated_customers: u64,
    pub retention_rate: Option<f64>,
    pub churn_rate: Option<f64>,
}

/// One cohort (customers whose first purchase fell in `cohort`) and the share of them active in
/// each period since, starting with the first (always 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortRow {
    pub cohort: String,
    pub customers: u64,
    pub retention: Vec<f64>,
}

/// Everything `retain stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShopStats {
    pub as_of: NaiveDate,
    pub period: Period,
    pub customers: u64,
    pub orders: u64,
    pub returns: u64,
    /// Net revenue: purchases minus returns.
    pub revenue: f64,
    pub average_order_value: f64,
    /// Share of customers with two or more purchases.
    pub repeat_purchase_rate: f64,
    /// Share of purchase revenue from customers with two or more purchases.
    pub repeat_revenue_share: f64,
    pub retention: Option<Retention>,
    pub periods: Vec<PeriodRow>,
    pub cohorts: Vec<CohortRow>,
}

/// Computes the shop's metrics from orders strictly before `as_of`.
pub fn shop_stats(orders: &[Order], as_of: NaiveDate, period: Period) -> ShopStats {
    let cutoff = day_of(as_of);
    let mut purchases_by: HashMap<&str, (u32, f64)> = HashMap::new();
    let mut first_period: HashMap<&str, i64> = HashMap::new();
    let mut active: BTreeMap<i64, HashSet<&str>> = BTreeMap::new();
    let mut per_period: BTreeMap<i64, (u64, f64)> = BTreeMap::new();
    let (mut n_orders, mut returns, mut revenue, mut purchase_revenue) = (0u64, 0u64, 0.0, 0.0);
    for o in orders.iter().filter(|o| o.day() < cutoff) {
        revenue += o.amount;
        let p = period.index(o.ordered_at.date());
        per_period.entry(p).or_default().1 += o.amount;
        if o.is_return {
            returns += 1;
            continue;
        }
        n_orders += 1;
        purchase_revenue += o.amount;
        per_period.entry(p).or_default().0 += 1;
        let e = purchases_by.entry(&o.customer_id).or_default();
        e.0 += 1;
        e.1 += o.amount;
        first_period
            .entry(&o.customer_id)
            .and_modify(|f| *f = (*f).min(p))
            .or_insert(p);
        active.entry(p).or_default().insert(&o.customer_id);
    }
    let customers = purchases_by.len() as u64;
    let repeaters = purchases_by.values().filter(|(n, _)| *n >= 2).count() as u64;
    // Summed in order-list order (not hash order) so the figure is reproducible to the last bit.
    let repeat_rev: f64 = orders
        .iter()
        .filter(|o| o.day() < cutoff && !o.is_return)
        .filter(|o| {
            purchases_by
                .get(o.customer_id.as_str())
                .is_some_and(|(n, _)| *n >= 2)
        })
        .map(|o| o.amount)
        .sum();
    let mut new_by_period: HashMap<i64, u64> = HashMap::new();
    for p in first_period.values() {
        *new_by_period.entry(*p).or_default() += 1;
    }
    let (first, last) = match (per_period.keys().next(), per_period.keys().next_back()) {
        (Some(a), Some(b)) => (*a, *b),
        _ => (0, -1),
    };
    let periods: Vec<PeriodRow> = (first..=last)
        .map(|p| {
            let act = active.get(&p).map_or(0, |s| s.len() as u64);
            let new = new_by_period.get(&p).copied().unwrap_or(0);
            let (orders, revenue) = per_period.get(&p).copied().unwrap_or((0, 0.0));
            PeriodRow {
                period: period.label(p),
                active_customers: act,
                new_customers: new,
                returning_customers: act - new.min(act),
                orders,
                revenue,
            }
        })
        .collect();
    // The last complete period: the one before as_of's, unless as_of starts a period.
    let as_of_p = period.index(as_of);
    let last_complete = as_of_p - 1;
    let retention = (last_complete > first && last_complete <= last).then(|| {
        let empty = HashSet::new();
        let prev = active.get(&(last_complete - 1)).unwrap_or(&empty);
        let now = active.get(&last_complete).unwrap_or(&empty);
        let s = prev.len() as u64;
        let kept = prev.iter().filter(|c| now.contains(*c)).count() as u64;
        let n = new_by_period.get(&last_complete).copied().unwrap_or(0);
        let e = kept + n;
        let crr = (s > 0).then(|| (e as f64 - n as f64) / s as f64);
        Retention {
            period: period.label(last_complete),
            customers_at_start: s,
            customers_at_end: e,
            new_customers: n,
            reactivated_customers: (now.len() as u64).saturating_sub(e),
            retention_rate: crr,
            churn_rate: crr.map(|c| 1.0 - c),
        }
    });
    let mut cohort_members: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for (c, p) in &first_period {
        cohort_members.entry(*p).or_default().push(c);
    }
    let cohorts = cohort_members
        .into_iter()
        .map(|(c, members)| {
            let retention = (c..=last)
                .map(|p| {
                    let act = active.get(&p);
                    let n = act.map_or(0, |a| members.iter().filter(|m| a.contains(*m)).count());
                    n as f64 / members.len() as f64
                })
                .collect();
            CohortRow {
                cohort: period.label(c),
                customers: members.len() as u64,
                retention,
            }
        })
        .collect();
    ShopStats {
        as_of,
        period,
        customers,
        orders: n_orders,
        returns,
        revenue,
        average_order_value: if n_orders > 0 {
            purchase_revenue / n_orders as f64
        } else {
            0.0
        },
        repeat_purchase_rate: if customers > 0 {
            repeaters as f64 / customers as f64
        } else {
            0.0
        },
        repeat_revenue_share: if purchase_revenue.abs() > 0.0 {
            repeat_rev / purchase_revenue
        } else {
            0.0
        },
        retention,
        periods,
        cohorts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;

    fn o(c: &str, d: &str, amount: f64) -> Order {
        Order {
            order_id: format!("{c}{d}{amount}"),
            customer_id: c.into(),
            ordered_at: NaiveDateTime::parse_from_str(&format!("{d} 10:00"), "%Y-%m-%d %H:%M")
                .expect("d"),
            amount,
            items: 1,
            is_return: amount < 0.0,
            currency: None,
            email: None,
            product: None,
        }
    }

    #[test]
    fn retention_cohorts_and_repeat_rate() {
        // Jan: a, b, c new. Feb: a returns, d new. Mar: a, b return, e new; c returns something.
        let orders = vec![
            o("a", "2024-01-03", 10.0),
            o("b", "2024-01-10", 20.0),
            o("c", "2024-01-20", 30.0),
            o("a", "2024-02-03", 10.0),
            o("d", "2024-02-13", 5.0),
            o("a", "2024-03-03", 10.0),
            o("b", "2024-03-05", 20.0),
            o("e", "2024-03-09", 1.0),
            o("c", "2024-03-09", -30.0),
        ];
        let as_of = NaiveDate::from_ymd_opt(2024, 4, 1).expect("d");
        let s = shop_stats(&orders, as_of, Period::Month);
        assert_eq!(s.customers, 5);
        assert_eq!(s.orders, 8);
        assert_eq!(s.returns, 1);
        assert!((s.revenue - 76.0).abs() < 1e-9);
        assert!((s.repeat_purchase_rate - 2.0 / 5.0).abs() < 1e-9);
        assert!((s.repeat_revenue_share - 70.0 / 106.0).abs() < 1e-9);
        let r = s.retention.expect("march is complete");
        assert_eq!(r.period, "2024-03");
        // S = Feb actives {a, d}; Mar actives {a, b, e}: a kept, e new, b reactivated.
        // E = kept + N = 2 → (2 − 1) / 2 = 0.5
        assert_eq!(
            (r.customers_at_start, r.customers_at_end, r.new_customers),
            (2, 2, 1)
        );
        assert_eq!(r.reactivated_customers, 1);
        assert_eq!(r.retention_rate, Some(0.5));
        assert_eq!(r.churn_rate, Some(0.5));
        assert_eq!(s.periods.len(), 3);
        assert_eq!(s.periods[1].new_customers, 1);
        assert_eq!(s.periods[1].returning_customers, 1);
        let jan = &s.cohorts[0];
        assert_eq!(jan.cohort, "2024-01");
        assert_eq!(jan.customers, 3);
        assert_eq!(jan.retention.len(), 3);
        assert!((jan.retention[1] - 1.0 / 3.0).abs() < 1e-9);
        assert!((jan.retention[2] - 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn incomplete_last_period_is_not_used_and_empty_is_fine() {
        let orders = vec![o("a", "2024-01-03", 10.0), o("a", "2024-02-03", 10.0)];
        let s = shop_stats(
            &orders,
            NaiveDate::from_ymd_opt(2024, 2, 4).expect("d"),
            Period::Month,
        );
        assert!(
            s.retention.is_none(),
            "only January is complete and it has no previous month"
        );
        let e = shop_stats(
            &[],
            NaiveDate::from_ymd_opt(2024, 2, 4).expect("d"),
            Period::Month,
        );
        assert_eq!(e.customers, 0);
        assert!(e.periods.is_empty());
    }

    #[test]
    fn period_labels() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 6).expect("d");
        assert_eq!(Period::Month.label(Period::Month.index(d)), "2024-03");
        assert_eq!(Period::Quarter.label(Period::Quarter.index(d)), "2024-Q1");
        assert_eq!(Period::Week.label(Period::Week.index(d)), "2024-03-04");
    }
}
