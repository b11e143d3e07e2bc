//! Offline evaluation on a time split: the model learns from the lines dated before the split day
//! only (the builder drops every later line before it is stored), and is scored on what each
//! customer bought from that day on and had not bought before (a recommendation never repeats a
//! purchase, so those are the purchases it could have predicted). The popularity baseline — the
//! most-bought products the customer has not bought — is scored the same way on the same
//! customers.
//!
//! - hit rate@N: the share of evaluated customers with at least one later purchase among their N
//!   picks;
//! - recall@N: the mean over evaluated customers of (later purchases among the picks) / (later
//!   purchases, at most N);
//! - coverage: the share of the products known at training time that appear in anyone's picks.

use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::model::{Line, Model, ModelBuilder, Options, Pick};
use crate::Day;

/// Collects customers' lines for a time-split evaluation.
#[derive(Debug)]
pub struct Split {
    before: Day,
    builder: ModelBuilder,
    /// (customer, products bought from the split day on that they had not bought before).
    test: Vec<(i64, Vec<i64>)>,
    scratch: FxHashSet<i64>,
}

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluationReport {
    pub split_day: Day,
    /// Picks per customer (N).
    pub top: usize,
    pub customers_trained: u64,
    pub customers_evaluated: u64,
    pub products: u64,
    pub hit_rate_at_10: f64,
    pub recall_at_10: f64,
    pub coverage: f64,
    pub baseline_hit_rate_at_10: f64,
    pub baseline_recall_at_10: f64,
    pub baseline_coverage: f64,
}

impl Split {
    /// A split at `before`: lines dated before it train, lines on or after it test.
    pub fn new(before: Day, opts: Options) -> Self {
        Self {
            before,
            builder: ModelBuilder::new(Options {
                before: Some(before),
                ..opts
            }),
            test: Vec::new(),
            scratch: FxHashSet::default(),
        }
    }

    /// Adds one customer's lines (the builder keeps only those before the split).
    pub fn add_customer(&mut self, customer: i64, lines: &[Line]) {
        self.builder.add_customer(customer, lines);
        self.scratch.clear();
        for l in lines.iter().filter(|l| l.day < self.before) {
            self.scratch.insert(l.product);
        }
        let mut later: Vec<i64> = lines
            .iter()
            .filter(|l| l.day >= self.before && !l.returned && l.quantity >= 0)
            .map(|l| l.product)
            .filter(|p| !self.scratch.contains(p))
            .collect();
        later.sort_unstable();
        later.dedup();
        if !later.is_empty() {
            self.test.push((customer, later));
        }
    }

    /// Trains on the lines before the split and scores the `top` picks of every customer with
    /// later purchases, for the model and the popularity baseline. `unavailable`: products that
    /// may not be recommended.
    pub fn evaluate(self, top: usize, unavailable: &[i64]) -> EvaluationReport {
        let mut model = self.builder.build();
        model.set_unavailable(unavailable.iter().copied());
        let customers: Vec<i64> = self.test.iter().map(|(c, _)| *c).collect();
        let picks = model.recommend_many(&customers, top, true);
        let baseline = model.recommend_many(&customers, top, false);
        let (hit, recall, coverage) = score(&model, &self.test, &picks, top);
        let (bhit, brecall, bcoverage) = score(&model, &self.test, &baseline, top);
        EvaluationReport {
            split_day: self.before,
            top,
            customers_trained: model.customers().len() as u64,
            customers_evaluated: self.test.len() as u64,
            products: model.products().len() as u64,
            hit_rate_at_10: hit,
            recall_at_10: recall,
            coverage,
            baseline_hit_rate_at_10: bhit,
            baseline_recall_at_10: brecall,
            baseline_coverage: bcoverage,
        }
    }
}

/// Hit rate, recall and coverage of `picks` against the later purchases.
fn score(
    model: &Model,
    test: &[(i64, Vec<i64>)],
    picks: &[Vec<Pick>],
    top: usize,
) -> (f64, f64, f64) {
    if test.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut hits = 0u64;
    let mut recall = 0.0;
    let mut shown: FxHashSet<i64> = FxHashSet::default();
    for ((_, later), p) in test.iter().zip(picks) {
        let found = p
            .iter()
            .filter(|x| later.binary_search(&x.product).is_ok())
            .count();
        if found > 0 {
            hits += 1;
        }
        recall += found as f64 / later.len().min(top).max(1) as f64;
        shown.extend(p.iter().map(|x| x.product));
    }
    let n = test.len() as f64;
    let products = model.products().len().max(1) as f64;
    (hits as f64 / n, recall / n, shown.len() as f64 / products)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{line, planted};

    #[test]
    fn the_model_beats_popularity_on_the_planted_shop() {
        let data = planted(6000, 11);
        let mut split = Split::new(120, Options::default());
        for (c, l) in &data {
            split.add_customer(*c, l);
        }
        let r = split.evaluate(10, &[]);
        assert!(r.customers_evaluated > 500, "{r:?}");
        assert!(
            r.hit_rate_at_10 > r.baseline_hit_rate_at_10 + 0.2,
            "model {} vs baseline {}",
            r.hit_rate_at_10,
            r.baseline_hit_rate_at_10
        );
        assert!(r.recall_at_10 > r.baseline_recall_at_10);
        assert!(r.coverage > r.baseline_coverage);
    }

    #[test]
    fn nothing_after_the_split_reaches_training() {
        // Before the split, 1 and 2 go together; after it, everyone buys 1 with 3 and 4 with 5.
        // A leak would make 3 the partner of 1 and make 4 and 5 known products.
        let mut split = Split::new(100, Options::default());
        for c in 0..200 {
            let mut lines = vec![line(1, 10), line(2, 11)];
            if c % 2 == 0 {
                lines.extend([line(3, 100), line(4, 150), line(5, 151)]);
            }
            split.add_customer(c, &lines);
        }
        let model = split.builder.build();
        assert!(model.similarity(1, 2) > 0.0);
        assert_eq!(model.similarity(1, 3), 0.0);
        assert_eq!(model.similarity(4, 5), 0.0);
        for p in [3, 4, 5] {
            assert_eq!(model.buyers(p), 0, "product {p} was learned");
            assert!(!model.products().contains(&p));
        }
    }

    #[test]
    fn later_purchases_exclude_what_was_bought_before_and_returns() {
        let mut split = Split::new(100, Options::default());
        split.add_customer(
            1,
            &[
                line(1, 10),
                line(1, 120),
                line(2, 130),
                Line {
                    product: 3,
                    day: 140,
                    quantity: -1,
                    returned: true,
                },
            ],
        );
        assert_eq!(split.test, vec![(1, vec![2])]);
    }
}
