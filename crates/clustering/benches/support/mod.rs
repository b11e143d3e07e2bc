//! Test data of the benchmarks.

pub mod data;
