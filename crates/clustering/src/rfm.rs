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

use std::cmp::Reverse;

use rayon::prelude::*;
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

/// Scores of `n` customers from `(key, index)` pairs sorted ascending (worst first, index breaking
/// key ties). With `share_ties`, customers with equal keys share the score of their mean rank;
/// otherwise every rank is scored on its own.
fn rank_scores<K: PartialEq>(sorted: &[(K, u32)], share_ties: bool) -> Vec<u8> {
    let n = sorted.len();
    let mut scores = vec![3u8; n];
    // ⌊5 · (mean rank + ½) / n⌋ + 1, with start + end = 2 · mean rank + 1 for ranks start..end.
    let score_of =
        |start: usize, end: usize| -> u8 { ((5 * (start + end)) / (2 * n) + 1).min(5) as u8 };
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        if share_ties {
            while end < n && sorted[end].0 == sorted[start].0 {
                end += 1;
            }
        }
        let s = score_of(start, end);
        for &(_, i) in &sorted[start..end] {
            scores[i as usize] = s;
        }
        start = end;
    }
    scores
}

/// A finite `f64` as a `u64` with the same order (`-0.0` and `0.0` equal).
fn ordered_bits(v: f64) -> u64 {
    let b = (v + 0.0).to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// Each customer's rank by id (ties, which only a caller with duplicate ids can create, by position).
fn id_ranks(customers: &[CustomerFeatures]) -> Vec<u32> {
    if customers
        .windows(2)
        .all(|w| w[0].customer_id < w[1].customer_id)
    {
        return (0..customers.len() as u32).collect();
    }
    let mut order: Vec<(&str, u32)> = customers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.customer_id.as_str(), i as u32))
        .collect();
    order.par_sort_unstable();
    let mut rank = vec![0u32; customers.len()];
    for (r, &(_, i)) in order.iter().enumerate() {
        rank[i as usize] = r as u32;
    }
    rank
}

/// Scores every customer and returns the boundaries that reproduce the scores.
///
/// Errors on a non-finite monetary value or on more than `u32::MAX` customers; an empty slice gives
/// empty scores.
pub fn score_customers(customers: &[CustomerFeatures]) -> Result<(Vec<RfmScores>, RfmBoundaries)> {
    if let Some(c) = customers.iter().find(|c| !c.monetary_total.is_finite()) {
        return Err(ClusteringError::NonFinite {
            customer_id: c.customer_id.clone(),
            feature: "monetary_total",
            value: c.monetary_total,
        });
    }
    if u32::try_from(customers.len()).is_err() {
        return Err(ClusteringError::InvalidParameter {
            name: "customers",
            reason: format!(
                "{} customers; at most {} can be scored at once",
                customers.len(),
                u32::MAX
            ),
        });
    }
    let idx = |i: usize| i as u32;
    // Recency: fewer days is better, so the worst (first) are the most days.
    let mut by_r: Vec<(Reverse<i64>, u32)> = customers
        .iter()
        .enumerate()
        .map(|(i, c)| (Reverse(c.recency_days), idx(i)))
        .collect();
    by_r.par_sort_unstable();
    let r = rank_scores(&by_r, true);
    drop(by_r);
    // Frequency: ties broken by customer id, so that they split evenly and reproducibly.
    let ids = id_ranks(customers);
    let mut by_f: Vec<((u32, u32), u32)> = customers
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.frequency, ids[i]), idx(i)))
        .collect();
    by_f.par_sort_unstable();
    let f = rank_scores(&by_f, false);
    drop(by_f);
    let mut by_m: Vec<(u64, u32)> = customers
        .iter()
        .enumerate()
        .map(|(i, c)| (ordered_bits(c.monetary_total), idx(i)))
        .collect();
    by_m.par_sort_unstable();
    let m = rank_scores(&by_m, true);
    drop(by_m);
    let scores: Vec<RfmScores> = (0..customers.len())
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
