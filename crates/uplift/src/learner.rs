//! The meta-learners: T-learner and X-learner estimates of each customer's conditional
//! treatment effect (CATE) on conversion (0/1 within the attribution window) and on revenue,
//! over the gradient-boosted trees of [`crate::gbt`].
//!
//! * **T-learner**: one outcome model on the treated (`μ₁`), one on the control (`μ₀`);
//!   `τ(x) = μ₁(x) − μ₀(x)`.
//! * **X-learner** (Künzel et al. 2019): the same `μ₀`, `μ₁`, then imputed effects
//!   `D₁ = Y − μ₀(x)` on the treated and `D₀ = μ₁(x) − Y` on the control, each regressed on `x`
//!   (`τ₁`, `τ₀`), combined as `τ(x) = e·τ₀(x) + (1 − e)·τ₁(x)` with the propensity `e` — known
//!   here: the share of members who were mailed (one minus the holdout share). With a small
//!   holdout the well-estimated `μ₁` carries the control side's effect estimate.

use serde::{Deserialize, Serialize};

use crate::features::Schema;
use crate::gbt::{self, Binned, Booster, Loss, Params};
use crate::UpliftError;

/// One past campaign member: what was known at the plan date and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub campaign: String,
    /// Mailed (a recipient); false: held out.
    pub treated: bool,
    pub features: Vec<f64>,
    /// Purchased within the campaign's attribution window.
    pub converted: bool,
    /// Revenue within the window.
    pub revenue: f64,
}

/// Which meta-learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LearnerKind {
    #[default]
    T,
    X,
}

impl LearnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::T => "t",
            Self::X => "x",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "t" | "t-learner" => Some(Self::T),
            "x" | "x-learner" => Some(Self::X),
            _ => None,
        }
    }
}

/// How to fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    pub learner: LearnerKind,
    pub seed: u64,
    pub params: Params,
    /// Fewest members each arm (treated, control) needs.
    pub min_per_arm: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            learner: LearnerKind::T,
            seed: 0,
            params: Params::default(),
            min_per_arm: 20,
        }
    }
}

/// The effect model of one outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cate {
    pub mu0: Booster,
    pub mu1: Booster,
    /// X-learner only: the effect models on the control and the treated.
    pub tau0: Option<Booster>,
    pub tau1: Option<Booster>,
    pub propensity: f64,
}

impl Cate {
    /// The estimated effect of mailing a customer with features `x`.
    pub fn effect(&self, x: &[f64]) -> f64 {
        match (&self.tau0, &self.tau1) {
            (Some(t0), Some(t1)) => {
                let e = self.propensity;
                e * t0.predict(x) + (1.0 - e) * t1.predict(x)
            }
            _ => self.mu1.predict(x) - self.mu0.predict(x),
        }
    }

    /// The predicted outcome when not mailed.
    pub fn baseline(&self, x: &[f64]) -> f64 {
        self.mu0.predict(x)
    }
}

/// A fitted uplift model: conversion and revenue effects, the schema of its features and what it
/// was fitted on. Serialisable (the store keeps it as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpliftModel {
    pub learner: LearnerKind,
    pub seed: u64,
    pub params: Params,
    pub schema: Schema,
    pub feature_names: Vec<String>,
    pub conversion: Cate,
    pub revenue: Cate,
    pub examples: usize,
    pub treated: usize,
    pub control: usize,
    /// The campaigns fitted on, sorted.
    pub campaigns: Vec<String>,
}

/// One customer's predicted effects.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Effect {
    /// Change of the conversion probability when mailed (−1 … 1).
    pub conversion: f64,
    /// Change of the revenue in the window when mailed.
    pub revenue: f64,
}

impl UpliftModel {
    /// The predicted effects for one customer as the planner sees them (features today, the
    /// stored prediction, the customer's attributes).
    pub fn effect_of(
        &self,
        features: &retain_core::CustomerFeatures,
        prediction: Option<&retain_core::Prediction>,
        attributes: &std::collections::BTreeMap<String, String>,
    ) -> Effect {
        self.predict(
            &self
                .schema
                .vector(Some(features), prediction, Some(attributes)),
        )
    }

    /// The predicted conversion effect only (what the planner ranks by; half the work of
    /// [`Self::effect_of`]).
    pub fn conversion_effect_of(
        &self,
        features: &retain_core::CustomerFeatures,
        prediction: Option<&retain_core::Prediction>,
        attributes: &std::collections::BTreeMap<String, String>,
    ) -> f64 {
        let x = self
            .schema
            .vector(Some(features), prediction, Some(attributes));
        self.conversion.effect(&x).clamp(-1.0, 1.0)
    }

    pub fn predict(&self, x: &[f64]) -> Effect {
        Effect {
            conversion: self.conversion.effect(x).clamp(-1.0, 1.0),
            revenue: self.revenue.effect(x),
        }
    }
}

fn check(examples: &[Example], width: usize, min_per_arm: usize) -> Result<(), UpliftError> {
    if examples.is_empty() {
        return Err(UpliftError::NoExamples);
    }
    for (index, e) in examples.iter().enumerate() {
        if e.features.len() != width {
            return Err(UpliftError::FeatureCount {
                index,
                expected: width,
                found: e.features.len(),
            });
        }
        if !e.revenue.is_finite() {
            return Err(UpliftError::NonFinite {
                index,
                field: "revenue",
            });
        }
    }
    let treated = examples.iter().filter(|e| e.treated).count();
    let control = examples.len() - treated;
    if treated < min_per_arm || control < min_per_arm {
        return Err(UpliftError::TooFewPerArm {
            treated,
            control,
            needed: min_per_arm,
        });
    }
    Ok(())
}

/// Fits an uplift model on `examples` (features built by `schema`).
pub fn fit(
    examples: &[Example],
    schema: &Schema,
    options: &FitOptions,
) -> Result<UpliftModel, UpliftError> {
    let width = schema.len();
    check(examples, width, options.min_per_arm.max(1))?;
    let rows: Vec<Vec<f64>> = examples.iter().map(|e| e.features.clone()).collect();
    let binned = Binned::new(&rows, width);
    let t_idx: Vec<usize> = (0..examples.len())
        .filter(|&i| examples[i].treated)
        .collect();
    let c_idx: Vec<usize> = (0..examples.len())
        .filter(|&i| !examples[i].treated)
        .collect();
    let propensity = t_idx.len() as f64 / examples.len() as f64;
    let conv: Vec<f64> = examples
        .iter()
        .map(|e| if e.converted { 1.0 } else { 0.0 })
        .collect();
    let rev: Vec<f64> = examples.iter().map(|e| e.revenue).collect();
    let bt = binned.subset(&t_idx);
    let bc = binned.subset(&c_idx);
    let p = &options.params;
    let fit_one = |y: &[f64], loss: Loss, salt: u64| -> Cate {
        let pick = |idx: &[usize]| idx.iter().map(|&i| y[i]).collect::<Vec<f64>>();
        let (yt, yc) = (pick(&t_idx), pick(&c_idx));
        let seed = options.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
        let mu1 = gbt::fit(&bt, &yt, loss, p, seed ^ 1);
        let mu0 = gbt::fit(&bc, &yc, loss, p, seed ^ 2);
        let (tau0, tau1) = match options.learner {
            LearnerKind::T => (None, None),
            LearnerKind::X => {
                let d1: Vec<f64> = t_idx
                    .iter()
                    .zip(&yt)
                    .map(|(&i, y)| y - mu0.predict(&rows[i]))
                    .collect();
                let d0: Vec<f64> = c_idx
                    .iter()
                    .zip(&yc)
                    .map(|(&i, y)| mu1.predict(&rows[i]) - y)
                    .collect();
                (
                    Some(gbt::fit(&bc, &d0, Loss::Squared, p, seed ^ 3)),
                    Some(gbt::fit(&bt, &d1, Loss::Squared, p, seed ^ 4)),
                )
            }
        };
        Cate {
            mu0,
            mu1,
            tau0,
            tau1,
            propensity,
        }
    };
    let conversion = fit_one(&conv, Loss::Logistic, 0x11);
    let revenue = fit_one(&rev, Loss::Squared, 0x22);
    let mut campaigns: Vec<String> = examples.iter().map(|e| e.campaign.clone()).collect();
    campaigns.sort_unstable();
    campaigns.dedup();
    Ok(UpliftModel {
        learner: options.learner,
        seed: options.seed,
        params: *p,
        schema: schema.clone(),
        feature_names: schema.names(),
        conversion,
        revenue,
        examples: examples.len(),
        treated: t_idx.len(),
        control: c_idx.len(),
        campaigns,
    })
}

/// A response (propensity) model for comparison: the conversion probability of mailed customers,
/// fitted on the treated only — what ranking by "who is likely to buy" does.
pub fn fit_response(examples: &[Example], width: usize, options: &FitOptions) -> Booster {
    let treated: Vec<&Example> = examples.iter().filter(|e| e.treated).collect();
    let rows: Vec<Vec<f64>> = treated.iter().map(|e| e.features.clone()).collect();
    let y: Vec<f64> = treated
        .iter()
        .map(|e| if e.converted { 1.0 } else { 0.0 })
        .collect();
    let binned = Binned::new(&rows, width);
    gbt::fit(&binned, &y, Loss::Logistic, &options.params, options.seed)
}
