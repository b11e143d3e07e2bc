//! The three purchase models behind one interface: which model ([`Model`]), its fitted
//! parameters ([`ModelParams`], serialised as `{"bgnbd": {r, alpha, a, b}}`,
//! `{"mbgnbd": {r, alpha, a, b}}` or `{"pareto_nbd": {r, alpha, s, beta}}`), the fit with its
//! standard errors ([`ModelFit`]), and the per-customer answers derived from any of them:
//! P(alive), expected purchases, the expected time to the next order and the churn-risk band.
//!
//! Standard errors come from the observed information: the Hessian of the total log-likelihood
//! at the optimum, by forward differences of the analytic gradient on the log-parameters,
//! inverted. The covariance of the log-parameters is kept for the delta-method intervals of
//! [`crate::predict()`]; the standard error of a parameter θ is `θ · se(ln θ)`.

use serde::{Deserialize, Serialize};

use crate::bgnbd::{self, BgData, BgNbdParams};
use crate::error::ClvError;
use crate::mbgnbd::{self, MbgNbdParams};
use crate::optim;
use crate::pareto_nbd::{self, ParetoNbdParams};
use crate::summary::{by_index, validate_for_fit, Summary};

/// Above this many distinct rows the MBG/NBD and Pareto/NBD fits start from a fit on a
/// systematic sample (as BG/NBD's does).
const WARM_START_ROWS: usize = if cfg!(test) { 3_000 } else { 20_000 };
const WARM_START_SAMPLE: usize = if cfg!(test) { 600 } else { 5_000 };

/// A purchase model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Model {
    /// BG/NBD (Fader, Hardie & Lee 2005): drop-out only right after a repeat purchase, so every
    /// one-time buyer has P(alive) = 1.
    #[default]
    #[serde(rename = "bgnbd")]
    BgNbd,
    /// MBG/NBD (Batislam et al. 2007): drop-out also possible right after the first purchase.
    #[serde(rename = "mbgnbd")]
    MbgNbd,
    /// Pareto/NBD (Schmittlein et al. 1987): drop-out at any time.
    #[serde(rename = "pareto_nbd")]
    ParetoNbd,
}

impl Model {
    pub const ALL: [Model; 3] = [Model::BgNbd, Model::MbgNbd, Model::ParetoNbd];

    /// `bgnbd`, `mbgnbd` or `pareto_nbd` (the serde names).
    pub fn as_str(self) -> &'static str {
        match self {
            Model::BgNbd => "bgnbd",
            Model::MbgNbd => "mbgnbd",
            Model::ParetoNbd => "pareto_nbd",
        }
    }

    /// A human name: `BG/NBD`, `MBG/NBD`, `Pareto/NBD`.
    pub fn label(self) -> &'static str {
        match self {
            Model::BgNbd => "BG/NBD",
            Model::MbgNbd => "MBG/NBD",
            Model::ParetoNbd => "Pareto/NBD",
        }
    }

    /// Parses `bgnbd`, `mbgnbd`, `pareto-nbd` (also `bg-nbd`, `bg/nbd`, `mbg-nbd`, `pareto_nbd`,
    /// `pareto`, `paretonbd`), case-insensitively. `auto` is not a model: see
    /// [`crate::selection`].
    pub fn parse(s: &str) -> Option<Self> {
        let k: String = s
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        match k.as_str() {
            "bgnbd" => Some(Model::BgNbd),
            "mbgnbd" => Some(Model::MbgNbd),
            "paretonbd" | "pareto" => Some(Model::ParetoNbd),
            _ => None,
        }
    }

    /// The names of the four parameters, in [`ModelParams::values`] order.
    pub fn parameter_names(self) -> [&'static str; 4] {
        match self {
            Model::BgNbd | Model::MbgNbd => ["r", "alpha", "a", "b"],
            Model::ParetoNbd => ["r", "alpha", "s", "beta"],
        }
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Fitted parameters of one of the models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ModelParams {
    #[serde(rename = "bgnbd")]
    BgNbd(BgNbdParams),
    #[serde(rename = "mbgnbd")]
    MbgNbd(MbgNbdParams),
    #[serde(rename = "pareto_nbd")]
    ParetoNbd(ParetoNbdParams),
}

impl ModelParams {
    pub fn model(&self) -> Model {
        match self {
            ModelParams::BgNbd(_) => Model::BgNbd,
            ModelParams::MbgNbd(_) => Model::MbgNbd,
            ModelParams::ParetoNbd(_) => Model::ParetoNbd,
        }
    }

    /// The four parameters in [`Model::parameter_names`] order.
    pub fn values(&self) -> [f64; 4] {
        match *self {
            ModelParams::BgNbd(p) => [p.r, p.alpha, p.a, p.b],
            ModelParams::MbgNbd(p) => [p.r, p.alpha, p.a, p.b],
            ModelParams::ParetoNbd(p) => [p.r, p.alpha, p.s, p.beta],
        }
    }

    /// The parameters of `model` from their values in [`Model::parameter_names`] order.
    pub fn from_values(model: Model, v: [f64; 4]) -> Self {
        let [a0, a1, a2, a3] = v;
        match model {
            Model::BgNbd => ModelParams::BgNbd(BgNbdParams {
                r: a0,
                alpha: a1,
                a: a2,
                b: a3,
            }),
            Model::MbgNbd => ModelParams::MbgNbd(MbgNbdParams {
                r: a0,
                alpha: a1,
                a: a2,
                b: a3,
            }),
            Model::ParetoNbd => ModelParams::ParetoNbd(ParetoNbdParams {
                r: a0,
                alpha: a1,
                s: a2,
                beta: a3,
            }),
        }
    }

    pub(crate) fn to_log(self) -> [f64; 4] {
        self.values().map(f64::ln)
    }

    pub(crate) fn from_log(model: Model, v: &[f64]) -> Self {
        Self::from_values(model, [v[0].exp(), v[1].exp(), v[2].exp(), v[3].exp()])
    }

    fn is_valid(&self) -> bool {
        self.values().iter().all(|v| v.is_finite() && *v > 0.0)
    }

    /// P(alive | x, t_x, T).
    pub fn p_alive(&self, s: &Summary) -> f64 {
        match self {
            ModelParams::BgNbd(p) => p.p_alive(s),
            ModelParams::MbgNbd(p) => p.p_alive(s),
            ModelParams::ParetoNbd(p) => p.p_alive(s),
        }
    }

    /// E[X(t)]: expected repeat purchases in `(0, t]` of a new customer.
    pub fn expected_purchases(&self, t: f64) -> Result<f64, ClvError> {
        match self {
            ModelParams::BgNbd(p) => p.expected_purchases(t),
            ModelParams::MbgNbd(p) => p.expected_purchases(t),
            ModelParams::ParetoNbd(p) => p.expected_purchases(t),
        }
    }

    /// E[Y(t) | x, t_x, T]: expected purchases in the next `t`.
    pub fn conditional_expected_purchases(&self, t: f64, s: &Summary) -> Result<f64, ClvError> {
        match self {
            ModelParams::BgNbd(p) => p.conditional_expected_purchases(t, s),
            ModelParams::MbgNbd(p) => p.conditional_expected_purchases(t, s),
            ModelParams::ParetoNbd(p) => p.conditional_expected_purchases(t, s),
        }
    }

    /// [`Self::conditional_expected_purchases`] at several horizons.
    pub fn conditional_expected_purchases_many(
        &self,
        ts: &[f64],
        s: &Summary,
    ) -> Result<Vec<f64>, ClvError> {
        match self {
            ModelParams::BgNbd(p) => p.conditional_expected_purchases_many(ts, s),
            ModelParams::MbgNbd(p) => p.conditional_expected_purchases_many(ts, s),
            ModelParams::ParetoNbd(p) => p.conditional_expected_purchases_many(ts, s),
        }
    }

    /// The expected time to the next order, in the summary's unit: the median of the waiting
    /// time to the next purchase of a customer who is still active, under the posterior of
    /// their purchase rate, `λ | x, T, alive ~ Gamma(r+x, α+T)` (the same in all three models):
    /// `P(no purchase within t) = ((α+T)/(α+T+t))^(r+x) = 1/2` gives
    /// `t = (α+T)·(2^(1/(r+x)) − 1)`. It says *when*, if the customer buys again; *whether* is
    /// P(alive) (see [`ChurnRisk`]).
    pub fn next_order_in(&self, s: &Summary) -> f64 {
        let [r, alpha, _, _] = self.values();
        (alpha + s.t) * ((std::f64::consts::LN_2 / (r + s.frequency)).exp_m1())
    }

    /// Total log-likelihood and gradient with respect to the log-parameters.
    pub(crate) fn log_likelihood_and_gradient(&self, data: &BgData) -> (f64, [f64; 4]) {
        match self {
            ModelParams::BgNbd(p) => bgnbd::log_likelihood_and_gradient(data, p),
            ModelParams::MbgNbd(p) => mbgnbd::log_likelihood_and_gradient(data, p),
            ModelParams::ParetoNbd(p) => pareto_nbd::log_likelihood_and_gradient(data, p),
        }
    }

    /// Total log-likelihood of `summaries` under these parameters (validated first).
    pub fn log_likelihood(&self, summaries: &[Summary]) -> Result<f64, ClvError> {
        for (i, s) in summaries.iter().enumerate() {
            s.check(|| by_index(i))?;
        }
        Ok(self
            .log_likelihood_and_gradient(&BgData::new(summaries.iter()))
            .0)
    }
}

/// A fitted purchase model, how the fit went, and its uncertainty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFit {
    pub params: ModelParams,
    /// Total log-likelihood over all customers, in the summaries' time unit.
    pub log_likelihood: f64,
    pub customers: usize,
    /// Distinct `(x, t_x, T)` rows the likelihood was evaluated on.
    pub distinct_rows: usize,
    pub iterations: usize,
    pub evaluations: usize,
    /// False when the optimiser stopped on its budget before the gradient vanished.
    pub converged: bool,
    /// Standard errors of the parameters (same shape as `params`), from the observed
    /// information; `None` when the Hessian is not negative definite (a flat or boundary
    /// optimum).
    pub std_errors: Option<ModelParams>,
    /// Covariance of the log-parameters (row-major 4×4), the inverse observed information.
    pub log_covariance: Option<[[f64; 4]; 4]>,
}

impl ModelFit {
    pub fn model(&self) -> Model {
        self.params.model()
    }

    /// A `level` (e.g. 0.95) Wald interval for each parameter, on the log scale and mapped back
    /// (so it stays positive); `None` without a covariance or for a level outside (0, 1).
    pub fn parameter_intervals(&self, level: f64) -> Option<[(f64, f64); 4]> {
        let cov = self.log_covariance?;
        let z = normal_quantile_two_sided(level)?;
        let v = self.params.values();
        Some(std::array::from_fn(|k| {
            let se = cov[k][k].sqrt();
            (v[k] * (-z * se).exp(), v[k] * (z * se).exp())
        }))
    }
}

/// Checks a prediction horizon.
pub(crate) fn check_horizon(t: f64) -> Result<(), ClvError> {
    if t.is_finite() && t >= 0.0 {
        Ok(())
    } else {
        Err(ClvError::InvalidOption(format!(
            "the prediction horizon must be a finite number >= 0, got {t}"
        )))
    }
}

/// `(1 − e^(−ε·l)) / ε`, and its limit `l` at `ε = 0`.
pub(crate) fn expm1_ratio(eps: f64, l: f64) -> f64 {
    if eps == 0.0 {
        l
    } else {
        -(-eps * l).exp_m1() / eps
    }
}

/// `z` with `P(|Z| <= z) = level` for a standard normal `Z`; `None` unless `0 < level < 1`.
pub fn normal_quantile_two_sided(level: f64) -> Option<f64> {
    if !(level > 0.0 && level < 1.0) {
        return None;
    }
    Some(normal_quantile(0.5 + 0.5 * level))
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if p < 0.02425 {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - 0.02425 {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

/// Churn risk from P(alive), with fixed, documented cut-offs: **low** when P(alive) ≥ 0.7,
/// **medium** when 0.3 ≤ P(alive) < 0.7, **high** when P(alive) < 0.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChurnRisk {
    Low,
    Medium,
    High,
}

impl ChurnRisk {
    /// P(alive) at or above this is low risk.
    pub const LOW_FROM: f64 = 0.7;
    /// P(alive) below this is high risk.
    pub const HIGH_BELOW: f64 = 0.3;

    pub fn from_p_alive(p_alive: f64) -> Self {
        if p_alive >= Self::LOW_FROM {
            ChurnRisk::Low
        } else if p_alive >= Self::HIGH_BELOW {
            ChurnRisk::Medium
        } else {
            ChurnRisk::High
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChurnRisk::Low => "low",
            ChurnRisk::Medium => "medium",
            ChurnRisk::High => "high",
        }
    }
}

impl std::fmt::Display for ChurnRisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Fits `model` by maximum likelihood. The summaries are validated: at least two customers, at
/// least one repeat purchase, finite values, `0 <= recency <= T`.
pub fn fit(summaries: &[Summary], model: Model) -> Result<ModelFit, ClvError> {
    validate_for_fit(summaries.iter(), by_index)?;
    fit_validated(&BgData::new(summaries.iter()), model)
}

/// Minimises the mean negative log-likelihood of `model` on `data` from `x0` (log-parameters).
fn minimise(
    data: &BgData,
    model: Model,
    x0: &[f64],
    h0: Option<&[f64]>,
) -> Result<optim::Minimum, ClvError> {
    let n = data.customers as f64;
    let objective = |v: &[f64], g: &mut [f64]| {
        let p = ModelParams::from_log(model, v);
        if !p.is_valid() {
            return f64::INFINITY;
        }
        let (ll, grad) = p.log_likelihood_and_gradient(data);
        for (gi, d) in g.iter_mut().zip(grad) {
            *gi = -d / n;
        }
        -ll / n
    };
    optim::bfgs(objective, x0, h0, &optim::Options::default()).ok_or_else(|| ClvError::FitFailed {
        model: model.label(),
        reason: "the log-likelihood is not finite at the starting point".into(),
    })
}

pub(crate) fn fit_validated(data: &BgData, model: Model) -> Result<ModelFit, ClvError> {
    let (params, iterations, evaluations, converged) = match model {
        Model::BgNbd => {
            let f = bgnbd::fit_validated(data)?;
            (
                ModelParams::BgNbd(f.params),
                f.iterations,
                f.evaluations,
                f.converged,
            )
        }
        Model::MbgNbd | Model::ParetoNbd => {
            // Where lifetimes starts (it rescales time so that max T = 10 and starts at 1).
            let scale = (data.max_t / 10.0).max(1e-6).ln();
            let start = match model {
                Model::ParetoNbd => [0.0, scale, 0.0, scale],
                _ => [0.0, scale, 0.0, 0.0],
            };
            let m = if data.rows.len() > WARM_START_ROWS {
                let sample = data.sample(WARM_START_SAMPLE);
                match minimise(&sample, model, &start, None) {
                    Ok(warm) if warm.f.is_finite() => {
                        minimise(data, model, &warm.x, Some(&warm.inverse_hessian))?
                    }
                    _ => minimise(data, model, &start, None)?,
                }
            } else {
                minimise(data, model, &start, None)?
            };
            (
                ModelParams::from_log(model, &m.x),
                m.iterations,
                m.evaluations,
                m.converged,
            )
        }
    };
    let (log_likelihood, _) = params.log_likelihood_and_gradient(data);
    if !params.is_valid() || !log_likelihood.is_finite() {
        return Err(ClvError::FitFailed {
            model: model.label(),
            reason: format!("parameters left the valid range: {params:?}"),
        });
    }
    let log_covariance = log_covariance(data, &params);
    let std_errors = log_covariance.map(|c| {
        let v = params.values();
        ModelParams::from_values(model, std::array::from_fn(|k| v[k] * c[k][k].sqrt()))
    });
    Ok(ModelFit {
        params,
        log_likelihood,
        customers: data.customers,
        distinct_rows: data.distinct_rows(),
        iterations,
        evaluations,
        converged,
        std_errors,
        log_covariance,
    })
}

/// The inverse of the observed information on the log-parameters: minus the inverse Hessian of
/// the total log-likelihood, by forward differences of the analytic gradient.
pub(crate) fn log_covariance(data: &BgData, params: &ModelParams) -> Option<[[f64; 4]; 4]> {
    let model = params.model();
    let x = params.to_log();
    // Forward differences of the analytic gradient (5 evaluations; O(h) error is far below the
    // statistical precision of a standard error).
    let h = 1e-5;
    let g0 = params.log_likelihood_and_gradient(data).1;
    let mut hess = [[0.0; 4]; 4];
    for k in 0..4 {
        let mut up = x;
        up[k] += h;
        let gu = ModelParams::from_log(model, &up)
            .log_likelihood_and_gradient(data)
            .1;
        for j in 0..4 {
            hess[j][k] = -(gu[j] - g0[j]) / h;
        }
    }
    let info: [[f64; 4]; 4] =
        std::array::from_fn(|i| std::array::from_fn(|j| 0.5 * (hess[i][j] + hess[j][i])));
    invert_spd(&info)
}

/// The inverse of a symmetric positive-definite matrix by Cholesky; `None` if it is not.
#[allow(clippy::needless_range_loop)] // index notation is the clearest for a Cholesky
pub(crate) fn invert_spd<const N: usize>(m: &[[f64; N]; N]) -> Option<[[f64; N]; N]> {
    let mut l = [[0.0; N]; N];
    for i in 0..N {
        for j in 0..=i {
            let mut sum = m[i][j];
            for k in 0..j {
                sum -= l[i][k] * l[j][k];
            }
            if i == j {
                if !(sum > 0.0 && sum.is_finite()) {
                    return None;
                }
                l[i][i] = sum.sqrt();
            } else {
                l[i][j] = sum / l[j][j];
            }
        }
    }
    // inverse of L, then L⁻ᵀ L⁻¹
    let mut li = [[0.0; N]; N];
    for i in 0..N {
        li[i][i] = 1.0 / l[i][i];
        for j in 0..i {
            let mut sum = 0.0;
            for k in j..i {
                sum -= l[i][k] * li[k][j];
            }
            li[i][j] = sum / l[i][i];
        }
    }
    let mut inv = [[0.0; N]; N];
    for i in 0..N {
        for j in 0..N {
            inv[i][j] = (i.max(j)..N).map(|k| li[k][i] * li[k][j]).sum();
        }
    }
    inv.iter()
        .all(|r| r.iter().all(|v| v.is_finite()))
        .then_some(inv)
}

/// `gᵀ C g`.
pub(crate) fn quadratic_form<const N: usize>(g: &[f64; N], c: &[[f64; N]; N]) -> f64 {
    (0..N)
        .map(|i| (0..N).map(|j| g[i] * c[i][j] * g[j]).sum::<f64>())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles() {
        let z = normal_quantile_two_sided(0.95).expect("level");
        assert!((z - 1.959_963_984_540_054).abs() < 1e-8, "{z}");
        let z = normal_quantile_two_sided(0.9).expect("level");
        assert!((z - 1.644_853_626_951_472_2).abs() < 1e-8, "{z}");
        assert!((normal_quantile(0.001) + 3.090_232_306_167_813_5).abs() < 1e-8);
        assert!(normal_quantile_two_sided(1.0).is_none());
        assert!(normal_quantile_two_sided(f64::NAN).is_none());
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn spd_inverse() {
        let m = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let inv = invert_spd(&m).expect("spd");
        for i in 0..3 {
            for j in 0..3 {
                let e: f64 = (0..3).map(|k| m[i][k] * inv[k][j]).sum();
                assert!((e - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(invert_spd(&[[1.0, 2.0], [2.0, 1.0]]).is_none());
    }

    #[test]
    fn churn_bands_and_model_names() {
        assert_eq!(ChurnRisk::from_p_alive(0.7), ChurnRisk::Low);
        assert_eq!(ChurnRisk::from_p_alive(0.69), ChurnRisk::Medium);
        assert_eq!(ChurnRisk::from_p_alive(0.3), ChurnRisk::Medium);
        assert_eq!(ChurnRisk::from_p_alive(0.29), ChurnRisk::High);
        assert_eq!(Model::parse("pareto-nbd"), Some(Model::ParetoNbd));
        assert_eq!(Model::parse("MBG/NBD"), Some(Model::MbgNbd));
        assert_eq!(Model::parse("bgnbd"), Some(Model::BgNbd));
        assert_eq!(Model::parse("auto"), None);
        let json = serde_json::to_string(&ModelParams::ParetoNbd(ParetoNbdParams {
            r: 1.0,
            alpha: 2.0,
            s: 3.0,
            beta: 4.0,
        }))
        .expect("json");
        assert_eq!(
            json,
            r#"{"pareto_nbd":{"r":1.0,"alpha":2.0,"s":3.0,"beta":4.0}}"#
        );
        assert_eq!(
            serde_json::to_string(&Model::MbgNbd).expect("json"),
            r#""mbgnbd""#
        );
    }

    #[test]
    fn next_order_is_the_median_waiting_time() {
        let p = ModelParams::BgNbd(BgNbdParams {
            r: 0.5,
            alpha: 4.0,
            a: 0.8,
            b: 2.4,
        });
        let s = Summary {
            frequency: 3.0,
            recency: 20.0,
            t: 26.0,
            monetary: 0.0,
        };
        let t = p.next_order_in(&s);
        // P(no purchase within t | alive) = ((α+T)/(α+T+t))^(r+x) = 1/2
        let survival = (30.0 / (30.0 + t)).powf(3.5);
        assert!((survival - 0.5).abs() < 1e-12, "{t} {survival}");
    }
}
