//! Control groups: the seeded, segment-stratified holdout draw, and the power estimate that says
//! whether a campaign's holdout is large enough to detect the effect it expects.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

/// Two-sided significance level of the uplift test.
pub const ALPHA: f64 = 0.05;
/// Power a campaign's measurement should reach.
pub const TARGET_POWER: f64 = 0.8;
/// Purchase rate assumed without the email when neither the goal nor predictions give one.
pub const DEFAULT_BASELINE_RATE: f64 = 0.05;

const Z_ALPHA_HALF: f64 = 1.959_963_984_540_054;

/// Holdout size of a stratum of `selected` members: `ceil(fraction × selected)`, so every
/// non-empty stratum has a control and the mailed share never exceeds `1 − fraction`.
pub fn holdout_size(selected: usize, fraction: f64) -> usize {
    if selected == 0 {
        return 0;
    }
    let h = (fraction * selected as f64 - 1e-9).ceil();
    (h.max(0.0) as usize).min(selected)
}

/// Seed of one stratum's draw, from the plan seed and the stratum's names (stable across
/// platforms and releases: FNV-1a then SplitMix64).
pub fn stratum_seed(seed: u64, campaign: &str, segment: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in campaign.bytes().chain([0xff]).chain(segment.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(h ^ splitmix64(seed))
}

pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Splits one stratum into (audience, holdout): `holdout_size` members drawn uniformly without
/// replacement. The input order must be deterministic (the planner sorts by input position);
/// both outputs keep it.
pub fn split<T: Copy + Ord>(members: &[T], fraction: f64, seed: u64) -> (Vec<T>, Vec<T>) {
    let n = members.len();
    let h = holdout_size(n, fraction);
    let mut shuffled = members.to_vec();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for i in 0..h {
        let j = rng.gen_range(i..n);
        shuffled.swap(i, j);
    }
    let mut holdout = shuffled[..h].to_vec();
    let mut audience = shuffled[h..].to_vec();
    holdout.sort_unstable();
    audience.sort_unstable();
    (audience, holdout)
}

/// Whether a campaign can measure its expected uplift (two-proportion z-test).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerEstimate {
    /// Purchase rate within the window without the email.
    pub baseline_rate: f64,
    /// Expected absolute uplift of the purchase rate (the response rate).
    pub expected_uplift: f64,
    pub treatment: usize,
    pub control: usize,
    /// Probability of detecting the expected uplift at α = 0.05.
    pub power: f64,
    /// Smallest uplift detectable with power 0.8 at these sizes (`None`: not even 100 points).
    pub min_detectable_uplift: Option<f64>,
    /// Holdout fraction (≤ 0.5) that would reach power 0.8 for this campaign's size, if any.
    pub required_holdout_fraction: Option<f64>,
    pub adequate: bool,
}

/// Power of the two-sided two-proportion z-test to detect `p1` vs `p0` with `n1` treated and
/// `n0` controls at level [`ALPHA`].
pub fn power_two_proportions(p0: f64, p1: f64, n1: usize, n0: usize) -> f64 {
    if n1 == 0 || n0 == 0 {
        return 0.0;
    }
    let (n1f, n0f) = (n1 as f64, n0 as f64);
    let pooled = (n1f * p1 + n0f * p0) / (n1f + n0f);
    let se0 = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n0f)).sqrt();
    let se1 = (p0 * (1.0 - p0) / n0f + p1 * (1.0 - p1) / n1f).sqrt();
    if se1 <= 0.0 {
        return if (p1 - p0).abs() > 0.0 { 1.0 } else { 0.0 };
    }
    normal_cdf(((p1 - p0).abs() - Z_ALPHA_HALF * se0) / se1)
}

/// Estimates the power of a campaign with `treatment` mailed and `control` held out.
pub fn estimate(
    baseline_rate: f64,
    uplift: f64,
    treatment: usize,
    control: usize,
) -> PowerEstimate {
    let p0 = baseline_rate.clamp(1e-6, 1.0 - 1e-6);
    let p1 = (p0 + uplift).min(1.0);
    let power = power_two_proportions(p0, p1, treatment, control);
    let mde = {
        let reach = |d: f64| {
            power_two_proportions(p0, (p0 + d).min(1.0), treatment, control) >= TARGET_POWER
        };
        if treatment == 0 || control == 0 || !reach(1.0 - p0) {
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
    let total = treatment + control;
    let power_at = |f: f64| {
        let c = holdout_size(total, f);
        power_two_proportions(p0, p1, total - c, c)
    };
    let required = if power_at(0.5) < TARGET_POWER {
        None
    } else {
        // Power grows with the holdout up to about half: bisect on the fraction.
        let (mut lo, mut hi) = (0.0, 0.5);
        for _ in 0..50 {
            let mid = 0.5 * (lo + hi);
            if power_at(mid) >= TARGET_POWER {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    };
    PowerEstimate {
        baseline_rate: p0,
        expected_uplift: p1 - p0,
        treatment,
        control,
        power,
        min_detectable_uplift: mde,
        required_holdout_fraction: required,
        adequate: power >= TARGET_POWER,
    }
}

/// Standard normal cumulative distribution.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Complementary error function (Chebyshev fit, fractional error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_known_points() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_963_984_540_054) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-0.841_621_233_572_914_3) - 0.2).abs() < 1e-6);
    }

    #[test]
    fn holdout_size_is_ceiling_and_bounded() {
        assert_eq!(holdout_size(0, 0.1), 0);
        assert_eq!(holdout_size(1, 0.1), 1);
        assert_eq!(holdout_size(10, 0.1), 1);
        assert_eq!(holdout_size(11, 0.1), 2);
        assert_eq!(holdout_size(1000, 0.1), 100);
        assert_eq!(holdout_size(3, 0.5), 2);
    }

    #[test]
    fn split_is_reproducible_and_disjoint() {
        let members: Vec<u32> = (0..1000).collect();
        let (a1, h1) = split(&members, 0.1, 42);
        let (a2, h2) = split(&members, 0.1, 42);
        let (_, h3) = split(&members, 0.1, 43);
        assert_eq!((&a1, &h1), (&a2, &h2));
        assert_ne!(h1, h3);
        assert_eq!(h1.len(), 100);
        assert_eq!(a1.len() + h1.len(), 1000);
        let mut all: Vec<u32> = a1.iter().chain(&h1).copied().collect();
        all.sort_unstable();
        assert_eq!(all, members);
    }

    #[test]
    fn split_is_roughly_uniform() {
        // Over many seeds every member is held out about `fraction` of the time.
        let members: Vec<u32> = (0..20).collect();
        let mut hits = [0u32; 20];
        for seed in 0..4000 {
            for h in split(&members, 0.25, stratum_seed(seed, "c", "s")).1 {
                hits[h as usize] += 1;
            }
        }
        for (i, &h) in hits.iter().enumerate() {
            // Expected 1000 per member; binomial sd ≈ 27.
            assert!((850..1150).contains(&h), "member {i} held out {h} times");
        }
    }

    #[test]
    fn stratum_seeds_differ_by_name_and_seed() {
        let a = stratum_seed(1, "win_back-1", "At Risk");
        assert_eq!(a, stratum_seed(1, "win_back-1", "At Risk"));
        assert_ne!(a, stratum_seed(2, "win_back-1", "At Risk"));
        assert_ne!(a, stratum_seed(1, "win_back-1", "Hibernating"));
        assert_ne!(stratum_seed(1, "ab", "c"), stratum_seed(1, "a", "bc"));
    }

    #[test]
    fn power_matches_the_textbook_sample_size() {
        // Equal groups, p0 = 0.10 vs p1 = 0.15: the classic formula needs ≈ 686 per group.
        let n_needed = {
            let (p0, p1): (f64, f64) = (0.10, 0.15);
            let pbar = (p0 + p1) / 2.0;
            let za = 1.959_963_984_540_054;
            let zb = 0.841_621_233_572_914_3;
            let num = za * (2.0 * pbar * (1.0 - pbar)).sqrt()
                + zb * (p0 * (1.0 - p0) + p1 * (1.0 - p1)).sqrt();
            (num * num / (p1 - p0).powi(2)).ceil() as usize
        };
        let at = power_two_proportions(0.10, 0.15, n_needed, n_needed);
        assert!((at - 0.8).abs() < 0.01, "power at the formula's n = {at}");
        assert!(power_two_proportions(0.10, 0.15, n_needed / 2, n_needed / 2) < 0.6);
        assert!(power_two_proportions(0.10, 0.15, n_needed * 2, n_needed * 2) > 0.95);
    }

    #[test]
    fn estimate_flags_small_holdouts() {
        let small = estimate(0.05, 0.01, 900, 100);
        assert!(!small.adequate);
        assert!(small.min_detectable_uplift.expect("some uplift detectable") > 0.01);
        let big = estimate(0.05, 0.01, 90_000, 10_000);
        assert!(big.adequate, "{big:?}");
        assert!(big.min_detectable_uplift.expect("detectable") < 0.01);
        let f = small.required_holdout_fraction;
        assert!(f.is_none(), "1000 customers cannot detect 1 point: {f:?}");
        let mid = estimate(0.05, 0.01, 18_000, 2_000);
        let need = mid
            .required_holdout_fraction
            .expect("reachable with a larger holdout");
        assert!(need > 0.1 && need <= 0.5, "{need}");
        let c = holdout_size(20_000, need);
        assert!(power_two_proportions(0.05, 0.06, 20_000 - c, c) >= TARGET_POWER);
    }
}
