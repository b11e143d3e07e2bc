//! RFM scores and the named RFM segments: quintile scores 1–5 for recency, frequency and monetary
//! value, the score boundaries that reproduce them for new customers, and the recency × frequency
//! map onto ten named segments.
//!
//! Scoring rules (score 5 is best: most recent, most frequent, highest spend):
//!
//! - **F** is ranked: customers are ordered by frequency with a deterministic tie-break (customer
//!   id), and rank `r` of `n` (0-based) scores `⌊5(2r+1)/(2n)⌋ + 1`. Equal frequencies therefore
//!   split evenly over the bins — most shops have a majority of one-time buyers, who would otherwise
//!   all share one score.
//! - **R** and **M** are binned by value: a group of customers with the same value takes the score of
//!   its mean rank, with the same formula. Equal values always get equal scores.
//! - **Fallback when values tie heavily:** bins are never invented, so a dimension can use fewer
//!   than five distinct scores (every customer equal → everyone scores 3; a value shared by half the
//!   customers → they all get the score of the middle of their rank range). With fewer than five
//!   customers the scores are spread symmetrically (`n = 1` → 3; `n = 2` → 2 and 4; `n = 3` →
//!   1, 3, 5). Nothing here can fail or panic on finite input; non-finite monetary values are
//!   rejected by [`score_customers`].
//!
//! [`RfmBoundaries`] records, per dimension and score, the range of training values that got it;
//! [`RfmBoundaries::score`] scores a new customer with them (a value inside a score's range gets that
//! score; for frequency, whose equal values span several scores, the lowest such score).

use std::cmp::Ordering;

use retain_core::CustomerFeatures;
use serde::{Deserialize, Serialize};

use crate::error::{ClusteringError, Result};

/// The ten named segments of the recency × frequency grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RfmSegment {
    Champions,
    LoyalCustomers,
    PotentialLoyalists,
    NewCustomers,
    Promising,
    NeedAttention,
    AboutToSleep,
    AtRisk,
    CantLoseThem,
    Hibernating,
}

impl RfmSegment {
    /// Every segment, in display order (best first).
    pub const ALL: [RfmSegment; 10] = [
        Self::Champions,
        Self::LoyalCustomers,
        Self::PotentialLoyalists,
        Self::NewCustomers,
        Self::Promising,
        Self::NeedAttention,
        Self::AboutToSleep,
        Self::AtRisk,
        Self::CantLoseThem,
        Self::Hibernating,
    ];

    /// The segment's display name, e.g. `"Can't Lose Them"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Champions => "Champions",
            Self::LoyalCustomers => "Loyal Customers",
            Self::PotentialLoyalists => "Potential Loyalists",
            Self::NewCustomers => "New Customers",
            Self::Promising => "Promising",
            Self::NeedAttention => "Need Attention",
            Self::AboutToSleep => "About To Sleep",
            Self::AtRisk => "At Risk",
            Self::CantLoseThem => "Can't Lose Them",
            Self::Hibernating => "Hibernating",
        }
    }

    /// The segment with this display name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Position in [`RfmSegment::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The segment of a recency score and a frequency score (each 1–5; values outside are clamped).
    ///
    /// | R \ F | 1 | 2 | 3 | 4 | 5 |
    /// |---|---|---|---|---|---|
    /// | 5 | New Customers | Potential Loyalists | Potential Loyalists | Champions | Champions |
    /// | 4 | Promising | Potential Loyalists | Potential Loyalists | Loyal Customers | Loyal Customers |
    /// | 3 | About To Sleep | About To Sleep | Need Attention | Loyal Customers | Loyal Customers |
    /// | 2 | Hibernating | Hibernating | At Risk | At Risk | Can't Lose Them |
    /// | 1 | Hibernating | Hibernating | At Risk | At Risk | Can't Lose Them |
    pub fn of(r: u8, f: u8) -> Self {
        use RfmSegment::*;
        // GRID[r - 1][f - 1]
        const GRID: [[RfmSegment; 5]; 5] = [
            [Hibernating, Hibernating, AtRisk, AtRisk, CantLoseThem],
            [Hibernating, Hibernating, AtRisk, AtRisk, CantLoseThem],
            [
                AboutToSleep,
                AboutToSleep,
                NeedAttention,
                LoyalCustomers,
                LoyalCustomers,
            ],
            [
                Promising,
                PotentialLoyalists,
                PotentialLoyalists,
                LoyalCustomers,
                LoyalCustomers,
            ],
            [
                NewCustomers,
                PotentialLoyalists,
                PotentialLoyalists,
                Champions,
                Champions,
            ],
        ];
        GRID[usize::from(r.clamp(1, 5)) - 1][usize::from(f.clamp(1, 5)) - 1]
    }
}

impl std::fmt::Display for RfmSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One customer's scores, each 1–5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RfmScores {
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

impl RfmScores {
    /// The named segment of these scores.
    pub fn segment(self) -> RfmSegment {
        RfmSegment::of(self.r, self.f)
    }
}

/// The training values that received one score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRange {
    pub score: u8,
    /// Customers with this score.
    pub customers: usize,
    /// Smallest and largest value with this score; `None` when no customer got it.
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Score ranges of one dimension, scores 1 to 5 in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionBoundaries {
    /// `true` when larger values score higher (F, M); `false` for recency (fewer days is better).
    pub higher_is_better: bool,
    pub ranges: Vec<ScoreRange>,
}

impl DimensionBoundaries {
    fn from_scores(values: &[f64], scores: &[u8], higher_is_better: bool) -> Self {
        let mut ranges: Vec<ScoreRange> = (1..=5)
            .map(|score| ScoreRange {
                score,
                customers: 0,
                min: None,
                max: None,
            })
            .collect();
        for (&v, &s) in values.iter().zip(scores) {
            let r = &mut ranges[usize::from(s.clamp(1, 5)) - 1];
            r.customers += 1;
            r.min = Some(r.min.map_or(v, |m| m.min(v)));
            r.max = Some(r.max.map_or(v, |m| m.max(v)));
        }
        Self {
            higher_is_better,
            ranges,
        }
    }

    /// The score of a new value: the lowest score whose range reaches it (from below when higher
    /// is better, from above for recency); values beyond every range get the best score that was
    /// used. Returns 3 when the boundaries hold no customer at all.
    pub fn score(&self, value: f64) -> u8 {
        let used = || self.ranges.iter().filter(|r| r.customers > 0);
        let hit = if self.higher_is_better {
            used().find(|r| r.max.is_some_and(|m| value <= m))
        } else {
            used().find(|r| r.min.is_some_and(|m| value >= m))
        };
        match hit.or_else(|| used().next_back()) {
            Some(r) => r.score,
            None => 3,
        }
    }
}

/// The score boundaries of a run: how recency, frequency and monetary values map to scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfmBoundaries {
    /// Recency in days (fewer is better).
    pub recency: DimensionBoundaries,
    /// Number of purchases.
    pub frequency: DimensionBoundaries,
    /// Net revenue.
    pub monetary: DimensionBoundaries,
}

impl RfmBoundaries {
    /// Scores a customer who was not part of the run.
    pub fn score(&self, c: &CustomerFeatures) -> RfmScores {
        RfmScores {
            r: self.recency.score(c.recency_days as f64),
            f: self.frequency.score(f64::from(c.frequency)),
            m: self.monetary.score(c.monetary_total),
        }
    }
}

/// Scores for `n` customers ordered by `cmp`: equal customers (by `cmp`) share the score of their
/// mean rank when `split_ties` is false; with `split_ties`, `cmp` must be a total order and ranks
/// are scored one by one.
fn rank_scores(
    n: usize,
    order: &mut [usize],
    cmp: impl Fn(usize, usize) -> Ordering,
    split_ties: bool,
) -> Vec<u8> {
    order.sort_by(|&a, &b| cmp(a, b));
    let mut scores = vec![3u8; n];
    let score_of = |rank_sum2: usize| -> u8 {
        // ⌊5 · (mean rank + ½) / n⌋ + 1 with rank_sum2 = 2·(mean rank) + 1, in integers.
        let s = (5 * rank_sum2) / (2 * n) + 1;
        s.min(5) as u8
    };
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        if !split_ties {
            while end < n && cmp(order[start], order[end]) == Ordering::Equal {
                end += 1;
            }
        }
        // Ranks start..end; 2·mean + 1 = start + end.
        let s = score_of(start + end);
        for &i in &order[start..end] {
            scores[i] = s;
        }
        start = end;
    }
    scores
}

/// Scores every customer and returns the boundaries that reproduce the scores.
///
/// Errors on a non-finite monetary value; an empty slice gives empty scores.
pub fn score_customers(customers: &[CustomerFeatures]) -> Result<(Vec<RfmScores>, RfmBoundaries)> {
    if let Some(c) = customers.iter().find(|c| !c.monetary_total.is_finite()) {
        return Err(ClusteringError::NonFinite {
            customer_id: c.customer_id.clone(),
            feature: "monetary_total",
            value: c.monetary_total,
        });
    }
    let n = customers.len();
    let mut order: Vec<usize> = (0..n).collect();
    // Recency: fewer days is better, so rank by descending days.
    let r = rank_scores(
        n,
        &mut order,
        |a, b| customers[b].recency_days.cmp(&customers[a].recency_days),
        false,
    );
    let f = rank_scores(
        n,
        &mut order,
        |a, b| {
            customers[a]
                .frequency
                .cmp(&customers[b].frequency)
                .then_with(|| customers[a].customer_id.cmp(&customers[b].customer_id))
                .then(a.cmp(&b))
        },
        true,
    );
    let m = rank_scores(
        n,
        &mut order,
        // Finite (checked above); partial_cmp also makes -0.0 equal to 0.0.
        |a, b| {
            customers[a]
                .monetary_total
                .partial_cmp(&customers[b].monetary_total)
                .unwrap_or(Ordering::Equal)
        },
        false,
    );
    let scores: Vec<RfmScores> = (0..n)
        .map(|i| RfmScores {
            r: r[i],
            f: f[i],
            m: m[i],
        })
        .collect();
    let recency: Vec<f64> = customers.iter().map(|c| c.recency_days as f64).collect();
    let frequency: Vec<f64> = customers.iter().map(|c| f64::from(c.frequency)).collect();
    let monetary: Vec<f64> = customers.iter().map(|c| c.monetary_total).collect();
    let boundaries = RfmBoundaries {
        recency: DimensionBoundaries::from_scores(&recency, &r, false),
        frequency: DimensionBoundaries::from_scores(&frequency, &f, true),
        monetary: DimensionBoundaries::from_scores(&monetary, &m, true),
    };
    Ok((scores, boundaries))
}
