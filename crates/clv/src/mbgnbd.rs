//! The MBG/NBD purchase model (Batislam, Denizel & Filiztekin 2007; lifetimes'
//! `ModifiedBetaGeoFitter`): BG/NBD in which a customer may also drop out right after the first
//! purchase, so that one-time buyers are not certainly alive. Its maximum-likelihood fit,
//! P(alive) and expected purchases.
//!
//! Per customer with history `(x, t_x, T)`:
//!
//! ```text
//! L = Γ(r+x) α^r / Γ(r) · B(a, b+x+1)/B(a, b) · (α+T)^−(r+x) · [1 + a/(b+x) · ((α+T)/(α+t_x))^(r+x)]
//! ```
//!
//! (the second term, for every customer including `x = 0`, is "dropped out at `t_x`"). The fit
//! is BFGS on the log-parameters with the analytic gradient, over rows merged by identical
//! `(x, t_x, T)`. The expectation for a customer alive at `T` is BG/NBD's with `b → b + 1`, so
//! it reuses BG/NBD's stable 2F1 evaluation.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bgnbd::{BgData, BgNbdParams, Row};
use crate::error::ClvError;
use crate::model::check_horizon;
use crate::special::{digamma, ln_gamma};
use crate::summary::{by_index, Summary};

const PARALLEL_ROWS: usize = 16_384;

/// MBG/NBD parameters: purchase rates ~ Gamma(r, α), drop-out probabilities ~ Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MbgNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    ll: f64,
    dr: f64,
    dalpha: f64,
    /// Σ n·w, w the weight of the "dropped" term
    w: f64,
    /// Σ n·w/(b+x)
    wb: f64,
}

impl std::ops::Add for Acc {
    type Output = Acc;
    fn add(self, o: Acc) -> Acc {
        Acc {
            ll: self.ll + o.ll,
            dr: self.dr + o.dr,
            dalpha: self.dalpha + o.dalpha,
            w: self.w + o.w,
            wb: self.wb + o.wb,
        }
    }
}

/// `ln(1 + e^d)` and `e^d / (1 + e^d)` without overflow.
fn softplus(d: f64) -> (f64, f64) {
    if d > 0.0 {
        let e = (-d).exp();
        (d + e.ln_1p(), 1.0 / (1.0 + e))
    } else {
        let e = d.exp();
        (e.ln_1p(), e / (1.0 + e))
    }
}

fn row_terms(rows: &[Row], groups: &[(f64, f64)], p: &MbgNbdParams) -> Acc {
    let MbgNbdParams { r, alpha, a, b } = *p;
    let ln_a = a.ln();
    let mut acc = Acc::default();
    for row in rows {
        let x = groups[row.group as usize].0;
        let rx = r + x;
        let (at, atx) = (alpha + row.t, alpha + row.tx);
        let (lt, ltx) = (at.ln(), atx.ln());
        let d = ln_a - (b + x).ln() + rx * (lt - ltx);
        let (sp, w) = softplus(d);
        let n = row.n;
        acc.ll += n * (-rx * lt + sp);
        acc.dr += n * (-lt + w * (lt - ltx));
        acc.dalpha += n * rx * (-1.0 / at + w * (1.0 / at - 1.0 / atx));
        acc.w += n * w;
        acc.wb += n * w / (b + x);
    }
    acc
}

/// Total log-likelihood and its gradient with respect to `(ln r, ln α, ln a, ln b)`.
pub(crate) fn log_likelihood_and_gradient(data: &BgData, p: &MbgNbdParams) -> (f64, [f64; 4]) {
    let MbgNbdParams { r, alpha, a, b } = *p;
    let acc = if data.rows.len() > PARALLEL_ROWS {
        data.rows
            .par_chunks(4096)
            .map(|c| row_terms(c, &data.groups, p))
            // Chunk sums added in chunk order: the same result on every run and thread count.
            .collect::<Vec<Acc>>()
            .into_iter()
            .fold(Acc::default(), |x, y| x + y)
    } else {
        row_terms(&data.rows, &data.groups, p)
    };
    let (lg_r, lg_ab, lg_b) = (ln_gamma(r), ln_gamma(a + b), ln_gamma(b));
    let (dg_r, dg_ab, dg_b) = (digamma(r), digamma(a + b), digamma(b));
    let ln_alpha = alpha.ln();
    let mut ll = acc.ll;
    let (mut dr, mut dalpha, mut da, mut db) = (acc.dr, acc.dalpha, acc.w / a, -acc.wb);
    for &(x, n) in &data.groups {
        ll += n
            * (ln_gamma(r + x) - lg_r + r * ln_alpha + lg_ab + ln_gamma(b + x + 1.0)
                - lg_b
                - ln_gamma(a + b + x + 1.0));
        let dab = dg_ab - digamma(a + b + x + 1.0);
        dr += n * (digamma(r + x) - dg_r + ln_alpha);
        dalpha += n * r / alpha;
        da += n * dab;
        db += n * (dab + digamma(b + x + 1.0) - dg_b);
    }
    (ll, [dr * r, dalpha * alpha, da * a, db * b])
}

impl MbgNbdParams {
    #[cfg(test)]
    fn from_log(v: &[f64]) -> Self {
        Self {
            r: v[0].exp(),
            alpha: v[1].exp(),
            a: v[2].exp(),
            b: v[3].exp(),
        }
    }

    #[cfg(test)]
    fn to_log(self) -> [f64; 4] {
        [self.r.ln(), self.alpha.ln(), self.a.ln(), self.b.ln()]
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

    /// P(alive | x, t_x, T) = 1 / (1 + a/(b+x) · ((α+T)/(α+t_x))^(r+x)); below 1 for one-time
    /// buyers too.
    pub fn p_alive(&self, s: &Summary) -> f64 {
        let x = s.frequency;
        let d = self.a.ln() - (self.b + x).ln()
            + (self.r + x) * ((self.alpha + s.t).ln() - (self.alpha + s.recency).ln());
        1.0 - softplus(d).1
    }

    /// BG/NBD with `b + 1`: the same expectation for a customer alive at `T`.
    fn shifted(&self) -> BgNbdParams {
        BgNbdParams {
            r: self.r,
            alpha: self.alpha,
            a: self.a,
            b: self.b + 1.0,
        }
    }

    /// E[X(t)]: expected repeat purchases in `(0, t]` of a new customer,
    /// `b/(a−1) · [1 − (α/(α+t))^r · 2F1(r, b+1; a+b; t/(α+t))]`.
    pub fn expected_purchases(&self, t: f64) -> Result<f64, ClvError> {
        let new = Summary {
            frequency: 0.0,
            recency: 0.0,
            t: 0.0,
            monetary: 0.0,
        };
        self.conditional_expected_purchases(t, &new)
    }

    /// E[Y(t) | x, t_x, T]: expected purchases in the next `t`.
    pub fn conditional_expected_purchases(&self, t: f64, s: &Summary) -> Result<f64, ClvError> {
        check_horizon(t)?;
        if t == 0.0 {
            return Ok(0.0);
        }
        Ok(self.shifted().expected_if_alive(t, s.frequency, s.t)? * self.p_alive(s))
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
        let mut out = self
            .shifted()
            .expected_if_alive_many(ts, s.frequency, s.t)?;
        for (e, &t) in out.iter_mut().zip(ts) {
            *e = if t == 0.0 { 0.0 } else { *e * p_alive };
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lifetimes 0.11.3's ModifiedBetaGeoFitter on CDNOW from transactions
    /// (tests/data/lifetimes_reference.json).
    const LIFETIMES: MbgNbdParams = MbgNbdParams {
        r: 0.524_842_903_149_633_9,
        alpha: 6.183_081_764_399_498,
        a: 0.891_359_517_271_119_8,
        b: 1.614_002_931_197_966_7,
    };

    fn sm(x: f64, tx: f64, t: f64) -> Summary {
        Summary {
            frequency: x,
            recency: tx,
            t,
            monetary: 0.0,
        }
    }

    #[test]
    fn predictions_match_lifetimes_at_its_parameters() {
        let t = 38.857_142_857_142_854;
        // customer 3 (one-time buyer) and customer 2 (x=1, t_x=1.714)
        let one = sm(0.0, 0.0, t);
        assert!((LIFETIMES.p_alive(&one) - 0.389_723_104_308_801_2).abs() < 1e-10);
        let e = LIFETIMES
            .conditional_expected_purchases(39.0, &one)
            .expect("e");
        assert!((e - 0.153_966_009_863_971_24).abs() < 1e-9, "{e}");
        let two = sm(1.0, 1.714_285_714_285_714_2, t);
        assert!((LIFETIMES.p_alive(&two) - 0.170_951_080_331_028_27).abs() < 1e-10);
        let e = LIFETIMES
            .conditional_expected_purchases(90.0 / 7.0, &two)
            .expect("e");
        assert!((e - 0.069_642_079_348_619_7).abs() < 1e-9, "{e}");
        let e = LIFETIMES.expected_purchases(39.0).expect("e");
        assert!((e - 1.182_279_847_083_809_6).abs() < 1e-9, "{e}");
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
                sm(x, tx, t)
            })
            .collect();
        let p = MbgNbdParams {
            r: 0.6,
            alpha: 3.0,
            a: 1.4,
            b: 2.2,
        };
        let g = p.log_likelihood_gradient(&data).expect("valid");
        let logs = p.to_log();
        for k in 0..4 {
            let h = 1e-5;
            let (mut up, mut dn) = (logs, logs);
            up[k] += h;
            dn[k] -= h;
            let fu = MbgNbdParams::from_log(&up)
                .log_likelihood(&data)
                .expect("valid");
            let fd = MbgNbdParams::from_log(&dn)
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
}
