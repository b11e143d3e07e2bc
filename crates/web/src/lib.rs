//! The HTTP side of retain: tracking endpoints and the dashboard.

pub mod report;
pub mod stats;
