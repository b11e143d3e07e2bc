//! `retain-uplift`: who a campaign *changes*, not who would buy anyway. Pure computation: no SQL,
//! no HTTP, no files.
//!
//! From past campaign members — mailed recipients (treated) and the random holdout (control) —
//! with their features at the plan date ([`features`]) and what they did within the attribution
//! window (converted 0/1, revenue), it estimates every customer's conditional treatment effect
//! with a T-learner or an X-learner ([`learner`]), and measures a ranking on campaigns left out of
//! the fit with the Qini curve and uplift@k ([`evaluate`]).
//!
//! # The base learner, and why not linfa
//! The meta-learners need a regressor (revenue, the X-learner's imputed effects) and a classifier
//! (conversion) that find *interactions* — an effect confined to recent, frequent buyers is a
//! product of two thresholds, which a linear or logistic model on the raw features cannot
//! express. linfa 0.8's learners are linear and logistic regression and, in linfa-trees and
//! linfa-ensemble, decision trees and forests for classification: no tree regressor and no
//! gradient boosting. [`gbt`] is a small histogram gradient-boosted tree learner (second-order,
//! squared and logistic losses, missing values routed left, seeded row subsampling) of a few
//! hundred lines with its own tests. On the simulations of this crate's tests it recovers a
//! thresholded heterogeneous effect to within a fifth of the oracle ranking's Qini, far above a
//! response-model ranking.
//!
//! # T or X
//! Both are offered; the default is the T-learner, chosen by the evaluation: on held-out
//! campaigns of the simulations (a thresholded effect, 80 % and 90 % mailed) the two rank within
//! noise of each other — Qini 0.0166 (T) vs 0.0149 (X) at 80 %, 0.0221 vs 0.0214 on 200,000
//! members at 90 % (`docs/BENCHMARKS.md`) — and the T-learner fits two boosters per outcome
//! instead of four (about 15 % faster). The X-learner (borrowing the large mailed arm's outcome
//! model to estimate the effect on the holdout side, weighted by the known propensity) remains
//! the choice to try when holdouts are very small: `retain uplift fit --learner x` fits and
//! evaluates it on a shop's own campaigns (and stores it in place of the previous model).
//!
//! Everything is reproducible: the same examples, options and seed give the same model.
//! [`simulate`] generates seeded campaign histories with a known effect for tests and benchmarks.

pub mod error;
pub mod evaluate;
pub mod features;
pub mod gbt;
pub mod learner;
pub mod simulate;

pub use error::UpliftError;
pub use evaluate::{evaluate, qini, split_by_campaign, uplift_at, Evaluation, Outcome, Qini};
pub use features::{Schema, BASE_FEATURES};
pub use learner::{fit, fit_response, Effect, Example, FitOptions, LearnerKind, UpliftModel};
