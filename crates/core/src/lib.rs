//! `retain-core`: the domain of retain — customers, orders, their features and retention metrics.
//!
//! This crate owns the types every other crate speaks ([`model`]), reading order and customer CSVs
//! ([`import`]), per-customer features such as recency/frequency/monetary ([`features`]), shop-level
//! retention metrics and cohorts ([`metrics`]), ordering per-customer rows by id ([`by_id`]), workspace configuration ([`config`]), signed
//! tracking tokens ([`tracking`]) the seeded demo-data generator ([`demo`]) and the simulation of the weeks after a send ([`response`]). It does no I/O beyond reading the files it is handed.

pub mod by_id;
pub mod config;
pub mod dates;
pub mod demo;
pub mod features;
pub mod import;
pub mod metrics;
pub mod model;
pub mod response;
pub mod tracking;

pub use model::*;
