//! `retain-results`: what campaigns changed. Analysis, not HTTP: the CLI (`retain report`, the
//! planner's measured uplift) and the dashboard both use it.
//!
//! - [`report`]: pure computation — intent-to-treat attribution of later orders within each
//!   recipient's window, per campaign and per segment counts, rates and revenue, uplift against
//!   the holdout with intervals, incremental conversions, revenue and ROI.
//! - [`stats`]: the statistics underneath (Newcombe hybrid-score and Katz intervals, pooled z,
//!   Welch).
//! - [`sequence`]: A/B variants against the holdout and each other (fixed-horizon test), follow-up
//!   steps' funnels and the whole sequence's uplift.
//! - [`program`]: the whole programme against the global control group (revenue per customer).
//! - [`results`]: loads one campaign's (or plan's) inputs from the store and runs [`report`].
//! - [`uplift`]: past campaigns as training data for the uplift learner (`retain-uplift`):
//!   features at each plan's date and outcomes by the same attribution rule as the reports;
//!   fitting, storing and evaluating a model per goal.

pub mod program;
pub mod report;
pub mod results;
pub mod sequence;
pub mod stats;
pub mod uplift;
