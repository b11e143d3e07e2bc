//! Evaluation of an uplift ranking on campaigns left out of the fit: the Qini curve, its
//! coefficient and uplift@k.
//!
//! Members are sorted by predicted uplift, highest first. After the top `k` members, with
//! `n_t(k)`, `n_c(k)` treated and control members and `y_t(k)`, `y_c(k)` their outcomes (summed
//! conversions or revenue), the Qini value is `Q(k) = y_t(k) − y_c(k)·n_t(k)/n_c(k)` (the second
//! term 0 while no control member is among them). The curve is drawn as
//! `(k/N, Q(k)/N_t)` — at the end it reaches the measured average effect
//! `Y_t/N_t − Y_c/N_c`. Ties in the score are one step (the curve is linear across them), so a
//! constant score draws the straight line of a random ranking.
//!
//! The **Qini coefficient** is the area between the curve and that random line (trapezoids):
//! 0 for a random ranking, positive when the ranking puts the customers the campaign moves
//! first, negative when it puts them last. It is in the units of the outcome (conversion
//! probability, or revenue per member) times the population share.
//!
//! **uplift@k** is the treated conversion rate minus the control rate among the top `k` % by
//! predicted uplift.
//!
//! [`split_by_campaign`] holds whole campaigns out (never rows of a campaign that was fitted), so
//! the evaluation measures what the model says about a campaign it has not seen.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use crate::learner::{Example, UpliftModel};
use crate::UpliftError;

/// Which outcome is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Conversion,
    Revenue,
}

impl Outcome {
    fn of(self, e: &Example) -> f64 {
        match self {
            Self::Conversion => f64::from(u8::from(e.converted)),
            Self::Revenue => e.revenue,
        }
    }
}

/// One point of a Qini curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QiniPoint {
    /// Share of the members targeted (0–1).
    pub share: f64,
    /// Incremental outcome per treated member of the whole population, `Q(k)/N_t`.
    pub gain: f64,
    /// The random ranking's gain at this share.
    pub random: f64,
}

/// A Qini curve and its coefficient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Qini {
    /// The curve at every tie-group boundary (starts at (0, 0)).
    pub points: Vec<QiniPoint>,
    /// Area between the curve and the random line.
    pub coefficient: f64,
    /// The measured average effect over everyone, `Y_t/N_t − Y_c/N_c`.
    pub average_effect: f64,
}

impl Qini {
    /// The curve at `n + 1` evenly spaced shares (linear between its points), for display.
    pub fn sampled(&self, n: usize) -> Vec<QiniPoint> {
        let n = n.max(1);
        (0..=n)
            .map(|i| {
                let s = i as f64 / n as f64;
                let j = self.points.partition_point(|p| p.share < s);
                let gain = match (j.checked_sub(1).map(|k| self.points[k]), self.points.get(j)) {
                    (_, Some(b)) if b.share == s => b.gain,
                    (Some(a), Some(b)) => {
                        a.gain + (b.gain - a.gain) * (s - a.share) / (b.share - a.share)
                    }
                    (Some(a), None) => a.gain,
                    (None, Some(b)) => b.gain,
                    (None, None) => 0.0,
                };
                QiniPoint {
                    share: s,
                    gain,
                    random: s * self.average_effect,
                }
            })
            .collect()
    }
}

/// The Qini curve of `scores` (one per example; higher = target first) for `outcome`.
pub fn qini(examples: &[Example], scores: &[f64], outcome: Outcome) -> Qini {
    let n = examples.len().min(scores.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let n_t_all = examples[..n].iter().filter(|e| e.treated).count() as f64;
    let n_c_all = n as f64 - n_t_all;
    let sum = |treated: bool| -> f64 {
        examples[..n]
            .iter()
            .filter(|e| e.treated == treated)
            .map(|e| outcome.of(e))
            .sum()
    };
    let average_effect = if n_t_all > 0.0 && n_c_all > 0.0 {
        sum(true) / n_t_all - sum(false) / n_c_all
    } else {
        0.0
    };
    let mut points = vec![QiniPoint {
        share: 0.0,
        gain: 0.0,
        random: 0.0,
    }];
    let (mut nt, mut nc, mut yt, mut yc) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < n {
        let s = scores[order[i]];
        while i < n && scores[order[i]].total_cmp(&s).is_eq() {
            let e = &examples[order[i]];
            if e.treated {
                nt += 1.0;
                yt += outcome.of(e);
            } else {
                nc += 1.0;
                yc += outcome.of(e);
            }
            i += 1;
        }
        let q = if nc > 0.0 { yt - yc * nt / nc } else { yt };
        let share = i as f64 / n as f64;
        points.push(QiniPoint {
            share,
            gain: if n_t_all > 0.0 { q / n_t_all } else { 0.0 },
            random: share * average_effect,
        });
    }
    let mut coefficient = 0.0;
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        let da = a.gain - a.random;
        let db = b.gain - b.random;
        coefficient += (b.share - a.share) * (da + db) / 2.0;
    }
    Qini {
        points,
        coefficient,
        average_effect,
    }
}

/// Treated minus control conversion rate among the top `percent` % by score (None when one arm
/// is empty there).
pub fn uplift_at(examples: &[Example], scores: &[f64], percent: f64) -> Option<f64> {
    let n = examples.len().min(scores.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let k = ((percent.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
    let (mut nt, mut nc, mut yt, mut yc) = (0.0, 0.0, 0.0, 0.0);
    for &i in &order[..k.min(n)] {
        let e = &examples[i];
        let y = f64::from(u8::from(e.converted));
        if e.treated {
            nt += 1.0;
            yt += y;
        } else {
            nc += 1.0;
            yc += y;
        }
    }
    (nt > 0.0 && nc > 0.0).then(|| yt / nt - yc / nc)
}

/// The shares uplift@k is reported at, in percent.
pub const UPLIFT_AT: [f64; 4] = [10.0, 20.0, 30.0, 50.0];

/// uplift@k at one share.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UpliftAt {
    pub percent: f64,
    pub uplift: Option<f64>,
}

/// A model's evaluation on held-out campaigns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// The held-out campaigns, sorted.
    pub campaigns: Vec<String>,
    pub members: usize,
    pub treated: usize,
    pub control: usize,
    /// Qini of the conversion ranking.
    pub qini: Qini,
    /// Qini of the revenue ranking (by predicted revenue effect, revenue as the outcome).
    pub qini_revenue: Qini,
    pub uplift_at: Vec<UpliftAt>,
}

impl Evaluation {
    /// The same evaluation with each Qini curve resampled at `n + 1` evenly spaced shares (for
    /// storage and display: the full curve has a point per distinct score).
    pub fn compact(mut self, n: usize) -> Self {
        self.qini.points = self.qini.sampled(n);
        self.qini_revenue.points = self.qini_revenue.sampled(n);
        self
    }
}

/// Evaluates `model` on `held_out` examples.
pub fn evaluate(model: &UpliftModel, held_out: &[Example]) -> Evaluation {
    let effects: Vec<_> = held_out
        .iter()
        .map(|e| model.predict(&e.features))
        .collect();
    let conv: Vec<f64> = effects.iter().map(|e| e.conversion).collect();
    let rev: Vec<f64> = effects.iter().map(|e| e.revenue).collect();
    let mut campaigns: Vec<String> = held_out.iter().map(|e| e.campaign.clone()).collect();
    campaigns.sort_unstable();
    campaigns.dedup();
    let treated = held_out.iter().filter(|e| e.treated).count();
    Evaluation {
        campaigns,
        members: held_out.len(),
        treated,
        control: held_out.len() - treated,
        qini: qini(held_out, &conv, Outcome::Conversion),
        qini_revenue: qini(held_out, &rev, Outcome::Revenue),
        uplift_at: UPLIFT_AT
            .iter()
            .map(|&percent| UpliftAt {
                percent,
                uplift: uplift_at(held_out, &conv, percent),
            })
            .collect(),
    }
}

/// Splits examples into (fit, held out) by campaign: `share` of the campaigns (at least one, and
/// at least one left to fit), chosen by `seed`. An error with fewer than two campaigns.
pub fn split_by_campaign(
    examples: Vec<Example>,
    share: f64,
    seed: u64,
) -> Result<(Vec<Example>, Vec<Example>), UpliftError> {
    if !(share > 0.0 && share < 1.0) {
        return Err(UpliftError::InvalidOption(format!(
            "held-out share {share} is not between 0 and 1"
        )));
    }
    let mut campaigns: Vec<&str> = examples.iter().map(|e| e.campaign.as_str()).collect();
    campaigns.sort_unstable();
    campaigns.dedup();
    if campaigns.len() < 2 {
        return Err(UpliftError::NoHeldOut);
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    campaigns.shuffle(&mut rng);
    let k = ((share * campaigns.len() as f64).round() as usize).clamp(1, campaigns.len() - 1);
    let test: std::collections::HashSet<String> =
        campaigns[..k].iter().map(|s| s.to_string()).collect();
    let (held, fit): (Vec<Example>, Vec<Example>) = examples
        .into_iter()
        .partition(|e| test.contains(&e.campaign));
    Ok((fit, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(treated: bool, converted: bool) -> Example {
        Example {
            campaign: "c".into(),
            treated,
            features: vec![],
            converted,
            revenue: if converted { 10.0 } else { 0.0 },
        }
    }

    #[test]
    fn constant_scores_draw_the_random_line() {
        let xs: Vec<Example> = (0..100).map(|i| ex(i % 2 == 0, i % 3 == 0)).collect();
        let q = qini(&xs, &[1.0; 100], Outcome::Conversion);
        assert_eq!(q.points.len(), 2);
        assert!(q.coefficient.abs() < 1e-12);
    }

    #[test]
    fn hand_computed_qini_and_uplift_at() {
        // Scores put a persuadable pair first (treated converts, control does not), then a pair
        // where both convert, then one where neither does.
        let xs = vec![
            ex(true, true),
            ex(false, false),
            ex(true, true),
            ex(false, true),
            ex(true, false),
            ex(false, false),
        ];
        let scores = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0];
        let q = qini(&xs, &scores, Outcome::Conversion);
        // Average effect: treated 2/3, control 1/3.
        assert!((q.average_effect - 1.0 / 3.0).abs() < 1e-12);
        // After 2 members: Q = 1 − 0·1/1 = 1 → gain 1/3 at share 1/3.
        assert!((q.points[2].gain - 1.0 / 3.0).abs() < 1e-12);
        // After 4: Q = 2 − 1·2/2 = 1.
        assert!((q.points[4].gain - 1.0 / 3.0).abs() < 1e-12);
        assert!(q.coefficient > 0.0);
        assert_eq!(uplift_at(&xs, &scores, 34.0), Some(1.0));
        assert_eq!(uplift_at(&xs, &scores, 100.0), Some(1.0 / 3.0));
        // Reversed scores: the persuadable pair last, a negative area.
        let rev: Vec<f64> = scores.iter().map(|s| -s).collect();
        assert!(qini(&xs, &rev, Outcome::Conversion).coefficient < 0.0);
    }

    #[test]
    fn split_keeps_campaigns_whole() {
        let mut xs = Vec::new();
        for c in 0..5 {
            for i in 0..10 {
                let mut e = ex(i % 2 == 0, false);
                e.campaign = format!("c{c}");
                xs.push(e);
            }
        }
        let (fit, held) = split_by_campaign(xs, 0.4, 7).expect("split");
        let set = |v: &[Example]| {
            v.iter()
                .map(|e| e.campaign.clone())
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(set(&held).len(), 2);
        assert!(set(&fit).is_disjoint(&set(&held)));
        assert_eq!(fit.len() + held.len(), 50);
        let one: Vec<Example> = (0..10).map(|i| ex(i % 2 == 0, false)).collect();
        assert_eq!(split_by_campaign(one, 0.3, 1), Err(UpliftError::NoHeldOut));
    }
}
