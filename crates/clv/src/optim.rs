//! A small BFGS minimiser with a strong-Wolfe line search, for the models' log-likelihoods.
//!
//! The likelihoods are smooth, have 3–4 parameters and analytic gradients, so quasi-Newton with
//! a line search that enforces the curvature condition converges in a few dozen evaluations
//! (measured in `tests/cdnow.rs` and docs/BENCHMARKS.md). Parameters are optimised on the log
//! scale by the callers, so the problem is unconstrained; a non-finite objective at a trial
//! point is treated as `+∞` and the step is shortened.

/// Stopping rules and budgets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Stop when the largest gradient component is at most this.
    pub gtol: f64,
    /// Stop (converged if the gradient is within `gtol_loose`) when the predicted decrease of
    /// the next step is below this fraction of `|f|`: the objective cannot resolve further
    /// progress, and a line search would only burn evaluations on rounding noise.
    pub flat: f64,
    /// Accept the point as converged if the line search cannot improve it and the gradient is
    /// at most this (the objective is flat to machine precision).
    pub gtol_loose: f64,
    pub max_iterations: usize,
    pub max_evaluations: usize,
    /// The largest step in any coordinate (log-parameters: a factor of e^max_step).
    pub max_step: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            gtol: 1e-10,
            flat: 1e-14,
            gtol_loose: 1e-6,
            max_iterations: 1_000,
            max_evaluations: 10_000,
            max_step: 4.0,
        }
    }
}

/// Where the minimiser stopped.
#[derive(Debug, Clone)]
pub(crate) struct Minimum {
    pub x: Vec<f64>,
    pub f: f64,
    /// The final inverse-Hessian approximation (row-major), to warm-start another run.
    pub inverse_hessian: Vec<f64>,
    pub iterations: usize,
    pub evaluations: usize,
    pub converged: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// The objective: fills the gradient and returns the value (any non-finite value means "worse
/// than everything").
struct Counted<F> {
    f: F,
    evaluations: usize,
}

impl<F: FnMut(&[f64], &mut [f64]) -> f64> Counted<F> {
    fn eval(&mut self, x: &[f64], g: &mut [f64]) -> f64 {
        self.evaluations += 1;
        let v = (self.f)(x, g);
        if v.is_finite() && g.iter().all(|v| v.is_finite()) {
            v
        } else {
            f64::INFINITY
        }
    }
}

/// One trial point of the line search.
struct Trial {
    alpha: f64,
    f: f64,
    slope: f64,
    x: Vec<f64>,
    g: Vec<f64>,
}

/// Minimises `f` from `x0`, optionally starting from an inverse-Hessian approximation `h0`
/// (row-major, from an earlier run on similar data). Returns `None` when the objective is not
/// finite at `x0`.
pub(crate) fn bfgs<F>(f: F, x0: &[f64], h0: Option<&[f64]>, opts: &Options) -> Option<Minimum>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let n = x0.len();
    let mut obj = Counted { f, evaluations: 0 };
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let mut fx = obj.eval(&x, &mut g);
    if !fx.is_finite() {
        return None;
    }
    // Inverse Hessian approximation, row-major.
    let (mut h, mut fresh) = match h0 {
        Some(h0) if h0.len() == n * n && h0.iter().all(|v| v.is_finite()) => (h0.to_vec(), false),
        _ => (identity(n), true),
    };
    let mut iterations = 0;
    let mut converged = max_abs(&g) <= opts.gtol;
    while !converged && iterations < opts.max_iterations && obj.evaluations < opts.max_evaluations {
        iterations += 1;
        let mut p: Vec<f64> = (0..n).map(|i| -dot(&h[i * n..(i + 1) * n], &g)).collect();
        let mut slope = dot(&p, &g);
        // Not a descent direction (or NaN): fall back to steepest descent.
        if slope.is_nan() || slope >= 0.0 {
            h = identity(n);
            fresh = true;
            p = g.iter().map(|v| -v).collect();
            slope = dot(&p, &g);
        }
        let longest = max_abs(&p);
        if longest > opts.max_step {
            let s = opts.max_step / longest;
            p.iter_mut().for_each(|v| *v *= s);
            slope *= s;
        }
        if -slope <= opts.flat * fx.abs() {
            converged = max_abs(&g) <= opts.gtol_loose;
            break;
        }
        match line_search(&mut obj, &x, fx, slope, &p, opts.max_evaluations) {
            Some(t) => {
                let s: Vec<f64> = (0..n).map(|i| t.x[i] - x[i]).collect();
                let y: Vec<f64> = (0..n).map(|i| t.g[i] - g[i]).collect();
                let sy = dot(&s, &y);
                if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
                    if fresh {
                        // Scale the initial matrix to the curvature seen (Nocedal & Wright 6.20).
                        let scale = sy / dot(&y, &y);
                        h.iter_mut().for_each(|v| *v *= scale);
                        fresh = false;
                    }
                    bfgs_update(&mut h, &s, &y, sy);
                }
                x = t.x;
                g = t.g;
                fx = t.f;
                converged = max_abs(&g) <= opts.gtol;
            }
            None if !fresh => {
                // The quasi-Newton direction failed: restart from steepest descent.
                h = identity(n);
                fresh = true;
            }
            None => {
                // Even steepest descent cannot improve: at the minimum to machine precision,
                // or stuck.
                converged = max_abs(&g) <= opts.gtol_loose;
                break;
            }
        }
    }
    Some(Minimum {
        x,
        f: fx,
        inverse_hessian: h,
        iterations,
        evaluations: obj.evaluations,
        converged,
    })
}

fn identity(n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    (0..n).for_each(|i| m[i * n + i] = 1.0);
    m
}

/// `H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ` with `ρ = 1 / sᵀy`.
fn bfgs_update(h: &mut [f64], s: &[f64], y: &[f64], sy: f64) {
    let n = s.len();
    let rho = 1.0 / sy;
    let hy: Vec<f64> = (0..n).map(|i| dot(&h[i * n..(i + 1) * n], y)).collect();
    let yhy = dot(y, &hy);
    for i in 0..n {
        for j in 0..n {
            h[i * n + j] +=
                -rho * (s[i] * hy[j] + hy[i] * s[j]) + (rho * rho * yhy + rho) * s[i] * s[j];
        }
    }
}

const C1: f64 = 1e-4;
const C2: f64 = 0.9;

/// Strong-Wolfe line search along `p` from `x` (Nocedal & Wright, algorithms 3.5 and 3.6).
fn line_search<F>(
    obj: &mut Counted<F>,
    x: &[f64],
    f0: f64,
    slope0: f64,
    p: &[f64],
    max_evaluations: usize,
) -> Option<Trial>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let mut probe = |obj: &mut Counted<F>, alpha: f64| -> Trial {
        let xt: Vec<f64> = x.iter().zip(p).map(|(xi, pi)| xi + alpha * pi).collect();
        let mut gt = vec![0.0; x.len()];
        let ft = obj.eval(&xt, &mut gt);
        Trial {
            alpha,
            f: ft,
            slope: dot(&gt, p),
            x: xt,
            g: gt,
        }
    };
    let start = Trial {
        alpha: 0.0,
        f: f0,
        slope: slope0,
        x: x.to_vec(),
        g: Vec::new(),
    };
    let mut prev = start;
    let mut alpha = 1.0;
    for i in 0..40 {
        if obj.evaluations >= max_evaluations {
            return None;
        }
        let t = probe(obj, alpha);
        if !t.f.is_finite() || t.f > f0 + C1 * alpha * slope0 || (i > 0 && t.f >= prev.f) {
            return zoom(obj, &mut probe, f0, slope0, prev, t, max_evaluations);
        }
        if t.slope.abs() <= -C2 * slope0 {
            return Some(t);
        }
        if t.slope >= 0.0 {
            return zoom(obj, &mut probe, f0, slope0, t, prev, max_evaluations);
        }
        prev = t;
        alpha *= 2.0;
    }
    None
}

fn zoom<F, P>(
    obj: &mut Counted<F>,
    probe: &mut P,
    f0: f64,
    slope0: f64,
    mut lo: Trial,
    mut hi: Trial,
    max_evaluations: usize,
) -> Option<Trial>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
    P: FnMut(&mut Counted<F>, f64) -> Trial,
{
    for _ in 0..60 {
        if obj.evaluations >= max_evaluations {
            break;
        }
        let width = hi.alpha - lo.alpha;
        if width.abs() < 1e-16 * lo.alpha.abs().max(1.0) {
            break;
        }
        let alpha = interpolate(&lo, &hi);
        let t = probe(obj, alpha);
        if !t.f.is_finite() || t.f > f0 + C1 * alpha * slope0 || t.f >= lo.f {
            hi = t;
        } else {
            if t.slope.abs() <= -C2 * slope0 {
                return Some(t);
            }
            if t.slope * (hi.alpha - lo.alpha) >= 0.0 {
                hi = std::mem::replace(&mut lo, t);
            } else {
                lo = t;
            }
        }
    }
    // No point met the curvature condition; a sufficient decrease is still progress.
    (lo.alpha != 0.0 && lo.f < f0 && !lo.g.is_empty()).then_some(lo)
}

/// The minimiser of the cubic through both ends (values and slopes), kept inside the central
/// 80 % of the bracket; bisection when an end is not finite.
fn interpolate(lo: &Trial, hi: &Trial) -> f64 {
    let (a, b) = (lo.alpha, hi.alpha);
    let mid = 0.5 * (a + b);
    if !(lo.f.is_finite() && hi.f.is_finite() && hi.slope.is_finite()) {
        return mid;
    }
    let d1 = lo.slope + hi.slope - 3.0 * (lo.f - hi.f) / (a - b);
    let disc = d1 * d1 - lo.slope * hi.slope;
    if disc < 0.0 {
        return mid;
    }
    let d2 = (b - a).signum() * disc.sqrt();
    let c = b - (b - a) * (hi.slope + d2 - d1) / (hi.slope - lo.slope + 2.0 * d2);
    let (left, right) = if a < b { (a, b) } else { (b, a) };
    let margin = 0.1 * (right - left);
    if c.is_finite() {
        c.clamp(left + margin, right - margin)
    } else {
        mid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_rosenbrock() {
        let f = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let m = bfgs(f, &[-1.2, 1.0], None, &Options::default()).expect("finite start");
        assert!(m.converged, "{m:?}");
        assert!(
            (m.x[0] - 1.0).abs() < 1e-8 && (m.x[1] - 1.0).abs() < 1e-8,
            "{m:?}"
        );
    }

    #[test]
    fn survives_non_finite_regions() {
        // ln-barrier: undefined for x <= 0; the minimum is at x = 1.
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = 1.0 - 1.0 / x[0];
            x[0] - x[0].ln()
        };
        let m = bfgs(f, &[30.0], None, &Options::default()).expect("finite start");
        assert!(m.converged && (m.x[0] - 1.0).abs() < 1e-8, "{m:?}");
        let bad = |_: &[f64], _: &mut [f64]| f64::NAN;
        assert!(bfgs(bad, &[0.0], None, &Options::default()).is_none());
    }
}
