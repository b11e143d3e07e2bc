//! Shop-level views of the dashboard computed from the store's aggregates: the month-to-month
//! retention trend, the recency × frequency grid, predicted vs actual purchases.

use std::collections::BTreeMap;

/// Label of a month index.
pub fn month_label(m: i32) -> String {
    format!("{}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1)
}

/// Per period: (label, share of the previous period's active customers active again). The share
/// of last month's buyers who bought again this month — retention — and one minus it, churn.
pub fn retention_trend(stats: &retain_core::metrics::ShopStats) -> Vec<(String, f64)> {
    stats
        .periods
        .windows(2)
        .filter(|w| w[0].active_customers > 0)
        .map(|w| {
            (
                w[1].period.clone(),
                w[1].retained_customers as f64 / w[0].active_customers as f64,
            )
        })
        .collect()
}

/// Rows of cells.
pub type Grid = Vec<Vec<f64>>;

/// Recency buckets (days since the last purchase) of the recency × frequency grid.
pub const RECENCY_BUCKETS: &[(i64, &str)] = &[
    (30, "≤ 30 d"),
    (90, "31–90 d"),
    (180, "91–180 d"),
    (365, "181–365 d"),
    (i64::MAX, "> 365 d"),
];
/// Frequency buckets (purchases).
pub const FREQUENCY_BUCKETS: &[(u32, &str)] = &[
    (1, "1"),
    (2, "2"),
    (4, "3–4"),
    (9, "5–9"),
    (u32::MAX, "10+"),
];

/// Recency × frequency grid as of the day after the last order: (customers, average revenue per
/// customer) per cell, rows by recency, columns by frequency.
pub fn rf_grid(feats: &[retain_core::CustomerFeatures]) -> Option<(Grid, Grid)> {
    if feats.is_empty() {
        return None;
    }
    let mut n = vec![vec![0.0; FREQUENCY_BUCKETS.len()]; RECENCY_BUCKETS.len()];
    let mut rev = vec![vec![0.0; FREQUENCY_BUCKETS.len()]; RECENCY_BUCKETS.len()];
    for f in feats {
        let r = RECENCY_BUCKETS
            .iter()
            .position(|(max, _)| f.recency_days <= *max)
            .unwrap_or(RECENCY_BUCKETS.len() - 1);
        let c = FREQUENCY_BUCKETS
            .iter()
            .position(|(max, _)| f.frequency <= *max)
            .unwrap_or(FREQUENCY_BUCKETS.len() - 1);
        n[r][c] += 1.0;
        rev[r][c] += f.monetary_total;
    }
    let avg = n
        .iter()
        .zip(&rev)
        .map(|(nr, rr)| {
            nr.iter()
                .zip(rr)
                .map(|(k, r)| if *k > 0.0 { r / k } else { f64::NAN })
                .collect()
        })
        .collect();
    Some((n, avg))
}

/// Predicted against actual purchases (distinct purchase days) in the 90 days from `as_of`, by
/// decile of the prediction: (labels, mean predicted, mean actual). `None` when the orders do not
/// cover those 90 days yet or there are fewer than ten customers.
pub fn predicted_vs_actual<K: std::hash::Hash + Eq>(
    actual: &std::collections::HashMap<K, u32>,
    predicted: &[(K, f64)],
) -> Option<(Vec<String>, Vec<f64>, Vec<f64>)> {
    if predicted.len() < 10 {
        return None;
    }
    let mut sorted: Vec<(f64, f64)> = predicted
        .iter()
        .filter(|(_, p)| p.is_finite())
        .map(|(c, p)| (*p, actual.get(c).copied().unwrap_or(0) as f64))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = sorted.len();
    let (mut labels, mut pred, mut act) = (Vec::new(), Vec::new(), Vec::new());
    for d in 0..10 {
        let part = &sorted[d * n / 10..(d + 1) * n / 10];
        if part.is_empty() {
            continue;
        }
        labels.push(format!("D{}", d + 1));
        pred.push(part.iter().map(|x| x.0).sum::<f64>() / part.len() as f64);
        act.push(part.iter().map(|x| x.1).sum::<f64>() / part.len() as f64);
    }
    Some((labels, pred, act))
}

/// Customers moving between segments from one run to the next: rows `from`, columns `to`
/// (`(none)` for customers only in one of the runs).
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

pub fn migration<'a>(
    before: impl IntoIterator<Item = (&'a str, &'a str)>,
    after: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Migration {
    const NONE: &str = "(none)";
    let before: BTreeMap<&str, &str> = before.into_iter().collect();
    let after: BTreeMap<&str, &str> = after.into_iter().collect();
    let mut cells: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for (c, a) in &before {
        *cells
            .entry((a, after.get(c).copied().unwrap_or(NONE)))
            .or_default() += 1;
    }
    for (c, b) in &after {
        if !before.contains_key(c) {
            *cells.entry((NONE, b)).or_default() += 1;
        }
    }
    let mut from: Vec<String> = cells.keys().map(|k| k.0.to_string()).collect();
    let mut to: Vec<String> = cells.keys().map(|k| k.1.to_string()).collect();
    from.dedup();
    to.sort();
    to.dedup();
    let counts = from
        .iter()
        .map(|f| {
            to.iter()
                .map(|t| cells.get(&(f.as_str(), t.as_str())).copied().unwrap_or(0))
                .collect()
        })
        .collect();
    Migration { from, to, counts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use retain_core::Order;

    fn o(c: &str, y: i32, m: u32, d: u32) -> Order {
        Order {
            order_id: format!("{c}{y}{m}{d}"),
            customer_id: c.into(),
            ordered_at: NaiveDate::from_ymd_opt(y, m, d)
                .expect("date")
                .and_hms_opt(12, 0, 0)
                .expect("time"),
            amount: 10.0,
            items: 1,
            is_return: false,
            currency: None,
            email: None,
            product: None,
        }
    }

    #[test]
    fn retention_trend_counts_last_months_buyers_who_return() {
        let orders = vec![
            o("a", 2024, 1, 5),
            o("b", 2024, 1, 6),
            o("c", 2024, 1, 7),
            o("d", 2024, 1, 8),
            o("a", 2024, 2, 1),
            o("e", 2024, 2, 2), // new: not retention
            o("a", 2024, 3, 1),
            o("e", 2024, 3, 3),
        ];
        let stats = |orders: &[Order]| {
            retain_core::metrics::shop_stats(
                orders,
                NaiveDate::from_ymd_opt(2024, 4, 1).expect("d"),
                retain_core::metrics::Period::Month,
            )
        };
        let t = retention_trend(&stats(&orders));
        assert_eq!(t.len(), 2);
        assert_eq!(t[0], ("2024-02".to_string(), 0.25));
        assert_eq!(t[1], ("2024-03".to_string(), 1.0));
        assert!(retention_trend(&stats(&[])).is_empty());
    }

    #[test]
    fn predicted_vs_actual_by_decile() {
        let mut actual = std::collections::HashMap::new();
        let mut preds = Vec::new();
        for i in 0..20i64 {
            // Customer i bought on i % 3 distinct days of the window.
            if i % 3 > 0 {
                actual.insert(i, (i % 3) as u32);
            }
            preds.push((i, i as f64));
        }
        assert!(
            predicted_vs_actual(&actual, &preds[..9]).is_none(),
            "too few customers for deciles"
        );
        let (labels, pred, act) = predicted_vs_actual(&actual, &preds).expect("deciles");
        assert_eq!(labels.len(), 10);
        // Decile 1 holds customers 0 and 1: predicted (0 + 1) / 2, actual (0 + 1) / 2 days.
        assert_eq!((pred[0], act[0]), (0.5, 0.5));
        // Decile 10 holds customers 18 and 19: actual (0 + 1) / 2.
        assert_eq!((pred[9], act[9]), (18.5, 0.5));
    }

    #[test]
    fn migration_counts_moves_arrivals_and_departures() {
        let m = migration(
            [("a", "loyal"), ("b", "loyal"), ("c", "at_risk")],
            [("a", "loyal"), ("b", "at_risk"), ("d", "new")],
        );
        assert_eq!(m.from, ["(none)", "at_risk", "loyal"]);
        assert_eq!(m.to, ["(none)", "at_risk", "loyal", "new"]);
        assert_eq!(
            m.counts[2],
            [0, 1, 1, 0],
            "loyal: b left for at_risk, a stayed"
        );
        assert_eq!(m.counts[1], [1, 0, 0, 0], "c is in no later segment");
        assert_eq!(m.counts[0], [0, 0, 0, 1], "d arrived as new");
        let total: u64 = m.counts.iter().flatten().sum();
        assert_eq!(total, 4);
    }

    #[test]
    fn rf_grid_places_customers() {
        let orders = vec![o("a", 2024, 3, 1), o("a", 2024, 3, 2), o("b", 2023, 1, 1)];
        let as_of = NaiveDate::from_ymd_opt(2024, 3, 3).expect("d");
        let feats = retain_core::features::customer_features(&orders, as_of);
        let (n, avg) = rf_grid(&feats).expect("grid");
        // As of 2024-03-03: a bought twice, 1 day ago; b once, > 365 days ago.
        assert_eq!(n[0][1], 1.0);
        assert_eq!(n[4][0], 1.0);
        assert_eq!(n.iter().flatten().sum::<f64>(), 2.0);
        assert!((avg[0][1] - 20.0).abs() < 1e-9);
        assert!(avg[1][1].is_nan());
    }
}
