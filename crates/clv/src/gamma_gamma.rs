//! The Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie 2013
//! note 025): its maximum-likelihood fit on repeat customers, the conditional expected average
//! profit, and the frequency–monetary independence check the model relies on.
//!
//! A customer's transaction values are Gamma(p, ν) with ν ~ Gamma(q, v) across customers. The
//! likelihood of the mean `m` of `x` repeat transactions is
//!
//! ```text
//! ln L = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln v + (px−1) ln m + px ln x − (px+q) ln(xm + v)
//! ```
//!
//! maximised over `ln p, ln q, ln v` with BFGS and the analytic gradient; the gamma-function
//! terms are computed once per distinct `x` and identical `(x, m)` pairs are merged.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ClvError;
use crate::optim;
use crate::special::{digamma, ln_gamma};

const PARALLEL_ROWS: usize = 16_384;

/// |Pearson correlation| between frequency and monetary value above which the independence the
/// model assumes is doubtful.
pub const CORRELATION_WARNING: f64 = 0.3;

/// Gamma-Gamma parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaParams {
    pub p: f64,
    pub q: f64,
    pub v: f64,
}

/// A fitted Gamma-Gamma model and how the fit went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaFit {
    pub params: GammaGammaParams,
    pub log_likelihood: f64,
    /// Repeat customers with a positive monetary value: those the model was fitted on.
    pub customers: usize,
    pub iterations: usize,
    pub evaluations: usize,
    pub converged: bool,
}

/// The frequency–monetary correlation among the customers the spend model is fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IndependenceCheck {
    pub pearson: f64,
    pub customers: usize,
    /// `|pearson| > CORRELATION_WARNING`: the model's independence assumption looks violated.
    pub warning: bool,
}

impl GammaGammaParams {
    /// E[M | x, m]: the expected average transaction value of a customer with `x` repeat
    /// purchases of mean value `m` — a weighted mean of `m` and the population mean `pv/(q−1)`.
    /// `m` below 0 is taken as 0. Needs `q > 1` (otherwise the population mean is infinite).
    pub fn conditional_expected_average_profit(&self, x: f64, m: f64) -> Result<f64, ClvError> {
        if !(x.is_finite() && m.is_finite() && x >= 0.0) {
            return Err(ClvError::InvalidOption(format!(
                "conditional expected profit needs finite x >= 0 and m, got x = {x}, m = {m}"
            )));
        }
        let GammaGammaParams { p, q, v } = *self;
        if q <= 1.0 {
            return Err(ClvError::FitFailed {
                model: "Gamma-Gamma",
                reason: format!("q = {q} <= 1: the population mean spend is infinite"),
            });
        }
        let m = m.max(0.0);
        let weight = p * x / (p * x + q - 1.0);
        let population_mean = v * p / (q - 1.0);
        Ok((1.0 - weight) * population_mean + weight * m)
    }

    /// Total log-likelihood of `(x, m)` pairs (all with `x > 0`, `m > 0`).
    pub fn log_likelihood(&self, customers: &[(f64, f64)]) -> Result<f64, ClvError> {
        let data = GgData::new(customers.iter().copied())?;
        Ok(log_likelihood_and_gradient(&data, self).0)
    }

    /// Gradient of [`Self::log_likelihood`] with respect to `(ln p, ln q, ln v)`.
    pub fn log_likelihood_gradient(&self, customers: &[(f64, f64)]) -> Result<[f64; 3], ClvError> {
        let data = GgData::new(customers.iter().copied())?;
        Ok(log_likelihood_and_gradient(&data, self).1)
    }

    pub(crate) fn from_log(v: &[f64]) -> Self {
        Self {
            p: v[0].exp(),
            q: v[1].exp(),
            v: v[2].exp(),
        }
    }

    fn is_valid(&self) -> bool {
        [self.p, self.q, self.v]
            .iter()
            .all(|x| x.is_finite() && *x > 0.0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Row {
    group: u32,
    m: f64,
    ln_m: f64,
    n: f64,
}

#[derive(Debug, Clone)]
struct GgData {
    /// Distinct x with customer counts.
    groups: Vec<(f64, f64)>,
    rows: Vec<Row>,
    customers: usize,
    mean_m: f64,
}

impl GgData {
    /// `(x, m)` pairs, each with `x > 0` and `m > 0`, finite.
    fn new(pairs: impl Iterator<Item = (f64, f64)>) -> Result<Self, ClvError> {
        let mut raw: Vec<(f64, f64)> = Vec::new();
        for (i, (x, m)) in pairs.enumerate() {
            if !(x.is_finite() && m.is_finite() && x > 0.0 && m > 0.0) {
                return Err(ClvError::InvalidSummary {
                    customer: format!("#{i}"),
                    reason: format!(
                        "Gamma-Gamma needs a frequency > 0 and a monetary value > 0, got {x} and {m}"
                    ),
                });
            }
            raw.push((x, m));
        }
        match raw.len() {
            0 => return Err(ClvError::NoPositiveMonetary),
            1 => return Err(ClvError::SingleCustomer),
            _ => {}
        }
        let customers = raw.len();
        let mean_m = raw.iter().map(|r| r.1).sum::<f64>() / customers as f64;
        let key = |a: &(f64, f64), b: &(f64, f64)| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1));
        if raw.len() > PARALLEL_ROWS {
            raw.par_sort_unstable_by(key);
        } else {
            raw.sort_unstable_by(key);
        }
        let mut groups: Vec<(f64, f64)> = Vec::new();
        let mut rows: Vec<Row> = Vec::new();
        for (x, m) in raw {
            match groups.last_mut() {
                Some(g) if g.0 == x => g.1 += 1.0,
                _ => groups.push((x, 1.0)),
            }
            let group = (groups.len() - 1) as u32;
            match rows.last_mut() {
                Some(r) if r.group == group && r.m == m => r.n += 1.0,
                _ => rows.push(Row {
                    group,
                    m,
                    ln_m: m.ln(),
                    n: 1.0,
                }),
            }
        }
        Ok(Self {
            groups,
            rows,
            customers,
            mean_m,
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    ll: f64,
    dp: f64,
    dq: f64,
    dv: f64,
}

impl std::ops::Add for Acc {
    type Output = Acc;
    fn add(self, o: Acc) -> Acc {
        Acc {
            ll: self.ll + o.ll,
            dp: self.dp + o.dp,
            dq: self.dq + o.dq,
            dv: self.dv + o.dv,
        }
    }
}

fn row_terms(rows: &[Row], groups: &[(f64, f64)], p: &GammaGammaParams) -> Acc {
    let mut acc = Acc::default();
    for row in rows {
        let x = groups[row.group as usize].0;
        let px = p.p * x;
        let xmv = x * row.m + p.v;
        let l = xmv.ln();
        let n = row.n;
        acc.ll += n * ((px - 1.0) * row.ln_m - (px + p.q) * l);
        acc.dp += n * x * (row.ln_m - l);
        acc.dq -= n * l;
        acc.dv -= n * (px + p.q) / xmv;
    }
    acc
}

/// Log-likelihood and gradient with respect to `(ln p, ln q, ln v)`.
fn log_likelihood_and_gradient(data: &GgData, p: &GammaGammaParams) -> (f64, [f64; 3]) {
    let acc = if data.rows.len() > PARALLEL_ROWS {
        data.rows
            .par_chunks(4096)
            .map(|c| row_terms(c, &data.groups, p))
            // Chunk sums added in chunk order: the same result on every run and thread count.
            .collect::<Vec<Acc>>()
            .into_iter()
            .fold(Acc::default(), |a, b| a + b)
    } else {
        row_terms(&data.rows, &data.groups, p)
    };
    let GammaGammaParams { p: pp, q, v } = *p;
    let (lg_q, dg_q, ln_v) = (ln_gamma(q), digamma(q), v.ln());
    let (mut ll, mut dp, mut dq, mut dv) = (acc.ll, acc.dp, acc.dq, acc.dv);
    for &(x, n) in &data.groups {
        let px = pp * x;
        ll += n * (ln_gamma(px + q) - ln_gamma(px) - lg_q + q * ln_v + px * x.ln());
        let dg = digamma(px + q);
        dp += n * x * (dg - digamma(px) + x.ln());
        dq += n * (dg - dg_q + ln_v);
        dv += n * q / v;
    }
    (ll, [dp * pp, dq * q, dv * v])
}

/// Fits Gamma-Gamma on `(frequency, monetary)` pairs of repeat customers; every pair must have
/// `frequency > 0` and `monetary > 0` (see [`repeat_customers`] to select them).
pub fn fit(customers: &[(f64, f64)]) -> Result<GammaGammaFit, ClvError> {
    let data = GgData::new(customers.iter().copied())?;
    let n = data.customers as f64;
    // p = 1, q = 2 and v at the mean spend: the population mean pv/(q−1) equals the sample mean.
    let x0 = [0.0, 2f64.ln(), data.mean_m.ln()];
    let objective = |w: &[f64], g: &mut [f64]| {
        let p = GammaGammaParams::from_log(w);
        if !p.is_valid() {
            return f64::INFINITY;
        }
        let (ll, grad) = log_likelihood_and_gradient(&data, &p);
        for (gi, d) in g.iter_mut().zip(grad) {
            *gi = -d / n;
        }
        -ll / n
    };
    let m = optim::bfgs(objective, &x0, None, &optim::Options::default()).ok_or_else(|| {
        ClvError::FitFailed {
            model: "Gamma-Gamma",
            reason: "the log-likelihood is not finite at the starting point".into(),
        }
    })?;
    let params = GammaGammaParams::from_log(&m.x);
    let log_likelihood = -m.f * n;
    if !params.is_valid() || !log_likelihood.is_finite() {
        return Err(ClvError::FitFailed {
            model: "Gamma-Gamma",
            reason: format!("parameters left the valid range: {params:?}"),
        });
    }
    Ok(GammaGammaFit {
        params,
        log_likelihood,
        customers: data.customers,
        iterations: m.iterations,
        evaluations: m.evaluations,
        converged: m.converged,
    })
}

/// Covariance of the log-parameters `(ln p, ln q, ln v)` at `params`: the inverse observed
/// information (central differences of the analytic gradient); `None` when it is not positive
/// definite or the pairs are unusable.
pub(crate) fn log_covariance(
    customers: &[(f64, f64)],
    params: &GammaGammaParams,
) -> Option<[[f64; 3]; 3]> {
    let data = GgData::new(customers.iter().copied()).ok()?;
    let x = [params.p.ln(), params.q.ln(), params.v.ln()];
    let h = 1e-4;
    let mut info = [[0.0; 3]; 3];
    for k in 0..3 {
        let (mut up, mut dn) = (x, x);
        up[k] += h;
        dn[k] -= h;
        let gu = log_likelihood_and_gradient(&data, &GammaGammaParams::from_log(&up)).1;
        let gd = log_likelihood_and_gradient(&data, &GammaGammaParams::from_log(&dn)).1;
        for j in 0..3 {
            info[j][k] = -(gu[j] - gd[j]) / (2.0 * h);
        }
    }
    let sym: [[f64; 3]; 3] =
        std::array::from_fn(|i| std::array::from_fn(|j| 0.5 * (info[i][j] + info[j][i])));
    crate::model::invert_spd(&sym)
}

/// The `(frequency, monetary)` pairs the spend model is fitted on: repeat customers with a
/// positive monetary value. Customers with a non-finite value are left out too (they are
/// rejected earlier by summary validation).
pub fn repeat_customers<'a>(
    summaries: impl IntoIterator<Item = &'a crate::summary::Summary>,
) -> Vec<(f64, f64)> {
    summaries
        .into_iter()
        .filter(|s| s.frequency > 0.0 && s.monetary > 0.0 && s.monetary.is_finite())
        .map(|s| (s.frequency, s.monetary))
        .collect()
}

/// Pearson correlation between frequency and monetary value over `pairs`; `None` with fewer
/// than two pairs or no variance in either.
pub fn independence_check(pairs: &[(f64, f64)]) -> Option<IndependenceCheck> {
    let n = pairs.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let (mx, my) = pairs
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / nf, b + y / nf));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        let (dx, dy) = (x - mx, y - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    let pearson = sxy / (sxx.sqrt() * syy.sqrt());
    pearson.is_finite().then_some(IndependenceCheck {
        pearson,
        customers: n,
        warning: pearson.abs() > CORRELATION_WARNING,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let data: Vec<(f64, f64)> = (0..200)
            .map(|i| (1.0 + (i % 6) as f64, 5.0 + ((i * 37) % 53) as f64 * 0.7))
            .collect();
        let p = GammaGammaParams {
            p: 4.0,
            q: 3.0,
            v: 12.0,
        };
        let g = p.log_likelihood_gradient(&data).expect("valid");
        let logs = [p.p.ln(), p.q.ln(), p.v.ln()];
        for k in 0..3 {
            let h = 1e-5;
            let (mut up, mut dn) = (logs, logs);
            up[k] += h;
            dn[k] -= h;
            let fu = GammaGammaParams::from_log(&up)
                .log_likelihood(&data)
                .expect("valid");
            let fd = GammaGammaParams::from_log(&dn)
                .log_likelihood(&data)
                .expect("valid");
            let numeric = (fu - fd) / (2.0 * h);
            assert!(
                (numeric - g[k]).abs() <= 1e-6 * numeric.abs().max(1.0),
                "component {k}: {} vs {numeric}",
                g[k]
            );
        }
    }

    #[test]
    fn expected_profit_shrinks_towards_the_population_mean() {
        let p = GammaGammaParams {
            p: 6.0,
            q: 4.0,
            v: 15.0,
        };
        let pop = p
            .conditional_expected_average_profit(0.0, 0.0)
            .expect("q > 1");
        assert!((pop - 6.0 * 15.0 / 3.0).abs() < 1e-12);
        let few = p
            .conditional_expected_average_profit(1.0, 100.0)
            .expect("ok");
        let many = p
            .conditional_expected_average_profit(50.0, 100.0)
            .expect("ok");
        assert!(pop < few && few < many && many < 100.0);
        let heavy_tail = GammaGammaParams { q: 0.9, ..p };
        assert!(heavy_tail
            .conditional_expected_average_profit(1.0, 10.0)
            .is_err());
    }

    #[test]
    fn degenerate_input_is_an_error() {
        assert_eq!(fit(&[]), Err(ClvError::NoPositiveMonetary));
        assert_eq!(fit(&[(1.0, 3.0)]), Err(ClvError::SingleCustomer));
        assert!(matches!(
            fit(&[(1.0, 3.0), (2.0, 0.0)]),
            Err(ClvError::InvalidSummary { .. })
        ));
        assert!(matches!(
            fit(&[(1.0, 3.0), (2.0, f64::NAN)]),
            Err(ClvError::InvalidSummary { .. })
        ));
    }

    #[test]
    fn correlation_check() {
        let indep = [(1.0, 5.0), (2.0, 5.0), (1.0, 7.0), (2.0, 7.0)];
        let c = independence_check(&indep).expect("variance");
        assert!(c.pearson.abs() < 1e-12 && !c.warning);
        let tied: Vec<(f64, f64)> = (1..20).map(|i| (i as f64, 3.0 * i as f64 + 1.0)).collect();
        let c = independence_check(&tied).expect("variance");
        assert!((c.pearson - 1.0).abs() < 1e-12 && c.warning);
        assert!(independence_check(&[(1.0, 1.0)]).is_none());
        assert!(independence_check(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
    }
}
