//! The Pareto/NBD purchase model (Schmittlein, Morrison & Colombo 1987): its maximum-likelihood
//! fit, P(alive) and the expected number of purchases.
//!
//! Customers buy at rate λ ~ Gamma(r, α) while alive and die, in continuous time, at rate
//! μ ~ Gamma(s, β). With history `(x, t_x, T)` (Fader & Hardie 2005, note 009, written as an
//! integral over the time of death τ instead of with 2F1):
//!
//! ```text
//! L = Γ(r+x) α^r β^s / Γ(r) · [ (α+T)^−(r+x) (β+T)^−s  +  s · I ],
//! I = ∫_{t_x}^{T} (α+τ)^−(r+x) (β+τ)^−(s+1) dτ
//! ```
//!
//! The first term is "alive at T", the second "died at τ in (t_x, T]". `I` is evaluated by
//! Gauss–Legendre quadrature on `y = ln(min(α, β) + τ)`, where the integrand is log-concave and
//! close to an exponential, in panels short enough that it changes by at most e⁴ across one
//! (6, 8 or 12 nodes as it changes by e¹, e² or e⁴: relative error ~1e-13); panels stop once the
//! integrand has fallen 50 nats below its peak. The gradient comes from differentiating under the integral, so it is exact for
//! the quadrature sum and the fit uses BFGS with analytic gradients, on rows merged by identical
//! `(x, t_x, T)` as for BG/NBD. lifetimes evaluates the same `I` through 2F1 (`_log_A_0`).

use std::sync::OnceLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bgnbd::BgData;
use crate::error::ClvError;
use crate::model::{check_horizon, expm1_ratio};
use crate::special::{digamma, ln_gamma};
use crate::summary::{by_index, Summary};

/// Rows above which the likelihood is summed in parallel.
const PARALLEL_ROWS: usize = 512;
/// Gauss–Legendre nodes per panel.
const NODES: usize = 12;
/// The integrand may change by at most e^PANEL_SPAN across one panel.
const PANEL_SPAN: f64 = 4.0;
/// Stop adding panels once the integrand is this many nats below its running maximum (and
/// falling).
const TAIL_NATS: f64 = 50.0;
const MAX_PANELS: usize = 400;

/// Pareto/NBD parameters: purchase rates ~ Gamma(r, α), death rates ~ Gamma(s, β).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParetoNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub s: f64,
    pub beta: f64,
}

/// Gauss–Legendre nodes and weights on [−1, 1] for `n` points.
fn gauss_legendre_n(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    for i in 0..n {
        // Newton on P_n from the Chebyshev-like initial guess.
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, z);
            for k in 2..=n {
                let kf = k as f64;
                let p2 = ((2.0 * kf - 1.0) * z * p1 - (kf - 1.0) * p0) / kf;
                p0 = p1;
                p1 = p2;
            }
            dp = n as f64 * (z * p1 - p0) / (z * z - 1.0);
            let dz = p1 / dp;
            z -= dz;
            if dz.abs() < 1e-16 {
                break;
            }
        }
        x[i] = z;
        w[i] = 2.0 / ((1.0 - z * z) * dp * dp);
    }
    (x, w)
}

/// Rules of 6, 8 and 12 points, for panels over which the integrand changes by at most e¹, e²
/// and e⁴ (relative error below ~1e-13 in each case).
fn rules() -> &'static [(Vec<f64>, Vec<f64>); 3] {
    static GL: OnceLock<[(Vec<f64>, Vec<f64>); 3]> = OnceLock::new();
    GL.get_or_init(|| {
        [
            gauss_legendre_n(6),
            gauss_legendre_n(8),
            gauss_legendre_n(NODES),
        ]
    })
}

/// `I` and the integrals of its derivatives, all scaled by `e^−m`:
/// `i0 = ∫f`, `la = ∫f·ln(α+τ)`, `ia = ∫f/(α+τ)`, `lb = ∫f·ln(β+τ)`, `ib = ∫f/(β+τ)`.
#[derive(Debug, Clone, Copy)]
struct Integral {
    m: f64,
    i0: f64,
    la: f64,
    ia: f64,
    lb: f64,
    ib: f64,
}

impl Integral {
    fn add(&mut self, lnf: f64, w: f64, la: f64, ia: f64, lb: f64, ib: f64) {
        if lnf > self.m {
            let k = (self.m - lnf).exp();
            self.i0 *= k;
            self.la *= k;
            self.ia *= k;
            self.lb *= k;
            self.ib *= k;
            self.m = lnf;
        }
        let e = w * (lnf - self.m).exp();
        self.i0 += e;
        self.la += e * la;
        self.ia += e * ia;
        self.lb += e * lb;
        self.ib += e * ib;
    }
}

/// `∫_{tx}^{t} (α+τ)^−p (β+τ)^−q dτ` and its derivative integrals (see [`Integral`]).
fn integral(p: f64, q: f64, alpha: f64, beta: f64, tx: f64, t: f64) -> Integral {
    let mut acc = Integral {
        m: f64::NEG_INFINITY,
        i0: 0.0,
        la: 0.0,
        ia: 0.0,
        lb: 0.0,
        ib: 0.0,
    };
    if t <= tx {
        return acc;
    }
    let c = alpha.min(beta);
    let (da, db) = (alpha - c, beta - c);
    let (y0, y1) = ((c + tx).ln(), (c + t).ln());
    let span = y1 - y0;
    let width = (PANEL_SPAN / (p + q)).min(span);
    let panels = ((span / width).ceil() as usize).clamp(1, MAX_PANELS);
    let h = span / panels as f64;
    let change = (p + q) * h;
    let rules = rules();
    let (nodes, weights) = if change <= 1.0 {
        &rules[0]
    } else if change <= 2.0 {
        &rules[1]
    } else {
        &rules[2]
    };
    // ln(c+τ) = y exactly, so only the other rate needs a logarithm.
    let alpha_is_min = da == 0.0;
    let mut last = f64::NEG_INFINITY;
    for k in 0..panels {
        let a = y0 + k as f64 * h;
        for (z, w) in nodes.iter().zip(weights) {
            let y = a + 0.5 * h * (z + 1.0);
            let ey = y.exp();
            let (at, bt, lat, lbt) = if alpha_is_min {
                let bt = db + ey;
                (ey, bt, y, bt.ln())
            } else {
                let at = da + ey;
                (at, ey, at.ln(), y)
            };
            let lnf = -p * lat - q * lbt + y;
            acc.add(lnf, 0.5 * h * w, lat, 1.0 / at, lbt, 1.0 / bt);
            last = lnf;
        }
        // log-concave: once below the peak by TAIL_NATS and falling, the rest is negligible.
        if last < acc.m - TAIL_NATS {
            break;
        }
    }
    acc
}

/// One row's log-likelihood (without the per-`x` constants) and its derivatives by r, α, s, β,
/// plus P(alive).
#[derive(Debug, Clone, Copy, Default)]
struct RowTerms {
    ll: f64,
    dr: f64,
    dalpha: f64,
    ds: f64,
    dbeta: f64,
    p_alive: f64,
}

fn row(p: &ParetoNbdParams, x: f64, tx: f64, t: f64) -> RowTerms {
    let ParetoNbdParams { r, alpha, s, beta } = *p;
    let rx = r + x;
    let (lat, lbt) = ((alpha + t).ln(), (beta + t).ln());
    let ln_alive = -rx * lat - s * lbt;
    let i = integral(rx, s + 1.0, alpha, beta, tx, t);
    // ln(A + s·I) with A = e^ln_alive.
    let ln_dead = if i.i0 > 0.0 {
        s.ln() + i.m + i.i0.ln()
    } else {
        f64::NEG_INFINITY
    };
    let big = ln_alive.max(ln_dead);
    let a_hat = (ln_alive - big).exp();
    // s·I/e^big, and the integrals on the same scale, divided by s where convenient
    let scale = if i.i0 > 0.0 { (i.m - big).exp() } else { 0.0 };
    let total = a_hat + s * i.i0 * scale;
    let ll = big + total.ln();
    let inv = 1.0 / total;
    RowTerms {
        ll,
        dr: (-lat * a_hat - s * i.la * scale) * inv,
        dalpha: (-rx / (alpha + t) * a_hat - s * rx * i.ia * scale) * inv,
        ds: (-lbt * a_hat + (i.i0 - s * i.lb) * scale) * inv,
        dbeta: (-s / (beta + t) * a_hat - s * (s + 1.0) * i.ib * scale) * inv,
        p_alive: a_hat * inv,
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    ll: f64,
    d: [f64; 4],
}

impl std::ops::Add for Acc {
    type Output = Acc;
    fn add(self, o: Acc) -> Acc {
        let mut d = self.d;
        for (a, b) in d.iter_mut().zip(o.d) {
            *a += b;
        }
        Acc {
            ll: self.ll + o.ll,
            d,
        }
    }
}

/// Total log-likelihood and its gradient with respect to `(ln r, ln α, ln s, ln β)`.
pub(crate) fn log_likelihood_and_gradient(data: &BgData, p: &ParetoNbdParams) -> (f64, [f64; 4]) {
    let ParetoNbdParams { r, alpha, s, beta } = *p;
    let terms = |rows: &[crate::bgnbd::Row]| {
        let mut acc = Acc::default();
        for row_ in rows {
            let x = data.groups[row_.group as usize].0;
            let t = row(p, x, row_.tx, row_.t);
            let n = row_.n;
            acc.ll += n * t.ll;
            acc.d[0] += n * t.dr;
            acc.d[1] += n * t.dalpha;
            acc.d[2] += n * t.ds;
            acc.d[3] += n * t.dbeta;
        }
        acc
    };
    let acc = if data.rows.len() > PARALLEL_ROWS {
        data.rows
            .par_chunks(256)
            .map(terms)
            // Chunk sums added in chunk order: the same result on every run and thread count.
            .collect::<Vec<Acc>>()
            .into_iter()
            .fold(Acc::default(), |a, b| a + b)
    } else {
        terms(&data.rows)
    };
    let (lg_r, dg_r) = (ln_gamma(r), digamma(r));
    let (la, lb) = (alpha.ln(), beta.ln());
    let mut ll = acc.ll;
    let mut d = acc.d;
    for &(x, n) in &data.groups {
        ll += n * (ln_gamma(r + x) - lg_r + r * la + s * lb);
        d[0] += n * (digamma(r + x) - dg_r + la);
        d[1] += n * r / alpha;
        d[2] += n * lb;
        d[3] += n * s / beta;
    }
    (ll, [d[0] * r, d[1] * alpha, d[2] * s, d[3] * beta])
}

impl ParetoNbdParams {
    #[cfg(test)]
    fn from_log(v: &[f64]) -> Self {
        Self {
            r: v[0].exp(),
            alpha: v[1].exp(),
            s: v[2].exp(),
            beta: v[3].exp(),
        }
    }

    #[cfg(test)]
    fn to_log(self) -> [f64; 4] {
        [self.r.ln(), self.alpha.ln(), self.s.ln(), self.beta.ln()]
    }

    /// Total log-likelihood of `summaries` under these parameters (validated first).
    pub fn log_likelihood(&self, summaries: &[Summary]) -> Result<f64, ClvError> {
        for (i, s) in summaries.iter().enumerate() {
            s.check(|| by_index(i))?;
        }
        Ok(log_likelihood_and_gradient(&BgData::new(summaries.iter()), self).0)
    }

    /// The gradient of [`Self::log_likelihood`] with respect to `(ln r, ln α, ln s, ln β)`.
    pub fn log_likelihood_gradient(&self, summaries: &[Summary]) -> Result<[f64; 4], ClvError> {
        for (i, s) in summaries.iter().enumerate() {
            s.check(|| by_index(i))?;
        }
        Ok(log_likelihood_and_gradient(&BgData::new(summaries.iter()), self).1)
    }

    /// P(alive | x, t_x, T): the share of the likelihood in "alive at T". Below 1 for every
    /// customer with `T > t_x`, one-time buyers included.
    pub fn p_alive(&self, s: &Summary) -> f64 {
        row(self, s.frequency, s.recency, s.t).p_alive
    }

    /// P(alive) and the gradient of its logarithm with respect to `(ln r, ln α, ln s, ln β)`,
    /// from one quadrature (for the delta-method intervals).
    pub(crate) fn p_alive_and_log_gradient(&self, s: &Summary) -> (f64, [f64; 4]) {
        let ParetoNbdParams {
            r,
            alpha,
            s: s_,
            beta,
        } = *self;
        let t = s.t;
        let rt = row(self, s.frequency, s.recency, t);
        let rx = r + s.frequency;
        // ln P = ln A − ln(A + s·I); the row terms are the derivatives of the second.
        let g = [
            (-(alpha + t).ln() - rt.dr) * r,
            (-rx / (alpha + t) - rt.dalpha) * alpha,
            (-(beta + t).ln() - rt.ds) * s_,
            (-s_ / (beta + t) - rt.dbeta) * beta,
        ];
        (rt.p_alive, g)
    }

    /// E[X(t)]: expected repeat purchases in `(0, t]` of a new customer,
    /// `rβ/(α(s−1)) · [1 − (β/(β+t))^(s−1)]` (its limit at `s = 1`).
    pub fn expected_purchases(&self, t: f64) -> Result<f64, ClvError> {
        check_horizon(t)?;
        let ParetoNbdParams { r, alpha, s, beta } = *self;
        Ok(r * beta / alpha * expm1_ratio(s - 1.0, (t / beta).ln_1p()))
    }

    /// Expected purchases in `(T, T+t]` of a customer known to be alive at `T`.
    pub(crate) fn expected_if_alive(&self, t: f64, x: f64, big_t: f64) -> f64 {
        let ParetoNbdParams { r, alpha, s, beta } = *self;
        (r + x) * (beta + big_t) / (alpha + big_t)
            * expm1_ratio(s - 1.0, (t / (beta + big_t)).ln_1p())
    }

    /// E[Y(t) | x, t_x, T]: expected purchases in the next `t`.
    pub fn conditional_expected_purchases(&self, t: f64, s: &Summary) -> Result<f64, ClvError> {
        check_horizon(t)?;
        Ok(self.p_alive(s) * self.expected_if_alive(t, s.frequency, s.t))
    }

    /// [`Self::conditional_expected_purchases`] at several horizons.
    pub fn conditional_expected_purchases_many(
        &self,
        ts: &[f64],
        s: &Summary,
    ) -> Result<Vec<f64>, ClvError> {
        for &t in ts {
            check_horizon(t)?;
        }
        let p_alive = self.p_alive(s);
        Ok(ts
            .iter()
            .map(|&t| p_alive * self.expected_if_alive(t, s.frequency, s.t))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISHED: ParetoNbdParams = ParetoNbdParams {
        r: 0.553,
        alpha: 10.58,
        s: 0.606,
        beta: 11.67,
    };

    fn sm(x: f64, tx: f64, t: f64) -> Summary {
        Summary {
            frequency: x,
            recency: tx,
            t,
            monetary: 0.0,
        }
    }

    /// Simpson's rule on τ with many points.
    fn brute_integral(p: f64, q: f64, alpha: f64, beta: f64, tx: f64, t: f64) -> f64 {
        let n = 200_000;
        let h = (t - tx) / n as f64;
        let f = |tau: f64| (alpha + tau).powf(-p) * (beta + tau).powf(-q);
        let mut sum = f(tx) + f(t);
        for i in 1..n {
            sum += if i % 2 == 1 { 4.0 } else { 2.0 } * f(tx + i as f64 * h);
        }
        sum * h / 3.0
    }

    #[test]
    fn quadrature_matches_brute_force() {
        for &(p, q, alpha, beta, tx, t) in &[
            (0.553, 1.606, 10.58, 11.67, 0.0, 38.86),
            (5.553, 1.606, 10.58, 11.67, 20.0, 38.86),
            (0.3, 1.2, 0.05, 30.0, 0.0, 50.0),
            (40.0, 3.0, 30.0, 0.05, 1.0, 50.0),
            (2.0, 1.1, 100.0, 1.0, 3.0, 400.0),
            (0.8, 15.0, 1.0, 1.0, 0.5, 2.0),
        ] {
            let i = integral(p, q, alpha, beta, tx, t);
            let got = i.i0 * i.m.exp();
            let want = brute_integral(p, q, alpha, beta, tx, t);
            assert!(
                (got - want).abs() <= 1e-9 * want,
                "{p} {q} {alpha} {beta} {tx} {t}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn p_alive_matches_lifetimes_and_is_below_one_for_one_time_buyers() {
        // lifetimes 0.11.3 at its CDNOW fit (tests/data/lifetimes_reference.json)
        let p = ParetoNbdParams {
            r: 0.553_272_395_723_890_3,
            alpha: 10.577_710_934_853_329,
            s: 0.606_250_408_714_997_1,
            beta: 11.669_544_260_797_56,
        };
        let one_time = sm(0.0, 0.0, 38.857_142_857_142_854);
        let alive = p.p_alive(&one_time);
        assert!((alive - 0.295_120_651_231_668_1).abs() < 1e-8, "{alive}");
        let e = p
            .conditional_expected_purchases(39.0, &one_time)
            .expect("e");
        assert!((e - 0.107_072_129_428_361_83).abs() < 1e-8, "{e}");
        let e = p.expected_purchases(39.0).expect("e");
        assert!((e - 1.213_406_550_906_41).abs() < 1e-8, "{e}");
        assert!(PUBLISHED.p_alive(&sm(0.0, 0.0, 30.0)) < 1.0);
        // No time since the last purchase: certainly alive.
        assert_eq!(PUBLISHED.p_alive(&sm(3.0, 30.0, 30.0)), 1.0);
    }

    #[test]
    fn log_p_alive_gradient_matches_finite_differences() {
        let s = sm(2.0, 10.0, 30.0);
        let (pa, g) = PUBLISHED.p_alive_and_log_gradient(&s);
        assert!(pa > 0.0 && pa < 1.0);
        let logs = PUBLISHED.to_log();
        for k in 0..4 {
            let h = 1e-6;
            let (mut up, mut dn) = (logs, logs);
            up[k] += h;
            dn[k] -= h;
            let fu = ParetoNbdParams::from_log(&up).p_alive(&s).ln();
            let fd = ParetoNbdParams::from_log(&dn).p_alive(&s).ln();
            let numeric = (fu - fd) / (2.0 * h);
            assert!((numeric - g[k]).abs() < 1e-6, "{k}: {} vs {numeric}", g[k]);
        }
    }

    #[test]
    fn expectation_is_continuous_at_s_equal_one() {
        let at = |s: f64| {
            ParetoNbdParams { s, ..PUBLISHED }
                .conditional_expected_purchases(20.0, &sm(2.0, 10.0, 30.0))
                .expect("finite")
        };
        let (lo, mid, hi) = (at(1.0 - 1e-7), at(1.0), at(1.0 + 1e-7));
        assert!(mid > 0.0 && (lo - mid).abs() < 1e-6 * mid && (hi - mid).abs() < 1e-6 * mid);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let data: Vec<Summary> = (0..200)
            .map(|i| {
                let x = (i % 6) as f64;
                let t = 20.0 + (i % 17) as f64;
                let tx = if x > 0.0 {
                    t * ((i % 5) as f64 + 1.0) / 6.0
                } else {
                    0.0
                };
                sm(x, tx, t)
            })
            .collect();
        for p in [
            PUBLISHED,
            ParetoNbdParams {
                r: 1.5,
                alpha: 2.0,
                s: 0.3,
                beta: 40.0,
            },
        ] {
            let g = p.log_likelihood_gradient(&data).expect("valid");
            let logs = p.to_log();
            for k in 0..4 {
                let h = 1e-5;
                let (mut up, mut dn) = (logs, logs);
                up[k] += h;
                dn[k] -= h;
                let fu = ParetoNbdParams::from_log(&up)
                    .log_likelihood(&data)
                    .expect("valid");
                let fd = ParetoNbdParams::from_log(&dn)
                    .log_likelihood(&data)
                    .expect("valid");
                let numeric = (fu - fd) / (2.0 * h);
                assert!(
                    (numeric - g[k]).abs() <= 1e-5 * numeric.abs().max(1.0),
                    "{p:?} component {k}: analytic {} vs numeric {numeric}",
                    g[k]
                );
            }
        }
    }
}
