//! The BG/NBD purchase model (Fader, Hardie & Lee 2005): its maximum-likelihood fit, the
//! probability that a customer is still alive and the expected number of purchases.
//!
//! Per customer with history `(x, t_x, T)` the likelihood is
//!
//! ```text
//! L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
//!   + 1{x>0} B(a+1, b+x−1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))
//! ```
//!
//! The fit maximises `Σ ln L` over `ln r, ln α, ln a, ln b` with BFGS (`optim.rs`) and the
//! analytic gradient. Two exact reductions make an evaluation cheap: the gamma-function terms
//! depend on `x` only, so they are computed once per distinct `x`; and customers with identical
//! `(x, t_x, T)` contribute identically, so they are merged into one weighted row (summaries
//! built from whole days repeat a lot — every one-time buyer of the same first day is one row).
//! What is left per row is two logarithms, an exponential and a `ln_1p`, summed in parallel
//! with rayon when there are many rows. Above 100,000 distinct rows the fit starts from a fit on
//! a systematic sample, so the full data needs only a few quasi-Newton steps.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ClvError;
use crate::model::check_horizon;
use crate::optim;
use crate::special::{
    digamma, hyp2f1_excess, hyp2f1_series_scaled, hyp2f1_series_scaled_many, ln_gamma,
};
use crate::summary::{by_index, validate_for_fit, Summary};

/// Rows above which the likelihood is summed in parallel.
const PARALLEL_ROWS: usize = 16_384;

/// Above this many distinct rows the fit is warm-started from a fit on a systematic sample of
/// [`WARM_START_SAMPLE`] rows: the full data then needs only a few quasi-Newton steps.
/// (Smaller in unit tests, to exercise the path quickly.)
const WARM_START_ROWS: usize = if cfg!(test) { 3_000 } else { 100_000 };
const WARM_START_SAMPLE: usize = if cfg!(test) { 600 } else { 20_000 };

/// BG/NBD parameters: purchase rates ~ Gamma(r, α), drop-out probabilities ~ Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// A fitted BG/NBD model and how the fit went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgNbdFit {
    pub params: BgNbdParams,
    /// Total log-likelihood over all customers, in the summaries' time unit.
    pub log_likelihood: f64,
    pub customers: usize,
    /// Distinct `(x, t_x, T)` rows the likelihood was evaluated on.
    pub distinct_rows: usize,
    pub iterations: usize,
    pub evaluations: usize,
    /// False when the optimiser stopped on its budget before the gradient vanished.
    pub converged: bool,
}

/// Customers merged by identical `(x, t_x, T)`, grouped by `x`.
#[derive(Debug, Clone)]
pub(crate) struct BgData {
    /// Distinct `x` values with their customer counts.
    pub(crate) groups: Vec<(f64, f64)>,
    /// Rows sorted by `x`: group index, `t_x`, `T`, customer count.
    pub(crate) rows: Vec<Row>,
    pub(crate) customers: usize,
    pub(crate) max_t: f64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub(crate) group: u32,
    pub(crate) tx: f64,
    pub(crate) t: f64,
    pub(crate) n: f64,
}

impl BgData {
    /// Builds the merged rows. The summaries must have been validated.
    pub(crate) fn new<'a>(summaries: impl Iterator<Item = &'a Summary>) -> Self {
        let mut raw: Vec<(f64, f64, f64)> =
            summaries.map(|s| (s.frequency, s.recency, s.t)).collect();
        let customers = raw.len();
        let key = |a: &(f64, f64, f64), b: &(f64, f64, f64)| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.total_cmp(&b.2))
        };
        if raw.len() > PARALLEL_ROWS {
            raw.par_sort_unstable_by(key);
        } else {
            raw.sort_unstable_by(key);
        }
        let mut groups: Vec<(f64, f64)> = Vec::new();
        let mut rows: Vec<Row> = Vec::new();
        let mut max_t: f64 = 0.0;
        for (x, tx, t) in raw {
            max_t = max_t.max(t);
            match groups.last_mut() {
                Some(g) if g.0 == x => g.1 += 1.0,
                _ => groups.push((x, 1.0)),
            }
            let group = (groups.len() - 1) as u32;
            match rows.last_mut() {
                Some(r) if r.group == group && r.tx == tx && r.t == t => r.n += 1.0,
                _ => rows.push(Row {
                    group,
                    tx,
                    t,
                    n: 1.0,
                }),
            }
        }
        Self {
            groups,
            rows,
            customers,
            max_t,
        }
    }

    pub(crate) fn distinct_rows(&self) -> usize {
        self.rows.len()
    }

    /// Every `k`-th row (rows are sorted by `x`, `t_x`, `T`, so this is a systematic sample
    /// stratified by frequency), about `target` rows.
    pub(crate) fn sample(&self, target: usize) -> Self {
        let stride = self.rows.len().div_ceil(target.max(1)).max(1);
        let mut groups: Vec<(f64, f64)> = Vec::new();
        let mut rows: Vec<Row> = Vec::new();
        let mut customers = 0.0;
        for row in self.rows.iter().step_by(stride) {
            let x = self.groups[row.group as usize].0;
            match groups.last_mut() {
                Some(g) if g.0 == x => g.1 += row.n,
                _ => groups.push((x, row.n)),
            }
            customers += row.n;
            rows.push(Row {
                group: (groups.len() - 1) as u32,
                ..*row
            });
        }
        Self {
            groups,
            rows,
            customers: customers as usize,
            max_t: self.max_t,
        }
    }
}

/// Per-`x` constants of one evaluation.
#[derive(Debug, Clone, Copy)]
struct GroupConst {
    /// r + x
    rx: f64,
    /// ln a − ln(b + x − 1) for x > 0
    ln_drop: f64,
    /// 1 / (b + x − 1) for x > 0
    inv_bx1: f64,
    repeat: bool,
}

/// Sums of the per-row terms: log-likelihood and the derivatives by r, α, ln a, b.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    ll: f64,
    dr: f64,
    dalpha: f64,
    dlna: f64,
    db: f64,
}

impl std::ops::Add for Acc {
    type Output = Acc;
    fn add(self, o: Acc) -> Acc {
        Acc {
            ll: self.ll + o.ll,
            dr: self.dr + o.dr,
            dalpha: self.dalpha + o.dalpha,
            dlna: self.dlna + o.dlna,
            db: self.db + o.db,
        }
    }
}

fn row_terms(rows: &[Row], consts: &[GroupConst], alpha: f64) -> Acc {
    let mut acc = Acc::default();
    for row in rows {
        let gc = consts[row.group as usize];
        let at = alpha + row.t;
        let lt = at.ln();
        let alive = -gc.rx * lt;
        if !gc.repeat {
            acc.ll += row.n * alive;
            acc.dr -= row.n * lt;
            acc.dalpha -= row.n * gc.rx / at;
            continue;
        }
        let atx = alpha + row.tx;
        let ltx = atx.ln();
        let dropped = gc.ln_drop - gc.rx * ltx;
        // ln(e^alive + e^dropped) and w, the weight of the "dropped out at t_x" term.
        let (hi, lo) = if alive >= dropped {
            (alive, dropped)
        } else {
            (dropped, alive)
        };
        let e = (lo - hi).exp();
        let ll = hi + e.ln_1p();
        let w = if dropped > alive {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        };
        let n = row.n;
        acc.ll += n * ll;
        acc.dr -= n * ((1.0 - w) * lt + w * ltx);
        acc.dalpha -= n * gc.rx * ((1.0 - w) / at + w / atx);
        acc.dlna += n * w;
        acc.db -= n * w * gc.inv_bx1;
    }
    acc
}

/// Total log-likelihood and its gradient with respect to `(ln r, ln α, ln a, ln b)`.
pub(crate) fn log_likelihood_and_gradient(data: &BgData, p: &BgNbdParams) -> (f64, [f64; 4]) {
    let BgNbdParams { r, alpha, a, b } = *p;
    let consts: Vec<GroupConst> = data
        .groups
        .iter()
        .map(|&(x, _)| {
            let repeat = x > 0.0;
            let bx1 = b + x - 1.0;
            GroupConst {
                rx: r + x,
                ln_drop: if repeat { a.ln() - bx1.ln() } else { 0.0 },
                inv_bx1: if repeat { 1.0 / bx1 } else { 0.0 },
                repeat,
            }
        })
        .collect();
    let acc = if data.rows.len() > PARALLEL_ROWS {
        data.rows
            .par_chunks(4096)
            .map(|c| row_terms(c, &consts, alpha))
            // Chunk sums added in chunk order: the same result on every run and thread count.
            .collect::<Vec<Acc>>()
            .into_iter()
            .fold(Acc::default(), |x, y| x + y)
    } else {
        row_terms(&data.rows, &consts, alpha)
    };
    // Terms that depend on x only.
    let (lg_r, lg_ab, lg_b) = (ln_gamma(r), ln_gamma(a + b), ln_gamma(b));
    let (dg_r, dg_ab, dg_b) = (digamma(r), digamma(a + b), digamma(b));
    let ln_alpha = alpha.ln();
    let mut ll = acc.ll;
    let (mut dr, mut dalpha, mut da, mut db) = (acc.dr, acc.dalpha, acc.dlna / a, acc.db);
    for &(x, n) in &data.groups {
        ll += n
            * (ln_gamma(r + x) - lg_r + r * ln_alpha + lg_ab + ln_gamma(b + x)
                - lg_b
                - ln_gamma(a + b + x));
        let dab = dg_ab - digamma(a + b + x);
        dr += n * (digamma(r + x) - dg_r + ln_alpha);
        dalpha += n * r / alpha;
        da += n * dab;
        db += n * (dab + digamma(b + x) - dg_b);
    }
    (ll, [dr * r, dalpha * alpha, da * a, db * b])
}

impl BgNbdParams {
    pub(crate) fn from_log(v: &[f64]) -> Self {
        Self {
            r: v[0].exp(),
            alpha: v[1].exp(),
            a: v[2].exp(),
            b: v[3].exp(),
        }
    }

    fn is_valid(&self) -> bool {
        [self.r, self.alpha, self.a, self.b]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
    }

    /// Total log-likelihood of `summaries` under these parameters (validated first).
    pub fn log_likelihood(&self, summaries: &[Summary]) -> Result<f64, ClvError> {
        for (i, s) in summaries.iter().enumerate() {
            s.check(|| by_index(i))?;
        }
        Ok(log_likelihood_and_gradient(&BgData::new(summaries.iter()), self).0)
    }

    /// The gradient of [`Self::log_likelihood`] with respect to `(ln r, ln α, ln a, ln b)`.
    pub fn log_likelihood_gradient(&self, summaries: &[Summary]) -> Result<[f64; 4], ClvError> {
        for (i, s) in summaries.iter().enumerate() {
            s.check(|| by_index(i))?;
        }
        Ok(log_likelihood_and_gradient(&BgData::new(summaries.iter()), self).1)
    }

    /// P(alive | x, t_x, T) (Fader, Hardie & Lee 2008, note 021): 1 for `x = 0`.
    pub fn p_alive(&self, s: &Summary) -> f64 {
        if s.frequency <= 0.0 {
            return 1.0;
        }
        let x = s.frequency;
        let log_odds_dead =
            (self.r + x) * ((self.alpha + s.t).ln() - (self.alpha + s.recency).ln()) + self.a.ln()
                - (self.b + x - 1.0).ln();
        // 1 / (1 + e^log_odds_dead), without overflow.
        if log_odds_dead > 0.0 {
            let e = (-log_odds_dead).exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + log_odds_dead.exp())
        }
    }

    /// `(a+b+x−1) · [1 − ((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+x; a+b+x−1; z)] / (a−1)` with
    /// `z = t/(α+T+t)`: the expected purchases in `(T, T+t]` of a customer known to be alive.
    ///
    /// Two series evaluate it. The direct one (lifetimes' form) has positive terms and is
    /// summed with overflow scaling, so it suits heavy buyers and large parameters, but it
    /// cancels as `a → 1` (and as `a+b+x−1 → 0`). There Euler's transformation gives
    /// `(1−z)^(a−1) 2F1(a+b−1−r, a−1; a+b+x−1; z)`, evaluated by [`hyp2f1_excess`] so that
    /// `a = 1` and `a+b+x−1 = 0` are exact.
    pub(crate) fn expected_if_alive(&self, t: f64, x: f64, big_t: f64) -> Result<f64, ClvError> {
        if self.direct_form_is_stable(x) {
            self.expected_if_alive_direct(t, x, big_t)
        } else {
            self.expected_if_alive_euler(t, x, big_t)
        }
    }

    fn direct_form_is_stable(&self, x: f64) -> bool {
        (self.a - 1.0).abs() >= 0.05 && (self.a + self.b + x - 1.0).abs() >= 0.05
    }

    /// [`Self::expected_if_alive`] at several horizons, sharing the series coefficients.
    pub(crate) fn expected_if_alive_many(
        &self,
        ts: &[f64],
        x: f64,
        big_t: f64,
    ) -> Result<Vec<f64>, ClvError> {
        if !self.direct_form_is_stable(x) {
            return ts
                .iter()
                .map(|&t| self.expected_if_alive_euler(t, x, big_t))
                .collect();
        }
        let BgNbdParams { r, alpha, a, b } = *self;
        let c = a + b + x - 1.0;
        let zs: Vec<f64> = ts.iter().map(|&t| t / (alpha + big_t + t)).collect();
        let series = hyp2f1_series_scaled_many(r + x, b + x, c, &zs)?;
        Ok(zs
            .iter()
            .zip(series)
            .map(|(&z, (m, scale))| {
                let ln_p = (r + x) * (-z).ln_1p() + scale + m.abs().ln();
                let one_minus_p = if m > 0.0 {
                    -ln_p.exp_m1()
                } else {
                    1.0 + ln_p.exp()
                };
                c / (a - 1.0) * one_minus_p
            })
            .collect())
    }

    fn expected_if_alive_direct(&self, t: f64, x: f64, big_t: f64) -> Result<f64, ClvError> {
        let BgNbdParams { r, alpha, a, b } = *self;
        let z = t / (alpha + big_t + t);
        let c = a + b + x - 1.0;
        let (m, scale) = hyp2f1_series_scaled(r + x, b + x, c, z)?;
        // P = (1−z)^(r+x) 2F1(...), in logs; 1 − P without cancellation when P is near 1.
        let ln_p = (r + x) * (-z).ln_1p() + scale + m.abs().ln();
        let one_minus_p = if m > 0.0 {
            -ln_p.exp_m1()
        } else {
            1.0 + ln_p.exp()
        };
        Ok(c / (a - 1.0) * one_minus_p)
    }

    fn expected_if_alive_euler(&self, t: f64, x: f64, big_t: f64) -> Result<f64, ClvError> {
        let BgNbdParams { r, alpha, a, b } = *self;
        let z = t / (alpha + big_t + t);
        let c = a + b + x - 1.0;
        let eps = a - 1.0;
        let l = (-z).ln_1p();
        let h = hyp2f1_excess(a + b - 1.0 - r, eps, c, z)?;
        let el = eps * l;
        let expm1_over_eps = if el == 0.0 { l } else { el.exp_m1() / eps };
        Ok(-c * expm1_over_eps - el.exp() * h)
    }

    /// E[X(t)]: expected repeat purchases in `(0, t]` of a customer who has just made their
    /// first purchase (FHL 2005, eq. 9).
    pub fn expected_purchases(&self, t: f64) -> Result<f64, ClvError> {
        check_horizon(t)?;
        if t == 0.0 {
            return Ok(0.0);
        }
        self.expected_if_alive(t, 0.0, 0.0)
    }

    /// [`Self::conditional_expected_purchases`] at several horizons (each ≥ 0), faster than
    /// one at a time.
    pub fn conditional_expected_purchases_many(
        &self,
        ts: &[f64],
        s: &Summary,
    ) -> Result<Vec<f64>, ClvError> {
        for &t in ts {
            check_horizon(t)?;
        }
        let p_alive = self.p_alive(s);
        let mut out = self.expected_if_alive_many(ts, s.frequency, s.t)?;
        for (e, &t) in out.iter_mut().zip(ts) {
            *e = if t == 0.0 { 0.0 } else { *e * p_alive };
        }
        Ok(out)
    }

    /// E[Y(t) | x, t_x, T]: expected purchases in the next `t` (FHL 2005, eq. 10).
    pub fn conditional_expected_purchases(&self, t: f64, s: &Summary) -> Result<f64, ClvError> {
        check_horizon(t)?;
        if t == 0.0 {
            return Ok(0.0);
        }
        Ok(self.expected_if_alive(t, s.frequency, s.t)? * self.p_alive(s))
    }
}

/// Fits BG/NBD by maximum likelihood. The summaries are validated: at least two customers, at
/// least one repeat purchase, finite values, `0 <= recency <= T`.
pub fn fit(summaries: &[Summary]) -> Result<BgNbdFit, ClvError> {
    validate_for_fit(summaries.iter(), by_index)?;
    fit_validated(&BgData::new(summaries.iter()))
}

/// Minimises the mean negative log-likelihood of `data` from `x0` (log-parameters).
fn minimise(data: &BgData, x0: &[f64], h0: Option<&[f64]>) -> Result<optim::Minimum, ClvError> {
    let n: f64 = data.groups.iter().map(|g| g.1).sum();
    let objective = |v: &[f64], g: &mut [f64]| {
        let p = BgNbdParams::from_log(v);
        if !p.is_valid() {
            return f64::INFINITY;
        }
        let (ll, grad) = log_likelihood_and_gradient(data, &p);
        for (gi, d) in g.iter_mut().zip(grad) {
            *gi = -d / n;
        }
        -ll / n
    };
    optim::bfgs(objective, x0, h0, &optim::Options::default()).ok_or_else(|| ClvError::FitFailed {
        model: "BG/NBD",
        reason: "the log-likelihood is not finite at the starting point".into(),
    })
}

pub(crate) fn fit_validated(data: &BgData) -> Result<BgNbdFit, ClvError> {
    let n = data.customers as f64;
    // Start where lifetimes does: r = a = b = 1 and α at a tenth of the longest age (lifetimes
    // rescales time so that max T = 10 and starts from α = 1).
    let alpha0 = (data.max_t / 10.0).max(1e-6);
    let start = [0.0, alpha0.ln(), 0.0, 0.0];
    let m = if data.rows.len() > WARM_START_ROWS {
        let sample = data.sample(WARM_START_SAMPLE);
        match minimise(&sample, &start, None) {
            Ok(warm) if warm.f.is_finite() => minimise(data, &warm.x, Some(&warm.inverse_hessian))?,
            _ => minimise(data, &start, None)?,
        }
    } else {
        minimise(data, &start, None)?
    };
    let params = BgNbdParams::from_log(&m.x);
    let log_likelihood = -m.f * n;
    if !params.is_valid() || !log_likelihood.is_finite() {
        return Err(ClvError::FitFailed {
            model: "BG/NBD",
            reason: format!("parameters left the valid range: {params:?}"),
        });
    }
    Ok(BgNbdFit {
        params,
        log_likelihood,
        customers: data.customers,
        distinct_rows: data.distinct_rows(),
        iterations: m.iterations,
        evaluations: m.evaluations,
        converged: m.converged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::special::hyp2f1;

    const CDNOW: BgNbdParams = BgNbdParams {
        r: 0.242593,
        alpha: 4.413532,
        a: 0.792886,
        b: 2.425752,
    };

    fn s(x: f64, tx: f64, t: f64) -> Summary {
        Summary {
            frequency: x,
            recency: tx,
            t,
            monetary: 0.0,
        }
    }

    /// The textbook formula, as lifetimes writes it (direct 2F1, no transformation).
    fn conditional_direct(p: &BgNbdParams, t: f64, x: f64, tx: f64, big_t: f64) -> f64 {
        let BgNbdParams { r, alpha, a, b } = *p;
        let z = t / (alpha + big_t + t);
        let f = hyp2f1(r + x, b + x, a + b + x - 1.0, z).expect("2F1");
        let num = (a + b + x - 1.0) / (a - 1.0)
            * (1.0 - ((alpha + big_t) / (alpha + big_t + t)).powf(r + x) * f);
        num * p.p_alive(&s(x, tx, big_t))
    }

    #[test]
    fn stable_expectation_matches_the_direct_formula() {
        for &(t, x, tx, big_t) in &[
            (39.0, 2.0, 30.43, 38.86),
            (12.857, 0.0, 0.0, 30.0),
            (52.0, 7.0, 20.0, 25.0),
            (200.0, 1.0, 1.0, 2.0),
        ] {
            let want = conditional_direct(&CDNOW, t, x, tx, big_t);
            let got = CDNOW
                .conditional_expected_purchases(t, &s(x, tx, big_t))
                .expect("expectation");
            assert!((got - want).abs() <= 1e-10 * want.abs(), "{got} vs {want}");
        }
    }

    #[test]
    fn both_series_agree_where_both_are_valid() {
        for &a in &[0.3, 0.79, 1.3, 3.0, 40.0] {
            for &b in &[0.4, 2.4, 30.0] {
                for &x in &[0.0, 1.0, 5.0, 60.0] {
                    for &t in &[0.5, 13.0, 52.0, 400.0] {
                        let p = BgNbdParams { a, b, ..CDNOW };
                        let d = p.expected_if_alive_direct(t, x, 30.0).expect("direct");
                        let e = p.expected_if_alive_euler(t, x, 30.0).expect("euler");
                        assert!(
                            (d - e).abs() <= 1e-9 * d.abs().max(1e-12),
                            "a={a} b={b} x={x} t={t}: {d} vs {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn many_horizons_at_once_equal_one_at_a_time() {
        let ts = [0.0, 12.857, 4.345, 26.07, 52.14, 300.0];
        for p in [
            CDNOW,
            BgNbdParams { a: 1.01, ..CDNOW },
            BgNbdParams { a: 3.0, ..CDNOW },
        ] {
            for summary in [s(0.0, 0.0, 30.0), s(2.0, 30.43, 38.86), s(40.0, 20.0, 21.0)] {
                let many = p
                    .conditional_expected_purchases_many(&ts, &summary)
                    .expect("many");
                for (t, m) in ts.iter().zip(many) {
                    let one = p.conditional_expected_purchases(*t, &summary).expect("one");
                    assert!(
                        (m - one).abs() <= 1e-12 * one.max(1e-300),
                        "{p:?} {summary:?} {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn homogeneous_dropout_limit() {
        // a, b → ∞ with a/(a+b) = π: every customer drops out with probability π after each
        // purchase, and E[alive purchases in t] = (1 − ((α+T)/(α+T+πt))^(r+x)) / π.
        let (a, b) = (8.6e7, 1.5e7);
        let pi = a / (a + b);
        let p = BgNbdParams { a, b, ..CDNOW };
        let (t, x, big_t) = (13.0, 4.0, 30.0);
        let got = p.expected_if_alive(t, x, big_t).expect("finite");
        let k = CDNOW.alpha + big_t;
        let want = (1.0 - (k / (k + pi * t)).powf(CDNOW.r + x)) / pi;
        assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
    }

    #[test]
    fn expectation_is_continuous_through_a_equal_one() {
        let at = |a: f64| {
            let p = BgNbdParams { a, ..CDNOW };
            p.conditional_expected_purchases(20.0, &s(3.0, 10.0, 30.0))
                .expect("finite")
        };
        let (lo, mid, hi) = (at(1.0 - 1e-6), at(1.0), at(1.0 + 1e-6));
        assert!(mid.is_finite() && mid > 0.0);
        // Smooth: first-order steps, second-order symmetric error.
        assert!((lo - mid).abs() < 1e-5 * mid && (hi - mid).abs() < 1e-5 * mid);
        assert!(
            (0.5 * (lo + hi) - mid).abs() < 1e-10 * mid,
            "{lo} {mid} {hi}"
        );
        // and on both sides of the switch between the two series
        let (e, d) = (at(0.95 + 1e-9), at(0.95 - 1e-9));
        assert!((e - d).abs() < 1e-8 * e);
        // and where a + b − 1 = 0 (c = 0 for a new customer)
        let p = BgNbdParams {
            a: 0.4,
            b: 0.6,
            ..CDNOW
        };
        let v = p.expected_purchases(10.0).expect("finite");
        let q = BgNbdParams {
            a: 0.4,
            b: 0.6 + 1e-7,
            ..CDNOW
        };
        let w = q.expected_purchases(10.0).expect("finite");
        assert!(v.is_finite() && (v - w).abs() < 1e-6 * v);
    }

    #[test]
    fn new_customer_expectation_matches_numerical_integration() {
        // E[X(t)] = E_p[(1 − (α/(α+pt))^r) / p] with p ~ Beta(a, b); substitute p = u^(1/a) so
        // the Beta density's p^(a−1) disappears, then Simpson's rule on u.
        let p = CDNOW;
        let t = 39.0;
        let ln_beta = ln_gamma(p.a) + ln_gamma(p.b) - ln_gamma(p.a + p.b);
        let f = |u: f64| {
            if u <= 0.0 {
                // limit p → 0: (1 − (α/(α+pt))^r)/p → r t / α
                return p.r * t / p.alpha * (1.0f64).powf(p.b - 1.0) / p.a;
            }
            let q = u.powf(1.0 / p.a);
            let inner = (1.0 - (p.alpha / (p.alpha + q * t)).powf(p.r)) / q;
            inner * (1.0 - q).powf(p.b - 1.0) / p.a
        };
        let n = 200_000;
        let h = 1.0 / n as f64;
        let mut sum = f(0.0) + f(1.0);
        for i in 1..n {
            sum += if i % 2 == 1 { 4.0 } else { 2.0 } * f(i as f64 * h);
        }
        let integral = sum * h / 3.0 / ln_beta.exp();
        let closed = p.expected_purchases(t).expect("finite");
        assert!(
            (closed - integral).abs() < 1e-7 * integral,
            "{closed} vs {integral}"
        );
    }

    #[test]
    fn p_alive_properties() {
        assert_eq!(CDNOW.p_alive(&s(0.0, 0.0, 30.0)), 1.0);
        // Buying recently is a sign of life; a long silence is not.
        let recent = CDNOW.p_alive(&s(3.0, 29.0, 30.0));
        let silent = CDNOW.p_alive(&s(3.0, 2.0, 30.0));
        assert!(recent > silent && (0.0..=1.0).contains(&silent) && recent <= 1.0);
        // Extreme silence underflows to 0, never NaN.
        let gone = CDNOW.p_alive(&s(500.0, 1.0, 1e6));
        assert!((0.0..1e-100).contains(&gone));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let data: Vec<Summary> = (0..300)
            .map(|i| {
                let x = (i % 7) as f64;
                let t = 20.0 + (i % 19) as f64;
                let tx = if x > 0.0 {
                    t * ((i % 5) as f64 + 1.0) / 6.0
                } else {
                    0.0
                };
                s(x, tx, t)
            })
            .collect();
        let p = BgNbdParams {
            r: 0.6,
            alpha: 3.0,
            a: 1.4,
            b: 2.2,
        };
        let g = p.log_likelihood_gradient(&data).expect("valid");
        let logs = [p.r.ln(), p.alpha.ln(), p.a.ln(), p.b.ln()];
        for k in 0..4 {
            let h = 1e-5;
            let mut up = logs;
            up[k] += h;
            let mut dn = logs;
            dn[k] -= h;
            let fu = BgNbdParams::from_log(&up)
                .log_likelihood(&data)
                .expect("valid");
            let fd = BgNbdParams::from_log(&dn)
                .log_likelihood(&data)
                .expect("valid");
            let numeric = (fu - fd) / (2.0 * h);
            assert!(
                (numeric - g[k]).abs() <= 1e-6 * numeric.abs().max(1.0),
                "component {k}: analytic {} vs numeric {numeric}",
                g[k]
            );
        }
    }

    #[test]
    fn merged_rows_give_the_same_likelihood() {
        let a = [
            s(1.0, 2.0, 5.0),
            s(0.0, 0.0, 5.0),
            s(1.0, 2.0, 5.0),
            s(3.0, 4.0, 6.0),
        ];
        let data = BgData::new(a.iter());
        assert_eq!(data.distinct_rows(), 3);
        let merged = log_likelihood_and_gradient(&data, &CDNOW).0;
        let single: f64 = a
            .iter()
            .map(|x| log_likelihood_and_gradient(&BgData::new(std::iter::once(x)), &CDNOW).0)
            .sum();
        assert!((merged - single).abs() < 1e-12 * single.abs());
    }

    /// A seeded simulation of the BG/NBD story, for tests.
    struct Sim(u64);

    impl Sim {
        fn uniform(&mut self) -> f64 {
            // SplitMix64, top 53 bits, never 0.
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }

        /// Gamma(shape, 1) by Marsaglia & Tsang (boosted for shape < 1).
        fn gamma(&mut self, shape: f64) -> f64 {
            if shape < 1.0 {
                return self.gamma(shape + 1.0) * self.uniform().powf(1.0 / shape);
            }
            let d = shape - 1.0 / 3.0;
            let c = 1.0 / (9.0 * d).sqrt();
            loop {
                let x = self.normal();
                let v = (1.0 + c * x).powi(3);
                if v > 0.0 && self.uniform().ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                    return d * v;
                }
            }
        }

        /// One customer observed for `t`: purchases at rate λ ~ Gamma(r, α); after each one,
        /// gone with probability p ~ Beta(a, b).
        fn customer(&mut self, p: &BgNbdParams, big_t: f64) -> Summary {
            let lambda = self.gamma(p.r) / p.alpha;
            let (ga, gb) = (self.gamma(p.a), self.gamma(p.b));
            let drop = ga / (ga + gb);
            let (mut now, mut x, mut tx) = (0.0, 0.0, 0.0);
            loop {
                now += -self.uniform().ln() / lambda;
                if now > big_t {
                    break;
                }
                x += 1.0;
                tx = now;
                if self.uniform() < drop {
                    break;
                }
            }
            s(x, tx, big_t)
        }

        fn population(&mut self, p: &BgNbdParams, n: usize) -> Vec<Summary> {
            (0..n)
                .map(|_| {
                    let big_t = 20.0 + 20.0 * self.uniform();
                    self.customer(p, big_t)
                })
                .collect()
        }
    }

    #[test]
    fn fit_recovers_simulated_parameters() {
        let truth = BgNbdParams {
            r: 0.5,
            alpha: 5.0,
            a: 0.8,
            b: 2.5,
        };
        let data = Sim(7).population(&truth, 40_000);
        let fit = fit(&data).expect("fit");
        assert!(fit.converged, "{fit:?}");
        let p = fit.params;
        assert!((p.r - truth.r).abs() < 0.1 * truth.r, "{p:?}");
        assert!((p.alpha - truth.alpha).abs() < 0.1 * truth.alpha, "{p:?}");
        assert!((p.a - truth.a).abs() < 0.25 * truth.a, "{p:?}");
        assert!((p.b - truth.b).abs() < 0.25 * truth.b, "{p:?}");
        // The truth cannot beat the maximum.
        let at_truth = truth.log_likelihood(&data).expect("valid");
        assert!(at_truth <= fit.log_likelihood);
    }

    #[test]
    fn warm_start_reaches_the_same_maximum() {
        let truth = BgNbdParams {
            r: 0.5,
            alpha: 5.0,
            a: 0.8,
            b: 2.5,
        };
        let data = Sim(11).population(&truth, WARM_START_ROWS + 500);
        let merged = BgData::new(data.iter());
        assert!(merged.distinct_rows() > WARM_START_ROWS);
        let warm = fit_validated(&merged).expect("fit");
        let alpha0 = (merged.max_t / 10.0).ln();
        let cold = minimise(&merged, &[0.0, alpha0, 0.0, 0.0], None).expect("fit");
        let cold_ll = -cold.f * merged.customers as f64;
        let cold = BgNbdParams::from_log(&cold.x);
        assert!(warm.converged, "{warm:?} cold {cold:?}");
        assert!(warm.log_likelihood >= cold_ll - 1e-9 * cold_ll.abs());
        let p = warm.params;
        for (w, c) in [
            (p.r, cold.r),
            (p.alpha, cold.alpha),
            (p.a, cold.a),
            (p.b, cold.b),
        ] {
            assert!((w - c).abs() < 1e-5 * c, "{p:?} vs {cold:?}");
        }
    }

    #[test]
    fn fit_rejects_degenerate_input() {
        assert_eq!(fit(&[]), Err(ClvError::NoCustomers));
        assert_eq!(fit(&[s(1.0, 1.0, 2.0)]), Err(ClvError::SingleCustomer));
        assert_eq!(
            fit(&[s(0.0, 0.0, 2.0), s(0.0, 0.0, 3.0)]),
            Err(ClvError::NoRepeatPurchases)
        );
        assert!(matches!(
            fit(&[s(1.0, 1.0, 2.0), s(f64::NAN, 0.0, 3.0)]),
            Err(ClvError::NonFinite { .. })
        ));
        assert!(CDNOW.expected_purchases(-1.0).is_err());
        assert!(CDNOW.expected_purchases(f64::NAN).is_err());
    }
}
