//! Shop-level retention metrics over calendar periods: revenue, repeat-purchase rate, retention
//! and churn of the last complete period, new vs returning customers per period, and the cohort
//! retention matrix.
//!
//! Definitions (also in docs/cli.md): a customer is *active* in a period when they made a purchase
//! in it. For a period P with previous period P−1: S = customers active in P−1, N = customers
//! whose first purchase is in P, E = N + the customers of S still active in P; retention rate
//! CRR = (E − N) / S and churn = 1 − CRR. Customers who come back in P after skipping P−1 are
//! *reactivated*: counted separately, not in E, so the rate stays within 0–1.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::model::{date_of, day_of, from_minor, to_minor, Day, Minor, Order, OrderFact};

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
    /// Customers active in this period and in the previous one.
    pub retained_customers: u64,
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
    let mut by_customer: BTreeMap<&str, Vec<OrderFact>> = BTreeMap::new();
    for o in orders {
        by_customer
            .entry(&o.customer_id)
            .or_default()
            .push(OrderFact {
                day: o.day(),
                amount: to_minor(o.amount).unwrap_or(0),
                cancelled: o.is_return,
            });
    }
    let mut b = ShopStatsBuilder::new(as_of, period);
    for facts in by_customer.values() {
        b.add_customer(facts);
    }
    b.finish()
}

/// The shop's metrics folded customer by customer: memory grows with the number of periods, not
/// with customers or orders, so the store can stream a shop of any size through it.
#[derive(Debug, Clone)]
pub struct ShopStatsBuilder {
    as_of: NaiveDate,
    period: Period,
    cutoff: Day,
    last_complete: i64,
    customers: u64,
    repeaters: u64,
    orders: u64,
    returns: u64,
    revenue: Minor,
    purchase_revenue: Minor,
    repeat_revenue: Minor,
    /// Per period: purchases, net revenue, active customers, new customers, customers also
    /// active in the previous period.
    per_period: BTreeMap<i64, (u64, Minor, u64, u64, u64)>,
    /// Customers active in the period before the last complete one, and of them those active in
    /// the last complete one too.
    before_last: u64,
    kept: u64,
    /// (cohort, period) → active customers of the cohort.
    cohort_active: BTreeMap<(i64, i64), u64>,
}

impl ShopStatsBuilder {
    pub fn new(as_of: NaiveDate, period: Period) -> Self {
        Self {
            as_of,
            period,
            cutoff: day_of(as_of),
            last_complete: period.index(as_of) - 1,
            customers: 0,
            repeaters: 0,
            orders: 0,
            returns: 0,
            revenue: 0,
            purchase_revenue: 0,
            repeat_revenue: 0,
            per_period: BTreeMap::new(),
            before_last: 0,
            kept: 0,
            cohort_active: BTreeMap::new(),
        }
    }

    /// Adds one customer's orders (any order; those on or after the as-of date are ignored).
    pub fn add_customer(&mut self, facts: &[OrderFact]) {
        let mut active: Vec<i64> = Vec::new();
        let (mut purchases, mut spend) = (0u64, 0 as Minor);
        for f in facts.iter().filter(|f| f.day < self.cutoff) {
            let p = self.period.index(date_of(f.day));
            self.revenue += f.amount;
            let row = self.per_period.entry(p).or_default();
            row.1 += f.amount;
            if f.is_return() {
                self.returns += 1;
                continue;
            }
            row.0 += 1;
            purchases += 1;
            spend += f.amount;
            active.push(p);
        }
        self.orders += purchases;
        self.purchase_revenue += spend;
        if purchases == 0 {
            return;
        }
        active.sort_unstable();
        active.dedup();
        self.customers += 1;
        if purchases >= 2 {
            self.repeaters += 1;
            self.repeat_revenue += spend;
        }
        let first = active[0];
        self.per_period.entry(first).or_default().3 += 1;
        for (i, &p) in active.iter().enumerate() {
            let row = self.per_period.entry(p).or_default();
            row.2 += 1;
            if i > 0 && active[i - 1] == p - 1 {
                row.4 += 1;
            }
            *self.cohort_active.entry((first, p)).or_default() += 1;
        }
        let l = self.last_complete;
        if active.binary_search(&(l - 1)).is_ok() {
            self.before_last += 1;
            if active.binary_search(&l).is_ok() {
                self.kept += 1;
            }
        }
    }

    pub fn finish(self) -> ShopStats {
        let period = self.period;
        let (first, last) = match (
            self.per_period.keys().next(),
            self.per_period.keys().next_back(),
        ) {
            (Some(a), Some(b)) => (*a, *b),
            _ => (0, -1),
        };
        let get = |p: i64| self.per_period.get(&p).copied().unwrap_or_default();
        let periods: Vec<PeriodRow> = (first..=last)
            .map(|p| {
                let (orders, revenue, act, new, retained) = get(p);
                PeriodRow {
                    period: period.label(p),
                    active_customers: act,
                    new_customers: new,
                    returning_customers: act - new.min(act),
                    retained_customers: retained,
                    orders,
                    revenue: from_minor(revenue),
                }
            })
            .collect();
        let l = self.last_complete;
        let retention = (l > first && l <= last).then(|| {
            let s = self.before_last;
            let n = get(l).3;
            let e = self.kept + n;
            let crr = (s > 0).then(|| (e as f64 - n as f64) / s as f64);
            Retention {
                period: period.label(l),
                customers_at_start: s,
                customers_at_end: e,
                new_customers: n,
                reactivated_customers: get(l).2.saturating_sub(e),
                retention_rate: crr,
                churn_rate: crr.map(|c| 1.0 - c),
            }
        });
        let cohorts = self
            .per_period
            .iter()
            .filter(|(_, row)| row.3 > 0)
            .map(|(&c, row)| {
                let members = row.3;
                let retention = (c..=last)
                    .map(|p| {
                        self.cohort_active.get(&(c, p)).copied().unwrap_or(0) as f64
                            / members as f64
                    })
                    .collect();
                CohortRow {
                    cohort: period.label(c),
                    customers: members,
                    retention,
                }
            })
            .collect();
        let n_orders = self.orders;
        ShopStats {
            as_of: self.as_of,
            period,
            customers: self.customers,
            orders: n_orders,
            returns: self.returns,
            revenue: from_minor(self.revenue),
            average_order_value: if n_orders > 0 {
                from_minor(self.purchase_revenue) / n_orders as f64
            } else {
                0.0
            },
            repeat_purchase_rate: if self.customers > 0 {
                self.repeaters as f64 / self.customers as f64
            } else {
                0.0
            },
            repeat_revenue_share: if self.purchase_revenue != 0 {
                self.repeat_revenue as f64 / self.purchase_revenue as f64
            } else {
                0.0
            },
            retention,
            periods,
            cohorts,
        }
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
