//! Replenishment timing: how long a product lasts. Every customer who bought a product on more
//! than one day contributes the gaps between those days; a product's typical interval is the
//! median gap (at least `min_intervals` of them). A customer with enough repurchases of their own
//! (at least `min_own` gaps) is timed by their own median instead. A customer's due product is the
//! one whose next purchase (last purchase + interval) comes soonest, as of a day, among those not
//! overdue by more than one interval (long overdue means they stopped, not that they are about
//! to run out).

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::model::Line;
use crate::Day;

/// Collects repurchase gaps, customer by customer (first pass).
#[derive(Debug, Default)]
pub struct ReplenishmentBuilder {
    gaps: FxHashMap<i64, Vec<u32>>,
    scratch: Vec<(i64, Day)>,
}

/// Products' typical repurchase intervals.
#[derive(Debug, Clone, Default)]
pub struct Replenishment {
    interval: FxHashMap<i64, u32>,
    min_own: usize,
}

/// The product a customer is due to buy again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Due {
    pub product: i64,
    pub last_day: Day,
    /// The interval used (days): the customer's own median, else the product's.
    pub interval_days: u32,
    /// Whether `interval_days` is the customer's own.
    pub own: bool,
    /// Days from the as-of day to the due day (negative: overdue).
    pub days_until_due: i64,
}

/// Each product's distinct purchase days (kept purchases only), sorted by product then day.
fn purchase_days(lines: &[Line], scratch: &mut Vec<(i64, Day)>) {
    scratch.clear();
    scratch.extend(
        lines
            .iter()
            .filter(|l| !l.returned && l.quantity >= 0)
            .map(|l| (l.product, l.day)),
    );
    scratch.sort_unstable();
    scratch.dedup();
}

/// Gaps between consecutive days of one product's run in `days` (sorted (product, day)).
fn runs(days: &[(i64, Day)], mut f: impl FnMut(i64, &[(i64, Day)])) {
    let mut start = 0;
    for i in 1..=days.len() {
        if i == days.len() || days[i].0 != days[start].0 {
            f(days[start].0, &days[start..i]);
            start = i;
        }
    }
}

fn median(v: &mut [u32]) -> Option<u32> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable(mid);
    Some(*m)
}

impl ReplenishmentBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one customer's lines.
    pub fn add_customer(&mut self, lines: &[Line]) {
        let mut days = std::mem::take(&mut self.scratch);
        purchase_days(lines, &mut days);
        runs(&days, |product, run| {
            if run.len() > 1 {
                let g = self.gaps.entry(product).or_default();
                g.extend(run.windows(2).map(|w| (w[1].1 - w[0].1) as u32));
            }
        });
        self.scratch = days;
    }

    /// Each product's median gap, for products with at least `min_intervals` gaps; customers'
    /// own medians need `min_own` gaps.
    pub fn build(self, min_intervals: usize, min_own: usize) -> Replenishment {
        let interval = self
            .gaps
            .into_iter()
            .filter(|(_, g)| g.len() >= min_intervals.max(1))
            .filter_map(|(p, mut g)| median(&mut g).map(|m| (p, m.max(1))))
            .collect();
        Replenishment {
            interval,
            min_own: min_own.max(1),
        }
    }
}

impl Replenishment {
    /// A product's typical repurchase interval in days.
    pub fn interval(&self, product: i64) -> Option<u32> {
        self.interval.get(&product).copied()
    }

    /// Products with a known interval, sorted by product key.
    pub fn intervals(&self) -> Vec<(i64, u32)> {
        let mut v: Vec<(i64, u32)> = self.interval.iter().map(|(p, i)| (*p, *i)).collect();
        v.sort_unstable();
        v
    }

    /// The product `lines`' customer is due to buy again soonest as of `as_of`.
    pub fn due(&self, lines: &[Line], as_of: Day) -> Option<Due> {
        let mut days = Vec::new();
        purchase_days(lines, &mut days);
        let mut best: Option<Due> = None;
        runs(&days, |product, run| {
            let Some(last) = run.last().map(|d| d.1) else {
                return;
            };
            let mut own: Vec<u32> = run.windows(2).map(|w| (w[1].1 - w[0].1) as u32).collect();
            let (interval, is_own) = if own.len() >= self.min_own {
                match median(&mut own) {
                    Some(m) => (m.max(1), true),
                    None => return,
                }
            } else {
                match self.interval(product) {
                    Some(i) => (i, false),
                    None => return,
                }
            };
            let until = i64::from(last) + i64::from(interval) - i64::from(as_of);
            if until < -i64::from(interval) {
                return;
            }
            let cand = Due {
                product,
                last_day: last,
                interval_days: interval,
                own: is_own,
                days_until_due: until,
            };
            if best
                .is_none_or(|b| (cand.days_until_due, cand.product) < (b.days_until_due, b.product))
            {
                best = Some(cand);
            }
        });
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::line;

    #[test]
    fn typical_intervals_and_the_product_due_soonest() {
        let mut b = ReplenishmentBuilder::new();
        // Coffee (1) every 30 days by many customers; a filter (2) every 90.
        for c in 0..20 {
            let start = c * 3;
            b.add_customer(&[
                line(1, start),
                line(1, start + 30),
                line(1, start + 60),
                line(2, start),
                line(2, start + 90),
            ]);
        }
        // One-off purchases teach nothing.
        b.add_customer(&[line(3, 5)]);
        let r = b.build(3, 3);
        assert_eq!(r.interval(1), Some(30));
        assert_eq!(r.interval(2), Some(90));
        assert_eq!(r.interval(3), None);
        // Bought coffee on day 100, a filter on day 50: as of day 120, coffee is due in 10.
        let d = r.due(&[line(1, 100), line(2, 50)], 120).expect("due");
        assert_eq!((d.product, d.days_until_due, d.own), (1, 10, false));
        // A customer who buys coffee every 10 days is timed by their own history.
        let d = r
            .due(&[line(1, 0), line(1, 10), line(1, 20), line(1, 30)], 35)
            .expect("due");
        assert_eq!((d.interval_days, d.own, d.days_until_due), (10, true, 5));
        // Long overdue: stopped buying, nothing due.
        assert!(r.due(&[line(1, 0)], 200).is_none());
        // Returns are no purchases.
        let returned = Line {
            product: 1,
            day: 110,
            quantity: -1,
            returned: true,
        };
        let d = r.due(&[line(1, 100), returned], 120).expect("due");
        assert_eq!(d.last_day, 100);
    }
}
