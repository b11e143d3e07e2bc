//! The typed errors of segmentation: bad input data, impossible parameters, failed fits.

use thiserror::Error;

/// Everything that can go wrong while segmenting customers. No input makes this crate panic; it
/// returns one of these instead.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ClusteringError {
    /// The customer list is empty.
    #[error("no customers to segment")]
    NoCustomers,
    /// Fewer customers than clusters asked for.
    #[error("{n} customers are too few for {k} clusters")]
    TooFewCustomers { n: usize, k: usize },
    /// Automatic k needs at least three customers (two clusters and a silhouette).
    #[error("{n} customers are too few to choose k automatically; at least 3 are needed")]
    TooFewForAutoK { n: usize },
    /// A fixed k outside `2..=MAX_K`.
    #[error("k = {k} is out of range: it must be between 2 and {max}")]
    KOutOfRange { k: usize, max: usize },
    /// An automatic k range that is empty or leaves `2..=MAX_K`.
    #[error("k range {min}..={max} is invalid: it must satisfy 2 <= min <= max <= {limit}")]
    InvalidKRange {
        min: usize,
        max: usize,
        limit: usize,
    },
    /// Some other parameter is out of its domain (runs, iterations, tolerance, sample size).
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// A feature value is NaN or infinite.
    #[error("customer {customer_id}: {feature} is not a finite number ({value})")]
    NonFinite {
        customer_id: String,
        feature: &'static str,
        value: f64,
    },
    /// The same customer id appears twice in one input.
    #[error("customer {0} appears more than once")]
    DuplicateCustomer(String),
    /// CLV or P(alive) is a clustering feature but a customer has no prediction.
    #[error("customer {0} has no prediction, but the features include CLV or P(alive)")]
    MissingPrediction(String),
    /// Every customer has the same scaled features: there is nothing to separate.
    #[error("all customers have identical features; there is nothing to cluster")]
    NoVariation,
    /// Fewer distinct customers (by scaled features) than clusters asked for.
    #[error("only {distinct} distinct feature vectors for {k} clusters")]
    TooFewDistinct { distinct: usize, k: usize },
    /// A stored scaling or model does not match the data or the other half of the model.
    #[error("dimension mismatch: expected {expected} features, got {got}")]
    DimensionMismatch { expected: usize, got: usize },
    /// A raw matrix whose length is not a whole number of rows.
    #[error("matrix of {len} values is not a whole number of rows of {cols}")]
    BadShape { len: usize, cols: usize },
    /// The Gaussian mixture could not be fitted (degenerate covariance, no convergence).
    #[error("gaussian mixture fit failed: {0}")]
    Gmm(String),
    /// An error reported by linfa.
    #[error("linfa: {0}")]
    Linfa(String),
}

impl From<linfa::Error> for ClusteringError {
    fn from(e: linfa::Error) -> Self {
        Self::Linfa(e.to_string())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ClusteringError> = std::result::Result<T, E>;
