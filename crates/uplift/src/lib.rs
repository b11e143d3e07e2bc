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
//! express. linfa 0.8 offers linear and logistic regression and single decision trees
//! (classification only); no tree regressor and no boosting. [`gbt`] is a small
//! histogram gradient-boosted tree learner (second-order, squared and logistic losses,
//! missing values routed left, seeded row subsampling) of a few hundred lines with its own tests.
//! On the simulations of this crate's tests it recovers a thresholded heterogeneous effect
//! (Qini well above a response-model ranking), which a logistic T-learner could not.
//!
//! The default is the X-learner: campaigns keep a small holdout (10 % by default), and the
//! X-learner borrows the large treated arm's outcome model to estimate the effect on the control
//! side, weighting by the known propensity (the mailed share).
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
