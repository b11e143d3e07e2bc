//! `retain-clv`: predictive customer value — the BG/NBD, MBG/NBD and Pareto/NBD purchase
//! models, the Gamma-Gamma spend model, P(alive), expected purchases and CLV with intervals, and
//! calibration/holdout validation and model selection.
//!
//! Pure computation: summaries in, fitted parameters and predictions out; no I/O.
//!
//! - [`summary`]: per-customer `(x, t_x, T, monetary)` from purchase histories, in days or weeks.
//! - [`bgnbd`]: BG/NBD fit (maximum likelihood), P(alive), expected purchases.
//! - [`mbgnbd`]: MBG/NBD, the same with drop-out possible after the first purchase.
//! - [`pareto_nbd`]: Pareto/NBD, drop-out at any time.
//! - [`model`]: the three behind one interface ([`Model`], [`ModelParams`], [`ModelFit`] with
//!   standard errors), next-order time and churn-risk bands.
//! - [`selection`]: choosing a model by calibration/holdout error, with the evidence.
//! - [`simulate`]: seeded cohorts from any of the models, for tests and benchmarks.
//! - [`gamma_gamma`]: Gamma-Gamma fit, expected average profit, independence check.
//! - [`clv`]: discounted CLV over a horizon, as python lifetimes computes it.
//! - [`predict()`]: the one-call API — fit both models and predict for every customer.
//! - [`validation`]: calibration/holdout comparison of predicted and actual purchases.
//! - [`special`]: log-gamma, digamma and the hypergeometric function 2F1.

pub mod bgnbd;
pub mod clv;
mod error;
pub mod gamma_gamma;
pub mod mbgnbd;
pub mod model;
mod optim;
pub mod pareto_nbd;
pub mod predict;
pub mod selection;
pub mod simulate;
pub mod special;
pub mod summary;
pub mod validation;

pub use bgnbd::{BgNbdFit, BgNbdParams};
pub use clv::customer_lifetime_value;
pub use error::ClvError;
pub use gamma_gamma::{GammaGammaFit, GammaGammaParams, IndependenceCheck};
pub use mbgnbd::MbgNbdParams;
pub use model::{ChurnRisk, Model, ModelFit, ModelParams};
pub use pareto_nbd::ParetoNbdParams;
pub use predict::{predict, CustomerPrediction, PredictOptions, PredictionRun};
pub use selection::{predict_auto, select_model, ModelEvidence, ModelSelection};
pub use summary::{summarize, summarize_aggregate, Period, Summary};
pub use validation::{calibration_holdout, BucketRow, HoldoutRow, HoldoutValidation};
