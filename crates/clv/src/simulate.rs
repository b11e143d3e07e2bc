//! Seeded simulation of customer cohorts from the three purchase models (and the Gamma-Gamma
//! spend model), for tests, parameter-recovery and coverage checks, and benchmarks. Same seed,
//! same cohort, on any machine.

use crate::gamma_gamma::GammaGammaParams;
use crate::model::ModelParams;
use crate::summary::Summary;

/// A small, fast, seeded generator (SplitMix64) with the distributions the models need.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Uniform on (0, 1), never 0 or 1.
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    pub fn exponential(&mut self) -> f64 {
        -self.uniform().ln()
    }

    /// Gamma(shape, 1) by Marsaglia & Tsang (boosted for shape < 1).
    pub fn gamma(&mut self, shape: f64) -> f64 {
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

    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let (x, y) = (self.gamma(a), self.gamma(b));
        x / (x + y)
    }
}

/// The shape of a simulated cohort.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cohort {
    pub customers: usize,
    /// Ages `T` are uniform on `[t_min, t_max]`.
    pub t_min: f64,
    pub t_max: f64,
    /// When set, `t_x` and `T` are rounded down to multiples of it (e.g. `1/7` for whole days in
    /// weeks), as summaries built from dated orders are; identical rows then repeat.
    pub tick: Option<f64>,
}

/// One customer's `(x, t_x)` observed for `t` under `params`, drawing from `rng`.
pub fn customer(params: &ModelParams, t: f64, rng: &mut Rng) -> (f64, f64) {
    let [r, alpha, _, _] = params.values();
    let lambda = rng.gamma(r) / alpha;
    // Purchases at rate λ until `end`, each followed by drop-out with probability `drop`.
    let purchases = |rng: &mut Rng, end: f64, drop: f64| {
        let (mut now, mut x, mut tx) = (0.0, 0.0, 0.0);
        loop {
            now += rng.exponential() / lambda;
            if now > end {
                break;
            }
            x += 1.0;
            tx = now;
            if drop > 0.0 && rng.uniform() < drop {
                break;
            }
        }
        (x, tx)
    };
    match *params {
        ModelParams::BgNbd(p) => {
            let drop = rng.beta(p.a, p.b);
            purchases(rng, t, drop)
        }
        ModelParams::MbgNbd(p) => {
            let drop = rng.beta(p.a, p.b);
            // May also drop out right after the first purchase, at time 0.
            if rng.uniform() < drop {
                (0.0, 0.0)
            } else {
                purchases(rng, t, drop)
            }
        }
        ModelParams::ParetoNbd(p) => {
            let mu = rng.gamma(p.s) / p.beta;
            let death = rng.exponential() / mu;
            purchases(rng, death.min(t), 0.0)
        }
    }
}

/// A cohort of summaries simulated from `params` (monetary 0), seeded.
pub fn cohort(params: &ModelParams, shape: &Cohort, seed: u64) -> Vec<Summary> {
    let mut rng = Rng::new(seed);
    (0..shape.customers)
        .map(|_| {
            let mut t = shape.t_min + (shape.t_max - shape.t_min) * rng.uniform();
            let (x, mut tx) = customer(params, t, &mut rng);
            if let Some(k) = shape.tick {
                t = (t / k).floor() * k;
                tx = ((tx / k).floor() * k).min(t);
            }
            Summary {
                frequency: x,
                recency: tx,
                t,
                monetary: 0.0,
            }
        })
        .collect()
}

/// Adds Gamma-Gamma spend to a cohort: each repeat customer gets a mean of `x` transaction
/// values drawn from Gamma(p, ν), `ν ~ Gamma(q, v)`.
pub fn add_spend(summaries: &mut [Summary], gg: &GammaGammaParams, seed: u64) {
    let mut rng = Rng::new(seed);
    for s in summaries.iter_mut() {
        if s.frequency > 0.0 {
            let nu = rng.gamma(gg.q) / gg.v;
            s.monetary = rng.gamma(gg.p * s.frequency) / nu / s.frequency;
        }
    }
}
