//! `retain-planner`: campaign planning — which retention goal each customer group gets, under a
//! budget, with frequency caps, consent, holdouts and an explanation for every choice.
//!
//! Pure computation over [`retain_core`] types: no SQL and no I/O beyond parsing the goals text
//! handed in.
//!
//! * [`goals`] parses the goals catalogue (TOML) with file positions in every error;
//! * [`expr`] is the eligibility language of the goals' rules;
//! * [`input`] holds what a run is given ([`Candidate`], [`PlanOptions`]) and why customers are
//!   excluded;
//! * [`optimise`] chooses a goal per customer group and how many members to select, maximising
//!   expected incremental value under the budget and audience caps;
//! * [`holdout`] draws the seeded, segment-stratified control groups and estimates power;
//! * [`program`] is the global control group (a seeded, period-rotated share of all customers);
//! * [`variants`] splits a campaign's audience between its A/B variants and sizes the test;
//! * [`followup`] is the language of follow-up steps' `when` rules over recipients' events;
//! * [`balance`] recommends the retention share of a marketing budget by company stage;
//! * [`plan`] puts it together and produces the serialisable [`Plan`].

pub mod balance;
pub mod error;
pub mod expr;
pub mod followup;
pub mod goals;
pub mod holdout;
pub mod input;
pub mod optimise;
pub mod plan;
pub mod program;
pub mod variants;

pub use error::{GoalsError, PlanError, Position};
pub use expr::{parse as parse_rule, Expr, Vocabulary};
pub use goals::{
    parse_catalogue, parse_goals, Approval, Catalogue, Goal, ShareTest, Step, ValueBasis, Variant,
};
pub use input::{
    Candidate, ConsentPolicy, ExclusionReason, PlanOptions, RfmScores, Stage, UNLIMITED_BUDGET,
};
pub use plan::{plan, Campaign, Plan};
pub use program::{ControlPeriod, GlobalControl, Program};

/// The ten named RFM segments, as the segmentation names them.
pub const RFM_SEGMENTS: [&str; 10] = [
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "New Customers",
    "Promising",
    "Need Attention",
    "About To Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
];

/// The default goals catalogue (`templates/goals.toml`), which `retain init` copies into a workspace.
pub const DEFAULT_GOALS: &str = include_str!("../../../templates/goals.toml");
