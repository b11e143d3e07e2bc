//! `retain-recommend`: product recommendations and replenishment timing, as pure computation over
//! customers' order lines (no database, files or network).
//!
//! - [`model`]: an item-to-item model from customers' purchase histories — co-purchase counts
//!   accumulated customer by customer, scored by shrunk cosine similarity, each product's
//!   strongest neighbours kept — and per-customer top-N that never repeats what the customer
//!   bought or returned nor offers what is out of stock, filled from the most popular products
//!   (the fallback for new customers).
//! - [`evaluate`]: a time split (train on lines before a day, score the purchases from that day
//!   on) measuring hit rate@10, recall@10 and catalogue coverage against the popularity baseline
//!   computed the same way.
//! - [`replenish`]: per product (and per customer where their own history allows) the typical
//!   interval between repurchases, and for a customer the product due soonest.

pub mod evaluate;
pub mod model;
pub mod replenish;

pub use evaluate::{EvaluationReport, Split};
pub use model::{Line, Model, ModelBuilder, Options, Pick};
pub use replenish::{Due, Replenishment, ReplenishmentBuilder};

/// A day number (days since 1970-01-01), as the store keeps them.
pub type Day = i32;
