//! The statistics of campaign results, as pure functions: the difference of two proportions
//! (conversion rate of recipients vs holdout) with Newcombe's hybrid score interval built from two
//! Wilson intervals and a pooled two-proportion z-test; the relative uplift with the Katz log
//! interval of the ratio; and Welch's unequal-variance t interval and test for a difference of
//! means (revenue per recipient vs per holdout member).
//!
//! Newcombe's interval (method 10 of Newcombe 1998) is used rather than the Wald interval because
//! it keeps close to its nominal 95 % coverage for the small rates (1–10 %) and small holdouts of
//! retention campaigns, where Wald undercovers and can leave [−1, 1].

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// z of a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Below this many members in either group, or fewer than this many successes or failures in
/// either group, a result is flagged as resting on too small a sample.
pub const MIN_GROUP: u64 = 30;
pub const MIN_CELL: u64 = 5;

/// Wilson score interval of a proportion `x / n` at normal quantile `z`; `(0, 1)` when n = 0.
pub fn wilson(x: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (x, n) = (x.min(n) as f64, n as f64);
    let z2 = z * z;
    let centre = (x + z2 / 2.0) / (n + z2);
    let half = z / (n + z2) * (x * (n - x) / n + z2 / 4.0).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Standard normal two-sided p-value of a z statistic.
pub fn normal_p(z: f64) -> f64 {
    if !z.is_finite() {
        return if z.is_nan() { 1.0 } else { 0.0 };
    }
    match Normal::new(0.0, 1.0) {
        Ok(n) => (2.0 * n.sf(z.abs())).clamp(0.0, 1.0),
        Err(_) => 1.0,
    }
}

/// A comparison of two proportions: treatment `x1/n1` against control `x0/n0`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProportionDiff {
    pub p1: f64,
    pub p0: f64,
    /// p1 − p0.
    pub absolute: f64,
    /// Newcombe hybrid score 95 % interval of p1 − p0.
    pub ci95: [f64; 2],
    /// (p1 − p0) / p0, when p0 > 0.
    pub relative: Option<f64>,
    /// Katz log 95 % interval of p1 / p0 − 1, when both groups have a success.
    pub relative_ci95: Option<[f64; 2]>,
    /// Two-sided p-value of the pooled two-proportion z-test.
    pub p_value: f64,
    /// Why the numbers should not be trusted, when the sample is too small.
    pub small_sample: Option<String>,
}

/// Compares `x1/n1` (recipients) with `x0/n0` (holdout). `None` when either group is empty.
pub fn two_proportions(x1: u64, n1: u64, x0: u64, n0: u64) -> Option<ProportionDiff> {
    if n1 == 0 || n0 == 0 {
        return None;
    }
    let (x1, x0) = (x1.min(n1), x0.min(n0));
    let (p1, p0) = (x1 as f64 / n1 as f64, x0 as f64 / n0 as f64);
    let d = p1 - p0;
    let (l1, u1) = wilson(x1, n1, Z95);
    let (l0, u0) = wilson(x0, n0, Z95);
    let lo = d - ((p1 - l1).powi(2) + (u0 - p0).powi(2)).sqrt();
    let hi = d + ((u1 - p1).powi(2) + (p0 - l0).powi(2)).sqrt();
    let pooled = (x1 + x0) as f64 / (n1 + n0) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n0 as f64)).sqrt();
    let p_value = if se > 0.0 { normal_p(d / se) } else { 1.0 };
    let relative = (p0 > 0.0).then(|| d / p0);
    let relative_ci95 = (x1 > 0 && x0 > 0).then(|| {
        let se = (1.0 / x1 as f64 - 1.0 / n1 as f64 + 1.0 / x0 as f64 - 1.0 / n0 as f64)
            .max(0.0)
            .sqrt();
        let rr = p1 / p0;
        [rr * (-Z95 * se).exp() - 1.0, rr * (Z95 * se).exp() - 1.0]
    });
    let small_sample = small_sample(&[("recipients", x1, n1), ("holdout", x0, n0)]);
    Some(ProportionDiff {
        p1,
        p0,
        absolute: d,
        ci95: [lo.max(-1.0), hi.min(1.0)],
        relative,
        relative_ci95,
        p_value,
        small_sample,
    })
}

/// Plain words when a group is too small (or has too few successes or failures) for the normal
/// approximations behind the interval and the p-value.
fn small_sample(groups: &[(&str, u64, u64)]) -> Option<String> {
    let mut why = Vec::new();
    for (name, x, n) in groups {
        if *n < MIN_GROUP {
            why.push(format!("{name}: only {n} people (want ≥ {MIN_GROUP})"));
        } else if *x < MIN_CELL {
            why.push(format!("{name}: only {x} conversions (want ≥ {MIN_CELL})"));
        } else if n - x < MIN_CELL {
            why.push(format!(
                "{name}: only {} non-converters (want ≥ {MIN_CELL})",
                n - x
            ));
        }
    }
    (!why.is_empty()).then(|| format!("sample too small to conclude — {}", why.join("; ")))
}

/// Mean, sample variance (n − 1) and size of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Moments {
    pub n: u64,
    pub mean: f64,
    pub var: f64,
}

impl Moments {
    /// Welford's one-pass mean and variance.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let (mut n, mut mean, mut m2) = (0u64, 0.0, 0.0);
        for v in values {
            n += 1;
            let d = v - mean;
            mean += d / n as f64;
            m2 += d * (v - mean);
        }
        let var = if n > 1 { m2 / (n - 1) as f64 } else { 0.0 };
        Self { n, mean, var }
    }
}

/// Welch's comparison of two means: treatment minus control.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeanDiff {
    pub mean1: f64,
    pub mean0: f64,
    pub absolute: f64,
    /// Welch t 95 % interval of mean1 − mean0.
    pub ci95: [f64; 2],
    /// Two-sided p-value of Welch's t-test.
    pub p_value: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    pub small_sample: Option<String>,
}

/// Welch's t interval and test of `a.mean − b.mean`. `None` when either sample has fewer than
/// two values.
pub fn welch(a: Moments, b: Moments) -> Option<MeanDiff> {
    if a.n < 2 || b.n < 2 {
        return None;
    }
    let (va, vb) = (a.var / a.n as f64, b.var / b.n as f64);
    let se = (va + vb).sqrt();
    let d = a.mean - b.mean;
    let mut small = Vec::new();
    for (name, m) in [("recipients", a), ("holdout", b)] {
        if m.n < MIN_GROUP {
            small.push(format!("{name}: only {} people (want ≥ {MIN_GROUP})", m.n));
        }
    }
    if se <= 0.0 || !se.is_finite() {
        return Some(MeanDiff {
            mean1: a.mean,
            mean0: b.mean,
            absolute: d,
            ci95: [d, d],
            p_value: if d == 0.0 { 1.0 } else { 0.0 },
            df: (a.n + b.n - 2) as f64,
            small_sample: Some("no variation in either group".into()),
        });
    }
    let df = (va + vb).powi(2)
        / (va.powi(2) / (a.n - 1) as f64 + vb.powi(2) / (b.n - 1) as f64).max(f64::MIN_POSITIVE);
    let (crit, p_value) = match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => (
            t.inverse_cdf(0.975),
            (2.0 * t.sf((d / se).abs())).clamp(0.0, 1.0),
        ),
        Err(_) => (Z95, normal_p(d / se)),
    };
    Some(MeanDiff {
        mean1: a.mean,
        mean0: b.mean,
        absolute: d,
        ci95: [d - crit * se, d + crit * se],
        p_value,
        df,
        small_sample: (!small.is_empty())
            .then(|| format!("sample too small to conclude — {}", small.join("; "))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn wilson_matches_the_closed_form() {
        // x = 0, n = 10: upper = z²/(n + z²).
        let (lo, hi) = wilson(0, 10, Z95);
        assert_eq!(lo, 0.0);
        assert!(close(hi, Z95 * Z95 / (10.0 + Z95 * Z95), 1e-12));
        // Symmetric around 1/2 for x = n/2.
        let (lo, hi) = wilson(50, 100, Z95);
        assert!(close(lo + hi, 1.0, 1e-12));
        // Hand computation for 15/148: centre = (15 + 1.92073)/(148 + 3.84146) = 0.111442…,
        // half = 1.95996/151.84146 · sqrt(15·133/148 + 0.960365) = 0.048617…
        let (lo, hi) = wilson(15, 148, Z95);
        let z2 = Z95 * Z95;
        let centre = (15.0 + z2 / 2.0) / (148.0 + z2);
        let half = Z95 / (148.0 + z2) * (15.0 * 133.0 / 148.0 + z2 / 4.0_f64).sqrt();
        assert!(close(lo, centre - half, 1e-12) && close(hi, centre + half, 1e-12));
        assert!(
            close(lo, 0.0628, 5e-4) && close(hi, 0.1601, 5e-4),
            "{lo} {hi}"
        );
    }

    #[test]
    fn newcombe_reproduces_the_published_example() {
        // Newcombe (1998), Table II, example (a): 56/70 vs 48/80 → 0.0524 to 0.3339 (method 10).
        let r = two_proportions(56, 70, 48, 80).expect("both groups");
        assert!(close(r.absolute, 0.2, 1e-12));
        assert!(close(r.ci95[0], 0.0524, 5e-4), "{:?}", r.ci95);
        assert!(close(r.ci95[1], 0.3339, 5e-4), "{:?}", r.ci95);
        // Example (g): 0/10 vs 0/20 → −0.1611 to 0.2775.
        let r = two_proportions(0, 10, 0, 20).expect("both groups");
        assert!(close(r.ci95[0], -0.1611, 5e-4) && close(r.ci95[1], 0.2775, 5e-4));
        assert_eq!(r.p_value, 1.0);
        assert!(r.small_sample.is_some());
        assert!(r.relative.is_none() && r.relative_ci95.is_none());
    }

    #[test]
    fn pooled_z_test_by_hand() {
        // 60/1000 vs 40/1000: pooled 0.05, se = sqrt(0.05·0.95·0.002) = 0.0097468, z = 2.0520.
        let r = two_proportions(60, 1000, 40, 1000).expect("ok");
        let se = (0.05f64 * 0.95 * 0.002).sqrt();
        let z = 0.02 / se;
        assert!(close(z, 2.0520, 1e-3));
        // 2·(1 − Φ(2.0520)) = 0.04016.
        assert!(close(r.p_value, 0.0402, 2e-4), "{}", r.p_value);
        assert!(r.ci95[0] > 0.0 && r.ci95[1] < 0.04);
        assert!(close(r.relative.expect("p0 > 0"), 0.5, 1e-12));
        // Katz: se = sqrt(1/60 − 1/1000 + 1/40 − 1/1000) = 0.2003…, RR = 1.5.
        let se = (1.0 / 60.0 - 0.001 + 1.0 / 40.0 - 0.001f64).sqrt();
        let rel = r.relative_ci95.expect("both have successes");
        assert!(close(rel[0], 1.5 * (-Z95 * se).exp() - 1.0, 1e-12));
        assert!(close(rel[1], 1.5 * (Z95 * se).exp() - 1.0, 1e-12));
        assert!(r.small_sample.is_none());
        assert!(two_proportions(1, 0, 1, 10).is_none());
    }

    #[test]
    fn welch_by_hand() {
        // a = 1..=5 (mean 3, var 2.5), b = 2,4,6,8,10,12 (mean 7, var 14).
        let a = Moments::of((1..=5).map(f64::from));
        let b = Moments::of([2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
        assert!(close(a.var, 2.5, 1e-12) && close(b.var, 14.0, 1e-12));
        let r = welch(a, b).expect("ok");
        // se² = 0.5 + 2.3333 = 2.8333; df = 2.8333² / (0.25/4 + 5.4444/5) = 6.9987…
        let se2: f64 = 0.5 + 14.0 / 6.0;
        let df = se2.powi(2) / (0.25 / 4.0 + (14.0f64 / 6.0).powi(2) / 5.0);
        assert!(close(r.df, df, 1e-9));
        assert!(close(r.absolute, -4.0, 1e-12));
        // t = −4/1.6833 = −2.3763 with ≈7 df: p ≈ 0.049; t(0.975, 7) = 2.3646.
        assert!(close(r.p_value, 0.049, 2e-3), "{}", r.p_value);
        let half = (r.ci95[1] - r.ci95[0]) / 2.0;
        assert!(close(half, 2.3646 * se2.sqrt(), 5e-3), "{half}");
        assert!(welch(Moments::of([1.0]), b).is_none());
        let flat = welch(Moments::of([1.0, 1.0]), Moments::of([1.0, 1.0])).expect("flat");
        assert_eq!(flat.p_value, 1.0);
    }
}
