//! Typed errors of the planner: goals-file problems carry a file position, option problems say
//! which option and why.

use std::fmt;

use thiserror::Error;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte offset `offset` in `text` (clamped to the text's end).
    pub fn of_byte(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What is wrong with a goals file (or with one eligibility rule in it).
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{file}:{position}: {message}")]
pub struct GoalsError {
    /// The file name (or label) the caller gave, used only in messages.
    pub file: String,
    pub position: Position,
    /// What is wrong, including what was expected and, for unknown names, the known ones.
    pub message: String,
}

/// Invalid planning options: the plan was not attempted.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PlanError {
    #[error("budget must be a finite amount of zero or more, got {0}")]
    InvalidBudget(f64),
    #[error("marketing budget must be a finite amount of zero or more, got {0}")]
    InvalidMarketingBudget(f64),
    #[error("holdout fraction must be 0 (no control group) or between 0.01 and 0.5, got {0}")]
    InvalidHoldout(f64),
    #[error("global control share must be between 0 and 0.5, got {0}")]
    InvalidControlShare(f64),
    #[error("frequency cap must be at least 1 day, got {0}")]
    InvalidFrequencyCap(u32),
    #[error("observed response rate for goal `{goal}` must be a probability between 0 and 1, got {rate}")]
    InvalidObservedRate { goal: String, rate: f64 },
    #[error("unknown stage `{0}`: expected startup, growth or mature")]
    UnknownStage(String),
    #[error("eligibility rule of goal `{goal}`: {message}")]
    Rule { goal: String, message: String },
    #[error("predicted uplift for goal `{goal}` has {found} values for {expected} candidates")]
    UpliftLength {
        goal: String,
        expected: usize,
        found: usize,
    },
}
