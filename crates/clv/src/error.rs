//! The error type of the CLV models: degenerate input, failed fits and numerical failures.

use thiserror::Error;

/// Everything that can go wrong when fitting or applying the CLV models.
///
/// Degenerate inputs are reported as such, never as a NaN in the output.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ClvError {
    #[error("no customers: nothing to fit")]
    NoCustomers,
    #[error("only one customer: the models need at least two to be fitted")]
    SingleCustomer,
    #[error(
        "no customer made a repeat purchase (every frequency is 0): the BG/NBD model cannot be \
         identified from one-time buyers alone; use a longer history"
    )]
    NoRepeatPurchases,
    #[error("customer {customer}: {field} is not a finite number ({value})")]
    NonFinite {
        customer: String,
        field: &'static str,
        value: f64,
    },
    #[error("customer {customer}: {reason}")]
    InvalidSummary { customer: String, reason: String },
    #[error(
        "no repeat customer with a positive monetary value: the Gamma-Gamma spend model cannot be \
         fitted"
    )]
    NoPositiveMonetary,
    #[error("{model} fit failed: {reason}")]
    FitFailed { model: &'static str, reason: String },
    #[error("hypergeometric 2F1({a}, {b}; {c}; {z}): {reason}")]
    Hypergeometric {
        a: f64,
        b: f64,
        c: f64,
        z: f64,
        reason: &'static str,
    },
    #[error("customer {customer}: the predicted {what} is not a finite number")]
    NonFinitePrediction {
        customer: String,
        what: &'static str,
    },
    #[error("invalid option: {0}")]
    InvalidOption(String),
}
