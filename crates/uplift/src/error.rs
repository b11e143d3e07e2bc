//! The error type of the uplift learners: too little or unusable training data.

use thiserror::Error;

/// Everything that can go wrong when fitting, evaluating or applying an uplift model.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum UpliftError {
    #[error("no training examples")]
    NoExamples,
    #[error(
        "the training data has {treated} treated and {control} control members; each side needs at least {needed}"
    )]
    TooFewPerArm {
        treated: usize,
        control: usize,
        needed: usize,
    },
    #[error("example {index}: expected {expected} features, found {found}")]
    FeatureCount {
        index: usize,
        expected: usize,
        found: usize,
    },
    #[error("example {index}: {field} is not a finite number")]
    NonFinite { index: usize, field: &'static str },
    #[error("no held-out campaign: evaluation needs examples from at least one campaign left out of the fit")]
    NoHeldOut,
    #[error("invalid option: {0}")]
    InvalidOption(String),
}
