//! A/B variants of a campaign: the seeded, segment-stratified split of a campaign's audience
//! between its variants, and the fixed-horizon power analysis that fixes the test's sample size
//! when the plan is made.
//!
//! The test is a fixed-sample one (two-sided two-proportion z-tests between every pair of
//! variants, Bonferroni-corrected): a campaign's audience is mailed at once and a conversion is
//! only known once its window has closed, so there is no stream of outcomes to monitor and an
//! always-valid sequential test would buy nothing but wider intervals. The sample size is the
//! audience the plan fixes; the plan states the smallest difference it can detect, and the report
//! declares a winner only once every variant's window has closed.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use crate::holdout::{normal_cdf, ALPHA, TARGET_POWER};

/// The variant name of the recipients of a campaign tested on a share who wait for the winner
/// (`test_share`): they are not sent the first email; the winner (or the default variant) is
/// sent to them once the test's horizon has passed.
pub const REST_VARIANT: &str = "rest";

/// Most variants a campaign may test.
pub const MAX_VARIANTS: usize = 4;

/// Assigns each of `n` members of one stratum a variant `0..k`: a seeded shuffle dealt round
/// robin from a seeded starting variant, so the variants' sizes differ by at most one in every
/// stratum and no variant is favoured across strata.
pub fn split(n: usize, k: usize, seed: u64) -> Vec<u8> {
    let k = k.clamp(1, MAX_VARIANTS);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.gen_range(0..=i);
        order.swap(i, j);
    }
    let start = rng.gen_range(0..k);
    let mut out = vec![0u8; n];
    for (pos, &member) in order.iter().enumerate() {
        out[member] = ((start + pos) % k) as u8;
    }
    out
}

/// Splits one stratum's audience for a test on a share: a seeded random `share` of `members`
/// (rounded up, at least one per variant pair when there are two or more members) is tested, the
/// rest waits for the winner. Both returned in the input's order.
pub fn share_split(members: &[u32], share: f64, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let n = members.len();
    let take = ((n as f64) * share.clamp(0.0, 1.0)).ceil() as usize;
    let take = take.clamp(n.min(2), n);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.gen_range(0..=i);
        order.swap(i, j);
    }
    let mut tested = vec![false; n];
    for &i in &order[..take] {
        tested[i] = true;
    }
    let (mut t, mut r) = (Vec::with_capacity(take), Vec::with_capacity(n - take));
    for (i, &m) in members.iter().enumerate() {
        if tested[i] {
            t.push(m);
        } else {
            r.push(m);
        }
    }
    (t, r)
}

/// The sample size and power of a variant test, fixed at plan time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantPower {
    pub variants: usize,
    /// Planned recipients per variant (the smallest variant).
    pub per_variant: usize,
    /// Conversion rate assumed for every variant (baseline + expected uplift).
    pub assumed_rate: f64,
    /// Absolute difference between two variants the test should detect.
    pub min_difference: f64,
    /// Significance level of each pairwise test: 0.05 / (pairs), Bonferroni.
    pub alpha_per_pair: f64,
    /// Power of one pairwise test to detect `min_difference` at the planned size.
    pub power: f64,
    /// Recipients per variant needed for power 0.8 (`None`: more than ten million).
    pub required_per_variant: Option<usize>,
    /// Smallest difference detectable with power 0.8 at the planned size.
    pub detectable_difference: Option<f64>,
    pub adequate: bool,
}

/// Standard normal quantile (bisection on [`normal_cdf`], the fit's accuracy, about 1e-7).
pub fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (-12.0, 12.0);
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Power of a two-sided two-proportion z-test at level `alpha` with `n` per arm.
fn power_at(p0: f64, p1: f64, n: usize, alpha: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let nf = n as f64;
    let z = normal_quantile(1.0 - alpha / 2.0);
    let pooled = 0.5 * (p0 + p1);
    let se0 = (pooled * (1.0 - pooled) * 2.0 / nf).sqrt();
    let se1 = ((p0 * (1.0 - p0) + p1 * (1.0 - p1)) / nf).sqrt();
    if se1 <= 0.0 {
        return if p1 != p0 { 1.0 } else { 0.0 };
    }
    normal_cdf(((p1 - p0).abs() - z * se0) / se1)
}

/// The power analysis of a test of `k` variants of `per_variant` recipients each, assuming the
/// rate `rate` and wanting to detect `min_difference`.
pub fn power(k: usize, per_variant: usize, rate: f64, min_difference: f64) -> VariantPower {
    let pairs = (k * k.saturating_sub(1) / 2).max(1);
    let alpha = ALPHA / pairs as f64;
    let p0 = rate.clamp(1e-6, 1.0 - 1e-6);
    let p1 = (p0 + min_difference).min(1.0);
    let pw = power_at(p0, p1, per_variant, alpha);
    let required = {
        let reach = |n: usize| power_at(p0, p1, n, alpha) >= TARGET_POWER;
        if !reach(10_000_000) {
            None
        } else {
            let (mut lo, mut hi) = (1usize, 10_000_000usize);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if reach(mid) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            Some(lo)
        }
    };
    let detectable = {
        let reach = |d: f64| power_at(p0, (p0 + d).min(1.0), per_variant, alpha) >= TARGET_POWER;
        if per_variant == 0 || !reach(1.0 - p0) {
            None
        } else {
            let (mut lo, mut hi) = (0.0, 1.0 - p0);
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if reach(mid) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            Some(hi)
        }
    };
    VariantPower {
        variants: k,
        per_variant,
        assumed_rate: p0,
        min_difference,
        alpha_per_pair: alpha,
        power: pw,
        required_per_variant: required,
        detectable_difference: detectable,
        adequate: pw >= TARGET_POWER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_balanced_reproducible_and_random() {
        let a = split(1001, 3, 9);
        assert_eq!(a, split(1001, 3, 9));
        let mut counts = [0usize; 3];
        for &v in &a {
            counts[v as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (333..=334).contains(&c)),
            "{counts:?}"
        );
        // Not a fixed pattern: another seed gives another assignment.
        let b = split(1001, 3, 10);
        assert!(a.iter().zip(&b).filter(|(x, y)| x != y).count() > 500);
        // Not dealt in input order.
        assert!(
            a.windows(3)
                .filter(|w| w[0] != w[1] && w[1] != w[2])
                .count()
                < 900
        );
    }

    #[test]
    fn share_split_takes_a_random_share_and_keeps_the_rest() {
        let members: Vec<u32> = (0..1000).collect();
        let (t, r) = share_split(&members, 0.2, 5);
        assert_eq!(t.len(), 200);
        assert_eq!(r.len(), 800);
        let mut all: Vec<u32> = t.iter().chain(&r).copied().collect();
        all.sort_unstable();
        assert_eq!(all, members, "a partition");
        // Random, not the first fifth; reproducible.
        assert!(t.iter().filter(|&&m| m < 200).count() < 100, "{t:?}");
        assert_eq!(share_split(&members, 0.2, 5), (t, r));
        // Tiny strata still test someone.
        assert_eq!(share_split(&[7, 8, 9], 0.1, 1).0.len(), 2);
        assert_eq!(share_split(&[7], 0.1, 1).0, vec![7]);
    }

    #[test]
    fn quantile_inverts_the_cdf() {
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!(normal_quantile(0.5).abs() < 1e-6);
    }

    #[test]
    fn required_size_matches_the_textbook_formula() {
        // Two arms, p = 0.10 vs 0.12, α = 0.05 two-sided, power 0.8: the normal-approximation
        // formula n = (z_{.975}·√(2p̄q̄) + z_{.8}·√(p0q0 + p1q1))² / δ² gives 3841 per arm.
        let p = power(2, 1000, 0.10, 0.02);
        let (z_a, z_b) = (1.959_964, 0.841_621);
        let pbar: f64 = 0.11;
        let n = ((z_a * (2.0 * pbar * (1.0 - pbar)).sqrt()
            + z_b * (0.1f64 * 0.9 + 0.12 * 0.88).sqrt())
        .powi(2)
            / 0.0004)
            .ceil() as usize;
        let req = p.required_per_variant.expect("reachable");
        assert!(req.abs_diff(n) <= 2, "{req} vs {n}");
        assert!(!p.adequate);
        assert!(p.detectable_difference.expect("some") > 0.02);
        // More variants: Bonferroni makes each pair need more.
        let p4 = power(4, 1000, 0.10, 0.02);
        assert!((p4.alpha_per_pair - 0.05 / 6.0).abs() < 1e-12);
        assert!(p4.required_per_variant.expect("reachable") > req);
        // At the required size the test is adequate.
        assert!(power(2, req, 0.10, 0.02).adequate);
    }
}
